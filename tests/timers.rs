//! One million timeouts at random deadlines within one second: each fires
//! exactly once, in deadline order (ties in submission order), never early.
//! How long it takes is a benchmark's business (docs/benchmarks.md), not this test's.

#[macro_use]
mod util;

use ringio::IO;
use util::Backend;

conformance!(a_million_timeouts_fire_once_in_order_never_early);

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
