//! A process's memory as an operation names it: one buffer, or the
//! `iovec` list of a vectored or message operation. The world reads and
//! writes through this, so that every socket and file path serves the
//! one-buffer and the vectored forms with the same code.
#![allow(unsafe_code)]

use crate::completion::Operation;
use crate::sim::world::World;

/// The memory of one in-flight operation.
///
/// Built only from an [`Operation`] of a live process that is in flight:
/// the loop core keeps its buffers, iovec array and message header
/// allocated and unmoved until the completion is reaped, and the world
/// forgets a process's operations before its `IO` is freed. That is the
/// invariant every `unsafe` block below relies on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Memory {
    One {
        buf: *mut u8,
        len: usize,
    },
    Vectored {
        iovecs: *const libc::iovec,
        count: usize,
    },
}

impl Memory {
    /// The memory `operation` transfers, if it transfers any.
    pub(crate) fn of(operation: &Operation) -> Option<Memory> {
        Some(match *operation {
            Operation::Recv { buf, len, .. } | Operation::Read { buf, len, .. } => Memory::One {
                buf,
                len: len as usize,
            },
            Operation::Send { buf, len, .. }
            | Operation::Write { buf, len, .. }
            | Operation::SendZc { buf, len, .. } => Memory::One {
                buf: buf.cast_mut(),
                len: len as usize,
            },
            Operation::Readv { iovecs, count, .. } | Operation::Writev { iovecs, count, .. } => {
                Memory::Vectored {
                    iovecs,
                    count: count as usize,
                }
            }
            Operation::SendMsg { msg, .. } => Memory::of_header(msg),
            Operation::RecvMsg { msg, .. } => Memory::of_header(msg),
            _ => return None,
        })
    }

    fn of_header(msg: *const libc::msghdr) -> Memory {
        // SAFETY: the header of an in-flight message operation (the type's
        // invariant), owned by its handler.
        let header = unsafe { &*msg };
        Memory::Vectored {
            iovecs: header.msg_iov,
            count: header.msg_iovlen,
        }
    }

    /// The segments, in order.
    fn segments(&self) -> &[libc::iovec] {
        match self {
            Memory::One { .. } => &[],
            // SAFETY: the iovec array of an in-flight operation (the type's
            // invariant), `count` long, not written while it is in flight.
            Memory::Vectored { iovecs, count } => unsafe {
                std::slice::from_raw_parts(*iovecs, *count)
            },
        }
    }

    /// Calls `each` with every segment's address and length, in order.
    pub(crate) fn for_each_segment(&self, mut each: impl FnMut(*mut u8, usize)) {
        match *self {
            Memory::One { buf, len } => each(buf, len),
            Memory::Vectored { .. } => {
                for iovec in self.segments() {
                    each(iovec.iov_base.cast(), iovec.iov_len);
                }
            }
        }
    }

    /// The bytes it holds, in total, clamped as the kernel clamps one
    /// transfer (`MAX_RW_COUNT`).
    pub(crate) fn len(&self) -> usize {
        let mut total = 0usize;
        self.for_each_segment(|_, len| total = total.saturating_add(len));
        total.min(crate::BUFFER_LIMIT)
    }

    /// Copies `source` into the memory from byte `at` on, across segments.
    ///
    /// # Safety
    ///
    /// The operation must be a receive or a read (its memory is writable),
    /// and `at + source.len()` at most [`len`](Memory::len).
    pub(crate) unsafe fn write_at(&self, mut at: usize, mut source: &[u8]) {
        self.for_each_segment(|buf, len| {
            if source.is_empty() {
                return;
            }
            if at >= len {
                at -= len;
                return;
            }
            let count = (len - at).min(source.len());
            // Stays inside the segment: `at + count <= len`.
            let start = buf.wrapping_add(at);
            // SAFETY: a segment of this in-flight receive, valid for
            // writes of `len` bytes (the type's invariant and the caller's
            // promise that it is writable); `at + count <= len`.
            unsafe { World::write_user_bytes(start, count, &source[..count]) };
            source = &source[count..];
            at = 0;
        });
    }

    /// Writes `count` zero bytes into the memory from byte `at` on: what
    /// a read of a hole gives.
    ///
    /// # Safety
    ///
    /// As for [`write_at`](Memory::write_at), for `at + count` bytes.
    pub(crate) unsafe fn zero_at(&self, mut at: usize, mut count: usize) {
        const ZEROS: [u8; 4096] = [0; 4096];
        while count > 0 {
            let chunk = count.min(ZEROS.len());
            // SAFETY: the caller's promise, for a prefix of the range.
            unsafe { self.write_at(at, &ZEROS[..chunk]) };
            at += chunk;
            count -= chunk;
        }
    }

    /// Appends the first `limit` bytes of the memory to `out`.
    ///
    /// # Safety
    ///
    /// The operation must be a send or a write, whose buffers' bytes are
    /// initialized (each segment's length is at most its `bytes_init`).
    pub(crate) unsafe fn gather(&self, limit: usize, out: &mut impl Extend<u8>) {
        // SAFETY: the caller's promise.
        unsafe { self.gather_range(0, limit, out) }
    }

    /// Appends `count` bytes of the memory, from byte `skip` on, to `out`.
    ///
    /// # Safety
    ///
    /// As for [`gather`](Memory::gather).
    pub(crate) unsafe fn gather_range(
        &self,
        mut skip: usize,
        mut count: usize,
        out: &mut impl Extend<u8>,
    ) {
        self.for_each_segment(|buf, len| {
            if skip >= len {
                skip -= len;
                return;
            }
            let taken = (len - skip).min(count);
            if taken > 0 {
                // Stays inside the segment: `skip + taken <= len`.
                let start = buf.wrapping_add(skip);
                // SAFETY: a segment of this in-flight send, initialized
                // for `len >= skip + taken` bytes (the caller's promise).
                out.extend(unsafe { World::user_bytes(start, taken) }.iter().copied());
                count -= taken;
            }
            skip = 0;
        });
    }
}

/// What a `recvmsg` reports besides the count, written into its header
/// as the kernel writes it: the sender's name, the flags, no control data.
///
/// # Safety
///
/// `msg` must be the header of an in-flight `RecvMsg` (see [`Memory`]).
pub(crate) unsafe fn finish_recvmsg(
    msg: *mut libc::msghdr,
    from: Option<std::net::SocketAddr>,
    truncated: bool,
) {
    // SAFETY: the caller's promise: the header of an in-flight receive,
    // owned by its handler, which nothing else references now.
    let header = unsafe { &mut *msg };
    header.msg_flags = if truncated { libc::MSG_TRUNC } else { 0 };
    header.msg_controllen = 0;
    match from {
        Some(from) if !header.msg_name.is_null() => {
            let raw = crate::sys::RawAddr::from_socket_addr(&from);
            let room = header.msg_namelen as usize;
            let len = (raw.len as usize).min(room);
            // SAFETY: `msg_name` has room for `msg_namelen` bytes (the
            // message's address storage), and `len` is at most that.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    raw.as_ptr().cast::<u8>(),
                    header.msg_name.cast::<u8>(),
                    len,
                )
            };
            header.msg_namelen = raw.len;
        }
        _ => header.msg_namelen = 0,
    }
}
