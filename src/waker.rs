//! Waking the loop from another thread: an eventfd that the loop watches.
//! TigerBeetle calls this an `event`, libxev an `Async`.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use crate::callback::{Callback, Handler};
use crate::completion::{CompletionId, Operation};
use crate::io::IO;
use crate::sys;

/// A handle that wakes an [`IO`] from any thread.
///
/// Create it with [`IO::open_waker`], arm it with [`IO::wait_for_wake`], and
/// call [`wake`](Waker::wake) from anywhere: the armed callback then runs on
/// the loop's thread, even if the loop is blocked in `run_for_ns`. Wakes
/// before the callback runs coalesce into one run, as with libxev's `Async`.
/// Clones share one eventfd, which closes when the last clone (and any armed
/// wait) is gone.
///
/// # Examples
///
/// ```
/// let mut io: ringio::IO<u32> = ringio::IO::new()?;
/// let waker = io.open_waker()?;
/// io.wait_for_wake(&waker, |_, wakes, result| { result.unwrap(); *wakes += 1 });
/// let remote = waker.clone();
/// std::thread::spawn(move || remote.wake().unwrap());
/// let mut wakes = 0;
/// io.run(&mut wakes)?; // blocks in the kernel until the other thread wakes it
/// assert_eq!(wakes, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

impl Waker {
    /// Wakes the loop. Thread-safe, non-blocking and allocation-free.
    ///
    /// # Errors
    ///
    /// Only what `write(2)` on an eventfd can return for a valid fd, which in
    /// practice is nothing.
    pub fn wake(&self) -> io::Result<()> {
        sys::eventfd_write(self.fd.as_raw_fd(), 1)
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

/// The armed wait: holds the eventfd open, and resets its counter on wake.
struct Woken<F> {
    waker: Waker,
    callback: F,
}

impl<C, F> Handler<C> for Woken<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        if result >= 0 {
            sys::eventfd_drain(self.waker.fd.as_raw_fd());
        }
        (self.callback)(io, ctx, crate::ops::unit_result(result))
    }
}

impl<C> IO<C> {
    /// Creates a [`Waker`] for this loop.
    ///
    /// # Errors
    ///
    /// What `eventfd(2)` returns: `EMFILE`, `ENFILE`, `ENOMEM`; and
    /// `EOPNOTSUPP` under the simulator, which has no other threads.
    pub fn open_waker(&mut self) -> io::Result<Waker> {
        if self.sim().is_some() {
            // Another thread's wake-up cannot be replayed by a seed.
            return Err(sys::errno(libc::EOPNOTSUPP));
        }
        let fd = sys::eventfd()?;
        // SAFETY: `fd` was just returned by eventfd(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd: Arc::new(fd) })
    }

    /// Runs `callback` on the loop's thread after the next [`Waker::wake`]
    /// (or at once, on the next pass, if a wake is already pending). One-shot:
    /// arm it again from the callback to keep listening. Cancellable.
    ///
    /// # Errors
    ///
    /// `ECANCELED` when cancelled.
    pub fn wait_for_wake<F>(&mut self, waker: &Waker, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let operation = Operation::Poll {
            fd: waker.fd.as_raw_fd(),
            events: libc::POLLIN as u32,
        };
        let handler = Woken {
            waker: waker.clone(),
            callback,
        };
        self.submit(operation, Callback::new(handler))
    }
}
