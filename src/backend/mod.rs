//! The backend contract.
//!
//! The loop core ([`crate::IO`]) owns the completion slots, the `unqueued` and
//! `completed` FIFOs and the timers. A backend only moves operations to and
//! from the kernel: it accepts an operation, submits and waits, and reports raw
//! results keyed by `user_data`. Writing the contract as a trait lets the
//! compiler hold every backend to the same shape.

use std::io;

use crate::completion::Operation;
use crate::sys::Fd;

pub(crate) mod epoll;
pub(crate) mod io_uring;
pub(crate) mod ring_map;
pub(crate) mod select;
pub(crate) mod sim;

/// How long a backend may block in [`Backend::submit_and_wait`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Wait {
    /// Submit only; peek for completions without blocking.
    Never,
    /// Block until a completion arrives or this many nanoseconds pass.
    Timeout(u64),
    /// Block until a completion arrives.
    Forever,
}

/// One raw completion: whose it is, the kernel-style result, and the
/// completion entry's flags (`IORING_CQE_F_MORE`, `F_BUFFER` with its buffer
/// id, `F_NOTIF`). Backends that emulate completions report 0.
///
/// `repr(C)`: the io_uring backend reads its completion queue's entries
/// (`struct io_uring_cqe`) as these, in place (`ring_map`).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawCompletion {
    pub(crate) user_data: u64,
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

/// `IORING_CQE_F_MORE`: the multishot operation will post more completions.
pub(crate) const CQE_F_MORE: u32 = 1 << 1;
/// `IORING_CQE_F_NOTIF`: a zero-copy send's notification that the kernel is
/// done with the buffer.
pub(crate) const CQE_F_NOTIF: u32 = 1 << 3;

/// Kernel features a backend may lack, found by probing, never by version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feature {
    /// `IORING_OP_SEND_ZC`.
    SendZc,
}

/// `user_data` of entries the loop or a backend submits for itself (cancels
/// on drop, the cancel before a close), whose completions name no slot.
pub(crate) const USER_DATA_INTERNAL: u64 = u64::MAX;

/// The most completions reaped into one batch: a bound on stack use and on
/// work between checks of the loop's deadline.
pub(crate) const REAP_BATCH_MAX: usize = 256;

/// The registered file table's counters (all zero without one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RegisteredFiles {
    /// Slots in the table; 0 when there is none.
    pub(crate) slots: u32,
    /// Descriptors installed in it now.
    pub(crate) installed: u32,
    /// Descriptors that got no slot (the table was full, or the kernel
    /// refused the update) and run on their plain fd.
    pub(crate) fallbacks: u64,
}

/// What every backend provides to the loop core.
pub(crate) trait Backend {
    /// The backend's name, as reported by `IO::backend()`.
    fn name(&self) -> &'static str;

    /// Queues `operation` for submission under `user_data`. Returns `false`,
    /// queuing nothing, when the submission queue is full.
    ///
    /// The pointers inside `operation` must stay valid until the matching
    /// completion is reaped.
    fn push(&mut self, user_data: u64, operation: &Operation) -> bool;

    /// Queues `operation` as `push` does, linked to the next one pushed
    /// (`IOSQE_IO_LINK`): it runs only once this one has fully succeeded.
    /// Only for a backend whose [`links`](Backend::links) says so, and
    /// only when [`room`](Backend::room) has said the whole group fits.
    fn push_linked(&mut self, _user_data: u64, _operation: &Operation) -> bool {
        unreachable!("the loop emulates links on this backend")
    }

    /// Whether the kernel can run `operation` as a linked chain member.
    fn links(&self, _operation: &Operation) -> bool {
        false
    }

    /// Whether an operation on `fd` that the kernel starts later than its
    /// submission (a linked member after the first) finds its file by the
    /// fd's number at that moment, rather than through a file the ring
    /// holds: a close meanwhile could free the number for another file.
    fn finds_file_late(&self, _fd: Fd) -> bool {
        false
    }

    /// How many more entries the submission queue takes now.
    fn room(&mut self) -> usize {
        usize::MAX
    }

    /// How many entries the submission queue takes at most.
    fn entries_max(&self) -> usize {
        usize::MAX
    }

    /// Submits everything queued, then waits as `wait` says. With
    /// `Wait::Never` and nothing to submit, may make no syscall. Never reports
    /// `EINTR`, `ETIME` or `EBUSY`: those are handled inside.
    fn submit_and_wait(&mut self, wait: Wait) -> io::Result<()>;

    /// Submits what is queued, without waiting, if at least `batch`
    /// entries are. Errors are left for the next `submit_and_wait`, which
    /// retries what is still queued and reports them. May do nothing.
    fn submit_early(&mut self, batch: u32);

    /// Appends up to `max` completions to `batch`.
    fn reap(&mut self, batch: &mut Vec<RawCompletion>, max: usize);

    /// How many `io_uring_enter` (or equivalent) syscalls were made so far.
    fn syscalls(&self) -> u64;

    /// Registers a buffer ring of `entries` at `ring_addr` as group `bgid`.
    ///
    /// # Safety
    ///
    /// The ring's memory must stay valid and unmoved until the group is
    /// unregistered or the ring is destroyed.
    #[allow(unsafe_code)]
    unsafe fn register_buf_ring(
        &mut self,
        _ring_addr: u64,
        _entries: u16,
        _bgid: u16,
    ) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }

    /// Registers `iovecs` as the ring's fixed buffers. `Ok(false)`: the
    /// backend has no registration, and fixed operations are emulated.
    ///
    /// # Safety
    ///
    /// The buffers must stay valid and unmoved until the ring is destroyed.
    #[allow(unsafe_code)]
    unsafe fn register_buffers(&mut self, _iovecs: &[libc::iovec]) -> io::Result<bool> {
        Ok(false)
    }

    /// Unregisters buffer group `bgid`.
    fn unregister_buf_ring(&mut self, _bgid: u16) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }

    /// Whether the backend has `feature` natively.
    fn supports(&self, _feature: Feature) -> bool {
        false
    }

    /// Does without the optional opcodes it probed for (a test of the
    /// paths a kernel without them takes): `Config::emulate_kernel_features`.
    fn emulate_features(&mut self) {}

    /// The `IO` gives the descriptor `fd` back to its owner (`release`):
    /// undo what the backend changed on it (flags, a registered-file
    /// slot), and forget it. Nothing is in flight on it.
    fn forget_fd(&mut self, _fd: crate::sys::Fd) {}

    /// The `IO` now owns `fd`, behind handle-table entry `index`: a backend
    /// with a registered file table installs it at slot `index`, so that
    /// operations on it name the slot rather than the fd. Where it cannot
    /// (no table, the table is full, the kernel refused), operations use
    /// the fd, and [`registered_files`](Backend::registered_files) counts it.
    fn register_file(&mut self, _index: u32, _fd: crate::sys::Fd) {}

    /// The registered file table's counters.
    fn registered_files(&self) -> RegisteredFiles {
        RegisteredFiles::default()
    }

    /// The `IO` is being dropped, with nothing in flight: let go of every
    /// file the backend itself holds (a registered file table) now. Left
    /// to the kernel's teardown of the ring, which runs asynchronously
    /// (tens of milliseconds later on Linux 6.18), a listening socket
    /// would keep its port: a new `bind` of it would fail with
    /// `EADDRINUSE` until then.
    fn release_files(&mut self) {}

    /// Forgets every operation in flight, if this backend can guarantee
    /// that nothing will touch their memory again (the simulator can: it is
    /// the "kernel"). Returns whether it did; a kernel backend cannot.
    fn abandon(&mut self) -> bool {
        false
    }
}

/// The backend an `IO` runs on: an enum rather than a trait object, so that
/// every call is a predictable branch the compiler can inline through.
/// `repr(u8)` puts the variant in a byte of its own, so that branch is one
/// compare: without it the compiler hides the variant in a niche of
/// `IoUring`'s fields and decodes it on every call. The io_uring variant
/// is the largest by some 220 bytes: boxing it would put a pointer chase in
/// front of every push, for one value per `IO`, moved only while the `IO`
/// is built.
#[repr(u8)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyBackend {
    IoUring(io_uring::IoUringBackend),
    Epoll(epoll::EpollBackend),
    Sim(sim::SimBackend),
}

/// Forwards one `Backend` method to whichever backend is running.
macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {
        match $self {
            AnyBackend::IoUring($backend) => $call,
            AnyBackend::Epoll($backend) => $call,
            AnyBackend::Sim($backend) => $call,
        }
    };
}

impl Backend for AnyBackend {
    fn name(&self) -> &'static str {
        dispatch!(self, backend => backend.name())
    }

    // Always inlined: the loop pushes once per operation, and io_uring's
    // push is a few instructions around one call (`entry_for`).
    #[inline(always)]
    fn push(&mut self, user_data: u64, operation: &Operation) -> bool {
        dispatch!(self, backend => backend.push(user_data, operation))
    }

    #[inline]
    fn push_linked(&mut self, user_data: u64, operation: &Operation) -> bool {
        dispatch!(self, backend => backend.push_linked(user_data, operation))
    }

    fn links(&self, operation: &Operation) -> bool {
        dispatch!(self, backend => backend.links(operation))
    }

    fn finds_file_late(&self, fd: Fd) -> bool {
        dispatch!(self, backend => backend.finds_file_late(fd))
    }

    fn room(&mut self) -> usize {
        dispatch!(self, backend => backend.room())
    }

    fn entries_max(&self) -> usize {
        dispatch!(self, backend => backend.entries_max())
    }

    #[inline]
    fn submit_and_wait(&mut self, wait: Wait) -> io::Result<()> {
        dispatch!(self, backend => backend.submit_and_wait(wait))
    }

    #[inline]
    fn submit_early(&mut self, batch: u32) {
        dispatch!(self, backend => backend.submit_early(batch))
    }

    #[inline]
    fn reap(&mut self, batch: &mut Vec<RawCompletion>, max: usize) {
        dispatch!(self, backend => backend.reap(batch, max))
    }

    fn syscalls(&self) -> u64 {
        dispatch!(self, backend => backend.syscalls())
    }

    fn abandon(&mut self) -> bool {
        dispatch!(self, backend => backend.abandon())
    }

    fn forget_fd(&mut self, fd: crate::sys::Fd) {
        dispatch!(self, backend => backend.forget_fd(fd))
    }

    fn release_files(&mut self) {
        dispatch!(self, backend => backend.release_files())
    }

    fn register_file(&mut self, index: u32, fd: crate::sys::Fd) {
        dispatch!(self, backend => backend.register_file(index, fd))
    }

    fn registered_files(&self) -> RegisteredFiles {
        dispatch!(self, backend => backend.registered_files())
    }

    fn supports(&self, feature: Feature) -> bool {
        dispatch!(self, backend => backend.supports(feature))
    }

    fn emulate_features(&mut self) {
        dispatch!(self, backend => backend.emulate_features())
    }

    #[allow(unsafe_code)]
    unsafe fn register_buf_ring(
        &mut self,
        ring_addr: u64,
        entries: u16,
        bgid: u16,
    ) -> io::Result<()> {
        // SAFETY: the caller's promise, passed on.
        dispatch!(self, backend => unsafe { backend.register_buf_ring(ring_addr, entries, bgid) })
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> io::Result<()> {
        dispatch!(self, backend => backend.unregister_buf_ring(bgid))
    }

    #[allow(unsafe_code)]
    unsafe fn register_buffers(&mut self, iovecs: &[libc::iovec]) -> io::Result<bool> {
        // SAFETY: the caller's promise, passed on.
        dispatch!(self, backend => unsafe { backend.register_buffers(iovecs) })
    }
}
