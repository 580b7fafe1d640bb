//! A harness for counting user-space instructions per NOP under callgrind:
//! ringio's `IO::nop` against a bare io-uring loop, the same batches.
//!
//! ```sh
//! cargo build --release -p ringio-bench --example nop_callgrind
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*' \
//!     target/release/examples/nop_callgrind ringio 32 100000
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! Arguments: `ringio` or `bare`, the batch size, and the number of NOPs.
//! Both sides warm up outside the measured function (the rings and the
//! completion table are faulted in), so the count divided by the number of
//! NOPs is the steady-state cost of one: submit, `io_uring_enter`'s user
//! side, reap, callback.

use std::hint::black_box;

use io_uring::{opcode, IoUring};
use ringio::{Config, IO};

#[derive(Default)]
struct Ctx {
    done: u64,
}

fn ringio_round(io: &mut IO<Ctx>, ctx: &mut Ctx, batch: u32) {
    for _ in 0..batch {
        io.nop(|_io, ctx: &mut Ctx, result| {
            result.expect("nop");
            ctx.done += 1;
        });
    }
    io.run(ctx).expect("run");
}

#[inline(never)]
fn measured_ringio(io: &mut IO<Ctx>, ctx: &mut Ctx, batch: u32, total: u64) {
    while ctx.done < total {
        ringio_round(io, ctx, batch);
    }
}

fn run_ringio(batch: u32, total: u64) {
    let config = Config::new()
        .entries(256.max(batch))
        .completions_initial(batch);
    let mut io: IO<Ctx> = IO::with_config(config).expect("io_uring setup");
    let mut ctx = Ctx::default();
    for _ in 0..64 {
        ringio_round(&mut io, &mut ctx, batch);
    }
    ctx.done = 0;
    measured_ringio(&mut io, &mut ctx, batch, total);
    println!("ringio: {} nops, batch {batch}", ctx.done);
}

fn bare_round(ring: &mut IoUring, done: &mut u64, batch: u32) {
    {
        let mut sq = ring.submission();
        for i in 0..batch {
            let entry = opcode::Nop::new().build().user_data(u64::from(i));
            // SAFETY: a Nop entry carries no pointers.
            unsafe { sq.push(&entry) }.expect("submission queue full");
        }
    }
    ring.submit_and_wait(batch as usize).expect("submit");
    for cqe in ring.completion() {
        assert!(cqe.result() >= 0, "nop failed: {}", cqe.result());
        black_box(cqe.user_data());
        *done += 1;
    }
}

#[inline(never)]
fn measured_bare(ring: &mut IoUring, done: &mut u64, batch: u32, total: u64) {
    while *done < total {
        bare_round(ring, done, batch);
    }
}

fn run_bare(batch: u32, total: u64) {
    let mut ring: IoUring = IoUring::builder()
        .build(256.max(batch))
        .expect("io_uring setup");
    let mut done = 0;
    for _ in 0..64 {
        bare_round(&mut ring, &mut done, batch);
    }
    done = 0;
    measured_bare(&mut ring, &mut done, batch, total);
    println!("bare: {done} nops, batch {batch}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: nop_callgrind ringio|bare BATCH NOPS";
    let side = args.get(1).expect(usage);
    let batch: u32 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let total: u64 = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    match side.as_str() {
        "ringio" => run_ringio(batch, total),
        "bare" => run_bare(batch, total),
        _ => panic!("{usage}"),
    }
}
