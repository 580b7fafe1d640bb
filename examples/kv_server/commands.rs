//! The commands, with Redis 7's replies and error texts. Each write appends
//! its records to the journal's pending group before it changes the store;
//! the server holds the reply until the group is acknowledged.
//!
//! Supported: PING, ECHO, GET, SET (EX, PX, EXAT, PXAT, NX, XX, KEEPTTL,
//! GET), DEL, EXISTS, INCR, INCRBY, DECR, DECRBY, MGET, MSET, TTL, PTTL,
//! EXPIRETIME, PEXPIRETIME, DBSIZE, FLUSHALL, SELECT (database 0 only),
//! QUIT, and of COMMAND, CONFIG and CLIENT what `redis-cli` and
//! `redis-benchmark` use.
//!
//! Expiry times are absolute wall-clock Unix milliseconds, as in Redis
//! (see `store.rs`): EX and PX add the wall clock's now to the timeout.

use crate::journal::Journal;
use crate::resp::{self, string_to_i64, Args};
use crate::store::Store;
use crate::wal::Record;

/// What a command may touch.
#[derive(Debug)]
pub struct Context<'a> {
    /// The key space.
    pub store: &'a mut Store,
    /// The log that writes append to.
    pub journal: &'a mut Journal,
    /// The wall clock in Unix milliseconds, for expiry
    /// ([`store::realtime_ms`](crate::store::realtime_ms)).
    pub realtime_ms: u64,
    /// CLIENT ID.
    pub client_id: u64,
    /// CLIENT SETNAME / GETNAME.
    pub client_name: &'a mut Option<Vec<u8>>,
    /// Where the reply goes.
    pub out: &'a mut Vec<u8>,
}

/// What the connection should do after the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Carry on.
    Continue,
    /// Close once the reply is sent (QUIT).
    Quit,
}

/// A command: its lower-case name, its Redis arity (n: exactly n
/// arguments; -n: at least n; the name counts), and its handler.
struct Command {
    name: &'static str,
    arity: i32,
    run: fn(&mut Context<'_>, &Args),
}

const COMMANDS: &[Command] = &[
    Command {
        name: "ping",
        arity: -1,
        run: ping,
    },
    Command {
        name: "echo",
        arity: 2,
        run: echo,
    },
    Command {
        name: "get",
        arity: 2,
        run: get,
    },
    Command {
        name: "set",
        arity: -3,
        run: set,
    },
    Command {
        name: "del",
        arity: -2,
        run: del,
    },
    Command {
        name: "exists",
        arity: -2,
        run: exists,
    },
    Command {
        name: "incr",
        arity: 2,
        run: incr,
    },
    Command {
        name: "incrby",
        arity: 3,
        run: incrby,
    },
    Command {
        name: "decr",
        arity: 2,
        run: decr,
    },
    Command {
        name: "decrby",
        arity: 3,
        run: decrby,
    },
    Command {
        name: "mget",
        arity: -2,
        run: mget,
    },
    Command {
        name: "mset",
        arity: -3,
        run: mset,
    },
    Command {
        name: "ttl",
        arity: 2,
        run: ttl,
    },
    Command {
        name: "pttl",
        arity: 2,
        run: pttl,
    },
    Command {
        name: "expiretime",
        arity: 2,
        run: expiretime,
    },
    Command {
        name: "pexpiretime",
        arity: 2,
        run: pexpiretime,
    },
    Command {
        name: "dbsize",
        arity: 1,
        run: dbsize,
    },
    Command {
        name: "flushall",
        arity: -1,
        run: flushall,
    },
    Command {
        name: "select",
        arity: 2,
        run: select,
    },
    Command {
        name: "quit",
        arity: -1,
        run: quit,
    },
    Command {
        name: "command",
        arity: -1,
        run: command,
    },
    Command {
        name: "config",
        arity: -2,
        run: config,
    },
    Command {
        name: "client",
        arity: -2,
        run: client,
    },
];

/// Subcommands of the container commands: (container, subcommand, arity).
const SUBCOMMANDS: &[(&str, &str, i32)] = &[
    ("command", "count", 2),
    ("command", "docs", -2),
    ("command", "info", -2),
    ("config", "get", -3),
    ("client", "id", 2),
    ("client", "getname", 2),
    ("client", "setname", 3),
];

const OK: &str = "OK";
const NOT_INTEGER: &[u8] = b"ERR value is not an integer or out of range";
const SYNTAX: &[u8] = b"ERR syntax error";

/// Runs one command (at least one argument), appending its reply.
pub fn execute(context: &mut Context<'_>, args: &Args) -> Outcome {
    context.store.expire(context.realtime_ms);
    let name = args.get(0);
    let Some(command) = COMMANDS
        .iter()
        .find(|command| name.eq_ignore_ascii_case(command.name.as_bytes()))
    else {
        unknown_command(context.out, args);
        return Outcome::Continue;
    };
    if let Err(full_name) = check_arity(command, args) {
        match full_name {
            Some(full_name) => wrong_arity(context.out, &full_name),
            None => unknown_subcommand(context.out, args),
        }
        return Outcome::Continue;
    }
    (command.run)(context, args);
    if command.name == "quit" {
        Outcome::Quit
    } else {
        Outcome::Continue
    }
}

/// `Err(Some(name))`: wrong arity for `name` (`config|get` for a
/// subcommand); `Err(None)`: an unknown subcommand.
fn check_arity(command: &Command, args: &Args) -> Result<(), Option<String>> {
    let argc = args.len() as i32;
    let is_container = SUBCOMMANDS
        .iter()
        .any(|(container, ..)| *container == command.name);
    if is_container && argc >= 2 {
        let sub = args.get(1);
        let Some((_, sub_name, arity)) = SUBCOMMANDS.iter().find(|(container, sub_name, _)| {
            *container == command.name && sub.eq_ignore_ascii_case(sub_name.as_bytes())
        }) else {
            return Err(None);
        };
        if !arity_fits(*arity, argc) {
            return Err(Some(format!("{}|{sub_name}", command.name)));
        }
        return Ok(());
    }
    if !arity_fits(command.arity, argc) {
        return Err(Some(command.name.to_string()));
    }
    Ok(())
}

fn arity_fits(arity: i32, argc: i32) -> bool {
    if arity > 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    let text = format!("ERR wrong number of arguments for '{name}' command");
    resp::error(out, text.as_bytes());
}

/// Redis's text: the name and the first arguments, each cut at 128 bytes,
/// until the list reaches 128 bytes.
fn unknown_command(out: &mut Vec<u8>, args: &Args) {
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
    resp::error(out, &text);
}

fn unknown_subcommand(out: &mut Vec<u8>, args: &Args) {
    let mut text = b"ERR unknown subcommand '".to_vec();
    text.extend_from_slice(truncated(args.get(1), 128));
    text.extend_from_slice(b"'. Try ");
    text.extend(args.get(0).iter().map(u8::to_ascii_uppercase));
    text.extend_from_slice(b" HELP.");
    resp::error(out, &text);
}

/// At most `max` bytes, as C's `%.*s` prints (which also stops at a NUL).
fn truncated(bytes: &[u8], max: usize) -> &[u8] {
    let bytes = &bytes[..bytes.len().min(max)];
    match bytes.iter().position(|&byte| byte == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

fn ping(context: &mut Context<'_>, args: &Args) {
    match args.len() {
        1 => resp::simple(context.out, "PONG"),
        2 => resp::bulk(context.out, args.get(1)),
        _ => wrong_arity(context.out, "ping"),
    }
}

fn echo(context: &mut Context<'_>, args: &Args) {
    resp::bulk(context.out, args.get(1));
}

fn get(context: &mut Context<'_>, args: &Args) {
    match context.store.get(args.get(1)) {
        Some(entry) => resp::bulk(context.out, &entry.value),
        None => resp::null(context.out),
    }
}

/// SET's options, parsed as Redis's `parseExtendedStringArgumentsOrReply`
/// does: repeating an option is allowed, conflicting ones are a syntax error.
#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    /// The argument holding the time, and how to read it.
    expire: Option<(usize, ExpireUnit)>,
}

/// SET's four ways to give an expiry time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpireUnit {
    /// EX: seconds from now.
    Seconds,
    /// PX: milliseconds from now.
    Milliseconds,
    /// EXAT: a Unix time in seconds.
    UnixSeconds,
    /// PXAT: a Unix time in milliseconds.
    UnixMilliseconds,
}

impl ExpireUnit {
    fn from_option(option: &[u8]) -> Option<ExpireUnit> {
        let units = [
            ("ex", ExpireUnit::Seconds),
            ("px", ExpireUnit::Milliseconds),
            ("exat", ExpireUnit::UnixSeconds),
            ("pxat", ExpireUnit::UnixMilliseconds),
        ];
        let (_, unit) = units
            .iter()
            .find(|(name, _)| option.eq_ignore_ascii_case(name.as_bytes()))?;
        Some(*unit)
    }

    fn ms_per_unit(self) -> i64 {
        match self {
            ExpireUnit::Seconds | ExpireUnit::UnixSeconds => 1000,
            ExpireUnit::Milliseconds | ExpireUnit::UnixMilliseconds => 1,
        }
    }

    fn is_relative(self) -> bool {
        matches!(self, ExpireUnit::Seconds | ExpireUnit::Milliseconds)
    }
}

fn parse_set_options(args: &Args) -> Option<SetOptions> {
    let mut options = SetOptions::default();
    let mut index = 3;
    while index < args.len() {
        let option = args.get(index);
        let has_next = index + 1 < args.len();
        let is = |name: &str| option.eq_ignore_ascii_case(name.as_bytes());
        let unit = ExpireUnit::from_option(option);
        if is("nx") && !options.xx {
            options.nx = true;
        } else if is("xx") && !options.nx {
            options.xx = true;
        } else if is("get") {
            options.get = true;
        } else if is("keepttl") && options.expire.is_none() {
            options.keep_ttl = true;
        } else if let Some(unit) = unit.filter(|&unit| {
            // One unit may repeat, but not mix with another or KEEPTTL.
            let allowed = options.expire.map_or(true, |(_, given)| given == unit);
            allowed && !options.keep_ttl && has_next
        }) {
            options.expire = Some((index + 1, unit));
            index += 1;
        } else {
            return None;
        }
        index += 1;
    }
    Some(options)
}

fn set(context: &mut Context<'_>, args: &Args) {
    let Some(options) = parse_set_options(args) else {
        resp::error(context.out, SYNTAX);
        return;
    };
    let key = args.get(1);
    let existing = context.store.get(key);
    let mut deadline_ms = 0;
    if let Some((argument, unit)) = options.expire {
        match expire_deadline_ms(args.get(argument), unit, context.realtime_ms) {
            Ok(deadline) => deadline_ms = deadline,
            Err(text) => {
                resp::error(context.out, text);
                return;
            }
        }
    } else if options.keep_ttl {
        deadline_ms = existing.map_or(0, |entry| entry.deadline_ms);
    }
    if options.get {
        match existing {
            Some(entry) => resp::bulk(context.out, &entry.value),
            None => resp::null(context.out),
        }
    }
    let found = existing.is_some();
    if (options.nx && found) || (options.xx && !found) {
        if !options.get {
            resp::null(context.out);
        }
        return;
    }
    let value = args.get(2);
    context.journal.append(&Record::Set {
        key,
        value,
        deadline_ms,
    });
    context.store.set(key, value.to_vec(), deadline_ms);
    if !options.get {
        resp::simple(context.out, OK);
    }
}

/// Redis 7.0's `getExpireMillisecondsOrReply`: the time must be a positive
/// integer, and the absolute deadline in Unix milliseconds (now on the wall
/// clock plus the timeout, for EX and PX) must fit in an `i64`. Redis finds
/// the second overflow by the sum turning negative; this checks the sum.
fn expire_deadline_ms(
    text: &[u8],
    unit: ExpireUnit,
    realtime_ms: u64,
) -> Result<u64, &'static [u8]> {
    const INVALID: &[u8] = b"ERR invalid expire time in 'set' command";
    let amount = string_to_i64(text).ok_or(NOT_INTEGER)?;
    if amount <= 0 || amount > i64::MAX / unit.ms_per_unit() {
        return Err(INVALID);
    }
    let mut deadline_ms = amount * unit.ms_per_unit();
    if unit.is_relative() {
        let now_ms = i64::try_from(realtime_ms).map_err(|_| INVALID)?;
        deadline_ms = deadline_ms.checked_add(now_ms).ok_or(INVALID)?;
    }
    assert!(deadline_ms > 0);
    Ok(deadline_ms as u64)
}

/// Redis's `ttlGenericCommand`: -2 for a missing key, -1 for one without
/// expiry, else the time left (`absolute`: the deadline itself), in
/// milliseconds or in seconds rounded to the nearest.
fn reply_expiry(context: &mut Context<'_>, key: &[u8], in_ms: bool, absolute: bool) {
    let Some(entry) = context.store.get(key) else {
        resp::integer(context.out, -2);
        return;
    };
    if entry.deadline_ms == 0 {
        resp::integer(context.out, -1);
        return;
    }
    let deadline_ms = entry.deadline_ms as i64;
    let now_ms = i64::try_from(context.realtime_ms).unwrap_or(i64::MAX);
    let left_ms = if absolute {
        deadline_ms
    } else {
        deadline_ms.saturating_sub(now_ms).max(0)
    };
    let reply = if in_ms {
        left_ms
    } else {
        left_ms.saturating_add(500) / 1000
    };
    resp::integer(context.out, reply);
}

fn ttl(context: &mut Context<'_>, args: &Args) {
    reply_expiry(context, args.get(1), false, false);
}

fn pttl(context: &mut Context<'_>, args: &Args) {
    reply_expiry(context, args.get(1), true, false);
}

fn expiretime(context: &mut Context<'_>, args: &Args) {
    reply_expiry(context, args.get(1), false, true);
}

fn pexpiretime(context: &mut Context<'_>, args: &Args) {
    reply_expiry(context, args.get(1), true, true);
}

fn del(context: &mut Context<'_>, args: &Args) {
    let mut removed = 0;
    for index in 1..args.len() {
        let key = args.get(index);
        if context.store.contains(key) {
            context.journal.append(&Record::Del { key });
            context.store.remove(key);
            removed += 1;
        }
    }
    resp::integer(context.out, removed);
}

fn exists(context: &mut Context<'_>, args: &Args) {
    let count = (1..args.len())
        .filter(|&index| context.store.contains(args.get(index)))
        .count();
    resp::integer(context.out, count as i64);
}

fn incr(context: &mut Context<'_>, args: &Args) {
    increment(context, args.get(1), 1);
}

fn decr(context: &mut Context<'_>, args: &Args) {
    increment(context, args.get(1), -1);
}

fn incrby(context: &mut Context<'_>, args: &Args) {
    match string_to_i64(args.get(2)) {
        Some(by) => increment(context, args.get(1), by),
        None => resp::error(context.out, NOT_INTEGER),
    }
}

fn decrby(context: &mut Context<'_>, args: &Args) {
    match string_to_i64(args.get(2)) {
        Some(i64::MIN) => resp::error(context.out, b"ERR decrement would overflow"),
        Some(by) => increment(context, args.get(1), -by),
        None => resp::error(context.out, NOT_INTEGER),
    }
}

/// Redis's `incrDecrCommand`: the value must be an integer as
/// `string2ll` reads it; the key keeps its expiry.
fn increment(context: &mut Context<'_>, key: &[u8], by: i64) {
    let (current, deadline_ms) = match context.store.get(key) {
        None => (0, 0),
        Some(entry) => match string_to_i64(&entry.value) {
            Some(value) => (value, entry.deadline_ms),
            None => {
                resp::error(context.out, NOT_INTEGER);
                return;
            }
        },
    };
    let Some(value) = current.checked_add(by) else {
        resp::error(context.out, b"ERR increment or decrement would overflow");
        return;
    };
    let text = value.to_string().into_bytes();
    context.journal.append(&Record::Set {
        key,
        value: &text,
        deadline_ms,
    });
    context.store.set(key, text, deadline_ms);
    resp::integer(context.out, value);
}

fn mget(context: &mut Context<'_>, args: &Args) {
    resp::array(context.out, args.len() - 1);
    for index in 1..args.len() {
        match context.store.get(args.get(index)) {
            Some(entry) => resp::bulk(context.out, &entry.value),
            None => resp::null(context.out),
        }
    }
}

fn mset(context: &mut Context<'_>, args: &Args) {
    if args.len() % 2 == 0 {
        wrong_arity(context.out, "mset");
        return;
    }
    for index in (1..args.len()).step_by(2) {
        let (key, value) = (args.get(index), args.get(index + 1));
        context.journal.append(&Record::Set {
            key,
            value,
            deadline_ms: 0,
        });
        context.store.set(key, value.to_vec(), 0);
    }
    resp::simple(context.out, OK);
}

fn dbsize(context: &mut Context<'_>, _args: &Args) {
    resp::integer(context.out, context.store.len() as i64);
}

fn flushall(context: &mut Context<'_>, args: &Args) {
    let mode_ok = match args.len() {
        1 => true,
        2 => {
            args.get(1).eq_ignore_ascii_case(b"sync") || args.get(1).eq_ignore_ascii_case(b"async")
        }
        _ => false,
    };
    if !mode_ok {
        resp::error(context.out, SYNTAX);
        return;
    }
    context.journal.append(&Record::FlushAll);
    context.store.clear();
    resp::simple(context.out, OK);
}

fn select(context: &mut Context<'_>, args: &Args) {
    match string_to_i64(args.get(1)) {
        Some(0) => resp::simple(context.out, OK),
        Some(_) => resp::error(context.out, b"ERR DB index is out of range"),
        None => resp::error(context.out, NOT_INTEGER),
    }
}

fn quit(context: &mut Context<'_>, _args: &Args) {
    resp::simple(context.out, OK);
}

/// COMMAND with no subcommand would list every command with its metadata;
/// this server answers with an empty list, which redis-cli accepts (it then
/// offers no hints). COMMAND DOCS likewise; COMMAND INFO gives a nil per name.
fn command(context: &mut Context<'_>, args: &Args) {
    if args.len() == 1 {
        resp::array(context.out, 0);
        return;
    }
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"count") {
        resp::integer(context.out, COMMANDS.len() as i64);
    } else if sub.eq_ignore_ascii_case(b"docs") {
        resp::array(context.out, 0);
    } else {
        resp::array(context.out, args.len() - 2);
        for _ in 2..args.len() {
            resp::array_null(context.out);
        }
    }
}

/// CONFIG GET, for the parameters clients ask about (exact names, no glob
/// patterns): `save` is empty (no snapshots), `appendonly` is `yes` (the
/// log), `appendfsync` is the `--fsync` policy. Others give nothing, as an
/// unknown parameter does in Redis.
fn config(context: &mut Context<'_>, args: &Args) {
    let policy = context.journal.policy().name();
    let known: [(&str, &str); 3] = [("save", ""), ("appendonly", "yes"), ("appendfsync", policy)];
    let mut found: Vec<(&str, &str)> = Vec::new();
    for index in 2..args.len() {
        let parameter = args.get(index);
        for &(name, value) in &known {
            let seen = found.iter().any(|(found_name, _)| *found_name == name);
            if parameter.eq_ignore_ascii_case(name.as_bytes()) && !seen {
                found.push((name, value));
            }
        }
    }
    resp::array(context.out, found.len() * 2);
    for (name, value) in found {
        resp::bulk(context.out, name.as_bytes());
        resp::bulk(context.out, value.as_bytes());
    }
}

/// CLIENT ID, SETNAME and GETNAME.
fn client(context: &mut Context<'_>, args: &Args) {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"id") {
        resp::integer(context.out, context.client_id as i64);
    } else if sub.eq_ignore_ascii_case(b"getname") {
        match context.client_name {
            Some(name) => resp::bulk(context.out, name),
            None => resp::null(context.out),
        }
    } else {
        let name = args.get(2);
        if name.iter().any(|&byte| !(b'!'..=b'~').contains(&byte)) {
            let text = b"ERR Client names cannot contain spaces, newlines or special characters.";
            resp::error(context.out, text);
            return;
        }
        *context.client_name = if name.is_empty() {
            None
        } else {
            Some(name.to_vec())
        };
        resp::simple(context.out, OK);
    }
}
