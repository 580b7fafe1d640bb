//! Registered files behind handles (`Config::registered_files`): on
//! io_uring every descriptor the `IO` owns is also installed in the ring's
//! registered file table, and operations name its slot. These tests check
//! that they really do, that a close (or a release) lets go of the file at
//! once (a socket's FIN reaches the peer), that a slot reused by a later
//! handle never reaches the earlier file, and that descriptors past the
//! table's end run on plain fds. Each runs on every backend the behaviour
//! applies to, io_uring with the table and without.

#[macro_use]
mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringio::{Config, FileOptions, Handle, IO};
use util::Backend;

conformance!(
    a_reused_handle_never_reaches_the_earlier_file,
    accepts_past_the_end_of_the_table_run_on_plain_fds;
    kernel_only:
    operations_name_the_slot_not_the_fd,
    a_closed_socket_sends_its_fin_at_once,
    a_send_queued_just_before_the_close_still_goes_out,
    a_released_socket_is_not_held_open_by_the_ring,
    a_dropped_io_lets_its_listening_port_go_at_once,
    a_linked_send_whose_socket_closed_never_reaches_a_reused_fd_number,
);

/// Reads `file` at offset 0 through `io`, up to 16 bytes.
fn read_through<C>(io: &mut IO<C>, ctx: &mut C, file: Handle) -> Vec<u8> {
    let out: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let slot = Rc::clone(&out);
    io.read(file, Vec::with_capacity(16), 0, move |_, _, result, buf| {
        result.expect("read");
        *slot.borrow_mut() = Some(buf);
    });
    while out.borrow().is_none() {
        io.run_for_ns(ctx, 1_000_000).unwrap();
    }
    out.take().unwrap()
}

/// With the table, an operation names the slot: after the fd's number is
/// pointed at another file behind the `IO`'s back (`dup2`), a read through
/// the handle still reads the file the handle was made for. Without it,
/// the read follows the fd number. (Only a test may do this: the `IO`
/// owns the fd.)
fn operations_name_the_slot_not_the_fd(backend: Backend) {
    let scratch = util::Scratch::new(backend, "regfiles-slot");
    std::fs::write(scratch.path("a"), b"AAAA").unwrap();
    std::fs::write(scratch.path("b"), b"BBBB").unwrap();
    let mut io: IO<()> = backend.io();
    let options = FileOptions::new().read(true);
    let file = io.open_file(scratch.path("a"), options).unwrap();
    let registered = backend == Backend::IoUring;
    let stats = io.stats();
    assert_eq!(stats.registered_files, u64::from(registered));
    assert_eq!(stats.registered_files_fallbacks, 0);
    assert_eq!(stats.registered_files_slots > 0, registered);
    assert_eq!(read_through(&mut io, &mut (), file), b"AAAA");
    let other = std::fs::File::open(scratch.path("b")).unwrap();
    let raw = io.as_fd(file).unwrap().as_raw_fd();
    // SAFETY: both are open fds of this process; `raw` is re-pointed at
    // `other`'s file, and stays open (owned by the IO) until the close.
    assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), raw) }, raw);
    let expected: &[u8] = if registered { b"AAAA" } else { b"BBBB" };
    assert_eq!(read_through(&mut io, &mut (), file), expected);
    util::close_io(&mut io, &mut (), file);
    assert_eq!(io.stats().registered_files, 0, "the close cleared the slot");
}

/// A handle's slot is reused by the next handle of its index, and an
/// operation through the new handle reaches the new file, every time.
fn a_reused_handle_never_reaches_the_earlier_file(backend: Backend) {
    let scratch = util::Scratch::new(backend, "regfiles-reuse");
    let mut io: IO<()> = backend.io();
    let names = ["a", "b", "c"];
    for name in names {
        let options = FileOptions::new().read(true).write(true).create(true);
        let file = io.open_file(scratch.path(name), options).unwrap();
        let written: Rc<Cell<bool>> = Rc::default();
        let done = Rc::clone(&written);
        io.write(
            file,
            name.repeat(4).into_bytes(),
            0,
            move |_, _, result, _| {
                assert_eq!(result.unwrap(), 4);
                done.set(true);
            },
        );
        io.run(&mut ()).unwrap();
        assert!(written.get());
        util::close_io(&mut io, &mut (), file);
    }
    let mut previous: Option<Handle> = None;
    for round in 0..30 {
        let name = names[round % names.len()];
        let file = io
            .open_file(scratch.path(name), FileOptions::new().read(true))
            .unwrap();
        if let Some(previous) = previous {
            // The same table index, a later generation.
            let index = |handle: Handle| format!("{handle:?}").split('#').next().map(String::from);
            assert_eq!(index(file), index(previous));
            assert_ne!(file, previous);
        }
        assert_eq!(
            read_through(&mut io, &mut (), file),
            name.repeat(4).as_bytes()
        );
        util::close_io(&mut io, &mut (), file);
        previous = Some(file);
    }
    assert_eq!(io.stats().registered_files, 0);
    assert_eq!(io.stats().descriptors_open, 0);
}

/// Accepts one connection on `listener` through `io`'s loop.
fn accept_one(io: &mut IO<()>, listener: Handle) -> Handle {
    let accepted: Rc<Cell<Option<Handle>>> = Rc::default();
    let slot = Rc::clone(&accepted);
    io.accept(listener, move |_, _, result| {
        slot.set(Some(result.unwrap()))
    });
    while accepted.get().is_none() {
        io.run_for_ns(&mut (), 1_000_000).unwrap();
    }
    accepted.get().unwrap()
}

/// A closed socket's peer sees EOF at once: the registered table must not
/// keep the socket open after the close.
fn a_closed_socket_sends_its_fin_at_once(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let address = io.local_addr(listener).unwrap();
    let mut peer = TcpStream::connect(address).unwrap();
    let server = accept_one(&mut io, listener);
    if backend == Backend::IoUring {
        assert_eq!(
            io.stats().registered_files,
            2,
            "the listener and the connection"
        );
    }
    util::close_io(&mut io, &mut (), server);
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut byte = [0u8; 1];
    assert_eq!(peer.read(&mut byte).unwrap(), 0, "EOF");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "EOF took {:?}",
        start.elapsed()
    );
    util::close_io(&mut io, &mut (), listener);
}

/// A send and the close behind it, queued in one pass: the send still
/// reaches the socket (the close clears the slot only after it), then the
/// peer sees EOF.
fn a_send_queued_just_before_the_close_still_goes_out(backend: Backend) {
    let mut io: IO<Vec<&'static str>> = backend.io();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let server = io.adopt(OwnedFd::from(server)).unwrap();
    io.send(server, b"last words".to_vec(), |_, log, result, _| {
        assert_eq!(result.unwrap(), 10);
        log.push("sent");
    });
    io.close(server, |_, log, result| {
        result.unwrap();
        log.push("closed");
    });
    let mut log = Vec::new();
    io.run(&mut log).unwrap();
    assert_eq!(log, ["sent", "closed"]);
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut received = Vec::new();
    peer.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"last words");
}

/// `release` clears the slot: once the caller drops the released socket,
/// the peer sees EOF.
fn a_released_socket_is_not_held_open_by_the_ring(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let (mut peer, server) = util::tcp_pair();
    let server = io.adopt(OwnedFd::from(server)).unwrap();
    if backend == Backend::IoUring {
        assert_eq!(io.stats().registered_files, 1);
    }
    let fd = io.release(server).unwrap();
    assert_eq!(io.stats().registered_files, 0);
    let mut stream = TcpStream::from(fd);
    stream.write_all(b"x").unwrap();
    drop(stream);
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut received = Vec::new();
    peer.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"x");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "EOF took {:?}",
        start.elapsed()
    );
    // The IO (and its ring) is still alive: the ring did not hold the file.
    drop(io);
}

/// Dropping the `IO` lets its listening socket's port go before the drop
/// returns, with an accept in flight on it and a connection open: a
/// server that exits can be started again on its port at once. (On
/// io_uring the ring's file table would otherwise hold the socket until
/// the kernel's asynchronous teardown of the ring, tens of milliseconds
/// later, and the bind below would fail with `EADDRINUSE`.)
fn a_dropped_io_lets_its_listening_port_go_at_once(backend: Backend) {
    for _ in 0..5 {
        let mut io: IO<()> = backend.io();
        let listener = io.listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let address = io.local_addr(listener).unwrap();
        let _peer = TcpStream::connect(address).unwrap();
        accept_one(&mut io, listener);
        // Another accept, left in flight for the drop to cancel.
        io.accept(listener, |_, _, _| {});
        io.run_for_ns(&mut (), 1_000_000).unwrap();
        drop(io);
        if let Err(error) = TcpListener::bind(address) {
            panic!("binding {address} again at once: {error}");
        }
    }
}

#[derive(Default)]
struct Storm {
    accepted: Vec<Handle>,
    /// Bytes the servers sent back, and the clients received.
    echoed: usize,
    received: usize,
}

const MESSAGE: &[u8] = b"12345678";

/// Receives `remaining` bytes on `server`, sending each piece back.
fn echo(io: &mut IO<Storm>, server: Handle, remaining: usize) {
    io.recv(server, Vec::with_capacity(16), move |io, _, result, buf| {
        let count = result.expect("recv");
        assert!(count > 0 && count <= remaining, "{count} of {remaining}");
        send_rest(io, server, buf, true);
        if count < remaining {
            echo(io, server, remaining - count);
        }
    });
}

/// Sends all of `data` on `socket`, counting it as echoed if `echoed`.
fn send_rest(io: &mut IO<Storm>, socket: Handle, data: Vec<u8>, echoed: bool) {
    io.send(socket, data, move |io, storm, result, mut buf| {
        let count = result.expect("send");
        if echoed {
            storm.echoed += count;
        }
        if count < buf.len() {
            send_rest(io, socket, buf.split_off(count), echoed);
        }
    });
}

/// Receives `remaining` bytes of the message back on `client`.
fn receive(io: &mut IO<Storm>, client: Handle, remaining: usize) {
    io.recv(
        client,
        Vec::with_capacity(16),
        move |io, storm, result, buf| {
            let count = result.expect("recv");
            let start = MESSAGE.len() - remaining;
            assert_eq!(&buf[..], &MESSAGE[start..start + count]);
            storm.received += count;
            if count < remaining {
                receive(io, client, remaining - count);
            }
        },
    );
}

/// More connections than the table has slots: those past its end run on
/// plain fds, counted, and everything works the same.
fn accepts_past_the_end_of_the_table_run_on_plain_fds(backend: Backend) {
    const CLIENTS: u32 = 16;
    const SLOTS: u32 = 4;
    let mut io: IO<Storm> = backend.io_with(Config::new().registered_files(SLOTS));
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    let address = io.local_addr(listener).unwrap();
    let mut storm = Storm::default();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let client = io.open_socket(address).unwrap();
        io.connect(client, address, |_, _, result| result.expect("connect"));
        clients.push(client);
        io.accept(listener, |_, storm: &mut Storm, result| {
            storm.accepted.push(result.expect("accept"))
        });
    }
    while storm.accepted.len() < CLIENTS as usize {
        io.run_for_ns(&mut storm, 1_000_000).unwrap();
    }
    let stats = io.stats();
    if backend == Backend::IoUring {
        assert_eq!(stats.registered_files_slots, u64::from(SLOTS));
        assert_eq!(stats.registered_files, u64::from(SLOTS));
        // One listener and 2 * 16 sockets, four of them in the table.
        assert_eq!(
            stats.registered_files_fallbacks,
            u64::from(1 + 2 * CLIENTS - SLOTS)
        );
    } else {
        assert_eq!(stats.registered_files, 0);
        assert_eq!(stats.registered_files_fallbacks, 0);
    }
    // Each accepted connection echoes one message back to its client
    // (which may arrive in pieces: the simulator segments streams).
    for &server in &storm.accepted {
        echo(&mut io, server, MESSAGE.len());
    }
    for &client in &clients {
        send_rest(&mut io, client, MESSAGE.to_vec(), false);
        receive(&mut io, client, MESSAGE.len());
    }
    let total = MESSAGE.len() * CLIENTS as usize;
    while storm.received < total || storm.echoed < total {
        io.run_for_ns(&mut storm, 1_000_000).unwrap();
    }
    assert_eq!(storm.received, total);
    let handles: Vec<Handle> = clients
        .iter()
        .chain(&storm.accepted)
        .copied()
        .chain([listener])
        .collect();
    for handle in handles {
        util::close_io(&mut io, &mut storm, handle);
    }
    assert_eq!(io.stats().registered_files, 0);
    assert_eq!(io.stats().descriptors_open, 0);
}

/// A chain's later member names its file only when its turn comes. Here it
/// is a send on socket `b`, waiting behind a recv on socket `a`, and `b` is
/// closed meanwhile: its fd number is free, and this test has a new socket
/// take it. When the recv completes, the send must fail (`ECANCELED`, or
/// `EBADF` where the closed slot answers), and the new socket's peer must
/// receive nothing. On a plain fd the kernel would look the number up at
/// that moment and send to the new socket, so the loop runs such a member
/// itself, and settles it against the closed handle.
fn a_linked_send_whose_socket_closed_never_reaches_a_reused_fd_number(backend: Backend) {
    // Other tests in this process open and close descriptors too: the
    // freed number may be taken by one of them first. Try a few times.
    for _ in 0..20 {
        if let Some(outcome) = linked_send_after_close(backend) {
            let (result, leaked) = outcome;
            assert!(
                matches!(result, Err(errno) if errno == libc::ECANCELED || errno == libc::EBADF),
                "the linked send must fail, got {result:?}"
            );
            assert!(
                leaked.is_empty(),
                "the new socket's peer received {leaked:?}"
            );
            return;
        }
    }
    panic!("the closed fd number was never free to reuse in 20 tries");
}

/// One try: `None` if the closed number was taken by someone else first.
/// Otherwise the send's result (bytes, or the errno) and what the socket
/// that took the number over delivered to its peer.
fn linked_send_after_close(backend: Backend) -> Option<(Result<usize, i32>, Vec<u8>)> {
    let mut io: IO<Option<Result<usize, i32>>> = backend.io();
    let (mut a_peer, a) = util::tcp_pair();
    let a = io.adopt(OwnedFd::from(a)).unwrap();
    let (_b_peer, b) = util::tcp_pair();
    let b = io.adopt(OwnedFd::from(b)).unwrap();
    let b_number = util::raw(&io, b);
    io.chain(|io| {
        io.recv(a, Vec::with_capacity(16), |_, _, result, _| {
            assert_eq!(result.unwrap(), 2);
        });
        io.send(b, b"secret".to_vec(), |_, sent, result, _| {
            *sent = Some(result.map_err(|error| error.raw_os_error().unwrap()));
        });
    });
    let mut sent = None;
    io.tick(&mut sent).unwrap();
    io.close(b, |_, _, result| result.unwrap());
    // Until the close has run: the number is free.
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: F_GETFD on a number only reads the process's fd table.
    while unsafe { libc::fcntl(b_number, libc::F_GETFD) } != -1 {
        assert!(Instant::now() < deadline, "the close never ran");
        io.run_for_ns(&mut sent, 100_000).unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let taker = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut taker_peer, _) = listener.accept().unwrap();
    if taker.as_raw_fd() != b_number {
        return None;
    }
    a_peer.write_all(b"go").unwrap();
    while sent.is_none() {
        io.run_for_ns(&mut sent, 1_000_000).unwrap();
    }
    io.run(&mut sent).unwrap();
    taker_peer.set_nonblocking(true).unwrap();
    let mut leaked = vec![0; 16];
    let leaked = match taker_peer.read(&mut leaked) {
        Ok(count) => leaked[..count].to_vec(),
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Vec::new(),
        Err(error) => panic!("reading the new socket's peer: {error}"),
    };
    Some((sent.unwrap(), leaked))
}
