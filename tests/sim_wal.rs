//! Runs the `sim_wal` example: the write-ahead-log store under the
//! simulator must pass its seeds, replay a seed exactly, and catch the
//! planted bug `ack-before-fsync`.
//!
//! Debug builds run about one seed per second, so this runs a handful; the
//! 500-seed figures (release) are in docs/simulation.md.

#[macro_use]
mod util;

use std::process::{Command, Output};

fn sim_wal(args: &[&str]) -> Output {
    let binary = util::example_binary("sim_wal");
    let output = Command::new(&binary)
        .args(args)
        .output()
        .expect("run sim_wal");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    output
}

fn seed_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("seed=") && line.contains(" hash="))
        .map(str::to_owned)
        .collect()
}

#[test]
fn passes_its_seeds_with_faults_and_crashes() {
    let output = sim_wal(&["--seed", "1", "--seeds", "8"]);
    assert!(output.status.success(), "sim_wal failed: {output:?}");
    let lines = seed_lines(&output);
    assert_eq!(lines.len(), 8);
    assert!(lines.iter().all(|line| line.contains(" ok ")), "{lines:?}");
}

#[test]
fn a_seed_replays_to_the_same_hash_and_seeds_differ() {
    let first = seed_lines(&sim_wal(&["--seed", "7", "--seeds", "2"]));
    let again = seed_lines(&sim_wal(&["--seed", "7", "--seeds", "2"]));
    assert_eq!(first, again, "same seeds, same lines (hash included)");
    let hash = |line: &str| line.split_whitespace().nth(1).map(str::to_owned);
    assert_ne!(
        hash(&first[0]),
        hash(&first[1]),
        "different seeds, different hashes"
    );
}

#[test]
fn catches_acknowledging_before_the_fsync() {
    let output = sim_wal(&["--seed", "1", "--seeds", "3", "--bug", "ack-before-fsync"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the planted bug went unnoticed"
    );
    let lines = seed_lines(&output);
    assert!(
        lines
            .iter()
            .any(|line| line.contains("VIOLATION: acknowledged record lost")),
        "{lines:?}"
    );
}
