//! User-space timers: a timing wheel, with only the earliest deadline handed
//! to the kernel as the wait timeout of `io_uring_enter`, never one kernel
//! timeout per timer (one TIMEOUT op per timer spent seconds in the kernel
//! scheduling 1,000,000 timers on this machine; see docs/benchmarks.md).
//!
//! Why a wheel and not a binary heap: a heap of a million timers is tens of
//! megabytes, and every pop sifts through ~20 levels of it, each a cache miss.
//! Measured here, popping 1,000,000 random deadlines took 584 ms from a
//! `BinaryHeap`, versus 30 ms from granule buckets. The wheel keeps each
//! granule's timers in a plain `Vec` (sequential appends), and only the
//! current granule's timers in a small heap, which stays in cache.
//!
//! Layout, with `cursor` the granule of the loop's clock as of the last advance:
//! - `ready`: the timers of granules `<= cursor` that came through the wheel,
//!   ascending (each bucket is sorted as it comes due, and later buckets only
//!   hold later granules, so appending keeps the order);
//! - `late`: a heap of timers inserted with a granule already `<= cursor`
//!   (a deadline in the past or in the current granule);
//! - `wheel.buckets[g % BUCKETS]`: the timers of granule `g`, for
//!   `cursor < g < cursor + BUCKETS`;
//! - `far`: a heap of the timers beyond the wheel.
//!
//! So every timer in `ready` or `late` precedes every timer in a bucket, which
//! precede every timer in `far`. Ties are broken by a submission sequence, so equal
//! deadlines fire in submission order.
//!
//! Cancelled timers are deleted lazily: an entry stays until it surfaces, or
//! until dead entries outnumber live ones (after a cancel or a pop), when
//! everything is compacted. That keeps cancel O(1) amortized and memory
//! bounded by twice the live count. It also drops every entry once no timer
//! is live, which matters: the loop stops calling `pop_expired` then
//! (`fire_timers` in io.rs returns early on `len() == 0`), so a dead entry
//! left behind would never surface, and its deadline would keep waking the
//! loop, with a zero timeout once it had passed.
//!
//! Finding the next deadline costs a few word operations whatever the number
//! of timers, because the loop asks on every pass: a bitmap marks the
//! non-empty buckets, and each bucket keeps the earliest deadline pushed into
//! it. That minimum may belong to a dead entry, so it is a lower bound: the
//! loop may wake early, once, and the `pop_expired` of that pass drains the
//! bucket, so that the next answer is later (never a busy loop). The fronts
//! of `ready`, `late` and `far` are cleared of dead entries before they are
//! read, so their deadlines are exact.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::completion::CompletionId;

/// A granule is 2^20 ns, about 1.05 ms.
const GRANULE_SHIFT: u32 = 20;
/// Buckets in the wheel: a window of about 1.07 s.
const BUCKETS: u64 = 1024;
/// Words in the bitmap of non-empty buckets.
const WORDS: usize = (BUCKETS / 64) as usize;
const _: () = assert!(BUCKETS % 64 == 0);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Entry {
    deadline_ns: u64,
    /// Breaks ties in submission order.
    sequence: u64,
    id: CompletionId,
}

impl Entry {
    fn granule(&self) -> u64 {
        self.deadline_ns >> GRANULE_SHIFT
    }
}

/// The timers. They do not own their slots; `is_live` tells whether an
/// entry's slot still holds that timer.
#[derive(Debug)]
pub(crate) struct Timers {
    ready: VecDeque<Entry>,
    late: BinaryHeap<Reverse<Entry>>,
    wheel: Wheel,
    far: BinaryHeap<Reverse<Entry>>,
    cursor: u64,
    /// Entries anywhere, live or dead.
    entries: usize,
    dead: usize,
    sequence: u64,
}

impl Timers {
    pub(crate) fn new(now_ns: u64) -> Timers {
        Timers {
            ready: VecDeque::new(),
            late: BinaryHeap::new(),
            wheel: Wheel::new(),
            far: BinaryHeap::new(),
            cursor: now_ns >> GRANULE_SHIFT,
            entries: 0,
            dead: 0,
            sequence: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline_ns: u64, id: CompletionId) {
        self.sequence += 1;
        self.entries += 1;
        self.place(Entry {
            deadline_ns,
            sequence: self.sequence,
            id,
        });
    }

    fn place(&mut self, entry: Entry) {
        let granule = entry.granule();
        if granule <= self.cursor {
            self.late.push(Reverse(entry));
        } else if granule < self.cursor.saturating_add(BUCKETS) {
            self.wheel.push(self.cursor, entry);
        } else {
            self.far.push(Reverse(entry));
        }
    }

    /// Moves every timer whose granule has come (as of `now_ns`) into `ready`,
    /// and timers that came within the wheel's window out of `far`.
    fn advance(&mut self, now_ns: u64) {
        let target = now_ns >> GRANULE_SHIFT;
        if target <= self.cursor {
            return;
        }
        // Only non-empty buckets are visited, in granule order, so that a
        // long idle gap costs nothing per empty granule.
        while let Some(granule) = self.wheel.first_granule_after(self.cursor) {
            if granule > target {
                break;
            }
            self.wheel.take(granule, &mut self.ready);
        }
        self.cursor = target;
        while let Some(Reverse(entry)) = self.far.peek() {
            if entry.granule() >= self.cursor.saturating_add(BUCKETS) {
                break;
            }
            let Reverse(entry) = self.far.pop().expect("peeked above");
            self.place(entry);
        }
    }

    /// Records that one entry is now dead, and compacts when the dead
    /// outnumber the live. Call it once per timer cancelled while armed,
    /// after `is_live` has started to report it dead.
    pub(crate) fn cancelled(&mut self, is_live: impl Fn(CompletionId) -> bool) {
        self.dead += 1;
        assert!(self.dead <= self.entries);
        self.compact_if_mostly_dead(&is_live);
    }

    /// Compacts when the dead outnumber the live, so that `dead * 2 <=
    /// entries` holds between calls: with no timer live (`dead == entries`),
    /// that means no entry at all, which keeps `next_deadline_ns` at `None`.
    /// Each compaction removes more entries than it keeps, so its cost is
    /// O(1) amortized per dead entry.
    fn compact_if_mostly_dead(&mut self, is_live: &impl Fn(CompletionId) -> bool) {
        if self.dead * 2 > self.entries {
            self.compact(is_live);
        }
        assert!(self.dead * 2 <= self.entries);
    }

    /// Drops every dead entry.
    fn compact(&mut self, is_live: &impl Fn(CompletionId) -> bool) {
        let live = self.len();
        self.ready.retain(|entry| is_live(entry.id));
        self.late.retain(|Reverse(entry)| is_live(entry.id));
        self.far.retain(|Reverse(entry)| is_live(entry.id));
        self.wheel.retain(is_live);
        self.entries = self.ready.len() + self.late.len() + self.wheel.len + self.far.len();
        self.dead = 0;
        // Every entry `is_live` calls dead was counted by `cancelled`: else
        // `len()` would undercount, and could reach 0 with timers live.
        assert_eq!(self.entries, live);
    }

    /// Drops dead entries from the fronts of `ready` and `late`, then says
    /// which holds the earliest timer due: `Some(true)` for `ready`.
    fn earliest_due(&mut self, is_live: &impl Fn(CompletionId) -> bool) -> Option<bool> {
        while self.ready.front().is_some_and(|entry| !is_live(entry.id)) {
            self.ready.pop_front();
            self.forget_dead();
        }
        while self
            .late
            .peek()
            .is_some_and(|Reverse(entry)| !is_live(entry.id))
        {
            self.late.pop();
            self.forget_dead();
        }
        match (self.ready.front(), self.late.peek()) {
            (Some(ready), Some(Reverse(late))) => Some(ready < late),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }

    /// The earliest entry of `far` after dropping its dead front entries.
    fn earliest_far(&mut self, is_live: &impl Fn(CompletionId) -> bool) -> Option<&Entry> {
        while self
            .far
            .peek()
            .is_some_and(|Reverse(entry)| !is_live(entry.id))
        {
            self.far.pop();
            self.forget_dead();
        }
        self.far.peek().map(|Reverse(entry)| entry)
    }

    fn forget_dead(&mut self) {
        assert!(self.dead > 0);
        self.entries -= 1;
        self.dead -= 1;
    }

    fn peek_due(&self, from_ready: bool) -> &Entry {
        if from_ready {
            self.ready.front().expect("earliest_due said so")
        } else {
            &self.late.peek().expect("earliest_due said so").0
        }
    }

    /// The earliest live deadline, or a lower bound of it: `None` when no
    /// timer is live. A bound below the true deadline comes from a dead
    /// entry in a bucket; once it has passed, the next `pop_expired` drains
    /// that bucket, so the answer after it is later. So after
    /// `pop_expired(now_ns)` has returned `None`, the answer is `None` or
    /// later than `now_ns`. O(1) amortized, whatever the number of timers.
    pub(crate) fn next_deadline_ns(
        &mut self,
        is_live: impl Fn(CompletionId) -> bool,
    ) -> Option<u64> {
        if self.entries == self.dead {
            // No timer live. Compaction dropped every dead entry when the last live timer
            // went (`dead * 2 <= entries`).
            assert_eq!(self.entries, 0);
            return None;
        }
        if let Some(from_ready) = self.earliest_due(&is_live) {
            return Some(self.peek_due(from_ready).deadline_ns);
        }
        if let Some(granule) = self.wheel.first_granule_after(self.cursor) {
            let deadline_ns = self.wheel.deadline_ns_min(granule);
            assert_eq!(deadline_ns >> GRANULE_SHIFT, granule);
            return Some(deadline_ns);
        }
        self.earliest_far(&is_live).map(|entry| entry.deadline_ns)
    }

    /// Pops the earliest live timer whose deadline is at or before `now_ns`.
    pub(crate) fn pop_expired(
        &mut self,
        now_ns: u64,
        is_live: impl Fn(CompletionId) -> bool,
    ) -> Option<CompletionId> {
        self.advance(now_ns);
        let from_ready = self.earliest_due(&is_live)?;
        if self.peek_due(from_ready).deadline_ns > now_ns {
            return None;
        }
        let entry = if from_ready {
            self.ready.pop_front()
        } else {
            self.late.pop().map(|Reverse(entry)| entry)
        }
        .expect("earliest_due said so");
        assert!(is_live(entry.id));
        self.entries -= 1;
        self.compact_if_mostly_dead(&is_live);
        Some(entry.id)
    }

    /// Live timers.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.entries - self.dead
    }

    /// Whether no timer is live: no entry is left then, since the dead
    /// never outnumber the live between calls (`compact_if_mostly_dead`),
    /// so one field says it, for the loop's checks on every pass.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        debug_assert_eq!(self.entries == 0, self.len() == 0);
        self.entries == 0
    }
}

/// The buckets of the wheel, for granules `cursor < g < cursor + BUCKETS`:
/// granule `g` lives in `buckets[g % BUCKETS]`, so each bucket holds one
/// granule at a time, and the cursor's own bucket is always empty.
#[derive(Debug)]
struct Wheel {
    buckets: Vec<Bucket>,
    /// Bit `i % 64` of word `i / 64` is set when `buckets[i]` is non-empty.
    occupied: [u64; WORDS],
    /// Entries in all buckets, live or dead.
    len: usize,
}

#[derive(Debug)]
struct Bucket {
    entries: Vec<Entry>,
    /// The earliest deadline pushed since the bucket was last emptied (dead
    /// entries included, so a lower bound for the live ones); `u64::MAX`
    /// when empty.
    deadline_ns_min: u64,
}

impl Wheel {
    fn new() -> Wheel {
        Wheel {
            buckets: (0..BUCKETS)
                .map(|_| Bucket {
                    entries: Vec::new(),
                    deadline_ns_min: u64::MAX,
                })
                .collect(),
            occupied: [0; WORDS],
            len: 0,
        }
    }

    fn push(&mut self, cursor: u64, entry: Entry) {
        let granule = entry.granule();
        assert!(granule > cursor);
        assert!(granule < cursor + BUCKETS);
        let index = (granule % BUCKETS) as usize;
        let bucket = &mut self.buckets[index];
        assert!(bucket
            .entries
            .first()
            .map_or(true, |first| first.granule() == granule));
        bucket.entries.push(entry);
        bucket.deadline_ns_min = bucket.deadline_ns_min.min(entry.deadline_ns);
        self.occupied[index / 64] |= 1 << (index % 64);
        self.len += 1;
    }

    /// The earliest granule with a non-empty bucket, for a wheel whose
    /// window starts after `cursor`.
    fn first_granule_after(&self, cursor: u64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let index = self.first_occupied_from(((cursor + 1) % BUCKETS) as usize);
        let offset = (index as u64 + BUCKETS - cursor % BUCKETS) % BUCKETS;
        // The cursor's own bucket is empty, so no offset is 0.
        assert!(offset > 0);
        Some(cursor + offset)
    }

    /// The first non-empty bucket at or after `start`, wrapping around.
    fn first_occupied_from(&self, start: usize) -> usize {
        let start_word = start / 64;
        let head = self.occupied[start_word] & (u64::MAX << (start % 64));
        if head != 0 {
            return start_word * 64 + head.trailing_zeros() as usize;
        }
        // The last step comes back to `start_word`, for its bits below
        // `start`: those above were zero.
        for step in 1..=WORDS {
            let word = (start_word + step) % WORDS;
            if self.occupied[word] != 0 {
                return word * 64 + self.occupied[word].trailing_zeros() as usize;
            }
        }
        unreachable!("{} entries in the wheel, yet no bucket is marked", self.len)
    }

    fn deadline_ns_min(&self, granule: u64) -> u64 {
        self.buckets[(granule % BUCKETS) as usize].deadline_ns_min
    }

    /// Empties granule `granule`'s bucket onto `ready`, sorted.
    fn take(&mut self, granule: u64, ready: &mut VecDeque<Entry>) {
        let index = (granule % BUCKETS) as usize;
        let bucket = &mut self.buckets[index];
        assert!(!bucket.entries.is_empty());
        assert_eq!(bucket.entries[0].granule(), granule);
        bucket.entries.sort_unstable();
        self.len -= bucket.entries.len();
        ready.extend(bucket.entries.drain(..));
        self.mark_empty(index);
    }

    fn mark_empty(&mut self, index: usize) {
        self.buckets[index].deadline_ns_min = u64::MAX;
        self.occupied[index / 64] &= !(1 << (index % 64));
    }

    /// Drops dead entries, and recomputes each bucket's minimum from the
    /// live ones, which makes it exact again.
    fn retain(&mut self, is_live: &impl Fn(CompletionId) -> bool) {
        for word in 0..WORDS {
            let mut bits = self.occupied[word];
            while bits != 0 {
                let index = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let bucket = &mut self.buckets[index];
                self.len -= bucket.entries.len();
                bucket.entries.retain(|entry| is_live(entry.id));
                self.len += bucket.entries.len();
                match bucket.entries.iter().map(|entry| entry.deadline_ns).min() {
                    Some(deadline_ns) => bucket.deadline_ns_min = deadline_ns,
                    None => self.mark_empty(index),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GRANULE_NS: u64 = 1 << GRANULE_SHIFT;

    fn id(slot: u32) -> CompletionId {
        CompletionId {
            slot,
            io: 0,
            generation: 0,
        }
    }

    /// Drains every timer due by `now_ns`, in firing order.
    fn drain(timers: &mut Timers, now_ns: u64, dead: &[u32]) -> Vec<u32> {
        let is_live = |id: CompletionId| !dead.contains(&id.slot);
        std::iter::from_fn(|| timers.pop_expired(now_ns, is_live).map(|id| id.slot)).collect()
    }

    /// Checks the layout the module documentation describes, and the counts.
    fn check_invariants(timers: &Timers) {
        let cursor = timers.cursor;
        assert!(timers.ready.iter().all(|entry| entry.granule() <= cursor));
        assert!(timers
            .ready
            .iter()
            .zip(timers.ready.iter().skip(1))
            .all(|(a, b)| a < b));
        assert!(timers
            .late
            .iter()
            .all(|Reverse(entry)| entry.granule() <= cursor));
        assert!(timers
            .far
            .iter()
            .all(|Reverse(entry)| entry.granule() >= cursor + BUCKETS));
        let mut bucketed = 0;
        for (index, bucket) in timers.wheel.buckets.iter().enumerate() {
            let marked = timers.wheel.occupied[index / 64] & (1 << (index % 64)) != 0;
            assert_eq!(marked, !bucket.entries.is_empty(), "bucket {index}");
            bucketed += bucket.entries.len();
            let Some(first) = bucket.entries.first() else {
                assert_eq!(bucket.deadline_ns_min, u64::MAX);
                continue;
            };
            let granule = first.granule();
            assert_eq!(granule % BUCKETS, index as u64);
            assert!(granule > cursor && granule < cursor + BUCKETS);
            assert!(bucket
                .entries
                .iter()
                .all(|entry| entry.granule() == granule));
            let deadline_ns_min = bucket.entries.iter().map(|entry| entry.deadline_ns).min();
            assert!(bucket.deadline_ns_min <= deadline_ns_min.unwrap());
            assert_eq!(bucket.deadline_ns_min >> GRANULE_SHIFT, granule);
        }
        assert_eq!(bucketed, timers.wheel.len);
        let stored = timers.ready.len() + timers.late.len() + bucketed + timers.far.len();
        assert_eq!(stored, timers.entries);
        assert!(timers.dead * 2 <= timers.entries);
        if timers.is_empty() {
            assert_eq!(timers.entries, 0, "dead entries left with no timer live");
        }
    }

    /// Which timers a cancellation pattern picks: none, all, or every k-th.
    fn picked(pattern: usize, slot: usize) -> bool {
        match pattern {
            0 => false,
            1 => true,
            every => slot % every == 0,
        }
    }

    proptest! {
        /// Against a model (a sorted list): timers fire in (deadline, submission)
        /// order, never before their deadline, exactly once, except the cancelled.
        /// Some are cancelled before time moves, and more after the first
        /// step, when the wheel has moved some into `ready`: so dead entries
        /// sit in every structure (`late` gets the deadlines already past).
        #[test]
        fn fires_like_a_sorted_list(
            start_ns in (1u64 << 23)..(1 << 40),
            delays_ns in prop::collection::vec(prop_oneof![-(1i64 << 22)..(1 << 22), 0i64..(1 << 32), Just(i64::MAX / 2)], 1..200),
            cancel_first in 0usize..7,
            cancel_later in 0usize..7,
            steps_ns in prop::collection::vec(0u64..(1 << 31), 1..20),
        ) {
            let mut timers = Timers::new(start_ns);
            let mut deadlines_ns = Vec::new();
            let mut dead = Vec::new();
            for (slot, &delay_ns) in delays_ns.iter().enumerate() {
                let deadline_ns = start_ns.saturating_add_signed(delay_ns);
                timers.insert(deadline_ns, id(slot as u32));
                deadlines_ns.push(deadline_ns);
            }
            let cancel = |timers: &mut Timers, dead: &mut Vec<u32>, slot: usize| {
                dead.push(slot as u32);
                timers.cancelled(|id| !dead.contains(&id.slot));
            };
            for slot in (0..deadlines_ns.len()).filter(|&slot| picked(cancel_first, slot)) {
                cancel(&mut timers, &mut dead, slot);
            }
            let mut now_ns = start_ns;
            let mut fired = Vec::new();
            for (step, step_ns) in steps_ns.into_iter().enumerate() {
                if step == 1 {
                    for slot in 0..deadlines_ns.len() {
                        let armed = !dead.contains(&(slot as u32)) && !fired.contains(&(slot as u32));
                        if armed && picked(cancel_later, slot + 1) {
                            cancel(&mut timers, &mut dead, slot);
                        }
                    }
                }
                check_invariants(&timers);
                let mut model: Vec<(u64, u32)> = (0..deadlines_ns.len() as u32)
                    .filter(|slot| !dead.contains(slot) && !fired.contains(slot))
                    .map(|slot| (deadlines_ns[slot as usize], slot))
                    .collect();
                model.sort();
                prop_assert_eq!(timers.len(), model.len());
                let next_ns = timers.next_deadline_ns(|id| !dead.contains(&id.slot));
                prop_assert_eq!(next_ns.is_none(), model.is_empty());
                if let (Some(next_ns), Some(&(first_ns, _))) = (next_ns, model.first()) {
                    prop_assert!(next_ns <= first_ns);
                }
                now_ns += step_ns;
                let batch = drain(&mut timers, now_ns, &dead);
                let expected: Vec<u32> = model
                    .iter()
                    .filter(|&&(deadline_ns, _)| deadline_ns <= now_ns)
                    .map(|&(_, slot)| slot)
                    .collect();
                prop_assert_eq!(&batch, &expected);
                fired.extend(batch);
            }
            check_invariants(&timers);
        }

        /// The loop's contract, against a model, with inserts, cancels and
        /// clock steps interleaved: `next_deadline_ns` is `None` exactly when
        /// no timer is live, never after the earliest live deadline, and
        /// never a busy loop: when it has passed, the next `pop_expired`
        /// fires a timer or moves it later, and once `pop_expired` has
        /// nothing left to fire, it lies in the future. The loop calls
        /// `pop_expired` only while some timer is live, so this does too.
        #[test]
        fn next_deadline_is_a_bound_and_never_a_busy_loop(
            start_ns in (1u64 << 23)..(1 << 40),
            steps in prop::collection::vec(prop_oneof![
                4 => prop_oneof![-(1i64 << 22)..(1 << 22), 0i64..(1 << 31), (1i64 << 30)..(1 << 34)].prop_map(Step::Arm),
                3 => any::<prop::sample::Index>().prop_map(Step::Cancel),
                1 => Just(Step::CancelAll),
                3 => prop_oneof![0u64..(1 << 20), 0u64..(1 << 31)].prop_map(Step::Wait),
            ], 1..300),
        ) {
            let mut timers = Timers::new(start_ns);
            let mut now_ns = start_ns;
            // `armed[slot]`: the deadline, while the timer is neither fired nor cancelled.
            let mut armed: Vec<Option<u64>> = Vec::new();
            for step in steps {
                match step {
                    Step::Arm(delay_ns) => {
                        let deadline_ns = now_ns.saturating_add_signed(delay_ns);
                        timers.insert(deadline_ns, id(armed.len() as u32));
                        armed.push(Some(deadline_ns));
                    }
                    Step::Cancel(index) => {
                        let live: Vec<usize> = (0..armed.len()).filter(|&slot| armed[slot].is_some()).collect();
                        if !live.is_empty() {
                            armed[live[index.index(live.len())]] = None;
                            timers.cancelled(|id| armed[id.slot as usize].is_some());
                        }
                    }
                    Step::CancelAll => {
                        for slot in 0..armed.len() {
                            if armed[slot].take().is_some() {
                                timers.cancelled(|id| armed[id.slot as usize].is_some());
                            }
                        }
                    }
                    Step::Wait(step_ns) => now_ns += step_ns,
                }
                check_invariants(&timers);
                let live = |armed: &[Option<u64>]| armed.iter().filter(|deadline| deadline.is_some()).count();
                prop_assert_eq!(timers.len(), live(&armed));
                let earliest_ns = armed.iter().flatten().min().copied();
                let before_ns = timers.next_deadline_ns(|id| armed[id.slot as usize].is_some());
                prop_assert_eq!(before_ns.is_none(), earliest_ns.is_none());
                if let (Some(before_ns), Some(earliest_ns)) = (before_ns, earliest_ns) {
                    prop_assert!(before_ns <= earliest_ns);
                }
                if timers.is_empty() {
                    continue;
                }
                let mut fired = Vec::new();
                while let Some(id) = timers.pop_expired(now_ns, |id| armed[id.slot as usize].is_some()) {
                    let deadline_ns = armed[id.slot as usize].take();
                    prop_assert!(deadline_ns.is_some_and(|deadline_ns| deadline_ns <= now_ns));
                    fired.push(id.slot);
                }
                prop_assert!(armed.iter().flatten().all(|&deadline_ns| deadline_ns > now_ns));
                check_invariants(&timers);
                let after_ns = timers.next_deadline_ns(|id| armed[id.slot as usize].is_some());
                if let Some(after_ns) = after_ns {
                    prop_assert!(after_ns > now_ns, "{} after pop_expired({})", after_ns, now_ns);
                }
                if let Some(before_ns) = before_ns.filter(|&before_ns| before_ns <= now_ns) {
                    prop_assert!(!fired.is_empty() || after_ns.map_or(true, |after_ns| after_ns > before_ns));
                }
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// Arms a timer this far from the clock (negative: already due).
        Arm(i64),
        /// Cancels one live timer, if any.
        Cancel(prop::sample::Index),
        CancelAll,
        /// Moves the clock on, then runs the loop's timer pass.
        Wait(u64),
    }

    /// The defect this module's documentation describes: two timers, the
    /// later cancelled, the earlier fired. No timer is live, so the loop
    /// stops calling `pop_expired`, and the cancelled deadline must not be
    /// handed out (once past, every wait would be a zero timeout).
    #[test]
    fn no_deadline_is_left_once_no_timer_is_live() {
        let mut timers = Timers::new(0);
        timers.insert(1_000_000, id(1));
        timers.insert(50_000_000, id(2));
        timers.cancelled(|id| id.slot != 2);
        assert_eq!(timers.len(), 1);
        assert_eq!(drain(&mut timers, 1_000_000, &[2]), vec![1]);
        assert_eq!(timers.len(), 0);
        assert_eq!(timers.next_deadline_ns(|id| id.slot != 2), None);
        check_invariants(&timers);
    }

    /// The structure that holds `slot`'s entry.
    fn place_of(timers: &Timers, slot: u32) -> &'static str {
        let is = |entry: &Entry| entry.id.slot == slot;
        if timers.ready.iter().any(is) {
            "ready"
        } else if timers.late.iter().any(|Reverse(entry)| is(entry)) {
            "late"
        } else if timers.far.iter().any(|Reverse(entry)| is(entry)) {
            "far"
        } else if timers
            .wheel
            .buckets
            .iter()
            .any(|bucket| bucket.entries.iter().any(is))
        {
            "bucket"
        } else {
            "nowhere"
        }
    }

    /// The clock of the tests below, after their first pop.
    const NOW_NS: u64 = 101 * GRANULE_NS;

    /// Timers whose slot 2 is armed in `place`, with a deadline after
    /// `NOW_NS`, and whose clock reached `NOW_NS`: `ready` holds what came
    /// through the wheel in the current granule, `late` what was inserted
    /// in it afterwards.
    fn with_a_timer_in(place: &str) -> (Timers, u64) {
        let mut timers = Timers::new(NOW_NS - GRANULE_NS);
        let deadline_ns = match place {
            "ready" | "late" => NOW_NS + 10,
            "bucket" => NOW_NS + 50 * GRANULE_NS,
            "far" => NOW_NS + 2 * BUCKETS * GRANULE_NS,
            _ => unreachable!(),
        };
        if place == "ready" {
            timers.insert(deadline_ns, id(2));
        }
        assert_eq!(drain(&mut timers, NOW_NS, &[]), Vec::<u32>::new());
        if place != "ready" {
            timers.insert(deadline_ns, id(2));
        }
        assert_eq!(place_of(&timers, 2), place);
        (timers, deadline_ns)
    }

    const PLACES: [&str; 4] = ["ready", "late", "bucket", "far"];

    #[test]
    fn a_dead_deadline_goes_with_the_last_live_timer_from_every_structure() {
        for place in PLACES {
            let (mut timers, _) = with_a_timer_in(place);
            timers.insert(NOW_NS + 1, id(1));
            timers.insert(NOW_NS + 2, id(3));
            timers.cancelled(|id| id.slot != 2);
            assert_eq!(drain(&mut timers, NOW_NS + 2, &[2]), vec![1, 3], "{place}");
            assert_eq!(timers.len(), 0, "{place}");
            assert_eq!(timers.next_deadline_ns(|id| id.slot != 2), None, "{place}");
            assert_eq!(place_of(&timers, 2), "nowhere", "{place}");
            check_invariants(&timers);
        }
    }

    /// With a live timer after it, a dead entry may still be handed out as
    /// a lower bound (from a bucket), but once its deadline has passed, the
    /// next `pop_expired` drops it: the deadline after that is the live one.
    #[test]
    fn a_dead_deadline_that_passed_is_dropped_by_the_next_pop() {
        for place in PLACES {
            let (mut timers, dead_ns) = with_a_timer_in(place);
            let live_ns = dead_ns + 3 * BUCKETS * GRANULE_NS;
            timers.insert(live_ns, id(1));
            timers.cancelled(|id| id.slot != 2);
            let is_live = |id: CompletionId| id.slot != 2;
            let bound_ns = timers.next_deadline_ns(is_live).expect("a live timer");
            assert!(
                bound_ns == dead_ns || bound_ns == live_ns,
                "{place}: {bound_ns}"
            );
            assert_eq!(timers.pop_expired(dead_ns, is_live), None, "{place}");
            assert_eq!(timers.next_deadline_ns(is_live), Some(live_ns), "{place}");
            assert_eq!(place_of(&timers, 2), "nowhere", "{place}");
            check_invariants(&timers);
        }
    }

    /// The next deadline of timers sharing one future granule is their
    /// earliest, read from the bucket's minimum, not found by a scan.
    #[test]
    fn the_next_deadline_in_a_crowded_granule_is_its_minimum() {
        let mut timers = Timers::new(0);
        let base_ns = 500 * GRANULE_NS;
        for slot in 0..10_000u32 {
            timers.insert(
                base_ns + 1_000 + u64::from(slot) * 7_919 % 1_000_000,
                id(slot),
            );
        }
        assert_eq!(timers.wheel.first_granule_after(timers.cursor), Some(500));
        assert_eq!(timers.next_deadline_ns(|_| true), Some(base_ns + 1_000));
        // Slot 0 holds the minimum; cancelled, it is still the bound until the
        // granule comes, then the pop drains the bucket and the bound is exact.
        timers.cancelled(|id| id.slot != 0);
        assert_eq!(
            timers.next_deadline_ns(|id| id.slot != 0),
            Some(base_ns + 1_000)
        );
        assert_eq!(timers.pop_expired(base_ns + 1_000, |id| id.slot != 0), None);
        let second_ns = (1..10_000u64)
            .map(|slot| base_ns + 1_000 + slot * 7_919 % 1_000_000)
            .min();
        assert_eq!(timers.next_deadline_ns(|id| id.slot != 0), second_ns);
        check_invariants(&timers);
    }

    #[test]
    fn the_first_bucket_is_found_across_the_wrap() {
        let mut timers = Timers::new(1000 * GRANULE_NS);
        // Granule 1030 lives in bucket 6, after the cursor's bucket 1000 % 1024.
        timers.insert(1030 * GRANULE_NS + 5, id(1));
        timers.insert(1020 * GRANULE_NS + 5, id(2));
        assert_eq!(
            timers.next_deadline_ns(|_| true),
            Some(1020 * GRANULE_NS + 5)
        );
        assert_eq!(drain(&mut timers, 1025 * GRANULE_NS, &[]), vec![2]);
        assert_eq!(
            timers.next_deadline_ns(|_| true),
            Some(1030 * GRANULE_NS + 5)
        );
        check_invariants(&timers);
    }

    #[test]
    fn equal_deadlines_fire_in_submission_order() {
        let mut timers = Timers::new(0);
        for slot in 0..100 {
            timers.insert(5_000_000, id(slot));
        }
        assert_eq!(
            drain(&mut timers, 5_000_000, &[]),
            (0..100).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_long_idle_gap_jumps_the_wheel() {
        let mut timers = Timers::new(0);
        timers.insert(10 << GRANULE_SHIFT, id(1));
        timers.insert(1 << 50, id(2));
        assert_eq!(drain(&mut timers, 1 << 49, &[]), vec![1]);
        assert_eq!(timers.next_deadline_ns(|_| true), Some(1 << 50));
        assert_eq!(drain(&mut timers, 1 << 50, &[]), vec![2]);
        assert_eq!(timers.len(), 0);
    }
}
