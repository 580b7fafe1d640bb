//! The key space: keys to values of five types (strings, hashes, lists,
//! sets, sorted sets), each key with an optional expiry deadline on the
//! wall clock, in Unix milliseconds, as Redis keeps it: the deadline is
//! logged, and must mean the same after a restart or a reboot, which the
//! loop's monotonic clock ([`ringio::IO::now_ns`]) does not.
//!
//! Ordered maps only ([`KeyMap`], `BTreeSet`), so nothing here depends on a
//! hash seed: the same commands at the same virtual times give the same
//! state, which the simulator relies on (it virtualizes the wall clock too).
//!
//! # Expiry
//!
//! As in Redis, lazily and actively. Every lookup of an expired key removes
//! it first, so no command sees one ([`Store::get`]); and
//! [`Store::active_expire`], run from a timer, removes a bounded number of
//! expired keys per pass, earliest deadline first. Each removal is queued
//! in [`Store::take_expired`] so that the server logs a `DEL` for it before
//! any later record: replay never expires anything by itself (as Redis
//! does not while loading its AOF), so what a command saw is exactly what
//! its replay sees, whatever the wall clock did meanwhile.
//!
//! # Ready keys
//!
//! For the blocking pops, the store knows which keys clients wait on
//! ([`Store::add_blocked_key`]) and lists, in order, those of them that
//! [`Store::insert`] created or gave a list since the server last looked
//! ([`Store::take_ready_keys`]), as Redis's `dbAdd` signals a key: the
//! server then serves their waiters. Nothing is listed while the log is
//! replayed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use ringio::IO;

use crate::keymap::KeyMap;

/// A hash: field to value.
pub type Hash = KeyMap<Vec<u8>>;
/// A set of members.
pub type Set = KeyMap<()>;
/// A list of elements.
pub type List = VecDeque<Vec<u8>>;

/// A sorted-set score: never NaN, so it has a total order (with -0 equal
/// to 0, as Redis compares them).
#[derive(Debug, Clone, Copy)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.partial_cmp(&other.0).expect("scores are never NaN")
    }
}

/// A sorted set: members by name (scores, SCAN) and by (score, member), the
/// order of ZRANGE and ZPOPMIN.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: KeyMap<f64>,
    order: BTreeSet<(Score, Vec<u8>)>,
}

impl ZSet {
    /// The number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; its old score, if it was a member.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        assert!(!score.is_nan());
        let old = self.scores.insert(member, score);
        if let Some(old) = old {
            let removed = self.order.remove(&(Score(old), member.to_vec()));
            assert!(removed);
        }
        self.order.insert((Score(score), member.to_vec()));
        assert_eq!(self.order.len(), self.scores.len());
        old
    }

    /// Removes `member`; its score, if it was a member.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.remove(member)?;
        let removed = self.order.remove(&(Score(score), member.to_vec()));
        assert!(removed);
        Some(score)
    }

    /// Removes the lowest (`max` false) or highest member.
    pub fn pop(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        let (score, member) = if max {
            self.order.pop_last()?
        } else {
            self.order.pop_first()?
        };
        let removed = self.scores.remove(&member);
        assert!(removed.is_some());
        Some((member, score.0))
    }

    /// Members in order of (score, member).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> + '_ {
        self.order
            .iter()
            .map(|(score, member)| (member.as_slice(), score.0))
    }

    /// Members with scores between `min` and `max`, in order of (score,
    /// member): O(log n) to the first, as ZRANGEBYSCORE and ZCOUNT need,
    /// where a walk from the lowest would be O(n) for a range at the top.
    pub fn range_by_score(
        &self,
        min: Bound<f64>,
        max: Bound<f64>,
    ) -> impl DoubleEndedIterator<Item = (&[u8], f64)> + '_ {
        // Every (score, member) bound as one on (score, empty member),
        // the least member of a score: an exclusive score bound becomes an
        // inclusive one on the next float up. NaN never gets here.
        let least = |score: f64| (Score(score), Vec::new());
        let start = match min {
            Bound::Included(score) => Some(Bound::Included(least(score))),
            Bound::Excluded(score) if score == f64::INFINITY => None,
            Bound::Excluded(score) => Some(Bound::Included(least(next_up(score)))),
            Bound::Unbounded => Some(Bound::Unbounded),
        };
        let end = match max {
            Bound::Included(score) if score == f64::INFINITY => Some(Bound::Unbounded),
            Bound::Included(score) => Some(Bound::Excluded(least(next_up(score)))),
            Bound::Excluded(score) => Some(Bound::Excluded(least(score))),
            Bound::Unbounded => Some(Bound::Unbounded),
        };
        // `BTreeSet::range` panics on a start past its end: such a range
        // (min above max, say) is empty.
        let range = match (start, end) {
            (Some(start), Some(end)) if !bounds_cross(&start, &end) => Some((start, end)),
            _ => None,
        };
        range
            .into_iter()
            .flat_map(|range| self.order.range(range))
            .map(|(score, member)| (member.as_slice(), score.0))
    }

    /// Members of score `score` between `min` and `max`, in order: for a
    /// set whose members all have that one score (the lexicographic
    /// ranges), O(log n) to the first.
    pub fn range_by_member(
        &self,
        score: f64,
        min: Bound<Vec<u8>>,
        max: Bound<Vec<u8>>,
    ) -> impl DoubleEndedIterator<Item = (&[u8], f64)> + '_ {
        let at = |bound: Bound<Vec<u8>>, least: bool| match bound {
            Bound::Included(member) => Bound::Included((Score(score), member)),
            Bound::Excluded(member) => Bound::Excluded((Score(score), member)),
            // The score's least member is the empty one; past its greatest
            // is the next score's least (none past the infinity).
            Bound::Unbounded if least => Bound::Included((Score(score), Vec::new())),
            Bound::Unbounded if score == f64::INFINITY => Bound::Unbounded,
            Bound::Unbounded => Bound::Excluded((Score(next_up(score)), Vec::new())),
        };
        let (start, end) = (at(min, true), at(max, false));
        let range = (!bounds_cross(&start, &end)).then_some((start, end));
        range
            .into_iter()
            .flat_map(|range| self.order.range(range))
            .map(|(score, member)| (member.as_slice(), score.0))
    }

    /// The 0-based rank of `member`: O(rank), since the order is a B-tree
    /// without subtree counts.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.order.range(..(Score(score), member.to_vec())).count())
    }

    /// The members by name, for ZSCAN.
    pub fn by_member(&self) -> &KeyMap<f64> {
        &self.scores
    }
}

/// The next number of the splitmix64 sequence at `state`: the store's
/// pseudo-random numbers, and the repeated draws of SRANDMEMBER,
/// HRANDFIELD and ZRANDMEMBER with a negative count.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut value = *state;
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

/// The least float above `x` (for the infinity, itself): `f64::next_up`,
/// which is newer than this crate's minimum Rust (1.86 against 1.80).
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        // Either zero: the least positive subnormal.
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    f64::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

/// Whether the range from `start` to `end` is one that `BTreeSet::range`
/// refuses: start after end, or both at one key with either excluded.
fn bounds_cross<T: Ord>(start: &Bound<T>, end: &Bound<T>) -> bool {
    match (start, end) {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start) | Bound::Excluded(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end)) => start >= end,
        _ => false,
    }
}

/// How Redis would hold a string where its value alone does not say so:
/// what OBJECT ENCODING reports. Kept in memory only: a snapshot stores the
/// string as a SET, and a restart reads it back as one (as a rewritten AOF
/// or an RDB file brings Redis's strings back), while a replayed APPEND or
/// SETRANGE makes a `Raw` one again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringForm {
    /// As SET stores one (Redis's `tryObjectEncoding`): `int` for a
    /// canonical integer of up to 20 bytes, `embstr` up to 44 bytes, else
    /// `raw`.
    Encoded,
    /// Never `int`: an INCRBYFLOAT result (`embstr` up to 44 bytes, else
    /// `raw`).
    Text,
    /// `raw`: a string APPEND or SETRANGE has changed.
    Raw,
}

/// One stored value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string (also what INCR reads as an integer).
    String(Vec<u8>, StringForm),
    /// A hash.
    Hash(Hash),
    /// A list.
    List(List),
    /// A set.
    Set(Set),
    /// A sorted set.
    ZSet(ZSet),
}

impl Value {
    /// The name TYPE replies.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(..) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Whether this is a collection with no elements left (removed, as
    /// Redis removes empty collections).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::String(..) => false,
            Value::Hash(hash) => hash.is_empty(),
            Value::List(list) => list.is_empty(),
            Value::Set(set) => set.is_empty(),
            Value::ZSet(zset) => zset.is_empty(),
        }
    }
}

/// One key's value and deadline.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// When the key expires, in Unix milliseconds on the wall clock; 0
    /// means never. At most `i64::MAX`, as in Redis.
    pub deadline_ms: u64,
}

/// The error of a command on a key of another type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

/// Counters for INFO.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Keys removed because they expired.
    pub expired_keys: u64,
    /// Reads that found their key.
    pub keyspace_hits: u64,
    /// Reads that did not.
    pub keyspace_misses: u64,
}

/// A watched key: how many WATCHes, and a version bumped at every write.
#[derive(Debug, Clone, Copy)]
struct Watched {
    watchers: u32,
    version: u64,
}

/// The key space, with expiry.
#[derive(Debug, Default)]
pub struct Store {
    entries: KeyMap<Entry>,
    /// Keys with a deadline, by deadline, for active expiry.
    deadlines: BTreeSet<(u64, Vec<u8>)>,
    /// The sum of `deadlines`' deadlines, for INFO's `avg_ttl`.
    deadline_sum_ms: u128,
    watched: BTreeMap<Vec<u8>, Watched>,
    /// While the log is replayed, nothing expires.
    loading: bool,
    /// The running command counts its lookups (see
    /// [`Store::count_lookups`]).
    lookups_counted: bool,
    /// The wall clock of the command running, in Unix milliseconds.
    now_ms: u64,
    /// Keys removed by expiry and not yet logged.
    expired: Vec<Vec<u8>>,
    /// For INFO.
    pub stats: StoreStats,
    /// RANDOMKEY's, SPOP's and SRANDMEMBER's generator: seeded the same
    /// every run, so the simulator replays.
    random: u64,
    /// Keys that blocked clients (BLPOP and friends) wait on; the server's
    /// wait lists say who waits.
    blocked_keys: BTreeSet<Vec<u8>>,
    /// Keys of `blocked_keys` that were created, or given a list value,
    /// since the server last looked, in that order: Redis's `ready_keys`.
    /// After each command the server serves their waiters.
    ready_keys: Vec<Vec<u8>>,
    ready_set: BTreeSet<Vec<u8>>,
}

/// The wall clock in Unix milliseconds (Redis's `mstime()`): the clock of
/// every deadline. Backends: io_uring and epoll read CLOCK_REALTIME; the
/// simulator its node's virtual wall clock.
pub fn realtime_ms<C>(io: &IO<C>) -> u64 {
    io.realtime_ns() / 1_000_000
}

macro_rules! typed_access {
    ($get:ident, $get_mut:ident, $create:ident, $variant:ident, $ty:ty) => {
        /// The value of `key` if it holds this type.
        pub fn $get(&mut self, key: &[u8]) -> Result<Option<&$ty>, WrongType> {
            match self.get(key) {
                None => Ok(None),
                Some(Entry {
                    value: Value::$variant(value),
                    ..
                }) => Ok(Some(value)),
                Some(_) => Err(WrongType),
            }
        }

        /// The value of `key` if it holds this type, to change.
        pub fn $get_mut(&mut self, key: &[u8]) -> Result<Option<&mut $ty>, WrongType> {
            match self.get_mut(key) {
                None => Ok(None),
                Some(Entry {
                    value: Value::$variant(value),
                    ..
                }) => Ok(Some(value)),
                Some(_) => Err(WrongType),
            }
        }

        /// The value of `key`, created empty if missing, to change. The
        /// caller adds to it at once: an empty collection must not stay.
        pub fn $create(&mut self, key: &[u8]) -> Result<&mut $ty, WrongType> {
            if self.get(key).is_none() {
                self.insert(key, Value::$variant(Default::default()), 0);
            }
            match self.get_mut(key) {
                Some(Entry {
                    value: Value::$variant(value),
                    ..
                }) => Ok(value),
                Some(_) => Err(WrongType),
                None => unreachable!("just inserted"),
            }
        }
    };
}

/// Counts one lookup in `keyspace_hits` or `keyspace_misses`, if the
/// running command counts them (see [`Store::count_lookups`]). A function
/// of the two fields, not a method, so that [`Store::get`] can count while
/// it holds the entry it found.
fn count_lookup(stats: &mut StoreStats, counted: bool, found: bool) {
    if !counted {
        return;
    }
    if found {
        stats.keyspace_hits += 1;
    } else {
        stats.keyspace_misses += 1;
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store {
            random: 0x9E37_79B9_7F4A_7C15,
            ..Store::default()
        }
    }

    /// Sets the wall clock that expiry compares with, before each command.
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Replay mode: while on, nothing expires.
    pub fn set_loading(&mut self, loading: bool) {
        self.loading = loading;
    }

    /// Whether the log is being replayed.
    pub fn loading(&self) -> bool {
        self.loading
    }

    fn is_expired(&self, entry: &Entry) -> bool {
        // As in Redis, a key lives through its deadline's own millisecond.
        !self.loading && entry.deadline_ms != 0 && entry.deadline_ms < self.now_ms
    }

    /// Removes `key` if it has expired; true if it did.
    fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        let expired = self
            .entries
            .get(key)
            .is_some_and(|entry| self.is_expired(entry));
        if expired {
            self.remove(key);
            self.expired.push(key.to_vec());
            self.stats.expired_keys += 1;
        }
        expired
    }

    /// The entry of `key`, for reading (an expired key is removed first).
    pub fn get(&mut self, key: &[u8]) -> Option<&Entry> {
        self.expire_if_needed(key);
        let entry = self.entries.get(key);
        count_lookup(&mut self.stats, self.lookups_counted, entry.is_some());
        entry
    }

    /// Whether the command about to run counts its lookups in INFO's
    /// `keyspace_hits` and `keyspace_misses`: a command that does not
    /// write does, as Redis counts `lookupKeyRead` and not
    /// `lookupKeyWrite`. A write that Redis reads a key of as a read
    /// (GETDEL, GETEX, GETSET, SET with GET, COPY's and ZRANGESTORE's
    /// source, the sources of the set and sorted-set STORE forms) turns
    /// counting on around that lookup.
    pub fn count_lookups(&mut self, counted: bool) {
        self.lookups_counted = counted;
    }

    /// The entry of `key`, to change: its watchers are told.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.expire_if_needed(key);
        if self.entries.contains(key) {
            self.touch(key);
        }
        self.entries.get_mut(key)
    }

    /// The entry of `key` as it is, expired or not (for checkers).
    pub fn peek(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Whether `key` exists (and has not expired); counted as [`Store::get`]
    /// counts (EXISTS is a read in Redis's statistics).
    pub fn contains(&mut self, key: &[u8]) -> bool {
        self.expire_if_needed(key);
        let found = self.entries.contains(key);
        count_lookup(&mut self.stats, self.lookups_counted, found);
        found
    }

    /// Whether `entry` is live at the command's time (KEYS and SCAN skip
    /// expired keys that nothing removed yet).
    pub fn is_live(&self, entry: &Entry) -> bool {
        !self.is_expired(entry)
    }

    /// The number of keys, expired ones not yet removed included (as
    /// Redis's DBSIZE counts them).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The number of keys with a deadline.
    pub fn expires_count(&self) -> usize {
        self.deadlines.len()
    }

    /// INFO's `avg_ttl`: the mean time left of the keys with a deadline,
    /// in milliseconds at `now_ms` (0 when none has one). Redis estimates
    /// it from the keys its expiry cycle samples; this is exact.
    pub fn avg_ttl_ms(&self, now_ms: u64) -> u64 {
        let count = self.deadlines.len() as u128;
        if count == 0 {
            return 0;
        }
        let mean = self.deadline_sum_ms / count;
        u64::try_from(mean.saturating_sub(u128::from(now_ms))).unwrap_or(u64::MAX)
    }

    /// Every key, in cursor order.
    pub fn entries(&self) -> &KeyMap<Entry> {
        &self.entries
    }

    /// Sets `key` to `value` with `deadline_ms` (0: none), replacing any
    /// entry and its deadline.
    pub fn insert(&mut self, key: &[u8], value: Value, deadline_ms: u64) {
        assert!(deadline_ms <= i64::MAX as u64);
        self.touch(key);
        let is_list = matches!(value, Value::List(_));
        let old = self.entries.insert(key, Entry { value, deadline_ms });
        // Redis signals a key at its creation (`dbAdd`, which RENAME and
        // COPY use too): a key with waiters that becomes a list.
        if old.is_none() || is_list {
            self.signal_ready(key);
        }
        let old_deadline_ms = old.map_or(0, |entry| entry.deadline_ms);
        self.move_deadline(key, old_deadline_ms, deadline_ms);
    }

    /// Sets `key` to the string `value`, as SET stores one.
    pub fn set(&mut self, key: &[u8], value: Vec<u8>, deadline_ms: u64) {
        self.set_as(key, value, deadline_ms, StringForm::Encoded);
    }

    /// Sets `key` to the string `value`, held as `form` says.
    pub fn set_as(&mut self, key: &[u8], value: Vec<u8>, deadline_ms: u64, form: StringForm) {
        self.insert(key, Value::String(value, form), deadline_ms);
    }

    /// Changes the deadline of `key`, which exists.
    pub fn set_deadline(&mut self, key: &[u8], deadline_ms: u64) {
        assert!(deadline_ms <= i64::MAX as u64);
        self.touch(key);
        let entry = self.entries.get_mut(key).expect("the key exists");
        let old_deadline_ms = std::mem::replace(&mut entry.deadline_ms, deadline_ms);
        self.move_deadline(key, old_deadline_ms, deadline_ms);
    }

    fn move_deadline(&mut self, key: &[u8], old_deadline_ms: u64, deadline_ms: u64) {
        if old_deadline_ms == deadline_ms {
            return;
        }
        if old_deadline_ms != 0 {
            let removed = self.deadlines.remove(&(old_deadline_ms, key.to_vec()));
            assert!(removed);
            self.deadline_sum_ms -= u128::from(old_deadline_ms);
        }
        if deadline_ms != 0 {
            let inserted = self.deadlines.insert((deadline_ms, key.to_vec()));
            assert!(inserted);
            self.deadline_sum_ms += u128::from(deadline_ms);
        }
    }

    /// Removes `key`, returning its entry.
    pub fn take(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.touch(key);
        if entry.deadline_ms != 0 {
            let removed = self.deadlines.remove(&(entry.deadline_ms, key.to_vec()));
            assert!(removed);
            self.deadline_sum_ms -= u128::from(entry.deadline_ms);
        }
        Some(entry)
    }

    /// Removes `key`; true if it existed.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        self.take(key).is_some()
    }

    /// Removes `key` if it holds an empty collection.
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        let empty = self
            .entries
            .get(key)
            .is_some_and(|entry| entry.value.is_empty_collection());
        if empty {
            self.remove(key);
        }
    }

    /// Removes every key (watchers of existing keys are told, as Redis's
    /// FLUSHALL tells them).
    pub fn clear(&mut self) {
        let watched: Vec<Vec<u8>> = self.watched.keys().cloned().collect();
        for key in watched {
            if self.entries.contains(&key) {
                self.touch(&key);
            }
        }
        self.entries.clear();
        self.deadlines.clear();
        self.deadline_sum_ms = 0;
    }

    /// The keys removed by expiry since the last call, to log as DELs.
    pub fn take_expired(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.expired)
    }

    /// Whether expired keys wait to be logged.
    pub fn has_expired(&self) -> bool {
        !self.expired.is_empty()
    }

    /// Removes at most `keys_max` keys whose deadline has passed, earliest
    /// first; the number removed. Like Redis's active expiry cycle, a pass
    /// is bounded, and the timer calling it runs again soon.
    pub fn active_expire(&mut self, keys_max: usize) -> usize {
        if self.loading {
            return 0;
        }
        let mut removed = 0;
        while removed < keys_max {
            let Some((deadline_ms, key)) = self.deadlines.first() else {
                break;
            };
            if *deadline_ms >= self.now_ms {
                break;
            }
            let key = key.clone();
            let expired = self.expire_if_needed(&key);
            assert!(expired);
            removed += 1;
        }
        removed
    }

    /// The next pseudo-random number (splitmix64).
    pub fn next_random(&mut self) -> u64 {
        splitmix(&mut self.random)
    }

    /// A pseudo-random live key, or `None` if there are none.
    pub fn random_key(&mut self) -> Option<Vec<u8>> {
        // Tries are bounded, as in Redis's dbRandomKey: a key space of
        // mostly expired keys may answer with one of them.
        for _ in 0..100 {
            let cursor = self.next_random();
            let (key, entry) = self.entries.at_or_after(cursor)?;
            if self.is_live(entry) {
                return Some(key.bytes().to_vec());
            }
            let key = key.bytes().to_vec();
            self.expire_if_needed(&key);
        }
        let (key, _) = self.entries.at_or_after(self.random)?;
        Some(key.bytes().to_vec())
    }

    /// A client now blocks on `key` (the first of its waiters).
    pub fn add_blocked_key(&mut self, key: &[u8]) {
        self.blocked_keys.insert(key.to_vec());
    }

    /// No client blocks on `key` any more.
    pub fn remove_blocked_key(&mut self, key: &[u8]) {
        self.blocked_keys.remove(key);
    }

    /// Whether keys with waiters were created since [`take_ready_keys`].
    ///
    /// [`take_ready_keys`]: Store::take_ready_keys
    pub fn has_ready_keys(&self) -> bool {
        !self.ready_keys.is_empty()
    }

    /// The keys with waiters created since the last call, in the order
    /// they were created; each at most once.
    pub fn take_ready_keys(&mut self) -> Vec<Vec<u8>> {
        self.ready_set.clear();
        std::mem::take(&mut self.ready_keys)
    }

    fn signal_ready(&mut self, key: &[u8]) {
        if self.blocked_keys.is_empty() || self.loading || !self.blocked_keys.contains(key) {
            return;
        }
        if self.ready_set.insert(key.to_vec()) {
            self.ready_keys.push(key.to_vec());
        }
    }

    /// Tells the watchers of `key` that it changed.
    fn touch(&mut self, key: &[u8]) {
        if self.watched.is_empty() {
            return;
        }
        if let Some(watched) = self.watched.get_mut(key) {
            watched.version += 1;
        }
    }

    /// WATCH: one more watcher of `key`; the version to compare at EXEC.
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        let watched = self.watched.entry(key.to_vec()).or_insert(Watched {
            watchers: 0,
            version: 0,
        });
        watched.watchers += 1;
        watched.version
    }

    /// One watcher of `key` fewer.
    pub fn unwatch(&mut self, key: &[u8]) {
        let watched = self.watched.get_mut(key).expect("a watched key");
        assert!(watched.watchers > 0);
        watched.watchers -= 1;
        if watched.watchers == 0 {
            self.watched.remove(key);
        }
    }

    /// The version of watched `key`.
    pub fn watch_version(&self, key: &[u8]) -> u64 {
        self.watched.get(key).expect("a watched key").version
    }

    typed_access!(get_hash, get_hash_mut, hash_or_create, Hash, Hash);
    typed_access!(get_list, get_list_mut, list_or_create, List, List);
    typed_access!(get_set, get_set_mut, set_or_create, Set, Set);
    typed_access!(get_zset, get_zset_mut, zset_or_create, ZSet, ZSet);

    /// The string at `key`.
    pub fn get_string(&mut self, key: &[u8]) -> Result<Option<&Vec<u8>>, WrongType> {
        match self.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::String(value, _),
                ..
            }) => Ok(Some(value)),
            Some(_) => Err(WrongType),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether `score` is within the bounds, as Redis's `zslValueGteMin`
    /// and `zslValueLteMax` read them: the model `range_by_score` is
    /// checked against.
    fn within(score: f64, min: Bound<f64>, max: Bound<f64>) -> bool {
        let above = match min {
            Bound::Included(min) => score >= min,
            Bound::Excluded(min) => score > min,
            Bound::Unbounded => true,
        };
        let below = match max {
            Bound::Included(max) => score <= max,
            Bound::Excluded(max) => score < max,
            Bound::Unbounded => true,
        };
        above && below
    }

    /// Scores that meet at the edges: equal scores, both zeros, the
    /// infinities, neighbouring floats.
    fn score() -> impl Strategy<Value = f64> {
        prop::sample::select(vec![
            f64::NEG_INFINITY,
            -2.5,
            -1.0,
            -0.0,
            0.0,
            f64::from_bits(1),
            1.0,
            next_up(1.0),
            2.0,
            f64::MAX,
            f64::INFINITY,
        ])
    }

    fn bound() -> impl Strategy<Value = Bound<f64>> {
        prop_oneof![
            score().prop_map(Bound::Included),
            score().prop_map(Bound::Excluded),
            Just(Bound::Unbounded),
        ]
    }

    #[test]
    fn next_up_is_the_next_float() {
        assert_eq!(next_up(1.0), 1.0 + f64::EPSILON);
        assert_eq!(next_up(-0.0), f64::from_bits(1));
        assert_eq!(next_up(0.0), f64::from_bits(1));
        assert_eq!(next_up(-f64::from_bits(1)), 0.0);
        assert_eq!(next_up(f64::NEG_INFINITY), f64::MIN);
        assert_eq!(next_up(f64::MAX), f64::INFINITY);
        assert_eq!(next_up(f64::INFINITY), f64::INFINITY);
        assert_eq!(next_up(-1.0), -1.0 + f64::EPSILON / 2.0);
    }

    proptest! {
        /// `range_by_score` gives exactly the members a filter of the
        /// whole set by score keeps, in the same order, forwards and back.
        #[test]
        fn range_by_score_is_the_filter_of_the_whole_set(
            members in prop::collection::vec((0u8..24, score()), 0..40),
            min in bound(),
            max in bound(),
        ) {
            let mut zset = ZSet::default();
            for (member, score) in &members {
                zset.insert(&[b'm', *member], *score);
            }
            let filtered: Vec<(Vec<u8>, f64)> = zset
                .iter()
                .filter(|(_, score)| within(*score, min, max))
                .map(|(member, score)| (member.to_vec(), score))
                .collect();
            let ranged: Vec<(Vec<u8>, f64)> = zset
                .range_by_score(min, max)
                .map(|(member, score)| (member.to_vec(), score))
                .collect();
            prop_assert_eq!(&ranged, &filtered);
            let mut backwards: Vec<(Vec<u8>, f64)> = zset
                .range_by_score(min, max)
                .rev()
                .map(|(member, score)| (member.to_vec(), score))
                .collect();
            backwards.reverse();
            prop_assert_eq!(&backwards, &filtered);
        }
    }
}
