//! Sorted sets: ZADD (NX, XX, GT, LT, CH, INCR), ZINCRBY, ZSCORE, ZMSCORE,
//! ZCARD, ZREM, ZPOPMIN, ZPOPMAX, ZRANGE (by index, BYSCORE or BYLEX, REV,
//! LIMIT, WITHSCORES), ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, the
//! lexicographic ranges (ZRANGEBYLEX, ZREVRANGEBYLEX, ZLEXCOUNT,
//! ZREMRANGEBYLEX), ZRANGESTORE, ZRANK, ZREVRANK, ZCOUNT,
//! ZREMRANGEBYSCORE, ZREMRANGEBYRANK, ZRANDMEMBER, ZSCAN, ZMPOP, and the
//! blocking pops BZPOPMIN, BZPOPMAX and BZMPOP (on the lists' blocking
//! machinery, `cmd_lists.rs`: a served pop is logged as the ZPOPMIN or
//! ZPOPMAX it amounts to, as Redis propagates it). ZUNION, ZINTER, ZDIFF,
//! their STORE forms and ZINTERCARD are in `cmd_zset_algebra.rs`.
//!
//! Ranges by index walk the (score, member) B-tree from its nearer end:
//! O(offset + count), where Redis's skiplist is O(log n + count). Ranges
//! by score start with a B-tree search: O(log n + count).

use std::ops::Bound;

use super::keys::{parse_random_count, parse_scan, reply_random, scan_map};
use super::lists::{parse_mpop, parse_timeout, unique_keys, Block, BlockOp, Mpop, Served};
use super::{
    clip_range, command, is_option, parse_count, parse_i64, Command, Context, Reply, BLOCKING,
    DENYOOM, ELEMENTS_MAX, FAST, NOT_FLOAT, RANDOM, READONLY, SYNTAX, TOO_MANY_ELEMENTS, WRITE,
};
use crate::keymap::HashedKey;
use crate::resp::{self, parse_double, Args};
use crate::store::{Value, WrongType, ZSet};

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
    command("zrandmember", -2, READONLY | RANDOM, [1, 1, 1], zrandmember),
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
    remove_and_reply(
        context,
        args,
        key,
        (2..args.len()).map(|index| args.get(index)),
    );
}

/// Logs the command as it came, removes `members` from the sorted set at
/// `key` (which exists), deletes the key once it is empty, and replies how
/// many of them it held.
fn remove_and_reply<'m>(
    context: &mut Context<'_>,
    args: &Args,
    key: &[u8],
    members: impl Iterator<Item = &'m [u8]>,
) {
    context.log_args(args);
    let zset = context
        .store
        .get_zset_mut(key)
        .expect("type checked")
        .expect("exists");
    let removed = members
        .filter(|member| zset.remove(member).is_some())
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
    context.store.count_lookups(false);
    let mut zset = ZSet::default();
    for (member, score) in &members {
        zset.insert(member, *score);
    }
    context.store_collection(args, args.get(1), Value::ZSet(zset), members.len());
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

/// Whether `bound` leaves its own string out (`-` and `+` always do).
fn lex_exclusive(bound: &LexBound) -> bool {
    !matches!(
        bound,
        LexBound::Member {
            exclusive: false,
            ..
        }
    )
}

fn lex_at_least(member: &[u8], min: &LexBound) -> bool {
    let ordering = compare_lex(member, min);
    ordering.is_gt() || (ordering.is_eq() && !lex_exclusive(min))
}

fn lex_at_most(member: &[u8], max: &LexBound) -> bool {
    let ordering = compare_lex(member, max);
    ordering.is_lt() || (ordering.is_eq() && !lex_exclusive(max))
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
    ordering.is_gt() || (ordering.is_eq() && (lex_exclusive(min) || lex_exclusive(max)))
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

pub fn reply_range(reply: &mut Reply<'_>, members: &[(Vec<u8>, f64)], with_scores: bool) {
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
    remove_and_reply(context, args, key, doomed.iter().map(Vec::as_slice));
}

/// ZRANDMEMBER key [count [WITHSCORES]], as Redis 7.0: one member, or a
/// count of them (negative: repeats allowed), with their scores if asked.
fn zrandmember(context: &mut Context<'_>, args: &Args) {
    let Some((random, with_scores)) = parse_random_count(context, args, "withscores") else {
        return;
    };
    let Context { store, reply, .. } = context;
    let members = match store.get_zset(args.get(1)) {
        Ok(zset) => zset.map(ZSet::by_member),
        Err(WrongType) => return reply.wrong_type(),
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
