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
use crate::callback::Handler;
use crate::completion::{CompletionId, Operation};
use crate::handle::Handle;
use crate::io::IO;
use crate::stable::Stable;
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
    /// The peer closed its side, or the connection is gone (`POLLRDHUP`):
    /// reported only when requested. Backends: io_uring, epoll, sim.
    pub const READ_HANGUP: PollEvents = PollEvents(libc::POLLRDHUP as u32);

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

/// Which directions [`IO::shutdown`] shuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// No more receiving (`SHUT_RD`): once what arrived is read, receives
    /// give 0.
    Read,
    /// No more sending (`SHUT_WR`): a FIN follows the data sent, the peer
    /// reads the end of the stream, and later sends get `EPIPE`.
    Write,
    /// Both (`SHUT_RDWR`).
    Both,
}

impl Shutdown {
    fn how(self) -> i32 {
        match self {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        }
    }
}

/// An operation with no output: nop, fsync, close, cancel.
pub(crate) struct Done<F>(pub(crate) F);

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

/// An accept: the result is the new socket, which the `IO` takes into its
/// table before the callback sees it.
struct Accepted<F>(F);

impl<C, F> Handler<C> for Accepted<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<Handle>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        let socket = sys::result_from_raw(result).map(|fd| io.own_new_fd(fd as Fd));
        (self.0)(io, ctx, socket)
    }
}

/// A connect: owns the peer address until the kernel is done with it, then
/// returns it to the IO's pool.
struct Connected<F> {
    address: Stable<RawAddr>,
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
    /// Backends: io_uring, epoll, sim. Errors: none.
    pub fn nop<F>(&mut self, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let handler = self.handler(Done(callback));
        self.submit(Operation::Nop, handler)
    }

    /// Accepts a connection on the listening socket `listener`. The callback
    /// receives the new socket's [`Handle`], owned by this `IO`,
    /// close-on-exec and blocking (io_uring does not need non-blocking
    /// sockets).
    ///
    /// # Errors
    ///
    /// `EBADF` (a closed or stale handle), `ENOTSOCK`, `EINVAL` (not
    /// listening), `EMFILE`/`ENFILE` (out of fds), `ECONNABORTED`,
    /// `ECANCELED` (cancelled, or the listener closed).
    pub fn accept<F>(&mut self, listener: Handle, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<Handle>) + 'static,
    {
        let callback = self.callback(Accepted(callback));
        self.submit_on(listener, 0, callback, |fd| Operation::Accept { fd })
    }

    /// Connects `socket` to `address`.
    ///
    /// # Errors
    ///
    /// `ECONNREFUSED`, `ETIMEDOUT`, `ENETUNREACH`, `EADDRNOTAVAIL`,
    /// `EAFNOSUPPORT` (family mismatch), `EISCONN`, `EBADF`, `ENOTSOCK`,
    /// `ECANCELED`.
    pub fn connect<F>(&mut self, socket: Handle, address: SocketAddr, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        self.connect_raw(socket, RawAddr::from_socket_addr(&address), callback)
    }

    /// A connect to an address of any family: the body of
    /// [`connect`](IO::connect) and [`connect_unix`](IO::connect_unix).
    pub(crate) fn connect_raw<F>(
        &mut self,
        socket: Handle,
        address: RawAddr,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let mut raw = self
            .addresses
            .pop()
            .unwrap_or_else(|| Stable::new(RawAddr::zeroed()));
        let stored = raw.get_mut();
        *stored = address;
        let (addr, addr_len) = (stored.as_ptr(), stored.len);
        let handler = Connected {
            address: raw,
            callback,
        };
        let callback = self.callback(handler);
        self.submit_on(socket, 0, callback, |fd| Operation::Connect {
            fd,
            addr,
            addr_len,
        })
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
    pub fn recv<B, F>(&mut self, socket: Handle, mut buf: B, callback: F) -> CompletionId
    where
        B: IoBufMut,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let len = buf.bytes_total().min(BUFFER_LIMIT) as u32;
        let ptr = buf.stable_mut_ptr();
        let callback = self.callback(Filled { buf, callback });
        let refused = if len == 0 { INVALID } else { 0 };
        self.submit_on(socket, refused, callback, |fd| Operation::Recv {
            fd,
            buf: ptr,
            len,
        })
    }

    /// Sends the initialized bytes of `buf` (clamped to [`BUFFER_LIMIT`]) on
    /// `socket`, without raising `SIGPIPE`. The count may be short: send the
    /// rest with another call. The buffer comes back on success and on error.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty buffer (it would make no progress), `EPIPE` or
    /// `ECONNRESET` (the peer is gone; `EPIPE` too on a socket that is not
    /// connected, or listening), `ENOMEM`/`ENOBUFS` (nothing was sent),
    /// `EBADF`, `ENOTSOCK`, `ECANCELED`.
    pub fn send<B, F>(&mut self, socket: Handle, buf: B, callback: F) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        self.submit_send(socket, buf, callback, false)
    }

    /// Sends as [`send`](IO::send) does, without copying the bytes: the
    /// kernel sends from `buf` itself. The callback gets the byte count and
    /// the buffer back only once the kernel's notification says it no longer
    /// reads it, so the buffer can be reused or freed at once.
    ///
    /// Worth it for large buffers (tens of KiB and up); for small ones the
    /// notification costs more than the copy it saves.
    ///
    /// Backends: io_uring with `IORING_OP_SEND_ZC` (Linux 6.0, found by
    /// probing the kernel); elsewhere, and on kernels without it, a plain
    /// send, with the same callback.
    ///
    /// # Errors
    ///
    /// As [`send`](IO::send).
    pub fn send_zc<B, F>(&mut self, socket: Handle, buf: B, callback: F) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        // In a chain, a plain send: its buffer comes back with the count.
        let zero_copy = self.send_zc_native() && !self.chain_open();
        self.submit_send(socket, buf, callback, zero_copy)
    }

    /// A send, zero-copy or not: the one body of `send` and `send_zc`.
    fn submit_send<B, F>(
        &mut self,
        socket: Handle,
        buf: B,
        callback: F,
        zero_copy: bool,
    ) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let len = buf.bytes_init().min(BUFFER_LIMIT) as u32;
        let ptr = buf.stable_ptr();
        let callback = self.callback(Drained { buf, callback });
        let refused = if len == 0 { INVALID } else { 0 };
        self.submit_on(socket, refused, callback, |fd| match zero_copy {
            true => Operation::SendZc { fd, buf: ptr, len },
            false => Operation::Send { fd, buf: ptr, len },
        })
    }

    /// Reads into `buf` (up to its capacity, clamped to [`BUFFER_LIMIT`])
    /// from `file` at byte `offset`. `0` means end of file. With `O_DIRECT`,
    /// the buffer address, its length and `offset` must be multiples of the
    /// device's block size (see [`AlignedBuf`](crate::AlignedBuf)).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero-capacity buffer, an `offset` above `i64::MAX`, or
    /// misaligned `O_DIRECT` I/O; `EBADF`, `EISDIR`, `EIO`, `ECANCELED`.
    pub fn read<B, F>(&mut self, file: Handle, mut buf: B, offset: u64, callback: F) -> CompletionId
    where
        B: IoBufMut,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let len = buf.bytes_total().min(BUFFER_LIMIT) as u32;
        let ptr = buf.stable_mut_ptr();
        let callback = self.callback(Filled { buf, callback });
        let refused = if len == 0 || !offset_is_valid(offset) {
            INVALID
        } else {
            0
        };
        self.submit_on(file, refused, callback, |fd| Operation::Read {
            fd,
            buf: ptr,
            len,
            offset,
        })
    }

    /// Writes the initialized bytes of `buf` (clamped to [`BUFFER_LIMIT`]) to
    /// `file` at byte `offset`. The count may be short. Data is durable only
    /// after [`fsync`](IO::fsync) completes, unless the file was opened with
    /// `dsync`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty buffer, an `offset` above `i64::MAX`, or
    /// misaligned `O_DIRECT` I/O; `EBADF`, `ENOSPC`, `EDQUOT`, `EFBIG`, `EIO`,
    /// `EPIPE`, `ECANCELED`.
    pub fn write<B, F>(&mut self, file: Handle, buf: B, offset: u64, callback: F) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let len = buf.bytes_init().min(BUFFER_LIMIT) as u32;
        let ptr = buf.stable_ptr();
        let callback = self.callback(Drained { buf, callback });
        let refused = if len == 0 || !offset_is_valid(offset) {
            INVALID
        } else {
            0
        };
        self.submit_on(file, refused, callback, |fd| Operation::Write {
            fd,
            buf: ptr,
            len,
            offset,
        })
    }

    /// Flushes `file`'s data and metadata to stable storage (`fsync(2)`).
    /// A directory handle (from [`open_file`](IO::open_file) on a
    /// directory) syncs its entries.
    ///
    /// # Errors
    ///
    /// `EBADF`, `EIO` (the data may be lost: do not retry and assume it is
    /// safe), `ENOSPC`, `EROFS`/`EINVAL` (the file does not support syncing), `ECANCELED`.
    pub fn fsync<F>(&mut self, file: Handle, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let callback = self.callback(Done(callback));
        self.submit_on(file, 0, callback, |fd| Operation::Fsync {
            fd,
            datasync: false,
        })
    }

    /// Flushes `file`'s data, and only the metadata needed to read it back
    /// (`fdatasync(2)`): cheaper when the file size did not change.
    ///
    /// # Errors
    ///
    /// As [`fsync`](IO::fsync).
    pub fn fdatasync<F>(&mut self, file: Handle, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let callback = self.callback(Done(callback));
        self.submit_on(file, 0, callback, |fd| Operation::Fsync {
            fd,
            datasync: true,
        })
    }

    /// Shuts down one or both directions of the connected socket `socket`
    /// (`shutdown(2)`), keeping the socket open: a half-close. After
    /// `Shutdown::Write` the peer reads the end of the stream once it has
    /// read what was sent before, while this end can still receive.
    ///
    /// Backends: io_uring (`IORING_OP_SHUTDOWN`), epoll (the syscall), and
    /// the simulator, which models both directions on a connected socket.
    ///
    /// # Errors
    ///
    /// `ENOTCONN` (not connected, or already reset), `EBADF`, `ENOTSOCK`,
    /// `ECANCELED`.
    pub fn shutdown<F>(&mut self, socket: Handle, how: Shutdown, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let callback = self.callback(Done(callback));
        let how = how.how();
        self.submit_on(socket, 0, callback, |fd| Operation::Shutdown { fd, how })
    }

    /// Closes the descriptor `handle` names. From this call on, the handle
    /// (and every copy) is stale: operations on it get `EBADF`.
    ///
    /// Operations still in flight on it are cancelled and complete with
    /// `ECANCELED` (or their own result, if they finished first), on every
    /// backend (on io_uring this needs Linux 5.19; before that, cancel them
    /// first). The close's callback runs after all of theirs, so when it
    /// runs nothing of the descriptor is left in flight. A close cannot be
    /// cancelled itself (`EALREADY`).
    ///
    /// # Errors
    ///
    /// `EBADF` (already closed, released, stale or another `IO`'s), `EIO`.
    pub fn close<F>(&mut self, handle: Handle, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let callback = self.callback(Done(callback));
        if self.chain_open() {
            // A close cannot be a chain member (it takes two entries, a
            // cancel and the close): refused, and the handle stays open.
            return self.submit_completed(
                Operation::Close {
                    fd: -1,
                    busy: false,
                },
                callback,
                -libc::EINVAL,
            );
        }
        let Some(fd) = self.handles.start_close(handle) else {
            return self.submit_completed(
                Operation::Close {
                    fd: -1,
                    busy: false,
                },
                callback,
                -libc::EBADF,
            );
        };
        // `busy` is decided when the close goes to the backend (`push_to_backend`).
        let close = Operation::Close { fd, busy: true };
        self.submit_with_handle(close, callback, handle.index)
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
        let callback = self.callback(Expired(callback));
        self.submit(Operation::Timeout { deadline_ns }, callback)
    }

    /// Cancels the operation `target`. Its callback then receives
    /// `ECANCELED`, or its natural result if it finished first; the cancel's
    /// own callback says which happened. A stale id, or one from another
    /// `IO`, never affects any operation.
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
    /// `ENOENT` if `target` already finished, is stale, is another `IO`'s,
    /// or was never issued; `EALREADY` if the kernel was already running it
    /// (its own result will tell whether it was interrupted), or if it is a
    /// [`close`](IO::close), which always runs to its end.
    pub fn cancel<F>(&mut self, target: CompletionId, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let callback = self.callback(Done(callback));
        self.submit_cancel(target, callback)
    }

    /// Waits until the descriptor `handle` names is ready for any of
    /// `events`. One-shot: poll again to keep watching.
    ///
    /// A regular file or directory is always ready for reading and writing,
    /// as `poll(2)` says: asking for either completes at once, and asking
    /// for neither (only [`PollEvents::HANGUP`], say) is `EINVAL`, as on
    /// io_uring, since such a file can never report anything else.
    ///
    /// # Errors
    ///
    /// `EBADF`, `EINVAL` (no events requested, or none a regular file can
    /// report), `ECANCELED`.
    pub fn poll<F>(&mut self, handle: Handle, events: PollEvents, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<PollEvents>) + 'static,
    {
        let callback = self.callback(Polled(callback));
        let refused = if events.is_empty() { INVALID } else { 0 };
        self.submit_on(handle, refused, callback, |fd| Operation::Poll {
            fd,
            events: events.bits(),
        })
    }

    /// Waits until `fd`, a descriptor that other code owns, is ready for
    /// any of `events`: for watching a descriptor that ringio does not own
    /// (a pipe of a child process, a device). One-shot, as [`poll`](IO::poll).
    ///
    /// # Safety
    ///
    /// `fd` must stay open, and must not be closed and its number reused,
    /// until this operation's callback has run (cancel it first to stop
    /// sooner). On the epoll backend the descriptor is registered with this
    /// `IO`'s epoll instance while the poll waits; a number reused in that
    /// window would be watched in its place.
    ///
    /// # Errors
    ///
    /// `EBADF`, `EINVAL` (no events requested), `ECANCELED`; `EOPNOTSUPP`
    /// under the simulator, which has no foreign descriptors.
    #[allow(unsafe_code)]
    pub unsafe fn poll_fd<F>(
        &mut self,
        fd: std::os::fd::RawFd,
        events: PollEvents,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<PollEvents>) + 'static,
    {
        let operation = Operation::Poll {
            fd,
            events: events.bits(),
        };
        let callback = self.callback(Polled(callback));
        if self.sim().is_some() {
            return self.submit_completed(operation, callback, -libc::EOPNOTSUPP);
        }
        if events.is_empty() {
            return self.submit_completed(operation, callback, INVALID);
        }
        self.submit(operation, callback)
    }
}
