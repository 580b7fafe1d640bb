//! Building the contenders and running them as child processes that are
//! always killed, even when the harness fails part-way.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::system;

/// ringio's own examples the echo, kv and memory workloads run as servers.
pub const RINGIO_EXAMPLES: [&str; 2] = ["echo_server", "kv_server"];
/// The peer servers, examples of this package (`benches/peers/`).
pub const PEER_EXAMPLES: [&str; 2] = ["bench_tokio_echo", "bench_uring_echo"];

/// The repository root: this package lives in its `benches/` folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ has a parent")
        .to_path_buf()
}

/// The cargo profile folder this bench was built into (`target/release`, or
/// its equivalent under `CARGO_TARGET_DIR`): the bench binary runs from its
/// `deps/` folder, and the examples it builds land in its `examples/`.
fn profile_dir() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
    });
    from_exe.unwrap_or_else(|| workspace_root().join("target/release"))
}

/// Where every artifact of the harness goes: results, data files, logs.
pub fn output_dir() -> PathBuf {
    profile_dir()
        .parent()
        .map_or_else(|| workspace_root().join("target"), Path::to_path_buf)
        .join("ringio-bench")
}

/// Builds the server examples in release mode with the same cargo that runs
/// this bench, niced so the shared machine stays usable: ringio's examples
/// from the `ringio` package, the peers from this one.
pub fn build_examples() -> io::Result<()> {
    build_package_examples("ringio", &RINGIO_EXAMPLES)?;
    build_package_examples(env!("CARGO_PKG_NAME"), &PEER_EXAMPLES)
}

fn build_package_examples(package: &str, examples: &[&str]) -> io::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "-p", package]);
    for example in examples {
        command.args(["--example", example]);
    }
    system::nice_child(&mut command, 10);
    let status = command.status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "cargo build of {package}'s examples failed: {status}"
        )));
    }
    Ok(())
}

/// The C liburing peer's source, built by [`build_c_peer`].
const C_PEER_SOURCE: &str = "benches/peers/uring_echo.c";

/// Builds the C liburing echo server (`benches/peers/uring_echo.c`) with
/// `cc -O2 ... -luring`, once per run, into the output directory. Only the
/// harness builds it, at run time, so `cargo test` and clippy never need a
/// C compiler or liburing. `Err` says what is missing.
pub fn build_c_peer() -> Result<PathBuf, String> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let binary = output_dir().join("uring_echo");
            std::fs::create_dir_all(output_dir()).map_err(|error| error.to_string())?;
            let source = workspace_root().join(C_PEER_SOURCE);
            let mut command = Command::new("cc");
            command
                .args(["-O2", "-Wall", "-o"])
                .arg(&binary)
                .arg(&source)
                .arg("-luring");
            system::nice_child(&mut command, 10);
            let output = command.output().map_err(|error| match error.kind() {
                io::ErrorKind::NotFound => {
                    "no C compiler: `cc` is not on the PATH (apt-get install gcc)".to_string()
                }
                _ => format!("cc: {error}"),
            })?;
            if output.status.success() {
                return Ok(binary);
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("liburing.h") || stderr.contains("-luring") {
                return Err(format!(
                    "liburing is not installed (apt-get install liburing-dev): cc: {}",
                    stderr.lines().next().unwrap_or_default()
                ));
            }
            Err(format!(
                "cc {C_PEER_SOURCE} failed ({}): {}",
                output.status,
                stderr.trim()
            ))
        })
        .clone()
}

/// The path of a release example binary.
pub fn example_path(name: &str) -> PathBuf {
    profile_dir().join("examples").join(name)
}

/// A running server. Dropping it kills the process and reaps it.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    /// The backend the server says it runs, from its first line.
    pub backend: String,
    child: Child,
    /// Kept open so that a server writing more to stdout never meets EPIPE.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `binary args...` pinned to the server core, and waits for its
    /// `listening on ADDR (backend: NAME)` line. On failure, the error
    /// carries the server's stderr, so callers can tell a missing flag from
    /// a crash.
    pub fn start(label: &str, binary: &Path, args: &[&str]) -> io::Result<Server> {
        let log_path = output_dir().join(format!("logs/{}.stderr", label.replace(' ', "_")));
        std::fs::create_dir_all(log_path.parent().expect("logs dir"))?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log_path)?);
        system::pin_child(&mut command, system::SERVER_CORE);
        let mut child = command
            .spawn()
            .map_err(|error| io::Error::other(format!("{}: {error}", binary.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        match parse_listening(&line) {
            Some((addr, backend)) => Ok(Server {
                addr,
                backend,
                child,
                _stdout: stdout,
            }),
            None => {
                let _ = child.kill();
                let status = child.wait()?;
                let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
                let detail = read.err().map(|e| e.to_string()).unwrap_or_default();
                Err(io::Error::other(format!(
                    "{label} did not start ({status}){detail}: {}",
                    stderr.trim()
                )))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `listening on 127.0.0.1:PORT (backend: NAME)`.
fn parse_listening(line: &str) -> Option<(SocketAddr, String)> {
    let rest = line.trim().strip_prefix("listening on ")?;
    let (addr, backend) = rest.split_once(" (backend: ")?;
    let backend = backend.strip_suffix(')')?;
    Some((addr.parse().ok()?, backend.to_string()))
}

/// Runs a command to completion with a time limit, killing it on timeout.
pub fn output_with_timeout(
    command: &mut Command,
    limit: Duration,
) -> io::Result<std::process::Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let guard_deadline = Instant::now() + limit;
    // Read stdout on a thread so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= guard_deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "child timed out"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_thread.join().expect("stdout reader")?;
    let stderr = err_thread.join().expect("stderr reader")?;
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}
