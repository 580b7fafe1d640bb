//! The io_uring completion queue, read in place.
//!
//! The io-uring crate reads the completion queue one entry at a time through
//! a borrow of the whole ring (`IoUring::completion`), and its entry's
//! `clone` is a call the compiler cannot inline across the crate. The loop
//! wants to leave plain completions in the queue and run their callbacks
//! from there (docs/architecture.md, "Plain completions run straight from
//! the completion queue"), which a borrow held across callbacks forbids. So
//! the ring's memory is mapped a second time here, as liburing maps it, and
//! read through raw pointers. The crate's own completion queue is never used
//! after set-up: this is the only code that moves the queue's head.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::AsRawFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

use io_uring::{cqueue, squeue, IoUring};

use super::RawCompletion;

/// `struct io_sqring_offsets` (linux/io_uring.h).
#[repr(C)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_cqring_offsets` (linux/io_uring.h).
#[repr(C)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_uring_params` (linux/io_uring.h), of which the crate's
/// `Parameters` is a `repr(transparent)` wrapper (its documentation says so).
#[repr(C)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

const _: () = assert!(mem::size_of::<Params>() == 120);
const _: () = assert!(mem::size_of::<io_uring::Parameters>() == mem::size_of::<Params>());
const _: () = assert!(mem::align_of::<io_uring::Parameters>() == mem::align_of::<Params>());
// A completion entry is `struct io_uring_cqe` without `big_cqe`: the ring
// is set up with 16-byte entries (no `IORING_SETUP_CQE32`).
const _: () = assert!(mem::size_of::<RawCompletion>() == 16);
const _: () = assert!(mem::size_of::<cqueue::Entry>() == 16);

/// `IORING_FEAT_SINGLE_MMAP`: one mapping holds both rings (Linux 5.4).
const FEAT_SINGLE_MMAP: u32 = 1 << 0;
/// `IORING_OFF_SQ_RING`: the mmap offset of the rings.
const OFF_SQ_RING: libc::off_t = 0;
/// `IORING_OFF_SQES`: the mmap offset of the submission entries.
const OFF_SQES: libc::off_t = 0x1000_0000;
/// `IORING_SQ_CQ_OVERFLOW`, `IORING_SQ_TASKRUN`: the kernel holds
/// completions back, and an `io_uring_enter` would post them.
const SQ_CQ_OVERFLOW: u32 = 1 << 1;
const SQ_TASKRUN: u32 = 1 << 2;
/// `IORING_SQ_NEED_WAKEUP`: an SQPOLL ring's kernel thread fell asleep.
const SQ_NEED_WAKEUP: u32 = 1 << 0;
/// `IORING_ENTER_GETEVENTS`, `_SQ_WAKEUP`, `_EXT_ARG`.
const ENTER_GETEVENTS: u32 = 1 << 0;
const ENTER_SQ_WAKEUP: u32 = 1 << 1;
const ENTER_EXT_ARG: u32 = 1 << 3;
/// `IORING_SETUP_IOPOLL`; `IORING_FEAT_NODROP`.
const SETUP_IOPOLL: u32 = 1 << 0;
const FEAT_NODROP: u32 = 1 << 1;

/// `struct io_uring_getevents_arg` (linux/io_uring.h), for `EXT_ARG`.
#[repr(C)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    /// `min_wait_usec` since Linux 6.12; 0 is "none".
    pad: u32,
    ts: u64,
}

/// `struct __kernel_timespec`.
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// The ring's set-up parameters, as the kernel filled them in.
fn params(ring: &IoUring<squeue::Entry, cqueue::Entry>) -> &Params {
    let params: *const io_uring::Parameters = ring.params();
    // SAFETY: `Parameters` is a `repr(transparent)` wrapper of the
    // kernel's `io_uring_params`, which `Params` lays out field for field
    // (sizes and alignments asserted above); it lives as long as `ring`.
    unsafe { &*params.cast::<Params>() }
}

/// A shared mapping of part of a ring's memory, unmapped on drop. The
/// kernel keeps the ring's memory while any mapping of it exists, so each
/// view below owns its own and outlives no other's.
struct Mapping {
    start: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of `ring`'s fd at `offset`: the rings (both in one
    /// mapping, so `IORING_FEAT_SINGLE_MMAP` is required: `EOPNOTSUPP`, on
    /// Linux < 5.4, which lacks the `EXT_ARG` the loop needs anyway), or
    /// the submission entries.
    fn new(
        ring: &IoUring<squeue::Entry, cqueue::Entry>,
        offset: libc::off_t,
        len: usize,
    ) -> io::Result<Mapping> {
        if params(ring).features & FEAT_SINGLE_MMAP == 0 {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        // SAFETY: a fresh shared mapping of the ring's fd, at one of the
        // offsets the kernel maps and of a length within what it lays out
        // there (the lengths the crate and liburing map); it aliases no
        // Rust object.
        let start = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                ring.as_raw_fd(),
                offset,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = NonNull::new(start.cast::<u8>()).expect("mmap returned null");
        Ok(Mapping { start, len })
    }

    /// The rings of `ring`, mapped again.
    fn rings(ring: &IoUring<squeue::Entry, cqueue::Entry>) -> io::Result<Mapping> {
        let params = params(ring);
        let sq_len = params.sq_off.array as usize + params.sq_entries as usize * 4;
        let cq_len = params.cq_off.cqes as usize
            + params.cq_entries as usize * mem::size_of::<RawCompletion>();
        Mapping::new(ring, OFF_SQ_RING, sq_len.max(cq_len))
    }

    /// The address `offset` bytes in, for a `T` that ends within the
    /// mapping (asserted).
    fn at<T>(&self, offset: u32) -> NonNull<T> {
        assert!(offset as usize + mem::size_of::<T>() <= self.len);
        // SAFETY: within the mapping, as asserted.
        unsafe { self.start.add(offset as usize) }.cast()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and is
        // unmapped once, here; every pointer into it is used only while
        // its owner (a view below, owned by the backend) lives.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.len) };
    }
}

/// The completion queue of a ring, in a mapping of its own.
pub(crate) struct CompletionRing {
    _map: Mapping,
    cursor: CqCursor,
    /// The queue's tail as last loaded: entries up to it are the kernel's
    /// results, which it does not touch until the head passes them.
    tail: u32,
}

/// Where a completion queue's entries and head are: copied out of
/// [`CompletionRing`] so that a loop can hold them across calls that need
/// the whole `IO` (callbacks). Valid while its ring lives.
#[derive(Clone, Copy)]
pub(crate) struct CqCursor {
    head: NonNull<AtomicU32>,
    tail: NonNull<AtomicU32>,
    cqes: NonNull<RawCompletion>,
    mask: u32,
}

impl CompletionRing {
    /// Maps the rings of `ring` again, for its completion queue.
    ///
    /// # Errors
    ///
    /// As [`Mapping::new`].
    pub(crate) fn new(ring: &IoUring<squeue::Entry, cqueue::Entry>) -> io::Result<CompletionRing> {
        let params = params(ring);
        let map = Mapping::rings(ring)?;
        // SAFETY: the kernel wrote the ring mask there at set-up and never
        // changes it; the mapping is live.
        let mask = unsafe { map.at::<u32>(params.cq_off.ring_mask).read() };
        assert!(mask < params.cq_entries);
        // The entries end within the mapping (`Mapping::rings` sized it so).
        let cursor = CqCursor {
            head: map.at(params.cq_off.head),
            tail: map.at(params.cq_off.tail),
            cqes: map.at(params.cq_off.cqes),
            mask,
        };
        let mut completions = CompletionRing {
            _map: map,
            cursor,
            tail: 0,
        };
        completions.tail = completions.head();
        Ok(completions)
    }

    /// The raw cursor, for a loop that reads the queue across callbacks.
    #[inline(always)]
    pub(crate) fn cursor(&self) -> CqCursor {
        self.cursor
    }

    /// The queue's head: the first entry not yet consumed.
    #[inline(always)]
    pub(crate) fn head(&self) -> u32 {
        // SAFETY: the head is in the live mapping. Only this code, on the
        // thread that owns the ring, writes it, so a relaxed load sees the
        // last store.
        unsafe { self.cursor.head.as_ref() }.load(Ordering::Relaxed)
    }

    /// Loads the tail: returns the head and the tail, the entries between
    /// them the kernel's results, in order.
    #[inline(always)]
    pub(crate) fn sync(&mut self) -> (u32, u32) {
        // SAFETY: the tail is in the live mapping; the kernel stores it
        // with release ordering after writing the entries before it, so
        // this acquire load makes them visible.
        self.tail = unsafe { self.cursor.tail.as_ref() }.load(Ordering::Acquire);
        (self.head(), self.tail)
    }

    /// The entry at `index`, which must lie between the head and the tail
    /// last loaded by [`sync`](Self::sync) (asserted).
    pub(crate) fn entry(&self, index: u32) -> RawCompletion {
        let head = self.head();
        assert!(index.wrapping_sub(head) < self.tail.wrapping_sub(head));
        // SAFETY: between the head and the tail, as asserted.
        unsafe { self.cursor.entry(index) }
    }

    /// Consumes the entries up to `head`, which must lie between the head
    /// and the tail last loaded (asserted): the kernel may reuse their
    /// places from now on.
    #[inline(always)]
    pub(crate) fn consume_to(&mut self, head: u32) {
        let old = self.head();
        assert!(head.wrapping_sub(old) <= self.tail.wrapping_sub(old));
        // SAFETY: the new head lies between the old one and the tail.
        unsafe { self.cursor.consume_to(head) };
    }
}

impl CqCursor {
    /// The entry at `index`.
    ///
    /// # Safety
    ///
    /// The ring this cursor came from is alive, and `index` lies between the
    /// queue's head and a tail loaded since (`CompletionRing::sync`): an
    /// entry the kernel wrote and does not touch until the head passes it.
    #[inline(always)]
    pub(crate) unsafe fn entry(&self, index: u32) -> RawCompletion {
        let place = (index & self.mask) as usize;
        // SAFETY: `place <= mask < cq_entries`, so the entry is within the
        // mapping (the ring is alive: the caller's promise); the kernel
        // wrote it before the tail that covers it (the caller's promise)
        // and does not write it again until it is consumed. `RawCompletion`
        // is `repr(C)` with `io_uring_cqe`'s fields and size.
        unsafe { self.cqes.as_ptr().wrapping_add(place).read() }
    }

    /// Moves the queue's head to `head`, handing back the places of the
    /// entries before it.
    ///
    /// # Safety
    ///
    /// The ring this cursor came from is alive, and `head` lies between the
    /// current head and a tail loaded since, with every entry before it
    /// read for the last time.
    #[inline(always)]
    pub(crate) unsafe fn consume_to(&self, head: u32) {
        // SAFETY: the head is in the live mapping (the caller's promise);
        // the release store orders the reads of the entries before it.
        unsafe { self.head.as_ref() }.store(head, Ordering::Release);
    }
}

/// The submission queue of a ring, in mappings of its own: entries are
/// written into the ring where they go, and each push stores the tail the
/// kernel reads (release), with no tail of its own to keep and publish
/// later, and no head loaded until the queue looks full, where the crate's
/// `submission()` loads both ends for every borrow.
pub(crate) struct SubmissionRing {
    _rings: Mapping,
    _sqes_map: Mapping,
    /// The kernel's head (it consumes from there), the tail (only this code
    /// writes it), and the flags the kernel sets.
    head: NonNull<AtomicU32>,
    shared_tail: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    sqes: NonNull<squeue::Entry>,
    mask: u32,
    entries: u32,
    /// The tail may grow up to here before the head is loaded again: the
    /// head as last loaded, plus the queue's size.
    limit: u32,
    sqpoll: bool,
    iopoll: bool,
    nodrop: bool,
    /// The ring's fd, which the crate's `IoUring` beside this owns.
    fd: libc::c_int,
}

impl SubmissionRing {
    /// Maps the rings and the submission entries of `ring` again, for its
    /// submission queue.
    ///
    /// # Errors
    ///
    /// As [`Mapping::new`].
    pub(crate) fn new(ring: &IoUring<squeue::Entry, cqueue::Entry>) -> io::Result<SubmissionRing> {
        let params = params(ring);
        let rings = Mapping::rings(ring)?;
        let sqes_len = params.sq_entries as usize * mem::size_of::<squeue::Entry>();
        let sqes_map = Mapping::new(ring, OFF_SQES, sqes_len)?;
        // SAFETY: the kernel wrote the mask and the size there at set-up
        // and never changes them; the mapping is live.
        let mask = unsafe { rings.at::<u32>(params.sq_off.ring_mask).read() };
        // SAFETY: as for the mask.
        let entries = unsafe { rings.at::<u32>(params.sq_off.ring_entries).read() };
        assert!(entries == params.sq_entries);
        assert!(mask < entries);
        let mut submissions = SubmissionRing {
            head: rings.at(params.sq_off.head),
            shared_tail: rings.at(params.sq_off.tail),
            flags: rings.at(params.sq_off.flags),
            sqes: sqes_map.at(0),
            mask,
            entries,
            limit: 0,
            sqpoll: ring.params().is_setup_sqpoll(),
            iopoll: params.flags & SETUP_IOPOLL != 0,
            nodrop: params.features & FEAT_NODROP != 0,
            fd: ring.as_raw_fd(),
            _rings: rings,
            _sqes_map: sqes_map,
        };
        submissions.limit = submissions.load_head().wrapping_add(entries);
        Ok(submissions)
    }

    /// Loads the kernel's head.
    #[inline(always)]
    fn load_head(&self) -> u32 {
        // SAFETY: the head is in the live mapping; the acquire load orders
        // the kernel's reads of the entries it passed before our reuse of
        // their places.
        unsafe { self.head.as_ref() }.load(Ordering::Acquire)
    }

    /// Pushes the entry `entry` builds, or returns false if the queue is
    /// full. The entry is built only once there is room for it, in the
    /// place it goes: built before the check, part of it went through a
    /// stack temporary (2 instructions per push).
    ///
    /// # Safety
    ///
    /// Every pointer in the entry stays valid for what the kernel does with
    /// it until its completion is reaped.
    #[inline(always)]
    pub(crate) unsafe fn push(&mut self, entry: impl FnOnce() -> squeue::Entry) -> bool {
        // In locals: the entry's write below could alias `self` as far as
        // the compiler knows, and would make it load them again.
        let shared_tail = self.shared_tail;
        let tail = self.tail();
        if tail == self.limit && !self.refresh_limit(tail) {
            return false;
        }
        let place = (tail & self.mask) as usize;
        // SAFETY: `place <= mask < entries`, so the entry is within the
        // mapping; the place is free: the tail is less than a queue's size
        // ahead of the head last loaded (`limit`), and the kernel has
        // passed every place before that head. The kernel reads the entry
        // only after the tail that covers it is stored, just below.
        unsafe { self.sqes.as_ptr().wrapping_add(place).write(entry()) };
        // Published at once, whatever the ring: an SQPOLL ring's kernel
        // thread reads the tail any time, and any other ring's kernel reads
        // it only in `io_uring_enter`, so publishing early changes nothing
        // it sees, and no flag is tested per push.
        // SAFETY: the tail is in the live mapping; the release store orders
        // the entry's write before it.
        unsafe { shared_tail.as_ref() }.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// The tail: only this code writes it (the crate's `submission()` is
    /// never used), so it is read back with no ordering.
    #[inline(always)]
    fn tail(&self) -> u32 {
        // SAFETY: the tail is in the live mapping.
        unsafe { self.shared_tail.as_ref() }.load(Ordering::Relaxed)
    }

    /// Loads the head again, for a queue that looked full at `tail` (once
    /// per queue's worth of pushes at most). Inline all the same: a call
    /// there, rare as it is, clobbers registers across the submit's loop,
    /// which then keeps and reloads its values around it (2 instructions
    /// per push, where this costs 5 on the rare path).
    #[inline(always)]
    fn refresh_limit(&mut self, tail: u32) -> bool {
        self.limit = self.load_head().wrapping_add(self.entries);
        tail != self.limit
    }

    /// Entries pushed and not yet consumed by the kernel.
    #[inline(always)]
    pub(crate) fn len(&self) -> u32 {
        self.tail().wrapping_sub(self.load_head())
    }

    /// Room for this many more entries.
    #[inline(always)]
    pub(crate) fn room(&self) -> u32 {
        self.entries - self.len()
    }

    /// Whether the kernel holds completions back (CQ overflow, deferred
    /// task work), which an `io_uring_enter` would post.
    #[inline(always)]
    pub(crate) fn completions_held(&self) -> bool {
        // SAFETY: the flags are in the live mapping; the kernel sets and
        // clears them, and a stale answer only costs or saves a syscall.
        let flags = unsafe { self.flags.as_ref() }.load(Ordering::Acquire);
        flags & (SQ_CQ_OVERFLOW | SQ_TASKRUN) != 0
    }

    /// One `io_uring_enter`: submits every entry pushed, and
    /// waits for `want` completions, for at most `timeout_ns` if given, as
    /// the crate's `submit_and_wait` and `submit_with_args` do (the same
    /// flags, and no syscall for an SQPOLL ring whose thread is awake when
    /// there is nothing to wait for or flush), without building its
    /// `Submitter` and loading both of the queue's ends again. Returns the
    /// raw result: entries submitted, or an errno.
    pub(crate) fn enter(&mut self, want: u32, timeout_ns: Option<u64>) -> io::Result<()> {
        let to_submit = self.len();
        // SAFETY: the flags are in the live mapping.
        let flags = unsafe { self.flags.as_ref() }.load(Ordering::Acquire);
        let overflow = flags & SQ_CQ_OVERFLOW != 0;
        let taskrun = flags & SQ_TASKRUN != 0;
        let mut enter_flags = 0;
        // Deferred task work is only run by an enter carrying GETEVENTS.
        if want > 0 || self.iopoll || overflow || taskrun {
            enter_flags |= ENTER_GETEVENTS;
        }
        if self.sqpoll {
            // Orders the tail's store before the flag's load (the crate's
            // `SubmissionQueue::need_wakeup` discusses it).
            std::sync::atomic::fence(Ordering::SeqCst);
            // SAFETY: as above.
            let flags = unsafe { self.flags.as_ref() }.load(Ordering::Relaxed);
            if flags & SQ_NEED_WAKEUP != 0 {
                enter_flags |= ENTER_SQ_WAKEUP;
            } else if want == 0 && !((overflow && self.nodrop) || taskrun) {
                // The kernel thread is polling and awake.
                return Ok(());
            }
        }
        let timespec;
        let arg;
        let (arg_ptr, arg_len) = match timeout_ns {
            None => (
                ptr::null::<libc::c_void>(),
                mem::size_of::<libc::sigset_t>(),
            ),
            Some(timeout_ns) => {
                timespec = KernelTimespec {
                    tv_sec: (timeout_ns / 1_000_000_000) as i64,
                    tv_nsec: (timeout_ns % 1_000_000_000) as i64,
                };
                arg = GeteventsArg {
                    sigmask: 0,
                    sigmask_sz: mem::size_of::<libc::sigset_t>() as u32,
                    pad: 0,
                    ts: ptr::addr_of!(timespec) as u64,
                };
                enter_flags |= ENTER_EXT_ARG;
                let arg_ptr: *const GeteventsArg = &arg;
                (arg_ptr.cast(), mem::size_of::<GeteventsArg>())
            }
        };
        // SAFETY: `io_uring_enter` on the ring's fd, alive while the
        // `IoUring` beside this lives; the argument, if any, is an
        // `io_uring_getevents_arg` on this stack frame, naming a timespec on
        // it too and no signal mask, both read by the kernel during the call
        // only; without one, a null sigmask of the size the kernel checks.
        let result = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.fd,
                to_submit,
                want,
                enter_flags,
                arg_ptr,
                arg_len,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
