//! Registered buffers for O_DIRECT engines (`IORING_REGISTER_BUFFERS`):
//! `count` page-aligned buffers of `buffer_bytes`, registered with the
//! kernel once, then read into and written from with
//! [`IO::read_fixed`] and [`IO::write_fixed`], which skip the kernel's
//! per-operation page pinning.
//!
//! A buffer is checked out of its set as a [`FixedBuf`] (like a
//! [`PoolBuf`](crate::PoolBuf)); it goes into an operation and comes back
//! in its callback, on success and on error, as every buffer does, and
//! goes back to the set when dropped. On epoll and the simulator, and on
//! kernels that refuse the registration, the same set is kept in user
//! space and the operations are plain reads and writes, with the same
//! results.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::rc::Rc;

use crate::backend::Backend;
use crate::buf::{IoBuf, IoBufMut};
use crate::callback::Handler;
use crate::completion::{CompletionId, Operation};
use crate::handle::Handle;
use crate::io::IO;
use crate::sys;

/// The alignment of every registered buffer: a page, which satisfies any
/// device's O_DIRECT rule.
const FIXED_ALIGN_BYTES: usize = 4096;

/// A set of registered buffers (see the module docs). Cloning it names the
/// same set.
#[derive(Clone)]
pub struct FixedBufs {
    set: Rc<FixedSet>,
}

/// One registered buffer, checked out of its [`FixedBufs`]. It derefs to
/// its first [`len`](FixedBuf::len) bytes; [`as_mut_capacity`] and
/// [`set_len`](FixedBuf::set_len) fill it for a write. A read sets its
/// length to the bytes read. Dropping it gives it back to its set.
///
/// [`as_mut_capacity`]: FixedBuf::as_mut_capacity
pub struct FixedBuf {
    set: Rc<FixedSet>,
    index: u16,
    len: u32,
}

const _: () = assert!(std::mem::size_of::<FixedBuf>() <= 16);

/// The memory of a set, and which buffers are checked out.
pub(crate) struct FixedSet {
    memory: NonNull<u8>,
    layout: Layout,
    buffer_bytes: u32,
    count: u16,
    /// The tag of the `IO` the buffers are registered with.
    io: u32,
    free: RefCell<Vec<u16>>,
}

impl FixedSet {
    fn buffer_ptr(&self, index: u16) -> *mut u8 {
        assert!(index < self.count);
        let offset = usize::from(index) * self.buffer_bytes as usize;
        // SAFETY: within the allocation of count * buffer_bytes bytes.
        unsafe { self.memory.as_ptr().add(offset) }
    }

    fn iovecs(&self) -> Vec<libc::iovec> {
        (0..self.count)
            .map(|index| libc::iovec {
                iov_base: self.buffer_ptr(index).cast(),
                iov_len: self.buffer_bytes as usize,
            })
            .collect()
    }
}

impl Drop for FixedSet {
    fn drop(&mut self) {
        // SAFETY: allocated with `layout` in `register_fixed_buffers`; the
        // last owner is going. The IO holds one owner while the kernel has
        // the buffers registered, and leaks it if the kernel may still
        // write into them (`IO::drop`).
        unsafe { alloc::dealloc(self.memory.as_ptr(), self.layout) };
    }
}

impl FixedBufs {
    /// Checks buffer `index` out, if it is free.
    pub fn take(&self, index: u16) -> Option<FixedBuf> {
        let mut free = self.set.free.borrow_mut();
        let position = free.iter().position(|&free| free == index)?;
        free.swap_remove(position);
        Some(self.checked_out(index))
    }

    /// Checks out any free buffer.
    pub fn take_any(&self) -> Option<FixedBuf> {
        let index = self.set.free.borrow_mut().pop()?;
        Some(self.checked_out(index))
    }

    fn checked_out(&self, index: u16) -> FixedBuf {
        FixedBuf {
            set: Rc::clone(&self.set),
            index,
            len: 0,
        }
    }

    /// How many buffers the set has.
    pub fn count(&self) -> u16 {
        self.set.count
    }

    /// How many are free now.
    pub fn free(&self) -> usize {
        self.set.free.borrow().len()
    }

    /// Each buffer's size in bytes.
    pub fn buffer_bytes(&self) -> u32 {
        self.set.buffer_bytes
    }
}

impl fmt::Debug for FixedBufs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBufs")
            .field("count", &self.set.count)
            .field("buffer_bytes", &self.set.buffer_bytes)
            .field("free", &self.free())
            .finish()
    }
}

impl FixedBuf {
    /// The buffer's index in its set (what the kernel names it by).
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The bytes it holds: what a write sends, what a read filled.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its whole capacity, to fill before a write: every byte is
    /// initialized (the set is zeroed when made).
    pub fn as_mut_capacity(&mut self) -> &mut [u8] {
        let capacity = self.set.buffer_bytes as usize;
        // SAFETY: while this value holds the buffer it is checked out, so
        // no other `FixedBuf` and no operation uses it (an operation owns
        // the `FixedBuf` while in flight); its bytes are initialized.
        unsafe { std::slice::from_raw_parts_mut(self.set.buffer_ptr(self.index), capacity) }
    }

    /// Sets how many bytes it holds, up to its capacity (more is cut).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.set.buffer_bytes as usize) as u32;
    }
}

impl Deref for FixedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: as in `as_mut_capacity`; `len` is at most the capacity.
        unsafe { std::slice::from_raw_parts(self.set.buffer_ptr(self.index), self.len()) }
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        &mut self.as_mut_capacity()[..len]
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        self.set.free.borrow_mut().push(self.index);
    }
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf")
            .field("index", &self.index)
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the bytes live in the set's allocation, which this value keeps
// alive and which never moves; while this value holds the buffer nothing
// else uses it; all its bytes are initialized (zeroed at allocation).
unsafe impl IoBuf for FixedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.set.buffer_ptr(self.index)
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.set.buffer_bytes as usize
    }
}

// SAFETY: as for `IoBuf`; the pointer is valid for writes of the whole
// capacity.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.set.buffer_ptr(self.index)
    }
    unsafe fn set_init(&mut self, len: usize) {
        self.set_len(len);
    }
}

/// A fixed read or write: owns the buffer until the kernel is done.
struct FixedDone<F> {
    buf: FixedBuf,
    read: bool,
    callback: F,
}

impl<C, F> Handler<C> for FixedDone<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, FixedBuf) + 'static,
{
    fn complete(mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        let result = sys::result_from_raw(result).map(|count| count as usize);
        if let (Ok(count), true) = (&result, self.read) {
            crate::buf::mark_filled_by_kernel(&mut self.buf, *count);
        }
        (self.callback)(io, ctx, result, self.buf)
    }
}

impl<C> IO<C> {
    /// Registers `count` buffers of `buffer_bytes` each, page-aligned and
    /// zeroed, with the kernel (`IORING_REGISTER_BUFFERS`), for
    /// [`read_fixed`](IO::read_fixed) and [`write_fixed`](IO::write_fixed).
    /// One set per `IO`.
    ///
    /// Backends: io_uring registers them; epoll and the simulator keep the
    /// same set in user space (fixed operations are plain reads and writes
    /// there), as does a kernel that refuses the registration (`ENOMEM`
    /// from the locked-memory limit, say), which a trace event reports.
    ///
    /// # Errors
    ///
    /// `EINVAL` for no buffers, a size of 0 or not a multiple of 512, or
    /// more than 16,384 buffers or 1 GiB a buffer (the kernel's limits);
    /// `EBUSY` if this `IO` has a set already; `ENOMEM`.
    pub fn register_fixed_buffers(
        &mut self,
        count: u16,
        buffer_bytes: u32,
    ) -> io::Result<FixedBufs> {
        let invalid = || sys::errno(libc::EINVAL);
        if count == 0 || count > 16_384 || buffer_bytes == 0 || buffer_bytes % 512 != 0 {
            return Err(invalid());
        }
        if buffer_bytes > 1 << 30 {
            return Err(invalid());
        }
        if self.fixed.is_some() {
            return Err(sys::errno(libc::EBUSY));
        }
        let total = usize::from(count) * buffer_bytes as usize;
        let layout = Layout::from_size_align(total, FIXED_ALIGN_BYTES).map_err(|_| invalid())?;
        // SAFETY: a non-zero size (count and bytes are > 0).
        let memory = unsafe { alloc::alloc_zeroed(layout) };
        let memory = NonNull::new(memory).ok_or_else(|| sys::errno(libc::ENOMEM))?;
        let set = Rc::new(FixedSet {
            memory,
            layout,
            buffer_bytes,
            count,
            io: self.tag(),
            free: RefCell::new((0..count).rev().collect()),
        });
        let iovecs = set.iovecs();
        // SAFETY: the buffers stay allocated and unmoved while the IO holds
        // the set (below), until the ring is gone; a set the kernel may
        // still use is leaked on drop, never freed.
        // Forced emulation (`Config::emulate_kernel_features`) registers nothing.
        let registered = match self.multishot_native() {
            // SAFETY: as above.
            true => unsafe { self.backend.register_buffers(&iovecs) },
            false => Ok(false),
        };
        let native = match registered {
            Ok(native) => native,
            Err(error) if !matches!(error.raw_os_error(), Some(libc::EBUSY)) => {
                tracing::debug!(target: "ringio", %error, "registered buffers refused; emulated");
                false
            }
            Err(error) => return Err(error),
        };
        self.fixed = Some(Rc::clone(&set));
        self.fixed_native = native;
        Ok(FixedBufs { set })
    }

    /// Reads into `buf` (up to its capacity) from `file` at `offset`,
    /// through the registered buffer (`IORING_OP_READ_FIXED`): as
    /// [`read`](IO::read), without pinning the buffer's pages each time.
    /// The buffer comes back with its length set to the bytes read.
    ///
    /// # Errors
    ///
    /// As [`read`](IO::read); `EINVAL` for a buffer of another `IO`'s set.
    pub fn read_fixed<F>(
        &mut self,
        file: Handle,
        mut buf: FixedBuf,
        offset: u64,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, FixedBuf) + 'static,
    {
        let (ptr, len, index) = (buf.stable_mut_ptr(), buf.bytes_total() as u32, buf.index);
        let refused = self.refuse_fixed(&buf, offset);
        let callback = self.callback(FixedDone {
            buf,
            read: true,
            callback,
        });
        let native = self.fixed_native;
        self.submit_on(file, refused, callback, |fd| match native {
            true => Operation::ReadFixed {
                fd,
                buf: ptr,
                len,
                offset,
                index,
            },
            false => Operation::Read {
                fd,
                buf: ptr,
                len,
                offset,
            },
        })
    }

    /// Writes the bytes `buf` holds to `file` at `offset`, through the
    /// registered buffer (`IORING_OP_WRITE_FIXED`): as [`write`](IO::write).
    ///
    /// # Errors
    ///
    /// As [`write`](IO::write); `EINVAL` for an empty buffer or one of
    /// another `IO`'s set.
    pub fn write_fixed<F>(
        &mut self,
        file: Handle,
        buf: FixedBuf,
        offset: u64,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, FixedBuf) + 'static,
    {
        let (ptr, len, index) = (buf.stable_ptr().cast_mut(), buf.len, buf.index);
        let mut refused = self.refuse_fixed(&buf, offset);
        if len == 0 {
            refused = -libc::EINVAL;
        }
        let callback = self.callback(FixedDone {
            buf,
            read: false,
            callback,
        });
        let native = self.fixed_native;
        self.submit_on(file, refused, callback, |fd| match native {
            true => Operation::WriteFixed {
                fd,
                buf: ptr,
                len,
                offset,
                index,
            },
            false => Operation::Write {
                fd,
                buf: ptr.cast_const(),
                len,
                offset,
            },
        })
    }

    /// `EINVAL` for a buffer this `IO` did not register, or an offset the
    /// kernel would read as "the file position"; else 0.
    fn refuse_fixed(&self, buf: &FixedBuf, offset: u64) -> i32 {
        let ours = self
            .fixed
            .as_ref()
            .is_some_and(|set| Rc::ptr_eq(set, &buf.set));
        if !ours || buf.set.io != self.tag() || offset > i64::MAX as u64 {
            -libc::EINVAL
        } else {
            0
        }
    }
}
