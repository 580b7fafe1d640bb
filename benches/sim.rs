//! How fast the simulator runs: simulated operations per host second on a
//! TCP ping-pong between two simulated nodes plus a node appending with
//! fsync (see `common/sim_loops.rs`). The target is at least 1,000,000.
//! Then connection churn over 1,000,000 connections, whose rate per window
//! of 100,000 connections must stay flat.
//!
//! ```text
//! cargo bench --bench sim
//! ```

#[path = "common/sim_loops.rs"]
mod sim_loops;

use sim_loops::{sim_churn, sim_ping_pong};

/// Operations per run.
const OPERATIONS: u64 = 2_000_000;
/// Runs per configuration; the median is reported.
const RUNS: usize = 5;
/// Connections the churn row opens and closes.
const CHURN_CONNECTIONS: u64 = 1_000_000;
/// The churn row's window: its rate is reported per window, to show it flat.
const CHURN_WINDOW: u64 = 100_000;
/// Clients connecting at once in the churn row.
const CHURN_LANES: usize = 16;

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
    churn();
}

/// Connection churn over a million connections, one run: the rate per
/// window of 100,000 must stay flat (nothing scans what was ever made).
fn churn() {
    let run = sim_churn(1, CHURN_LANES, CHURN_CONNECTIONS, CHURN_WINDOW);
    let windows: Vec<String> = run
        .windows_per_s
        .iter()
        .map(|rate| format!("{:.0}k", rate / 1e3))
        .collect();
    let (first, last) = (
        run.windows_per_s[0],
        run.windows_per_s[run.windows_per_s.len() - 1],
    );
    println!(
        "sim connection churn, {} connections ({CHURN_LANES} at a time, connect + 64 B round trip + close): {:.0}k connections/s overall in {:.2} host s; per 100k: [{}]; last/first {:.2}; slots at the end: {} sockets, {} connections; hash {:#018x}",
        run.connections,
        run.connections as f64 / run.host_s / 1e3,
        run.host_s,
        windows.join(", "),
        last / first,
        run.slots.0,
        run.slots.1,
        run.hash,
    );
}
