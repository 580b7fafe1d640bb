//! An echo server on ringio: thousands of concurrent clients, any message
//! size, one thread, over TCP, UDP or a Unix stream socket.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7878
//! cargo run --release --example echo_server -- --backend epoll
//! cargo run --release --example echo_server -- --proto udp --addr 127.0.0.1:7879
//! cargo run --release --example echo_server -- --proto unix --addr /tmp/echo.sock
//! ```
//!
//! A Unix stream connection is served exactly as a TCP one. Over UDP each
//! datagram is sent back to its sender whole: one `recv_from` is armed at
//! a time, and up to 64 datagrams are being sent back at once.
//!
//! With `--recv single` (the default) each connection runs one operation at
//! a time: recv into its buffer, send all of it back (resending the rest
//! after a short send), recv again. The buffer moves through the callbacks
//! and is reused, so a message costs no allocation. Per-connection state
//! lives in the server's slab, and callbacks capture only a connection
//! index, so every handler is stored inline in its completion slot.
//!
//! With `--recv multishot` one `accept_multi` takes every connection, and
//! each connection has one `recv_multi` from a pool shared by all of them
//! (`--pool-buffers` of 16 KiB): an idle connection holds no buffer. The
//! pool buffers received are sent back as they are, in order: all those
//! waiting (up to 8) in one vectored `send_msg`, one send at a time per
//! connection, each buffer going back to the pool as soon as it is sent.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use std::collections::VecDeque;

use ringio::{BackendKind, BufPool, Config, Flow, Handle, IoBufExt, PoolBuf, Slice, UnixAddr, IO};
use slab::Slab;

#[path = "common/stdout.rs"]
mod stdout;

/// Bytes one recv may fill; also the buffer each connection keeps.
const BUFFER_BYTES: usize = 16 * 1024;
/// Pending connections the kernel queues before we accept them.
const LISTEN_BACKLOG: u32 = 4096;
/// How long to wait before accepting again after an accept error (such as
/// EMFILE): retrying at once would spin while no fd is free.
const ACCEPT_RETRY_NS: u64 = 50_000_000;
/// How long a stream that the dry pool ended waits, at most, to be re-armed.
const STARVED_RETRY_NS: u64 = 1_000_000;
/// Pool buffers one connection may hold waiting to be echoed before its
/// receiving pauses.
const PENDING_MAX: usize = 8;
/// Datagrams a UDP server holds at once (received, being sent back).
const UDP_BUFFERS: usize = 64;
/// Room for the largest UDP datagram (65,507 bytes over IPv4).
const DATAGRAM_BYTES: usize = 64 * 1024;
/// How long each `run_for_ns` call lasts.
const RUN_SLICE_NS: u64 = 1_000_000_000;

const USAGE: &str = "\
usage: echo_server [--proto tcp|udp|unix] [--addr ADDR] [--backend io_uring|epoll]
                   [--recv single|multishot] [--pool-buffers N] [--max-seconds N]

  --proto NAME       tcp (default), udp, or unix (a Unix stream socket)
  --addr ADDR        HOST:PORT to listen on (default 127.0.0.1:7878; port 0
                     picks one); for unix a path (a stale socket file there
                     is replaced), or @NAME for an abstract name
  --backend NAME     force a backend (default: RINGIO_BACKEND, else io_uring,
                     falling back to epoll where io_uring is refused)
  --recv MODE        single: one recv per message into the connection's own
                     buffer (default); multishot: accept_multi, and recv_multi
                     from a pool shared by every connection (for udp, which
                     needs each datagram's sender, recv_from either way:
                     see the note it prints)
  --pool-buffers N   buffers of 16 KiB in the multishot pool (default 4096)
  --ring FLAGS       io_uring set-up: default (= defer), plain (no task-run
                     flags), coop (COOP_TASKRUN), defer (SINGLE_ISSUER and
                     DEFER_TASKRUN), or sqpoll (SQPOLL, 1 s idle, with
                     SINGLE_ISSUER)
  --registered-files N
                     io_uring's registered file table behind the handles:
                     N slots (default 4096; 0: plain fds)
  --max-seconds N    exit after about N seconds (default: run forever)
  --help             print this help";

/// What `--proto` asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Tcp,
    Udp,
    Unix,
}

struct Args {
    proto: Proto,
    /// `--addr` as given: parsed once the protocol is known.
    addr: String,
    backend: Option<BackendKind>,
    multishot: bool,
    pool_buffers: u16,
    ring: Option<String>,
    registered_files: Option<u32>,
    max_seconds: Option<u64>,
}

/// One accepted client. In single mode its buffer is not here: it travels
/// with the one operation the connection has in flight. In multishot mode
/// `pending` holds the pool buffers received and not yet echoed.
struct Connection {
    socket: Handle,
    pending: VecDeque<PoolBuf>,
    /// The `Vec` a send of pending buffers goes in, kept for its capacity
    /// (empty, or away with the send in flight).
    batch: Vec<Slice<PoolBuf>>,
    sending: bool,
    /// The receive stream ended (end of stream, or an error): close once
    /// everything pending is echoed.
    done: bool,
    /// Closing: callbacks still to come (cancelled by the close) do nothing.
    closing: bool,
    /// Receiving stopped because `PENDING_MAX` buffers wait to be echoed (a
    /// client that does not read): resumed as they drain, so that one slow
    /// client cannot take the whole shared pool.
    paused: bool,
    /// A `recv_multi` stream is armed (its last call has not come yet).
    receiving: bool,
}

/// The application state every callback receives.
struct Server {
    listener: Handle,
    /// Connections by index (a slab reuses the index of a closed one).
    connections: Slab<Connection>,
    /// Buffers of closed connections, reused by new ones.
    spare_buffers: Vec<Vec<u8>>,
    accepted: u64,
    closed: u64,
    bytes_echoed: u64,
    /// Send operations that completed: with `bytes_echoed`, the mean bytes
    /// per send, which shows how the two receive modes batch.
    sends: u64,
    /// The multishot pool, and the connections whose receive stream ended
    /// with `ENOBUFS`, to re-arm as buffers come back.
    pool: Option<BufPool>,
    starved: Vec<u32>,
    /// A timer that re-arms every starved stream is pending.
    starved_timer: bool,
    /// Over UDP: the one `recv_from` is armed.
    udp_receiving: bool,
    /// Connections are Unix streams (no TCP options).
    unix: bool,
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
        proto: Proto::Tcp,
        addr: "127.0.0.1:7878".to_owned(),
        backend: None,
        multishot: false,
        pool_buffers: 4096,
        ring: None,
        registered_files: None,
        max_seconds: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--addr" => parsed.addr = value()?,
            "--proto" => {
                parsed.proto = match value()?.as_str() {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    "unix" => Proto::Unix,
                    other => return Err(format!("--proto takes tcp, udp or unix, not {other:?}")),
                }
            }
            "--backend" => {
                let text = value()?;
                parsed.backend = Some(text.parse().map_err(|error| format!("{error}"))?);
            }
            "--recv" => match value()?.as_str() {
                "single" => parsed.multishot = false,
                "multishot" => parsed.multishot = true,
                other => return Err(format!("--recv takes single or multishot, not {other:?}")),
            },
            "--ring" => {
                let text = value()?;
                if !matches!(
                    text.as_str(),
                    "default" | "plain" | "coop" | "defer" | "sqpoll"
                ) {
                    return Err(format!(
                        "--ring takes default, plain, coop, defer or sqpoll, not {text:?}"
                    ));
                }
                parsed.ring = Some(text);
            }
            "--pool-buffers" => {
                let text = value()?;
                let count = text.parse().map_err(|_| format!("bad number {text:?}"))?;
                if count == 0 || count > ringio::POOL_BUFFERS_MAX {
                    return Err(format!(
                        "--pool-buffers takes 1 to {}",
                        ringio::POOL_BUFFERS_MAX
                    ));
                }
                parsed.pool_buffers = count;
            }
            "--registered-files" => {
                let text = value()?;
                let slots = text.parse().map_err(|_| format!("bad number {text:?}"))?;
                parsed.registered_files = Some(slots);
            }
            "--max-seconds" => {
                let text = value()?;
                let seconds = text.parse().map_err(|_| format!("bad number {text:?}"))?;
                parsed.max_seconds = Some(seconds);
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if parsed.proto != Proto::Unix {
        let text = &parsed.addr;
        text.parse::<SocketAddr>()
            .map_err(|_| format!("bad address {text:?}"))?;
    }
    Ok(Some(parsed))
}

fn serve(args: &Args) -> io::Result<()> {
    raise_fd_limit();
    let mut config = Config::new();
    if let Some(backend) = args.backend {
        config = config.backend(backend);
    }
    config = match args.ring.as_deref() {
        Some("plain") => config
            .coop_taskrun(false)
            .defer_taskrun(false)
            .single_issuer(false),
        Some("coop") => config
            .defer_taskrun(false)
            .single_issuer(false)
            .coop_taskrun(true),
        Some("defer") => config.defer_taskrun(true),
        Some("sqpoll") => config.defer_taskrun(false).sqpoll_idle_ms(Some(1_000)),
        _ => config,
    };
    if let Some(slots) = args.registered_files {
        config = config.registered_files(slots);
    }
    // The IO chooses, and may fall back: the line below names the backend
    // that is really running, never the one asked for.
    let mut io: IO<Server> = IO::with_config(config)?;
    let (listener, bound) = open_listener(&mut io, args)?;
    // One write of the whole line, flushed: tests read it through a pipe.
    let line = format!("listening on {bound} (backend: {})\n", io.backend());
    let mut stdout = io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()?;
    drop(stdout);

    let mut server = Server::new(listener);
    server.unix = args.proto == Proto::Unix;
    if args.proto == Proto::Udp {
        if args.multishot {
            eprintln!(
                "echo_server: note: --recv multishot over udp serves with recv_from: \
                 a multishot receive into pool buffers does not report each \
                 datagram's sender, which an echo needs"
            );
        }
        server.spare_buffers = (0..UDP_BUFFERS)
            .map(|_| Vec::with_capacity(DATAGRAM_BYTES))
            .collect();
        udp_recv(&mut io, &mut server, listener);
    } else if args.multishot {
        server.pool = Some(io.register_buf_pool(args.pool_buffers, BUFFER_BYTES as u32)?);
        accept_many(&mut io, &mut server);
    } else {
        accept_next(&mut io, &mut server);
    }
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
        "echo_server: accepted {}, closed {}, echoed {} bytes in {} sends, {} handlers boxed",
        server.accepted,
        server.closed,
        server.bytes_echoed,
        server.sends,
        io.stats().callbacks_boxed
    );
    Ok(())
}

/// The listening socket `--proto` and `--addr` ask for, and the address
/// to print.
fn open_listener(io: &mut IO<Server>, args: &Args) -> io::Result<(Handle, String)> {
    match args.proto {
        Proto::Tcp => {
            let addr: SocketAddr = args.addr.parse().expect("checked by parse_args");
            let listener = io.listen(addr, LISTEN_BACKLOG)?;
            Ok((listener, io.local_addr(listener)?.to_string()))
        }
        Proto::Udp => {
            let addr: SocketAddr = args.addr.parse().expect("checked by parse_args");
            let socket = io.open_udp(addr)?;
            Ok((socket, io.local_addr(socket)?.to_string()))
        }
        Proto::Unix => {
            let address = match args.addr.strip_prefix('@') {
                Some(name) => UnixAddr::abstract_name(name.as_bytes())?,
                None => {
                    remove_stale_socket(&args.addr);
                    UnixAddr::path(&args.addr)?
                }
            };
            let listener = io.listen_unix(&address, LISTEN_BACKLOG)?;
            Ok((listener, args.addr.clone()))
        }
    }
}

/// Removes a socket file left at `path` by an earlier run (never any
/// other kind of file), so that binding there succeeds.
fn remove_stale_socket(path: &str) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket());
    if is_socket {
        if let Err(error) = std::fs::remove_file(path) {
            eprintln!("echo_server: removing the stale socket {path}: {error}");
        }
    }
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
            connections: Slab::new(),
            spare_buffers: Vec::new(),
            accepted: 0,
            closed: 0,
            bytes_echoed: 0,
            sends: 0,
            pool: None,
            starved: Vec::new(),
            starved_timer: false,
            udp_receiving: false,
            unix: false,
        }
    }

    fn connection(&mut self, index: u32) -> &mut Connection {
        self.connections
            .get_mut(index as usize)
            .expect("a connection with an operation in flight is open")
    }

    /// The connection, unless it is closing.
    fn live(&mut self, index: u32) -> Option<&mut Connection> {
        let connection = self.connection(index);
        (!connection.closing).then_some(connection)
    }

    fn insert(&mut self, connection: Connection) -> u32 {
        let index = self.connections.insert(connection);
        u32::try_from(index).expect("fewer than 2^32 connections")
    }

    fn socket(&self, index: u32) -> Handle {
        self.connections
            .get(index as usize)
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
    // Echo is request-response: small replies must not wait for Nagle (a
    // Unix stream has none to turn off).
    let nodelay = if server.unix {
        Ok(())
    } else {
        io.set_nodelay(socket, true)
    };
    if let Err(error) = nodelay {
        // Named by its kernel fd number, as before handles.
        let name = io.as_fd(socket).map_or_else(
            |_| format!("{socket:?}"),
            |fd| format!("fd {}", fd.as_raw_fd()),
        );
        eprintln!("echo_server: TCP_NODELAY on {name}: {error}");
    }
    let index = server.insert(Connection {
        socket,
        pending: VecDeque::new(),
        batch: Vec::new(),
        sending: false,
        done: false,
        closing: false,
        paused: false,
        receiving: false,
    });
    match server.pool {
        Some(_) => recv_many(io, server, index),
        None => {
            let buf = server.take_buffer();
            recv_next(io, server, index, buf);
        }
    }
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
            server.sends += 1;
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
    server.spare_buffers.push(buf);
    close_socket(io, server, index);
}

/// Closes the connection's socket, which cancels whatever of it is still in
/// flight. Its slot is freed in the close's callback, which runs after
/// those of everything the close cancelled, so no late callback can find
/// the slot taken by a newer connection.
fn close_socket(io: &mut IO<Server>, server: &mut Server, index: u32) {
    let connection = server.connection(index);
    assert!(!connection.closing);
    connection.closing = true;
    connection.pending.clear();
    let socket = connection.socket;
    server.closed += 1;
    server.starved.retain(|&starved| starved != index);
    io.close(socket, move |_io, server, result| {
        if let Err(error) = result {
            eprintln!("echo_server: close: {error}");
        }
        let closed = server.connections.remove(index as usize);
        assert!(closed.closing);
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

/// Multishot mode: one accept for every connection, re-armed if the kernel
/// ever ends it (out of descriptors, say), after a pause.
fn accept_many(io: &mut IO<Server>, server: &mut Server) {
    io.accept_multi(server.listener, |io, server, result, more| {
        match result {
            Ok(socket) => start_connection(io, server, socket),
            Err(error) => eprintln!("echo_server: accept: {error}; retrying shortly"),
        }
        if !more {
            io.timeout(ACCEPT_RETRY_NS, |io, server, _expired| {
                accept_many(io, server)
            });
        }
        Flow::Continue
    });
}

/// Multishot mode: receives on connection `index` into the shared pool
/// until the stream ends.
fn recv_many(io: &mut IO<Server>, server: &mut Server, index: u32) {
    let pool = server.pool.expect("multishot mode");
    let connection = server.connection(index);
    assert!(!connection.receiving);
    connection.receiving = true;
    io.recv_multi(connection.socket, pool, move |io, server, result, more| {
        on_recv_many(io, server, index, result, more)
    });
}

fn on_recv_many(
    io: &mut IO<Server>,
    server: &mut Server,
    index: u32,
    result: io::Result<PoolBuf>,
    more: bool,
) -> Flow {
    let Some(connection) = server.live(index) else {
        return Flow::Continue;
    };
    let mut ended = false;
    match result {
        Ok(buf) if !buf.is_empty() => connection.pending.push_back(buf),
        // The end of the stream.
        Ok(_) => ended = true,
        // The pool is dry: the stream goes on once a send gives a buffer back.
        Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => starve(io, server, index),
        // Our own stop, below: resumed as the pending buffers drain.
        Err(error) if connection.paused && error.raw_os_error() == Some(libc::ECANCELED) => {}
        Err(error) => {
            log_unless_peer_gone("recv", &error);
            ended = true;
        }
    }
    let connection = server.connection(index);
    connection.done |= ended;
    if !more {
        connection.receiving = false;
    }
    let flow = if more && !connection.paused && connection.pending.len() >= PENDING_MAX {
        connection.paused = true;
        Flow::Stop
    } else {
        Flow::Continue
    };
    resume_if_drained(io, server, index);
    send_many(io, server, index);
    flow
}

/// Re-arms a paused connection's receiving once its old stream has ended
/// and its pending buffers have drained to half.
fn resume_if_drained(io: &mut IO<Server>, server: &mut Server, index: u32) {
    let Some(connection) = server.live(index) else {
        return;
    };
    let drained = connection.pending.len() < PENDING_MAX / 2;
    if connection.paused && !connection.receiving && drained && !connection.done {
        connection.paused = false;
        recv_many(io, server, index);
    }
}

/// Sends every pending buffer of connection `index` (up to
/// `PENDING_MAX`) in one vectored `send_msg`, unless a send is in flight;
/// closes the connection once its stream ended and all is sent.
fn send_many(io: &mut IO<Server>, server: &mut Server, index: u32) {
    let Some(connection) = server.live(index) else {
        return;
    };
    if connection.sending {
        return;
    }
    if connection.pending.is_empty() {
        if connection.done {
            close_socket(io, server, index);
        }
        return;
    }
    let mut batch = std::mem::take(&mut connection.batch);
    let count = connection.pending.len().min(PENDING_MAX);
    batch.extend(connection.pending.drain(..count).map(|buf| buf.slice(..)));
    connection.sending = true;
    let socket = connection.socket;
    send_batch(io, socket, index, batch);
}

/// Sends `batch`, slices of pool buffers, on connection `index`'s
/// `socket`. The callback captures only the index, so that the handler
/// (the batch, its message and the closure) is stored inline.
fn send_batch(io: &mut IO<Server>, socket: Handle, index: u32, batch: Vec<Slice<PoolBuf>>) {
    io.send_msg(socket, batch, None, move |io, server, result, mut batch| {
        if server.live(index).is_none() {
            return;
        }
        match result {
            Ok(sent) => {
                server.bytes_echoed += sent as u64;
                server.sends += 1;
                // Buffers sent whole go back to the pool here: a starved
                // stream can go on.
                advance(&mut batch, sent);
                if !batch.is_empty() {
                    // A short send: the rest, from where it stopped, no copy.
                    let socket = server.connection(index).socket;
                    return send_batch(io, socket, index, batch);
                }
                let connection = server.connection(index);
                connection.batch = batch;
                connection.sending = false;
                resume_if_drained(io, server, index);
                rearm_starved(io, server);
                send_many(io, server, index);
            }
            Err(error) => {
                log_unless_peer_gone("send", &error);
                close_socket(io, server, index);
            }
        }
    });
}

/// Drops the slices of `batch` that `sent` bytes covered, and cuts the
/// one it ended in, so that `batch` is what is left to send.
fn advance(batch: &mut Vec<Slice<PoolBuf>>, mut sent: usize) {
    let whole = batch
        .iter()
        .take_while(|slice| {
            let len = slice.end() - slice.begin();
            let covered = sent >= len;
            if covered {
                sent -= len;
            }
            covered
        })
        .count();
    batch.drain(..whole);
    if sent > 0 {
        let first = batch.remove(0);
        let (begin, end) = (first.begin() + sent, first.end());
        batch.insert(0, first.into_inner().slice(begin..end));
    }
}

/// The dry pool ended connection `index`'s receive stream: it waits to be
/// re-armed, by the next send that gives a buffer back, or by a short timer,
/// whichever comes first, so that it goes on whatever the order of sends.
fn starve(io: &mut IO<Server>, server: &mut Server, index: u32) {
    server.starved.push(index);
    arm_starved_timer(io, server);
}

/// A buffer came back to the pool: re-arm one receive stream that the dry
/// pool had ended. It can find the pool dry again and end once more; the
/// timer then re-arms it.
fn rearm_starved(io: &mut IO<Server>, server: &mut Server) {
    while let Some(starved) = server.starved.pop() {
        if rearm_one(io, server, starved) {
            break;
        }
    }
    arm_starved_timer(io, server);
}

/// Re-arms every starved stream shortly, if any is starved.
fn arm_starved_timer(io: &mut IO<Server>, server: &mut Server) {
    if !server.starved.is_empty() && !server.starved_timer {
        server.starved_timer = true;
        io.timeout(STARVED_RETRY_NS, |io, server, _expired| {
            server.starved_timer = false;
            for starved in std::mem::take(&mut server.starved) {
                rearm_one(io, server, starved);
            }
        });
    }
}

/// Re-arms the starved stream of connection `index`, if it is still open
/// and neither receiving nor paused; says whether it did.
fn rearm_one(io: &mut IO<Server>, server: &mut Server, index: u32) -> bool {
    let rearm = server
        .live(index)
        .is_some_and(|connection| !connection.receiving && !connection.paused);
    if rearm {
        recv_many(io, server, index);
    }
    rearm
}

/// Keeps one `recv_from` armed on the UDP `socket` while a buffer is free.
/// One, not many: every receive waiting on a socket is woken by each
/// datagram, and all but one would find nothing (measured: a window of 64
/// receives halved the round trips of 16 clients in flight).
fn udp_recv(io: &mut IO<Server>, server: &mut Server, socket: Handle) {
    if server.udp_receiving {
        return;
    }
    let Some(mut buf) = server.spare_buffers.pop() else {
        return; // every buffer is being sent back: a send's end re-arms
    };
    buf.clear();
    server.udp_receiving = true;
    io.recv_from(socket, buf, move |io, server, result, buf| {
        server.udp_receiving = false;
        on_udp_recv(io, server, socket, result, buf);
        udp_recv(io, server, socket);
    });
}

/// Sends a datagram back to its sender; its buffer is free again once the
/// send is done.
fn on_udp_recv(
    io: &mut IO<Server>,
    server: &mut Server,
    socket: Handle,
    result: io::Result<(usize, Option<ringio::Address>)>,
    buf: Vec<u8>,
) {
    match result {
        Ok((_, Some(peer))) => {
            io.send_to(socket, buf, peer, move |io, server, result, buf| {
                match result {
                    Ok(count) => {
                        server.bytes_echoed += count as u64;
                        server.sends += 1;
                    }
                    // The sender's buffer is full or it went away: UDP
                    // drops, and so may an echo.
                    Err(error) => log_unless_peer_gone("send_to", &error),
                }
                server.spare_buffers.push(buf);
                udp_recv(io, server, socket);
            });
            return;
        }
        Ok((_, None)) => {}
        Err(error) => log_unless_peer_gone("recv_from", &error),
    }
    server.spare_buffers.push(buf);
}
