//! Lists: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP (with count), LLEN,
//! LRANGE, LINDEX, LSET, LREM, LTRIM, LINSERT, LPOS, RPOPLPUSH, LMOVE,
//! LMPOP, and the blocking pops BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP.
//! The blocking machinery here serves the sorted sets' blocking pops
//! (BZPOPMIN, BZPOPMAX, BZMPOP: `cmd_zsets.rs`) and WAIT too.
//!
//! A list is a `VecDeque`: pushes and pops at both ends are O(1), LINDEX
//! and LSET O(1), LREM and LPOS one pass, LTRIM O(removed).
//!
//! # Blocking pops
//!
//! A blocking pop that finds a list among its keys (the first in the
//! command's order) pops at once, as the plain pop would. Otherwise it
//! writes no reply and leaves a [`Block`] in the context: the server puts
//! the client on each key's wait list and arms its timeout. When a key
//! with waiters is created (by a push, LMOVE, RENAME, ... or inside a
//! transaction), the store lists it as ready, and after the command (or
//! the whole EXEC) the server calls [`serve`] for its waiters, oldest
//! first, while the key holds elements, as Redis's
//! `handleClientsBlockedOnKeys` does. A served pop is logged as the plain
//! command it amounts to (LPOP, RPOP, LPOP with a count, LMOVE), as Redis
//! propagates it, so replaying the log never blocks. Inside EXEC a
//! blocking pop never blocks: it answers as a timeout would.
//!
//! A key may have waiters of both kinds, list pops and sorted-set pops.
//! When it is created, the waiters whose kind does not match its type are
//! passed over and stay blocked, and those after them are served, as in
//! Redis 7.0 (`serveClientsBlockedOnListKey` skips a client blocked on a
//! sorted set).

use super::longdouble::LongDouble;
use super::{
    clip_range, command, is_option, parse_count, parse_i64, Command, Context, BLOCKING, DENYOOM,
    ELEMENTS_MAX, FAST, READONLY, SYNTAX, TOO_MANY_ELEMENTS, WRITE,
};
use crate::resp::{self, Args};
use crate::store::{List, WrongType};

pub const COMMANDS: &[Command] = &[
    command("lpush", -3, WRITE | DENYOOM | FAST, [1, 1, 1], push),
    command("rpush", -3, WRITE | DENYOOM | FAST, [1, 1, 1], push),
    command("lpushx", -3, WRITE | DENYOOM | FAST, [1, 1, 1], push),
    command("rpushx", -3, WRITE | DENYOOM | FAST, [1, 1, 1], push),
    command("lpop", -2, WRITE | FAST, [1, 1, 1], pop),
    command("rpop", -2, WRITE | FAST, [1, 1, 1], pop),
    command("llen", 2, READONLY | FAST, [1, 1, 1], llen),
    command("lrange", 4, READONLY, [1, 1, 1], lrange),
    command("lindex", 3, READONLY, [1, 1, 1], lindex),
    command("lset", 4, WRITE | DENYOOM, [1, 1, 1], lset),
    command("lrem", 4, WRITE, [1, 1, 1], lrem),
    command("ltrim", 4, WRITE, [1, 1, 1], ltrim),
    command("linsert", 5, WRITE | DENYOOM, [1, 1, 1], linsert),
    command("lpos", -3, READONLY, [1, 1, 1], lpos),
    command("rpoplpush", 3, WRITE | DENYOOM, [1, 2, 1], lmove),
    command("lmove", 5, WRITE | DENYOOM, [1, 2, 1], lmove),
    command("lmpop", -4, WRITE, [0, 0, 0], lmpop),
    command("blpop", -3, WRITE | BLOCKING, [1, -2, 1], blpop),
    command("brpop", -3, WRITE | BLOCKING, [1, -2, 1], blpop),
    command(
        "brpoplpush",
        4,
        WRITE | DENYOOM | BLOCKING,
        [1, 2, 1],
        blmove,
    ),
    command("blmove", 6, WRITE | DENYOOM | BLOCKING, [1, 2, 1], blmove),
    command("blmpop", -5, WRITE | BLOCKING, [0, 0, 0], lmpop),
];

/// How a blocked client pops once a key it waits on gets elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOp {
    /// BLPOP and BRPOP (`count` `None`: the reply is the key and one
    /// element), and BLMPOP (the key and an array of at most `count`).
    Pop {
        /// From the head.
        left: bool,
        /// BLMPOP's COUNT.
        count: Option<usize>,
    },
    /// BLMOVE and BRPOPLPUSH: one element onto `target`.
    Move {
        /// The destination list.
        target: Vec<u8>,
        /// From the source's head.
        from_left: bool,
        /// Onto the destination's head.
        to_left: bool,
    },
    /// BZPOPMIN and BZPOPMAX (`count` `None`: the reply is the key, the
    /// member and its score), and BZMPOP (the key and an array of at most
    /// `count` member-score pairs).
    ZPop {
        /// The highest scores first (BZPOPMAX, BZMPOP MAX).
        max: bool,
        /// BZMPOP's COUNT.
        count: Option<usize>,
    },
    /// WAIT for replicas, of which there are none: no keys, and the
    /// timeout's reply is the count of replicas that acknowledged, 0.
    Wait,
}

/// What a blocking command that must wait leaves for the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The keys waited on, each once, in the command's order.
    pub keys: Vec<Vec<u8>>,
    /// How long to wait, in milliseconds; 0 is forever.
    pub timeout_ms: u64,
    /// What to do once served.
    pub op: BlockOp,
}

/// What [`serve`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The client got its reply (the elements, or an error such as a
    /// destination of another type): it is no longer blocked.
    Replied,
    /// The key holds nothing (any more): the client stays blocked, and so
    /// do the key's later waiters.
    NotReady,
    /// The key holds a value of another kind than the client waits for (a
    /// sorted set, for a list pop): the client stays blocked, and the
    /// key's later waiters are tried.
    Skipped,
}

/// Serves a client blocked by `op` on `key`, which was created since the
/// last command: pops as the command would have if the key had held the
/// list then, replying into the context (the blocked client's output) and
/// logging the plain pop.
pub fn serve(context: &mut Context<'_>, key: &[u8], op: &BlockOp) -> Served {
    if let BlockOp::ZPop { max, count } = op {
        return super::zsets::serve(context, key, *max, *count);
    }
    match context.store.get_list(key) {
        Ok(Some(_)) => {}
        Ok(None) => return Served::NotReady,
        Err(WrongType) => return Served::Skipped,
    }
    match op {
        BlockOp::Pop { left, count } => pop_with_key(context, key, *left, *count),
        BlockOp::Move {
            target,
            from_left,
            to_left,
        } => {
            let parts = lmove_parts(key, target, *from_left, *to_left);
            move_element(context, key, target, *from_left, *to_left, &parts);
        }
        BlockOp::ZPop { .. } | BlockOp::Wait => unreachable!("not a list pop"),
    }
    Served::Replied
}

const TIMEOUT_NOT_FLOAT: &[u8] = b"ERR timeout is not a float or out of range";
const TIMEOUT_NEGATIVE: &[u8] = b"ERR timeout is negative";

/// A blocking command's timeout in seconds, as Redis 7.0 reads it: a long
/// double (so `0.1`, `1e-3`, `0x10` and `inf` are all floats), times 1000
/// rounded up to whole milliseconds ([`LongDouble::ceil_millis`]); 0 is
/// forever. `None` once the error is out.
pub(super) fn parse_timeout(context: &mut Context<'_>, text: &[u8]) -> Option<u64> {
    let Some(seconds) = LongDouble::parse(text) else {
        context.reply.error(TIMEOUT_NOT_FLOAT);
        return None;
    };
    let milliseconds = seconds.ceil_millis();
    if milliseconds < 0 {
        context.reply.error(TIMEOUT_NEGATIVE);
        return None;
    }
    Some(milliseconds as u64)
}

/// LEFT or RIGHT at argument `index`: whether LEFT.
fn side(args: &Args, index: usize) -> Option<bool> {
    if is_option(args, index, "left") {
        Some(true)
    } else if is_option(args, index, "right") {
        Some(false)
    } else {
        None
    }
}

fn side_name(left: bool) -> &'static [u8] {
    if left {
        b"LEFT"
    } else {
        b"RIGHT"
    }
}

fn lmove_parts<'a>(
    source: &'a [u8],
    target: &'a [u8],
    from_left: bool,
    to_left: bool,
) -> [&'a [u8]; 5] {
    [
        b"LMOVE",
        source,
        target,
        side_name(from_left),
        side_name(to_left),
    ]
}

/// Pops from `key`, a list, with the key in the reply: BLPOP's `*2` of key
/// and element, or with a count (LMPOP, BLMPOP) the key and an array of at
/// most `count` elements. Logged as LPOP or RPOP (with the count taken).
fn pop_with_key(context: &mut Context<'_>, key: &[u8], left: bool, count: Option<usize>) {
    let len = match context.store.get_list(key) {
        Ok(Some(list)) => list.len(),
        _ => unreachable!("the caller found a list"),
    };
    let taken = count.map_or(1, |count| count.min(len));
    let name: &[u8] = if left { b"LPOP" } else { b"RPOP" };
    match count {
        None => context.log_parts(&[name, key]),
        Some(_) => context.log_parts(&[name, key, taken.to_string().as_bytes()]),
    }
    let list = context
        .store
        .get_list_mut(key)
        .expect("type checked")
        .expect("exists");
    context.reply.array(2);
    context.reply.bulk(key);
    if count.is_some() {
        context.reply.array(taken);
    }
    for _ in 0..taken {
        let element = if left {
            list.pop_front()
        } else {
            list.pop_back()
        };
        context.reply.bulk(&element.expect("within the length"));
    }
    context.store.remove_if_empty(key);
}

/// Pops from the first of `keys` that holds a list (a key of another type
/// on the way is WRONGTYPE); if none does, blocks for `timeout_ms`, or answers with a
/// null array as a timeout would: inside EXEC, or with no timeout (the
/// non-blocking LMPOP).
fn pop_or_block(
    context: &mut Context<'_>,
    keys: &[&[u8]],
    timeout_ms: Option<u64>,
    left: bool,
    count: Option<usize>,
) {
    for key in keys {
        match read(context, key) {
            Err(()) => return,
            Ok(None) => continue,
            Ok(Some(_)) => return pop_with_key(context, key, left, count),
        }
    }
    let Some(timeout_ms) = timeout_ms.filter(|_| !context.deny_blocking) else {
        context.reply.nil_array();
        return;
    };
    context.block = Some(Block {
        keys: unique_keys(keys),
        timeout_ms,
        op: BlockOp::Pop { left, count },
    });
}

/// `keys`, each once, in their order: a blocked client's wait lists.
pub(super) fn unique_keys(keys: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut unique: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
    let mut seen = std::collections::BTreeSet::new();
    for key in keys {
        if seen.insert(*key) {
            unique.push(key.to_vec());
        }
    }
    unique
}

/// BLPOP and BRPOP key [key ...] timeout.
fn blpop(context: &mut Context<'_>, args: &Args) {
    let left = args.get(0)[1].eq_ignore_ascii_case(&b'l');
    let Some(timeout_ms) = parse_timeout(context, args.get(args.len() - 1)) else {
        return;
    };
    let keys: Vec<&[u8]> = (1..args.len() - 1).map(|index| args.get(index)).collect();
    pop_or_block(context, &keys, Some(timeout_ms), left, None);
}

/// The arguments of LMPOP, BLMPOP, ZMPOP and BZMPOP.
pub(super) struct Mpop<'a> {
    pub keys: Vec<&'a [u8]>,
    /// The side named after the keys: LEFT (lists) or MAX (sorted sets).
    pub side: bool,
    pub count: usize,
    /// The blocking forms' timeout.
    pub timeout_ms: Option<u64>,
}

/// Parses `[timeout] numkeys key [key ...] SIDE [COUNT count]`, the
/// timeout for the blocking forms (named with a B), SIDE read by
/// `side_at`. Checked in Redis's order: numkeys, the side, the options,
/// then the timeout. `None` once the error is out.
pub(super) fn parse_mpop<'a>(
    context: &mut Context<'_>,
    args: &'a Args,
    side_at: fn(&Args, usize) -> Option<bool>,
) -> Option<Mpop<'a>> {
    let blocking = args.get(0)[0].eq_ignore_ascii_case(&b'b');
    let numkeys_index = if blocking { 2 } else { 1 };
    let numkeys = match resp::string_to_i64(args.get(numkeys_index)) {
        Some(numkeys) if numkeys >= 1 => numkeys as usize,
        _ => {
            context.reply.error(b"ERR numkeys should be greater than 0");
            return None;
        }
    };
    let keys_end = numkeys_index + 1 + numkeys.min(args.len());
    let side = (keys_end < args.len())
        .then(|| side_at(args, keys_end))
        .flatten();
    let Some(side) = side else {
        context.reply.error(SYNTAX);
        return None;
    };
    let mut count = None;
    let mut index = keys_end + 1;
    while index < args.len() {
        if count.is_none() && is_option(args, index, "count") && index + 1 < args.len() {
            match resp::string_to_i64(args.get(index + 1)) {
                Some(value) if value >= 1 => count = Some(value as usize),
                _ => {
                    context.reply.error(b"ERR count should be greater than 0");
                    return None;
                }
            }
            index += 2;
        } else {
            context.reply.error(SYNTAX);
            return None;
        }
    }
    let timeout_ms = match blocking {
        true => Some(parse_timeout(context, args.get(1))?),
        false => None,
    };
    Some(Mpop {
        keys: (numkeys_index + 1..keys_end)
            .map(|index| args.get(index))
            .collect(),
        side,
        count: count.unwrap_or(1),
        timeout_ms,
    })
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count], and BLMPOP
/// timeout numkeys key [key ...] LEFT|RIGHT [COUNT count].
fn lmpop(context: &mut Context<'_>, args: &Args) {
    let Some(Mpop {
        keys,
        side: left,
        count,
        timeout_ms,
    }) = parse_mpop(context, args, side)
    else {
        return;
    };
    pop_or_block(context, &keys, timeout_ms, left, Some(count));
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout, and
/// BRPOPLPUSH source destination timeout.
fn blmove(context: &mut Context<'_>, args: &Args) {
    let (from_left, to_left) = if args.len() == 4 {
        (false, true)
    } else {
        match (side(args, 3), side(args, 4)) {
            (Some(from), Some(to)) => (from, to),
            _ => return context.reply.error(SYNTAX),
        }
    };
    let Some(timeout_ms) = parse_timeout(context, args.get(args.len() - 1)) else {
        return;
    };
    let (source, target) = (args.get(1), args.get(2));
    match read(context, source) {
        Err(()) => return,
        Ok(Some(_)) => {
            let parts = lmove_parts(source, target, from_left, to_left);
            return move_element(context, source, target, from_left, to_left, &parts);
        }
        Ok(None) => {}
    }
    if context.deny_blocking {
        // Not the null array of a timeout: Redis's null bulk here.
        context.reply.nil();
        return;
    }
    context.block = Some(Block {
        keys: vec![source.to_vec()],
        timeout_ms,
        op: BlockOp::Move {
            target: target.to_vec(),
            from_left,
            to_left,
        },
    });
}

/// The list at `key` for reading; `Err` once the WRONGTYPE reply is out.
fn read<'a>(context: &'a mut Context<'_>, key: &[u8]) -> Result<Option<&'a List>, ()> {
    match context.store.get_list(key) {
        Ok(list) => Ok(list),
        Err(WrongType) => {
            context.reply.wrong_type();
            Err(())
        }
    }
}

/// LPUSH, RPUSH, LPUSHX and RPUSHX.
fn push(context: &mut Context<'_>, args: &Args) {
    let name = args.get(0).to_ascii_lowercase();
    let left = name[0] == b'l';
    let only_existing = name.ends_with(b"x");
    let key = args.get(1);
    let Ok(list) = read(context, key) else {
        return;
    };
    let len = list.map_or(0, List::len);
    if only_existing && list.is_none() {
        context.reply.int(0);
        return;
    }
    if len + args.len() - 2 > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    context.log_args(args);
    let list = context.store.list_or_create(key).expect("type checked");
    for index in 2..args.len() {
        let element = args.get(index).to_vec();
        if left {
            list.push_front(element);
        } else {
            list.push_back(element);
        }
    }
    let len = list.len();
    context.reply.int(len as i64);
}

/// LPOP and RPOP, with an optional count.
fn pop(context: &mut Context<'_>, args: &Args) {
    let left = args.get(0)[0].eq_ignore_ascii_case(&b'l');
    if args.len() > 3 {
        let name = if left { "lpop" } else { "rpop" };
        super::wrong_arity(&mut context.reply, name);
        return;
    }
    let count = if args.len() == 3 {
        let text = args.get(2);
        match parse_count(&mut context.reply, text, "value") {
            Some(count) => Some(count),
            None => return,
        }
    } else {
        None
    };
    let key = args.get(1);
    let Ok(list) = read(context, key) else {
        return;
    };
    let Some(list) = list else {
        match count {
            Some(_) => context.reply.nil_array(),
            None => context.reply.nil(),
        }
        return;
    };
    let taken = count.unwrap_or(1).min(list.len());
    if taken == 0 {
        context.reply.array(0);
        return;
    }
    context.log_args(args);
    let list = context
        .store
        .get_list_mut(key)
        .expect("type checked")
        .expect("exists");
    if count.is_some() {
        context.reply.array(taken);
    }
    for _ in 0..taken {
        let element = if left {
            list.pop_front()
        } else {
            list.pop_back()
        };
        context.reply.bulk(&element.expect("within the length"));
    }
    context.store.remove_if_empty(key);
}

fn llen(context: &mut Context<'_>, args: &Args) {
    if let Ok(list) = read(context, args.get(1)) {
        let len = list.map_or(0, List::len);
        context.reply.int(len as i64);
    }
}

fn lrange(context: &mut Context<'_>, args: &Args) {
    let Some(start) = parse_i64(&mut context.reply, args.get(2)) else {
        return;
    };
    let Some(stop) = parse_i64(&mut context.reply, args.get(3)) else {
        return;
    };
    let Context { store, reply, .. } = context;
    let list = match store.get_list(args.get(1)) {
        Ok(list) => list,
        Err(WrongType) => return reply.wrong_type(),
    };
    let Some((first, last)) = list.and_then(|list| clip_range(start, stop, list.len())) else {
        reply.array(0);
        return;
    };
    let list = list.expect("a range needs a list");
    let begin = reply.out.len();
    reply.array(last - first + 1);
    for element in list.range(first..=last) {
        reply.bulk(element);
        if reply.over_limit(begin) {
            return;
        }
    }
}

/// A list index as Redis reads it: negative from the end.
fn position(index: i64, len: usize) -> Option<usize> {
    let index = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&index).then_some(index as usize)
}

fn lindex(context: &mut Context<'_>, args: &Args) {
    let Some(index) = parse_i64(&mut context.reply, args.get(2)) else {
        return;
    };
    let Context { store, reply, .. } = context;
    match store.get_list(args.get(1)) {
        Ok(list) => match list.and_then(|list| list.get(position(index, list.len())?)) {
            Some(element) => reply.bulk(element),
            None => reply.nil(),
        },
        Err(WrongType) => reply.wrong_type(),
    }
}

fn lset(context: &mut Context<'_>, args: &Args) {
    let Some(index) = parse_i64(&mut context.reply, args.get(2)) else {
        return;
    };
    let key = args.get(1);
    let Ok(list) = read(context, key) else {
        return;
    };
    let Some(list) = list else {
        context.reply.error(b"ERR no such key");
        return;
    };
    let Some(index) = position(index, list.len()) else {
        context.reply.error(b"ERR index out of range");
        return;
    };
    context.log_args(args);
    let list = context
        .store
        .get_list_mut(key)
        .expect("type checked")
        .expect("exists");
    list[index] = args.get(3).to_vec();
    context.reply.ok();
}

/// LREM key count element: one pass, whatever the count's sign (from the
/// tail, the matches to keep are counted first).
fn lrem(context: &mut Context<'_>, args: &Args) {
    let Some(count) = parse_i64(&mut context.reply, args.get(2)) else {
        return;
    };
    let key = args.get(1);
    let element = args.get(3);
    let Ok(list) = read(context, key) else {
        return;
    };
    let matches = list.map_or(0, |list| {
        list.iter().filter(|item| *item == element).count()
    });
    let limit = if count == 0 {
        matches
    } else {
        (count.unsigned_abs() as usize).min(matches)
    };
    if limit == 0 {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    let list = context
        .store
        .get_list_mut(key)
        .expect("type checked")
        .expect("exists");
    // From the tail, the first `matches - limit` matches stay.
    let skip = if count < 0 { matches - limit } else { 0 };
    let (mut seen, mut removed) = (0, 0);
    list.retain(|item| {
        if item != element || removed == limit {
            return true;
        }
        seen += 1;
        if seen <= skip {
            return true;
        }
        removed += 1;
        false
    });
    assert_eq!(removed, limit);
    context.store.remove_if_empty(key);
    context.reply.int(removed as i64);
}

fn ltrim(context: &mut Context<'_>, args: &Args) {
    let Some(start) = parse_i64(&mut context.reply, args.get(2)) else {
        return;
    };
    let Some(stop) = parse_i64(&mut context.reply, args.get(3)) else {
        return;
    };
    let key = args.get(1);
    let Ok(list) = read(context, key) else {
        return;
    };
    let Some(list) = list else {
        context.reply.ok();
        return;
    };
    let len = list.len();
    let kept = clip_range(start, stop, len);
    if kept == Some((0, len.saturating_sub(1))) && len > 0 {
        context.reply.ok();
        return;
    }
    context.log_args(args);
    let list = context
        .store
        .get_list_mut(key)
        .expect("type checked")
        .expect("exists");
    match kept {
        Some((first, last)) => {
            list.truncate(last + 1);
            list.drain(..first);
        }
        None => list.clear(),
    }
    context.store.remove_if_empty(key);
    context.reply.ok();
}

fn linsert(context: &mut Context<'_>, args: &Args) {
    let after = if is_option(args, 2, "after") {
        true
    } else if is_option(args, 2, "before") {
        false
    } else {
        context.reply.error(SYNTAX);
        return;
    };
    let key = args.get(1);
    let Ok(list) = read(context, key) else {
        return;
    };
    let Some(list) = list else {
        context.reply.int(0);
        return;
    };
    let Some(pivot) = list.iter().position(|item| item == args.get(3)) else {
        context.reply.int(-1);
        return;
    };
    if list.len() + 1 > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    context.log_args(args);
    let list = context
        .store
        .get_list_mut(key)
        .expect("type checked")
        .expect("exists");
    list.insert(pivot + usize::from(after), args.get(4).to_vec());
    let len = list.len();
    context.reply.int(len as i64);
}

/// LPOS's options: RANK, COUNT, MAXLEN.
struct LposOptions {
    rank: i64,
    count: Option<usize>,
    maxlen: usize,
}

fn parse_lpos(context: &mut Context<'_>, args: &Args) -> Option<LposOptions> {
    let mut options = LposOptions {
        rank: 1,
        count: None,
        maxlen: 0,
    };
    let mut index = 3;
    while index < args.len() {
        if index + 1 >= args.len() {
            context.reply.error(SYNTAX);
            return None;
        }
        let value = parse_i64(&mut context.reply, args.get(index + 1))?;
        if is_option(args, index, "rank") {
            if value == 0 || value == i64::MIN {
                context.reply.error(
                    b"ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                      second ... or use negative to start from the end of the list",
                );
                return None;
            }
            options.rank = value;
        } else if is_option(args, index, "count") {
            if value < 0 {
                context.reply.error(b"ERR COUNT can't be negative");
                return None;
            }
            options.count = Some(value as usize);
        } else if is_option(args, index, "maxlen") {
            if value < 0 {
                context.reply.error(b"ERR MAXLEN can't be negative");
                return None;
            }
            options.maxlen = value as usize;
        } else {
            context.reply.error(SYNTAX);
            return None;
        }
        index += 2;
    }
    Some(options)
}

fn lpos(context: &mut Context<'_>, args: &Args) {
    let Some(options) = parse_lpos(context, args) else {
        return;
    };
    let element = args.get(2);
    let Context { store, reply, .. } = context;
    let list = match store.get_list(args.get(1)) {
        Ok(list) => list,
        Err(WrongType) => return reply.wrong_type(),
    };
    let len = list.map_or(0, List::len);
    let scanned = if options.maxlen == 0 {
        len
    } else {
        options.maxlen.min(len)
    };
    let wanted = match options.count {
        Some(0) => usize::MAX,
        Some(count) => count,
        None => 1,
    };
    let skip = (options.rank.unsigned_abs() - 1) as usize;
    let indices: Box<dyn Iterator<Item = usize>> = if options.rank > 0 {
        Box::new(0..scanned)
    } else {
        Box::new((len - scanned..len).rev())
    };
    let found: Vec<usize> = match list {
        Some(list) => indices
            .filter(|&index| list[index] == element)
            .skip(skip)
            .take(wanted)
            .collect(),
        None => Vec::new(),
    };
    match options.count {
        Some(_) => {
            reply.array(found.len());
            for index in found {
                reply.int(index as i64);
            }
        }
        None => match found.first() {
            Some(&index) => reply.int(index as i64),
            None => reply.nil(),
        },
    }
}

/// RPOPLPUSH source destination, and LMOVE source destination LEFT|RIGHT
/// LEFT|RIGHT.
fn lmove(context: &mut Context<'_>, args: &Args) {
    let (from_left, to_left) = if args.len() == 3 {
        (false, true)
    } else {
        match (side(args, 3), side(args, 4)) {
            (Some(from), Some(to)) => (from, to),
            _ => return context.reply.error(SYNTAX),
        }
    };
    let (source, target) = (args.get(1), args.get(2));
    let Ok(list) = read(context, source) else {
        return;
    };
    if list.is_none() {
        context.reply.nil();
        return;
    }
    let parts: Vec<&[u8]> = args.iter().collect();
    move_element(context, source, target, from_left, to_left, &parts);
}

/// Moves one element of `source`, which holds a list, onto `target`, and
/// replies with it, logging `logged`; or replies WRONGTYPE for a target of
/// another type, or the collection bound's error, and moves nothing.
fn move_element(
    context: &mut Context<'_>,
    source: &[u8],
    target: &[u8],
    from_left: bool,
    to_left: bool,
    logged: &[&[u8]],
) {
    let Ok(target_list) = read(context, target) else {
        return;
    };
    if target_list.map_or(0, List::len) + 1 > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    context.log_parts(logged);
    let list = context
        .store
        .get_list_mut(source)
        .expect("type checked")
        .expect("exists");
    let element = if from_left {
        list.pop_front()
    } else {
        list.pop_back()
    }
    .expect("a list is never empty");
    context.store.remove_if_empty(source);
    context.reply.bulk(&element);
    let list = context.store.list_or_create(target).expect("type checked");
    if to_left {
        list.push_front(element);
    } else {
        list.push_back(element);
    }
}
