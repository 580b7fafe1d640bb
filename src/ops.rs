//! The typed operations. Each validates its input, stores a handler (the
//! user's callback plus whatever the operation owns), and submits.
//!
//! Every operation returns a [`CompletionId`] and reports its outcome only
//! through its callback, which runs from the loop. Bad input never panics:
//! it becomes an error in the callback.

use std::io;
use std::net::SocketAddr;
use std::ops::BitOr;

use crate::buf::{IoBuf, IoBufMut};
use crate::callback::{Callback, Handler};
use crate::completion::{CompletionId, Operation};
use crate::io::IO;
use crate::sys::{self, Fd, RawAddr};

/// The most bytes one read, write, send or recv transfers: Linux's
/// `MAX_RW_COUNT` (TigerBeetle's `buffer_limit`). Longer buffers are clamped,
/// and the callback reports the shorter count, as the kernel itself would.
pub const BUFFER_LIMIT: usize = 0x7fff_f000;

/// Readiness, for [`IO::poll`]: a set of `poll(2)` event bits.
///
/// # Examples
///
/// ```
/// use ringio::PollEvents;
/// let both = PollEvents::READABLE | PollEvents::WRITABLE;
/// assert!(both.contains(PollEvents::READABLE));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PollEvents(u32);

impl PollEvents {
    /// Data can be read (`POLLIN`).
    pub const READABLE: PollEvents = PollEvents(libc::POLLIN as u32);
    /// Data can be written (`POLLOUT`).
    pub const WRITABLE: PollEvents = PollEvents(libc::POLLOUT as u32);
    /// An error is pending (`POLLERR`); reported, never requested.
    pub const ERROR: PollEvents = PollEvents(libc::POLLERR as u32);
    /// The peer hung up (`POLLHUP`); reported, never requested.
    pub const HANGUP: PollEvents = PollEvents(libc::POLLHUP as u32);

    /// The raw `poll(2)` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: PollEvents) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for PollEvents {
    type Output = PollEvents;
    fn bitor(self, other: PollEvents) -> PollEvents {
        PollEvents(self.0 | other.0)
    }
}

pub(crate) fn unit_result(result: i32) -> io::Result<()> {
    sys::result_from_raw(result).map(drop)
}

fn count_result(result: i32) -> io::Result<usize> {
    sys::result_from_raw(result).map(|count| count as usize)
}

/// An operation with no output: nop, fsync, close, cancel.
struct Done<F>(F);

impl<C, F> Handler<C> for Done<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        (self.0)(io, ctx, unit_result(result))
    }
}

/// A timeout: expiry (`ETIME`) is success.
struct Expired<F>(F);

impl<C, F> Handler<C> for Expired<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        let result = if result == -libc::ETIME { 0 } else { result };
        (self.0)(io, ctx, unit_result(result))
    }
}

/// An accept: the result is the new socket.
struct Accepted<F>(F);

impl<C, F> Handler<C> for Accepted<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<Fd>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        (self.0)(io, ctx, sys::result_from_raw(result).map(|fd| fd as Fd))
    }
}

/// A connect: owns the peer address until the kernel is done with it, then
/// returns it to the IO's pool.
struct Connected<F> {
    address: Box<RawAddr>,
    callback: F,
}

impl<C, F> Handler<C> for Connected<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        io.addresses.push(self.address);
        (self.callback)(io, ctx, unit_result(result))
    }
}

/// A recv or read: owns the buffer, and marks the received bytes initialized.
struct Filled<B, F> {
    buf: B,
    callback: F,
}

impl<C, B, F> Handler<C> for Filled<B, F>
where
    B: IoBufMut,
    F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
{
    fn complete(mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        let result = count_result(result);
        if let Ok(count) = result {
            crate::buf::mark_filled_by_kernel(&mut self.buf, count);
        }
        (self.callback)(io, ctx, result, self.buf)
    }
}

/// A send or write: owns the buffer the kernel reads from.
struct Drained<B, F> {
    buf: B,
    callback: F,
}

impl<C, B, F> Handler<C> for Drained<B, F>
where
    B: IoBuf,
    F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        (self.callback)(io, ctx, count_result(result), self.buf)
    }
}

/// A poll: the result is the ready events.
struct Polled<F>(F);

impl<C, F> Handler<C> for Polled<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<PollEvents>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        (self.0)(io, ctx, sys::result_from_raw(result).map(PollEvents))
    }
}

/// `EINVAL`, as the raw result of an operation refused before submission.
const INVALID: i32 = -libc::EINVAL;

/// The offset a positional read or write may take: the kernel reads
/// `u64::MAX` (-1) as "the file position", which a positional API must not
/// mean by accident.
fn offset_is_valid(offset: u64) -> bool {
    offset <= i64::MAX as u64
}

impl<C> IO<C> {
    /// Does nothing, through the whole submission and completion path.
    ///
    /// Backends: io_uring. Errors: none.
    pub fn nop<F>(&mut self, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        self.submit(Operation::Nop, Callback::new(Done(callback)))
    }

    /// Accepts a connection on the listening socket `listener`. The callback
    /// receives the new socket, close-on-exec and blocking (io_uring does not
    /// need non-blocking sockets).
    ///
    /// # Errors
    ///
    /// `EBADF`, `ENOTSOCK`, `EINVAL` (not listening), `EMFILE`/`ENFILE` (out
    /// of fds), `ECONNABORTED`, `ECANCELED` (cancelled).
    pub fn accept<F>(&mut self, listener: Fd, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<Fd>) + 'static,
    {
        let operation = Operation::Accept { fd: listener };
        self.submit(operation, Callback::new(Accepted(callback)))
    }

    /// Connects `socket` to `address`.
    ///
    /// # Errors
    ///
    /// `ECONNREFUSED`, `ETIMEDOUT`, `ENETUNREACH`, `EADDRNOTAVAIL`,
    /// `EAFNOSUPPORT` (family mismatch), `EISCONN`, `EBADF`, `ENOTSOCK`,
    /// `ECANCELED`.
    pub fn connect<F>(&mut self, socket: Fd, address: SocketAddr, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let mut raw = self
            .addresses
            .pop()
            .unwrap_or_else(|| Box::new(RawAddr::zeroed()));
        *raw = RawAddr::from_socket_addr(&address);
        let operation = Operation::Connect {
            fd: socket,
            addr: raw.as_ptr(),
            addr_len: raw.len,
        };
        let handler = Connected {
            address: raw,
            callback,
        };
        self.submit(operation, Callback::new(handler))
    }

    /// Receives into `buf` (up to its capacity, clamped to [`BUFFER_LIMIT`])
    /// from `socket`. The callback gets the byte count, `0` meaning the peer
    /// closed its side, and the buffer back, on success and on error. A
    /// `Vec<u8>` comes back with `len()` equal to the count.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero-capacity buffer (a `0` would read as end of
    /// stream), `ECONNRESET`, `EBADF`, `ENOTSOCK`, `ENOTCONN`, `ECANCELED`.
    pub fn recv<B, F>(&mut self, socket: Fd, mut buf: B, callback: F) -> CompletionId
    where
        B: IoBufMut,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let len = buf.bytes_total().min(BUFFER_LIMIT) as u32;
        let operation = Operation::Recv {
            fd: socket,
            buf: buf.stable_mut_ptr(),
            len,
        };
        let callback = Callback::new(Filled { buf, callback });
        if len == 0 {
            return self.submit_completed(operation, callback, INVALID);
        }
        self.submit(operation, callback)
    }

    /// Sends the initialized bytes of `buf` (clamped to [`BUFFER_LIMIT`]) on
    /// `socket`, without raising `SIGPIPE`. The count may be short: send the
    /// rest with another call. The buffer comes back on success and on error.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty buffer (it would make no progress), `EPIPE` or
    /// `ECONNRESET` (the peer is gone), `EBADF`, `ENOTSOCK`, `ENOTCONN`, `ECANCELED`.
    pub fn send<B, F>(&mut self, socket: Fd, buf: B, callback: F) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let len = buf.bytes_init().min(BUFFER_LIMIT) as u32;
        let operation = Operation::Send {
            fd: socket,
            buf: buf.stable_ptr(),
            len,
        };
        let callback = Callback::new(Drained { buf, callback });
        if len == 0 {
            return self.submit_completed(operation, callback, INVALID);
        }
        self.submit(operation, callback)
    }

    /// Reads into `buf` (up to its capacity, clamped to [`BUFFER_LIMIT`])
    /// from `fd` at byte `offset`. `0` means end of file. With `O_DIRECT`,
    /// the buffer address, its length and `offset` must be multiples of the
    /// device's block size (see [`AlignedBuf`](crate::AlignedBuf)).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero-capacity buffer, an `offset` above `i64::MAX`, or
    /// misaligned `O_DIRECT` I/O; `EBADF`, `EISDIR`, `EIO`, `ECANCELED`.
    pub fn read<B, F>(&mut self, fd: Fd, mut buf: B, offset: u64, callback: F) -> CompletionId
    where
        B: IoBufMut,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let len = buf.bytes_total().min(BUFFER_LIMIT) as u32;
        let operation = Operation::Read {
            fd,
            buf: buf.stable_mut_ptr(),
            len,
            offset,
        };
        let callback = Callback::new(Filled { buf, callback });
        if len == 0 || !offset_is_valid(offset) {
            return self.submit_completed(operation, callback, INVALID);
        }
        self.submit(operation, callback)
    }

    /// Writes the initialized bytes of `buf` (clamped to [`BUFFER_LIMIT`]) to
    /// `fd` at byte `offset`. The count may be short. Data is durable only
    /// after [`fsync`](IO::fsync) completes, unless the file was opened with
    /// `dsync`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty buffer, an `offset` above `i64::MAX`, or
    /// misaligned `O_DIRECT` I/O; `EBADF`, `ENOSPC`, `EDQUOT`, `EFBIG`, `EIO`,
    /// `EPIPE`, `ECANCELED`.
    pub fn write<B, F>(&mut self, fd: Fd, buf: B, offset: u64, callback: F) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let len = buf.bytes_init().min(BUFFER_LIMIT) as u32;
        let operation = Operation::Write {
            fd,
            buf: buf.stable_ptr(),
            len,
            offset,
        };
        let callback = Callback::new(Drained { buf, callback });
        if len == 0 || !offset_is_valid(offset) {
            return self.submit_completed(operation, callback, INVALID);
        }
        self.submit(operation, callback)
    }

    /// Flushes `fd`'s data and metadata to stable storage (`fsync(2)`).
    ///
    /// # Errors
    ///
    /// `EBADF`, `EIO` (the data may be lost: do not retry and assume it is
    /// safe), `ENOSPC`, `EROFS`/`EINVAL` (fd does not support syncing), `ECANCELED`.
    pub fn fsync<F>(&mut self, fd: Fd, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let operation = Operation::Fsync {
            fd,
            datasync: false,
        };
        self.submit(operation, Callback::new(Done(callback)))
    }

    /// Flushes `fd`'s data, and only the metadata needed to read it back
    /// (`fdatasync(2)`): cheaper when the file size did not change.
    ///
    /// # Errors
    ///
    /// As [`fsync`](IO::fsync).
    pub fn fdatasync<F>(&mut self, fd: Fd, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let operation = Operation::Fsync { fd, datasync: true };
        self.submit(operation, Callback::new(Done(callback)))
    }

    /// Closes `fd`. Operations in flight on it are not cancelled by this on
    /// io_uring (the kernel holds its own reference); cancel them first.
    ///
    /// # Errors
    ///
    /// `EBADF`, `EIO`, `ECANCELED`.
    pub fn close<F>(&mut self, fd: Fd, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        self.submit(Operation::Close { fd }, Callback::new(Done(callback)))
    }

    /// Completes after `timeout_ns` nanoseconds of the loop's clock, never
    /// earlier. `0` completes on the next pass; `u64::MAX` never completes
    /// unless cancelled. Timers with equal deadlines fire in submission order.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut io: ringio::IO<Vec<&str>> = ringio::IO::new()?;
    /// io.timeout(2_000_000, |_, log, result| { result.unwrap(); log.push("2 ms") });
    /// io.timeout(1_000_000, |_, log, result| { result.unwrap(); log.push("1 ms") });
    /// let mut log = Vec::new();
    /// io.run(&mut log)?;
    /// assert_eq!(log, ["1 ms", "2 ms"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `ECANCELED` when cancelled; expiry is `Ok(())`.
    pub fn timeout<F>(&mut self, timeout_ns: u64, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let deadline_ns = self.now_ns().saturating_add(timeout_ns);
        self.timeout_at(deadline_ns, callback)
    }

    /// Completes once the loop's clock ([`now_ns`](IO::now_ns)) reaches
    /// `deadline_ns`, never earlier. A deadline in the past completes on the
    /// next pass.
    ///
    /// # Errors
    ///
    /// `ECANCELED` when cancelled; expiry is `Ok(())`.
    pub fn timeout_at<F>(&mut self, deadline_ns: u64, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        self.submit(
            Operation::Timeout { deadline_ns },
            Callback::new(Expired(callback)),
        )
    }

    /// Cancels the operation `target`. Its callback then receives
    /// `ECANCELED`, or its natural result if it finished first; the cancel's
    /// own callback says which happened. A stale id never affects the
    /// operation that now occupies its slot.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut io: ringio::IO<Vec<Option<i32>>> = ringio::IO::new()?;
    /// let errno = |result: std::io::Result<()>| result.err().and_then(|e| e.raw_os_error());
    /// let id = io.timeout(u64::MAX, move |_, seen, result| seen.push(errno(result)));
    /// io.cancel(id, move |_, seen, result| seen.push(errno(result)));
    /// let mut seen = Vec::new();
    /// io.run(&mut seen)?;
    /// // The timer got ECANCELED; the cancel itself succeeded.
    /// assert_eq!(seen, [Some(libc::ECANCELED), None]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `ENOENT` if `target` already finished, is stale, or was never issued;
    /// `EALREADY` if the kernel was already running it (its own result will
    /// tell whether it was interrupted).
    pub fn cancel<F>(&mut self, target: CompletionId, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        self.submit_cancel(target, Callback::new(Done(callback)))
    }

    /// Waits until `fd` is ready for any of `events`, for file descriptors
    /// that other code owns and reads or writes itself. One-shot: poll again
    /// to keep watching.
    ///
    /// # Errors
    ///
    /// `EBADF`, `EINVAL` (no events requested), `ECANCELED`.
    pub fn poll<F>(&mut self, fd: Fd, events: PollEvents, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<PollEvents>) + 'static,
    {
        let operation = Operation::Poll {
            fd,
            events: events.bits(),
        };
        let callback = Callback::new(Polled(callback));
        if events.is_empty() {
            return self.submit_completed(operation, callback, INVALID);
        }
        self.submit(operation, callback)
    }
}
