//! The commands, with Redis 7.0's replies and error texts, in RESP2 or
//! RESP3 as the connection chose with HELLO. Each write appends its records
//! to the journal's pending group as it changes the store; the server holds
//! the reply until the group is acknowledged.
//!
//! The families live beside this file: `cmd_strings.rs`, `cmd_keys.rs`
//! (keyspace and expiry), `cmd_hashes.rs`, `cmd_lists.rs`, `cmd_sets.rs`,
//! `cmd_zsets.rs`, `cmd_zset_algebra.rs` (ZUNION, ZINTER, ZDIFF),
//! `cmd_sort.rs` (SORT, SORT_RO),
//! `cmd_server.rs` (connection, server and transactions).
//! This file has the table, the dispatcher (arity, authentication,
//! MULTI's queue) and what every command uses.
//!
//! Expiry times are absolute wall-clock Unix milliseconds, as in Redis
//! (see `store.rs`): EX and PX add the wall clock's now to the timeout.

#[path = "cmd_hashes.rs"]
mod hashes;
#[path = "cmd_keys.rs"]
mod keys;
#[path = "cmd_lists.rs"]
pub mod lists;
#[path = "longdouble.rs"]
pub mod longdouble;
#[path = "cmd_server.rs"]
pub mod server_cmds;
#[path = "cmd_sets.rs"]
mod sets;
#[path = "cmd_sort.rs"]
mod sort;
#[path = "cmd_strings.rs"]
mod strings;
#[path = "cmd_zset_algebra.rs"]
mod zset_algebra;
#[path = "cmd_zsets.rs"]
mod zsets;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crate::journal::{FsyncPolicy, Journal};
use crate::resp::{self, Args};
use crate::store::{Store, Value};
use crate::wal::Record;

pub use lists::{Block, BlockOp};
pub use server_cmds::end_session;

/// The most elements one collection may hold: a write that would grow one
/// past it is refused whole (Redis has no such bound; this server keeps
/// every collection's memory and every O(n) command's time bounded).
pub const ELEMENTS_MAX: usize = 1 << 24;
/// The most bytes one reply may take: a command whose reply would be larger
/// (`LRANGE` of a huge list, `KEYS *` of a huge key space) gets an error
/// instead, and the client is told to ask for less (or SCAN).
pub const REPLY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The most bytes of commands one MULTI may queue.
pub const MULTI_QUEUE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The largest string value (Redis's `proto-max-bulk-len` bounds APPEND and
/// SETRANGE; this server's bulk limit).
pub const STRING_BYTES_MAX: usize = resp::BULK_MAX_BYTES as usize;

/// Command flags, as COMMAND INFO names them.
pub const WRITE: u16 = 1;
/// Reads only.
pub const READONLY: u16 = 1 << 1;
/// May grow memory.
pub const DENYOOM: u16 = 1 << 2;
/// O(1) or O(log n).
pub const FAST: u16 = 1 << 3;
/// Allowed before AUTH.
pub const NO_AUTH: u16 = 1 << 4;
/// Runs at once inside MULTI instead of being queued (EXEC, DISCARD, ...).
pub const NO_MULTI: u16 = 1 << 5;
/// Administrative.
pub const ADMIN: u16 = 1 << 6;
/// Its reply depends on chance (SPOP, RANDOMKEY).
pub const RANDOM: u16 = 1 << 7;
/// May block the client (BLPOP and friends).
pub const BLOCKING: u16 = 1 << 8;

const FLAG_NAMES: [(u16, &str); 9] = [
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (RANDOM, "random"),
    (BLOCKING, "blocking"),
    (NO_AUTH, "no_auth"),
    (FAST, "fast"),
    (NO_MULTI, "no_multi"),
];

/// A command handler.
pub type Run = fn(&mut Context<'_>, &Args);

/// A command: its lower-case name, its Redis arity (n: exactly n
/// arguments; -n: at least n; the name counts), flags, key positions
/// (first, last, step, as COMMAND INFO gives them) and handler.
#[derive(Debug)]
pub struct Command {
    /// The lower-case name.
    pub name: &'static str,
    /// Redis's arity.
    pub arity: i32,
    /// [`WRITE`], [`READONLY`], ...
    pub flags: u16,
    /// First key, last key, step.
    pub keys: [i32; 3],
    /// The handler.
    pub run: Run,
}

/// A table entry.
pub const fn command(
    name: &'static str,
    arity: i32,
    flags: u16,
    keys: [i32; 3],
    run: Run,
) -> Command {
    Command {
        name,
        arity,
        flags,
        keys,
        run,
    }
}

/// Every family: its group name (COMMAND DOCS) and its commands.
fn families() -> [(&'static str, &'static [Command]); 12] {
    [
        ("connection", server_cmds::CONNECTION_COMMANDS),
        ("server", server_cmds::SERVER_COMMANDS),
        ("server", keys::SERVER_COMMANDS),
        ("transactions", server_cmds::TRANSACTION_COMMANDS),
        ("string", strings::COMMANDS),
        ("generic", keys::COMMANDS),
        ("generic", sort::COMMANDS),
        ("hash", hashes::COMMANDS),
        ("list", lists::COMMANDS),
        ("set", sets::COMMANDS),
        ("sorted-set", zsets::COMMANDS),
        ("sorted-set", zset_algebra::COMMANDS),
    ]
}

/// Every command with its group, sorted by name for lookup.
pub fn table() -> &'static [(&'static Command, &'static str)] {
    static TABLE: OnceLock<Vec<(&'static Command, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: Vec<(&'static Command, &'static str)> = families()
            .into_iter()
            .flat_map(|(group, commands)| commands.iter().map(move |command| (command, group)))
            .collect();
        table.sort_by_key(|(command, _)| command.name);
        for pair in table.windows(2) {
            assert!(pair[0].0.name < pair[1].0.name, "{} twice", pair[0].0.name);
        }
        table
    })
}

/// Names longer than this are no command.
const NAME_BYTES_MAX: usize = 24;

/// Positions in [`table`] by (length, first letter): a lookup compares one
/// or two names, where a binary search compared eight (perf: the search's
/// `memcmp` calls were a third of the server's own time under
/// `redis-benchmark -P 16 -t get`).
fn index() -> &'static [Vec<u16>] {
    static INDEX: OnceLock<Vec<Vec<u16>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = vec![Vec::new(); (NAME_BYTES_MAX + 1) * 26];
        for (position, (command, _)) in table().iter().enumerate() {
            let name = command.name.as_bytes();
            assert!(name.len() <= NAME_BYTES_MAX);
            assert!(name[0].is_ascii_lowercase());
            index[bucket(name).expect("a lower-case name")].push(position as u16);
        }
        index
    })
}

fn bucket(lower: &[u8]) -> Option<usize> {
    let first = *lower.first()?;
    if lower.len() > NAME_BYTES_MAX || !first.is_ascii_lowercase() {
        return None;
    }
    Some(lower.len() * 26 + usize::from(first - b'a'))
}

/// The command named `name`, in any case.
pub fn lookup(name: &[u8]) -> Option<&'static (&'static Command, &'static str)> {
    let mut lower = [0u8; NAME_BYTES_MAX];
    if name.len() > lower.len() {
        return None;
    }
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let table = table();
    index()[bucket(lower)?]
        .iter()
        .map(|&position| &table[usize::from(position)])
        .find(|(command, _)| command.name.as_bytes() == &*lower)
}

/// Subcommands of the container commands: (container, subcommand, arity).
pub const SUBCOMMANDS: &[(&str, &str, i32)] = &[
    ("client", "getname", 2),
    ("client", "id", 2),
    ("client", "info", 2),
    ("client", "list", -2),
    ("client", "setname", 3),
    ("client", "unblock", -3),
    ("command", "count", 2),
    ("command", "docs", -2),
    ("command", "info", -2),
    ("command", "list", -2),
    ("config", "get", -3),
    ("config", "resetstat", 2),
    ("config", "set", -4),
    ("object", "encoding", 3),
    ("object", "freq", 3),
];

/// A connected client, as CLIENT LIST shows it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The peer's address.
    pub addr: String,
    /// CLIENT SETNAME.
    pub name: Option<Vec<u8>>,
    /// When it connected, on the wall clock.
    pub connected_ms: u64,
    /// When it last ran a command.
    pub last_command_ms: u64,
    /// The last command's name, and its subcommand's for a container.
    pub last_command: (&'static str, Option<&'static str>),
    /// 2 or 3.
    pub resp: u8,
    /// Commands queued in MULTI, or -1 outside one.
    pub multi: i64,
}

/// Counters for INFO.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerStats {
    /// Commands run.
    pub commands_processed: u64,
    /// Connections accepted.
    pub connections_received: u64,
    /// Connections refused (max clients).
    pub rejected_connections: u64,
    /// Bytes received from clients.
    pub net_input_bytes: u64,
    /// Bytes sent to clients.
    pub net_output_bytes: u64,
    /// Completed recvs.
    pub reads_processed: u64,
    /// Completed sends.
    pub writes_processed: u64,
}

/// The error replies sent, for INFO's `total_error_replies` and
/// errorstats.
#[derive(Debug, Clone, Default)]
pub struct ErrorStats {
    /// Every error reply.
    pub total: u64,
    /// By code (the error's first word), at most [`ErrorStats::CODES_MAX`]
    /// of them, as Redis bounds them.
    pub by_code: BTreeMap<Vec<u8>, u64>,
}

impl ErrorStats {
    /// Redis's `ERRORSTATS_LIMIT`.
    pub const CODES_MAX: usize = 128;

    /// Counts an error reply whose text (without the `-`) is `text`: its
    /// code is what comes before the first space within 32 bytes, else
    /// `ERR`, as Redis's `afterErrorReply` takes it. Allocates only for a
    /// code not seen before.
    pub fn count(&mut self, text: &[u8]) {
        self.total += 1;
        let head = &text[..text.len().min(32)];
        let code = match head.iter().position(|&byte| byte == b' ') {
            Some(end) => &text[..end],
            None => b"ERR",
        };
        if let Some(count) = self.by_code.get_mut(code) {
            *count += 1;
        } else if self.by_code.len() < Self::CODES_MAX {
            self.by_code.insert(code.to_vec(), 1);
        }
    }
}

/// The process's memory, for INFO memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Bytes the allocator handed out (`used_memory`).
    pub allocated: u64,
    /// Bytes the allocator holds, free ones included.
    pub active: u64,
    /// The resident set size.
    pub rss: u64,
}

/// The process's CPU time in microseconds, for INFO cpu.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// The process's system time.
    pub sys_us: u64,
    /// The process's user time.
    pub user_us: u64,
    /// Its waited-for children's system time.
    pub children_sys_us: u64,
    /// Its waited-for children's user time.
    pub children_user_us: u64,
    /// The loop thread's system time.
    pub thread_sys_us: u64,
    /// The loop thread's user time.
    pub thread_user_us: u64,
}

/// What INFO reads from the process and its host: made by kv_server's
/// `main`, and with fixed values by the simulator, so that the server core
/// stays free of anything global or random.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// 40 random hex digits made at start.
    pub run_id: String,
    /// Replication's id: 40 random hex digits, as Redis makes at start.
    pub master_replid: String,
    /// `uname`'s system, release and machine.
    pub os: String,
    /// The backend really running: `io_uring` or `epoll`.
    pub multiplexing_api: String,
    /// The executable's path.
    pub executable: String,
    /// The process's id.
    pub process_id: u32,
    /// Physical memory, in bytes.
    pub total_system_memory: u64,
    /// Reads the process's memory.
    pub memory: fn() -> Memory,
    /// Reads only `Memory::allocated`, for the server's once-a-second
    /// peak sample, which needs no RSS (and so no read of `/proc`).
    pub allocated: fn() -> u64,
    /// Reads the process's CPU time.
    pub cpu: fn() -> Cpu,
}

impl HostInfo {
    /// Fixed values, for the simulator: INFO replies the same every run.
    #[allow(dead_code)] // kv_server itself uses `host::host_info`.
    pub fn fixed(multiplexing_api: &str) -> HostInfo {
        HostInfo {
            run_id: "0".repeat(40),
            master_replid: "0".repeat(40),
            os: "simulated".to_string(),
            multiplexing_api: multiplexing_api.to_string(),
            executable: String::new(),
            process_id: 0,
            total_system_memory: 0,
            memory: Memory::default,
            allocated: || 0,
            cpu: Cpu::default,
        }
    }
}

/// INFO's `instantaneous_*`: Redis's ring of samples, taken every 100 ms
/// on the server's periodic timer, each the rate since the one before; the
/// figure is the mean of the last [`Metrics::SAMPLES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    last_ms: u64,
    last: [u64; 3],
    samples: [[u64; Metrics::SAMPLES]; 3],
    next: usize,
}

impl Metrics {
    /// Redis's `STATS_METRIC_SAMPLES`.
    pub const SAMPLES: usize = 16;
    /// How often a sample is taken (Redis's `run_with_period(100)`).
    pub const INTERVAL_MS: u64 = 100;
    /// Commands per second.
    pub const COMMANDS: usize = 0;
    /// Bytes received per second.
    pub const NET_INPUT: usize = 1;
    /// Bytes sent per second.
    pub const NET_OUTPUT: usize = 2;

    /// Takes a sample of the counters at `now_ms`.
    pub fn sample(&mut self, now_ms: u64, stats: &ServerStats) {
        if self.last_ms != 0 && now_ms < self.last_ms + Self::INTERVAL_MS {
            return; // Called again early, by an expiry pass that found more.
        }
        let values = [
            stats.commands_processed,
            stats.net_input_bytes,
            stats.net_output_bytes,
        ];
        let elapsed_ms = now_ms.saturating_sub(self.last_ms);
        if self.last_ms != 0 && elapsed_ms > 0 {
            for (metric, value) in values.iter().enumerate() {
                let delta = value.saturating_sub(self.last[metric]);
                self.samples[metric][self.next] = delta.saturating_mul(1000) / elapsed_ms;
            }
            self.next = (self.next + 1) % Self::SAMPLES;
        }
        self.last_ms = now_ms;
        self.last = values;
    }

    /// The mean of the last samples of `metric`, per second.
    pub fn rate(&self, metric: usize) -> u64 {
        self.samples[metric].iter().sum::<u64>() / Self::SAMPLES as u64
    }
}

/// What the server shares between connections: configuration, clients,
/// counters.
#[derive(Debug)]
pub struct Shared {
    /// `--requirepass` or CONFIG SET requirepass: AUTH needed when set.
    pub requirepass: Option<Vec<u8>>,
    /// Connected clients by id.
    pub clients: BTreeMap<u64, ClientInfo>,
    /// Counters.
    pub stats: ServerStats,
    /// When the server started, on the wall clock.
    pub started_ms: u64,
    /// The address listened on.
    pub local_addr: String,
    /// `--fsync`.
    pub fsync: FsyncPolicy,
    /// `--appendonly`: whether writes are logged.
    pub appendonly: bool,
    /// The most clients.
    pub clients_max: usize,
    /// The ids of the clients blocked in BLPOP and friends (CLIENT UNBLOCK,
    /// CLIENT LIST's `b` flag, INFO's `blocked_clients`).
    pub blocked: BTreeSet<u64>,
    /// BGREWRITEAOF asked for a compaction, which the journal starts once
    /// the log is idle (and clears).
    pub rewrite_requested: bool,
    /// A compaction is running (INFO's `aof_rewrite_in_progress`).
    pub rewrite_in_progress: bool,
    /// The process and host, for INFO.
    pub host: HostInfo,
    /// INFO's `used_memory_startup`: allocated before recovery.
    pub memory_startup: u64,
    /// INFO's `used_memory_peak`, updated every second and at each INFO.
    pub memory_peak: u64,
    /// INFO's `instantaneous_*`.
    pub metrics: Metrics,
    /// SHUTDOWN ran: the server stops running commands, makes the log
    /// durable and exits.
    pub shutdown: bool,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    /// CLIENT ID.
    pub id: u64,
    /// HELLO 3.
    pub resp3: bool,
    /// AUTH passed (or none needed).
    pub authenticated: bool,
    /// Inside MULTI: the queue.
    pub multi: Option<Multi>,
    /// WATCHed keys with their versions then.
    pub watched: BTreeMap<Vec<u8>, u64>,
}

impl Session {
    /// A new connection's state; `authenticated` is false when a password is
    /// required.
    pub fn new(id: u64, authenticated: bool) -> Session {
        Session {
            id,
            resp3: false,
            authenticated,
            multi: None,
            watched: BTreeMap::new(),
        }
    }
}

/// A MULTI's queued commands.
#[derive(Debug, Default)]
pub struct Multi {
    /// The commands, in order.
    pub queued: Vec<Args>,
    /// Their bytes, for [`MULTI_QUEUE_BYTES_MAX`].
    pub queued_bytes: usize,
    /// A command was refused while queueing: EXEC aborts.
    pub failed: bool,
}

/// Where a reply goes, and in which protocol.
#[derive(Debug)]
pub struct Reply<'a> {
    /// The connection's output.
    pub out: &'a mut Vec<u8>,
    /// RESP3 (HELLO 3).
    pub resp3: bool,
    /// The server's count of error replies.
    pub errors: &'a mut ErrorStats,
}

impl Reply<'_> {
    /// `+OK`.
    pub fn ok(&mut self) {
        resp::simple(self.out, "OK");
    }
    /// A simple string.
    pub fn simple(&mut self, text: &str) {
        resp::simple(self.out, text);
    }
    /// An error; `text` starts with its code (`ERR`, `WRONGTYPE`).
    pub fn error(&mut self, text: &[u8]) {
        self.errors.count(text);
        resp::error(self.out, text);
    }
    /// An integer.
    pub fn int(&mut self, value: i64) {
        resp::integer(self.out, value);
    }
    /// A bulk string.
    pub fn bulk(&mut self, bytes: &[u8]) {
        resp::bulk(self.out, bytes);
    }
    /// A null where a bulk string would be.
    pub fn nil(&mut self) {
        resp::nil(self.out, self.resp3);
    }
    /// A null where an array would be.
    pub fn nil_array(&mut self) {
        resp::nil_array(self.out, self.resp3);
    }
    /// An array header.
    pub fn array(&mut self, count: usize) {
        resp::array(self.out, count);
    }
    /// A map header (`count` pairs).
    pub fn map(&mut self, count: usize) {
        resp::map(self.out, count, self.resp3);
    }
    /// A set header.
    pub fn set(&mut self, count: usize) {
        resp::set(self.out, count, self.resp3);
    }
    /// A double.
    pub fn double(&mut self, value: f64) {
        resp::double(self.out, value, self.resp3);
    }
    /// A verbatim text.
    pub fn verbatim(&mut self, text: &[u8]) {
        resp::verbatim(self.out, text, self.resp3);
    }
    /// Redis's WRONGTYPE error.
    pub fn wrong_type(&mut self) {
        self.error(WRONGTYPE);
    }
    /// If the reply begun at `start` passed [`REPLY_BYTES_MAX`], replaces it
    /// with an error and returns true: the caller stops.
    pub fn over_limit(&mut self, start: usize) -> bool {
        if self.out.len() - start <= REPLY_BYTES_MAX {
            return false;
        }
        self.out.truncate(start);
        let text = format!(
            "ERR reply would exceed {REPLY_BYTES_MAX} bytes; ask for a smaller range or use SCAN"
        );
        self.error(text.as_bytes());
        true
    }
}

/// What a command may touch.
#[derive(Debug)]
pub struct Context<'a> {
    /// The key space.
    pub store: &'a mut Store,
    /// The log that writes append to; `None` while the log is replayed.
    pub journal: Option<&'a mut Journal>,
    /// Server-wide state.
    pub shared: &'a mut Shared,
    /// This connection's state.
    pub session: &'a mut Session,
    /// Where the reply goes.
    pub reply: Reply<'a>,
    /// The wall clock in Unix milliseconds, for expiry
    /// ([`store::realtime_ms`](crate::store::realtime_ms)).
    pub realtime_ms: u64,
    /// The same clock in microseconds, for TIME.
    pub realtime_us: u64,
    /// Blocking commands must not block: inside EXEC, and while the log is
    /// replayed (Redis's `CLIENT_DENY_BLOCKING`). They answer as if their
    /// timeout had passed.
    pub deny_blocking: bool,
    /// Set by a blocking command that found nothing to pop: the client
    /// blocks, and the server serves or times it out (the command wrote no
    /// reply).
    pub block: Option<Block>,
    /// CLIENT UNBLOCK's requests, for the server to carry out after the
    /// command: (client id, with the UNBLOCKED error rather than the
    /// timeout's reply).
    pub unblock: Vec<(u64, bool)>,
}

impl Context<'_> {
    /// Logs the keys expiry removed, as DELs: before any record that could
    /// depend on their absence.
    pub fn log_expired(&mut self) {
        if !self.store.has_expired() {
            return;
        }
        let expired = self.store.take_expired();
        if let Some(journal) = self.journal.as_deref_mut() {
            for key in &expired {
                journal.append(&Record::Del { key });
            }
        }
    }

    /// Logs `record`.
    pub fn log_record(&mut self, record: &Record<'_>) {
        self.log_expired();
        if let Some(journal) = self.journal.as_deref_mut() {
            journal.append(record);
        }
    }

    /// The end of a STORE form (SINTERSTORE, ZUNIONSTORE, ZRANGESTORE and
    /// the rest): `value`, a collection of `len` elements, replaces
    /// whatever `target` held, with no expiry, and an empty one deletes
    /// `target`. Logged as the command came, and only when it changes
    /// something, as Redis propagates it; replies the length.
    pub fn store_collection(&mut self, args: &Args, target: &[u8], value: Value, len: usize) {
        if len == 0 && !self.store.contains(target) {
            self.reply.int(0);
            return;
        }
        self.log_args(args);
        self.store.remove(target);
        if len > 0 {
            self.store.insert(target, value, 0);
        }
        self.reply.int(len as i64);
    }

    /// Logs the command as it came: for the writes whose effect depends on
    /// nothing but the state.
    pub fn log_args(&mut self, args: &Args) {
        self.log_expired();
        if let Some(journal) = self.journal.as_deref_mut() {
            let parts: Vec<&[u8]> = args.iter().collect();
            journal.append_command(&parts);
        }
    }

    /// Logs a command of `parts` in place of the one that ran (PEXPIREAT
    /// for EXPIRE, SREM for SPOP).
    pub fn log_parts(&mut self, parts: &[&[u8]]) {
        self.log_expired();
        if let Some(journal) = self.journal.as_deref_mut() {
            journal.append_command(parts);
        }
    }
}

/// What the connection should do after the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Carry on.
    Continue,
    /// Close once the reply is sent (QUIT).
    Quit,
}

pub(crate) const NOT_INTEGER: &[u8] = b"ERR value is not an integer or out of range";
pub(crate) const NOT_FLOAT: &[u8] = b"ERR value is not a valid float";
pub(crate) const SYNTAX: &[u8] = b"ERR syntax error";
pub(crate) const WRONGTYPE: &[u8] =
    b"WRONGTYPE Operation against a key holding the wrong kind of value";
pub(crate) const TOO_MANY_ELEMENTS: &[u8] =
    b"ERR the collection would exceed 16777216 elements (kv_server's bound)";
const NOAUTH: &[u8] = b"NOAUTH Authentication required.";
const EXECABORT: &[u8] = b"EXECABORT Transaction discarded because of previous errors.";

/// Runs one command (at least one argument), appending its reply.
pub fn execute(context: &mut Context<'_>, args: &Args) -> Outcome {
    context.store.set_now_ms(context.realtime_ms);
    context.shared.stats.commands_processed += 1;
    let in_multi = context.session.multi.is_some();
    let Some((command, _)) = lookup(args.get(0)) else {
        unknown_command(&mut context.reply, args);
        flag_transaction(context);
        return Outcome::Continue;
    };
    let sub = match check_arity(command, args) {
        Ok(sub) => sub,
        Err(full_name) => {
            match full_name {
                Some(full_name) => wrong_arity(&mut context.reply, &full_name),
                None => unknown_subcommand(&mut context.reply, args),
            }
            flag_transaction(context);
            return Outcome::Continue;
        }
    };
    if !context.session.authenticated && command.flags & NO_AUTH == 0 {
        context.reply.error(NOAUTH);
        flag_transaction(context);
        return Outcome::Continue;
    }
    if in_multi && command.flags & NO_MULTI == 0 {
        queue(context, args);
        return Outcome::Continue;
    }
    note_command(context, command, sub);
    context.store.count_lookups(command.flags & WRITE == 0);
    (command.run)(context, args);
    context.log_expired();
    if command.name == "quit" {
        Outcome::Quit
    } else {
        Outcome::Continue
    }
}

/// A command refused inside MULTI makes EXEC abort.
fn flag_transaction(context: &mut Context<'_>) {
    if let Some(multi) = context.session.multi.as_mut() {
        multi.failed = true;
    }
}

/// Records what CLIENT LIST shows as `cmd=`: the command, and for a
/// container its subcommand (`client|list`), as Redis 7.0 names them.
fn note_command(context: &mut Context<'_>, command: &'static Command, sub: Option<&'static str>) {
    if let Some(client) = context.shared.clients.get_mut(&context.session.id) {
        client.last_command = (command.name, sub);
        client.last_command_ms = context.realtime_ms;
    }
}

/// The `SUBCOMMANDS` entry that `args` names for the container `command`.
fn subcommand(
    command: &Command,
    args: &Args,
) -> Option<&'static (&'static str, &'static str, i32)> {
    if args.len() < 2 {
        return None;
    }
    let sub = args.get(1);
    SUBCOMMANDS.iter().find(|(container, name, _)| {
        *container == command.name && sub.eq_ignore_ascii_case(name.as_bytes())
    })
}

/// MULTI's queue: the command waits for EXEC.
fn queue(context: &mut Context<'_>, args: &Args) {
    let multi = context.session.multi.as_mut().expect("inside MULTI");
    let bytes = args.bytes_held() + args.len() * 16;
    if multi.queued_bytes + bytes > MULTI_QUEUE_BYTES_MAX {
        multi.failed = true;
        let text = format!("ERR MULTI would queue more than {MULTI_QUEUE_BYTES_MAX} bytes");
        context.reply.error(text.as_bytes());
        return;
    }
    multi.queued_bytes += bytes;
    multi.queued.push(args.clone());
    let count = multi.queued.len() as i64;
    if let Some(client) = context.shared.clients.get_mut(&context.session.id) {
        client.multi = count;
    }
    context.reply.simple("QUEUED");
}

/// EXEC: runs the queue, unless a queued command was refused (EXECABORT)
/// or a watched key changed (a null reply). The replies go out only after
/// the fsync covering every write in the queue: they all join one group.
pub fn exec(context: &mut Context<'_>, _args: &Args) {
    let Some(multi) = context.session.multi.take() else {
        context.reply.error(b"ERR EXEC without MULTI");
        return;
    };
    if let Some(client) = context.shared.clients.get_mut(&context.session.id) {
        client.multi = -1;
    }
    let watched_changed = server_cmds::watched_changed(context);
    server_cmds::unwatch_all(context);
    if multi.failed {
        context.reply.error(EXECABORT);
        return;
    }
    if watched_changed {
        context.reply.nil_array();
        return;
    }
    context.reply.array(multi.queued.len());
    // A blocking command in a transaction answers at once, as Redis's do.
    let deny_blocking = std::mem::replace(&mut context.deny_blocking, true);
    for args in &multi.queued {
        let (command, _) = lookup(args.get(0)).expect("checked when queued");
        let sub = subcommand(command, args).map(|(_, name, _)| *name);
        note_command(context, command, sub);
        context.store.count_lookups(command.flags & WRITE == 0);
        (command.run)(context, args);
        context.log_expired();
    }
    context.deny_blocking = deny_blocking;
}

/// Replays one logged command: no reply, no log, no expiry.
pub fn replay(store: &mut Store, shared: &mut Shared, parts: &[&[u8]]) -> Result<(), String> {
    assert!(store.loading());
    let args = Args::from_parts(parts);
    let Some((command, _)) = lookup(args.get(0)) else {
        return Err(format!(
            "the log holds an unknown command {:?}",
            String::from_utf8_lossy(args.get(0))
        ));
    };
    if command.flags & WRITE == 0 {
        return Err(format!(
            "the log holds a command that is not a write: {}",
            command.name
        ));
    }
    let mut out = Vec::new();
    let mut errors = ErrorStats::default();
    let mut session = Session::new(0, true);
    let mut context = Context {
        store,
        journal: None,
        shared,
        session: &mut session,
        reply: Reply {
            out: &mut out,
            resp3: false,
            errors: &mut errors,
        },
        realtime_ms: 0,
        realtime_us: 0,
        deny_blocking: true,
        block: None,
        unblock: Vec::new(),
    };
    (command.run)(&mut context, &args);
    if out.first() == Some(&b'-') {
        return Err(format!(
            "replaying {} failed: {}",
            command.name,
            String::from_utf8_lossy(&out).trim_end()
        ));
    }
    Ok(())
}

/// `Ok(Some(sub))`: the container's subcommand `args` names, its arity
/// right; `Err(Some(name))`: wrong arity for `name` (`config|get` for a
/// subcommand); `Err(None)`: an unknown subcommand.
fn check_arity(command: &Command, args: &Args) -> Result<Option<&'static str>, Option<String>> {
    let argc = args.len() as i32;
    let is_container = SUBCOMMANDS
        .iter()
        .any(|(container, ..)| *container == command.name);
    if is_container && argc >= 2 {
        let Some((_, sub_name, arity)) = subcommand(command, args) else {
            return Err(None);
        };
        if !arity_fits(*arity, argc) {
            return Err(Some(format!("{}|{sub_name}", command.name)));
        }
        return Ok(Some(*sub_name));
    }
    if !arity_fits(command.arity, argc) {
        return Err(Some(command.name.to_string()));
    }
    Ok(None)
}

fn arity_fits(arity: i32, argc: i32) -> bool {
    if arity > 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// `ERR wrong number of arguments for 'name' command`.
pub fn wrong_arity(reply: &mut Reply<'_>, name: &str) {
    let text = format!("ERR wrong number of arguments for '{name}' command");
    reply.error(text.as_bytes());
}

/// Redis's text: the name and the first arguments, each cut at 128 bytes,
/// until the list reaches 128 bytes.
fn unknown_command(reply: &mut Reply<'_>, args: &Args) {
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(truncated(args.get(0), 128));
    text.extend_from_slice(b"', with args beginning with: ");
    let mut listed: Vec<u8> = Vec::new();
    for index in 1..args.len() {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        listed.push(b'\'');
        listed.extend_from_slice(truncated(args.get(index), room));
        listed.extend_from_slice(b"' ");
    }
    text.extend_from_slice(&listed);
    reply.error(&text);
}

fn unknown_subcommand(reply: &mut Reply<'_>, args: &Args) {
    let mut text = b"ERR unknown subcommand '".to_vec();
    text.extend_from_slice(truncated(args.get(1), 128));
    text.extend_from_slice(b"'. Try ");
    text.extend(args.get(0).iter().map(u8::to_ascii_uppercase));
    text.extend_from_slice(b" HELP.");
    reply.error(&text);
}

/// At most `max` bytes, as C's `%.*s` prints (which also stops at a NUL).
fn truncated(bytes: &[u8], max: usize) -> &[u8] {
    let bytes = &bytes[..bytes.len().min(max)];
    match bytes.iter().position(|&byte| byte == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

/// Redis's `getLongLongFromObjectOrReply` for argument `text`.
pub fn parse_i64(reply: &mut Reply<'_>, text: &[u8]) -> Option<i64> {
    let value = resp::string_to_i64(text);
    if value.is_none() {
        reply.error(NOT_INTEGER);
    }
    value
}

/// Redis's `getRangeLongFromObjectOrReply`: an integer in `min..=max`, else
/// `ERR <name> is out of range` (or not an integer).
pub fn parse_count(reply: &mut Reply<'_>, text: &[u8], what: &str) -> Option<usize> {
    match resp::string_to_i64(text) {
        Some(value) if value >= 0 => Some(value as usize),
        Some(_) => {
            let text = format!("ERR {what} is out of range, must be positive");
            reply.error(text.as_bytes());
            None
        }
        None => {
            reply.error(NOT_INTEGER);
            None
        }
    }
}

/// Redis's `getDoubleFromObjectOrReply`.
pub fn parse_float(reply: &mut Reply<'_>, text: &[u8]) -> Option<f64> {
    let value = resp::parse_double(text);
    if value.is_none() {
        reply.error(NOT_FLOAT);
    }
    value
}

/// Whether argument `index` is the option `name`, in any case.
pub fn is_option(args: &Args, index: usize, name: &str) -> bool {
    args.get(index).eq_ignore_ascii_case(name.as_bytes())
}

/// Redis's list/range index rules: negative counts from the end; the range
/// clipped to `0..len`. `None` for an empty range.
pub fn clip_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            requirepass: None,
            clients: BTreeMap::new(),
            stats: ServerStats::default(),
            started_ms: 0,
            local_addr: "127.0.0.1:0".to_string(),
            fsync: FsyncPolicy::Always,
            appendonly: true,
            clients_max: 1,
            blocked: BTreeSet::new(),
            rewrite_requested: false,
            rewrite_in_progress: false,
            host: HostInfo::fixed("simulated"),
            memory_startup: 0,
            memory_peak: 0,
            metrics: Metrics::default(),
            shutdown: false,
        }
    }

    #[test]
    fn replay_runs_logged_writes_and_refuses_the_rest() {
        let mut store = Store::new();
        let mut shared = shared();
        store.set_loading(true);
        let hset: [&[u8]; 4] = [b"HSET", b"h", b"f", b"v"];
        assert_eq!(replay(&mut store, &mut shared, &hset), Ok(()));
        // Replay never expires: a deadline long past is applied as logged.
        let pexpireat: [&[u8]; 3] = [b"PEXPIREAT", b"h", b"1"];
        assert_eq!(replay(&mut store, &mut shared, &pexpireat), Ok(()));
        assert_eq!(store.peek(b"h").map(|entry| entry.deadline_ms), Some(1));
        let read: [&[u8]; 2] = [b"GET", b"h"];
        assert!(replay(&mut store, &mut shared, &read).is_err());
        let unknown: [&[u8]; 1] = [b"NOSUCH"];
        assert!(replay(&mut store, &mut shared, &unknown).is_err());
        let wrong_type: [&[u8]; 3] = [b"LPUSH", b"h", b"x"];
        let error = replay(&mut store, &mut shared, &wrong_type).unwrap_err();
        assert!(error.contains("WRONGTYPE"), "{error}");
    }

    #[test]
    fn every_command_is_found_in_any_case_and_names_are_unique() {
        for (command, _) in table() {
            let upper = command.name.to_ascii_uppercase();
            let (found, _) = lookup(upper.as_bytes()).expect("found");
            assert_eq!(found.name, command.name);
            assert!(command.arity != 0);
        }
        assert!(lookup(b"nosuch").is_none());
        assert!(lookup(&[b'a'; 40]).is_none());
    }
}
