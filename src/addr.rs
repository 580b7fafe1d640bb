//! Socket addresses beyond `std::net`: Unix-domain names (paths, abstract
//! names, unnamed), and [`Address`], either kind, for the operations that
//! name a peer (`send_to`, `recv_from`, `send_msg`, `recv_msg`).
//!
//! A [`UnixAddr`] is a fixed-size `Copy` value, as a `sockaddr_un` is, so
//! that receiving a peer's name allocates nothing.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys::{self, RawAddr};

/// The bytes of `sockaddr_un::sun_path`.
const SUN_PATH_BYTES: usize = 108;

/// The offset of `sun_path` in `sockaddr_un`: the family before it.
const SUN_PATH_OFFSET: usize = mem::size_of::<libc::sa_family_t>();

/// A Unix-domain socket name: a path in the file system, a name in
/// Linux's abstract namespace (no file, gone with the last socket), or
/// unnamed (a socket that never bound, as a client's usually is).
///
/// # Examples
///
/// ```
/// use ringio::UnixAddr;
/// let path = UnixAddr::path("/tmp/ringio.sock")?;
/// assert_eq!(path.as_path(), Some(std::path::Path::new("/tmp/ringio.sock")));
/// let name = UnixAddr::abstract_name(b"ringio")?;
/// assert_eq!(name.as_abstract_name(), Some(&b"ringio"[..]));
/// assert!(UnixAddr::unnamed().is_unnamed());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnixAddr {
    /// `sun_path` as the kernel has it: a path without its NUL, or a NUL
    /// then the abstract name.
    bytes: [u8; SUN_PATH_BYTES],
    /// How many of `bytes` are used; 0 for an unnamed socket.
    len: u8,
}

impl UnixAddr {
    /// A name in the file system. Binding creates the socket file; it must
    /// not exist yet (remove a stale one first).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty path or one with a NUL byte; `ENAMETOOLONG`
    /// for a path of 108 bytes or more (the kernel's `sun_path`, with its NUL).
    pub fn path(path: impl AsRef<Path>) -> io::Result<UnixAddr> {
        let bytes = path.as_ref().as_os_str().as_bytes();
        if bytes.is_empty() || bytes.contains(&0) {
            return Err(sys::errno(libc::EINVAL));
        }
        if bytes.len() >= SUN_PATH_BYTES {
            return Err(sys::errno(libc::ENAMETOOLONG));
        }
        Ok(UnixAddr::from_sun_path(bytes))
    }

    /// A name in Linux's abstract namespace: no file is made, and the name
    /// is free again once no socket holds it. Any bytes, NULs included.
    ///
    /// # Errors
    ///
    /// `ENAMETOOLONG` for a name of more than 107 bytes.
    pub fn abstract_name(name: &[u8]) -> io::Result<UnixAddr> {
        if name.len() >= SUN_PATH_BYTES {
            return Err(sys::errno(libc::ENAMETOOLONG));
        }
        let mut bytes = [0u8; SUN_PATH_BYTES];
        bytes[1..=name.len()].copy_from_slice(name);
        Ok(UnixAddr {
            bytes,
            len: name.len() as u8 + 1,
        })
    }

    /// No name: what a socket that never bound reports.
    pub const fn unnamed() -> UnixAddr {
        UnixAddr {
            bytes: [0; SUN_PATH_BYTES],
            len: 0,
        }
    }

    /// The path, if this is a file-system name.
    pub fn as_path(&self) -> Option<&Path> {
        let used = &self.bytes[..usize::from(self.len)];
        match used.first() {
            Some(0) | None => None,
            Some(_) => Some(Path::new(OsStr::from_bytes(used))),
        }
    }

    /// The name, if this is an abstract name.
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        let used = &self.bytes[..usize::from(self.len)];
        match used.first() {
            Some(0) => Some(&used[1..]),
            _ => None,
        }
    }

    /// Whether this is the name of an unnamed socket.
    pub fn is_unnamed(&self) -> bool {
        self.len == 0
    }

    /// A name from `sun_path` bytes that are not NUL-terminated; `bytes`
    /// fits (at most 107 bytes).
    fn from_sun_path(used: &[u8]) -> UnixAddr {
        let mut bytes = [0u8; SUN_PATH_BYTES];
        bytes[..used.len()].copy_from_slice(used);
        UnixAddr {
            bytes,
            len: used.len() as u8,
        }
    }

    /// The raw `sockaddr_un`, for `bind`, `connect` and `sendmsg`.
    pub(crate) fn to_raw(self) -> RawAddr {
        let mut raw = RawAddr::zeroed();
        let mut sun = libc::sockaddr_un {
            sun_family: libc::AF_UNIX as libc::sa_family_t,
            sun_path: [0; SUN_PATH_BYTES],
        };
        for (to, from) in sun.sun_path.iter_mut().zip(&self.bytes) {
            *to = *from as libc::c_char;
        }
        // A path's length counts its NUL, as `SUN_LEN` does; an abstract
        // name's is exact, since its bytes are the whole name.
        let nul = usize::from(self.as_path().is_some());
        let len = SUN_PATH_OFFSET + usize::from(self.len) + nul;
        raw.set(sun, len as libc::socklen_t);
        raw
    }

    /// The name in a raw `sockaddr_un` of `len` bytes.
    pub(crate) fn from_raw(sun: &libc::sockaddr_un, len: usize) -> UnixAddr {
        let used = len.saturating_sub(SUN_PATH_OFFSET).min(SUN_PATH_BYTES);
        let mut bytes = [0u8; SUN_PATH_BYTES];
        for (to, from) in bytes.iter_mut().zip(&sun.sun_path[..used]) {
            *to = *from as u8;
        }
        let used = match bytes.first() {
            // A path ends at its first NUL, whatever the length said, and
            // keeps room for one (a 108-byte path without its NUL, which
            // Linux accepts, is cut to 107).
            Some(&first) if first != 0 => bytes[..used]
                .iter()
                .position(|&byte| byte == 0)
                .unwrap_or(used)
                .min(SUN_PATH_BYTES - 1),
            _ => used,
        };
        // Equal names must compare equal: nothing past the name.
        bytes[used..].fill(0);
        UnixAddr {
            bytes,
            len: used as u8,
        }
    }
}

impl fmt::Debug for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = self.as_path() {
            write!(f, "{path:?}")
        } else if let Some(name) = self.as_abstract_name() {
            write!(f, "@{:?}", String::from_utf8_lossy(name))
        } else {
            f.write_str("(unnamed)")
        }
    }
}

/// A socket address of either kind: IP (UDP, TCP) or Unix-domain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Address {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A Unix-domain name.
    Unix(UnixAddr),
}

impl Address {
    /// The IP address, if this is one.
    pub fn as_ip(&self) -> Option<SocketAddr> {
        match self {
            Address::Ip(address) => Some(*address),
            Address::Unix(_) => None,
        }
    }

    /// The Unix-domain name, if this is one.
    pub fn as_unix(&self) -> Option<&UnixAddr> {
        match self {
            Address::Unix(address) => Some(address),
            Address::Ip(_) => None,
        }
    }

    pub(crate) fn to_raw(self) -> RawAddr {
        match self {
            Address::Ip(address) => RawAddr::from_socket_addr(&address),
            Address::Unix(address) => address.to_raw(),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(address: SocketAddr) -> Address {
        Address::Ip(address)
    }
}

impl From<UnixAddr> for Address {
    fn from(address: UnixAddr) -> Address {
        Address::Unix(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_the_raw_form() {
        let names = [
            UnixAddr::path("/tmp/a.sock").unwrap(),
            UnixAddr::path("relative").unwrap(),
            UnixAddr::abstract_name(b"").unwrap(),
            UnixAddr::abstract_name(b"with\0nul").unwrap(),
            UnixAddr::abstract_name(&[7u8; 107]).unwrap(),
            UnixAddr::path("p".repeat(107)).unwrap(),
            UnixAddr::unnamed(),
        ];
        for name in names {
            let raw = name.to_raw();
            assert_eq!(raw.address().unwrap(), Address::Unix(name), "{name:?}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let errno = |result: io::Result<UnixAddr>| result.unwrap_err().raw_os_error();
        assert_eq!(errno(UnixAddr::path("")), Some(libc::EINVAL));
        assert_eq!(errno(UnixAddr::path("a\0b")), Some(libc::EINVAL));
        assert_eq!(
            errno(UnixAddr::path("p".repeat(108))),
            Some(libc::ENAMETOOLONG)
        );
        let long = [1u8; 108];
        assert_eq!(
            errno(UnixAddr::abstract_name(&long)),
            Some(libc::ENAMETOOLONG)
        );
    }
}
