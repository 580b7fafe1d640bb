//! One million timers at random deadlines within one second: ringio's
//! user-space heap against one io_uring TIMEOUT op per timer (how TigerBeetle
//! and libxev schedule timers on io_uring).
//!
//! Run with `cargo bench --bench timers` (`-- --quick` for 100,000 timers).
//! Reports, for ringio: the time to schedule every timer, the total time until
//! the last callback, and callback lateness (callback time minus deadline) at
//! p50, p99 and max. For the kernel-timeout loop: the time to schedule (submit)
//! every timer, the total time until the last CQE, and lateness at reaping.
//! Both get the same deadlines (see `common/timer_loops.rs`).
//!
//! Then `run_for_ns` overshoot, and NOP throughput on a loop that holds
//! 10,000 timers due within one millisecond (one wheel granule), against the
//! same loop with no timers, on io_uring and the simulator: the loop's
//! per-pass timer work must not grow with the timers in one granule.

#[path = "common/timer_loops.rs"]
mod timer_loops;

use ringio::IO;
use timer_loops::{
    kernel_timeouts, nops_beside_one_granule, percentile_ms, ringio_timers, Loop, GRANULE_TIMERS,
};

fn print_ringio(count: usize) {
    let run = ringio_timers(count);
    for (label, lateness_ns) in [
        ("all timers", &run.lateness_ns),
        (
            "timers due after scheduling ended",
            &run.lateness_after_schedule_ns,
        ),
    ] {
        println!(
            "| ringio (timing wheel), {label} | {} | {:.3} s | {:.3} s | {:.3} ms | {:.3} ms | {:.3} ms |",
            lateness_ns.len(),
            run.schedule_s,
            run.total_s,
            percentile_ms(lateness_ns, 0.50),
            percentile_ms(lateness_ns, 0.99),
            percentile_ms(lateness_ns, 1.0),
        );
    }
}

fn print_kernel(count: usize) {
    let run = kernel_timeouts(count);
    let lateness_ns = &run.lateness_ns;
    println!(
        "| one kernel TIMEOUT per timer (absolute deadline) | {count} | {:.3} s | {:.3} s | {:.3} ms | {:.3} ms | {:.3} ms |",
        run.schedule_s,
        run.total_s,
        percentile_ms(lateness_ns, 0.50),
        percentile_ms(lateness_ns, 0.99),
        percentile_ms(lateness_ns, 1.0),
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

/// NOPs per second beside no timer, one timer, and 10,000 timers in one
/// granule, alternating run by run; the median of `RUNS` runs, with min and
/// max. One timer shows the loop's fixed cost per pass of having any timer
/// (a clock read, the next deadline), which 10,000 must not exceed by much.
fn nops_beside_one_granule_table(duration_ns: u64) {
    const RUNS: usize = 5;
    for backend in [Loop::IoUring, Loop::Simulator] {
        let counts = [0, 1, GRANULE_TIMERS];
        let mut samples = [const { Vec::new() }; 3];
        for _ in 0..RUNS {
            for (timers, samples) in counts.iter().zip(&mut samples) {
                samples.push(nops_beside_one_granule(backend, *timers, duration_ns));
            }
        }
        for (timers, samples) in counts.iter().zip(&mut samples) {
            samples.sort_by(f64::total_cmp);
            println!(
                "| {}, nop per pass | {timers} | {:.3} M ops/s ({:.3}–{:.3}) |",
                backend.name(),
                samples[RUNS / 2] / 1e6,
                samples[0] / 1e6,
                samples[RUNS - 1] / 1e6,
            );
        }
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let count = if quick { 100_000 } else { 1_000_000 };
    println!("| loop | timers | schedule | total | lateness p50 | lateness p99 | lateness max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    print_ringio(count);
    // `--ringio-only` skips the slow peer, for profiling ringio alone.
    if !std::env::args().any(|arg| arg == "--ringio-only") {
        print_kernel(count);
    }
    println!();
    println!("| call | overshoot p50 | overshoot p99 | overshoot max |");
    println!("|---|---:|---:|---:|");
    run_for_ns_overshoot();
    println!();
    println!("| loop | timers due in one granule | NOPs per second, median (min–max) |");
    println!("|---|---:|---|");
    let duration_ns = if quick { 100_000_000 } else { 300_000_000 };
    nops_beside_one_granule_table(duration_ns);
}
