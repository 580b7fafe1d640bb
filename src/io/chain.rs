//! Linked chains: operations that run one after another, each only if the
//! one before it fully succeeded (`IOSQE_IO_LINK`).
//!
//! The members of a chain are linked through a side table indexed by slot
//! (`IO::chain_links`), not through the slot itself, which is at its
//! 128-byte budget. Each member knows its predecessor and its successor;
//! the links are symmetric, and a member that completes unlinks itself
//! from both, so no link ever names a slot that was freed and reused.
//!
//! How a chain runs:
//! - io_uring, natively: the members the kernel can run are pushed into the
//!   submission queue together, each but the last with `IOSQE_IO_LINK`, or
//!   none of them is (they wait on **unqueued** as a group, and a flush
//!   pushes the group whole or not at all), so a link never spans two
//!   submissions. The kernel runs them in order, and fails the rest with
//!   `ECANCELED` when one fails or is short.
//! - epoll and the simulator (and io_uring with emulated features, or with
//!   an SQPOLL thread, which reads the queue while members are pushed): the
//!   loop pushes one member at a time. The next waits in the `Chained`
//!   state, on no list, until its predecessor completes: then it is pushed
//!   if that one fully succeeded, and it and the rest complete with
//!   `ECANCELED` if not.
//! - A member settled before submission (bad input, a stale handle, an
//!   operation that cannot be linked) waits for its turn too, and then
//!   completes with its error and breaks the chain there, on every
//!   backend: members run, and fail, in order.

use std::mem;
use std::panic::{self, AssertUnwindSafe};

use super::IO;
use crate::backend::Backend;
use crate::completion::{Multishot, Operation, State};
use crate::handle::NO_HANDLE;
use crate::ops::BUFFER_LIMIT;

/// No member: the end of a chain, or a slot in none.
pub(crate) const NO_LINK: u32 = u32::MAX;

/// One slot's place in a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChainLink {
    prev: u32,
    next: u32,
    /// The kernel runs `next` after this one (`IOSQE_IO_LINK`): they are
    /// pushed together, or wait on unqueued together.
    native: bool,
    /// The result is known already (in the slot's `result`): the member
    /// completes with it when its turn comes, and never reaches a backend.
    settled: bool,
}

impl ChainLink {
    pub(crate) const NONE: ChainLink = ChainLink {
        prev: NO_LINK,
        next: NO_LINK,
        native: false,
        settled: false,
    };
}

/// The chain a `chain` call is building: its first and last member.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChainBuild {
    head: u32,
    tail: u32,
}

/// Whether `result` lets a chain go on after `operation`: a failure ends
/// it, and so does a short read or write, as the kernel has it.
fn link_holds(operation: &Operation, result: i32) -> bool {
    if result < 0 {
        return false;
    }
    match *operation {
        Operation::Read { len, .. } | Operation::Write { len, .. } => result as u32 == len,
        Operation::Readv { iovecs, count, .. } | Operation::Writev { iovecs, count, .. } => {
            let total = crate::msg::iovecs_len(iovecs, count).min(BUFFER_LIMIT as u64);
            result as u64 == total
        }
        _ => true,
    }
}

/// Whether `operation` may be a member of a chain: one submission, one
/// result. Timeouts live in user space, a cancel acts at once, a close
/// takes two entries, and a multishot operation has many results.
fn linkable(operation: &Operation, multishot: Multishot) -> bool {
    let single = multishot == Multishot::No;
    let kind = !matches!(
        operation,
        Operation::Timeout { .. }
            | Operation::Cancel { .. }
            | Operation::Close { .. }
            | Operation::SendZc { .. }
            | Operation::Shot { .. }
    );
    single && kind
}

impl<C> IO<C> {
    /// Submits the operations `body` submits as one chain: each runs only
    /// after the one before it has completed, and only if it fully
    /// succeeded. A failure, or a short read or write, completes every
    /// later member with `ECANCELED`, each with its buffer back. Returns
    /// what `body` returns (the members' ids, say).
    ///
    /// Write-then-fsync is the use: the fsync starts as soon as the write
    /// is done, in the kernel, without a pass of the loop between them, and
    /// never runs after a failed or short write.
    ///
    /// Every one-shot operation can be a member, the file-system ones
    /// included. A member that cannot (a timeout, a cancel, a close, a
    /// multishot operation) completes with `EINVAL` when its turn comes
    /// and breaks the chain, as one refused for bad input or a stale handle
    /// does (with its own errno). `send_zc` in a chain is a plain `send`.
    /// A chain inside a chain joins it. Callbacks run in member order.
    ///
    /// Backends: io_uring, with `IOSQE_IO_LINK`: the members go into the
    /// submission queue together or wait together, so a link never spans
    /// two submissions. A chain longer than the queue
    /// ([`Config::entries`](crate::Config::entries)) goes in pieces of the
    /// queue's size, which the loop links as epoll's are. epoll and the
    /// simulator emulate links: the loop starts each member when the one
    /// before has succeeded, one pass later, with the same results. So does
    /// an io_uring ring with a polling thread (`Config::sqpoll_idle_ms`),
    /// which could take a chain's first members from the queue before the
    /// rest are pushed, where the kernel would end the link.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("ringio-doc-chain-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut io: ringio::IO<Vec<&str>> = ringio::IO::new()?;
    /// let file = io.open_file(dir.join("log"), ringio::FileOptions::new().create(true))?;
    /// io.chain(|io| {
    ///     io.write(file, &b"record"[..], 0, |_, log, result, _| {
    ///         assert_eq!(result.unwrap(), 6);
    ///         log.push("written");
    ///     });
    ///     io.fsync(file, |_, log, result| {
    ///         result.unwrap();
    ///         log.push("durable");
    ///     });
    /// });
    /// let mut log = Vec::new();
    /// io.run(&mut log)?;
    /// assert_eq!(log, ["written", "durable"]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// In the members' callbacks: each member's own, `ECANCELED` for those
    /// after a member that failed or fell short, `EINVAL` for a member that
    /// cannot be linked.
    ///
    /// # Panics
    ///
    /// If `body` panics: the members it submitted start as a chain all the
    /// same (their callbacks will run), and the panic goes on.
    pub fn chain<R>(&mut self, body: impl FnOnce(&mut IO<C>) -> R) -> R {
        if self.chain.is_some() {
            return body(self); // joins the chain being built
        }
        self.replace_chain(Some(ChainBuild {
            head: NO_LINK,
            tail: NO_LINK,
        }));
        let result = panic::catch_unwind(AssertUnwindSafe(|| body(self)));
        let build = self.replace_chain(None).expect("set above");
        if build.head != NO_LINK {
            self.chain_start(build.head);
        }
        match result {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Puts `chain` in the place of the chain being built, and returns
    /// what was there, keeping `direct_blocked` (nonzero while one is):
    /// the only way `IO::chain` is set, since a stale zero there would let
    /// a submission bypass the chain.
    pub(crate) fn replace_chain(&mut self, chain: Option<ChainBuild>) -> Option<ChainBuild> {
        self.direct_blocked = u32::from(chain.is_some()) | self.submit_batch;
        mem::replace(&mut self.chain, chain)
    }

    /// Whether a chain is being built: submissions join it.
    pub(crate) fn chain_open(&self) -> bool {
        self.chain.is_some()
    }

    /// Adds slot `index`, just allocated, to the chain being built, as a
    /// member that waits for its turn (`settled`: with its result in).
    fn chain_push(&mut self, index: u32, settled: bool) {
        if self.chain_links.len() < self.slots.len() as usize {
            self.chain_links
                .resize(self.slots.len() as usize, ChainLink::NONE);
        }
        let build = self.chain.as_mut().expect("a chain is being built");
        let tail = build.tail;
        if tail == NO_LINK {
            build.head = index;
        }
        build.tail = index;
        assert_eq!(self.chain_links[index as usize], ChainLink::NONE);
        self.chain_links[index as usize] = ChainLink {
            prev: tail,
            settled,
            ..ChainLink::NONE
        };
        if tail != NO_LINK {
            assert_eq!(self.chain_links[tail as usize].next, NO_LINK);
            self.chain_links[tail as usize].next = index;
        }
        let slot = self.slots.slot_mut(index);
        slot.state = State::Chained;
        // A member's end starts or cancels the next: never the reap's
        // fast path.
        slot.not_plain = true;
    }

    /// A submission while a chain is being built: slot `index` joins it.
    /// An operation that cannot be linked joins it settled with `EINVAL`.
    pub(crate) fn chain_join(&mut self, index: u32) {
        let slot = self.slots.slot(index);
        if linkable(&slot.operation, slot.multishot) {
            return self.chain_push(index, false);
        }
        self.slots.slot_mut(index).result = -libc::EINVAL;
        self.chain_push(index, true);
    }

    /// A submission settled before it started (bad input, a stale handle),
    /// while a chain is being built: it joins with its result.
    pub(crate) fn chain_join_settled(&mut self, index: u32, result: i32) {
        self.slots.slot_mut(index).result = result;
        self.chain_push(index, true);
    }

    /// Takes slot `index` out of its chain, if it is in one: unlinks it
    /// from its predecessor (still pending, if there is one) and its
    /// successor. Returns the successor if it waits for the loop to start
    /// or cancel it (`Chained`, or `Unqueued` in a group), not if the kernel
    /// has it already.
    fn chain_unlink(&mut self, index: u32) -> Option<u32> {
        let link = std::mem::replace(self.chain_links.get_mut(index as usize)?, ChainLink::NONE);
        if link.prev != NO_LINK {
            let prev = &mut self.chain_links[link.prev as usize];
            assert_eq!(prev.next, index);
            prev.next = NO_LINK;
            prev.native = false;
        }
        if link.next == NO_LINK {
            return None;
        }
        let next = &mut self.chain_links[link.next as usize];
        assert_eq!(next.prev, index);
        next.prev = NO_LINK;
        let state = self.slots.slot(link.next).state;
        matches!(state, State::Chained | State::Unqueued).then_some(link.next)
    }

    /// Slot `index` completed with `result`: the chain it is in goes on or
    /// stops, where the loop (not the kernel) decides that.
    pub(super) fn chain_after(&mut self, index: u32, result: i32) {
        let Some(next) = self.chain_unlink(index) else {
            return;
        };
        let holds = link_holds(&self.slots.slot(index).operation, result);
        match (holds, self.slots.slot(next).state) {
            (true, State::Chained) => self.chain_start(next),
            // Parked with a group it was cut from: a flush pushes it.
            (true, _) => {}
            (false, _) => self.chain_cancel(next),
        }
    }

    /// Starts the chain from member `first`, whose turn it is: members
    /// settled already complete at once, in order, while they succeed; the
    /// first that must run goes to the backend, with the members after it
    /// that the kernel can link to it.
    fn chain_start(&mut self, mut first: u32) {
        while self.chain_links[first as usize].settled {
            let result = self.slots.slot(first).result;
            self.complete_one(first, result);
            let holds = link_holds(&self.slots.slot(first).operation, result);
            let Some(next) = self.chain_unlink(first) else {
                return;
            };
            if !holds {
                return self.chain_cancel(next);
            }
            first = next;
        }
        let count = self.chain_group_len(first);
        self.enqueue_group(first, count);
    }

    /// How many members from `first` on the kernel can run as one linked
    /// group: up to a settled member, or one the backend cannot link (a
    /// syscall fallback), or one whose handle was closed meanwhile (it
    /// settles, alone), and at most a submission queue's worth (the loop
    /// links the pieces of a longer chain, as it links every member where
    /// links are emulated). 1 where links are emulated.
    fn chain_group_len(&mut self, first: u32) -> u32 {
        if !self.links_native {
            return 1;
        }
        let count_max = self.backend.entries_max().min(u32::MAX as usize) as u32;
        let mut count = 1;
        let mut last = first;
        loop {
            let next = self.chain_links[last as usize].next;
            let breaks = next == NO_LINK
                || count == count_max
                || self.chain_links[next as usize].settled
                || self.handle_closed(next)
                || self.names_fd_late(next)
                || !self.backend.links(&self.slots.slot(last).operation)
                || !self.backend.links(&self.slots.slot(next).operation);
            if breaks {
                return count;
            }
            self.chain_links[last as usize].native = true;
            count += 1;
            last = next;
        }
    }

    /// Whether member `index`, linked natively behind its predecessor,
    /// would name its descriptor by number when the kernel starts it: if
    /// its handle were closed before then, the number could be another
    /// file's by then (on io_uring, a descriptor with no registered slot).
    /// Such a member waits in the loop for its turn instead, which settles
    /// it against its closed handle first (`handle_closed`).
    fn names_fd_late(&self, index: u32) -> bool {
        let handle = self.slots.slot(index).handle;
        handle != NO_HANDLE
            && self
                .handles
                .raw_at(handle)
                .is_some_and(|fd| self.backend.finds_file_late(fd))
    }

    /// Completes member `index` and every member after it with
    /// `ECANCELED`: the chain broke before them. A member's own settled
    /// result is dropped, as the kernel never runs it.
    fn chain_cancel(&mut self, mut index: u32) {
        loop {
            if self.slots.slot(index).state == State::Unqueued {
                let removed = self.unqueued.remove(self.slots.links(), index);
                assert!(removed);
            }
            self.complete_one(index, -libc::ECANCELED);
            let Some(next) = self.chain_unlink(index) else {
                return;
            };
            index = next;
        }
    }

    /// How many members of a native group start at slot `index`, the head
    /// of `unqueued`: the members linked to it that wait on `unqueued`
    /// right after it, up to one whose handle was closed.
    pub(super) fn unqueued_group_len(&self, index: u32) -> u32 {
        if self.handle_closed(index) {
            return 1; // it settles, alone
        }
        let mut count = 1;
        let mut last = index;
        while let Some(link) = self.chain_links.get(last as usize) {
            let next = link.next;
            if !link.native
                || next == NO_LINK
                || self.slots.slot(next).state != State::Unqueued
                || self.handle_closed(next)
            {
                break;
            }
            count += 1;
            last = next;
        }
        count
    }

    /// Whether slot `index` is linked, natively, to the member after it.
    pub(super) fn linked_natively(&self, index: u32) -> bool {
        self.chain_links
            .get(index as usize)
            .is_some_and(|link| link.native)
    }

    /// The member after slot `index` in its chain.
    pub(super) fn chain_next(&self, index: u32) -> u32 {
        self.chain_links[index as usize].next
    }

    /// Marks slot `index` as the last of the group pushed: the kernel does
    /// not run what follows it; the loop does, when it completes.
    pub(super) fn chain_cut_after(&mut self, index: u32) {
        if let Some(link) = self.chain_links.get_mut(index as usize) {
            link.native = false;
        }
    }
}
