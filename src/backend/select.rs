//! Which backend an `IO` runs on: the one [`Config::backend`] names, else
//! the one `RINGIO_BACKEND` names, else io_uring, falling back to epoll
//! where io_uring is refused.
//!
//! [`Config::backend`]: crate::Config::backend

use std::fmt;
use std::io;
use std::str::FromStr;

use super::epoll::EpollBackend;
use super::io_uring::{IoUringBackend, RingFlags};
use super::AnyBackend;

/// The environment variable that forces a backend: `io_uring` or `epoll`.
/// Unset or empty means: io_uring if the kernel allows it, else epoll.
pub const BACKEND_ENV: &str = "RINGIO_BACKEND";

/// The I/O backends an [`IO`](crate::IO) can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Linux io_uring (kernel 5.11 or later): one syscall submits and reaps
    /// a whole batch. The default.
    IoUring,
    /// Linux epoll: readiness-based, with the same semantics. The fallback
    /// where io_uring is refused; see docs/backends.md for how it differs.
    Epoll,
    /// The deterministic simulator ([`crate::sim`]): virtual time, network
    /// and disk. Its `IO`s come from [`Simulator::io`](crate::sim::Simulator::io),
    /// never from a [`Config`](crate::Config) or `RINGIO_BACKEND`.
    Simulator,
}

impl BackendKind {
    /// The backend's name: `"io_uring"`, `"epoll"` or `"sim"`, as
    /// `RINGIO_BACKEND` and `echo_server --backend` spell the first two.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::Epoll => "epoll",
            BackendKind::Simulator => "sim",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = io::Error;

    /// Parses `io_uring` or `epoll`.
    ///
    /// # Errors
    ///
    /// `InvalidInput`, naming the accepted values, for anything else.
    fn from_str(name: &str) -> io::Result<BackendKind> {
        match name {
            "io_uring" => Ok(BackendKind::IoUring),
            "epoll" => Ok(BackendKind::Epoll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown ringio backend {other:?}: expected \"io_uring\" or \"epoll\""),
            )),
        }
    }
}

/// Opens the backend that `configured`, then `RINGIO_BACKEND`, ask for; with
/// neither, io_uring, or epoll if io_uring is refused.
pub(crate) fn open(
    configured: Option<BackendKind>,
    entries: u32,
    flags: RingFlags,
    registered_files: u32,
) -> io::Result<AnyBackend> {
    let forced = match configured {
        Some(kind) => Some(kind),
        None => backend_from_env()?,
    };
    match forced {
        Some(BackendKind::IoUring) => {
            IoUringBackend::new(entries, flags, registered_files).map(AnyBackend::IoUring)
        }
        Some(BackendKind::Epoll) => EpollBackend::new(entries).map(AnyBackend::Epoll),
        Some(BackendKind::Simulator) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a simulated IO comes from ringio::sim::Simulator::io, not from a Config",
        )),
        None => match IoUringBackend::new(entries, flags, registered_files) {
            Ok(backend) => Ok(AnyBackend::IoUring(backend)),
            Err(error) => {
                let Some(reason) = refusal_reason(&error) else {
                    return Err(error);
                };
                tracing::warn!(target: "ringio", %error, "io_uring unavailable ({reason}); falling back to epoll");
                EpollBackend::new(entries).map(AnyBackend::Epoll)
            }
        },
    }
}

fn backend_from_env() -> io::Result<Option<BackendKind>> {
    let Some(value) = std::env::var_os(BACKEND_ENV) else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    let name = value.to_string_lossy();
    name.parse().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{BACKEND_ENV}={name:?}: expected \"io_uring\" or \"epoll\""),
        )
    })
}

/// Why io_uring setup failed, if it is a refusal epoll can stand in for.
/// Other errors (a zero-sized ring) are the caller's and are returned.
fn refusal_reason(error: &io::Error) -> Option<&'static str> {
    match error.raw_os_error()? {
        libc::ENOSYS => Some("the kernel has no io_uring"),
        libc::EPERM => Some("refused by seccomp or kernel.io_uring_disabled"),
        libc::ENOMEM => Some("the locked-memory limit is too low for the ring"),
        libc::EOPNOTSUPP => Some("the kernel is older than 5.11"),
        _ => None,
    }
}
