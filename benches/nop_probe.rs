//! Two probes of where a NOP's time goes beside the bare io-uring loop
//! (docs/benchmarks.md, "NOP at batch 256: what the time is not"):
//!
//! ```sh
//! cargo build --release -p ringio-bench --example nop_probe
//! taskset -c 1 target/release/examples/nop_probe flags
//! taskset -c 1 target/release/examples/nop_probe touch
//! ```
//!
//! - `flags`: ringio and the bare loop, each on a plain ring and on
//!   `SINGLE_ISSUER | DEFER_TASKRUN` (ringio's default), at batch 1, 32
//!   and 256: whether the ring set-up explains ringio's gap.
//! - `touch`: the bare loop alone, and with a table of 64-byte lines
//!   beside it that each NOP reads and writes three times, as ringio's
//!   slot is (taken, settled, run): one line per NOP in a 64-byte stride,
//!   one in a 128-byte stride, or two. Whether a slot table's cache
//!   footprint explains the gap at batch 256.
//!
//! Each figure is the median of 11 runs, the configurations alternating,
//! in nanoseconds per NOP, with its ratio to the first column.

use std::hint::black_box;
use std::time::Instant;

use io_uring::{opcode, IoUring};
use ringio::Config;

#[path = "common/nop_loops.rs"]
#[allow(dead_code)]
mod nop_loops;

const ROUNDS: usize = 11;

fn ringio_ns(batch: u32, total: u64, defer: bool) -> f64 {
    let config = Config::new().single_issuer(defer).defer_taskrun(defer);
    1e9 / nop_loops::run_ringio_with(config, batch, total).ops_per_sec
}

/// The bare loop; with `touch` = (stride, lines), each NOP also reads and
/// writes `lines` 64-byte lines of a table, at index × `stride` lines, once
/// as it is pushed and twice as it is reaped.
fn bare_ns(batch: u32, total: u64, defer: bool, touch: (usize, usize)) -> f64 {
    let mut builder = IoUring::builder();
    if defer {
        builder.setup_single_issuer().setup_defer_taskrun();
    }
    let mut ring: IoUring = builder.build(256.max(batch)).expect("io_uring setup");
    let (stride, lines) = touch;
    let mut table = vec![[0u64; 8]; batch as usize * stride.max(1)];
    let round = |ring: &mut IoUring, table: &mut [[u64; 8]]| {
        {
            let mut sq = ring.submission();
            for i in 0..batch as usize {
                for line in 0..lines {
                    table[i * stride + line][0] += 1;
                }
                let entry = opcode::Nop::new().build().user_data(i as u64);
                // SAFETY: a Nop entry carries no pointers.
                unsafe { sq.push(&entry) }.expect("submission queue full");
            }
        }
        ring.submit_and_wait(batch as usize).expect("submit");
        let mut done = 0;
        for cqe in ring.completion() {
            let i = cqe.user_data() as usize;
            for line in 0..lines {
                table[i * stride + line][1] += 1;
                table[i * stride + line][2] += 1;
            }
            black_box(cqe.result());
            done += 1;
        }
        done
    };
    for _ in 0..64 {
        round(&mut ring, &mut table);
    }
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        done += round(&mut ring, &mut table);
    }
    start.elapsed().as_nanos() as f64 / done as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(batch: u32, names: &[&str], runs: &mut [Box<dyn FnMut() -> f64>]) {
    let mut times = vec![Vec::new(); runs.len()];
    for _ in 0..ROUNDS {
        for (run, times) in runs.iter_mut().zip(&mut times) {
            times.push(run());
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    print!("batch {batch:>3}:");
    for (name, ns) in names.iter().zip(&medians) {
        print!("  {name} {ns:.1} ns ({:.3}x)", medians[0] / ns);
    }
    println!();
}

fn main() {
    let usage = "usage: nop_probe flags|touch";
    let probe = std::env::args().nth(1).expect(usage);
    for batch in [1u32, 32, 256] {
        let total = if batch == 1 { 300_000 } else { 1_000_000 };
        match probe.as_str() {
            "flags" => report(
                batch,
                &["bare plain", "bare defer", "ringio plain", "ringio defer"],
                &mut [
                    Box::new(move || bare_ns(batch, total, false, (1, 0))),
                    Box::new(move || bare_ns(batch, total, true, (1, 0))),
                    Box::new(move || ringio_ns(batch, total, false)),
                    Box::new(move || ringio_ns(batch, total, true)),
                ],
            ),
            "touch" => report(
                batch,
                &["bare", "+1 line (64 B)", "+1 line (128 B)", "+2 lines"],
                &mut [
                    Box::new(move || bare_ns(batch, total, false, (1, 0))),
                    Box::new(move || bare_ns(batch, total, false, (1, 1))),
                    Box::new(move || bare_ns(batch, total, false, (2, 1))),
                    Box::new(move || bare_ns(batch, total, false, (2, 2))),
                ],
            ),
            _ => panic!("{usage}"),
        }
    }
}
