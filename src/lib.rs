//! ringio: single-threaded, callback-driven, completion-based I/O on
//! io_uring, modeled on TigerBeetle's `IO`.
//!
//! # The layers
//!
//! **Operations.** [`IO`] offers typed operations: [`nop`](IO::nop),
//! [`accept`](IO::accept), [`connect`](IO::connect), [`recv`](IO::recv),
//! [`send`](IO::send), positional [`read`](IO::read) and [`write`](IO::write),
//! [`fsync`](IO::fsync)/[`fdatasync`](IO::fdatasync), [`close`](IO::close),
//! [`timeout`](IO::timeout), [`cancel`](IO::cancel), [`poll`](IO::poll) and
//! [`wait_for_wake`](IO::wait_for_wake). Each takes its callback last and
//! returns a [`CompletionId`]; the outcome, errors included, arrives only in the
//! callback. Multishot operations ([`accept_multi`](IO::accept_multi), and
//! [`recv_multi`](IO::recv_multi) from a [`BufPool`]) call an `FnMut` once per
//! result until one last call. Any operation can be given a
//! [`deadline`](IO::deadline). The file system's own operations go through
//! the loop too: [`openat`](IO::openat), [`statx`](IO::statx),
//! [`fallocate`](IO::fallocate), [`ftruncate`](IO::ftruncate),
//! [`renameat`](IO::renameat), [`unlinkat`](IO::unlinkat) and
//! [`mkdirat`](IO::mkdirat), with `fsync` of a directory handle.
//!
//! **Descriptors.** Sockets, files and directories are owned by the `IO` and
//! named by a [`Handle`]: [`open_socket`](IO::open_socket),
//! [`listen`](IO::listen), [`accept`](IO::accept), [`openat`](IO::openat)
//! and [`open_file`](IO::open_file) make them, [`close`](IO::close) ends them.
//! No safe function takes a raw descriptor, so none can close or use one that
//! other code owns. Foreign descriptors come in through [`adopt`](IO::adopt),
//! go back through [`release`](IO::release), and are lent out for socket
//! options through [`as_fd`](IO::as_fd). A closed, stale or foreign handle
//! gets `EBADF` without reaching the kernel.
//!
//! **Completions.** Each operation occupies a slot in a completion table
//! (index, 64-bit generation and the `IO`'s tag, so a stale or foreign id
//! never names another operation). Its
//! callback, and everything it owns, is stored inline in the slot: no heap
//! allocation per operation in steady state.
//!
//! **The two FIFOs.** An operation that finds the submission queue full waits
//! on *unqueued* and goes first on the next flush. A completed operation waits
//! on *completed* until the loop runs its callback. Both are intrusive FIFOs
//! from the `fifo` crate, linked through the slots themselves.
//!
//! **The loop.** [`tick`](IO::tick) never blocks. [`run_for_ns`](IO::run_for_ns)
//! waits until an absolute CLOCK_MONOTONIC deadline. [`run`](IO::run) runs until
//! nothing is in flight. Callbacks run only from these, on a snapshot of
//! *completed*, so work a callback submits starts on the next pass, never
//! recursively. Timers live on a user-space timing wheel; only the earliest
//! deadline reaches the kernel, as the wait timeout.
//!
//! **The backend** turns operations into io_uring submission entries and
//! reaps their results. `EINTR` is resubmitted; a full queue parks work on
//! *unqueued*; `EBUSY` is handled by reaping, then retrying.
//!
//! # Safety contract
//!
//! The API is safe. The kernel may write into a buffer until its completion is
//! reaped, so every buffer is owned by the `IO` while its operation is in
//! flight and handed back to the callback, on success and on error (see
//! [`IoBuf`]). Dropping an `IO` cancels what the kernel holds and waits for it;
//! what the kernel does not give back in time is leaked, never freed, even if
//! a handler's `Drop` or a tracing subscriber panics meanwhile. A callback
//! that panics unwinds out of the loop call and leaves the `IO` usable. See
//! docs/safety.md.
//!
//! # Quick start
//!
//! ```
//! use ringio::IO;
//!
//! #[derive(Default)]
//! struct App {
//!     echoed: Vec<u8>,
//! }
//!
//! let mut io: IO<App> = IO::new()?;
//! let listener = io.listen("127.0.0.1:0".parse().unwrap(), 128)?;
//! let address = io.local_addr(listener)?;
//! let client = io.open_socket(address)?;
//!
//! // Server: accept one connection, then echo one message back.
//! io.accept(listener, |io, _app, result| {
//!     let peer = result.expect("accept");
//!     io.recv(peer, Vec::with_capacity(64), move |io, _app, result, buf| {
//!         assert!(result.expect("recv") > 0);
//!         io.send(peer, buf, |_io, _app, result, _buf| {
//!             result.expect("send");
//!         });
//!     });
//! });
//! // Client: connect, send "hello", read the echo.
//! io.connect(client, address, move |io, _app, result| {
//!     result.expect("connect");
//!     io.send(client, &b"hello"[..], move |io, _app, result, _buf| {
//!         assert_eq!(result.expect("send"), 5);
//!         io.recv(client, Vec::with_capacity(64), |_io, app, result, buf| {
//!             assert_eq!(result.expect("recv"), 5);
//!             app.echoed = buf;
//!         });
//!     });
//! });
//!
//! let mut app = App::default();
//! io.run(&mut app)?;
//! assert_eq!(app.echoed, b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod addr;
mod backend;
mod buf;
mod callback;
mod completion;
mod config;
mod file;
mod fixed;
mod fs;
mod handle;
mod io;
mod msg;
mod multishot;
mod net;
mod ops;
mod pool;
pub mod sim;
mod slice;
mod stable;
mod sys;
mod timer;
mod unix;
mod waker;

pub use addr::{Address, UnixAddr};
pub use backend::select::{BackendKind, BACKEND_ENV};
pub use buf::{AlignedBuf, IoBuf, IoBufMut};
pub use callback::INLINE_BYTES;
pub use completion::CompletionId;
pub use config::Config;
pub use file::FileOptions;
pub use fixed::{FixedBuf, FixedBufs};
pub use fs::{DirectIoAlign, FallocateFlags, FileKind, FileStat, RenameFlags, UnlinkFlags};
pub use handle::Handle;
pub use io::{Stats, IO};
pub use msg::{Received, IOVECS_MAX};
pub use multishot::Flow;
pub use net::SocketOption;
pub use ops::{PollEvents, Shutdown, BUFFER_LIMIT};
pub use pool::{BufPool, PoolBuf, POOL_BUFFERS_MAX};
pub use slice::{IoBufExt, Slice};
pub use unix::SocketType;
pub use waker::Waker;

/// The size in bytes of one completion slot: the bookkeeping per operation.
pub const COMPLETION_SLOT_BYTES: usize = std::mem::size_of::<completion::Slot<()>>();

// The slot must stay small: it is the per-operation memory cost.
const _: () = assert!(COMPLETION_SLOT_BYTES <= 128);
