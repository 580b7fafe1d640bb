//! A deadline on any operation: past it, the operation is cancelled and
//! completes with `ETIMEDOUT`; completed first, its own result stands and
//! the deadline goes with it. On every backend.

#[macro_use]
mod util;

use std::io;

use ringio::{Config, IO};
use util::Backend;

conformance!(
    a_deadline_fires_on_a_recv_that_gets_no_data,
    a_deadline_goes_with_a_recv_that_gets_data,
    a_deadline_fires_on_an_operation_still_waiting_for_queue_space,
    a_second_deadline_replaces_the_first,
    a_deadline_needs_an_operation_in_flight,
);

const MS: u64 = 1_000_000;

#[derive(Default)]
struct Outcome {
    result: Option<io::Result<usize>>,
    capacity: usize,
    at_ns: u64,
}

fn errno_of<T>(result: &io::Result<T>) -> Option<i32> {
    result.as_ref().err().and_then(|error| error.raw_os_error())
}

fn recv_into(io: &mut IO<Outcome>, socket: ringio::Handle) -> ringio::CompletionId {
    io.recv(
        socket,
        Vec::with_capacity(64),
        |io, outcome, result, buf| {
            outcome.result = Some(result);
            outcome.capacity = buf.capacity();
            outcome.at_ns = io.now_ns();
        },
    )
}

fn a_deadline_fires_on_a_recv_that_gets_no_data(backend: Backend) {
    let mut io: IO<Outcome> = backend.io();
    let mut outcome = Outcome::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut outcome);
    let id = recv_into(&mut io, server);
    let start_ns = io.now_ns();
    io.deadline(id, 5 * MS).unwrap();
    while outcome.result.is_none() {
        io.run_for_ns(&mut outcome, MS).unwrap();
    }
    assert_eq!(
        errno_of(outcome.result.as_ref().unwrap()),
        Some(libc::ETIMEDOUT)
    );
    assert_eq!(outcome.capacity, 64, "the buffer comes back");
    assert!(
        outcome.at_ns - start_ns >= 5 * MS,
        "never before the deadline"
    );
    // The socket is unharmed: a new receive gets what is sent next.
    outcome.result = None;
    recv_into(&mut io, server);
    util::send_all_io(&mut io, &mut outcome, client, b"late");
    while outcome.result.is_none() {
        io.run_for_ns(&mut outcome, MS).unwrap();
    }
    assert_eq!(outcome.result.take().unwrap().unwrap(), 4);
    util::close_io(&mut io, &mut outcome, client);
    util::close_io(&mut io, &mut outcome, server);
}

fn a_deadline_goes_with_a_recv_that_gets_data(backend: Backend) {
    let mut io: IO<Outcome> = backend.io();
    let mut outcome = Outcome::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut outcome);
    let id = recv_into(&mut io, server);
    io.deadline(id, 3_600_000 * MS).unwrap();
    util::send_all_io(&mut io, &mut outcome, client, b"on time");
    while outcome.result.is_none() {
        io.run_for_ns(&mut outcome, MS).unwrap();
    }
    assert_eq!(outcome.result.take().unwrap().unwrap(), 7);
    // The hour-long deadline timer is gone with the receive.
    io.tick(&mut outcome).unwrap();
    assert_eq!(io.in_flight(), 0);
    util::close_io(&mut io, &mut outcome, client);
    util::close_io(&mut io, &mut outcome, server);
}

fn a_deadline_fires_on_an_operation_still_waiting_for_queue_space(backend: Backend) {
    let mut io: IO<Vec<Option<i32>>> = backend.io_with(Config::new().entries(2));
    let mut seen = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    // Many more receives than the submission queue holds: the last waits
    // on `unqueued` within this call, and its deadline is already due.
    let mut last = None;
    for _ in 0..8 {
        last = Some(
            io.recv(server, Vec::with_capacity(8), |_, seen, result, _| {
                seen.push(errno_of(&result));
            }),
        );
    }
    assert!(io.stats().unqueued > 0);
    io.deadline_at(last.unwrap(), 0).unwrap();
    while seen.is_empty() {
        io.run_for_ns(&mut seen, MS).unwrap();
    }
    assert_eq!(seen, [Some(libc::ETIMEDOUT)]);
    util::close_io(&mut io, &mut seen, client);
    util::close_io(&mut io, &mut seen, server);
    assert_eq!(seen.len(), 8, "the others were cancelled by the close");
}

fn a_second_deadline_replaces_the_first(backend: Backend) {
    let mut io: IO<Outcome> = backend.io();
    let mut outcome = Outcome::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut outcome);
    let id = recv_into(&mut io, server);
    let start_ns = io.now_ns();
    io.deadline(id, 2 * MS).unwrap();
    io.deadline(id, 20 * MS).unwrap();
    while outcome.result.is_none() {
        io.run_for_ns(&mut outcome, MS).unwrap();
    }
    assert_eq!(
        errno_of(outcome.result.as_ref().unwrap()),
        Some(libc::ETIMEDOUT)
    );
    assert!(
        outcome.at_ns - start_ns >= 20 * MS,
        "the later deadline holds"
    );
    util::close_io(&mut io, &mut outcome, client);
    util::close_io(&mut io, &mut outcome, server);
}

fn a_deadline_needs_an_operation_in_flight(backend: Backend) {
    let mut io: IO<u32> = backend.io();
    let id = io.nop(|_, done, _| *done += 1);
    let mut done = 0;
    io.run(&mut done).unwrap();
    let stale = io.deadline(id, MS);
    assert_eq!(errno_of(&stale), Some(libc::ENOENT));
    let mut other: IO<u32> = backend.io();
    let foreign = other.timeout(u64::MAX, |_, _, _| {});
    assert_eq!(errno_of(&io.deadline(foreign, MS)), Some(libc::ENOENT));
    assert_eq!(io.in_flight(), 0);
}
