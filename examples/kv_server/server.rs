//! The server core: connections, request pipelining, reply release after
//! durability, and back-pressure. Every operation goes through the `IO`
//! (sockets, the log file, the clock), so this file runs unchanged on any
//! ringio backend, the simulator's included. Nothing here is global, nothing
//! is random, and nothing depends on a hash seed.
//!
//! To reuse the core from another binary (the simulator's `kv_sim`),
//! declare its modules at that crate's root:
//!
//! ```text
//! #[path = "kv_server/commands.rs"] mod commands;
//! #[path = "kv_server/journal.rs"] mod journal;
//! #[path = "kv_server/keymap.rs"] mod keymap;
//! #[path = "kv_server/resp.rs"] mod resp;
//! #[path = "kv_server/server.rs"] mod server;
//! #[path = "kv_server/store.rs"] mod store;
//! #[path = "kv_server/wal.rs"] mod wal;
//! ```
//!
//! # Life of a request
//!
//! A recv appends to the connection's input. Whole commands are parsed and
//! run at once, in order; each reply goes to the connection's output, and a
//! write's records go to the journal's pending group. A reply is *held* until
//! every write the server had accepted when it ran is acknowledged by the
//! journal (fsync done under `always`, write done otherwise): a reply never
//! reports, and a read never shows, a write that a crash could still lose.
//!
//! # Blocked clients
//!
//! A blocking pop (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP) that finds nothing, or a WAIT for replicas (with no
//! keys: only its timeout, CLIENT UNBLOCK or leaving ends it), leaves a
//! [`commands::Block`]: the connection goes on the wait
//! list of each of its keys (ordered by when it blocked, so several clients
//! on one key are served first come, first served), and a ringio timer is
//! armed for its timeout. While blocked it runs no further command of its
//! pipeline, but its recv stays in flight, so a client that leaves is seen
//! at once: it is taken off every wait list and its timer is cancelled.
//!
//! After every command (an EXEC counts as one), the keys with waiters that
//! the command created are served, in the order they were created, each
//! key's waiters oldest first while the key holds elements, passing over
//! those waiting for another type (Redis's `handleClientsBlockedOnKeys`); a BLMOVE served onto another key with
//! waiters makes that key ready in turn. A served pop is logged like the
//! plain pop it amounts to, and its reply is held until that record is
//! durable, like any write's. A timeout or CLIENT UNBLOCK answers with the
//! null array (or CLIENT UNBLOCK ERROR's `-UNBLOCKED` error). A served
//! connection then runs the rest of its pipeline.
//!
//! # Bounds
//!
//! - Output: a connection whose unsent replies exceed [`OUTPUT_LIMIT_BYTES`]
//!   runs no more commands and is not read from, until its client reads.
//! - Input: a connection whose unparsed input plus partial command exceeds
//!   [`QUERY_LIMIT_BYTES`] is closed (Redis: `client-query-buffer-limit`,
//!   1 GiB), and see the limits in `resp.rs`.
//! - The journal: while the pending group exceeds [`WAL_PENDING_LIMIT_BYTES`],
//!   no connection runs commands.
//! - At most [`CONNECTIONS_MAX`] clients; the next gets Redis's
//!   `-ERR max number of clients reached`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use ringio::{CompletionId, Handle, IO};
use slab::Slab;

use crate::commands::lists::{self, Served};
use crate::commands::{self, Block, ClientInfo, ErrorStats, HostInfo, Session, Shared};
use crate::journal::{self, FsyncPolicy, Journal};
use crate::resp::{self, Parser};
use crate::store::{self, Store};
use crate::wal::Record;

/// Unsent replies beyond which a connection is paused.
pub const OUTPUT_LIMIT_BYTES: usize = 4 * 1024 * 1024;
/// Unparsed input plus the partial command's arguments beyond which a
/// connection is closed. Redis allows 1 GiB; 64 MiB still fits the largest
/// bulk argument ([`resp::BULK_MAX_BYTES`], 32 MiB) twice.
pub const QUERY_LIMIT_BYTES: usize = 64 * 1024 * 1024;
/// Pending journal bytes beyond which no connection runs commands.
pub const WAL_PENDING_LIMIT_BYTES: usize = 64 * 1024 * 1024;
/// The most clients at once.
pub const CONNECTIONS_MAX: usize = 10_000;
/// Bytes one recv may fill.
const RECV_BYTES: usize = 16 * 1024;
/// Pending connections the kernel queues before they are accepted.
const LISTEN_BACKLOG: u32 = 1024;
/// How long to wait before accepting again after an accept error (EMFILE).
const ACCEPT_RETRY_NS: u64 = 50_000_000;
/// How often active expiry runs: Redis's `hz` of 10.
const ACTIVE_EXPIRE_INTERVAL_NS: u64 = 100_000_000;
/// The most expired keys one active-expiry pass removes. Redis bounds a
/// pass by time (25 ms at `hz` 10) and samples 20 keys per loop; here the
/// deadlines are sorted, so a pass removes exactly the earliest expired
/// keys, and a bound on their number bounds its time. A backlog is worked
/// off at 10,000 keys every 100 ms, with the pass run again at once while
/// a full pass found more.
const ACTIVE_EXPIRE_KEYS_MAX: usize = 1000;

/// What [`Server::start`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to listen on; port 0 picks one.
    pub addr: SocketAddr,
    /// The write-ahead log's path; its directory must exist.
    pub wal_path: PathBuf,
    /// When the log is fsynced.
    pub fsync: FsyncPolicy,
    /// `--appendonly`: keep the write-ahead log (the default). Without it
    /// the server is a cache, as Redis with `appendonly no` and no RDB
    /// saves: nothing is read back at start or written, and replies to
    /// writes go out at once.
    pub appendonly: bool,
    /// A planted bug, for the simulator (`kv_sim --bug ack-before-fsync`):
    /// under `always`, release replies once a group's write completes,
    /// before the fsync that covers it. Always `false` in production.
    pub ack_before_fsync: bool,
    /// `--compact-bytes`: compact the log once it has this many bytes and
    /// a quarter as many as the last snapshot (journal.rs); 0: never
    /// (BGREWRITEAOF still compacts).
    pub compact_bytes: u64,
    /// A planted log bug (compaction's or recovery's), for the simulator.
    /// Always `None` in production.
    pub log_bug: Option<journal::LogBug>,
    /// `--requirepass`: clients must AUTH with it.
    pub requirepass: Option<Vec<u8>>,
    /// The process and host, as INFO reports them.
    pub host: HostInfo,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading and running commands.
    Open,
    /// A protocol error or QUIT: send what is queued, then close.
    CloseAfterReply,
    /// The peer is gone or the connection broke: close once no operation
    /// of it is in flight, dropping unsent replies.
    Closing,
}

/// One client.
#[derive(Debug)]
struct Connection {
    fd: Handle,
    /// A number that is never reused, for CLIENT ID.
    id: u64,
    state: State,
    /// Received bytes; `input[input_position..]` are not parsed yet.
    input: Vec<u8>,
    input_position: usize,
    parser: Parser,
    /// Replies not yet handed to a send. `out[0]` is byte `out_base` of
    /// everything this connection ever replied.
    out: Vec<u8>,
    out_base: u64,
    /// Replies up to this absolute offset may be sent.
    releasable: u64,
    /// (journal sequence, absolute offset): replies up to the offset wait
    /// until the sequence is acknowledged. Both fields increase.
    barriers: VecDeque<(u64, u64)>,
    /// The recv buffer while no recv is in flight.
    recv_buf: Option<Vec<u8>>,
    recv_in_flight: Option<CompletionId>,
    /// A spare buffer for sends while no send is in flight.
    send_buf: Option<Vec<u8>>,
    send_in_flight: Option<CompletionId>,
    /// Whether the in-flight operations were cancelled, on closing.
    cancelled: bool,
    /// Whether the index is in `Server::waiting`.
    waiting: bool,
    /// HELLO, AUTH, MULTI, WATCH.
    session: Session,
    /// Blocked in BLPOP and friends.
    blocked: Option<Blocked>,
}

/// A connection blocked in a blocking pop.
#[derive(Debug)]
struct Blocked {
    /// When it blocked, as a number never reused: its place in the wait
    /// lists, and what its timer checks.
    seq: u64,
    block: Block,
    /// The timeout's timer; `None` for a timeout of 0 (forever).
    timer: Option<CompletionId>,
}

/// The application state: every callback receives it.
#[derive(Debug)]
pub struct Server {
    listener: Handle,
    local_addr: SocketAddr,
    /// The key space.
    pub store: Store,
    /// The write-ahead log.
    pub journal: Journal,
    /// Configuration, clients and counters the commands share.
    pub shared: Shared,
    /// The error replies sent, for INFO.
    pub errors: ErrorStats,
    /// Open connections by index (a slab reuses the index of a closed one).
    connections: Slab<Connection>,
    next_client_id: u64,
    /// Connections with held replies, to look at when the journal advances.
    waiting: Vec<u32>,
    /// Connections paused because the journal's pending group is full.
    journal_blocked: Vec<u32>,
    /// The wait lists of blocked connections: key to (block sequence,
    /// connection index), so in the order they blocked.
    waiters: BTreeMap<Vec<u8>, BTreeMap<u64, u32>>,
    next_block_seq: u64,
    /// Connections just served or unblocked, to pump (send the reply, run
    /// the rest of their pipeline) once the current connection is done.
    unblocked: VecDeque<u32>,
    /// A pump is draining `unblocked`.
    draining: bool,
    ready: bool,
    fatal: Option<String>,
    /// When INFO's memory peak was last updated by the timer.
    peak_sampled_ms: u64,
    /// SHUTDOWN's drain has begun (the journal is draining).
    shutting_down: bool,
}

impl Server {
    /// Listens on `config.addr`, opens the log, and starts recovery: the
    /// log is read back through the `IO` and replayed, then connections are
    /// accepted. Drive `io` afterwards; [`ready`](Server::ready) says when
    /// recovery is done, [`fatal`](Server::fatal) if it failed.
    ///
    /// # Errors
    ///
    /// Listening or opening the log failed.
    pub fn start(io: &mut IO<Server>, config: ServerConfig) -> io::Result<Server> {
        let listener = io.listen(config.addr, LISTEN_BACKLOG)?;
        let local_addr = io.local_addr(listener)?;
        let mut journal = Journal::open(io, config.wal_path, config.fsync)?;
        journal.ack_before_fsync = config.ack_before_fsync;
        journal.compact_bytes = config.compact_bytes;
        journal.log_bug = config.log_bug;
        journal.enabled = config.appendonly;
        if config.appendonly {
            journal::recover(io, journal.fd(), journal.snapshot_path());
        } else {
            log(format_args!(
                "appendonly no: the log is neither read nor written"
            ));
            io.nop(|io, server, _result| Server::on_recovered(io, server));
        }
        let memory_startup = (config.host.allocated)();
        let shared = Shared {
            requirepass: config.requirepass.clone(),
            clients: Default::default(),
            stats: Default::default(),
            started_ms: store::realtime_ms(io),
            local_addr: local_addr.to_string(),
            fsync: config.fsync,
            appendonly: config.appendonly,
            clients_max: CONNECTIONS_MAX,
            blocked: BTreeSet::new(),
            rewrite_requested: false,
            rewrite_in_progress: false,
            host: config.host,
            memory_startup,
            memory_peak: memory_startup,
            metrics: Default::default(),
            shutdown: false,
        };
        let server = Server {
            listener,
            local_addr,
            store: Store::new(),
            journal,
            shared,
            errors: ErrorStats::default(),
            connections: Slab::new(),
            next_client_id: 1,
            waiting: Vec::new(),
            journal_blocked: Vec::new(),
            waiters: BTreeMap::new(),
            next_block_seq: 1,
            unblocked: VecDeque::new(),
            draining: false,
            ready: false,
            fatal: None,
            peak_sampled_ms: 0,
            shutting_down: false,
        };
        Ok(server)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether recovery is done and clients are being served.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// The error that stopped the server, if one did: a corrupt log, or a
    /// failed write or fsync (never retried: after an fsync error the page
    /// cache may have dropped the data). Once set, the server does nothing
    /// more; its owner should exit (or, simulated, crash the node).
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Whether a SHUTDOWN is done: it ran, and everything written before
    /// it is durable. The owner then drops the server and the `IO`
    /// (closing every connection) and exits with status 0.
    pub fn shutdown_complete(&self) -> bool {
        self.shutting_down && self.journal.settled()
    }

    /// Whether a SHUTDOWN ran (its drain may still be going on).
    pub fn shutdown_requested(&self) -> bool {
        self.shared.shutdown
    }

    /// The number of connected clients.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Records an unrecoverable error; the first one wins.
    pub fn fail(&mut self, message: String) {
        if self.fatal.is_none() {
            self.fatal = Some(message);
        }
    }

    /// Called by the journal once recovery is done: start serving.
    pub fn on_recovered(io: &mut IO<Server>, server: &mut Server) {
        assert!(!server.ready);
        server.ready = true;
        accept_next(io, server);
        active_expire_later(io, ACTIVE_EXPIRE_INTERVAL_NS);
    }

    /// Called by the journal when its pending group was taken for writing:
    /// connections paused on a full group may run again.
    pub fn on_pending_taken(io: &mut IO<Server>, server: &mut Server) {
        let blocked = std::mem::take(&mut server.journal_blocked);
        for index in blocked {
            if server.connection(index).is_some() {
                pump(io, server, index);
            }
        }
    }

    /// Called by the journal when its acknowledged sequence advanced:
    /// release the replies that waited for it.
    pub fn on_acknowledged(io: &mut IO<Server>, server: &mut Server) {
        let acknowledged = server.journal.acknowledged_sequence();
        let waiting = std::mem::take(&mut server.waiting);
        for index in waiting {
            let Some(connection) = server.connection_mut(index) else {
                continue;
            };
            if !connection.waiting {
                continue; // A duplicate entry, already handled.
            }
            connection.waiting = false;
            while let Some(&(sequence, end)) = connection.barriers.front() {
                if sequence > acknowledged {
                    break;
                }
                connection.releasable = end;
                connection.barriers.pop_front();
            }
            if connection.barriers.is_empty() {
                connection.releasable = connection.out_base + connection.out.len() as u64;
            } else {
                connection.waiting = true;
                server.waiting.push(index);
            }
            pump(io, server, index);
        }
    }

    fn connection(&self, index: u32) -> Option<&Connection> {
        self.connections.get(index as usize)
    }

    fn connection_mut(&mut self, index: u32) -> Option<&mut Connection> {
        self.connections.get_mut(index as usize)
    }

    fn insert(&mut self, connection: Connection) -> u32 {
        let index = self.connections.insert(connection);
        u32::try_from(index).expect("fewer than 2^32 connections")
    }
}

/// Prints a line on stderr, prefixed as every message of the server is.
/// Not with `eprintln!`, which panics when stderr is a closed pipe
/// (`kv_server 2>&1 | head`): a lost log line must not stop the server.
pub fn log(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "kv_server: {message}");
}

/// Arms the active-expiry timer.
fn active_expire_later(io: &mut IO<Server>, delay_ns: u64) {
    io.timeout(delay_ns, |io, server, _expired| {
        if server.fatal.is_some() || server.shared.shutdown {
            return; // A SHUTDOWN's drain logs nothing more.
        }
        sample_metrics(io, server);
        let removed = active_expire(io, server);
        // A full pass may have left more: run again at once (after other
        // work queued meanwhile), as Redis repeats a cycle that found many.
        let delay_ns = if removed == ACTIVE_EXPIRE_KEYS_MAX {
            0
        } else {
            ACTIVE_EXPIRE_INTERVAL_NS
        };
        active_expire_later(io, delay_ns);
    });
}

/// INFO's periodic figures, on the expiry timer (Redis's `serverCron`):
/// a sample of the instantaneous rates every 100 ms, and the memory peak
/// every second (`mallinfo2` walks the allocator's free lists, too slow
/// for every pass).
fn sample_metrics(io: &mut IO<Server>, server: &mut Server) {
    let now_ms = store::realtime_ms(io);
    let shared = &mut server.shared;
    shared.metrics.sample(now_ms, &shared.stats);
    if now_ms >= server.peak_sampled_ms + 1000 {
        server.peak_sampled_ms = now_ms;
        let allocated = (shared.host.allocated)();
        shared.memory_peak = shared.memory_peak.max(allocated);
    }
}

/// SHUTDOWN ran: no connection runs commands any more, nothing more is
/// accepted, and the journal writes what is pending and fsyncs; once it is
/// settled, [`Server::shutdown_complete`] says so.
fn begin_shutdown(io: &mut IO<Server>, server: &mut Server) {
    server.shutting_down = true;
    log(format_args!(
        "User requested shutdown: making the log durable, then exiting"
    ));
    server.journal.draining = true;
    journal::flush(io, server);
}

/// One bounded pass of active expiry; each removed key is logged as a DEL,
/// as Redis propagates one, so replay needs no clock.
fn active_expire(io: &mut IO<Server>, server: &mut Server) -> usize {
    server.store.set_now_ms(store::realtime_ms(io));
    let removed = server.store.active_expire(ACTIVE_EXPIRE_KEYS_MAX);
    for key in server.store.take_expired() {
        server.journal.append(&Record::Del { key: &key });
    }
    if removed > 0 {
        journal::flush(io, server);
    }
    removed
}

/// Keeps exactly one accept in flight while the server runs.
fn accept_next(io: &mut IO<Server>, server: &mut Server) {
    io.accept(server.listener, on_accept);
}

fn on_accept(io: &mut IO<Server>, server: &mut Server, result: io::Result<Handle>) {
    if server.fatal.is_some() {
        return;
    }
    match result {
        Ok(fd) if server.shared.shutdown => {
            // Shutting down: no new client.
            io.close(fd, |_io, _server, _result| {});
        }
        Ok(fd) => {
            accept_next(io, server);
            start_connection(io, server, fd);
        }
        Err(error) => {
            log(format_args!("accept: {error}; retrying shortly"));
            io.timeout(ACCEPT_RETRY_NS, |io, server, _expired| {
                if server.fatal.is_none() {
                    accept_next(io, server);
                }
            });
        }
    }
}

fn start_connection(io: &mut IO<Server>, server: &mut Server, fd: Handle) {
    // Replies are small and clients wait for them: no Nagle delay.
    if let Err(error) = io.set_nodelay(fd, true) {
        log(format_args!("TCP_NODELAY on {fd:?}: {error}"));
    }
    let id = server.next_client_id;
    let addr = io
        .peer_addr(fd)
        .map_or_else(|_| "?:0".to_string(), |addr| addr.to_string());
    let now_ms = store::realtime_ms(io);
    let authenticated = server.shared.requirepass.is_none();
    let mut connection = Connection {
        fd,
        id,
        state: State::Open,
        input: Vec::new(),
        input_position: 0,
        parser: Parser::default(),
        out: Vec::new(),
        out_base: 0,
        releasable: 0,
        barriers: VecDeque::new(),
        recv_buf: Some(Vec::with_capacity(RECV_BYTES)),
        recv_in_flight: None,
        send_buf: Some(Vec::new()),
        send_in_flight: None,
        cancelled: false,
        waiting: false,
        session: Session::new(id, authenticated),
        blocked: None,
    };
    server.next_client_id += 1;
    server.shared.stats.connections_received += 1;
    if server.connections.len() >= CONNECTIONS_MAX {
        let text = b"ERR max number of clients reached";
        server.errors.count(text);
        resp::error(&mut connection.out, text);
        connection.releasable = connection.out.len() as u64;
        connection.state = State::CloseAfterReply;
        server.shared.stats.rejected_connections += 1;
    } else {
        let info = ClientInfo {
            addr,
            name: None,
            connected_ms: now_ms,
            last_command_ms: now_ms,
            last_command: ("NULL", None),
            resp: 2,
            multi: -1,
        };
        server.shared.clients.insert(id, info);
    }
    let index = server.insert(connection);
    pump(io, server, index);
}

/// Moves a connection forward as far as it can go: runs the commands its
/// input holds, sends released replies, reads more, or closes. Every event
/// of a connection ends here, so the rules live in one place. Then the
/// connections that its commands served or unblocked move on too (at the
/// outermost pump only, so that a chain of them is a loop, not a
/// recursion).
fn pump(io: &mut IO<Server>, server: &mut Server, index: u32) {
    pump_one(io, server, index);
    if server.draining {
        return;
    }
    server.draining = true;
    while let Some(next) = server.unblocked.pop_front() {
        pump_one(io, server, next);
    }
    server.draining = false;
}

fn pump_one(io: &mut IO<Server>, server: &mut Server, index: u32) {
    if server.fatal.is_some() {
        return;
    }
    // A blocked client that left (or broke) waits no more: no pop for it.
    let leaving = server
        .connection(index)
        .is_some_and(|connection| connection.blocked.is_some() && connection.state != State::Open);
    if leaving {
        unblock(io, server, index);
    }
    let wants_input = run_commands(io, server, index);
    if server.shared.shutdown && !server.shutting_down {
        begin_shutdown(io, server);
    }
    journal::flush(io, server);
    let Some(connection) = server.connection_mut(index) else {
        return;
    };
    let fd = connection.fd;
    // Never after a failed send (`Closing`): the client would see the
    // replies after a gap, each taken for the answer to another command.
    let may_send = connection.state != State::Closing && connection.send_in_flight.is_none();
    if may_send && connection.releasable > connection.out_base {
        send_released(io, connection, index);
    }
    match connection.state {
        State::Open => {
            if wants_input && connection.recv_in_flight.is_none() {
                let buf = connection.recv_buf.take().expect("no recv in flight");
                let id = io.recv(fd, buf, move |io, server, result, buf| {
                    on_recv(io, server, index, result, buf)
                });
                connection.recv_in_flight = Some(id);
            }
        }
        State::CloseAfterReply => {
            if connection.send_in_flight.is_none() && connection.out.is_empty() {
                connection.state = State::Closing;
                finish_closing(io, server, index);
            }
        }
        State::Closing => finish_closing(io, server, index),
    }
}

/// Runs the whole commands in the connection's input, while it may. Returns
/// whether it stopped for want of input (so a recv should be in flight),
/// rather than because it is paused or closing. A blocked connection wants
/// input too: its recv sees it leave.
fn run_commands(io: &mut IO<Server>, server: &mut Server, index: u32) -> bool {
    let mut wants_input = false;
    // One reading of the wall clock for the commands at hand, as Redis
    // takes one per command batch: a system call less per command.
    let realtime_us = io.realtime_ns() / 1000;
    loop {
        let Server {
            connections,
            store,
            journal,
            shared,
            journal_blocked,
            waiting,
            errors,
            ..
        } = &mut *server;
        let Some(connection) = connections.get_mut(index as usize) else {
            return false;
        };
        if connection.state != State::Open || shared.shutdown {
            break;
        }
        if connection.blocked.is_some() {
            wants_input = true; // The rest waits until it is served.
            break;
        }
        if connection.out.len() >= OUTPUT_LIMIT_BYTES {
            break; // Resumed when a send completes.
        }
        if journal.pending_bytes() >= WAL_PENDING_LIMIT_BYTES {
            journal_blocked.push(index);
            break;
        }
        let parsed = connection
            .parser
            .parse(&connection.input, &mut connection.input_position);
        match parsed {
            Ok(true) => {
                if connection.parser.args.is_empty() {
                    continue;
                }
                let realtime_ms = realtime_us / 1000;
                let resp3 = connection.session.resp3;
                let mut context = commands::Context {
                    store: &mut *store,
                    journal: Some(&mut *journal),
                    shared: &mut *shared,
                    session: &mut connection.session,
                    reply: commands::Reply {
                        out: &mut connection.out,
                        resp3,
                        errors: &mut *errors,
                    },
                    realtime_ms,
                    realtime_us,
                    deny_blocking: false,
                    block: None,
                    unblock: Vec::new(),
                };
                let outcome = commands::execute(&mut context, &connection.parser.args);
                let block = context.block.take();
                let unblock = std::mem::take(&mut context.unblock);
                if outcome == commands::Outcome::Quit {
                    connection.state = State::CloseAfterReply;
                }
                hold_reply(connection, journal, waiting, index);
                if let Some(block) = block {
                    block_connection(io, server, index, block);
                }
                for (id, error) in unblock {
                    unblock_client(io, server, id, error);
                }
                if server.store.has_ready_keys() {
                    serve_ready_keys(io, server);
                }
            }
            Ok(false) => {
                wants_input = true;
                break;
            }
            Err(error) => {
                let text = format!("ERR {}", error.0);
                errors.count(text.as_bytes());
                resp::error(&mut connection.out, text.as_bytes());
                hold_reply(connection, journal, waiting, index);
                connection.state = State::CloseAfterReply;
            }
        }
    }
    // Drop what was parsed, so the input holds only what is not.
    let connection = server.connection_mut(index).expect("still open");
    connection.input.drain(..connection.input_position);
    connection.input_position = 0;
    if connection.state != State::Open {
        connection.input = Vec::new();
    }
    wants_input
}

/// Blocks the connection that ran a blocking pop: on the wait list of each
/// of its keys, with its timeout armed.
fn block_connection(io: &mut IO<Server>, server: &mut Server, index: u32, block: Block) {
    let seq = server.next_block_seq;
    server.next_block_seq += 1;
    for key in &block.keys {
        let waiters = server.waiters.entry(key.clone()).or_default();
        if waiters.is_empty() {
            server.store.add_blocked_key(key);
        }
        waiters.insert(seq, index);
    }
    let timer = (block.timeout_ms > 0).then(|| {
        let timeout_ns = block.timeout_ms.saturating_mul(1_000_000);
        io.timeout(timeout_ns, move |io, server, result| {
            on_block_timeout(io, server, index, seq, result)
        })
    });
    let connection = server
        .connection_mut(index)
        .expect("blocking an open connection");
    connection.blocked = Some(Blocked { seq, block, timer });
    let id = connection.id;
    server.shared.blocked.insert(id);
}

/// Takes a blocked connection off its wait lists and cancels its timer;
/// the caller writes its reply, if it gets one. Nothing if it is not
/// blocked.
fn unblock(io: &mut IO<Server>, server: &mut Server, index: u32) -> Option<Block> {
    let connection = server.connection_mut(index)?;
    let blocked = connection.blocked.take()?;
    let id = connection.id;
    server.shared.blocked.remove(&id);
    for key in &blocked.block.keys {
        let Some(waiters) = server.waiters.get_mut(key) else {
            continue;
        };
        waiters.remove(&blocked.seq);
        if waiters.is_empty() {
            server.waiters.remove(key);
            server.store.remove_blocked_key(key);
        }
    }
    if let Some(timer) = blocked.timer {
        io.cancel(timer, |_io, _server, _result| {});
    }
    Some(blocked.block)
}

/// A blocked connection's timeout passed: the null array (RESP3's null),
/// as Redis replies to every timed-out pop, BLMOVE's included (WAIT: 0).
fn on_block_timeout(
    io: &mut IO<Server>,
    server: &mut Server,
    index: u32,
    seq: u64,
    result: io::Result<()>,
) {
    if result.is_err() || server.fatal.is_some() {
        return; // Cancelled: the client was served, or left.
    }
    let Some(connection) = server.connection_mut(index) else {
        return;
    };
    match connection.blocked.as_mut() {
        // The timer fired, so there is nothing to cancel.
        Some(blocked) if blocked.seq == seq => blocked.timer = None,
        _ => return, // A timer that fired as its connection was unblocked.
    }
    let block = unblock(io, server, index).expect("blocked");
    reply_unblocked(server, index, &block.op, false);
    pump(io, server, index);
}

/// CLIENT UNBLOCK `id`: the timeout's reply, or the UNBLOCKED error.
fn unblock_client(io: &mut IO<Server>, server: &mut Server, id: u64, error: bool) {
    let found = server
        .connections
        .iter()
        .find(|(_, connection)| connection.id == id && connection.blocked.is_some())
        .map(|(index, _)| index as u32);
    if let Some(index) = found {
        let block = unblock(io, server, index).expect("blocked");
        reply_unblocked(server, index, &block.op, error);
        server.unblocked.push_back(index);
    }
}

/// The reply of a connection unblocked without an element: WAIT's count
/// of replicas (0), every pop's null array, or CLIENT UNBLOCK ERROR's
/// error.
fn reply_unblocked(server: &mut Server, index: u32, op: &commands::BlockOp, error: bool) {
    let Server {
        connections,
        journal,
        waiting,
        errors,
        ..
    } = server;
    let connection = connections
        .get_mut(index as usize)
        .expect("an unblocked connection");
    if error {
        let text = b"UNBLOCKED client unblocked via CLIENT UNBLOCK";
        errors.count(text);
        resp::error(&mut connection.out, text);
    } else if *op == commands::BlockOp::Wait {
        resp::integer(&mut connection.out, 0);
    } else {
        resp::nil_array(&mut connection.out, connection.session.resp3);
    }
    hold_reply(connection, journal, waiting, index);
}

/// Serves the waiters of the keys the last command created: key by key in
/// the order they were created, each key's waiters in the order they
/// blocked, while the key holds elements. Serving may create keys with
/// waiters (BLMOVE's destination): those are served next.
fn serve_ready_keys(io: &mut IO<Server>, server: &mut Server) {
    let realtime_us = io.realtime_ns() / 1000;
    while server.store.has_ready_keys() {
        for key in server.store.take_ready_keys() {
            let Some(waiters) = server.waiters.get(&key) else {
                continue;
            };
            let queue: Vec<(u64, u32)> =
                waiters.iter().map(|(&seq, &index)| (seq, index)).collect();
            for (seq, index) in queue {
                let op = match server.connection(index).and_then(|c| c.blocked.as_ref()) {
                    Some(blocked) if blocked.seq == seq => blocked.block.op.clone(),
                    _ => continue,
                };
                match serve_one(server, index, &key, &op, realtime_us) {
                    Served::Replied => {}
                    Served::Skipped => continue,
                    Served::NotReady => break,
                }
                unblock(io, server, index);
                server.unblocked.push_back(index);
            }
        }
    }
}

/// Serves one blocked connection from `key`, replying into its output.
fn serve_one(
    server: &mut Server,
    index: u32,
    key: &[u8],
    op: &commands::BlockOp,
    realtime_us: u64,
) -> Served {
    let Server {
        connections,
        store,
        journal,
        shared,
        waiting,
        errors,
        ..
    } = server;
    let connection = connections
        .get_mut(index as usize)
        .expect("a blocked connection");
    let resp3 = connection.session.resp3;
    let mut context = commands::Context {
        store: &mut *store,
        journal: Some(&mut *journal),
        shared: &mut *shared,
        session: &mut connection.session,
        reply: commands::Reply {
            out: &mut connection.out,
            resp3,
            errors: &mut *errors,
        },
        realtime_ms: realtime_us / 1000,
        realtime_us,
        deny_blocking: true,
        block: None,
        unblock: Vec::new(),
    };
    let served = lists::serve(&mut context, key, op);
    context.log_expired();
    if served == Served::Replied {
        hold_reply(connection, journal, waiting, index);
    }
    served
}

/// Marks the replies appended so far as held until the journal acknowledges
/// everything accepted so far, or releases them if it already has.
fn hold_reply(connection: &mut Connection, journal: &Journal, waiting: &mut Vec<u32>, index: u32) {
    let end = connection.out_base + connection.out.len() as u64;
    let sequence = journal.last_appended_sequence();
    if sequence <= journal.acknowledged_sequence() && connection.barriers.is_empty() {
        connection.releasable = end;
        return;
    }
    match connection.barriers.back_mut() {
        Some(last) if last.0 == sequence => last.1 = end,
        _ => connection.barriers.push_back((sequence, end)),
    }
    if !connection.waiting {
        connection.waiting = true;
        waiting.push(index);
    }
}

/// Sends the released prefix of the output.
fn send_released(io: &mut IO<Server>, connection: &mut Connection, index: u32) {
    let count = (connection.releasable - connection.out_base) as usize;
    assert!(count > 0);
    assert!(count <= connection.out.len());
    let mut buf = connection.send_buf.take().expect("no send in flight");
    if count == connection.out.len() {
        // Everything goes: hand over the output buffer itself.
        std::mem::swap(&mut buf, &mut connection.out);
        connection.out.clear();
    } else {
        buf.clear();
        buf.extend_from_slice(&connection.out[..count]);
        connection.out.drain(..count);
    }
    connection.out_base += count as u64;
    connection.send_in_flight = Some(send_buf(io, connection.fd, index, buf));
}

fn send_buf(io: &mut IO<Server>, fd: Handle, index: u32, buf: Vec<u8>) -> CompletionId {
    io.send(fd, buf, move |io, server, result, buf| {
        on_send(io, server, index, result, buf)
    })
}

fn on_send(
    io: &mut IO<Server>,
    server: &mut Server,
    index: u32,
    result: io::Result<usize>,
    mut buf: Vec<u8>,
) {
    let stats = &mut server.shared.stats;
    stats.writes_processed += 1;
    if let Ok(sent) = result {
        stats.net_output_bytes += sent as u64;
    }
    let connection = server.connection_mut(index).expect("a send is in flight");
    match result {
        Ok(sent) if sent < buf.len() && connection.state != State::Closing => {
            buf.drain(..sent);
            connection.send_in_flight = Some(send_buf(io, connection.fd, index, buf));
            return;
        }
        Ok(_) => {}
        Err(error) => {
            if connection.state != State::Closing {
                log_unless_peer_gone("send", &error);
            }
            connection.state = State::Closing;
        }
    }
    buf.clear();
    connection.send_buf = Some(buf);
    connection.send_in_flight = None;
    pump(io, server, index);
}

fn on_recv(
    io: &mut IO<Server>,
    server: &mut Server,
    index: u32,
    result: io::Result<usize>,
    mut buf: Vec<u8>,
) {
    let stats = &mut server.shared.stats;
    stats.reads_processed += 1;
    if let Ok(received) = result {
        stats.net_input_bytes += received as u64;
    }
    let connection = server.connection_mut(index).expect("a recv is in flight");
    connection.recv_in_flight = None;
    match result {
        // The peer closed its side: send what is queued (a client may
        // half-close and still read), then close.
        Ok(0) if connection.state == State::Open && !connection.out.is_empty() => {
            connection.state = State::CloseAfterReply;
        }
        Ok(0) => connection.state = State::Closing,
        Ok(_) if connection.state == State::Open => {
            connection.input.extend_from_slice(&buf);
            let held = connection.input.len() - connection.input_position
                + connection.parser.args.bytes_held();
            if held > QUERY_LIMIT_BYTES {
                log(format_args!(
                    "closing client {} that reached the query buffer limit ({held} bytes)",
                    connection.id
                ));
                connection.state = State::Closing;
            }
        }
        Ok(_) => {}
        Err(error) => {
            if connection.state != State::Closing {
                log_unless_peer_gone("recv", &error);
            }
            connection.state = State::Closing;
        }
    }
    buf.clear();
    connection.recv_buf = Some(buf);
    pump(io, server, index);
}

/// Closes a connection in `Closing` once nothing of it is in flight,
/// cancelling what is (a recv waiting for a peer that sends nothing, a send
/// to a peer that reads nothing); their callbacks come back here.
fn finish_closing(io: &mut IO<Server>, server: &mut Server, index: u32) {
    let connection = server
        .connection_mut(index)
        .expect("closing an open connection");
    assert_eq!(connection.state, State::Closing);
    let in_flight = [connection.recv_in_flight, connection.send_in_flight];
    if in_flight.iter().any(Option::is_some) {
        if !connection.cancelled {
            connection.cancelled = true;
            for id in in_flight.into_iter().flatten() {
                io.cancel(id, |_io, _server, _result| {});
            }
        }
        return;
    }
    unblock(io, server, index);
    let mut connection = server
        .connections
        .try_remove(index as usize)
        .expect("closing an open connection");
    commands::end_session(
        &mut server.store,
        &mut server.shared,
        &mut connection.session,
    );
    io.close(connection.fd, |_io, _server, result| {
        if let Err(error) = result {
            log(format_args!("close: {error}"));
        }
    });
}

/// A client that resets or vanishes is routine for a server, not news.
fn log_unless_peer_gone(operation: &str, error: &io::Error) {
    let peer_gone = matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::TimedOut
    );
    if !peer_gone {
        log(format_args!("{operation}: {error}"));
    }
}
