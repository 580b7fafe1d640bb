//! Thin, synchronous syscall plumbing.
//!
//! Every syscall goes through [`cvt`], so every failure becomes an
//! [`io::Error`] that keeps its errno (`raw_os_error()`), with no allocation.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A raw file descriptor, as the kernel (or the simulator) knows it. Never
/// in the public API: users name descriptors by [`Handle`](crate::Handle).
pub(crate) type Fd = std::os::fd::RawFd;

/// Turns a libc return value into an `io::Result`, reading `errno` on `-1`.
pub(crate) fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// An `io::Error` for a positive errno value, allocation-free.
pub(crate) fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// The calling thread's `errno` as a positive value (`EIO` if unreadable).
pub(crate) fn errno_last() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Turns a kernel-style result (negative errno on failure) into an `io::Result`.
pub(crate) fn result_from_raw(result: i32) -> io::Result<u32> {
    if result < 0 {
        Err(errno(-result))
    } else {
        Ok(result as u32)
    }
}

/// The process's soft `RLIMIT_NOFILE`: the most descriptors it may have
/// open, and the largest registered file table the kernel grants it.
pub(crate) fn nofile_limit() -> u32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, writable rlimit for the call's duration.
    match cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }) {
        Ok(_) => u32::try_from(limit.rlim_cur).unwrap_or(u32::MAX),
        Err(_) => 0,
    }
}

/// Reads CLOCK_MONOTONIC in nanoseconds. The same clock io_uring's wait timeout uses.
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Reads CLOCK_REALTIME in nanoseconds since the Unix epoch (0 for a clock
/// set before 1970).
pub(crate) fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let result = unsafe { libc::clock_gettime(clock, &mut now) };
    // These clocks cannot fail on Linux with a valid pointer (clock_gettime(2)).
    assert_eq!(result, 0);
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    seconds * 1_000_000_000 + now.tv_nsec as u64
}

/// Closes `fd` synchronously. Errors are returned, never ignored silently.
pub(crate) fn close(fd: Fd) -> io::Result<()> {
    // SAFETY: closing any integer is memory-safe; a bad fd yields EBADF.
    cvt(unsafe { libc::close(fd) }).map(drop)
}

/// A socket address in the kernel's layout, kept behind a stable pointer while
/// an operation that names it is in flight.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl RawAddr {
    pub(crate) fn zeroed() -> RawAddr {
        RawAddr {
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    pub(crate) fn from_socket_addr(addr: &SocketAddr) -> RawAddr {
        let mut raw = RawAddr::zeroed();
        match addr {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                let target = (&mut raw.storage as *mut libc::sockaddr_storage).cast();
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(target, sin) };
                raw.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                let target = (&mut raw.storage as *mut libc::sockaddr_storage).cast();
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write(target, sin6) };
                raw.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    /// A copy of the socket address of `len` bytes at `addr` (cut to the
    /// storage's size), for the simulator, which has no kernel to read it.
    ///
    /// # Safety
    ///
    /// `addr` must point at `len` readable bytes, as the address of an
    /// operation in flight does.
    pub(crate) unsafe fn copy_from(addr: *const libc::sockaddr, len: u32) -> RawAddr {
        let mut raw = RawAddr::zeroed();
        let len = (len as usize).min(mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: the caller promises `len` readable bytes at `addr`; `raw`'s
        // storage is at least that large and does not overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(addr.cast::<u8>(), raw.as_mut_ptr().cast::<u8>(), len)
        };
        raw.len = len as libc::socklen_t;
        raw
    }

    /// Stores `value`, a `sockaddr_*` of `len` meaningful bytes.
    pub(crate) fn set<T: Copy>(&mut self, value: T, len: libc::socklen_t) {
        const { assert!(mem::size_of::<T>() <= mem::size_of::<libc::sockaddr_storage>()) };
        let target = (&mut self.storage as *mut libc::sockaddr_storage).cast::<T>();
        // SAFETY: sockaddr_storage is at least as large as T (checked above)
        // and aligned for every socket address type.
        unsafe { std::ptr::write(target, value) };
        self.len = len;
    }

    /// The address, of either kind. `EAFNOSUPPORT` for another family.
    pub(crate) fn address(&self) -> io::Result<crate::addr::Address> {
        if self.storage.ss_family as libc::c_int == libc::AF_UNIX {
            let source = (&self.storage as *const libc::sockaddr_storage).cast();
            // SAFETY: the family says the storage holds a sockaddr_un, and
            // sockaddr_storage is larger than and aligned for it.
            let sun: &libc::sockaddr_un = unsafe { &*source };
            let unix = crate::addr::UnixAddr::from_raw(sun, self.len as usize);
            return Ok(crate::addr::Address::Unix(unix));
        }
        self.socket_addr().map(crate::addr::Address::Ip)
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    pub(crate) fn socket_addr(&self) -> io::Result<SocketAddr> {
        match self.storage.ss_family as libc::c_int {
            libc::AF_INET => {
                let source = (&self.storage as *const libc::sockaddr_storage).cast();
                // SAFETY: the family says the storage holds a sockaddr_in, and
                // sockaddr_storage is aligned for it.
                let sin: libc::sockaddr_in = unsafe { std::ptr::read(source) };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
            }
            libc::AF_INET6 => {
                let source = (&self.storage as *const libc::sockaddr_storage).cast();
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6: libc::sockaddr_in6 = unsafe { std::ptr::read(source) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Ok(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into())
            }
            _ => Err(errno(libc::EAFNOSUPPORT)),
        }
    }
}

/// Reads the socket address a `connect` operation names, for the simulator,
/// which has no kernel to read it.
///
/// # Safety
///
/// `addr` must point at `len` readable bytes of a socket address, as the
/// `Operation::Connect` of an operation in flight guarantees.
pub(crate) unsafe fn socket_addr_from_raw(
    addr: *const libc::sockaddr,
    len: u32,
) -> io::Result<SocketAddr> {
    // SAFETY: the caller's promise, passed on.
    unsafe { RawAddr::copy_from(addr, len) }.socket_addr()
}

pub(crate) fn socket(domain: libc::c_int, kind: libc::c_int, nonblocking: bool) -> io::Result<Fd> {
    let mut flags = kind | libc::SOCK_CLOEXEC;
    if nonblocking {
        flags |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket(2) takes only integers.
    cvt(unsafe { libc::socket(domain, flags, 0) })
}

pub(crate) fn setsockopt_int(fd: Fd, level: i32, name: i32, value: i32) -> io::Result<()> {
    let value_ptr = (&value as *const i32).cast();
    let len = mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value_ptr` points at a live i32 of `len` bytes for the call.
    cvt(unsafe { libc::setsockopt(fd, level, name, value_ptr, len) }).map(drop)
}

pub(crate) fn bind(fd: Fd, addr: &SocketAddr) -> io::Result<()> {
    let raw = RawAddr::from_socket_addr(addr);
    // SAFETY: `raw` outlives the call and `raw.len` is its valid length.
    cvt(unsafe { libc::bind(fd, raw.as_ptr(), raw.len) }).map(drop)
}

pub(crate) fn bind_raw(fd: Fd, raw: &RawAddr) -> io::Result<()> {
    // SAFETY: `raw` outlives the call and `raw.len` is its valid length.
    cvt(unsafe { libc::bind(fd, raw.as_ptr(), raw.len) }).map(drop)
}

/// `getsockname(2)` (`peer` false) or `getpeername(2)`, of any family.
pub(crate) fn name_of(fd: Fd, peer: bool) -> io::Result<crate::addr::Address> {
    let mut raw = RawAddr::zeroed();
    let call = if peer {
        libc::getpeername
    } else {
        libc::getsockname
    };
    // SAFETY: `raw` is writable storage of `raw.len` bytes and outlives the call.
    cvt(unsafe { call(fd, raw.as_mut_ptr(), &mut raw.len) })?;
    raw.address()
}

/// `socketpair(2)` of Unix sockets of `kind`, close-on-exec.
pub(crate) fn socketpair(kind: libc::c_int) -> io::Result<(Fd, Fd)> {
    let mut fds = [0 as Fd; 2];
    // SAFETY: `fds` has room for the two descriptors the call writes.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            kind | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((fds[0], fds[1]))
}

pub(crate) fn listen(fd: Fd, backlog: u32) -> io::Result<()> {
    let backlog = backlog.min(i32::MAX as u32) as i32;
    // SAFETY: listen(2) takes only integers.
    cvt(unsafe { libc::listen(fd, backlog) }).map(drop)
}

pub(crate) fn local_addr(fd: Fd) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::zeroed();
    // SAFETY: `raw` is writable storage of `raw.len` bytes and outlives the call.
    cvt(unsafe { libc::getsockname(fd, raw.as_mut_ptr(), &mut raw.len) })?;
    raw.socket_addr()
}

pub(crate) fn peer_addr(fd: Fd) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::zeroed();
    // SAFETY: `raw` is writable storage of `raw.len` bytes and outlives the call.
    cvt(unsafe { libc::getpeername(fd, raw.as_mut_ptr(), &mut raw.len) })?;
    raw.socket_addr()
}

pub(crate) fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<Fd> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| errno(libc::EINVAL))?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })
}

pub(crate) fn ftruncate(fd: Fd, len_bytes: i64) -> io::Result<()> {
    // SAFETY: ftruncate(2) takes only integers; a bad fd yields EBADF.
    cvt(unsafe { libc::ftruncate(fd, len_bytes) }).map(drop)
}

pub(crate) fn eventfd() -> io::Result<Fd> {
    // SAFETY: eventfd(2) takes only integers.
    cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Adds `value` to an eventfd counter. Safe to call from any thread.
pub(crate) fn eventfd_write(fd: Fd, value: u64) -> io::Result<()> {
    let bytes = value.to_ne_bytes();
    // SAFETY: `bytes` is 8 readable bytes that outlive the call.
    let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    match written {
        8 => Ok(()),
        // The counter is saturated: the loop is already certain to wake.
        -1 if io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) => Ok(()),
        -1 => Err(io::Error::last_os_error()),
        _ => Err(errno(libc::EIO)),
    }
}

/// Resets an eventfd counter to zero; "nothing to read" is not an error.
pub(crate) fn eventfd_drain(fd: Fd) {
    let mut bytes = [0u8; 8];
    // SAFETY: `bytes` is 8 writable bytes that outlive the call. The eventfd is
    // non-blocking, so a zero counter returns EAGAIN, which is exactly "drained".
    let _ = unsafe { libc::read(fd, bytes.as_mut_ptr().cast(), bytes.len()) };
}
