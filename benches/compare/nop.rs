//! Workload 1: NOP throughput through `IO` (submit plus callback) against a
//! bare io-uring loop doing the same batches. The loops themselves live in
//! `benches/common/nop_loops.rs`, shared with `cargo bench --bench nop`.

use crate::nop_loops::{run_bare, run_ringio};
use crate::options::Options;
use crate::stats::{Better, Row, Section, Side};

const BATCHES: [u32; 3] = [1, 32, 256];

pub fn run(options: &Options) -> Section {
    let rows = BATCHES
        .iter()
        .zip(options.nop_totals)
        .map(|(&batch, total)| row(options, batch, total))
        .collect();
    Section {
        title: "NOP throughput".to_string(),
        method: "Each round submits `batch` NOPs and runs until every callback has run; the bare \
                 loop pushes `batch` NOP SQEs, calls `submit_and_wait(batch)` and drains the CQ. \
                 Both make one `io_uring_enter` per batch. In-process, pinned to core 0. Targets: \
                 ≥0.85× at batch 1, ≥0.90× at 32 and 256."
            .to_string(),
        rows,
        notes: Vec::new(),
    }
}

fn row(options: &Options, batch: u32, total: u64) -> Row {
    let mut ringio = Vec::with_capacity(options.runs);
    let mut bare = Vec::with_capacity(options.runs);
    let mut syscalls = [0u64; 2];
    let mut ops = [0u64; 2];
    for _ in 0..options.runs {
        let sample = run_ringio(batch, total);
        syscalls[0] += sample.syscalls;
        ops[0] += sample.ops;
        ringio.push(sample.ops_per_sec);
        let sample = run_bare(batch, total);
        syscalls[1] += sample.syscalls;
        ops[1] += sample.ops;
        bare.push(sample.ops_per_sec);
    }
    let per_op = |side: usize| {
        format!(
            "{:.4} syscalls/op",
            syscalls[side] as f64 / ops[side] as f64
        )
    };
    eprintln!("  nop batch {batch}: done");
    Row {
        name: format!("nop, batch {batch}, {total} ops per run"),
        unit: "ops/s",
        better: Better::Higher,
        ringio: Side::from_samples(&ringio, Some(per_op(0)), "no runs"),
        peer: "bare io-uring loop".to_string(),
        peer_value: Side::from_samples(&bare, Some(per_op(1)), "no runs"),
        target: Some(if batch == 1 { 0.85 } else { 0.90 }),
    }
}
