//! Unix-domain stream sockets in the simulated world: a node's processes
//! listen on names (paths or abstract names, one namespace per node) and
//! connect to them. A connection is the TCP model's (`tcp.rs`) between a
//! node and itself, established at once as a Unix connect is: its bytes,
//! half-closes and resets behave as the loopback's do, and a close with
//! unread data resets the peer, as Linux's `unix_release_sock` does.
//!
//! A closed listener's path stays taken (a stale socket file: binding
//! it is `EADDRINUSE`, connecting `ECONNREFUSED`) until it is unlinked
//! (`IO::unlinkat`, or `Simulator::unlink_unix_socket` from a harness); an
//! abstract name is free at once. Not modelled (docs/simulation.md): Unix datagram sockets and
//! socket pairs of datagrams (`EOPNOTSUPP`), and control messages
//! (`SCM_RIGHTS`).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::net::{SocketState, Wake};
use super::world::{FdEntry, Parked, World};
use crate::addr::{Address, UnixAddr};
use crate::sys::Fd;

/// What a Unix connection's ends carry as their TCP addresses: nothing a
/// Unix socket ever reports.
const NO_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

impl World {
    /// `socket(AF_UNIX, SOCK_STREAM)`, `bind(2)` and `listen(2)`.
    pub(crate) fn listen_unix(
        &mut self,
        node: usize,
        name: UnixAddr,
        backlog: u32,
    ) -> Result<Fd, i32> {
        self.descriptor_fault()?;
        if name.is_unnamed() {
            return Err(libc::EINVAL);
        }
        let node_state = &self.nodes[node];
        if node_state.unix_listeners.contains_key(&name) || node_state.unix_stale.contains(&name) {
            return Err(libc::EADDRINUSE);
        }
        let state = SocketState::Listening {
            queue: VecDeque::new(),
            backlog: backlog.min(4096),
        };
        let socket = self.socket_new(node, false, None, state);
        self.sockets[socket].unix = true;
        self.sockets[socket].unix_name = Some(name);
        self.nodes[node].unix_listeners.insert(name, socket);
        Ok(self.nodes[node].alloc_fd(FdEntry::Socket(socket)))
    }

    /// `socket(AF_UNIX, SOCK_STREAM)`.
    pub(crate) fn open_unix_stream(&mut self, node: usize) -> Result<Fd, i32> {
        self.descriptor_fault()?;
        let socket = self.socket_new(node, false, None, SocketState::Fresh);
        self.sockets[socket].unix = true;
        Ok(self.nodes[node].alloc_fd(FdEntry::Socket(socket)))
    }

    /// `socketpair(AF_UNIX, SOCK_STREAM)`: two sockets, connected.
    pub(crate) fn unix_stream_pair(&mut self, node: usize) -> Result<(Fd, Fd), i32> {
        let a = self.open_unix_stream(node)?;
        let b = self.open_unix_stream(node)?;
        let socket_of = |world: &World, fd| world.socket_of(node, fd).expect("just opened");
        let (socket_a, socket_b) = (socket_of(self, a), socket_of(self, b));
        let connection = self.unix_connection(node, socket_a);
        self.sockets[socket_a].state = SocketState::Connected {
            connection,
            side: 0,
        };
        self.accept_end(connection, socket_b);
        Ok((a, b))
    }

    /// A Unix connect: at once, to the listener holding `name` on the
    /// socket's node. `ENOENT` for a path nobody listens on,
    /// `ECONNREFUSED` for such an abstract name, `EAGAIN` when the
    /// listener's backlog is full (Linux's non-blocking answer).
    pub(crate) fn start_unix_connect(&mut self, socket: usize, parked: Parked, name: UnixAddr) {
        let refuse = match self.sockets[socket].state {
            _ if !self.sockets[socket].unix => Some(libc::EAFNOSUPPORT),
            SocketState::Fresh => None,
            SocketState::Connected { .. } => Some(libc::EISCONN),
            _ => Some(libc::EINVAL),
        };
        if let Some(errno) = refuse {
            return self.complete_parked(socket, parked, -errno);
        }
        let node = self.sockets[socket].node;
        let Some(&listener) = self.nodes[node].unix_listeners.get(&name) else {
            // A socket file with nobody behind it refuses; no file is ENOENT.
            let stale = self.nodes[node].unix_stale.contains(&name);
            let errno = if name.as_path().is_some() && !stale {
                libc::ENOENT
            } else {
                libc::ECONNREFUSED
            };
            return self.complete_parked(socket, parked, -errno);
        };
        if self.listen_queue_full(listener) {
            return self.complete_parked(socket, parked, -libc::EAGAIN);
        }
        let connection = self.unix_connection(node, socket);
        self.sockets[socket].state = SocketState::Connected {
            connection,
            side: 0,
        };
        self.sockets[socket].unix_peer = Some(name);
        if let SocketState::Listening { queue, .. } = &mut self.sockets[listener].state {
            queue.push_back(connection);
        }
        self.to_wake.push((listener, Wake::Readable));
        self.to_wake.push((socket, Wake::State));
        self.complete_parked(socket, parked, 0);
    }

    /// A connection from `socket` (side 0) to its own node, established.
    fn unix_connection(&mut self, node: usize, socket: usize) -> super::tcp::ConnId {
        let id = self.connection_open([node, node], [NO_ADDRESS; 2], socket);
        let conn = self.conn_mut(id).expect("just opened");
        conn.handshake = super::tcp::Handshake::Done;
        conn.unix = true;
        id
    }

    /// `socket` becomes the accepted end (side 1) of `connection`.
    fn accept_end(&mut self, connection: super::tcp::ConnId, socket: usize) {
        self.sockets[socket].state = SocketState::Connected {
            connection,
            side: 1,
        };
        let conn = self.conn_mut(connection).expect("just opened");
        conn.sockets[1] = Some(socket);
    }

    /// A listener that closes frees an abstract name at once; a path's
    /// socket file stays, stale, until it is unlinked, as on Linux (its
    /// accepted sockets share the name, and free nothing).
    pub(crate) fn unix_name_release(&mut self, socket: usize) {
        let state = &mut self.sockets[socket];
        state.unix_peer = None;
        let Some(name) = state.unix_name.take() else {
            return;
        };
        let node = &mut self.nodes[state.node];
        if node.unix_listeners.get(&name) == Some(&socket) {
            node.unix_listeners.remove(&name);
            if name.as_path().is_some() {
                node.unix_stale.insert(name);
            }
        }
    }

    /// The socket file at `path` is unlinked: its name is free again.
    /// Returns whether there was one.
    pub(crate) fn unix_unlink(&mut self, node: usize, path: &std::path::Path) -> bool {
        let Ok(name) = UnixAddr::path(path) else {
            return false;
        };
        self.nodes[node].unix_stale.remove(&name)
    }

    /// `getsockname(2)` of a Unix socket: its name, or unnamed; `None`
    /// for a socket of another family.
    pub(crate) fn unix_local_address(&self, node: usize, fd: Fd) -> Result<Option<Address>, i32> {
        let socket = &self.sockets[self.socket_of(node, fd)?];
        Ok(socket
            .unix
            .then(|| Address::Unix(socket.unix_name.unwrap_or(UnixAddr::unnamed()))))
    }

    /// `getpeername(2)` of a Unix socket: a client's peer is the name it
    /// connected to; an accepted socket's, or a pair's, is unnamed.
    pub(crate) fn unix_peer_address(&self, node: usize, fd: Fd) -> Result<Option<Address>, i32> {
        let socket = &self.sockets[self.socket_of(node, fd)?];
        if !socket.unix {
            return Ok(None);
        }
        match socket.state {
            SocketState::Connected { .. } => Ok(Some(Address::Unix(
                socket.unix_peer.unwrap_or(UnixAddr::unnamed()),
            ))),
            _ => Err(libc::ENOTCONN),
        }
    }
}

/// The Unix name a `connect` operation's address holds, if it is one.
///
/// # Safety
///
/// `addr` must point at `len` readable bytes, as the `Operation::Connect`
/// of an operation in flight guarantees.
pub(crate) unsafe fn unix_name_from_raw(addr: *const libc::sockaddr, len: u32) -> Option<UnixAddr> {
    if (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: at least the family's bytes are readable (checked above).
    let family = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sa_family_t>()) };
    if family as libc::c_int != libc::AF_UNIX {
        return None;
    }
    // SAFETY: `len` readable bytes at `addr`, the caller's promise.
    let raw = unsafe { crate::sys::RawAddr::copy_from(addr, len) };
    raw.address().ok()?.as_unix().copied()
}
