//! Sets: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP,
//! SRANDMEMBER, SINTER, SUNION, SDIFF and their STORE forms, SINTERCARD,
//! SMOVE, SSCAN.
//!
//! SINTER walks its smallest set and probes the others, so a huge set
//! intersected with a small one costs the small one's size, in whatever
//! order they come.

use super::keys::{parse_scan, reply_random, scan_map, RandomReply};
use super::{
    command, is_option, parse_count, parse_i64, Command, Context, DENYOOM, ELEMENTS_MAX, FAST,
    RANDOM, READONLY, SYNTAX, TOO_MANY_ELEMENTS, WRITE,
};
use crate::keymap::HashedKey;
use crate::resp::{self, string_to_i64, Args};
use crate::store::{Set, Value, WrongType};

pub const COMMANDS: &[Command] = &[
    command("sadd", -3, WRITE | DENYOOM | FAST, [1, 1, 1], sadd),
    command("srem", -3, WRITE | FAST, [1, 1, 1], srem),
    command("smembers", 2, READONLY, [1, 1, 1], smembers),
    command("sismember", 3, READONLY | FAST, [1, 1, 1], sismember),
    command("smismember", -3, READONLY | FAST, [1, 1, 1], smismember),
    command("scard", 2, READONLY | FAST, [1, 1, 1], scard),
    command("spop", -2, WRITE | RANDOM | FAST, [1, 1, 1], spop),
    command("srandmember", -2, READONLY | RANDOM, [1, 1, 1], srandmember),
    command("sinter", -2, READONLY, [1, -1, 1], combine),
    command("sunion", -2, READONLY, [1, -1, 1], combine),
    command("sdiff", -2, READONLY, [1, -1, 1], combine),
    command("sintercard", -3, READONLY, [0, 0, 0], sintercard),
    command("sinterstore", -3, WRITE | DENYOOM, [1, -1, 1], combine),
    command("sunionstore", -3, WRITE | DENYOOM, [1, -1, 1], combine),
    command("sdiffstore", -3, WRITE | DENYOOM, [1, -1, 1], combine),
    command("smove", 4, WRITE | FAST, [1, 2, 1], smove),
    command("sscan", -3, READONLY, [1, 1, 1], sscan),
];

/// The set at `key` for reading; `Err` once the WRONGTYPE reply is out.
fn read<'a>(context: &'a mut Context<'_>, key: &[u8]) -> Result<Option<&'a Set>, ()> {
    match context.store.get_set(key) {
        Ok(set) => Ok(set),
        Err(WrongType) => {
            context.reply.wrong_type();
            Err(())
        }
    }
}

fn sadd(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    let Ok(set) = read(context, key) else {
        return;
    };
    let new = (2..args.len())
        .filter(|&index| set.map_or(true, |set| !set.contains(args.get(index))))
        .count();
    let len = set.map_or(0, Set::len);
    if new == 0 {
        context.reply.int(0);
        return;
    }
    if len + new > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    context.log_args(args);
    let set = context.store.set_or_create(key).expect("type checked");
    let added = (2..args.len())
        .filter(|&index| set.insert(args.get(index), ()).is_none())
        .count();
    context.reply.int(added as i64);
}

fn srem(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    let Ok(set) = read(context, key) else {
        return;
    };
    let present = set.is_some_and(|set| (2..args.len()).any(|index| set.contains(args.get(index))));
    if !present {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    let set = context
        .store
        .get_set_mut(key)
        .expect("type checked")
        .expect("exists");
    let removed = (2..args.len())
        .filter(|&index| set.remove(args.get(index)).is_some())
        .count();
    context.store.remove_if_empty(key);
    context.reply.int(removed as i64);
}

/// Writes `members` as a set reply, within the reply bound.
fn reply_members<'m>(
    context: &mut Context<'_>,
    len: usize,
    members: impl Iterator<Item = &'m [u8]>,
) {
    let start = context.reply.out.len();
    context.reply.set(len);
    for member in members {
        context.reply.bulk(member);
        if context.reply.over_limit(start) {
            return;
        }
    }
}

fn smembers(context: &mut Context<'_>, args: &Args) {
    let Context { store, reply, .. } = context;
    let set = match store.get_set(args.get(1)) {
        Ok(set) => set,
        Err(WrongType) => return reply.wrong_type(),
    };
    let start = reply.out.len();
    reply.set(set.map_or(0, Set::len));
    for (member, _) in set.into_iter().flat_map(|set| set.iter()) {
        reply.bulk(member.bytes());
        if reply.over_limit(start) {
            return;
        }
    }
}

fn sismember(context: &mut Context<'_>, args: &Args) {
    if let Ok(set) = read(context, args.get(1)) {
        let found = set.is_some_and(|set| set.contains(args.get(2)));
        context.reply.int(i64::from(found));
    }
}

fn smismember(context: &mut Context<'_>, args: &Args) {
    let Context { store, reply, .. } = context;
    let set = match store.get_set(args.get(1)) {
        Ok(set) => set,
        Err(WrongType) => return reply.wrong_type(),
    };
    reply.array(args.len() - 2);
    for index in 2..args.len() {
        let found = set.is_some_and(|set| set.contains(args.get(index)));
        reply.int(i64::from(found));
    }
}

fn scard(context: &mut Context<'_>, args: &Args) {
    if let Ok(set) = read(context, args.get(1)) {
        let len = set.map_or(0, Set::len);
        context.reply.int(len as i64);
    }
}

/// `count` distinct members from a pseudo-random cursor on, wrapping.
fn pick(set: &Set, cursor: u64, count: usize) -> Vec<Vec<u8>> {
    set.distinct_from(cursor, count)
        .map(|(member, _)| member.bytes().to_vec())
        .collect()
}

/// SPOP key [count]: logged as SREM of what it took, as Redis propagates it.
fn spop(context: &mut Context<'_>, args: &Args) {
    if args.len() > 3 {
        return context.reply.error(super::SYNTAX);
    }
    let count = match args.len() {
        3 => match parse_count(&mut context.reply, args.get(2), "value") {
            Some(count) => Some(count),
            None => return,
        },
        _ => None,
    };
    let key = args.get(1);
    let cursor = context.store.next_random();
    let Ok(set) = read(context, key) else {
        return;
    };
    let Some(set) = set else {
        match count {
            Some(_) => context.reply.set(0),
            None => context.reply.nil(),
        }
        return;
    };
    let taken = pick(set, cursor, count.unwrap_or(1));
    if taken.is_empty() {
        context.reply.set(0);
        return;
    }
    // In SREMs of at most 1,024 members: a logged command's arguments are
    // bounded as a request's are, and SPOP's count is not.
    for chunk in taken.chunks(1024) {
        let mut parts: Vec<&[u8]> = vec![b"SREM", key];
        parts.extend(chunk.iter().map(Vec::as_slice));
        context.log_parts(&parts);
    }
    let set = context
        .store
        .get_set_mut(key)
        .expect("type checked")
        .expect("exists");
    for member in &taken {
        set.remove(member);
    }
    context.store.remove_if_empty(key);
    match count {
        Some(_) => reply_members(context, taken.len(), taken.iter().map(Vec::as_slice)),
        None => context.reply.bulk(&taken[0]),
    }
}

/// SRANDMEMBER key [count]: a positive count gives distinct members, a
/// negative one that many with repeats.
fn srandmember(context: &mut Context<'_>, args: &Args) {
    if args.len() > 3 {
        return context.reply.error(super::SYNTAX);
    }
    let count = match args.len() {
        3 => match parse_i64(&mut context.reply, args.get(2)) {
            Some(i64::MIN) => return context.reply.error(b"ERR value is out of range"),
            Some(count) => Some(count),
            None => return,
        },
        _ => None,
    };
    let cursor = context.store.next_random();
    let random = match count {
        None => RandomReply::One(cursor),
        Some(count) if count >= 0 => RandomReply::Distinct(cursor, count as usize),
        Some(count) => RandomReply::repeated(context.store.next_random(), count.unsigned_abs()),
    };
    let Context { store, reply, .. } = context;
    let set = match store.get_set(args.get(1)) {
        Ok(set) => set,
        Err(WrongType) => return reply.wrong_type(),
    };
    reply_random(reply, set, &random, false, |reply, member, _| {
        reply.bulk(member.bytes())
    });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    Inter,
    Union,
    Diff,
}

/// The sets named by `keys`, in order (`None`: missing); `Err` once the
/// WRONGTYPE reply is out: every key is checked, a missing one included.
fn gather<'a>(context: &'a mut Context<'_>, keys: &[&[u8]]) -> Result<Vec<Option<&'a Set>>, ()> {
    for key in keys {
        match context.store.get(key).map(|entry| &entry.value) {
            None | Some(Value::Set(_)) => {}
            Some(_) => {
                context.reply.wrong_type();
                return Err(());
            }
        }
    }
    let store = &*context.store;
    Ok(keys
        .iter()
        .map(|key| match store.peek(key).map(|entry| &entry.value) {
            Some(Value::Set(set)) => Some(set),
            _ => None,
        })
        .collect())
}

/// The members of the combination, computed in time proportional to the
/// smallest set (SINTER) or to the sets walked (SUNION, and SDIFF's first).
fn compute(sets: &[Option<&Set>], operation: Operation) -> Vec<Vec<u8>> {
    match operation {
        Operation::Inter => {
            if sets.iter().any(Option::is_none) {
                return Vec::new();
            }
            let mut sets: Vec<&Set> = sets.iter().flatten().copied().collect();
            sets.sort_by_key(|set| set.len());
            let (smallest, rest) = sets.split_first().expect("at least one key");
            smallest
                .iter()
                .map(|(member, _)| member.bytes())
                .filter(|member| rest.iter().all(|set| set.contains(member)))
                .map(<[u8]>::to_vec)
                .collect()
        }
        Operation::Union => {
            let mut union = Set::default();
            for (member, _) in sets.iter().flatten().flat_map(|set| set.iter()) {
                union.insert(member.bytes(), ());
            }
            union
                .iter()
                .map(|(member, _)| member.bytes().to_vec())
                .collect()
        }
        Operation::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Vec::new();
            };
            first
                .iter()
                .map(|(member, _)| member.bytes())
                .filter(|member| sets[1..].iter().flatten().all(|set| !set.contains(member)))
                .map(<[u8]>::to_vec)
                .collect()
        }
    }
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit], as Redis 7.0's
/// `sinterCardCommand`: numkeys and the options first, then the keys; the
/// count stops at a LIMIT above 0.
fn sintercard(context: &mut Context<'_>, args: &Args) {
    let numkeys = match string_to_i64(args.get(1)) {
        Some(numkeys) if numkeys >= 1 => numkeys as usize,
        _ => return context.reply.error(b"ERR numkeys should be greater than 0"),
    };
    if numkeys > args.len() - 2 {
        return context
            .reply
            .error(b"ERR Number of keys can't be greater than number of args");
    }
    let Some(limit) = parse_card_limit(context, args, 2 + numkeys) else {
        return;
    };
    let keys: Vec<&[u8]> = (2..2 + numkeys).map(|index| args.get(index)).collect();
    let Ok(sets) = gather(context, &keys) else {
        return;
    };
    if sets.iter().any(Option::is_none) {
        return context.reply.int(0);
    }
    let mut sets: Vec<&Set> = sets.into_iter().flatten().collect();
    sets.sort_by_key(|set| set.len());
    let (smallest, rest) = sets.split_first().expect("at least one key");
    let in_all = smallest
        .iter()
        .filter(|(member, _)| rest.iter().all(|set| set.contains(member.bytes())));
    let count = match limit {
        0 => in_all.count(),
        limit => in_all.take(limit).count(),
    };
    context.reply.int(count as i64);
}

/// The `LIMIT limit` options of SINTERCARD and ZINTERCARD from `index` on
/// (0, no limit, if none; the last one counts), or the error replied.
pub fn parse_card_limit(context: &mut Context<'_>, args: &Args, mut index: usize) -> Option<usize> {
    let mut limit = 0;
    while index < args.len() {
        if is_option(args, index, "limit") && index + 1 < args.len() {
            match string_to_i64(args.get(index + 1)) {
                Some(value) if value >= 0 => limit = value as usize,
                _ => {
                    context.reply.error(b"ERR LIMIT can't be negative");
                    return None;
                }
            }
            index += 2;
        } else {
            context.reply.error(SYNTAX);
            return None;
        }
    }
    Some(limit)
}

/// SINTER, SUNION, SDIFF, and their STORE forms (logged as they came:
/// their effect depends only on the state).
fn combine(context: &mut Context<'_>, args: &Args) {
    let name = args.get(0).to_ascii_lowercase();
    let operation = if name.starts_with(b"sinter") {
        Operation::Inter
    } else if name.starts_with(b"sunion") {
        Operation::Union
    } else {
        Operation::Diff
    };
    let store = name.ends_with(b"store");
    let first = if store { 2 } else { 1 };
    let keys: Vec<&[u8]> = (first..args.len()).map(|index| args.get(index)).collect();
    // Redis reads the sources of the STORE forms as reads too
    // (`lookupKeyRead`, counted in the keyspace statistics); the
    // destination is a write's lookup, not counted.
    context.store.count_lookups(true);
    let Ok(sets) = gather(context, &keys) else {
        return;
    };
    let members = compute(&sets, operation);
    context.store.count_lookups(!store);
    if !store {
        reply_members(context, members.len(), members.iter().map(Vec::as_slice));
        return;
    }
    if members.len() > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    let mut set = Set::default();
    for member in &members {
        set.insert(member, ());
    }
    context.store_collection(args, args.get(1), Value::Set(set), members.len());
}

fn smove(context: &mut Context<'_>, args: &Args) {
    let (source, target, member) = (args.get(1), args.get(2), args.get(3));
    let Ok(source_set) = read(context, source) else {
        return;
    };
    let Some(source_set) = source_set else {
        context.reply.int(0);
        return;
    };
    let is_member = source_set.contains(member);
    let Ok(target_set) = read(context, target) else {
        return;
    };
    if source == target || !is_member {
        context.reply.int(i64::from(is_member));
        return;
    }
    if target_set.map_or(0, Set::len) + 1 > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    context.log_args(args);
    let set = context
        .store
        .get_set_mut(source)
        .expect("type checked")
        .expect("exists");
    set.remove(member);
    context.store.remove_if_empty(source);
    let set = context.store.set_or_create(target).expect("type checked");
    set.insert(member, ());
    context.reply.int(1);
}

fn sscan(context: &mut Context<'_>, args: &Args) {
    let Some(options) = parse_scan(&mut context.reply, args, 2, false) else {
        return;
    };
    let Context { store, reply, .. } = context;
    let set = match store.get_set(args.get(1)) {
        Ok(Some(set)) => set,
        Ok(None) => {
            reply.array(2);
            reply.bulk(b"0");
            reply.array(0);
            return;
        }
        Err(WrongType) => return reply.wrong_type(),
    };
    let emit = |out: &mut Vec<u8>, member: &HashedKey, _: &()| {
        resp::bulk(out, member.bytes());
        1
    };
    scan_map(reply, set, &options, |_, _| true, emit);
}
