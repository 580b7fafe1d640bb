//! What the simulator examples (`sim_wal`, `kv_sim`) share: the command
//! line (`--seed N --seeds K --bug ack-before-fsync --verbose
//! --fixed-options --fsync-lies`), the world's options for a seed (swarm testing), a node's
//! `IO` with its state, and the loop over seeds that prints one line per
//! seed, a summary, and exits 1 if any seed failed.
//!
//! Its program declares `examples/common/stdout.rs` as `crate::stdout`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use ringio::sim::{Probability, SimOptions};
use ringio::IO;

use crate::stdout::{self, Printed};

/// The parsed command line.
pub struct Args {
    /// The first seed.
    pub seed: u64,
    /// How many seeds, from `seed` on.
    pub seeds: u64,
    /// Plant the bug `ack-before-fsync`.
    pub bug: bool,
    /// The bug planted, by its `--bug` name (one of the program's own, for
    /// a program that runs [`run_seeds_with_bugs`]).
    #[allow(dead_code)] // Read by sim_wal only.
    pub bug_name: Option<String>,
    /// Print every seed's options (always on for a single seed).
    pub verbose: bool,
    /// Run every seed with `SimOptions::default()` instead of drawing the
    /// options from the seed (swarm testing, the default).
    pub fixed_options: bool,
    /// Turn on the disk's lying fsync (`--fsync-lies`), which no program
    /// here defends against: to show that the checker catches its losses.
    pub fsync_lies: bool,
    /// The largest file the disk allows (`--file-bytes-max`), if given: a
    /// write across it comes back short, and one at it fails with `EFBIG`.
    pub file_bytes_max: Option<u64>,
}

impl Args {
    /// Whether to print a seed's options before running it.
    pub fn print_options(&self) -> bool {
        self.verbose || self.seeds == 1
    }

    /// The world's options for `seed`: drawn from the seed (swarm testing:
    /// each seed stresses a different mix of faults, TigerBeetle's VOPR
    /// and FoundationDB do the same), or the defaults with `--fixed-options`;
    /// with `--fsync-lies`, `FSYNC_LIE_PERCENT` of the successful fsyncs are
    /// lies; with `--file-bytes-max`, files stop at that size.
    pub fn options(&self, seed: u64) -> SimOptions {
        let mut options = if self.fixed_options {
            SimOptions::default()
        } else {
            SimOptions::swarm(seed)
        };
        if self.fsync_lies {
            options.disk.fsync_lie_probability = Probability::percent(FSYNC_LIE_PERCENT);
        }
        if let Some(max) = self.file_bytes_max {
            options.disk.file_bytes_max = max;
        }
        options
    }
}

/// How often an fsync lies with `--fsync-lies`, in percent.
pub const FSYNC_LIE_PERCENT: u32 = 20;

/// A node's `IO` and its application state.
pub struct Process<C> {
    pub io: IO<C>,
    pub state: C,
}

/// How one seed went.
#[derive(Default)]
pub struct Outcome {
    pub hash: u64,
    pub operations: u64,
    pub acknowledged: u64,
    pub crashes: u32,
    pub violation: Option<String>,
    /// Why the final check could not run, when the disk is to blame.
    pub excused: Option<String>,
}

/// Parses the command line, runs every seed, prints a line per seed and a
/// summary. Exit status: 0 if every seed passed, 1 if any failed, 2 for a
/// bad command line.
#[allow(dead_code)] // kv_sim's; sim_wal plants bugs of its own.
pub fn run_seeds(
    program: &str,
    usage: &str,
    run_seed: impl FnMut(u64, &Args) -> io::Result<Outcome>,
) -> ExitCode {
    run_seeds_with_bugs(program, usage, &["ack-before-fsync"], run_seed)
}

/// [`run_seeds`], for a program that plants the bugs named `bugs`.
#[allow(dead_code)] // sim_wal's.
pub fn run_seeds_with_bugs(
    program: &str,
    usage: &str,
    bugs: &[&str],
    mut run_seed: impl FnMut(u64, &Args) -> io::Result<Outcome>,
) -> ExitCode {
    let args = match parse_args(std::env::args().skip(1), bugs) {
        Ok(Some(args)) => args,
        Ok(None) => return stdout::print_help(program, usage),
        Err(message) => {
            eprintln!("{program}: {message}\n{usage}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let (mut failed, mut excused, mut operations) = (Vec::new(), 0, 0);
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let outcome = run_seed(seed, &args).unwrap_or_else(|error| Outcome {
            violation: Some(format!("harness error: {error}")),
            ..Outcome::default()
        });
        operations += outcome.operations;
        let verdict = match (&outcome.violation, &outcome.excused) {
            (Some(violation), _) => {
                failed.push(seed);
                format!("VIOLATION: {violation}")
            }
            (None, Some(reason)) => {
                excused += 1;
                format!("ok (final check skipped: {reason})")
            }
            (None, None) => "ok".to_owned(),
        };
        let line = format!(
            "seed={seed} hash={:#018x} {verdict} (acknowledged={} crashes={} operations={})",
            outcome.hash, outcome.acknowledged, outcome.crashes, outcome.operations
        );
        if let Err(status) = print(program, &failed, &line) {
            return status;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let first_failed = failed
        .first()
        .map_or(String::new(), |seed| format!(" (first: seed {seed})"));
    let excused = if excused > 0 {
        format!(", {excused} excused (disk damage)")
    } else {
        String::new()
    };
    let summary = format!(
        "{} seeds, {} failed{first_failed}{excused}; {:.1} seeds/s, {:.0} simulated operations/s",
        args.seeds,
        failed.len(),
        args.seeds as f64 / seconds,
        operations as f64 / seconds,
    );
    print(program, &failed, &summary)
        .err()
        .unwrap_or(status_of(&failed))
}

/// Prints a line of the run. `Err(status)`: stop now, with that status.
/// When the reader closed the pipe (`kv_sim --seeds 500 | head -3`) no one
/// reads on, so the run stops quietly with the status of the seeds run so
/// far; any other write error is a failure.
fn print(program: &str, failed: &[u64], line: &str) -> Result<(), ExitCode> {
    match stdout::print_line(format_args!("{line}")) {
        Ok(Printed::Yes) => Ok(()),
        Ok(Printed::PipeClosed) => Err(status_of(failed)),
        Err(error) => {
            let _ = writeln!(io::stderr(), "{program}: stdout: {error}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// 0 if every seed passed, 1 if any failed.
fn status_of(failed: &[u64]) -> ExitCode {
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn parse_args(
    mut args: impl Iterator<Item = String>,
    bugs: &[&str],
) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        seed: 1,
        seeds: 1,
        bug: false,
        bug_name: None,
        verbose: false,
        fixed_options: false,
        fsync_lies: false,
        file_bytes_max: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--seed" => {
                parsed.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--seeds" => {
                parsed.seeds = value("--seeds")?
                    .parse()
                    .map_err(|e| format!("--seeds: {e}"))?
            }
            "--bug" => {
                let name = value("--bug")?;
                if !bugs.contains(&name.as_str()) {
                    let expected = bugs.join(", ");
                    return Err(format!("unknown bug {name:?}: expected one of {expected}"));
                }
                parsed.bug = name == "ack-before-fsync";
                parsed.bug_name = Some(name);
            }
            "--verbose" => parsed.verbose = true,
            "--fixed-options" => parsed.fixed_options = true,
            "--fsync-lies" => parsed.fsync_lies = true,
            "--file-bytes-max" => {
                let max = value("--file-bytes-max")?
                    .parse()
                    .map_err(|e| format!("--file-bytes-max: {e}"))?;
                parsed.file_bytes_max = Some(max);
            }
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}
