//! A panic in user code (a handler's `Drop`, a tracing subscriber, a
//! callback) never lets the kernel write into freed memory, and never
//! wedges the loop. valgrind cannot see io_uring's writes, so these tests
//! watch for them themselves: after the `IO` is gone, data is sent to a
//! socket whose receive was in flight, into fresh allocations of the
//! buffer's size ("canaries"), which must stay intact.

#[macro_use]
mod util;

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Duration;

use ringio::{Config, PollEvents, IO};
use tracing::span;
use util::Backend;

conformance!(
    replacing_the_io_inside_a_callback_stops_the_call_and_both_stay_usable,
    swapping_the_io_inside_a_callback_stops_the_call_and_both_stay_usable;
    kernel_only:
    // The simulator is the "kernel": dropping its IO forgets in-flight work
    // at once, with nothing that could write later (tests/simulation.rs).
    drop_survives_a_panicking_handler_drop_without_freeing_kernel_buffers,
    drop_survives_a_subscriber_that_panics_on_its_warning,
);

/// Some tests look for their own ring's fd in /proc/self/fd, so no test of
/// this file makes an `IO` while another runs.
static SERIAL: Mutex<()> = Mutex::new(());

const BUF_BYTES: usize = 1000;

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a handler's Drop panics");
    }
}

/// A subscriber that panics on every warning, as a buggy one might.
struct PanicOnWarn;

impl tracing::Subscriber for PanicOnWarn {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            panic!("the subscriber panics on a warning");
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

fn fds_of_kind(kind: &str) -> Vec<RawFd> {
    let entries = std::fs::read_dir("/proc/self/fd").unwrap();
    let mut fds: Vec<RawFd> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            let fd = entry.file_name().to_str()?.parse().ok()?;
            target.to_str()?.contains(kind).then_some(fd)
        })
        .collect();
    fds.sort_unstable();
    fds
}

/// A new `IO`, and the descriptor of the ring or epoll instance it made.
fn new_io_with_its_fd(backend: Backend, config: Config) -> (IO<()>, RawFd) {
    let kind = match backend {
        Backend::IoUring | Backend::IoUringUnregistered => "io_uring",
        _ => "eventpoll",
    };
    let before = fds_of_kind(kind);
    let io = backend.io_with(config);
    let after = fds_of_kind(kind);
    let fresh: Vec<RawFd> = after
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    assert_eq!(fresh.len(), 1, "one new {kind} fd");
    (io, fresh[0])
}

/// Arms what the reproduction arms: receives whose handlers panic
/// when dropped, a receive into a 1000-byte `Vec` on another socket, and a
/// poll on the `IO`'s own fd, which keeps the ring alive past its close.
/// Returns the peer of the socket whose receive holds the `Vec`.
fn arm(io: &mut IO<()>, own_fd: RawFd, panicking_handlers: usize) -> (TcpStream, TcpStream) {
    // Two drain cancels fit the 2-entry queue at once: the panicking
    // handlers go first, so the Vec's receive is still in the kernel when
    // the first of them panics.
    let mut kept = Vec::new();
    for _ in 0..panicking_handlers {
        let (client, server) = util::tcp_pair();
        let server_io = io.adopt(server.try_clone().unwrap().into()).unwrap();
        let guard = PanicOnDrop;
        io.recv(server_io, Vec::with_capacity(8), move |_, _, _, _| {
            let _guard = &guard;
        });
        kept.push((client, server));
    }
    let (client, server) = util::tcp_pair();
    let server_io = io.adopt(server.try_clone().unwrap().into()).unwrap();
    io.recv(server_io, Vec::with_capacity(BUF_BYTES), |_, _, _, _| {});
    // SAFETY: the test never closes the IO's own fd; it is closed by the
    // IO's drop only, and the kernel keeps the file alive for this poll.
    unsafe { io.poll_fd(own_fd, PollEvents::READABLE, |_, _, _| {}) };
    io.tick(&mut ()).unwrap();
    std::mem::forget(kept); // Their sockets stay open, as the others do.
    (client, server)
}

/// Sends data to the socket whose receive was in flight, into fresh
/// allocations of its buffer's size: none may change.
fn assert_no_write_into_freed_memory(mut client: TcpStream) {
    let canaries: Vec<Vec<u8>> = (0..64).map(|_| vec![0xAA; BUF_BYTES]).collect();
    client.write_all(&[0x55; BUF_BYTES]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for canary in &canaries {
        assert!(
            canary.iter().all(|&byte| byte == 0xAA),
            "the kernel wrote into freed memory"
        );
    }
}

fn drop_survives_a_panicking_handler_drop_without_freeing_kernel_buffers(backend: Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let (mut io, own_fd) = new_io_with_its_fd(backend, Config::new().entries(2));
    let (client, _server) = arm(&mut io, own_fd, 2);
    let unwound = catch_unwind(AssertUnwindSafe(|| drop(io)));
    assert!(unwound.is_err(), "the handler's Drop panicked through drop");
    assert_no_write_into_freed_memory(client);
}

fn drop_survives_a_subscriber_that_panics_on_its_warning(backend: Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    // No drain at all: the drop goes straight to leaking what the kernel
    // holds, and warns about it.
    let config = Config::new().entries(2).drop_drain_ns(0);
    let (mut io, own_fd) = new_io_with_its_fd(backend, config);
    let (client, _server) = arm(&mut io, own_fd, 0);
    let unwound = tracing::subscriber::with_default(PanicOnWarn, || {
        catch_unwind(AssertUnwindSafe(|| drop(io)))
    });
    assert!(unwound.is_err(), "the subscriber panicked through drop");
    assert_no_write_into_freed_memory(client);
}

fn replaced_error_is_other(result: std::io::Result<()>) -> bool {
    matches!(result, Err(error) if error.kind() == std::io::ErrorKind::Other && error.raw_os_error().is_none())
}

fn replacing_the_io_inside_a_callback_stops_the_call_and_both_stay_usable(backend: Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let mut io: IO<Vec<&'static str>> = backend.io();
    io.nop(move |io, seen, _| {
        seen.push("replace");
        *io = backend.io();
        io.nop(|_, seen, _| seen.push("new IO's nop"));
    });
    io.nop(|_, seen, _| seen.push("old IO's nop, never run: the old IO is gone"));
    let mut seen = Vec::new();
    let result = io.run(&mut seen);
    assert!(replaced_error_is_other(result));
    assert_eq!(seen, ["replace"]);
    // The IO in place now is the new one, and it runs normally.
    io.run(&mut seen).unwrap();
    assert_eq!(seen, ["replace", "new IO's nop"]);
}

fn swapping_the_io_inside_a_callback_stops_the_call_and_both_stay_usable(backend: Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let other: std::rc::Rc<std::cell::RefCell<Option<IO<Vec<&'static str>>>>> =
        std::rc::Rc::new(std::cell::RefCell::new(Some(backend.io())));
    let mut io: IO<Vec<&'static str>> = backend.io();
    {
        let other = std::rc::Rc::clone(&other);
        io.nop(move |io, seen, _| {
            seen.push("swap");
            std::mem::swap(io, other.borrow_mut().as_mut().unwrap());
        });
    }
    io.nop(|_, seen, _| seen.push("first IO's second nop"));
    let mut seen = Vec::new();
    assert!(replaced_error_is_other(io.run(&mut seen)));
    assert_eq!(seen, ["swap"]);
    // The first IO, swapped out mid-call, is not left marked as running:
    // its remaining callback runs on its next call.
    let mut first = other.borrow_mut().take().unwrap();
    first.run(&mut seen).unwrap();
    assert_eq!(seen, ["swap", "first IO's second nop"]);
    // The second IO, swapped in, runs too.
    io.nop(|_, seen, _| seen.push("second IO's nop"));
    io.run(&mut seen).unwrap();
    assert_eq!(seen.last(), Some(&"second IO's nop"));
}
