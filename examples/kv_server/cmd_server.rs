//! Connection, server and transaction commands: PING, ECHO, SELECT, QUIT,
//! HELLO, AUTH, RESET, CLIENT (ID, GETNAME, SETNAME, LIST, INFO, UNBLOCK),
//! INFO, TIME, CONFIG, COMMAND, MULTI, EXEC, DISCARD, WATCH, UNWATCH,
//! BGREWRITEAOF.

use std::fmt::Write as _;

use super::{
    command, exec, is_option, lookup, table, wrong_arity, Command, Context, Memory, Metrics, Multi,
    Session, Shared, ADMIN, FAST, FLAG_NAMES, NOT_INTEGER, NO_AUTH, NO_MULTI, RANDOM, READONLY,
    SUBCOMMANDS, SYNTAX,
};
use crate::resp::{self, string_to_i64, Args};
use crate::store::Store;

/// The version this server's replies follow, as HELLO and INFO report it.
pub const REDIS_VERSION: &str = "7.0.15";
const WRONGPASS: &[u8] = b"WRONGPASS invalid username-password pair or user is disabled.";
const BAD_NAME: &[u8] = b"ERR Client names cannot contain spaces, newlines or special characters.";

/// COMMAND DOCS's "connection" group.
pub const CONNECTION_COMMANDS: &[Command] = &[
    command("ping", -1, FAST, [0, 0, 0], ping),
    command("echo", 2, FAST, [0, 0, 0], echo),
    command("select", 2, FAST, [0, 0, 0], select),
    command("quit", -1, NO_AUTH | NO_MULTI | FAST, [0, 0, 0], quit),
    command("hello", -1, NO_AUTH | FAST, [0, 0, 0], hello),
    command("auth", -2, NO_AUTH | FAST, [0, 0, 0], auth),
    command("reset", 1, NO_AUTH | NO_MULTI | FAST, [0, 0, 0], reset),
    command("client", -2, 0, [0, 0, 0], client),
];

/// COMMAND DOCS's "server" group (DBSIZE and the FLUSHes, which are too,
/// live with the keyspace commands).
pub const SERVER_COMMANDS: &[Command] = &[
    command("info", -1, RANDOM, [0, 0, 0], info),
    command("time", 1, RANDOM | FAST, [0, 0, 0], time),
    command("config", -2, ADMIN, [0, 0, 0], config),
    command("command", -1, RANDOM, [0, 0, 0], command_command),
    command("bgrewriteaof", 1, ADMIN, [0, 0, 0], bgrewriteaof),
    command("shutdown", -1, ADMIN | NO_MULTI, [0, 0, 0], shutdown),
];

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], with Redis 7.0's errors.
/// On success there is no reply: the server runs no more commands, makes
/// the log durable (an fsync whatever the policy; nothing with
/// `--appendonly no`), closes every connection and exits with status 0
/// (`server.rs`, `main.rs`). The options change nothing here: the log is
/// always made durable (the SAVE of a server whose only persistence is its
/// log), there are no replicas to wait for (NOW), and no save that could
/// fail (FORCE). ABORT has nothing to abort, since no shutdown waits for
/// anything a client could see.
fn shutdown(context: &mut Context<'_>, args: &Args) {
    if let Some(multi) = context.session.multi.as_mut() {
        multi.failed = true;
        context
            .reply
            .error(b"ERR Command not allowed inside a transaction");
        return;
    }
    let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
    for index in 1..args.len() {
        let option = args.get(index);
        if option.eq_ignore_ascii_case(b"nosave") {
            nosave = true;
        } else if option.eq_ignore_ascii_case(b"save") {
            save = true;
        } else if option.eq_ignore_ascii_case(b"now") || option.eq_ignore_ascii_case(b"force") {
            other = true;
        } else if option.eq_ignore_ascii_case(b"abort") {
            abort = true;
        } else {
            context.reply.error(SYNTAX);
            return;
        }
    }
    if (abort && (save || nosave || other)) || (save && nosave) {
        context.reply.error(SYNTAX);
        return;
    }
    if abort {
        context.reply.error(b"ERR No shutdown in progress.");
        return;
    }
    context.shared.shutdown = true;
}

/// COMMAND DOCS's "transactions" group.
pub const TRANSACTION_COMMANDS: &[Command] = &[
    command("multi", 1, NO_MULTI | FAST, [0, 0, 0], multi),
    command("exec", 1, NO_MULTI, [0, 0, 0], exec),
    command("discard", 1, NO_MULTI | FAST, [0, 0, 0], discard),
    command("watch", -2, NO_MULTI | FAST | READONLY, [1, -1, 1], watch),
    command("unwatch", 1, FAST, [0, 0, 0], unwatch),
];

/// BGREWRITEAOF: compact the log (journal.rs) as soon as it is idle,
/// whatever its size. The compaction runs in the loop, not in a child, so
/// "started" means "will start once the log is idle".
fn bgrewriteaof(context: &mut Context<'_>, _args: &Args) {
    if context.shared.rewrite_in_progress {
        context
            .reply
            .error(b"ERR Background append only file rewriting already in progress");
        return;
    }
    context.shared.rewrite_requested = true;
    context
        .reply
        .simple("Background append only file rewriting started");
}

fn ping(context: &mut Context<'_>, args: &Args) {
    match args.len() {
        1 => context.reply.simple("PONG"),
        2 => context.reply.bulk(args.get(1)),
        _ => wrong_arity(&mut context.reply, "ping"),
    }
}

fn echo(context: &mut Context<'_>, args: &Args) {
    context.reply.bulk(args.get(1));
}

fn select(context: &mut Context<'_>, args: &Args) {
    match string_to_i64(args.get(1)) {
        Some(0) => context.reply.ok(),
        Some(_) => context.reply.error(b"ERR DB index is out of range"),
        None => context.reply.error(NOT_INTEGER),
    }
}

fn quit(context: &mut Context<'_>, _args: &Args) {
    context.reply.ok();
}

/// Redis's `ACLAuthenticateUser` for the one user there is, `default`:
/// with no password configured it takes any password (`nopass`).
fn password_matches(shared: &Shared, user: &[u8], password: &[u8]) -> bool {
    user == b"default"
        && shared
            .requirepass
            .as_deref()
            .map_or(true, |required| required == password)
}

fn auth(context: &mut Context<'_>, args: &Args) {
    if args.len() > 3 {
        context.reply.error(SYNTAX);
        return;
    }
    let (user, password) = if args.len() == 2 {
        if context.shared.requirepass.is_none() {
            context.reply.error(
                b"ERR AUTH <password> called without any password configured for the \
                  default user. Are you sure your configuration is correct?",
            );
            return;
        }
        (&b"default"[..], args.get(1))
    } else {
        (args.get(1), args.get(2))
    };
    if password_matches(context.shared, user, password) {
        context.session.authenticated = true;
        context.reply.ok();
    } else {
        context.reply.error(WRONGPASS);
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]], as Redis 7.0 parses it.
fn hello(context: &mut Context<'_>, args: &Args) {
    let mut version = None;
    if args.len() >= 2 {
        match string_to_i64(args.get(1)) {
            Some(value @ 2..=3) => version = Some(value),
            Some(_) => {
                context.reply.error(b"NOPROTO unsupported protocol version");
                return;
            }
            None => {
                let text = b"ERR Protocol version is not an integer or out of range";
                context.reply.error(text);
                return;
            }
        }
    }
    let mut name = None;
    let mut index = 2;
    while index < args.len() {
        let more = args.len() - 1 - index;
        if is_option(args, index, "auth") && more >= 2 {
            if !password_matches(context.shared, args.get(index + 1), args.get(index + 2)) {
                context.reply.error(WRONGPASS);
                return;
            }
            context.session.authenticated = true;
            index += 3;
        } else if is_option(args, index, "setname") && more >= 1 {
            if !valid_name(args.get(index + 1)) {
                context.reply.error(BAD_NAME);
                return;
            }
            name = Some(args.get(index + 1));
            index += 2;
        } else {
            let mut text = b"ERR Syntax error in HELLO option '".to_vec();
            text.extend_from_slice(args.get(index));
            text.push(b'\'');
            context.reply.error(&text);
            return;
        }
    }
    if !context.session.authenticated {
        context.reply.error(
            b"NOAUTH HELLO must be called with the client already authenticated, otherwise \
              the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
              client and select the RESP protocol version at the same time",
        );
        return;
    }
    if let Some(name) = name {
        set_name(context, name);
    }
    if let Some(version) = version {
        context.session.resp3 = version == 3;
        context.reply.resp3 = version == 3;
        if let Some(client) = context.shared.clients.get_mut(&context.session.id) {
            client.resp = version as u8;
        }
    }
    hello_reply(context);
}

fn hello_reply(context: &mut Context<'_>) {
    let reply = &mut context.reply;
    reply.map(7);
    reply.bulk(b"server");
    reply.bulk(b"redis");
    reply.bulk(b"version");
    reply.bulk(REDIS_VERSION.as_bytes());
    reply.bulk(b"proto");
    reply.int(if reply.resp3 { 3 } else { 2 });
    reply.bulk(b"id");
    reply.int(context.session.id as i64);
    reply.bulk(b"mode");
    reply.bulk(b"standalone");
    reply.bulk(b"role");
    reply.bulk(b"master");
    reply.bulk(b"modules");
    reply.array(0);
}

/// RESET: as a new connection, but the same id.
fn reset(context: &mut Context<'_>, _args: &Args) {
    context.session.multi = None;
    unwatch_all(context);
    context.session.resp3 = false;
    context.reply.resp3 = false;
    context.session.authenticated = context.shared.requirepass.is_none();
    if let Some(client) = context.shared.clients.get_mut(&context.session.id) {
        client.name = None;
        client.resp = 2;
        client.multi = -1;
    }
    context.reply.simple("RESET");
}

/// Redis's `validateClientName`: printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&byte| (b'!'..=b'~').contains(&byte))
}

fn set_name(context: &mut Context<'_>, name: &[u8]) {
    if let Some(client) = context.shared.clients.get_mut(&context.session.id) {
        client.name = (!name.is_empty()).then(|| name.to_vec());
    }
}

/// CLIENT ID, GETNAME, SETNAME, LIST and INFO.
fn client(context: &mut Context<'_>, args: &Args) {
    let sub = args.get(1);
    let id = context.session.id;
    if sub.eq_ignore_ascii_case(b"id") {
        context.reply.int(id as i64);
    } else if sub.eq_ignore_ascii_case(b"getname") {
        let name = context
            .shared
            .clients
            .get(&id)
            .and_then(|client| client.name.clone());
        match name {
            Some(name) => context.reply.bulk(&name),
            None => context.reply.nil(),
        }
    } else if sub.eq_ignore_ascii_case(b"setname") {
        if !valid_name(args.get(2)) {
            context.reply.error(BAD_NAME);
            return;
        }
        set_name(context, args.get(2));
        context.reply.ok();
    } else if sub.eq_ignore_ascii_case(b"info") {
        let line = client_line(context, id);
        context.reply.verbatim(line.as_bytes());
    } else if sub.eq_ignore_ascii_case(b"unblock") {
        client_unblock(context, args);
    } else {
        client_list(context, args);
    }
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if the client was blocked (the
/// server then gives it the timeout's reply, or the UNBLOCKED error), else
/// 0; checked in Redis 7.0's order.
fn client_unblock(context: &mut Context<'_>, args: &Args) {
    if args.len() > 4 {
        let mut text = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
        text.extend_from_slice(args.get(1));
        text.extend_from_slice(b"'. Try CLIENT HELP.");
        context.reply.error(&text);
        return;
    }
    let mut error = false;
    if args.len() == 4 {
        if is_option(args, 3, "error") {
            error = true;
        } else if !is_option(args, 3, "timeout") {
            let text = b"ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR";
            context.reply.error(text);
            return;
        }
    }
    let Some(id) = string_to_i64(args.get(2)) else {
        context.reply.error(NOT_INTEGER);
        return;
    };
    // Taken off the set now, so that a second UNBLOCK in the same EXEC
    // finds it unblocked, as in Redis.
    if id > 0 && context.shared.blocked.remove(&(id as u64)) {
        context.unblock.push((id as u64, error));
        context.reply.int(1);
    } else {
        context.reply.int(0);
    }
}

/// CLIENT LIST [TYPE normal] [ID id ...].
fn client_list(context: &mut Context<'_>, args: &Args) {
    let mut ids: Option<std::collections::BTreeSet<u64>> = None;
    let mut index = 2;
    while index < args.len() {
        if is_option(args, index, "type") && index + 1 < args.len() {
            // Every client here is a normal one: the other types list none.
            let other = ["master", "replica", "slave", "pubsub"]
                .iter()
                .any(|kind| is_option(args, index + 1, kind));
            if other {
                ids = Some(Default::default());
            } else if !is_option(args, index + 1, "normal") {
                let mut text = b"ERR Unknown client type '".to_vec();
                text.extend_from_slice(args.get(index + 1));
                text.push(b'\'');
                context.reply.error(&text);
                return;
            }
            index += 2;
        } else if is_option(args, index, "id") && index + 1 < args.len() {
            let mut list = std::collections::BTreeSet::new();
            for id_index in index + 1..args.len() {
                match string_to_i64(args.get(id_index)) {
                    Some(id) if id > 0 => {
                        list.insert(id as u64);
                    }
                    _ => {
                        context.reply.error(b"ERR Invalid client ID");
                        return;
                    }
                }
            }
            ids = Some(list);
            index = args.len();
        } else {
            context.reply.error(SYNTAX);
            return;
        }
    }
    let mut text = String::new();
    let chosen: Vec<u64> = context
        .shared
        .clients
        .keys()
        .copied()
        .filter(|id| ids.as_ref().map_or(true, |ids| ids.contains(id)))
        .collect();
    for id in chosen {
        text.push_str(&client_line(context, id));
    }
    context.reply.verbatim(text.as_bytes());
}

/// One CLIENT LIST line, with Redis 7.0's fields; the buffer sizes this
/// server does not track read 0.
fn client_line(context: &Context<'_>, id: u64) -> String {
    let Some(client) = context.shared.clients.get(&id) else {
        return String::new();
    };
    let now_ms = context.realtime_ms;
    let age_s = now_ms.saturating_sub(client.connected_ms) / 1000;
    let idle_s = now_ms.saturating_sub(client.last_command_ms) / 1000;
    let name = client.name.as_deref().map(String::from_utf8_lossy);
    let command = match client.last_command {
        (name, Some(sub)) => format!("{name}|{sub}"),
        (name, None) => name.to_string(),
    };
    let flags = if client.multi >= 0 {
        "x"
    } else if context.shared.blocked.contains(&id) {
        "b"
    } else {
        "N"
    };
    format!(
        "id={id} addr={} laddr={} fd=-1 name={} age={age_s} idle={idle_s} flags={flags} db=0 \
         sub=0 psub=0 ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 \
         obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}\n",
        client.addr,
        context.shared.local_addr,
        name.unwrap_or_default(),
        client.multi,
        command,
        client.resp
    )
}

/// INFO [section ...], as Redis 7.0 selects: no argument is `default`;
/// `all` adds Commandstats and Latencystats to it, `everything` also
/// module sections (which kv_server has none of); names are
/// case-insensitive, repeats count once, and unknown ones add nothing, so
/// an INFO of only unknown sections is empty. Commandstats and
/// Latencystats need a clock reading per command, which kv_server does
/// not take: their headers are printed, with no lines under them.
///
/// Every field of redis-server 7.0.15's sections is printed, in its order
/// and format. The measured ones: the process and host (`process_id`,
/// `os`, `multiplexing_api` naming the backend really running,
/// `executable`, `run_id`, the clocks), clients (`connected_clients`,
/// `blocked_clients`), memory (`used_memory` and the allocator's figures
/// from glibc's `mallinfo2`, `used_memory_rss` from `/proc/self/statm`,
/// the peak, `used_memory_startup` taken before recovery, the ratios,
/// `mem_aof_buffer` as the journal's pending bytes, `total_system_memory`),
/// persistence (`aof_enabled`, the rewrite flags, `aof_rewrites`), the
/// counters of stats (connections, commands, bytes in and out, reads and
/// writes, errors, expiries, hits and misses, and `instantaneous_*`
/// sampled every 100 ms as Redis samples them), CPU (`getrusage`), errorstats
/// and the keyspace (`avg_ttl` exact rather than Redis's estimate).
///
/// Constants, for features kv_server does not have, with the values of an
/// idle standalone redis-server that does not use them: replication
/// (`role:master`, no replicas, no backlog; `master_replid` is random, as
/// Redis's), forks and RDB saves (`rdb_*`, `*_cow_*`, `total_forks`,
/// `latest_fork_usec`), defragmentation, Lua and functions (their memory
/// fields 0, rather than the 32 KiB an idle Redis's Lua VM takes), modules,
/// cluster, io-threads, client tracking, pubsub, eviction (`maxmemory:0`,
/// `noeviction`), lazy free, `client_recent_max_*_buffer`,
/// `clients_in_timeout_table`, `mem_clients_*`, `mem_not_counted_for_evict`,
/// `unexpected_error_replies`, `dump_payload_sanitizations`, reply buffer
/// resizes, `expired_stale_perc`, `expired_time_cap_reached_count`,
/// `expire_cycle_cpu_milliseconds`, `rdb_changes_since_last_save` (0: no
/// RDB), the build's (`redis_git_sha1`, `redis_build_id`, `gcc_version`
/// 0.0.0, `atomicvar_api`), and the AOF's sizes (`aof_current_size` and
/// the rest of the fields Redis adds with `appendonly yes`: 0).
fn info(context: &mut Context<'_>, args: &Args) {
    let mut wanted = 0u16;
    if args.len() == 1 {
        wanted = DEFAULT_SECTIONS;
    }
    for index in 1..args.len() {
        let asked = args.get(index);
        if asked.eq_ignore_ascii_case(b"default") {
            wanted |= DEFAULT_SECTIONS;
        } else if asked.eq_ignore_ascii_case(b"all") || asked.eq_ignore_ascii_case(b"everything") {
            wanted |= ALL_SECTIONS;
        } else if let Some(bit) = SECTIONS
            .iter()
            .position(|name| asked.eq_ignore_ascii_case(name.as_bytes()))
        {
            wanted |= 1 << bit;
        }
    }
    let memory = (wanted & (1 << MEMORY) != 0).then(|| (context.shared.host.memory)());
    if let Some(memory) = memory {
        let shared = &mut *context.shared;
        shared.memory_peak = shared.memory_peak.max(memory.allocated);
    }
    let mut text = String::with_capacity(8192);
    for (bit, title) in TITLES.iter().enumerate() {
        if wanted & (1 << bit) == 0 {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let _ = write!(text, "# {title}\r\n");
        info_section(context, bit, memory, &mut text);
    }
    context.reply.verbatim(text.as_bytes());
}

/// INFO's sections in Redis 7.0's order, as INFO takes them, and as it
/// titles them.
const TITLES: [&str; 13] = [
    "Server",
    "Clients",
    "Memory",
    "Persistence",
    "Stats",
    "Replication",
    "CPU",
    "Modules",
    "Commandstats",
    "Errorstats",
    "Latencystats",
    "Cluster",
    "Keyspace",
];
const SECTIONS: [&str; 13] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];
const MEMORY: usize = 2;
const COMMANDSTATS: usize = 8;
const LATENCYSTATS: usize = 10;
const ALL_SECTIONS: u16 = (1 << SECTIONS.len()) - 1;
const DEFAULT_SECTIONS: u16 = ALL_SECTIONS & !(1 << COMMANDSTATS) & !(1 << LATENCYSTATS);

/// Appends `name:value\r\n` lines.
macro_rules! fields {
    ($text:expr, $($name:literal => $value:expr),* $(,)?) => {
        { $( let _ = write!($text, concat!($name, ":{}\r\n"), $value); )* }
    };
}

/// Redis's `bytesToHuman`: `512B`, `1.02M`.
pub fn bytes_to_human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut scale = 1024.0;
    for unit in UNITS {
        let value = bytes as f64 / scale;
        if value < 1024.0 || unit == "E" {
            return format!("{value:.2}{unit}");
        }
        scale *= 1024.0;
    }
    unreachable!("E is the last unit")
}

/// `numerator / denominator` as Redis's `%.2f` ratios print it (0 for a
/// zero denominator).
fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Seconds and microseconds, as Redis prints CPU times (`%ld.%06ld`).
struct CpuSeconds(u64);

impl std::fmt::Display for CpuSeconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

fn info_section(context: &Context<'_>, section: usize, memory: Option<Memory>, text: &mut String) {
    let shared = &*context.shared;
    let host = &shared.host;
    let store = &*context.store;
    let stats = &shared.stats;
    let uptime_s = context.realtime_ms.saturating_sub(shared.started_ms) / 1000;
    match SECTIONS[section] {
        "server" => fields!(text,
            "redis_version" => REDIS_VERSION,
            "redis_git_sha1" => "00000000",
            "redis_git_dirty" => 0,
            "redis_build_id" => "0",
            "redis_mode" => "standalone",
            "os" => host.os,
            "arch_bits" => usize::BITS,
            "monotonic_clock" => "POSIX clock_gettime",
            "multiplexing_api" => host.multiplexing_api,
            "atomicvar_api" => "c11-builtin",
            "gcc_version" => "0.0.0",
            "process_id" => host.process_id,
            "process_supervised" => "no",
            "run_id" => host.run_id,
            "tcp_port" => tcp_port(shared),
            "server_time_usec" => context.realtime_us,
            "uptime_in_seconds" => uptime_s,
            "uptime_in_days" => uptime_s / 86_400,
            "hz" => 10,
            "configured_hz" => 10,
            // Redis's LRU clock: seconds, in 24 bits.
            "lru_clock" => (context.realtime_ms / 1000) & ((1 << 24) - 1),
            "executable" => host.executable,
            "config_file" => "",
            "io_threads_active" => 0,
        ),
        "clients" => fields!(text,
            "connected_clients" => shared.clients.len(),
            "cluster_connections" => 0,
            "maxclients" => shared.clients_max,
            "client_recent_max_input_buffer" => 0,
            "client_recent_max_output_buffer" => 0,
            "blocked_clients" => shared.blocked.len(),
            "tracking_clients" => 0,
            "clients_in_timeout_table" => 0,
        ),
        "memory" => memory_section(context, memory.unwrap_or_default(), text),
        "persistence" => {
            fields!(text,
                "loading" => 0,
                "async_loading" => 0,
                "current_cow_peak" => 0,
                "current_cow_size" => 0,
                "current_cow_size_age" => 0,
                "current_fork_perc" => "0.00",
                "current_save_keys_processed" => 0,
                "current_save_keys_total" => 0,
                "rdb_changes_since_last_save" => 0,
                "rdb_bgsave_in_progress" => 0,
                "rdb_last_save_time" => shared.started_ms / 1000,
                "rdb_last_bgsave_status" => "ok",
                "rdb_last_bgsave_time_sec" => -1,
                "rdb_current_bgsave_time_sec" => -1,
                "rdb_saves" => 0,
                "rdb_last_cow_size" => 0,
                "rdb_last_load_keys_expired" => 0,
                "rdb_last_load_keys_loaded" => 0,
                "aof_enabled" => u8::from(shared.appendonly),
                "aof_rewrite_in_progress" => u8::from(shared.rewrite_in_progress),
                "aof_rewrite_scheduled" => u8::from(shared.rewrite_requested),
                "aof_last_rewrite_time_sec" => -1,
                "aof_current_rewrite_time_sec" => -1,
                "aof_last_bgrewrite_status" => "ok",
                "aof_rewrites" => context.journal.as_ref().map_or(0, |journal| journal.compactions),
                "aof_rewrites_consecutive_failures" => 0,
                "aof_last_write_status" => "ok",
                "aof_last_cow_size" => 0,
                "module_fork_in_progress" => 0,
                "module_fork_last_cow_size" => 0,
            );
            if shared.appendonly {
                fields!(text,
                    "aof_current_size" => 0,
                    "aof_base_size" => 0,
                    "aof_pending_rewrite" => 0,
                    "aof_buffer_length" => 0,
                    "aof_pending_bio_fsync" => 0,
                    "aof_delayed_fsync" => 0,
                );
            }
        }
        "stats" => fields!(text,
            "total_connections_received" => stats.connections_received,
            "total_commands_processed" => stats.commands_processed,
            "instantaneous_ops_per_sec" => shared.metrics.rate(Metrics::COMMANDS),
            "total_net_input_bytes" => stats.net_input_bytes,
            "total_net_output_bytes" => stats.net_output_bytes,
            "total_net_repl_input_bytes" => 0,
            "total_net_repl_output_bytes" => 0,
            "instantaneous_input_kbps" =>
                format_args!("{:.2}", shared.metrics.rate(Metrics::NET_INPUT) as f64 / 1024.0),
            "instantaneous_output_kbps" =>
                format_args!("{:.2}", shared.metrics.rate(Metrics::NET_OUTPUT) as f64 / 1024.0),
            "instantaneous_input_repl_kbps" => "0.00",
            "instantaneous_output_repl_kbps" => "0.00",
            "rejected_connections" => stats.rejected_connections,
            "sync_full" => 0,
            "sync_partial_ok" => 0,
            "sync_partial_err" => 0,
            "expired_keys" => store.stats.expired_keys,
            "expired_stale_perc" => "0.00",
            "expired_time_cap_reached_count" => 0,
            "expire_cycle_cpu_milliseconds" => 0,
            "evicted_keys" => 0,
            "evicted_clients" => 0,
            "total_eviction_exceeded_time" => 0,
            "current_eviction_exceeded_time" => 0,
            "keyspace_hits" => store.stats.keyspace_hits,
            "keyspace_misses" => store.stats.keyspace_misses,
            "pubsub_channels" => 0,
            "pubsub_patterns" => 0,
            "pubsubshard_channels" => 0,
            "latest_fork_usec" => 0,
            "total_forks" => 0,
            "migrate_cached_sockets" => 0,
            "slave_expires_tracked_keys" => 0,
            "active_defrag_hits" => 0,
            "active_defrag_misses" => 0,
            "active_defrag_key_hits" => 0,
            "active_defrag_key_misses" => 0,
            "total_active_defrag_time" => 0,
            "current_active_defrag_time" => 0,
            "tracking_total_keys" => 0,
            "tracking_total_items" => 0,
            "tracking_total_prefixes" => 0,
            "unexpected_error_replies" => 0,
            "total_error_replies" => context.reply.errors.total,
            "dump_payload_sanitizations" => 0,
            "total_reads_processed" => stats.reads_processed,
            "total_writes_processed" => stats.writes_processed,
            "io_threaded_reads_processed" => 0,
            "io_threaded_writes_processed" => 0,
            "reply_buffer_shrinks" => 0,
            "reply_buffer_expands" => 0,
        ),
        "replication" => fields!(text,
            "role" => "master",
            "connected_slaves" => 0,
            "master_failover_state" => "no-failover",
            "master_replid" => host.master_replid,
            "master_replid2" => "0000000000000000000000000000000000000000",
            "master_repl_offset" => 0,
            "second_repl_offset" => -1,
            "repl_backlog_active" => 0,
            "repl_backlog_size" => 1_048_576,
            "repl_backlog_first_byte_offset" => 0,
            "repl_backlog_histlen" => 0,
        ),
        "cpu" => {
            let cpu = (host.cpu)();
            fields!(text,
                "used_cpu_sys" => CpuSeconds(cpu.sys_us),
                "used_cpu_user" => CpuSeconds(cpu.user_us),
                "used_cpu_sys_children" => CpuSeconds(cpu.children_sys_us),
                "used_cpu_user_children" => CpuSeconds(cpu.children_user_us),
                "used_cpu_sys_main_thread" => CpuSeconds(cpu.thread_sys_us),
                "used_cpu_user_main_thread" => CpuSeconds(cpu.thread_user_us),
            );
        }
        "errorstats" => {
            for (code, count) in &context.reply.errors.by_code {
                let code = String::from_utf8_lossy(code);
                let _ = write!(text, "errorstat_{code}:count={count}\r\n");
            }
        }
        "cluster" => fields!(text, "cluster_enabled" => 0),
        "keyspace" if store.len() > 0 => {
            let _ = write!(
                text,
                "db0:keys={},expires={},avg_ttl={}\r\n",
                store.len(),
                store.expires_count(),
                store.avg_ttl_ms(context.realtime_ms)
            );
        }
        // Modules, Commandstats, Latencystats, and an empty Keyspace:
        // headers only.
        _ => {}
    }
}

/// INFO memory, computed as Redis computes it from its allocator's
/// figures, with glibc's in their place: allocated is `mallinfo2`'s
/// `uordblks + hblkhd`, active `arena + hblkhd`, resident the RSS.
fn memory_section(context: &Context<'_>, memory: Memory, text: &mut String) {
    let shared = &*context.shared;
    let used = memory.allocated;
    let peak = shared.memory_peak.max(used);
    let startup = shared.memory_startup;
    let overhead = startup.min(used);
    let dataset = used - overhead;
    let net = used.saturating_sub(startup);
    let (active, resident, rss) = (memory.active, memory.rss, memory.rss);
    let aof_buffer = context
        .journal
        .as_ref()
        .map_or(0, |journal| journal.pending_bytes());
    let total_system = shared.host.total_system_memory;
    fields!(text,
        "used_memory" => used,
        "used_memory_human" => bytes_to_human(used),
        "used_memory_rss" => rss,
        "used_memory_rss_human" => bytes_to_human(rss),
        "used_memory_peak" => peak,
        "used_memory_peak_human" => bytes_to_human(peak),
        "used_memory_peak_perc" => format_args!("{:.2}%", ratio(used, peak) * 100.0),
        "used_memory_overhead" => overhead,
        "used_memory_startup" => startup,
        "used_memory_dataset" => dataset,
        "used_memory_dataset_perc" => format_args!("{:.2}%", ratio(dataset, net) * 100.0),
        "allocator_allocated" => used,
        "allocator_active" => active,
        "allocator_resident" => resident,
        "total_system_memory" => total_system,
        "total_system_memory_human" => bytes_to_human(total_system),
        "used_memory_lua" => 0,
        "used_memory_vm_eval" => 0,
        "used_memory_lua_human" => "0B",
        "used_memory_scripts_eval" => 0,
        "number_of_cached_scripts" => 0,
        "number_of_functions" => 0,
        "number_of_libraries" => 0,
        "used_memory_vm_functions" => 0,
        "used_memory_vm_total" => 0,
        "used_memory_vm_total_human" => "0B",
        "used_memory_functions" => 0,
        "used_memory_scripts" => 0,
        "used_memory_scripts_human" => "0B",
        "maxmemory" => 0,
        "maxmemory_human" => "0B",
        "maxmemory_policy" => "noeviction",
        "allocator_frag_ratio" => format_args!("{:.2}", ratio(active, used)),
        "allocator_frag_bytes" => active as i64 - used as i64,
        "allocator_rss_ratio" => format_args!("{:.2}", ratio(resident, active)),
        "allocator_rss_bytes" => resident as i64 - active as i64,
        "rss_overhead_ratio" => format_args!("{:.2}", ratio(rss, resident)),
        "rss_overhead_bytes" => rss as i64 - resident as i64,
        "mem_fragmentation_ratio" => format_args!("{:.2}", ratio(rss, used)),
        "mem_fragmentation_bytes" => rss as i64 - used as i64,
        "mem_not_counted_for_evict" => 0,
        "mem_replication_backlog" => 0,
        "mem_total_replication_buffers" => 0,
        "mem_clients_slaves" => 0,
        "mem_clients_normal" => 0,
        "mem_cluster_links" => 0,
        "mem_aof_buffer" => aof_buffer,
        "mem_allocator" => "libc",
        "active_defrag_running" => 0,
        "lazyfree_pending_objects" => 0,
        "lazyfreed_objects" => 0,
    );
}

fn tcp_port(shared: &Shared) -> String {
    let port = shared.local_addr.rsplit(':').next().unwrap_or("0");
    port.to_string()
}

/// TIME: the wall clock, seconds and microseconds.
fn time(context: &mut Context<'_>, _args: &Args) {
    let us = context.realtime_us;
    context.reply.array(2);
    context.reply.bulk((us / 1_000_000).to_string().as_bytes());
    context.reply.bulk((us % 1_000_000).to_string().as_bytes());
}

/// The parameters CONFIG GET shows, with their values; CONFIG SET changes
/// only `requirepass`, the one the server honours at run time.
fn config_parameters(shared: &Shared) -> Vec<(&'static str, String)> {
    let password = shared.requirepass.as_deref().unwrap_or_default();
    vec![
        ("appendfsync", shared.fsync.name().to_string()),
        (
            "appendonly",
            if shared.appendonly { "yes" } else { "no" }.to_string(),
        ),
        (
            "bind",
            shared
                .local_addr
                .rsplit_once(':')
                .map_or("", |(host, _)| host)
                .to_string(),
        ),
        ("client-query-buffer-limit", "67108864".to_string()),
        ("databases", "1".to_string()),
        ("hz", "10".to_string()),
        ("maxclients", shared.clients_max.to_string()),
        ("maxmemory", "0".to_string()),
        ("maxmemory-policy", "noeviction".to_string()),
        ("port", tcp_port(shared)),
        ("proto-max-bulk-len", resp::BULK_MAX_BYTES.to_string()),
        (
            "requirepass",
            String::from_utf8_lossy(password).into_owned(),
        ),
        ("save", String::new()),
        ("timeout", "0".to_string()),
    ]
}

fn config(context: &mut Context<'_>, args: &Args) {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"get") {
        config_get(context, args);
    } else if sub.eq_ignore_ascii_case(b"set") {
        config_set(context, args);
    } else {
        context.shared.stats = Default::default();
        context.shared.metrics = Default::default();
        context.store.stats = Default::default();
        *context.reply.errors = Default::default();
        context.reply.ok();
    }
}

/// CONFIG GET pattern ...: glob patterns, each parameter once.
fn config_get(context: &mut Context<'_>, args: &Args) {
    let parameters = config_parameters(context.shared);
    let found: Vec<&(&str, String)> = parameters
        .iter()
        .filter(|(name, _)| {
            (2..args.len()).any(|index| glob_match(args.get(index), name.as_bytes(), true))
        })
        .collect();
    context.reply.map(found.len());
    for (name, value) in found {
        context.reply.bulk(name.as_bytes());
        context.reply.bulk(value.as_bytes());
    }
}

/// CONFIG SET name value ...: all or nothing, as in Redis 7.0.
fn config_set(context: &mut Context<'_>, args: &Args) {
    let parameters = config_parameters(context.shared);
    if args.len() % 2 != 0 {
        context.reply.error(SYNTAX);
        return;
    }
    let mut password = None;
    for index in (2..args.len()).step_by(2) {
        let name = args.get(index);
        let known = parameters
            .iter()
            .any(|(known, _)| name.eq_ignore_ascii_case(known.as_bytes()));
        if !known {
            let mut text = b"ERR Unknown option or number of arguments for CONFIG SET - '".to_vec();
            text.extend_from_slice(name);
            text.push(b'\'');
            context.reply.error(&text);
            return;
        }
        if !name.eq_ignore_ascii_case(b"requirepass") {
            let mut text = b"ERR CONFIG SET failed (possibly related to argument '".to_vec();
            text.extend_from_slice(name);
            text.extend_from_slice(b"') - kv_server cannot change it at run time");
            context.reply.error(&text);
            return;
        }
        password = Some(args.get(index + 1));
    }
    if let Some(password) = password {
        context.shared.requirepass = (!password.is_empty()).then(|| password.to_vec());
    }
    context.reply.ok();
}

/// COMMAND, COMMAND COUNT, COMMAND INFO name..., COMMAND DOCS [name...],
/// COMMAND LIST [FILTERBY ...]: what this server implements.
fn command_command(context: &mut Context<'_>, args: &Args) {
    let table = table();
    if args.len() == 1 {
        context.reply.array(table.len());
        for (command, _) in table {
            command_info(context, command);
        }
        return;
    }
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"count") {
        context.reply.int(table.len() as i64);
    } else if sub.eq_ignore_ascii_case(b"info") {
        context.reply.array(args.len() - 2);
        for index in 2..args.len() {
            match lookup(args.get(index)) {
                Some((command, _)) => command_info(context, command),
                None => context.reply.nil_array(),
            }
        }
    } else if sub.eq_ignore_ascii_case(b"list") {
        command_list(context, args);
    } else {
        command_docs(context, args);
    }
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]:
/// every command's name and every subcommand's `container|sub`, as Redis
/// lists them. This server has no modules, and no ACL categories (COMMAND
/// INFO reports none), so those filters match nothing; a pattern matches
/// without regard to case.
fn command_list(context: &mut Context<'_>, args: &Args) {
    let filter = match args.len() {
        2 => None,
        5 if args.get(2).eq_ignore_ascii_case(b"filterby") => Some((args.get(3), args.get(4))),
        _ => return context.reply.error(SYNTAX),
    };
    let names = table()
        .iter()
        .map(|(command, _)| command.name.to_string())
        .chain(
            SUBCOMMANDS
                .iter()
                .map(|(container, sub, _)| format!("{container}|{sub}")),
        );
    let chosen: Vec<String> = match filter {
        None => names.collect(),
        Some((kind, pattern)) if kind.eq_ignore_ascii_case(b"pattern") => names
            .filter(|name| glob_match(pattern, name.as_bytes(), true))
            .collect(),
        Some((kind, _))
            if kind.eq_ignore_ascii_case(b"module") || kind.eq_ignore_ascii_case(b"aclcat") =>
        {
            Vec::new()
        }
        Some(_) => return context.reply.error(SYNTAX),
    };
    context.reply.array(chosen.len());
    for name in &chosen {
        context.reply.bulk(name.as_bytes());
    }
}

fn command_info(context: &mut Context<'_>, command: &Command) {
    let reply = &mut context.reply;
    reply.array(10);
    reply.bulk(command.name.as_bytes());
    reply.int(i64::from(command.arity));
    let flags: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(flag, _)| command.flags & flag != 0)
        .map(|(_, name)| *name)
        .collect();
    reply.set(flags.len());
    for flag in flags {
        reply.simple(flag);
    }
    for position in command.keys {
        reply.int(i64::from(position));
    }
    reply.set(0); // ACL categories: this server has no ACLs.
    reply.set(0); // Tips.
    reply.array(0); // Key specifications.
    let subcommands: Vec<&(&str, &str, i32)> = SUBCOMMANDS
        .iter()
        .filter(|(container, ..)| *container == command.name)
        .collect();
    reply.array(subcommands.len());
    for (container, sub, arity) in subcommands {
        reply.array(10);
        reply.bulk(format!("{container}|{sub}").as_bytes());
        reply.int(i64::from(*arity));
        reply.set(0);
        reply.int(0);
        reply.int(0);
        reply.int(0);
        reply.set(0);
        reply.set(0);
        reply.array(0);
        reply.array(0);
    }
}

fn command_docs(context: &mut Context<'_>, args: &Args) {
    let chosen: Vec<(&Command, &str)> = if args.len() == 2 {
        table()
            .iter()
            .map(|(command, group)| (*command, *group))
            .collect()
    } else {
        (2..args.len())
            .filter_map(|index| lookup(args.get(index)))
            .map(|(command, group)| (*command, *group))
            .collect()
    };
    context.reply.map(chosen.len());
    for (command, group) in chosen {
        context.reply.bulk(command.name.as_bytes());
        context.reply.map(1);
        context.reply.bulk(b"group");
        context.reply.bulk(group.as_bytes());
    }
}

fn multi(context: &mut Context<'_>, _args: &Args) {
    if context.session.multi.is_some() {
        context.reply.error(b"ERR MULTI calls can not be nested");
        return;
    }
    context.session.multi = Some(Multi::default());
    if let Some(client) = context.shared.clients.get_mut(&context.session.id) {
        client.multi = 0;
    }
    context.reply.ok();
}

fn discard(context: &mut Context<'_>, _args: &Args) {
    if context.session.multi.take().is_none() {
        context.reply.error(b"ERR DISCARD without MULTI");
        return;
    }
    if let Some(client) = context.shared.clients.get_mut(&context.session.id) {
        client.multi = -1;
    }
    unwatch_all(context);
    context.reply.ok();
}

fn watch(context: &mut Context<'_>, args: &Args) {
    if context.session.multi.is_some() {
        context
            .reply
            .error(b"ERR WATCH inside MULTI is not allowed");
        return;
    }
    for index in 1..args.len() {
        let key = args.get(index);
        // A map, so that WATCH of many keys stays O(k log k).
        if context.session.watched.contains_key(key) {
            continue;
        }
        // An expired key is removed first, so its expiry is not a change.
        context.store.contains(key);
        let version = context.store.watch(key);
        context.session.watched.insert(key.to_vec(), version);
    }
    context.reply.ok();
}

fn unwatch(context: &mut Context<'_>, _args: &Args) {
    unwatch_all(context);
    context.reply.ok();
}

/// Whether a key WATCHed by this connection changed (or expired) since.
pub fn watched_changed(context: &mut Context<'_>) -> bool {
    let Context { store, session, .. } = context;
    session.watched.iter().any(|(key, version)| {
        store.contains(key);
        store.watch_version(key) != *version
    })
}

/// Forgets this connection's WATCHes.
pub fn unwatch_all(context: &mut Context<'_>) {
    for (key, _) in std::mem::take(&mut context.session.watched) {
        context.store.unwatch(&key);
    }
}

/// A connection ends: its WATCHes go, and it leaves CLIENT LIST.
pub fn end_session(store: &mut Store, shared: &mut Shared, session: &mut Session) {
    for (key, _) in std::mem::take(&mut session.watched) {
        store.unwatch(&key);
    }
    shared.clients.remove(&session.id);
}

/// Redis's `stringmatchlen`: `*`, `?`, `[...]` (with `^` and ranges) and
/// `\` escapes; `nocase` folds ASCII case.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    glob_at(pattern, text, nocase, &mut skip_longer)
}

/// `skip_longer`: Redis 7.0.9's fix for patterns such as "*a*a*a*...b":
/// once a `*` has tried every suffix and failed, an outer `*` trying a
/// longer match cannot succeed either, so the search stays polynomial.
fn glob_at(mut pattern: &[u8], mut text: &[u8], nocase: bool, skip_longer: &mut bool) -> bool {
    let same = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    while let Some(&first) = pattern.first() {
        match first {
            b'*' => {
                while pattern.len() > 1 && pattern[1] == b'*' {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                for start in 0..text.len() {
                    if glob_at(&pattern[1..], &text[start..], nocase, skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                if text.is_empty() {
                    return false;
                }
                text = &text[1..];
            }
            b'[' => {
                let Some(&byte) = text.first() else {
                    return false;
                };
                let (matched, rest) = glob_class(&pattern[1..], byte, nocase);
                if !matched {
                    return false;
                }
                pattern = rest;
                text = &text[1..];
                continue;
            }
            b'\\' if pattern.len() >= 2 => {
                pattern = &pattern[1..];
                if text.first().map_or(true, |&byte| !same(pattern[0], byte)) {
                    return false;
                }
                text = &text[1..];
            }
            literal => {
                if text.first().map_or(true, |&byte| !same(literal, byte)) {
                    return false;
                }
                text = &text[1..];
            }
        }
        pattern = &pattern[1..];
    }
    text.is_empty()
}

/// A `[...]` class after its `[`: whether `byte` matches, and the pattern
/// after the closing `]` (or at its end, as Redis reads an unclosed one).
fn glob_class(mut pattern: &[u8], byte: u8, nocase: bool) -> (bool, &[u8]) {
    let fold = |value: u8| {
        if nocase {
            value.to_ascii_lowercase()
        } else {
            value
        }
    };
    let byte = fold(byte);
    let negate = pattern.first() == Some(&b'^');
    if negate {
        pattern = &pattern[1..];
    }
    let mut matched = false;
    loop {
        match pattern {
            [] => break,
            [b']', rest @ ..] => {
                pattern = rest;
                break;
            }
            [b'\\', escaped, rest @ ..] => {
                matched |= fold(*escaped) == byte;
                pattern = rest;
            }
            [low, b'-', high, rest @ ..] if *high != b']' => {
                let (low, high) = (fold(*low), fold(*high));
                let (low, high) = if low > high { (high, low) } else { (low, high) };
                matched |= (low..=high).contains(&byte);
                pattern = rest;
            }
            [literal, rest @ ..] => {
                matched |= fold(*literal) == byte;
                pattern = rest;
            }
        }
    }
    (matched != negate, pattern)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_redis_stringmatchlen() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"h\\*llo", b"h*llo", false));
        assert!(!glob_match(b"h\\*llo", b"hello", false));
        assert!(glob_match(b"SAVE", b"save", true));
        assert!(!glob_match(b"a*b", b"acd", false));
        let evil = b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!glob_match(evil, &[b'a'; 64], false));
    }
}
