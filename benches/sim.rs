//! How fast the simulator runs: simulated operations per host second on a
//! TCP ping-pong between two simulated nodes plus a node appending with
//! fsync (see `common/sim_loops.rs`). The target is at least 1,000,000.
//!
//! ```text
//! cargo bench --bench sim
//! ```

#[path = "common/sim_loops.rs"]
mod sim_loops;

use sim_loops::sim_ping_pong;

/// Operations per run.
const OPERATIONS: u64 = 2_000_000;
/// Runs per configuration; the median is reported.
const RUNS: usize = 5;

fn main() {
    for connections in [1, 64] {
        let mut runs: Vec<_> = (0..RUNS)
            .map(|_| sim_ping_pong(1, connections, OPERATIONS))
            .collect();
        let hash = runs[0].hash;
        assert!(
            runs.iter().all(|run| run.hash == hash),
            "same seed, same hash"
        );
        runs.sort_by(|a, b| a.operations_per_s().total_cmp(&b.operations_per_s()));
        let median = &runs[RUNS / 2];
        println!(
            "sim ping-pong + fsync appends, {connections} connection(s): {:.2} M simulated ops/s (min {:.2}, max {:.2}); {:.1} virtual s in {:.2} host s; hash {hash:#018x}",
            median.operations_per_s() / 1e6,
            runs[0].operations_per_s() / 1e6,
            runs[RUNS - 1].operations_per_s() / 1e6,
            median.virtual_s,
            median.host_s,
        );
    }
}
