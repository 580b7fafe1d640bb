//! The backend contract.
//!
//! The loop core ([`crate::IO`]) owns the completion slots, the `unqueued` and
//! `completed` FIFOs and the timers. A backend only moves operations to and
//! from the kernel: it accepts an operation, submits and waits, and reports raw
//! results keyed by `user_data`. Writing the contract as a trait lets the
//! compiler hold every backend to the same shape.

use std::io;

use crate::completion::Operation;

pub(crate) mod io_uring;

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

/// One raw completion: whose it is and the kernel-style result.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawCompletion {
    pub(crate) user_data: u64,
    pub(crate) result: i32,
}

/// The most completions reaped into one batch: a bound on stack use and on
/// work between checks of the loop's deadline.
pub(crate) const REAP_BATCH_MAX: usize = 256;

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

    /// Submits everything queued, then waits as `wait` says. With
    /// `Wait::Never` and nothing to submit, may make no syscall. Never reports
    /// `EINTR`, `ETIME` or `EBUSY`: those are handled inside.
    fn submit_and_wait(&mut self, wait: Wait) -> io::Result<()>;

    /// Appends up to `max` completions to `batch`.
    fn reap(&mut self, batch: &mut Vec<RawCompletion>, max: usize);

    /// How many `io_uring_enter` (or equivalent) syscalls were made so far.
    fn syscalls(&self) -> u64;
}
