//! Multishot operations: one submission, a callback per result, until a
//! last result says the stream ended.
//!
//! On io_uring (Linux 5.19 and later for accept) the kernel repeats the
//! operation and flags each completion that more will follow
//! (`IORING_CQE_F_MORE`). Elsewhere (epoll, the simulator, older kernels) the
//! loop repeats a one-shot operation after each success. Both keep the same
//! contract, so application code cannot tell them apart:
//!
//! - the callback is an `FnMut`, called once per result in completion order,
//!   with `more == true`, from the loop, never inline;
//! - exactly one last call has `more == false`: an error (`ECANCELED` after
//!   a cancel or a [`Flow::Stop`], or the operation's own), or a result the
//!   kernel posted as the end of the stream. After it, the operation is over;
//!   submit it again to go on (re-arm);
//! - results already produced when a stop or cancel comes are still
//!   delivered, so nothing the kernel accepted is lost.

use std::io;

use crate::callback::{Callback, RawShot, ShotHandler};
use crate::completion::{CompletionId, Operation};
use crate::handle::Handle;
use crate::io::IO;
use crate::pool::{self, BufPool, PoolBuf};
use crate::sys::{self, Fd};

/// What a multishot callback wants after this result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep the operation going.
    Continue,
    /// End it: the operation is cancelled, and its last call follows (with
    /// `ECANCELED`, or a result already on its way). The same as
    /// [`IO::cancel`] on its id.
    Stop,
}

/// A multishot accept: each result is a new socket, taken into the `IO`'s
/// table before the callback sees it.
struct AcceptedMany<F>(F);

impl<C, F> ShotHandler<C> for AcceptedMany<F>
where
    F: FnMut(&mut IO<C>, &mut C, io::Result<Handle>, bool) -> Flow + 'static,
{
    fn shot(&mut self, io: &mut IO<C>, ctx: &mut C, shot: RawShot) -> Flow {
        let socket = sys::result_from_raw(shot.result).map(|fd| io.own_new_fd(fd as Fd));
        (self.0)(io, ctx, socket, shot.more)
    }
}

/// A multishot receive: each result is a buffer of the pool, holding the
/// bytes received.
struct ReceivedMany<F> {
    pool: u16,
    callback: F,
}

impl<C, F> ShotHandler<C> for ReceivedMany<F>
where
    F: FnMut(&mut IO<C>, &mut C, io::Result<PoolBuf>, bool) -> Flow + 'static,
{
    fn shot(&mut self, io: &mut IO<C>, ctx: &mut C, shot: RawShot) -> Flow {
        let bid = pool::buffer_of(shot.flags);
        // A refused call (a foreign pool, a stale handle) names no pool of
        // this IO: its error needs none.
        let buf = if shot.result < 0 && bid.is_none() {
            Err(sys::errno(-shot.result))
        } else {
            let pool = &io.pools[usize::from(self.pool)];
            match (shot.result, bid) {
                (result, Some(bid)) if result < 0 => {
                    pool.give_back(bid);
                    Err(sys::errno(-result))
                }
                (0, None) => Ok(pool.take(None, 0)),
                (count, Some(bid)) => Ok(pool.take(Some(bid), count as usize)),
                // Bytes with no buffer named: the kernel broke its contract.
                (_, None) => Err(sys::errno(libc::EIO)),
            }
        };
        (self.callback)(io, ctx, buf, shot.more)
    }
}

impl<C> IO<C> {
    /// Receives on `socket` until stopped, into buffers of `pool` that are
    /// taken only when data arrives: the callback runs once per receive
    /// with a [`PoolBuf`] holding the bytes and `more == true`, and once
    /// more, last, with `more == false` (see [`accept_multi`](IO::accept_multi)
    /// for the contract). A last `Ok` with an empty buffer is the end of the
    /// stream. Dropping a `PoolBuf` gives its buffer back to the pool.
    ///
    /// When the pool runs dry, the stream ends with `ENOBUFS`, as the
    /// kernel ends it: give buffers back (drop the `PoolBuf`s) and call
    /// `recv_multi` again to go on. No data is lost meanwhile; it waits in
    /// the socket.
    ///
    /// Backends: io_uring (natively from Linux 6.0, with a registered
    /// buffer ring); epoll, the simulator and io_uring without buffer rings
    /// emulate it: wait for readiness, take a buffer, receive into it.
    ///
    /// # Errors
    ///
    /// In the last call: `ENOBUFS` (the pool is dry), `ECANCELED` (stopped,
    /// cancelled, or the socket closed), `EINVAL` (a pool of another `IO`),
    /// `ECONNRESET`, `EBADF`, `ENOTSOCK`, `ENOTCONN`.
    pub fn recv_multi<F>(&mut self, socket: Handle, pool: BufPool, callback: F) -> CompletionId
    where
        F: FnMut(&mut IO<C>, &mut C, io::Result<PoolBuf>, bool) -> Flow + 'static,
    {
        let (refused, native) = match self.pool(pool) {
            Some(found) => (0, self.multishot_native() && found.is_native()),
            None => (-libc::EINVAL, false),
        };
        let index = if refused == 0 { pool.index } else { 0 };
        let handler = ReceivedMany {
            pool: index,
            callback,
        };
        let callback = self.shot_callback(handler);
        self.submit_multishot_on(socket, refused, native, callback, |fd| {
            Operation::RecvMulti { fd, pool: index }
        })
    }

    /// Accepts connections on `listener` until stopped: the callback runs
    /// once per connection with its new socket's [`Handle`] and
    /// `more == true`, and once more, last, with `more == false` (see the
    /// [module docs](crate::Flow) for the contract). Return [`Flow::Stop`]
    /// or cancel the returned id to end it.
    ///
    /// Backends: io_uring (natively from Linux 5.19, where the kernel
    /// repeats the accept); epoll, the simulator and older kernels emulate
    /// it with one accept after another, with the same callbacks.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringio::{Flow, IO};
    /// let mut io: IO<Vec<ringio::Handle>> = IO::new()?;
    /// let listener = io.listen("127.0.0.1:0".parse().unwrap(), 128)?;
    /// let address = io.local_addr(listener)?;
    /// io.accept_multi(listener, |_, accepted, result, more| {
    ///     if more {
    ///         accepted.push(result.expect("accept"));
    ///     }
    ///     if accepted.len() == 2 { Flow::Stop } else { Flow::Continue }
    /// });
    /// let clients = [std::net::TcpStream::connect(address)?, std::net::TcpStream::connect(address)?];
    /// let mut accepted = Vec::new();
    /// io.run(&mut accepted)?;
    /// assert_eq!(accepted.len(), 2);
    /// # drop(clients);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// In the last call: `ECANCELED` (stopped or cancelled, or the listener
    /// closed), `EBADF`, `ENOTSOCK`, `EINVAL` (not listening), and what
    /// `accept(2)` returns, such as `EMFILE`/`ENFILE` (out of descriptors; the
    /// stream ends, so that a server can shed load and re-arm).
    pub fn accept_multi<F>(&mut self, listener: Handle, callback: F) -> CompletionId
    where
        F: FnMut(&mut IO<C>, &mut C, io::Result<Handle>, bool) -> Flow + 'static,
    {
        let callback = self.shot_callback(AcceptedMany(callback));
        let native = self.multishot_native();
        self.submit_multishot_on(listener, 0, native, callback, |fd| Operation::AcceptMulti {
            fd,
        })
    }

    /// Stores a multishot handler, counting it in `Stats::callbacks_boxed`
    /// when it is too large to be stored inline.
    fn shot_callback<H: ShotHandler<C>>(&mut self, handler: H) -> Callback<C> {
        if !crate::callback::fits_inline::<H>() {
            self.count_boxed();
        }
        Callback::new_shot(handler)
    }
}
