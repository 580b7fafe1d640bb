//! Unix-domain sockets: stream listeners and connections, datagram
//! sockets, and connected pairs, named by [`UnixAddr`] (paths and Linux's
//! abstract names). Set-up goes through the `IO`, as for TCP.
//!
//! The simulator has Unix stream sockets (listeners, connections, stream
//! pairs) in a namespace of names per node; Unix datagram sockets give
//! `EOPNOTSUPP` there. docs/simulation.md lists what it models.

use std::io;

use crate::addr::{Address, UnixAddr};
use crate::completion::CompletionId;
use crate::handle::Handle;
use crate::io::IO;
use crate::sys;

/// A socket's type, for [`IO::unix_pair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// A byte stream (`SOCK_STREAM`), as TCP.
    Stream,
    /// Datagrams, each kept whole and in order (`SOCK_DGRAM`: reliable on
    /// a Unix socket, unlike UDP).
    Datagram,
}

impl SocketType {
    fn raw(self) -> libc::c_int {
        match self {
            SocketType::Stream => libc::SOCK_STREAM,
            SocketType::Datagram => libc::SOCK_DGRAM,
        }
    }
}

/// `EOPNOTSUPP`: the simulator has no Unix datagram sockets.
fn unsupported_in_sim() -> io::Error {
    sys::errno(libc::EOPNOTSUPP)
}

impl<C> IO<C> {
    /// Opens a Unix stream socket bound to `address`, listening with room
    /// for `backlog` pending connections. A path must not exist yet: remove
    /// a stale socket file first (the kernel says `EADDRINUSE`).
    ///
    /// Backends: io_uring, epoll, and the simulator (names per node).
    ///
    /// # Errors
    ///
    /// `EADDRINUSE`, `ENOENT` (a missing directory), `EACCES`, `EINVAL`
    /// (an unnamed address), and the errors of `socket(2)`. The socket is
    /// closed on error.
    pub fn listen_unix(&mut self, address: &UnixAddr, backlog: u32) -> io::Result<Handle> {
        if let Some(sim) = self.sim() {
            let name = *address;
            let fd = sim.with_world(|world, node| world.listen_unix(node, name, backlog))?;
            return Ok(self.own_new_fd(fd));
        }
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, false)?;
        let result = sys::bind_raw(fd, &address.to_raw()).and_then(|()| sys::listen(fd, backlog));
        self.own_or_close(fd, result)
    }

    /// Opens a Unix stream socket, ready for
    /// [`connect_unix`](IO::connect_unix).
    ///
    /// Backends: io_uring, epoll, the simulator.
    ///
    /// # Errors
    ///
    /// The errors of `socket(2)`.
    pub fn open_unix_stream(&mut self) -> io::Result<Handle> {
        if let Some(sim) = self.sim() {
            let fd = sim.with_world(|world, node| world.open_unix_stream(node))?;
            return Ok(self.own_new_fd(fd));
        }
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, false)?;
        Ok(self.own_new_fd(fd))
    }

    /// Connects the Unix socket `socket` to `address`: a stream to a
    /// listener, or a datagram socket to its default peer.
    ///
    /// Backends: io_uring, epoll, and the simulator (streams; it connects
    /// at once, as Linux does).
    ///
    /// # Errors
    ///
    /// `ENOENT` (no socket by that path), `ECONNREFUSED` (nothing listens
    /// there, or an abstract name nobody holds), `EAGAIN` (the listener's
    /// backlog is full), `EPROTOTYPE` (a listener of the other type),
    /// `EAFNOSUPPORT` (not a Unix socket), `EISCONN`, `EBADF`, `ECANCELED`.
    pub fn connect_unix<F>(
        &mut self,
        socket: Handle,
        address: &UnixAddr,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        self.connect_raw(socket, address.to_raw(), callback)
    }

    /// Opens a Unix datagram socket, bound to `address` if given (a socket
    /// that receives replies needs a name). Send with
    /// [`send_to`](IO::send_to), or connect it with
    /// [`connect_unix`](IO::connect_unix) and use [`send`](IO::send).
    ///
    /// Backends: io_uring, epoll; `EOPNOTSUPP` under the simulator, which
    /// has Unix streams only.
    ///
    /// # Errors
    ///
    /// As [`listen_unix`](IO::listen_unix).
    pub fn open_unix_datagram(&mut self, address: Option<&UnixAddr>) -> io::Result<Handle> {
        if self.sim().is_some() {
            return Err(unsupported_in_sim());
        }
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM, false)?;
        let result = match address {
            Some(address) => sys::bind_raw(fd, &address.to_raw()),
            None => Ok(()),
        };
        self.own_or_close(fd, result)
    }

    /// A connected pair of Unix sockets of `kind` (`socketpair(2)`), both
    /// owned by this `IO`: for talking to a child process, or to test.
    ///
    /// Backends: io_uring, epoll; the simulator for streams
    /// (`EOPNOTSUPP` for datagrams).
    ///
    /// # Errors
    ///
    /// `EMFILE`, `ENFILE`.
    pub fn unix_pair(&mut self, kind: SocketType) -> io::Result<(Handle, Handle)> {
        if let Some(sim) = self.sim() {
            if kind == SocketType::Datagram {
                return Err(unsupported_in_sim());
            }
            let (a, b) = sim.with_world(|world, node| world.unix_stream_pair(node))?;
            return Ok((self.own_new_fd(a), self.own_new_fd(b)));
        }
        let (a, b) = sys::socketpair(kind.raw())?;
        Ok((self.own_new_fd(a), self.own_new_fd(b)))
    }

    /// The address `socket` is bound to, of either family
    /// (`getsockname(2)`): an unnamed [`UnixAddr`] for a Unix socket that
    /// never bound.
    ///
    /// # Errors
    ///
    /// `EBADF`, `ENOTSOCK`.
    pub fn local_address(&self, socket: Handle) -> io::Result<Address> {
        let fd = self.raw_fd(socket)?;
        if let Some(sim) = self.sim() {
            if let Some(unix) = sim.with_world(|world, node| world.unix_local_address(node, fd))? {
                return Ok(unix);
            }
            return self.local_addr(socket).map(Address::Ip);
        }
        sys::name_of(fd, false)
    }

    /// The address of the peer `socket` is connected to, of either family
    /// (`getpeername(2)`).
    ///
    /// # Errors
    ///
    /// `ENOTCONN`, `EBADF`, `ENOTSOCK`.
    pub fn peer_address(&self, socket: Handle) -> io::Result<Address> {
        let fd = self.raw_fd(socket)?;
        if let Some(sim) = self.sim() {
            if let Some(unix) = sim.with_world(|world, node| world.unix_peer_address(node, fd))? {
                return Ok(unix);
            }
            return self.peer_addr(socket).map(Address::Ip);
        }
        sys::name_of(fd, true)
    }
}
