//! A TCP echo server on ringio: thousands of concurrent clients, any message
//! size, one thread.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7878
//! cargo run --release --example echo_server -- --backend epoll
//! ```
//!
//! Each connection runs one operation at a time: recv into its buffer, send
//! all of it back (resending the rest after a short send), recv again. The
//! buffer moves through the callbacks and is reused, so a message costs no
//! allocation. Per-connection state lives in the server's slab, and callbacks
//! capture only a connection index, so every handler is stored inline in its
//! completion slot.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use ringio::{BackendKind, Config, Handle, IO};

#[path = "common/stdout.rs"]
mod stdout;

/// Bytes one recv may fill; also the buffer each connection keeps.
const BUFFER_BYTES: usize = 16 * 1024;
/// Pending connections the kernel queues before we accept them.
const LISTEN_BACKLOG: u32 = 4096;
/// How long to wait before accepting again after an accept error (such as
/// EMFILE): retrying at once would spin while no fd is free.
const ACCEPT_RETRY_NS: u64 = 50_000_000;
/// How long each `run_for_ns` call lasts.
const RUN_SLICE_NS: u64 = 1_000_000_000;

const USAGE: &str = "\
usage: echo_server [--addr HOST:PORT] [--backend io_uring|epoll] [--max-seconds N]

  --addr HOST:PORT   address to listen on (default 127.0.0.1:7878; port 0 picks one)
  --backend NAME     force a backend (default: RINGIO_BACKEND, else io_uring,
                     falling back to epoll where io_uring is refused)
  --max-seconds N    exit after about N seconds (default: run forever)
  --help             print this help";

struct Args {
    addr: SocketAddr,
    backend: Option<BackendKind>,
    max_seconds: Option<u64>,
}

/// One accepted client. Its buffer is not here: it travels with the one
/// operation the connection has in flight.
struct Connection {
    socket: Handle,
}

/// The application state every callback receives.
struct Server {
    listener: Handle,
    /// Connections by index; `None` marks a free entry.
    connections: Vec<Option<Connection>>,
    free_indices: Vec<u32>,
    /// Buffers of closed connections, reused by new ones.
    spare_buffers: Vec<Vec<u8>>,
    accepted: u64,
    closed: u64,
    bytes_echoed: u64,
}

fn main() -> ExitCode {
    // Shows ringio's warnings, such as why it fell back to epoll.
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        // `echo_server --help | head -3` exits quietly, with success.
        Ok(None) => return stdout::print_help("echo_server", USAGE),
        Err(message) => {
            eprintln!("echo_server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("echo_server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        addr: "127.0.0.1:7878".parse().expect("valid default address"),
        backend: None,
        max_seconds: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--addr" => {
                let text = value()?;
                parsed.addr = text.parse().map_err(|_| format!("bad address {text:?}"))?;
            }
            "--backend" => {
                let text = value()?;
                parsed.backend = Some(text.parse().map_err(|error| format!("{error}"))?);
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

fn serve(args: &Args) -> io::Result<()> {
    raise_fd_limit();
    let mut config = Config::new();
    if let Some(backend) = args.backend {
        config = config.backend(backend);
    }
    // The IO chooses, and may fall back: the line below names the backend
    // that is really running, never the one asked for.
    let mut io: IO<Server> = IO::with_config(config)?;
    let listener = io.listen(args.addr, LISTEN_BACKLOG)?;
    let bound = io.local_addr(listener)?;
    // One write of the whole line, flushed: tests read it through a pipe.
    let line = format!("listening on {bound} (backend: {})\n", io.backend());
    let mut stdout = io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()?;
    drop(stdout);

    let mut server = Server::new(listener);
    accept_next(&mut io, &mut server);
    let deadline_ns = args.max_seconds.map(|seconds| {
        io.now_ns()
            .saturating_add(seconds.saturating_mul(1_000_000_000))
    });
    loop {
        io.run_for_ns(&mut server, RUN_SLICE_NS)?;
        if deadline_ns.is_some_and(|deadline_ns| io.now_ns() >= deadline_ns) {
            break;
        }
    }
    eprintln!(
        "echo_server: accepted {}, closed {}, echoed {} bytes",
        server.accepted, server.closed, server.bytes_echoed
    );
    Ok(())
}

/// Thousands of clients need thousands of fds; the default soft limit is
/// often 1024 while the hard limit is far higher.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        eprintln!("echo_server: getrlimit: {}", io::Error::last_os_error());
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        eprintln!("echo_server: setrlimit: {}", io::Error::last_os_error());
    }
}

impl Server {
    fn new(listener: Handle) -> Server {
        Server {
            listener,
            connections: Vec::new(),
            free_indices: Vec::new(),
            spare_buffers: Vec::new(),
            accepted: 0,
            closed: 0,
            bytes_echoed: 0,
        }
    }

    fn insert(&mut self, connection: Connection) -> u32 {
        if let Some(index) = self.free_indices.pop() {
            self.connections[index as usize] = Some(connection);
            return index;
        }
        let index = u32::try_from(self.connections.len()).expect("fewer than 2^32 connections");
        self.connections.push(Some(connection));
        index
    }

    fn socket(&self, index: u32) -> Handle {
        self.connections[index as usize]
            .as_ref()
            .expect("a connection with an operation in flight is open")
            .socket
    }

    fn take_buffer(&mut self) -> Vec<u8> {
        self.spare_buffers
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_BYTES))
    }
}

/// Keeps exactly one accept in flight, for as long as the server runs.
fn accept_next(io: &mut IO<Server>, server: &mut Server) {
    io.accept(server.listener, on_accept);
}

fn on_accept(io: &mut IO<Server>, server: &mut Server, result: io::Result<Handle>) {
    match result {
        Ok(socket) => {
            accept_next(io, server);
            start_connection(io, server, socket);
        }
        Err(error) => {
            // EMFILE/ENFILE and the like pass once fds are freed: back off
            // rather than spin, and never give up on the listener.
            eprintln!("echo_server: accept: {error}; retrying shortly");
            io.timeout(ACCEPT_RETRY_NS, |io, server, _expired| {
                accept_next(io, server)
            });
        }
    }
}

fn start_connection(io: &mut IO<Server>, server: &mut Server, socket: Handle) {
    server.accepted += 1;
    // Echo is request-response: small replies must not wait for Nagle.
    if let Err(error) = io.set_nodelay(socket, true) {
        // Named by its kernel fd number, as before handles.
        let name = io.as_fd(socket).map_or_else(
            |_| format!("{socket:?}"),
            |fd| format!("fd {}", fd.as_raw_fd()),
        );
        eprintln!("echo_server: TCP_NODELAY on {name}: {error}");
    }
    let index = server.insert(Connection { socket });
    let buf = server.take_buffer();
    recv_next(io, server, index, buf);
}

fn recv_next(io: &mut IO<Server>, server: &mut Server, index: u32, mut buf: Vec<u8>) {
    buf.clear();
    io.recv(server.socket(index), buf, move |io, server, result, buf| {
        on_recv(io, server, index, result, buf)
    });
}

fn on_recv(
    io: &mut IO<Server>,
    server: &mut Server,
    index: u32,
    result: io::Result<usize>,
    buf: Vec<u8>,
) {
    match result {
        // The peer closed its side. Everything it sent was echoed before
        // this recv started, so there is nothing left to send.
        Ok(0) => close_connection(io, server, index, buf),
        Ok(_) => send_pending(io, server, index, buf),
        Err(error) => {
            log_unless_peer_gone("recv", &error);
            close_connection(io, server, index, buf);
        }
    }
}

/// Sends `buf`, which holds exactly the bytes not yet echoed.
fn send_pending(io: &mut IO<Server>, server: &mut Server, index: u32, buf: Vec<u8>) {
    io.send(server.socket(index), buf, move |io, server, result, buf| {
        on_send(io, server, index, result, buf)
    });
}

fn on_send(
    io: &mut IO<Server>,
    server: &mut Server,
    index: u32,
    result: io::Result<usize>,
    mut buf: Vec<u8>,
) {
    match result {
        Ok(sent) => {
            server.bytes_echoed += sent as u64;
            if sent < buf.len() {
                // A short send: keep the unsent tail, in place, and send it.
                buf.drain(..sent);
                send_pending(io, server, index, buf);
            } else {
                recv_next(io, server, index, buf);
            }
        }
        Err(error) => {
            log_unless_peer_gone("send", &error);
            close_connection(io, server, index, buf);
        }
    }
}

/// Frees the connection's slot and buffer at once (no operation of it is in
/// flight any more), then closes its socket.
fn close_connection(io: &mut IO<Server>, server: &mut Server, index: u32, buf: Vec<u8>) {
    let connection = server.connections[index as usize]
        .take()
        .expect("closing an open connection");
    server.free_indices.push(index);
    server.spare_buffers.push(buf);
    server.closed += 1;
    io.close(connection.socket, |_io, _server, result| {
        if let Err(error) = result {
            eprintln!("echo_server: close: {error}");
        }
    });
}

/// A client that resets or vanishes is routine for a server, not news.
fn log_unless_peer_gone(operation: &str, error: &io::Error) {
    let peer_gone = matches!(
        error.raw_os_error(),
        Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ETIMEDOUT)
    );
    if !peer_gone {
        eprintln!("echo_server: {operation}: {error}");
    }
}
