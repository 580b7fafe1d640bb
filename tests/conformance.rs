//! The conformance suite: every behavioural test, written once and generic
//! over the backend, instantiated per backend by `conformance!` (test names
//! read `io_uring::<test>`, `epoll::<test>`, `sim::<test>`). Each test
//! asserts what its name says. Sockets and files go through the `IO`
//! (`listen`, `connect`, `accept`, `open_file`, `close`), so that the same
//! test runs on the simulator, whose fds exist only inside its world.

#[macro_use]
mod util;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

use ringio::{AlignedBuf, CompletionId, Config, FileOptions, Handle, PollEvents, BUFFER_LIMIT, IO};
use util::Backend;

conformance!(
    nop_callback_runs_from_the_loop_not_inline,
    batches_that_wrap_the_completion_queue_run_in_order_once,
    unqueued_path_completes_each_operation_exactly_once,
    timeouts_fire_in_deadline_order_never_early,
    timeouts_with_equal_deadlines_fire_in_submission_order,
    zero_timeout_completes_on_next_pass,
    run_for_ns_returns_no_earlier_than_its_deadline,
    run_for_ns_sleeps_until_an_earlier_timer,
    tick_never_blocks_with_a_pending_recv,
    accept_connect_send_recv_transfers_one_mebibyte,
    connect_to_a_closed_port_is_refused,
    recv_from_a_closed_peer_returns_zero,
    peer_reset_gives_econnreset_or_epipe,
    file_write_fsync_read_round_trip_direct,
    unaligned_direct_buffer_is_an_error_not_a_crash,
    fdatasync_and_close_complete,
    invalid_fd_gives_ebadf_in_the_callback,
    zero_length_buffers_are_rejected_with_einval,
    oversized_buffers_are_clamped_to_the_kernel_limit,
    offsets_beyond_i64_max_are_rejected,
    max_timeout_never_fires_and_can_be_cancelled,
    cancel_in_flight_recv_returns_ecanceled_and_the_buffer,
    cancel_twice_reports_enoent_the_second_time,
    cancel_stale_id_never_touches_the_new_occupant,
    cancel_unqueued_operation_settles_in_user_space,
    cancel_finished_operation_reports_enoent,
    a_cancel_from_a_callback_of_a_result_still_to_run_reports_enoent,
    plain_and_other_completions_of_one_reap_each_run_once_in_order,
    chain_of_100000_callbacks_keeps_the_stack_bounded,
    poll_reports_readable_and_writable,
    poll_with_no_events_is_einval,
    reentering_the_loop_from_a_callback_is_edeadlk,
    stats_count_submissions_completions_and_syscalls,
    submit_batch_submits_from_inside_the_queuing_call,
    cq_overflow_loses_no_completion,
    impossible_configurations_are_errors_not_aborts,
    a_panicking_callback_leaves_the_loop_usable,
    callbacks_left_by_a_panic_run_before_later_completions,
    an_io_dropped_after_a_panic_mid_run_drops_the_rest_once,
    ready_operations_complete_in_submission_order,
    a_waiting_recv_does_not_hold_back_later_operations,
    many_timers_with_equal_deadlines_fire_once_each_in_submission_order,
    partial_sends_under_backpressure_lose_no_bytes,
    close_with_pending_operations_completes_them_with_ecanceled,
    many_accepts_on_one_listener_each_take_one_connection,
    a_recv_and_a_send_wait_on_one_socket_at_once,
    poll_on_a_regular_file_reports_it_ready,
    poll_on_a_huge_bogus_fd_is_ebadf;
    kernel_only:
    // A `Waker` is an eventfd woken from another thread; the simulator is
    // single-threaded and its `open_waker` gives EOPNOTSUPP.
    waker_wakes_a_blocked_loop_from_another_thread,
    // `fcntl(O_NONBLOCK)` on a kernel socket, to check the loop's EAGAIN
    // handling; simulated sockets have no such flag (and never give EAGAIN).
    nonblocking_fd_recv_waits_for_readiness,
    // A real signal interrupting a blocked `io_uring_enter`/`epoll_wait`;
    // the simulator never blocks in the kernel.
    a_signal_interrupting_the_wait_is_not_an_error,
    // A pipe: the simulator has TCP sockets and disk files, no pipes.
    read_from_an_empty_pipe_waits_for_data,
    // A read of a file in the page cache that completes in the same reap
    // as the nops around it; the simulated disk takes simulated time.
    a_run_cut_short_runs_its_rest_before_what_its_callbacks_queued,
);

// ---------------------------------------------------------------------------
// The loop

fn nop_callback_runs_from_the_loop_not_inline(backend: Backend) {
    let mut io: IO<u32> = backend.io();
    let mut calls = 0u32;
    io.nop(|_, calls, result| {
        result.unwrap();
        *calls += 1;
    });
    assert_eq!(calls, 0, "callbacks never run inside the submitting call");
    io.run(&mut calls).unwrap();
    assert_eq!(calls, 1);
    assert_eq!(io.in_flight(), 0);
}

/// Batches of every size from 1 to 40 on a 16-entry ring (a completion
/// queue of 32), so that the reap walks runs of every length across the
/// queue's end at every offset: each callback runs once, in submission order.
fn batches_that_wrap_the_completion_queue_run_in_order_once(backend: Backend) {
    let mut io: IO<Vec<u32>> = backend.io_with(Config::new().entries(16));
    let mut order = Vec::new();
    let mut submitted = 0u32;
    for round in 0..200u32 {
        for _ in 0..(round % 40 + 1) {
            let number = submitted;
            io.nop(move |_, order: &mut Vec<u32>, result| {
                result.unwrap();
                order.push(number);
            });
            submitted += 1;
        }
        io.run(&mut order).unwrap();
    }
    assert!(order.iter().copied().eq(0..submitted));
    assert_eq!(io.stats().completed, u64::from(submitted));
}

#[derive(Default)]
struct Counts {
    nops: Vec<u32>,
    timeouts: Vec<u32>,
}

fn unqueued_path_completes_each_operation_exactly_once(backend: Backend) {
    let mut io: IO<Counts> = backend.io_with(Config::new().entries(2));
    let mut counts = Counts {
        nops: vec![0; 10_000],
        timeouts: vec![0; 10_000],
    };
    for index in 0..10_000usize {
        io.nop(move |_, counts, result| {
            result.unwrap();
            counts.nops[index] += 1;
        });
        io.timeout(0, move |_, counts, result| {
            result.unwrap();
            counts.timeouts[index] += 1;
        });
    }
    io.run(&mut counts).unwrap();
    assert!(counts.nops.iter().all(|&count| count == 1));
    assert!(counts.timeouts.iter().all(|&count| count == 1));
    assert!(
        io.stats().unqueued_max > 0,
        "a 2-entry ring must park work on unqueued"
    );
    assert_eq!(io.stats().completed, 20_000);
}

#[derive(Default)]
struct Fired {
    order: Vec<(usize, u64)>,
}

/// Schedules timer `index` at `deadline_ns`; its callback records the index
/// and the loop's clock when it ran.
fn record_timeout_at(io: &mut IO<Fired>, deadline_ns: u64, index: usize) {
    io.timeout_at(deadline_ns, move |io, fired, result| {
        result.unwrap();
        fired.order.push((index, io.now_ns()));
    });
}

fn timeouts_fire_in_deadline_order_never_early(backend: Backend) {
    let mut io: IO<Fired> = backend.io();
    let delays_ns: Vec<u64> = [30, 5, 20, 0, 10, 25, 15]
        .iter()
        .map(|ms| ms * 1_000_000)
        .collect();
    let start_ns = io.now_ns();
    let mut deadlines_ns = Vec::new();
    for (index, &delay_ns) in delays_ns.iter().enumerate() {
        let deadline_ns = start_ns + delay_ns;
        deadlines_ns.push(deadline_ns);
        record_timeout_at(&mut io, deadline_ns, index);
    }
    let mut fired = Fired::default();
    io.run(&mut fired).unwrap();
    let order: Vec<usize> = fired.order.iter().map(|&(index, _)| index).collect();
    assert_eq!(order, vec![3, 1, 4, 6, 2, 5, 0]);
    for &(index, fired_ns) in &fired.order {
        assert!(fired_ns >= deadlines_ns[index], "timer {index} fired early");
    }
}

fn timeouts_with_equal_deadlines_fire_in_submission_order(backend: Backend) {
    let mut io: IO<Fired> = backend.io();
    let deadline_ns = io.now_ns() + 2_000_000;
    for index in 0..1000 {
        record_timeout_at(&mut io, deadline_ns, index);
    }
    let mut fired = Fired::default();
    io.run(&mut fired).unwrap();
    let order: Vec<usize> = fired.order.iter().map(|&(index, _)| index).collect();
    assert_eq!(order, (0..1000).collect::<Vec<_>>());
}

fn zero_timeout_completes_on_next_pass(backend: Backend) {
    let mut io: IO<u32> = backend.io();
    let mut calls = 0;
    io.timeout(0, |_, calls, result| {
        result.unwrap();
        *calls += 1;
    });
    io.tick(&mut calls).unwrap();
    assert_eq!(calls, 1);
}

fn run_for_ns_returns_no_earlier_than_its_deadline(backend: Backend) {
    let mut io: IO<()> = backend.io();
    for timeout_ns in [0, 1, 1_000, 1_000_000, 20_000_000] {
        let start_ns = io.now_ns();
        io.run_for_ns(&mut (), timeout_ns).unwrap();
        assert!(io.now_ns() - start_ns >= timeout_ns);
    }
    // Completions arriving during the wait do not end it early either.
    let start_ns = io.now_ns();
    for _ in 0..100 {
        io.nop(|_, _, result| result.unwrap());
    }
    io.run_for_ns(&mut (), 10_000_000).unwrap();
    assert!(io.now_ns() - start_ns >= 10_000_000);
    assert_eq!(io.in_flight(), 0);
}

fn run_for_ns_sleeps_until_an_earlier_timer(backend: Backend) {
    let mut io: IO<Option<u64>> = backend.io();
    let deadline_ns = io.now_ns() + 5_000_000;
    io.timeout_at(deadline_ns, |io, fired_ns, result| {
        result.unwrap();
        *fired_ns = Some(io.now_ns());
    });
    let mut fired_ns = None;
    io.run_for_ns(&mut fired_ns, 50_000_000).unwrap();
    let fired_ns = fired_ns.expect("the timer fired inside run_for_ns");
    assert!(fired_ns >= deadline_ns);
}

fn tick_never_blocks_with_a_pending_recv(backend: Backend) {
    let mut io: IO<Option<io::Result<usize>>> = backend.io();
    let mut outcome = None;
    let (client, server) = util::tcp_pair_io(&mut io, &mut outcome);
    io.recv(
        server,
        Vec::with_capacity(16),
        |_, outcome, result, _buf| {
            *outcome = Some(result);
        },
    );
    for _ in 0..100 {
        io.tick(&mut outcome).unwrap();
    }
    assert!(
        outcome.is_none(),
        "nothing was sent, so the recv is still pending"
    );
    io.send(client, &b"x"[..], |_, _, result, _| {
        assert_eq!(result.unwrap(), 1)
    });
    while outcome.is_none() {
        io.run_for_ns(&mut outcome, 1_000_000).unwrap();
    }
    assert_eq!(outcome.take().unwrap().unwrap(), 1);
    util::close_io(&mut io, &mut outcome, client);
    util::close_io(&mut io, &mut outcome, server);
}

// ---------------------------------------------------------------------------
// Sockets

#[derive(Default)]
struct Transfer {
    sent: Vec<u8>,
    received: Vec<u8>,
    server: Option<Handle>,
    client_done: bool,
    server_eof: bool,
}

fn send_all(io: &mut IO<Transfer>, fd: Handle, offset: usize) {
    let chunk = 64 * 1024;
    let buf = {
        // Reads the data to send from the context on the next callback; the
        // chunk is copied into an owned buffer, as a real sender would.
        Vec::with_capacity(chunk)
    };
    io.nop(move |io, transfer, _| {
        let mut buf = buf;
        let end = (offset + chunk).min(transfer.sent.len());
        buf.extend_from_slice(&transfer.sent[offset..end]);
        io.send(fd, buf, move |io, transfer, result, _buf| {
            let sent = result.expect("send");
            let next = offset + sent;
            if next < transfer.sent.len() {
                send_all(io, fd, next);
            } else {
                transfer.client_done = true;
                io.close(fd, |_, _, result| result.unwrap());
            }
        });
    });
}

fn recv_all(io: &mut IO<Transfer>, fd: Handle, buf: Vec<u8>) {
    io.recv(fd, buf, move |io, transfer, result, buf| {
        let count = result.expect("recv");
        if count == 0 {
            transfer.server_eof = true;
            io.close(fd, |_, _, result| result.unwrap());
            return;
        }
        transfer.received.extend_from_slice(&buf);
        recv_all(io, fd, buf);
    });
}

fn accept_connect_send_recv_transfers_one_mebibyte(backend: Backend) {
    let mut io: IO<Transfer> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let address = io.local_addr(listener).unwrap();
    let client = io.open_socket(address).unwrap();
    let mut transfer = Transfer {
        sent: util::pattern(1 << 20, 7),
        ..Transfer::default()
    };
    io.accept(listener, move |io, transfer, result| {
        let server = result.expect("accept");
        assert_eq!(io.local_addr(server).unwrap(), address);
        assert_eq!(
            io.peer_addr(server).unwrap(),
            io.local_addr(client).unwrap()
        );
        transfer.server = Some(server);
        recv_all(io, server, Vec::with_capacity(16 * 1024));
    });
    io.connect(client, address, move |io, _, result| {
        result.expect("connect");
        send_all(io, client, 0);
    });
    io.run(&mut transfer).unwrap();
    assert!(transfer.client_done);
    assert!(transfer.server_eof);
    assert_eq!(transfer.received.len(), transfer.sent.len());
    assert_eq!(
        util::checksum(&transfer.received),
        util::checksum(&transfer.sent)
    );
    util::close_io(&mut io, &mut transfer, listener);
}

fn connect_to_a_closed_port_is_refused(backend: Backend) {
    let mut io: IO<Option<io::Result<()>>> = backend.io();
    // Bind a port, then close it, so nothing listens there.
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let address: SocketAddr = io.local_addr(listener).unwrap();
    let mut outcome = None;
    util::close_io(&mut io, &mut outcome, listener);
    let client = io.open_socket(address).unwrap();
    io.connect(client, address, |_, outcome, result| {
        *outcome = Some(result)
    });
    io.run(&mut outcome).unwrap();
    let error = outcome.take().unwrap().unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED));
    util::close_io(&mut io, &mut outcome, client);
}

fn recv_from_a_closed_peer_returns_zero(backend: Backend) {
    let mut io: IO<Option<io::Result<usize>>> = backend.io();
    let mut outcome = None;
    let (client, server) = util::tcp_pair_io(&mut io, &mut outcome);
    util::close_io(&mut io, &mut outcome, client);
    io.recv(server, Vec::with_capacity(64), |_, outcome, result, buf| {
        assert!(buf.is_empty());
        *outcome = Some(result);
    });
    io.run(&mut outcome).unwrap();
    assert_eq!(outcome.take().unwrap().unwrap(), 0);
    util::close_io(&mut io, &mut outcome, server);
}

#[derive(Default)]
struct Reset {
    errors: Vec<i32>,
}

fn send_until_error(io: &mut IO<Reset>, fd: Handle, buf: Vec<u8>) {
    io.send(fd, buf, move |io, reset, result, buf| match result {
        Ok(_) => send_until_error(io, fd, buf),
        Err(error) => reset.errors.push(error.raw_os_error().unwrap()),
    });
}

fn peer_reset_gives_econnreset_or_epipe(backend: Backend) {
    let mut io: IO<Reset> = backend.io();
    let mut reset = Reset::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut reset);
    // The client closes with data it never read in its receive buffer:
    // Linux (and the simulator) answers that close with a reset, not a FIN.
    // Receiving one byte of it proves the rest has arrived.
    util::send_all_io(
        &mut io,
        &mut reset,
        server,
        b"unread data makes close reset",
    );
    io.recv(client, Vec::with_capacity(1), |_, _, result, _| {
        assert_eq!(result.unwrap(), 1);
    });
    io.run(&mut reset).unwrap();
    util::close_io(&mut io, &mut reset, client);
    send_until_error(&mut io, server, vec![1u8; 4096]);
    io.run(&mut reset).unwrap();
    assert_eq!(reset.errors.len(), 1);
    let errno = reset.errors[0];
    assert!(
        errno == libc::ECONNRESET || errno == libc::EPIPE,
        "errno {errno}"
    );
    util::close_io(&mut io, &mut reset, server);
}

// ---------------------------------------------------------------------------
// Files

#[derive(Default)]
struct FileTrip {
    written: usize,
    synced: bool,
    read_back: Option<AlignedBuf>,
    read_count: usize,
    error: Option<i32>,
}

fn file_write_fsync_read_round_trip_direct(backend: Backend) {
    let mut io: IO<FileTrip> = backend.io();
    let scratch = util::Scratch::new(backend, "direct");
    let path = scratch.path("data");
    let options = FileOptions::new().create(true).truncate(true).direct(true);
    let fd = io.open_file(&path, options).unwrap();
    let len = 64 * 1024;
    let data = util::pattern(len, 3);
    let mut buf = AlignedBuf::new(len, 4096).unwrap();
    buf.copy_from_slice(&data);
    io.write(fd, buf, 4096, move |io, trip, result, _buf| {
        trip.written = result.expect("write");
        io.fsync(fd, move |io, trip, result| {
            result.expect("fsync");
            trip.synced = true;
            let target = AlignedBuf::new(len, 4096).unwrap();
            io.read(fd, target, 4096, |_, trip, result, buf| {
                trip.read_count = result.expect("read");
                trip.read_back = Some(buf);
            });
        });
    });
    let mut trip = FileTrip::default();
    io.run(&mut trip).unwrap();
    assert_eq!(trip.written, len);
    assert!(trip.synced);
    assert_eq!(trip.read_count, len);
    assert_eq!(
        util::checksum(&trip.read_back.take().unwrap()),
        util::checksum(&data)
    );
    // The file ends right after the data: a read there finds end of file.
    io.read(
        fd,
        AlignedBuf::new(4096, 4096).unwrap(),
        4096 + len as u64,
        |_, trip, result, _| trip.read_count = result.expect("read at the end"),
    );
    io.run(&mut trip).unwrap();
    assert_eq!(trip.read_count, 0);
    util::close_io(&mut io, &mut trip, fd);
}

fn unaligned_direct_buffer_is_an_error_not_a_crash(backend: Backend) {
    let mut io: IO<FileTrip> = backend.io();
    let scratch = util::Scratch::new(backend, "unaligned");
    let options = FileOptions::new().create(true).direct(true);
    let fd = io.open_file(scratch.path("data"), options).unwrap();
    // A Vec's data is not 4096-aligned and 1000 bytes is not a block multiple.
    let buf = vec![7u8; 1000];
    io.write(fd, buf, 0, |_, trip, result, buf| {
        assert_eq!(buf.len(), 1000, "the buffer comes back on error");
        trip.error = result.err().and_then(|error| error.raw_os_error());
    });
    let mut trip = FileTrip::default();
    io.run(&mut trip).unwrap();
    assert_eq!(trip.error, Some(libc::EINVAL));
    util::close_io(&mut io, &mut trip, fd);
}

fn fdatasync_and_close_complete(backend: Backend) {
    let mut io: IO<Vec<&'static str>> = backend.io();
    let scratch = util::Scratch::new(backend, "fdatasync");
    let options = FileOptions::new().create(true).dsync(true);
    let fd = io.open_file(scratch.path("data"), options).unwrap();
    io.write(fd, &b"durable"[..], 0, move |io, steps, result, _| {
        assert_eq!(result.unwrap(), 7);
        steps.push("write");
        io.fdatasync(fd, move |io, steps, result| {
            result.unwrap();
            steps.push("fdatasync");
            io.close(fd, |_, steps, result| {
                result.unwrap();
                steps.push("close");
            });
        });
    });
    let mut steps = Vec::new();
    io.run(&mut steps).unwrap();
    assert_eq!(steps, ["write", "fdatasync", "close"]);
    // Read it back through a new fd.
    let fd = io
        .open_file(scratch.path("data"), FileOptions::new().write(false))
        .unwrap();
    io.read(fd, Vec::with_capacity(64), 0, |_, steps, result, buf| {
        assert_eq!(result.unwrap(), 7);
        assert_eq!(buf, b"durable");
        steps.push("read");
    });
    io.run(&mut steps).unwrap();
    assert_eq!(steps, ["write", "fdatasync", "close", "read"]);
    util::close_io(&mut io, &mut steps, fd);
}

// ---------------------------------------------------------------------------
// Bad input

fn errno_of<T>(result: &io::Result<T>) -> Option<i32> {
    result.as_ref().err().and_then(|error| error.raw_os_error())
}

fn invalid_fd_gives_ebadf_in_the_callback(backend: Backend) {
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    let mut errnos = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut errnos);
    util::close_io(&mut io, &mut errnos, client);
    util::close_io(&mut io, &mut errnos, server);
    // A handle of another IO (open there), and handles just closed.
    let mut other: IO<()> = backend.io();
    let foreign = other.open_socket("127.0.0.1:1".parse().unwrap()).unwrap();
    for fd in [foreign, client, server] {
        io.recv(fd, Vec::with_capacity(8), |_, errnos, result, _| {
            errnos.push(errno_of(&result))
        });
        io.send(fd, &b"x"[..], |_, errnos, result, _| {
            errnos.push(errno_of(&result))
        });
        io.read(fd, Vec::with_capacity(8), 0, |_, errnos, result, _| {
            errnos.push(errno_of(&result))
        });
        io.fsync(fd, |_, errnos, result| errnos.push(errno_of(&result)));
        io.close(fd, |_, errnos, result| errnos.push(errno_of(&result)));
    }
    io.run(&mut errnos).unwrap();
    assert_eq!(errnos.len(), 15);
    assert!(
        errnos.iter().all(|&errno| errno == Some(libc::EBADF)),
        "{errnos:?}"
    );
}

fn zero_length_buffers_are_rejected_with_einval(backend: Backend) {
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    let mut errnos = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut errnos);
    io.recv(server, Vec::new(), |_, errnos, result, _| {
        errnos.push(errno_of(&result))
    });
    io.send(client, Vec::new(), |_, errnos, result, _| {
        errnos.push(errno_of(&result))
    });
    io.read(server, Vec::new(), 0, |_, errnos, result, _| {
        errnos.push(errno_of(&result))
    });
    io.write(client, Vec::new(), 0, |_, errnos, result, _| {
        errnos.push(errno_of(&result))
    });
    assert!(errnos.is_empty());
    io.run(&mut errnos).unwrap();
    assert_eq!(errnos, vec![Some(libc::EINVAL); 4]);
    util::close_io(&mut io, &mut errnos, client);
    util::close_io(&mut io, &mut errnos, server);
}

/// `/dev/null` on a kernel; on the simulator, whose namespace has no
/// `/dev`, a file in its root.
fn dev_null_path(backend: Backend) -> &'static str {
    if backend.is_kernel() {
        "/dev/null"
    } else {
        "null"
    }
}

/// The simulator's disk for `oversized_buffers_are_clamped_to_the_kernel_limit`:
/// its capacity, which cuts the clamped write short.
const SMALL_DISK_BYTES: u64 = 1 << 20;

fn oversized_buffers_are_clamped_to_the_kernel_limit(backend: Backend) {
    let mut io: IO<Option<io::Result<usize>>> = if backend.is_kernel() {
        backend.io()
    } else {
        let mut options = ringio::sim::SimOptions::default().without_faults();
        options.disk.capacity_bytes = SMALL_DISK_BYTES;
        let mut sim = ringio::sim::Simulator::new(util::SIM_SEED, options);
        let node = sim.add_node("small");
        sim.io(node).unwrap()
    };
    // The simulated disk has no /dev/null: a file of its own stands in.
    let options = FileOptions::new().read(false).create(!backend.is_kernel());
    let dev_null = io.open_file(dev_null_path(backend), options).unwrap();
    // 4 GiB + 1 byte: without clamping, the kernel's 32-bit length would wrap
    // to 1. calloc maps the zero pages lazily, so this costs no real memory.
    let huge = vec![0u8; (4 << 30) + 1];
    io.write(dev_null, huge, 0, |_, outcome, result, buf| {
        assert_eq!(buf.len(), (4 << 30) + 1);
        *outcome = Some(result);
    });
    let mut outcome = None;
    io.run(&mut outcome).unwrap();
    let outcome = outcome.take().unwrap();
    if backend.is_kernel() {
        assert_eq!(outcome.unwrap(), BUFFER_LIMIT);
    } else {
        // The simulated disk has no /dev/null: it keeps what fits of the
        // 2 GiB (BUFFER_LIMIT), a short write to its capacity, as Linux
        // writes the blocks that fit. Unclamped, the length would have
        // wrapped to 1 byte.
        assert_eq!(outcome.unwrap(), SMALL_DISK_BYTES as usize);
    }
    util::close_io(&mut io, &mut None, dev_null);
}

fn offsets_beyond_i64_max_are_rejected(backend: Backend) {
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    let options = FileOptions::new().create(!backend.is_kernel());
    let dev_null = io.open_file(dev_null_path(backend), options).unwrap();
    io.write(dev_null, &b"x"[..], u64::MAX, |_, errnos, result, _| {
        errnos.push(errno_of(&result))
    });
    io.read(
        dev_null,
        Vec::with_capacity(1),
        1 << 63,
        |_, errnos, result, _| errnos.push(errno_of(&result)),
    );
    let mut errnos = Vec::new();
    io.run(&mut errnos).unwrap();
    assert_eq!(errnos, vec![Some(libc::EINVAL); 2]);
    util::close_io(&mut io, &mut errnos, dev_null);
}

#[derive(Default)]
struct CancelOutcome {
    target: Option<io::Result<()>>,
    cancels: Vec<Option<i32>>,
}

fn max_timeout_never_fires_and_can_be_cancelled(backend: Backend) {
    let mut io: IO<CancelOutcome> = backend.io();
    let id = io.timeout(u64::MAX, |_, outcome, result| outcome.target = Some(result));
    let mut outcome = CancelOutcome::default();
    io.run_for_ns(&mut outcome, 5_000_000).unwrap();
    assert!(outcome.target.is_none());
    assert_eq!(io.in_flight(), 1);
    io.cancel(id, |_, outcome, result| {
        outcome.cancels.push(errno_of(&result))
    });
    io.run(&mut outcome).unwrap();
    assert_eq!(
        errno_of(outcome.target.as_ref().unwrap()),
        Some(libc::ECANCELED)
    );
    assert_eq!(outcome.cancels, vec![None]);
}

// ---------------------------------------------------------------------------
// Cancel

#[derive(Default)]
struct RecvCancel {
    recv: Option<(Option<i32>, usize)>,
    cancels: Vec<Option<i32>>,
}

/// Cancels `id`, recording the cancel's own errno in `outcome.cancels`.
fn record_cancel(io: &mut IO<RecvCancel>, id: CompletionId) {
    io.cancel(id, |_, outcome, result| {
        outcome.cancels.push(errno_of(&result))
    });
}

/// Starts a recv that nothing will satisfy, hands it to the kernel, cancels
/// it, and runs until both callbacks ran. Returns the recv's id and the pair.
fn recv_then_cancel(
    io: &mut IO<RecvCancel>,
    outcome: &mut RecvCancel,
    capacity: usize,
) -> (CompletionId, Handle, Handle) {
    let (client, server) = util::tcp_pair_io(io, outcome);
    let id = io.recv(
        server,
        Vec::with_capacity(capacity),
        |_, outcome, result, buf| {
            outcome.recv = Some((errno_of(&result), buf.capacity()));
        },
    );
    io.tick(outcome).unwrap();
    record_cancel(io, id);
    io.run(outcome).unwrap();
    (id, client, server)
}

fn cancel_in_flight_recv_returns_ecanceled_and_the_buffer(backend: Backend) {
    let mut io: IO<RecvCancel> = backend.io();
    let mut outcome = RecvCancel::default();
    let (_, client, server) = recv_then_cancel(&mut io, &mut outcome, 4096);
    assert_eq!(outcome.recv, Some((Some(libc::ECANCELED), 4096)));
    assert_eq!(outcome.cancels, vec![None]);
    util::close_io(&mut io, &mut outcome, client);
    util::close_io(&mut io, &mut outcome, server);
}

fn cancel_twice_reports_enoent_the_second_time(backend: Backend) {
    let mut io: IO<RecvCancel> = backend.io();
    let mut outcome = RecvCancel::default();
    let (id, client, server) = recv_then_cancel(&mut io, &mut outcome, 64);
    record_cancel(&mut io, id);
    io.run(&mut outcome).unwrap();
    assert_eq!(outcome.recv.unwrap().0, Some(libc::ECANCELED));
    assert_eq!(outcome.cancels, vec![None, Some(libc::ENOENT)]);
    util::close_io(&mut io, &mut outcome, client);
    util::close_io(&mut io, &mut outcome, server);
}

fn cancel_stale_id_never_touches_the_new_occupant(backend: Backend) {
    let mut io: IO<RecvCancel> = backend.io_with(Config::new().completions_initial(1));
    let mut outcome = RecvCancel::default();
    let (client, server) = util::tcp_pair_io(&mut io, &mut outcome);
    let stale: CompletionId = io.nop(|_, _, result| result.unwrap());
    io.run(&mut outcome).unwrap();
    // With every slot free again, the recv reuses the nop's slot.
    let live = io.recv(server, Vec::with_capacity(64), |_, outcome, result, buf| {
        outcome.recv = Some((errno_of(&result), buf.len()));
    });
    assert_ne!(live, stale);
    record_cancel(&mut io, stale);
    io.run_for_ns(&mut outcome, 2_000_000).unwrap();
    assert_eq!(outcome.cancels, vec![Some(libc::ENOENT)]);
    assert!(outcome.recv.is_none(), "the live recv was not cancelled");
    io.send(client, &b"still alive"[..], |_, _, result, _| {
        assert_eq!(result.unwrap(), 11)
    });
    io.run(&mut outcome).unwrap();
    assert_eq!(outcome.recv, Some((None, 11)));
    util::close_io(&mut io, &mut outcome, client);
    util::close_io(&mut io, &mut outcome, server);
}

fn cancel_unqueued_operation_settles_in_user_space(backend: Backend) {
    let mut io: IO<Vec<(usize, Option<i32>)>> = backend.io_with(Config::new().entries(2));
    let mut seen = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    let mut ids = Vec::new();
    for index in 0..8 {
        ids.push(
            io.recv(server, Vec::with_capacity(8), move |_, seen, result, _| {
                seen.push((index, errno_of(&result)));
            }),
        );
    }
    // The ring holds 2 entries, so the last recvs wait on `unqueued`.
    assert!(io.stats().unqueued_max > 0);
    io.cancel(ids[7], |_, seen, result| {
        seen.push((100, errno_of(&result)))
    });
    io.tick(&mut seen).unwrap();
    assert!(seen.contains(&(7, Some(libc::ECANCELED))));
    assert!(seen.contains(&(100, None)));
    for &id in &ids[..7] {
        io.cancel(id, |_, _, _| {});
    }
    io.run(&mut seen).unwrap();
    assert_eq!(seen.iter().filter(|(index, _)| *index < 8).count(), 8);
    util::close_io(&mut io, &mut seen, client);
    util::close_io(&mut io, &mut seen, server);
}

fn cancel_finished_operation_reports_enoent(backend: Backend) {
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    let id = io.nop(|_, errnos, result| errnos.push(errno_of(&result)));
    // Reaped but its callback has not run: finished all the same.
    io.cancel(id, |_, errnos, result| errnos.push(errno_of(&result)));
    let mut errnos = Vec::new();
    io.run(&mut errnos).unwrap();
    assert_eq!(errnos.len(), 2);
    assert!(errnos.contains(&None), "the nop completed naturally");
    assert!(
        errnos.contains(&Some(libc::ENOENT)) || errnos.contains(&Some(libc::EALREADY)),
        "{errnos:?}"
    );
}

/// What `a_cancel_from_a_callback_of_a_result_still_to_run_reports_enoent`
/// records: the second nop's id, and what ran, in order.
#[derive(Default)]
struct CancelLater {
    target: Option<CompletionId>,
    seen: Vec<(&'static str, Option<i32>)>,
}

/// Two nops complete in one reap; the first one's callback cancels the
/// second, whose result is in but whose callback has not run (on io_uring
/// its entry is still in the completion queue, settled only when its turn
/// comes). The second completes with its own success, in its place, and
/// the cancel finds nothing to cancel.
fn a_cancel_from_a_callback_of_a_result_still_to_run_reports_enoent(backend: Backend) {
    let mut io: IO<CancelLater> = backend.io();
    let mut state = CancelLater::default();
    io.nop(|io, state: &mut CancelLater, result| {
        state.seen.push(("first", errno_of(&result)));
        let target = state.target.expect("set before the run");
        io.cancel(target, |_, state: &mut CancelLater, result| {
            state.seen.push(("cancel", errno_of(&result)))
        });
    });
    state.target =
        Some(io.nop(|_, state: &mut CancelLater, result| {
            state.seen.push(("second", errno_of(&result)))
        }));
    io.run(&mut state).unwrap();
    assert_eq!(
        state.seen,
        [
            ("first", None),
            ("second", None),
            ("cancel", Some(libc::ENOENT))
        ]
    );
    assert_eq!(io.in_flight(), 0);
}

/// Plain completions (nops) and others (fsyncs, on a handle) interleaved,
/// more than the submission queue holds, with a timer among them: every
/// callback runs exactly once, the nops in their submission order (the
/// kernel may finish fsyncs in any order), and the run that a completion
/// that is not plain cuts short loses nothing.
fn plain_and_other_completions_of_one_reap_each_run_once_in_order(backend: Backend) {
    let mut io: IO<Vec<(bool, u32)>> = backend.io_with(Config::new().entries(16));
    let scratch = util::Scratch::new(backend, "mixed");
    let fd = io
        .open_file(scratch.path("data"), FileOptions::new().create(true))
        .unwrap();
    io.timeout(0, |_, seen: &mut Vec<(bool, u32)>, result| {
        result.unwrap();
        seen.push((false, u32::MAX));
    });
    for index in 0..200u32 {
        if index % 5 == 2 {
            io.fsync(fd, move |_, seen: &mut Vec<(bool, u32)>, result| {
                result.unwrap();
                seen.push((false, index));
            });
        } else {
            io.nop(move |_, seen: &mut Vec<(bool, u32)>, result| {
                result.unwrap();
                seen.push((true, index));
            });
        }
    }
    let mut seen = Vec::new();
    io.run(&mut seen).unwrap();
    assert_eq!(seen.len(), 201);
    let nops: Vec<u32> = seen.iter().filter(|e| e.0).map(|e| e.1).collect();
    let mut fsyncs: Vec<u32> = seen
        .iter()
        .filter(|e| !e.0 && e.1 != u32::MAX)
        .map(|e| e.1)
        .collect();
    fsyncs.sort_unstable();
    assert_eq!(nops, (0..200).filter(|i| i % 5 != 2).collect::<Vec<_>>());
    assert_eq!(fsyncs, (0..200).filter(|i| i % 5 == 2).collect::<Vec<_>>());
    util::close_io(&mut io, &mut seen, fd);
}

/// In one reap: a nop whose callback queues a completion at once (a cancel
/// of a stale id, settled in user space), a read on a handle (not plain),
/// and another nop. The read ends the run of plain completions; it and
/// the nop after it still run before what the first callback queued,
/// which completed after them.
fn a_run_cut_short_runs_its_rest_before_what_its_callbacks_queued(backend: Backend) {
    let mut io: IO<Vec<&'static str>> = backend.io();
    let mut seen = Vec::new();
    let scratch = util::Scratch::new(backend, "cut_short");
    let fd = io
        .open_file(scratch.path("data"), FileOptions::new().create(true))
        .unwrap();
    let stale = io.nop(|_, _, result| result.unwrap());
    io.run(&mut seen).unwrap();
    io.nop(move |io, seen: &mut Vec<&'static str>, result| {
        result.unwrap();
        seen.push("first");
        io.cancel(stale, |_, seen: &mut Vec<&'static str>, result| {
            assert_eq!(errno_of(&result), Some(libc::ENOENT));
            seen.push("cancel");
        });
    });
    io.read(
        fd,
        vec![0u8; 16],
        0,
        |_, seen: &mut Vec<&'static str>, result, _| {
            assert_eq!(result.unwrap(), 0, "the file is empty");
            seen.push("read");
        },
    );
    io.nop(|_, seen: &mut Vec<&'static str>, result| {
        result.unwrap();
        seen.push("second");
    });
    io.run(&mut seen).unwrap();
    assert_eq!(seen, ["first", "read", "second", "cancel"]);
    util::close_io(&mut io, &mut seen, fd);
}

// ---------------------------------------------------------------------------
// Stack, poll, waker, non-blocking fds, re-entry, stats

#[derive(Default)]
struct Chain {
    remaining: u32,
    stack_min: usize,
    stack_max: usize,
}

fn chain_next(io: &mut IO<Chain>) {
    io.nop(|io, chain, result| {
        result.unwrap();
        let marker = 0u8;
        let address = std::hint::black_box(&marker) as *const u8 as usize;
        chain.stack_min = chain.stack_min.min(address);
        chain.stack_max = chain.stack_max.max(address);
        chain.remaining -= 1;
        if chain.remaining > 0 {
            chain_next(io);
        }
    });
}

fn chain_of_100000_callbacks_keeps_the_stack_bounded(backend: Backend) {
    // A thread with a small stack: recursion 100,000 deep would overflow it.
    let thread = std::thread::Builder::new().stack_size(256 * 1024);
    let chain = thread
        .spawn(move || {
            let mut io: IO<Chain> = backend.io();
            let mut chain = Chain {
                remaining: 100_000,
                stack_min: usize::MAX,
                stack_max: 0,
            };
            chain_next(&mut io);
            io.run(&mut chain).unwrap();
            chain
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(chain.remaining, 0);
    assert!(
        chain.stack_max - chain.stack_min < 16 * 1024,
        "every callback ran at the same depth"
    );
}

fn poll_reports_readable_and_writable(backend: Backend) {
    let mut io: IO<Vec<PollEvents>> = backend.io();
    let mut seen = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    io.poll(client, PollEvents::WRITABLE, |_, seen, result| {
        seen.push(result.unwrap())
    });
    io.run(&mut seen).unwrap();
    assert!(seen[0].contains(PollEvents::WRITABLE));
    io.poll(server, PollEvents::READABLE, |_, seen, result| {
        seen.push(result.unwrap())
    });
    io.run_for_ns(&mut seen, 2_000_000).unwrap();
    assert_eq!(seen.len(), 1, "nothing to read yet");
    io.send(client, &b"!"[..], |_, _, result, _| {
        assert_eq!(result.unwrap(), 1)
    });
    io.run(&mut seen).unwrap();
    assert!(seen[1].contains(PollEvents::READABLE));
    util::close_io(&mut io, &mut seen, client);
    util::close_io(&mut io, &mut seen, server);
}

fn poll_with_no_events_is_einval(backend: Backend) {
    let mut io: IO<Option<Option<i32>>> = backend.io();
    let mut errno = None;
    let (client, server) = util::tcp_pair_io(&mut io, &mut errno);
    io.poll(server, PollEvents::default(), |_, errno, result| {
        *errno = Some(errno_of(&result))
    });
    io.run(&mut errno).unwrap();
    assert_eq!(errno.take(), Some(Some(libc::EINVAL)));
    util::close_io(&mut io, &mut errno, client);
    util::close_io(&mut io, &mut errno, server);
}

fn count_wake(io: &mut IO<u32>, waker: &ringio::Waker) {
    io.wait_for_wake(waker, |_, wakes, result| {
        result.unwrap();
        *wakes += 1;
    });
}

fn waker_wakes_a_blocked_loop_from_another_thread(backend: Backend) {
    let mut io: IO<u32> = backend.io();
    let waker = io.open_waker().unwrap();
    count_wake(&mut io, &waker);
    let remote = waker.clone();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        remote.wake().unwrap();
    });
    // `run` blocks in the kernel with nothing else to do: only the wake ends it.
    let mut wakes = 0;
    io.run(&mut wakes).unwrap();
    thread.join().unwrap();
    assert_eq!(wakes, 1);

    // Wakes that arrive before the callback runs coalesce into one run.
    waker.wake().unwrap();
    waker.wake().unwrap();
    count_wake(&mut io, &waker);
    io.run(&mut wakes).unwrap();
    assert_eq!(wakes, 2);
    // Re-armed, it does not fire again until woken again.
    count_wake(&mut io, &waker);
    io.run_for_ns(&mut wakes, 5_000_000).unwrap();
    assert_eq!(wakes, 2);
    waker.wake().unwrap();
    io.run(&mut wakes).unwrap();
    assert_eq!(wakes, 3);
}

fn nonblocking_fd_recv_waits_for_readiness(backend: Backend) {
    let mut io: IO<Option<(usize, Vec<u8>)>> = backend.io();
    let (client, server) = util::tcp_pair();
    server.set_nonblocking(true).unwrap();
    let server = io.adopt(server.into()).unwrap();
    io.recv(server, Vec::with_capacity(64), |_, outcome, result, buf| {
        *outcome = Some((result.expect("recv on a non-blocking fd"), buf));
    });
    let mut outcome = None;
    io.run_for_ns(&mut outcome, 5_000_000).unwrap();
    assert!(outcome.is_none(), "no EAGAIN reaches the callback");
    util::write_all(client.as_fd(), b"ready");
    io.run(&mut outcome).unwrap();
    let (count, buf) = outcome.take().unwrap();
    assert_eq!(count, 5);
    assert_eq!(buf, b"ready");
    util::close_io(&mut io, &mut outcome, server);
}

fn reentering_the_loop_from_a_callback_is_edeadlk(backend: Backend) {
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    io.nop(|io, errnos, _| {
        let tick = io.tick(errnos);
        errnos.push(errno_of(&tick));
        let run = io.run_for_ns(errnos, 1);
        errnos.push(errno_of(&run));
    });
    let mut errnos = Vec::new();
    io.run(&mut errnos).unwrap();
    assert_eq!(errnos, vec![Some(libc::EDEADLK); 2]);
}

fn submit_batch_submits_from_inside_the_queuing_call(backend: Backend) {
    let mut io: IO<u32> = backend.io_with(Config::new().submit_batch(2));
    let mut calls = 0u32;
    let count = |_: &mut IO<u32>, calls: &mut u32, result: io::Result<()>| {
        result.unwrap();
        *calls += 1;
    };
    io.nop(count);
    assert_eq!(
        io.stats().syscalls,
        0,
        "one queued entry is below the batch"
    );
    io.nop(count);
    let early = match backend {
        Backend::IoUring | Backend::IoUringUnregistered => 1,
        // epoll and the simulator start operations once per pass, whatever the batch.
        Backend::Epoll | Backend::Sim => 0,
    };
    assert_eq!(io.stats().syscalls, early);
    assert_eq!(calls, 0, "callbacks still run only from the loop");
    io.run(&mut calls).unwrap();
    assert_eq!(calls, 2);
    assert_eq!(io.in_flight(), 0);
}

fn stats_count_submissions_completions_and_syscalls(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let before = io.stats();
    for _ in 0..10 {
        io.nop(|_, _, _| {});
    }
    assert_eq!(io.stats().submitted - before.submitted, 10);
    assert_eq!(io.stats().in_flight, 10);
    io.run(&mut ()).unwrap();
    let after = io.stats();
    assert_eq!(after.completed - before.completed, 10);
    assert_eq!(after.in_flight, 0);
    // Waiting is a syscall on every backend (NOPs need none on epoll).
    io.run_for_ns(&mut (), 1_000_000).unwrap();
    assert!(io.stats().syscalls > before.syscalls);
}

fn cq_overflow_loses_no_completion(backend: Backend) {
    // A 2-entry ring has an 8-entry completion queue. 100 polls parked on one
    // socket all complete at the same instant when it becomes readable.
    let mut io: IO<u32> = backend.io_with(Config::new().entries(2));
    let mut completions = 0;
    let (client, server) = util::tcp_pair_io(&mut io, &mut completions);
    for _ in 0..100 {
        io.poll(server, PollEvents::READABLE, |_, completions, result| {
            assert!(result.unwrap().contains(PollEvents::READABLE));
            *completions += 1;
        });
    }
    // Each non-blocking pass moves a few more parked polls into the kernel.
    while io.stats().unqueued > 0 {
        io.tick(&mut completions).unwrap();
    }
    assert_eq!(completions, 0);
    // The send's callback does not count: `completions` counts polls only.
    io.send(client, &b"!"[..], |_, _, result, _| {
        assert_eq!(result.unwrap(), 1)
    });
    while completions < 100 {
        io.run_for_ns(&mut completions, 1_000_000).unwrap();
    }
    assert_eq!(completions, 100);
    assert_eq!(io.in_flight(), 0);
    util::close_io(&mut io, &mut completions, client);
    util::close_io(&mut io, &mut completions, server);
}

extern "C" fn ignore_signal(_: libc::c_int) {}

fn a_signal_interrupting_the_wait_is_not_an_error(backend: Backend) {
    // SAFETY: sigaction is plain old data; all-zero is a valid value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = ignore_signal as *const () as usize;
    // SAFETY: installs a handler that does nothing, without SA_RESTART, so a
    // blocked io_uring_enter returns EINTR.
    let installed = unsafe { libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()) };
    assert_eq!(installed, 0);
    let mut io: IO<Option<usize>> = backend.io();
    let (client, server) = util::tcp_pair();
    let server = io.adopt(server.into()).unwrap();
    io.recv(server, Vec::with_capacity(8), |_, outcome, result, _| {
        *outcome = Some(result.unwrap());
    });
    // SAFETY: pthread_self has no preconditions.
    let loop_thread = unsafe { libc::pthread_self() } as usize;
    let signaller = std::thread::spawn(move || {
        for _ in 0..5 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            // SAFETY: the loop thread outlives this thread (joined below).
            unsafe { libc::pthread_kill(loop_thread as libc::pthread_t, libc::SIGUSR1) };
        }
        util::write_all(client.as_fd(), b"late");
    });
    let mut outcome = None;
    // Signals arrive while `run` blocks in the kernel; none may surface.
    io.run(&mut outcome).unwrap();
    signaller.join().unwrap();
    assert_eq!(outcome, Some(4));
    util::close_io(&mut io, &mut outcome, server);
}

fn impossible_configurations_are_errors_not_aborts(backend: Backend) {
    let zero_entries = backend.try_io_with::<()>(Config::new().entries(0));
    assert_eq!(errno_of(&zero_entries), Some(libc::EINVAL));
    // A close takes two submission entries on io_uring; one would hang it.
    let one_entry = backend.try_io_with::<()>(Config::new().entries(1));
    assert_eq!(errno_of(&one_entry), Some(libc::EINVAL));
    // u32::MAX slots of 88 bytes is about 377 GB.
    let huge_table = backend.try_io_with::<()>(Config::new().completions_initial(u32::MAX));
    assert_eq!(errno_of(&huge_table), Some(libc::ENOMEM));
    // Absurd ring sizes are clamped (by the kernel, or the simulator), not refused.
    let huge_ring = backend.try_io_with::<()>(Config::new().entries(u32::MAX));
    assert!(huge_ring.is_ok());
}

fn a_panicking_callback_leaves_the_loop_usable(backend: Backend) {
    let mut io: IO<Vec<&'static str>> = backend.io();
    let mut seen = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    io.recv(server, Vec::with_capacity(64), |_, seen, result, buf| {
        assert_eq!(result.unwrap(), 5);
        assert_eq!(buf, b"hello");
        seen.push("recv");
    });
    io.nop(|_, seen, _| seen.push("before"));
    io.nop(|_, _, _| panic!("a callback panics"));
    io.nop(|_, seen, _| seen.push("after"));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| io.run(&mut seen)));
    assert!(unwound.is_err());
    assert_eq!(seen, ["before"]);
    // The loop is not poisoned: the callback after the panic runs on the
    // next call, the recv still works, and nothing is lost.
    io.tick(&mut seen).unwrap();
    assert_eq!(seen, ["before", "after"]);
    util::send_all_io(&mut io, &mut seen, client, b"hello");
    while seen.len() < 3 {
        io.run_for_ns(&mut seen, 1_000_000).unwrap();
    }
    assert_eq!(seen, ["before", "after", "recv"]);
    assert_eq!(io.in_flight(), 0);
    util::close_io(&mut io, &mut seen, client);
    util::close_io(&mut io, &mut seen, server);
}

/// The callbacks a panic left behind keep their place: ahead of what
/// completes after them (here a cancel settled in user space, which is
/// queued at once), in their own order.
fn callbacks_left_by_a_panic_run_before_later_completions(backend: Backend) {
    let mut io: IO<Vec<&'static str>> = backend.io();
    let mut seen = Vec::new();
    let first = io.nop(|_, _, _| panic!("a callback panics"));
    io.nop(|_, seen, _| seen.push("second"));
    io.nop(|_, seen, _| seen.push("third"));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| io.run(&mut seen)));
    assert!(unwound.is_err());
    assert!(seen.is_empty());
    // `first` is done and its slot free: the cancel is settled (ENOENT).
    io.cancel(first, |_, seen, result| {
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        seen.push("cancel");
    });
    io.nop(|_, seen, _| seen.push("later"));
    io.run(&mut seen).unwrap();
    assert_eq!(seen, ["second", "third", "cancel", "later"]);
    assert_eq!(io.in_flight(), 0);
}

/// A callback panics with more completions of the same reap still to run
/// (on io_uring, still in the completion queue), and the `IO` is dropped
/// without another loop call, with a recv still in the kernel, so that the
/// drop drains the queue: each of the rest is dropped once, never run, and
/// the drain neither panics nor reads them again.
fn an_io_dropped_after_a_panic_mid_run_drops_the_rest_once(backend: Backend) {
    struct Counted(std::rc::Rc<std::cell::Cell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut io: IO<u32> = backend.io();
    let mut ran = 0;
    let (_client, server) = util::tcp_pair_io(&mut io, &mut ran);
    io.recv(server, Vec::with_capacity(8), |_, _, _, _| {});
    io.nop(|_, _, _| panic!("a callback panics"));
    for _ in 0..5 {
        let counted = Counted(drops.clone());
        io.nop(move |_, ran, _| {
            let _counted = &counted;
            *ran += 1;
        });
    }
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| io.run(&mut ran)));
    assert!(unwound.is_err());
    assert_eq!(ran, 0);
    assert_eq!(drops.get(), 0);
    drop(io);
    assert_eq!(drops.get(), 5);
}

// ---------------------------------------------------------------------------
// Backend parity: behaviours where a readiness backend most easily drifts
// from a completion backend.

fn ready_operations_complete_in_submission_order(backend: Backend) {
    let mut io: IO<Vec<usize>> = backend.io_with(Config::new().entries(16));
    for index in 0..1000 {
        io.nop(move |_, order, result| {
            result.unwrap();
            order.push(index);
        });
    }
    let mut order = Vec::new();
    io.run(&mut order).unwrap();
    assert_eq!(order, (0..1000).collect::<Vec<_>>());
}

fn a_waiting_recv_does_not_hold_back_later_operations(backend: Backend) {
    let mut io: IO<Vec<&'static str>> = backend.io();
    let mut order = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut order);
    io.recv(server, Vec::with_capacity(8), |_, order, result, _| {
        result.unwrap();
        order.push("recv");
    });
    io.nop(|_, order, _| order.push("nop"));
    io.timeout(1_000_000, |_, order, _| order.push("timeout"));
    io.run_for_ns(&mut order, 5_000_000).unwrap();
    assert_eq!(order, ["nop", "timeout"]);
    io.send(client, &b"late"[..], |_, _, result, _| {
        assert_eq!(result.unwrap(), 4)
    });
    io.run(&mut order).unwrap();
    assert_eq!(order, ["nop", "timeout", "recv"]);
    util::close_io(&mut io, &mut order, client);
    util::close_io(&mut io, &mut order, server);
}

fn many_timers_with_equal_deadlines_fire_once_each_in_submission_order(backend: Backend) {
    let mut io: IO<Fired> = backend.io();
    let base_ns = io.now_ns() + 2_000_000;
    // Three deadlines, 1 ms apart, interleaved in submission order.
    for index in 0..10_000 {
        record_timeout_at(&mut io, base_ns + (index % 3) as u64 * 1_000_000, index);
    }
    let mut fired = Fired::default();
    io.run(&mut fired).unwrap();
    let order: Vec<usize> = fired.order.iter().map(|&(index, _)| index).collect();
    let expected: Vec<usize> = (0..3)
        .flat_map(|group| (0..10_000).filter(move |index| index % 3 == group))
        .collect();
    assert_eq!(order, expected);
}

#[derive(Default)]
struct Backpressure {
    data: Vec<u8>,
    sent: usize,
    send_results: Vec<usize>,
    received: Vec<u8>,
    eof: bool,
}

/// Sends everything from `offset` on in one operation, then the rest.
fn send_rest(io: &mut IO<Backpressure>, fd: Handle) {
    io.nop(move |io, state, _| {
        let rest = state.data[state.sent..].to_vec();
        io.send(fd, rest, move |io, state, result, _| {
            let count = result.expect("send");
            state.send_results.push(count);
            state.sent += count;
            if state.sent < state.data.len() {
                send_rest(io, fd);
            } else {
                io.close(fd, |_, _, result| result.unwrap());
            }
        });
    });
}

fn recv_to_eof(io: &mut IO<Backpressure>, fd: Handle) {
    io.recv(
        fd,
        Vec::with_capacity(64 * 1024),
        move |io, state, result, buf| {
            if result.expect("recv") == 0 {
                state.eof = true;
                return;
            }
            state.received.extend_from_slice(&buf);
            recv_to_eof(io, fd);
        },
    );
}

fn partial_sends_under_backpressure_lose_no_bytes(backend: Backend) {
    let mut io: IO<Backpressure> = backend.io();
    let mut state = Backpressure {
        data: util::pattern(4 << 20, 11),
        ..Backpressure::default()
    };
    let (client, server) = util::tcp_pair_io(&mut io, &mut state);
    // The simulator's buffers are 64 KiB per direction by default, with no
    // socket options to set; the kernel's are shrunk to 16 KiB here.
    let kernel_buffers = [(client, libc::SO_SNDBUF), (server, libc::SO_RCVBUF)];
    for (fd, option) in kernel_buffers.into_iter().filter(|_| backend.is_kernel()) {
        let size: libc::c_int = 16 * 1024;
        // SAFETY: `size` is a live c_int for the call on an fd the IO owns
        // and keeps open across it.
        let result = unsafe {
            libc::setsockopt(
                util::raw(&io, fd),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(result, 0);
    }
    send_rest(&mut io, client);
    // Nobody reads yet: the first send can only place what the buffers hold.
    while state.send_results.is_empty() {
        io.run_for_ns(&mut state, 1_000_000).unwrap();
    }
    assert!(
        state.send_results[0] < state.data.len(),
        "a 4 MiB send into small buffers completes partially"
    );
    recv_to_eof(&mut io, server);
    io.run(&mut state).unwrap();
    assert!(state.eof);
    assert_eq!(state.send_results.iter().sum::<usize>(), state.data.len());
    assert_eq!(state.received.len(), state.data.len());
    assert_eq!(util::checksum(&state.received), util::checksum(&state.data));
    util::close_io(&mut io, &mut state, server);
}

fn close_with_pending_operations_completes_them_with_ecanceled(backend: Backend) {
    let mut io: IO<Vec<(&'static str, Option<i32>)>> = backend.io();
    let mut seen = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 4).unwrap();
    io.recv(server, Vec::with_capacity(8), |_, seen, result, _| {
        seen.push(("recv", errno_of(&result)));
    });
    io.poll(server, PollEvents::READABLE, |_, seen, result| {
        seen.push(("poll", errno_of(&result)));
    });
    io.accept(listener, |_, seen, result| {
        seen.push(("accept", errno_of(&result)));
    });
    io.tick(&mut seen).unwrap();
    assert!(seen.is_empty(), "all three wait");
    io.close(server, |_, seen, result| {
        seen.push(("close", errno_of(&result)))
    });
    io.close(listener, |_, seen, result| {
        seen.push(("close", errno_of(&result)))
    });
    io.run(&mut seen).unwrap();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            ("accept", Some(libc::ECANCELED)),
            ("close", None),
            ("close", None),
            ("poll", Some(libc::ECANCELED)),
            ("recv", Some(libc::ECANCELED)),
        ]
    );
    util::close_io(&mut io, &mut seen, client);
}

fn many_accepts_on_one_listener_each_take_one_connection(backend: Backend) {
    let mut io: IO<Vec<Handle>> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    let address = io.local_addr(listener).unwrap();
    for _ in 0..16 {
        io.accept(listener, |_, accepted, result| {
            accepted.push(result.expect("accept"))
        });
    }
    let mut accepted = Vec::new();
    io.tick(&mut accepted).unwrap();
    let clients: Vec<Handle> = (0..16)
        .map(|_| {
            let client = io.open_socket(address).unwrap();
            io.connect(client, address, |_, _, result| result.expect("connect"));
            client
        })
        .collect();
    io.run(&mut accepted).unwrap();
    assert_eq!(accepted.len(), 16);
    accepted.sort_unstable();
    accepted.dedup();
    assert_eq!(accepted.len(), 16, "16 distinct connections");
    for fd in accepted
        .clone()
        .into_iter()
        .chain(clients)
        .chain([listener])
    {
        util::close_io(&mut io, &mut accepted, fd);
    }
}

fn a_recv_and_a_send_wait_on_one_socket_at_once(backend: Backend) {
    let mut io: IO<Vec<(&'static str, usize)>> = backend.io();
    let mut seen = Vec::new();
    let (client, server) = util::tcp_pair_io(&mut io, &mut seen);
    // Fill the server's send path through the loop: send until one send
    // waits (the client reads nothing yet). That send is the waiting one.
    let chunk = vec![0u8; 64 * 1024];
    loop {
        io.send(server, chunk.clone(), |_, seen, result, _| {
            seen.push(("send", result.unwrap()))
        });
        io.run_for_ns(&mut seen, 5_000_000).unwrap();
        if seen.pop().is_none() {
            break;
        }
    }
    io.recv(server, Vec::with_capacity(16), |_, seen, result, _| {
        seen.push(("recv", result.unwrap()))
    });
    io.run_for_ns(&mut seen, 5_000_000).unwrap();
    assert!(
        seen.is_empty(),
        "both wait: nothing to read, no room to write"
    );
    io.send(client, &b"hello"[..], |_, _, result, _| {
        assert_eq!(result.unwrap(), 5)
    });
    while seen.is_empty() {
        io.run_for_ns(&mut seen, 1_000_000).unwrap();
    }
    assert_eq!(seen, [("recv", 5)]);
    // Drain the client side until the send completes.
    while seen.len() < 2 {
        io.recv(client, Vec::with_capacity(256 * 1024), |_, _, _, _| {});
        io.run_for_ns(&mut seen, 1_000_000).unwrap();
    }
    assert_eq!(seen[1].0, "send");
    assert!(seen[1].1 > 0);
    // Closing the client cancels its recvs still waiting.
    util::close_io(&mut io, &mut seen, client);
    util::close_io(&mut io, &mut seen, server);
}

fn read_from_an_empty_pipe_waits_for_data(backend: Backend) {
    let mut io: IO<Option<(usize, Vec<u8>)>> = backend.io();
    let (reader, writer) = util::pipe();
    let (reader, writer) = (io.adopt(reader).unwrap(), io.adopt(writer).unwrap());
    io.read(
        reader,
        Vec::with_capacity(32),
        0,
        |_, outcome, result, buf| {
            *outcome = Some((result.expect("read from a pipe"), buf));
        },
    );
    let mut outcome = None;
    io.run_for_ns(&mut outcome, 5_000_000).unwrap();
    assert!(
        outcome.is_none(),
        "the loop kept running while the read waited"
    );
    io.write(writer, b"piped".as_slice(), 0, |_, _, result, _| {
        assert_eq!(result.unwrap(), 5);
    });
    io.run(&mut outcome).unwrap();
    let (count, buf) = outcome.take().unwrap();
    assert_eq!((count, buf.as_slice()), (5, b"piped".as_slice()));
    util::close_io(&mut io, &mut outcome, reader);
    util::close_io(&mut io, &mut outcome, writer);
}

fn poll_on_a_regular_file_reports_it_ready(backend: Backend) {
    let mut io: IO<Option<PollEvents>> = backend.io();
    let scratch = util::Scratch::new(backend, "poll-file");
    let options = FileOptions::new().read(true).write(true).create(true);
    let fd = io.open_file(scratch.path("file"), options).unwrap();
    io.poll(fd, PollEvents::READABLE, |_, outcome, result| {
        *outcome = Some(result.unwrap())
    });
    let mut outcome = None;
    io.run(&mut outcome).unwrap();
    assert!(outcome.take().unwrap().contains(PollEvents::READABLE));
    util::close_io(&mut io, &mut outcome, fd);
}

fn poll_on_a_huge_bogus_fd_is_ebadf(backend: Backend) {
    let mut io: IO<Option<Option<i32>>> = backend.io();
    // SAFETY: no descriptor has this number, so none can be closed or
    // reused under the poll.
    unsafe {
        io.poll_fd(1_000_000_000, PollEvents::READABLE, |_, errno, result| {
            *errno = Some(errno_of(&result))
        })
    };
    let mut errno = None;
    io.run(&mut errno).unwrap();
    // The simulator has no foreign descriptors to watch.
    let expected = if backend.is_kernel() {
        libc::EBADF
    } else {
        libc::EOPNOTSUPP
    };
    assert_eq!(errno, Some(Some(expected)));
}
