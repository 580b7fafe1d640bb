//! Criterion micro benchmarks of the two hot paths under every operation.
//!
//! ```text
//! cargo bench --bench micro
//! ```
//!
//! - `fifo push+pop`: one node through the `fifo` crate's public API, the
//!   queue every completion passes through (twice: free list and
//!   `completed`).
//! - `io nop round trip`: one NOP submitted through `IO::nop` and reaped by
//!   `IO::run`, callback included. Allocating and freeing a completion slot is
//!   internal to ringio and cannot be timed on its own from outside the
//!   crate, so it is measured here as part of this round trip (which also
//!   holds one `io_uring_enter`).

use std::hint::black_box;

use criterion::{criterion_main, Criterion};
use fifo::{Fifo, Link};
use ringio::{Config, IO};

/// Nodes in the table the fifo links; push+pop cycles through them so the
/// benchmark does not measure one hot node only.
const NODES: u32 = 1024;

fn fifo_push_pop(c: &mut Criterion) {
    let mut links: Vec<Link> = (0..NODES).map(|_| Link::new()).collect();
    let mut fifo = Fifo::new();
    // Keep half the table queued, as a loop with work in flight would.
    for index in 0..NODES / 2 {
        fifo.push(links.as_mut_slice(), index);
    }
    let mut next = NODES / 2;
    c.bench_function("fifo push+pop", |b| {
        b.iter(|| {
            fifo.push(links.as_mut_slice(), black_box(next));
            next = fifo.pop(links.as_mut_slice()).expect("fifo is not empty");
        })
    });
}

fn io_nop_round_trip(c: &mut Criterion) {
    let config = Config::new().entries(64).completions_initial(64);
    let mut io: IO<u64> = IO::with_config(config).expect("io_uring setup");
    let mut done: u64 = 0;
    c.bench_function("io nop round trip (submit, reap, callback)", |b| {
        b.iter(|| {
            io.nop(|_io, done: &mut u64, result| {
                result.expect("nop");
                *done += 1;
            });
            io.run(&mut done).expect("run");
        })
    });
    black_box(done);
}

/// `criterion_group!` expands to an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::{fifo_push_pop, io_nop_round_trip};
    criterion::criterion_group!(benches, fifo_push_pop, io_nop_round_trip);
}

criterion_main!(group::benches);
