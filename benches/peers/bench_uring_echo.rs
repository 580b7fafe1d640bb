//! The bare io-uring peer in `cargo bench --bench compare`: a TCP echo
//! server written straight on the `io-uring` crate, as an expert would, to
//! show the floor under ringio's overhead.
//!
//! ```text
//! cargo run --release -p ringio-bench --example bench_uring_echo -- --addr 127.0.0.1:0
//! ```
//!
//! One ring, one thread. Each connection owns a 16 KiB buffer (the size
//! ringio's echo_server uses) and runs a recv → send (→ send the rest) → recv
//! chain. Submission is batched: every completion in a batch pushes its
//! follow-up entry, and one `io_uring_enter` both submits them all and waits
//! for the next completions. `user_data` encodes the connection index and the
//! operation. The ring is set up like ringio's (same entries, CQ four times
//! the SQ, no SQPOLL), so the comparison isolates user-space overhead.
//! The first stdout line is `listening on ADDR (backend: bare io_uring)`.
#![allow(unsafe_code)]

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};
use slab::Slab;

const BUFFER_BYTES: usize = 16 * 1024;
const ENTRIES: u32 = 256;
const OP_ACCEPT: u64 = 0;
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CLOSE: u64 = 3;
const OP_ACCEPT_RETRY: u64 = 4;
/// Back-off after an accept error such as EMFILE, as in ringio's server.
static ACCEPT_RETRY: types::Timespec = types::Timespec::new().nsec(50_000_000);
/// How long one wait may last, so `--max-seconds` is noticed.
static WAIT_MAX: types::Timespec = types::Timespec::new().sec(1);

/// One accepted client and the bytes it sent that are not yet echoed.
struct Connection {
    fd: RawFd,
    buf: Box<[u8]>,
    /// Bytes received by the last recv.
    len: usize,
    /// Bytes of them already sent back.
    sent: usize,
}

struct Server {
    ring: IoUring,
    listener: RawFd,
    /// Open connections by index (a slab reuses the index of a closed one).
    connections: Slab<Connection>,
    /// Buffers of closed connections, reused by new ones.
    spare_buffers: Vec<Box<[u8]>>,
}

fn main() -> ExitCode {
    let (addr, max_seconds) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("bench_uring_echo: {message}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    match serve(addr, max_seconds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench_uring_echo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--addr HOST:PORT` (default 127.0.0.1:7880) and `--max-seconds N`.
fn parse_args() -> Result<(SocketAddr, Option<u64>), String> {
    let mut addr: SocketAddr = "127.0.0.1:7880".parse().expect("valid default");
    let mut max_seconds = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => {
                addr = value
                    .parse()
                    .map_err(|_| format!("bad address {value:?}"))?
            }
            "--max-seconds" => {
                max_seconds = Some(value.parse().map_err(|_| format!("bad number {value:?}"))?)
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok((addr, max_seconds))
}

fn serve(addr: SocketAddr, max_seconds: Option<u64>) -> io::Result<()> {
    // std's listener uses a backlog of 128; raise it to ringio's 4096.
    let listener = TcpListener::bind(addr)?;
    // SAFETY: plain syscall on a listening socket we own.
    if unsafe { libc::listen(listener.as_raw_fd(), 4096) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let line = format!(
        "listening on {} (backend: bare io_uring)\n",
        listener.local_addr()?
    );
    let mut stdout = io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()?;
    drop(stdout);

    let ring = IoUring::builder()
        .setup_cqsize(ENTRIES * 4)
        .build(ENTRIES)?;
    let mut server = Server {
        ring,
        listener: listener.as_raw_fd(),
        connections: Slab::new(),
        spare_buffers: Vec::new(),
    };
    let deadline = max_seconds.map(|seconds| Instant::now() + Duration::from_secs(seconds));
    server.push_accept();
    server.run(deadline)
}

impl Server {
    /// Submits what is queued and waits for at least one completion, then
    /// handles every completion of the batch, until the deadline.
    fn run(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let mut batch: Vec<(u64, i32)> = Vec::with_capacity(ENTRIES as usize * 4);
        loop {
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
            batch.clear();
            batch.extend(
                self.ring
                    .completion()
                    .map(|cqe| (cqe.user_data(), cqe.result())),
            );
            for &(user_data, result) in &batch {
                self.complete(user_data, result);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(());
            }
        }
    }

    fn complete(&mut self, user_data: u64, result: i32) {
        let index = (user_data >> 8) as usize;
        match user_data & 0xff {
            OP_ACCEPT => self.on_accept(result),
            OP_ACCEPT_RETRY => self.push_accept(),
            OP_RECV => self.on_recv(index, result),
            OP_SEND => self.on_send(index, result),
            OP_CLOSE => self.free(index),
            op => unreachable!("unknown op {op}"),
        }
    }

    fn on_accept(&mut self, result: i32) {
        if result < 0 {
            eprintln!(
                "bench_uring_echo: accept: {}; retrying shortly",
                errno(result)
            );
            let entry = opcode::Timeout::new(&ACCEPT_RETRY).build();
            self.push(entry.user_data(OP_ACCEPT_RETRY));
            return;
        }
        self.push_accept();
        let fd = result;
        set_nodelay(fd);
        let buf = self
            .spare_buffers
            .pop()
            .unwrap_or_else(|| vec![0u8; BUFFER_BYTES].into_boxed_slice());
        let connection = Connection {
            fd,
            buf,
            len: 0,
            sent: 0,
        };
        let index = self.connections.insert(connection);
        self.push_recv(index);
    }

    fn on_recv(&mut self, index: usize, result: i32) {
        if result <= 0 {
            return self.push_close(index);
        }
        let connection = self.connections.get_mut(index).expect("open connection");
        connection.len = result as usize;
        connection.sent = 0;
        self.push_send(index);
    }

    fn on_send(&mut self, index: usize, result: i32) {
        if result <= 0 {
            return self.push_close(index);
        }
        let connection = self.connections.get_mut(index).expect("open connection");
        connection.sent += result as usize;
        if connection.sent < connection.len {
            self.push_send(index);
        } else {
            self.push_recv(index);
        }
    }

    fn push_accept(&mut self) {
        let entry = opcode::Accept::new(
            types::Fd(self.listener),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .flags(libc::SOCK_CLOEXEC)
        .build();
        self.push(entry.user_data(OP_ACCEPT));
    }

    fn push_recv(&mut self, index: usize) {
        let connection = self.connections.get_mut(index).expect("open connection");
        let entry = opcode::Recv::new(
            types::Fd(connection.fd),
            connection.buf.as_mut_ptr(),
            BUFFER_BYTES as u32,
        )
        .build();
        self.push(entry.user_data(user_data(index, OP_RECV)));
    }

    fn push_send(&mut self, index: usize) {
        let connection = self.connections.get(index).expect("open connection");
        let pending = &connection.buf[connection.sent..connection.len];
        let entry = opcode::Send::new(
            types::Fd(connection.fd),
            pending.as_ptr(),
            pending.len() as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build();
        self.push(entry.user_data(user_data(index, OP_SEND)));
    }

    fn push_close(&mut self, index: usize) {
        let connection = self.connections.get(index).expect("open connection");
        let entry = opcode::Close::new(types::Fd(connection.fd)).build();
        self.push(entry.user_data(user_data(index, OP_CLOSE)));
    }

    /// Frees a closed connection's slot and keeps its buffer for reuse.
    fn free(&mut self, index: usize) {
        let connection = self
            .connections
            .try_remove(index)
            .expect("closing an open connection");
        self.spare_buffers.push(connection.buf);
    }

    /// Queues `entry`; when the submission queue is full, submits first.
    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every pointer in an entry is into a connection's boxed
            // buffer or a static timespec. A connection, and its buffer, is
            // freed only when its close completes, which is after the
            // completion of its one recv or send in flight.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(error) = self.ring.submit() {
                assert_eq!(error.raw_os_error(), Some(libc::EBUSY), "submit: {error}");
            }
        }
    }
}

fn user_data(index: usize, op: u64) -> u64 {
    ((index as u64) << 8) | op
}

fn errno(result: i32) -> io::Error {
    io::Error::from_raw_os_error(-result)
}

/// Echo is request-response: small replies must not wait for Nagle.
fn set_nodelay(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call and its size is passed alongside it.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        eprintln!(
            "bench_uring_echo: TCP_NODELAY: {}",
            io::Error::last_os_error()
        );
    }
}

/// Thousands of clients need thousands of fds; raise the soft limit to the
/// hard one, as ringio's echo_server does.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        eprintln!(
            "bench_uring_echo: setrlimit: {}",
            io::Error::last_os_error()
        );
    }
}
