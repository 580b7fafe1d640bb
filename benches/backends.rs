//! TCP ping-pong round trips per second on each backend: the epoll
//! fallback's cost next to io_uring, side by side in one run.
//!
//! Run with `cargo bench --bench backends` (add `-- --quick` for a smoke
//! run). Each connection is a loopback socket pair with both ends driven by
//! the same `IO`: the client sends 64 bytes, the server echoes them, the
//! client receives them and starts the next round trip. Runs alternate
//! between backends; the table reports the median, min and max of 5 runs
//! and the ratio of the medians, epoll to io_uring.

use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use ringio::{BackendKind, Config, Handle, IO};

const RUNS: usize = 5;
const MESSAGE_BYTES: usize = 64;

struct PingPong {
    round_trips: u64,
    /// Set once measuring is over: the closes then cancel pending
    /// operations, whose errors end their chains.
    stopping: bool,
}

/// The byte count of a send or recv, or `None` (ending the chain) when the
/// run is being torn down.
fn count_or_stop(state: &PingPong, result: std::io::Result<usize>) -> Option<usize> {
    match result {
        Ok(count) => Some(count),
        Err(_) if state.stopping => None,
        Err(error) => panic!("ping-pong I/O failed: {error}"),
    }
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    (client, server)
}

fn client_send(io: &mut IO<PingPong>, client: Handle, buf: Vec<u8>) {
    io.send(client, buf, move |io, state, result, mut buf| {
        let Some(count) = count_or_stop(state, result) else {
            return;
        };
        assert_eq!(count, MESSAGE_BYTES);
        buf.clear();
        io.recv(client, buf, move |io, state, result, buf| {
            let Some(count) = count_or_stop(state, result) else {
                return;
            };
            assert_eq!(count, MESSAGE_BYTES);
            state.round_trips += 1;
            if !state.stopping {
                client_send(io, client, buf);
            }
        });
    });
}

fn server_echo(io: &mut IO<PingPong>, server: Handle, buf: Vec<u8>) {
    io.recv(server, buf, move |io, state, result, buf| {
        if count_or_stop(state, result).unwrap_or(0) == 0 || state.stopping {
            return;
        }
        io.send(server, buf, move |io, state, result, mut buf| {
            let Some(count) = count_or_stop(state, result) else {
                return;
            };
            assert_eq!(count, MESSAGE_BYTES);
            buf.clear();
            server_echo(io, server, buf);
        });
    });
}

/// What one timed run measured.
struct Sample {
    round_trips_per_sec: f64,
    syscalls_per_round_trip: f64,
}

fn run(backend: BackendKind, connections: usize, round_trips: u64) -> Sample {
    let config = Config::new().backend(backend).completions_initial(4096);
    let mut io: IO<PingPong> = IO::with_config(config).expect("IO");
    let pairs: Vec<(Handle, Handle)> = (0..connections)
        .map(|_| {
            let (client, server) = tcp_pair();
            let client = io.adopt(client.into()).expect("adopt");
            let server = io.adopt(server.into()).expect("adopt");
            (client, server)
        })
        .collect();
    let mut state = PingPong {
        round_trips: 0,
        stopping: false,
    };
    for &(client, server) in &pairs {
        server_echo(&mut io, server, Vec::with_capacity(MESSAGE_BYTES));
        client_send(&mut io, client, vec![7u8; MESSAGE_BYTES]);
    }
    // Warm up, then measure: each connection keeps one round trip going
    // until the shared count reaches the target.
    let warm_up = round_trips / 10;
    while state.round_trips < warm_up {
        io.run_for_ns(&mut state, 1_000_000).expect("run");
    }
    let syscalls_before = io.stats().syscalls;
    let round_trips_before = state.round_trips;
    let start = Instant::now();
    while state.round_trips < round_trips_before + round_trips {
        io.run_for_ns(&mut state, 1_000_000).expect("run");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let measured = state.round_trips - round_trips_before;
    let syscalls = io.stats().syscalls - syscalls_before;
    // Stop every chain: closing the clients ends the servers' recvs.
    state.stopping = true;
    for &(client, server) in &pairs {
        io.close(client, |_, _, _| {});
        io.close(server, |_, _, _| {});
    }
    io.run(&mut state).expect("drain");
    Sample {
        round_trips_per_sec: measured as f64 / elapsed,
        syscalls_per_round_trip: syscalls as f64 / measured as f64,
    }
}

/// Median, min and max of round trips/s, and mean syscalls per round trip.
fn summarize(samples: &[Sample]) -> (f64, f64, f64, f64) {
    let mut rates: Vec<f64> = samples.iter().map(|s| s.round_trips_per_sec).collect();
    rates.sort_by(f64::total_cmp);
    let syscalls = samples
        .iter()
        .map(|s| s.syscalls_per_round_trip)
        .sum::<f64>()
        / samples.len() as f64;
    (
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        syscalls,
    )
}

fn thousands(rate: f64) -> String {
    format!("{:.0}k", rate / 1e3)
}

fn main() {
    // cargo bench passes `--bench`; only `--quick` matters here.
    let quick = std::env::args().any(|arg| arg == "--quick");
    let round_trips: u64 = if quick { 20_000 } else { 200_000 };
    println!("| connections | io_uring round trips/s | epoll round trips/s | ratio epoll / io_uring | syscalls per round trip (io_uring, epoll) |");
    println!("|---:|---|---|---:|---|");
    for connections in [1, 128] {
        let mut uring = Vec::with_capacity(RUNS);
        let mut epoll = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            uring.push(run(BackendKind::IoUring, connections, round_trips));
            epoll.push(run(BackendKind::Epoll, connections, round_trips));
        }
        let (uring_median, uring_min, uring_max, uring_syscalls) = summarize(&uring);
        let (epoll_median, epoll_min, epoll_max, epoll_syscalls) = summarize(&epoll);
        println!(
            "| {connections} | {} ({}–{}) | {} ({}–{}) | {:.2}× | {uring_syscalls:.2}, {epoll_syscalls:.2} |",
            thousands(uring_median),
            thousands(uring_min),
            thousands(uring_max),
            thousands(epoll_median),
            thousands(epoll_min),
            thousands(epoll_max),
            epoll_median / uring_median,
        );
    }
}
