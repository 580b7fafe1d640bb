//! The io_uring backend: operations become submission-queue entries, results
//! come back as completion-queue entries. The default on Linux.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::ring_map::{CompletionRing, SubmissionRing};
use super::{Backend, RawCompletion, RegisteredFiles, Wait, USER_DATA_INTERNAL};
use crate::completion::Operation;
use crate::sys::Fd;

/// The io_uring backend.
pub(crate) struct IoUringBackend {
    ring: IoUring<squeue::Entry, cqueue::Entry>,
    /// The ring's completion queue, read in place: the only reader of it
    /// (the crate's `completion()` is never used).
    cq: CompletionRing,
    /// The ring's submission queue, written in place: the only writer of
    /// it (the crate's `submission()` is never used).
    sq: SubmissionRing,
    syscalls: u64,
    /// The kernel has `IORING_OP_SEND_ZC` (`IORING_REGISTER_PROBE` said so).
    send_zc: bool,
    /// The kernel has `IORING_OP_FTRUNCATE` (Linux 6.9); else an ftruncate
    /// is the syscall, run in `submit_and_wait` and reaped on the next pass.
    ftruncate: bool,
    /// Operations the kernel lacks an opcode for, waiting to run as
    /// syscalls after the next submit.
    syscalls_pending: VecDeque<(u64, Operation)>,
    /// Their results, reaped before the ring's.
    syscall_results: VecDeque<RawCompletion>,
    /// The registered file table behind the `IO`'s handles.
    files: Files,
}

/// What a registered file table slot is cleared with. A static, so that
/// the `IORING_OP_FILES_UPDATE` that reads it (whenever the kernel gets to
/// it) never reads freed memory.
static FD_NONE: Fd = -1;

/// The ring's registered file table, mirroring the `IO`'s handle table:
/// the descriptor behind handle-table entry `i` is also installed at slot
/// `i` (the fd stays open too, for `as_fd`, `release` and the set-up
/// calls), and every operation on it that the kernel lets name a slot does
/// (`IOSQE_FIXED_FILE`), which saves the kernel the fd-table lookup and the
/// file's reference count per operation.
///
/// A slot is reused only with its handle-table entry, and the handle table
/// reuses an entry only after every operation that named it completed: no
/// entry in flight can name a slot that holds another file by then.
struct Files {
    /// Slots in the table (0: none, by `Config::registered_files(0)` or
    /// because the kernel refused the table).
    slots: u32,
    /// The slot each installed fd is at, plus one, indexed by fd (0: none).
    /// The `IO` owns each such fd, so no other file can have its number
    /// while it is here. Zero meaning "none" lets the table be allocated
    /// zeroed, for every fd the process may have, when the ring is set
    /// up: the pages no fd reaches are never touched (never resident),
    /// and no new highest fd number makes it grow (an allocation) later.
    slot_of_fd: Vec<u32>,
    installed: u32,
    fallbacks: u64,
}

impl Files {
    /// The slot `fd` is installed at, if any.
    #[inline(always)]
    fn slot(&self, fd: Fd) -> Option<u32> {
        // A negative fd converts to a huge index, which `get` refuses.
        self.slot_of_fd.get(fd as usize)?.checked_sub(1)
    }

    /// What an entry that names `fd` carries in its fd field, and the flag
    /// that goes with it: the slot and `FIXED_FILE`, or the fd itself.
    #[inline(always)]
    fn target(&self, fd: Fd) -> (types::Fd, squeue::Flags) {
        match self.slot(fd) {
            Some(slot) => (types::Fd(slot as Fd), squeue::Flags::FIXED_FILE),
            None => (types::Fd(fd), squeue::Flags::empty()),
        }
    }

    fn note_installed(&mut self, fd: Fd, slot: u32) {
        let index = usize::try_from(fd).expect("an open fd is not negative");
        if self.slot_of_fd.len() <= index {
            // Only past the `RLIMIT_NOFILE` the table was sized for (the
            // limit was raised since): amortized, never in a steady state.
            self.slot_of_fd.resize(index + 1, 0);
        }
        assert_eq!(self.slot_of_fd[index], 0, "fd {fd} installed twice");
        assert!(slot < self.slots);
        self.slot_of_fd[index] = slot + 1;
        self.installed += 1;
    }

    /// Forgets `fd`'s slot, returning it.
    fn note_cleared(&mut self, fd: Fd) -> Option<u32> {
        let slot = self.slot(fd)?;
        self.slot_of_fd[fd as usize] = 0;
        assert!(self.installed > 0);
        self.installed -= 1;
        Some(slot)
    }
}

impl IoUringBackend {
    /// Sets up a ring with `entries` submission slots (rounded up to a power
    /// of two, clamped to the kernel's maximum) and four times as many
    /// completion slots, so that a full submission queue's worth of results
    /// never overflows it in one pass.
    ///
    /// # Errors
    ///
    /// Whatever `io_uring_setup` returns (`ENOSYS`, `EPERM`, `ENOMEM`,
    /// `EINVAL` for zero entries), or `EOPNOTSUPP` when the kernel lacks
    /// `IORING_FEAT_EXT_ARG` (Linux < 5.11), which the loop needs for its wait
    /// timeout.
    pub(crate) fn new(
        entries: u32,
        flags: RingFlags,
        registered_files: u32,
    ) -> io::Result<IoUringBackend> {
        if entries == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let ring = build_ring(entries, flags)?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        let mut probe = io_uring::Probe::new();
        // A kernel without the probe (before 5.6) has none of the optional
        // opcodes either: the empty probe says so.
        let _ = ring.submitter().register_probe(&mut probe);
        let send_zc = probe.is_supported(opcode::SendZc::CODE);
        let ftruncate = probe.is_supported(opcode::Ftruncate::CODE);
        tracing::debug!(target: "ringio", send_zc, ftruncate, "io_uring probed");
        // A close of a registered file takes three entries (see
        // `push_close`): a ring smaller than that goes without the table.
        let registered_files = if ring.params().sq_entries() >= 3 {
            registered_files
        } else {
            0
        };
        let slots = register_file_table(&ring, registered_files);
        let cq = CompletionRing::new(&ring)?;
        let sq = SubmissionRing::new(&ring)?;
        Ok(IoUringBackend {
            ring,
            cq,
            sq,
            syscalls: 0,
            send_zc,
            ftruncate,
            syscalls_pending: VecDeque::new(),
            syscall_results: VecDeque::new(),
            files: Files {
                slots,
                slot_of_fd: if slots > 0 {
                    // Zeroed: see `Files::slot_of_fd`.
                    vec![0; crate::sys::nofile_limit().min(1 << 20) as usize]
                } else {
                    Vec::new()
                },
                installed: 0,
                fallbacks: 0,
            },
        })
    }

    /// Runs, as syscalls, the operations the kernel has no opcode for, in
    /// submission order: their results wait for the next `reap`, so their
    /// callbacks run from the loop as every other's do.
    fn run_syscalls_pending(&mut self) {
        while let Some((user_data, operation)) = self.syscalls_pending.pop_front() {
            self.syscalls += 1;
            let result = match operation {
                Operation::Ftruncate { fd, len } => {
                    let len = i64::try_from(len).unwrap_or(i64::MAX);
                    match crate::sys::ftruncate(fd, len) {
                        Ok(()) => 0,
                        Err(error) => -error.raw_os_error().unwrap_or(libc::EIO),
                    }
                }
                _ => unreachable!("only ftruncate falls back to a syscall"),
            };
            self.syscall_results.push_back(RawCompletion {
                user_data,
                result,
                flags: 0,
            });
        }
    }

    /// `submit_and_wait` with syscalls of the backend's own to run or
    /// report: their results are (about to be) ready without the kernel,
    /// so it only peeks, and they run after the entries pushed before them
    /// went in, as their order says.
    #[cold]
    #[inline(never)]
    fn submit_and_wait_syscalls(&mut self) -> io::Result<()> {
        let result = self.enter(Wait::Never);
        self.run_syscalls_pending();
        result
    }

    /// One `io_uring_enter`: submits what is queued and waits as `wait`
    /// says. Never reports `EINTR`, `ETIME` or `EBUSY`.
    #[inline(always)]
    fn enter(&mut self, wait: Wait) -> io::Result<()> {
        if wait == Wait::Never && !self.needs_enter() {
            // Completions are read from shared memory: with nothing to submit
            // and nothing to flush, a non-blocking pass needs no syscall.
            return Ok(());
        }
        self.syscalls += 1;
        let result = match wait {
            Wait::Never => self.sq.enter(0, None),
            Wait::Forever => self.sq.enter(1, None),
            Wait::Timeout(timeout_ns) => self.sq.enter(1, Some(timeout_ns)),
        };
        match result {
            Ok(()) => Ok(()),
            Err(error) => enter_failed(error),
        }
    }

    /// Whether a non-blocking `io_uring_enter` has anything to do: entries to
    /// submit, or completions the kernel holds back (CQ overflow, deferred
    /// task work).
    fn needs_enter(&mut self) -> bool {
        self.sq.len() != 0 || self.sq.completions_held()
    }

    /// A close is preceded by a cancel of every operation still pending on
    /// the fd: the kernel holds its own reference to the file, so without
    /// it a recv on a closed socket would wait for data forever. They
    /// complete with `ECANCELED`, as on the epoll backend. (Linux < 5.19
    /// rejects the cancel with `EINVAL`, which is ignored.) The cancel
    /// names the fd, not the slot: it matches operations by the file they
    /// hold, and an operation on the slot holds the same file. It is left
    /// out when nothing was in flight on the handle (`busy` false, from the
    /// handle table's count): it would find nothing, and costs an entry and
    /// a completion per close, a connection's seventh.
    ///
    /// A file installed in the registered table is held open by the table
    /// too (a socket would never send its FIN), so its slot is cleared
    /// between the two, by an `IORING_OP_FILES_UPDATE` rather than
    /// `io_uring_register`: it runs after the entries queued before it,
    /// so a send queued just before the close still finds the slot. The
    /// close is hard-linked to it, so it runs whatever the update's result
    /// and completes after it; the handle's entry, and with it the slot,
    /// is reused only after that.
    #[inline(never)]
    fn push_close(&mut self, user_data: u64, fd: Fd, busy: bool) -> bool {
        let slot = self.files.slot(fd);
        let needed = 1 + usize::from(busy) + usize::from(slot.is_some());
        if (self.sq.room() as usize) < needed {
            return false;
        }
        let close = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data);
        // All fit: checked above, and nothing else pushes in between.
        let mut pushed = true;
        if busy {
            let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all());
            pushed &= self.push_entry(cancel.build().user_data(USER_DATA_INTERNAL));
        }
        if let Some(slot) = slot {
            self.files.note_cleared(fd);
            let clear = opcode::FilesUpdate::new(&FD_NONE, 1)
                .offset(slot as i32)
                .build()
                .user_data(USER_DATA_INTERNAL)
                .flags(squeue::Flags::IO_HARDLINK);
            pushed &= self.push_entry(clear);
        }
        pushed && self.push_entry(close)
    }

    /// The completion queue, for the loop to read in place, when nothing
    /// else has results to report first (the syscalls this backend runs
    /// itself, whose results `reap` hands out ahead of the ring's).
    #[inline(always)]
    pub(crate) fn completions_in_place(&mut self) -> Option<&mut CompletionRing> {
        if self.syscall_results.is_empty() {
            Some(&mut self.cq)
        } else {
            None
        }
    }

    /// The completion queue, whatever else has results: for the loop's
    /// straight run, which reads the queue's entries in place until it
    /// consumes them.
    #[inline(always)]
    pub(crate) fn completion_ring(&mut self) -> &mut CompletionRing {
        &mut self.cq
    }

    /// The ring runs a kernel thread that polls the submission queue
    /// (`IORING_SETUP_SQPOLL`; a ring that fell back without it does not).
    pub(crate) fn sqpoll(&self) -> bool {
        self.ring.params().is_setup_sqpoll()
    }

    /// The completion queue, to read where its head is.
    #[inline(always)]
    pub(crate) fn completions(&self) -> &CompletionRing {
        &self.cq
    }

    /// Pushes `operation`, one the backend submits as one entry as it is
    /// (not a close, nor an ftruncate the kernel may lack: `push` decides
    /// those), with its entry built inline. For the loop's submit fast
    /// path, inlined into each operation's function, where the operation's
    /// kind is a constant.
    #[inline(always)]
    pub(crate) fn push_direct(&mut self, user_data: u64, operation: &Operation) -> bool {
        debug_assert!(!matches!(
            operation,
            Operation::Close { .. } | Operation::Ftruncate { .. }
        ));
        let files = &self.files;
        // SAFETY: as in `push_entry`: the operation's pointers point into
        // memory owned by its completion slot's handler.
        unsafe {
            self.sq
                .push(|| build_entry(operation, files).user_data(user_data))
        }
    }

    #[inline(always)]
    fn push_entry(&mut self, entry: squeue::Entry) -> bool {
        // SAFETY: every pointer in `entry` points into memory owned by the
        // completion slot's handler (the IO's buffer, address or nothing),
        // which the IO keeps alive, unmoved, until the completion with this
        // entry's user_data is reaped, or leaks if it never is (IO::drop);
        // or, for the entry that clears a registered-file slot, at the
        // `FD_NONE` static, alive for the whole program.
        unsafe { self.sq.push(|| entry) }
    }
}

/// What a failed `io_uring_enter` means to the loop: `ETIME`, `EINTR`,
/// `EBUSY` and `EAGAIN` are not errors (see each); the rest is returned.
#[cold]
#[inline(never)]
fn enter_failed(error: io::Error) -> io::Result<()> {
    match error.raw_os_error() {
        // The wait timed out: the loop's clock decides what is next.
        Some(libc::ETIME) => Ok(()),
        // A signal interrupted the wait: the loop goes round again and
        // resubmits whatever is still queued. Never surfaced.
        Some(libc::EINTR) => Ok(()),
        // The completion queue is backed up (EBUSY) or the kernel is
        // short of request memory (EAGAIN): return so the loop reaps
        // completions; what was not submitted stays queued and is
        // retried on the next pass.
        Some(libc::EBUSY) | Some(libc::EAGAIN) => {
            tracing::debug!(target: "ringio", %error, "io_uring_enter backed off; reaping first");
            Ok(())
        }
        _ => Err(error),
    }
}

/// Registers a sparse file table of `slots` slots (at most the process's
/// `RLIMIT_NOFILE`, which the kernel enforces): `IORING_RSRC_REGISTER_SPARSE`
/// (Linux 5.19), else a table of `-1`s (5.5). Returns the slots registered;
/// 0 if asked for none or refused, and operations then use plain fds.
fn register_file_table(ring: &IoUring<squeue::Entry, cqueue::Entry>, slots: u32) -> u32 {
    let slots = slots.min(crate::sys::nofile_limit());
    if slots == 0 {
        return 0;
    }
    let submitter = ring.submitter();
    let result = submitter.register_files_sparse(slots).or_else(|error| {
        tracing::debug!(target: "ringio", %error, "sparse file table refused; registering -1s");
        submitter.register_files(&vec![-1; slots as usize])
    });
    match result {
        Ok(()) => {
            tracing::debug!(target: "ringio", slots, "registered file table");
            slots
        }
        Err(error) => {
            tracing::debug!(target: "ringio", %error, slots, "registered file table refused; plain fds");
            0
        }
    }
}

/// Builds a ring with the set-up flags asked for. A kernel older than a flag
/// refuses it with `EINVAL`: the ring is then built without the newest
/// flags, one step at a time (DEFER_TASKRUN, 6.1; SINGLE_ISSUER, 6.0;
/// COOP_TASKRUN, 5.19), and the loop works the same, a little slower.
fn build_ring(
    entries: u32,
    mut flags: RingFlags,
) -> io::Result<IoUring<squeue::Entry, cqueue::Entry>> {
    loop {
        let mut builder = IoUring::builder();
        builder
            .setup_clamp()
            .setup_cqsize(entries.saturating_mul(4).min(1 << 16));
        if flags.coop_taskrun {
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        if flags.single_issuer {
            builder.setup_single_issuer();
        }
        if flags.defer_taskrun {
            builder.setup_defer_taskrun().setup_taskrun_flag();
        }
        if let Some(idle_ms) = flags.sqpoll_idle_ms {
            builder.setup_sqpoll(idle_ms);
        }
        match builder.build(entries) {
            // EPERM: SQPOLL refused to an unprivileged user (before 5.11).
            Err(error)
                if matches!(error.raw_os_error(), Some(libc::EINVAL | libc::EPERM))
                    && flags.any() =>
            {
                tracing::debug!(target: "ringio", ?flags, "io_uring refused set-up flags; trying fewer");
                flags = flags.fewer();
            }
            result => return result,
        }
    }
}

/// The ring set-up flags of [`Config`](crate::Config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct RingFlags {
    pub(crate) coop_taskrun: bool,
    pub(crate) single_issuer: bool,
    pub(crate) defer_taskrun: bool,
    pub(crate) sqpoll_idle_ms: Option<u32>,
}

impl RingFlags {
    fn any(self) -> bool {
        self.coop_taskrun
            || self.single_issuer
            || self.defer_taskrun
            || self.sqpoll_idle_ms.is_some()
    }

    /// The same without the newest flag that is set; `SQPOLL`, asked for
    /// explicitly, goes last (`DEFER_TASKRUN` is what the kernel refuses
    /// beside it).
    fn fewer(mut self) -> RingFlags {
        if self.defer_taskrun {
            self.defer_taskrun = false;
        } else if self.single_issuer {
            self.single_issuer = false;
        } else if self.coop_taskrun {
            self.coop_taskrun = false;
        } else {
            self.sqpoll_idle_ms = None;
        }
        self
    }
}

/// Builds the submission entry for `operation`. Out of line: one call that
/// switches on the operation, beside the inlined push of its result.
///
/// An operation on a descriptor installed in `files` names its slot
/// (`IOSQE_FIXED_FILE`): every opcode here whose kernel side takes a file
/// (`needs_file`) accepts one. The others keep the fd: a close names the
/// fd it closes (a fixed close would close the slot, a direct descriptor),
/// `statx` refuses a fixed dirfd (`EBADF`), and the path operations name
/// `AT_FDCWD`.
#[inline(never)]
fn entry_for(operation: &Operation, files: &Files) -> squeue::Entry {
    build_entry(operation, files)
}

/// The body of [`entry_for`], inlined where the operation's kind is known
/// at compile time ([`IoUringBackend::push_direct`]), so that the switch
/// folds away and the entry is built where it is pushed.
#[inline(always)]
fn build_entry(operation: &Operation, files: &Files) -> squeue::Entry {
    // The entry for an operation on `fd`: built on its slot or on the fd.
    macro_rules! on_file {
        ($fd:expr, |$target:ident| $build:expr) => {{
            let ($target, flags) = files.target($fd);
            $build.flags(flags)
        }};
    }
    match *operation {
        Operation::Nop => opcode::Nop::new().build(),
        Operation::Accept { fd } => on_file!(fd, |fd| opcode::Accept::new(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut()
        )
        .flags(libc::SOCK_CLOEXEC)
        .build()),
        Operation::Connect { fd, addr, addr_len } => {
            on_file!(fd, |fd| opcode::Connect::new(fd, addr, addr_len).build())
        }
        Operation::Recv { fd, buf, len } => {
            on_file!(fd, |fd| opcode::Recv::new(fd, buf, len).build())
        }
        Operation::Send { fd, buf, len } => on_file!(fd, |fd| opcode::Send::new(fd, buf, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()),
        Operation::Read {
            fd,
            buf,
            len,
            offset,
        } => on_file!(fd, |fd| opcode::Read::new(fd, buf, len)
            .offset(offset)
            .build()),
        Operation::Write {
            fd,
            buf,
            len,
            offset,
        } => on_file!(fd, |fd| opcode::Write::new(fd, buf, len)
            .offset(offset)
            .build()),
        Operation::Fsync { fd, datasync } => {
            let flags = if datasync {
                types::FsyncFlags::DATASYNC
            } else {
                types::FsyncFlags::empty()
            };
            on_file!(fd, |fd| opcode::Fsync::new(fd).flags(flags).build())
        }
        Operation::Close { fd, .. } => opcode::Close::new(types::Fd(fd)).build(),
        Operation::Poll { fd, events } => {
            on_file!(fd, |fd| opcode::PollAdd::new(fd, events).build())
        }
        Operation::Cancel { target } => opcode::AsyncCancel::new(target.user_data()).build(),
        Operation::Shutdown { fd, how } => {
            on_file!(fd, |fd| opcode::Shutdown::new(fd, how).build())
        }
        Operation::RecvMulti { fd, pool } => {
            on_file!(fd, |fd| opcode::RecvMulti::new(fd, pool).build())
        }
        Operation::SendZc { fd, buf, len } => on_file!(fd, |fd| opcode::SendZc::new(fd, buf, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()),
        Operation::AcceptMulti { fd } => on_file!(fd, |fd| opcode::AcceptMulti::new(fd)
            .flags(libc::SOCK_CLOEXEC)
            .build()),
        Operation::Readv {
            fd,
            iovecs,
            count,
            offset,
        } => on_file!(fd, |fd| opcode::Readv::new(fd, iovecs, count)
            .offset(offset)
            .build()),
        Operation::Writev {
            fd,
            iovecs,
            count,
            offset,
        } => on_file!(fd, |fd| opcode::Writev::new(fd, iovecs, count)
            .offset(offset)
            .build()),
        Operation::ReadFixed {
            fd,
            buf,
            len,
            offset,
            index,
        } => on_file!(fd, |fd| opcode::ReadFixed::new(fd, buf, len, index)
            .offset(offset)
            .build()),
        Operation::WriteFixed {
            fd,
            buf,
            len,
            offset,
            index,
        } => on_file!(fd, |fd| opcode::WriteFixed::new(
            fd,
            buf.cast_const(),
            len,
            index
        )
        .offset(offset)
        .build()),
        Operation::SendMsg { fd, msg } => on_file!(fd, |fd| opcode::SendMsg::new(fd, msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()),
        Operation::RecvMsg { fd, msg } => {
            on_file!(fd, |fd| opcode::RecvMsg::new(fd, msg).build())
        }
        // A shot is a result already in; it never goes back to the kernel.
        Operation::Shot { .. } => unreachable!("shots are not submitted"),
        // Timeouts live in the user-space heap and never reach a backend.
        Operation::Timeout { .. } => unreachable!("timeouts are not submitted to the kernel"),
        Operation::OpenAt { path, flags, mode } => {
            opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path)
                .flags(flags)
                .mode(mode)
                .build()
        }
        Operation::Statx { fd, statx } => {
            opcode::Statx::new(types::Fd(fd), c"".as_ptr(), statx.cast())
                .flags(libc::AT_EMPTY_PATH)
                .mask(crate::fs::STATX_MASK)
                .build()
        }
        Operation::Fallocate {
            fd,
            mode,
            offset,
            len,
        } => on_file!(fd, |fd| opcode::Fallocate::new(fd, len)
            .offset(offset)
            .mode(mode)
            .build()),
        Operation::Ftruncate { fd, len } => {
            on_file!(fd, |fd| opcode::Ftruncate::new(fd, len).build())
        }
        Operation::RenameAt { old, new, flags } => opcode::RenameAt::new(
            types::Fd(libc::AT_FDCWD),
            old,
            types::Fd(libc::AT_FDCWD),
            new,
        )
        .flags(flags)
        .build(),
        Operation::UnlinkAt { path, flags } => {
            opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), path)
                .flags(flags)
                .build()
        }
        Operation::MkDirAt { path, mode } => opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), path)
            .mode(mode)
            .build(),
    }
}

impl Backend for IoUringBackend {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    #[inline(always)]
    fn push(&mut self, user_data: u64, operation: &Operation) -> bool {
        if let Operation::Close { fd, busy } = *operation {
            return self.push_close(user_data, fd, busy);
        }
        if matches!(operation, Operation::Ftruncate { .. }) && !self.ftruncate {
            self.syscalls_pending.push_back((user_data, *operation));
            return true;
        }
        self.push_entry(entry_for(operation, &self.files).user_data(user_data))
    }

    fn push_linked(&mut self, user_data: u64, operation: &Operation) -> bool {
        assert!(self.links(operation));
        let entry = entry_for(operation, &self.files)
            .user_data(user_data)
            .flags(squeue::Flags::IO_LINK);
        self.push_entry(entry)
    }

    fn links(&self, operation: &Operation) -> bool {
        match operation {
            // Two entries (a cancel, then the close).
            Operation::Close { .. } => false,
            // Without the opcode, a syscall that does not wait its turn.
            Operation::Ftruncate { .. } => self.ftruncate,
            _ => true,
        }
    }

    /// A linked member's file is looked up when its turn comes: through
    /// its registered slot (cleared by the close, so `EBADF`), or else by
    /// its number, which a close meanwhile may have given to another file.
    fn finds_file_late(&self, fd: Fd) -> bool {
        self.files.slot(fd).is_none()
    }

    fn room(&mut self) -> usize {
        self.sq.room() as usize
    }

    fn entries_max(&self) -> usize {
        self.ring.params().sq_entries() as usize
    }

    #[inline(always)]
    fn submit_and_wait(&mut self, wait: Wait) -> io::Result<()> {
        if self.syscalls_pending.is_empty() && self.syscall_results.is_empty() {
            return self.enter(wait);
        }
        self.submit_and_wait_syscalls()
    }

    fn submit_early(&mut self, batch: u32) {
        if self.sq.len() < batch {
            return;
        }
        self.syscalls += 1;
        // Whatever the kernel did not take stays in the queue; the pass's own
        // submit_and_wait retries it and reports a lasting error.
        let _ = self.sq.enter(0, None);
    }

    fn reap(&mut self, batch: &mut Vec<RawCompletion>, max: usize) {
        // Results of syscalls the backend ran itself (an ftruncate on a
        // kernel without the opcode) come first.
        let mut max = max;
        if !self.syscall_results.is_empty() {
            // Checked first: draining even an empty queue costs about 45
            // instructions, once per reap.
            let done = max.min(self.syscall_results.len());
            batch.extend(self.syscall_results.drain(..done));
            max -= done;
        }
        let (head, tail) = self.cq.sync();
        let count = (tail.wrapping_sub(head) as usize).min(max);
        batch.reserve(count);
        let mut index = head;
        for _ in 0..count {
            batch.push(self.cq.entry(index));
            index = index.wrapping_add(1);
        }
        self.cq.consume_to(index);
    }

    fn syscalls(&self) -> u64 {
        self.syscalls
    }

    fn supports(&self, feature: super::Feature) -> bool {
        match feature {
            super::Feature::SendZc => self.send_zc,
        }
    }

    fn emulate_features(&mut self) {
        self.ftruncate = false;
    }

    fn register_file(&mut self, index: u32, fd: Fd) {
        if self.files.slots == 0 {
            return;
        }
        if index >= self.files.slots {
            self.files.fallbacks += 1;
            tracing::debug!(target: "ringio", index, fd, slots = self.files.slots, "registered file table full; plain fd");
            return;
        }
        // A syscall, not an IORING_OP_FILES_UPDATE ahead of the first
        // operation: its result is known before any operation names the
        // slot, so a refusal falls back to the fd rather than failing them.
        self.syscalls += 1;
        match self.ring.submitter().register_files_update(index, &[fd]) {
            Ok(1) => self.files.note_installed(fd, index),
            result => {
                self.files.fallbacks += 1;
                tracing::debug!(target: "ringio", index, fd, ?result, "registered file update refused; plain fd");
            }
        }
    }

    fn forget_fd(&mut self, fd: Fd) {
        let Some(slot) = self.files.note_cleared(fd) else {
            return;
        };
        // Nothing is in flight on the fd (`release` checked), so the slot
        // can go at once; the fd's new owner must not find its file still
        // held open by the ring.
        self.syscalls += 1;
        if let Err(error) = self.ring.submitter().register_files_update(slot, &[-1]) {
            tracing::warn!(target: "ringio", %error, slot, fd, "registered file slot not cleared; the ring holds the file until dropped");
        }
    }

    fn release_files(&mut self) {
        if self.files.slots == 0 {
            return;
        }
        // Synchronous: with nothing in flight, no request holds the
        // table's files, so the kernel puts each one before this returns.
        self.syscalls += 1;
        if let Err(error) = self.ring.submitter().unregister_files() {
            tracing::debug!(target: "ringio", %error, "registered file table not unregistered; the ring holds its files until torn down");
        }
        // Nothing is installed now: a later `forget_fd` finds no slot.
        self.files.slots = 0;
        self.files.installed = 0;
        self.files.slot_of_fd = Vec::new();
    }

    fn registered_files(&self) -> RegisteredFiles {
        RegisteredFiles {
            slots: self.files.slots,
            installed: self.files.installed,
            fallbacks: self.files.fallbacks,
        }
    }

    unsafe fn register_buf_ring(
        &mut self,
        ring_addr: u64,
        entries: u16,
        bgid: u16,
    ) -> io::Result<()> {
        self.syscalls += 1;
        let submitter = self.ring.submitter();
        // SAFETY: the caller keeps the ring's memory valid until the group
        // is unregistered or the ring destroyed (the trait's contract).
        unsafe { submitter.register_buf_ring_with_flags(ring_addr, entries, bgid, 0) }
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> io::Result<()> {
        self.syscalls += 1;
        self.ring.submitter().unregister_buf_ring(bgid)
    }

    unsafe fn register_buffers(&mut self, iovecs: &[libc::iovec]) -> io::Result<bool> {
        self.syscalls += 1;
        // SAFETY: the caller keeps the buffers valid and unmoved until the
        // ring is destroyed (the trait's contract).
        unsafe { self.ring.submitter().register_buffers(iovecs) }.map(|()| true)
    }
}
