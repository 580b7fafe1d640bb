//! NOP operations per second: ringio's `IO` (submit, kernel, reap, callback)
//! against a bare `io-uring` loop doing the same batches.
//!
//! Run with `cargo bench --bench nop` (add `-- --quick` for a smoke run).
//! For each batch size, runs alternate (ringio, bare, ringio, bare, ...) and
//! the table reports the median, min and max ops/s of each side and the ratio
//! of the medians.

#[path = "common/nop_loops.rs"]
mod nop_loops;

use nop_loops::{run_bare, run_ringio, Sample};

const RUNS: usize = 5;

/// Median, min and max of ops/s, and syscalls per op over all runs.
struct Summary {
    median: f64,
    min: f64,
    max: f64,
    syscalls_per_op: f64,
}

fn summarize(samples: &[Sample]) -> Summary {
    let mut rates: Vec<f64> = samples.iter().map(|s| s.ops_per_sec).collect();
    rates.sort_by(f64::total_cmp);
    let syscalls: u64 = samples.iter().map(|s| s.syscalls).sum();
    let ops: u64 = samples.iter().map(|s| s.ops).sum();
    Summary {
        median: rates[rates.len() / 2],
        min: rates[0],
        max: rates[rates.len() - 1],
        syscalls_per_op: syscalls as f64 / ops as f64,
    }
}

fn mops(rate: f64) -> String {
    format!("{:.2}M", rate / 1e6)
}

fn main() {
    // cargo bench passes `--bench`; only `--quick` matters here.
    let quick = std::env::args().any(|arg| arg == "--quick");
    let scale = if quick { 20 } else { 1 };
    let cases: [(u32, u64); 3] = [(1, 500_000), (32, 2_000_000), (256, 2_000_000)];

    let mut rows = Vec::new();
    for (batch, total) in cases {
        let total = total / scale;
        let mut ringio_samples = Vec::with_capacity(RUNS);
        let mut bare_samples = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            ringio_samples.push(run_ringio(batch, total));
            bare_samples.push(run_bare(batch, total));
        }
        let ringio = summarize(&ringio_samples);
        let bare = summarize(&bare_samples);
        eprintln!(
            "batch {batch:>3}: ringio {} bare {} ({total} ops x {RUNS} runs each)",
            mops(ringio.median),
            mops(bare.median)
        );
        rows.push((batch, ringio, bare));
    }

    println!();
    println!("| batch | ringio ops/s (median, min–max) | bare io-uring ops/s (median, min–max) | ratio |");
    println!(
        "|------:|-------------------------------|--------------------------------------|------:|"
    );
    for (batch, ringio, bare) in &rows {
        println!(
            "| {batch} | {} ({}–{}) | {} ({}–{}) | {:.2}x |",
            mops(ringio.median),
            mops(ringio.min),
            mops(ringio.max),
            mops(bare.median),
            mops(bare.min),
            mops(bare.max),
            ringio.median / bare.median
        );
    }
    println!();
    println!("| batch | ringio syscalls/op | bare syscalls/op |");
    println!("|------:|-------------------:|-----------------:|");
    for (batch, ringio, bare) in &rows {
        println!(
            "| {batch} | {:.4} | {:.4} |",
            ringio.syscalls_per_op, bare.syscalls_per_op
        );
    }
}
