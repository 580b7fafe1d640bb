//! Hashes: HSET, HMSET, HSETNX, HGET, HMGET, HDEL, HGETALL, HKEYS, HVALS,
//! HLEN, HEXISTS, HSTRLEN, HINCRBY, HINCRBYFLOAT, HSCAN, HRANDFIELD.

use super::keys::{parse_random_count, parse_scan, reply_random, scan_map};
use super::longdouble::{self, LongDouble};
use super::{
    command, parse_i64, wrong_arity, Command, Context, DENYOOM, ELEMENTS_MAX, FAST, NOT_FLOAT,
    RANDOM, READONLY, TOO_MANY_ELEMENTS, WRITE,
};
use crate::keymap::HashedKey;
use crate::resp::{self, string_to_i64, Args};
use crate::store::{Hash, WrongType};

pub const COMMANDS: &[Command] = &[
    command("hset", -4, WRITE | DENYOOM | FAST, [1, 1, 1], hset),
    command("hmset", -4, WRITE | DENYOOM | FAST, [1, 1, 1], hset),
    command("hsetnx", 4, WRITE | DENYOOM | FAST, [1, 1, 1], hsetnx),
    command("hget", 3, READONLY | FAST, [1, 1, 1], hget),
    command("hmget", -3, READONLY | FAST, [1, 1, 1], hmget),
    command("hdel", -3, WRITE | FAST, [1, 1, 1], hdel),
    command("hgetall", 2, READONLY, [1, 1, 1], hgetall),
    command("hkeys", 2, READONLY, [1, 1, 1], hgetall),
    command("hvals", 2, READONLY, [1, 1, 1], hgetall),
    command("hlen", 2, READONLY | FAST, [1, 1, 1], hlen),
    command("hexists", 3, READONLY | FAST, [1, 1, 1], hexists),
    command("hstrlen", 3, READONLY | FAST, [1, 1, 1], hstrlen),
    command("hincrby", 4, WRITE | DENYOOM | FAST, [1, 1, 1], hincrby),
    command(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        [1, 1, 1],
        hincrbyfloat,
    ),
    command("hscan", -3, READONLY, [1, 1, 1], hscan),
    command("hrandfield", -2, READONLY | RANDOM, [1, 1, 1], hrandfield),
];

/// The hash at `key` for reading; `Err` once the WRONGTYPE reply is out.
fn read<'a>(context: &'a mut Context<'_>, key: &[u8]) -> Result<Option<&'a Hash>, ()> {
    match context.store.get_hash(key) {
        Ok(hash) => Ok(hash),
        Err(WrongType) => {
            context.reply.wrong_type();
            Err(())
        }
    }
}

/// Whether adding the fields at `args[first..]` (every `step`-th) keeps the
/// hash within [`ELEMENTS_MAX`]; replies the error if not.
fn fits(context: &mut Context<'_>, args: &Args, first: usize, step: usize) -> bool {
    let key = args.get(1);
    let adding = (args.len() - first).div_ceil(step);
    let len = match context.store.get_hash(key) {
        Ok(hash) => hash.map_or(0, Hash::len),
        Err(WrongType) => {
            context.reply.wrong_type();
            return false;
        }
    };
    if len + adding <= ELEMENTS_MAX {
        return true;
    }
    let hash = context.store.get_hash(key).ok().flatten();
    let new = (first..args.len())
        .step_by(step)
        .filter(|&index| hash.map_or(true, |hash| !hash.contains(args.get(index))))
        .count();
    if len + new > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return false;
    }
    true
}

fn hset(context: &mut Context<'_>, args: &Args) {
    let name = String::from_utf8_lossy(args.get(0)).to_ascii_lowercase();
    if args.len() % 2 == 1 {
        wrong_arity(&mut context.reply, &name);
        return;
    }
    if !fits(context, args, 2, 2) {
        return;
    }
    context.log_args(args);
    let hash = context
        .store
        .hash_or_create(args.get(1))
        .expect("type checked");
    let mut added = 0;
    for index in (2..args.len()).step_by(2) {
        if hash
            .insert(args.get(index), args.get(index + 1).to_vec())
            .is_none()
        {
            added += 1;
        }
    }
    if name == "hmset" {
        context.reply.ok();
    } else {
        context.reply.int(added);
    }
}

fn hsetnx(context: &mut Context<'_>, args: &Args) {
    let Ok(hash) = read(context, args.get(1)) else {
        return;
    };
    if hash.is_some_and(|hash| hash.contains(args.get(2))) {
        context.reply.int(0);
        return;
    }
    if !fits(context, args, 2, 2) {
        return;
    }
    context.log_args(args);
    let hash = context
        .store
        .hash_or_create(args.get(1))
        .expect("type checked");
    hash.insert(args.get(2), args.get(3).to_vec());
    context.reply.int(1);
}

fn hget(context: &mut Context<'_>, args: &Args) {
    let Context { store, reply, .. } = context;
    match store.get_hash(args.get(1)) {
        Ok(hash) => match hash.and_then(|hash| hash.get(args.get(2))) {
            Some(value) => reply.bulk(value),
            None => reply.nil(),
        },
        Err(WrongType) => reply.wrong_type(),
    }
}

fn hmget(context: &mut Context<'_>, args: &Args) {
    let Context { store, reply, .. } = context;
    let hash = match store.get_hash(args.get(1)) {
        Ok(hash) => hash,
        Err(WrongType) => return reply.wrong_type(),
    };
    reply.array(args.len() - 2);
    for index in 2..args.len() {
        match hash.and_then(|hash| hash.get(args.get(index))) {
            Some(value) => reply.bulk(value),
            None => reply.nil(),
        }
    }
}

fn hdel(context: &mut Context<'_>, args: &Args) {
    let key = args.get(1);
    let Ok(hash) = read(context, key) else {
        return;
    };
    let Some(hash) = hash else {
        context.reply.int(0);
        return;
    };
    let present = (2..args.len()).any(|index| hash.contains(args.get(index)));
    if !present {
        context.reply.int(0);
        return;
    }
    context.log_args(args);
    let hash = context
        .store
        .get_hash_mut(key)
        .expect("type checked")
        .expect("present");
    let removed = (2..args.len())
        .filter(|&index| hash.remove(args.get(index)).is_some())
        .count();
    context.store.remove_if_empty(key);
    context.reply.int(removed as i64);
}

/// HGETALL (a map), HKEYS and HVALS (arrays).
fn hgetall(context: &mut Context<'_>, args: &Args) {
    let name = args.get(0).to_ascii_lowercase();
    let Context { store, reply, .. } = context;
    let hash = match store.get_hash(args.get(1)) {
        Ok(hash) => hash,
        Err(WrongType) => return reply.wrong_type(),
    };
    let len = hash.map_or(0, Hash::len);
    let start = reply.out.len();
    match name.as_slice() {
        b"hgetall" => reply.map(len),
        _ => reply.array(len),
    }
    for (field, value) in hash.into_iter().flat_map(|hash| hash.iter()) {
        match name.as_slice() {
            b"hkeys" => reply.bulk(field.bytes()),
            b"hvals" => reply.bulk(value),
            _ => {
                reply.bulk(field.bytes());
                reply.bulk(value);
            }
        }
        if reply.over_limit(start) {
            return;
        }
    }
}

fn hlen(context: &mut Context<'_>, args: &Args) {
    if let Ok(hash) = read(context, args.get(1)) {
        let len = hash.map_or(0, Hash::len);
        context.reply.int(len as i64);
    }
}

fn hexists(context: &mut Context<'_>, args: &Args) {
    if let Ok(hash) = read(context, args.get(1)) {
        let found = hash.is_some_and(|hash| hash.contains(args.get(2)));
        context.reply.int(i64::from(found));
    }
}

fn hstrlen(context: &mut Context<'_>, args: &Args) {
    if let Ok(hash) = read(context, args.get(1)) {
        let len = hash
            .and_then(|hash| hash.get(args.get(2)))
            .map_or(0, Vec::len);
        context.reply.int(len as i64);
    }
}

fn hincrby(context: &mut Context<'_>, args: &Args) {
    let Some(by) = parse_i64(&mut context.reply, args.get(3)) else {
        return;
    };
    let Ok(hash) = read(context, args.get(1)) else {
        return;
    };
    let current = match hash.and_then(|hash| hash.get(args.get(2))) {
        None => 0,
        Some(value) => match string_to_i64(value) {
            Some(value) => value,
            None => {
                context.reply.error(b"ERR hash value is not an integer");
                return;
            }
        },
    };
    let Some(value) = current.checked_add(by) else {
        context
            .reply
            .error(b"ERR increment or decrement would overflow");
        return;
    };
    if !fits(context, args, 2, 2) {
        return;
    }
    context.log_args(args);
    let hash = context
        .store
        .hash_or_create(args.get(1))
        .expect("type checked");
    hash.insert(args.get(2), value.to_string().into_bytes());
    context.reply.int(value);
}

/// In `long double`, as Redis adds (see `longdouble.rs`); logged as HSET
/// of the value it made, as Redis propagates it.
fn hincrbyfloat(context: &mut Context<'_>, args: &Args) {
    if LongDouble::parse(args.get(3)).is_none() {
        context.reply.error(NOT_FLOAT);
        return;
    }
    let Ok(hash) = read(context, args.get(1)) else {
        return;
    };
    let current = hash.and_then(|hash| hash.get(args.get(2))).cloned();
    let text = match longdouble::increment(current.as_deref(), args.get(3)) {
        Ok(Some(text)) => text.into_bytes(),
        Ok(None) => {
            let text = b"ERR increment would produce NaN or Infinity";
            context.reply.error(text);
            return;
        }
        Err(_) => {
            context.reply.error(b"ERR hash value is not a float");
            return;
        }
    };
    if !fits(context, args, 2, 2) {
        return;
    }
    context.log_parts(&[b"HSET", args.get(1), args.get(2), &text]);
    let hash = context
        .store
        .hash_or_create(args.get(1))
        .expect("type checked");
    hash.insert(args.get(2), text.clone());
    context.reply.bulk(&text);
}

fn hscan(context: &mut Context<'_>, args: &Args) {
    let Some(options) = parse_scan(&mut context.reply, args, 2, false) else {
        return;
    };
    let Context { store, reply, .. } = context;
    let hash = match store.get_hash(args.get(1)) {
        Ok(Some(hash)) => hash,
        Ok(None) => {
            reply.array(2);
            reply.bulk(b"0");
            reply.array(0);
            return;
        }
        Err(WrongType) => return reply.wrong_type(),
    };
    let emit = |out: &mut Vec<u8>, field: &HashedKey, value: &Vec<u8>| {
        resp::bulk(out, field.bytes());
        resp::bulk(out, value);
        2
    };
    scan_map(reply, hash, &options, |_, _| true, emit);
}

/// HRANDFIELD key [count [WITHVALUES]], as Redis 7.0: one field, or a
/// count of them (negative: repeats allowed), with their values if asked.
fn hrandfield(context: &mut Context<'_>, args: &Args) {
    let Some((random, with_values)) = parse_random_count(context, args, "withvalues") else {
        return;
    };
    let Context { store, reply, .. } = context;
    let hash = match store.get_hash(args.get(1)) {
        Ok(hash) => hash,
        Err(WrongType) => return reply.wrong_type(),
    };
    reply_random(reply, hash, &random, with_values, |reply, field, value| {
        reply.bulk(field.bytes());
        if with_values {
            reply.bulk(value);
        }
    });
}
