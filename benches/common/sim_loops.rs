//! The simulator's speed: a TCP ping-pong of 64-byte messages between two
//! simulated nodes over `connections` connections, plus one node appending
//! 4 KiB writes with an fsync after every 8, all under the default faults'
//! latencies (faults themselves off, so every run does the same work).
//! Shared by `cargo bench --bench sim` and `cargo bench --bench compare`.
#![allow(dead_code)]

use std::time::Instant;

use ringio::sim::{SimOptions, Simulator};
use ringio::{FileOptions, Handle, IO};

/// Bytes per message.
const MESSAGE_BYTES: usize = 64;

/// One run's outcome.
pub struct SimRun {
    /// Completions (callbacks) run, by all nodes.
    pub operations: u64,
    /// Host seconds the run took.
    pub host_s: f64,
    /// Virtual seconds the world advanced.
    pub virtual_s: f64,
    /// The trace hash, the same for every run of the same seed.
    pub hash: u64,
}

impl SimRun {
    /// Simulated operations per host second.
    pub fn operations_per_s(&self) -> f64 {
        self.operations as f64 / self.host_s
    }
}

/// Each node's state: its message buffers are reused, so the steady state
/// allocates nothing on the application's side.
#[derive(Default)]
struct Peer {
    round_trips: u64,
    writes: u64,
}

/// Runs until `operations_min` operations have completed.
pub fn sim_ping_pong(seed: u64, connections: usize, operations_min: u64) -> SimRun {
    let mut sim = Simulator::new(seed, SimOptions::default().without_faults());
    let server_node = sim.add_node("server");
    let client_node = sim.add_node("client");
    let disk_node = sim.add_node("disk");
    let address = sim.address(server_node, 9000);
    let mut server: IO<Peer> = sim.io(server_node).expect("server IO");
    let mut client: IO<Peer> = sim.io(client_node).expect("client IO");
    let mut disk: IO<Peer> = sim.io(disk_node).expect("disk IO");
    let listener = server.listen(address, 1024).expect("listen");
    for _ in 0..connections {
        server.accept(listener, |io, _, socket| {
            echo(io, socket.expect("accept"), vec![0; MESSAGE_BYTES])
        });
        let socket = client.open_socket(address).expect("socket");
        client.connect(socket, address, move |io, _, result| {
            result.expect("connect");
            ping(io, socket, vec![7; MESSAGE_BYTES]);
        });
    }
    let file = disk
        .open_file("log", FileOptions::new().create(true))
        .expect("open");
    append(&mut disk, file, vec![1; 4096]);
    let (mut server_state, mut client_state, mut disk_state) =
        (Peer::default(), Peer::default(), Peer::default());
    let virtual_start_ns = sim.now_ns();
    let start = Instant::now();
    while sim.completions() < operations_min {
        server.tick(&mut server_state).expect("tick");
        client.tick(&mut client_state).expect("tick");
        disk.tick(&mut disk_state).expect("tick");
        assert!(sim.advance(), "the world went idle");
    }
    SimRun {
        operations: sim.completions(),
        host_s: start.elapsed().as_secs_f64(),
        virtual_s: (sim.now_ns() - virtual_start_ns) as f64 / 1e9,
        hash: sim.trace_hash(),
    }
}

/// Server side: receive a whole message, send it back, repeat.
fn echo(io: &mut IO<Peer>, socket: Handle, buf: Vec<u8>) {
    io.recv(socket, buf, move |io, _, result, buf| {
        if result.unwrap_or(0) == 0 {
            return;
        }
        io.send(socket, buf, move |io, _, result, mut buf| {
            result.expect("send");
            buf.resize(MESSAGE_BYTES, 0);
            echo(io, socket, buf);
        });
    });
}

/// Client side: send, then receive the echo (possibly in pieces).
fn ping(io: &mut IO<Peer>, socket: Handle, buf: Vec<u8>) {
    io.send(socket, buf, move |io, _, result, mut buf| {
        result.expect("send");
        buf.clear();
        pong(io, socket, buf, 0);
    });
}

fn pong(io: &mut IO<Peer>, socket: Handle, buf: Vec<u8>, received: usize) {
    io.recv(socket, buf, move |io, peer, result, mut buf| {
        let received = received + result.expect("recv");
        buf.clear();
        if received < MESSAGE_BYTES {
            return pong(io, socket, buf, received);
        }
        peer.round_trips += 1;
        buf.resize(MESSAGE_BYTES, 7);
        ping(io, socket, buf);
    });
}

/// Appends 4 KiB at a time, with an fsync after every 8 writes.
fn append(io: &mut IO<Peer>, file: Handle, buf: Vec<u8>) {
    io.write(file, buf, 0, move |io, peer, result, buf| {
        result.expect("write");
        peer.writes += 1;
        if peer.writes % 8 == 0 {
            io.fsync(file, move |io, _, result| {
                result.expect("fsync");
                append(io, file, buf);
            });
        } else {
            append(io, file, buf);
        }
    });
}

/// One churn run's outcome.
pub struct ChurnRun {
    /// Connections that completed their round trip and closed.
    pub connections: u64,
    /// Host seconds the run took.
    pub host_s: f64,
    /// Connections per host second in each window of `window` connections,
    /// in order: flat if churn is steady.
    pub windows_per_s: Vec<f64>,
    /// The trace hash, the same for every run of the same seed.
    pub hash: u64,
    /// (socket slots, connection slots) at the end: flat if nothing leaks.
    pub slots: (usize, usize),
}

/// Client side of the churn: its finished connections.
#[derive(Default)]
struct Churner {
    done: u64,
}

/// Connection churn: `lanes` clients at a time each connect, do one 64-byte
/// round trip, and close, then start over, until `connections_total` have
/// finished. Faults off, default latencies.
pub fn sim_churn(seed: u64, lanes: usize, connections_total: u64, window: u64) -> ChurnRun {
    let mut sim = Simulator::new(seed, SimOptions::default().without_faults());
    let server_node = sim.add_node("server");
    let client_node = sim.add_node("client");
    let address = sim.address(server_node, 9000);
    let mut server: IO<Churner> = sim.io(server_node).expect("server IO");
    let mut client: IO<Churner> = sim.io(client_node).expect("client IO");
    let listener = server.listen(address, 4096).expect("listen");
    churn_accept(&mut server, listener);
    for _ in 0..lanes {
        churn_connect(&mut client, address);
    }
    let (mut server_state, mut client_state) = (Churner::default(), Churner::default());
    let start = Instant::now();
    let mut window_start = Instant::now();
    let mut windows_per_s = Vec::new();
    while client_state.done < connections_total {
        server.tick(&mut server_state).expect("tick");
        client.tick(&mut client_state).expect("tick");
        if client_state.done >= (windows_per_s.len() as u64 + 1) * window {
            windows_per_s.push(window as f64 / window_start.elapsed().as_secs_f64());
            window_start = Instant::now();
        }
        assert!(sim.advance(), "the world went idle");
    }
    let (_, socket_slots, _, connection_slots) = sim.table_sizes();
    ChurnRun {
        connections: client_state.done,
        host_s: start.elapsed().as_secs_f64(),
        windows_per_s,
        hash: sim.trace_hash(),
        slots: (socket_slots, connection_slots),
    }
}

fn churn_accept(io: &mut IO<Churner>, listener: Handle) {
    io.accept(listener, move |io, _, socket| {
        churn_accept(io, listener);
        churn_serve(io, socket.expect("accept"), 0);
    });
}

/// Server side: receive the whole message (possibly in pieces), echo it,
/// then wait for the client's FIN and close: no reset.
fn churn_serve(io: &mut IO<Churner>, socket: Handle, received: usize) {
    io.recv(
        socket,
        vec![0; MESSAGE_BYTES - received],
        move |io, _, result, _| {
            let received = received + result.expect("recv");
            if received < MESSAGE_BYTES {
                return churn_serve(io, socket, received);
            }
            io.send(socket, vec![7; MESSAGE_BYTES], move |io, _, result, _| {
                assert_eq!(result.expect("send"), MESSAGE_BYTES);
                io.recv(socket, vec![0; 1], move |io, _, result, _| {
                    assert_eq!(result.expect("recv the FIN"), 0);
                    io.close(socket, |_, _, result| result.expect("close"));
                });
            });
        },
    );
}

fn churn_connect(io: &mut IO<Churner>, address: std::net::SocketAddr) {
    let socket = io.open_socket(address).expect("socket");
    io.connect(socket, address, move |io, _, result| {
        result.expect("connect");
        io.send(
            socket,
            vec![7; MESSAGE_BYTES],
            move |io, _, result, mut buf| {
                result.expect("send");
                buf.clear();
                churn_recv(io, socket, address, buf, 0);
            },
        );
    });
}

fn churn_recv(
    io: &mut IO<Churner>,
    socket: Handle,
    address: std::net::SocketAddr,
    buf: Vec<u8>,
    received: usize,
) {
    io.recv(socket, buf, move |io, _, result, mut buf| {
        let received = received + result.expect("recv");
        buf.clear();
        if received < MESSAGE_BYTES {
            return churn_recv(io, socket, address, buf, received);
        }
        io.close(socket, move |io, churner, result| {
            result.expect("close");
            churner.done += 1;
            churn_connect(io, address);
        });
    });
}
