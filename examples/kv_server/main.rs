//! A single-threaded Redis-protocol key-value server with a write-ahead log,
//! on ringio. Real clients work with it unmodified:
//!
//! ```text
//! cargo run --release --example kv_server -- --addr 127.0.0.1:6380 --dir ./kv-data
//! redis-cli -p 6380 set greeting hello
//! redis-benchmark -p 6380 -t set,get -P 16 -q
//! ```
//!
//! This file only parses arguments, builds the `IO` and drives it. The
//! server itself (`server.rs` and the modules it uses) does all of its I/O
//! through the `IO`, so the simulator can run it unchanged.

mod commands;
mod host;
mod journal;
mod keymap;
mod resp;
mod server;
mod store;
mod wal;

#[path = "../common/stdout.rs"]
mod stdout;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ringio::{BackendKind, Config, IO};

use journal::FsyncPolicy;
use server::{log, Server, ServerConfig};

/// How long each `run_for_ns` call lasts: also how soon a fatal error or
/// `--max-seconds` is noticed.
const RUN_SLICE_NS: u64 = 100_000_000;
/// The slice while recovery runs: how late "ready" may be printed.
const READY_POLL_NS: u64 = 1_000_000;
/// The log's file name inside `--dir`.
const WAL_FILE_NAME: &str = "wal.log";
/// `--compact-bytes`'s default: compact once the log has 64 MiB (and a
/// quarter of the last snapshot's size).
const DEFAULT_COMPACT_BYTES: u64 = 64 * 1024 * 1024;

const USAGE: &str = "\
usage: kv_server [--addr HOST:PORT] [--dir DIR] [--fsync always|everysec|no]
                 [--appendonly yes|no] [--backend io_uring|epoll] [--requirepass PASSWORD]
                 [--compact-bytes N] [--max-seconds N]

  --addr HOST:PORT   address to listen on (default 127.0.0.1:6380; port 0 picks one)
  --dir DIR          directory for the write-ahead log, created if missing
                     (default ./kv-data; the log is DIR/wal.log)
  --fsync POLICY     always: reply to a write after the fsync that covers it
                     (default); everysec: fsync about once a second; no: never
  --appendonly yes|no
                     yes: keep the write-ahead log (default); no: a cache, as
                     Redis with appendonly no and no saves: the log is neither
                     read at start nor written, and data is lost at exit
  --backend NAME     force a backend (default: RINGIO_BACKEND, else io_uring,
                     falling back to epoll where io_uring is refused)
  --requirepass PASSWORD
                     clients must AUTH with PASSWORD (default: no password,
                     every connection is authenticated, as in Redis)
  --compact-bytes N  compact the log (snapshot DIR/wal.log.snapshot, then cut
                     the log) once it has N bytes and a quarter of the
                     last snapshot's size (default 67108864; 0: never,
                     except on BGREWRITEAOF)
  --max-seconds N    exit after about N seconds (default: run forever)
  --help             print this help";

/// The parsed command line.
struct Args {
    addr: SocketAddr,
    dir: PathBuf,
    fsync: FsyncPolicy,
    backend: Option<BackendKind>,
    requirepass: Option<Vec<u8>>,
    max_seconds: Option<u64>,
    compact_bytes: u64,
    /// `--appendonly no`: no log (a cache).
    appendonly: bool,
}

fn main() -> ExitCode {
    // Shows ringio's warnings, such as why it fell back to epoll.
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        // `kv_server --help | head -3` exits quietly, with success.
        Ok(None) => return stdout::print_help("kv_server", USAGE),
        Err(message) => {
            log(format_args!("{message}\n{USAGE}"));
            return ExitCode::from(2);
        }
    };
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log(format_args!("{message}"));
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        addr: "127.0.0.1:6380".parse().expect("valid default address"),
        dir: PathBuf::from("./kv-data"),
        fsync: FsyncPolicy::Always,
        backend: None,
        requirepass: None,
        max_seconds: None,
        compact_bytes: DEFAULT_COMPACT_BYTES,
        appendonly: true,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--addr" => {
                let text = value()?;
                parsed.addr = text.parse().map_err(|_| format!("bad address {text:?}"))?;
            }
            "--dir" => parsed.dir = PathBuf::from(value()?),
            "--requirepass" => {
                let password = value()?;
                parsed.requirepass = (!password.is_empty()).then(|| password.into_bytes());
            }
            "--fsync" => parsed.fsync = value()?.parse()?,
            "--appendonly" => {
                parsed.appendonly = match value()?.as_str() {
                    "yes" => true,
                    "no" => false,
                    text => return Err(format!("bad --appendonly {text:?}: yes or no")),
                }
            }
            "--backend" => {
                let text = value()?;
                parsed.backend = Some(text.parse().map_err(|error| format!("{error}"))?);
            }
            "--compact-bytes" => {
                let text = value()?;
                parsed.compact_bytes = text.parse().map_err(|_| format!("bad number {text:?}"))?;
            }
            "--max-seconds" => {
                let text = value()?;
                let seconds = text.parse().map_err(|_| format!("bad number {text:?}"))?;
                parsed.max_seconds = Some(seconds);
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Some(parsed))
}

/// How long a start whose address is taken is retried.
const ADDR_IN_USE_RETRY_NS: u64 = 1_000_000_000;

/// [`Server::start`], retried for up to a second while its address is in
/// use (`EADDRINUSE`): a kv_server killed on io_uring leaves its
/// listening socket to the kernel's asynchronous teardown of its ring,
/// which lets the port go some tens of milliseconds after the process is
/// gone, so that a restart at once would otherwise fail. (A clean exit
/// lets the port go at once: the `IO`'s drop releases the ring's files.)
/// The listen is the start's first step, so a refused one changed nothing.
fn start_retrying(io: &mut IO<Server>, config: ServerConfig) -> io::Result<Server> {
    let started_ns = io.now_ns();
    loop {
        match Server::start(io, config.clone()) {
            Err(error)
                if error.raw_os_error() == Some(libc::EADDRINUSE)
                    && io.now_ns() - started_ns < ADDR_IN_USE_RETRY_NS =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Runs the server until `--max-seconds` passes or a SHUTDOWN is done,
/// or a fatal error (the `Err`).
fn serve(args: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|error| format!("creating {}: {error}", args.dir.display()))?;
    let mut config = Config::new();
    if let Some(backend) = args.backend {
        config = config.backend(backend);
    }
    let mut io: IO<Server> = IO::with_config(config).map_err(|error| error.to_string())?;
    let server_config = ServerConfig {
        addr: args.addr,
        wal_path: args.dir.join(WAL_FILE_NAME),
        fsync: args.fsync,
        ack_before_fsync: false,
        compact_bytes: args.compact_bytes,
        appendonly: args.appendonly,
        log_bug: None,
        requirepass: args.requirepass.clone(),
        host: host::host_info(&io.backend().to_string()),
    };
    let mut server = start_retrying(&mut io, server_config)
        .map_err(|error| format!("starting on {}: {error}", args.addr))?;
    // One write of the whole line, flushed: tests read it through a pipe.
    // It names the backend really running, never the one asked for.
    let line = format!(
        "listening on {} (backend: {})\n",
        server.local_addr(),
        io.backend()
    );
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(line.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("stdout: {error}"))?;
    drop(stdout);

    let deadline_ns = args.max_seconds.map(|seconds| {
        io.now_ns()
            .saturating_add(seconds.saturating_mul(1_000_000_000))
    });
    let mut announced = false;
    loop {
        // Short slices until recovery is done, so "ready" is printed when
        // it is, not at the end of a 100 ms slice.
        let slice_ns = if announced && !server.shutdown_requested() {
            RUN_SLICE_NS
        } else {
            READY_POLL_NS
        };
        io.run_for_ns(&mut server, slice_ns)
            .map_err(|error| format!("event loop: {error}"))?;
        if let Some(message) = server.fatal() {
            return Err(message.to_string());
        }
        if server.ready() && !announced {
            announced = true;
            // The CPU time so far, nearly all of it recovery's: on a busy
            // machine a steadier measure of replay than the wall time
            // (benches/scripts/kv_restart.sh reads it).
            match cpu_ns() {
                Some(cpu_ns) => log(format_args!(
                    "ready (CPU time since start: {}.{:03} ms)",
                    cpu_ns / 1_000_000,
                    cpu_ns / 1_000 % 1_000
                )),
                None => log(format_args!("ready")),
            }
        }
        if server.shutdown_complete() {
            // Dropping the server and the `IO` closes every connection.
            log(format_args!(
                "SHUTDOWN: the log is durable; exiting, {} clients connected",
                server.connection_count()
            ));
            return Ok(());
        }
        if deadline_ns.is_some_and(|deadline_ns| io.now_ns() >= deadline_ns) {
            log(format_args!(
                "exiting after --max-seconds, {} clients connected",
                server.connection_count()
            ));
            return Ok(());
        }
    }
}

/// The time this thread (the loop's, the only one) has run on a CPU, from
/// the kernel's scheduler statistics; `None` where they are missing.
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
