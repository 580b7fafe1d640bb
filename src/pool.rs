//! Provided buffer pools: `count` buffers of `buffer_bytes` each, owned by
//! the `IO`, from which a multishot receive takes a buffer only when data
//! arrives. Ten thousand idle connections then hold no receive buffer each.
//!
//! On io_uring the pool is a registered buffer ring (`IORING_REGISTER_PBUF_RING`,
//! Linux 5.19): the kernel picks a buffer for each receive and names it in
//! the completion (`IORING_CQE_F_BUFFER` and the buffer id). Elsewhere, and
//! where the kernel refuses the ring, the loop keeps the same pool as a free
//! list and emulates the kernel: wait for readiness, then take a buffer and
//! receive into it. Either way a buffer reaches the application as a
//! [`PoolBuf`], and goes back to the pool when the `PoolBuf` is dropped,
//! with no allocation.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use crate::backend::Backend;
use crate::io::IO;
use crate::sys;

/// The most buffers a pool may have: the kernel's limit for a buffer ring.
pub const POOL_BUFFERS_MAX: u16 = 1 << 15;

/// `IORING_CQE_F_BUFFER`: the completion names a buffer of the pool.
pub(crate) const CQE_F_BUFFER: u32 = 1;
/// Where the buffer id sits in the completion's flags.
const CQE_BUFFER_SHIFT: u32 = 16;

/// The buffer id a completion's flags name, if any.
pub(crate) fn buffer_of(flags: u32) -> Option<u16> {
    (flags & CQE_F_BUFFER != 0).then_some((flags >> CQE_BUFFER_SHIFT) as u16)
}

/// The completion flags that name buffer `bid`, as the kernel would set them.
pub(crate) fn flags_naming(bid: u16) -> u32 {
    CQE_F_BUFFER | (u32::from(bid) << CQE_BUFFER_SHIFT)
}

/// A pool of receive buffers registered with an [`IO`]: a `Copy` name, like
/// a [`Handle`](crate::Handle). Made by [`IO::register_buf_pool`], used by
/// [`IO::recv_multi`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BufPool {
    pub(crate) index: u16,
    pub(crate) io: u32,
}

/// A buffer of a pool, holding received bytes: it derefs to them. Dropping
/// it gives the buffer back to the pool (to the kernel's ring on io_uring),
/// without allocating. It may outlive its `IO`. It is an [`IoBuf`](crate::IoBuf),
/// so it can be sent on as it is (an echo server copies nothing); it goes
/// back to the pool when the send hands it back and it is dropped.
pub struct PoolBuf {
    pool: Rc<Pool>,
    bid: Option<u16>,
    /// At most `buffer_bytes`, a `u32`: kept small so that a handler of a
    /// send of a `PoolBuf` (or a slice of one) stays inline.
    len: u32,
}

impl PoolBuf {
    /// The buffer's id in its pool (`None` for the empty result of an end
    /// of stream, which holds no buffer).
    pub fn id(&self) -> Option<u16> {
        self.bid
    }
}

const _: () = assert!(std::mem::size_of::<PoolBuf>() <= 16);

impl Deref for PoolBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self.bid {
            Some(bid) => {
                // SAFETY: while this PoolBuf holds `bid`, the buffer is in
                // neither the kernel's ring nor the free list, so nothing
                // writes it; the kernel (or the emulation) initialized its
                // first `len` bytes, and `len <= buffer_bytes` (checked in
                // `take`). The memory lives as long as the pool, which this
                // value keeps alive.
                unsafe { std::slice::from_raw_parts(self.pool.buffer_ptr(bid), self.len as usize) }
            }
            None => &[],
        }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        if let Some(bid) = self.bid.take() {
            self.pool.give_back(bid);
        }
    }
}

// SAFETY: the bytes live in the pool's allocation, which this value keeps
// alive (an `Rc`) and which never moves; while this value holds the buffer,
// nothing else writes it (see `Deref`), and its first `len` bytes are
// initialized.
unsafe impl crate::buf::IoBuf for PoolBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.deref().as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len as usize
    }
    fn bytes_total(&self) -> usize {
        self.len as usize
    }
}

impl fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuf")
            .field("id", &self.bid)
            .field("len", &self.len)
            .finish()
    }
}

/// The buffers of one pool and who has each.
pub(crate) struct Pool {
    memory: NonNull<u8>,
    layout: Layout,
    buffer_bytes: u32,
    count: u16,
    state: RefCell<PoolState>,
}

struct PoolState {
    /// The registered ring, while the kernel picks the buffers.
    ring: Option<Ring>,
    /// Buffers the loop may pick, when it emulates the kernel.
    free: Vec<u16>,
}

/// A buffer ring shared with the kernel: entries the kernel consumes from
/// its head, and that we append to at `tail`.
struct Ring {
    entries: NonNull<BufRingEntry>,
    layout: Layout,
    mask: u16,
    tail: u16,
}

impl Pool {
    /// A pool of `count` buffers of `buffer_bytes`, all free.
    fn new(count: u16, buffer_bytes: u32) -> io::Result<Pool> {
        let invalid = || sys::errno(libc::EINVAL);
        if count == 0 || count > POOL_BUFFERS_MAX || buffer_bytes == 0 {
            return Err(invalid());
        }
        let total = usize::from(count)
            .checked_mul(buffer_bytes as usize)
            .ok_or_else(invalid)?;
        let layout = Layout::from_size_align(total, 64).map_err(|_| invalid())?;
        // SAFETY: the layout has a non-zero size (count and bytes are > 0).
        let memory = unsafe { alloc::alloc(layout) };
        let memory = NonNull::new(memory).ok_or_else(|| sys::errno(libc::ENOMEM))?;
        Ok(Pool {
            memory,
            layout,
            buffer_bytes,
            count,
            state: RefCell::new(PoolState {
                ring: None,
                free: (0..count).rev().collect(),
            }),
        })
    }

    pub(crate) fn buffer_bytes(&self) -> u32 {
        self.buffer_bytes
    }

    /// The first byte of buffer `bid`.
    pub(crate) fn buffer_ptr(&self, bid: u16) -> *mut u8 {
        assert!(bid < self.count);
        let offset = usize::from(bid) * self.buffer_bytes as usize;
        // SAFETY: `offset` is within the allocation: bid < count, and the
        // allocation is count * buffer_bytes bytes.
        unsafe { self.memory.as_ptr().add(offset) }
    }

    /// Whether the kernel picks this pool's buffers.
    pub(crate) fn is_native(&self) -> bool {
        self.state.borrow().ring.is_some()
    }

    /// Takes a free buffer for an emulated receive, if one is left.
    pub(crate) fn pick(&self) -> Option<u16> {
        self.state.borrow_mut().free.pop()
    }

    /// Gives buffer `bid` back: to the kernel's ring, or to the free list.
    pub(crate) fn give_back(&self, bid: u16) {
        assert!(bid < self.count);
        let mut state = self.state.borrow_mut();
        match &mut state.ring {
            Some(ring) => ring.push(bid, self.buffer_ptr(bid), self.buffer_bytes),
            None => {
                debug_assert!(!state.free.contains(&bid));
                assert!(state.free.len() < usize::from(self.count));
                state.free.push(bid);
            }
        }
    }

    /// Hands buffer `bid`, filled with `len` bytes, to the application.
    pub(crate) fn take(self: &Rc<Self>, bid: Option<u16>, len: usize) -> PoolBuf {
        assert!(len <= self.buffer_bytes as usize);
        assert!(bid.is_some() || len == 0);
        PoolBuf {
            pool: Rc::clone(self),
            bid,
            len: len as u32,
        }
    }

    /// Builds a ring holding every buffer, for registration as group `bgid`.
    fn make_ring(&self) -> io::Result<Ring> {
        let entries_count = self.count.next_power_of_two();
        let bytes = usize::from(entries_count) * std::mem::size_of::<BufRingEntry>();
        // The kernel wants the ring page-aligned.
        let layout = Layout::from_size_align(bytes, 4096).map_err(|_| sys::errno(libc::EINVAL))?;
        // SAFETY: a non-zero size (at least one 16-byte entry).
        let entries = unsafe { alloc::alloc_zeroed(layout) };
        let entries = NonNull::new(entries.cast()).ok_or_else(|| sys::errno(libc::ENOMEM))?;
        let mut ring = Ring {
            entries,
            layout,
            mask: entries_count - 1,
            tail: 0,
        };
        for bid in 0..self.count {
            ring.push(bid, self.buffer_ptr(bid), self.buffer_bytes);
        }
        Ok(ring)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: `memory` was allocated with `layout` in `Pool::new`; the
        // last owner is going, and the IO leaks a pool (never drops it)
        // while the kernel may still write into it.
        unsafe { alloc::dealloc(self.memory.as_ptr(), self.layout) };
    }
}

impl Ring {
    /// Appends buffer `bid` and publishes it to the kernel.
    fn push(&mut self, bid: u16, addr: *mut u8, len: u32) {
        let index = usize::from(self.tail & self.mask);
        // SAFETY: `index <= mask`, within the `mask + 1` entries allocated.
        let entry = unsafe { self.entries.as_ptr().add(index) };
        // SAFETY: a valid, aligned, initialized entry (zeroed at first); the
        // kernel only reads entries between its head and our tail, and this
        // one is past the tail until the store below, so nothing else
        // touches it meanwhile.
        let entry = unsafe { &mut *entry };
        entry.set_addr(addr as u64);
        entry.set_len(len);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the first entry is allocated and initialized, as
        // `BufRingEntry::tail` requires. The kernel reads the tail
        // concurrently, so it is written atomically, with release ordering
        // so that the entry's contents are visible before the new tail.
        let tail = unsafe { BufRingEntry::tail(self.entries.as_ptr()) };
        // SAFETY: `tail` points at the aligned u16 tail field of the first
        // entry; AtomicU16 has u16's layout, and every access to the field
        // from this side is through this atomic.
        let tail = unsafe { &*tail.cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: allocated with `layout` in `make_ring`; dropped only once
        // the kernel no longer uses it (unregistered, or never registered).
        unsafe { alloc::dealloc(self.entries.as_ptr().cast(), self.layout) };
    }
}

impl<C> IO<C> {
    /// Registers a pool of `count` receive buffers of `buffer_bytes` each,
    /// for [`recv_multi`](IO::recv_multi). The memory is allocated once,
    /// here; buffers then circulate between the kernel and the application
    /// with no allocation.
    ///
    /// Backends: io_uring registers a buffer ring (Linux 5.19); epoll, the
    /// simulator and kernels that refuse the ring keep the same pool in
    /// user space, with the same behaviour.
    ///
    /// # Errors
    ///
    /// `EINVAL` for zero buffers, zero bytes, more than [`POOL_BUFFERS_MAX`]
    /// buffers or more than 65,536 pools; `ENOMEM` if the memory cannot be
    /// allocated; what `io_uring_register` returns for other failures.
    pub fn register_buf_pool(&mut self, count: u16, buffer_bytes: u32) -> io::Result<BufPool> {
        let index = u16::try_from(self.pools.len()).map_err(|_| sys::errno(libc::EINVAL))?;
        let pool = Pool::new(count, buffer_bytes)?;
        if self.multishot_native() {
            self.register_ring(&pool, index)?;
        }
        self.pools.push(Rc::new(pool));
        Ok(BufPool {
            index,
            io: self.tag(),
        })
    }

    /// Hands the pool's buffers to the kernel as buffer group `index`, or
    /// leaves the pool emulated if the kernel has no buffer rings.
    fn register_ring(&mut self, pool: &Pool, index: u16) -> io::Result<()> {
        let ring = pool.make_ring()?;
        let entries = ring.mask + 1;
        // SAFETY: the ring's memory stays allocated, unmoved, until the IO
        // unregisters the group on drop, or leaks it if the kernel may still
        // use it (`IO::drop`).
        let registered = unsafe {
            self.backend
                .register_buf_ring(ring.entries.as_ptr() as u64, entries, index)
        };
        match registered {
            Ok(()) => {
                pool.state.borrow_mut().ring = Some(ring);
                pool.state.borrow_mut().free.clear();
                Ok(())
            }
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                ) =>
            {
                tracing::debug!(target: "ringio", %error, "no buffer rings; the loop emulates the pool");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// The pool `pool` names, if it is this `IO`'s.
    pub(crate) fn pool(&self, pool: BufPool) -> Option<&Rc<Pool>> {
        if pool.io != self.tag() {
            return None;
        }
        self.pools.get(usize::from(pool.index))
    }

    /// Unregisters every buffer ring, once the kernel holds no operation
    /// that could use one; the pools then live on in user space for the
    /// `PoolBuf`s still out.
    pub(crate) fn unregister_pools(&mut self) {
        for index in 0..self.pools.len() {
            let ring = self.pools[index].state.borrow_mut().ring.take();
            if let Some(ring) = ring {
                // Unregistering only fails for a group never registered.
                let _ = self.backend.unregister_buf_ring(index as u16);
                drop(ring);
            }
        }
    }

    /// Forgets every pool without freeing it: the kernel may still write
    /// into one.
    pub(crate) fn leak_pools(&mut self) {
        for pool in self.pools.drain(..) {
            std::mem::forget(pool);
        }
    }
}
