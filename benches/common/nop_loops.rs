//! The two NOP loops, shared by `benches/nop.rs` and `benches/compare`
//! (included with `#[path]`), so that both report the same measurement.
//!
//! ringio's `IO` (submit, kernel, reap, callback) against a bare `io-uring`
//! loop doing the same batches with the same number of syscalls.

use std::hint::black_box;
use std::time::Instant;

use io_uring::{opcode, IoUring};
use ringio::{Config, IO};

/// Submission-queue entries for both sides (raised to the batch if larger).
pub const ENTRIES: u32 = 256;

/// What one timed run measured.
pub struct Sample {
    /// Operations per second over the timed part.
    pub ops_per_sec: f64,
    /// `io_uring_enter` calls made in the timed part.
    pub syscalls: u64,
    /// Operations completed in the timed part.
    pub ops: u64,
}

/// The loop context: how many callbacks have run.
#[derive(Default)]
struct Ctx {
    done: u64,
}

/// ringio: submit `batch` nops, run the loop until all their callbacks have
/// run, repeat until `total` ops.
pub fn run_ringio(batch: u32, total: u64) -> Sample {
    run_ringio_with(Config::new(), batch, total)
}

/// [`run_ringio`] on `config` (its entries and table sized for `batch`).
pub fn run_ringio_with(config: Config, batch: u32, total: u64) -> Sample {
    let config = config
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
pub fn run_bare(batch: u32, total: u64) -> Sample {
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
