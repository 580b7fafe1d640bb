//! The multi-connection load client on io_uring. An epoll client pays a
//! `read` and a `write` syscall per message plus `epoll_wait`, and on two
//! cores it saturated its core before the servers did (128-connection
//! ping-pong: client 99% CPU). Here one `io_uring_enter` submits every
//! follow-up of a batch and waits for the next, so the client has headroom
//! and the servers are what is measured. Every server gets this same client.
//!
//! Each connection always has one recv in flight and at most one send. The
//! send writes as many whole messages as the connection's window has room
//! for, in one operation.
#![allow(unsafe_code)]

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use crate::client::{Driver, STALL_LIMIT};

const OP_RECV: u64 = 0;
const OP_SEND: u64 = 1;
/// How long one wait may last, so a stalled server is noticed.
static WAIT_MAX: types::Timespec = types::Timespec::new().nsec(100_000_000);

/// One connection's progress.
struct Connection {
    stream: TcpStream,
    /// The recv buffer, owned here and never moved or freed while a recv
    /// may write into it.
    buf: Box<[u8]>,
    /// Bytes handed to sends (in flight or done) and bytes of echo received.
    queued: u64,
    received: u64,
    /// Length of the send in flight, if any.
    sending: Option<u32>,
}

/// Ping-pong (`window_bytes` = the message size) or streaming over many
/// connections on one ring.
pub struct UringDriver {
    ring: IoUring,
    connections: Vec<Connection>,
    /// What every send writes from; never modified while the ring lives.
    payload: Box<[u8]>,
    message_bytes: usize,
    window_bytes: usize,
    ping_pong: bool,
    in_flight: usize,
    batch: Vec<(u64, i32)>,
    units: u64,
    last_progress: Instant,
}

impl UringDriver {
    pub fn new(
        streams: Vec<TcpStream>,
        payload: Vec<u8>,
        message_bytes: usize,
        window_bytes: Option<usize>,
    ) -> io::Result<Self> {
        let entries = (streams.len() as u32 * 2).next_power_of_two().max(64);
        let ring = IoUring::builder()
            .setup_cqsize(entries * 4)
            .build(entries)?;
        let recv_bytes = window_bytes.unwrap_or(message_bytes).max(message_bytes);
        let connections = streams
            .into_iter()
            .map(|stream| Connection {
                stream,
                buf: vec![0u8; recv_bytes].into_boxed_slice(),
                queued: 0,
                received: 0,
                sending: None,
            })
            .collect();
        let mut driver = UringDriver {
            ring,
            connections,
            payload: payload.into_boxed_slice(),
            message_bytes,
            window_bytes: window_bytes.unwrap_or(message_bytes),
            ping_pong: window_bytes.is_none(),
            in_flight: 0,
            batch: Vec::new(),
            units: 0,
            last_progress: Instant::now(),
        };
        for index in 0..driver.connections.len() {
            driver.push_recv(index);
            driver.top_up(index);
        }
        Ok(driver)
    }

    fn on_recv(&mut self, index: usize, result: i32) -> io::Result<()> {
        if result <= 0 {
            return Err(match result {
                0 => io::Error::other("server closed a connection"),
                errno => io::Error::from_raw_os_error(-errno),
            });
        }
        let connection = &mut self.connections[index];
        let before = connection.received;
        connection.received += result as u64;
        self.units += if self.ping_pong {
            // A round trip ends when its message's last byte comes back,
            // whatever order the send's and the recv's completions arrive in.
            let message_bytes = self.message_bytes as u64;
            connection.received / message_bytes - before / message_bytes
        } else {
            result as u64
        };
        self.push_recv(index);
        self.top_up(index);
        Ok(())
    }

    fn on_send(&mut self, index: usize, result: i32) -> io::Result<()> {
        if result < 0 {
            return Err(io::Error::from_raw_os_error(-result));
        }
        let connection = &mut self.connections[index];
        let len = connection.sending.take().expect("a send was in flight");
        // A short send hands back the unsent tail: it was never queued.
        connection.queued -= u64::from(len) - result as u64;
        self.top_up(index);
        Ok(())
    }

    /// Sends as many whole messages as the window has room for. In
    /// ping-pong the window is one message, sent once the last is echoed.
    fn top_up(&mut self, index: usize) {
        let connection = &mut self.connections[index];
        if connection.sending.is_some() {
            return;
        }
        let outstanding = (connection.queued - connection.received) as usize;
        let room = (self.window_bytes - outstanding) / self.message_bytes * self.message_bytes;
        if room == 0 || (self.ping_pong && outstanding > 0) {
            return;
        }
        connection.sending = Some(room as u32);
        connection.queued += room as u64;
        let fd = types::Fd(connection.stream.as_raw_fd());
        let entry = opcode::Send::new(fd, self.payload.as_ptr(), room as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(((index as u64) << 1) | OP_SEND);
        self.push(entry);
    }

    fn push_recv(&mut self, index: usize) {
        let connection = &mut self.connections[index];
        let fd = types::Fd(connection.stream.as_raw_fd());
        let len = connection.buf.len() as u32;
        let entry = opcode::Recv::new(fd, connection.buf.as_mut_ptr(), len)
            .build()
            .user_data(((index as u64) << 1) | OP_RECV);
        self.push(entry);
    }

    /// Queues `entry`, submitting first when the submission queue is full.
    fn push(&mut self, entry: squeue::Entry) {
        self.in_flight += 1;
        loop {
            // SAFETY: the entry points into a connection's boxed recv buffer
            // or into `payload`; both live, unmoved, until every operation
            // is reaped (Drop drains the ring, or leaks them if it cannot).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(error) = self.ring.submit() {
                assert_eq!(error.raw_os_error(), Some(libc::EBUSY), "submit: {error}");
            }
        }
    }

    /// Submits what is queued, waits up to 100 ms for a completion, and
    /// copies the completions out, so handlers may push new entries.
    fn submit_and_reap(&mut self) -> io::Result<()> {
        let args = types::SubmitArgs::new().timespec(&WAIT_MAX);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(error) => return Err(error),
        }
        self.batch.clear();
        let completions = self
            .ring
            .completion()
            .map(|cqe| (cqe.user_data(), cqe.result()));
        self.batch.extend(completions);
        self.in_flight -= self.batch.len();
        Ok(())
    }
}

impl Driver for UringDriver {
    fn step(&mut self) -> io::Result<()> {
        self.submit_and_reap()?;
        if self.batch.is_empty() {
            if self.last_progress.elapsed() > STALL_LIMIT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "server stopped echoing",
                ));
            }
            return Ok(());
        }
        self.last_progress = Instant::now();
        let batch = std::mem::take(&mut self.batch);
        for &(user_data, result) in &batch {
            let index = (user_data >> 1) as usize;
            match user_data & 1 {
                OP_RECV => self.on_recv(index, result)?,
                _ => self.on_send(index, result)?,
            }
        }
        self.batch = batch;
        Ok(())
    }

    fn units(&self) -> u64 {
        self.units
    }
}

impl Drop for UringDriver {
    /// Shuts every socket down, so each recv and send completes, and reaps
    /// them all before the buffers are freed. Whatever the kernel has not
    /// returned after a second is leaked rather than freed.
    fn drop(&mut self) {
        for connection in &self.connections {
            let _ = connection.stream.shutdown(std::net::Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.in_flight > 0 && Instant::now() < deadline {
            if self.submit_and_reap().is_err() {
                break;
            }
        }
        if self.in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.connections));
            std::mem::forget(std::mem::take(&mut self.payload));
        }
    }
}
