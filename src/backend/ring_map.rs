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

/// The completion queue of a ring, in a mapping of its own. Unmapped on drop;
/// the kernel keeps the ring's memory while any mapping of it exists.
pub(crate) struct CompletionRing {
    map: NonNull<libc::c_void>,
    map_len: usize,
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
    /// `EOPNOTSUPP` without `IORING_FEAT_SINGLE_MMAP` (Linux < 5.4, which
    /// lacks the `EXT_ARG` the loop needs anyway), or what `mmap` returns.
    pub(crate) fn new(ring: &IoUring<squeue::Entry, cqueue::Entry>) -> io::Result<CompletionRing> {
        let params: *const io_uring::Parameters = ring.params();
        // SAFETY: `Parameters` is a `repr(transparent)` wrapper of the
        // kernel's `io_uring_params`, which `Params` lays out field for
        // field (sizes and alignments asserted above); the reference is
        // live for this call.
        let params = unsafe { &*params.cast::<Params>() };
        if params.features & FEAT_SINGLE_MMAP == 0 {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        // As the crate and liburing size it: one mapping, for both rings.
        let sq_len = params.sq_off.array as usize + params.sq_entries as usize * 4;
        let cq_len = params.cq_off.cqes as usize
            + params.cq_entries as usize * mem::size_of::<RawCompletion>();
        let map_len = sq_len.max(cq_len);
        // SAFETY: a fresh shared mapping of the ring's fd at the rings'
        // offset, of the length the kernel lays them out in; it aliases no
        // Rust object.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                ring.as_raw_fd(),
                OFF_SQ_RING,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(map).expect("mmap returned null");
        let at = |offset: u32| {
            assert!((offset as usize) < map_len);
            // SAFETY: `offset` is within the mapping (asserted).
            unsafe { map.byte_add(offset as usize) }
        };
        let mask = at(params.cq_off.ring_mask).cast::<u32>();
        // SAFETY: the kernel wrote the ring mask at that offset at set-up
        // and never changes it; the mapping is live.
        let mask = unsafe { mask.read() };
        assert!(mask < params.cq_entries);
        // The last entry ends within the mapping: `cq_len <= map_len`.
        let cursor = CqCursor {
            head: at(params.cq_off.head).cast(),
            tail: at(params.cq_off.tail).cast(),
            cqes: at(params.cq_off.cqes).cast(),
            mask,
        };
        let mut completions = CompletionRing {
            map,
            map_len,
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

impl Drop for CompletionRing {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and is
        // unmapped once, here; every cursor copied from it is used only
        // while the ring (its owner, the backend) lives.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}
