//! NOP operations per second: ringio's `IO` (submit, kernel, reap, callback)
//! against a bare `io-uring` loop doing the same batches.
//!
//! Run with `cargo bench --bench nop` (add `-- --quick` for a smoke run).
//! For each batch size, runs alternate (ringio, bare, ringio, bare, ...) and
//! the table reports the median, min and max ops/s of each side and the ratio
//! of the medians.

use std::hint::black_box;
use std::time::Instant;

use io_uring::{opcode, IoUring};
use ringio::{Config, IO};

const RUNS: usize = 5;
const ENTRIES: u32 = 256;

/// What one timed run measured.
struct Sample {
    ops_per_sec: f64,
    syscalls: u64,
    ops: u64,
}

#[derive(Default)]
struct Ctx {
    done: u64,
}

/// ringio: submit `batch` nops, run the loop until all their callbacks have
/// run, repeat until `total` ops.
fn run_ringio(batch: u32, total: u64) -> Sample {
    let config = Config::new()
        .entries(ENTRIES.max(batch))
        .completions_initial(batch);
    let mut io: IO<Ctx> = IO::with_config(config).expect("io_uring setup");
    let mut ctx = Ctx::default();

    let round = |io: &mut IO<Ctx>, ctx: &mut Ctx| {
        for _ in 0..batch {
            io.nop(|_io, ctx: &mut Ctx, result| {
                result.expect("nop");
                ctx.done += 1;
            });
        }
        io.run(ctx).expect("run");
    };

    // Warm up: fault in the rings and the completion table.
    for _ in 0..64 {
        round(&mut io, &mut ctx);
    }
    ctx.done = 0;
    let syscalls_before = io.stats().syscalls;

    let start = Instant::now();
    while ctx.done < total {
        round(&mut io, &mut ctx);
    }
    let elapsed = start.elapsed().as_secs_f64();

    assert_eq!(io.in_flight(), 0);
    Sample {
        ops_per_sec: ctx.done as f64 / elapsed,
        syscalls: io.stats().syscalls - syscalls_before,
        ops: ctx.done,
    }
}

/// Bare io-uring: push `batch` Nop SQEs, `submit_and_wait(batch)`, drain the
/// CQ, repeat until `total` ops.
fn run_bare(batch: u32, total: u64) -> Sample {
    let mut ring: IoUring = IoUring::builder()
        .build(ENTRIES.max(batch))
        .expect("io_uring setup");
    let mut done: u64 = 0;
    let mut syscalls: u64 = 0;

    let round = |ring: &mut IoUring, done: &mut u64, syscalls: &mut u64| {
        {
            let mut sq = ring.submission();
            for i in 0..batch {
                let entry = opcode::Nop::new().build().user_data(u64::from(i));
                // SAFETY: a Nop entry carries no pointers.
                unsafe { sq.push(&entry) }.expect("submission queue full");
            }
        }
        ring.submit_and_wait(batch as usize).expect("submit");
        *syscalls += 1;
        for cqe in ring.completion() {
            assert!(cqe.result() >= 0, "nop failed: {}", cqe.result());
            black_box(cqe.user_data());
            *done += 1;
        }
    };

    for _ in 0..64 {
        round(&mut ring, &mut done, &mut syscalls);
    }
    done = 0;
    syscalls = 0;

    let start = Instant::now();
    while done < total {
        round(&mut ring, &mut done, &mut syscalls);
    }
    let elapsed = start.elapsed().as_secs_f64();

    Sample {
        ops_per_sec: done as f64 / elapsed,
        syscalls,
        ops: done,
    }
}

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
