//! One million timeouts at random deadlines within one second: each fires
//! exactly once, in deadline order (ties in submission order), never early.
//! How long it takes is a benchmark's business (docs/benchmarks.md), not this test's.
//!
//! And a cancelled timer leaves nothing behind for the loop to wait on: the
//! loop neither spins nor, under the simulator, freezes virtual time.

#[macro_use]
mod util;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ringio::IO;
use util::Backend;

conformance!(
    a_million_timeouts_fire_once_in_order_never_early,
    a_cancelled_timer_leaves_the_loop_idle,
);

const MS: u64 = 1_000_000;

const TIMERS: usize = 1_000_000;

struct Fired {
    /// `fired_ns[i]` is when timer `i`'s callback ran; 0 until then.
    fired_ns: Vec<u64>,
    /// Timer indices in the order their callbacks ran.
    order: Vec<u32>,
}

fn a_million_timeouts_fire_once_in_order_never_early(backend: Backend) {
    let mut io: IO<Fired> = backend.io();
    let start_ns = io.now_ns();
    let mut random = 0x9e37_79b9_7f4a_7c15u64;
    let mut deadlines_ns = Vec::with_capacity(TIMERS);
    for index in 0..TIMERS {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let deadline_ns = start_ns + random % 1_000_000_000;
        deadlines_ns.push(deadline_ns);
        io.timeout_at(deadline_ns, move |io, fired, result| {
            result.unwrap();
            assert_eq!(fired.fired_ns[index], 0, "timer {index} fired twice");
            fired.fired_ns[index] = io.now_ns();
            fired.order.push(index as u32);
        });
    }
    let mut fired = Fired {
        fired_ns: vec![0; TIMERS],
        order: Vec::with_capacity(TIMERS),
    };
    io.run(&mut fired).unwrap();

    assert_eq!(fired.order.len(), TIMERS, "every timer fired exactly once");
    for (index, &fired_ns) in fired.fired_ns.iter().enumerate() {
        assert!(fired_ns >= deadlines_ns[index], "timer {index} fired early");
    }
    for pair in fired.order.windows(2) {
        let (earlier, later) = (pair[0] as usize, pair[1] as usize);
        let key = |index: usize| (deadlines_ns[index], index);
        assert!(
            key(earlier) < key(later),
            "timers {earlier} and {later} out of order"
        );
    }
}

/// Arms timers at 1 ms and 50 ms, cancels the 50 ms one, and keeps an accept
/// pending that nothing completes, then runs the loop for 200 ms. Once the
/// 1 ms timer has fired, no timer is live: the loop must sleep until the end
/// of `run_for_ns`. It used to wake at the cancelled deadline and then, that
/// deadline being past, wait with a zero timeout on every pass: tens of
/// thousands of syscalls on the kernel backends, and frozen virtual time (so
/// `run_for_ns` never returned) on the simulator. Syscalls are a count, not a
/// timing: there are 3 on io_uring, 9 on epoll and 4 simulated.
fn a_cancelled_timer_leaves_the_loop_idle(backend: Backend) {
    // A watchdog, so that a regression fails the test instead of hanging it
    // (the spinning thread is left to die with the test process).
    let (done_sender, done) = mpsc::channel();
    let body = thread::spawn(move || {
        a_cancelled_timer_leaves_the_loop_idle_body(backend);
        done_sender.send(()).unwrap();
    });
    if done.recv_timeout(Duration::from_secs(20)) == Err(mpsc::RecvTimeoutError::Timeout) {
        panic!("run_for_ns(200 ms) did not return within 20 s");
    }
    if let Err(panic) = body.join() {
        std::panic::resume_unwind(panic);
    }
}

fn a_cancelled_timer_leaves_the_loop_idle_body(backend: Backend) {
    let mut io: IO<Vec<&'static str>> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    io.accept(listener, |_, _, result| {
        panic!("nothing connects, yet accept completed: {result:?}")
    });
    io.timeout(MS, |_, fired, result| {
        result.unwrap();
        fired.push("1 ms");
    });
    let later = io.timeout(50 * MS, |_, fired, result| {
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        fired.push("50 ms, cancelled");
    });
    io.cancel(later, |_, _, result| result.unwrap());
    let start_ns = io.now_ns();
    let syscalls_before = io.stats().syscalls;
    let mut fired = Vec::new();
    io.run_for_ns(&mut fired, 200 * MS).unwrap();
    let syscalls = io.stats().syscalls - syscalls_before;
    assert_eq!(fired, ["50 ms, cancelled", "1 ms"]);
    assert!(
        io.now_ns() - start_ns >= 200 * MS,
        "run_for_ns returned early"
    );
    assert!(
        syscalls < 100,
        "{syscalls} syscalls in 200 ms: the loop spun"
    );
    assert_eq!(io.in_flight(), 1, "only the accept is left");
    // Dropping the IO cancels the accept and closes the listener it owns.
}
