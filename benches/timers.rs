//! One million timers at random deadlines within one second: ringio's
//! user-space heap against one io_uring TIMEOUT op per timer (how TigerBeetle
//! and libxev schedule timers on io_uring).
//!
//! Run with `cargo bench --bench timers` (`-- --quick` for 100,000 timers).
//! Reports, for ringio: the time to schedule every timer, the total time until
//! the last callback, and callback lateness (callback time minus deadline) at
//! p50, p99 and max. For the kernel-timeout loop: the time to schedule (submit)
//! every timer, and the total time until the last CQE.

use std::time::Instant;

use io_uring::{opcode, types, IoUring};
use ringio::IO;

const WINDOW_NS: u64 = 1_000_000_000;

fn deadlines_ns(count: usize, start_ns: u64) -> Vec<u64> {
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

struct Lateness {
    lateness_ns: Vec<u64>,
    /// Lateness of the timers whose deadline came after scheduling ended:
    /// the loop's own precision, without the backlog that scheduling creates.
    lateness_after_schedule_ns: Vec<u64>,
    schedule_end_ns: u64,
}

fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    let index = ((sorted_ns.len() as f64 * p) as usize).min(sorted_ns.len() - 1);
    sorted_ns[index] as f64 / 1e6
}

fn ringio_timers(count: usize) {
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
    for (label, lateness_ns) in [
        ("all timers", &mut state.lateness_ns),
        (
            "timers due after scheduling ended",
            &mut state.lateness_after_schedule_ns,
        ),
    ] {
        lateness_ns.sort_unstable();
        println!(
            "| ringio (timing wheel), {label} | {} | {schedule_s:.3} s | {total_s:.3} s | {:.3} ms | {:.3} ms | {:.3} ms |",
            lateness_ns.len(),
            percentile_ms(lateness_ns, 0.50),
            percentile_ms(lateness_ns, 0.99),
            percentile_ms(lateness_ns, 1.0),
        );
    }
}

fn kernel_timeouts(count: usize) {
    let entries = 4096u32;
    let mut ring: IoUring = IoUring::builder()
        .setup_cqsize(entries * 4)
        .build(entries)
        .expect("io_uring setup");
    let delays_ns = deadlines_ns(count, 0);
    let timespecs: Vec<types::Timespec> = delays_ns
        .iter()
        .map(|&ns| {
            types::Timespec::new()
                .sec(ns / 1_000_000_000)
                .nsec((ns % 1_000_000_000) as u32)
        })
        .collect();
    let start = Instant::now();
    let mut reaped = 0usize;
    for (index, timespec) in timespecs.iter().enumerate() {
        let entry = opcode::Timeout::new(timespec)
            .build()
            .user_data(index as u64);
        // SAFETY: `timespecs` outlives the ring's use of it: every CQE is
        // reaped below before `timespecs` is dropped.
        while unsafe { ring.submission().push(&entry) }.is_err() {
            ring.submit().expect("submit");
            reaped += ring.completion().count();
        }
    }
    ring.submit().expect("submit");
    let schedule_s = start.elapsed().as_secs_f64();
    while reaped < count {
        ring.submit_and_wait(1).expect("wait");
        reaped += ring.completion().count();
    }
    let total_s = start.elapsed().as_secs_f64();
    println!(
        "| one kernel TIMEOUT per timer | {count} | {schedule_s:.3} s | {total_s:.3} s | | | |"
    );
}

/// How far past its deadline `run_for_ns` returns, on an idle loop (the
/// kernel's wake-up latency) and on a loop busy with a stream of completions.
fn run_for_ns_overshoot() {
    let mut io: IO<()> = IO::new().expect("io_uring setup");
    for (label, busy) in [("idle", false), ("busy: 64 nops re-armed per pass", true)] {
        let mut overshoot_ns = Vec::with_capacity(1000);
        for _ in 0..1000 {
            if busy {
                for _ in 0..64 {
                    io.nop(|_, _, result| result.expect("nop"));
                }
            }
            let deadline_ns = io.now_ns() + 1_000_000;
            io.run_for_ns(&mut (), 1_000_000).expect("run_for_ns");
            overshoot_ns.push(io.now_ns().saturating_sub(deadline_ns));
        }
        overshoot_ns.sort_unstable();
        println!(
            "| run_for_ns(1 ms), {label} | {:.3} ms | {:.3} ms | {:.3} ms |",
            percentile_ms(&overshoot_ns, 0.50),
            percentile_ms(&overshoot_ns, 0.99),
            percentile_ms(&overshoot_ns, 1.0),
        );
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let count = if quick { 100_000 } else { 1_000_000 };
    println!("| loop | timers | schedule | total | lateness p50 | lateness p99 | lateness max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    ringio_timers(count);
    // `--ringio-only` skips the slow peer, for profiling ringio alone.
    if !std::env::args().any(|arg| arg == "--ringio-only") {
        kernel_timeouts(count);
    }
    println!();
    println!("| call | overshoot p50 | overshoot p99 | overshoot max |");
    println!("|---|---:|---:|---:|");
    run_for_ns_overshoot();
}
