//! Construction options for [`IO`](crate::IO).

use crate::BackendKind;

/// How an [`IO`](crate::IO) is built. Every limit has a default suited to a
/// server handling thousands of connections.
///
/// # Examples
///
/// ```
/// let config = ringio::Config::new().entries(64).completions_initial(4096);
/// let io: ringio::IO<()> = ringio::IO::with_config(config).unwrap();
/// assert_eq!(io.stats().in_flight, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub(crate) entries: u32,
    pub(crate) completions_initial: u32,
    pub(crate) drop_drain_ns: u64,
    pub(crate) backend: Option<BackendKind>,
    pub(crate) submit_batch: u32,
    pub(crate) features_emulated: bool,
    pub(crate) coop_taskrun: bool,
    pub(crate) single_issuer: bool,
    pub(crate) defer_taskrun: bool,
    pub(crate) sqpoll_idle_ms: Option<u32>,
    pub(crate) registered_files: u32,
}

impl Config {
    /// The defaults: 256 submission-queue entries, 1024 preallocated
    /// completion slots, up to 1 s for the kernel to give back in-flight
    /// operations when the `IO` is dropped, and the backend chosen as
    /// [`Config::backend`] describes, submission once per pass (see
    /// [`Config::submit_batch`]), and on io_uring a ring set up with
    /// `SINGLE_ISSUER` and `DEFER_TASKRUN` (see [`Config::defer_taskrun`])
    /// and a registered file table of 4096 slots (see
    /// [`Config::registered_files`]).
    pub const fn new() -> Config {
        Config {
            entries: 256,
            completions_initial: 1024,
            drop_drain_ns: 1_000_000_000,
            backend: None,
            submit_batch: 0,
            features_emulated: false,
            coop_taskrun: false,
            // Measured best for this workload class (docs/benchmarks.md,
            // "Ring set-up flags"): completion work runs in the loop's own
            // passes, batched, instead of interrupting it.
            single_issuer: true,
            defer_taskrun: true,
            sqpoll_idle_ms: None,
            registered_files: 4096,
        }
    }

    /// Submission-queue entries. The kernel rounds up to a power of two and
    /// clamps to its maximum. More operations than this may be in flight:
    /// those that find the queue full wait on `unqueued`. Fewer than 2 is
    /// `EINVAL` when the `IO` is made: a `close` on io_uring takes two
    /// entries (a cancel of what is in flight on the descriptor, then the
    /// close), and the same limit holds on every backend.
    pub const fn entries(mut self, entries: u32) -> Config {
        self.entries = entries;
        self
    }

    /// Completion slots allocated up front. The table grows past this on
    /// demand (an allocation, amortized); preallocating the peak number of
    /// operations in flight makes the steady state allocation-free from the start.
    pub const fn completions_initial(mut self, completions: u32) -> Config {
        self.completions_initial = completions;
        self
    }

    /// How long dropping an `IO` waits for the kernel to return operations
    /// it cancelled. Whatever is still in the kernel after that is leaked,
    /// never freed, so the kernel can never write into freed memory.
    pub const fn drop_drain_ns(mut self, drop_drain_ns: u64) -> Config {
        self.drop_drain_ns = drop_drain_ns;
        self
    }
}

impl Config {
    /// Submits to the kernel as soon as `batch` operations are queued,
    /// from inside the call that queues them (a callback included), instead
    /// of once per pass. Zero, the default, means once per pass: one
    /// `io_uring_enter` submits everything the pass's callbacks queued.
    ///
    /// Batching saves syscalls, but a burst of requests reaches the device
    /// all at once, after the last callback has run. `1` hands each request
    /// to the device as soon as it is made (one syscall each), as fio does by
    /// default; on a virtual disk that served 4 KiB O_DIRECT reads at queue
    /// depth 32 this was about 20% faster than one batch per pass (see
    /// docs/benchmarks.md). io_uring only: the epoll backend starts
    /// operations once per pass whatever this says.
    pub const fn submit_batch(mut self, batch: u32) -> Config {
        self.submit_batch = batch;
        self
    }

    /// Forces a backend. Without this, the `RINGIO_BACKEND` environment
    /// variable (`io_uring` or `epoll`) decides; without that, the `IO` runs
    /// on io_uring, or on epoll if io_uring is refused (`ENOSYS`, `EPERM`,
    /// `ENOMEM`, or a kernel older than 5.11), logging why. A forced backend
    /// that cannot start is an error, never a silent fallback.
    pub const fn backend(mut self, backend: BackendKind) -> Config {
        self.backend = Some(backend);
        self
    }
}

impl Config {
    /// Emulates the kernel features the loop can do without (multishot
    /// operations, provided buffer rings, zero-copy send) on io_uring too,
    /// as on kernels that lack them: for tests of the emulation (the other
    /// backends always emulate), in place of a probe that says "no".
    #[doc(hidden)]
    pub const fn emulate_kernel_features(mut self, emulated: bool) -> Config {
        self.features_emulated = emulated;
        self
    }

    /// io_uring only: the kernel runs completion work when the loop next
    /// enters the kernel, instead of interrupting the thread for it
    /// (`IORING_SETUP_COOP_TASKRUN` with `TASKRUN_FLAG`, Linux 5.19). The
    /// loop enters on every pass that has work, so nothing waits longer.
    /// Older kernels run without it.
    pub const fn coop_taskrun(mut self, on: bool) -> Config {
        self.coop_taskrun = on;
        self
    }

    /// io_uring only: promises the kernel that only the thread that made
    /// the ring submits to it (`IORING_SETUP_SINGLE_ISSUER`, Linux 6.0),
    /// which an `IO` (neither `Send` nor `Sync`) keeps. Older kernels run
    /// without it. On by default, with `defer_taskrun`.
    pub const fn single_issuer(mut self, on: bool) -> Config {
        self.single_issuer = on;
        self
    }

    /// io_uring only: completion work runs only when the loop asks for
    /// completions (`IORING_SETUP_DEFER_TASKRUN`, Linux 6.1), batched into
    /// its own thread's passes. Implies [`single_issuer`](Config::single_issuer).
    /// Older kernels run without it. On by default: in the echo benchmark it
    /// was the best of plain, `COOP_TASKRUN` and this on most rows.
    pub const fn defer_taskrun(mut self, on: bool) -> Config {
        self.defer_taskrun = on;
        if on {
            self.single_issuer = true;
        }
        self
    }

    /// io_uring only: a kernel thread polls the submission queue
    /// (`IORING_SETUP_SQPOLL`), so that submitting needs no syscall while
    /// it is awake; it sleeps after `idle_ms` without work, and the next
    /// submission wakes it (one `io_uring_enter`). `None` (the default)
    /// turns it off.
    ///
    /// The thread spins on a CPU of its own while awake: worth it with a
    /// core to spare, a loss on a machine whose cores are all busy (it then
    /// competes with the loop). `DEFER_TASKRUN` cannot be combined with it:
    /// the kernel refuses the pair, and the ring is set up without
    /// `DEFER_TASKRUN`, as on a kernel that lacks a flag (the ring falls
    /// back flag by flag, `SQPOLL` last).
    pub const fn sqpoll_idle_ms(mut self, idle_ms: Option<u32>) -> Config {
        self.sqpoll_idle_ms = idle_ms;
        self
    }

    /// io_uring only: the size of the registered file table behind the
    /// `IO`'s handles; `0` turns it off. The default is 4096.
    ///
    /// Each descriptor the `IO` owns (socket, file, accepted connection,
    /// adopted fd) is also installed in the ring's table, at its handle's
    /// index, while it keeps its fd (so [`IO::as_fd`](crate::IO::as_fd),
    /// [`IO::release`](crate::IO::release) and the socket options work as
    /// before), and every operation on it that the kernel allows names the
    /// slot (`IOSQE_FIXED_FILE`): the kernel then skips the fd-table lookup
    /// and the file's reference count on each operation. Installing costs
    /// one `io_uring_register` syscall per new descriptor (counted in
    /// [`Stats::syscalls`](crate::Stats::syscalls)); clearing rides with the
    /// close.
    ///
    /// The table is clamped to the process's `RLIMIT_NOFILE` (the kernel's
    /// limit for it), and a ring of 2 entries has none (the close of a
    /// registered file takes three: a cancel, the slot's clearing, the
    /// close). Descriptors whose handle index is past the table's
    /// end, or that the kernel refuses to install, run on their plain fd,
    /// as every descriptor does when the kernel refuses the table: the same
    /// results, a little slower, counted in
    /// [`Stats::registered_files_fallbacks`](crate::Stats::registered_files_fallbacks)
    /// and logged (`tracing`, debug, target `ringio`).
    pub const fn registered_files(mut self, slots: u32) -> Config {
        self.registered_files = slots;
        self
    }

    pub(crate) fn ring_flags(&self) -> crate::backend::io_uring::RingFlags {
        crate::backend::io_uring::RingFlags {
            coop_taskrun: self.coop_taskrun,
            single_issuer: self.single_issuer,
            defer_taskrun: self.defer_taskrun,
            sqpoll_idle_ms: self.sqpoll_idle_ms,
        }
    }

    /// `EINVAL` for settings no backend can honour.
    pub(crate) fn validate(&self) -> std::io::Result<()> {
        if self.entries < 2 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}
