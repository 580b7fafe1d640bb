//! `shutdown(2)` as an operation: a half-close. Compared on every backend,
//! so the kernel's behaviour is the reference for the simulator's.

#[macro_use]
mod util;

use std::io;

use ringio::{Handle, Shutdown, IO};
use util::Backend;

conformance!(
    shutdown_write_ends_the_peers_stream_and_the_socket_still_receives,
    shutdown_read_makes_a_waiting_receive_give_zero,
    shutdown_of_an_unconnected_socket_is_enotconn,
);

#[derive(Default)]
struct Seen {
    results: Vec<(&'static str, Result<usize, i32>)>,
}

fn errno(error: io::Error) -> i32 {
    error.raw_os_error().expect("an errno")
}

fn record(seen: &mut Seen, what: &'static str, result: io::Result<usize>) {
    seen.results.push((what, result.map_err(errno)));
}

fn recv_once(io: &mut IO<Seen>, socket: Handle, what: &'static str) {
    io.recv(
        socket,
        Vec::with_capacity(64),
        move |_, seen, result, buf| {
            let result = result.inspect(|&count| assert_eq!(count, buf.len()));
            record(seen, what, result);
        },
    );
}

fn run_until(io: &mut IO<Seen>, seen: &mut Seen, count: usize) {
    for _ in 0..10_000 {
        if seen.results.len() >= count {
            return;
        }
        io.run_for_ns(seen, 1_000_000).unwrap();
    }
    panic!("{:?}", seen.results);
}

fn shutdown_write_ends_the_peers_stream_and_the_socket_still_receives(backend: Backend) {
    let mut io: IO<Seen> = backend.io();
    let mut seen = Seen::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    util::send_all_io(&mut io, &mut seen, client, b"hello");
    io.shutdown(client, Shutdown::Write, |_, seen, result| {
        record(seen, "shutdown", result.map(|()| 0))
    });
    run_until(&mut io, &mut seen, 1);
    // The peer reads what was sent, then the end of the stream.
    let mut received = 0;
    while received < 5 {
        recv_once(&mut io, server, "server recv");
        let before = seen.results.len();
        run_until(&mut io, &mut seen, before + 1);
        received += seen.results.last().unwrap().1.expect("data");
    }
    recv_once(&mut io, server, "server recv at the end");
    let before = seen.results.len();
    run_until(&mut io, &mut seen, before + 1);
    assert_eq!(
        seen.results.last(),
        Some(&("server recv at the end", Ok(0)))
    );
    // The other direction still works.
    util::send_all_io(&mut io, &mut seen, server, b"back");
    recv_once(&mut io, client, "client recv");
    let before = seen.results.len();
    run_until(&mut io, &mut seen, before + 1);
    assert!(matches!(seen.results.last(), Some(("client recv", Ok(count))) if *count > 0));
    // Sending after the shutdown is EPIPE.
    io.send(client, &b"more"[..], |_, seen, result, _| {
        record(seen, "client send", result)
    });
    let before = seen.results.len();
    run_until(&mut io, &mut seen, before + 1);
    assert_eq!(
        seen.results.last(),
        Some(&("client send", Err(libc::EPIPE)))
    );
    assert_eq!(seen.results[0], ("shutdown", Ok(0)));
    util::close_io(&mut io, &mut seen, client);
    util::close_io(&mut io, &mut seen, server);
}

fn shutdown_read_makes_a_waiting_receive_give_zero(backend: Backend) {
    let mut io: IO<Seen> = backend.io();
    let mut seen = Seen::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    recv_once(&mut io, client, "waiting recv");
    io.run_for_ns(&mut seen, 2_000_000).unwrap();
    assert!(seen.results.is_empty(), "nothing to receive yet");
    io.shutdown(client, Shutdown::Read, |_, seen, result| {
        record(seen, "shutdown", result.map(|()| 0))
    });
    run_until(&mut io, &mut seen, 2);
    assert!(
        seen.results.contains(&("shutdown", Ok(0))),
        "{:?}",
        seen.results
    );
    assert!(
        seen.results.contains(&("waiting recv", Ok(0))),
        "{:?}",
        seen.results
    );
    // And a receive after it gives 0 at once.
    recv_once(&mut io, client, "later recv");
    run_until(&mut io, &mut seen, 3);
    assert_eq!(seen.results[2], ("later recv", Ok(0)));
    util::close_io(&mut io, &mut seen, client);
    util::close_io(&mut io, &mut seen, server);
}

fn shutdown_of_an_unconnected_socket_is_enotconn(backend: Backend) {
    let mut io: IO<Seen> = backend.io();
    let socket = io.open_socket("127.0.0.1:1".parse().unwrap()).unwrap();
    io.shutdown(socket, Shutdown::Both, |_, seen, result| {
        record(seen, "shutdown", result.map(|()| 0))
    });
    let mut seen = Seen::default();
    io.run(&mut seen).unwrap();
    assert_eq!(seen.results, [("shutdown", Err(libc::ENOTCONN))]);
    util::close_io(&mut io, &mut seen, socket);
}
