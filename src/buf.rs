//! Owned buffers: the kernel may write into a buffer until its completion is
//! reaped, so the `IO` owns every buffer while its operation is in flight and
//! hands it back to the callback, on success and on error.
//!
//! The traits are tokio-uring's `IoBuf`/`IoBufMut` pattern: the pointer they
//! report must stay valid when the buffer value itself is moved, which is true
//! of heap buffers (`Vec<u8>`, `Box<[u8]>`, [`AlignedBuf`]) and of `'static`
//! slices, and false of arrays held inline.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A buffer the kernel may read from while an operation is in flight.
///
/// # Safety
///
/// Implementors promise that [`stable_ptr`](IoBuf::stable_ptr) points at
/// [`bytes_total`](IoBuf::bytes_total) bytes of memory that stay allocated,
/// at the same address, for as long as the value lives, even while the value is
/// moved, and that the first [`bytes_init`](IoBuf::bytes_init) of them are
/// initialized.
pub unsafe trait IoBuf: 'static {
    /// The address of the first byte. Stable across moves of `self`.
    fn stable_ptr(&self) -> *const u8;
    /// How many bytes, from the start, hold data (what `send`/`write` transmit).
    fn bytes_init(&self) -> usize;
    /// How many bytes the buffer can hold (what `recv`/`read` may fill).
    fn bytes_total(&self) -> usize;
}

/// A buffer the kernel may write into while an operation is in flight.
///
/// # Safety
///
/// As for [`IoBuf`], and [`stable_mut_ptr`](IoBufMut::stable_mut_ptr) must be
/// valid for writes of `bytes_total()` bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// The address of the first byte, for writing. Stable across moves of `self`.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the kernel wrote the first `len` bytes.
    ///
    /// After a `recv` or `read` that returned `n`, the buffer's data is exactly
    /// its first `n` bytes: a `Vec<u8>` has `len() == n` afterwards. Fixed-size
    /// buffers ignore this; use the returned count.
    ///
    /// # Safety
    ///
    /// The first `len` bytes must have been initialized, and `len <= bytes_total()`.
    unsafe fn set_init(&mut self, len: usize);
}

/// Records that a completed `recv` or `read` filled the first `count` bytes.
///
/// Only for results the kernel reported for an operation on exactly this
/// buffer, submitted with a length of at most `bytes_total()`.
pub(crate) fn mark_filled_by_kernel<B: IoBufMut>(buf: &mut B, count: usize) {
    assert!(count <= buf.bytes_total());
    // SAFETY: the kernel reported writing `count` bytes from the start of
    // this buffer (the caller's contract), and `count <= bytes_total()`
    // (asserted above).
    unsafe { buf.set_init(count) };
}

// SAFETY: a Vec's heap allocation does not move when the Vec value moves; its
// capacity bytes stay allocated until the Vec is dropped or reallocated, and
// the IO owns the Vec (so nobody can reallocate it) while it is in flight.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for IoBuf; as_mut_ptr is valid for `capacity()` bytes.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, len: usize) {
        // SAFETY: the caller guarantees the first `len <= capacity` bytes are initialized.
        unsafe { self.set_len(len) };
    }
}

// SAFETY: a boxed slice's allocation does not move when the Box moves.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for IoBuf; all bytes of a boxed slice are initialized and writable.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _len: usize) {}
}

// SAFETY: 'static data never moves and is never freed.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: 'static data never moves and is never freed.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

/// A zeroed heap buffer with a chosen alignment, for `O_DIRECT` I/O.
///
/// `O_DIRECT` requires the buffer address, length and file offset to be
/// multiples of the device's logical block size (commonly 512 or 4096 bytes).
///
/// # Examples
///
/// ```
/// let mut buf = ringio::AlignedBuf::new(8192, 4096).unwrap();
/// assert_eq!(buf.as_ptr() as usize % 4096, 0);
/// buf[0] = 7;
/// assert_eq!(buf.len(), 8192);
/// ```
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    align: usize,
}

impl AlignedBuf {
    /// Allocates `len` zeroed bytes aligned to `align`.
    ///
    /// # Errors
    ///
    /// - `EINVAL` if `align` is zero or not a power of two, or if `len`
    ///   rounded up to `align` overflows `isize` (as `usize::MAX` does).
    /// - `ENOMEM` if the allocator cannot provide the memory (say 1 TiB, or
    ///   an alignment of 2⁴⁰, on a machine without that much). Unlike `Vec`,
    ///   this never aborts the process: a buffer size is often a
    ///   configuration value, so its failure is reported.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = ringio::AlignedBuf::new(4096, 3).unwrap_err();
    /// assert_eq!(error.raw_os_error(), Some(libc::EINVAL));
    /// ```
    pub fn new(len: usize, align: usize) -> io::Result<AlignedBuf> {
        let layout = Layout::from_size_align(len, align)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        assert!(layout.align().is_power_of_two());
        if len == 0 {
            // A zero-sized allocation is not allowed; a dangling aligned
            // pointer is the standard stand-in and is never dereferenced.
            let ptr = NonNull::new(align as *mut u8).expect("align is non-zero");
            return Ok(AlignedBuf { ptr, len, align });
        }
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        // A null pointer is the allocator's only failure report; returning
        // it, rather than calling `handle_alloc_error`, keeps the process up.
        let ptr = NonNull::new(raw).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        assert!(ptr.as_ptr() as usize % align == 0);
        Ok(AlignedBuf { ptr, len, align })
    }

    /// The alignment this buffer was allocated with.
    pub fn align(&self) -> usize {
        self.align
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        let layout = Layout::from_size_align(self.len, self.align).expect("checked in new");
        // SAFETY: `ptr` came from `alloc_zeroed` with this exact layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialized (zeroed) bytes, owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("align", &self.align)
            .finish()
    }
}

// SAFETY: AlignedBuf uniquely owns its allocation, like Box<[u8]>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for AlignedBuf {}

// SAFETY: the allocation does not move when the AlignedBuf moves, and lives
// until drop.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

// SAFETY: as for IoBuf; every byte is initialized (zeroed at allocation).
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, _len: usize) {}
}

#[cfg(test)]
mod tests {
    use super::AlignedBuf;

    fn errno(len: usize, align: usize) -> Option<i32> {
        AlignedBuf::new(len, align)
            .expect_err("the request cannot succeed")
            .raw_os_error()
    }

    #[test]
    fn aligned_buf_is_aligned_and_zeroed() {
        for align in [1, 8, 512, 4096, 1 << 21] {
            let buf = AlignedBuf::new(3 * 4096, align).expect("allocate");
            assert_eq!(buf.as_ptr() as usize % align, 0);
            assert_eq!(buf.len(), 3 * 4096);
            assert_eq!(buf.align(), align);
            assert!(buf.iter().all(|&byte| byte == 0));
        }
        let empty = AlignedBuf::new(0, 4096).expect("a zero-length buffer");
        assert!(empty.is_empty());
        assert_eq!(empty.as_ptr() as usize % 4096, 0);
    }

    #[test]
    fn aligned_buf_bad_layout_is_einval() {
        assert_eq!(errno(4096, 0), Some(libc::EINVAL));
        assert_eq!(errno(4096, 3), Some(libc::EINVAL));
        assert_eq!(errno(4096, 4097), Some(libc::EINVAL));
        assert_eq!(errno(0, 0), Some(libc::EINVAL));
        assert_eq!(errno(usize::MAX, 1), Some(libc::EINVAL));
        assert_eq!(errno(usize::MAX, 16), Some(libc::EINVAL));
        assert_eq!(errno(isize::MAX as usize, 4096), Some(libc::EINVAL));
        assert_eq!(errno(16, usize::MAX), Some(libc::EINVAL));
        // A power of two, but above isize::MAX.
        assert_eq!(errno(16, 1 << (usize::BITS - 1)), Some(libc::EINVAL));
    }

    /// Valid layouts that no allocator can satisfy: more than any address
    /// space holds, whatever the overcommit policy.
    #[test]
    fn aligned_buf_impossible_allocation_is_enomem() {
        assert_eq!(errno(1 << 62, 16), Some(libc::ENOMEM));
        assert_eq!(errno(isize::MAX as usize - 4095, 4096), Some(libc::ENOMEM));
        assert_eq!(errno(16, 1 << 62), Some(libc::ENOMEM));
    }

    /// 1 TiB, and an alignment of 1 TiB: these used to abort the process.
    /// Without memory overcommit they fail with ENOMEM; a machine that
    /// overcommits (or has the memory) may grant them, and then the buffer
    /// must be usable. Either way the process keeps running.
    #[test]
    fn aligned_buf_one_tib_returns_instead_of_aborting() {
        for (len, align) in [(1 << 40, 16), (16, 1 << 40)] {
            match AlignedBuf::new(len, align) {
                Ok(buf) => {
                    assert_eq!(buf.len(), len);
                    assert_eq!(buf.as_ptr() as usize % align, 0);
                    assert_eq!(buf[0], 0);
                }
                Err(error) => assert_eq!(error.raw_os_error(), Some(libc::ENOMEM)),
            }
        }
    }
}
