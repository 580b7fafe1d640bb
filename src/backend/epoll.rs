//! The epoll backend: the fallback where io_uring is refused (seccomp,
//! `kernel.io_uring_disabled`, old kernels, memlock limits).
//!
//! It keeps the io_uring backend's contract exactly, so the loop core above
//! cannot tell them apart:
//! - `push` queues into a bounded submission queue (`entries` deep), and
//!   operations start only in `submit_and_wait`, in submission order, as
//!   io_uring starts them at `io_uring_enter`. A full queue sends the loop
//!   core to its `unqueued` FIFO, as a full ring does.
//! - Socket operations try the syscall first (never blocking: `MSG_DONTWAIT`,
//!   or `O_NONBLOCK` set on listeners, connecting sockets and pipes). On
//!   `EAGAIN` they wait for readiness through a one-shot epoll registration
//!   and are retried; `connect` waits out `EINPROGRESS` and reads `SO_ERROR`.
//! - File operations on regular files (read, write, fsync) run synchronously,
//!   as TigerBeetle's darwin backend does: their results, like all results,
//!   reach callbacks only through the loop's next reap, never inline.
//! - `close` first completes every operation waiting on the fd with
//!   `ECANCELED`, so none can hang on an fd number that is gone.
//! - Timers never reach a backend: the loop core's timing wheel shortens the
//!   wait, which here is `epoll_pwait2`'s nanosecond timeout.
//!
//! One-shot registration costs an `epoll_ctl` per wait, where a persistent
//! edge-triggered one would not. It is chosen because the loop does not own
//! the fds: an fd closed behind its back and reused by a new file would leave
//! a persistent registration silently dead, and a waiting operation hung.
//! Re-arming each wait (`MOD`, falling back to `ADD`) is correct whatever the
//! application does with its fds.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use fifo::{Fifo, Link, Links};

use super::{Backend, RawCompletion, Wait, REAP_BATCH_MAX};
use crate::completion::{CompletionId, Operation};
use crate::sys::{self, cvt, Fd};

/// Readable, in epoll's and poll's bits (they coincide for these).
const READABLE: u32 = libc::EPOLLIN as u32;
/// Writable.
const WRITABLE: u32 = libc::EPOLLOUT as u32;
/// Reported whatever the interest: every waiter retries and sees the error.
const ALWAYS: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// An operation waiting for readiness on its fd.
#[derive(Clone, Copy)]
struct Waiter {
    link: Link,
    /// Whether this entry is live; entries are indexed by completion slot.
    waiting: bool,
    /// The fd whose list this waiter is on.
    fd: Fd,
    user_data: u64,
    operation: Operation,
    /// The readiness (`POLLIN`, `POLLOUT`, or a `poll` operation's events)
    /// that makes a retry worthwhile.
    interest: u32,
}

impl Waiter {
    const IDLE: Waiter = Waiter {
        link: Link::new(),
        waiting: false,
        fd: -1,
        user_data: 0,
        operation: Operation::Nop,
        interest: 0,
    };
}

/// Waiters, indexed by the completion slot in their `user_data`: the loop
/// core keeps slot indices dense, so this table stays as small as its own.
struct Waiters(Vec<Waiter>);

impl Links for Waiters {
    fn link(&self, index: u32) -> &Link {
        &self.0[index as usize].link
    }

    fn link_mut(&mut self, index: u32) -> &mut Link {
        &mut self.0[index as usize].link
    }
}

/// What the backend knows about one fd number.
struct FdState {
    /// Operations waiting on this fd, oldest first.
    waiters: Fifo,
    /// The events armed in epoll right now; zero once a one-shot fired.
    armed: u32,
    /// Whether the fd was added to epoll (it may have been closed since,
    /// which removes it: `MOD` then fails with `ENOENT` and we `ADD`).
    registered: bool,
    /// This backend set `O_NONBLOCK` on the fd, and clears it again when
    /// the `IO` gives the fd back (`release`).
    nonblocking_set: bool,
}

impl FdState {
    const fn new() -> FdState {
        FdState {
            waiters: Fifo::new(),
            armed: 0,
            registered: false,
            nonblocking_set: false,
        }
    }
}

/// What one attempt at an operation's syscall gave.
enum Attempt {
    Done(i32),
    WouldBlock { fd: Fd, interest: u32 },
}

/// The epoll backend.
pub(crate) struct EpollBackend {
    epoll: OwnedFd,
    /// Pushed operations not yet started, oldest first.
    submissions: VecDeque<(u64, Operation)>,
    submissions_max: usize,
    /// Results not yet reaped, in completion order.
    results: VecDeque<RawCompletion>,
    waiters: Waiters,
    /// Indexed by fd number.
    fds: Vec<FdState>,
    /// Operations waiting for readiness.
    waiting: u32,
    events: Vec<libc::epoll_event>,
    /// `epoll_pwait2` (Linux 5.11) is there; else `epoll_wait` rounds the
    /// timeout up to whole milliseconds.
    pwait2: bool,
    syscalls: u64,
}

impl EpollBackend {
    /// Creates an epoll instance with a submission queue of `entries`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for zero entries; what `epoll_create1` returns.
    pub(crate) fn new(entries: u32) -> io::Result<EpollBackend> {
        if entries == 0 {
            return Err(sys::errno(libc::EINVAL));
        }
        // SAFETY: epoll_create1 takes only flags; the fd it returns is ours.
        let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `epoll` was just created and nothing else owns it.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // Sized as io_uring sizes its submission queue (a power of two, at
        // most 32768), so that the same config parks the same work on
        // `unqueued` on either backend.
        let entries = entries.min(1 << 15).next_power_of_two() as usize;
        Ok(EpollBackend {
            epoll,
            submissions: VecDeque::with_capacity(entries),
            submissions_max: entries,
            results: VecDeque::with_capacity(entries),
            waiters: Waiters(Vec::new()),
            fds: Vec::new(),
            waiting: 0,
            events: Vec::with_capacity(REAP_BATCH_MAX),
            pwait2: true,
            syscalls: 0,
        })
    }

    fn finish(&mut self, user_data: u64, result: i32) {
        self.results.push_back(RawCompletion {
            user_data,
            result,
            flags: 0,
        });
    }

    /// Starts one operation: completes it, or parks it until its fd is ready.
    fn start(&mut self, user_data: u64, operation: Operation) {
        let attempt = match operation {
            Operation::Nop => Attempt::Done(0),
            Operation::Poll { fd, events } => Attempt::WouldBlock {
                fd,
                interest: events,
            },
            Operation::Cancel { target } => {
                let result = self.cancel(target);
                Attempt::Done(result)
            }
            Operation::Close { fd, .. } => {
                self.cancel_fd(fd);
                self.syscalls += 1;
                let errno = |error: io::Error| error.raw_os_error().unwrap_or(libc::EIO);
                Attempt::Done(sys::close(fd).map_or_else(|error| -errno(error), |()| 0))
            }
            // The loop core keeps timeouts in its own wheel.
            Operation::Timeout { .. } => Attempt::Done(-libc::EINVAL),
            _ => self.attempt(&operation, false),
        };
        match attempt {
            Attempt::Done(result) => self.finish(user_data, result),
            Attempt::WouldBlock { fd, interest } => {
                self.wait(user_data, operation, fd, interest);
            }
        }
    }

    /// Makes the operation's syscall once, never blocking. `retry` is set
    /// after a readiness event: a connect then reads its outcome.
    fn attempt(&mut self, operation: &Operation, retry: bool) -> Attempt {
        self.syscalls += 1;
        match *operation {
            Operation::Accept { fd } => {
                if let Err(error) = self.ensure_nonblocking(fd) {
                    return Attempt::Done(error);
                }
                // SAFETY: null address pointers ask accept4 for no address.
                let result = unsafe {
                    libc::accept4(
                        fd,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC,
                    )
                };
                would_block_or(result as isize, fd, READABLE)
            }
            Operation::Connect { fd, addr, addr_len } => {
                if retry {
                    return Attempt::Done(self.connect_outcome(fd));
                }
                if let Err(error) = self.ensure_nonblocking(fd) {
                    return Attempt::Done(error);
                }
                // SAFETY: `addr` points at `addr_len` bytes owned by the
                // operation's handler, alive until its completion is reaped.
                let result = unsafe { libc::connect(fd, addr, addr_len) };
                match result_of(result as isize) {
                    result if result == -libc::EINPROGRESS || result == -libc::EAGAIN => {
                        Attempt::WouldBlock {
                            fd,
                            interest: WRITABLE,
                        }
                    }
                    result => Attempt::Done(result),
                }
            }
            Operation::Recv { fd, buf, len } => {
                // SAFETY: `buf` is valid for writes of `len` bytes, owned by
                // the handler until the completion is reaped.
                let result =
                    unsafe { libc::recv(fd, buf.cast(), len as usize, libc::MSG_DONTWAIT) };
                would_block_or(result, fd, READABLE)
            }
            Operation::Send { fd, buf, len } => {
                let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                // SAFETY: `buf` is valid for reads of `len` bytes, owned by
                // the handler until the completion is reaped.
                let result = unsafe { libc::send(fd, buf.cast(), len as usize, flags) };
                would_block_or(result, fd, WRITABLE)
            }
            Operation::Read {
                fd,
                buf,
                len,
                offset,
            } => self.read(fd, buf, len, offset, retry),
            Operation::Write {
                fd,
                buf,
                len,
                offset,
            } => self.write(fd, buf, len, offset, retry),
            // The IO submits registered-buffer I/O here as plain reads and
            // writes; these arms only keep the backend total.
            Operation::ReadFixed {
                fd,
                buf,
                len,
                offset,
                ..
            } => self.read(fd, buf, len, offset, retry),
            Operation::WriteFixed {
                fd,
                buf,
                len,
                offset,
                ..
            } => self.write(fd, buf.cast_const(), len, offset, retry),
            Operation::Readv {
                fd,
                iovecs,
                count,
                offset,
            } => self.readv(fd, iovecs, count, offset, retry),
            Operation::Writev {
                fd,
                iovecs,
                count,
                offset,
            } => self.writev(fd, iovecs, count, offset, retry),
            Operation::SendMsg { fd, msg } => {
                let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                // SAFETY: `msg` and everything it points at live in the
                // operation's message, owned by the handler until the
                // completion is reaped.
                let result = unsafe { libc::sendmsg(fd, msg, flags) };
                would_block_or(result, fd, WRITABLE)
            }
            Operation::RecvMsg { fd, msg } => {
                // SAFETY: as for SendMsg; the kernel writes only into the
                // buffers, name and control room the header describes.
                let result = unsafe { libc::recvmsg(fd, msg, libc::MSG_DONTWAIT) };
                would_block_or(result, fd, READABLE)
            }
            Operation::Shutdown { fd, how } => {
                // SAFETY: shutdown(2) takes only integers.
                let result = unsafe { libc::shutdown(fd, how) };
                Attempt::Done(result_of(result as isize))
            }
            Operation::Fsync { fd, datasync } => {
                let sync = if datasync {
                    libc::fdatasync
                } else {
                    libc::fsync
                };
                // SAFETY: fsync and fdatasync take only an fd.
                let result = unsafe { sync(fd) };
                Attempt::Done(result_of(result as isize))
            }
            Operation::OpenAt { .. }
            | Operation::Statx { .. }
            | Operation::Fallocate { .. }
            | Operation::Ftruncate { .. }
            | Operation::RenameAt { .. }
            | Operation::UnlinkAt { .. }
            | Operation::MkDirAt { .. } => Attempt::Done(file_system_call(operation)),
            // The loop emulates multishot operations with one-shot ones here.
            Operation::Nop
            | Operation::Poll { .. }
            | Operation::Cancel { .. }
            | Operation::Close { .. }
            | Operation::Timeout { .. }
            | Operation::AcceptMulti { .. }
            | Operation::RecvMulti { .. }
            | Operation::SendZc { .. }
            | Operation::Shot { .. } => Attempt::Done(-libc::EINVAL),
        }
    }

    /// A positional read: synchronous on a regular file; on a stream (pipe,
    /// socket, character device, where `pread` is `ESPIPE`) a non-blocking
    /// `read` that waits for readiness, as io_uring does for such files.
    fn read(&mut self, fd: Fd, buf: *mut u8, len: u32, offset: u64, retry: bool) -> Attempt {
        let len = len as usize;
        let at = |offset: i64| {
            // SAFETY: `buf` is valid for writes of `len` bytes, owned by the
            // handler until the completion is reaped. The IO checked that
            // `offset` fits in an off_t.
            unsafe { libc::pread(fd, buf.cast(), len, offset) }
        };
        // SAFETY: as above.
        let streamed = || unsafe { libc::read(fd, buf.cast(), len) };
        self.transfer(fd, offset, retry, READABLE, at, streamed)
    }

    /// A positional write; see [`EpollBackend::read`].
    fn write(&mut self, fd: Fd, buf: *const u8, len: u32, offset: u64, retry: bool) -> Attempt {
        let len = len as usize;
        // SAFETY: `buf` is valid for reads of `len` bytes, owned by the
        // handler until the completion is reaped.
        let at = |offset: i64| unsafe { libc::pwrite(fd, buf.cast(), len, offset) };
        // SAFETY: as above.
        let streamed = || unsafe { libc::write(fd, buf.cast(), len) };
        self.transfer(fd, offset, retry, WRITABLE, at, streamed)
    }

    /// A vectored positional read; see [`EpollBackend::read`].
    fn readv(
        &mut self,
        fd: Fd,
        iovecs: *const libc::iovec,
        count: u32,
        offset: u64,
        retry: bool,
    ) -> Attempt {
        let count = count as libc::c_int;
        // SAFETY: `iovecs` points at `count` iovecs, each valid for writes,
        // in the operation's message, owned by the handler until the
        // completion is reaped.
        let at = |offset: i64| unsafe { libc::preadv(fd, iovecs, count, offset) };
        // SAFETY: as above.
        let streamed = || unsafe { libc::readv(fd, iovecs, count) };
        self.transfer(fd, offset, retry, READABLE, at, streamed)
    }

    /// A vectored positional write; see [`EpollBackend::read`].
    fn writev(
        &mut self,
        fd: Fd,
        iovecs: *const libc::iovec,
        count: u32,
        offset: u64,
        retry: bool,
    ) -> Attempt {
        let count = count as libc::c_int;
        // SAFETY: `iovecs` points at `count` iovecs, each valid for reads,
        // owned by the handler until the completion is reaped.
        let at = |offset: i64| unsafe { libc::pwritev(fd, iovecs, count, offset) };
        // SAFETY: as above.
        let streamed = || unsafe { libc::writev(fd, iovecs, count) };
        self.transfer(fd, offset, retry, WRITABLE, at, streamed)
    }

    /// The body of every positional transfer: `at(offset)` once, at once;
    /// on a stream, which has no offsets (`ESPIPE`), `streamed()` on a
    /// non-blocking fd, waiting for `interest` when it would block. io_uring
    /// does the same with a stream at offset 0, and refuses other offsets.
    fn transfer(
        &mut self,
        fd: Fd,
        offset: u64,
        retry: bool,
        interest: u32,
        at: impl FnOnce(i64) -> isize,
        streamed: impl FnOnce() -> isize,
    ) -> Attempt {
        if !retry {
            let result = result_of(at(offset as i64));
            if result != -libc::ESPIPE || offset != 0 {
                return Attempt::Done(result);
            }
        }
        if let Err(error) = self.ensure_nonblocking(fd) {
            return Attempt::Done(error);
        }
        if !retry {
            self.syscalls += 1; // the positional call above was one already
        }
        would_block_or(streamed(), fd, interest)
    }

    /// Sets `O_NONBLOCK` on `fd` if it is not set, so that a syscall the loop
    /// makes on it can never block the thread. Returns a negative errno.
    fn ensure_nonblocking(&mut self, fd: Fd) -> Result<(), i32> {
        self.syscalls += 1;
        // SAFETY: fcntl(F_GETFL) takes only integers.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(-sys::errno_last());
        }
        if flags & libc::O_NONBLOCK != 0 {
            return Ok(());
        }
        self.syscalls += 1;
        // SAFETY: fcntl(F_SETFL) takes only integers.
        match unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } {
            0 => {
                self.fd_state(fd).nonblocking_set = true;
                Ok(())
            }
            _ => Err(-sys::errno_last()),
        }
    }

    /// The state of `fd`, an open descriptor, growing the table to it.
    fn fd_state(&mut self, fd: Fd) -> &mut FdState {
        let index = usize::try_from(fd).expect("an open fd is not negative");
        if self.fds.len() <= index {
            self.fds.resize_with(index + 1, FdState::new);
        }
        &mut self.fds[index]
    }

    /// After a connecting socket turned writable: 0, or its error.
    fn connect_outcome(&mut self, fd: Fd) -> i32 {
        let mut error: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `error` and `len` are valid for writes for the call.
        let result = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut error as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        match result {
            0 => -error,
            _ => -sys::errno_last(),
        }
    }

    /// Parks an operation until `fd` reports `interest`, arming epoll for it.
    fn wait(&mut self, user_data: u64, operation: Operation, fd: Fd, interest: u32) {
        let Ok(fd_index) = usize::try_from(fd) else {
            self.finish(user_data, -libc::EBADF);
            return;
        };
        if self.fds.len() <= fd_index && !self.fd_is_open(fd) {
            // Grow the table only for a real fd: a bogus large number must
            // be an EBADF, not an allocation sized by it.
            self.finish(user_data, -libc::EBADF);
            return;
        }
        let index = CompletionId::slot_of(user_data);
        if self.waiters.0.len() <= index as usize {
            self.waiters.0.resize(index as usize + 1, Waiter::IDLE);
        }
        if self.fds.len() <= fd_index {
            self.fds.resize_with(fd_index + 1, FdState::new);
        }
        let waiter = &mut self.waiters.0[index as usize];
        debug_assert!(!waiter.waiting);
        waiter.waiting = true;
        waiter.fd = fd;
        waiter.user_data = user_data;
        waiter.operation = operation;
        waiter.interest = interest;
        self.fds[fd_index].waiters.push(&mut self.waiters, index);
        self.waiting += 1;
        self.arm(fd);
    }

    fn fd_is_open(&mut self, fd: Fd) -> bool {
        self.syscalls += 1;
        // SAFETY: fcntl(F_GETFD) takes only integers and changes nothing.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    }

    /// Makes epoll watch `fd` for what its waiters want, once.
    fn arm(&mut self, fd: Fd) {
        let state = &self.fds[fd as usize];
        let wanted = state.waiters.iter(&self.waiters).fold(0, |events, index| {
            events | self.waiters.0[index as usize].interest
        });
        if wanted == 0 || wanted & !state.armed == 0 {
            return;
        }
        let (first, second) = if state.registered {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD)
        };
        let events = wanted | libc::EPOLLONESHOT as u32;
        let mut result = self.epoll_ctl(first, fd, events);
        // Our record can be stale: the fd may have been closed (which drops
        // it from epoll) or still be registered through a dup.
        if result == -libc::ENOENT || result == -libc::EEXIST {
            result = self.epoll_ctl(second, fd, events);
        }
        match result {
            0 => {
                let state = &mut self.fds[fd as usize];
                state.registered = true;
                state.armed = wanted;
            }
            error if error == -libc::EPERM => self.on_unpollable(fd),
            error => self.fail_waiters(fd, error),
        }
    }

    fn epoll_ctl(&mut self, op: libc::c_int, fd: Fd, events: u32) -> i32 {
        self.syscalls += 1;
        let mut event = libc::epoll_event {
            events,
            u64: fd as u64,
        };
        // SAFETY: `event` is a valid epoll_event for the call.
        let result = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        result_of(result as isize)
    }

    /// `fd` reported `events`: retries each waiter they concern, keeps the
    /// rest (and those that would still block) waiting, and re-arms.
    fn on_ready(&mut self, fd: Fd, events: u32) {
        self.retry_waiters(fd, events);
        self.arm(fd);
    }

    /// Retries the waiters on `fd` that `events` concerns; returns whether
    /// any would still block. Once a retry finds a direction (readable or
    /// writable) exhausted, later waiters for it are not tried this round:
    /// one incoming connection wakes sixteen pending accepts, and fifteen
    /// syscalls that must fail are skipped.
    fn retry_waiters(&mut self, fd: Fd, events: u32) -> bool {
        let Some(state) = self.fds.get_mut(fd as usize) else {
            return false;
        };
        state.armed = 0;
        let mut pending = state.waiters.take();
        let mut exhausted = 0;
        while let Some(index) = pending.pop(&mut self.waiters) {
            let waiter = self.waiters.0[index as usize];
            if let Some(result) = self.retry(&waiter, events & !exhausted) {
                self.waiters.0[index as usize].waiting = false;
                self.waiting -= 1;
                self.finish(waiter.user_data, result);
            } else {
                if !matches!(waiter.operation, Operation::Poll { .. }) {
                    exhausted |= waiter.interest;
                }
                self.fds[fd as usize].waiters.push(&mut self.waiters, index);
            }
        }
        exhausted != 0
    }

    /// The result of a waiter woken by `events`, or `None` to keep waiting.
    fn retry(&mut self, waiter: &Waiter, events: u32) -> Option<i32> {
        if let Operation::Poll { .. } = waiter.operation {
            let ready = events & (waiter.interest | ALWAYS);
            return (ready != 0).then_some(ready as i32);
        }
        if events & (waiter.interest | ALWAYS) == 0 {
            return None;
        }
        match self.attempt(&waiter.operation, true) {
            Attempt::Done(result) => Some(result),
            Attempt::WouldBlock { .. } => None,
        }
    }

    /// `fd` is a regular file or directory, which epoll refuses because it
    /// is always ready: polls report it ready, as io_uring's poll does, and
    /// operations are retried once. One that would still block cannot be
    /// waited for, and gets `EAGAIN` rather than a wait that never ends.
    fn on_unpollable(&mut self, fd: Fd) {
        if self.retry_waiters(fd, READABLE | WRITABLE) {
            self.fail_waiters(fd, -libc::EAGAIN);
        }
        // A poll for neither readable nor writable can never be satisfied
        // by such a file: io_uring refuses it with EINVAL, and so do we.
        self.fail_waiters(fd, -libc::EINVAL);
    }

    /// Completes every waiter on `fd` with `result`.
    fn fail_waiters(&mut self, fd: Fd, result: i32) {
        let Some(state) = self.fds.get_mut(fd as usize) else {
            return;
        };
        let mut failed = state.waiters.take();
        while let Some(index) = failed.pop(&mut self.waiters) {
            let waiter = &mut self.waiters.0[index as usize];
            waiter.waiting = false;
            let user_data = waiter.user_data;
            self.waiting -= 1;
            self.finish(user_data, result);
        }
    }

    /// Before `fd` is closed: its waiters complete with `ECANCELED`, and
    /// what we knew of it is forgotten (closing removes its registration).
    fn cancel_fd(&mut self, fd: Fd) {
        self.fail_waiters(fd, -libc::ECANCELED);
        if let Some(state) = self.fds.get_mut(fd as usize) {
            state.armed = 0;
            state.registered = false;
            state.nonblocking_set = false;
        }
    }

    /// Cancels a waiting operation: 0, or `ENOENT` if it is not waiting
    /// (already completed, or never issued).
    fn cancel(&mut self, target: CompletionId) -> i32 {
        let index = target.slot as usize;
        let Some(waiter) = self.waiters.0.get(index) else {
            return -libc::ENOENT;
        };
        if !waiter.waiting || waiter.user_data != target.user_data() {
            return -libc::ENOENT;
        }
        let removed = self.fds[waiter.fd as usize]
            .waiters
            .remove(&mut self.waiters, target.slot);
        assert!(removed);
        self.waiters.0[index].waiting = false;
        self.waiting -= 1;
        self.finish(target.user_data(), -libc::ECANCELED);
        0
    }

    /// Waits up to `timeout_ns` (`None`: forever) and handles what is ready.
    fn poll_events(&mut self, timeout_ns: Option<u64>) -> io::Result<()> {
        self.syscalls += 1;
        let count = self.epoll_wait(timeout_ns);
        let count = match count {
            Ok(count) => count,
            Err(error) if error.raw_os_error() == Some(libc::EINTR) => return Ok(()),
            Err(error) => return Err(error),
        };
        // SAFETY: epoll_wait initialized the first `count` events.
        unsafe { self.events.set_len(count) };
        for event_index in 0..count {
            let event = self.events[event_index];
            self.on_ready(event.u64 as Fd, event.events);
        }
        self.events.clear();
        Ok(())
    }

    fn epoll_wait(&mut self, timeout_ns: Option<u64>) -> io::Result<usize> {
        let epoll = self.epoll.as_raw_fd();
        let events = self.events.as_mut_ptr();
        let max = self.events.capacity() as libc::c_int;
        if self.pwait2 {
            let timespec = timeout_ns.map(|ns| libc::timespec {
                tv_sec: (ns / 1_000_000_000).min(i64::MAX as u64) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            });
            let timeout = timespec
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `events` has room for `max` entries; `timeout` is null
            // or points at a timespec alive for the call; a null sigmask
            // leaves the mask alone.
            let result = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epoll,
                    events,
                    max,
                    timeout,
                    0usize,
                    0usize,
                )
            };
            if result >= 0 {
                return Ok(result as usize);
            }
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ENOSYS) {
                return Err(error);
            }
            self.pwait2 = false;
        }
        // Round up, so that the wait never ends before a timer is due.
        let timeout_ms =
            timeout_ns.map_or(-1, |ns| ns.div_ceil(1_000_000).min(i32::MAX as u64) as i32);
        // SAFETY: `events` has room for `max` entries.
        let result = unsafe { libc::epoll_wait(epoll, events, max, timeout_ms) };
        cvt(result).map(|count| count as usize)
    }
}

/// A syscall's return value as a kernel-style result: the value, or a
/// negative errno.
fn result_of(result: isize) -> i32 {
    if result < 0 {
        -sys::errno_last()
    } else {
        result.min(i32::MAX as isize) as i32
    }
}

/// A file-system operation, run synchronously (as file I/O is here): its
/// result in the kernel convention.
fn file_system_call(operation: &Operation) -> i32 {
    let result = match *operation {
        // SAFETY: `path` is a NUL-terminated copy in the operation's
        // `FsArgs`, owned by its handler until the completion is reaped.
        Operation::OpenAt { path, flags, mode } => unsafe {
            libc::openat(libc::AT_FDCWD, path, flags, mode)
        },
        // SAFETY: `statx` points at the record in the operation's
        // `FsArgs`, as above; the empty path is a static C string.
        Operation::Statx { fd, statx } => unsafe {
            libc::statx(
                fd,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                crate::fs::STATX_MASK,
                statx,
            )
        },
        Operation::Fallocate {
            fd,
            mode,
            offset,
            len,
        } => {
            // SAFETY: fallocate(2) takes only integers. The IO checked that
            // both fit in an off_t.
            unsafe { libc::fallocate(fd, mode, offset as i64, len as i64) }
        }
        // SAFETY: ftruncate(2) takes only integers; the IO checked `len`.
        Operation::Ftruncate { fd, len } => unsafe { libc::ftruncate(fd, len as i64) },
        // SAFETY: both paths are NUL-terminated copies in the operation's
        // `FsArgs`, as for OpenAt.
        Operation::RenameAt { old, new, flags } => unsafe {
            libc::renameat2(libc::AT_FDCWD, old, libc::AT_FDCWD, new, flags)
        },
        // SAFETY: as for OpenAt.
        Operation::UnlinkAt { path, flags } => unsafe {
            libc::unlinkat(libc::AT_FDCWD, path, flags)
        },
        // SAFETY: as for OpenAt.
        Operation::MkDirAt { path, mode } => unsafe { libc::mkdirat(libc::AT_FDCWD, path, mode) },
        _ => unreachable!("not a file-system operation"),
    };
    result_of(result as isize)
}

/// Like [`result_of`], but `EAGAIN` means: wait for `interest` on `fd`.
fn would_block_or(result: isize, fd: Fd, interest: u32) -> Attempt {
    match result_of(result) {
        result if result == -libc::EAGAIN => Attempt::WouldBlock { fd, interest },
        result => Attempt::Done(result),
    }
}

impl Backend for EpollBackend {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn push(&mut self, user_data: u64, operation: &Operation) -> bool {
        if self.submissions.len() >= self.submissions_max {
            return false;
        }
        self.submissions.push_back((user_data, *operation));
        true
    }

    fn submit_and_wait(&mut self, wait: Wait) -> io::Result<()> {
        while let Some((user_data, operation)) = self.submissions.pop_front() {
            self.start(user_data, operation);
        }
        let timeout_ns = if !self.results.is_empty() || wait == Wait::Never {
            // Results are ready: only peek, and only if anything could be.
            if self.waiting == 0 {
                return Ok(());
            }
            Some(0)
        } else {
            match wait {
                Wait::Never => Some(0),
                Wait::Timeout(timeout_ns) => Some(timeout_ns),
                Wait::Forever => None,
            }
        };
        self.poll_events(timeout_ns)
    }

    /// Operations start in `submit_and_wait` only, so that they start in
    /// submission order once per pass: nothing to do early.
    fn submit_early(&mut self, _batch: u32) {}

    fn reap(&mut self, batch: &mut Vec<RawCompletion>, max: usize) {
        let count = max.min(self.results.len());
        batch.extend(self.results.drain(..count));
    }

    fn syscalls(&self) -> u64 {
        self.syscalls
    }

    /// Clears the `O_NONBLOCK` this backend set, so the owner gets the fd
    /// back as it gave it (a std `accept` on it then blocks, as it should),
    /// and drops it from epoll.
    fn forget_fd(&mut self, fd: Fd) {
        let Some(state) = self.fds.get_mut(fd as usize) else {
            return;
        };
        let (registered, nonblocking_set) = (state.registered, state.nonblocking_set);
        // The IO releases only a handle with nothing in flight; a waiter can
        // be left only by an `unsafe` `poll_fd` on the same number, whose
        // registration must then stay.
        let waiting = !state.waiters.is_empty();
        state.nonblocking_set = false;
        if !waiting {
            *state = FdState::new();
        }
        if registered && !waiting {
            // Gone already if the fd was closed and reopened meanwhile.
            let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, fd, 0);
        }
        if nonblocking_set {
            self.syscalls += 2;
            // SAFETY: fcntl(F_GETFL/F_SETFL) take only integers.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags >= 0 {
                // SAFETY: as above. A failure leaves the flag set, which
                // the owner can still see and clear.
                unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) };
            }
        }
    }
}

impl Drop for EpollBackend {
    /// A close that was pushed but never started owns its fd (the `IO`
    /// handed it over): close it, so that dropping the `IO` leaks no fd.
    fn drop(&mut self) {
        for (_, operation) in self.submissions.drain(..) {
            if let Operation::Close { fd, .. } = operation {
                // Nothing is left to report the result to.
                let _ = sys::close(fd);
            }
        }
    }
}
