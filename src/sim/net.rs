//! The simulated network: listeners, connections as two byte streams with
//! latency and bounded buffers, orderly close and resets, partitions and
//! clogs.
//!
//! Each direction of a connection holds its bytes in one `VecDeque`: a
//! prefix that has arrived (readable), then bytes still in flight, in
//! segments that arrive in order. `send` accepts what fits in
//! `buffer_bytes` minus what the direction holds, so a peer that does not
//! read makes sends come back short, then wait.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::prng::Probability;
use super::world::{EventKind, FdEntry, Parked, World};
use crate::completion::Operation;
use crate::sys::Fd;

pub(crate) enum SocketState {
    Fresh,
    Listening { queue: VecDeque<usize> },
    Connecting { connection: usize },
    Connected { connection: usize, side: usize },
    Closed,
}

pub(crate) struct Socket {
    pub(crate) node: usize,
    pub(crate) v6: bool,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) state: SocketState,
    /// Operations waiting on this socket, oldest first.
    pub(crate) waiters: VecDeque<Parked>,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    /// `None` while a partition holds it back.
    arrival_ns: Option<u64>,
    len: usize,
    fin: bool,
}

#[derive(Default)]
struct Direction {
    /// Arrived-and-unread bytes, then bytes in flight.
    bytes: VecDeque<u8>,
    arrived: usize,
    segments: VecDeque<Segment>,
    fin_arrived: bool,
    fin_sent: bool,
    last_arrival_ns: u64,
}

impl Direction {
    fn stalled(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| segment.arrival_ns.is_none())
    }
}

/// A TCP connection. Side 0 connected, side 1 was accepted; direction `d`
/// carries bytes from side `d` to side `1 - d`.
pub(crate) struct Connection {
    nodes: [usize; 2],
    addrs: [SocketAddr; 2],
    sockets: [Option<usize>; 2],
    directions: [Direction; 2],
    /// An error each side has yet to report (once).
    errors: [Option<i32>; 2],
    /// Reset: after its error is reported, recv gives 0 and send `EPIPE`.
    reset: bool,
    /// The side's socket is closed: bytes arriving there draw a reset.
    closed: [bool; 2],
}

/// How a socket goes away.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CloseHow {
    /// `close(2)` or process exit: FIN, or a reset if unread data remains.
    Orderly,
    /// The machine crashed: peers see a reset.
    Crash,
}

const READABLE: u32 = libc::POLLIN as u32;
const WRITABLE: u32 = libc::POLLOUT as u32;
const ERROR: u32 = libc::POLLERR as u32;
const HANGUP: u32 = libc::POLLHUP as u32;

impl World {
    /// `socket(2)`.
    pub(crate) fn open_socket(&mut self, node: usize, v6: bool) -> Fd {
        let socket = self.sockets.len();
        self.sockets.push(Socket {
            node,
            v6,
            local: None,
            state: SocketState::Fresh,
            waiters: VecDeque::new(),
        });
        self.nodes[node].alloc_fd(FdEntry::Socket(socket))
    }

    /// `socket(2)`, `bind(2)` and `listen(2)`.
    pub(crate) fn listen(&mut self, node: usize, address: SocketAddr) -> Result<Fd, i32> {
        let ip = address.ip();
        if !ip.is_unspecified() && !ip.is_loopback() && ip != self.nodes[node].ip {
            return Err(libc::EADDRNOTAVAIL);
        }
        let port = match address.port() {
            0 => self.ephemeral_port(node).ok_or(libc::EADDRINUSE)?,
            port => port,
        };
        if self.listener(node, ip, port).is_some() {
            return Err(libc::EADDRINUSE);
        }
        let fd = self.open_socket(node, address.is_ipv6());
        let Some(FdEntry::Socket(socket)) = self.nodes[node].fd_entry(fd) else {
            unreachable!("just opened");
        };
        let socket = &mut self.sockets[socket];
        socket.local = Some(SocketAddr::new(ip, port));
        socket.state = SocketState::Listening {
            queue: VecDeque::new(),
        };
        Ok(fd)
    }

    /// A free port on `node`, from the ephemeral range.
    fn ephemeral_port(&mut self, node: usize) -> Option<u16> {
        for _ in 0..28_232 {
            let port = self.nodes[node].next_port;
            self.nodes[node].next_port = if port >= 60_999 { 32_768 } else { port + 1 };
            if !self.port_in_use(node, port) {
                return Some(port);
            }
        }
        None
    }

    fn port_in_use(&self, node: usize, port: u16) -> bool {
        self.sockets.iter().any(|socket| {
            socket.node == node
                && !matches!(socket.state, SocketState::Closed)
                && socket.local.is_some_and(|local| local.port() == port)
        })
    }

    /// The listening socket on `node` that takes connections to `ip:port`.
    fn listener(&self, node: usize, ip: IpAddr, port: u16) -> Option<usize> {
        self.sockets.iter().position(|socket| {
            socket.node == node
                && matches!(socket.state, SocketState::Listening { .. })
                && socket.local.is_some_and(|local| {
                    local.port() == port
                        && (local.ip().is_unspecified() || ip.is_unspecified() || local.ip() == ip)
                })
        })
    }

    pub(crate) fn socket_of(&self, node: usize, fd: Fd) -> Result<usize, i32> {
        match self.nodes[node].fd_entry(fd) {
            Some(FdEntry::Socket(socket)) => Ok(socket),
            Some(FdEntry::File { .. } | FdEntry::Directory) => Err(libc::ENOTSOCK),
            None => Err(libc::EBADF),
        }
    }

    /// `getsockname(2)`.
    pub(crate) fn local_addr(&self, node: usize, fd: Fd) -> Result<SocketAddr, i32> {
        let socket = &self.sockets[self.socket_of(node, fd)?];
        Ok(socket.local.unwrap_or_else(|| unspecified(socket.v6)))
    }

    /// `getpeername(2)`.
    pub(crate) fn peer_addr(&self, node: usize, fd: Fd) -> Result<SocketAddr, i32> {
        let socket = &self.sockets[self.socket_of(node, fd)?];
        match socket.state {
            SocketState::Connected { connection, side } => {
                Ok(self.connections[connection].addrs[1 - side])
            }
            _ => Err(libc::ENOTCONN),
        }
    }

    /// Starts an operation on a socket: it completes now, or parks.
    pub(crate) fn start_socket_operation(&mut self, socket: usize, parked: Parked) {
        if let Operation::Connect { addr, addr_len, .. } = parked.operation {
            // SAFETY: the address lives in the handler of this in-flight connect.
            let target = unsafe { crate::sys::socket_addr_from_raw(addr, addr_len) };
            match target {
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

    fn complete_parked(&mut self, socket: usize, parked: Parked, result: i32) {
        let node = self.sockets[socket].node;
        if let Some(process) = self.nodes[node].process {
            self.complete(node, process, parked.user_data, result);
        }
    }

    /// One attempt at a socket operation: its result, or `None` to wait.
    fn try_socket_operation(&mut self, socket: usize, parked: &Parked) -> Option<i32> {
        match parked.operation {
            Operation::Accept { .. } => self.try_accept(socket),
            Operation::Recv { buf, len, .. } | Operation::Read { buf, len, .. } => {
                self.try_recv(socket, buf, len)
            }
            Operation::Send { buf, len, .. } => self.try_send(socket, buf, len),
            Operation::Write { buf, len, .. } => self.try_send(socket, buf, len),
            Operation::Poll { events, .. } => {
                let ready = self.readiness(socket) & (events | ERROR | HANGUP);
                (ready != 0).then_some(ready as i32)
            }
            Operation::Fsync { .. } => Some(-libc::EINVAL),
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
        }
    }

    fn try_accept(&mut self, socket: usize) -> Option<i32> {
        let node = self.sockets[socket].node;
        let SocketState::Listening { queue } = &mut self.sockets[socket].state else {
            return Some(-libc::EINVAL);
        };
        let connection = queue.pop_front()?;
        if self.streams.faults.chance(self.options.faults.accept) {
            self.reset_connection(connection, 1, libc::ECONNRESET);
            return Some(-libc::ECONNABORTED);
        }
        let accepted = self.sockets.len();
        let v6 = self.sockets[socket].v6;
        self.sockets.push(Socket {
            node,
            v6,
            local: Some(self.connections[connection].addrs[1]),
            state: SocketState::Connected {
                connection,
                side: 1,
            },
            waiters: VecDeque::new(),
        });
        self.connections[connection].sockets[1] = Some(accepted);
        Some(self.nodes[node].alloc_fd(FdEntry::Socket(accepted)))
    }

    fn try_recv(&mut self, socket: usize, buf: *mut u8, len: u32) -> Option<i32> {
        let (connection, side) = match self.sockets[socket].state {
            SocketState::Connected { connection, side } => (connection, side),
            SocketState::Connecting { .. } => return None,
            _ => return Some(-libc::ENOTCONN),
        };
        let conn = &mut self.connections[connection];
        if let Some(errno) = conn.errors[side].take() {
            return Some(-errno);
        }
        let incoming = &mut conn.directions[1 - side];
        if incoming.arrived == 0 {
            return (incoming.fin_arrived || conn.reset).then_some(0);
        }
        let mut count = incoming.arrived.min(len as usize);
        let split = self.options.network.recv_split_probability;
        if count > 1 && self.streams.network.chance(split) {
            count = self.streams.network.range_inclusive(1, count as u64) as usize;
        }
        let (front, back) = incoming.bytes.as_slices();
        let from_front = front.len().min(count);
        // SAFETY: `buf` is this in-flight recv's buffer, valid for writes of
        // `len >= count` bytes (at most its `bytes_total`), and kept
        // allocated and unmoved by the loop core until the completion is
        // reaped; nothing else references it now.
        unsafe { World::write_user_bytes(buf, count, &front[..from_front]) };
        // Stays inside the buffer: `from_front <= count <= len`.
        let rest = buf.wrapping_add(from_front);
        // SAFETY: as above, for the `count - from_front` bytes after the
        // first `from_front`.
        unsafe { World::write_user_bytes(rest, count - from_front, &back[..count - from_front]) };
        incoming.bytes.drain(..count);
        incoming.arrived -= count;
        // Room opened for the sender.
        if let Some(peer) = conn.sockets[1 - side] {
            self.to_wake.push(peer);
        }
        if self.streams.faults.chance(self.options.faults.recv) {
            self.reset_connection(connection, side, libc::ECONNRESET);
            return Some(-libc::ECONNRESET);
        }
        Some(count as i32)
    }

    fn try_send(&mut self, socket: usize, buf: *const u8, len: u32) -> Option<i32> {
        let (connection, side) = match self.sockets[socket].state {
            SocketState::Connected { connection, side } => (connection, side),
            SocketState::Connecting { .. } => return None,
            _ => return Some(-libc::ENOTCONN),
        };
        let buffer_bytes = self.options.network.buffer_bytes as usize;
        let conn = &mut self.connections[connection];
        if let Some(errno) = conn.errors[side].take() {
            return Some(-errno);
        }
        if conn.reset {
            return Some(-libc::EPIPE);
        }
        let outgoing = &mut conn.directions[side];
        let room = buffer_bytes.saturating_sub(outgoing.bytes.len());
        if room == 0 {
            return None;
        }
        if self.streams.faults.chance(self.options.faults.send) {
            self.reset_connection(connection, side, libc::ECONNRESET);
            let errno = *self.streams.faults.pick(&[libc::ECONNRESET, libc::EPIPE]);
            return Some(-errno);
        }
        let count = room.min(len as usize);
        // SAFETY: `buf` is this in-flight send's buffer of `len` bytes.
        let data = unsafe { World::user_bytes(buf, count) };
        self.connections[connection].directions[side]
            .bytes
            .extend(data);
        self.send_segment(connection, side, count, false);
        Some(count as i32)
    }

    /// The poll bits a socket would report now.
    fn readiness(&self, socket: usize) -> u32 {
        match self.sockets[socket].state {
            SocketState::Fresh => WRITABLE | HANGUP,
            SocketState::Listening { ref queue } => {
                if queue.is_empty() {
                    0
                } else {
                    READABLE
                }
            }
            SocketState::Connecting { .. } | SocketState::Closed => 0,
            SocketState::Connected { connection, side } => {
                let conn = &self.connections[connection];
                let incoming = &conn.directions[1 - side];
                let outgoing = &conn.directions[side];
                let mut ready = 0;
                if incoming.arrived > 0 || incoming.fin_arrived || conn.reset {
                    ready |= READABLE;
                }
                if conn.reset {
                    ready |= HANGUP | WRITABLE;
                } else if (outgoing.bytes.len() as u64) < self.options.network.buffer_bytes {
                    ready |= WRITABLE;
                }
                if conn.errors[side].is_some() {
                    ready |= ERROR;
                }
                ready
            }
        }
    }

    /// Retries the waiters of every socket whose state changed.
    pub(crate) fn wake_sockets(&mut self) {
        // Two buffers swapped back and forth, both kept with their
        // capacity: waking allocates nothing in steady state (a fresh
        // `Vec` per batch made each send and receive allocate).
        let mut batch = std::mem::take(&mut self.wake_batch);
        while !self.to_wake.is_empty() {
            std::mem::swap(&mut batch, &mut self.to_wake);
            for socket in batch.drain(..) {
                self.retry_waiters(socket);
            }
        }
        self.wake_batch = batch;
    }

    fn retry_waiters(&mut self, socket: usize) {
        let mut index = 0;
        while index < self.sockets[socket].waiters.len() {
            let parked = self.sockets[socket].waiters[index];
            match self.try_socket_operation(socket, &parked) {
                Some(result) => {
                    self.sockets[socket].waiters.remove(index);
                    self.complete_parked(socket, parked, result);
                }
                None => index += 1,
            }
        }
    }

    fn start_connect(&mut self, socket: usize, parked: Parked, target: SocketAddr) {
        let node = self.sockets[socket].node;
        let refuse = match self.sockets[socket].state {
            SocketState::Fresh => None,
            SocketState::Connected { .. } => Some(libc::EISCONN),
            SocketState::Connecting { .. } => Some(libc::EALREADY),
            SocketState::Listening { .. } | SocketState::Closed => Some(libc::EINVAL),
        };
        let refuse = refuse.or_else(|| {
            (self.sockets[socket].v6 != target.is_ipv6()).then_some(libc::EAFNOSUPPORT)
        });
        if let Some(errno) = refuse {
            return self.complete_parked(socket, parked, -errno);
        }
        let Some(peer) = self.route(node, target.ip()) else {
            return self.complete_parked(socket, parked, -libc::ENETUNREACH);
        };
        let local_ip = if target.ip().is_loopback() || target.ip().is_unspecified() {
            target.ip()
        } else {
            self.nodes[node].ip
        };
        let Some(port) = self.ephemeral_port(node) else {
            return self.complete_parked(socket, parked, -libc::EADDRNOTAVAIL);
        };
        let local = SocketAddr::new(local_ip, port);
        let connection = self.connections.len();
        self.connections.push(Connection {
            nodes: [node, peer],
            addrs: [local, target],
            sockets: [Some(socket), None],
            directions: [Direction::default(), Direction::default()],
            errors: [None, None],
            reset: false,
            closed: [false, false],
        });
        let socket_state = &mut self.sockets[socket];
        socket_state.local = Some(local);
        socket_state.state = SocketState::Connecting { connection };
        socket_state.waiters.push_back(parked);
        if self.streams.faults.chance(self.options.faults.connect) {
            if self.streams.faults.chance(Probability::percent(50)) {
                let delay_ns = 2 * self.latency_sample(node, peer);
                self.schedule_connect_result(delay_ns, connection, -libc::ECONNREFUSED);
            } else {
                let timeout_ns = self.options.network.connect_timeout_ns;
                self.schedule_connect_result(timeout_ns, connection, -libc::ETIMEDOUT);
            }
            return;
        }
        let reachable = self.nodes[peer].up
            && !self.blocked.contains(&(node, peer))
            && !self.blocked.contains(&(peer, node));
        if !reachable {
            let timeout_ns = self.options.network.connect_timeout_ns;
            return self.schedule_connect_result(timeout_ns, connection, -libc::ETIMEDOUT);
        }
        let arrival_ns = self.now_ns + self.latency_sample(node, peer);
        self.schedule(arrival_ns, EventKind::SynArrive { connection });
    }

    fn schedule_connect_result(&mut self, delay_ns: u64, connection: usize, result: i32) {
        let kind = EventKind::ConnectResult { connection, result };
        self.schedule(self.now_ns + delay_ns, kind);
    }

    /// The node that answers for `ip`, seen from `node`.
    fn route(&self, node: usize, ip: IpAddr) -> Option<usize> {
        if ip.is_loopback() || ip.is_unspecified() {
            return Some(node);
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.nodes.iter().position(|candidate| candidate.ip == ip)
    }

    pub(crate) fn on_syn_arrive(&mut self, connection: usize) {
        let conn = &self.connections[connection];
        if conn.closed[0] {
            return; // The client gave up (closed or cancelled).
        }
        let [client, server] = conn.nodes;
        let target = conn.addrs[1];
        let back_ns = self.latency_sample(server, client);
        let listener = self
            .listener(server, target.ip(), target.port())
            .filter(|_| self.nodes[server].process.is_some());
        let Some(listener) = listener else {
            return self.schedule_connect_result(back_ns, connection, -libc::ECONNREFUSED);
        };
        if let SocketState::Listening { queue } = &mut self.sockets[listener].state {
            queue.push_back(connection);
        }
        self.to_wake.push(listener);
        self.schedule_connect_result(back_ns, connection, 0);
    }

    pub(crate) fn on_connect_result(&mut self, connection: usize, result: i32) {
        let Some(socket) = self.connections[connection].sockets[0] else {
            return;
        };
        if !matches!(self.sockets[socket].state, SocketState::Connecting { connection: c } if c == connection)
        {
            return;
        }
        let waiters = &mut self.sockets[socket].waiters;
        let Some(index) = waiters
            .iter()
            .position(|parked| matches!(parked.operation, Operation::Connect { .. }))
        else {
            return;
        };
        let parked = waiters.remove(index).expect("found above");
        self.sockets[socket].state = if result == 0 {
            SocketState::Connected {
                connection,
                side: 0,
            }
        } else {
            self.connections[connection].closed[0] = true;
            SocketState::Fresh
        };
        self.complete_parked(socket, parked, result);
        self.to_wake.push(socket);
    }

    /// A cancelled connect abandons its handshake; the socket may connect again.
    pub(crate) fn abandon_connect(&mut self, socket: usize) {
        if let SocketState::Connecting { connection } = self.sockets[socket].state {
            self.connections[connection].closed[0] = true;
            self.sockets[socket].state = SocketState::Fresh;
        }
    }

    /// Closes a socket; returns its waiters, for the caller to cancel or forget.
    pub(crate) fn close_socket(&mut self, socket: usize, how: CloseHow) -> VecDeque<Parked> {
        let waiters = std::mem::take(&mut self.sockets[socket].waiters);
        let state = std::mem::replace(&mut self.sockets[socket].state, SocketState::Closed);
        match state {
            SocketState::Fresh | SocketState::Closed => {}
            SocketState::Listening { queue } => {
                for connection in queue {
                    self.connections[connection].closed[1] = true;
                    self.reset_connection(connection, 1, libc::ECONNRESET);
                }
            }
            SocketState::Connecting { connection } => {
                self.connections[connection].closed[0] = true;
            }
            SocketState::Connected { connection, side } => {
                let conn = &mut self.connections[connection];
                conn.closed[side] = true;
                conn.sockets[side] = None;
                let unread = !conn.directions[1 - side].bytes.is_empty();
                if conn.reset {
                    // Nothing to tell the peer.
                } else if how == CloseHow::Crash || unread {
                    self.reset_connection(connection, side, libc::ECONNRESET);
                } else {
                    self.connections[connection].directions[side].fin_sent = true;
                    self.send_segment(connection, side, 0, true);
                }
            }
        }
        waiters
    }

    /// Resets a connection from `side`: that side is done at once (its
    /// caller reports the error), the peer learns after one latency.
    fn reset_connection(&mut self, connection: usize, side: usize, errno: i32) {
        let conn = &mut self.connections[connection];
        if conn.reset {
            return;
        }
        conn.reset = true;
        for direction in &mut conn.directions {
            direction.bytes.clear();
            direction.arrived = 0;
            direction.segments.clear();
        }
        let [from, to] = [conn.nodes[side], conn.nodes[1 - side]];
        let delay_ns = self.latency_sample(from, to);
        let kind = EventKind::Reset {
            connection,
            side: 1 - side,
            errno,
        };
        self.schedule(self.now_ns + delay_ns, kind);
    }

    pub(crate) fn on_reset(&mut self, connection: usize, side: usize, errno: i32) {
        let conn = &mut self.connections[connection];
        if conn.closed[side] {
            return;
        }
        conn.reset = true;
        conn.errors[side] = Some(errno);
        if let Some(socket) = conn.sockets[side] {
            self.to_wake.push(socket);
        }
    }

    /// Queues `len` bytes (already in the direction's buffer) or a FIN to
    /// arrive after the link's latency, in order behind earlier segments.
    fn send_segment(&mut self, connection: usize, direction: usize, len: usize, fin: bool) {
        let conn = &self.connections[connection];
        let (from, to) = (conn.nodes[direction], conn.nodes[1 - direction]);
        let held = self.blocked.contains(&(from, to)) || conn.directions[direction].stalled();
        let arrival_ns = if held {
            if !conn.directions[direction].stalled() {
                let kind = EventKind::RetransmitTimeout {
                    connection,
                    direction,
                };
                self.schedule(
                    self.now_ns + self.options.network.retransmit_timeout_ns,
                    kind,
                );
            }
            None
        } else {
            Some(self.arrival_ns(connection, direction))
        };
        let segment = Segment {
            arrival_ns,
            len,
            fin,
        };
        self.connections[connection].directions[direction]
            .segments
            .push_back(segment);
        if let Some(time_ns) = arrival_ns {
            let kind = EventKind::Arrive {
                connection,
                direction,
            };
            self.schedule(time_ns, kind);
        }
    }

    /// When a segment sent now arrives: latency, behind any clog, and never
    /// before the previous segment (a stream stays in order).
    fn arrival_ns(&mut self, connection: usize, direction: usize) -> u64 {
        let conn = &self.connections[connection];
        let (from, to) = (conn.nodes[direction], conn.nodes[1 - direction]);
        let mut arrival_ns = self.now_ns + self.latency_sample(from, to);
        if let Some(&until_ns) = self.clogged.get(&(from, to)) {
            if until_ns > self.now_ns {
                arrival_ns = arrival_ns.max(until_ns + self.latency_sample(from, to));
            }
        }
        let direction = &mut self.connections[connection].directions[direction];
        arrival_ns = arrival_ns.max(direction.last_arrival_ns);
        direction.last_arrival_ns = arrival_ns;
        arrival_ns
    }

    /// One-way latency: `max(min, Exp(mean))`, plus sometimes a long tail.
    fn latency_sample(&mut self, _from: usize, _to: usize) -> u64 {
        let network = &self.options.network;
        let prng = &mut self.streams.network;
        let mut latency_ns = prng
            .exponential(network.latency_mean_ns)
            .max(network.latency_min_ns);
        if prng.chance(network.tail_probability) {
            latency_ns += prng.exponential(network.tail_mean_ns);
        }
        latency_ns
    }

    pub(crate) fn on_arrive(&mut self, connection: usize, direction: usize) {
        let now_ns = self.now_ns;
        let conn = &mut self.connections[connection];
        let receiver = 1 - direction;
        let flow = &mut conn.directions[direction];
        let mut data_arrived = false;
        while let Some(segment) = flow.segments.front() {
            match segment.arrival_ns {
                Some(time_ns) if time_ns <= now_ns => {}
                _ => break,
            }
            flow.arrived += segment.len;
            flow.fin_arrived |= segment.fin;
            data_arrived |= segment.len > 0;
            flow.segments.pop_front();
        }
        if conn.closed[receiver] && data_arrived && !conn.reset {
            // Bytes for a socket that is gone: the peer gets a reset.
            self.reset_connection(connection, receiver, libc::ECONNRESET);
            return;
        }
        if let Some(socket) = self.connections[connection].sockets[receiver] {
            self.to_wake.push(socket);
        }
    }

    pub(crate) fn on_retransmit_timeout(&mut self, connection: usize, direction: usize) {
        if self.connections[connection].directions[direction].stalled() {
            // TCP gave up: both ends see ETIMEDOUT (the model tells the
            // silent end too, so nothing waits forever on a dead link).
            self.reset_connection(connection, direction, libc::ETIMEDOUT);
            self.on_reset(connection, direction, libc::ETIMEDOUT);
        }
    }

    /// Schedules the next random partition or clog, if they are on.
    pub(crate) fn schedule_weather(&mut self) {
        let network = &self.options.network;
        let intervals = [
            network.partition_interval_mean_ns,
            network.clog_interval_mean_ns,
        ];
        let mean_ns = match intervals {
            [0, 0] => return,
            [0, clog] => clog,
            [partition, 0] => partition,
            [partition, clog] => partition.min(clog),
        };
        let delay_ns = self.streams.weather.exponential(mean_ns).max(1);
        self.schedule(self.now_ns + delay_ns, EventKind::Weather);
    }

    pub(crate) fn on_weather(&mut self) {
        let nodes = self.nodes.len() as u64;
        let network = self.options.network.clone();
        let partitions_on = network.partition_interval_mean_ns > 0;
        let clogs_on = network.clog_interval_mean_ns > 0;
        if !partitions_on && !clogs_on {
            return;
        }
        let prng = &mut self.streams.weather;
        let partition = partitions_on && (!clogs_on || prng.chance(Probability::percent(50)));
        if partition && self.blocked.is_empty() {
            // A random split: each node on side A or B, both sides non-empty.
            let split = prng.range_inclusive(1, (1 << nodes.min(63)) - 2);
            let asymmetric = prng.chance(network.partition_asymmetric_probability);
            for from in 0..nodes as usize {
                for to in 0..nodes as usize {
                    let side = |node: usize| split >> (node % 63) & 1;
                    if side(from) == 1 && side(to) == 0
                        || (!asymmetric && side(from) == 0 && side(to) == 1)
                    {
                        self.blocked.insert((from, to));
                    }
                }
            }
            let duration_ns = prng.exponential(network.partition_duration_mean_ns).max(1);
            tracing::debug!(target: "ringio", split, asymmetric, duration_ns, "sim: partition");
            self.schedule(self.now_ns + duration_ns, EventKind::Heal);
        } else if clogs_on {
            let from = prng.below(nodes) as usize;
            let to = prng.below(nodes) as usize;
            let until_ns = self.now_ns + prng.exponential(network.clog_duration_mean_ns);
            tracing::debug!(target: "ringio", from, to, until_ns, "sim: clog");
            let entry = self.clogged.entry((from, to)).or_insert(0);
            *entry = (*entry).max(until_ns);
        }
        self.schedule_weather();
    }

    /// Ends every partition: held segments leave now, in order.
    pub(crate) fn heal(&mut self) {
        self.blocked.clear();
        for connection in 0..self.connections.len() {
            for direction in 0..2 {
                let flow = &self.connections[connection].directions[direction];
                let held: Vec<usize> = flow
                    .segments
                    .iter()
                    .enumerate()
                    .filter(|(_, segment)| segment.arrival_ns.is_none())
                    .map(|(index, _)| index)
                    .collect();
                for index in held {
                    let arrival_ns = self.arrival_ns(connection, direction);
                    self.connections[connection].directions[direction].segments[index].arrival_ns =
                        Some(arrival_ns);
                    let kind = EventKind::Arrive {
                        connection,
                        direction,
                    };
                    self.schedule(arrival_ns, kind);
                }
            }
        }
    }

    /// Lifts partitions and clogs (the liveness mode).
    pub(crate) fn calm(&mut self) {
        self.heal();
        self.clogged.clear();
    }
}

fn unspecified(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    }
}
