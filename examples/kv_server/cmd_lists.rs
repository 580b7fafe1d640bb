//! Lists: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP (with count), LLEN,
//! LRANGE, LINDEX, LSET, LREM, LTRIM, LINSERT, LPOS, RPOPLPUSH, LMOVE.
//!
//! A list is a `VecDeque`: pushes and pops at both ends are O(1), LINDEX
//! and LSET O(1), LREM and LPOS one pass, LTRIM O(removed).

use super::{
    clip_range, command, is_option, parse_count, parse_i64, Command, Context, DENYOOM,
    ELEMENTS_MAX, FAST, READONLY, SYNTAX, TOO_MANY_ELEMENTS, WRITE,
};
use crate::resp::Args;
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
];

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
    let side = |index: usize| {
        if is_option(args, index, "left") {
            Some(true)
        } else if is_option(args, index, "right") {
            Some(false)
        } else {
            None
        }
    };
    let (from_left, to_left) = if args.len() == 3 {
        (false, true)
    } else {
        match (side(3), side(4)) {
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
    let Ok(target_list) = read(context, target) else {
        return;
    };
    if target_list.map_or(0, List::len) + 1 > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    context.log_args(args);
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
