//! A write-ahead-log store under the deterministic simulator: clients append
//! records over TCP, the store logs them with write + fsync and acknowledges,
//! and the harness crashes and restarts the store at random moments. After
//! every restart a checker asserts that no acknowledged record was lost and
//! that every record the disk damaged was detected, not served. Every
//! `COMPACT_RECORDS` records the store compacts its log into a snapshot
//! (store.rs), so a restart reads the snapshot and a short tail.
//!
//! ```text
//! cargo run --release --example sim_wal -- --seed 7
//! cargo run --release --example sim_wal -- --seed 1 --seeds 500
//! cargo run --release --example sim_wal -- --seeds 500 --bug ack-before-fsync
//! cargo run --release --example sim_wal -- --seeds 500 --bug rename-without-dir-fsync
//! cargo run --release --example sim_wal -- --seeds 500 --fsync-lies
//! cargo run --release --example sim_wal -- --restart-bench
//! ```
//!
//! Each seed prints one line, `seed=N hash=0x... ok` or `... VIOLATION: ...`;
//! the exit status is 1 if any seed failed. A failing seed replays exactly:
//! run it alone (`--seed N`) to see every option it used.

#[path = "../common/seeds.rs"]
mod seeds;
#[path = "../common/stdout.rs"]
mod stdout;

mod bench;
mod client;
mod record;
mod snapshot;
mod store;

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use ringio::sim::{NodeId, Probability, SimOptions, Simulator};

use client::Client;
use seeds::{Args, Outcome, Process};
use store::{segment_path, Bug, Config, Store, SNAPSHOT_PATH};

/// The port the store listens on.
const STORE_PORT: u16 = 7000;
/// Clients per world.
const CLIENTS: u32 = 2;
/// Virtual time each seed runs with faults on.
const RUN_NS: u64 = 2_000_000_000;
/// Mean virtual time between crashes of the store.
const CRASH_INTERVAL_MEAN_NS: u64 = 300_000_000;
/// Mean virtual time a crashed store stays down.
const DOWNTIME_MEAN_NS: u64 = 30_000_000;
/// How long the final recovery, with faults off, may take.
const FINAL_RECOVERY_NS: u64 = 10_000_000_000;
/// The store compacts once its tail segment holds this many records.
const COMPACT_RECORDS: u64 = 100;

const USAGE: &str = "\
usage: sim_wal [--seed N] [--seeds K] [--bug NAME] [--verbose] [--fixed-options]
               [--fsync-lies] [--file-bytes-max N]
       sim_wal --restart-bench

  --seed N        the first seed (default 1)
  --seeds K       how many seeds, N to N+K-1 (default 1)
  --bug NAME      plant a bug:
                  ack-before-fsync: acknowledge before the fsync completes
                  rename-without-dir-fsync: compaction renames the snapshot
                    into place and cuts the old segment without fsyncing
                    the directory
                  snapshot-without-fsync: compaction renames the snapshot
                    into place without ever fsyncing its data
                  truncate-before-snapshot-durable: compaction cuts the old
                    segment before the snapshot is fsynced and renamed
                  trust-first-read: recovery takes a sector that fails its
                    checksum as corrupt without reading it again
  --verbose       print every seed's options (always on for a single seed)
  --fixed-options run every seed with the default options, instead of
                  options drawn from the seed (swarm testing)
  --fsync-lies    the disk acknowledges 20% of fsyncs without performing
                  them (DiskOptions::fsync_lie_probability), a fault no
                  store can defend against: the checker should catch it
  --file-bytes-max N
                  the largest file the disk allows (DiskOptions::
                  file_bytes_max): a write across it comes back short, and
                  one at it fails with EFBIG, as on a full file system
  --restart-bench restart time against history, with and without
                  compaction (faults off), as a table";

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--restart-bench") {
        return bench::restart_bench();
    }
    seeds::run_seeds_with_bugs("sim_wal", USAGE, &Bug::NAMES, run_seed)
}

/// The store's configuration for this run.
fn config(args: &Args) -> Config {
    Config {
        bug: args.bug_name.as_deref().and_then(Bug::from_name),
        compact_records: Some(COMPACT_RECORDS),
    }
}

/// The world a seed runs in: drawn from the seed (swarm testing), or the
/// defaults with `--fixed-options`; plus the disk's silent corruption and
/// misdirected writes, which the checker can tell from real losses, and
/// corrupt and misdirected reads, which recovery must tell from damage on
/// the disk by reading again (`READ_ATTEMPTS_MAX` in store.rs).
fn options(seed: u64, args: &Args) -> SimOptions {
    let mut options = args.options(seed);
    options.disk.corruption_probability = Probability::ppm(200);
    options.disk.misdirect_probability = Probability::ppm(200);
    options.disk.read_corruption_probability = Probability::percent(1);
    options.disk.read_misdirect_probability = Probability::percent(1);
    options
}

/// Adds the `CLIENTS` client nodes, each running a client of the store at
/// `store_address`.
fn start_clients(
    sim: &mut Simulator,
    store_address: SocketAddr,
) -> io::Result<Vec<Process<Client>>> {
    (0..CLIENTS)
        .map(|id| {
            let node = sim.add_node(&format!("client{id}"));
            let mut io = sim.io(node)?;
            let state = Client::start(&mut io, id, store_address);
            Ok(Process { io, state })
        })
        .collect()
}

fn start_store(sim: &mut Simulator, node: NodeId, config: Config) -> io::Result<Process<Store>> {
    let mut io = sim.io(node)?;
    let address = sim.address(node, STORE_PORT);
    let state = Store::start(&mut io, address, config);
    Ok(Process { io, state })
}

fn run_seed(seed: u64, args: &Args) -> io::Result<Outcome> {
    let mut sim = Simulator::new(seed, options(seed, args));
    if args.print_options() {
        // A closed pipe or a failed write shows on the seed's own line,
        // printed next, which stops the run.
        let _ = stdout::print_line(format_args!("{}", sim.describe()));
    }
    let store_node = sim.add_node("store");
    let store_address = sim.address(store_node, STORE_PORT);
    let mut clients = start_clients(&mut sim, store_address)?;
    let mut store: Option<Process<Store>> = None;
    let mut checked = false;
    // Acknowledged appends the disk destroyed where no store could notice.
    let mut forgiven = BTreeSet::new();
    let mut crashes = 0;
    let mut next_crash_ns = sim.now_ns() + sim.prng().exponential(CRASH_INTERVAL_MEAN_NS);
    let mut restart_ns = 0;
    let end_ns = sim.now_ns() + RUN_NS;
    let mut violation = None;
    while sim.now_ns() < end_ns && violation.is_none() {
        let now_ns = sim.now_ns();
        let mut crash = now_ns >= next_crash_ns;
        if let Some(process) = store.as_mut() {
            process.io.tick(&mut process.state)?;
            // A store that stopped itself (a failed fsync) is restarted too.
            crash |= process.state.fatal.is_some();
            if process.state.ready && !checked {
                checked = true;
                violation = check(&sim, store_node, &process.state, &clients, &mut forgiven).err();
            }
        }
        for client in &mut clients {
            client.io.tick(&mut client.state)?;
        }
        if store.is_some() && crash {
            sim.crash(store_node);
            store = None;
            crashes += 1;
            restart_ns = now_ns + sim.prng().exponential(DOWNTIME_MEAN_NS);
            next_crash_ns = restart_ns + sim.prng().exponential(CRASH_INTERVAL_MEAN_NS);
        }
        if store.is_none() && now_ns >= restart_ns {
            match start_store(&mut sim, store_node, config(args)) {
                Ok(process) => store = Some(process),
                // An injected EMFILE at start: the process exits; try later.
                Err(_) => restart_ns = now_ns + sim.prng().exponential(DOWNTIME_MEAN_NS),
            }
            checked = false;
        }
        if !sim.advance() {
            break;
        }
    }
    if violation.is_none() {
        let process = (store_node, store);
        violation =
            final_check(&mut sim, process, &mut clients, config(args), &mut forgiven)?.err();
        crashes += 1;
    }
    Ok(Outcome {
        hash: sim.trace_hash(),
        operations: sim.completions(),
        acknowledged: clients
            .iter()
            .map(|client| client.state.acked.len() as u64)
            .sum(),
        crashes,
        violation,
        excused: None,
    })
}

/// With faults off, crashes the store once more, restarts it, waits for its
/// recovery, and checks what it found.
fn final_check(
    sim: &mut Simulator,
    (store_node, store): (NodeId, Option<Process<Store>>),
    clients: &mut [Process<Client>],
    config: Config,
    forgiven: &mut BTreeSet<(u32, u64)>,
) -> io::Result<Result<(), String>> {
    sim.liveness();
    drop(store);
    sim.crash(store_node);
    let mut store = start_store(sim, store_node, config)?;
    let deadline_ns = sim.now_ns() + FINAL_RECOVERY_NS;
    while !store.state.ready && sim.now_ns() < deadline_ns {
        store.io.tick(&mut store.state)?;
        // Every process must run before the world advances: time only
        // moves once nobody has results waiting.
        for client in clients.iter_mut() {
            client.io.tick(&mut client.state)?;
        }
        if let Some(reason) = &store.state.fatal {
            return Ok(Err(format!("the store could not recover: {reason}")));
        }
        if !store.state.ready && !sim.advance() {
            break;
        }
    }
    if !store.state.ready {
        return Ok(Err("the store did not finish recovery".to_owned()));
    }
    Ok(check(sim, store_node, &store.state, clients, forgiven))
}

/// After a recovery: every acknowledged record is there, intact, unless the
/// disk damaged where it was (a snapshot block, or a segment's sector) and
/// the store reported it (such acks go in `forgiven`, for good: a later
/// snapshot records them as lost), or it was the log's tail, which no store
/// can tell from a torn one; and every record the store recovered is
/// genuine.
fn check(
    sim: &Simulator,
    store_node: NodeId,
    store: &Store,
    clients: &[Process<Client>],
    forgiven: &mut BTreeSet<(u32, u64)>,
) -> Result<(), String> {
    for record in store.recovered.values() {
        if record.payload != record::payload(record.client, record.request) {
            return Err(format!(
                "undetected corruption: seq {} was served with a wrong payload",
                record.seq
            ));
        }
    }
    let damaged_snapshot = sim.damaged_sectors(store_node, SNAPSHOT_PATH);
    let segment = segment_path(store.segment_base);
    let damaged_segment = sim.damaged_sectors(store_node, &segment);
    // Whether the disk damaged where seq was.
    let damaged = |seq: u64| {
        if seq <= store.snapshot_through {
            damaged_snapshot.contains(&snapshot::block_of(seq))
        } else {
            damaged_segment.contains(&(seq - store.segment_base))
        }
    };
    // Past the last record the store found, a damaged sector (a misdirected
    // write at the log's tail) looks like a torn tail: no store can tell.
    let recovered_end = store.recovered.keys().next_back().copied().unwrap_or(0);
    for client in clients {
        for &(request, seq) in &client.state.acked {
            let found = store.recovered.get(&seq);
            if found
                .is_some_and(|record| record.client == client.state.id && record.request == request)
                || forgiven.contains(&(client.state.id, request))
            {
                continue;
            }
            if damaged(seq) && (store.reported.contains(&seq) || seq > recovered_end) {
                // The disk destroyed it, and the store said so (or it was
                // the tail, where the seq may be reused): forgive it for good.
                forgiven.insert((client.state.id, request));
                continue;
            }
            let how = match found {
                Some(record) => format!(
                    "seq {seq} holds client {} request {}",
                    record.client, record.request
                ),
                None if store.reported.contains(&seq) => {
                    format!("seq {seq} was reported lost, but the disk never damaged it")
                }
                None => format!("seq {seq} is gone"),
            };
            return Err(format!(
                "acknowledged record lost: client {} request {request}: {how} \
                 (snapshot through {}, tail wal.{})",
                client.state.id, store.snapshot_through, store.segment_base
            ));
        }
    }
    Ok(())
}
