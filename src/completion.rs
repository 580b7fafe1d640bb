//! Completion slots: the table of in-flight operations, addressed by index and
//! generation, linked into FIFOs through the `fifo` crate.

use std::fmt;

use fifo::Link;

use crate::backend::RawCompletion;
use crate::callback::{Callback, Detached, Store};
use crate::handle::NO_HANDLE;
use crate::sys::Fd;

/// Identifies one submitted operation: a slot index, the slot's generation,
/// and the tag of the [`IO`](crate::IO) that issued it.
///
/// The generation changes every time a slot is reused, so an id that outlives
/// its operation is *stale*: cancelling it reports `ENOENT` and never touches
/// whichever operation now occupies the slot. Generations are 64-bit, so a
/// slot cannot be reused often enough to make an old id match again. An id
/// from another `IO` names nothing in this one (`ENOENT` too).
///
/// Only the low 32 bits of the generation travel to the kernel (in the
/// entry's `user_data`): a slot is never reused while its entry is in the
/// kernel, so they are enough to check a completion against its slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompletionId {
    pub(crate) slot: u32,
    pub(crate) io: u32,
    pub(crate) generation: u64,
}

impl CompletionId {
    /// Packs the id into an io_uring `user_data`: the slot and the low 32
    /// bits of the generation.
    pub(crate) fn user_data(self) -> u64 {
        CompletionId::user_data_of(self.slot, self.generation)
    }

    /// The `user_data` of the operation in `slot` at `generation`.
    #[inline]
    pub(crate) fn user_data_of(slot: u32, generation: u64) -> u64 {
        (u64::from(generation as u32) << 32) | u64::from(slot)
    }

    /// The slot a `user_data` names.
    pub(crate) fn slot_of(user_data: u64) -> u32 {
        user_data as u32
    }

    /// The low 32 bits of the generation a `user_data` carries.
    pub(crate) fn generation_low_of(user_data: u64) -> u32 {
        (user_data >> 32) as u32
    }
}

impl fmt::Debug for CompletionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CompletionId({}#{}@{})",
            self.slot, self.generation, self.io
        )
    }
}

/// Where a slot is in its life. Exactly one of these at a time; the FIFO a slot
/// is linked into always matches its state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    /// On the free list.
    Free,
    /// On `unqueued`: waiting for submission-queue space.
    Unqueued,
    /// Its entry is in the submission queue or the kernel (the operation
    /// itself, or the readiness wait before a retry).
    Kernel,
    /// In the user-space timer heap.
    Timer,
    /// On `completed`, `result` set, waiting for its callback to run.
    Completed,
    /// A close whose result is in, held (on no list) until the last other
    /// operation on its handle completes, so that its callback runs last.
    Held,
    /// A member of a linked chain waiting (on no list) for the member
    /// before it to complete.
    Chained,
}

/// The kernel-facing description of an operation: everything needed to build
/// (or rebuild, after `EINTR`) its submission entry. Pointers point into memory
/// owned by the slot's callback handler.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Operation {
    Nop,
    Accept {
        fd: Fd,
    },
    Connect {
        fd: Fd,
        addr: *const libc::sockaddr,
        addr_len: u32,
    },
    Recv {
        fd: Fd,
        buf: *mut u8,
        len: u32,
    },
    Send {
        fd: Fd,
        buf: *const u8,
        len: u32,
    },
    Read {
        fd: Fd,
        buf: *mut u8,
        len: u32,
        offset: u64,
    },
    Write {
        fd: Fd,
        buf: *const u8,
        len: u32,
        offset: u64,
    },
    Fsync {
        fd: Fd,
        datasync: bool,
    },
    Close {
        fd: Fd,
        /// Operations were in flight on the handle when the close went to
        /// the backend: io_uring cancels them first (`AsyncCancel` on the
        /// fd), and skips that entry when none are, since it would find
        /// nothing. Set by the loop as it pushes the close.
        busy: bool,
    },
    Poll {
        fd: Fd,
        events: u32,
    },
    Cancel {
        target: CompletionId,
    },
    Timeout {
        deadline_ns: u64,
    },
    /// `shutdown(2)`: `how` is `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
    Shutdown {
        fd: Fd,
        how: i32,
    },
    /// A multishot accept: one submission, a socket per completion.
    AcceptMulti {
        fd: Fd,
    },
    /// A zero-copy send: the buffer comes back after the kernel's
    /// notification, not with the byte count.
    SendZc {
        fd: Fd,
        buf: *const u8,
        len: u32,
    },
    /// A multishot receive into buffers of pool (buffer group) `pool`.
    RecvMulti {
        fd: Fd,
        pool: u16,
    },
    /// `preadv(2)`: `count` iovecs at `iovecs`, in the op's `Message`.
    Readv {
        fd: Fd,
        iovecs: *const libc::iovec,
        count: u32,
        offset: u64,
    },
    /// A read into registered buffer `index` (`IORING_OP_READ_FIXED`).
    ReadFixed {
        fd: Fd,
        buf: *mut u8,
        len: u32,
        offset: u64,
        index: u16,
    },
    /// A write from registered buffer `index`.
    WriteFixed {
        fd: Fd,
        buf: *mut u8,
        len: u32,
        offset: u64,
        index: u16,
    },
    /// `pwritev(2)`.
    Writev {
        fd: Fd,
        iovecs: *const libc::iovec,
        count: u32,
        offset: u64,
    },
    /// `sendmsg(2)`: the header (address, iovecs) in the op's `Message`.
    SendMsg {
        fd: Fd,
        msg: *const libc::msghdr,
    },
    /// `recvmsg(2)`: the kernel fills the header's name, flags and control.
    RecvMsg {
        fd: Fd,
        msg: *mut libc::msghdr,
    },
    /// One result of the multishot operation in slot `parent`, waiting on
    /// `completed` for the parent's callback. Never reaches a backend.
    Shot {
        parent: u32,
    },
    /// `openat(2)` relative to the current directory: `path` is the
    /// NUL-terminated copy in the op's `FsArgs`; `flags` include
    /// `O_CLOEXEC`.
    OpenAt {
        path: *const libc::c_char,
        flags: i32,
        mode: u32,
    },
    /// `statx(2)` of `fd` itself (`AT_EMPTY_PATH`) into the op's `FsArgs`.
    Statx {
        fd: Fd,
        statx: *mut libc::statx,
    },
    /// `fallocate(2)`: `mode` is `FALLOC_FL_*` bits.
    Fallocate {
        fd: Fd,
        mode: i32,
        offset: u64,
        len: u64,
    },
    /// `ftruncate(2)`.
    Ftruncate {
        fd: Fd,
        len: u64,
    },
    /// `renameat2(2)` within the current directory: both paths in the op's
    /// `FsArgs`; `flags` are `RENAME_*` bits.
    RenameAt {
        old: *const libc::c_char,
        new: *const libc::c_char,
        flags: u32,
    },
    /// `unlinkat(2)`: `flags` is 0 or `AT_REMOVEDIR`.
    UnlinkAt {
        path: *const libc::c_char,
        flags: i32,
    },
    /// `mkdirat(2)`.
    MkDirAt {
        path: *const libc::c_char,
        mode: u32,
    },
}

impl Operation {
    /// A short name for tracing.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Operation::Nop => "nop",
            Operation::Accept { .. } => "accept",
            Operation::Connect { .. } => "connect",
            Operation::Recv { .. } => "recv",
            Operation::Send { .. } => "send",
            Operation::Read { .. } => "read",
            Operation::Write { .. } => "write",
            Operation::Fsync { .. } => "fsync",
            Operation::Close { .. } => "close",
            Operation::Poll { .. } => "poll",
            Operation::Cancel { .. } => "cancel",
            Operation::Timeout { .. } => "timeout",
            Operation::Shutdown { .. } => "shutdown",
            Operation::AcceptMulti { .. } => "accept_multi",
            Operation::RecvMulti { .. } => "recv_multi",
            Operation::SendZc { .. } => "send_zc",
            Operation::Readv { .. } => "readv",
            Operation::ReadFixed { .. } => "read_fixed",
            Operation::WriteFixed { .. } => "write_fixed",
            Operation::Writev { .. } => "writev",
            Operation::SendMsg { .. } => "send_msg",
            Operation::RecvMsg { .. } => "recv_msg",
            Operation::Shot { .. } => "shot",
            Operation::OpenAt { .. } => "openat",
            Operation::Statx { .. } => "statx",
            Operation::Fallocate { .. } => "fallocate",
            Operation::Ftruncate { .. } => "ftruncate",
            Operation::RenameAt { .. } => "renameat",
            Operation::UnlinkAt { .. } => "unlinkat",
            Operation::MkDirAt { .. } => "mkdirat",
        }
    }

    /// The one-shot operation that a multishot one repeats, where the loop
    /// emulates it (epoll, the simulator, kernels without it).
    pub(crate) fn single_shot(&self) -> Operation {
        match *self {
            Operation::AcceptMulti { fd } => Operation::Accept { fd },
            operation => operation,
        }
    }

    /// For an operation that may return `EAGAIN` on a non-blocking fd: the fd
    /// and the readiness to wait for before retrying it.
    pub(crate) fn readiness(&self) -> Option<(Fd, u32)> {
        let readable = libc::POLLIN as u32;
        let writable = libc::POLLOUT as u32;
        match *self {
            Operation::Accept { fd } | Operation::Recv { fd, .. } => Some((fd, readable)),
            Operation::AcceptMulti { fd } | Operation::RecvMulti { fd, .. } => Some((fd, readable)),
            Operation::Read { fd, .. } | Operation::Readv { fd, .. } => Some((fd, readable)),
            Operation::RecvMsg { fd, .. } => Some((fd, readable)),
            Operation::Send { fd, .. } | Operation::Write { fd, .. } => Some((fd, writable)),
            Operation::SendMsg { fd, .. } | Operation::Writev { fd, .. } => Some((fd, writable)),
            Operation::SendZc { fd, .. } => Some((fd, writable)),
            Operation::Connect { fd, .. } => Some((fd, writable)),
            _ => None,
        }
    }
}

/// `Slot::deadline` of an operation without one.
pub(crate) const NO_DEADLINE: u32 = u32::MAX;

/// How an operation's results reach its callback.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Multishot {
    /// One result, one callback.
    No,
    /// The kernel repeats the operation (`IORING_CQE_F_MORE`).
    Native,
    /// The loop repeats a one-shot operation after each success.
    Emulated,
    /// Emulated, and the callback asked to stop: the next result is the last.
    Stopping,
}

/// One completion: its link, identity, state, operation and callback.
///
/// `repr(C)`, in this order, so that the hot paths find what they want
/// where it is cheapest: the callback's storage at the slot's own address
/// (the erased call's argument, with no offset to add); the one-byte
/// fields a slot's allocation resets together, from an aligned start, so
/// that it writes them in few stores; `not_plain` last of them and `state`
/// after it, which the reap reads as one ([`Slot::plain_in_kernel`]).
/// The order leaves no padding but one byte: 128 bytes in all.
#[repr(C)]
pub(crate) struct Slot<C> {
    /// First, so that the handler's storage is at the slot's own address:
    /// the erased call takes the slot's address as it is.
    pub(crate) callback: Callback<C>,
    pub(crate) operation: Operation,
    pub(crate) link: Link,
    pub(crate) generation: u64,
    /// The handle-table entry the operation names, or `NO_HANDLE`.
    pub(crate) handle: u32,
    /// The slot of the timer that cancels this operation at its deadline,
    /// or `NO_DEADLINE`.
    pub(crate) deadline: u32,
    pub(crate) result: i32,
    /// The completion entry's flags with `result` (`IORING_CQE_F_*`).
    /// While the slot is free: the index of the next free slot, or
    /// `NO_FREE` (the free list threads through the free slots; see
    /// [`Slots`]). Taking the slot resets it to 0.
    pub(crate) flags: u32,
    /// The fd was non-blocking and the operation returned `EAGAIN`: the next
    /// submission is a readiness wait, after which the operation is retried.
    pub(crate) awaiting_readiness: bool,
    /// The operation went through a readiness wait, so that a retried
    /// `connect` can treat `EISCONN` as success.
    pub(crate) retried: bool,
    /// Whether, and how, the operation delivers many results.
    pub(crate) multishot: Multishot,
    /// A multishot operation has delivered at least one result.
    pub(crate) delivered: bool,
    /// The deadline passed and cancelled the operation: its `ECANCELED`
    /// reads as `ETIMEDOUT`.
    pub(crate) timed_out: bool,
    /// The slot is not *plain*. Plain: a successful result needs nothing
    /// but its callback (one-shot, on no handle, no readiness wait, no
    /// deadline, not a zero-copy send, a pool's receive or a shot, in no
    /// chain). Decided when the slot is taken, and set (never cleared
    /// again) by whatever makes one of those untrue, so that the reap's
    /// fast path decides with one load ([`Slot::plain_derived`] is the long
    /// form, checked in debug builds). Stored negated so that a plain
    /// slot's allocation writes a zero here, among the zeros around it,
    /// with no store of its own.
    pub(crate) not_plain: bool,
    pub(crate) state: State,
}

impl<C> Slot<C> {
    /// Whether the slot is in the kernel (`Kernel`) and plain: the reap's
    /// fast path asks it of every completion. As one 16-bit value, which
    /// the compiler loads and compares at once, the two bytes being
    /// adjacent (`repr(C)`).
    #[inline(always)]
    pub(crate) fn plain_in_kernel(&self) -> bool {
        let both = u16::from(self.not_plain) | u16::from(self.state as u8) << 8;
        both == (State::Kernel as u16) << 8
    }

    /// Whether `raw`, an entry naming this slot, completes it as plain
    /// with a success: the slot is `Kernel` at the entry's generation,
    /// plain ([`plain_in_kernel`](Slot::plain_in_kernel)), and the result
    /// is not an error. What both settles of a plain completion ask first
    /// (the reap's, `settle_plain`, and the straight run's,
    /// [`Slots::is_plain_success`]); anything else goes to
    /// `on_raw_completion`, whose asserts panic on a mismatch.
    #[inline(always)]
    pub(crate) fn completes_plainly(&self, raw: &RawCompletion) -> bool {
        self.generation as u32 == CompletionId::generation_low_of(raw.user_data)
            && self.plain_in_kernel()
            && raw.result >= 0
    }

    /// What plain stands for, from the fields it summarizes (`chained`:
    /// the slot is a member of a linked chain). `not_plain` may be set
    /// when this is true (a deadline that went, say), never the reverse.
    pub(crate) fn plain_derived(&self, chained: bool) -> bool {
        self.multishot == Multishot::No
            && !self.awaiting_readiness
            && self.deadline == NO_DEADLINE
            && self.handle == NO_HANDLE
            && !matches!(
                self.operation,
                Operation::SendZc { .. } | Operation::RecvMulti { .. } | Operation::Shot { .. }
            )
            && !chained
    }
}

impl<C> AsRef<Link> for Slot<C> {
    fn as_ref(&self) -> &Link {
        &self.link
    }
}

impl<C> AsMut<Link> for Slot<C> {
    fn as_mut(&mut self) -> &mut Link {
        &mut self.link
    }
}

/// `Slots::free_head` and a free slot's next when there is none.
const NO_FREE: u32 = u32::MAX;

/// The completion table: slots that are reused through a free list.
///
/// The free list is a stack threaded through the free slots themselves (a
/// free slot's `flags` holds the next one's index): pushing writes the slot
/// being freed, popping reads the slot being taken, so neither touches
/// another slot's cache line nor any other memory but the head, and each is
/// a few instructions (docs/benchmarks.md, "NOP budget"). Reuse is last
/// freed first, as in a slab: the slot reused is the one whose cache lines
/// are warmest. Generations are 64-bit, so the order of reuse does not
/// bring an old id back: no slot is reused 2^64 times.
pub(crate) struct Slots<C> {
    slots: Vec<Slot<C>>,
    /// The top of the free list, or `NO_FREE`.
    free_head: u32,
    /// Slots on the free list.
    free_len: u32,
    /// The owning `IO`'s tag, carried by every id.
    io: u32,
}

impl<C> Slots<C> {
    /// Preallocates `capacity` free slots.
    ///
    /// # Errors
    ///
    /// `ENOMEM` if the memory cannot be reserved (a configuration error, so
    /// it is reported rather than aborting the process).
    pub(crate) fn with_capacity(capacity: u32, io: u32) -> std::io::Result<Slots<C>> {
        let mut slots = Slots {
            slots: Vec::new(),
            free_head: NO_FREE,
            free_len: 0,
            io,
        };
        let out_of_memory = |_| std::io::Error::from_raw_os_error(libc::ENOMEM);
        slots
            .slots
            .try_reserve_exact(capacity as usize)
            .map_err(out_of_memory)?;
        for _ in 0..capacity {
            slots.grow();
        }
        // Lowest index on top: the first operations take the first slots.
        slots.free_head = NO_FREE;
        for index in (0..capacity).rev() {
            slots.slots[index as usize].flags = slots.free_head;
            slots.free_head = index;
        }
        Ok(slots)
    }

    /// Adds a free slot. Out of line: the table grows rarely, and the
    /// allocation that takes a slot stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let index = self.slots.len() as u32;
        assert!(index <= fifo::INDEX_MAX);
        const _: () = assert!(fifo::INDEX_MAX < NO_FREE);
        self.slots.push(Slot {
            link: Link::new(),
            generation: 0,
            state: State::Free,
            awaiting_readiness: false,
            retried: false,
            handle: NO_HANDLE,
            multishot: Multishot::No,
            delivered: false,
            deadline: NO_DEADLINE,
            timed_out: false,
            result: 0,
            flags: self.free_head,
            not_plain: true,
            operation: Operation::Nop,
            callback: Callback::empty(),
        });
        self.free_head = index;
        self.free_len += 1;
    }

    /// Takes a free slot (growing the table if none is free) and fills it.
    #[inline]
    pub(crate) fn alloc(&mut self, operation: Operation, callback: Callback<C>) -> CompletionId {
        self.alloc_on(operation, callback, NO_HANDLE, Multishot::No)
            .0
    }

    /// As [`alloc`](Slots::alloc), for an operation on the handle-table
    /// entry `handle` (or `NO_HANDLE`), delivering its results as
    /// `multishot` says: every field is written once, here.
    #[inline(always)]
    pub(crate) fn alloc_on<S: Store<C>>(
        &mut self,
        operation: Operation,
        callback: S,
        handle: u32,
        multishot: Multishot,
    ) -> (CompletionId, &mut Slot<C>) {
        // One compare for both cases (an empty list's `NO_FREE` is past
        // every index), which also lets the compiler drop the bounds check
        // below.
        if self.free_head as usize >= self.slots.len() {
            // Its own copy of the body, so that the common path's has the
            // bounds check folded.
            self.grow_for_alloc();
            return self.take_free(operation, callback, handle, multishot);
        }
        self.take_free(operation, callback, handle, multishot)
    }

    /// `alloc_on` with the free list empty (anything else out of bounds at
    /// its top is a stray write, and panics): the table grows.
    #[cold]
    #[inline(never)]
    fn grow_for_alloc(&mut self) {
        assert!(self.free_head == NO_FREE);
        self.grow();
    }

    /// The body of `alloc_on`: takes the slot at the top of the free list
    /// and fills it.
    #[inline(always)]
    fn take_free<S: Store<C>>(
        &mut self,
        operation: Operation,
        callback: S,
        handle: u32,
        multishot: Multishot,
    ) -> (CompletionId, &mut Slot<C>) {
        let index = self.free_head;
        let slot = &mut self.slots[index as usize];
        assert!(slot.state == State::Free);
        self.free_head = slot.flags;
        self.free_len -= 1;
        // A free slot has no handler: `release` asserted it when the slot
        // was freed, and nothing stores one in a free slot.
        debug_assert!(!slot.callback.is_some());
        slot.operation = operation;
        callback.store_into(&mut slot.callback);
        slot.handle = handle;
        slot.deadline = NO_DEADLINE;
        slot.result = 0;
        slot.flags = 0;
        // The one-byte fields in their order in the slot, so that the
        // compiler writes them in two stores.
        // An emulated receive from a pool takes a buffer only once data is
        // there, as the kernel does: each round starts with a readiness wait.
        let pooled = matches!(operation, Operation::RecvMulti { .. });
        slot.awaiting_readiness = pooled && multishot == Multishot::Emulated;
        slot.retried = false;
        slot.multishot = multishot;
        slot.delivered = false;
        slot.timed_out = false;
        slot.not_plain = handle != NO_HANDLE
            || multishot != Multishot::No
            || matches!(
                operation,
                Operation::SendZc { .. } | Operation::RecvMulti { .. } | Operation::Shot { .. }
            );
        let id = CompletionId {
            slot: index,
            io: self.io,
            generation: slot.generation,
        };
        (id, slot)
    }

    /// Returns a slot to the free list and bumps its generation, which makes
    /// every id naming the old occupant stale. The callback must be taken out.
    #[inline(always)]
    pub(crate) fn free(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        assert!(!slot.callback.is_some());
        Self::release(slot);
        Self::push_free(&mut self.free_head, &mut self.free_len, slot, index);
    }

    /// Frees slot `index`, just taken off `completed`, and detaches its
    /// callback for the loop to run at once (see [`Detached::call`]), with
    /// the slot's result. The slot is written before the callback is
    /// detached, so that nothing writes the slot after.
    #[inline(always)]
    pub(crate) fn free_detaching(&mut self, index: u32) -> (Detached<C>, i32) {
        let slot = &mut self.slots[index as usize];
        Self::release(slot);
        Self::push_free(&mut self.free_head, &mut self.free_len, slot, index);
        let callback = slot.callback.detach();
        (callback, slot.result)
    }

    /// [`free_detaching`](Slots::free_detaching) for slot `index`, a
    /// completion about to run that is on no list (asserted: `Completed`),
    /// without a bounds check.
    ///
    /// # Safety
    ///
    /// `index` names a slot of this table: it is less than
    /// [`len`](Slots::len). (The table never shrinks, so an index once
    /// checked against it stays in bounds.)
    #[inline(always)]
    #[allow(unsafe_code)]
    pub(crate) unsafe fn free_completed(&mut self, index: u32) -> Detached<C> {
        debug_assert!(index < self.len());
        // SAFETY: `index < self.slots.len()`, the caller's promise.
        let slot = unsafe { self.slots.get_unchecked_mut(index as usize) };
        assert!(slot.state == State::Completed);
        Self::release(slot);
        Self::push_free(&mut self.free_head, &mut self.free_len, slot, index);
        slot.callback.detach()
    }

    /// Whether the entry `raw` names a slot of the table that it completes
    /// as plain with a success ([`Slot::completes_plainly`]): what the
    /// straight run asks of each entry before it runs the callback, the
    /// settle done lazily (docs/architecture.md, "Plain completions run
    /// straight from the completion queue").
    #[inline(always)]
    pub(crate) fn is_plain_success(&self, raw: &RawCompletion) -> bool {
        let index = CompletionId::slot_of(raw.user_data);
        // Out of range: the loop's own entries (`USER_DATA_INTERNAL`).
        self.slots
            .get(index as usize)
            .is_some_and(|slot| slot.completes_plainly(raw))
    }

    /// Frees slot `index`, a plain operation's that
    /// [`is_plain_success`](Slots::is_plain_success) just accepted (still
    /// `Kernel`: its result goes to the callback straight from the entry),
    /// and detaches its callback for the loop to run at once, as
    /// [`free_completed`](Slots::free_completed) does.
    ///
    /// # Safety
    ///
    /// `index` names a slot of this table: it is less than
    /// [`len`](Slots::len).
    #[inline(always)]
    #[allow(unsafe_code)]
    pub(crate) unsafe fn free_plain(&mut self, index: u32) -> Detached<C> {
        debug_assert!(index < self.len());
        // SAFETY: `index < self.slots.len()`, the caller's promise.
        let slot = unsafe { self.slots.get_unchecked_mut(index as usize) };
        // Checked by `is_plain_success` just before, with only the trace
        // between: a `Kernel` slot is on no list, so it needs no unlinking.
        debug_assert!(slot.plain_in_kernel() && !slot.link.is_linked());
        slot.state = State::Free;
        slot.generation = slot.generation.wrapping_add(1);
        Self::push_free(&mut self.free_head, &mut self.free_len, slot, index);
        slot.callback.detach()
    }

    /// Puts `slot`, number `index`, just released, on top of the free list.
    #[inline(always)]
    fn push_free(free_head: &mut u32, free_len: &mut u32, slot: &mut Slot<C>, index: u32) {
        slot.flags = *free_head;
        *free_head = index;
        *free_len += 1;
    }

    /// Marks `slot` free and bumps its generation.
    #[inline(always)]
    fn release(slot: &mut Slot<C>) {
        assert_ne!(slot.state, State::Free);
        assert!(!slot.link.is_linked());
        slot.state = State::Free;
        slot.generation = slot.generation.wrapping_add(1);
    }

    /// The live slot that `id` names, or `None` if the id is stale or free.
    pub(crate) fn get(&self, id: CompletionId) -> Option<&Slot<C>> {
        if id.io != self.io {
            return None;
        }
        let slot = self.slots.get(id.slot as usize)?;
        (slot.generation == id.generation && slot.state != State::Free).then_some(slot)
    }

    pub(crate) fn slot(&self, index: u32) -> &Slot<C> {
        &self.slots[index as usize]
    }

    pub(crate) fn slot_mut(&mut self, index: u32) -> &mut Slot<C> {
        &mut self.slots[index as usize]
    }

    /// The id of the operation currently in slot `index`.
    pub(crate) fn id(&self, index: u32) -> CompletionId {
        CompletionId {
            slot: index,
            io: self.io,
            generation: self.slots[index as usize].generation,
        }
    }

    /// Ages every free slot by `count` generations, as `count` reuses
    /// would: for tests of generation wrapping.
    pub(crate) fn skip_generations(&mut self, count: u64) {
        for slot in &mut self.slots {
            if slot.state == State::Free {
                slot.generation = slot.generation.wrapping_add(count);
            }
        }
    }

    /// Slots not on the free list: counted from the two lengths, so that
    /// taking and freeing a slot keep no count of their own.
    pub(crate) fn in_use(&self) -> u32 {
        self.slots.len() as u32 - self.free_len
    }

    pub(crate) fn len(&self) -> u32 {
        self.slots.len() as u32
    }
}

/// The last line of defence for the ownership rule: a slot whose operation
/// may still be in the kernel is never freed by dropping the table. Whoever
/// drops it (an `IO` whose drop was cut short by a panic, say) leaks those
/// handlers, and with them the buffers the kernel may still write.
impl<C> Drop for Slots<C> {
    fn drop(&mut self) {
        // While unwinding, a second panic from a user's `Drop` would abort:
        // leak every handler then, not only those the kernel may hold.
        let leak_all = std::thread::panicking();
        for slot in &mut self.slots {
            if leak_all || slot.state == State::Kernel {
                std::mem::replace(&mut slot.callback, Callback::empty()).leak();
            }
        }
    }
}

impl<C> Slots<C> {
    /// The slots as the storage of the `unqueued` and `completed` FIFOs.
    /// A slice rather than the table: its length stays in a register, where
    /// the table's would be read again after every link the FIFO writes
    /// (the compiler cannot tell a link from the `Vec`'s length).
    #[inline(always)]
    pub(crate) fn links(&mut self) -> &mut [Slot<C>] {
        &mut self.slots
    }
}
