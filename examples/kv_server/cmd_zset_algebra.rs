//! Sorted-set algebra: ZUNION, ZINTER, ZDIFF and their STORE forms
//! (WEIGHTS, AGGREGATE SUM|MIN|MAX, WITHSCORES), and ZINTERCARD, as Redis
//! 7.0's `zunionInterDiffGenericCommand` runs them: sets count as sorted
//! sets whose members score 1, and the arithmetic is Redis's, in Redis's
//! order, so that every score comes out to redis-server's bits.

use super::sets::parse_card_limit;
use super::zsets::reply_range;
use super::{
    command, is_option, parse_i64, Command, Context, DENYOOM, ELEMENTS_MAX, READONLY, SYNTAX,
    TOO_MANY_ELEMENTS, WRITE,
};
use crate::keymap::KeyMap;
use crate::resp::{parse_double, Args};
use crate::store::{Set, Store, Value, ZSet};

pub const COMMANDS: &[Command] = &[
    command("zunion", -3, READONLY, [0, 0, 0], zcombine),
    command("zinter", -3, READONLY, [0, 0, 0], zcombine),
    command("zdiff", -3, READONLY, [0, 0, 0], zcombine),
    command("zunionstore", -4, WRITE | DENYOOM, [1, 1, 1], zcombine),
    command("zinterstore", -4, WRITE | DENYOOM, [1, 1, 1], zcombine),
    command("zdiffstore", -4, WRITE | DENYOOM, [1, 1, 1], zcombine),
    command("zintercard", -3, READONLY, [0, 0, 0], zintercard),
];

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
    let length = result.len();
    context.store_collection(args, args.get(1), Value::ZSet(result), length);
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
