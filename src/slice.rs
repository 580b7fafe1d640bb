//! A window onto an owned buffer, so that a partial send or a partial frame
//! needs no copy: send `buf.slice(sent..)`, receive into `buf.slice(filled..)`
//! (tokio-uring's `BoundedBuf::slice`).
#![allow(unsafe_code)]

use std::fmt;
use std::ops::{Bound, RangeBounds};

use crate::buf::{IoBuf, IoBufMut};

/// A range of an owned buffer, itself an owned buffer: made by
/// [`IoBufExt::slice`], handed to an operation, and given back whole by
/// [`into_inner`](Slice::into_inner).
///
/// As an [`IoBuf`] it is the initialized bytes of the range; as an
/// [`IoBufMut`] its room is the whole range, and bytes a `recv` or `read`
/// writes into it count as initialized in the buffer underneath (a `Vec`'s
/// `len()` grows to the end of what was received).
///
/// # Examples
///
/// ```
/// use ringio::IoBufExt;
/// let buf = b"hello, world".to_vec();
/// let rest = buf.slice(7..);
/// assert_eq!((rest.begin(), rest.end()), (7, 12));
/// assert_eq!(rest.into_inner(), b"hello, world");
/// ```
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B> Slice<B> {
    /// Where the range starts in the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// Where the range ends (exclusive) in the buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The whole buffer underneath.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }

    /// Gives the whole buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

impl<B> fmt::Debug for Slice<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slice")
            .field("begin", &self.begin)
            .field("end", &self.end)
            .finish()
    }
}

/// Slicing for every owned buffer.
pub trait IoBufExt: IoBuf + Sized {
    /// A window onto `range` of this buffer's room (`bytes_total`). The
    /// range is clamped to the room, rather than panicking: a range past
    /// the end is empty at the end.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self> {
        let total = self.bytes_total();
        let end = match range.end_bound() {
            Bound::Included(&end) => end.saturating_add(1),
            Bound::Excluded(&end) => end,
            Bound::Unbounded => total,
        }
        .min(total);
        let begin = match range.start_bound() {
            Bound::Included(&begin) => begin,
            Bound::Excluded(&begin) => begin.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .min(end);
        Slice {
            buf: self,
            begin,
            end,
        }
    }
}

impl<B: IoBuf> IoBufExt for B {}

// SAFETY: the range lies within the buffer's room (`begin <= end <=
// bytes_total`, clamped in `slice`), so the pointer `begin` bytes in is valid
// for `end - begin` bytes, stable as the buffer's own is; the initialized
// bytes of the range are those below the buffer's `bytes_init`.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.stable_ptr().wrapping_add(self.begin)
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as for IoBuf; the buffer's mutable pointer is valid for writes
// of its room, of which the range is part.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }

    unsafe fn set_init(&mut self, len: usize) {
        let init = self.buf.bytes_init();
        let filled = self.begin + len;
        if filled <= init {
            return;
        }
        if init < self.begin {
            // Bytes between what was initialized and the range start were
            // never written: zero them, so that the buffer's initialized
            // prefix stays contiguous.
            let gap = self.buf.stable_mut_ptr().wrapping_add(init);
            // SAFETY: `[init, begin)` is within the buffer's room, valid for
            // writes, and owned by this slice.
            unsafe { std::ptr::write_bytes(gap, 0, self.begin - init) };
        }
        // SAFETY: `[0, init)` was initialized, the gap was just zeroed, and
        // the caller guarantees `[begin, begin + len)` was written, with
        // `len <= end - begin`, so `filled <= bytes_total` of the buffer.
        unsafe { self.buf.set_init(filled) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clamped_to_the_room() {
        let buf = Vec::with_capacity(16);
        let slice = buf.slice(4..100);
        assert_eq!((slice.begin(), slice.end()), (4, 16));
        let slice = slice.into_inner().slice(20..);
        assert_eq!((slice.begin(), slice.end()), (16, 16));
        assert_eq!(slice.bytes_total(), 0);
    }

    #[test]
    fn a_fill_past_a_gap_zeroes_the_gap() {
        let mut buf = Vec::with_capacity(16);
        buf.extend_from_slice(b"ab");
        let mut slice = buf.slice(4..);
        let target = slice.stable_mut_ptr();
        // SAFETY: three bytes within the slice's room of twelve.
        unsafe { std::ptr::copy_nonoverlapping(b"xyz".as_ptr(), target, 3) };
        // SAFETY: exactly those three bytes were written.
        unsafe { slice.set_init(3) };
        assert_eq!(slice.into_inner(), b"ab\0\0xyz");
    }

    #[test]
    fn init_bytes_of_the_range() {
        let buf = b"hello".to_vec();
        assert_eq!(buf.clone().slice(1..3).bytes_init(), 2);
        assert_eq!(buf.clone().slice(3..).bytes_init(), 2);
        assert_eq!(buf.slice(5..).bytes_init(), 0);
    }
}
