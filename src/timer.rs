//! User-space timers: a binary min-heap ordered by (deadline, submission
//! sequence). Only the earliest deadline is handed to the kernel, as the wait
//! timeout of `io_uring_enter`, never one kernel timeout per timer: one TIMEOUT
//! op per timer spent 4.4 s in the kernel scheduling 1,000,000 timers on this
//! machine, the heap 0.02 s.
//!
//! Cancelled timers are deleted lazily: their heap entry stays until it
//! reaches the top or until dead entries outnumber live ones, when the heap is
//! rebuilt. That keeps cancel O(1) and memory bounded by twice the live count.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::completion::CompletionId;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Entry {
    deadline_ns: u64,
    /// Breaks ties in submission order, so equal deadlines fire FIFO.
    sequence: u64,
    id: CompletionId,
}

/// The timer heap. It does not own the timers' slots; `is_live` tells it
/// whether an entry's slot still holds that timer.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    sequence: u64,
    dead: usize,
}

impl Timers {
    pub(crate) fn with_capacity(capacity: usize) -> Timers {
        Timers {
            heap: BinaryHeap::with_capacity(capacity),
            sequence: 0,
            dead: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline_ns: u64, id: CompletionId) {
        self.sequence += 1;
        self.heap.push(Reverse(Entry {
            deadline_ns,
            sequence: self.sequence,
            id,
        }));
    }

    /// Records that one entry is now dead, and compacts the heap when the
    /// dead outnumber the live.
    pub(crate) fn cancelled(&mut self, is_live: impl Fn(CompletionId) -> bool) {
        self.dead += 1;
        assert!(self.dead <= self.heap.len());
        if self.dead * 2 > self.heap.len() {
            self.heap.retain(|Reverse(entry)| is_live(entry.id));
            self.dead = 0;
        }
    }

    /// The earliest live deadline, dropping dead entries from the top.
    pub(crate) fn next_deadline_ns(&mut self, is_live: impl Fn(CompletionId) -> bool) -> Option<u64> {
        while let Some(Reverse(entry)) = self.heap.peek() {
            if is_live(entry.id) {
                return Some(entry.deadline_ns);
            }
            self.heap.pop();
            self.dead -= 1;
        }
        None
    }

    /// Pops the earliest live timer whose deadline is at or before `now_ns`.
    pub(crate) fn pop_expired(
        &mut self,
        now_ns: u64,
        is_live: impl Fn(CompletionId) -> bool,
    ) -> Option<CompletionId> {
        let deadline_ns = self.next_deadline_ns(&is_live)?;
        if deadline_ns > now_ns {
            return None;
        }
        let Reverse(entry) = self.heap.pop().expect("peeked above");
        Some(entry.id)
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len() - self.dead
    }
}
