//! Connection, server and transaction commands: PING, ECHO, SELECT, QUIT,
//! HELLO, AUTH, RESET, CLIENT (ID, GETNAME, SETNAME, LIST, INFO, UNBLOCK),
//! INFO, TIME, CONFIG, COMMAND, MULTI, EXEC, DISCARD, WATCH, UNWATCH,
//! BGREWRITEAOF.

use std::fmt::Write as _;

use super::{
    command, exec, is_option, lookup, table, wrong_arity, Command, Context, Multi, Session, Shared,
    ADMIN, FAST, FLAG_NAMES, NOT_INTEGER, NO_AUTH, NO_MULTI, RANDOM, READONLY, SUBCOMMANDS, SYNTAX,
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
];

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

/// INFO [section ...]: server, clients, memory, persistence, stats,
/// replication, keyspace (the default and `all`); unknown sections are
/// empty, as in Redis.
fn info(context: &mut Context<'_>, args: &Args) {
    const ALL: [&str; 7] = [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "keyspace",
    ];
    let mut wanted: Vec<&str> = Vec::new();
    for index in 1..args.len() {
        let asked = String::from_utf8_lossy(args.get(index)).to_ascii_lowercase();
        if ["all", "default", "everything"].contains(&asked.as_str()) {
            wanted.extend(ALL);
        } else if let Some(section) = ALL.iter().find(|section| **section == asked) {
            wanted.push(section);
        }
    }
    if args.len() == 1 {
        wanted.extend(ALL);
    }
    let mut text = String::new();
    for section in ALL.iter().filter(|section| wanted.contains(section)) {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        info_section(context, section, &mut text);
    }
    context.reply.verbatim(text.as_bytes());
}

fn info_section(context: &Context<'_>, section: &str, text: &mut String) {
    let mut title = section.to_string();
    title[..1].make_ascii_uppercase();
    let _ = write!(text, "# {title}\r\n");
    for (name, value) in info_fields(context, section) {
        let _ = write!(text, "{name}:{value}\r\n");
    }
}

/// One INFO section's fields, in Redis's order and with its names.
fn info_fields(context: &Context<'_>, section: &str) -> Vec<(&'static str, String)> {
    let shared = &*context.shared;
    let store = &*context.store;
    let uptime_s = context.realtime_ms.saturating_sub(shared.started_ms) / 1000;
    match section {
        "server" => vec![
            ("redis_version", REDIS_VERSION.to_string()),
            ("redis_mode", "standalone".to_string()),
            ("server_name", "kv_server (ringio)".to_string()),
            ("os", std::env::consts::OS.to_string()),
            ("arch_bits", "64".to_string()),
            ("process_id", std::process::id().to_string()),
            ("tcp_port", tcp_port(shared)),
            ("server_time_usec", context.realtime_us.to_string()),
            ("uptime_in_seconds", uptime_s.to_string()),
            ("uptime_in_days", (uptime_s / 86_400).to_string()),
            ("hz", "10".to_string()),
        ],
        "clients" => vec![
            ("connected_clients", shared.clients.len().to_string()),
            ("maxclients", shared.clients_max.to_string()),
            ("blocked_clients", shared.blocked.len().to_string()),
        ],
        "memory" => vec![
            ("maxmemory", "0".to_string()),
            ("maxmemory_policy", "noeviction".to_string()),
        ],
        "persistence" => vec![
            ("loading", "0".to_string()),
            ("aof_enabled", u8::from(shared.appendonly).to_string()),
            (
                "aof_rewrite_in_progress",
                u8::from(shared.rewrite_in_progress).to_string(),
            ),
            ("rdb_bgsave_in_progress", "0".to_string()),
            ("aof_last_write_status", "ok".to_string()),
            ("appendfsync", shared.fsync.name().to_string()),
        ],
        "stats" => vec![
            (
                "total_connections_received",
                shared.stats.connections_received.to_string(),
            ),
            (
                "total_commands_processed",
                shared.stats.commands_processed.to_string(),
            ),
            (
                "rejected_connections",
                shared.stats.rejected_connections.to_string(),
            ),
            ("expired_keys", store.stats.expired_keys.to_string()),
            ("evicted_keys", "0".to_string()),
            ("keyspace_hits", store.stats.keyspace_hits.to_string()),
            ("keyspace_misses", store.stats.keyspace_misses.to_string()),
        ],
        "replication" => vec![
            ("role", "master".to_string()),
            ("connected_slaves", "0".to_string()),
        ],
        _ => {
            if store.len() > 0 {
                let value = format!(
                    "keys={},expires={},avg_ttl=0",
                    store.len(),
                    store.expires_count()
                );
                vec![("db0", value)]
            } else {
                Vec::new()
            }
        }
    }
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
        context.store.stats = Default::default();
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
