//! The side-by-side comparison: ringio against the bare io-uring crate, a
//! C liburing server, tokio, fio and redis-server, on NOPs, timers, TCP
//! echo, storage, a Redis-protocol server and memory.
//!
//! ```text
//! cargo bench --bench compare              # the full run
//! cargo bench --bench compare -- --quick   # shorter runs (still five of each)
//! cargo bench --bench compare -- --help    # every option
//! ```
//!
//! The harness builds every contender itself (ringio's server examples and
//! this package's peer examples in release mode, and the C liburing peer,
//! `benches/peers/uring_echo.c`, with `cc ... -luring` when the echo
//! workload starts), pins servers and in-process contenders to core 0 and the
//! load client to core 1, alternates contenders run by run, and reports the
//! median of five runs with min and max. It writes
//! `target/ringio-bench/results.json` and regenerates the marked region of
//! `docs/benchmarks.md`. A peer that cannot run is reported as not
//! available; it never stops the others.
//!
//! One module per workload or concern lives in `benches/compare/`; the NOP
//! and timer loops are shared with the `nop` and `timers` benches through
//! `benches/common/`.

#[path = "compare/alloc.rs"]
mod alloc;
#[path = "compare/client.rs"]
mod client;
#[path = "compare/client_uring.rs"]
mod client_uring;
#[path = "compare/costs.rs"]
mod costs;
#[path = "compare/echo.rs"]
mod echo;
#[path = "compare/fio.rs"]
mod fio;
#[path = "compare/kv.rs"]
mod kv;
#[path = "compare/machine.rs"]
mod machine;
#[path = "compare/memory.rs"]
mod memory;
#[path = "compare/nop.rs"]
mod nop;
#[path = "compare/options.rs"]
mod options;
#[path = "compare/process.rs"]
mod process;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/servers.rs"]
mod servers;
#[path = "compare/stats.rs"]
mod stats;
#[path = "compare/storage.rs"]
mod storage;
#[path = "compare/system.rs"]
mod system;
#[path = "compare/timers.rs"]
mod timers;

#[path = "common/nop_loops.rs"]
mod nop_loops;
#[path = "common/sim_loops.rs"]
mod sim_loops;
#[path = "common/timer_loops.rs"]
#[allow(dead_code)] // `monotonic_ns` and the schedule figures are for `benches/timers.rs`.
mod timer_loops;

use std::process::ExitCode;
use std::time::Instant;

use options::Options;
use stats::{Better, Row, Section, Side};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn main() -> ExitCode {
    let options = Options::from_args();
    let start = Instant::now();
    let load_at_start = machine::load_average();
    if system::cpus_online() < 2 {
        eprintln!("compare: fewer than 2 CPUs; server and client will share a core");
    }
    if let Err(error) = system::pin(0, system::SERVER_CORE) {
        eprintln!(
            "compare: cannot pin to core {}: {error}",
            system::SERVER_CORE
        );
    }
    eprintln!("compare: building the server examples (release)");
    if let Err(error) = process::build_examples() {
        eprintln!("compare: {error}; the echo and memory rows will be not available");
    }
    let sections = run_all(&options);
    let run = report::RunInfo {
        elapsed_s: start.elapsed().as_secs_f64(),
        load_at_start,
    };
    print_summary(&sections);
    if options.only.is_some() {
        eprintln!("compare: --only given, so docs and results.json are left as they were");
        return ExitCode::SUCCESS;
    }
    match write_outputs(&options, &sections, &run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("compare: writing results: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_all(options: &Options) -> Vec<Section> {
    let mut sections = Vec::new();
    if options.selected("nop") {
        eprintln!("compare: nop");
        sections.push(nop::run(options));
    }
    if options.selected("timers") {
        eprintln!("compare: timers");
        sections.push(timers::run(options));
    }
    if options.selected("echo") || options.selected("churn") {
        eprintln!("compare: tcp echo");
        sections.extend(echo::run(options));
    }
    if options.selected("storage") {
        eprintln!("compare: storage");
        sections.push(storage::run(options));
    }
    if options.selected("sim") {
        eprintln!("compare: simulator");
        sections.push(simulator(options));
    }
    if options.selected("kv") {
        eprintln!("compare: redis-protocol server");
        sections.push(kv::run(options));
    }
    if options.selected("memory") {
        eprintln!("compare: memory");
        sections.push(memory::run(options));
    }
    sections
}

/// The simulator's speed in simulated operations per host second, against
/// the issue's fixed target of 1,000,000 (there is no other simulator of a
/// whole IO layer to run side by side).
fn simulator(options: &Options) -> Section {
    let operations = if options.quick { 500_000 } else { 2_000_000 };
    let target = 1_000_000.0;
    let rows = [1, 64]
        .into_iter()
        .map(|connections| {
            let samples: Vec<f64> = (0..options.runs)
                .map(|_| sim_loops::sim_ping_pong(1, connections, operations).operations_per_s())
                .collect();
            Row {
                name: format!("simulated tcp ping-pong ({connections} conn) + fsync appends"),
                unit: "sim ops/s",
                better: Better::Higher,
                ringio: Side::from_samples(&samples, None, "no runs"),
                peer: "target: 1,000,000 simulated ops/s".to_string(),
                peer_value: Side::from_samples(&[target], None, "none"),
                target: Some(1.0),
            }
        })
        .collect();
    Section {
        title: "Simulator".to_string(),
        method: format!(
            "Three simulated nodes on one `Simulator` (seed 1, default latencies, faults off): \
             a 64-byte TCP ping-pong between two of them, and a third appending 4 KiB writes \
             with an fsync after every 8. The loop ticks each node's `IO`, then advances the \
             world. Each run stops after {operations} completions (callbacks); the figure is \
             completions per host second. Shared with `cargo bench --bench sim`."
        ),
        rows,
        notes: Vec::new(),
    }
}

fn write_outputs(
    options: &Options,
    sections: &[Section],
    run: &report::RunInfo,
) -> std::io::Result<()> {
    let json_path = process::output_dir().join("results.json");
    report::write_json(&json_path, sections)?;
    let docs_path = process::workspace_root().join("docs/benchmarks.md");
    report::write_docs(&docs_path, options, sections, run)?;
    eprintln!(
        "compare: wrote {} and {}",
        json_path.display(),
        docs_path.display()
    );
    Ok(())
}

/// One line per row on stdout, for whoever runs the bench by hand.
fn print_summary(sections: &[Section]) {
    for section in sections {
        println!("== {}", section.title);
        for row in &section.rows {
            let value = |side: &Side| match side {
                Side::Value { summary, note } => {
                    let note = note
                        .as_ref()
                        .map_or(String::new(), |note| format!(" ({note})"));
                    format!(
                        "{} [{}–{}]{note}",
                        report::number(summary.median),
                        report::number(summary.min),
                        report::number(summary.max)
                    )
                }
                Side::Missing(_) => "n/a".to_string(),
            };
            let ratio = row
                .ratio()
                .map_or("n/a".to_string(), |r| format!("{r:.2}x"));
            println!(
                "{} [{}]: ringio {} vs {} {} -> {ratio}",
                row.name,
                row.unit,
                value(&row.ringio),
                row.peer,
                value(&row.peer_value)
            );
        }
        for note in &section.notes {
            println!("  note: {note}");
        }
    }
}
