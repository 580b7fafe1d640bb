//! TCP as Linux has it: the conformance suite's socket-semantics tests,
//! written once and run on io_uring, epoll and the simulator (`io_uring::<test>`,
//! `epoll::<test>`, `sim::<test>`), so that each test compares the simulator
//! against the running kernel (Linux 6.18 when these were written).
//!
//! Each test drives one `IO` through small blocking-style helpers (`recv_now`,
//! `send_now`, ...) that run the loop until the operation's callback has run.
//! On the simulator the loop's clock is virtual, so waits cost nothing.

#[macro_use]
mod util;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use ringio::{CompletionId, Handle, PollEvents, IO};
use util::Backend;

conformance!(
    a_peer_reset_keeps_received_data_readable_then_econnreset,
    a_recv_right_after_the_peer_resets_is_never_end_of_file,
    a_send_after_the_peer_resets_gets_econnreset_once_then_epipe,
    a_reset_after_fin_keeps_recv_at_zero_and_send_at_epipe,
    getpeername_after_a_reset_is_enotconn,
    send_on_an_unconnected_or_listening_socket_is_epipe_and_recv_enotconn,
    connect_on_a_listener_is_eisconn,
    recv_and_send_after_a_refused_connect_give_zero_and_epipe,
    positional_io_on_a_socket_at_a_nonzero_offset_is_espipe,
    poll_after_fin_reports_read_hangup,
    connects_beyond_the_listen_backlog_wait_for_room,
    cancelling_a_pending_connect_keeps_the_handshake_going,
);

/// How long a helper waits for its operation, on the loop's clock. Long for
/// a loopback socket; SYN retransmission (1 s) is the slowest thing waited for.
const WAIT_NS: u64 = 5_000_000_000;
const MS: u64 = 1_000_000;

type Outcome<T> = Rc<RefCell<Option<Result<T, i32>>>>;

fn errno_of(error: &std::io::Error) -> i32 {
    error.raw_os_error().expect("an errno")
}

/// Runs the loop until `outcome` is set, at most `limit_ns`.
fn settle<T>(io: &mut IO<()>, outcome: &Outcome<T>, limit_ns: u64) {
    let deadline_ns = io.now_ns() + limit_ns;
    while outcome.borrow().is_none() && io.now_ns() < deadline_ns {
        io.run_for_ns(&mut (), MS).unwrap();
    }
}

/// Runs the loop until `outcome` is set, at most `limit_ns`; takes it.
fn wait<T>(io: &mut IO<()>, outcome: &Outcome<T>, limit_ns: u64) -> Option<Result<T, i32>> {
    settle(io, outcome, limit_ns);
    outcome.borrow_mut().take()
}

fn recv_start(io: &mut IO<()>, socket: Handle, capacity: usize) -> Outcome<Vec<u8>> {
    let outcome: Outcome<Vec<u8>> = Rc::default();
    let slot = Rc::clone(&outcome);
    io.recv(
        socket,
        Vec::with_capacity(capacity),
        move |_, _, result, buf| {
            *slot.borrow_mut() = Some(result.map(|_| buf).map_err(|e| errno_of(&e)));
        },
    );
    outcome
}

fn recv_now(io: &mut IO<()>, socket: Handle) -> Result<Vec<u8>, i32> {
    let outcome = recv_start(io, socket, 64);
    wait(io, &outcome, WAIT_NS).expect("recv completes")
}

/// Receives until `len` bytes have come (a recv may return fewer, legally).
fn recv_exactly(io: &mut IO<()>, socket: Handle, len: usize) -> Result<Vec<u8>, i32> {
    let mut got = Vec::new();
    while got.len() < len {
        let piece = recv_now(io, socket)?;
        assert!(!piece.is_empty(), "end of stream after {got:?}");
        got.extend_from_slice(&piece);
    }
    Ok(got)
}

fn send_now(io: &mut IO<()>, socket: Handle, data: &[u8]) -> Result<usize, i32> {
    let outcome: Outcome<usize> = Rc::default();
    let slot = Rc::clone(&outcome);
    io.send(socket, data.to_vec(), move |_, _, result, _| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    wait(io, &outcome, WAIT_NS).expect("send completes")
}

fn poll_now(io: &mut IO<()>, socket: Handle, events: PollEvents) -> Result<PollEvents, i32> {
    let outcome: Outcome<PollEvents> = Rc::default();
    let slot = Rc::clone(&outcome);
    io.poll(socket, events, move |_, _, result| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    wait(io, &outcome, WAIT_NS).expect("poll completes")
}

fn connect_start(
    io: &mut IO<()>,
    socket: Handle,
    address: SocketAddr,
) -> (CompletionId, Outcome<()>) {
    let outcome: Outcome<()> = Rc::default();
    let slot = Rc::clone(&outcome);
    let id = io.connect(socket, address, move |_, _, result| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    (id, outcome)
}

fn connect_now(io: &mut IO<()>, socket: Handle, address: SocketAddr) -> Result<(), i32> {
    let (_, outcome) = connect_start(io, socket, address);
    wait(io, &outcome, WAIT_NS).expect("connect completes")
}

fn accept_start(io: &mut IO<()>, listener: Handle) -> Outcome<Handle> {
    let outcome: Outcome<Handle> = Rc::default();
    let slot = Rc::clone(&outcome);
    io.accept(listener, move |_, _, result| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    outcome
}

fn accept_now(io: &mut IO<()>, listener: Handle) -> Result<Handle, i32> {
    let outcome = accept_start(io, listener);
    wait(io, &outcome, WAIT_NS).expect("accept completes")
}

fn cancel_now(io: &mut IO<()>, target: CompletionId) -> Result<(), i32> {
    let outcome: Outcome<()> = Rc::default();
    let slot = Rc::clone(&outcome);
    io.cancel(target, move |_, _, result| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    wait(io, &outcome, WAIT_NS).expect("cancel completes")
}

fn close_now(io: &mut IO<()>, handle: Handle) {
    util::close_io(io, &mut (), handle);
}

/// A connected pair in which closing `resetter` sends a reset (it holds
/// unread data from `reader`), and `reader` holds `held`, received from
/// `resetter` and not read yet. Returns (io, reader, resetter).
fn pair_with_data_held_both_ways(backend: Backend, held: &[u8]) -> (IO<()>, Handle, Handle) {
    let mut io: IO<()> = backend.io();
    let (reader, resetter) = util::tcp_pair_io(&mut io, &mut ());
    assert_eq!(send_now(&mut io, reader, b"unread"), Ok(6));
    assert_eq!(send_now(&mut io, resetter, held), Ok(held.len()));
    // Both have arrived once both ends are readable.
    let readable = PollEvents::READABLE;
    assert!(poll_now(&mut io, resetter, readable)
        .unwrap()
        .contains(readable));
    assert!(poll_now(&mut io, reader, readable)
        .unwrap()
        .contains(readable));
    (io, reader, resetter)
}

fn a_peer_reset_keeps_received_data_readable_then_econnreset(backend: Backend) {
    let (mut io, reader, resetter) = pair_with_data_held_both_ways(backend, b"held");
    close_now(&mut io, resetter);
    // The reset has arrived once the reader hangs up.
    let events = poll_now(&mut io, reader, PollEvents::HANGUP).unwrap();
    assert!(events.contains(PollEvents::HANGUP), "{events:?}");
    assert_eq!(recv_exactly(&mut io, reader, 4), Ok(b"held".to_vec()));
    assert_eq!(recv_now(&mut io, reader), Err(libc::ECONNRESET));
    assert_eq!(recv_now(&mut io, reader), Ok(Vec::new()));
    assert_eq!(send_now(&mut io, reader, b"x"), Err(libc::EPIPE));
    close_now(&mut io, reader);
}

fn a_recv_right_after_the_peer_resets_is_never_end_of_file(backend: Backend) {
    let (mut io, reader, resetter) = pair_with_data_held_both_ways(backend, b"h");
    assert_eq!(recv_now(&mut io, reader), Ok(b"h".to_vec()));
    // The recv is submitted in the same pass as the close: on the kernel it
    // runs just after the reset; on the simulator, before the reset arrives.
    io.close(resetter, |_, _, result| result.unwrap());
    let outcome = recv_start(&mut io, reader, 64);
    assert_eq!(
        wait(&mut io, &outcome, WAIT_NS),
        Some(Err(libc::ECONNRESET))
    );
    assert_eq!(recv_now(&mut io, reader), Ok(Vec::new()));
    close_now(&mut io, reader);
}

fn a_send_after_the_peer_resets_gets_econnreset_once_then_epipe(backend: Backend) {
    let (mut io, reader, resetter) = pair_with_data_held_both_ways(backend, b"h");
    assert_eq!(recv_now(&mut io, reader), Ok(b"h".to_vec()));
    close_now(&mut io, resetter);
    let events = poll_now(&mut io, reader, PollEvents::HANGUP).unwrap();
    assert!(events.contains(PollEvents::HANGUP), "{events:?}");
    assert_eq!(send_now(&mut io, reader, b"x"), Err(libc::ECONNRESET));
    assert_eq!(send_now(&mut io, reader, b"x"), Err(libc::EPIPE));
    // The error was reported once: recv sees the end of the stream now.
    assert_eq!(recv_now(&mut io, reader), Ok(Vec::new()));
    close_now(&mut io, reader);
}

fn a_reset_after_fin_keeps_recv_at_zero_and_send_at_epipe(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let (client, server) = util::tcp_pair_io(&mut io, &mut ());
    close_now(&mut io, client); // A FIN: the client read everything.
    assert_eq!(recv_now(&mut io, server), Ok(Vec::new()));
    // Data for a closed socket draws a reset.
    assert_eq!(send_now(&mut io, server, b"late"), Ok(4));
    let events = poll_now(&mut io, server, PollEvents::HANGUP).unwrap();
    assert!(events.contains(PollEvents::HANGUP), "{events:?}");
    assert_eq!(recv_now(&mut io, server), Ok(Vec::new()));
    assert_eq!(send_now(&mut io, server, b"x"), Err(libc::EPIPE));
    assert_eq!(recv_now(&mut io, server), Ok(Vec::new()));
    assert_eq!(send_now(&mut io, server, b"x"), Err(libc::EPIPE));
    close_now(&mut io, server);
}

fn getpeername_after_a_reset_is_enotconn(backend: Backend) {
    let (mut io, reader, resetter) = pair_with_data_held_both_ways(backend, b"h");
    assert!(io.peer_addr(reader).is_ok());
    close_now(&mut io, resetter);
    let events = poll_now(&mut io, reader, PollEvents::HANGUP).unwrap();
    assert!(events.contains(PollEvents::HANGUP), "{events:?}");
    let error = io.peer_addr(reader).unwrap_err();
    assert_eq!(errno_of(&error), libc::ENOTCONN);
    close_now(&mut io, reader);
}

fn send_on_an_unconnected_or_listening_socket_is_epipe_and_recv_enotconn(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 4).unwrap();
    let address = io.local_addr(listener).unwrap();
    let fresh = io.open_socket(address).unwrap();
    for socket in [fresh, listener] {
        assert_eq!(send_now(&mut io, socket, b"x"), Err(libc::EPIPE));
        assert_eq!(recv_now(&mut io, socket), Err(libc::ENOTCONN));
        let error = io.peer_addr(socket).unwrap_err();
        assert_eq!(errno_of(&error), libc::ENOTCONN);
    }
    close_now(&mut io, fresh);
    close_now(&mut io, listener);
}

fn connect_on_a_listener_is_eisconn(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 4).unwrap();
    let address = io.local_addr(listener).unwrap();
    assert_eq!(connect_now(&mut io, listener, address), Err(libc::EISCONN));
    close_now(&mut io, listener);
}

fn recv_and_send_after_a_refused_connect_give_zero_and_epipe(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let address = io.local_addr(listener).unwrap();
    close_now(&mut io, listener);
    let socket = io.open_socket(address).unwrap();
    assert_eq!(
        connect_now(&mut io, socket, address),
        Err(libc::ECONNREFUSED)
    );
    assert_eq!(recv_now(&mut io, socket), Ok(Vec::new()));
    assert_eq!(send_now(&mut io, socket, b"x"), Err(libc::EPIPE));
    close_now(&mut io, socket);
}

fn positional_io_on_a_socket_at_a_nonzero_offset_is_espipe(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let (client, server) = util::tcp_pair_io(&mut io, &mut ());
    let outcome: Outcome<usize> = Rc::default();
    let slot = Rc::clone(&outcome);
    io.write(client, b"x".to_vec(), 1, move |_, _, result, _| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    assert_eq!(wait(&mut io, &outcome, WAIT_NS), Some(Err(libc::ESPIPE)));
    let slot = Rc::clone(&outcome);
    io.read(server, Vec::with_capacity(8), 1, move |_, _, result, _| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    assert_eq!(wait(&mut io, &outcome, WAIT_NS), Some(Err(libc::ESPIPE)));
    // At offset 0 a read and a write are a recv and a send.
    let slot = Rc::clone(&outcome);
    io.write(client, b"y".to_vec(), 0, move |_, _, result, _| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    assert_eq!(wait(&mut io, &outcome, WAIT_NS), Some(Ok(1)));
    let slot = Rc::clone(&outcome);
    io.read(server, Vec::with_capacity(8), 0, move |_, _, result, _| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    assert_eq!(wait(&mut io, &outcome, WAIT_NS), Some(Ok(1)));
    close_now(&mut io, client);
    close_now(&mut io, server);
}

fn poll_after_fin_reports_read_hangup(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let (client, server) = util::tcp_pair_io(&mut io, &mut ());
    let wanted = PollEvents::READABLE | PollEvents::READ_HANGUP;
    // Nothing yet: a poll for data or a hang-up waits.
    let outcome: Outcome<PollEvents> = Rc::default();
    let slot = Rc::clone(&outcome);
    io.poll(server, wanted, move |_, _, result| {
        *slot.borrow_mut() = Some(result.map_err(|e| errno_of(&e)));
    });
    assert_eq!(wait(&mut io, &outcome, 20 * MS), None);
    close_now(&mut io, client);
    let events = wait(&mut io, &outcome, WAIT_NS).unwrap().unwrap();
    assert!(events.contains(wanted), "{events:?}");
    assert!(
        !events.contains(PollEvents::HANGUP),
        "half closed: {events:?}"
    );
    // Unasked, io_uring reports it too (it always unmasks POLLRDHUP, as it
    // does POLLERR and POLLHUP); epoll does not. Either way it is readable.
    let events = poll_now(&mut io, server, PollEvents::READABLE).unwrap();
    assert!(events.contains(PollEvents::READABLE), "{events:?}");
    close_now(&mut io, server);
}

/// A listener with backlog 1 holds two connections (Linux queues one more
/// than the backlog): connects `count` clients and returns them with their
/// connect outcomes, after letting the handshakes that can finish finish.
fn connect_clients(
    io: &mut IO<()>,
    address: SocketAddr,
    count: usize,
) -> Vec<(Handle, CompletionId, Outcome<()>)> {
    let clients: Vec<_> = (0..count)
        .map(|_| {
            let socket = io.open_socket(address).unwrap();
            let (id, outcome) = connect_start(io, socket, address);
            // One at a time, so that the queue fills in this order.
            settle(io, &outcome, 50 * MS);
            (socket, id, outcome)
        })
        .collect();
    io.run_for_ns(&mut (), 100 * MS).unwrap();
    clients
}

fn connects_beyond_the_listen_backlog_wait_for_room(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let address = io.local_addr(listener).unwrap();
    let clients = connect_clients(&mut io, address, 3);
    assert_eq!(*clients[0].2.borrow(), Some(Ok(())));
    assert_eq!(*clients[1].2.borrow(), Some(Ok(())));
    assert_eq!(
        *clients[2].2.borrow(),
        None,
        "the queue is full: its SYN was dropped"
    );
    let first = accept_now(&mut io, listener).unwrap();
    // Room now: the retransmitted SYN (after 1 s on Linux) gets in.
    assert_eq!(wait(&mut io, &clients[2].2, WAIT_NS), Some(Ok(())));
    let second = accept_now(&mut io, listener).unwrap();
    let third = accept_now(&mut io, listener).unwrap();
    assert_eq!(
        io.peer_addr(third).unwrap(),
        io.local_addr(clients[2].0).unwrap()
    );
    for socket in [first, second, third, listener] {
        close_now(&mut io, socket);
    }
    for (socket, _, _) in clients {
        close_now(&mut io, socket);
    }
}

fn cancelling_a_pending_connect_keeps_the_handshake_going(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let address = io.local_addr(listener).unwrap();
    let clients = connect_clients(&mut io, address, 3);
    let (pending, id, outcome) = &clients[2];
    assert_eq!(
        *outcome.borrow(),
        None,
        "the queue is full: its SYN was dropped"
    );
    assert_eq!(cancel_now(&mut io, *id), Ok(()));
    assert_eq!(wait(&mut io, outcome, WAIT_NS), Some(Err(libc::ECANCELED)));
    // The kernel is still handshaking.
    assert_eq!(connect_now(&mut io, *pending, address), Err(libc::EALREADY));
    let mut accepted = Vec::new();
    for _ in 0..3 {
        accepted.push(accept_now(&mut io, listener).expect("the cancelled one too"));
    }
    assert_eq!(
        io.peer_addr(accepted[2]).unwrap(),
        io.local_addr(*pending).unwrap()
    );
    assert_eq!(send_now(&mut io, *pending, b"hi"), Ok(2));
    assert_eq!(recv_now(&mut io, accepted[2]), Ok(b"hi".to_vec()));
    for socket in accepted.into_iter().chain([listener]) {
        close_now(&mut io, socket);
    }
    for (socket, _, _) in clients {
        close_now(&mut io, socket);
    }
}
