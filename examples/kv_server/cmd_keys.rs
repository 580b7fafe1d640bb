//! The keyspace and expiry: DEL, UNLINK, EXISTS, TOUCH, TYPE, RENAME,
//! RENAMENX, COPY, KEYS, SCAN, RANDOMKEY, DBSIZE, FLUSHDB, FLUSHALL,
//! OBJECT ENCODING, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (NX, XX, GT, LT),
//! TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST, and WAIT (no replicas).

use super::server_cmds::glob_match;
use super::{
    command, is_option, parse_i64, Command, Context, Reply, ADMIN, DENYOOM, FAST, NOT_INTEGER,
    RANDOM, READONLY, REPLY_BYTES_MAX, SYNTAX, WRITE,
};
use crate::keymap::{self, HashedKey, KeyMap};
use crate::resp::{string_to_i64, Args};
use crate::store::{splitmix, Entry, StringForm, Value};
use crate::wal::Record;

/// COMMAND DOCS's "server" group, kept beside the keyspace they act on.
pub const SERVER_COMMANDS: &[Command] = &[
    command("dbsize", 1, READONLY | FAST, [0, 0, 0], dbsize),
    command("flushdb", -1, WRITE, [0, 0, 0], flushall),
    command("flushall", -1, WRITE, [0, 0, 0], flushall),
];

/// COMMAND DOCS's "generic" group.
pub const COMMANDS: &[Command] = &[
    command("del", -2, WRITE, [1, -1, 1], del),
    command("unlink", -2, WRITE | FAST, [1, -1, 1], del),
    command("exists", -2, READONLY | FAST, [1, -1, 1], exists),
    command("touch", -2, READONLY | FAST, [1, -1, 1], exists),
    command("type", 2, READONLY | FAST, [1, 1, 1], type_command),
    command("rename", 3, WRITE, [1, 2, 1], rename),
    command("renamenx", 3, WRITE | FAST, [1, 2, 1], rename),
    command("copy", -3, WRITE | DENYOOM, [1, 2, 1], copy),
    command("keys", 2, READONLY, [0, 0, 0], keys),
    command("scan", -2, READONLY, [0, 0, 0], scan),
    command("randomkey", 1, READONLY | RANDOM, [0, 0, 0], randomkey),
    command("object", -2, READONLY, [2, 2, 1], object),
    command("expire", -3, WRITE | FAST, [1, 1, 1], expire),
    command("pexpire", -3, WRITE | FAST, [1, 1, 1], expire),
    command("expireat", -3, WRITE | FAST, [1, 1, 1], expire),
    command("pexpireat", -3, WRITE | FAST, [1, 1, 1], expire),
    command("ttl", 2, READONLY | FAST, [1, 1, 1], ttl),
    command("pttl", 2, READONLY | FAST, [1, 1, 1], ttl),
    command("expiretime", 2, READONLY | FAST, [1, 1, 1], ttl),
    command("pexpiretime", 2, READONLY | FAST, [1, 1, 1], ttl),
    command("persist", 2, WRITE | FAST, [1, 1, 1], persist),
    command("wait", 3, 0, [0, 0, 0], wait),
];

/// WAIT numreplicas timeout: this server has no replicas, so no write is
/// ever acknowledged by one and the reply is 0, as redis-server 7.0.15
/// gives it without replicas: at once for `numreplicas <= 0` and inside
/// MULTI, otherwise after `timeout` milliseconds (0: never, until CLIENT
/// UNBLOCK or the client leaves). Like every reply, it goes out once the
/// client's earlier writes are durable.
fn wait(context: &mut Context<'_>, args: &Args) {
    let Some(replicas) = parse_i64(&mut context.reply, args.get(1)) else {
        return;
    };
    let Some(timeout_ms) = string_to_i64(args.get(2)) else {
        return context
            .reply
            .error(b"ERR timeout is not an integer or out of range");
    };
    if timeout_ms < 0 {
        return context.reply.error(b"ERR timeout is negative");
    }
    if replicas <= 0 || context.deny_blocking {
        return context.reply.int(0);
    }
    context.block = Some(super::Block {
        keys: Vec::new(),
        timeout_ms: timeout_ms as u64,
        op: super::BlockOp::Wait,
    });
}

const _: u16 = ADMIN;

fn del(context: &mut Context<'_>, args: &Args) {
    let mut removed = 0;
    for index in 1..args.len() {
        let key = args.get(index);
        if context.store.contains(key) {
            context.log_record(&Record::Del { key });
            context.store.remove(key);
            removed += 1;
        }
    }
    context.reply.int(removed);
}

/// EXISTS and TOUCH: how many of the keys exist, repeats counted.
fn exists(context: &mut Context<'_>, args: &Args) {
    let count = (1..args.len())
        .filter(|&index| context.store.contains(args.get(index)))
        .count();
    context.reply.int(count as i64);
}

fn type_command(context: &mut Context<'_>, args: &Args) {
    let name = context
        .store
        .get(args.get(1))
        .map_or("none", |entry| entry.value.type_name());
    context.reply.simple(name);
}

/// RENAME and RENAMENX; the expiry moves with the value. Logged as they
/// came: the effect depends on nothing else.
fn rename(context: &mut Context<'_>, args: &Args) {
    let nx = is_option(args, 0, "renamenx");
    let (source, target) = (args.get(1), args.get(2));
    if !context.store.contains(source) {
        context.reply.error(b"ERR no such key");
        return;
    }
    if source == target {
        if nx {
            context.reply.int(0);
        } else {
            context.reply.ok();
        }
        return;
    }
    if nx && context.store.contains(target) {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    let entry = context.store.take(source).expect("the source exists");
    context.store.insert(target, entry.value, entry.deadline_ms);
    if nx {
        context.reply.int(1);
    } else {
        context.reply.ok();
    }
}

/// COPY source destination [DB 0] [REPLACE].
fn copy(context: &mut Context<'_>, args: &Args) {
    let mut replace = false;
    let mut index = 3;
    while index < args.len() {
        if is_option(args, index, "replace") {
            replace = true;
        } else if is_option(args, index, "db") && index + 1 < args.len() {
            index += 1;
            match string_to_i64(args.get(index)) {
                Some(0) => {}
                Some(_) => return context.reply.error(b"ERR DB index is out of range"),
                None => return context.reply.error(NOT_INTEGER),
            }
        } else {
            return context.reply.error(SYNTAX);
        }
        index += 1;
    }
    let (source, target) = (args.get(1), args.get(2));
    if source == target {
        context
            .reply
            .error(b"ERR source and destination objects are the same");
        return;
    }
    // Redis reads the source as a read (`lookupKeyRead`, counted in the
    // keyspace statistics) and the destination as a write (not counted).
    context.store.count_lookups(true);
    let source_entry = context.store.get(source).cloned();
    context.store.count_lookups(false);
    let Some(entry) = source_entry else {
        context.reply.int(0);
        return;
    };
    if !replace && context.store.contains(target) {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    context.store.insert(target, entry.value, entry.deadline_ms);
    context.reply.int(1);
}

/// KEYS pattern. Refused when the reply would pass [`REPLY_BYTES_MAX`]
/// (SCAN has no such limit on the whole): counted first, so nothing is
/// built that is then thrown away.
fn keys(context: &mut Context<'_>, args: &Args) {
    let pattern = args.get(1);
    let store = &*context.store;
    let all = pattern == b"*";
    let matching = || {
        store.entries().iter().filter(move |(key, entry)| {
            store.is_live(entry) && (all || glob_match(pattern, key.bytes(), false))
        })
    };
    let (count, bytes) = matching().fold((0, 0), |(count, bytes), (key, _)| {
        (count + 1, bytes + key.bytes().len() + 16)
    });
    if bytes > REPLY_BYTES_MAX {
        let text = format!(
            "ERR reply would exceed {REPLY_BYTES_MAX} bytes; ask for a smaller range or use SCAN"
        );
        context.reply.error(text.as_bytes());
        return;
    }
    context.reply.array(count);
    for (key, _) in matching() {
        context.reply.bulk(key.bytes());
    }
}

/// SCAN's options after the cursor: MATCH, COUNT and (for SCAN) TYPE.
pub struct ScanOptions<'a> {
    /// Where the scan resumes.
    pub cursor: u64,
    /// How many elements to visit.
    pub count: usize,
    /// MATCH.
    pub pattern: Option<&'a [u8]>,
    /// TYPE.
    pub type_name: Option<&'a [u8]>,
}

/// Parses `args[cursor_index]` and the options after it, as Redis 7.0's
/// `scanGenericCommand` does.
pub fn parse_scan<'a>(
    reply: &mut Reply<'_>,
    args: &'a Args,
    cursor_index: usize,
    with_type: bool,
) -> Option<ScanOptions<'a>> {
    let text = args.get(cursor_index);
    let Some(cursor) = std::str::from_utf8(text)
        .ok()
        .filter(|text| text.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|text| text.parse::<u64>().ok())
    else {
        reply.error(b"ERR invalid cursor");
        return None;
    };
    let mut options = ScanOptions {
        cursor,
        count: 10,
        pattern: None,
        type_name: None,
    };
    let mut index = cursor_index + 1;
    while index < args.len() {
        let has_value = index + 1 < args.len();
        if is_option(args, index, "count") && has_value {
            let count = parse_i64(reply, args.get(index + 1))?;
            if count < 1 {
                reply.error(SYNTAX);
                return None;
            }
            options.count = count as usize;
        } else if is_option(args, index, "match") && has_value {
            options.pattern = Some(args.get(index + 1));
        } else if with_type && is_option(args, index, "type") && has_value {
            options.type_name = Some(args.get(index + 1));
        } else {
            reply.error(SYNTAX);
            return None;
        }
        index += 2;
    }
    Some(options)
}

/// One SCAN step over `map`: `emit` writes each chosen element (one bulk,
/// or a pair) and returns how many replies it wrote; `keep` filters.
pub fn scan_map<V>(
    reply: &mut Reply<'_>,
    map: &KeyMap<V>,
    options: &ScanOptions<'_>,
    keep: impl Fn(&HashedKey, &V) -> bool,
    emit: impl Fn(&mut Vec<u8>, &HashedKey, &V) -> usize,
) {
    let mut items = Vec::new();
    let mut count = 0;
    let mut too_big = false;
    let next = keymap::scan(map, options.cursor, options.count, |key, value| {
        let matches = options
            .pattern
            .map_or(true, |pattern| glob_match(pattern, key.bytes(), false));
        if matches && keep(key, value) && !too_big {
            count += emit(&mut items, key, value);
            too_big = items.len() > REPLY_BYTES_MAX;
        }
    });
    if too_big {
        let start = reply.out.len();
        reply.out.resize(start + REPLY_BYTES_MAX + 1, 0);
        reply.over_limit(start);
        return;
    }
    reply.array(2);
    reply.bulk(next.to_string().as_bytes());
    reply.array(count);
    reply.out.extend_from_slice(&items);
}

fn scan(context: &mut Context<'_>, args: &Args) {
    let Some(options) = parse_scan(&mut context.reply, args, 1, true) else {
        return;
    };
    let store = &*context.store;
    let keep = |_: &HashedKey, entry: &Entry| {
        store.is_live(entry)
            && options.type_name.map_or(true, |wanted| {
                wanted.eq_ignore_ascii_case(entry.value.type_name().as_bytes())
            })
    };
    let emit = |out: &mut Vec<u8>, key: &HashedKey, _: &Entry| {
        crate::resp::bulk(out, key.bytes());
        1
    };
    scan_map(&mut context.reply, store.entries(), &options, keep, emit);
}

fn randomkey(context: &mut Context<'_>, _args: &Args) {
    match context.store.random_key() {
        Some(key) => context.reply.bulk(&key),
        None => context.reply.nil(),
    }
}

fn dbsize(context: &mut Context<'_>, _args: &Args) {
    context.reply.int(context.store.len() as i64);
}

/// FLUSHALL and FLUSHDB [ASYNC|SYNC].
fn flushall(context: &mut Context<'_>, args: &Args) {
    let mode_ok = match args.len() {
        1 => true,
        2 => is_option(args, 1, "sync") || is_option(args, 1, "async"),
        _ => false,
    };
    if !mode_ok {
        context.reply.error(SYNTAX);
        return;
    }
    context.log_record(&Record::FlushAll);
    context.store.clear();
    context.reply.ok();
}

/// OBJECT FREQ (Redis's error without an LFU policy), and OBJECT ENCODING:
/// what Redis 7.0 would report for the value, by its
/// default thresholds (this server keeps one representation per type).
fn object(context: &mut Context<'_>, args: &Args) {
    let Some(entry) = context.store.get(args.get(2)) else {
        context.reply.nil();
        return;
    };
    if is_option(args, 1, "freq") {
        // Redis's reply under any policy but an LFU one; kv_server has no
        // eviction policy at all (`maxmemory-policy` reads noeviction).
        context.reply.error(
            b"ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        );
        return;
    }
    let small = |len: usize, mut members: Box<dyn Iterator<Item = &[u8]> + '_>| {
        len <= 128 && members.all(|member| member.len() <= 64)
    };
    let encoding = match &entry.value {
        Value::String(_, StringForm::Raw) => "raw",
        Value::String(value, StringForm::Encoded)
            if value.len() <= 20 && string_to_i64(value).is_some() =>
        {
            "int"
        }
        Value::String(value, _) if value.len() <= 44 => "embstr",
        Value::String(..) => "raw",
        Value::List(_) => "quicklist",
        Value::Hash(hash) => {
            let fields = hash
                .iter()
                .flat_map(|(field, value)| [field.bytes(), value.as_slice()]);
            if small(hash.len(), Box::new(fields)) {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Set(set) => {
            let all_integers = set.len() <= 512
                && set
                    .iter()
                    .all(|(member, _)| string_to_i64(member.bytes()).is_some());
            if all_integers {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(zset) => {
            if small(zset.len(), Box::new(zset.iter().map(|(member, _)| member))) {
                "listpack"
            } else {
                "skiplist"
            }
        }
    };
    context.reply.bulk(encoding.as_bytes());
}

/// EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT with NX, XX, GT and LT, as Redis
/// 7.0's `expireGenericCommand`. Logged as PEXPIREAT with the absolute
/// time, or as DEL when the time has already passed.
fn expire(context: &mut Context<'_>, args: &Args) {
    let name = String::from_utf8_lossy(args.get(0)).to_ascii_lowercase();
    let Some(flags) = parse_expire_flags(&mut context.reply, args) else {
        return;
    };
    let Some(mut when) = parse_i64(&mut context.reply, args.get(2)) else {
        return;
    };
    let invalid = format!("ERR invalid expire time in '{name}' command");
    if !name.starts_with('p') {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            context.reply.error(invalid.as_bytes());
            return;
        }
        when *= 1000;
    }
    let base_ms = if name.ends_with("at") {
        0
    } else {
        context.realtime_ms as i64
    };
    if when > i64::MAX - base_ms {
        context.reply.error(invalid.as_bytes());
        return;
    }
    when += base_ms;
    let key = args.get(1);
    let Some(current_ms) = context.store.get(key).map(|entry| entry.deadline_ms) else {
        context.reply.int(0);
        return;
    };
    // 0 is "no expiry": GT takes it as infinite, LT as always larger.
    let current = (current_ms != 0).then_some(current_ms as i64);
    let refused = (flags.nx && current.is_some())
        || (flags.xx && current.is_none())
        || (flags.gt && current.map_or(true, |current| when <= current))
        || (flags.lt && current.is_some_and(|current| when >= current));
    if refused {
        context.reply.int(0);
        return;
    }
    apply_deadline(context, key, when.max(0) as u64);
    context.reply.int(1);
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(reply: &mut Reply<'_>, args: &Args) -> Option<ExpireFlags> {
    let mut flags = ExpireFlags::default();
    for index in 3..args.len() {
        let flag = match args.get(index).to_ascii_lowercase().as_slice() {
            b"nx" => &mut flags.nx,
            b"xx" => &mut flags.xx,
            b"gt" => &mut flags.gt,
            b"lt" => &mut flags.lt,
            _ => {
                let mut text = b"ERR Unsupported option ".to_vec();
                text.extend_from_slice(args.get(index));
                reply.error(&text);
                return None;
            }
        };
        *flag = true;
    }
    if flags.nx && (flags.xx || flags.gt || flags.lt) {
        reply.error(b"ERR NX and XX, GT or LT options at the same time are not compatible");
        return None;
    }
    if flags.gt && flags.lt {
        reply.error(b"ERR GT and LT options at the same time are not compatible");
        return None;
    }
    Some(flags)
}

/// Gives existing `key` the absolute deadline `deadline_ms`, or removes it
/// if that time has passed (Redis's `checkAlreadyExpired`; never while the
/// log is replayed, where the logged PEXPIREAT is applied as it is).
pub fn apply_deadline(context: &mut Context<'_>, key: &[u8], deadline_ms: u64) {
    let past = deadline_ms <= context.realtime_ms || deadline_ms == 0;
    if past && !context.store.loading() {
        context.log_record(&Record::Del { key });
        context.store.remove(key);
        return;
    }
    let deadline_ms = deadline_ms.max(1);
    let text = deadline_ms.to_string();
    context.log_parts(&[b"PEXPIREAT", key, text.as_bytes()]);
    context.store.set_deadline(key, deadline_ms);
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME, as Redis's `ttlGenericCommand`: -2
/// for a missing key, -1 for one without expiry, else the time left (or the
/// deadline itself), in milliseconds or in seconds rounded to the nearest.
fn ttl(context: &mut Context<'_>, args: &Args) {
    let name = args.get(0).to_ascii_lowercase();
    let in_ms = name.starts_with(b"p");
    let absolute = name.ends_with(b"time");
    let Some(entry) = context.store.get(args.get(1)) else {
        context.reply.int(-2);
        return;
    };
    if entry.deadline_ms == 0 {
        context.reply.int(-1);
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
    context.reply.int(reply);
}

fn persist(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    let has_deadline = context
        .store
        .get(key)
        .is_some_and(|entry| entry.deadline_ms != 0);
    if !has_deadline {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    context.store.set_deadline(key, 0);
    context.reply.int(1);
}

/// What SRANDMEMBER, HRANDFIELD and ZRANDMEMBER reply with, from the
/// collection at `args[1]`.
pub enum RandomReply {
    /// No count: the entry at or after this pseudo-random cursor, as a
    /// bulk string (null if the key is missing).
    One(u64),
    /// `count` entries, each at a pseudo-random cursor drawn from `seed`,
    /// repeats allowed (a negative count). The cursors are drawn as the
    /// reply is written, so that a huge count costs no memory beyond the
    /// reply's own bound.
    Repeated { seed: u64, count: usize },
    /// Up to this many distinct entries from the cursor on (a positive
    /// count).
    Distinct(u64, usize),
}

impl RandomReply {
    /// `count` draws with repeats from `seed`, as many as fit in a reply
    /// of 4-byte elements at most (a longer one is refused anyway).
    pub fn repeated(seed: u64, count: u64) -> RandomReply {
        RandomReply::Repeated {
            seed,
            count: count.min(REPLY_BYTES_MAX as u64 / 4) as usize,
        }
    }
}

/// The count and WITHVALUES/WITHSCORES (`with`) of HRANDFIELD and
/// ZRANDMEMBER, as Redis 7.0 reads them; `None` once an error is replied.
pub fn parse_random_count(
    context: &mut Context<'_>,
    args: &Args,
    with: &str,
) -> Option<(RandomReply, bool)> {
    if args.len() < 3 {
        return Some((RandomReply::One(context.store.next_random()), false));
    }
    let count = match string_to_i64(args.get(2)) {
        Some(i64::MIN) => {
            context.reply.error(
                b"ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            );
            return None;
        }
        Some(count) => count,
        None => {
            context.reply.error(NOT_INTEGER);
            return None;
        }
    };
    let with_values = args.len() == 4 && is_option(args, 3, with);
    if args.len() > 4 || (args.len() == 4 && !with_values) {
        context.reply.error(SYNTAX);
        return None;
    }
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        context.reply.error(b"ERR value is out of range");
        return None;
    }
    // A negative count, or 1, samples with repeats (Redis's case 1).
    let random = if count < 0 || count == 1 {
        RandomReply::repeated(context.store.next_random(), count.unsigned_abs())
    } else {
        RandomReply::Distinct(context.store.next_random(), count as usize)
    };
    Some((random, with_values))
}

/// The reply of SRANDMEMBER, HRANDFIELD or ZRANDMEMBER over `map` (`None`:
/// the key is missing): `emit` writes one entry's field (and, `with`, its
/// value or score), a pair in RESP3. Without a count (`One`), the field
/// alone, or null.
pub fn reply_random<V>(
    reply: &mut Reply<'_>,
    map: Option<&KeyMap<V>>,
    random: &RandomReply,
    with: bool,
    emit: impl Fn(&mut Reply<'_>, &HashedKey, &V),
) {
    let map = map.filter(|map| !map.is_empty());
    let (map, count) = match (map, random) {
        (None, RandomReply::One(_)) => return reply.nil(),
        (None, _) => return reply.array(0),
        (Some(map), RandomReply::One(cursor)) => {
            let (key, value) = map.at_or_after(*cursor).expect("not empty");
            return emit(reply, key, value);
        }
        (Some(map), RandomReply::Repeated { count, .. }) => (map, *count),
        (Some(map), RandomReply::Distinct(_, count)) => (map, (*count).min(map.len())),
    };
    let start = reply.out.len();
    reply.array(if with && !reply.resp3 {
        count * 2
    } else {
        count
    });
    let write = |reply: &mut Reply<'_>, key: &HashedKey, value: &V| {
        if with && reply.resp3 {
            reply.array(2);
        }
        emit(reply, key, value);
        !reply.over_limit(start)
    };
    match random {
        RandomReply::One(_) => unreachable!("replied above"),
        RandomReply::Repeated { seed, count } => {
            let mut state = *seed;
            for _ in 0..*count {
                let (key, value) = map.at_or_after(splitmix(&mut state)).expect("not empty");
                if !write(reply, key, value) {
                    return;
                }
            }
        }
        RandomReply::Distinct(cursor, count) => {
            for (key, value) in map.distinct_from(*cursor, *count) {
                if !write(reply, key, value) {
                    return;
                }
            }
        }
    }
}
