//! SORT and SORT_RO, as Redis 7.0's `sortCommandGeneric`: a list, set or
//! sorted set, sorted by its elements or by the keys a BY pattern names
//! (`weight_*`, or a hash field, `h_*->field`), numerically or with ALPHA,
//! ASC or DESC, cut by LIMIT, each element given as itself or as what GET
//! patterns name (`#` is the element), replied or stored as a list.
//!
//! ALPHA compares bytes, as Redis does under the C and C.UTF-8 locales
//! (Redis uses `strcoll`, so under another LC_COLLATE it orders by it).
//! Ties sort stably: equal elements keep their order in a list, as under
//! glibc's merge sort. A score is refused only for itself: Redis tests a
//! stale `errno` too, so after any earlier overflowing `strtod` in the
//! process (`SORT` of `1e400`, say) its next numeric SORT may refuse every
//! score until something resets `errno`.

use std::cmp::Ordering;

use super::{
    command, is_option, parse_i64, Command, Context, DENYOOM, ELEMENTS_MAX, READONLY, SYNTAX,
    TOO_MANY_ELEMENTS, WRITE,
};
use crate::resp::Args;
use crate::store::{List, Value};

pub const COMMANDS: &[Command] = &[
    command("sort", -2, WRITE | DENYOOM, [1, 1, 1], sort),
    command("sort_ro", -2, READONLY, [1, 1, 1], sort),
];

/// What the options ask.
struct SortRequest<'a> {
    desc: bool,
    alpha: bool,
    /// LIMIT's offset and count (-1: no limit).
    limit: (i64, i64),
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    gets: Vec<&'a [u8]>,
}

impl SortRequest<'_> {
    /// BY with a pattern that has no `*`: no sorting at all.
    fn dont_sort(&self) -> bool {
        self.by.is_some_and(|pattern| !pattern.contains(&b'*'))
    }
}

fn parse_sort<'a>(
    context: &mut Context<'_>,
    args: &'a Args,
    readonly: bool,
) -> Option<SortRequest<'a>> {
    let mut request = SortRequest {
        desc: false,
        alpha: false,
        limit: (0, -1),
        store: None,
        by: None,
        gets: Vec::new(),
    };
    let mut index = 2;
    while index < args.len() {
        let left = args.len() - index - 1;
        if is_option(args, index, "asc") {
            request.desc = false;
        } else if is_option(args, index, "desc") {
            request.desc = true;
        } else if is_option(args, index, "alpha") {
            request.alpha = true;
        } else if is_option(args, index, "limit") && left >= 2 {
            let offset = parse_i64(&mut context.reply, args.get(index + 1))?;
            let count = parse_i64(&mut context.reply, args.get(index + 2))?;
            request.limit = (offset, count);
            index += 2;
        } else if !readonly && is_option(args, index, "store") && left >= 1 {
            request.store = Some(args.get(index + 1));
            index += 1;
        } else if is_option(args, index, "by") && left >= 1 {
            request.by = Some(args.get(index + 1));
            index += 1;
        } else if is_option(args, index, "get") && left >= 1 {
            request.gets.push(args.get(index + 1));
            index += 1;
        } else {
            context.reply.error(SYNTAX);
            return None;
        }
        index += 1;
    }
    Some(request)
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...]
/// [ASC | DESC] [ALPHA] [STORE destination], and SORT_RO (no STORE).
/// Every key it reads (the source, and what BY and GET name) is a read in
/// the keyspace statistics, as in Redis; a STORE is logged as it came.
fn sort(context: &mut Context<'_>, args: &Args) {
    let readonly = is_option(args, 0, "sort_ro");
    let Some(request) = parse_sort(context, args, readonly) else {
        return;
    };
    context.store.count_lookups(true);
    let Some(mut elements) = source_elements(context, args.get(1), &request) else {
        return;
    };
    let (start, end) = limit_range(request.limit, elements.len());
    if request.dont_sort() {
        if request.desc && !elements.is_empty() {
            elements.reverse();
        }
    } else if !sort_elements(context, &mut elements, &request) {
        context
            .reply
            .error(b"ERR One or more scores can't be converted into double");
        return;
    }
    let chosen = if start <= end {
        &elements[start as usize..=end as usize]
    } else {
        &[][..]
    };
    let mut output: Vec<Option<Vec<u8>>> = Vec::new();
    for element in chosen {
        if request.gets.is_empty() {
            output.push(Some(element.clone()));
        }
        for pattern in &request.gets {
            output.push(lookup_by_pattern(context, pattern, element));
        }
    }
    context.store.count_lookups(false);
    match request.store {
        None => reply_output(context, &output),
        Some(target) => store_output(context, args, target, output),
    }
}

/// The elements of the collection at `key` (none if it is missing), in
/// its own order (a set's: byte order, as Redis's forced ALPHA for a set
/// it stores without sorting); `None` once WRONGTYPE is replied.
fn source_elements(
    context: &mut Context<'_>,
    key: &[u8],
    request: &SortRequest<'_>,
) -> Option<Vec<Vec<u8>>> {
    let elements = match context.store.get(key).map(|entry| &entry.value) {
        None => Vec::new(),
        Some(Value::List(list)) => list.iter().cloned().collect(),
        Some(Value::ZSet(zset)) => zset.iter().map(|(member, _)| member.to_vec()).collect(),
        Some(Value::Set(set)) => {
            let mut members: Vec<Vec<u8>> = set
                .iter()
                .map(|(member, _)| member.bytes().to_vec())
                .collect();
            if request.dont_sort() {
                // Redis sorts a set it would otherwise give in its hash
                // order (ALPHA, with STORE); without STORE the order is
                // Redis's to choose, and byte order is one.
                members.sort();
            }
            members
        }
        Some(_) => {
            context.reply.wrong_type();
            return None;
        }
    };
    Some(elements)
}

/// Redis's LIMIT arithmetic: the range `start..=end` of `len` elements
/// (empty when `end < start`).
fn limit_range((offset, count): (i64, i64), len: usize) -> (i64, i64) {
    let len = len as i64;
    let start = offset.max(0);
    let mut end = if count < 0 {
        len - 1
    } else {
        start.saturating_add(count) - 1
    };
    if start >= len {
        return (len - 1, len - 2);
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// Sorts `elements` as the request asks: `false` if a score would not
/// parse as a double (Redis's error, replied after the sort).
fn sort_elements(
    context: &mut Context<'_>,
    elements: &mut Vec<Vec<u8>>,
    request: &SortRequest<'_>,
) -> bool {
    // What BY names for each element (missing: a score of 0, or first in
    // ALPHA order); without BY, each element sorts by itself.
    let named: Option<Vec<Option<Vec<u8>>>> = request.by.map(|pattern| {
        elements
            .iter()
            .map(|element| lookup_by_pattern(context, pattern, element))
            .collect()
    });
    let keys: Vec<Option<&[u8]>> = match &named {
        Some(named) => named.iter().map(Option::as_deref).collect(),
        None => elements
            .iter()
            .map(|element| Some(element.as_slice()))
            .collect(),
    };
    let mut order: Vec<usize> = (0..elements.len()).collect();
    if request.alpha {
        order.sort_by(|&a, &b| {
            let ordering = match (&keys[a], &keys[b]) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => x.cmp(y),
            };
            if request.desc {
                ordering.reverse()
            } else {
                ordering
            }
        });
    } else {
        let mut scores = Vec::with_capacity(keys.len());
        for key in &keys {
            match key.as_deref().map(parse_sort_score) {
                None => scores.push(0.0),
                Some(Some(score)) => scores.push(score),
                Some(None) => return false,
            }
        }
        order.sort_by(|&a, &b| {
            let ordering = scores[a]
                .partial_cmp(&scores[b])
                .expect("no NaN")
                .then_with(|| elements[a].cmp(&elements[b]));
            if request.desc {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    let sorted: Vec<Vec<u8>> = order
        .iter()
        .map(|&index| std::mem::take(&mut elements[index]))
        .collect();
    *elements = sorted;
    true
}

/// A score as Redis's SORT reads one with `strtod`: leading blanks
/// skipped, an empty string 0, NaN and an overflow to infinity refused.
fn parse_sort_score(text: &[u8]) -> Option<f64> {
    if text.is_empty() {
        return Some(0.0);
    }
    let start = text
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let text = std::str::from_utf8(&text[start..]).ok()?;
    let value: f64 = text.parse().ok()?;
    let spelled_infinite = text
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf");
    if value.is_nan() || (value.is_infinite() && !spelled_infinite) {
        return None;
    }
    Some(value)
}

/// Redis's `lookupKeyByPattern`: `#` is the element; otherwise the first
/// `*` of `pattern` becomes the element, and the key so named gives its
/// string, or with `->field` after the `*` its hash field. `None` for a
/// pattern without `*`, a missing key, a key of another type, or a
/// missing field.
fn lookup_by_pattern(context: &mut Context<'_>, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(element.to_vec());
    }
    let star = pattern.iter().position(|&byte| byte == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|pair| pair == b"->")
        .filter(|&at| at + 2 < after.len());
    let (suffix, field) = match arrow {
        Some(at) => (&after[..at], Some(&after[at + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + suffix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(suffix);
    match (context.store.get(&key).map(|entry| &entry.value), field) {
        (Some(Value::String(value, _)), None) => Some(value.clone()),
        (Some(Value::Hash(hash)), Some(field)) => hash.get(field).cloned(),
        _ => None,
    }
}

fn reply_output(context: &mut Context<'_>, output: &[Option<Vec<u8>>]) {
    let reply = &mut context.reply;
    let start = reply.out.len();
    reply.array(output.len());
    for value in output {
        match value {
            Some(value) => reply.bulk(value),
            None => reply.nil(),
        }
        if reply.over_limit(start) {
            return;
        }
    }
}

/// STORE: the output as a list (a missing GET value is an empty string),
/// in place of whatever `target` held; an empty one deletes it.
fn store_output(
    context: &mut Context<'_>,
    args: &Args,
    target: &[u8],
    output: Vec<Option<Vec<u8>>>,
) {
    if output.len() > ELEMENTS_MAX {
        context.reply.error(TOO_MANY_ELEMENTS);
        return;
    }
    let len = output.len();
    let list: List = output.into_iter().map(Option::unwrap_or_default).collect();
    context.store_collection(args, target, Value::List(list), len);
}
