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

#[path = "common/timer_loops.rs"]
mod timer_loops;

use ringio::IO;
use timer_loops::{kernel_timeouts, percentile_ms, ringio_timers};

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
}
