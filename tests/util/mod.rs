//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{IntoRawFd, RawFd};
use std::path::PathBuf;

use ringio::{BackendKind, Config, IO};

/// The backends the conformance suite runs on. Each test is written once,
/// generic over this, and instantiated per backend with its name in the test
/// name (see `conformance!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The io_uring backend.
    IoUring,
    /// The epoll backend.
    Epoll,
}

impl Backend {
    /// The backend `IO::backend()` reports.
    pub fn kind(self) -> BackendKind {
        match self {
            Backend::IoUring => BackendKind::IoUring,
            Backend::Epoll => BackendKind::Epoll,
        }
    }

    /// An `IO` on this backend with the default configuration.
    pub fn io<C>(self) -> IO<C> {
        self.io_with(Config::new())
    }

    /// An `IO` on this backend with `config`.
    pub fn io_with<C>(self, config: Config) -> IO<C> {
        let io = IO::with_config(config.backend(self.kind())).expect("IO::with_config");
        assert_eq!(io.backend(), self.kind());
        io
    }
}

/// A connected loopback TCP pair of blocking sockets: (client, server).
pub fn tcp_pair() -> (RawFd, RawFd) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client.into_raw_fd(), server.into_raw_fd())
}

/// A pipe: (read end, write end), blocking, close-on-exec.
pub fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(result, 0, "pipe2: {}", io::Error::last_os_error());
    (fds[0], fds[1])
}

/// Closes an fd the test owns.
pub fn close(fd: RawFd) {
    // SAFETY: the test owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// Sets SO_LINGER to zero so that closing `fd` sends a reset (RST).
pub fn set_linger_zero(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct of the given size for the call.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0);
}

/// Writes all of `data` to `fd` synchronously.
pub fn write_all(fd: RawFd, data: &[u8]) {
    let mut written = 0;
    while written < data.len() {
        let rest = &data[written..];
        // SAFETY: `rest` is valid for reads of its length.
        let count = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        assert!(count > 0, "write: {}", io::Error::last_os_error());
        written += count as usize;
    }
}

/// A fresh scratch directory on a real file system (O_DIRECT needs one;
/// tmpfs refuses it), under the target directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("ringio-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// FNV-1a, 64-bit: a checksum with no dependency.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A deterministic byte pattern (xorshift), so payloads are not all equal.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Instantiates each named generic test for each backend, in a module named
/// after the backend, so that a test's full name says which backend it ran on.
#[allow(unused_macros)]
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod io_uring {
            $(
                #[test]
                fn $test() {
                    super::$test(crate::util::Backend::IoUring);
                }
            )*
        }
        mod epoll {
            $(
                #[test]
                fn $test() {
                    super::$test(crate::util::Backend::Epoll);
                }
            )*
        }
    };
}
