//! Sorted sets: ZADD (NX, XX, GT, LT, CH, INCR), ZINCRBY, ZSCORE, ZMSCORE,
//! ZCARD, ZREM, ZPOPMIN, ZPOPMAX, ZRANGE (by index or BYSCORE, REV, LIMIT,
//! WITHSCORES), ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANK,
//! ZREVRANK, ZCOUNT, ZRANGESTORE, ZINTERCARD, ZRANDMEMBER, the lexicographic ranges (ZRANGEBYLEX,
//! ZREVRANGEBYLEX, ZRANGE ... BYLEX, ZLEXCOUNT, ZREMRANGEBYLEX),
//! ZREMRANGEBYSCORE, ZREMRANGEBYRANK, ZUNION, ZINTER,
//! ZDIFF and their STORE forms (WEIGHTS, AGGREGATE, WITHSCORES), ZSCAN,
//! ZMPOP, and the blocking pops BZPOPMIN,
//! BZPOPMAX and BZMPOP (on the lists' blocking machinery, `cmd_lists.rs`:
//! a served pop is logged as the ZPOPMIN or ZPOPMAX it amounts to, as
//! Redis propagates it).
//!
//! Ranges by index walk the (score, member) B-tree from its nearer end:
//! O(offset + count), where Redis's skiplist is O(log n + count). Ranges
//! by score start with a B-tree search: O(log n + count).

use std::ops::Bound;

use super::keys::{parse_random_count, parse_scan, reply_random, scan_map};
use super::lists::{parse_mpop, parse_timeout, unique_keys, Block, BlockOp, Mpop, Served};
use super::sets::parse_card_limit;
use super::{
    clip_range, command, is_option, parse_count, parse_i64, Command, Context, Reply, BLOCKING,
    DENYOOM, ELEMENTS_MAX, FAST, NOT_FLOAT, RANDOM, READONLY, SYNTAX, TOO_MANY_ELEMENTS, WRITE,
};
use crate::keymap::{HashedKey, KeyMap};
use crate::resp::{self, parse_double, Args};
use crate::store::{Set, Store, Value, WrongType, ZSet};

pub const COMMANDS: &[Command] = &[
    command("zadd", -4, WRITE | DENYOOM | FAST, [1, 1, 1], zadd),
    command("zincrby", 4, WRITE | DENYOOM | FAST, [1, 1, 1], zadd),
    command("zscore", 3, READONLY | FAST, [1, 1, 1], zscore),
    command("zmscore", -3, READONLY | FAST, [1, 1, 1], zmscore),
    command("zcard", 2, READONLY | FAST, [1, 1, 1], zcard),
    command("zrem", -3, WRITE | FAST, [1, 1, 1], zrem),
    command("zpopmin", -2, WRITE | FAST, [1, 1, 1], zpop),
    command("zpopmax", -2, WRITE | FAST, [1, 1, 1], zpop),
    command("zrange", -4, READONLY, [1, 1, 1], zrange),
    command("zrevrange", -4, READONLY, [1, 1, 1], zrange),
    command("zrangebyscore", -4, READONLY, [1, 1, 1], zrange),
    command("zrevrangebyscore", -4, READONLY, [1, 1, 1], zrange),
    command("zrank", 3, READONLY | FAST, [1, 1, 1], zrank),
    command("zrevrank", 3, READONLY | FAST, [1, 1, 1], zrank),
    command("zcount", 4, READONLY | FAST, [1, 1, 1], zcount),
    command("zremrangebyscore", 4, WRITE, [1, 1, 1], zremrange),
    command("zremrangebyrank", 4, WRITE, [1, 1, 1], zremrange),
    command("zremrangebylex", 4, WRITE, [1, 1, 1], zremrange),
    command("zrangebylex", -4, READONLY, [1, 1, 1], zrange),
    command("zrevrangebylex", -4, READONLY, [1, 1, 1], zrange),
    command("zlexcount", 4, READONLY | FAST, [1, 1, 1], zlexcount),
    command("zrangestore", -5, WRITE | DENYOOM, [1, 2, 1], zrangestore),
    command("zintercard", -3, READONLY, [0, 0, 0], zintercard),
    command("zrandmember", -2, READONLY | RANDOM, [1, 1, 1], zrandmember),
    command("zunion", -3, READONLY, [0, 0, 0], zcombine),
    command("zinter", -3, READONLY, [0, 0, 0], zcombine),
    command("zdiff", -3, READONLY, [0, 0, 0], zcombine),
    command("zunionstore", -4, WRITE | DENYOOM, [1, 1, 1], zcombine),
    command("zinterstore", -4, WRITE | DENYOOM, [1, 1, 1], zcombine),
    command("zdiffstore", -4, WRITE | DENYOOM, [1, 1, 1], zcombine),
    command("zscan", -3, READONLY, [1, 1, 1], zscan),
    command("zmpop", -4, WRITE, [0, 0, 0], zmpop),
    command("bzpopmin", -3, WRITE | FAST | BLOCKING, [1, -2, 1], bzpop),
    command("bzpopmax", -3, WRITE | FAST | BLOCKING, [1, -2, 1], bzpop),
    command("bzmpop", -5, WRITE | BLOCKING, [0, 0, 0], zmpop),
];

/// Serves a client blocked in BZPOPMIN, BZPOPMAX or BZMPOP on `key`,
/// created since the last command (see `cmd_lists.rs`).
pub fn serve(context: &mut Context<'_>, key: &[u8], max: bool, count: Option<usize>) -> Served {
    match context.store.get_zset(key) {
        Ok(Some(_)) => {}
        Ok(None) => return Served::NotReady,
        Err(WrongType) => return Served::Skipped,
    }
    pop_with_key(context, key, max, count);
    Served::Replied
}

/// Pops from `key`, a sorted set, with the key in the reply: BZPOPMIN's
/// `*3` of key, member and score, or with a count (ZMPOP, BZMPOP) the key
/// and an array of at most `count` member-score pairs, in RESP2 as in
/// RESP3. Logged as ZPOPMIN or ZPOPMAX (with the count taken).
fn pop_with_key(context: &mut Context<'_>, key: &[u8], max: bool, count: Option<usize>) {
    let len = match context.store.get_zset(key) {
        Ok(Some(zset)) => zset.len(),
        _ => unreachable!("the caller found a sorted set"),
    };
    let taken = count.map_or(1, |count| count.min(len));
    let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
    match count {
        None => context.log_parts(&[name, key]),
        Some(_) => context.log_parts(&[name, key, taken.to_string().as_bytes()]),
    }
    let zset = context
        .store
        .get_zset_mut(key)
        .expect("type checked")
        .expect("exists");
    match count {
        None => {
            let (member, score) = zset.pop(max).expect("a sorted set is never empty");
            context.reply.array(3);
            context.reply.bulk(key);
            context.reply.bulk(&member);
            context.reply.double(score);
        }
        Some(_) => {
            context.reply.array(2);
            context.reply.bulk(key);
            context.reply.array(taken);
            for _ in 0..taken {
                let (member, score) = zset.pop(max).expect("within the length");
                context.reply.array(2);
                context.reply.bulk(&member);
                context.reply.double(score);
            }
        }
    }
    context.store.remove_if_empty(key);
}

/// Pops from the first of `keys` that holds a sorted set (a key of
/// another type on the way is WRONGTYPE); if none does, blocks for
/// `timeout_ms`, or answers with a null array as a timeout would: inside
/// EXEC, or with no timeout (the non-blocking ZMPOP).
fn pop_or_block(
    context: &mut Context<'_>,
    keys: &[&[u8]],
    timeout_ms: Option<u64>,
    max: bool,
    count: Option<usize>,
) {
    for key in keys {
        match read(context, key) {
            Err(()) => return,
            Ok(None) => continue,
            Ok(Some(_)) => return pop_with_key(context, key, max, count),
        }
    }
    let Some(timeout_ms) = timeout_ms.filter(|_| !context.deny_blocking) else {
        context.reply.nil_array();
        return;
    };
    context.block = Some(Block {
        keys: unique_keys(keys),
        timeout_ms,
        op: BlockOp::ZPop { max, count },
    });
}

/// BZPOPMIN and BZPOPMAX key [key ...] timeout.
fn bzpop(context: &mut Context<'_>, args: &Args) {
    let max = is_option(args, 0, "bzpopmax");
    let Some(timeout_ms) = parse_timeout(context, args.get(args.len() - 1)) else {
        return;
    };
    let keys: Vec<&[u8]> = (1..args.len() - 1).map(|index| args.get(index)).collect();
    pop_or_block(context, &keys, Some(timeout_ms), max, None);
}

/// MIN or MAX at argument `index`: whether MAX.
fn min_or_max(args: &Args, index: usize) -> Option<bool> {
    if is_option(args, index, "min") {
        Some(false)
    } else if is_option(args, index, "max") {
        Some(true)
    } else {
        None
    }
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count], and BZMPOP timeout
/// numkeys key [key ...] MIN|MAX [COUNT count], parsed as LMPOP is.
fn zmpop(context: &mut Context<'_>, args: &Args) {
    let Some(Mpop {
        keys,
        side: max,
        count,
        timeout_ms,
    }) = parse_mpop(context, args, min_or_max)
    else {
        return;
    };
    pop_or_block(context, &keys, timeout_ms, max, Some(count));
}

/// The sorted set at `key` for reading; `Err` once WRONGTYPE is out.
fn read<'a>(context: &'a mut Context<'_>, key: &[u8]) -> Result<Option<&'a ZSet>, ()> {
    match context.store.get_zset(key) {
        Ok(zset) => Ok(zset),
        Err(WrongType) => {
            context.reply.wrong_type();
            Err(())
        }
    }
}

#[derive(Default, Clone, Copy)]
struct ZaddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// (score, member) pairs.
type Pairs<'a> = Vec<(f64, &'a [u8])>;

/// ZADD's flags and its (score, member) pairs, with Redis 7.0's errors.
fn parse_zadd<'a>(context: &mut Context<'_>, args: &'a Args) -> Option<(ZaddFlags, Pairs<'a>)> {
    let mut flags = ZaddFlags::default();
    let mut index = 2;
    if is_option(args, 0, "zincrby") {
        flags.incr = true;
    } else {
        while index < args.len() {
            let flag = match args.get(index).to_ascii_lowercase().as_slice() {
                b"nx" => &mut flags.nx,
                b"xx" => &mut flags.xx,
                b"gt" => &mut flags.gt,
                b"lt" => &mut flags.lt,
                b"ch" => &mut flags.ch,
                b"incr" => &mut flags.incr,
                _ => break,
            };
            *flag = true;
            index += 1;
        }
    }
    let elements = args.len() - index;
    if elements == 0 || elements % 2 != 0 {
        context.reply.error(SYNTAX);
        return None;
    }
    if flags.nx && flags.xx {
        context
            .reply
            .error(b"ERR XX and NX options at the same time are not compatible");
        return None;
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        context
            .reply
            .error(b"ERR GT, LT, and/or NX options at the same time are not compatible");
        return None;
    }
    if flags.incr && elements > 2 {
        context
            .reply
            .error(b"ERR INCR option supports a single increment-element pair");
        return None;
    }
    let mut pairs = Vec::with_capacity(elements / 2);
    for pair in (index..args.len()).step_by(2) {
        let score = super::parse_float(&mut context.reply, args.get(pair))?;
        pairs.push((score, args.get(pair + 1)));
    }
    Some((flags, pairs))
}

/// ZADD and ZINCRBY.
fn zadd(context: &mut Context<'_>, args: &Args) {
    let Some((flags, pairs)) = parse_zadd(context, args) else {
        return;
    };
    let key = args.get(1);
    let Ok(zset) = read(context, key) else {
        return;
    };
    // The outcome is computed first, so a refused ZADD changes nothing.
    // `processed`: the members ZADD acted on (INCR replies the last one's
    // score); `changes`: those whose score it really changes. As in Redis,
    // a ZADD that changes nothing is not a write: it is not logged.
    let mut changes: Vec<(f64, &[u8])> = Vec::new();
    let mut processed = None;
    let mut added = 0;
    for &(score, member) in &pairs {
        let current = zset.and_then(|zset| zset.score(member));
        let planned = changes
            .iter()
            .rev()
            .find(|(_, m)| *m == member)
            .map(|(s, _)| *s);
        let current = planned.or(current);
        let Some(new_score) = plan_one(flags, score, current) else {
            continue;
        };
        if new_score.is_nan() {
            context
                .reply
                .error(b"ERR resulting score is not a number (NaN)");
            return;
        }
        processed = Some(new_score);
        if current.is_none() {
            added += 1;
        }
        if current != Some(new_score) {
            changes.push((new_score, member));
        }
    }
    let updated = changes.len() - added;
    let len = zset.map_or(0, ZSet::len);
    if len + added > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    if !changes.is_empty() {
        context.log_args(args);
        let zset = context.store.zset_or_create(key).expect("type checked");
        for (score, member) in &changes {
            zset.insert(member, *score);
        }
    }
    if flags.incr {
        match processed {
            Some(score) => context.reply.double(score),
            None => context.reply.nil(),
        }
    } else {
        let count = if flags.ch { added + updated } else { added };
        context.reply.int(count as i64);
    }
}

/// Redis's `zsetAdd` decision for one member: the new score, or `None` to
/// leave it.
fn plan_one(flags: ZaddFlags, score: f64, current: Option<f64>) -> Option<f64> {
    match current {
        None if flags.xx => None,
        None => Some(score),
        Some(_) if flags.nx => None,
        Some(current) => {
            let new_score = if flags.incr { current + score } else { score };
            let refused = (flags.gt && new_score <= current) || (flags.lt && new_score >= current);
            (!refused).then_some(new_score)
        }
    }
}

fn zscore(context: &mut Context<'_>, args: &Args) {
    let Ok(zset) = read(context, args.get(1)) else {
        return;
    };
    match zset.and_then(|zset| zset.score(args.get(2))) {
        Some(score) => context.reply.double(score),
        None => context.reply.nil(),
    }
}

fn zmscore(context: &mut Context<'_>, args: &Args) {
    let Context { store, reply, .. } = context;
    let zset = match store.get_zset(args.get(1)) {
        Ok(zset) => zset,
        Err(WrongType) => return reply.wrong_type(),
    };
    reply.array(args.len() - 2);
    for index in 2..args.len() {
        match zset.and_then(|zset| zset.score(args.get(index))) {
            Some(score) => reply.double(score),
            None => reply.nil(),
        }
    }
}

fn zcard(context: &mut Context<'_>, args: &Args) {
    if let Ok(zset) = read(context, args.get(1)) {
        let len = zset.map_or(0, ZSet::len);
        context.reply.int(len as i64);
    }
}

fn zrem(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    let Ok(zset) = read(context, key) else {
        return;
    };
    let present =
        zset.is_some_and(|zset| (2..args.len()).any(|index| zset.score(args.get(index)).is_some()));
    if !present {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    let zset = context
        .store
        .get_zset_mut(key)
        .expect("type checked")
        .expect("exists");
    let removed = (2..args.len())
        .filter(|&index| zset.remove(args.get(index)).is_some())
        .count();
    context.store.remove_if_empty(key);
    context.reply.int(removed as i64);
}

/// A member and its score, as ZRANGE WITHSCORES and ZPOPMIN give them: a
/// pair in RESP3 (`nested`), two elements in RESP2.
fn reply_scored(reply: &mut Reply<'_>, member: &[u8], score: f64, nested: bool) {
    if nested && reply.resp3 {
        reply.array(2);
    }
    reply.bulk(member);
    reply.double(score);
}

/// ZPOPMIN and ZPOPMAX [count].
fn zpop(context: &mut Context<'_>, args: &Args) {
    let max = is_option(args, 0, "zpopmax");
    if args.len() > 3 {
        return context.reply.error(SYNTAX);
    }
    let count = match args.len() {
        3 => match parse_count(&mut context.reply, args.get(2), "value") {
            Some(count) => Some(count),
            None => return,
        },
        _ => None,
    };
    let key = args.get(1);
    let Ok(zset) = read(context, key) else {
        return;
    };
    let taken = zset.map_or(0, |zset| count.unwrap_or(1).min(zset.len()));
    if taken == 0 {
        context.reply.array(0);
        return;
    }
    context.log_args(args);
    let zset = context
        .store
        .get_zset_mut(key)
        .expect("type checked")
        .expect("exists");
    let nested = count.is_some();
    let pairs = if nested && context.reply.resp3 {
        taken
    } else {
        taken * 2
    };
    context.reply.array(pairs);
    for _ in 0..taken {
        let (member, score) = zset.pop(max).expect("within the length");
        reply_scored(&mut context.reply, &member, score, nested);
    }
    context.store.remove_if_empty(key);
}

/// A ZRANGE by score bound: `(x` is exclusive, `-inf`/`+inf` work.
/// A score bound of ZRANGEBYSCORE, ZCOUNT and ZREMRANGEBYSCORE: `(` for
/// an exclusive one, then a number as Redis's `zslParseRange` reads it
/// with `strtod`, which is looser than the `string2d` of scores: leading
/// blanks are skipped, and an empty number is 0 (`(` alone is `(0`).
/// Hexadecimal numbers, which `strtod` also takes, are refused here.
fn parse_bound(text: &[u8]) -> Option<Bound<f64>> {
    let (exclusive, number) = match text.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, text),
    };
    let value = if number.is_empty() {
        0.0
    } else {
        let start = number
            .iter()
            .position(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
        parse_double(&number[start..])?
    };
    Some(if exclusive {
        Bound::Excluded(value)
    } else {
        Bound::Included(value)
    })
}

/// How a ZRANGE-family command reads its range.
#[derive(Clone, Copy, PartialEq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// What a ZRANGE-family command asks.
struct RangeRequest {
    kind: RangeKind,
    rev: bool,
    with_scores: bool,
    /// LIMIT's offset and count; a count of -1 is no limit, as in Redis.
    limit: (i64, i64),
}

/// The options after key, min and max, as Redis 7.0's
/// `zrangeGenericCommand` reads them: ZRANGE takes BYSCORE or BYLEX once,
/// and REV once; the other names fix both.
///
/// `base` is the source key's place (2 for ZRANGESTORE, which takes no
/// WITHSCORES, else 1).
fn parse_range(context: &mut Context<'_>, args: &Args, base: usize) -> Option<RangeRequest> {
    let name = args.get(0).to_ascii_lowercase();
    let (mut kind, mut rev) = match name.as_slice() {
        b"zrevrange" => (Some(RangeKind::Rank), Some(true)),
        b"zrangebyscore" => (Some(RangeKind::Score), Some(false)),
        b"zrevrangebyscore" => (Some(RangeKind::Score), Some(true)),
        b"zrangebylex" => (Some(RangeKind::Lex), Some(false)),
        b"zrevrangebylex" => (Some(RangeKind::Lex), Some(true)),
        _ => (None, None),
    };
    let store = base == 2;
    let mut with_scores = false;
    let mut limit = (0, -1);
    let mut index = base + 3;
    while index < args.len() {
        if !store && is_option(args, index, "withscores") {
            with_scores = true;
        } else if is_option(args, index, "limit") && index + 2 < args.len() {
            let offset = parse_i64(&mut context.reply, args.get(index + 1))?;
            let count = parse_i64(&mut context.reply, args.get(index + 2))?;
            limit = (offset, count);
            index += 2;
        } else if rev.is_none() && is_option(args, index, "rev") {
            rev = Some(true);
        } else if kind.is_none() && is_option(args, index, "bylex") {
            kind = Some(RangeKind::Lex);
        } else if kind.is_none() && is_option(args, index, "byscore") {
            kind = Some(RangeKind::Score);
        } else {
            context.reply.error(SYNTAX);
            return None;
        }
        index += 1;
    }
    let kind = kind.unwrap_or(RangeKind::Rank);
    if limit.1 != -1 && kind == RangeKind::Rank {
        context.reply.error(
            b"ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
        return None;
    }
    if with_scores && kind == RangeKind::Lex {
        context
            .reply
            .error(b"ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return None;
    }
    Some(RangeRequest {
        kind,
        rev: rev.unwrap_or(false),
        with_scores,
        limit,
    })
}

/// ZRANGE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX,
/// ZREVRANGEBYLEX: the range is parsed (its errors first), then the key
/// looked up.
fn zrange(context: &mut Context<'_>, args: &Args) {
    let Some(request) = parse_range(context, args, 1) else {
        return;
    };
    if let Some(members) = range_members(context, args, 1, &request) {
        reply_range(&mut context.reply, &members, request.with_scores);
    }
}

/// ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset
/// count]: the range of ZRANGE, stored (with no expiry) in place of
/// whatever dst held; an empty range deletes dst. Logged as it came, and
/// only when it changes something, as Redis propagates it.
fn zrangestore(context: &mut Context<'_>, args: &Args) {
    let Some(request) = parse_range(context, args, 2) else {
        return;
    };
    // Redis reads the source as a read (`lookupKeyRead`, counted in the
    // keyspace statistics), and the destination as a write.
    context.store.count_lookups(true);
    let Some(members) = range_members(context, args, 2, &request) else {
        return;
    };
    let target = args.get(1);
    context.store.count_lookups(false);
    if members.is_empty() && !context.store.contains(target) {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    context.store.remove(target);
    if !members.is_empty() {
        let mut zset = ZSet::default();
        for (member, score) in &members {
            zset.insert(member, *score);
        }
        context.store.insert(target, Value::ZSet(zset), 0);
    }
    context.reply.int(members.len() as i64);
}

/// The members (and scores) a ZRANGE-family `request` names in the sorted
/// set at `args[base]`, min and max after it; `None` once an error is
/// replied.
fn range_members(
    context: &mut Context<'_>,
    args: &Args,
    base: usize,
    request: &RangeRequest,
) -> Option<Vec<(Vec<u8>, f64)>> {
    let key = args.get(base);
    // The reverse forms give max first.
    let (first, second) = (args.get(base + 1), args.get(base + 2));
    let (low, high) = if request.rev && request.kind != RangeKind::Rank {
        (second, first)
    } else {
        (first, second)
    };
    let mut members: Vec<(Vec<u8>, f64)> = Vec::new();
    let (offset, count) = request.limit;
    // Redis skips a negative offset's worth of members without end.
    let taken = usize::try_from(count).unwrap_or(usize::MAX);
    let collect = |iter: Box<dyn Iterator<Item = (&[u8], f64)> + '_>| -> Vec<(Vec<u8>, f64)> {
        match usize::try_from(offset) {
            Ok(offset) => iter
                .skip(offset)
                .take(taken)
                .map(|(member, score)| (member.to_vec(), score))
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    match request.kind {
        RangeKind::Score => {
            let (Some(min), Some(max)) = (parse_bound(low), parse_bound(high)) else {
                context.reply.error(b"ERR min or max is not a float");
                return None;
            };
            let Ok(zset) = read(context, key) else {
                return None;
            };
            if let Some(zset) = zset {
                let range = zset.range_by_score(min, max);
                members = collect(if request.rev {
                    Box::new(range.rev())
                } else {
                    Box::new(range)
                });
            }
        }
        RangeKind::Lex => {
            let (min, max) = parse_lex_range(context, low, high)?;
            let Ok(zset) = read(context, key) else {
                return None;
            };
            if let Some(zset) = zset {
                members = collect(lex_range(zset, &min, &max, request.rev));
            }
        }
        RangeKind::Rank => {
            let start = parse_i64(&mut context.reply, low)?;
            let stop = parse_i64(&mut context.reply, high)?;
            let Ok(zset) = read(context, key) else {
                return None;
            };
            if let Some(zset) = zset {
                if let Some((low, high)) = clip_range(start, stop, zset.len()) {
                    let iter: Box<dyn Iterator<Item = (&[u8], f64)>> = if request.rev {
                        Box::new(zset.iter().rev())
                    } else {
                        Box::new(zset.iter())
                    };
                    members = iter
                        .skip(low)
                        .take(high - low + 1)
                        .map(|(member, score)| (member.to_vec(), score))
                        .collect();
                }
            }
        }
    }
    Some(members)
}

/// One end of a lexicographic range: `-` and `+` (below and above every
/// member), or `[member` and `(member`, as Redis's
/// `zslParseLexRangeItem` reads them.
#[derive(Clone, Debug, PartialEq)]
enum LexBound {
    Least,
    Greatest,
    Member { member: Vec<u8>, exclusive: bool },
}

fn parse_lex_bound(text: &[u8]) -> Option<LexBound> {
    match text.split_first() {
        Some((b'-', [])) => Some(LexBound::Least),
        Some((b'+', [])) => Some(LexBound::Greatest),
        Some((b'[', member)) => Some(LexBound::Member {
            member: member.to_vec(),
            exclusive: false,
        }),
        Some((b'(', member)) => Some(LexBound::Member {
            member: member.to_vec(),
            exclusive: true,
        }),
        _ => None,
    }
}

/// Both ends, or Redis's error for either.
fn parse_lex_range(
    context: &mut Context<'_>,
    min: &[u8],
    max: &[u8],
) -> Option<(LexBound, LexBound)> {
    match (parse_lex_bound(min), parse_lex_bound(max)) {
        (Some(min), Some(max)) => Some((min, max)),
        _ => {
            context
                .reply
                .error(b"ERR min or max not valid string range item");
            None
        }
    }
}

/// `member` against a bound's string, as Redis's `sdscmplex`: `-` below
/// everything, `+` above.
fn compare_lex(member: &[u8], bound: &LexBound) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match bound {
        LexBound::Least => Ordering::Greater,
        LexBound::Greatest => Ordering::Less,
        LexBound::Member { member: other, .. } => member.cmp(other.as_slice()),
    }
}

fn lex_at_least(member: &[u8], min: &LexBound) -> bool {
    let exclusive = !matches!(
        min,
        LexBound::Member {
            exclusive: false,
            ..
        }
    );
    let ordering = compare_lex(member, min);
    ordering.is_gt() || (!exclusive && ordering.is_eq())
}

fn lex_at_most(member: &[u8], max: &LexBound) -> bool {
    let exclusive = !matches!(
        max,
        LexBound::Member {
            exclusive: false,
            ..
        }
    );
    let ordering = compare_lex(member, max);
    ordering.is_lt() || (!exclusive && ordering.is_eq())
}

/// Whether no member can be in the range (min above max, or both at one
/// string with either end exclusive): Redis's first check.
fn lex_range_is_empty(min: &LexBound, max: &LexBound) -> bool {
    use std::cmp::Ordering;
    let ordering = match (min, max) {
        (LexBound::Least, LexBound::Least) | (LexBound::Greatest, LexBound::Greatest) => {
            Ordering::Equal
        }
        (LexBound::Least, _) | (_, LexBound::Greatest) => Ordering::Less,
        (LexBound::Greatest, _) | (_, LexBound::Least) => Ordering::Greater,
        (LexBound::Member { member: low, .. }, LexBound::Member { member: high, .. }) => {
            low.cmp(high)
        }
    };
    // `-` and `+` are exclusive ends.
    let exclusive = |bound: &LexBound| {
        !matches!(
            bound,
            LexBound::Member {
                exclusive: false,
                ..
            }
        )
    };
    ordering.is_gt() || (ordering.is_eq() && (exclusive(min) || exclusive(max)))
}

/// The members in a lexicographic range, from the lowest (or, `rev`, the
/// highest). Redis defines these ranges for a set whose members all have
/// one score, where the (score, member) order is the members' order:
/// there the range starts with a B-tree search, O(log n + count). For
/// mixed scores Redis leaves the result unspecified; this gives what its
/// listpack encoding gives, a walk in (score, member) order from the
/// first member at or above min while members stay at or below max (the
/// reverse for `rev`), O(n).
fn lex_range<'a>(
    zset: &'a ZSet,
    min: &LexBound,
    max: &LexBound,
    rev: bool,
) -> Box<dyn Iterator<Item = (&'a [u8], f64)> + 'a> {
    let (first, last) = match (zset.iter().next(), zset.iter().next_back()) {
        (Some(first), Some(last)) => (first, last),
        _ => return Box::new(std::iter::empty()),
    };
    // Redis's `zslIsInLexRange`: the range is empty, or lies past either
    // end.
    if lex_range_is_empty(min, max) || !lex_at_least(last.0, min) || !lex_at_most(first.0, max) {
        return Box::new(std::iter::empty());
    }
    let (min, max) = (min.clone(), max.clone());
    if first.1 == last.1 {
        let range = zset.range_by_member(first.1, lex_to_bound(&min), lex_to_bound(&max));
        return if rev {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
    }
    if rev {
        Box::new(
            zset.iter()
                .rev()
                .skip_while(move |(member, _)| !lex_at_most(member, &max))
                .take_while(move |(member, _)| lex_at_least(member, &min)),
        )
    } else {
        Box::new(
            zset.iter()
                .skip_while(move |(member, _)| !lex_at_least(member, &min))
                .take_while(move |(member, _)| lex_at_most(member, &max)),
        )
    }
}

/// A lexicographic bound as a bound on members.
fn lex_to_bound(bound: &LexBound) -> Bound<Vec<u8>> {
    match bound {
        LexBound::Least | LexBound::Greatest => Bound::Unbounded,
        LexBound::Member {
            member,
            exclusive: false,
        } => Bound::Included(member.clone()),
        LexBound::Member {
            member,
            exclusive: true,
        } => Bound::Excluded(member.clone()),
    }
}

/// ZLEXCOUNT key min max.
fn zlexcount(context: &mut Context<'_>, args: &Args) {
    let Some((min, max)) = parse_lex_range(context, args.get(2), args.get(3)) else {
        return;
    };
    let Ok(zset) = read(context, args.get(1)) else {
        return;
    };
    let count = zset.map_or(0, |zset| lex_range(zset, &min, &max, false).count());
    context.reply.int(count as i64);
}

fn reply_range(reply: &mut Reply<'_>, members: &[(Vec<u8>, f64)], with_scores: bool) {
    let start = reply.out.len();
    let flat = with_scores && !reply.resp3;
    reply.array(if flat {
        members.len() * 2
    } else {
        members.len()
    });
    for (member, score) in members {
        if with_scores {
            reply_scored(reply, member, *score, true);
        } else {
            reply.bulk(member);
        }
        if reply.over_limit(start) {
            return;
        }
    }
}

fn zrank(context: &mut Context<'_>, args: &Args) {
    let rev = is_option(args, 0, "zrevrank");
    let Ok(zset) = read(context, args.get(1)) else {
        return;
    };
    let rank = zset.and_then(|zset| {
        let rank = zset.rank(args.get(2))?;
        Some(if rev { zset.len() - 1 - rank } else { rank })
    });
    match rank {
        Some(rank) => context.reply.int(rank as i64),
        None => context.reply.nil(),
    }
}

fn zcount(context: &mut Context<'_>, args: &Args) {
    let (Some(min), Some(max)) = (parse_bound(args.get(2)), parse_bound(args.get(3))) else {
        context.reply.error(b"ERR min or max is not a float");
        return;
    };
    let Ok(zset) = read(context, args.get(1)) else {
        return;
    };
    let count = zset.map_or(0, |zset| zset.range_by_score(min, max).count());
    context.reply.int(count as i64);
}

/// ZREMRANGEBYSCORE key min max, ZREMRANGEBYLEX key min max, and
/// ZREMRANGEBYRANK key start stop:
/// logged as they came (their effect depends only on the state), and only
/// when they remove something, as Redis propagates them.
fn zremrange(context: &mut Context<'_>, args: &Args) {
    let by_rank = is_option(args, 0, "zremrangebyrank");
    // The range is parsed before the key is looked up, as in Redis: a bad
    // range is its error even on a key of another type.
    let range = if is_option(args, 0, "zremrangebylex") {
        let Some((min, max)) = parse_lex_range(context, args.get(2), args.get(3)) else {
            return;
        };
        ZRemRange::Lex(min, max)
    } else if by_rank {
        let Some(start) = parse_i64(&mut context.reply, args.get(2)) else {
            return;
        };
        let Some(stop) = parse_i64(&mut context.reply, args.get(3)) else {
            return;
        };
        ZRemRange::Rank(start, stop)
    } else {
        let (Some(min), Some(max)) = (parse_bound(args.get(2)), parse_bound(args.get(3))) else {
            context.reply.error(b"ERR min or max is not a float");
            return;
        };
        ZRemRange::Score(min, max)
    };
    let key = args.get(1);
    let Ok(zset) = read(context, key) else {
        return;
    };
    let Some(zset) = zset else {
        context.reply.int(0);
        return;
    };
    let doomed: Vec<Vec<u8>> = match range {
        ZRemRange::Score(min, max) => zset
            .range_by_score(min, max)
            .map(|(member, _)| member.to_vec())
            .collect(),
        ZRemRange::Lex(min, max) => lex_range(zset, &min, &max, false)
            .map(|(member, _)| member.to_vec())
            .collect(),
        ZRemRange::Rank(start, stop) => match clip_range(start, stop, zset.len()) {
            // From the nearer end: O(distance + count) on the B-tree.
            Some((low, high)) if low > zset.len() - 1 - high => zset
                .iter()
                .rev()
                .skip(zset.len() - 1 - high)
                .take(high - low + 1)
                .map(|(member, _)| member.to_vec())
                .collect(),
            Some((low, high)) => zset
                .iter()
                .skip(low)
                .take(high - low + 1)
                .map(|(member, _)| member.to_vec())
                .collect(),
            None => Vec::new(),
        },
    };
    if doomed.is_empty() {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    let zset = context
        .store
        .get_zset_mut(key)
        .expect("type checked")
        .expect("exists");
    for member in &doomed {
        let removed = zset.remove(member);
        assert!(removed.is_some());
    }
    context.store.remove_if_empty(key);
    context.reply.int(doomed.len() as i64);
}

/// ZUNION, ZINTER, ZDIFF, and their STORE forms, as Redis 7.0's
/// `zunionInterDiffGenericCommand`: numkeys, the keys (sorted sets, or
/// sets, whose members score 1), then WEIGHTS, AGGREGATE SUM|MIN|MAX and
/// (without STORE) WITHSCORES. The keys are looked up before the options
/// are read, so WRONGTYPE comes before a syntax error, as in Redis. A
/// STORE form is logged as it came, and only when it changes something.
fn zcombine(context: &mut Context<'_>, args: &Args) {
    let name = args.get(0).to_ascii_lowercase();
    let operation = if name.starts_with(b"zunion") {
        Algebra::Union
    } else if name.starts_with(b"zinter") {
        Algebra::Inter
    } else {
        Algebra::Diff
    };
    let store = name.ends_with(b"store");
    let numkeys_index = if store { 2 } else { 1 };
    let Some(numkeys) = parse_i64(&mut context.reply, args.get(numkeys_index)) else {
        return;
    };
    if numkeys < 1 {
        let text = format!(
            "ERR at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(&name)
        );
        context.reply.error(text.as_bytes());
        return;
    }
    let first_key = numkeys_index + 1;
    if numkeys > (args.len() - first_key) as i64 {
        context.reply.error(SYNTAX);
        return;
    }
    let keys: Vec<&[u8]> = (first_key..first_key + numkeys as usize)
        .map(|index| args.get(index))
        .collect();
    // Every source is read as a read (`lookupKeyRead`), STORE or not.
    context.store.count_lookups(true);
    if !sources_have_types(context, &keys) {
        return;
    }
    context.store.count_lookups(!store);
    let after_keys = first_key + keys.len();
    let Some(options) =
        parse_algebra_options(context, args, after_keys, keys.len(), operation, store)
    else {
        return;
    };
    let sources = peek_sources(context.store, &keys);
    let result = combine_scored(&sources, &options, operation);
    if !store {
        let members: Vec<(Vec<u8>, f64)> = result.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        reply_range(&mut context.reply, &members, options.with_scores);
        return;
    }
    if result.len() > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    let target = args.get(1);
    let existed = context.store.contains(target);
    if result.is_empty() && !existed {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    context.store.remove(target);
    let length = result.len();
    if length > 0 {
        context.store.insert(target, Value::ZSet(result), 0);
    }
    context.reply.int(length as i64);
}

/// ZRANDMEMBER key [count [WITHSCORES]], as Redis 7.0: one member, or a
/// count of them (negative: repeats allowed), with their scores if asked.
fn zrandmember(context: &mut Context<'_>, args: &Args) {
    let Some((random, with_scores)) = parse_random_count(context, args, "withscores") else {
        return;
    };
    let cursor = context.store.next_random();
    let Context { store, reply, .. } = context;
    let zset = match store.get_zset(args.get(1)) {
        Ok(zset) => zset,
        Err(WrongType) => return reply.wrong_type(),
    };
    let members = zset.map(ZSet::by_member);
    let Some(random) = random else {
        match members.and_then(|members| members.at_or_after(cursor)) {
            Some((member, _)) => reply.bulk(member.bytes()),
            None => reply.nil(),
        }
        return;
    };
    reply_random(
        reply,
        members,
        &random,
        with_scores,
        |reply, member, score| {
            reply.bulk(member.bytes());
            if with_scores {
                reply.double(*score);
            }
        },
    );
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit], as Redis 7.0 runs it
/// (`zunionInterDiffGenericCommand` counting only): the keys are looked up
/// before LIMIT is read; the count stops at a limit above 0.
fn zintercard(context: &mut Context<'_>, args: &Args) {
    let Some(numkeys) = parse_i64(&mut context.reply, args.get(1)) else {
        return;
    };
    if numkeys < 1 {
        return context
            .reply
            .error(b"ERR at least 1 input key is needed for 'zintercard' command");
    }
    if numkeys > (args.len() - 2) as i64 {
        return context.reply.error(SYNTAX);
    }
    let keys: Vec<&[u8]> = (2..2 + numkeys as usize)
        .map(|index| args.get(index))
        .collect();
    if !sources_have_types(context, &keys) {
        return;
    }
    let Some(limit) = parse_card_limit(context, args, 2 + keys.len()) else {
        return;
    };
    let sources = peek_sources(context.store, &keys);
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by_key(|&index| sources[index].map_or(0, Source::len));
    let count = match sources[order[0]] {
        None => 0,
        Some(first) => {
            let in_all = first.members().filter(|(member, _)| {
                order[1..].iter().all(|&index| {
                    sources[index].is_some_and(|source| source.score(member).is_some())
                })
            });
            match limit {
                0 => in_all.count(),
                limit => in_all.take(limit).count(),
            }
        }
    };
    context.reply.int(count as i64);
}

/// Looks up every source of ZUNION, ZINTER, ZDIFF and ZINTERCARD (all of
/// them, as Redis does: each counts in the keyspace statistics); `false`
/// once WRONGTYPE is replied for one that is neither a sorted set nor a
/// set.
fn sources_have_types(context: &mut Context<'_>, keys: &[&[u8]]) -> bool {
    for key in keys {
        match context.store.get(key).map(|entry| &entry.value) {
            None | Some(Value::ZSet(_) | Value::Set(_)) => {}
            Some(_) => {
                context.reply.wrong_type();
                return false;
            }
        }
    }
    true
}

/// The sources at `keys`, looked up (and type checked) before.
fn peek_sources<'a>(store: &'a Store, keys: &[&[u8]]) -> Vec<Option<Source<'a>>> {
    keys.iter()
        .map(|key| match store.peek(key).map(|entry| &entry.value) {
            Some(Value::ZSet(zset)) => Some(Source::ZSet(zset)),
            Some(Value::Set(set)) => Some(Source::Set(set)),
            _ => None,
        })
        .collect()
}

/// Which of ZUNION, ZINTER and ZDIFF.
#[derive(Clone, Copy, PartialEq)]
enum Algebra {
    Union,
    Inter,
    Diff,
}

/// How ZUNION and ZINTER combine the scores of a member in several sources.
#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// The options after the keys.
struct AlgebraOptions {
    weights: Vec<f64>,
    aggregate: Aggregate,
    with_scores: bool,
}

/// WEIGHTS (one for each of the `numkeys` keys), AGGREGATE and
/// WITHSCORES from `index` on, in any order, each
/// where Redis takes it (neither WEIGHTS nor AGGREGATE for ZDIFF, no
/// WITHSCORES for a STORE form).
fn parse_algebra_options(
    context: &mut Context<'_>,
    args: &Args,
    mut index: usize,
    numkeys: usize,
    operation: Algebra,
    store: bool,
) -> Option<AlgebraOptions> {
    let mut options = AlgebraOptions {
        weights: vec![1.0; numkeys],
        aggregate: Aggregate::Sum,
        with_scores: false,
    };
    while index < args.len() {
        let remaining = args.len() - index;
        if operation != Algebra::Diff && remaining > numkeys && is_option(args, index, "weights") {
            for (key, weight) in options.weights.iter_mut().enumerate() {
                let Some(value) = parse_double(args.get(index + 1 + key)) else {
                    context.reply.error(b"ERR weight value is not a float");
                    return None;
                };
                *weight = value;
            }
            index += 1 + numkeys;
        } else if operation != Algebra::Diff
            && remaining >= 2
            && is_option(args, index, "aggregate")
        {
            options.aggregate = if is_option(args, index + 1, "sum") {
                Aggregate::Sum
            } else if is_option(args, index + 1, "min") {
                Aggregate::Min
            } else if is_option(args, index + 1, "max") {
                Aggregate::Max
            } else {
                context.reply.error(SYNTAX);
                return None;
            };
            index += 2;
        } else if !store && is_option(args, index, "withscores") {
            options.with_scores = true;
            index += 1;
        } else {
            context.reply.error(SYNTAX);
            return None;
        }
    }
    Some(options)
}

/// A source of ZUNION, ZINTER or ZDIFF.
#[derive(Clone, Copy)]
enum Source<'a> {
    ZSet(&'a ZSet),
    /// A set: each member scores 1.
    Set(&'a Set),
}

impl<'a> Source<'a> {
    fn len(self) -> usize {
        match self {
            Source::ZSet(zset) => zset.len(),
            Source::Set(set) => set.len(),
        }
    }

    fn score(self, member: &[u8]) -> Option<f64> {
        match self {
            Source::ZSet(zset) => zset.score(member),
            Source::Set(set) => set.contains(member).then_some(1.0),
        }
    }

    fn members(self) -> Box<dyn Iterator<Item = (&'a [u8], f64)> + 'a> {
        match self {
            Source::ZSet(zset) => Box::new(zset.iter()),
            Source::Set(set) => Box::new(set.iter().map(|(member, _)| (member.bytes(), 1.0))),
        }
    }
}

/// Redis's `zunionInterAggregate`: a sum of the two infinities is 0.
fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => *target = if value < *target { value } else { *target },
        Aggregate::Max => *target = if value > *target { value } else { *target },
    }
}

/// The combined sorted set, with Redis's arithmetic in Redis's order, so
/// that every score comes out to the same bits: ZUNION and ZINTER take
/// the sources from the smallest (a stable sort, as glibc's `qsort`),
/// weigh each score (a NaN product, zero times infinity, is 0 where
/// Redis makes it so) and aggregate; ZDIFF keeps the first source's
/// members, unweighted, that no other source has.
fn combine_scored(
    sources: &[Option<Source<'_>>],
    options: &AlgebraOptions,
    operation: Algebra,
) -> ZSet {
    let mut result = ZSet::default();
    let weighed = |index: usize, score: f64| options.weights[index] * score;
    let mut order: Vec<usize> = (0..sources.len()).collect();
    if operation != Algebra::Diff {
        order.sort_by_key(|&index| sources[index].map_or(0, Source::len));
    }
    match operation {
        Algebra::Inter => {
            let Some(first) = sources[order[0]] else {
                return result;
            };
            'members: for (member, score) in first.members() {
                let mut total = weighed(order[0], score);
                if total.is_nan() {
                    total = 0.0;
                }
                for &index in &order[1..] {
                    let Some(score) = sources[index].and_then(|source| source.score(member)) else {
                        continue 'members;
                    };
                    aggregate(&mut total, weighed(index, score), options.aggregate);
                }
                result.insert(member, total);
            }
        }
        Algebra::Union => {
            let mut totals = KeyMap::<f64>::default();
            for &index in &order {
                let Some(source) = sources[index] else {
                    continue;
                };
                for (member, score) in source.members() {
                    let mut value = weighed(index, score);
                    if value.is_nan() {
                        value = 0.0;
                    }
                    match totals.get_mut(member) {
                        Some(total) => aggregate(total, value, options.aggregate),
                        None => {
                            totals.insert(member, value);
                        }
                    }
                }
            }
            for (member, total) in totals.iter() {
                result.insert(member.bytes(), *total);
            }
        }
        Algebra::Diff => {
            let Some(first) = sources[0] else {
                return result;
            };
            for (member, score) in first.members() {
                let elsewhere = sources[1..]
                    .iter()
                    .flatten()
                    .any(|source| source.score(member).is_some());
                if !elsewhere {
                    result.insert(member, score);
                }
            }
        }
    }
    result
}

/// What ZREMRANGEBYRANK and ZREMRANGEBYSCORE remove.
enum ZRemRange {
    Rank(i64, i64),
    Score(Bound<f64>, Bound<f64>),
    Lex(LexBound, LexBound),
}

fn zscan(context: &mut Context<'_>, args: &Args) {
    let Some(options) = parse_scan(&mut context.reply, args, 2, false) else {
        return;
    };
    let Context { store, reply, .. } = context;
    let zset = match store.get_zset(args.get(1)) {
        Ok(Some(zset)) => zset,
        Ok(None) => {
            reply.array(2);
            reply.bulk(b"0");
            reply.array(0);
            return;
        }
        Err(WrongType) => return reply.wrong_type(),
    };
    let emit = |out: &mut Vec<u8>, member: &HashedKey, score: &f64| {
        resp::bulk(out, member.bytes());
        resp::bulk(out, resp::format_g17(*score).as_bytes());
        2
    };
    scan_map(reply, zset.by_member(), &options, |_, _| true, emit);
}

const _: &[u8] = NOT_FLOAT;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bound() -> impl Strategy<Value = LexBound> {
        prop_oneof![
            Just(LexBound::Least),
            Just(LexBound::Greatest),
            (prop::collection::vec(b'a'..b'e', 0..3), any::<bool>())
                .prop_map(|(member, exclusive)| LexBound::Member { member, exclusive }),
        ]
    }

    /// Redis's listpack walk (`zzlFirstInLexRange`, `zzlLastInLexRange`
    /// and the loop after), written out over the (score, member) order.
    fn model(zset: &ZSet, min: &LexBound, max: &LexBound, rev: bool) -> Vec<Vec<u8>> {
        let all: Vec<Vec<u8>> = zset.iter().map(|(member, _)| member.to_vec()).collect();
        let (Some(first), Some(last)) = (all.first(), all.last()) else {
            return Vec::new();
        };
        if lex_range_is_empty(min, max) || !lex_at_least(last, min) || !lex_at_most(first, max) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if rev {
            let Some(start) = all.iter().rposition(|member| lex_at_most(member, max)) else {
                return out;
            };
            for member in all[..=start].iter().rev() {
                if !lex_at_least(member, min) {
                    break;
                }
                out.push(member.clone());
            }
        } else {
            let Some(start) = all.iter().position(|member| lex_at_least(member, min)) else {
                return out;
            };
            for member in &all[start..] {
                if !lex_at_most(member, max) {
                    break;
                }
                out.push(member.clone());
            }
        }
        out
    }

    proptest! {
        /// The B-tree search of a one-score set, and the walk of a set of
        /// mixed scores, give what Redis's walk gives.
        #[test]
        fn lex_ranges_are_redis_walks(
            members in prop::collection::vec((prop::collection::vec(b'a'..b'e', 0..3), 0u8..3), 0..20),
            one_score in any::<bool>(),
            score in prop::sample::select(vec![f64::NEG_INFINITY, 0.0, 1.5, f64::INFINITY]),
            min in bound(),
            max in bound(),
            rev in any::<bool>(),
        ) {
            let mut zset = ZSet::default();
            for (member, mixed) in &members {
                zset.insert(member, if one_score { score } else { f64::from(*mixed) });
            }
            let got: Vec<Vec<u8>> = lex_range(&zset, &min, &max, rev)
                .map(|(member, _)| member.to_vec())
                .collect();
            prop_assert_eq!(got, model(&zset, &min, &max, rev));
        }
    }
}
