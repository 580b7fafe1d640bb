//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::Cell;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ringio::sim::{SimOptions, Simulator};
use ringio::{BackendKind, Config, Handle, IO};

/// The seed of every simulator the conformance suite makes: one fixed world,
/// so that a failure on `sim::<test>` replays exactly.
pub const SIM_SEED: u64 = 0x5eed_c0f0;

/// The backends the conformance suite runs on. Each test is written once,
/// generic over this, and instantiated per backend with its name in the test
/// name (see `conformance!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The io_uring backend, with its registered file table (the default).
    IoUring,
    /// The io_uring backend without a registered file table
    /// (`Config::registered_files(0)`): every operation on a plain fd, as
    /// on a kernel that refuses the table.
    IoUringUnregistered,
    /// The epoll backend.
    Epoll,
    /// The deterministic simulator (`ringio::sim`), one node, faults off:
    /// what the node's `IO` does, with virtual time, network and disk.
    Sim,
}

impl Backend {
    /// The backend `IO::backend()` reports.
    pub fn kind(self) -> BackendKind {
        match self {
            Backend::IoUring | Backend::IoUringUnregistered => BackendKind::IoUring,
            Backend::Epoll => BackendKind::Epoll,
            Backend::Sim => BackendKind::Simulator,
        }
    }

    /// Whether the backend runs on the real kernel (its fds are real fds).
    pub fn is_kernel(self) -> bool {
        self != Backend::Sim
    }

    /// Whether the backend is io_uring, with or without registered files.
    pub fn is_io_uring(self) -> bool {
        matches!(self, Backend::IoUring | Backend::IoUringUnregistered)
    }

    /// An `IO` on this backend with the default configuration.
    pub fn io<C>(self) -> IO<C> {
        self.io_with(Config::new())
    }

    /// An `IO` on this backend with `config`.
    pub fn io_with<C>(self, config: Config) -> IO<C> {
        let io = self.try_io_with(config).expect("IO::with_config");
        assert_eq!(io.backend(), self.kind());
        io
    }

    /// An `IO` on this backend with `config`, or the error making it gave.
    /// On the simulator: a fresh world (seed [`SIM_SEED`], faults off) with
    /// one node; the `IO` keeps the world alive.
    pub fn try_io_with<C>(self, config: Config) -> io::Result<IO<C>> {
        match self {
            Backend::Sim => {
                let mut sim = Simulator::new(SIM_SEED, SimOptions::default().without_faults());
                let node = sim.add_node("conformance");
                sim.io_with_config(node, config)
            }
            Backend::IoUringUnregistered => {
                IO::with_config(config.backend(self.kind()).registered_files(0))
            }
            _ => IO::with_config(config.backend(self.kind())),
        }
    }
}

/// A connected TCP pair (client, server) made through `io`'s own loop:
/// listen on 127.0.0.1:0, connect, accept, then close the listener.
/// Both ends have `TCP_NODELAY`. Runs the loop (so callbacks already
/// queued may run too) until the pair is up.
pub fn tcp_pair_io<C>(io: &mut IO<C>, ctx: &mut C) -> (Handle, Handle) {
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let address = io.local_addr(listener).unwrap();
    let client = io.open_socket(address).unwrap();
    let accepted: Rc<Cell<Option<Handle>>> = Rc::default();
    let connected: Rc<Cell<bool>> = Rc::default();
    let listener_closed: Rc<Cell<bool>> = Rc::default();
    {
        let accepted = Rc::clone(&accepted);
        let listener_closed = Rc::clone(&listener_closed);
        io.accept(listener, move |io, _, result| {
            accepted.set(Some(result.expect("accept")));
            io.close(listener, move |_, _, result| {
                result.expect("close the listener");
                listener_closed.set(true);
            });
        });
    }
    {
        let connected = Rc::clone(&connected);
        io.connect(client, address, move |_, _, result| {
            result.expect("connect");
            connected.set(true);
        });
    }
    while accepted.get().is_none() || !connected.get() || !listener_closed.get() {
        io.run_for_ns(ctx, 1_000_000).unwrap();
    }
    let server = accepted.get().unwrap();
    io.set_nodelay(client, true).unwrap();
    io.set_nodelay(server, true).unwrap();
    (client, server)
}

/// Closes `fd` through `io`'s loop and runs until the close completed.
pub fn close_io<C>(io: &mut IO<C>, ctx: &mut C, fd: Handle) {
    let closed: Rc<Cell<bool>> = Rc::default();
    let done = Rc::clone(&closed);
    io.close(fd, move |_, _, result| {
        result.expect("close");
        done.set(true);
    });
    while !closed.get() {
        io.run_for_ns(ctx, 1_000_000).unwrap();
    }
}

/// Sends all of `data` on `fd` through `io`'s loop, and runs until it is sent.
pub fn send_all_io<C>(io: &mut IO<C>, ctx: &mut C, fd: Handle, data: &[u8]) {
    let sent = Rc::new(Cell::new(0usize));
    while sent.get() < data.len() {
        let before = sent.get();
        let done = Rc::clone(&sent);
        io.send(fd, data[before..].to_vec(), move |_, _, result, _| {
            done.set(before + result.expect("send"));
        });
        while sent.get() == before {
            io.run_for_ns(ctx, 1_000_000).unwrap();
        }
    }
}

/// Where a test's files live: a fresh scratch directory on a real file
/// system for the kernel backends (removed on drop), the simulated node's
/// own disk for the simulator (any path works there; no directory needed).
pub struct Scratch {
    dir: Option<PathBuf>,
}

impl Scratch {
    /// Scratch space named `name` for `backend`. The directory's name
    /// says the backend too: the io_uring and epoll instances of one case
    /// run in parallel in one process, and must not share it.
    pub fn new(backend: Backend, name: &str) -> Scratch {
        Scratch {
            dir: backend
                .is_kernel()
                .then(|| scratch_dir(&format!("{name}-{backend:?}"))),
        }
    }

    /// Scratch space named `name` for `backend`, under `base` on a kernel.
    pub fn under(base: &Path, backend: Backend, name: &str) -> Scratch {
        Scratch {
            dir: backend.is_kernel().then(|| {
                let dir = base.join(format!("ringio-{name}-{backend:?}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                dir
            }),
        }
    }

    /// The path of the file `file` in it.
    pub fn path(&self, file: &str) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.join(file),
            None => Path::new(file).to_path_buf(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A connected loopback TCP pair of blocking std sockets: (client, server).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

/// A connected loopback TCP pair made outside `io` and adopted by it:
/// (client, server) handles.
pub fn tcp_pair_adopted<C>(io: &mut IO<C>) -> (Handle, Handle) {
    let (client, server) = tcp_pair();
    let client = io.adopt(client.into()).expect("adopt");
    let server = io.adopt(server.into()).expect("adopt");
    (client, server)
}

/// A pipe: (read end, write end), blocking, close-on-exec.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(result, 0, "pipe2: {}", io::Error::last_os_error());
    use std::os::fd::FromRawFd;
    // SAFETY: pipe2 just returned this fd, owned by nobody else.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, for the other end.
    let write = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    (read, write)
}

/// The raw number of a descriptor `io` owns, for a libc call in a test.
pub fn raw<C>(io: &IO<C>, handle: Handle) -> RawFd {
    io.as_fd(handle).expect("as_fd").as_raw_fd()
}

/// Sets SO_LINGER to zero so that closing `fd` sends a reset (RST).
pub fn set_linger_zero(fd: BorrowedFd<'_>) {
    let fd = fd.as_raw_fd();
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
pub fn write_all(fd: BorrowedFd<'_>, data: &[u8]) {
    let fd = fd.as_raw_fd();
    let mut written = 0;
    while written < data.len() {
        let rest = &data[written..];
        // SAFETY: `rest` is valid for reads of its length.
        let count = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        assert!(count > 0, "write: {}", io::Error::last_os_error());
        written += count as usize;
    }
}

/// A fresh scratch directory on a real file system, under the target
/// directory (`CARGO_TARGET_TMPDIR`, which cargo sets only at compile time),
/// never in `/tmp`, which may be a tmpfs with other O_DIRECT rules.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
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
/// after the backend, so that a test's full name says which backend it ran
/// on: `io_uring::<test>`, `epoll::<test>`, `sim::<test>`.
///
/// Tests listed after `kernel_only:` run on io_uring and epoll only: they
/// need a real kernel object the simulator does not model (say why next to
/// each). One macro for both lists, because each backend's module can be
/// declared only once per test file.
#[allow(unused_macros)]
macro_rules! conformance {
    ($($test:ident),* $(,)? $(; kernel_only: $($kernel:ident),* $(,)?)?) => {
        mod io_uring {
            $(
                #[test]
                fn $test() {
                    super::$test(crate::util::Backend::IoUring);
                }
            )*
            $($(
                #[test]
                fn $kernel() {
                    super::$kernel(crate::util::Backend::IoUring);
                }
            )*)?
        }
        mod io_uring_unregistered {
            $(
                #[test]
                fn $test() {
                    super::$test(crate::util::Backend::IoUringUnregistered);
                }
            )*
            $($(
                #[test]
                fn $kernel() {
                    super::$kernel(crate::util::Backend::IoUringUnregistered);
                }
            )*)?
        }
        mod epoll {
            $(
                #[test]
                fn $test() {
                    super::$test(crate::util::Backend::Epoll);
                }
            )*
            $($(
                #[test]
                fn $kernel() {
                    super::$kernel(crate::util::Backend::Epoll);
                }
            )*)?
        }
        mod sim {
            $(
                #[test]
                fn $test() {
                    super::$test(crate::util::Backend::Sim);
                }
            )*
        }
    };
}

/// `target/<profile>/examples/<name>`, built once per test binary with the
/// test's own profile (`cargo test --test X` does not build examples).
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let test_exe = std::env::current_exe().expect("current_exe");
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let profile = profile_dir.file_name().and_then(|name| name.to_str());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.iter().any(|built| built == name) {
        build_example(name, profile);
        built.push(name.to_owned());
    }
    let binary = profile_dir.join("examples").join(name);
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

fn build_example(name: &str, profile: Option<&str>) {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut command = std::process::Command::new(env!("CARGO"));
    command.args(["build", "--example", name, "--manifest-path", manifest]);
    // target/debug is the `dev` profile; every other directory is named
    // after its profile.
    match profile {
        Some("debug") | None => {}
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "cargo build --example {name} failed");
}

/// Where the tests that hold the simulator's file model to ext4 put their
/// kernel files: `RINGIO_EXT4_DIR` if it is set, else the target directory
/// (`CARGO_TARGET_TMPDIR`, on the disk that holds the build). Never
/// `TMPDIR`, which CI may point at /dev/shm: tmpfs takes `O_DIRECT` as
/// buffered I/O, with none of ext4's rules.
pub fn ext4_base() -> PathBuf {
    match std::env::var_os("RINGIO_EXT4_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    }
}

/// How a kernel file system does `O_DIRECT`, as the simulator's file model
/// needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectIoGeometry {
    /// The alignment of offsets and lengths (`stx_dio_offset_align`: the
    /// device's logical block size).
    pub sector_bytes: u64,
    /// The alignment of buffer addresses (`stx_dio_mem_align`).
    pub memory_align_bytes: u64,
    /// The file system's block (`f_bsize`).
    pub block_bytes: u64,
}

/// The `O_DIRECT` geometry of the ext4 file system under `dir`, or why
/// there is none: the simulator's file model is ext4's (docs/simulation.md),
/// so the tests that compare the two need ext4 that does `O_DIRECT`.
pub fn ext4_geometry(dir: &Path) -> Result<DirectIoGeometry, String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_dir = CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: statfs is a plain C struct; all zeros is a valid value.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_dir` is NUL-terminated and `fs` is a valid out-pointer.
    if unsafe { libc::statfs(c_dir.as_ptr(), &mut fs) } != 0 {
        return Err(format!(
            "statfs {}: {}",
            dir.display(),
            io::Error::last_os_error()
        ));
    }
    // `f_type` and the magic numbers have different types on other targets.
    #[allow(clippy::unnecessary_cast)]
    let ext4 = fs.f_type as i64 == libc::EXT4_SUPER_MAGIC as i64;
    if !ext4 {
        return Err(format!(
            "{} is not on ext4 (f_type {:#x})",
            dir.display(),
            fs.f_type
        ));
    }
    let probe = dir.join(".ringio-direct-probe");
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe)
    };
    let file = file.map_err(|error| format!("O_DIRECT in {}: {error}", dir.display()))?;
    // SAFETY: statx is a plain C struct; all zeros is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let empty = c"";
    // SAFETY: `file` is open, `empty` is NUL-terminated (AT_EMPTY_PATH
    // names the fd itself), and `stx` is a valid out-pointer.
    let result = unsafe {
        libc::statx(
            file.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    let _ = std::fs::remove_file(&probe);
    if result != 0 || stx.stx_mask & libc::STATX_DIOALIGN == 0 || stx.stx_dio_offset_align == 0 {
        return Err(format!(
            "statx(STATX_DIOALIGN) on {}: {}",
            dir.display(),
            io::Error::last_os_error()
        ));
    }
    Ok(DirectIoGeometry {
        sector_bytes: u64::from(stx.stx_dio_offset_align),
        memory_align_bytes: u64::from(stx.stx_dio_mem_align),
        block_bytes: fs.f_bsize as u64,
    })
}
