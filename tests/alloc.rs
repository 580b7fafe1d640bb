//! No heap allocation per operation in steady state: a counting global
//! allocator watches 100,000 send/recv round trips on a socket pair, after a
//! warm-up that lets the completion table and pools reach their size. It
//! counts the calling thread's allocations only, so that tests running in
//! parallel do not see each other's.

#[macro_use]
mod util;

use ringio::{Flow, Handle, IO};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use util::Backend;

struct CountingAllocator;

thread_local! {
    /// Allocations made by this thread. Const-initialized, so reading it
    /// never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: a thread being torn down has no counter left to bump.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's layout, as the caller promised.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

conformance!(
    send_recv_round_trips_do_not_allocate,
    multishot_receive_round_trips_from_a_pool_do_not_allocate,
    zero_copy_sends_and_deadlines_do_not_allocate,
    vectored_message_round_trips_do_not_allocate,
    udp_round_trips_do_not_allocate,
    fixed_buffer_reads_do_not_allocate,
    shutdowns_do_not_allocate,
    statx_ftruncate_and_directory_fsyncs_do_not_allocate;
    kernel_only:
    // The simulator keeps every socket it ever made (a known limit, listed
    // in docs/simulation.md), so socket churn allocates there.
    opening_and_closing_sockets_does_not_allocate,
    // The simulator's namespace keys entries by owned paths, and keeps
    // every file it ever made (docs/simulation.md), so path operations
    // allocate there; on a kernel the IO copies each path into pooled
    // storage.
    path_operations_do_not_allocate,
    a_warm_path_pool_takes_longer_paths_without_allocating,
);

struct PingPong {
    client: Option<Handle>,
    server: Option<Handle>,
    round_trips_left: u32,
    /// Bytes of the current echo the client has received.
    received: usize,
    /// The client sends with `send_zc`, and gives each receive a deadline.
    zero_copy_with_deadlines: bool,
}

/// Client sends 64 bytes; the server echoes them; the client receives them
/// and starts the next round trip. Buffers are handed back and reused. A
/// stream may deliver the echo in pieces (the simulator splits receives at
/// random), so both sides take what comes.
fn client_send(io: &mut IO<PingPong>, client: Handle, mut buf: Vec<u8>, zero_copy: bool) {
    buf.resize(64, 7);
    let on_sent = move |io: &mut IO<PingPong>,
                        state: &mut PingPong,
                        result: std::io::Result<usize>,
                        mut buf: Vec<u8>| {
        assert_eq!(result.unwrap(), 64);
        buf.clear();
        state.received = 0;
        client_recv(io, client, buf, state.zero_copy_with_deadlines);
    };
    if zero_copy {
        io.send_zc(client, buf, on_sent);
    } else {
        io.send(client, buf, on_sent);
    }
}

fn client_recv(io: &mut IO<PingPong>, client: Handle, buf: Vec<u8>, with_deadline: bool) {
    let id = io.recv(client, buf, move |io, state, result, mut buf| {
        state.received += result.unwrap();
        buf.clear();
        if state.received < 64 {
            client_recv(io, client, buf, state.zero_copy_with_deadlines);
            return;
        }
        assert_eq!(state.received, 64);
        state.round_trips_left -= 1;
        if state.round_trips_left > 0 {
            client_send(io, client, buf, state.zero_copy_with_deadlines);
        }
    });
    if with_deadline {
        // Never reached: each deadline is disarmed by its receive.
        io.deadline(id, 60_000_000_000).unwrap();
    }
}

fn server_echo(io: &mut IO<PingPong>, server: Handle, buf: Vec<u8>) {
    io.recv(server, buf, move |io, _, result, buf| {
        if result.unwrap() == 0 {
            return;
        }
        // Captures the handle only, so the handler stays inline (no box).
        io.send(server, buf, move |io, _, result, mut buf| {
            assert_eq!(result.unwrap(), buf.len(), "echoed all it received");
            buf.clear();
            server_echo(io, server, buf);
        });
    });
}

fn round_trips(io: &mut IO<PingPong>, state: &mut PingPong, count: u32, client_buf: Vec<u8>) {
    state.round_trips_left = count;
    client_send(
        io,
        state.client.unwrap(),
        client_buf,
        state.zero_copy_with_deadlines,
    );
    while state.round_trips_left > 0 {
        io.run_for_ns(state, 1_000_000).unwrap();
    }
}

/// An IO with a connected pair, and the state that drives it: returns the
/// server end, on which each test starts its own echo.
fn ping_pong(backend: Backend) -> (IO<PingPong>, PingPong, Handle) {
    let mut io: IO<PingPong> = backend.io();
    let mut state = PingPong {
        client: None,
        server: None,
        round_trips_left: 0,
        received: 0,
        zero_copy_with_deadlines: false,
    };
    let (client, server) = util::tcp_pair_io(&mut io, &mut state);
    state.client = Some(client);
    state.server = Some(server);
    (io, state, server)
}

fn send_recv_round_trips_do_not_allocate(backend: Backend) {
    let (mut io, mut state, server) = ping_pong(backend);
    server_echo(&mut io, server, Vec::with_capacity(64));
    // A long warm-up: the simulator's queues reach their size only after
    // its rare long-tail latencies (and random receive splits) have come by.
    round_trips(&mut io, &mut state, 20_000, vec![7u8; 64]);

    let client_buf = vec![7u8; 64];
    let completed_before = io.stats().completed;
    let before = allocations();
    round_trips(&mut io, &mut state, 100_000, client_buf);
    let after = allocations();
    assert_eq!(after - before, 0, "allocations during 100,000 round trips");
    // Four operations per round trip, more where a receive came in pieces.
    assert!(io.stats().completed - completed_before >= 4 * 100_000);
    assert_eq!(io.stats().callbacks_boxed, 0);
    // The server's recv is still waiting: drop the IO with it in flight.
    drop(io);
}

/// Opens a socket through the IO and closes it through the loop.
fn open_and_close(io: &mut IO<u32>, closed: &mut u32) {
    let socket = io
        .open_socket("127.0.0.1:1".parse().unwrap())
        .expect("open_socket");
    io.close(socket, |_, closed, result| {
        result.expect("close");
        *closed += 1;
    });
    let target = *closed + 1;
    while *closed < target {
        io.run_for_ns(closed, 1_000_000).unwrap();
    }
}

fn opening_and_closing_sockets_does_not_allocate(backend: Backend) {
    let mut io: IO<u32> = backend.io();
    let mut closed = 0;
    for _ in 0..1_000 {
        open_and_close(&mut io, &mut closed);
    }
    let before = allocations();
    for _ in 0..10_000 {
        open_and_close(&mut io, &mut closed);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations during 10,000 sockets"
    );
    assert_eq!(io.stats().descriptors_open, 0);
}

/// The server receives with one `recv_multi` from a pool and sends each
/// pool buffer back as it is; the client is the same as above.
fn server_echo_multi(io: &mut IO<PingPong>, server: Handle, pool: ringio::BufPool) {
    io.recv_multi(server, pool, move |io, _, result, more| {
        let buf = result.expect("recv_multi");
        if more {
            io.send(server, buf, |_, _, result, buf| {
                assert_eq!(result.unwrap(), buf.len(), "echoed all it received");
            });
        } else {
            // A pool of 64 two-buffer-per-round trips only runs dry if
            // buffers are not given back: the stream must not end.
            assert_eq!(buf.len(), 0, "only the end of the stream ends it");
        }
        Flow::Continue
    });
}

fn multishot_receive_round_trips_from_a_pool_do_not_allocate(backend: Backend) {
    let (mut io, state, server) = ping_pong(backend);
    let pool = io.register_buf_pool(64, 256).unwrap();
    server_echo_multi(&mut io, server, pool);
    assert_steady_round_trips_do_not_allocate(io, state);
}

fn zero_copy_sends_and_deadlines_do_not_allocate(backend: Backend) {
    let (mut io, mut state, server) = ping_pong(backend);
    state.zero_copy_with_deadlines = true;
    server_echo(&mut io, server, Vec::with_capacity(64));
    assert_steady_round_trips_do_not_allocate(io, state);
}

/// Warms up with 20,000 round trips, then counts allocations over 100,000,
/// and drops the IO with the server's operation still in flight.
fn assert_steady_round_trips_do_not_allocate(mut io: IO<PingPong>, mut state: PingPong) {
    round_trips(&mut io, &mut state, 20_000, vec![7u8; 64]);
    let client_buf = vec![7u8; 64];
    let before = allocations();
    round_trips(&mut io, &mut state, 100_000, client_buf);
    let after = allocations();
    assert_eq!(after - before, 0, "allocations during 100,000 round trips");
    assert_eq!(io.stats().callbacks_boxed, 0);
    drop(io);
}

fn shutdowns_do_not_allocate(backend: Backend) {
    let (mut io, mut state, _server) = ping_pong(backend);
    let client = state.client.unwrap();
    let shut = |io: &mut IO<PingPong>, state: &mut PingPong| {
        io.shutdown(client, ringio::Shutdown::Write, |_, state, result| {
            result.expect("shutdown");
            state.received += 1;
        });
        let target = state.received + 1;
        while state.received < target {
            io.run_for_ns(state, 1_000_000).unwrap();
        }
    };
    // A second shutdown of the same direction is a no-op that succeeds.
    for _ in 0..1_000 {
        shut(&mut io, &mut state);
    }
    let before = allocations();
    for _ in 0..10_000 {
        shut(&mut io, &mut state);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations during 10,000 shutdowns"
    );
    assert_eq!(io.stats().callbacks_boxed, 0);
}

/// The server receives with `recv_msg` into two buffers and echoes them
/// with `send_msg`, reusing the `Vec` of buffers; the client is as above.
fn server_echo_vectored(io: &mut IO<PingPong>, server: Handle, mut bufs: Vec<Vec<u8>>) {
    bufs.iter_mut().for_each(Vec::clear);
    io.recv_msg(server, bufs, Vec::new(), move |io, _, result, bufs, _| {
        if result.expect("recv_msg").bytes == 0 {
            return;
        }
        io.send_msg(server, bufs, None, move |io, _, result, bufs| {
            let total: usize = bufs.iter().map(Vec::len).sum();
            assert_eq!(result.expect("send_msg"), total, "echoed all it received");
            server_echo_vectored(io, server, bufs);
        });
    });
}

fn vectored_message_round_trips_do_not_allocate(backend: Backend) {
    let (mut io, state, server) = ping_pong(backend);
    let bufs = vec![Vec::with_capacity(16), Vec::with_capacity(64)];
    server_echo_vectored(&mut io, server, bufs);
    assert_steady_round_trips_do_not_allocate(io, state);
}

/// Two UDP sockets: `a` sends 64 bytes to `b` with `send_to`, `b` answers
/// the sender `recv_from` named, and `a` receives the answer. Every
/// buffer comes back into `spares` and is reused.
struct Datagrams {
    a: Handle,
    b: Handle,
    b_addr: std::net::SocketAddr,
    round_trips: u64,
    spares: Vec<Vec<u8>>,
}

fn udp_round_trip(io: &mut IO<Datagrams>, state: &mut Datagrams) {
    let (a, b, b_addr) = (state.a, state.b, state.b_addr);
    let mut take = || {
        let mut buf = state.spares.pop().expect("three spare buffers");
        buf.clear();
        buf
    };
    let (at_b, at_a, mut ping) = (take(), take(), take());
    ping.resize(64, 9);
    io.recv_from(b, at_b, move |io, _, result, buf| {
        let (count, peer) = result.expect("recv_from at b");
        assert_eq!(count, 64);
        let peer = peer.expect("a UDP sender has an address");
        io.send_to(b, buf, peer, |_, state, result, buf| {
            assert_eq!(result.unwrap(), 64);
            state.spares.push(buf);
        });
    });
    io.send_to(a, ping, b_addr, |_, state, result, buf| {
        assert_eq!(result.unwrap(), 64);
        state.spares.push(buf);
    });
    io.recv_from(a, at_a, move |_, state, result, buf| {
        assert_eq!(result.expect("recv_from at a").0, 64);
        state.round_trips += 1;
        state.spares.push(buf);
    });
    let target = state.round_trips + 1;
    io.run(state).unwrap();
    assert!(state.round_trips == target && state.spares.len() == 3);
}

fn udp_round_trips_do_not_allocate(backend: Backend) {
    let mut io: IO<Datagrams> = backend.io();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = io.open_udp(any).unwrap();
    let b = io.open_udp(any).unwrap();
    let b_addr = io.local_addr(b).unwrap();
    let mut state = Datagrams {
        a,
        b,
        b_addr,
        round_trips: 0,
        spares: (0..3).map(|_| Vec::with_capacity(64)).collect(),
    };
    for _ in 0..2_000 {
        udp_round_trip(&mut io, &mut state);
    }
    let before = allocations();
    for _ in 0..10_000 {
        udp_round_trip(&mut io, &mut state);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations during 10,000 UDP round trips"
    );
    assert_eq!(io.stats().callbacks_boxed, 0);
}

/// Runs `io` until `done` reaches `target`.
fn run_until(io: &mut IO<u32>, done: &mut u32, target: u32) {
    while *done < target {
        io.run_for_ns(done, 1_000_000).unwrap();
    }
}

fn statx_ftruncate_and_directory_fsyncs_do_not_allocate(backend: Backend) {
    let scratch = util::Scratch::new(backend, "alloc-metadata");
    let mut io: IO<u32> = backend.io();
    let file = io
        .open_file(
            scratch.path("data"),
            ringio::FileOptions::new().create(true),
        )
        .unwrap();
    let dir = io
        .open_file(scratch.path("."), ringio::FileOptions::new().write(false))
        .unwrap();
    let mut done = 0u32;
    let round = |io: &mut IO<u32>, done: &mut u32, index: u64| {
        io.statx(file, |_, done, result| {
            assert_eq!(result.expect("statx").kind, ringio::FileKind::Regular);
            *done += 1;
        });
        io.ftruncate(file, (index % 4) * 4096, |_, done, result| {
            result.expect("ftruncate");
            *done += 1;
        });
        io.fdatasync(file, |_, done, result| {
            result.expect("fdatasync");
            *done += 1;
        });
        io.fsync(dir, |_, done, result| {
            result.expect("fsync of the directory");
            *done += 1;
        });
        let target = *done + 4;
        run_until(io, done, target);
    };
    for index in 0..1_000 {
        round(&mut io, &mut done, index);
    }
    let before = allocations();
    for index in 0..10_000 {
        round(&mut io, &mut done, index);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations during 10,000 rounds of statx, ftruncate, fdatasync and a directory fsync"
    );
    assert_eq!(io.stats().callbacks_boxed, 0);
}

fn path_operations_do_not_allocate(backend: Backend) {
    let scratch = util::Scratch::new(backend, "alloc-paths");
    let (a, b, dir) = (scratch.path("a"), scratch.path("b"), scratch.path("d"));
    let mut io: IO<u32> = backend.io();
    let mut done = 0u32;
    let round = |io: &mut IO<u32>, done: &mut u32| {
        let options = ringio::FileOptions::new().create(true);
        io.openat(&a, options, |io, done, result| {
            let file = result.expect("openat");
            *done += 1;
            io.close(file, |_, done, result| {
                result.expect("close");
                *done += 1;
            });
        });
        let target = *done + 2;
        run_until(io, done, target);
        io.renameat(
            &a,
            &b,
            ringio::RenameFlags::NO_REPLACE,
            |_, done, result| {
                result.expect("renameat");
                *done += 1;
            },
        );
        io.mkdirat(&dir, |_, done, result| {
            result.expect("mkdirat");
            *done += 1;
        });
        let target = *done + 2;
        run_until(io, done, target);
        io.unlinkat(&b, ringio::UnlinkFlags::FILE, |_, done, result| {
            result.expect("unlinkat");
            *done += 1;
        });
        io.unlinkat(&dir, ringio::UnlinkFlags::REMOVE_DIR, |_, done, result| {
            result.expect("unlinkat a directory");
            *done += 1;
        });
        let target = *done + 2;
        run_until(io, done, target);
    };
    for _ in 0..500 {
        round(&mut io, &mut done);
    }
    let before = allocations();
    for _ in 0..5_000 {
        round(&mut io, &mut done);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations during 5,000 rounds of openat, renameat, mkdirat and unlinkat"
    );
    assert_eq!(io.stats().callbacks_boxed, 0);
    assert_eq!(io.stats().descriptors_open, 0);
}

/// Two files made, renamed and unlinked with operations in flight in
/// pairs, so that the path pool holds two buffers and each pair's
/// operations take both.
fn path_pairs(io: &mut IO<u32>, done: &mut u32, names: [[std::path::PathBuf; 2]; 2]) {
    let [first, renamed] = names;
    for path in &first {
        io.openat(
            path,
            ringio::FileOptions::new().create(true),
            |io, _, result| {
                io.close(result.expect("openat"), |_, done, result| {
                    result.expect("close");
                    *done += 1;
                });
            },
        );
    }
    let target = *done + 2;
    run_until(io, done, target);
    for (from, to) in first.iter().zip(&renamed) {
        io.renameat(
            from,
            to,
            ringio::RenameFlags::NO_REPLACE,
            |_, done, result| {
                result.expect("renameat");
                *done += 1;
            },
        );
    }
    let target = *done + 2;
    run_until(io, done, target);
    for path in &renamed {
        io.unlinkat(path, ringio::UnlinkFlags::FILE, |_, done, result| {
            result.expect("unlinkat");
            *done += 1;
        });
    }
    let target = *done + 2;
    run_until(io, done, target);
}

/// The pool's buffers are warmed with short paths only; then both take
/// long ones: an openat each, a rename of two each, and an unlinkat each.
/// Which buffer an operation gets depends on the
/// order earlier ones completed, so a warm pool must not allocate for a
/// path longer than it has held (the cause of a rare failure of
/// `path_operations_do_not_allocate` under load, made certain here).
fn a_warm_path_pool_takes_longer_paths_without_allocating(backend: Backend) {
    let scratch = util::Scratch::new(backend, "alloc-long-paths");
    let mut io: IO<u32> = backend.io();
    let mut done = 0u32;
    let named = |prefix: char, length: usize| -> [[std::path::PathBuf; 2]; 2] {
        let name = |which: &str| scratch.path(&format!("{prefix}{which}{}", "n".repeat(length)));
        [[name("a"), name("b")], [name("c"), name("d")]]
    };
    for _ in 0..50 {
        path_pairs(&mut io, &mut done, named('s', 0));
    }
    // 250 bytes a name, under NAME_MAX (255); made before the count.
    let long = named('l', 248);
    let before = allocations();
    path_pairs(&mut io, &mut done, long);
    assert_eq!(
        allocations() - before,
        0,
        "allocations for paths longer than the warm pool had held"
    );
}

/// Reads one registered buffer's worth at a time from a file, re-arming
/// from the callback with the buffer that came back.
fn read_fixed_loop(io: &mut IO<u32>, file: Handle, buf: ringio::FixedBuf, left: u32) {
    io.read_fixed(file, buf, 0, move |io, reads, result, buf| {
        assert_eq!(result.expect("read_fixed"), 4096);
        *reads += 1;
        if left > 1 {
            read_fixed_loop(io, file, buf, left - 1);
        }
    });
}

fn fixed_buffer_reads_do_not_allocate(backend: Backend) {
    let scratch = util::Scratch::new(backend, "alloc-fixed");
    let mut io: IO<u32> = backend.io();
    let set = io.register_fixed_buffers(1, 4096).unwrap();
    let options = ringio::FileOptions::new()
        .read(true)
        .write(true)
        .create(true);
    let file = io.open_file(scratch.path("data"), options).unwrap();
    let mut buf = set.take_any().unwrap();
    buf.as_mut_capacity().fill(5);
    buf.set_len(4096);
    io.write_fixed(file, buf, 0, |_, _, result, _| {
        assert_eq!(result.unwrap(), 4096)
    });
    let mut reads = 0;
    io.run(&mut reads).unwrap();
    read_fixed_loop(&mut io, file, set.take_any().unwrap(), 1_000);
    io.run(&mut reads).unwrap();
    let before = allocations();
    read_fixed_loop(&mut io, file, set.take_any().unwrap(), 10_000);
    io.run(&mut reads).unwrap();
    assert_eq!(
        allocations() - before,
        0,
        "allocations during 10,000 fixed reads"
    );
    assert_eq!(reads, 11_000);
    assert_eq!(io.stats().callbacks_boxed, 0);
}
