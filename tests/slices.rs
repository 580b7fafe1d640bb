//! The slice type resumes partial sends and partial receives without a copy:
//! one buffer each way, handed to the kernel again and again as the window
//! of what is left. On every backend.

#[macro_use]
mod util;

use ringio::{Handle, IoBuf, IoBufExt, Slice, IO};
use util::Backend;

conformance!(a_megabyte_goes_through_slices_of_one_buffer_each_way);

const BYTES: usize = 1 << 20;

#[derive(Default)]
struct Transfer {
    sends: u32,
    recvs: u32,
    sent: Option<Vec<u8>>,
    received: Option<Vec<u8>>,
}

/// Sends the window, then whatever of the buffer is left after it.
fn send_rest(io: &mut IO<Transfer>, socket: Handle, window: Slice<Vec<u8>>) {
    io.send(socket, window, move |io, transfer, result, window| {
        let offset = window.begin() + result.expect("send");
        let buf = window.into_inner();
        transfer.sends += 1;
        if offset < buf.len() {
            send_rest(io, socket, buf.slice(offset..));
        } else {
            transfer.sent = Some(buf);
        }
    });
}

/// Receives into what is left of `buf`'s capacity, until it is full.
fn recv_rest(io: &mut IO<Transfer>, socket: Handle, window: Slice<Vec<u8>>) {
    io.recv(socket, window, move |io, transfer, result, window| {
        let count = result.expect("recv");
        assert!(count > 0, "the peer does not close before the end");
        let buf = window.into_inner();
        transfer.recvs += 1;
        // The Vec's len counts every byte received so far.
        if buf.len() < BYTES {
            let filled = buf.len();
            recv_rest(io, socket, buf.slice(filled..));
        } else {
            transfer.received = Some(buf);
        }
    });
}

fn a_megabyte_goes_through_slices_of_one_buffer_each_way(backend: Backend) {
    let mut io: IO<Transfer> = backend.io();
    let mut transfer = Transfer::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut transfer);
    let data = util::pattern(BYTES, 3);
    let outbox = data.clone();
    let outbox_address = outbox.stable_ptr();
    send_rest(&mut io, client, outbox.slice(..));
    let inbox = Vec::with_capacity(BYTES);
    let inbox_address = inbox.stable_ptr();
    recv_rest(&mut io, server, inbox.slice(..));
    while transfer.sent.is_none() || transfer.received.is_none() {
        io.run_for_ns(&mut transfer, 1_000_000).unwrap();
    }
    let received = transfer.received.take().unwrap();
    assert!(received == data, "every byte, in order");
    assert_eq!(
        received.stable_ptr(),
        inbox_address,
        "one buffer, never copied"
    );
    let sent = transfer.sent.take().unwrap();
    assert_eq!(sent.stable_ptr(), outbox_address);
    // A megabyte does not fit the socket buffers at once: the windows did
    // the resuming.
    assert!(transfer.recvs > 1, "{} receives", transfer.recvs);
    util::close_io(&mut io, &mut transfer, client);
    util::close_io(&mut io, &mut transfer, server);
}
