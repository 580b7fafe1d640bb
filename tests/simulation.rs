//! Simulator-only tests: what only a simulated world can show, because it
//! needs several machines, virtual time, crashes, pauses or partitions.
//! (The conformance suite covers what the simulator shares with the kernel
//! backends, as `sim::<test>`.)
//!
//! Every test drives its `IO`s by hand: tick each node's `IO`, then
//! `Simulator::advance` the world to its next event.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use ringio::sim::{ClockOptions, FaultOptions, NodeId, Probability, SimOptions, Simulator};
use ringio::{FileOptions, Handle, IO};

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;

fn errno_of<T>(result: &io::Result<T>) -> Option<i32> {
    result.as_ref().err().and_then(|error| error.raw_os_error())
}

/// Ticks every `IO`, then advances the world, until `done()` holds.
/// Panics if the world goes idle first.
fn drive(sim: &mut Simulator, ios: &mut [&mut IO<()>], mut done: impl FnMut() -> bool) {
    for _ in 0..10_000_000 {
        for io in ios.iter_mut() {
            io.tick(&mut ()).unwrap();
        }
        if done() {
            return;
        }
        assert!(sim.advance(), "the world went idle: {}", sim.describe());
    }
    panic!("no progress: {}", sim.describe());
}

/// Drives until the world's clock reaches `until_ns`, stopping there: a
/// timer on the first `IO` keeps `advance` from jumping past it.
fn drive_until_ns(sim: &mut Simulator, ios: &mut [&mut IO<()>], until_ns: u64) {
    let reached = Rc::new(Cell::new(false));
    let flag = Rc::clone(&reached);
    let now_ns = ios[0].now_ns();
    ios[0].timeout(until_ns.saturating_sub(now_ns), move |_, _, _| {
        flag.set(true)
    });
    drive(sim, ios, || reached.get());
}

fn world(seed: u64) -> Simulator {
    Simulator::new(seed, SimOptions::default().without_faults())
}

/// Sends `data` on `fd` from `offset` on, one send after another.
fn send_from(io: &mut IO<()>, fd: Handle, data: Rc<Vec<u8>>, offset: usize, sent: Rc<Cell<usize>>) {
    let chunk = data[offset..]
        .iter()
        .take(1000)
        .copied()
        .collect::<Vec<u8>>();
    io.send(fd, chunk, move |io, _, result, _| {
        let next = offset + result.expect("send");
        sent.set(next);
        if next < data.len() {
            send_from(io, fd, data, next, sent);
        }
    });
}

/// Receives on `fd` into `got` until end of file or an error (kept in `error`).
fn recv_into(io: &mut IO<()>, fd: Handle, got: Rc<RefCell<Vec<u8>>>, error: Rc<Cell<Option<i32>>>) {
    io.recv(
        fd,
        Vec::with_capacity(4096),
        move |io, _, result, buf| match result {
            Ok(0) => {}
            Ok(_) => {
                got.borrow_mut().extend_from_slice(&buf);
                recv_into(io, fd, got, error);
            }
            Err(failure) => error.set(failure.raw_os_error()),
        },
    );
}

/// Two nodes and a connection from `a` to `b`.
struct Pair {
    sim: Simulator,
    a: NodeId,
    b: NodeId,
    io_a: IO<()>,
    io_b: IO<()>,
    /// The connected socket on `a`.
    client: Handle,
    /// The accepted socket on `b`.
    server: Handle,
}

fn connected_pair(seed: u64) -> Pair {
    connected_pair_with(seed, SimOptions::default().without_faults())
}

fn connected_pair_with(seed: u64, options: SimOptions) -> Pair {
    let mut sim = Simulator::new(seed, options);
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    let address = sim.address(b, 7000);
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let listener = io_b.listen(address, 4).unwrap();
    let accepted = Rc::new(Cell::new(None));
    let connected = Rc::new(Cell::new(false));
    let accepted_in = Rc::clone(&accepted);
    io_b.accept(listener, move |_, _, result| {
        accepted_in.set(Some(result.expect("accept")))
    });
    let client = io_a.open_socket(address).unwrap();
    let connected_in = Rc::clone(&connected);
    io_a.connect(client, address, move |_, _, result| {
        result.expect("connect");
        connected_in.set(true);
    });
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        connected.get() && accepted.get().is_some()
    });
    let server = accepted.get().unwrap();
    Pair {
        sim,
        a,
        b,
        io_a,
        io_b,
        client,
        server,
    }
}

// ---------------------------------------------------------------------------
// Determinism

/// Server: accepts forever, echoes what each connection sends.
fn serve(io: &mut IO<()>, listener: Handle) {
    io.accept(listener, move |io, _, result| match result {
        Ok(socket) => {
            echo(io, socket);
            serve(io, listener);
        }
        Err(error) if error.raw_os_error() == Some(libc::ECONNABORTED) => serve(io, listener),
        Err(_) => {}
    });
}

fn echo(io: &mut IO<()>, socket: Handle) {
    io.recv(
        socket,
        Vec::with_capacity(64),
        move |io, _, result, buf| match result {
            Ok(count) if count > 0 => {
                io.send(socket, buf, move |io, _, result, _| match result {
                    Ok(_) => echo(io, socket),
                    Err(_) => close_quietly(io, socket),
                });
            }
            _ => close_quietly(io, socket),
        },
    );
}

fn close_quietly(io: &mut IO<()>, fd: Handle) {
    io.close(fd, |_, _, _| {});
}

/// Client: connects, then `requests` request/response round trips.
fn client(io: &mut IO<()>, address: SocketAddr, requests: u32) {
    let socket = io.open_socket(address).unwrap();
    io.connect(socket, address, move |io, _, result| match result {
        Ok(()) => request(io, socket, requests),
        Err(_) => close_quietly(io, socket),
    });
}

fn request(io: &mut IO<()>, socket: Handle, left: u32) {
    if left == 0 {
        return close_quietly(io, socket);
    }
    let message = format!("request {left}").into_bytes();
    io.send(socket, message, move |io, _, result, _| {
        if result.is_err() {
            return close_quietly(io, socket);
        }
        io.recv(
            socket,
            Vec::with_capacity(64),
            move |io, _, result, _| match result {
                Ok(count) if count > 0 => request(io, socket, left - 1),
                _ => close_quietly(io, socket),
            },
        );
    });
}

/// Writer: every 50 ms, writes a 4 KiB block and fsyncs it, `left` times.
fn writer(io: &mut IO<()>, block: u64, left: u32) {
    let options = FileOptions::new().create(true);
    let fd = io.open_file("log", options).unwrap();
    write_block(io, fd, block, left);
}

fn write_block(io: &mut IO<()>, fd: Handle, block: u64, left: u32) {
    if left == 0 {
        return close_quietly(io, fd);
    }
    let data = vec![block as u8; 4096];
    io.write(fd, data, block * 4096, move |io, _, result, _| {
        if result.is_err() {
            return close_quietly(io, fd);
        }
        io.fsync(fd, move |io, _, _| {
            io.timeout(50 * MS, move |io, _, _| {
                write_block(io, fd, block + 1, left - 1)
            });
        });
    });
}

/// One server, two clients doing request/response, and a node writing and
/// fsyncing a file that crashes and restarts halfway, with default faults.
/// Returns the trace hash.
fn workload(seed: u64) -> u64 {
    let mut sim = Simulator::new(seed, SimOptions::default());
    let server = sim.add_node("server");
    let clients = [sim.add_node("client-1"), sim.add_node("client-2")];
    let disk = sim.add_node("disk");
    let address = sim.address(server, 7000);

    let mut server_io: IO<()> = sim.io(server).unwrap();
    let listener = server_io.listen(address, 16).unwrap();
    serve(&mut server_io, listener);
    let mut client_ios: Vec<IO<()>> = clients
        .iter()
        .map(|&node| {
            let mut io = sim.io(node).unwrap();
            client(&mut io, address, 20);
            io
        })
        .collect();
    let mut disk_io: IO<()> = sim.io(disk).unwrap();
    writer(&mut disk_io, 0, 20);

    let start_ns = sim.now_ns();
    let crash_ns = start_ns + SECOND / 2;
    let end_ns = start_ns + 2 * SECOND;
    let mut crashed = false;
    while sim.now_ns() < end_ns {
        server_io.tick(&mut ()).unwrap();
        for io in &mut client_ios {
            io.tick(&mut ()).unwrap();
        }
        disk_io.tick(&mut ()).unwrap();
        if !crashed && sim.now_ns() >= crash_ns {
            sim.crash(disk);
            assert_eq!(errno_of(&disk_io.tick(&mut ())), Some(libc::ESHUTDOWN));
            disk_io = sim.io(disk).unwrap();
            writer(&mut disk_io, 100, 20);
            crashed = true;
        }
        if !sim.advance() {
            break;
        }
    }
    assert!(crashed, "the run reached the crash: {}", sim.describe());
    assert!(sim.completions() > 100, "the workload did work");
    sim.trace_hash()
}

#[test]
fn determinism_over_100_seeds() {
    let mut hashes = BTreeSet::new();
    for seed in 0..100 {
        let first = workload(seed);
        let second = workload(seed);
        assert_eq!(first, second, "seed {seed} replayed differently");
        hashes.insert(first);
    }
    assert_eq!(hashes.len(), 100, "100 seeds, 100 different runs");
}

// ---------------------------------------------------------------------------
// Crashes

/// Writes `data` at offset 0 of the file `path` through `io` (and fsyncs
/// it and its directory, the root, if `fsync`), driving until done.
fn write_file(sim: &mut Simulator, io: &mut IO<()>, path: &str, data: Vec<u8>, fsync: bool) {
    let fd = io.open_file(path, FileOptions::new().create(true)).unwrap();
    let root = io.open_file(".", FileOptions::new().write(false)).unwrap();
    let done = Rc::new(Cell::new(false));
    let flag = Rc::clone(&done);
    io.write(fd, data, 0, move |io, _, result, _| {
        result.expect("write");
        if fsync {
            io.fsync(fd, move |io, _, result| {
                result.expect("fsync");
                io.fsync(root, move |_, _, result| {
                    result.expect("fsync of the directory");
                    flag.set(true);
                });
            });
        } else {
            flag.set(true);
        }
    });
    drive(sim, &mut [io], || done.get());
}

/// Reads up to `len` bytes of `path` through `io`.
fn read_file(sim: &mut Simulator, io: &mut IO<()>, path: &str, len: usize) -> Vec<u8> {
    let fd = io.open_file(path, FileOptions::new()).unwrap();
    let got = Rc::new(RefCell::new(None));
    let out = Rc::clone(&got);
    io.read(fd, Vec::with_capacity(len), 0, move |_, _, result, buf| {
        result.expect("read");
        *out.borrow_mut() = Some(buf);
    });
    drive(sim, &mut [io], || got.borrow().is_some());
    let data = got.borrow_mut().take().unwrap();
    data
}

#[test]
fn an_fsynced_write_survives_a_crash_and_restart() {
    for seed in 0..20 {
        let mut sim = world(seed);
        let node = sim.add_node("db");
        let mut io: IO<()> = sim.io(node).unwrap();
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        write_file(&mut sim, &mut io, "data", data.clone(), true);
        sim.crash(node);
        assert!(!sim.is_running(node));
        assert_eq!(errno_of(&io.tick(&mut ())), Some(libc::ESHUTDOWN));
        drop(io);
        let mut restarted: IO<()> = sim.io(node).unwrap();
        assert_eq!(read_file(&mut sim, &mut restarted, "data", 8192), data);
    }
}

#[test]
fn an_unsynced_write_is_lost_kept_or_torn_at_sector_granularity_never_inside_a_sector() {
    const SECTORS: usize = 8;
    let sector = SimOptions::default().disk.sector_bytes as usize;
    let (mut lost, mut kept, mut torn) = (0, 0, 0);
    for seed in 0..200 {
        let mut sim = world(seed);
        let node = sim.add_node("db");
        let mut io: IO<()> = sim.io(node).unwrap();
        // A durable file of zeros, then an unsynced write over it: sector
        // `i` becomes all `i + 1`.
        write_file(&mut sim, &mut io, "data", vec![0; SECTORS * sector], true);
        let new: Vec<u8> = (0..SECTORS * sector)
            .map(|i| (i / sector + 1) as u8)
            .collect();
        write_file(&mut sim, &mut io, "data", new, false);
        sim.crash(node);
        drop(io);
        let mut restarted: IO<()> = sim.io(node).unwrap();
        let after = read_file(&mut sim, &mut restarted, "data", SECTORS * sector);
        assert_eq!(after.len(), SECTORS * sector);
        let mut kept_sectors = 0;
        for (index, bytes) in after.chunks(sector).enumerate() {
            let old = bytes.iter().all(|&byte| byte == 0);
            let new = bytes.iter().all(|&byte| byte == index as u8 + 1);
            assert!(old || new, "seed {seed}: sector {index} torn inside");
            kept_sectors += usize::from(new);
        }
        match kept_sectors {
            0 => lost += 1,
            SECTORS => kept += 1,
            _ => torn += 1,
        }
    }
    assert!(
        lost > 0 && kept > 0 && torn > 0,
        "lost {lost} kept {kept} torn {torn}"
    );
}

#[test]
fn a_crashed_node_fails_with_eshutdown_its_peers_see_resets_and_its_callbacks_never_run() {
    let Pair {
        mut sim,
        b,
        mut io_a,
        mut io_b,
        client,
        server,
        ..
    } = connected_pair(1);
    let server_ran = Rc::new(Cell::new(false));
    let ran = Rc::clone(&server_ran);
    io_b.recv(server, Vec::with_capacity(16), move |_, _, _, _| {
        ran.set(true)
    });
    let client_errno = Rc::new(Cell::new(None));
    let errno = Rc::clone(&client_errno);
    io_a.recv(client, Vec::with_capacity(16), move |_, _, result, _| {
        errno.set(Some(errno_of(&result)))
    });
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || true);
    sim.crash(b);
    assert_eq!(errno_of(&io_b.tick(&mut ())), Some(libc::ESHUTDOWN));
    assert_eq!(
        errno_of(&io_b.run_for_ns(&mut (), MS)),
        Some(libc::ESHUTDOWN)
    );
    drive(&mut sim, &mut [&mut io_a], || client_errno.get().is_some());
    assert_eq!(client_errno.get(), Some(Some(libc::ECONNRESET)));
    drop(io_b);
    assert!(
        !server_ran.get(),
        "the crashed IO's recv callback never ran"
    );
    // The node restarts with a new process.
    let restarted: io::Result<IO<()>> = sim.io(b);
    assert!(restarted.is_ok());
}

// ---------------------------------------------------------------------------
// Partitions and clogs

#[test]
fn connect_across_a_symmetric_partition_times_out() {
    let mut sim = world(2);
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    let address = sim.address(b, 7000);
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let _listener = io_b.listen(address, 4).unwrap();
    sim.partition(&[a], &[b], true);
    let start_ns = sim.now_ns();
    let outcome = Rc::new(Cell::new(None));
    let out = Rc::clone(&outcome);
    let socket = io_a.open_socket(address).unwrap();
    io_a.connect(socket, address, move |_, _, result| {
        out.set(Some(errno_of(&result)))
    });
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        outcome.get().is_some()
    });
    assert_eq!(outcome.get(), Some(Some(libc::ETIMEDOUT)));
    // Linux's schedule: SYNs at 0, 1, 3, 7, 15, 31 and 63 s, then 127 s.
    let timeout_ns = sim.options().network.syn_timeout_ns();
    assert_eq!(timeout_ns, 127 * SECOND);
    assert!(sim.now_ns() - start_ns >= timeout_ns);
}

#[test]
fn a_connect_during_a_partition_retransmits_its_syn_and_succeeds_once_healed() {
    let mut sim = world(2);
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    let address = sim.address(b, 7000);
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let listener = io_b.listen(address, 4).unwrap();
    let accepted = Rc::new(Cell::new(false));
    let flag = Rc::clone(&accepted);
    io_b.accept(listener, move |_, _, result| {
        result.expect("accept");
        flag.set(true);
    });
    sim.partition(&[a], &[b], true);
    let start_ns = sim.now_ns();
    let outcome = Rc::new(Cell::new(None));
    let out = Rc::clone(&outcome);
    let socket = io_a.open_socket(address).unwrap();
    io_a.connect(socket, address, move |_, _, result| {
        out.set(Some(errno_of(&result)))
    });
    drive_until_ns(&mut sim, &mut [&mut io_a, &mut io_b], start_ns + 2 * SECOND);
    assert_eq!(outcome.get(), None, "the SYNs at 0 s and 1 s were lost");
    sim.heal();
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        outcome.get().is_some() && accepted.get()
    });
    assert_eq!(outcome.get(), Some(None), "connected");
    let elapsed_ns = sim.now_ns() - start_ns;
    assert!(elapsed_ns >= 3 * SECOND, "the SYN at 3 s got through");
    assert!(elapsed_ns < 4 * SECOND);
}

#[test]
fn data_across_a_partition_stalls_then_flows_after_heal_with_nothing_lost_or_reordered() {
    let Pair {
        mut sim,
        a,
        b,
        mut io_a,
        mut io_b,
        client,
        server,
    } = connected_pair(3);
    let data = Rc::new(ringio_pattern(100_000));
    let got = Rc::new(RefCell::new(Vec::new()));
    let error = Rc::new(Cell::new(None));
    recv_into(&mut io_b, server, Rc::clone(&got), Rc::clone(&error));
    sim.partition(&[a], &[b], true);
    let sent = Rc::new(Cell::new(0));
    send_from(&mut io_a, client, Rc::clone(&data), 0, Rc::clone(&sent));
    let retransmit_ns = sim.options().network.retransmit_timeout_ns;
    let heal_ns = sim.now_ns() + retransmit_ns / 2;
    drive_until_ns(&mut sim, &mut [&mut io_a, &mut io_b], heal_ns);
    assert!(got.borrow().is_empty(), "nothing crosses the partition");
    assert!(sent.get() > 0, "sends complete into the buffer");
    sim.heal();
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        got.borrow().len() == data.len()
    });
    assert_eq!(*got.borrow(), *data, "every byte, in order");
    assert_eq!(error.get(), None);
}

#[test]
fn a_partition_past_the_retransmit_timeout_breaks_the_connection_with_etimedout() {
    let Pair {
        mut sim,
        a,
        b,
        mut io_a,
        mut io_b,
        client,
        server,
    } = connected_pair(4);
    let got = Rc::new(RefCell::new(Vec::new()));
    let server_error = Rc::new(Cell::new(None));
    recv_into(&mut io_b, server, Rc::clone(&got), Rc::clone(&server_error));
    let client_error = Rc::new(Cell::new(None));
    recv_into(
        &mut io_a,
        client,
        Rc::new(RefCell::new(Vec::new())),
        Rc::clone(&client_error),
    );
    sim.partition(&[a], &[b], true);
    let start_ns = sim.now_ns();
    let sent = Rc::new(Cell::new(0));
    send_from(&mut io_a, client, Rc::new(vec![7; 1000]), 0, sent);
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        client_error.get().is_some() && server_error.get().is_some()
    });
    assert_eq!(client_error.get(), Some(libc::ETIMEDOUT));
    assert_eq!(server_error.get(), Some(libc::ETIMEDOUT));
    assert!(got.borrow().is_empty());
    assert!(sim.now_ns() - start_ns >= sim.options().network.retransmit_timeout_ns);
}

#[test]
fn an_asymmetric_partition_lets_one_direction_through() {
    let Pair {
        mut sim,
        a,
        b,
        mut io_a,
        mut io_b,
        client,
        server,
    } = connected_pair(5);
    sim.partition(&[a], &[b], false); // a -> b blocked, b -> a open
    let at_a = Rc::new(RefCell::new(Vec::new()));
    let at_b = Rc::new(RefCell::new(Vec::new()));
    let error = Rc::new(Cell::new(None));
    recv_into(&mut io_a, client, Rc::clone(&at_a), Rc::clone(&error));
    recv_into(&mut io_b, server, Rc::clone(&at_b), Rc::clone(&error));
    send_from(
        &mut io_a,
        client,
        Rc::new(b"a to b".to_vec()),
        0,
        Rc::default(),
    );
    send_from(
        &mut io_b,
        server,
        Rc::new(b"b to a".to_vec()),
        0,
        Rc::default(),
    );
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        at_a.borrow().len() == 6
    });
    assert_eq!(*at_a.borrow(), b"b to a");
    let until_ns = sim.now_ns() + 200 * MS;
    drive_until_ns(&mut sim, &mut [&mut io_a, &mut io_b], until_ns);
    assert!(at_b.borrow().is_empty(), "a to b is held");
    sim.heal();
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        at_b.borrow().len() == 6
    });
    assert_eq!(*at_b.borrow(), b"a to b");
    assert_eq!(error.get(), None);
}

#[test]
fn a_clog_delays_traffic_without_dropping_any() {
    let Pair {
        mut sim,
        a,
        b,
        mut io_a,
        mut io_b,
        client,
        server,
    } = connected_pair(6);
    let clog_ns = 300 * MS;
    let start_ns = sim.now_ns();
    sim.clog(a, b, clog_ns);
    let data = Rc::new(ringio_pattern(20_000));
    let got = Rc::new(RefCell::new(Vec::new()));
    let first_ns = Rc::new(Cell::new(None));
    let error = Rc::new(Cell::new(None));
    {
        let first_ns = Rc::clone(&first_ns);
        let got = Rc::clone(&got);
        let error = Rc::clone(&error);
        io_b.recv(
            server,
            Vec::with_capacity(4096),
            move |io, _, result, buf| {
                result.expect("recv");
                first_ns.set(Some(io.now_ns()));
                got.borrow_mut().extend_from_slice(&buf);
                recv_into(io, server, got, error);
            },
        );
    }
    send_from(&mut io_a, client, Rc::clone(&data), 0, Rc::default());
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        got.borrow().len() == data.len()
    });
    assert!(
        first_ns.get().unwrap() >= start_ns + clog_ns,
        "held until the clog cleared"
    );
    assert_eq!(*got.borrow(), *data);
    assert_eq!(error.get(), None);
}

// ---------------------------------------------------------------------------
// Pause, liveness

#[test]
fn a_paused_node_s_timers_do_not_fire_and_its_clock_is_frozen_until_it_resumes() {
    let mut sim = world(7);
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let start_ns = sim.now_ns();
    let fired_ns = Rc::new(Cell::new(None));
    let fired = Rc::clone(&fired_ns);
    io_a.timeout(10 * MS, move |io, _, result| {
        result.unwrap();
        fired.set(Some(io.now_ns()));
    });
    sim.pause(a, 100 * MS);
    // Node b's clock runs on; a's stays where the pause found it.
    drive_until_ns(&mut sim, &mut [&mut io_b, &mut io_a], start_ns + 50 * MS);
    assert_eq!(io_b.now_ns(), start_ns + 50 * MS);
    assert_eq!(io_a.now_ns(), start_ns, "a's clock is frozen");
    assert_eq!(fired_ns.get(), None, "a's timer did not fire while paused");
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        fired_ns.get().is_some()
    });
    assert!(fired_ns.get().unwrap() >= start_ns + 100 * MS);
    assert!(io_a.now_ns() >= start_ns + 100 * MS, "a's clock runs again");
}

#[test]
fn liveness_turns_every_fault_off_and_lifts_partitions_and_clogs() {
    let mut sim = Simulator::new(8, SimOptions::default());
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    assert_ne!(sim.options().faults, FaultOptions::none());
    sim.partition(&[a], &[b], true);
    sim.clog(b, a, 10 * SECOND);
    sim.liveness();
    assert_eq!(sim.options(), SimOptions::default().without_faults());
    // The nodes talk again, with no clog delay.
    let address = sim.address(b, 7000);
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let listener = io_b.listen(address, 4).unwrap();
    let accepted = Rc::new(Cell::new(false));
    let flag = Rc::clone(&accepted);
    io_b.accept(listener, move |_, _, result| {
        result.expect("accept");
        flag.set(true);
    });
    let socket = io_a.open_socket(address).unwrap();
    let connected = Rc::new(Cell::new(false));
    let flag = Rc::clone(&connected);
    io_a.connect(socket, address, move |_, _, result| {
        result.expect("connect");
        flag.set(true);
    });
    let start_ns = sim.now_ns();
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        accepted.get() && connected.get()
    });
    assert!(
        sim.now_ns() - start_ns < SECOND,
        "no clog held the handshake"
    );
}

// ---------------------------------------------------------------------------
// Connect errors, drop

fn connect_errno(sim: &mut Simulator, io: &mut IO<()>, address: SocketAddr) -> Option<i32> {
    let outcome = Rc::new(Cell::new(None));
    let out = Rc::clone(&outcome);
    let socket = io.open_socket(address).unwrap();
    io.connect(socket, address, move |_, _, result| {
        out.set(Some(errno_of(&result)))
    });
    drive(sim, &mut [io], || outcome.get().is_some());
    outcome.get().unwrap()
}

#[test]
fn connect_to_a_node_where_nothing_listens_is_refused() {
    let mut sim = world(9);
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let _io_b: IO<()> = sim.io(b).unwrap();
    let address = sim.address(b, 7000);
    assert_eq!(
        connect_errno(&mut sim, &mut io_a, address),
        Some(libc::ECONNREFUSED)
    );
}

#[test]
fn connect_to_an_unknown_address_is_enetunreach() {
    let mut sim = world(10);
    let a = sim.add_node("a");
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let address: SocketAddr = "10.9.9.9:7000".parse().unwrap();
    assert_eq!(
        connect_errno(&mut sim, &mut io_a, address),
        Some(libc::ENETUNREACH)
    );
}

#[test]
fn dropping_an_io_with_operations_in_flight_frees_everything_and_the_node_can_restart() {
    let Pair {
        mut sim,
        b,
        mut io_a,
        mut io_b,
        client,
        server,
        ..
    } = connected_pair(11);
    // Each callback holds a clone of `token`: a freed callback drops its
    // clone; a leaked one (the drop's last resort) would keep it.
    let token = Rc::new(());
    let ran = Rc::new(Cell::new(0));
    let listener = io_b.listen(sim.address(b, 7001), 4).unwrap();
    let file = io_b
        .open_file("data", FileOptions::new().create(true))
        .unwrap();
    let (t1, t2, t3, t4) = (
        Rc::clone(&token),
        Rc::clone(&token),
        Rc::clone(&token),
        Rc::clone(&token),
    );
    let (r1, r2, r3, r4) = (
        Rc::clone(&ran),
        Rc::clone(&ran),
        Rc::clone(&ran),
        Rc::clone(&ran),
    );
    io_b.recv(server, Vec::with_capacity(64), move |_, _, _, _| {
        drop(t1);
        r1.set(r1.get() + 1);
    });
    io_b.accept(listener, move |_, _, _| {
        drop(t2);
        r2.set(r2.get() + 1);
    });
    io_b.write(file, vec![1u8; 4096], 0, move |_, _, _, _| {
        drop(t3);
        r3.set(r3.get() + 1);
    });
    io_b.timeout(SECOND, move |_, _, _| {
        drop(t4);
        r4.set(r4.get() + 1);
    });
    // Hand them to the world: the recv and the accept wait, the write is
    // on the disk, the timer is due in a second.
    io_b.tick(&mut ()).unwrap();
    assert_eq!(io_b.in_flight(), 4);
    assert_eq!(Rc::strong_count(&token), 5);
    drop(io_b);
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "every callback was freed, none leaked"
    );
    assert_eq!(ran.get(), 0, "no callback ran");
    assert!(!sim.is_running(b));
    // The peer sees the process's sockets closed, as at exit.
    let eof = Rc::new(Cell::new(false));
    let flag = Rc::clone(&eof);
    io_a.recv(client, Vec::with_capacity(64), move |_, _, result, _| {
        assert_eq!(result.unwrap(), 0);
        flag.set(true);
    });
    drive(&mut sim, &mut [&mut io_a], || eof.get());
    // A new process on the node works, and can listen on the same port.
    let address = sim.address(b, 7001);
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let listener = io_b.listen(address, 4).unwrap();
    let accepted = Rc::new(Cell::new(false));
    let flag = Rc::clone(&accepted);
    io_b.accept(listener, move |_, _, result| {
        result.expect("accept");
        flag.set(true);
    });
    let socket = io_a.open_socket(address).unwrap();
    io_a.connect(socket, address, |_, _, result| result.expect("connect"));
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || accepted.get());
}

// ---------------------------------------------------------------------------
// Half-open connections, asymmetric partitions, bandwidth, churn

fn half_open_pair(seed: u64) -> Pair {
    let mut options = SimOptions::default().without_faults();
    options.network.crash_half_open_probability = Probability::ALWAYS;
    connected_pair_with(seed, options)
}

/// After a half-open crash of `b`: the client waits in a recv (nothing
/// tells it), then sends one byte; returns the recv's errno when it ends.
fn send_into_a_half_open_peer(pair: &mut Pair, restart_after_ns: Option<u64>) -> Option<i32> {
    let error = Rc::new(Cell::new(None));
    let got = Rc::new(RefCell::new(Vec::new()));
    recv_into(
        &mut pair.io_a,
        pair.client,
        Rc::clone(&got),
        Rc::clone(&error),
    );
    pair.sim.crash(pair.b);
    let idle_until_ns = pair.sim.now_ns() + 10 * SECOND;
    drive_until_ns(&mut pair.sim, &mut [&mut pair.io_a], idle_until_ns);
    assert_eq!(error.get(), None, "a peer that only reads is never told");
    let sent = Rc::new(Cell::new(0));
    send_from(&mut pair.io_a, pair.client, Rc::new(vec![1]), 0, sent);
    let mut restarted = None;
    if let Some(delay_ns) = restart_after_ns {
        let until_ns = pair.sim.now_ns() + delay_ns;
        drive_until_ns(&mut pair.sim, &mut [&mut pair.io_a], until_ns);
        restarted = Some(pair.sim.io::<()>(pair.b).unwrap());
    }
    drive(&mut pair.sim, &mut [&mut pair.io_a], || {
        error.get().is_some()
    });
    drop(restarted);
    error.get()
}

#[test]
fn a_half_open_peer_that_sends_into_a_crashed_node_times_out() {
    let mut pair = half_open_pair(11);
    let start_ns = pair.sim.now_ns();
    assert_eq!(
        send_into_a_half_open_peer(&mut pair, None),
        Some(libc::ETIMEDOUT)
    );
    let retransmit_ns = pair.sim.options().network.retransmit_timeout_ns;
    assert!(pair.sim.now_ns() - start_ns >= 10 * SECOND + retransmit_ns);
}

#[test]
fn a_half_open_peer_that_sends_to_the_rebooted_node_is_reset() {
    let mut pair = half_open_pair(12);
    let errno = send_into_a_half_open_peer(&mut pair, Some(300 * MS));
    assert_eq!(errno, Some(libc::ECONNRESET));
}

#[test]
fn data_whose_way_back_is_cut_arrives_but_times_the_connection_out() {
    let Pair {
        mut sim,
        a,
        b,
        mut io_a,
        mut io_b,
        client,
        server,
    } = connected_pair(13);
    sim.partition(&[b], &[a], false); // b -> a blocked: no ACK reaches a
    let got = Rc::new(RefCell::new(Vec::new()));
    let server_error = Rc::new(Cell::new(None));
    recv_into(&mut io_b, server, Rc::clone(&got), Rc::clone(&server_error));
    let client_error = Rc::new(Cell::new(None));
    let unused = Rc::new(RefCell::new(Vec::new()));
    recv_into(&mut io_a, client, unused, Rc::clone(&client_error));
    send_from(
        &mut io_a,
        client,
        Rc::new(b"a to b".to_vec()),
        0,
        Rc::default(),
    );
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        client_error.get().is_some()
    });
    assert_eq!(*got.borrow(), b"a to b", "a reaches b");
    assert_eq!(
        client_error.get(),
        Some(libc::ETIMEDOUT),
        "no ACK came back"
    );
}

/// Virtual time to move `len` bytes from `a` to `b` with `bandwidth_bytes_per_s`.
fn transfer_ns(len: usize, bandwidth_bytes_per_s: u64) -> u64 {
    let mut options = SimOptions::default().without_faults();
    options.network.bandwidth_bytes_per_s = bandwidth_bytes_per_s;
    let Pair {
        mut sim,
        mut io_a,
        mut io_b,
        client,
        server,
        ..
    } = connected_pair_with(14, options);
    let data = Rc::new(ringio_pattern(len));
    let got = Rc::new(RefCell::new(Vec::new()));
    recv_into(&mut io_b, server, Rc::clone(&got), Rc::default());
    let start_ns = sim.now_ns();
    send_from(&mut io_a, client, Rc::clone(&data), 0, Rc::default());
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        got.borrow().len() == data.len()
    });
    assert_eq!(*got.borrow(), *data);
    sim.now_ns() - start_ns
}

#[test]
fn a_transfer_takes_at_least_its_size_over_the_bandwidth() {
    let bandwidth = 100_000_000; // 100 MB/s
    let small_ns = transfer_ns(1_000, bandwidth);
    let large_ns = transfer_ns(4 << 20, bandwidth);
    let wire_ns = (4 << 20) * SECOND / bandwidth;
    assert!(large_ns >= wire_ns, "{large_ns} ns < {wire_ns} ns");
    assert!(
        large_ns < 2 * wire_ns,
        "{large_ns} ns: the link, not the window, limits it"
    );
    assert!(
        small_ns < MS,
        "{small_ns} ns: a small message pays the latency only"
    );
}

#[test]
fn churn_of_20000_connections_reuses_socket_and_connection_slots() {
    let mut sim = world(15);
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    let address = sim.address(b, 7000);
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let listener = io_b.listen(address, 64).unwrap();
    serve(&mut io_b, listener);
    let mut slots_max = (0, 0);
    let done = Rc::new(Cell::new(0u64));
    for round in 0..2_000 {
        for _ in 0..10 {
            one_round_trip(&mut io_a, address, Rc::clone(&done));
        }
        let target = (round + 1) * 10;
        drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
            done.get() == target
        });
        let (_, sockets, _, connections) = sim.table_sizes();
        if round == 10 {
            slots_max = (sockets, connections);
        }
        assert!(
            sockets <= slots_max.0.max(64),
            "socket slots grow: {sockets}"
        );
        assert!(
            connections <= slots_max.1.max(64),
            "connection slots grow: {connections}"
        );
    }
    let until_ns = sim.now_ns() + SECOND;
    drive_until_ns(&mut sim, &mut [&mut io_a, &mut io_b], until_ns);
    let (sockets_open, _, connections_live, _) = sim.table_sizes();
    assert_eq!(sockets_open, 1, "only the listener is left");
    assert_eq!(connections_live, 0);
}

// ---------------------------------------------------------------------------
// Clocks, CPU time, injected resource errors, BUGGIFY

fn clocked_world(seed: u64, clocks: ClockOptions) -> Simulator {
    let mut options = SimOptions::default().without_faults();
    options.clocks = clocks;
    Simulator::new(seed, options)
}

/// Ticks every `IO` and advances the world until its clock reaches `until_ns`.
fn drive_world_until(sim: &mut Simulator, ios: &mut [&mut IO<()>], until_ns: u64) {
    while sim.now_ns() < until_ns {
        for io in ios.iter_mut() {
            io.tick(&mut ()).unwrap();
        }
        if !sim.advance() {
            break;
        }
    }
}

#[test]
fn each_node_has_its_own_clocks_with_offset_and_drift_and_timers_keep_to_them() {
    let clocks = ClockOptions {
        drift_ppm_max: 1_000,
        monotonic_offset_max_ns: 3_600 * SECOND,
        wall_offset_max_ns: SECOND,
        wall_jump_interval_mean_ns: 0,
        wall_jump_max_ns: 0,
    };
    let mut sim = clocked_world(21, clocks);
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let starts = [io_a.now_ns(), io_b.now_ns()];
    assert_ne!(
        starts[0], starts[1],
        "monotonic clocks are not comparable across nodes"
    );
    assert_ne!(io_a.realtime_ns(), io_b.realtime_ns());
    let (fired_a, fired_b) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(None)));
    for (io, fired) in [(&mut io_a, &fired_a), (&mut io_b, &fired_b)] {
        let fired = Rc::clone(fired);
        io.timeout(10 * SECOND, move |io, _, result| {
            result.unwrap();
            fired.set(Some(io.now_ns()));
        });
    }
    let world_start_ns = sim.now_ns();
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        fired_a.get().is_some() && fired_b.get().is_some()
    });
    for (fired, start) in [(fired_a.get(), starts[0]), (fired_b.get(), starts[1])] {
        let elapsed_ns = fired.unwrap() - start;
        assert!(
            elapsed_ns >= 10 * SECOND,
            "never early on the node's own clock"
        );
        assert!(elapsed_ns < 10 * SECOND + MS);
    }
    // The two oscillators ran at different rates: 10 s of each took a
    // different stretch of world time.
    let world_elapsed_ns = sim.now_ns() - world_start_ns;
    assert!(world_elapsed_ns.abs_diff(10 * SECOND) <= 10 * SECOND / 1_000 + MS);
    let a_elapsed_ns = io_a.now_ns() - starts[0];
    let b_elapsed_ns = io_b.now_ns() - starts[1];
    assert_ne!(a_elapsed_ns, b_elapsed_ns, "drift");
}

#[test]
fn a_crash_restarts_the_monotonic_clock_and_the_wall_clock_runs_on() {
    let clocks = ClockOptions {
        monotonic_offset_max_ns: 24 * 3_600 * SECOND,
        ..ClockOptions::none()
    };
    let mut sim = clocked_world(22, clocks);
    let a = sim.add_node("a");
    let io_a: IO<()> = sim.io(a).unwrap();
    let (monotonic_ns, wall_ns) = (io_a.now_ns(), io_a.realtime_ns());
    drop(io_a);
    // A process restart without a crash keeps the machine's clock.
    let io_a: IO<()> = sim.io(a).unwrap();
    assert_eq!(io_a.now_ns(), monotonic_ns);
    drop(io_a);
    sim.crash(a);
    let io_a: IO<()> = sim.io(a).unwrap();
    assert_ne!(
        io_a.now_ns(),
        monotonic_ns,
        "a boot starts the monotonic clock over"
    );
    assert_eq!(io_a.realtime_ns(), wall_ns, "the wall clock survives");
}

#[test]
fn wall_clocks_step_backward_and_forward_while_monotonic_clocks_never_do() {
    let clocks = ClockOptions {
        wall_jump_interval_mean_ns: SECOND,
        wall_jump_max_ns: 500 * MS,
        ..ClockOptions::none()
    };
    let mut sim = clocked_world(23, clocks);
    let a = sim.add_node("a");
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let (mut backward, mut forward) = (0, 0);
    let (mut last_wall_ns, mut last_monotonic_ns) = (io_a.realtime_ns(), io_a.now_ns());
    for _ in 0..600 {
        let until_ns = sim.now_ns() + 100 * MS;
        drive_world_until(&mut sim, &mut [&mut io_a], until_ns);
        let (wall_ns, monotonic_ns) = (io_a.realtime_ns(), io_a.now_ns());
        assert!(monotonic_ns >= last_monotonic_ns);
        let monotonic_step = monotonic_ns - last_monotonic_ns;
        if wall_ns < last_wall_ns {
            backward += 1;
        } else if wall_ns - last_wall_ns > monotonic_step {
            forward += 1;
        }
        (last_wall_ns, last_monotonic_ns) = (wall_ns, monotonic_ns);
    }
    assert!(backward > 5, "{backward} backward steps in a minute");
    assert!(forward > 5, "{forward} forward steps in a minute");
}

#[test]
fn callbacks_cost_cpu_time_so_a_spinning_program_sees_its_clock_move() {
    let mut options = SimOptions::default().without_faults();
    options.cpu.callback_mean_ns = MS;
    let mut sim = Simulator::new(24, options);
    let a = sim.add_node("a");
    let mut io: IO<u32> = sim.io(a).unwrap();
    let start_ns = io.now_ns();
    fn spin(io: &mut IO<u32>, left: u32) {
        if left > 0 {
            io.nop(move |io, _, _| spin(io, left - 1));
        }
    }
    spin(&mut io, 1_000);
    // A timeout set before the spin fires during it: the spinning callbacks
    // take virtual time.
    io.timeout(100 * MS, |io, fired_at, result| {
        result.unwrap();
        *fired_at = io.in_flight();
    });
    let mut nops_left_when_fired = 0;
    io.run(&mut nops_left_when_fired).unwrap();
    let elapsed_ns = io.now_ns() - start_ns;
    assert!(
        elapsed_ns > 500 * MS,
        "1,000 callbacks of 1 ms mean took {elapsed_ns} ns"
    );
    assert!(
        nops_left_when_fired > 0,
        "the timer fired while the program spun"
    );
    // Without the cost a spin takes no virtual time at all.
    let mut sim = world(24);
    let a = sim.add_node("a");
    let mut io: IO<u32> = sim.io(a).unwrap();
    let start_ns = io.now_ns();
    spin(&mut io, 1_000);
    io.run(&mut 0).unwrap();
    assert_eq!(io.now_ns(), start_ns);
}

fn faults_only(set: impl FnOnce(&mut FaultOptions)) -> SimOptions {
    let mut options = SimOptions::default().without_faults();
    set(&mut options.faults);
    options
}

#[test]
fn injected_eintr_is_absorbed_by_the_loop() {
    let options = faults_only(|faults| faults.interrupt = Probability::percent(50));
    let Pair {
        mut sim,
        mut io_a,
        mut io_b,
        client,
        server,
        ..
    } = connected_pair_with(25, options);
    let data = Rc::new(ringio_pattern(100_000));
    let got = Rc::new(RefCell::new(Vec::new()));
    let error = Rc::new(Cell::new(None));
    recv_into(&mut io_b, server, Rc::clone(&got), Rc::clone(&error));
    send_from(&mut io_a, client, Rc::clone(&data), 0, Rc::default());
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        got.borrow().len() == data.len()
    });
    assert_eq!(*got.borrow(), *data);
    assert_eq!(error.get(), None, "no EINTR reached the application");
    // Files too (a world of their own: `write_file` ticks one IO only).
    let options = faults_only(|faults| faults.interrupt = Probability::percent(50));
    let mut sim = Simulator::new(25, options);
    let node = sim.add_node("disk");
    let mut io: IO<()> = sim.io(node).unwrap();
    write_file(&mut sim, &mut io, "f", vec![9; 4096], true);
    assert_eq!(read_file(&mut sim, &mut io, "f", 4096), vec![9; 4096]);
}

#[test]
fn injected_emfile_on_accept_leaves_the_connection_queued() {
    let options = faults_only(|faults| faults.descriptors = Probability::percent(60));
    let mut sim = Simulator::new(26, options);
    let a = sim.add_node("a");
    let b = sim.add_node("b");
    let address = sim.address(b, 7000);
    let mut io_a: IO<()> = sim.io(a).unwrap();
    let mut io_b: IO<()> = sim.io(b).unwrap();
    let listener = loop {
        match io_b.listen(address, 4) {
            Ok(listener) => break listener,
            Err(error) => assert!(matches!(
                errno_of::<()>(&Err(error)),
                Some(libc::EMFILE | libc::ENFILE)
            )),
        }
    };
    let socket = loop {
        if let Ok(socket) = io_a.open_socket(address) {
            break socket;
        }
    };
    let connected = Rc::new(Cell::new(false));
    let flag = Rc::clone(&connected);
    io_a.connect(socket, address, move |_, _, result| {
        result.expect("connect");
        flag.set(true);
    });
    let refusals = Rc::new(Cell::new(0));
    let accepted = Rc::new(Cell::new(None));
    fn accept_retrying(
        io: &mut IO<()>,
        listener: Handle,
        refusals: Rc<Cell<u32>>,
        accepted: Rc<Cell<Option<Handle>>>,
    ) {
        io.accept(listener, move |io, _, result| match result {
            Ok(socket) => accepted.set(Some(socket)),
            Err(error) => {
                assert!(matches!(
                    error.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE)
                ));
                refusals.set(refusals.get() + 1);
                accept_retrying(io, listener, refusals, accepted);
            }
        });
    }
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || connected.get());
    accept_retrying(
        &mut io_b,
        listener,
        Rc::clone(&refusals),
        Rc::clone(&accepted),
    );
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        accepted.get().is_some()
    });
    assert!(refusals.get() > 0, "the seed drew no EMFILE");
    let server = accepted.get().unwrap();
    assert_eq!(
        io_b.peer_addr(server).unwrap(),
        io_a.local_addr(socket).unwrap()
    );
}

#[test]
fn injected_enomem_on_send_sends_nothing_and_the_connection_survives() {
    let options = faults_only(|faults| faults.send_buffers = Probability::percent(30));
    let Pair {
        mut sim,
        mut io_a,
        mut io_b,
        client,
        server,
        ..
    } = connected_pair_with(27, options);
    let data = Rc::new(ringio_pattern(50_000));
    let got = Rc::new(RefCell::new(Vec::new()));
    recv_into(&mut io_b, server, Rc::clone(&got), Rc::default());
    let refusals = Rc::new(Cell::new(0));
    fn send_retrying(
        io: &mut IO<()>,
        fd: Handle,
        data: Rc<Vec<u8>>,
        offset: usize,
        refusals: Rc<Cell<u32>>,
    ) {
        if offset == data.len() {
            return;
        }
        let chunk = data[offset..(offset + 1000).min(data.len())].to_vec();
        io.send(fd, chunk, move |io, _, result, _| match result {
            Ok(count) => send_retrying(io, fd, data, offset + count, refusals),
            Err(error) => {
                assert!(matches!(
                    error.raw_os_error(),
                    Some(libc::ENOMEM | libc::ENOBUFS)
                ));
                refusals.set(refusals.get() + 1);
                send_retrying(io, fd, data, offset, refusals);
            }
        });
    }
    send_retrying(&mut io_a, client, Rc::clone(&data), 0, Rc::clone(&refusals));
    drive(&mut sim, &mut [&mut io_a, &mut io_b], || {
        got.borrow().len() == data.len()
    });
    assert!(refusals.get() > 0);
    assert_eq!(
        *got.borrow(),
        *data,
        "nothing lost, duplicated or reordered"
    );
}

#[test]
fn sim_coin_is_drawn_from_the_seed_and_never_comes_up_without_faults() {
    let draws = |options: SimOptions| -> Vec<bool> {
        let mut sim = Simulator::new(28, options);
        let a = sim.add_node("a");
        let io: IO<()> = sim.io(a).unwrap();
        (0..10_000)
            .map(|_| io.sim_coin(Probability::percent(10)))
            .collect()
    };
    let first = draws(SimOptions::default());
    assert_eq!(first, draws(SimOptions::default()), "the seed replays it");
    let heads = first.iter().filter(|&&head| head).count();
    assert!((800..1_200).contains(&heads), "{heads} of 10,000 at 10%");
    assert!(draws(SimOptions::default().without_faults())
        .iter()
        .all(|&head| !head));
}

/// Connects, does one request/response round trip, closes, and counts it.
fn one_round_trip(io: &mut IO<()>, address: SocketAddr, done: Rc<Cell<u64>>) {
    let socket = io.open_socket(address).unwrap();
    io.connect(socket, address, move |io, _, result| {
        result.expect("connect");
        io.send(socket, b"ping".to_vec(), move |io, _, result, _| {
            assert_eq!(result.expect("send"), 4);
            io.recv(socket, Vec::with_capacity(64), move |io, _, result, _| {
                assert!(result.expect("recv") > 0);
                io.close(socket, move |_, _, result| {
                    result.expect("close");
                    done.set(done.get() + 1);
                });
            });
        });
    });
}

/// A deterministic byte pattern (xorshift).
fn ringio_pattern(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
