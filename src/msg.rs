//! Vectored and message I/O: `readv`/`writev` at an offset, and
//! `send_msg`/`recv_msg` (with `send_to`/`recv_from`, their one-buffer
//! forms) with a peer address and, for `recv_msg`, room for control
//! messages.
//!
//! The kernel reads the `iovec` array, the `msghdr` and the address while
//! the operation is in flight, so they live in a [`Message`] the `IO` owns
//! and reuses: once the pool is warm, an operation allocates nothing. The
//! buffers themselves go in and come back as the one-buffer operations'
//! do, in a `Vec` the caller can reuse.
#![allow(unsafe_code)]

use std::io;

use crate::addr::Address;
use crate::buf::{self, IoBuf, IoBufMut};
use crate::callback::Handler;
use crate::completion::{CompletionId, Operation};
use crate::handle::Handle;
use crate::io::IO;
use crate::stable::Stable;
use crate::sys::{self, RawAddr};

/// The most buffers one vectored operation takes: Linux's `UIO_MAXIOV`.
/// More is `EINVAL`, as the kernel says.
pub const IOVECS_MAX: usize = 1024;

/// What a [`recv_msg`](IO::recv_msg) received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffers, in order. `0` on a stream means the
    /// peer closed its side; on a datagram socket, an empty datagram.
    pub bytes: usize,
    /// The sender: a datagram's source, `None` on a connected stream
    /// (whose peer [`peer_addr`](IO::peer_addr) tells) or from an unnamed
    /// Unix socket.
    pub peer: Option<Address>,
    /// The datagram was longer than the buffers: the rest is gone
    /// (`MSG_TRUNC`).
    pub truncated: bool,
    /// Control messages did not fit the control buffer (`MSG_CTRUNC`).
    pub control_truncated: bool,
}

/// What the kernel reads and writes besides the buffers: the header, the
/// peer's address, the `iovec` array and the control buffer.
pub(crate) struct Message {
    header: libc::msghdr,
    address: RawAddr,
    iovecs: Vec<libc::iovec>,
    /// The caller's control buffer, while a `recv_msg` is in flight.
    control: Vec<u8>,
}

/// An owned [`Message`] at a fixed address (see [`Stable`]).
pub(crate) struct MessageBox(Stable<Message>);

impl MessageBox {
    fn new() -> MessageBox {
        MessageBox(Stable::new(Message {
            // SAFETY: msghdr is plain old data; all-zero (null pointers,
            // zero lengths) is a valid value.
            header: unsafe { std::mem::zeroed() },
            address: RawAddr::zeroed(),
            iovecs: Vec::new(),
            control: Vec::new(),
        }))
    }

    fn get(&mut self) -> &mut Message {
        self.0.get_mut()
    }

    /// Points the header at this message's `iovecs`, and at its address
    /// (`name`: for sending, the address set; for receiving, room for one),
    /// and returns the header as the operation hands it to the kernel.
    ///
    /// The header and the address pointer are made from one borrow, last:
    /// borrowing the whole message again before the kernel is done would
    /// invalidate them (Stacked Borrows, which Miri checks).
    fn aim(&mut self, name: Name, control: Vec<u8>) -> *mut libc::msghdr {
        let message = self.get();
        message.control = control;
        let header = &mut message.header;
        header.msg_iov = message.iovecs.as_mut_ptr();
        header.msg_iovlen = message.iovecs.len();
        header.msg_flags = 0;
        (header.msg_name, header.msg_namelen) = match name {
            Name::None => (std::ptr::null_mut(), 0),
            Name::Send(address) => {
                message.address = address.to_raw();
                (message.address.as_mut_ptr().cast(), message.address.len)
            }
            Name::Recv => {
                message.address = RawAddr::zeroed();
                (message.address.as_mut_ptr().cast(), message.address.len)
            }
        };
        (header.msg_control, header.msg_controllen) = match message.control.capacity() {
            0 => (std::ptr::null_mut(), 0),
            room => (message.control.as_mut_ptr().cast(), room),
        };
        header
    }

    /// After a receive: the sender, the flags, and the control buffer with
    /// its length set to the bytes the kernel wrote.
    fn received(&mut self, bytes: usize) -> (Received, Vec<u8>) {
        let message = self.get();
        let header = &message.header;
        let peer = match header.msg_namelen {
            0 => None,
            len => {
                message.address.len = len;
                message.address.address().ok()
            }
        };
        let received = Received {
            bytes,
            peer: peer.filter(|peer| !matches!(peer, Address::Unix(u) if u.is_unnamed())),
            truncated: header.msg_flags & libc::MSG_TRUNC != 0,
            control_truncated: header.msg_flags & libc::MSG_CTRUNC != 0,
        };
        let control_len = header.msg_controllen.min(message.control.capacity());
        let mut control = std::mem::take(&mut message.control);
        // SAFETY: the kernel wrote `msg_controllen` bytes of control
        // messages at the start of the buffer, which is at most its capacity.
        unsafe { control.set_len(control_len) };
        (received, control)
    }

    /// The control buffer back, untouched, after a failed receive.
    fn take_control(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.get().control)
    }
}

/// The address a message carries.
enum Name {
    None,
    Send(Address),
    Recv,
}

/// Fills `iovecs` from the initialized bytes of `bufs` (for sending).
fn gather<B: IoBuf>(iovecs: &mut Vec<libc::iovec>, bufs: &[B]) {
    iovecs.clear();
    if bufs.len() > IOVECS_MAX {
        return; // refused before submission; keep the pooled list small
    }
    iovecs.extend(bufs.iter().map(|buf| libc::iovec {
        iov_base: buf.stable_ptr() as *mut libc::c_void,
        iov_len: buf.bytes_init(),
    }));
}

/// Fills `iovecs` from the whole capacity of `bufs` (for receiving).
fn scatter<B: IoBufMut>(iovecs: &mut Vec<libc::iovec>, bufs: &mut [B]) {
    iovecs.clear();
    if bufs.len() > IOVECS_MAX {
        return;
    }
    iovecs.extend(bufs.iter_mut().map(|buf| libc::iovec {
        iov_base: buf.stable_mut_ptr().cast(),
        iov_len: buf.bytes_total(),
    }));
}

/// The bytes the `count` iovecs at `iovecs` span: what a vectored read or
/// write asks for.
pub(crate) fn iovecs_len(iovecs: *const libc::iovec, count: u32) -> u64 {
    if count == 0 {
        return 0;
    }
    // SAFETY: `iovecs` is the array of an operation in flight, `count`
    // long, in its message, which its handler owns until the operation's
    // callback runs; nothing writes it meanwhile (the kernel only reads it).
    let iovecs = unsafe { std::slice::from_raw_parts(iovecs, count as usize) };
    iovecs.iter().map(|iovec| iovec.iov_len as u64).sum()
}

/// Marks the buffers a vectored receive filled: `count` bytes, in order.
fn mark_filled<B: IoBufMut>(bufs: &mut [B], mut count: usize) {
    for buf in bufs {
        let filled = count.min(buf.bytes_total());
        buf::mark_filled_by_kernel(buf, filled);
        count -= filled;
    }
}

/// `EINVAL` for a list the kernel would refuse; else 0.
fn refuse_iovecs(count: usize) -> i32 {
    if count > IOVECS_MAX {
        -libc::EINVAL
    } else {
        0
    }
}

/// A send or write, vectored or not (`bufs` is a `Vec` of buffers or one
/// buffer): owns what the kernel reads, and the message, until it is done.
struct Gathered<T, F> {
    bufs: T,
    message: MessageBox,
    callback: F,
}

impl<C, T, F> Handler<C> for Gathered<T, F>
where
    T: 'static,
    F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, T) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        io.messages.push(self.message);
        let result = sys::result_from_raw(result).map(|count| count as usize);
        (self.callback)(io, ctx, result, self.bufs)
    }
}

/// A vectored read: owns the buffers and the message.
struct Scattered<B, F> {
    bufs: Vec<B>,
    message: MessageBox,
    callback: F,
}

impl<C, B, F> Handler<C> for Scattered<B, F>
where
    B: IoBufMut,
    F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, Vec<B>) + 'static,
{
    fn complete(mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        io.messages.push(self.message);
        let result = sys::result_from_raw(result).map(|count| count as usize);
        if let Ok(count) = result {
            mark_filled(&mut self.bufs, count);
        }
        (self.callback)(io, ctx, result, self.bufs)
    }
}

/// A `recv_msg`: owns the buffers, and the control buffer in the message.
struct ReceivedMsg<B, F> {
    bufs: Vec<B>,
    message: MessageBox,
    callback: F,
}

impl<C, B, F> Handler<C> for ReceivedMsg<B, F>
where
    B: IoBufMut,
    F: FnOnce(&mut IO<C>, &mut C, io::Result<Received>, Vec<B>, Vec<u8>) + 'static,
{
    fn complete(mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        let (result, control) = match sys::result_from_raw(result) {
            Ok(count) => {
                mark_filled(&mut self.bufs, count as usize);
                let (received, control) = self.message.received(count as usize);
                (Ok(received), control)
            }
            Err(error) => (Err(error), self.message.take_control()),
        };
        io.messages.push(self.message);
        (self.callback)(io, ctx, result, self.bufs, control)
    }
}

/// A one-buffer receive that reports the sender.
struct ReceivedFrom<B, F> {
    buf: B,
    message: MessageBox,
    callback: F,
}

impl<C, B, F> Handler<C> for ReceivedFrom<B, F>
where
    B: IoBufMut,
    F: FnOnce(&mut IO<C>, &mut C, io::Result<(usize, Option<Address>)>, B) + 'static,
{
    fn complete(mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        let result = sys::result_from_raw(result).map(|count| {
            let count = count as usize;
            buf::mark_filled_by_kernel(&mut self.buf, count);
            (count, self.message.received(count).0.peer)
        });
        io.messages.push(self.message);
        (self.callback)(io, ctx, result, self.buf)
    }
}

impl<C> IO<C> {
    /// A message from the pool, or a new one while the pool is cold.
    fn message(&mut self) -> MessageBox {
        self.messages.pop().unwrap_or_else(MessageBox::new)
    }

    /// Writes the initialized bytes of `bufs`, in order, to `file` at byte
    /// `offset` (`pwritev(2)`), as one write: the count may be short, and
    /// then covers a prefix of the buffers. The buffers come back, on
    /// success and on error, in the `Vec` they came in.
    ///
    /// On a stream (a socket, a pipe) `offset` must be 0; prefer
    /// [`send_msg`](IO::send_msg) there.
    ///
    /// Backends: io_uring (`IORING_OP_WRITEV`), epoll (`pwritev`, at once
    /// for a file, on readiness for a stream), the simulator.
    ///
    /// # Errors
    ///
    /// As [`write`](IO::write), and `EINVAL` for more than [`IOVECS_MAX`]
    /// buffers or an `offset` above `i64::MAX`. An empty list, or buffers
    /// with nothing in them, write 0 bytes.
    pub fn writev<B, F>(
        &mut self,
        file: Handle,
        bufs: Vec<B>,
        offset: u64,
        callback: F,
    ) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, Vec<B>) + 'static,
    {
        let mut message = self.message();
        gather(&mut message.get().iovecs, &bufs);
        let header = message.aim(Name::None, Vec::new());
        let (iovecs, count) = iovec_parts(header);
        let refused = refuse_vectored(bufs.len(), offset);
        let callback = self.callback(Gathered {
            bufs,
            message,
            callback,
        });
        self.submit_on(file, refused, callback, |fd| Operation::Writev {
            fd,
            iovecs,
            count,
            offset,
        })
    }

    /// Reads from `file` at byte `offset` into `bufs`, filling each in
    /// order before the next (`preadv(2)`). The count is the total; each
    /// buffer comes back marked with what it holds (a `Vec<u8>` has its
    /// `len()` set), `0` meaning end of file.
    ///
    /// Backends: io_uring (`IORING_OP_READV`), epoll (`preadv`, at once
    /// for a file, on readiness for a stream), the simulator.
    ///
    /// # Errors
    ///
    /// As [`read`](IO::read), and `EINVAL` for no capacity at all, more than
    /// [`IOVECS_MAX`] buffers, or an `offset` above `i64::MAX`.
    pub fn readv<B, F>(
        &mut self,
        file: Handle,
        mut bufs: Vec<B>,
        offset: u64,
        callback: F,
    ) -> CompletionId
    where
        B: IoBufMut,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, Vec<B>) + 'static,
    {
        let mut message = self.message();
        scatter(&mut message.get().iovecs, &mut bufs);
        let header = message.aim(Name::None, Vec::new());
        let (iovecs, count) = iovec_parts(header);
        let mut refused = refuse_vectored(bufs.len(), offset);
        if bufs.iter().all(|buf| buf.bytes_total() == 0) {
            refused = -libc::EINVAL; // a 0 would read as end of file
        }
        let callback = self.callback(Scattered {
            bufs,
            message,
            callback,
        });
        self.submit_on(file, refused, callback, |fd| Operation::Readv {
            fd,
            iovecs,
            count,
            offset,
        })
    }

    /// Sends the initialized bytes of `bufs`, in order, as one message
    /// (`sendmsg(2)`), to `to` if given (an unconnected datagram socket
    /// needs one; a connected stream ignores it, as Linux does), without
    /// raising `SIGPIPE`. On a stream the count may be short, and then
    /// covers a prefix of the buffers: send the rest with
    /// [`Slice`](crate::Slice)s of them. A datagram goes whole or not at all.
    ///
    /// Backends: io_uring (`IORING_OP_SENDMSG`), epoll (`sendmsg` on
    /// readiness), the simulator (its TCP, and its packet network for UDP).
    ///
    /// # Errors
    ///
    /// As [`send`](IO::send), and `EINVAL` for more than [`IOVECS_MAX`]
    /// buffers; `EMSGSIZE` (a datagram too large), `EDESTADDRREQ` (no `to`
    /// on an unconnected datagram socket), `EAFNOSUPPORT` (`to` of another
    /// family), `ENOENT`/`ECONNREFUSED` (no Unix socket by that name). An
    /// empty message is a valid datagram; on a stream it sends 0 bytes.
    pub fn send_msg<B, F>(
        &mut self,
        socket: Handle,
        bufs: Vec<B>,
        to: Option<Address>,
        callback: F,
    ) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, Vec<B>) + 'static,
    {
        let mut message = self.message();
        gather(&mut message.get().iovecs, &bufs);
        let msg = message.aim(to.map_or(Name::None, Name::Send), Vec::new());
        let refused = refuse_iovecs(bufs.len());
        let callback = self.callback(Gathered {
            bufs,
            message,
            callback,
        });
        self.submit_on(socket, refused, callback, |fd| Operation::SendMsg {
            fd,
            msg,
        })
    }

    /// Receives one message into `bufs`, filling each in order before the
    /// next (`recvmsg(2)`), with the sender's address and the control
    /// messages (ancillary data, such as `SCM_RIGHTS` or `IP_PKTINFO`) that
    /// fit `control`'s capacity. The callback gets what was received, the
    /// buffers, and `control` with its length set to the control bytes
    /// written (pass `Vec::new()` for none).
    ///
    /// Backends: io_uring (`IORING_OP_RECVMSG`), epoll (`recvmsg` on
    /// readiness), the simulator (which sends no control messages: its
    /// control buffer always comes back empty).
    ///
    /// # Errors
    ///
    /// As [`recv`](IO::recv): `EINVAL` for buffers with no capacity at all
    /// or more than [`IOVECS_MAX`] of them.
    pub fn recv_msg<B, F>(
        &mut self,
        socket: Handle,
        mut bufs: Vec<B>,
        control: Vec<u8>,
        callback: F,
    ) -> CompletionId
    where
        B: IoBufMut,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<Received>, Vec<B>, Vec<u8>) + 'static,
    {
        let mut message = self.message();
        scatter(&mut message.get().iovecs, &mut bufs);
        let msg = message.aim(Name::Recv, control);
        let mut refused = refuse_iovecs(bufs.len());
        if bufs.iter().all(|buf| buf.bytes_total() == 0) {
            refused = -libc::EINVAL;
        }
        let callback = self.callback(ReceivedMsg {
            bufs,
            message,
            callback,
        });
        self.submit_on(socket, refused, callback, |fd| Operation::RecvMsg {
            fd,
            msg,
        })
    }

    /// Sends the initialized bytes of `buf` to `to`: one datagram on a UDP
    /// or Unix datagram socket (`sendto(2)`, through `sendmsg`).
    ///
    /// # Errors
    ///
    /// As [`send_msg`](IO::send_msg).
    pub fn send_to<B, F>(
        &mut self,
        socket: Handle,
        buf: B,
        to: impl Into<Address>,
        callback: F,
    ) -> CompletionId
    where
        B: IoBuf,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<usize>, B) + 'static,
    {
        let mut message = self.message();
        gather(&mut message.get().iovecs, std::slice::from_ref(&buf));
        let msg = message.aim(Name::Send(to.into()), Vec::new());
        let callback = self.callback(Gathered {
            bufs: buf,
            message,
            callback,
        });
        self.submit_on(socket, 0, callback, |fd| Operation::SendMsg { fd, msg })
    }

    /// Receives one datagram into `buf`, with its sender (`recvfrom(2)`,
    /// through `recvmsg`). A datagram longer than `buf` is cut to fit, the
    /// rest discarded; use [`recv_msg`](IO::recv_msg) to learn that it was.
    /// The sender is `None` where the message names none: on a connected
    /// stream (ask [`peer_addr`](IO::peer_addr)), or from an unnamed Unix
    /// socket, which cannot be answered.
    ///
    /// # Errors
    ///
    /// As [`recv`](IO::recv).
    pub fn recv_from<B, F>(&mut self, socket: Handle, mut buf: B, callback: F) -> CompletionId
    where
        B: IoBufMut,
        F: FnOnce(&mut IO<C>, &mut C, io::Result<(usize, Option<Address>)>, B) + 'static,
    {
        let mut message = self.message();
        scatter(&mut message.get().iovecs, std::slice::from_mut(&mut buf));
        let msg = message.aim(Name::Recv, Vec::new());
        let refused = if buf.bytes_total() == 0 {
            -libc::EINVAL
        } else {
            0
        };
        let callback = self.callback(ReceivedFrom {
            buf,
            message,
            callback,
        });
        self.submit_on(socket, refused, callback, |fd| Operation::RecvMsg {
            fd,
            msg,
        })
    }
}

/// The `iovec` array a vectored read or write hands the kernel, as the
/// header [`MessageBox::aim`] returned points at it.
fn iovec_parts(header: *mut libc::msghdr) -> (*const libc::iovec, u32) {
    // SAFETY: `header` was just returned by `aim`, points into a live
    // message, and nothing else references the header now.
    let header = unsafe { &*header };
    (header.msg_iov.cast_const(), header.msg_iovlen as u32)
}

/// `EINVAL` for a vectored read or write the kernel would refuse; else 0.
fn refuse_vectored(count: usize, offset: u64) -> i32 {
    if offset > i64::MAX as u64 {
        -libc::EINVAL
    } else {
        refuse_iovecs(count)
    }
}
