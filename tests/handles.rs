//! Descriptors are handles the `IO` owns, and ids name exactly one
//! operation of one `IO`: a stale, foreign or closed name never reaches
//! anything else. Run on every backend the behaviour applies to.

#[macro_use]
mod util;

use std::cell::RefCell;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;

use ringio::sim::{Probability, SimOptions, Simulator};
use ringio::{FileOptions, PollEvents, IO};
use util::Backend;

conformance!(
    an_id_of_another_io_never_cancels_its_operations,
    a_stale_id_never_cancels_the_next_occupant_even_across_a_32_bit_wrap,
    close_cancels_what_is_in_flight_and_its_callback_runs_last,
    a_close_cannot_be_cancelled,
    a_closed_handle_is_stale_everywhere,
    poll_of_a_regular_file_for_neither_direction_is_einval,
    a_handler_too_large_to_store_inline_is_counted,
    descriptors_the_io_owns_are_counted;
    kernel_only:
    // adopt, release and as_fd move kernel descriptors in and out; the
    // simulator's are virtual (its refusal is tested below).
    release_refuses_while_operations_are_in_flight_then_gives_the_fd_back,
    release_restores_blocking_mode_the_io_changed,
);

fn errno_of<T>(result: &io::Result<T>) -> Option<i32> {
    result.as_ref().err().and_then(|error| error.raw_os_error())
}

type Log = Vec<(&'static str, Option<i32>)>;

fn an_id_of_another_io_never_cancels_its_operations(backend: Backend) {
    let mut first: IO<Log> = backend.io();
    let mut second: IO<Log> = backend.io();
    // Fresh IOs: the same slot and generation in each.
    let id = first.timeout(u64::MAX, |_, log, result| {
        log.push(("first", errno_of(&result)))
    });
    second.timeout(u64::MAX, |_, log, result| {
        log.push(("second", errno_of(&result)))
    });
    second.cancel(id, |_, log, result| log.push(("cancel", errno_of(&result))));
    let mut log = Vec::new();
    second.run_for_ns(&mut log, 1_000_000).unwrap();
    assert_eq!(log, [("cancel", Some(libc::ENOENT))]);
    assert_eq!(second.in_flight(), 1, "the second IO's timer is untouched");
    first.cancel(id, |_, log, result| log.push(("cancel", errno_of(&result))));
    first.run(&mut log).unwrap();
    assert_eq!(
        log[1..],
        [("first", Some(libc::ECANCELED)), ("cancel", None)]
    );
}

fn a_stale_id_never_cancels_the_next_occupant_even_across_a_32_bit_wrap(backend: Backend) {
    // One slot, so every operation reuses it.
    let mut io: IO<Log> = backend.io_with(ringio::Config::new().completions_initial(1));
    let stale = io.nop(|_, log, result| log.push(("nop", errno_of(&result))));
    let mut log = Vec::new();
    io.run(&mut log).unwrap();
    // 2^32 - 1 more reuses: the next occupant's generation has the same low
    // 32 bits as the stale id's (the bits that travel to the kernel).
    io.skip_generations_for_tests((1 << 32) - 1);
    io.timeout(u64::MAX, |_, log, result| {
        log.push(("timer", errno_of(&result)))
    });
    io.cancel(stale, |_, log, result| {
        log.push(("stale cancel", errno_of(&result)))
    });
    io.run_for_ns(&mut log, 1_000_000).unwrap();
    assert_eq!(log, [("nop", None), ("stale cancel", Some(libc::ENOENT))]);
    assert_eq!(io.in_flight(), 1, "the timer is untouched");
    // Operations keep working across the wrap of the low bits.
    for _ in 0..3 {
        io.nop(|_, log, result| log.push(("nop", errno_of(&result))));
        io.run_for_ns(&mut log, 1_000_000).unwrap();
    }
    assert_eq!(log.len(), 5);
}

fn close_cancels_what_is_in_flight_and_its_callback_runs_last(backend: Backend) {
    let mut io: IO<Log> = backend.io();
    let mut log = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut log);
    for _ in 0..3 {
        io.recv(server, Vec::with_capacity(64), |_, log, result, _| {
            log.push(("recv", errno_of(&result)))
        });
    }
    io.poll(server, PollEvents::READABLE, |_, log, result| {
        log.push(("poll", errno_of(&result)))
    });
    io.run_for_ns(&mut log, 2_000_000).unwrap();
    assert!(log.is_empty());
    io.close(server, |_, log, result| {
        log.push(("close", errno_of(&result)))
    });
    io.run(&mut log).unwrap();
    // The order among the cancelled is the kernel's; the close is last.
    assert_eq!(log.pop(), Some(("close", None)));
    log.sort_unstable();
    let cancelled = Some(libc::ECANCELED);
    let expected = [
        ("poll", cancelled),
        ("recv", cancelled),
        ("recv", cancelled),
        ("recv", cancelled),
    ];
    assert_eq!(log, expected);
    util::close_io(&mut io, &mut log, client);
}

fn a_close_cannot_be_cancelled(backend: Backend) {
    let mut io: IO<Log> = backend.io();
    let socket = io.open_socket("127.0.0.1:1".parse().unwrap()).unwrap();
    let close = io.close(socket, |_, log, result| {
        log.push(("close", errno_of(&result)))
    });
    io.cancel(close, |_, log, result| {
        log.push(("cancel", errno_of(&result)))
    });
    let mut log = Vec::new();
    io.run(&mut log).unwrap();
    assert!(log.contains(&("close", None)), "{log:?}");
    assert!(log.contains(&("cancel", Some(libc::EALREADY))), "{log:?}");
    assert_eq!(io.stats().descriptors_open, 0);
}

fn a_closed_handle_is_stale_everywhere(backend: Backend) {
    let mut io: IO<Log> = backend.io();
    let socket = io.open_socket("127.0.0.1:1".parse().unwrap()).unwrap();
    let mut log = Vec::new();
    util::close_io(&mut io, &mut log, socket);
    // A new descriptor may reuse the table entry; the old handle still
    // names nothing.
    let reused = io.open_socket("127.0.0.1:1".parse().unwrap()).unwrap();
    assert_ne!(reused, socket);
    assert_eq!(errno_of(&io.local_addr(socket)), Some(libc::EBADF));
    assert_eq!(errno_of(&io.set_nodelay(socket, true)), Some(libc::EBADF));
    assert_eq!(errno_of(&io.as_fd(socket)), Some(libc::EBADF));
    assert_eq!(errno_of(&io.release(socket)), Some(libc::EBADF));
    io.close(socket, |_, log, result| {
        log.push(("close", errno_of(&result)))
    });
    io.run(&mut log).unwrap();
    assert_eq!(log, [("close", Some(libc::EBADF))]);
    // The reused one is unharmed.
    let expected = if backend.is_kernel() {
        None
    } else {
        Some(libc::EOPNOTSUPP)
    };
    assert_eq!(errno_of(&io.as_fd(reused)), expected);
    util::close_io(&mut io, &mut log, reused);
}

fn poll_of_a_regular_file_for_neither_direction_is_einval(backend: Backend) {
    let mut io: IO<Vec<io::Result<PollEvents>>> = backend.io();
    let scratch = util::Scratch::new(backend, "poll-hangup");
    let options = FileOptions::new().create(true);
    let file = io.open_file(scratch.path("file"), options).unwrap();
    io.poll(file, PollEvents::HANGUP, |_, seen, result| {
        seen.push(result)
    });
    io.poll(
        file,
        PollEvents::READABLE | PollEvents::HANGUP,
        |_, seen, result| seen.push(result),
    );
    let mut seen = Vec::new();
    io.run(&mut seen).unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(errno_of(&seen[0]), Some(libc::EINVAL));
    assert!(seen[1].as_ref().unwrap().contains(PollEvents::READABLE));
    util::close_io(&mut io, &mut seen, file);
}

fn a_handler_too_large_to_store_inline_is_counted(backend: Backend) {
    let mut io: IO<u64> = backend.io();
    let small = 7u64;
    io.nop(move |_, sum, _| *sum += small);
    assert_eq!(io.stats().callbacks_boxed, 0);
    let large = [1u64; 8]; // 64 bytes, more than INLINE_BYTES
    assert!(std::mem::size_of_val(&large) > ringio::INLINE_BYTES);
    io.nop(move |_, sum, _| *sum += large.iter().sum::<u64>());
    assert_eq!(io.stats().callbacks_boxed, 1);
    let mut sum = 0;
    io.run(&mut sum).unwrap();
    assert_eq!(sum, 15);
}

fn descriptors_the_io_owns_are_counted(backend: Backend) {
    let mut io: IO<()> = backend.io();
    assert_eq!(io.stats().descriptors_open, 0);
    let (client, server) = util::tcp_pair_io(&mut io, &mut ());
    // The pair's listener was closed; the two ends remain.
    assert_eq!(io.stats().descriptors_open, 2);
    util::close_io(&mut io, &mut (), client);
    util::close_io(&mut io, &mut (), server);
    assert_eq!(io.stats().descriptors_open, 0);
}

fn release_refuses_while_operations_are_in_flight_then_gives_the_fd_back(backend: Backend) {
    let mut io: IO<Log> = backend.io();
    let (mut client, server) = util::tcp_pair();
    let handle = io.adopt(server.into()).unwrap();
    let id = io.recv(handle, Vec::with_capacity(8), |_, log, result, _| {
        log.push(("recv", errno_of(&result)))
    });
    let mut log = Vec::new();
    io.run_for_ns(&mut log, 1_000_000).unwrap();
    assert_eq!(errno_of(&io.release(handle)), Some(libc::EBUSY));
    io.cancel(id, |_, _, _| {});
    io.run(&mut log).unwrap();
    assert_eq!(log, [("recv", Some(libc::ECANCELED))]);
    let server = TcpStream::from(io.release(handle).unwrap());
    assert_eq!(io.stats().descriptors_open, 0);
    // Ours again, and working.
    use std::io::{Read, Write};
    client.write_all(b"back").unwrap();
    let mut buf = [0u8; 4];
    (&server).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"back");
}

fn release_restores_blocking_mode_the_io_changed(backend: Backend) {
    let mut io: IO<Rc<RefCell<Vec<ringio::Handle>>>> = backend.io();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let handle = io.adopt(listener.into()).unwrap();
    let _first = TcpStream::connect(address).unwrap();
    io.accept(handle, |_, accepted, result| {
        accepted.borrow_mut().push(result.unwrap())
    });
    let accepted = Rc::new(RefCell::new(Vec::new()));
    io.run(&mut Rc::clone(&accepted)).unwrap();
    assert_eq!(accepted.borrow().len(), 1);
    let listener = TcpListener::from(io.release(handle).unwrap());
    // SAFETY: fcntl(F_GETFL) on a live descriptor this test owns.
    let flags = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(
        flags & libc::O_NONBLOCK,
        0,
        "the listener is blocking again"
    );
    // A std accept blocks until a connection comes, instead of WouldBlock.
    let connector = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        TcpStream::connect(address).unwrap()
    });
    let (_second, _) = listener.accept().expect("a blocking accept");
    connector.join().unwrap();
}

#[test]
fn kernel_descriptors_cannot_enter_or_leave_a_simulated_io() {
    let mut sim = Simulator::new(1, SimOptions::default().without_faults());
    let node = sim.add_node("node");
    let mut io: IO<()> = sim.io(node).unwrap();
    let (client, _server) = util::tcp_pair();
    assert_eq!(errno_of(&io.adopt(client.into())), Some(libc::EOPNOTSUPP));
    let socket = io.open_socket(sim.address(node, 1)).unwrap();
    assert_eq!(errno_of(&io.release(socket)), Some(libc::EOPNOTSUPP));
    assert_eq!(errno_of(&io.as_fd(socket)), Some(libc::EOPNOTSUPP));
    assert!(
        io.local_addr(socket).is_ok(),
        "still open after the refusals"
    );
}

#[test]
fn an_interrupted_close_is_never_retried() {
    // Every close returns EINTR, with the descriptor closed all the same,
    // as Linux does.
    let mut options = SimOptions::default().without_faults();
    options.faults.close = Probability::ALWAYS;
    let mut sim = Simulator::new(2, options);
    let node = sim.add_node("node");
    let mut io: IO<Log> = sim.io(node).unwrap();
    let first = io.open_socket(sim.address(node, 1)).unwrap();
    io.close(first, |_, log, result| {
        log.push(("close", errno_of(&result)))
    });
    let mut log = Vec::new();
    io.run(&mut log).unwrap();
    // Reported as done (a retry would have found the number gone: EBADF).
    assert_eq!(log, [("close", None)]);
    assert_eq!(io.stats().submitted, 1);
    // The number is free again, and the next socket that gets it is not
    // closed by a retry.
    let second = io.open_socket(sim.address(node, 1)).unwrap();
    io.nop(|_, log, result| log.push(("nop", errno_of(&result))));
    io.run(&mut log).unwrap();
    assert!(io.local_addr(second).is_ok());
}
