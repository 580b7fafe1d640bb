//! Command-line options and the run lengths they imply.
//!
//! `cargo bench --bench compare` runs the full comparison;
//! `-- --quick` shortens every run (not the number of runs, which stays at
//! five, so that every figure is still a median with a min and a max).

use std::time::Duration;

const HELP: &str = "\
cargo bench --bench compare [-- OPTIONS]

Runs ringio side by side with its peers and regenerates the marked region of
docs/benchmarks.md and target/ringio-bench/results.json.

Options:
  --quick        shorter runs (still five of each)
  --only=LIST    only these workloads, comma-separated, from
                 nop,timers,echo,churn,storage,sim,kv,memory; the docs and
                 results.json are then left as they were
  --costs        echo and churn only: also count each server's CPU split, context
                 switches and kernel events per message (perf stat on its
                 pid) and print them as a table
  -h, --help     this text
";

/// How long and how often each workload runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub quick: bool,
    /// `--only=nop,timers,echo,churn,storage,sim,kv,memory` runs just those workloads,
    /// for debugging; the docs and results.json are then left alone.
    pub only: Option<Vec<String>>,
    /// `--costs`: per-message server costs in the echo workload.
    pub costs: bool,
    /// Runs per contender and configuration; figures are their median.
    pub runs: usize,
    /// NOPs per run at batch 1, 32 and 256.
    pub nop_totals: [u64; 3],
    /// Timers per run.
    pub timers: usize,
    /// Untimed traffic before each echo measurement.
    pub echo_warmup: Duration,
    /// Timed traffic per echo run.
    pub echo_duration: Duration,
    /// Timed I/O per storage run (both ringio and fio).
    pub storage_duration: Duration,
    /// Idle connections held open for the memory comparison.
    pub idle_connections: usize,
}

impl Options {
    /// Reads `--quick` and `--only=` from the arguments; cargo's own
    /// `--bench` is ignored. `--help` prints the options and exits.
    pub fn from_args() -> Options {
        if std::env::args().any(|arg| arg == "--help" || arg == "-h") {
            print!("{HELP}");
            std::process::exit(0);
        }
        let quick = std::env::args().any(|arg| arg == "--quick");
        let mut options = if quick {
            Options::quick()
        } else {
            Options::full()
        };
        options.costs = std::env::args().any(|arg| arg == "--costs");
        options.only = std::env::args()
            .find_map(|arg| arg.strip_prefix("--only=").map(str::to_string))
            .map(|list| list.split(',').map(str::to_string).collect());
        options
    }

    /// Whether workload `name` is to run.
    pub fn selected(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .map_or(true, |only| only.iter().any(|item| item == name))
    }

    fn full() -> Options {
        Options {
            quick: false,
            only: None,
            costs: false,
            runs: 5,
            nop_totals: [500_000, 2_000_000, 2_000_000],
            timers: 1_000_000,
            echo_warmup: Duration::from_millis(200),
            echo_duration: Duration::from_secs(2),
            storage_duration: Duration::from_secs(2),
            idle_connections: 10_000,
        }
    }

    /// Sized so that the whole run takes under three minutes on 2 vCPUs.
    fn quick() -> Options {
        Options {
            quick: true,
            only: None,
            costs: false,
            runs: 5,
            nop_totals: [100_000, 400_000, 400_000],
            timers: 100_000,
            echo_warmup: Duration::from_millis(50),
            echo_duration: Duration::from_millis(300),
            storage_duration: Duration::from_millis(400),
            idle_connections: 10_000,
        }
    }

    /// The exact command that produced these figures, for the docs.
    pub fn command(&self) -> &'static str {
        if self.quick {
            "cargo bench --bench compare -- --quick"
        } else {
            "cargo bench --bench compare"
        }
    }
}
