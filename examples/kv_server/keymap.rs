//! An ordered map from byte strings, ordered by a fixed 64-bit hash of the
//! key first and the key's bytes second: the key space and every hash, set
//! and sorted set's members live in one.
//!
//! Why this order: a SCAN cursor is a 64-bit number, and here it is simply
//! the hash of the next key to visit. The order of two keys never depends
//! on what else is in the map, so there is no rehashing to survive: a scan
//! returns every key that is present from its start to its end exactly
//! once, and at most once a key that comes or goes meanwhile (Redis's
//! guarantee, without its duplicates). Keys with equal hashes are always
//! returned in the same batch, so a cursor never splits them.
//!
//! The hash is SipHash-1-3 with fixed keys (`DefaultHasher::new()`): the
//! same on every run, so nothing depends on a random seed and the
//! simulator replays exactly.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::btree_map::{self, BTreeMap};
use std::hash::Hasher;
use std::ops::Bound;

/// The fixed hash of `bytes`.
pub fn key_hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// A stored key: its hash, then its bytes.
#[derive(Debug, Clone)]
pub struct HashedKey {
    hash: u64,
    bytes: Vec<u8>,
}

impl HashedKey {
    /// The key's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// What the map compares: (hash, bytes). A trait object, so that a lookup
/// borrows the probe's bytes instead of allocating a key.
trait Keyed {
    fn parts(&self) -> (u64, &[u8]);
}

impl Keyed for HashedKey {
    fn parts(&self) -> (u64, &[u8]) {
        (self.hash, &self.bytes)
    }
}

struct Probe<'a>(u64, &'a [u8]);

impl Keyed for Probe<'_> {
    fn parts(&self) -> (u64, &[u8]) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn Keyed + 'a> for HashedKey {
    fn borrow(&self) -> &(dyn Keyed + 'a) {
        self
    }
}

impl PartialEq for dyn Keyed + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn Keyed + '_ {}

impl PartialOrd for dyn Keyed + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn Keyed + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl PartialEq for HashedKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for HashedKey {}

impl PartialOrd for HashedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HashedKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts().cmp(&other.parts())
    }
}

/// The map.
#[derive(Debug, Clone)]
pub struct KeyMap<V> {
    map: BTreeMap<HashedKey, V>,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap {
            map: BTreeMap::new(),
        }
    }
}

impl<V> KeyMap<V> {
    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let probe = Probe(key_hash(key), key);
        self.map.get(&probe as &dyn Keyed)
    }

    /// The value of `key`, to change.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let probe = Probe(key_hash(key), key);
        self.map.get_mut(&probe as &dyn Keyed)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; the old value, if there was one.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(key) {
            return Some(std::mem::replace(slot, value));
        }
        let stored = HashedKey {
            hash: key_hash(key),
            bytes: key.to_vec(),
        };
        self.map.insert(stored, value)
    }

    /// Removes `key`; its value, if it was present.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let probe = Probe(key_hash(key), key);
        self.map.remove(&probe as &dyn Keyed)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Every key and value, in cursor order.
    pub fn iter(&self) -> btree_map::Iter<'_, HashedKey, V> {
        self.map.iter()
    }

    /// Keys and values from cursor `cursor` on (every key whose hash is at
    /// least `cursor`).
    pub fn starting_at(&self, cursor: u64) -> btree_map::Range<'_, HashedKey, V> {
        let probe = Probe(cursor, &[]);
        let start: Bound<&dyn Keyed> = Bound::Included(&probe);
        self.map.range::<dyn Keyed, _>((start, Bound::Unbounded))
    }

    /// Up to `count` distinct entries from cursor `cursor` on, wrapping
    /// around once: a pseudo-random sample when `cursor` is random
    /// (SRANDMEMBER, HRANDFIELD and ZRANDMEMBER with a positive count).
    pub fn distinct_from(
        &self,
        cursor: u64,
        count: usize,
    ) -> impl Iterator<Item = (&HashedKey, &V)> + '_ {
        // The tail from the cursor, then the whole map from its start: the
        // first `len` of that chain are each entry once. O(count).
        self.starting_at(cursor)
            .chain(self.map.iter())
            .take(count.min(self.map.len()))
    }

    /// The first key at or after cursor `cursor`, wrapping around: a
    /// pseudo-random pick when `cursor` is random (RANDOMKEY, SPOP,
    /// SRANDMEMBER). `None` for an empty map.
    pub fn at_or_after(&self, cursor: u64) -> Option<(&HashedKey, &V)> {
        self.starting_at(cursor)
            .next()
            .or_else(|| self.map.iter().next())
    }
}

/// One SCAN step over `map` from `cursor`: visits about `count` keys (more
/// to finish a run of equal hashes), handing each to `visit`. Returns the
/// next cursor, 0 once the scan is done.
pub fn scan<V>(
    map: &KeyMap<V>,
    cursor: u64,
    count: usize,
    mut visit: impl FnMut(&HashedKey, &V),
) -> u64 {
    assert!(count > 0);
    let mut last_hash = None;
    for (visited, (key, value)) in map.starting_at(cursor).enumerate() {
        if visited >= count && last_hash != Some(key.hash) {
            // A continuation cursor is never 0: it is past a visited key.
            assert!(key.hash > 0);
            return key.hash;
        }
        visit(key, value);
        last_hash = Some(key.hash);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_returns_every_key_present_throughout_exactly_once() {
        let mut map = KeyMap::default();
        for index in 0..1000 {
            map.insert(format!("k{index}").as_bytes(), index);
        }
        let mut seen = std::collections::BTreeMap::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = scan(&map, cursor, 7, |key, _| {
                *seen.entry(key.bytes().to_vec()).or_insert(0) += 1;
            });
            // Churn between steps: insert new keys, remove others.
            map.insert(format!("new{round}").as_bytes(), 0);
            map.remove(format!("k{}", 500 + round).as_bytes());
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for index in 0..500 {
            assert_eq!(seen.get(format!("k{index}").as_bytes()), Some(&1));
        }
        assert!(seen.values().all(|&count| count == 1));
    }

    #[test]
    fn lookups_borrow() {
        let mut map = KeyMap::default();
        assert!(map.insert(b"a", 1).is_none());
        assert_eq!(map.insert(b"a", 2), Some(1));
        assert_eq!(map.get(b"a"), Some(&2));
        assert!(map.get(b"b").is_none());
        assert_eq!(map.remove(b"a"), Some(2));
        assert!(map.is_empty());
    }
}
