//! Strings: GET, SET (EX, PX, EXAT, PXAT, NX, XX, KEEPTTL, GET), SETNX,
//! SETEX, PSETEX, GETSET, GETDEL, GETEX, APPEND, STRLEN, GETRANGE, SUBSTR,
//! SETRANGE, INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT, MGET, MSET, MSETNX.

use super::longdouble;
use super::{
    command, is_option, parse_i64, Command, Context, DENYOOM, FAST, NOT_INTEGER, READONLY,
    STRING_BYTES_MAX, SYNTAX, WRITE,
};
use crate::resp::{self, string_to_i64, Args};
use crate::store::{Entry, StringForm, Value, WrongType};
use crate::wal::Record;

pub const COMMANDS: &[Command] = &[
    command("get", 2, READONLY | FAST, [1, 1, 1], get),
    command("set", -3, WRITE | DENYOOM, [1, 1, 1], set),
    command("setnx", 3, WRITE | DENYOOM | FAST, [1, 1, 1], setnx),
    command("setex", 4, WRITE | DENYOOM, [1, 1, 1], setex),
    command("psetex", 4, WRITE | DENYOOM, [1, 1, 1], psetex),
    command("getset", 3, WRITE | DENYOOM | FAST, [1, 1, 1], getset),
    command("getdel", 2, WRITE | FAST, [1, 1, 1], getdel),
    command("getex", -2, WRITE | FAST, [1, 1, 1], getex),
    command("append", 3, WRITE | DENYOOM | FAST, [1, 1, 1], append),
    command("strlen", 2, READONLY | FAST, [1, 1, 1], strlen),
    command("getrange", 4, READONLY, [1, 1, 1], getrange),
    command("substr", 4, READONLY, [1, 1, 1], getrange),
    command("setrange", 4, WRITE | DENYOOM, [1, 1, 1], setrange),
    command("incr", 2, WRITE | DENYOOM | FAST, [1, 1, 1], incr),
    command("decr", 2, WRITE | DENYOOM | FAST, [1, 1, 1], decr),
    command("incrby", 3, WRITE | DENYOOM | FAST, [1, 1, 1], incrby),
    command("decrby", 3, WRITE | DENYOOM | FAST, [1, 1, 1], decrby),
    command(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        [1, 1, 1],
        incrbyfloat,
    ),
    command("mget", -2, READONLY | FAST, [1, -1, 1], mget),
    command("lcs", -3, READONLY, [1, 1, 1], lcs),
    command("mset", -3, WRITE | DENYOOM, [1, -1, 2], mset),
    command("msetnx", -3, WRITE | DENYOOM, [1, -1, 2], msetnx),
];

const TOO_BIG: &[u8] = b"ERR string exceeds maximum allowed size (proto-max-bulk-len)";

fn get(context: &mut Context<'_>, args: &Args) {
    match context.store.get_string(args.get(1)) {
        Ok(Some(value)) => context.reply.bulk(value),
        Ok(None) => context.reply.nil(),
        Err(WrongType) => context.reply.wrong_type(),
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
    persist: bool,
    /// The argument holding the time, and how to read it.
    expire: Option<(usize, ExpireUnit)>,
}

/// The four ways to give an expiry time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireUnit {
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

/// `first`: where options start; `for_get`: GETEX's options (PERSIST, no
/// NX/XX/GET/KEEPTTL) instead of SET's.
fn parse_set_options(args: &Args, first: usize, for_get: bool) -> Option<SetOptions> {
    let mut options = SetOptions::default();
    let mut index = first;
    while index < args.len() {
        let option = args.get(index);
        let has_next = index + 1 < args.len();
        let is = |name: &str| option.eq_ignore_ascii_case(name.as_bytes());
        let unit = ExpireUnit::from_option(option);
        let no_expiry = options.expire.is_none() && !options.keep_ttl && !options.persist;
        if !for_get && is("nx") && !options.xx {
            options.nx = true;
        } else if !for_get && is("xx") && !options.nx {
            options.xx = true;
        } else if !for_get && is("get") {
            options.get = true;
        } else if !for_get && is("keepttl") && options.expire.is_none() {
            options.keep_ttl = true;
        } else if for_get && is("persist") && options.expire.is_none() {
            options.persist = true;
        } else if let Some(unit) = unit.filter(|&unit| {
            // One unit may repeat, but not mix with another or KEEPTTL.
            let allowed = options.expire.map_or(no_expiry, |(_, given)| given == unit);
            allowed && has_next
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
    let Some(options) = parse_set_options(args, 3, false) else {
        context.reply.error(SYNTAX);
        return;
    };
    let mut deadline_ms = 0;
    if let Some((argument, unit)) = options.expire {
        match expire_deadline_ms(args.get(argument), unit, context.realtime_ms, "set") {
            Ok(deadline) => deadline_ms = deadline,
            Err(text) => {
                context.reply.error(&text);
                return;
            }
        }
    }
    let key = args.get(1);
    // With GET, Redis reads the key as GET does (`getGenericCommand`),
    // which its statistics count; without, its lookup is a write's.
    context.store.count_lookups(options.get);
    let existing = context.store.get(key);
    if options.keep_ttl {
        deadline_ms = existing.map_or(0, |entry| entry.deadline_ms);
    }
    if options.get {
        match existing {
            Some(Entry {
                value: Value::String(value, _),
                ..
            }) => context.reply.bulk(value),
            Some(_) => {
                context.reply.wrong_type();
                return;
            }
            None => context.reply.nil(),
        }
    }
    let found = existing.is_some();
    if (options.nx && found) || (options.xx && !found) {
        if !options.get {
            context.reply.nil();
        }
        return;
    }
    store_string(context, key, args.get(2).to_vec(), deadline_ms);
    if !options.get {
        context.reply.ok();
    }
}

/// Sets, and logs, `key` to the string `value`, as SET stores one.
fn store_string(context: &mut Context<'_>, key: &[u8], value: Vec<u8>, deadline_ms: u64) {
    store_string_as(context, key, value, deadline_ms, StringForm::Encoded);
}

/// Sets, and logs, `key` to the string `value`, held as `form` says (the
/// log records the value only: see [`StringForm`]).
fn store_string_as(
    context: &mut Context<'_>,
    key: &[u8],
    value: Vec<u8>,
    deadline_ms: u64,
    form: StringForm,
) {
    context.log_record(&Record::Set {
        key,
        value: &value,
        deadline_ms,
    });
    context.store.set_as(key, value, deadline_ms, form);
}

/// Redis 7.0's `getExpireMillisecondsOrReply`: the time must be a positive
/// integer, and the absolute deadline in Unix milliseconds (now on the wall
/// clock plus the timeout, for EX and PX) must fit in an `i64`. Redis finds
/// the second overflow by the sum turning negative; this checks the sum.
pub fn expire_deadline_ms(
    text: &[u8],
    unit: ExpireUnit,
    realtime_ms: u64,
    name: &str,
) -> Result<u64, Vec<u8>> {
    let invalid = || format!("ERR invalid expire time in '{name}' command").into_bytes();
    let amount = string_to_i64(text).ok_or(NOT_INTEGER.to_vec())?;
    if amount <= 0 || amount > i64::MAX / unit.ms_per_unit() {
        return Err(invalid());
    }
    let mut deadline_ms = amount * unit.ms_per_unit();
    if unit.is_relative() {
        let now_ms = i64::try_from(realtime_ms).map_err(|_| invalid())?;
        deadline_ms = deadline_ms.checked_add(now_ms).ok_or_else(invalid)?;
    }
    assert!(deadline_ms > 0);
    Ok(deadline_ms as u64)
}

fn setnx(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    if context.store.contains(key) {
        context.reply.int(0);
        return;
    }
    store_string(context, key, args.get(2).to_vec(), 0);
    context.reply.int(1);
}

fn setex(context: &mut Context<'_>, args: &Args) {
    set_with_expiry(context, args, ExpireUnit::Seconds, "setex");
}

fn psetex(context: &mut Context<'_>, args: &Args) {
    set_with_expiry(context, args, ExpireUnit::Milliseconds, "psetex");
}

fn set_with_expiry(context: &mut Context<'_>, args: &Args, unit: ExpireUnit, name: &str) {
    let deadline_ms = match expire_deadline_ms(args.get(2), unit, context.realtime_ms, name) {
        Ok(deadline_ms) => deadline_ms,
        Err(text) => {
            context.reply.error(&text);
            return;
        }
    };
    store_string(context, args.get(1), args.get(3).to_vec(), deadline_ms);
    context.reply.ok();
}

fn getset(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    // A write that Redis's statistics count as a read (`getGenericCommand`).
    context.store.count_lookups(true);
    match context.store.get_string(key) {
        Ok(Some(value)) => context.reply.bulk(value),
        Ok(None) => context.reply.nil(),
        Err(WrongType) => {
            context.reply.wrong_type();
            return;
        }
    }
    context.store.count_lookups(false);
    store_string(context, key, args.get(2).to_vec(), 0);
}

fn getdel(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    // A write that Redis's statistics count as a read (`lookupKeyRead`).
    context.store.count_lookups(true);
    match context.store.get_string(key) {
        Ok(Some(value)) => context.reply.bulk(value),
        Ok(None) => {
            context.reply.nil();
            return;
        }
        Err(WrongType) => {
            context.reply.wrong_type();
            return;
        }
    }
    context.log_record(&Record::Del { key });
    context.store.remove(key);
}

/// GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST], logged as
/// PEXPIREAT, PERSIST or (a time already past) DEL.
fn getex(context: &mut Context<'_>, args: &Args) {
    let Some(options) = parse_set_options(args, 2, true) else {
        context.reply.error(SYNTAX);
        return;
    };
    let key = args.get(1);
    // A write that Redis's statistics count as a read (`lookupKeyRead`).
    context.store.count_lookups(true);
    let deadline_ms = match context.store.get(key) {
        None => {
            context.reply.nil();
            return;
        }
        Some(Entry {
            value: Value::String(..),
            deadline_ms,
        }) => *deadline_ms,
        Some(_) => {
            context.reply.wrong_type();
            return;
        }
    };
    // Counted once, as Redis's one lookup.
    context.store.count_lookups(false);
    let mut new_deadline_ms = None;
    if let Some((argument, unit)) = options.expire {
        match expire_deadline_ms(args.get(argument), unit, context.realtime_ms, "getex") {
            Ok(deadline) => new_deadline_ms = Some(deadline),
            Err(text) => {
                context.reply.error(&text);
                return;
            }
        }
    }
    if let Ok(Some(value)) = context.store.get_string(key) {
        context.reply.bulk(value);
    }
    if let Some(deadline) = new_deadline_ms {
        super::keys::apply_deadline(context, key, deadline);
    } else if options.persist && deadline_ms != 0 {
        context.log_parts(&[b"PERSIST", key]);
        context.store.set_deadline(key, 0);
    }
}

fn append(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    let addition = args.get(2);
    let length = match context.store.get_string(key) {
        Ok(Some(value)) => value.len() + addition.len(),
        Ok(None) => addition.len(),
        Err(WrongType) => {
            context.reply.wrong_type();
            return;
        }
    };
    if length > STRING_BYTES_MAX {
        context.reply.error(TOO_BIG);
        return;
    }
    // Logged as APPEND, not as the whole new value: appending to a long
    // string must not log it again each time.
    context.log_args(args);
    match context.store.get_mut(key) {
        // Redis unshares the string first: `raw` from then on.
        Some(Entry {
            value: Value::String(value, form),
            ..
        }) => {
            value.extend_from_slice(addition);
            *form = StringForm::Raw;
        }
        _ => context.store.set(key, addition.to_vec(), 0),
    }
    context.reply.int(length as i64);
}

fn strlen(context: &mut Context<'_>, args: &Args) {
    match context.store.get_string(args.get(1)) {
        Ok(value) => context.reply.int(value.map_or(0, Vec::len) as i64),
        Err(WrongType) => context.reply.wrong_type(),
    }
}

fn getrange(context: &mut Context<'_>, args: &Args) {
    let Some(start) = parse_i64(&mut context.reply, args.get(2)) else {
        return;
    };
    let Some(end) = parse_i64(&mut context.reply, args.get(3)) else {
        return;
    };
    let value = match context.store.get_string(args.get(1)) {
        Ok(Some(value)) => value,
        Ok(None) => {
            context.reply.bulk(b"");
            return;
        }
        Err(WrongType) => {
            context.reply.wrong_type();
            return;
        }
    };
    // Redis 7.0's getrangeCommand, step by step.
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        context.reply.bulk(b"");
        return;
    }
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end }.max(0).min(len - 1);
    if start > end || len == 0 {
        context.reply.bulk(b"");
        return;
    }
    context.reply.bulk(&value[start as usize..=end as usize]);
}

fn setrange(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    let Some(offset) = parse_i64(&mut context.reply, args.get(2)) else {
        return;
    };
    if offset < 0 {
        context.reply.error(b"ERR offset is out of range");
        return;
    }
    let patch = args.get(3);
    let current_len = match context.store.get_string(key) {
        Ok(value) => value.map(Vec::len),
        Err(WrongType) => {
            context.reply.wrong_type();
            return;
        }
    };
    if patch.is_empty() {
        context.reply.int(current_len.unwrap_or(0) as i64);
        return;
    }
    let Some(end) = (offset as usize)
        .checked_add(patch.len())
        .filter(|&end| end <= STRING_BYTES_MAX)
    else {
        context.reply.error(TOO_BIG);
        return;
    };
    context.log_args(args);
    if current_len.is_none() {
        context.store.set(key, Vec::new(), 0);
    }
    let Some(Entry {
        value: Value::String(value, form),
        ..
    }) = context.store.get_mut(key)
    else {
        unreachable!("a string was just found or made");
    };
    // Redis makes a new key's string raw, and unshares an old one: `raw`.
    *form = StringForm::Raw;
    if value.len() < end {
        value.resize(end, 0);
    }
    value[offset as usize..end].copy_from_slice(patch);
    let len = value.len();
    context.reply.int(len as i64);
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
        None => context.reply.error(NOT_INTEGER),
    }
}

fn decrby(context: &mut Context<'_>, args: &Args) {
    match string_to_i64(args.get(2)) {
        Some(i64::MIN) => context.reply.error(b"ERR decrement would overflow"),
        Some(by) => increment(context, args.get(1), -by),
        None => context.reply.error(NOT_INTEGER),
    }
}

/// The string at `key` with its deadline, for the increments: `Ok(None)`
/// for a missing key.
fn string_and_deadline(
    context: &mut Context<'_>,
    key: &[u8],
) -> Result<Option<(Vec<u8>, u64)>, WrongType> {
    match context.store.get(key) {
        None => Ok(None),
        Some(Entry {
            value: Value::String(value, _),
            deadline_ms,
        }) => Ok(Some((value.clone(), *deadline_ms))),
        Some(_) => Err(WrongType),
    }
}

/// Redis's `incrDecrCommand`: the value must be an integer as
/// `string2ll` reads it; the key keeps its expiry.
fn increment(context: &mut Context<'_>, key: &[u8], by: i64) {
    let (current, deadline_ms) = match string_and_deadline(context, key) {
        Ok(None) => (0, 0),
        Ok(Some((value, deadline_ms))) => match string_to_i64(&value) {
            Some(value) => (value, deadline_ms),
            None => {
                context.reply.error(NOT_INTEGER);
                return;
            }
        },
        Err(WrongType) => {
            context.reply.wrong_type();
            return;
        }
    };
    let Some(value) = current.checked_add(by) else {
        context
            .reply
            .error(b"ERR increment or decrement would overflow");
        return;
    };
    store_string(context, key, value.to_string().into_bytes(), deadline_ms);
    context.reply.int(value);
}

/// INCRBYFLOAT, in `long double` as Redis adds (see `longdouble.rs`).
fn incrbyfloat(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    let (current, deadline_ms) = match string_and_deadline(context, key) {
        Ok(None) => (None, 0),
        Ok(Some((value, deadline_ms))) => (Some(value), deadline_ms),
        Err(WrongType) => {
            context.reply.wrong_type();
            return;
        }
    };
    let text = match longdouble::increment(current.as_deref(), args.get(2)) {
        Ok(Some(text)) => text.into_bytes(),
        Ok(None) => {
            let text = b"ERR increment would produce NaN or Infinity";
            context.reply.error(text);
            return;
        }
        Err(_) => {
            context.reply.error(super::NOT_FLOAT);
            return;
        }
    };
    context.reply.bulk(&text);
    // Logged as the value it made, as Redis propagates SET ... KEEPTTL;
    // held as text, never `int`, as Redis makes it.
    store_string_as(context, key, text, deadline_ms, StringForm::Text);
}

fn mget(context: &mut Context<'_>, args: &Args) {
    context.reply.array(args.len() - 1);
    for index in 1..args.len() {
        match context.store.get(args.get(index)) {
            Some(Entry {
                value: Value::String(value, _),
                ..
            }) => context.reply.bulk(value),
            _ => context.reply.nil(),
        }
    }
}

fn mset(context: &mut Context<'_>, args: &Args) {
    if args.len() % 2 == 0 {
        super::wrong_arity(&mut context.reply, "mset");
        return;
    }
    for index in (1..args.len()).step_by(2) {
        store_string(context, args.get(index), args.get(index + 1).to_vec(), 0);
    }
    context.reply.ok();
}

fn msetnx(context: &mut Context<'_>, args: &Args) {
    if args.len() % 2 == 0 {
        super::wrong_arity(&mut context.reply, "msetnx");
        return;
    }
    let any_exists = (1..args.len())
        .step_by(2)
        .any(|index| context.store.contains(args.get(index)));
    if any_exists {
        context.reply.int(0);
        return;
    }
    for index in (1..args.len()).step_by(2) {
        store_string(context, args.get(index), args.get(index + 1).to_vec(), 0);
    }
    context.reply.int(1);
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN], as Redis
/// 7.0's `lcsCommand`: the classic dynamic-programming table, walked back
/// from its end to build the string and the matching ranges (last first),
/// so that ties between directions break as Redis breaks them. The table
/// is refused past `proto-max-bulk-len` bytes (4 a cell), as in Redis,
/// which bounds its time too: about 8 million cells.
fn lcs(context: &mut Context<'_>, args: &Args) {
    let a = lcs_operand(context, args.get(1));
    let b = lcs_operand(context, args.get(2));
    let (Some(a), Some(b)) = (a, b) else {
        context
            .reply
            .error(b"ERR The specified keys must contain string values");
        return;
    };
    let (mut get_len, mut get_idx, mut with_match_len, mut min_match_len) =
        (false, false, false, 0);
    let mut index = 3;
    while index < args.len() {
        if is_option(args, index, "idx") {
            get_idx = true;
        } else if is_option(args, index, "len") {
            get_len = true;
        } else if is_option(args, index, "withmatchlen") {
            with_match_len = true;
        } else if is_option(args, index, "minmatchlen") && index + 1 < args.len() {
            let Some(value) = parse_i64(&mut context.reply, args.get(index + 1)) else {
                return;
            };
            min_match_len = value.max(0) as u64;
            index += 1;
        } else {
            context.reply.error(SYNTAX);
            return;
        }
        index += 1;
    }
    if get_idx && get_len {
        context
            .reply
            .error(b"ERR If you want both the length and indexes, please just use IDX.");
        return;
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells * 4 > resp::BULK_MAX_BYTES {
        context
            .reply
            .error(b"ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
        return;
    }
    let width = blen + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let length = table[alen * width + blen];
    if get_len {
        context.reply.int(i64::from(length));
        return;
    }
    let (common, ranges) = lcs_walk(&a, &b, &table, width, min_match_len);
    if !get_idx {
        context.reply.bulk(&common);
        return;
    }
    let reply = &mut context.reply;
    reply.map(2);
    reply.bulk(b"matches");
    reply.array(ranges.len());
    for (a_range, b_range, match_len) in ranges {
        reply.array(if with_match_len { 3 } else { 2 });
        for (start, end) in [a_range, b_range] {
            reply.array(2);
            reply.int(start as i64);
            reply.int(end as i64);
        }
        if with_match_len {
            reply.int(match_len as i64);
        }
    }
    reply.bulk(b"len");
    reply.int(i64::from(length));
}

/// One LCS operand: the string at `key` (empty if missing), or `None` for
/// a key of another type. Looked up as a read, counted in the keyspace
/// statistics.
fn lcs_operand(context: &mut Context<'_>, key: &[u8]) -> Option<Vec<u8>> {
    match context.store.get_string(key) {
        Ok(value) => Some(value.cloned().unwrap_or_default()),
        Err(WrongType) => None,
    }
}

/// A matching range: (start, end) in the first string, in the second,
/// and its length.
type LcsRange = ((usize, usize), (usize, usize), usize);

/// Redis's walk back through the LCS table: the common string, and the
/// ranges of at least `min_match_len` bytes (0: all), last first.
fn lcs_walk(
    a: &[u8],
    b: &[u8],
    table: &[u32],
    width: usize,
    min_match_len: u64,
) -> (Vec<u8>, Vec<LcsRange>) {
    let (mut i, mut j) = (a.len(), b.len());
    let mut common = Vec::with_capacity(table[i * width + j] as usize);
    let mut ranges = Vec::new();
    // The current range: (a start, a end, b start, b end).
    let mut open: Option<(usize, usize, usize, usize)> = None;
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common.push(a[i - 1]);
            match &mut open {
                None => open = Some((i - 1, i - 1, j - 1, j - 1)),
                // Contiguous: the range grows backwards.
                Some((a_start, _, b_start, _)) if *a_start == i && *b_start == j => {
                    *a_start -= 1;
                    *b_start -= 1;
                }
                Some(_) => emit = true,
            }
            // Matched the first byte of either string: the walk ends.
            if let Some((a_start, _, b_start, _)) = open {
                emit |= a_start == 0 || b_start == 0;
            }
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = open.is_some();
        }
        if emit {
            let (a_start, a_end, b_start, b_end) = open.take().expect("a range is open");
            let match_len = a_end - a_start + 1;
            if min_match_len == 0 || match_len as u64 >= min_match_len {
                ranges.push(((a_start, a_end), (b_start, b_end), match_len));
            }
        }
    }
    common.reverse();
    (common, ranges)
}
