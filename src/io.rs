//! `IO<C>`: the completion table, the `unqueued` and `completed` FIFOs, the
//! timers, and the loop that drives them (`tick`, `run_for_ns`, `run`).

use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::sync::atomic::{AtomicU32, Ordering};

use fifo::Fifo;

use crate::backend::ring_map::CqCursor;
use crate::backend::sim::SimBackend;
use crate::backend::{
    select, AnyBackend, Backend, RawCompletion, Wait, CQE_F_MORE, CQE_F_NOTIF, REAP_BATCH_MAX,
    USER_DATA_INTERNAL,
};
use crate::callback::{self, Callback, Fresh, Handler, RawShot, Store};
use crate::completion::{CompletionId, Multishot, Operation, Slot, Slots, State, NO_DEADLINE};
use crate::config::Config;
use crate::handle::{CloseDone, Handle, Handles, NO_HANDLE};
use crate::multishot::Flow;
use crate::sys::{self, Fd, RawAddr};
use crate::timer::Timers;
use crate::BackendKind;

mod chain;

/// Counters, as returned by [`IO::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations submitted since the `IO` was created.
    pub submitted: u64,
    /// Callbacks run: one per operation, and one per result of a multishot
    /// operation.
    pub completed: u64,
    /// Operations submitted whose callback has not run yet.
    pub in_flight: u64,
    /// Operations waiting on `unqueued` now, for submission-queue space.
    pub unqueued: u64,
    /// The most operations ever waiting on `unqueued` at once.
    pub unqueued_max: u64,
    /// Syscalls made to submit or wait (`io_uring_enter`).
    pub syscalls: u64,
    /// Operations whose handler (callback plus what it owns) was larger than
    /// [`INLINE_BYTES`](crate::INLINE_BYTES) and was boxed: one heap
    /// allocation each. Zero in a steady state that allocates nothing.
    pub callbacks_boxed: u64,
    /// Descriptors the `IO` owns now (sockets, files, directories).
    pub descriptors_open: u64,
    /// Slots in io_uring's registered file table
    /// ([`Config::registered_files`]): 0 when it is off, refused by the
    /// kernel, or on another backend.
    pub registered_files_slots: u64,
    /// Descriptors installed in the registered file table now: operations
    /// on them name their slot (`IOSQE_FIXED_FILE`).
    pub registered_files: u64,
    /// Descriptors that got no slot in the registered file table (it was
    /// full, or the kernel refused the update) and run on their plain fd.
    pub registered_files_fallbacks: u64,
}

/// A single-threaded, completion-based I/O loop.
///
/// `C` is the application's state. Every callback receives `&mut IO<C>` and
/// `&mut C`, so it can change state and submit follow-up operations without
/// `Rc<RefCell<..>>`. Callbacks never run inside the call that submits an
/// operation; they run only from [`tick`](IO::tick), [`run_for_ns`](IO::run_for_ns)
/// and [`run`](IO::run), and work a callback submits is started on the loop's
/// next pass (or at once, with [`Config::submit_batch`]), never recursively.
///
/// See the [crate documentation](crate) for the architecture and an example.
/// An `IO` is neither `Send` nor `Sync`: it runs callbacks that may capture
/// anything (an `Rc`), and its operations name memory of this thread's loop.
/// It stays on the thread that made it:
///
/// ```compile_fail
/// fn needs_send<T: Send>() {}
/// needs_send::<ringio::IO<()>>();
/// ```
///
/// ```compile_fail
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<ringio::IO<()>>();
/// ```
pub struct IO<C> {
    pub(crate) backend: AnyBackend,
    slots: Slots<C>,
    /// The descriptors this `IO` owns, behind [`Handle`]s.
    pub(crate) handles: Handles,
    /// Unique among the `IO`s of this process (until 2^32 have been made):
    /// carried by every id and handle, so that another `IO`'s are refused.
    tag: u32,
    /// Operations waiting for submission-queue space, oldest first.
    unqueued: Fifo,
    /// Operations with a result, waiting for their callback.
    completed: Fifo,
    timers: Timers,
    /// Reused socket-address buffers for `connect`, so that steady state
    /// does not allocate. On the heap because the kernel holds their
    /// address while this Vec may reallocate.
    pub(crate) addresses: Vec<crate::stable::Stable<RawAddr>>,
    /// Reused headers, addresses and iovec arrays of vectored and message
    /// operations, for the same reason.
    pub(crate) messages: Vec<crate::msg::MessageBox>,
    /// The registered buffers (`register_fixed_buffers`), kept alive while
    /// the kernel may hold them; and whether the kernel took them.
    pub(crate) fixed: Option<std::rc::Rc<crate::fixed::FixedSet>>,
    pub(crate) fixed_native: bool,
    /// Reused paths and `statx` records of file-system operations, for the
    /// same reason.
    pub(crate) fs_args: Vec<crate::fs::FsBox>,
    /// Reused between passes, so that reaping neither allocates nor zeroes.
    reap_batch: Vec<RawCompletion>,
    /// `straight_next..straight_end`: completions whose callbacks run
    /// straight from where they were reaped (the batch, or the completion
    /// queue: `straight_in`): in the batch, plain ones the reap settled
    /// (`Completed`, on no list); in the queue, every entry up to the tail,
    /// each settled as its turn comes (`run_straight`). Before everything on
    /// `completed`, in this order: the head of the completed queue, kept out
    /// of the FIFO (docs/architecture.md, "Plain completions run straight
    /// from the completion queue").
    straight_next: u32,
    straight_end: u32,
    /// Where the straight run is: in `reap_batch`, or still in the io_uring
    /// completion queue, which `straight_next` and `straight_end` then index
    /// (wrapping), with the queue's head standing for `straight_next` while
    /// the run goes on (so that each callback stores one cursor, not two:
    /// read it through `straight_next()`) (docs/architecture.md, "Plain
    /// completions run straight from the completion queue").
    straight_in: StraightIn,
    stats: Stats,
    drop_drain_ns: u64,
    /// [`Config::submit_batch`]: 0 submits once per pass.
    submit_batch: u32,
    /// The backend repeats multishot operations itself (io_uring, unless
    /// emulation is forced or the kernel refused one); else the loop does.
    multishot_native: bool,
    /// The kernel sends without copying (`IORING_OP_SEND_ZC`, Linux 6.0,
    /// found by probing); else `send_zc` is a plain send.
    send_zc_native: bool,
    /// Provided buffer pools, indexed by buffer group.
    pub(crate) pools: Vec<std::rc::Rc<crate::pool::Pool>>,
    /// The chain a [`chain`](IO::chain) call is building, while it runs.
    /// Set only through `replace_chain`, which keeps `direct_blocked`.
    chain: Option<chain::ChainBuild>,
    /// Nonzero while a submission must not go straight to the ring for a
    /// reason other than `unqueued`: a chain is being built, or
    /// `submit_batch` is set. One field for the two, so that the submit's
    /// fast path loads one (`replace_chain` keeps it).
    direct_blocked: u32,
    /// Each slot's place in a linked chain, indexed by slot.
    chain_links: Vec<chain::ChainLink>,
    /// The backend links chain members itself (`IOSQE_IO_LINK`); else the
    /// loop starts each when the one before has succeeded.
    links_native: bool,
    /// Explicitly `!Send` and `!Sync` (see above), not by accident of a field.
    _not_send: PhantomData<*const ()>,
}

/// Where the straight run's entries are (`IO::straight_in`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum StraightIn {
    Batch,
    Ring,
}

/// The entries of a straight run, read by index, for `run_straight`: the
/// reap batch's, or the io_uring completion queue's in place.
#[allow(unsafe_code)]
trait StraightEntries: Copy {
    /// Whether the run's entries are still to settle: the queue's are, and
    /// `run_straight` checks each as its turn comes (the settle done
    /// lazily); the batch's were settled by the reap (`Completed`).
    const UNSETTLED: bool;

    /// Entry `index`.
    ///
    /// # Safety
    ///
    /// `index` is one of the straight run's, not yet consumed, and the
    /// storage (the batch, the ring) is this `IO`'s and alive.
    unsafe fn entry(self, index: u32) -> RawCompletion;

    /// Consumes the entries before `next`, each read for the last time:
    /// moves `cursor` (`IO::straight_next`) there, or the ring's head,
    /// which stands for it.
    ///
    /// # Safety
    ///
    /// As for `entry`, with `next` at most the run's end.
    unsafe fn consume_to(self, next: u32, cursor: &mut u32);
}

/// The reap batch's buffer, which nothing changes while the run goes on.
#[derive(Clone, Copy)]
struct BatchEntries(*const RawCompletion);

impl StraightEntries for BatchEntries {
    const UNSETTLED: bool = false;

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn entry(self, index: u32) -> RawCompletion {
        // SAFETY: the run's indices are below the batch's length (`reap`
        // counted them over entries it had just appended), and the batch
        // is alive and unchanged: the caller's promise.
        unsafe { *self.0.wrapping_add(index as usize) }
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn consume_to(self, next: u32, cursor: &mut u32) {
        // The batch's entries were consumed from the kernel when copied.
        *cursor = next;
    }
}

impl StraightEntries for CqCursor {
    const UNSETTLED: bool = true;

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn entry(self, index: u32) -> RawCompletion {
        // SAFETY: the run lies between the queue's head and the tail that
        // `reap` loaded, and the ring is alive: the caller's promise.
        unsafe { CqCursor::entry(&self, index) }
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn consume_to(self, next: u32, _cursor: &mut u32) {
        // SAFETY: as for `entry`; the entries before `next` are read
        // for the last time.
        unsafe { CqCursor::consume_to(&self, next) }
    }
}

/// The timer behind a deadline: when it fires, it cancels its operation.
struct DeadlinePassed {
    target: CompletionId,
}

impl<C> Handler<C> for DeadlinePassed {
    fn complete(self, io: &mut IO<C>, _ctx: &mut C, result: i32) {
        // ETIME: it fired. ECANCELED: the operation completed first.
        if result == -libc::ETIME {
            io.deadline_passed(self.target);
        }
    }
}

/// The source of `IO` tags. 0 is never handed out.
static TAG_NEXT: AtomicU32 = AtomicU32::new(1);

fn tag_next() -> u32 {
    loop {
        let tag = TAG_NEXT.fetch_add(1, Ordering::Relaxed);
        if tag != 0 {
            return tag;
        }
    }
}

/// How many loops of distinct `IO`s may run nested on one thread (a
/// callback of one running another `IO`'s loop).
const RUNNING_MAX: usize = 8;

thread_local! {
    /// The tags of the `IO`s whose loop is running on this thread. Kept
    /// here rather than in the `IO`, so that an `IO` swapped out of its
    /// place by one of its own callbacks is not left marked as running.
    static RUNNING: RunningStack = const {
        RunningStack {
            depth: Cell::new(0),
            tags: [const { Cell::new(0) }; RUNNING_MAX],
        }
    };
}

/// The running loops of one thread, innermost last. A stack: each entry is
/// made and removed by a `Running` guard on the stack of the call that
/// runs the loop, so guards go in the reverse order they came, unwinding
/// included. Cells one by one, so that entering and leaving read and write
/// a word or two, not the whole array.
struct RunningStack {
    depth: Cell<usize>,
    tags: [Cell<u32>; RUNNING_MAX],
}

/// Marks an `IO`'s loop as running on this thread until dropped, which
/// also happens when a callback's panic unwinds through the loop.
struct Running {
    tag: u32,
}

impl Running {
    /// # Errors
    ///
    /// `EDEADLK` if this `IO`'s loop is already running (a callback called
    /// it), or `RUNNING_MAX` other loops are.
    #[inline(always)]
    fn enter(tag: u32) -> io::Result<Running> {
        RUNNING.with(|running| {
            let depth = running.depth.get();
            let tags = &running.tags[..depth];
            if depth == RUNNING_MAX || tags.iter().any(|entered| entered.get() == tag) {
                return Err(sys::errno(libc::EDEADLK));
            }
            running.tags[depth].set(tag);
            running.depth.set(depth + 1);
            Ok(Running { tag })
        })
    }
}

impl Drop for Running {
    #[inline(always)]
    fn drop(&mut self) {
        RUNNING.with(|running| {
            let depth = running.depth.get();
            assert!(depth > 0);
            // Innermost: guards leave in the reverse order they entered.
            assert!(running.tags[depth - 1].get() == self.tag);
            running.depth.set(depth - 1);
        });
    }
}

/// The error of a loop call whose `IO` a callback replaced (`*io = ..` or
/// `mem::swap`): the call stops, and each `IO` keeps its own work.
fn replaced_error() -> io::Error {
    io::Error::other(
        "ringio: the IO was replaced from inside one of its own callbacks; the loop call stopped",
    )
}

impl<C> IO<C> {
    /// Creates an `IO` with the default [`Config`].
    ///
    /// # Errors
    ///
    /// As [`IO::with_config`].
    pub fn new() -> io::Result<IO<C>> {
        IO::with_config(Config::new())
    }

    /// Creates an `IO` on the backend [`Config::backend`] describes:
    /// io_uring unless forced or refused, then epoll.
    ///
    /// # Errors
    ///
    /// - `EINVAL` for fewer than 2 `entries` (a `close` takes two
    ///   submission entries on io_uring: a cancel and the close);
    ///   `ENOMEM` if `completions_initial` slots cannot be allocated;
    /// - `InvalidInput` if `RINGIO_BACKEND` names no backend;
    /// - with io_uring forced, what `io_uring_setup` returns: `ENOSYS` (no
    ///   io_uring), `EPERM` (seccomp or `kernel.io_uring_disabled`), `ENOMEM`
    ///   (memlock limit), or `EOPNOTSUPP` on a kernel older than 5.11;
    /// - what `epoll_create1` returns.
    pub fn with_config(config: Config) -> io::Result<IO<C>> {
        config.validate()?;
        let backend = select::open(
            config.backend,
            config.entries,
            config.ring_flags(),
            config.registered_files,
        )?;
        tracing::debug!(target: "ringio", backend = backend.name(), entries = config.entries, "backend chosen");
        IO::from_backend(backend, config)
    }

    /// An `IO` over a backend already open (the simulator makes its own).
    pub(crate) fn from_backend(mut backend: AnyBackend, config: Config) -> io::Result<IO<C>> {
        config.validate()?;
        if config.features_emulated {
            backend.emulate_features();
        }
        let tag = tag_next();
        let slots = Slots::with_capacity(config.completions_initial, tag)?;
        let kernel = matches!(backend, AnyBackend::IoUring(_)) && !config.features_emulated;
        let multishot_native = kernel;
        let sqpoll = matches!(&backend, AnyBackend::IoUring(ring) if ring.sqpoll());
        let send_zc_native = kernel && backend.supports(crate::backend::Feature::SendZc);
        let now_ns = match &backend {
            AnyBackend::Sim(sim) => sim.now_ns(),
            _ => sys::monotonic_ns(),
        };
        Ok(IO {
            backend,
            slots,
            handles: Handles::new(tag),
            tag,
            unqueued: Fifo::new(),
            completed: Fifo::new(),
            timers: Timers::new(now_ns),
            addresses: Vec::new(),
            messages: Vec::new(),
            fixed: None,
            fixed_native: false,
            fs_args: Vec::new(),
            reap_batch: Vec::with_capacity(REAP_BATCH_MAX),
            straight_next: 0,
            straight_end: 0,
            straight_in: StraightIn::Batch,
            stats: Stats::default(),
            drop_drain_ns: config.drop_drain_ns,
            submit_batch: config.submit_batch,
            multishot_native,
            send_zc_native,
            pools: Vec::new(),
            chain: None,
            direct_blocked: config.submit_batch,
            chain_links: Vec::new(),
            // Not on an SQPOLL ring: its kernel thread reads the queue's
            // tail at any time, so it could take a chain's first members
            // in one batch and the rest in the next, and the kernel ends a
            // link at the end of a batch. There the loop links the members.
            links_native: kernel && !sqpoll,
            _not_send: PhantomData,
        })
    }

    /// The backend that is running.
    pub fn backend(&self) -> BackendKind {
        match self.backend {
            AnyBackend::IoUring(_) => BackendKind::IoUring,
            AnyBackend::Epoll(_) => BackendKind::Epoll,
            AnyBackend::Sim(_) => BackendKind::Simulator,
        }
    }

    /// The loop's clock: CLOCK_MONOTONIC, in nanoseconds, or the world's
    /// virtual clock under the simulator. Application code should take time
    /// from here, never from `std::time`, so that it runs unchanged under
    /// the simulator.
    pub fn now_ns(&self) -> u64 {
        match &self.backend {
            AnyBackend::Sim(sim) => sim.now_ns(),
            _ => sys::monotonic_ns(),
        }
    }

    /// The wall clock: CLOCK_REALTIME, in nanoseconds since the Unix epoch,
    /// or the node's virtual wall clock under the simulator.
    ///
    /// Unlike [`now_ns`](IO::now_ns) it survives a reboot, so it is the
    /// clock for anything persisted, such as an absolute expiry time. It can
    /// jump (NTP, an operator): never measure intervals with it.
    pub fn realtime_ns(&self) -> u64 {
        match &self.backend {
            AnyBackend::Sim(sim) => sim.realtime_ns(),
            _ => sys::realtime_ns(),
        }
    }

    /// Whether the backend repeats multishot operations itself.
    pub(crate) fn multishot_native(&self) -> bool {
        self.multishot_native
    }

    /// This `IO`'s tag, carried by its ids, handles and pools.
    pub(crate) fn tag(&self) -> u32 {
        self.tag
    }

    /// The simulator backend, when this `IO` runs on one.
    pub(crate) fn sim(&self) -> Option<&SimBackend> {
        match &self.backend {
            AnyBackend::Sim(sim) => Some(sim),
            _ => None,
        }
    }

    /// The loop's counters.
    pub fn stats(&self) -> Stats {
        let files = self.backend.registered_files();
        Stats {
            in_flight: u64::from(self.slots.in_use()),
            unqueued: u64::from(self.unqueued.len()),
            syscalls: self.backend.syscalls(),
            descriptors_open: u64::from(self.handles.open()),
            registered_files_slots: u64::from(files.slots),
            registered_files: u64::from(files.installed),
            registered_files_fallbacks: files.fallbacks,
            ..self.stats
        }
    }

    /// Ages every free completion slot by `count` generations, as `count`
    /// reuses of each would. For tests of id wrapping only: 2^32 real
    /// operations take minutes.
    #[doc(hidden)]
    pub fn skip_generations_for_tests(&mut self, count: u64) {
        self.slots.skip_generations(count);
    }

    /// Operations submitted whose callback has not run yet.
    pub fn in_flight(&self) -> u32 {
        self.slots.in_use()
    }

    /// Submits everything queued, reaps completions without blocking, runs
    /// their callbacks, then submits what those callbacks queued. Never blocks.
    ///
    /// # Errors
    ///
    /// - `EDEADLK` if called from inside one of this `IO`'s callbacks (the
    ///   loop does not nest);
    /// - an `Other` error if a callback replaced this `IO` (`*io = ..` or
    ///   `mem::swap`): the call stops there, and both `IO`s stay usable;
    /// - an unexpected `io_uring_enter` error, such as `ENOMEM`.
    ///
    /// # Panics
    ///
    /// Only if a callback panics: the panic propagates, and the `IO` stays
    /// usable. The callbacks that had not run yet run on the next loop call.
    pub fn tick(&mut self, ctx: &mut C) -> io::Result<()> {
        self.guarded(|io| {
            io.pass(ctx, Wait::Never)?;
            io.submit_queued()
        })
    }

    /// Runs the loop until `timeout_ns` nanoseconds of the loop's clock have
    /// passed, running callbacks as their operations complete.
    ///
    /// The deadline is absolute on CLOCK_MONOTONIC, taken at entry: a stream
    /// of completions cannot stretch it, and an idle loop sleeps in the
    /// kernel rather than spinning. It never returns before the deadline, and
    /// returns as soon after it as the kernel wakes the thread (plus the
    /// callbacks of that last pass). At least one pass always runs.
    ///
    /// # Errors
    ///
    /// As [`tick`](IO::tick).
    pub fn run_for_ns(&mut self, ctx: &mut C, timeout_ns: u64) -> io::Result<()> {
        self.guarded(|io| {
            let deadline_ns = io.now_ns().saturating_add(timeout_ns);
            loop {
                let now_ns = io.now_ns();
                let wait = match deadline_ns.checked_sub(now_ns) {
                    Some(remaining_ns) if remaining_ns > 0 => Wait::Timeout(remaining_ns),
                    _ => Wait::Never,
                };
                io.pass(ctx, wait)?;
                if io.now_ns() >= deadline_ns {
                    return io.submit_queued();
                }
            }
        })
    }

    /// Runs the loop until no operation is in flight. For tests and
    /// command-line tools; a server would use `run_for_ns`. A pending
    /// timeout counts as in flight (a `u64::MAX` one keeps this running).
    ///
    /// # Errors
    ///
    /// As [`tick`](IO::tick).
    pub fn run(&mut self, ctx: &mut C) -> io::Result<()> {
        self.guarded(|io| {
            while io.slots.in_use() > 0 {
                io.pass(ctx, Wait::Forever)?;
            }
            Ok(())
        })
    }

    fn guarded(&mut self, body: impl FnOnce(&mut Self) -> io::Result<()>) -> io::Result<()> {
        // Dropped on return and on unwind alike: a panicking callback never
        // leaves the loop marked as running.
        let _running = Running::enter(self.tag)?;
        body(self)
    }

    /// One pass of the loop: fire due timers, submit and wait (at most
    /// `wait`), reap, refill the submission queue from `unqueued`, then run
    /// the callbacks of everything completed so far.
    fn pass(&mut self, ctx: &mut C, wait: Wait) -> io::Result<()> {
        if self.straight_pending() {
            // Left by a callback that panicked: they go first, on `completed`.
            self.spill_straight();
        }
        self.fire_timers();
        let wait = if self.completed.is_empty() {
            self.wait_until_next_timer(wait)
        } else {
            Wait::Never
        };
        self.backend.submit_and_wait(wait)?;
        self.reap();
        self.fire_timers();
        self.flush_unqueued();
        self.run_completed(ctx)?;
        if let AnyBackend::Sim(sim) = &self.backend {
            let slots = &self.slots;
            let next_ns = if self.timers.is_empty() {
                None
            } else {
                self.timers.next_deadline_ns(|id| timer_is_live(slots, id))
            };
            sim.publish_next_timer(next_ns);
        }
        Ok(())
    }

    /// Shortens `wait` so that the earliest timer is not missed.
    #[inline(always)]
    fn wait_until_next_timer(&mut self, wait: Wait) -> Wait {
        if self.timers.is_empty() {
            return wait;
        }
        self.wait_until_timer(wait)
    }

    /// `wait_until_next_timer` with timers in the wheel.
    fn wait_until_timer(&mut self, wait: Wait) -> Wait {
        let slots = &self.slots;
        let Some(deadline_ns) = self.timers.next_deadline_ns(|id| timer_is_live(slots, id)) else {
            return wait;
        };
        let timer_ns = deadline_ns.saturating_sub(self.now_ns());
        match wait {
            Wait::Never => Wait::Never,
            Wait::Timeout(timeout_ns) => Wait::Timeout(timeout_ns.min(timer_ns)),
            Wait::Forever => Wait::Timeout(timer_ns),
        }
    }

    /// Submits what callbacks queued, without waiting.
    fn submit_queued(&mut self) -> io::Result<()> {
        self.backend.submit_and_wait(Wait::Never)
    }

    #[inline(always)]
    fn fire_timers(&mut self) {
        if !self.timers.is_empty() {
            self.fire_due_timers();
        }
    }

    /// `fire_timers` with timers in the wheel.
    fn fire_due_timers(&mut self) {
        let now_ns = self.now_ns();
        loop {
            let slots = &self.slots;
            let Some(id) = self
                .timers
                .pop_expired(now_ns, |id| timer_is_live(slots, id))
            else {
                break;
            };
            self.complete(id.slot, -libc::ETIME);
        }
    }

    /// The straight run's next entry (`straight_next`, or in the ring, the
    /// completion queue's head, which stands for it).
    #[inline(always)]
    fn straight_next(&self) -> u32 {
        match (self.straight_in, &self.backend) {
            (StraightIn::Ring, AnyBackend::IoUring(ring)) => ring.completions().head(),
            _ => self.straight_next,
        }
    }

    /// Whether callbacks of the straight run may still be to run: if the
    /// run was in the ring and a callback panicked, `straight_next` is
    /// where the run began (the queue's head stands for it while the run
    /// goes on), and `spill_straight` finds what is left, maybe nothing.
    #[inline(always)]
    fn straight_pending(&self) -> bool {
        self.straight_next != self.straight_end
    }

    fn reap(&mut self) {
        assert!(self.straight_next == self.straight_end);
        // Callbacks run straight from the reap only ahead of everything
        // else, so only while `completed` is empty: the order is kept.
        let straight = self.completed.is_empty();
        if straight && self.reap_in_place() {
            return;
        }
        self.reap_batched(straight);
    }

    /// The io_uring reap's fast path: every completion in the queue is left
    /// there, unsettled, for `run_straight` to settle and run in place, in
    /// order, as each one's turn comes: a plain one's callback runs straight
    /// from its entry, and the first that is not plain settles the rest the
    /// ordinary way (`settle_rest`). Returns whether it took the reap (not
    /// when the backend has syscall results to report first).
    #[inline(always)]
    fn reap_in_place(&mut self) -> bool {
        let AnyBackend::IoUring(ring) = &mut self.backend else {
            return false;
        };
        let Some(cq) = ring.completions_in_place() else {
            return false;
        };
        let (head, tail) = cq.sync();
        self.straight_in = StraightIn::Ring;
        self.straight_next = head;
        self.straight_end = tail;
        true
    }

    /// The reap through the batch: the epoll and simulator backends, and
    /// io_uring's slow paths. With `straight`, the leading run of plain
    /// completions stays in the batch.
    fn reap_batched(&mut self, mut straight: bool) {
        self.straight_in = StraightIn::Batch;
        self.reap_batch.clear();
        self.straight_next = 0;
        self.straight_end = 0;
        loop {
            // While the straight run goes on, the batch is not reused: a
            // full one is appended to (its capacity grows once, if ever).
            if !straight {
                self.reap_batch.clear();
            }
            let first = self.reap_batch.len();
            self.backend.reap(&mut self.reap_batch, REAP_BATCH_MAX);
            let reaped = self.reap_batch.len();
            let mut next = first;
            if straight {
                // The leading run of plain completions stays in the batch.
                let slots = self.slots.links();
                let chains = &self.chain_links;
                next += self.reap_batch[first..]
                    .iter()
                    .take_while(|raw| settle_plain(slots, chains, raw))
                    .count();
                self.straight_end = next as u32;
                if next < reaped {
                    // Something else comes after them: from here on,
                    // everything goes on `completed`, behind them.
                    self.spill_straight();
                    straight = false;
                }
            }
            while next < reaped {
                // A run of plain completions, on borrows the loop keeps.
                let (slots, completed) = (self.slots.links(), &mut self.completed);
                let chains = &self.chain_links;
                let mut plain = |raw: &RawCompletion| {
                    raw.user_data != USER_DATA_INTERNAL
                        && complete_plain(slots, completed, chains, raw)
                };
                next += self.reap_batch[next..]
                    .iter()
                    .take_while(|raw| plain(raw))
                    .count();
                if next < reaped {
                    // The batch is not touched again until the next reap.
                    self.on_raw_completion(self.reap_batch[next]);
                    next += 1;
                }
            }
            if reaped - first < REAP_BATCH_MAX {
                break;
            }
        }
    }

    /// Ends the straight run where it is: what is left of it goes to the
    /// head of `completed`, in its order, ahead of whatever is there (all
    /// of it completed after them). In the ring, the entries are still to
    /// settle (`settle_rest`); in the batch, they were settled by the reap
    /// and are moved. Rare: a batch that is not all plain, a full batch, a
    /// callback that panicked, an `IO` dropped with a run left.
    #[cold]
    #[inline(never)]
    fn spill_straight(&mut self) {
        let (next, end) = (self.straight_next(), self.straight_end);
        if self.straight_in == StraightIn::Ring {
            self.settle_rest_in_ring(next, end);
            return;
        }
        let mut spilled = Fifo::new();
        let links = self.slots.links();
        for raw in &self.reap_batch[next as usize..end as usize] {
            spilled.push(links, CompletionId::slot_of(raw.user_data));
        }
        while let Some(index) = self.completed.pop(links) {
            spilled.push(links, index);
        }
        self.completed = spilled;
        self.end_straight();
    }

    /// No straight run from here on, until the next reap.
    fn end_straight(&mut self) {
        self.straight_in = StraightIn::Batch;
        self.straight_next = 0;
        self.straight_end = 0;
    }

    /// Settles the entries `next..end` of the straight run in the ring the
    /// ordinary way (`on_raw_completion`), in order, each consumed first,
    /// and puts what they complete at the head of `completed`, ahead of
    /// what was there (all of it completed after them). Returns how many
    /// completions it put there. The run ends first: if a settle panics (a
    /// broken invariant), the entries after it are still in the queue,
    /// unconsumed, for the next reap. Not cold: on a server, whose
    /// operations are on handles, this settles nearly every completion.
    #[inline(never)]
    fn settle_rest(&mut self, cursor: CqCursor, mut next: u32, end: u32) -> u32 {
        self.end_straight();
        let before = self.completed.len();
        while next != end {
            // SAFETY: `next..end` is what is left of the run, between the
            // queue's head and the tail `reap_in_place` loaded; the ring is
            // this `IO`'s backend's, alive.
            #[allow(unsafe_code)]
            let raw = unsafe { cursor.entry(next) };
            next = next.wrapping_add(1);
            // SAFETY: as above; the entry was just read for the last time.
            #[allow(unsafe_code)]
            unsafe {
                CqCursor::consume_to(&cursor, next)
            };
            self.on_raw_completion(raw);
        }
        let added = self.completed.len() - before;
        let links = self.slots.links();
        for _ in 0..before {
            let index = self.completed.pop(links).expect("counted above");
            self.completed.push(links, index);
        }
        added
    }

    #[inline(always)]
    fn on_raw_completion(&mut self, raw: RawCompletion) {
        if raw.user_data == USER_DATA_INTERNAL {
            return;
        }
        let index = CompletionId::slot_of(raw.user_data);
        let slot = self.slots.slot_mut(index);
        // Plain `assert!`s: `assert_eq!` would keep both sides in memory
        // for its message, once per operation.
        assert!(slot.generation as u32 == CompletionId::generation_low_of(raw.user_data));
        assert!(slot.state == State::Kernel);
        // The common case, inline: the one result of a one-shot operation,
        // a success, so nothing to retry (what `finish` would do too).
        let one_shot = slot.multishot == Multishot::No
            && !slot.awaiting_readiness
            && !matches!(slot.operation, Operation::SendZc { .. });
        if one_shot && raw.result >= 0 {
            return self.complete(index, raw.result);
        }
        self.on_raw_completion_other(index, raw);
    }

    /// The rest of `on_raw_completion`: a readiness wait that ended, an
    /// error to retry or to report, a multishot result.
    fn on_raw_completion_other(&mut self, index: u32, raw: RawCompletion) {
        let slot = self.slots.slot_mut(index);
        let is_close = matches!(slot.operation, Operation::Close { .. });
        if slot.awaiting_readiness {
            // The readiness wait ended: retry the operation, or fail it if
            // the wait itself failed (cancelled, or a bad fd).
            slot.awaiting_readiness = false;
            slot.retried = true;
            if raw.result < 0 {
                self.complete(index, raw.result);
            } else {
                self.enqueue(index);
            }
            return;
        }
        match raw.result {
            // Linux frees the descriptor even when close returns EINTR: a
            // retry could close a number already reused. Never retry a close.
            result if result == -libc::EINTR && is_close => self.complete(index, 0),
            // Interrupted by a signal: resubmit, never surface.
            result if result == -libc::EINTR => self.enqueue(index),
            // A non-blocking fd was not ready: wait for readiness, then retry,
            // as a blocking fd would have.
            result if result == -libc::EAGAIN && slot.operation.readiness().is_some() => {
                slot.awaiting_readiness = true;
                slot.not_plain = true;
                self.enqueue(index);
            }
            // A retried non-blocking connect reports its success this way.
            result if result == -libc::EISCONN && slot.retried => self.complete(index, 0),
            result => self.finish(index, result, raw.flags),
        }
    }

    /// An operation's result is in: complete it, or, for a multishot
    /// operation, deliver the result and keep it going.
    fn finish(&mut self, index: u32, result: i32, flags: u32) {
        let slot = self.slots.slot_mut(index);
        if matches!(slot.operation, Operation::SendZc { .. }) {
            return self.finish_send_zc(index, result, flags);
        }
        match slot.multishot {
            Multishot::No => self.complete(index, result),
            Multishot::Native if flags & CQE_F_MORE != 0 => self.deliver_shot(index, result, flags),
            Multishot::Native if result == -libc::EINVAL && !slot.delivered => {
                // The kernel has no such multishot operation (before Linux
                // 5.19, say): emulate it from now on, and start over.
                tracing::debug!(target: "ringio", op = slot.operation.name(), "multishot refused by the kernel; emulating it");
                slot.multishot = Multishot::Emulated;
                slot.not_plain = true;
                self.multishot_native = false;
                self.enqueue(index);
            }
            Multishot::Emulated if shot_continues(&slot.operation, result) => {
                // An emulated receive's buffer is the one the loop picked.
                let flags = mem::take(&mut slot.flags) | flags;
                slot.awaiting_readiness = matches!(slot.operation, Operation::RecvMulti { .. });
                self.deliver_shot(index, result, flags);
                self.enqueue(index);
            }
            // The last result: an error (a cancel included), the kernel
            // ending the stream, or the first result after a stop.
            Multishot::Native => {
                self.complete(index, result);
                self.slots.slot_mut(index).flags = flags;
            }
            Multishot::Emulated | Multishot::Stopping => {
                let held = mem::take(&mut slot.flags);
                let operation = slot.operation;
                let flags = if result > 0 {
                    held
                } else {
                    // No data for the buffer the loop picked: it goes back.
                    self.release_result(operation, -1, held);
                    0
                };
                self.complete(index, result);
                self.slots.slot_mut(index).flags = flags;
            }
        }
    }

    /// A zero-copy send posts two completions: the byte count (flagged
    /// more-to-come), then a notification once the kernel no longer reads
    /// the buffer. Only then may the buffer go back to the callback.
    fn finish_send_zc(&mut self, index: u32, result: i32, flags: u32) {
        let slot = self.slots.slot_mut(index);
        if flags & CQE_F_NOTIF != 0 {
            let count = slot.result;
            return self.complete(index, count);
        }
        if flags & CQE_F_MORE != 0 {
            // The count: kept until the notification comes.
            slot.result = result;
            return;
        }
        // A single completion (an error before anything was sent, or the
        // plain send of the emulation): the buffer is free already.
        self.complete(index, result);
    }

    /// Whether `send_zc` goes to the kernel as a zero-copy send.
    pub(crate) fn send_zc_native(&self) -> bool {
        self.send_zc_native
    }

    /// Queues one result of the multishot operation in slot `parent` for its
    /// callback, in a slot of its own, so that results keep their order
    /// among all completions while the operation goes on.
    fn deliver_shot(&mut self, parent: u32, result: i32, flags: u32) {
        self.slots.slot_mut(parent).delivered = true;
        let shot = self
            .slots
            .alloc(Operation::Shot { parent }, Callback::empty());
        let slot = self.slots.slot_mut(shot.slot);
        slot.state = State::Kernel;
        slot.flags = flags;
        self.complete(shot.slot, result);
    }

    /// Hands a slot's operation to the backend, or parks it on `unqueued`
    /// when the submission queue is full. Operations already waiting go
    /// first, so submission order is kept.
    #[inline(always)]
    fn enqueue(&mut self, index: u32) {
        if self.unqueued.is_empty() && self.push_now(index) {
            return;
        }
        self.enqueue_other(index);
    }

    /// The common case of `enqueue`, inline: an operation that goes to the
    /// backend as it is (not a readiness wait, a round of an emulated
    /// multishot operation, a close or a pool's receive), on an open handle
    /// or none. Returns whether it went; if not, nothing changed.
    #[inline(always)]
    fn push_now(&mut self, index: u32) -> bool {
        // Held across the push (which borrows only the backend), so that
        // the slot is looked up once.
        let slot = &mut self.slots.links()[index as usize];
        let as_it_is = !slot.awaiting_readiness
            && matches!(slot.multishot, Multishot::No | Multishot::Native)
            && !matches!(
                slot.operation,
                Operation::Close { .. } | Operation::RecvMulti { .. }
            );
        let handle_open = slot.handle == NO_HANDLE || self.handles.is_open_index(slot.handle);
        if !as_it_is || !handle_open {
            return false;
        }
        let user_data = CompletionId::user_data_of(index, slot.generation);
        if !self.backend.push(user_data, &slot.operation) {
            return false;
        }
        slot.state = State::Kernel;
        if self.submit_batch > 0 {
            self.backend.submit_early(self.submit_batch);
        }
        true
    }

    /// The rest of `enqueue`: settle the operation instead, push it as
    /// `push_to_backend` says, or park it.
    #[cold]
    #[inline(never)]
    fn enqueue_other(&mut self, index: u32) {
        if self.unqueued.is_empty() {
            if let Some(result) = self.settle_before_push(index) {
                self.complete(index, result);
                return;
            }
            if self.push_to_backend(index) {
                self.slots.slot_mut(index).state = State::Kernel;
                if self.submit_batch > 0 {
                    self.backend.submit_early(self.submit_batch);
                }
                return;
            }
        }
        self.park(index);
    }

    /// Parks slot `index` on `unqueued`, behind whatever waits there.
    #[inline(never)]
    fn park(&mut self, index: u32) {
        self.slots.slot_mut(index).state = State::Unqueued;
        self.unqueued.push(self.slots.links(), index);
        self.stats.unqueued_max = self.stats.unqueued_max.max(u64::from(self.unqueued.len()));
    }

    /// Hands `count` linked members of a chain, from `first` on, to the
    /// backend together, or parks them all on `unqueued` together: a link
    /// never spans two submissions.
    fn enqueue_group(&mut self, first: u32, count: u32) {
        if count == 1 {
            return self.enqueue(first);
        }
        if self.unqueued.is_empty() && self.backend.room() >= count as usize {
            self.push_group(first, count, false);
            if self.submit_batch > 0 {
                self.backend.submit_early(self.submit_batch);
            }
            return;
        }
        let mut index = first;
        for member in 0..count {
            self.slots.slot_mut(index).state = State::Unqueued;
            self.unqueued.push(self.slots.links(), index);
            if member + 1 < count {
                index = self.chain_next(index);
            }
        }
        self.stats.unqueued_max = self.stats.unqueued_max.max(u64::from(self.unqueued.len()));
    }

    /// Pushes `count` linked members from `first` on, each but the last
    /// with its link to the next, into a submission queue with room for
    /// them all; `from_unqueued`: they are the head of `unqueued`.
    fn push_group(&mut self, first: u32, count: u32, from_unqueued: bool) {
        let mut index = first;
        for member in 0..count {
            if from_unqueued {
                let popped = self.unqueued.pop(self.slots.links());
                assert_eq!(popped, Some(index));
            }
            let last = member + 1 == count;
            let pushed = if last {
                self.chain_cut_after(index);
                self.push_to_backend(index)
            } else {
                let user_data = self.slots.id(index).user_data();
                let operation = self.slots.slot(index).operation;
                self.backend.push_linked(user_data, &operation)
            };
            assert!(pushed, "room for the whole group was checked");
            self.slots.slot_mut(index).state = State::Kernel;
            if !last {
                index = self.chain_next(index);
            }
        }
    }

    /// Whether the handle that slot `index`'s operation names was closed
    /// while the operation waited to be (re)submitted. Its descriptor may be
    /// gone and its number reused, so it must not reach the backend: it
    /// completes with `ECANCELED`, as the close would have cancelled it.
    fn handle_closed(&self, index: u32) -> bool {
        let slot = self.slots.slot(index);
        let is_close = matches!(slot.operation, Operation::Close { .. });
        slot.handle != NO_HANDLE && !is_close && !self.handles.is_open_index(slot.handle)
    }

    /// The result to complete slot `index` with instead of handing it to the
    /// backend, if any: `ECANCELED` if its handle was closed meanwhile;
    /// `ENOBUFS` if it is an emulated receive from a pool with no buffer
    /// left, as the kernel ends a multishot receive then. Otherwise an
    /// emulated receive takes its buffer here.
    fn settle_before_push(&mut self, index: u32) -> Option<i32> {
        if self.handle_closed(index) {
            let slot = self.slots.slot_mut(index);
            let held = mem::take(&mut slot.flags);
            let operation = slot.operation;
            self.release_result(operation, -1, held);
            return Some(-libc::ECANCELED);
        }
        let slot = self.slots.slot(index);
        let Operation::RecvMulti { pool, .. } = slot.operation else {
            return None;
        };
        let emulated = matches!(slot.multishot, Multishot::Emulated | Multishot::Stopping);
        if !emulated || slot.awaiting_readiness || crate::pool::buffer_of(slot.flags).is_some() {
            return None;
        }
        match self.pools[usize::from(pool)].pick() {
            Some(bid) => {
                self.slots.slot_mut(index).flags = crate::pool::flags_naming(bid);
                None
            }
            None => Some(-libc::ENOBUFS),
        }
    }

    fn push_to_backend(&mut self, index: u32) -> bool {
        let user_data = self.slots.id(index).user_data();
        if matches!(self.slots.slot(index).operation, Operation::Close { .. }) {
            self.note_close_busy(index);
        }
        let slot = self.slots.slot(index);
        let pushed = if slot.awaiting_readiness {
            let (fd, events) = slot
                .operation
                .readiness()
                .expect("set only for such operations");
            self.backend
                .push(user_data, &Operation::Poll { fd, events })
        } else if matches!(slot.multishot, Multishot::Emulated | Multishot::Stopping) {
            let operation = self.one_round_of(index);
            self.backend.push(user_data, &operation)
        } else {
            self.backend.push(user_data, &slot.operation)
        };
        if pushed && matches!(slot.operation, Operation::Close { .. }) {
            // The backend closes the descriptor now; the table lets go of it.
            self.handles.hand_over(slot.handle);
        }
        pushed
    }

    /// Marks the close in slot `index` busy if operations are still in
    /// flight on its handle (see `Operation::Close`), as it goes to the
    /// backend: each push decides again, since they may have completed
    /// while it waited on unqueued.
    #[cold]
    fn note_close_busy(&mut self, index: u32) {
        let slot = self.slots.slot_mut(index);
        if let Operation::Close { busy, .. } = &mut slot.operation {
            // A close always names its handle; busy, the safe side, if not.
            *busy = slot.handle == NO_HANDLE || self.handles.in_flight_at(slot.handle) > 0;
        }
    }

    /// The one-shot operation that the loop submits for one round of the
    /// emulated multishot operation in slot `index`.
    fn one_round_of(&self, index: u32) -> Operation {
        let slot = self.slots.slot(index);
        match slot.operation {
            Operation::RecvMulti { fd, pool } => {
                let bid = crate::pool::buffer_of(slot.flags).expect("picked before the push");
                let pool = &self.pools[usize::from(pool)];
                Operation::Recv {
                    fd,
                    buf: pool.buffer_ptr(bid),
                    len: pool.buffer_bytes(),
                }
            }
            operation => operation.single_shot(),
        }
    }

    /// Moves `unqueued` operations into the submission queue while it has room.
    fn flush_unqueued(&mut self) {
        while let Some(index) = self.unqueued.peek() {
            if self.linked_natively(index) {
                let count = self.unqueued_group_len(index);
                if count > 1 {
                    if self.backend.room() < count as usize {
                        break;
                    }
                    self.push_group(index, count, true);
                    continue;
                }
                // Cut from what followed it: alone, the loop goes on after it.
                self.chain_cut_after(index);
            }
            let settled = self.settle_before_push(index);
            if settled.is_none() && !self.push_to_backend(index) {
                break;
            }
            let popped = self.unqueued.pop(self.slots.links());
            assert_eq!(popped, Some(index));
            match settled {
                Some(result) => self.complete(index, result),
                None => self.slots.slot_mut(index).state = State::Kernel,
            }
        }
    }

    /// Records a result and queues the slot's callback. A close's callback
    /// runs after those of every operation that was in flight on its handle,
    /// on every backend: it is held until the last of them completes.
    #[inline(always)]
    fn complete(&mut self, index: u32, result: i32) {
        self.complete_one(index, result);
        self.chain_after(index, result);
    }

    /// [`complete`](IO::complete) for one slot, whatever chain it is in.
    fn complete_one(&mut self, index: u32, result: i32) {
        let slot = self.slots.slot_mut(index);
        // In flight, or a chain member waiting for its turn: not completed,
        // held, or free.
        assert!(matches!(
            slot.state,
            State::Unqueued | State::Kernel | State::Timer | State::Chained
        ));
        slot.state = State::Completed;
        slot.result = match result {
            // The cancel that the deadline made: report it as what it was.
            result if result == -libc::ECANCELED && slot.timed_out => -libc::ETIMEDOUT,
            result => result,
        };
        if slot.deadline == NO_DEADLINE && slot.handle == NO_HANDLE {
            // Nothing else to settle. The push asserts the slot is on no list.
            return self.completed.push(self.slots.links(), index);
        }
        self.complete_settle(index);
    }

    /// The rest of `complete`: the deadline goes, and an operation on a
    /// handle is counted off it (a held close may complete with it).
    fn complete_settle(&mut self, index: u32) {
        let slot = self.slots.slot_mut(index);
        assert!(!slot.link.is_linked());
        let deadline = mem::replace(&mut slot.deadline, NO_DEADLINE);
        if deadline != NO_DEADLINE {
            // Completed first: the deadline goes with it.
            self.disarm_deadline(deadline);
        }
        let slot = self.slots.slot_mut(index);
        let handle = slot.handle;
        let is_close = matches!(slot.operation, Operation::Close { .. });
        if handle == NO_HANDLE {
            self.completed.push(self.slots.links(), index);
        } else if is_close {
            match self.handles.close_finished(handle, index) {
                CloseDone::Complete => self.completed.push(self.slots.links(), index),
                CloseDone::Hold => self.slots.slot_mut(index).state = State::Held,
            }
        } else {
            self.completed.push(self.slots.links(), index);
            if let Some(close) = self.handles.op_finished(handle) {
                let slot = self.slots.slot_mut(close);
                assert_eq!(slot.state, State::Held);
                slot.state = State::Completed;
                self.completed.push(self.slots.links(), close);
            }
        }
    }

    /// Runs the callbacks of what is on `completed` now. Whatever those
    /// callbacks complete or submit waits for the next pass, which bounds
    /// both the work per pass and the stack depth.
    ///
    /// Each slot is taken off `completed` only when its callback is about to
    /// run, so a callback that panics leaves the rest queued for the next
    /// loop call. A callback that replaces the `IO` stops the pass.
    fn run_completed(&mut self, ctx: &mut C) -> io::Result<()> {
        let tag = self.tag;
        // Taken first: what the straight run's callbacks complete waits too.
        let mut queued = self.completed.len();
        // With the completions the run settled the ordinary way, if any,
        // which it put ahead of those.
        queued += match (self.straight_in, &mut self.backend) {
            (StraightIn::Ring, AnyBackend::IoUring(ring)) => {
                let cursor = ring.completion_ring().cursor();
                self.run_straight(ctx, tag, cursor)?
            }
            _ => self.run_straight_batched(ctx, tag)?,
        };
        for _ in 0..queued {
            let Some(index) = self.completed.peek() else {
                break;
            };
            // The table as a slice, so that the compiler keeps it in
            // registers across the tracing call, which may touch anything
            // else.
            let slots = self.slots.links();
            let slot = &slots[index as usize];
            assert!(slot.state == State::Completed);
            // Before anything moves: a tracing subscriber that panics
            // leaves the slot queued, with nothing lost.
            tracing::trace!(target: "ringio", op = slot.operation.name(), slot = index, result = slot.result, "complete");
            if let AnyBackend::Sim(sim) = &self.backend {
                sim.trace(&slot.operation, slot.result);
            }
            let popped = self.completed.pop(slots);
            assert!(popped == Some(index));
            let slot = &slots[index as usize];
            let one_shot = slot.multishot == Multishot::No;
            let one_shot = one_shot && !matches!(slot.operation, Operation::Shot { .. });
            self.stats.completed += 1;
            if one_shot {
                self.run_callback(ctx, index);
            } else {
                self.run_multishot_callback(ctx, index);
            }
            if self.tag != tag {
                return Err(replaced_error());
            }
        }
        Ok(())
    }

    /// `run_straight` from the reap batch (the epoll and simulator
    /// backends, io_uring's slow paths): out of line, so that the ring's
    /// run, inlined into the pass, has the registers to itself.
    #[inline(never)]
    fn run_straight_batched(&mut self, ctx: &mut C, tag: u32) -> io::Result<u32> {
        let entries = BatchEntries(self.reap_batch.as_ptr());
        self.run_straight(ctx, tag, entries)
    }

    /// The head of the completed queue: the callbacks of the plain
    /// completions `reap` left in its batch or in the completion queue, in
    /// order (docs/architecture.md, "Plain completions run straight from
    /// the completion queue"). `tag` is this `IO`'s, to catch a callback
    /// that replaces it; `entries` is where the run is. In the queue, each
    /// entry is settled as its turn comes: the first that is not a plain
    /// success ends the run, and it and the rest are settled the ordinary
    /// way (`settle_rest`), onto the head of `completed`. Returns how many
    /// completions that put there, for `run_completed` to run too.
    #[inline(always)]
    fn run_straight<E: StraightEntries>(
        &mut self,
        ctx: &mut C,
        tag: u32,
        entries: E,
    ) -> io::Result<u32> {
        // Whether to trace, decided once per run: a level a callback sets
        // (a subscriber installed, a filter reloaded) takes effect from the
        // next run, and at once for the completed queue's callbacks. A
        // constant in each copy of the run, so that the untraced one tests
        // nothing per callback.
        let traced = matches!(self.backend, AnyBackend::Sim(_))
            || tracing::enabled!(target: "ringio", tracing::Level::TRACE);
        if traced {
            self.run_straight_traced::<E, true>(ctx, tag, entries)
        } else {
            self.run_straight_traced::<E, false>(ctx, tag, entries)
        }
    }

    /// `run_straight`, tracing each completion or none.
    #[inline(always)]
    fn run_straight_traced<E: StraightEntries, const TRACED: bool>(
        &mut self,
        ctx: &mut C,
        tag: u32,
        entries: E,
    ) -> io::Result<u32> {
        // In locals: nothing but `reap` and `spill_straight` changes them,
        // and neither runs inside a callback (the loop does not nest; an
        // `IO` put in this one's place is caught by its tag). The cursor is
        // stored, and the entry consumed, before each callback, which may
        // panic.
        let (mut next, end) = (self.straight_next(), self.straight_end);
        while next != end {
            // SAFETY: `next` is one of the run's, not consumed: the run is
            // `straight_next..straight_end`, which `reap` set over entries
            // it had just read (the batch's, or the queue's up to the tail
            // it loaded) and only `reap` and `spill_straight` change; the
            // entries are consumed only here, up to `next`. The batch and
            // the ring are this `IO`'s, alive and unchanged: neither `reap`
            // nor `spill_straight` runs inside a callback (the loop does not
            // nest), the backend is never replaced, and an `IO` put in this
            // one's place (this one dropped) fails the tag check below,
            // before the next access.
            #[allow(unsafe_code)]
            let raw = unsafe { entries.entry(next) };
            if E::UNSETTLED && !self.slots.is_plain_success(&raw) {
                return Ok(self.settle_rest_in_ring(next, end));
            }
            let index = CompletionId::slot_of(raw.user_data);
            #[cfg(debug_assertions)]
            self.debug_assert_plain(index);
            // Before anything moves, as below.
            if TRACED {
                self.trace_complete(index, raw.result);
            }
            next = next.wrapping_add(1);
            // SAFETY: as above; the entry was just read for the last time.
            #[allow(unsafe_code)]
            unsafe {
                entries.consume_to(next, &mut self.straight_next)
            };
            self.stats.completed += 1;
            // Plain, so one-shot: freed and run as `run_callback` does.
            #[allow(unsafe_code)]
            let callback = if E::UNSETTLED {
                // SAFETY: `is_plain_success` checked `index` against the
                // table just above, with only the trace since (which has no
                // access to the table).
                unsafe { self.slots.free_plain(index) }
            } else {
                // SAFETY: `settle_plain` checked `index` against the table
                // when the reap settled the entry; the table has not shrunk
                // since (it never does).
                unsafe { self.slots.free_completed(index) }
            };
            // SAFETY: as in `run_callback`: the free wrote the slot before
            // it detached the callback, and nothing runs between it and
            // this call.
            #[allow(unsafe_code)]
            unsafe {
                callback.call(self, ctx, raw.result)
            };
            if self.tag != tag {
                return Err(replaced_error());
            }
        }
        // For the ring, whose head stood for it meanwhile.
        self.straight_next = next;
        Ok(0)
    }

    /// `settle_rest` for a run in the ring (the only one with unsettled
    /// entries).
    #[inline(always)]
    fn settle_rest_in_ring(&mut self, next: u32, end: u32) -> u32 {
        let AnyBackend::IoUring(ring) = &mut self.backend else {
            unreachable!("a straight run in the ring of another backend")
        };
        let cursor = ring.completion_ring().cursor();
        self.settle_rest(cursor, next, end)
    }

    /// That the slot the straight run is about to run is plain, in full
    /// (`Slot::plain_derived`): the one load that decides it says so.
    #[cfg(debug_assertions)]
    fn debug_assert_plain(&self, index: u32) {
        let chained = is_chained(&self.chain_links, index);
        assert!(self.slots.slot(index).plain_derived(chained));
    }

    /// The trace of a completion whose callback is about to run: the
    /// `tracing` event and the simulator's hash. Out of line: with no
    /// subscriber and no simulator, never called.
    #[cold]
    #[inline(never)]
    fn trace_complete(&self, index: u32, result: i32) {
        let slot = self.slots.slot(index);
        tracing::trace!(target: "ringio", op = slot.operation.name(), slot = index, result, "complete");
        if let AnyBackend::Sim(sim) = &self.backend {
            sim.trace(&slot.operation, result);
        }
    }

    /// Frees slot `index`, a one-shot operation's just taken off
    /// `completed`, and runs its callback.
    #[inline(always)]
    #[allow(unsafe_code)]
    fn run_callback(&mut self, ctx: &mut C, index: u32) {
        let (callback, result) = self.slots.free_detaching(index);
        // SAFETY: `free_detaching` wrote the slot before it detached the
        // callback, and nothing runs between it and this call, so the
        // handler is in its storage as it left it.
        unsafe { callback.call(self, ctx, result) };
    }

    /// As `run_callback`, for a multishot operation's result: one of its
    /// results (a shot) or its last.
    fn run_multishot_callback(&mut self, ctx: &mut C, index: u32) {
        let slot = self.slots.slot_mut(index);
        let (result, flags, multishot) = (slot.result, slot.flags, slot.multishot);
        let operation = slot.operation;
        let mut callback = mem::replace(&mut slot.callback, Callback::empty());
        self.slots.free(index);
        if let Operation::Shot { parent } = operation {
            return self.run_shot(ctx, parent, result, flags);
        }
        if multishot == Multishot::No {
            return callback.call(self, ctx, result);
        }
        if !callback.is_some() {
            // A shot's callback panicked and took the handler with it.
            return self.release_result(operation, result, flags);
        }
        let last = RawShot {
            result,
            flags,
            more: false,
        };
        callback.call_shot(self, ctx, last);
    }

    /// Runs the callback of the multishot operation in slot `parent` with
    /// one result. The handler is taken out of its slot for the call (the
    /// callback may submit, and so move the table) and put back after.
    fn run_shot(&mut self, ctx: &mut C, parent: u32, result: i32, flags: u32) {
        let tag = self.tag;
        let slot = self.slots.slot_mut(parent);
        let mut callback = mem::replace(&mut slot.callback, Callback::empty());
        if !callback.is_some() {
            // An earlier shot's callback panicked, and took the handler with it.
            return self.release_shot(parent, result, flags);
        }
        let shot = RawShot {
            result,
            flags,
            more: true,
        };
        let flow = callback.call_shot(self, ctx, shot);
        if self.tag != tag {
            // This IO is not the one the handler belongs to any more.
            return;
        }
        let slot = self.slots.slot_mut(parent);
        assert!(!slot.callback.is_some());
        slot.callback = callback;
        if flow == Flow::Stop {
            self.stop_multishot(parent);
        }
    }

    /// Ends the multishot operation in slot `parent` at the callback's
    /// request: its last result comes soon, with `ECANCELED` unless a
    /// result was already on its way.
    fn stop_multishot(&mut self, parent: u32) {
        let target = self.slots.id(parent);
        self.cancel_quietly(target);
    }

    /// Cancels `target` for the loop's own reasons (a stop, a deadline):
    /// the cancel's own result interests nobody.
    fn cancel_quietly(&mut self, target: CompletionId) {
        self.submit_cancel(target, quiet_callback());
    }

    /// A result that no callback will see (the handler is gone, or the `IO`
    /// is being dropped): give back what it holds, such as an accepted socket.
    fn release_shot(&mut self, parent: u32, result: i32, flags: u32) {
        let operation = self.slots.slot(parent).operation;
        self.release_result(operation, result, flags);
    }

    /// Gives back what a result of `operation` holds, when no callback will
    /// take it: an accepted socket, a pool's buffer.
    fn release_result(&mut self, operation: Operation, result: i32, flags: u32) {
        match operation {
            Operation::Accept { .. } | Operation::AcceptMulti { .. } if result >= 0 => {
                self.close_unowned(result)
            }
            Operation::OpenAt { .. } if result >= 0 => self.close_unowned(result),
            Operation::RecvMulti { pool, .. } => {
                if let Some(bid) = crate::pool::buffer_of(flags) {
                    self.pools[usize::from(pool)].give_back(bid);
                }
            }
            _ => {}
        }
    }

    /// Closes a descriptor the kernel (or the simulator) made for this `IO`
    /// that no handle names yet, because no callback ever saw it.
    fn close_unowned(&mut self, fd: Fd) {
        match &self.backend {
            AnyBackend::Sim(sim) => sim.close_now(fd),
            // Nobody was ever handed it: an error closing it leaves nothing to do.
            _ => drop(sys::close(fd)),
        }
    }

    /// Gives the operation `target` a deadline on the loop's clock
    /// ([`now_ns`](IO::now_ns)): if it has not completed by `deadline_ns`,
    /// it is cancelled, and its callback gets `ETIMEDOUT` instead of
    /// `ECANCELED`, with its buffer back as always. If it completes first,
    /// even an instant before, its own result stands (the byte count of a
    /// receive is the truth) and the deadline goes with it. A second
    /// deadline replaces the first. A multishot operation's deadline ends
    /// the whole stream.
    ///
    /// The deadline is a timer in the loop's user-space timer wheel, like
    /// [`timeout`](IO::timeout), not a linked kernel timeout per operation,
    /// so that a million deadlines cost what a million timers cost, and the
    /// same code runs on every backend. Backends: io_uring, epoll, sim.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut io: ringio::IO<Option<i32>> = ringio::IO::new()?;
    /// let listener = io.listen("127.0.0.1:0".parse().unwrap(), 16)?;
    /// // Nobody connects: the accept times out after 2 ms.
    /// let id = io.accept(listener, |_, errno, result| {
    ///     *errno = result.err().and_then(|error| error.raw_os_error());
    /// });
    /// io.deadline(id, 2_000_000)?;
    /// let mut errno = None;
    /// io.run(&mut errno)?;
    /// assert_eq!(errno, Some(libc::ETIMEDOUT));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `ENOENT` if `target` is not in flight: it completed (or was settled
    /// at once, say for a stale handle), is stale, or is another `IO`'s.
    pub fn deadline(&mut self, target: CompletionId, timeout_ns: u64) -> io::Result<()> {
        let deadline_ns = self.now_ns().saturating_add(timeout_ns);
        self.deadline_at(target, deadline_ns)
    }

    /// As [`deadline`](IO::deadline), at the absolute time `deadline_ns` of
    /// the loop's clock.
    ///
    /// # Errors
    ///
    /// As [`deadline`](IO::deadline).
    pub fn deadline_at(&mut self, target: CompletionId, deadline_ns: u64) -> io::Result<()> {
        let in_flight = self.slots.get(target).map(|slot| slot.state);
        if !matches!(
            in_flight,
            Some(State::Unqueued | State::Kernel | State::Timer | State::Chained)
        ) {
            return Err(sys::errno(libc::ENOENT));
        }
        let previous = mem::replace(&mut self.slots.slot_mut(target.slot).deadline, NO_DEADLINE);
        if previous != NO_DEADLINE {
            self.disarm_deadline(previous);
        }
        let callback = Callback::new(DeadlinePassed { target });
        // The loop's own timer: never a member of a chain being built.
        let chain = self.replace_chain(None);
        let timer = self.submit(Operation::Timeout { deadline_ns }, callback);
        self.replace_chain(chain);
        let slot = self.slots.slot_mut(target.slot);
        slot.deadline = timer.slot;
        slot.not_plain = true;
        Ok(())
    }

    /// The deadline of `target` passed: cancel it, so that it completes with
    /// `ETIMEDOUT`, unless it completed meanwhile.
    fn deadline_passed(&mut self, target: CompletionId) {
        let Some(slot) = self.slots.get(target) else {
            return;
        };
        if !matches!(
            slot.state,
            State::Unqueued | State::Kernel | State::Timer | State::Chained
        ) {
            return;
        }
        let slot = self.slots.slot_mut(target.slot);
        slot.deadline = NO_DEADLINE;
        slot.timed_out = true;
        // An emulated multishot operation is also marked as stopping there.
        self.cancel_quietly(target);
    }

    /// Cancels the deadline timer in slot `timer`, if it has not fired.
    fn disarm_deadline(&mut self, timer: u32) {
        if self.slots.slot(timer).state != State::Timer {
            // It fired: its callback will find the operation done.
            return;
        }
        self.complete(timer, -libc::ECANCELED);
        let slots = &self.slots;
        self.timers.cancelled(|id| timer_is_live(slots, id));
    }

    /// Stores a handler, counting it in `Stats::callbacks_boxed` when it is
    /// too large to be stored inline.
    pub(crate) fn callback<H: Handler<C>>(&mut self, handler: H) -> Callback<C> {
        if !callback::fits_inline::<H>() {
            self.count_boxed();
        }
        Callback::new(handler)
    }

    /// A handler to be written straight into its slot by the submission
    /// (see [`Callback::store`]), counted in `Stats::callbacks_boxed` when
    /// it is too large to be stored inline.
    #[inline(always)]
    pub(crate) fn handler<H: Handler<C>>(&mut self, handler: H) -> Fresh<H> {
        if !callback::fits_inline::<H>() {
            self.count_boxed();
        }
        Fresh(handler)
    }

    /// Counts a handler too large to be stored inline.
    pub(crate) fn count_boxed(&mut self) {
        self.stats.callbacks_boxed += 1;
    }

    /// Submits an operation on `handle`: `build` makes it from the raw
    /// descriptor. A handle that is closed, stale or another `IO`'s settles
    /// it with `EBADF`; else a negative `refused` (an errno for bad input)
    /// settles it with that. Neither reaches the kernel.
    pub(crate) fn submit_on(
        &mut self,
        handle: Handle,
        refused: i32,
        callback: Callback<C>,
        build: impl FnOnce(Fd) -> Operation,
    ) -> CompletionId {
        let Some(fd) = self.handles.raw(handle) else {
            return self.submit_completed(build(-1), callback, -libc::EBADF);
        };
        let operation = build(fd);
        if refused < 0 {
            return self.submit_completed(operation, callback, refused);
        }
        self.submit_with_handle(operation, callback, handle.index)
    }

    /// Takes a slot for `operation` and starts it.
    #[inline(always)]
    pub(crate) fn submit<S: Store<C>>(
        &mut self,
        operation: Operation,
        callback: S,
    ) -> CompletionId {
        self.submit_with_handle(operation, callback, NO_HANDLE)
    }

    /// Takes a slot for `operation` on the handle-table entry `handle`
    /// (or `NO_HANDLE`) and starts it.
    #[inline(always)]
    pub(crate) fn submit_with_handle<S: Store<C>>(
        &mut self,
        operation: Operation,
        callback: S,
        handle: u32,
    ) -> CompletionId {
        self.submit_with(operation, callback, handle, Multishot::No)
    }

    /// Submits a multishot operation on `handle` (see [`submit_on`]):
    /// natively repeated by the kernel where it can, else by the loop.
    pub(crate) fn submit_multishot_on(
        &mut self,
        handle: Handle,
        refused: i32,
        native: bool,
        callback: Callback<C>,
        build: impl FnOnce(Fd) -> Operation,
    ) -> CompletionId {
        let fd = self.handles.raw(handle);
        let result = if fd.is_none() { -libc::EBADF } else { refused };
        if result < 0 {
            let id = self.submit_completed(build(-1), callback, result);
            let slot = self.slots.slot_mut(id.slot);
            slot.multishot = Multishot::Emulated;
            slot.not_plain = true;
            return id;
        }
        let operation = build(fd.expect("checked above"));
        let multishot = if native {
            Multishot::Native
        } else {
            Multishot::Emulated
        };
        self.submit_with(operation, callback, handle.index, multishot)
    }

    /// Fills a slot and starts its operation. Inlined into each
    /// operation's function, so that its handler is written straight into
    /// the slot; the rest is `start`, out of line.
    #[inline(always)]
    fn submit_with<S: Store<C>>(
        &mut self,
        operation: Operation,
        callback: S,
        handle: u32,
        multishot: Multishot,
    ) -> CompletionId {
        // The common case, inline: what `start` would do for an operation
        // on no handle that goes to io_uring as it is, when no chain is
        // being built and nothing waits on `unqueued`. The checks on the
        // operation fold at compile time (its kind is a constant in each
        // operation's function); the slot is held from its allocation to
        // its push.
        let (id, slot) = self.slots.alloc_on(operation, callback, handle, multishot);
        if handle == NO_HANDLE && multishot == Multishot::No && pushed_as_it_is(&operation) {
            let AnyBackend::IoUring(ring) = &mut self.backend else {
                return self.submit_started(id);
            };
            // One test for the three: no chain being built, nothing parked,
            // no `submit_batch`.
            let deferred = self.direct_blocked | self.unqueued.len();
            let direct = deferred == 0;
            if direct && ring.push_direct(id.user_data(), &operation) {
                slot.state = State::Kernel;
                self.stats.submitted += 1;
                if tracing::enabled!(target: "ringio", tracing::Level::TRACE) {
                    self.trace_submit(id.slot);
                }
                return id;
            }
        }
        self.submit_started(id)
    }

    /// The rest of `submit_with`, for the operation just put in slot
    /// `id.slot`: it joins the chain being built, or starts.
    #[inline(always)]
    fn submit_started(&mut self, id: CompletionId) -> CompletionId {
        if self.chain_open() {
            self.start_chained(id.slot);
            return id;
        }
        self.start(id.slot);
        id
    }

    /// Starts the operation just put in slot `index`: into the timer wheel,
    /// or to the backend (or `unqueued`).
    #[inline(never)]
    fn start(&mut self, index: u32) {
        self.stats.submitted += 1;
        let slot = self.slots.slot(index);
        let handle = slot.handle;
        match slot.operation {
            Operation::Timeout { deadline_ns } => self.start_timer(index, deadline_ns),
            operation => {
                if handle != NO_HANDLE && !matches!(operation, Operation::Close { .. }) {
                    self.handles.op_started(handle);
                }
                self.enqueue(index);
            }
        }
        if tracing::enabled!(target: "ringio", tracing::Level::TRACE) {
            self.trace_submit(index);
        }
    }

    /// After the state is settled: a tracing subscriber that panics leaves
    /// the operation in flight, as submitted. Out of line, with what it
    /// needs, so that `start` keeps few registers.
    #[cold]
    #[inline(never)]
    fn trace_submit(&self, index: u32) {
        let operation = &self.slots.slot(index).operation;
        tracing::trace!(target: "ringio", op = operation.name(), slot = index, "submit");
    }

    /// Counts the operation just put in slot `index` and makes it the next
    /// member of the chain being built (`IO::chain`), instead of starting
    /// it: the chain starts its members in their turn.
    #[cold]
    #[inline(never)]
    fn start_chained(&mut self, index: u32) {
        self.stats.submitted += 1;
        let slot = self.slots.slot(index);
        let handle = slot.handle;
        if handle != NO_HANDLE && !matches!(slot.operation, Operation::Close { .. }) {
            self.handles.op_started(handle);
        }
        self.chain_join(index);
        if tracing::enabled!(target: "ringio", tracing::Level::TRACE) {
            let operation = &self.slots.slot(index).operation;
            tracing::trace!(target: "ringio", op = operation.name(), slot = index, "submit chained");
        }
    }

    /// Puts the timer in slot `index` into the wheel.
    #[inline(never)]
    fn start_timer(&mut self, index: u32, deadline_ns: u64) {
        self.slots.slot_mut(index).state = State::Timer;
        self.timers.insert(deadline_ns, self.slots.id(index));
        if let AnyBackend::Sim(sim) = &self.backend {
            sim.note_timer(deadline_ns);
        }
    }

    /// Takes a slot for an operation whose result is already known (bad
    /// input, or a cancel settled in user space). Its callback still runs
    /// from the loop, never from inside the submitting call.
    pub(crate) fn submit_completed(
        &mut self,
        operation: Operation,
        callback: Callback<C>,
        result: i32,
    ) -> CompletionId {
        let id = self.slots.alloc(operation, callback);
        self.stats.submitted += 1;
        self.slots.slot_mut(id.slot).state = State::Kernel;
        if self.chain_open() {
            // It fails when its turn in the chain comes, not before.
            self.chain_join_settled(id.slot, result);
            return id;
        }
        self.complete(id.slot, result);
        tracing::trace!(target: "ringio", op = operation.name(), slot = id.slot, result, "submit settled");
        id
    }

    /// Cancels `target`: settles it in user space when it has not reached
    /// the kernel, else asks the kernel.
    pub(crate) fn submit_cancel(
        &mut self,
        target: CompletionId,
        callback: Callback<C>,
    ) -> CompletionId {
        let operation = Operation::Cancel { target };
        if self.chain_open() {
            // A cancel acts at once; it cannot wait for its turn.
            return self.submit_completed(operation, callback, -libc::EINVAL);
        }
        let target_slot = self.slots.get(target);
        let is_close =
            target_slot.is_some_and(|slot| matches!(slot.operation, Operation::Close { .. }));
        match target_slot.map(|slot| slot.state) {
            // A close is not cancellable: an unfinished close would leave
            // the descriptor open with no handle to name it. It finishes
            // on its own.
            Some(State::Unqueued | State::Kernel | State::Held) if is_close => {
                self.submit_completed(operation, callback, -libc::EALREADY)
            }
            Some(State::Unqueued) => {
                let removed = self.unqueued.remove(self.slots.links(), target.slot);
                assert!(removed);
                self.complete(target.slot, -libc::ECANCELED);
                self.submit_completed(operation, callback, 0)
            }
            Some(State::Timer) => {
                self.complete(target.slot, -libc::ECANCELED);
                let slots = &self.slots;
                self.timers.cancelled(|id| timer_is_live(slots, id));
                self.submit_completed(operation, callback, 0)
            }
            // A chain member waiting for its turn: it and the rest of its
            // chain complete with ECANCELED.
            Some(State::Chained) => {
                self.complete(target.slot, -libc::ECANCELED);
                self.submit_completed(operation, callback, 0)
            }
            // The loop repeats an emulated multishot operation: a kernel
            // cancel can miss it between two rounds (its result already in,
            // not yet reaped), so the loop also stops repeating it. Its
            // next result is its last, and the cancel has done its part.
            Some(State::Kernel) if target_slot.is_some_and(is_emulated_multishot) => {
                let slot = self.slots.slot_mut(target.slot);
                slot.multishot = Multishot::Stopping;
                slot.not_plain = true;
                self.submit(operation, quiet_callback());
                self.submit_completed(operation, callback, 0)
            }
            Some(State::Kernel) => self.submit(operation, callback),
            // Finished (its callback may be about to run), stale, another
            // IO's or never issued.
            Some(State::Completed | State::Free | State::Held) | None => {
                self.submit_completed(operation, callback, -libc::ENOENT)
            }
        }
    }
}

/// The common case of a kernel completion, on borrows of just the table and
/// `completed`, so that the compiler keeps both in registers across the
/// reap loop: the one result of a one-shot operation, a success, with no
/// deadline and no handle to settle (an operation on a handle counts off
/// it, and may release a held close: `complete` does that), in no chain
/// (a member's end starts or cancels the next: `complete` does that too).
/// Returns whether it was that; if not, nothing changed, and
/// `on_raw_completion` takes it.
#[inline(always)]
fn complete_plain<C>(
    slots: &mut [Slot<C>],
    completed: &mut Fifo,
    chains: &[chain::ChainLink],
    raw: &RawCompletion,
) -> bool {
    if !settle_plain(slots, chains, raw) {
        return false;
    }
    completed.push(slots, CompletionId::slot_of(raw.user_data));
    true
}

/// `complete_plain` but for the push: the slot is `Completed`, with its
/// result, on no list; the caller queues it.
#[inline(always)]
fn settle_plain<C>(
    slots: &mut [Slot<C>],
    chains: &[chain::ChainLink],
    raw: &RawCompletion,
) -> bool {
    let index = CompletionId::slot_of(raw.user_data);
    // Out of range: the loop's own entries (`USER_DATA_INTERNAL`, whose
    // slot is u32::MAX), which `on_raw_completion` skips.
    let Some(slot) = slots.get_mut(index as usize) else {
        return false;
    };
    // A mismatch is left to `on_raw_completion`, whose asserts panic on
    // it: by then the entry is consumed (copied to the batch), so that a
    // panic here cannot leave it in the completion queue, settled, to be
    // read again by the next reap.
    if !slot.completes_plainly(raw) {
        return false;
    }
    debug_assert!(slot.plain_derived(is_chained(chains, index)));
    slot.state = State::Completed;
    slot.result = raw.result;
    true
}

/// Whether slot `index` is a member of a linked chain.
fn is_chained(chains: &[chain::ChainLink], index: u32) -> bool {
    chains
        .get(index as usize)
        .is_some_and(|link| *link != chain::ChainLink::NONE)
}

/// Whether `operation`, one-shot and on no handle, goes to the backend as
/// it is, in one entry: not a timer (the wheel), a close (two entries), a
/// pool's receive (a buffer picked first), an ftruncate (a syscall where
/// the kernel lacks the opcode) or a shot (never submitted). For a
/// constant operation this folds at compile time.
#[inline(always)]
fn pushed_as_it_is(operation: &Operation) -> bool {
    !matches!(
        operation,
        Operation::Timeout { .. }
            | Operation::Close { .. }
            | Operation::RecvMulti { .. }
            | Operation::Ftruncate { .. }
            | Operation::Shot { .. }
    )
}

/// Whether an emulated multishot operation goes on after `result`: an
/// accept after each socket, a receive after each non-empty read (a 0 is
/// the end of the stream, as the kernel ends a multishot receive).
fn shot_continues(operation: &Operation, result: i32) -> bool {
    match operation {
        Operation::RecvMulti { .. } => result > 0,
        _ => result >= 0,
    }
}

/// A callback that does nothing, for operations the loop submits itself.
fn quiet_callback<C>() -> Callback<C> {
    Callback::new(crate::ops::Done(|_: &mut IO<C>, _: &mut C, _| {}))
}

fn is_emulated_multishot<C>(slot: &crate::completion::Slot<C>) -> bool {
    matches!(slot.multishot, Multishot::Emulated | Multishot::Stopping)
}

fn timer_is_live<C>(slots: &Slots<C>, id: CompletionId) -> bool {
    slots.get(id).is_some_and(|slot| slot.state == State::Timer)
}

impl<C> Drop for IO<C> {
    /// Cancels every operation the kernel holds and waits (up to the
    /// configured `drop_drain_ns`) for the kernel to give each back. Callbacks
    /// do not run; the buffers of operations given back are freed. Any
    /// operation still in the kernel after that is leaked, buffer and all,
    /// so the kernel can never write into freed memory.
    ///
    /// A panic during the drain (a handler's `Drop`, a tracing subscriber)
    /// cannot break that: the completion table never frees a handler whose
    /// operation may still be in the kernel, even from its own `Drop`.
    fn drop(&mut self) {
        if self.straight_pending() {
            // Reaped but not run (a callback panicked, or replaced this
            // `IO`): settled and consumed from the completion queue, so that
            // the drain below reads only what is still the kernel's.
            self.spill_straight();
        }
        self.close_unclaimed_accepts();
        if self.backend.abandon() {
            // Nothing will touch the operations' memory again (the
            // simulator is the "kernel"): free them all now.
            for index in 0..self.slots.len() {
                if self.slots.slot(index).state == State::Kernel {
                    self.forget_given_back(index, -libc::ECANCELED);
                }
            }
            return;
        }
        let mut in_kernel = self.count_in_kernel();
        let mut next_to_cancel = 0;
        let deadline_ns = self.now_ns().saturating_add(self.drop_drain_ns);
        let mut batch = mem::take(&mut self.reap_batch);
        // One loop pushes cancels as the submission queue has room, submits,
        // and reaps: reaping is what makes room when the kernel pushes back
        // (EBUSY), so no step can wait on another forever.
        while in_kernel > 0 && self.now_ns() < deadline_ns {
            next_to_cancel = self.push_cancels_from(next_to_cancel);
            let remaining_ns = deadline_ns.saturating_sub(self.now_ns());
            let wait = Wait::Timeout(remaining_ns.min(10_000_000));
            if self.backend.submit_and_wait(wait).is_err() {
                break;
            }
            batch.clear();
            self.backend.reap(&mut batch, REAP_BATCH_MAX);
            for raw in &batch {
                let index = CompletionId::slot_of(raw.user_data);
                if raw.user_data == USER_DATA_INTERNAL {
                    continue;
                }
                if raw.flags & CQE_F_MORE != 0 {
                    // One more result of a multishot operation still in the kernel.
                    self.release_shot(index, raw.result, raw.flags);
                    continue;
                }
                self.forget_given_back(index, raw.result);
                in_kernel -= 1;
            }
        }
        if in_kernel > 0 {
            // The kernel may still write into a pool's buffers, too.
            self.leak_pools();
            self.leak_in_kernel(in_kernel);
        } else {
            self.unregister_pools();
            self.backend.release_files();
        }
    }
}

impl<C> IO<C> {
    fn count_in_kernel(&self) -> u32 {
        let slots = 0..self.slots.len();
        slots
            .filter(|&index| self.slots.slot(index).state == State::Kernel)
            .count() as u32
    }

    /// Queues a kernel cancel for each slot in the kernel, from slot `index`
    /// on, while the submission queue has room. Returns where it stopped.
    /// A close is left to finish: cancelling it could leave its descriptor open.
    fn push_cancels_from(&mut self, mut index: u32) -> u32 {
        while index < self.slots.len() {
            let slot = self.slots.slot(index);
            let is_close = matches!(slot.operation, Operation::Close { .. });
            if slot.state == State::Kernel && !is_close {
                let cancel = Operation::Cancel {
                    target: self.slots.id(index),
                };
                if !self.backend.push(USER_DATA_INTERNAL, &cancel) {
                    return index;
                }
            }
            index += 1;
        }
        index
    }

    /// The kernel gave this operation back during drop, with `result`: its
    /// handler and buffer can be freed. Its callback does not run; the slot
    /// is never reused. A socket an accept made is closed.
    fn forget_given_back(&mut self, index: u32, result: i32) {
        let slot = self.slots.slot_mut(index);
        assert_eq!(slot.state, State::Kernel);
        slot.state = State::Completed;
        slot.result = result;
        self.release_unrun(index);
        let slot = self.slots.slot_mut(index);
        // Last: this may run a user's Drop, which may panic.
        drop(mem::replace(&mut slot.callback, Callback::empty()));
    }

    /// Completions whose callbacks never ran may hold sockets that no handle
    /// names yet, or pool buffers: give them back, so that dropping an `IO`
    /// leaks no descriptor.
    fn close_unclaimed_accepts(&mut self) {
        for index in 0..self.slots.len() {
            let slot = self.slots.slot(index);
            if slot.state != State::Completed {
                continue;
            }
            self.release_unrun(index);
        }
    }

    /// Gives back what the result in slot `index` holds, once, because its
    /// callback will never run: the result is replaced so that nothing is
    /// given back twice.
    fn release_unrun(&mut self, index: u32) {
        let slot = self.slots.slot_mut(index);
        let result = mem::replace(&mut slot.result, -libc::ECANCELED);
        let flags = mem::take(&mut slot.flags);
        match slot.operation {
            Operation::Shot { parent } => self.release_shot(parent, result, flags),
            operation => self.release_result(operation, result, flags),
        }
    }

    fn leak_in_kernel(&mut self, in_kernel: u32) {
        // Leak first, then log: a tracing subscriber may panic.
        for index in 0..self.slots.len() {
            let slot = self.slots.slot_mut(index);
            if slot.state == State::Kernel {
                mem::replace(&mut slot.callback, Callback::empty()).leak();
            }
        }
        tracing::warn!(target: "ringio", operations = in_kernel, "IO dropped with operations the kernel did not give back; leaked their buffers");
    }
}

impl<C> fmt::Debug for IO<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IO")
            .field("backend", &self.backend.name())
            .field("stats", &self.stats())
            .field("unqueued", &self.unqueued.len())
            .field(
                "completed",
                &(self.completed.len() + self.straight_end.wrapping_sub(self.straight_next())),
            )
            .field("timers", &self.timers.len())
            .finish()
    }
}
