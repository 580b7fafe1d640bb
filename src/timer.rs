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
//! - `buckets[g % BUCKETS]`: the timers of granule `g`, for `cursor < g < cursor + BUCKETS`;
//! - `far`: a heap of the timers beyond the wheel.
//!
//! So every timer in `ready` or `late` precedes every timer in a bucket, which
//! precede every timer in `far`. Ties are broken by a submission sequence, so equal
//! deadlines fire in submission order.
//!
//! Cancelled timers are deleted lazily: an entry stays until it surfaces, or
//! until dead entries outnumber live ones, when everything is compacted. That
//! keeps cancel O(1) and memory bounded by twice the live count.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::completion::CompletionId;

/// A granule is 2^20 ns, about 1.05 ms.
const GRANULE_SHIFT: u32 = 20;
/// Buckets in the wheel: a window of about 1.07 s.
const BUCKETS: u64 = 1024;

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
    buckets: Vec<Vec<Entry>>,
    far: BinaryHeap<Reverse<Entry>>,
    cursor: u64,
    /// Entries in `buckets`, live or dead.
    bucketed: usize,
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
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            far: BinaryHeap::new(),
            cursor: now_ns >> GRANULE_SHIFT,
            bucketed: 0,
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
            self.buckets[(granule % BUCKETS) as usize].push(entry);
            self.bucketed += 1;
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
        if self.bucketed > 0 {
            // Past a full turn, every bucket is due: visit each once.
            let steps = (target - self.cursor).min(BUCKETS);
            for step in 1..=steps {
                let bucket = &mut self.buckets[((self.cursor + step) % BUCKETS) as usize];
                self.bucketed -= bucket.len();
                bucket.sort_unstable();
                self.ready.extend(bucket.drain(..));
            }
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
    /// outnumber the live.
    pub(crate) fn cancelled(&mut self, is_live: impl Fn(CompletionId) -> bool) {
        self.dead += 1;
        assert!(self.dead <= self.entries);
        if self.dead * 2 > self.entries {
            self.ready.retain(|entry| is_live(entry.id));
            self.late.retain(|Reverse(entry)| is_live(entry.id));
            self.far.retain(|Reverse(entry)| is_live(entry.id));
            for bucket in &mut self.buckets {
                bucket.retain(|entry| is_live(entry.id));
            }
            self.bucketed = self.buckets.iter().map(Vec::len).sum();
            self.entries = self.ready.len() + self.late.len() + self.bucketed + self.far.len();
            self.dead = 0;
        }
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

    fn forget_dead(&mut self) {
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

    /// The earliest deadline, or a lower bound of it (a dead entry in a
    /// bucket may make the loop wake early, never late, and find nothing due).
    pub(crate) fn next_deadline_ns(
        &mut self,
        is_live: impl Fn(CompletionId) -> bool,
    ) -> Option<u64> {
        if let Some(from_ready) = self.earliest_due(&is_live) {
            return Some(self.peek_due(from_ready).deadline_ns);
        }
        if self.bucketed > 0 {
            for step in 1..BUCKETS {
                let bucket = &self.buckets[((self.cursor + step) % BUCKETS) as usize];
                if let Some(deadline_ns) = bucket.iter().map(|entry| entry.deadline_ns).min() {
                    return Some(deadline_ns);
                }
            }
        }
        self.far.peek().map(|Reverse(entry)| entry.deadline_ns)
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
        };
        self.entries -= 1;
        entry.map(|entry| entry.id)
    }

    /// Live timers.
    pub(crate) fn len(&self) -> usize {
        self.entries - self.dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        /// Against a model (a sorted list): timers fire in (deadline, submission)
        /// order, never before their deadline, exactly once, except the cancelled.
        #[test]
        fn fires_like_a_sorted_list(
            start_ns in 0u64..(1 << 40),
            delays_ns in prop::collection::vec(prop_oneof![0u64..(1 << 22), 0u64..(1 << 32), Just(u64::MAX / 2)], 1..200),
            cancel_every in 2usize..7,
            steps_ns in prop::collection::vec(0u64..(1 << 31), 1..20),
        ) {
            let mut timers = Timers::new(start_ns);
            let mut model = Vec::new();
            let mut dead = Vec::new();
            for (slot, &delay_ns) in delays_ns.iter().enumerate() {
                let deadline_ns = start_ns.saturating_add(delay_ns);
                timers.insert(deadline_ns, id(slot as u32));
                if slot % cancel_every == 0 {
                    dead.push(slot as u32);
                } else {
                    model.push((deadline_ns, slot as u32));
                }
            }
            for _ in &dead {
                let dead = dead.clone();
                timers.cancelled(move |id| !dead.contains(&id.slot));
            }
            model.sort();
            prop_assert_eq!(timers.len(), model.len());
            let mut now_ns = start_ns;
            let mut fired = Vec::new();
            for step_ns in steps_ns {
                now_ns += step_ns;
                if let Some(next_ns) = timers.next_deadline_ns(|id| !dead.contains(&id.slot)) {
                    let first_due = model.iter().find(|(_, slot)| !fired.contains(slot));
                    prop_assert!(next_ns <= first_due.map_or(u64::MAX, |&(deadline_ns, _)| deadline_ns));
                }
                let batch = drain(&mut timers, now_ns, &dead);
                let expected: Vec<u32> = model
                    .iter()
                    .filter(|&&(deadline_ns, slot)| deadline_ns <= now_ns && !fired.contains(&slot))
                    .map(|&(_, slot)| slot)
                    .collect();
                prop_assert_eq!(&batch, &expected);
                fired.extend(batch);
            }
        }
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
