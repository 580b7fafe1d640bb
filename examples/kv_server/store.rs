//! The key space: string keys to string values, each with an optional
//! expiry deadline on the wall clock, in Unix milliseconds, as Redis keeps
//! it: the deadline is logged, and must mean the same after a restart or a
//! reboot, which the loop's monotonic clock ([`ringio::IO::now_ns`]) does
//! not.
//!
//! Ordered maps only, so nothing here depends on a hash seed: the same
//! commands at the same virtual times give the same state, which the
//! simulator relies on (it virtualizes the wall clock too).

use std::collections::{BTreeMap, BTreeSet};

use ringio::IO;

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value's bytes.
    pub value: Vec<u8>,
    /// When the key expires, in Unix milliseconds on the wall clock; 0
    /// means never. At most `i64::MAX`, as in Redis.
    pub deadline_ms: u64,
}

/// The key space, with expiry.
#[derive(Debug, Default)]
pub struct Store {
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Keys with a deadline, by deadline: expired keys are removed from the
    /// front, so no command ever sees one.
    deadlines: BTreeSet<(u64, Vec<u8>)>,
}

/// The wall clock in Unix milliseconds (Redis's `mstime()`): the clock of
/// every deadline. Backends: io_uring and epoll read CLOCK_REALTIME; the
/// simulator its node's virtual wall clock.
pub fn realtime_ms<C>(io: &IO<C>) -> u64 {
    io.realtime_ns() / 1_000_000
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Removes every key whose deadline has passed at `realtime_ms`. As in
    /// Redis, a key lives through its deadline's own millisecond and is
    /// gone after it. Called before each command, so an expired key is
    /// never seen; the cost is the number of keys removed.
    pub fn expire(&mut self, realtime_ms: u64) {
        while let Some(deadline_ms) = self.deadlines.first().map(|(deadline_ms, _)| *deadline_ms) {
            if deadline_ms >= realtime_ms {
                break;
            }
            let (_, key) = self.deadlines.pop_first().expect("first exists");
            let removed = self.entries.remove(&key);
            assert!(removed.is_some_and(|entry| entry.deadline_ms == deadline_ms));
        }
    }

    /// The entry for `key`, if it exists.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Whether `key` exists.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.entries.contains_key(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sets `key` to `value` with `deadline_ms` (0: none), replacing any
    /// entry and its deadline.
    pub fn set(&mut self, key: &[u8], value: Vec<u8>, deadline_ms: u64) {
        assert!(deadline_ms <= i64::MAX as u64);
        self.remove(key);
        if deadline_ms != 0 {
            self.deadlines.insert((deadline_ms, key.to_vec()));
        }
        self.entries
            .insert(key.to_vec(), Entry { value, deadline_ms });
    }

    /// Removes `key`; true if it existed.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.entries.remove(key) else {
            return false;
        };
        if entry.deadline_ms != 0 {
            let removed = self.deadlines.remove(&(entry.deadline_ms, key.to_vec()));
            assert!(removed);
        }
        true
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.deadlines.clear();
    }
}
