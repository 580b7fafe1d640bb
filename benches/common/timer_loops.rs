//! The timer loops shared by `benches/timers.rs` and `benches/compare`
//! (included with `#[path]`): ringio's user-space timing wheel, and one
//! io_uring TIMEOUT op per timer (how TigerBeetle and libxev schedule timers
//! on io_uring).
//!
//! Every contender gets the same deadlines: `deadlines_ns` draws them from a
//! fixed-seed xorshift, as offsets from the moment the contender starts.

use std::time::Instant;

use io_uring::{opcode, types, IoUring};
use ringio::IO;

/// Deadlines fall uniformly within this window after the start.
pub const WINDOW_NS: u64 = 1_000_000_000;

/// `count` deadlines, uniform within `WINDOW_NS` after `start_ns`, always
/// the same for the same `count` (fixed seed).
pub fn deadlines_ns(count: usize, start_ns: u64) -> Vec<u64> {
    let mut random = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            start_ns + random % WINDOW_NS
        })
        .collect()
}

/// The value at quantile `p` (0.0..=1.0) of sorted nanoseconds, in ms.
pub fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    let index = ((sorted_ns.len() as f64 * p) as usize).min(sorted_ns.len() - 1);
    sorted_ns[index] as f64 / 1e6
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of ringio's loop and of
/// absolute io_uring timeouts, so deadlines mean the same on both.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(result, 0, "clock_gettime(CLOCK_MONOTONIC)");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// What one timer run measured.
pub struct TimerRun {
    /// Seconds spent scheduling every timer.
    pub schedule_s: f64,
    /// Seconds from the start until the last callback or CQE.
    pub total_s: f64,
    /// Callback time minus deadline, for every timer, sorted.
    pub lateness_ns: Vec<u64>,
    /// The same, only for timers due after scheduling ended: the loop's own
    /// precision, without the backlog that scheduling creates. Sorted.
    pub lateness_after_schedule_ns: Vec<u64>,
}

struct Lateness {
    lateness_ns: Vec<u64>,
    lateness_after_schedule_ns: Vec<u64>,
    schedule_end_ns: u64,
}

/// ringio: every timer through `timeout_at`, then `run` until all fired.
pub fn ringio_timers(count: usize) -> TimerRun {
    // Preallocated, as an application expecting a million timers would.
    let config = ringio::Config::new().completions_initial(count as u32);
    let mut io: IO<Lateness> = IO::with_config(config).expect("io_uring setup");
    let start = Instant::now();
    let deadlines = deadlines_ns(count, io.now_ns());
    for &deadline_ns in &deadlines {
        io.timeout_at(deadline_ns, move |io, state, result| {
            result.expect("timeout");
            let lateness_ns = io.now_ns() - deadline_ns;
            state.lateness_ns.push(lateness_ns);
            if deadline_ns > state.schedule_end_ns {
                state.lateness_after_schedule_ns.push(lateness_ns);
            }
        });
    }
    let schedule_s = start.elapsed().as_secs_f64();
    let mut state = Lateness {
        lateness_ns: Vec::with_capacity(count),
        lateness_after_schedule_ns: Vec::with_capacity(count),
        schedule_end_ns: io.now_ns(),
    };
    io.run(&mut state).expect("run");
    let total_s = start.elapsed().as_secs_f64();
    state.lateness_ns.sort_unstable();
    state.lateness_after_schedule_ns.sort_unstable();
    TimerRun {
        schedule_s,
        total_s,
        lateness_ns: state.lateness_ns,
        lateness_after_schedule_ns: state.lateness_after_schedule_ns,
    }
}

/// One absolute io_uring TIMEOUT op per timer, on CLOCK_MONOTONIC, with the
/// same deadlines as ringio. Lateness is the reap time minus the deadline.
pub fn kernel_timeouts(count: usize) -> TimerRun {
    let entries = 4096u32;
    let mut ring: IoUring = IoUring::builder()
        .setup_cqsize(entries * 4)
        .build(entries)
        .expect("io_uring setup");
    let start = Instant::now();
    let deadlines = deadlines_ns(count, monotonic_ns());
    let timespecs: Vec<types::Timespec> = deadlines
        .iter()
        .map(|&ns| {
            types::Timespec::new()
                .sec(ns / 1_000_000_000)
                .nsec((ns % 1_000_000_000) as u32)
        })
        .collect();
    let mut lateness = Lateness {
        lateness_ns: Vec::with_capacity(count),
        lateness_after_schedule_ns: Vec::new(),
        // Timers reaped while scheduling were due before it ended.
        schedule_end_ns: u64::MAX,
    };
    for (index, timespec) in timespecs.iter().enumerate() {
        let entry = opcode::Timeout::new(timespec)
            .flags(types::TimeoutFlags::ABS)
            .build()
            .user_data(index as u64);
        // SAFETY: the entry points into `timespecs`, which outlives the
        // ring's use of it: every CQE is reaped below before it is dropped.
        while unsafe { ring.submission().push(&entry) }.is_err() {
            ring.submit().expect("submit");
            reap_lateness(&mut ring, &deadlines, &mut lateness);
        }
    }
    ring.submit().expect("submit");
    let schedule_s = start.elapsed().as_secs_f64();
    lateness.schedule_end_ns = monotonic_ns();
    while lateness.lateness_ns.len() < count {
        ring.submit_and_wait(1).expect("wait");
        reap_lateness(&mut ring, &deadlines, &mut lateness);
    }
    let total_s = start.elapsed().as_secs_f64();
    lateness.lateness_ns.sort_unstable();
    lateness.lateness_after_schedule_ns.sort_unstable();
    TimerRun {
        schedule_s,
        total_s,
        lateness_ns: lateness.lateness_ns,
        lateness_after_schedule_ns: lateness.lateness_after_schedule_ns,
    }
}

/// Drains the CQ, recording each timer's lateness at one clock reading per
/// batch (the reap time, as an event loop would see it).
fn reap_lateness(ring: &mut IoUring, deadlines: &[u64], lateness: &mut Lateness) {
    let now_ns = monotonic_ns();
    for cqe in ring.completion() {
        assert_eq!(cqe.result(), -libc::ETIME, "timeout result");
        let deadline_ns = deadlines[cqe.user_data() as usize];
        let lateness_ns = now_ns.saturating_sub(deadline_ns);
        lateness.lateness_ns.push(lateness_ns);
        if deadline_ns > lateness.schedule_end_ns {
            lateness.lateness_after_schedule_ns.push(lateness_ns);
        }
    }
}

/// Timers armed beside the NOP traffic of [`nops_beside_one_granule`].
pub const GRANULE_TIMERS: usize = 10_000;

/// How far ahead the armed timers fall: past the end of the measurement, so
/// none fires during it, and inside the timing wheel's window (about 1.07 s),
/// so that they sit in one wheel bucket rather than in the far heap.
const GRANULE_LEAD_NS: u64 = 800_000_000;

/// The wheel's granule (2^20 ns) in `src/timer.rs`, to align deadlines on.
const GRANULE_NS: u64 = 1 << 20;

/// Where the loop under [`nops_beside_one_granule`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    IoUring,
    Simulator,
}

impl Loop {
    pub fn name(self) -> &'static str {
        match self {
            Loop::IoUring => "io_uring",
            Loop::Simulator => "simulator",
        }
    }

    fn io(self) -> IO<u64> {
        match self {
            Loop::IoUring => IO::new().expect("io_uring setup"),
            Loop::Simulator => {
                let options = ringio::sim::SimOptions::default().without_faults();
                let mut sim = ringio::sim::Simulator::new(1, options);
                let node = sim.add_node("bench");
                // The `IO` keeps the world alive.
                sim.io(node).expect("simulated IO")
            }
        }
    }
}

/// NOPs per second on a loop that also holds `timers` timers, all due within
/// one millisecond (one granule of the wheel), 800 ms ahead. One NOP is in
/// flight at a time, re-armed by its callback, and the loop is driven by
/// `tick`, so every NOP costs one pass and the loop's per-pass timer work
/// (finding the next deadline) shows in full. The timers never fire during
/// the `duration_ns` measured: on io_uring, keep it well under 800 ms; the
/// simulator's clock does not move at all, since `tick` never waits.
pub fn nops_beside_one_granule(backend: Loop, timers: usize, duration_ns: u64) -> f64 {
    assert!(duration_ns < GRANULE_LEAD_NS / 2);
    let mut io = backend.io();
    let base_ns = (io.now_ns() + GRANULE_LEAD_NS) & !(GRANULE_NS - 1);
    for index in 0..timers as u64 {
        // Spread over [base, base + 1 ms), which lies inside one granule.
        let deadline_ns = base_ns + index * 7_919 % 1_000_000;
        io.timeout_at(deadline_ns, |_, _, result| result.expect("timeout"));
    }
    rearm_nop(&mut io);
    let mut done = 0u64;
    // Warm up: fault in the ring and the completion table.
    for _ in 0..1_000 {
        io.tick(&mut done).expect("tick");
    }
    done = 0;
    let start = Instant::now();
    while (start.elapsed().as_nanos() as u64) < duration_ns {
        for _ in 0..64 {
            io.tick(&mut done).expect("tick");
        }
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    assert_eq!(
        io.in_flight() as usize,
        timers + 1,
        "no timer fired during the measurement"
    );
    done as f64 / elapsed_s
}

/// Submits a NOP whose callback counts itself and submits the next.
fn rearm_nop(io: &mut IO<u64>) {
    io.nop(|io, done, result| {
        result.expect("nop");
        *done += 1;
        rearm_nop(io);
    });
}
