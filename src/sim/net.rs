//! The simulated network's sockets: `socket`, `bind`/`listen` with a
//! backlog, `accept`, `connect`, `recv`, `send`, `poll` and `close`, with
//! the errnos Linux gives for each state. The connections under them, and
//! what travels between nodes, are in `tcp.rs`.
//!
//! Sockets live in a table with a free list, and each node indexes the
//! ports in use and its listeners by port, so that nothing scans every
//! socket ever made.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::iov::Memory;
use super::prng::Probability;
use super::tcp::{ConnId, SegmentKind};
use super::world::{EventKind, FdEntry, Parked, World};
use crate::completion::Operation;
use crate::sys::Fd;

pub(crate) enum SocketState {
    Fresh,
    Listening {
        queue: VecDeque<ConnId>,
        backlog: u32,
    },
    Connecting {
        connection: ConnId,
    },
    Connected {
        connection: ConnId,
        side: usize,
    },
    /// A connect failed (refused, timed out): Linux's `TCP_CLOSE` with both
    /// directions shut. `recv` gives 0 and `send` `EPIPE`, after `error`
    /// (a failure no connect was there to report); a new connect starts over.
    Dead {
        error: Option<i32>,
    },
    /// A UDP socket (`udp.rs`): always bound; `peer` once connected.
    Datagram {
        peer: Option<SocketAddr>,
        queue: VecDeque<super::udp::Datagram>,
        queued_bytes: usize,
    },
    /// The socket is closed, its slot free for reuse.
    Closed,
}

pub(crate) struct Socket {
    pub(crate) node: usize,
    pub(crate) v6: bool,
    /// A Unix-domain stream socket (`unix.rs`); its own name (a
    /// listener's, which its accepted sockets share), and the name it
    /// connected to.
    pub(crate) unix: bool,
    pub(crate) unix_name: Option<crate::addr::UnixAddr>,
    pub(crate) unix_peer: Option<crate::addr::UnixAddr>,
    pub(crate) local: Option<SocketAddr>,
    /// The port this socket holds in its node's index (a listener's, or a
    /// connecting socket's ephemeral port).
    bound_port: Option<u16>,
    pub(crate) state: SocketState,
    /// Operations waiting on this socket, oldest first.
    pub(crate) waiters: VecDeque<Parked>,
}

/// Why a socket's waiters are retried: what woke them, as Linux's wake-up
/// key says (`sk_data_ready`, `sk_write_space`, `sk_state_change`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Wake {
    /// Data, or a connection to accept, arrived.
    Readable,
    /// Room opened to send.
    Writable,
    /// The connection's state changed: FIN, RST, a handshake's end.
    State,
}

/// How a socket goes away.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CloseHow {
    /// `close(2)` or process exit: FIN, or a reset if unread data remains.
    Orderly,
    /// The machine crashed: peers see a reset, or nothing (`half_open`).
    Crash { half_open: bool },
}

/// The most a listen backlog can be: Linux's `somaxconn` (4096 since 5.4).
const BACKLOG_MAX: u32 = 4096;

const READABLE: u32 = libc::POLLIN as u32;
const WRITABLE: u32 = libc::POLLOUT as u32;
const ERROR: u32 = libc::POLLERR as u32;
const HANGUP: u32 = libc::POLLHUP as u32;
const READ_HANGUP: u32 = libc::POLLRDHUP as u32;
/// What a poll reports whether asked or not, as io_uring's poll does.
const UNMASKED: u32 = ERROR | HANGUP | READ_HANGUP;

impl World {
    /// `socket(2)`.
    pub(crate) fn open_socket(&mut self, node: usize, v6: bool) -> Result<Fd, i32> {
        self.descriptor_fault()?;
        Ok(self.open_socket_entry(node, v6))
    }

    fn open_socket_entry(&mut self, node: usize, v6: bool) -> Fd {
        let socket = self.socket_new(node, v6, None, SocketState::Fresh);
        self.nodes[node].alloc_fd(FdEntry::Socket(socket))
    }

    /// An injected `EMFILE` or `ENFILE` (`FaultOptions::descriptors`).
    pub(crate) fn descriptor_fault(&mut self) -> Result<(), i32> {
        if self.streams.faults.chance(self.options.faults.descriptors) {
            return Err(*self.streams.faults.pick(&[libc::EMFILE, libc::ENFILE]));
        }
        Ok(())
    }

    pub(crate) fn socket_new(
        &mut self,
        node: usize,
        v6: bool,
        local: Option<SocketAddr>,
        state: SocketState,
    ) -> usize {
        let fresh = Socket {
            node,
            v6,
            unix: false,
            unix_name: None,
            unix_peer: None,
            local,
            bound_port: None,
            state,
            waiters: VecDeque::new(),
        };
        match self.sockets_free.pop() {
            Some(index) => {
                let slot = &mut self.sockets[index];
                assert!(matches!(slot.state, SocketState::Closed));
                assert!(slot.waiters.is_empty());
                // The waiters' capacity is kept: reuse allocates nothing.
                let waiters = std::mem::take(&mut slot.waiters);
                *slot = Socket { waiters, ..fresh };
                index
            }
            None => {
                self.sockets.push(fresh);
                self.sockets.len() - 1
            }
        }
    }

    /// `socket(2)`, `bind(2)` and `listen(2)`.
    pub(crate) fn listen(
        &mut self,
        node: usize,
        address: SocketAddr,
        backlog: u32,
    ) -> Result<Fd, i32> {
        self.descriptor_fault()?;
        let ip = address.ip();
        if !self.nodes[node].owns(ip) {
            return Err(libc::EADDRNOTAVAIL);
        }
        let port = match address.port() {
            0 => self.ephemeral_port(node).ok_or(libc::EADDRINUSE)?,
            port => port,
        };
        if self.listener_on(node, ip, port).is_some() {
            return Err(libc::EADDRINUSE);
        }
        let state = SocketState::Listening {
            queue: VecDeque::new(),
            backlog: backlog.min(BACKLOG_MAX),
        };
        let local = SocketAddr::new(ip, port);
        let socket = self.socket_new(node, address.is_ipv6(), Some(local), state);
        self.port_bind(socket, port);
        let listeners = self.nodes[node].listeners.entry(port).or_default();
        listeners.push(socket);
        Ok(self.nodes[node].alloc_fd(FdEntry::Socket(socket)))
    }

    /// `bind(2)` of a fresh socket of `node` to `address`, before a
    /// connect: port 0 picks a free port. `EINVAL` if already bound or not
    /// fresh, `EAFNOSUPPORT` for the other family, `EADDRNOTAVAIL` for an
    /// address not the node's, `EADDRINUSE` for a port taken.
    pub(crate) fn bind(&mut self, node: usize, fd: Fd, address: SocketAddr) -> Result<(), i32> {
        let socket = self.socket_of(node, fd)?;
        let state = &self.sockets[socket];
        if !matches!(state.state, SocketState::Fresh) || state.bound_port.is_some() {
            return Err(libc::EINVAL);
        }
        if state.v6 != address.is_ipv6() {
            return Err(libc::EAFNOSUPPORT);
        }
        let ip = address.ip();
        if !self.nodes[node].owns(ip) {
            return Err(libc::EADDRNOTAVAIL);
        }
        let port = match address.port() {
            0 => self.ephemeral_port(node).ok_or(libc::EADDRINUSE)?,
            port if self.nodes[node].ports.contains_key(&port) => return Err(libc::EADDRINUSE),
            port => port,
        };
        self.port_bind(socket, port);
        self.sockets[socket].local = Some(SocketAddr::new(ip, port));
        Ok(())
    }

    /// A free TCP port on `node`, from the ephemeral range.
    fn ephemeral_port(&mut self, node: usize) -> Option<u16> {
        let node = &mut self.nodes[node];
        next_free_port(&mut node.next_port, |port| node.ports.contains_key(&port))
    }

    fn port_bind(&mut self, socket: usize, port: u16) {
        let state = &mut self.sockets[socket];
        assert!(state.bound_port.is_none());
        state.bound_port = Some(port);
        *self.nodes[state.node].ports.entry(port).or_insert(0) += 1;
    }

    /// Gives back the port a socket holds, if any: a closed socket's, or
    /// a failed connect's (Linux unhashes it on `TCP_CLOSE`).
    fn port_release(&mut self, socket: usize) {
        let state = &mut self.sockets[socket];
        let Some(port) = state.bound_port.take() else {
            return;
        };
        let node = &mut self.nodes[state.node];
        let users = node.ports.get_mut(&port).expect("a bound port is indexed");
        assert!(*users > 0);
        *users -= 1;
        if *users == 0 {
            node.ports.remove(&port);
        }
        if matches!(state.state, SocketState::Listening { .. }) {
            let listeners = node.listeners.get_mut(&port).expect("indexed on listen");
            listeners.retain(|&listener| listener != socket);
            if listeners.is_empty() {
                node.listeners.remove(&port);
            }
        }
    }

    /// The listening socket on `node` that takes connections to
    /// `ip:port`, if the node runs a process.
    pub(crate) fn listener(&self, node: usize, ip: IpAddr, port: u16) -> Option<usize> {
        self.nodes[node].process?;
        self.listener_on(node, ip, port)
    }

    fn listener_on(&self, node: usize, ip: IpAddr, port: u16) -> Option<usize> {
        let listeners = self.nodes[node].listeners.get(&port)?;
        listeners.iter().copied().find(|&socket| {
            let local = self.sockets[socket].local.expect("a listener is bound");
            local.ip().is_unspecified() || ip.is_unspecified() || local.ip() == ip
        })
    }

    pub(crate) fn socket_of(&self, node: usize, fd: Fd) -> Result<usize, i32> {
        match self.nodes[node].fd_entry(fd) {
            Some(FdEntry::Socket(socket)) => Ok(socket),
            Some(FdEntry::File { .. } | FdEntry::Directory(_)) => Err(libc::ENOTSOCK),
            None => Err(libc::EBADF),
        }
    }

    /// `setsockopt(2)`, accepted without effect: `ENOTSOCK`/`EBADF` for
    /// what is not a socket, and `EOPNOTSUPP` for a TCP option (`tcp`) on
    /// a Unix socket, as Linux says.
    pub(crate) fn accept_option(&self, node: usize, fd: Fd, tcp: bool) -> Result<(), i32> {
        let socket = &self.sockets[self.socket_of(node, fd)?];
        if tcp && socket.unix {
            return Err(libc::EOPNOTSUPP);
        }
        Ok(())
    }

    /// `getsockname(2)`.
    pub(crate) fn local_addr(&self, node: usize, fd: Fd) -> Result<SocketAddr, i32> {
        let socket = &self.sockets[self.socket_of(node, fd)?];
        if socket.unix {
            return Err(libc::EAFNOSUPPORT); // a Unix name is not an IP address
        }
        Ok(socket.local.unwrap_or_else(|| unspecified(socket.v6)))
    }

    /// `getpeername(2)`: `ENOTCONN` unless connected and not reset, as
    /// Linux refuses it in `TCP_CLOSE`.
    pub(crate) fn peer_addr(&self, node: usize, fd: Fd) -> Result<SocketAddr, i32> {
        let socket = &self.sockets[self.socket_of(node, fd)?];
        if socket.unix {
            return Err(libc::EAFNOSUPPORT);
        }
        if let SocketState::Datagram { peer, .. } = socket.state {
            return peer.ok_or(libc::ENOTCONN);
        }
        let SocketState::Connected { connection, side } = socket.state else {
            return Err(libc::ENOTCONN);
        };
        let conn = self
            .conn(connection)
            .expect("a connected socket's connection is live");
        if conn.sides[side].reset {
            return Err(libc::ENOTCONN);
        }
        Ok(conn.addrs[1 - side])
    }

    /// Starts an operation on a socket: it completes now, or parks.
    pub(crate) fn start_socket_operation(&mut self, socket: usize, parked: Parked) {
        if let Operation::Connect { addr, addr_len, .. } = parked.operation {
            // SAFETY: the address lives in the handler of this in-flight connect.
            if let Some(name) = unsafe { super::unix::unix_name_from_raw(addr, addr_len) } {
                return self.start_unix_connect(socket, parked, name);
            }
            // SAFETY: as above.
            let target = unsafe { crate::sys::socket_addr_from_raw(addr, addr_len) };
            let datagram = matches!(self.sockets[socket].state, SocketState::Datagram { .. });
            match target {
                Ok(target) if datagram => {
                    let result = self.connect_datagram(socket, target);
                    self.complete_parked(socket, parked, result);
                }
                Ok(target) => self.start_connect(socket, parked, target),
                Err(error) => {
                    let errno = error.raw_os_error().unwrap_or(libc::EINVAL);
                    self.complete_parked(socket, parked, -errno);
                }
            }
            return;
        }
        match self.try_socket_operation(socket, &parked) {
            Some(result) => self.complete_parked(socket, parked, result),
            None => self.sockets[socket].waiters.push_back(parked),
        }
    }

    pub(crate) fn complete_parked(&mut self, socket: usize, parked: Parked, result: i32) {
        let node = self.sockets[socket].node;
        if let Some(process) = self.nodes[node].process {
            self.complete(node, process, parked.user_data, result);
        }
    }

    /// One attempt at a socket operation: its result, or `None` to wait.
    fn try_socket_operation(&mut self, socket: usize, parked: &Parked) -> Option<i32> {
        if let SocketState::Datagram { .. } = self.sockets[socket].state {
            return self.try_datagram_operation(socket, parked);
        }
        let memory = Memory::of(&parked.operation);
        match parked.operation {
            Operation::Accept { .. } => self.try_accept(socket),
            Operation::Recv { .. } => self.try_recv(socket, memory?),
            Operation::RecvMsg { msg, .. } => {
                let result = self.try_recv(socket, memory?)?;
                // SAFETY: the header of this in-flight recv_msg. A stream
                // names no sender per message, as on Linux.
                unsafe { super::iov::finish_recvmsg(msg, None, false) };
                Some(result)
            }
            // A stream has no offsets: Linux refuses any but 0.
            Operation::Read { offset, .. }
            | Operation::Write { offset, .. }
            | Operation::Readv { offset, .. }
            | Operation::Writev { offset, .. }
                if offset != 0 =>
            {
                Some(-libc::ESPIPE)
            }
            Operation::Read { .. } | Operation::Readv { .. } => self.try_recv(socket, memory?),
            Operation::Send { .. }
            | Operation::Write { .. }
            | Operation::Writev { .. }
            | Operation::SendMsg { .. } => self.try_send(socket, memory?),
            Operation::Poll { events, .. } => {
                let ready = self.readiness(socket) & (events | UNMASKED);
                (ready != 0).then_some(ready as i32)
            }
            Operation::Fsync { .. } => Some(-libc::EINVAL),
            Operation::Shutdown { how, .. } => Some(self.shutdown_socket(socket, how)),
            // A connect waits for its handshake, never for readiness.
            Operation::Connect { .. } => None,
            // The loop emulates multishot operations with one-shot ones here.
            Operation::Nop
            | Operation::Close { .. }
            | Operation::Cancel { .. }
            | Operation::Timeout { .. }
            | Operation::AcceptMulti { .. }
            | Operation::RecvMulti { .. }
            | Operation::SendZc { .. }
            | Operation::Shot { .. } => Some(-libc::EINVAL),
            // The IO submits registered-buffer I/O here as plain reads and
            // writes: these never come.
            Operation::ReadFixed { .. } | Operation::WriteFixed { .. } => Some(-libc::EINVAL),
            // The world handles these before they reach a socket.
            Operation::OpenAt { .. }
            | Operation::Statx { .. }
            | Operation::Fallocate { .. }
            | Operation::Ftruncate { .. }
            | Operation::RenameAt { .. }
            | Operation::UnlinkAt { .. }
            | Operation::MkDirAt { .. } => Some(-libc::EINVAL),
        }
    }

    fn try_accept(&mut self, socket: usize) -> Option<i32> {
        let SocketState::Listening { queue, .. } = &self.sockets[socket].state else {
            return Some(-libc::EINVAL);
        };
        if queue.is_empty() {
            return None;
        }
        // Out of descriptors: the connection stays queued, as the kernel
        // takes an fd before it dequeues.
        if let Err(errno) = self.descriptor_fault() {
            return Some(-errno);
        }
        let SocketState::Listening { queue, .. } = &mut self.sockets[socket].state else {
            unreachable!("checked above");
        };
        let connection = queue.pop_front().expect("checked above");
        // The listener has room again: a SYN waiting for it may get in.
        if self.streams.faults.chance(self.options.faults.accept) {
            let conn = self
                .conn_mut(connection)
                .expect("a queued connection is live");
            conn.sides[1].closed = true;
            self.reset_and_forget(connection, 1);
            self.connection_free_if_done(connection);
            return Some(-libc::ECONNABORTED);
        }
        let node = self.sockets[socket].node;
        let v6 = self.sockets[socket].v6;
        let local = self.conn(connection).expect("queued").addrs[1];
        let state = SocketState::Connected {
            connection,
            side: 1,
        };
        let accepted = self.socket_new(node, v6, Some(local), state);
        self.sockets[accepted].unix = self.sockets[socket].unix;
        self.sockets[accepted].unix_name = self.sockets[socket].unix_name;
        let conn = self.conn_mut(connection).expect("queued");
        assert!(conn.sockets[1].is_none());
        conn.sockets[1] = Some(accepted);
        Some(self.nodes[node].alloc_fd(FdEntry::Socket(accepted)))
    }

    fn try_recv(&mut self, socket: usize, memory: Memory) -> Option<i32> {
        let (connection, side) = match &mut self.sockets[socket].state {
            SocketState::Connected { connection, side } => (*connection, *side),
            SocketState::Connecting { .. } => return None,
            SocketState::Dead { error } => return Some(error.take().map_or(0, |errno| -errno)),
            _ => return Some(-libc::ENOTCONN),
        };
        if self.streams.faults.chance(self.options.faults.recv) {
            // The network resets the connection: both ends learn, and what
            // this end holds stays readable before the error, as on Linux.
            self.abort_side(connection, side, Some(libc::ECONNRESET));
            self.reset_send(connection, side);
        }
        let conn = self
            .conn_mut(connection)
            .expect("a connected socket's connection is live");
        let arrived = conn.directions[1 - side].arrived;
        if arrived == 0 {
            // Linux checks for the FIN (`SOCK_DONE`), and for its own
            // `shutdown(SHUT_RD)`, before the error.
            if conn.directions[1 - side].fin_arrived || conn.sides[side].read_shut {
                return Some(0);
            }
            if let Some(errno) = conn.sides[side].error.take() {
                return Some(-errno);
            }
            return conn.sides[side].reset.then_some(0);
        }
        let mut count = arrived.min(memory.len());
        let split = self.options.network.recv_split_probability;
        if count > 1 && self.streams.network.chance(split) {
            count = self.streams.network.range_inclusive(1, count as u64) as usize;
        }
        let conn = self.conn_mut(connection).expect("checked above");
        let incoming = &mut conn.directions[1 - side];
        let (front, back) = incoming.bytes.as_slices();
        let from_front = front.len().min(count);
        // SAFETY: a receive's memory (Memory's invariant: in flight, kept
        // allocated and unmoved until reaped), writable for
        // `memory.len() >= count` bytes; nothing else references it now.
        unsafe { memory.write_at(0, &front[..from_front]) };
        // SAFETY: as above, for the bytes after the first `from_front`.
        unsafe { memory.write_at(from_front, &back[..count - from_front]) };
        incoming.bytes.drain(..count);
        incoming.arrived -= count;
        // Room opened for the sender.
        if let Some(peer) = conn.sockets[1 - side] {
            self.to_wake.push((peer, Wake::Writable));
        }
        Some(count as i32)
    }

    fn try_send(&mut self, socket: usize, memory: Memory) -> Option<i32> {
        let (connection, side) = match &mut self.sockets[socket].state {
            SocketState::Connected { connection, side } => (*connection, *side),
            SocketState::Connecting { .. } => return None,
            SocketState::Dead { error } => {
                return Some(-error.take().unwrap_or(libc::EPIPE));
            }
            // Linux's `sk_stream_wait_connect`: not connecting, not connected.
            _ => return Some(-libc::EPIPE),
        };
        let buffer_bytes = self.options.network.buffer_bytes as usize;
        let conn = self
            .conn_mut(connection)
            .expect("a connected socket's connection is live");
        if let Some(errno) = conn.sides[side].error.take() {
            return Some(-errno);
        }
        // After a reset, or its own `shutdown(SHUT_WR)` (its FIN is out).
        if conn.sides[side].reset || conn.directions[side].fin_sent {
            return Some(-libc::EPIPE);
        }
        let room = buffer_bytes.saturating_sub(conn.directions[side].bytes.len());
        if room == 0 {
            return None;
        }
        if let Some(result) = self.send_fault(connection, side) {
            return Some(result);
        }
        let count = room.min(memory.len());
        let conn = self.conn_mut(connection).expect("checked above");
        // SAFETY: a send's memory (Memory's invariant), initialized for
        // its whole length, of which `count` bytes are taken.
        unsafe { memory.gather(count, &mut conn.directions[side].bytes) };
        self.send_segment(connection, side, count, SegmentKind::Data);
        Some(count as i32)
    }

    /// Injected send errors: a reset (`ECONNRESET` or `EPIPE`, for both
    /// ends), or a transient `ENOMEM`/`ENOBUFS` that sends nothing.
    fn send_fault(&mut self, connection: ConnId, side: usize) -> Option<i32> {
        let faults = &mut self.streams.faults;
        if faults.chance(self.options.faults.send_buffers) {
            return Some(-*faults.pick(&[libc::ENOMEM, libc::ENOBUFS]));
        }
        if !faults.chance(self.options.faults.send) {
            return None;
        }
        let errno = *faults.pick(&[libc::ECONNRESET, libc::EPIPE]);
        self.abort_side(connection, side, None);
        self.reset_send(connection, side);
        Some(-errno)
    }

    /// The poll bits a socket would report now, as Linux's `tcp_poll`.
    fn readiness(&self, socket: usize) -> u32 {
        match &self.sockets[socket].state {
            // `TCP_CLOSE`, nothing shut: writable, hung up.
            SocketState::Fresh => WRITABLE | HANGUP,
            SocketState::Dead { error } => {
                let error = if error.is_some() { ERROR } else { 0 };
                READABLE | WRITABLE | HANGUP | READ_HANGUP | error
            }
            SocketState::Listening { queue, .. } => {
                if queue.is_empty() {
                    0
                } else {
                    READABLE
                }
            }
            SocketState::Connecting { .. } | SocketState::Closed => 0,
            SocketState::Datagram { .. } => self.datagram_readiness(socket),
            SocketState::Connected { connection, side } => {
                self.connected_readiness(*connection, *side)
            }
        }
    }

    fn connected_readiness(&self, connection: ConnId, side: usize) -> u32 {
        let conn = self
            .conn(connection)
            .expect("a connected socket's connection is live");
        let incoming = &conn.directions[1 - side];
        let outgoing = &conn.directions[side];
        let end = conn.sides[side];
        let mut ready = 0;
        if incoming.arrived > 0 || incoming.fin_arrived || end.reset || end.read_shut {
            ready |= READABLE;
        }
        if incoming.fin_arrived || end.reset || end.read_shut {
            ready |= READ_HANGUP;
        }
        if outgoing.fin_sent {
            // `SEND_SHUTDOWN`: a send would not block (it fails with EPIPE).
            ready |= WRITABLE;
        }
        if outgoing.fin_sent && end.read_shut {
            ready |= HANGUP;
        }
        if end.reset {
            ready |= HANGUP | WRITABLE;
        } else if (outgoing.bytes.len() as u64) < self.options.network.buffer_bytes {
            ready |= WRITABLE;
        }
        if end.error.is_some() {
            ready |= ERROR;
        }
        ready
    }

    /// Retries the waiters of every socket whose state changed.
    pub(crate) fn wake_sockets(&mut self) {
        // Two buffers swapped back and forth, both kept with their
        // capacity: waking allocates nothing in steady state (a fresh
        // `Vec` per batch made each send and receive allocate).
        let mut batch = std::mem::take(&mut self.wake_batch);
        while !self.to_wake.is_empty() {
            std::mem::swap(&mut batch, &mut self.to_wake);
            for (socket, wake) in batch.drain(..) {
                self.retry_waiters(socket, wake);
            }
        }
        self.wake_batch = batch;
    }

    /// Retries what waits on `socket` after `wake`, as io_uring's wake-up
    /// runs them. Linux wakes every waiter of a socket at once. Data or room
    /// arriving wakes with a key (`POLLIN`, `POLLOUT`): a poll that asked for
    /// it completes with the key alone, whatever a recv woken with it then
    /// takes. A change of state (FIN, RST, a connect finishing) wakes with
    /// none: each poll looks at the socket at its turn, and the most
    /// recently parked waiter goes first (the kernel adds a poll at the head
    /// of the wait queue), so a recv woken before a poll may have taken the
    /// error it would have seen. Accepts wait exclusively, at the tail: they
    /// come last, oldest first.
    fn retry_waiters(&mut self, socket: usize, wake: Wake) {
        let key = match wake {
            Wake::Readable => READABLE,
            Wake::Writable => WRITABLE,
            Wake::State => 0,
        };
        if key != 0 {
            self.complete_keyed_polls(socket, key);
        }
        let mut index = self.sockets[socket].waiters.len();
        while index > 0 {
            index -= 1;
            let parked = self.sockets[socket].waiters[index];
            let (accept, poll) = match parked.operation {
                Operation::Accept { .. } => (true, false),
                Operation::Poll { .. } => (false, true),
                _ => (false, false),
            };
            // A keyed wake concerns only the polls that asked for its key,
            // done above; accepts come after.
            let skip = accept || (poll && key != 0);
            if !skip {
                self.retry_waiter(socket, index, parked);
            }
        }
        let mut index = 0;
        while index < self.sockets[socket].waiters.len() {
            let parked = self.sockets[socket].waiters[index];
            let accept = matches!(parked.operation, Operation::Accept { .. });
            if !(accept && self.retry_waiter(socket, index, parked)) {
                index += 1;
            }
        }
    }

    /// The polls that asked for `key` complete with it.
    fn complete_keyed_polls(&mut self, socket: usize, key: u32) {
        let mut index = self.sockets[socket].waiters.len();
        while index > 0 {
            index -= 1;
            let parked = self.sockets[socket].waiters[index];
            let Operation::Poll { events, .. } = parked.operation else {
                continue;
            };
            if events & key != 0 {
                let removed = self.sockets[socket].waiters.remove(index);
                assert!(removed.is_some_and(|removed| removed.user_data == parked.user_data));
                self.complete_parked(socket, parked, key as i32);
            }
        }
    }

    /// Retries the waiter at `index`; returns whether it completed (and
    /// so left the queue).
    fn retry_waiter(&mut self, socket: usize, index: usize, parked: Parked) -> bool {
        let Some(result) = self.try_socket_operation(socket, &parked) else {
            return false;
        };
        let removed = self.sockets[socket].waiters.remove(index);
        assert!(removed.is_some_and(|removed| removed.user_data == parked.user_data));
        self.complete_parked(socket, parked, result);
        true
    }

    fn start_connect(&mut self, socket: usize, parked: Parked, target: SocketAddr) {
        let refuse = match self.sockets[socket].state {
            SocketState::Fresh | SocketState::Dead { .. } => None,
            SocketState::Connected { .. } | SocketState::Listening { .. } => Some(libc::EISCONN),
            SocketState::Connecting { .. } => Some(libc::EALREADY),
            SocketState::Closed | SocketState::Datagram { .. } => Some(libc::EBADF),
        };
        let refuse = refuse.or_else(|| {
            let socket = &self.sockets[socket];
            (socket.unix || socket.v6 != target.is_ipv6()).then_some(libc::EAFNOSUPPORT)
        });
        if let Some(errno) = refuse {
            return self.complete_parked(socket, parked, -errno);
        }
        let node = self.sockets[socket].node;
        let Some(peer) = self.route(node, target.ip()) else {
            return self.complete_parked(socket, parked, -libc::ENETUNREACH);
        };
        let local_ip = match self.sockets[socket].local {
            // Bound to a specific address before the connect.
            Some(bound) if !bound.ip().is_unspecified() => bound.ip(),
            _ if target.ip().is_loopback() || target.ip().is_unspecified() => target.ip(),
            _ => self.nodes[node].ip,
        };
        let port = match self.sockets[socket].bound_port {
            Some(port) => port,
            None => {
                let Some(port) = self.ephemeral_port(node) else {
                    return self.complete_parked(socket, parked, -libc::EADDRNOTAVAIL);
                };
                self.port_bind(socket, port);
                port
            }
        };
        let local = SocketAddr::new(local_ip, port);
        let connection = self.connection_open([node, peer], [local, target], socket);
        let socket_state = &mut self.sockets[socket];
        socket_state.local = Some(local);
        socket_state.state = SocketState::Connecting { connection };
        socket_state.waiters.push_back(parked);
        if self.streams.faults.chance(self.options.faults.connect) {
            return self.connect_fault(connection, node, peer);
        }
        self.syn_send(connection);
    }

    /// An injected connect failure: refused after a round trip, or every
    /// SYN lost until the retries run out.
    fn connect_fault(&mut self, connection: ConnId, node: usize, peer: usize) {
        let (errno, delay_ns) = if self.streams.faults.chance(Probability::percent(50)) {
            let round_trip_ns = self.latency_sample(node, peer) + self.latency_sample(peer, node);
            (libc::ECONNREFUSED, round_trip_ns)
        } else {
            (libc::ETIMEDOUT, self.options.network.syn_timeout_ns())
        };
        let kind = EventKind::ConnectFail { connection, errno };
        self.schedule(self.now_ns + delay_ns, kind);
    }

    /// The handshake of `socket`'s connection finished: it is connected,
    /// and its connect (if not cancelled) succeeds.
    pub(crate) fn connect_established(&mut self, socket: usize, connection: ConnId) {
        let state = &mut self.sockets[socket].state;
        assert!(matches!(state, SocketState::Connecting { connection: c } if *c == connection));
        *state = SocketState::Connected {
            connection,
            side: 0,
        };
        if let Some(parked) = self.take_parked_connect(socket) {
            self.complete_parked(socket, parked, 0);
        }
        self.to_wake.push((socket, Wake::State));
    }

    /// The handshake of `socket`'s connection failed with `errno`: its
    /// connect reports it, or, if it was cancelled, the socket keeps it
    /// for its next operation, as Linux keeps `sk_err`.
    pub(crate) fn connect_failed(&mut self, socket: usize, errno: i32) {
        assert!(matches!(
            self.sockets[socket].state,
            SocketState::Connecting { .. }
        ));
        self.port_release(socket);
        let parked = self.take_parked_connect(socket);
        let error = if parked.is_some() { None } else { Some(errno) };
        self.sockets[socket].state = SocketState::Dead { error };
        if let Some(parked) = parked {
            self.complete_parked(socket, parked, -errno);
        }
        self.to_wake.push((socket, Wake::State));
    }

    fn take_parked_connect(&mut self, socket: usize) -> Option<Parked> {
        let waiters = &mut self.sockets[socket].waiters;
        let index = waiters
            .iter()
            .position(|parked| matches!(parked.operation, Operation::Connect { .. }))?;
        waiters.remove(index)
    }

    /// The node that answers for `ip`, seen from `node`.
    pub(crate) fn route(&self, node: usize, ip: IpAddr) -> Option<usize> {
        if ip.is_loopback() || ip.is_unspecified() {
            return Some(node);
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.nodes.iter().position(|candidate| candidate.ip == ip)
    }

    /// `shutdown(2)` of a socket: `SHUT_WR` sends a FIN behind the data
    /// (later sends get `EPIPE`), `SHUT_RD` makes receives give 0 once what
    /// arrived is read. Only a connected socket can be shut down here
    /// (`ENOTCONN` otherwise; Linux also accepts a listener or a pending
    /// connect, a difference listed in docs/simulation.md).
    pub(crate) fn shutdown_socket(&mut self, socket: usize, how: i32) -> i32 {
        let SocketState::Connected { connection, side } = self.sockets[socket].state else {
            return -libc::ENOTCONN;
        };
        let conn = self
            .conn_mut(connection)
            .expect("a connected socket's connection is live");
        if conn.sides[side].reset {
            return -libc::ENOTCONN;
        }
        if how == libc::SHUT_RD || how == libc::SHUT_RDWR {
            conn.sides[side].read_shut = true;
        }
        let write = how == libc::SHUT_WR || how == libc::SHUT_RDWR;
        if write && !conn.directions[side].fin_sent {
            self.fin_send(connection, side);
        }
        // Receives waiting on it may now return 0; sends may now fail.
        self.to_wake.push((socket, Wake::State));
        0
    }

    /// Closes a socket and frees its slot; returns its waiters, for the
    /// caller to cancel or forget.
    pub(crate) fn close_socket(&mut self, socket: usize, how: CloseHow) -> VecDeque<Parked> {
        let waiters = std::mem::take(&mut self.sockets[socket].waiters);
        self.port_release(socket);
        self.unix_name_release(socket);
        let state = std::mem::replace(&mut self.sockets[socket].state, SocketState::Closed);
        match state {
            SocketState::Fresh | SocketState::Dead { .. } => {}
            SocketState::Closed => unreachable!("a socket is closed once"),
            SocketState::Listening { queue, .. } => {
                for connection in queue {
                    self.close_end(connection, 1, how);
                }
            }
            SocketState::Connecting { connection } => {
                // The pending handshake event sees the client gone.
                let conn = self.conn_mut(connection).expect("a handshake in progress");
                conn.sides[0].closed = true;
                conn.sockets[0] = None;
            }
            SocketState::Connected { connection, side } => self.close_end(connection, side, how),
            SocketState::Datagram { queue, .. } => self.close_datagram(socket, queue),
        }
        self.sockets_free.push(socket);
        waiters
    }

    /// The socket at `side` of `connection` goes away: a FIN if it read
    /// everything, a RST if data it never read remains (Linux's
    /// `tcp_close`), or what a crash leaves.
    fn close_end(&mut self, connection: ConnId, side: usize, how: CloseHow) {
        if let CloseHow::Crash { half_open } = how {
            return self.side_crashed(connection, side, half_open);
        }
        let conn = self
            .conn_mut(connection)
            .expect("an open end's connection is live");
        conn.sides[side].closed = true;
        conn.sockets[side] = None;
        let unread = conn.directions[1 - side].arrived > 0;
        if conn.sides[side].reset {
            conn.directions[1 - side].drop_all();
        } else if unread {
            self.reset_and_forget(connection, side);
        } else if !conn.directions[side].fin_sent {
            // Data still in flight to it will draw a RST when it arrives.
            self.fin_send(connection, side);
        }
        self.connection_free_if_done(connection);
    }
}

/// The next port of the ephemeral range (32,768 to 60,999, Linux's
/// `ip_local_port_range`) from `next` on that `taken` does not hold,
/// moving `next` past it; `None` if every one is taken.
pub(crate) fn next_free_port(next: &mut u16, taken: impl Fn(u16) -> bool) -> Option<u16> {
    for _ in 0..28_232 {
        let port = *next;
        *next = if port >= 60_999 { 32_768 } else { port + 1 };
        if !taken(port) {
            return Some(port);
        }
    }
    None
}

fn unspecified(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    }
}
