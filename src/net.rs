//! Socket set-up that goes through the `IO`, so that a simulator can
//! virtualize it: application code never calls `libc::socket` itself.

use std::io;
use std::net::SocketAddr;

use crate::handle::Handle;
use crate::io::IO;
use crate::sys;

/// A socket option for [`IO::set_option`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketOption {
    /// `SO_REUSEADDR`: bind a port that has connections in `TIME_WAIT`.
    /// [`IO::listen`] sets it already.
    ReuseAddress(bool),
    /// `SO_REUSEPORT`: several sockets (one per thread or process) share
    /// one port, and the kernel spreads connections over them.
    ReusePort(bool),
    /// `SO_KEEPALIVE`: probe an idle connection, so that a vanished peer
    /// is noticed.
    KeepAlive(bool),
    /// `SO_SNDBUF`: the send buffer's size in bytes (the kernel doubles it).
    SendBufferBytes(u32),
    /// `SO_RCVBUF`: the receive buffer's size in bytes (the kernel doubles it).
    RecvBufferBytes(u32),
    /// `TCP_NODELAY`: no Nagle delay, as [`IO::set_nodelay`].
    NoDelay(bool),
}

impl SocketOption {
    fn setsockopt(self) -> (libc::c_int, libc::c_int, i32) {
        let bytes = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
        match self {
            SocketOption::ReuseAddress(on) => (libc::SOL_SOCKET, libc::SO_REUSEADDR, i32::from(on)),
            SocketOption::ReusePort(on) => (libc::SOL_SOCKET, libc::SO_REUSEPORT, i32::from(on)),
            SocketOption::KeepAlive(on) => (libc::SOL_SOCKET, libc::SO_KEEPALIVE, i32::from(on)),
            SocketOption::SendBufferBytes(value) => {
                (libc::SOL_SOCKET, libc::SO_SNDBUF, bytes(value))
            }
            SocketOption::RecvBufferBytes(value) => {
                (libc::SOL_SOCKET, libc::SO_RCVBUF, bytes(value))
            }
            SocketOption::NoDelay(on) => (libc::IPPROTO_TCP, libc::TCP_NODELAY, i32::from(on)),
        }
    }
}

fn domain_of(address: &SocketAddr) -> libc::c_int {
    match address {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

impl<C> IO<C> {
    /// Opens a TCP socket of `address`'s family (IPv4 or IPv6), close-on-exec,
    /// ready for [`connect`](IO::connect) to that address. The `IO` owns it.
    ///
    /// # Errors
    ///
    /// What `socket(2)` returns: `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`,
    /// `EAFNOSUPPORT`.
    pub fn open_socket(&mut self, address: SocketAddr) -> io::Result<Handle> {
        let fd = match self.sim() {
            Some(sim) => {
                sim.with_world(|world, node| world.open_socket(node, address.is_ipv6()))?
            }
            None => sys::socket(domain_of(&address), libc::SOCK_STREAM, false)?,
        };
        Ok(self.own_new_fd(fd))
    }

    /// Opens a TCP socket bound to `address` with `SO_REUSEADDR`, listening
    /// with room for `backlog` pending connections. Port `0` picks a free
    /// port: read it back with [`local_addr`](IO::local_addr).
    ///
    /// # Errors
    ///
    /// `EADDRINUSE`, `EACCES` (privileged port), `EADDRNOTAVAIL`, and the
    /// errors of [`open_socket`](IO::open_socket). The socket is closed on error.
    pub fn listen(&mut self, address: SocketAddr, backlog: u32) -> io::Result<Handle> {
        if let Some(sim) = self.sim() {
            let fd = sim.with_world(|world, node| world.listen(node, address, backlog))?;
            return Ok(self.own_new_fd(fd));
        }
        let fd = sys::socket(domain_of(&address), libc::SOCK_STREAM, false)?;
        let result = sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
            .and_then(|()| sys::bind(fd, &address))
            .and_then(|()| sys::listen(fd, backlog));
        self.own_or_close(fd, result)
    }

    /// Opens a UDP socket bound to `address` (port 0 picks a free one:
    /// read it back with [`local_addr`](IO::local_addr)), close-on-exec.
    /// Send with [`send_to`](IO::send_to) or [`send_msg`](IO::send_msg),
    /// receive with [`recv_from`](IO::recv_from) or
    /// [`recv_msg`](IO::recv_msg); after [`connect`](IO::connect), which for
    /// UDP only sets the default peer and completes at once, plain
    /// [`send`](IO::send) and [`recv`](IO::recv) work too.
    ///
    /// Backends: io_uring and epoll (the kernel's UDP), and the simulator's
    /// packet network (loss, duplication, reordering, partitions:
    /// [`DatagramOptions`](crate::sim::DatagramOptions)).
    ///
    /// # Errors
    ///
    /// `EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES` (a privileged port), and the
    /// errors of `socket(2)`. The socket is closed on error.
    pub fn open_udp(&mut self, address: SocketAddr) -> io::Result<Handle> {
        if let Some(sim) = self.sim() {
            let fd = sim.with_world(|world, node| world.open_udp(node, address))?;
            return Ok(self.own_new_fd(fd));
        }
        let fd = sys::socket(domain_of(&address), libc::SOCK_DGRAM, false)?;
        let result = sys::bind(fd, &address);
        self.own_or_close(fd, result)
    }

    /// Binds `socket` (from [`open_socket`](IO::open_socket)) to a local
    /// `address` before it connects (`bind(2)`): a chosen source address
    /// or port. Port 0 picks a free one.
    ///
    /// Backends: io_uring and epoll (the syscall), and the simulator, which
    /// then connects from that address.
    ///
    /// # Errors
    ///
    /// `EADDRINUSE`, `EADDRNOTAVAIL` (not an address of this machine),
    /// `EACCES` (a privileged port), `EINVAL` (already bound),
    /// `EAFNOSUPPORT` (the other family), `EBADF`.
    pub fn bind(&mut self, socket: Handle, address: SocketAddr) -> io::Result<()> {
        let fd = self.raw_fd(socket)?;
        if let Some(sim) = self.sim() {
            return sim.with_world(|world, node| world.bind(node, fd, address));
        }
        sys::bind(fd, &address)
    }

    /// Sets a socket option that servers and clients commonly need (see
    /// [`SocketOption`]).
    ///
    /// Backends: io_uring and epoll (`setsockopt(2)`); the simulator checks
    /// that `socket` is a socket and accepts the option: its buffers are
    /// the world's (`NetworkOptions::buffer_bytes`), segments are never
    /// coalesced (no Nagle), and it has no keepalive probes yet.
    ///
    /// # Errors
    ///
    /// `EBADF`, `ENOTSOCK`, `ENOPROTOOPT` (`NoDelay` on a socket that is not
    /// TCP), `EINVAL`.
    pub fn set_option(&mut self, socket: Handle, option: SocketOption) -> io::Result<()> {
        let fd = self.raw_fd(socket)?;
        let (level, name, value) = option.setsockopt();
        if let Some(sim) = self.sim() {
            let tcp = level == libc::IPPROTO_TCP;
            return sim.with_world(|world, node| world.accept_option(node, fd, tcp));
        }
        sys::setsockopt_int(fd, level, name, value)
    }

    /// The address a socket is bound to (`getsockname(2)`).
    ///
    /// # Errors
    ///
    /// `EBADF` (a closed or stale handle), `ENOTSOCK`.
    pub fn local_addr(&self, socket: Handle) -> io::Result<SocketAddr> {
        let socket = self.raw_fd(socket)?;
        if let Some(sim) = self.sim() {
            return sim.with_world(|world, node| world.local_addr(node, socket));
        }
        sys::local_addr(socket)
    }

    /// The address of the peer a socket is connected to (`getpeername(2)`),
    /// for example of a socket from [`accept`](IO::accept).
    ///
    /// # Errors
    ///
    /// `EBADF`, `ENOTSOCK`, `ENOTCONN`.
    pub fn peer_addr(&self, socket: Handle) -> io::Result<SocketAddr> {
        let socket = self.raw_fd(socket)?;
        if let Some(sim) = self.sim() {
            return sim.with_world(|world, node| world.peer_addr(node, socket));
        }
        sys::peer_addr(socket)
    }

    /// Turns Nagle's algorithm off (`TCP_NODELAY`) or on, for
    /// request-response protocols where latency matters more than packet count.
    ///
    /// # Errors
    ///
    /// `EBADF`, `ENOTSOCK`, `ENOPROTOOPT` (not TCP).
    pub fn set_nodelay(&mut self, socket: Handle, nodelay: bool) -> io::Result<()> {
        let socket = self.raw_fd(socket)?;
        if let Some(sim) = self.sim() {
            // Simulated segments are never coalesced: there is no Nagle to turn off.
            return sim.with_world(|world, node| world.accept_option(node, socket, true));
        }
        sys::setsockopt_int(
            socket,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            i32::from(nodelay),
        )
    }

    /// Takes `fd` into the table if its set-up `result` is fine; else
    /// closes it and reports the set-up error.
    pub(crate) fn own_or_close(
        &mut self,
        fd: sys::Fd,
        result: io::Result<()>,
    ) -> io::Result<Handle> {
        match result {
            Ok(()) => Ok(self.own_new_fd(fd)),
            Err(error) => {
                // The socket never left the IO: the set-up error is the one
                // to report, whatever close says.
                let _ = sys::close(fd);
                Err(error)
            }
        }
    }
}
