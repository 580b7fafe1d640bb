//! Zero-copy send: the byte count and the buffer come back together, only
//! once the kernel no longer reads the buffer; each buffer comes back whole
//! (the same allocation), so it can be reused at once. On every backend (a plain
//! send where the kernel has no zero-copy send), and on io_uring both ways.

#[macro_use]
mod util;

use ringio::{Config, IoBuf, IO};
use util::Backend;

conformance!(zero_copy_sends_hand_back_each_buffer_whole_and_in_order);

#[derive(Default)]
struct Seen {
    /// (which send, bytes sent, the buffer's address as it came back).
    sends: Vec<(usize, usize, usize)>,
    received: Vec<u8>,
}

/// Sends `messages[index..]` one after another with `send_zc`.
fn send_in_turn(
    io: &mut IO<Seen>,
    client: ringio::Handle,
    mut messages: Vec<Vec<u8>>,
    index: usize,
) {
    if index == messages.len() {
        return;
    }
    let message = std::mem::take(&mut messages[index]);
    io.send_zc(client, message, move |io, seen, result, buf| {
        seen.sends
            .push((index, result.expect("send_zc"), buf.stable_ptr() as usize));
        send_in_turn(io, client, messages, index + 1);
    });
}

/// Receives on `server` again and again, into `Seen::received`.
fn recv_on(io: &mut IO<Seen>, server: ringio::Handle) {
    io.recv(
        server,
        Vec::with_capacity(64 * 1024),
        move |io, seen, result, buf| {
            if result.is_ok_and(|count| count > 0) {
                seen.received.extend_from_slice(&buf);
                recv_on(io, server);
            }
        },
    );
}

fn zero_copy_sends_hand_back_each_buffer_whole_and_in_order(backend: Backend) {
    let mut configs = vec![Config::new()];
    if backend.is_io_uring() {
        configs.push(Config::new().emulate_kernel_features(true));
    }
    for config in configs {
        let mut io: IO<Seen> = backend.io_with(config);
        let mut seen = Seen::default();
        let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
        let messages: Vec<Vec<u8>> = (0..4)
            .map(|index| util::pattern(64 * 1024, index))
            .collect();
        let copies = messages.clone();
        let addresses: Vec<usize> = messages
            .iter()
            .map(|buf| buf.stable_ptr() as usize)
            .collect();
        // One send at a time, as on any stream: concurrent sends on one
        // socket may complete, and interleave, in any order.
        send_in_turn(&mut io, client, messages, 0);
        // Keep a receive armed until every send is back and all it sent is in.
        recv_on(&mut io, server);
        loop {
            io.run_for_ns(&mut seen, 1_000_000).unwrap();
            let sent: usize = seen.sends.iter().map(|&(_, count, _)| count).sum();
            if seen.sends.len() == 4 && seen.received.len() == sent {
                break;
            }
        }
        for (position, &(index, count, address)) in seen.sends.iter().enumerate() {
            assert_eq!(index, position, "callbacks in submission order");
            assert_eq!(address, addresses[index], "the same buffer comes back");
            assert!(count > 0);
        }
        // What arrived is what the sends said they sent, in order.
        let mut expected = Vec::new();
        for &(index, count, _) in &seen.sends {
            expected.extend_from_slice(&copies[index][..count]);
        }
        assert!(seen.received == expected);
        util::close_io(&mut io, &mut seen, client);
        util::close_io(&mut io, &mut seen, server);
    }
}
