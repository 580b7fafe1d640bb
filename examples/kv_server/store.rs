//! The key space: string keys to string values, each with an optional
//! expiry deadline on the loop's clock ([`ringio::IO::now_ns`]).
//!
//! Ordered maps only, so nothing here depends on a hash seed: the same
//! commands at the same virtual times give the same state, which the
//! simulator relies on.

use std::collections::{BTreeMap, BTreeSet};

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value's bytes.
    pub value: Vec<u8>,
    /// When the key expires, in ns on the loop's clock; 0 means never.
    pub deadline_ns: u64,
}

/// The key space, with expiry.
#[derive(Debug, Default)]
pub struct Store {
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Keys with a deadline, by deadline: expired keys are removed from the
    /// front, so no command ever sees one.
    deadlines: BTreeSet<(u64, Vec<u8>)>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Removes every key whose deadline is at or before `now_ns`. Called
    /// before each command, so an expired key is never seen; the cost is the
    /// number of keys removed.
    pub fn expire(&mut self, now_ns: u64) {
        while let Some(deadline_ns) = self.deadlines.first().map(|(deadline_ns, _)| *deadline_ns) {
            if deadline_ns > now_ns {
                break;
            }
            let (_, key) = self.deadlines.pop_first().expect("first exists");
            let removed = self.entries.remove(&key);
            assert!(removed.is_some_and(|entry| entry.deadline_ns == deadline_ns));
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

    /// Sets `key` to `value` with `deadline_ns` (0: none), replacing any
    /// entry and its deadline.
    pub fn set(&mut self, key: &[u8], value: Vec<u8>, deadline_ns: u64) {
        self.remove(key);
        if deadline_ns != 0 {
            self.deadlines.insert((deadline_ns, key.to_vec()));
        }
        self.entries
            .insert(key.to_vec(), Entry { value, deadline_ns });
    }

    /// Removes `key`; true if it existed.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.entries.remove(key) else {
            return false;
        };
        if entry.deadline_ns != 0 {
            let removed = self.deadlines.remove(&(entry.deadline_ns, key.to_vec()));
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
