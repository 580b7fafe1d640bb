//! Multishot operations: one submission, one callback per result, exactly
//! one last call. On every backend, and on io_uring both natively and with
//! the loop's emulation (what kernels without the operation get).

#[macro_use]
mod util;

use std::io;
use std::net::SocketAddr;

use ringio::{Config, Flow, Handle, PoolBuf, IO};
use util::Backend;

conformance!(
    accept_multi_takes_a_thousand_connections_in_order_of_arrival,
    accept_multi_stops_when_the_callback_says_so,
    accept_multi_ends_with_ecanceled_when_cancelled_or_its_listener_closes,
    accept_multi_on_a_stale_handle_has_only_its_last_call,
    a_panicking_multishot_callback_ends_nothing_else_and_closes_what_it_left,
    recv_multi_receives_a_stream_into_pool_buffers_then_the_end,
    recv_multi_ends_with_enobufs_when_the_pool_runs_dry_and_loses_nothing,
    recv_multi_with_a_pool_of_another_io_is_einval,
);

/// What one test saw: each call's result (a handle, or an errno) and `more`.
#[derive(Default)]
struct Seen {
    accepted: Vec<Handle>,
    last: Option<Option<i32>>,
    calls_after_last: u32,
    connected: u32,
}

fn record(seen: &mut Seen, result: io::Result<Handle>, more: bool) {
    if seen.last.is_some() {
        seen.calls_after_last += 1;
    }
    match (result, more) {
        (Ok(socket), true) => seen.accepted.push(socket),
        (Ok(socket), false) => {
            seen.accepted.push(socket);
            seen.last = Some(None);
        }
        (Err(error), true) => panic!("an error with more to come: {error}"),
        (Err(error), false) => seen.last = Some(error.raw_os_error()),
    }
}

/// Both ways io_uring can run it, or the one way of another backend.
fn configs(backend: Backend) -> Vec<Config> {
    let mut configs = vec![Config::new()];
    if backend.is_io_uring() {
        configs.push(Config::new().emulate_kernel_features(true));
    }
    configs
}

fn listener(io: &mut IO<Seen>) -> (Handle, SocketAddr) {
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
    let address = io.local_addr(listener).unwrap();
    (listener, address)
}

fn connect_clients(io: &mut IO<Seen>, address: SocketAddr, count: u32) -> Vec<Handle> {
    (0..count)
        .map(|_| {
            let client = io.open_socket(address).unwrap();
            io.connect(client, address, |_, seen, result| {
                result.expect("connect");
                seen.connected += 1;
            });
            client
        })
        .collect()
}

/// Runs the loop until `done` says so, for at most 20 s of loop time.
fn run_until<C>(io: &mut IO<C>, ctx: &mut C, done: impl Fn(&C) -> bool) {
    for _ in 0..20_000 {
        if done(ctx) {
            return;
        }
        io.run_for_ns(ctx, 1_000_000).unwrap();
    }
    panic!("not done after 20 s of loop time");
}

fn accept_multi_takes_a_thousand_connections_in_order_of_arrival(backend: Backend) {
    for config in configs(backend) {
        let mut io: IO<Seen> = backend.io_with(config);
        let (listener, address) = listener(&mut io);
        let id = io.accept_multi(listener, |_, seen, result, more| {
            record(seen, result, more);
            Flow::Continue
        });
        let clients = connect_clients(&mut io, address, 1_000);
        let mut seen = Seen::default();
        run_until(&mut io, &mut seen, |seen| {
            seen.accepted.len() == 1_000 && seen.connected == 1_000
        });
        assert_eq!(seen.last, None, "the stream goes on");
        // Every accepted socket is a distinct, live handle of this IO, and
        // its peer is one of the clients.
        let client_addresses: Vec<SocketAddr> = clients
            .iter()
            .map(|&client| io.local_addr(client).unwrap())
            .collect();
        for &socket in &seen.accepted {
            let peer = io.peer_addr(socket).unwrap();
            assert!(client_addresses.contains(&peer));
        }
        let mut unique = seen.accepted.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 1_000);
        io.cancel(id, |_, _, result| result.unwrap());
        run_until(&mut io, &mut seen, |seen| seen.last.is_some());
        assert_eq!(seen.last, Some(Some(libc::ECANCELED)));
        assert_eq!(seen.calls_after_last, 0);
        assert_eq!(io.stats().descriptors_open, 2_001);
    }
}

fn accept_multi_stops_when_the_callback_says_so(backend: Backend) {
    for config in configs(backend) {
        let mut io: IO<Seen> = backend.io_with(config);
        let (listener, address) = listener(&mut io);
        io.accept_multi(listener, |_, seen, result, more| {
            record(seen, result, more);
            if seen.accepted.len() >= 3 {
                Flow::Stop
            } else {
                Flow::Continue
            }
        });
        connect_clients(&mut io, address, 3);
        let mut seen = Seen::default();
        run_until(&mut io, &mut seen, |seen| seen.last.is_some());
        assert_eq!(seen.accepted.len(), 3);
        assert_eq!(seen.last, Some(Some(libc::ECANCELED)));
        // Stopped for good: a fourth connection waits in the backlog.
        connect_clients(&mut io, address, 1);
        io.run_for_ns(&mut seen, 5_000_000).unwrap();
        assert_eq!(seen.accepted.len(), 3);
        assert_eq!(seen.calls_after_last, 0);
        // Re-armed, it takes the waiting one.
        io.accept_multi(listener, |_, seen, result, more| {
            seen.last = None;
            record(seen, result, more);
            Flow::Stop
        });
        run_until(&mut io, &mut seen, |seen| seen.accepted.len() == 4);
    }
}

fn accept_multi_ends_with_ecanceled_when_cancelled_or_its_listener_closes(backend: Backend) {
    for config in configs(backend) {
        let mut io: IO<Seen> = backend.io_with(config);
        let (listener, _) = listener(&mut io);
        io.accept_multi(listener, |_, seen, result, more| {
            record(seen, result, more);
            Flow::Continue
        });
        let mut seen = Seen::default();
        io.run_for_ns(&mut seen, 2_000_000).unwrap();
        assert!(seen.last.is_none());
        let closed = std::rc::Rc::new(std::cell::Cell::new(false));
        let done = std::rc::Rc::clone(&closed);
        io.close(listener, move |_, seen: &mut Seen, result| {
            result.unwrap();
            // The close's callback comes after the accept's last call.
            assert!(seen.last.is_some());
            done.set(true);
        });
        run_until(&mut io, &mut seen, |_| closed.get());
        assert_eq!(seen.last, Some(Some(libc::ECANCELED)));
        assert_eq!(io.in_flight(), 0);
    }
}

fn accept_multi_on_a_stale_handle_has_only_its_last_call(backend: Backend) {
    let mut io: IO<Seen> = backend.io();
    let (listener, _) = listener(&mut io);
    let mut seen = Seen::default();
    util::close_io(&mut io, &mut seen, listener);
    io.accept_multi(listener, |_, seen, result, more| {
        record(seen, result, more);
        Flow::Continue
    });
    io.run(&mut seen).unwrap();
    assert_eq!(seen.last, Some(Some(libc::EBADF)));
    assert!(seen.accepted.is_empty());
}

fn a_panicking_multishot_callback_ends_nothing_else_and_closes_what_it_left(backend: Backend) {
    for config in configs(backend) {
        let mut io: IO<Seen> = backend.io_with(config);
        let (listener, address) = listener(&mut io);
        let id = io.accept_multi(listener, |_, seen, result, more| {
            record(seen, result, more);
            if seen.accepted.len() == 1 {
                panic!("the first accept's callback panics");
            }
            Flow::Continue
        });
        let clients = connect_clients(&mut io, address, 4);
        let mut seen = Seen::default();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_until(&mut io, &mut seen, |seen| {
                seen.connected == 4 && seen.accepted.len() == 4
            })
        }));
        assert!(unwound.is_err());
        // The handler went with the panic. The operation still ends when
        // cancelled, the loop goes on, and the results no callback saw do
        // not leak: their sockets are closed, which their clients see as EOF.
        io.cancel(id, |_, _, result| result.unwrap());
        while io.in_flight() > 0 {
            io.run_for_ns(&mut seen, 1_000_000).unwrap();
        }
        assert_eq!(seen.accepted.len(), 1);
        assert_eq!(seen.connected, 4);
        // Connections still in the backlog are reset when the listener goes.
        util::close_io(&mut io, &mut seen, listener);
        let kept_peer = io.peer_addr(seen.accepted[0]).unwrap();
        let mut ended = 0;
        for client in clients {
            if io.local_addr(client).unwrap() == kept_peer {
                continue;
            }
            io.recv(
                client,
                Vec::with_capacity(8),
                |_, seen: &mut Seen, result, _| {
                    match result {
                        Ok(count) => assert_eq!(count, 0, "EOF: the accepted socket was closed"),
                        Err(error) => assert_eq!(error.raw_os_error(), Some(libc::ECONNRESET)),
                    }
                    seen.calls_after_last += 1;
                },
            );
            ended += 1;
        }
        assert_eq!(ended, 3);
        seen.calls_after_last = 0;
        // A socket left open would keep its client waiting forever.
        for _ in 0..5_000 {
            if seen.calls_after_last == 3 {
                break;
            }
            io.run_for_ns(&mut seen, 1_000_000).unwrap();
        }
        assert_eq!(seen.calls_after_last, 3, "every unseen socket was closed");
    }
}

/// What a receiving test saw.
#[derive(Default)]
struct Received {
    data: Vec<u8>,
    held: Vec<PoolBuf>,
    shots: u32,
    last: Option<Result<usize, i32>>,
    enobufs: u32,
}

fn on_received(got: &mut Received, result: io::Result<PoolBuf>, more: bool, hold: bool) -> Flow {
    assert!(got.last.is_none(), "a call after the last");
    let buf = match result {
        Ok(buf) => buf,
        Err(error) => {
            assert!(!more, "an error with more to come");
            got.last = Some(Err(error.raw_os_error().unwrap()));
            return Flow::Continue;
        }
    };
    got.data.extend_from_slice(&buf);
    if more {
        got.shots += 1;
    } else {
        got.last = Some(Ok(buf.len()));
    }
    if hold {
        got.held.push(buf);
    }
    Flow::Continue
}

fn recv_multi_receives_a_stream_into_pool_buffers_then_the_end(backend: Backend) {
    for config in configs(backend) {
        let mut io: IO<Received> = backend.io_with(config);
        let mut got = Received::default();
        let (client, server) = util::tcp_pair_io(&mut io, &mut got);
        let pool = io.register_buf_pool(8, 512).unwrap();
        let arm = |io: &mut IO<Received>| {
            io.recv_multi(server, pool, |_, got, result, more| {
                on_received(got, result, more, false)
            })
        };
        arm(&mut io);
        let data = util::pattern(64 * 1024, 5);
        util::send_all_io(&mut io, &mut got, client, &data);
        while got.data.len() < data.len() {
            run_until(&mut io, &mut got, |got| {
                got.data.len() == data.len() || got.last.is_some()
            });
            // The kernel may fill all eight buffers before a callback gives
            // one back, and end the stream: the application re-arms.
            if got.last == Some(Err(libc::ENOBUFS)) {
                got.last = None;
                got.enobufs += 1;
                arm(&mut io);
            }
        }
        assert!(got.data == data, "the bytes arrive whole and in order");
        assert!(
            got.shots >= 128,
            "at most 512 bytes a buffer: {} shots",
            got.shots
        );
        assert!(got.last.is_none());
        util::close_io(&mut io, &mut got, client);
        run_until(&mut io, &mut got, |got| got.last.is_some());
        assert_eq!(
            got.last,
            Some(Ok(0)),
            "the end of the stream is an empty last call"
        );
        util::close_io(&mut io, &mut got, server);
    }
}

fn recv_multi_ends_with_enobufs_when_the_pool_runs_dry_and_loses_nothing(backend: Backend) {
    for config in configs(backend) {
        let mut io: IO<Received> = backend.io_with(config);
        let mut got = Received::default();
        let (client, server) = util::tcp_pair_io(&mut io, &mut got);
        let pool = io.register_buf_pool(2, 16).unwrap();
        let data = util::pattern(256, 9);
        util::send_all_io(&mut io, &mut got, client, &data);
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 100, "no progress");
            // The callback keeps every buffer: two receives dry the pool.
            let id = io.recv_multi(server, pool, |_, got, result, more| {
                on_received(got, result, more, true)
            });
            let total = data.len();
            run_until(&mut io, &mut got, |got| {
                got.last.is_some() || got.data.len() == total
            });
            if got.data.len() == total && got.last.is_none() {
                // All in, and a buffer to spare: the stream waits for more.
                io.cancel(id, |_, _, result| result.unwrap());
                run_until(&mut io, &mut got, |got| got.last.is_some());
                assert_eq!(got.last, Some(Err(libc::ECANCELED)));
                break;
            }
            assert_eq!(got.last.take(), Some(Err(libc::ENOBUFS)));
            assert_eq!(got.held.len(), 2, "each receive took one buffer");
            // Giving the buffers back, and calling again, goes on.
            got.held.clear();
            if got.data.len() == total {
                break;
            }
        }
        assert!(got.data == data, "nothing was lost while the pool was dry");
        assert!(rounds >= 8, "256 bytes in 16-byte buffers, two per round");
        util::close_io(&mut io, &mut got, client);
        util::close_io(&mut io, &mut got, server);
    }
}

fn recv_multi_with_a_pool_of_another_io_is_einval(backend: Backend) {
    let mut other: IO<()> = backend.io();
    let foreign = other.register_buf_pool(1, 16).unwrap();
    let mut io: IO<Received> = backend.io();
    let mut got = Received::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut got);
    io.recv_multi(server, foreign, |_, got, result, more| {
        on_received(got, result, more, false)
    });
    io.run_for_ns(&mut got, 1_000_000).unwrap();
    assert_eq!(got.last, Some(Err(libc::EINVAL)));
    util::close_io(&mut io, &mut got, client);
    util::close_io(&mut io, &mut got, server);
}
