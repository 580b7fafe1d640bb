//! Vectored and message I/O, and UDP: `readv`/`writev` at an offset,
//! `send_msg`/`recv_msg` with gathered and scattered buffers, `send_to`/
//! `recv_from` on datagram sockets. On every backend, the kernel's answers
//! being the reference for the simulator's.

#[macro_use]
mod util;

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use ringio::{
    Address, FileOptions, Handle, IoBufExt, Received, Slice, SocketOption, IO, IOVECS_MAX,
};
use util::Backend;

conformance!(
    writev_then_readv_round_trips_at_an_offset,
    readv_past_the_end_of_a_file_is_zero,
    send_msg_gathers_and_recv_msg_scatters_on_a_stream,
    vectored_sends_with_short_writes_resume_with_slices,
    bad_vectored_input_is_einval,
    udp_send_to_and_recv_from_carry_the_peer,
    udp_datagrams_keep_their_boundaries_and_truncate,
    udp_connect_sets_the_default_peer,
    udp_datagrams_over_the_size_limit_are_emsgsize,
    udp_send_without_a_destination_is_edestaddrreq,
);

fn errno<T>(result: &io::Result<T>) -> Option<i32> {
    result.as_ref().err().and_then(|error| error.raw_os_error())
}

/// Runs `io` until `done` says so (or fails after many passes).
fn run_until<C>(io: &mut IO<C>, ctx: &mut C, mut done: impl FnMut(&C) -> bool) {
    for _ in 0..100_000 {
        if done(ctx) {
            return;
        }
        io.run_for_ns(ctx, 1_000_000).unwrap();
    }
    panic!("the loop never got there");
}

fn open_rw(io: &mut IO<()>, scratch: &util::Scratch, name: &str) -> Handle {
    let options = FileOptions::new().read(true).write(true).create(true);
    io.open_file(scratch.path(name), options).unwrap()
}

fn writev_then_readv_round_trips_at_an_offset(backend: Backend) {
    let scratch = util::Scratch::new(backend, "writev");
    let mut io: IO<()> = backend.io();
    let file = open_rw(&mut io, &scratch, "f");
    let bufs: Vec<Vec<u8>> = vec![
        b"hello ".to_vec(),
        Vec::new(),
        b"vectored ".to_vec(),
        b"world".to_vec(),
    ];
    let written = Rc::new(RefCell::new(None));
    let slot = Rc::clone(&written);
    io.writev(file, bufs, 10, move |_, _, result, bufs| {
        *slot.borrow_mut() = Some((result.unwrap(), bufs));
    });
    io.run(&mut ()).unwrap();
    let (count, bufs) = written.borrow_mut().take().unwrap();
    assert_eq!(count, 20);
    assert_eq!(bufs[2], b"vectored ", "the buffers come back in order");
    let read = Rc::new(RefCell::new(None));
    let slot = Rc::clone(&read);
    let into = vec![
        Vec::with_capacity(4),
        Vec::with_capacity(0),
        Vec::with_capacity(100),
    ];
    io.readv(file, into, 8, move |_, _, result, bufs| {
        *slot.borrow_mut() = Some((result.unwrap(), bufs));
    });
    io.run(&mut ()).unwrap();
    let (count, bufs) = read.borrow_mut().take().unwrap();
    assert_eq!(count, 22, "2 bytes of the hole, then 20 written");
    assert_eq!(bufs[0], b"\0\0he", "the first buffer fills first");
    assert!(bufs[1].is_empty());
    assert_eq!(bufs[2], b"llo vectored world");
}

fn readv_past_the_end_of_a_file_is_zero(backend: Backend) {
    let scratch = util::Scratch::new(backend, "readv-eof");
    let mut io: IO<()> = backend.io();
    let file = open_rw(&mut io, &scratch, "f");
    let result = Rc::new(RefCell::new(None));
    let slot = Rc::clone(&result);
    io.readv(
        file,
        vec![Vec::with_capacity(8), Vec::with_capacity(8)],
        4096,
        move |_, _, r, bufs| {
            assert!(bufs.iter().all(Vec::is_empty));
            *slot.borrow_mut() = Some(r.unwrap());
        },
    );
    io.run(&mut ()).unwrap();
    assert_eq!(result.borrow_mut().take(), Some(0));
}

fn send_msg_gathers_and_recv_msg_scatters_on_a_stream(backend: Backend) {
    #[derive(Default)]
    struct Seen {
        sent: Option<usize>,
        received: Vec<u8>,
        peers: Vec<Option<Address>>,
    }
    let mut io: IO<Seen> = backend.io();
    let mut seen = Seen::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    let bufs = vec![b"one ".to_vec(), b"two ".to_vec(), b"three".to_vec()];
    io.send_msg(client, bufs, None, |_, seen, result, _| {
        seen.sent = Some(result.unwrap())
    });
    run_until(&mut io, &mut seen, |seen| seen.sent.is_some());
    assert_eq!(seen.sent, Some(13));
    while seen.received.len() < 13 {
        let into = vec![Vec::with_capacity(3), Vec::with_capacity(64)];
        let before = seen.received.len();
        io.recv_msg(
            server,
            into,
            Vec::new(),
            |_, seen, result, bufs, control| {
                let received: Received = result.unwrap();
                assert!(control.is_empty() && !received.truncated);
                let total: usize = bufs.iter().map(Vec::len).sum();
                assert_eq!(total, received.bytes);
                seen.received.extend(bufs.concat());
                seen.peers.push(received.peer);
            },
        );
        run_until(&mut io, &mut seen, |seen| seen.received.len() > before);
    }
    assert_eq!(seen.received, b"one two three");
    assert!(
        seen.peers.iter().all(Option::is_none),
        "a stream names no sender per message"
    );
}

#[derive(Default)]
struct Streamed {
    sent: usize,
    short_sends: usize,
    pending: Option<Vec<Slice<Vec<u8>>>>,
    received: Vec<u8>,
    eof: bool,
}

/// Sends 16 buffers of 64 KiB with `send_msg`, resuming each short send
/// with slices of what is left (no copy), while the peer reads slowly.
fn vectored_sends_with_short_writes_resume_with_slices(backend: Backend) {
    const PIECE: usize = 64 * 1024;
    let data = util::pattern(16 * PIECE, 7);
    let mut io: IO<Streamed> = backend.io();
    let mut seen = Streamed::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    // Small kernel buffers, so that the kernel's sends come back short as
    // the simulator's do (its buffers are `NetworkOptions::buffer_bytes`).
    io.set_option(client, SocketOption::SendBufferBytes(32 * 1024))
        .unwrap();
    io.set_option(server, SocketOption::RecvBufferBytes(32 * 1024))
        .unwrap();
    let pieces = data.chunks(PIECE).map(|chunk| chunk.to_vec().slice(..));
    seen.pending = Some(pieces.collect());
    read_slowly(&mut io, server);
    while seen.sent < data.len() {
        let bufs = seen.pending.take().unwrap();
        io.send_msg(client, bufs, None, |_, seen, result, bufs| {
            let count = result.unwrap();
            let left: usize = bufs.iter().map(|slice| slice.end() - slice.begin()).sum();
            if count < left {
                seen.short_sends += 1;
            }
            seen.sent += count;
            seen.pending = Some(advance(bufs, count));
        });
        run_until(&mut io, &mut seen, |seen| seen.pending.is_some());
    }
    util::close_io(&mut io, &mut seen, client);
    run_until(&mut io, &mut seen, |seen| seen.eof);
    assert_eq!(seen.received.len(), data.len());
    assert!(seen.received == data, "every byte once, in order");
    assert!(seen.short_sends > 0, "small buffers made some sends short");
}

/// Receives on `socket` until the end of the stream, 4 KiB at a time.
fn read_slowly(io: &mut IO<Streamed>, socket: Handle) {
    io.recv(
        socket,
        Vec::with_capacity(4096),
        move |io, seen, result, buf| {
            if result.unwrap() == 0 {
                seen.eof = true;
            } else {
                seen.received.extend_from_slice(&buf);
                read_slowly(io, socket);
            }
        },
    );
}

/// What is left of `bufs` after `count` bytes of them were sent: the
/// buffers wholly sent dropped, the one partly sent sliced, no copy.
fn advance(bufs: Vec<Slice<Vec<u8>>>, mut count: usize) -> Vec<Slice<Vec<u8>>> {
    let mut left = Vec::with_capacity(bufs.len());
    for slice in bufs {
        let len = slice.end() - slice.begin();
        if count >= len {
            count -= len;
            continue;
        }
        let begin = slice.begin() + count;
        let end = slice.end();
        count = 0;
        left.push(slice.into_inner().slice(begin..end));
    }
    left
}

fn bad_vectored_input_is_einval(backend: Backend) {
    let scratch = util::Scratch::new(backend, "vectored-einval");
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    let file = {
        let options = FileOptions::new().read(true).write(true).create(true);
        io.open_file(scratch.path("f"), options).unwrap()
    };
    let too_many: Vec<Vec<u8>> = (0..=IOVECS_MAX).map(|_| vec![1u8]).collect();
    io.writev(file, too_many, 0, |_, seen, r, bufs| {
        assert_eq!(bufs.len(), IOVECS_MAX + 1, "every buffer comes back");
        seen.push(errno(&r));
    });
    io.readv(file, vec![Vec::<u8>::new()], 0, |_, seen, r, _| {
        seen.push(errno(&r))
    });
    io.readv(
        file,
        vec![Vec::<u8>::with_capacity(1)],
        u64::MAX,
        |_, seen, r, _| seen.push(errno(&r)),
    );
    io.writev(file, Vec::<Vec<u8>>::new(), 0, |_, seen, r, _| {
        seen.push(r.ok().map(|n| n as i32))
    });
    let mut seen = Vec::new();
    io.run(&mut seen).unwrap();
    let einval = Some(libc::EINVAL);
    assert_eq!(seen, [einval, einval, einval, Some(0)]);
}

// ---------------------------------------------------------------------------
// UDP

#[derive(Default)]
struct Datagrams {
    got: Vec<(Vec<u8>, Option<Address>)>,
    sent: Vec<io::Result<usize>>,
    received: Vec<Received>,
}

fn udp_pair(io: &mut IO<Datagrams>) -> (Handle, SocketAddr, Handle, SocketAddr) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = io.open_udp(any).unwrap();
    let b = io.open_udp(any).unwrap();
    let (a_addr, b_addr) = (io.local_addr(a).unwrap(), io.local_addr(b).unwrap());
    assert_ne!(a_addr.port(), 0);
    assert_ne!(a_addr.port(), b_addr.port());
    (a, a_addr, b, b_addr)
}

fn recv_from_once(io: &mut IO<Datagrams>, socket: Handle, capacity: usize) {
    io.recv_from(
        socket,
        Vec::with_capacity(capacity),
        |_, seen, result, buf| {
            let (count, peer) = result.unwrap();
            assert_eq!(count, buf.len());
            seen.got.push((buf, peer));
        },
    );
}

fn udp_send_to_and_recv_from_carry_the_peer(backend: Backend) {
    let mut io: IO<Datagrams> = backend.io();
    let mut seen = Datagrams::default();
    let (a, a_addr, b, b_addr) = udp_pair(&mut io);
    recv_from_once(&mut io, b, 64);
    io.send_to(a, b"ping".to_vec(), b_addr, |_, seen, result, _| {
        seen.sent.push(result)
    });
    run_until(&mut io, &mut seen, |seen| !seen.got.is_empty());
    assert_eq!(seen.got[0], (b"ping".to_vec(), Some(Address::Ip(a_addr))));
    // The reply goes back to the address the request came from.
    let reply_to = seen.got[0].1.unwrap();
    recv_from_once(&mut io, a, 64);
    io.send_to(b, b"pong".to_vec(), reply_to, |_, seen, result, _| {
        seen.sent.push(result)
    });
    run_until(&mut io, &mut seen, |seen| seen.got.len() == 2);
    assert_eq!(seen.got[1], (b"pong".to_vec(), Some(Address::Ip(b_addr))));
    assert!(seen
        .sent
        .iter()
        .all(|sent| sent.as_ref().is_ok_and(|&n| n == 4)));
}

fn udp_datagrams_keep_their_boundaries_and_truncate(backend: Backend) {
    let mut io: IO<Datagrams> = backend.io();
    let mut seen = Datagrams::default();
    let (a, _, b, b_addr) = udp_pair(&mut io);
    // Three buffers gathered into one datagram of 10 bytes...
    let parts = vec![b"abc".to_vec(), b"defg".to_vec(), b"hij".to_vec()];
    io.send_msg(a, parts, Some(b_addr.into()), |_, seen, result, _| {
        seen.sent.push(result)
    });
    run_until(&mut io, &mut seen, |seen| seen.sent.len() == 1);
    // ...received into 4 + 2 bytes: the rest is cut, and the flag says so.
    io.recv_msg(
        b,
        vec![Vec::with_capacity(4), Vec::with_capacity(2)],
        Vec::with_capacity(64),
        |_, seen, result, bufs, control| {
            let received = result.unwrap();
            assert!(control.is_empty(), "no control messages were asked for");
            assert_eq!(bufs, [b"abcd".to_vec(), b"ef".to_vec()]);
            seen.received.push(received);
        },
    );
    run_until(&mut io, &mut seen, |seen| seen.received.len() == 1);
    let received = seen.received[0];
    assert_eq!(received.bytes, 6);
    assert!(received.truncated, "MSG_TRUNC");
    assert_eq!(
        received.peer.and_then(|peer| peer.as_ip()),
        Some(io.local_addr(a).unwrap())
    );
    // An empty datagram is a datagram too.
    io.send_to(a, Vec::new(), b_addr, |_, seen, result, _| {
        seen.sent.push(result)
    });
    recv_from_once(&mut io, b, 16);
    run_until(&mut io, &mut seen, |seen| !seen.got.is_empty());
    assert_eq!(seen.got[0].0, b"");
    assert_eq!(seen.sent[1].as_ref().ok(), Some(&0));
}

fn udp_connect_sets_the_default_peer(backend: Backend) {
    let mut io: IO<Datagrams> = backend.io();
    let mut seen = Datagrams::default();
    let (a, a_addr, b, b_addr) = udp_pair(&mut io);
    io.connect(a, b_addr, |_, _, result| result.unwrap());
    io.run(&mut seen).unwrap();
    assert_eq!(io.peer_addr(a).unwrap(), b_addr);
    io.send(a, b"connected".to_vec(), |_, seen, result, _| {
        seen.sent.push(result)
    });
    io.recv(b, Vec::with_capacity(64), |_, seen, result, buf| {
        assert_eq!(result.unwrap(), 9);
        seen.got.push((buf, None));
    });
    run_until(&mut io, &mut seen, |seen| !seen.got.is_empty());
    assert_eq!(seen.got[0].0, b"connected");
    let _ = a_addr;
}

fn udp_datagrams_over_the_size_limit_are_emsgsize(backend: Backend) {
    let mut io: IO<Datagrams> = backend.io();
    let mut seen = Datagrams::default();
    let (a, _, _, b_addr) = udp_pair(&mut io);
    io.send_to(a, vec![0u8; 65_508], b_addr, |_, seen, result, buf| {
        assert_eq!(buf.len(), 65_508, "the buffer comes back");
        seen.sent.push(result);
    });
    run_until(&mut io, &mut seen, |seen| !seen.sent.is_empty());
    assert_eq!(errno(&seen.sent[0]), Some(libc::EMSGSIZE));
}

fn udp_send_without_a_destination_is_edestaddrreq(backend: Backend) {
    let mut io: IO<Datagrams> = backend.io();
    let mut seen = Datagrams::default();
    let (a, _, _, _) = udp_pair(&mut io);
    io.send(a, b"to nobody".to_vec(), |_, seen, result, _| {
        seen.sent.push(result)
    });
    run_until(&mut io, &mut seen, |seen| !seen.sent.is_empty());
    assert_eq!(errno(&seen.sent[0]), Some(libc::EDESTADDRREQ));
}
