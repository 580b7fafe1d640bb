//! The Redis-protocol KV server (`examples/kv_server`) under the
//! deterministic simulator: the server's own modules, not a copy, run as a
//! simulated node with its write-ahead log on the simulated disk, under
//! `fsync always`. Client nodes speak RESP to it, on keys of every type
//! (strings, hashes, sets, sorted sets, lists: see `model.rs`), with faults on, and the harness crashes and
//! restarts the server at random moments. Every GET reply, and after every
//! recovery the whole recovered key space, is checked: each key holds its
//! last acknowledged write, or a later write whose outcome is unknown.
//! The clients also share one queue, pushing to it and blocking on it
//! (BLPOP, BRPOP, BLMPOP on its list half, BZPOPMIN, BZPOPMAX, BZMPOP on
//! its sorted-set half, each woken by another client's push or timed
//! out), which a ledger across all clients checks: no value popped twice,
//! none that was never pushed, and after a recovery no acknowledged pop or
//! push undone.
//!
//! ```text
//! cargo run --release --example kv_sim -- --seed 7
//! cargo run --release --example kv_sim -- --seed 1 --seeds 500
//! cargo run --release --example kv_sim -- --seeds 500 --bug ack-before-fsync
//! ```
//!
//! Each seed prints one line, `seed=N hash=0x... ok` or `... VIOLATION: ...`;
//! the exit status is 1 if any seed failed. A failing seed replays exactly:
//! run it alone (`--seed N`) to see every option it used. The server's own
//! log lines (recovery, torn tails, failed fsyncs) go to stderr.

// The server's modules, unchanged; this binary uses only part of their API.
#[allow(dead_code)]
#[path = "../kv_server/commands.rs"]
mod commands;
#[allow(dead_code)]
#[path = "../kv_server/journal.rs"]
mod journal;
#[allow(dead_code)]
#[path = "../kv_server/keymap.rs"]
mod keymap;
#[allow(dead_code)]
#[path = "../kv_server/resp.rs"]
mod resp;
#[allow(dead_code)]
#[path = "../kv_server/server.rs"]
mod server;
#[allow(dead_code)]
#[path = "../kv_server/store.rs"]
mod store;
#[allow(dead_code)]
#[path = "../kv_server/wal.rs"]
mod wal;

#[path = "../common/seeds.rs"]
mod seeds;
#[path = "../common/stdout.rs"]
mod stdout;

mod client;
mod model;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use ringio::sim::{NodeId, Probability, SimOptions, Simulator};

use client::Client;
use journal::{FsyncPolicy, LogBug};
use model::{Key, QueueLedger};
use seeds::{Args, Outcome, Process};
use server::{Server, ServerConfig};

/// The port the server listens on.
const SERVER_PORT: u16 = 6379;
/// The log's directory and the log, on the server node's simulated disk.
/// The harness creates the directory, as kv_server's `main` does.
const WAL_DIR: &str = "kv-data";
const WAL_PATH: &str = "kv-data/wal";
/// The snapshot compaction writes (the log's path and `.snapshot`).
const SNAPSHOT_PATH: &str = "kv-data/wal.snapshot";
/// Compaction's threshold: small, so that every seed compacts.
const COMPACT_BYTES: u64 = 4096;
/// Clients per world.
const CLIENTS: u32 = 3;
/// Virtual time each seed runs with faults on.
const RUN_NS: u64 = 2_000_000_000;
/// Mean virtual time between crashes of the server.
const CRASH_INTERVAL_MEAN_NS: u64 = 300_000_000;
/// Mean virtual time a crashed server stays down.
const DOWNTIME_MEAN_NS: u64 = 30_000_000;
/// How long the final recovery, and the progress after it, may take.
const FINAL_RECOVERY_NS: u64 = 10_000_000_000;
/// Writes each client must get acknowledged after the final recovery.
const FINAL_PROGRESS_WRITES: u64 = 20;

const USAGE: &str = "\
usage: kv_sim [--seed N] [--seeds K] [--bug NAME] [--verbose] [--fixed-options]
              [--fsync-lies] [--file-bytes-max N]

  --seed N        the first seed (default 1)
  --seeds K       how many seeds, N to N+K-1 (default 1)
  --bug ack-before-fsync
                  plant the bug: the server acknowledges a write once it is
                  written, before the fsync that covers it
  --bug rename-without-dir-fsync
                  compaction cuts the log after renaming the snapshot into
                  place without fsyncing the directory
  --bug snapshot-without-fsync
                  compaction renames the snapshot without fsyncing it
  --bug torn-tail-not-cut
                  recovery leaves a torn tail in place and appends new
                  groups at the file's size, after it
  --verbose       print every seed's options (always on for a single seed)
  --fixed-options run every seed with the default options, instead of
                  options drawn from the seed (swarm testing)
  --fsync-lies    the disk acknowledges 20% of fsyncs without performing
                  them (DiskOptions::fsync_lie_probability), a fault no
                  store can defend against: the checker should catch it
  --file-bytes-max N
                  the largest file the disk allows (DiskOptions::
                  file_bytes_max): a write across it comes back short, and
                  one at it fails with EFBIG, as on a full file system";

/// The bugs `--bug` plants.
const BUGS: [&str; 4] = [
    "ack-before-fsync",
    "rename-without-dir-fsync",
    "snapshot-without-fsync",
    "torn-tail-not-cut",
];

fn main() -> ExitCode {
    seeds::run_seeds_with_bugs("kv_sim", USAGE, &BUGS, run_seed)
}

/// The bug planted in a seed's server.
#[derive(Debug, Clone, Copy)]
struct Bugs {
    ack_before_fsync: bool,
    log: Option<LogBug>,
}

impl Bugs {
    fn of(args: &Args) -> Bugs {
        Bugs {
            ack_before_fsync: args.bug,
            log: match args.bug_name.as_deref() {
                Some("rename-without-dir-fsync") => Some(LogBug::RenameWithoutDirFsync),
                Some("snapshot-without-fsync") => Some(LogBug::SnapshotWithoutFsync),
                Some("torn-tail-not-cut") => Some(LogBug::TornTailNotCut),
                _ => None,
            },
        }
    }
}

fn start_server(sim: &mut Simulator, node: NodeId, bug: Bugs) -> io::Result<Process<Server>> {
    let mut io = sim.io(node)?;
    let config = ServerConfig {
        addr: sim.address(node, SERVER_PORT),
        wal_path: PathBuf::from(WAL_PATH),
        fsync: FsyncPolicy::Always,
        ack_before_fsync: bug.ack_before_fsync,
        compact_bytes: COMPACT_BYTES,
        log_bug: bug.log,
        appendonly: true,
        requirepass: None,
        host: commands::HostInfo::fixed("simulated"),
    };
    let state = Server::start(&mut io, config)?;
    Ok(Process { io, state })
}

/// The world a seed runs in (`Args::options`), plus corrupt and
/// misdirected reads, which the server's recovery must tell from damage on
/// the disk by reading again (`REREADS_MAX` in kv_server's journal.rs).
fn options(seed: u64, args: &Args) -> SimOptions {
    let mut options = args.options(seed);
    options.disk.read_corruption_probability = Probability::percent(1);
    options.disk.read_misdirect_probability = Probability::percent(1);
    options
}

fn run_seed(seed: u64, args: &Args) -> io::Result<Outcome> {
    let mut sim = Simulator::new(seed, options(seed, args));
    if args.print_options() {
        // A closed pipe or a failed write shows on the seed's own line,
        // printed next, which stops the run.
        let _ = stdout::print_line(format_args!("{}", sim.describe()));
    }
    let server_node = sim.add_node("server");
    sim.create_dir_all(server_node, WAL_DIR)?;
    let server_address = sim.address(server_node, SERVER_PORT);
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let node = sim.add_node(&format!("client{id}"));
        let mut io = sim.io(node)?;
        let client_seed = sim.prng().next_u64();
        let state = Client::start(&mut io, id, server_address, client_seed);
        clients.push(Process { io, state });
    }
    let mut server: Option<Process<Server>> = None;
    let mut ledger = QueueLedger::default();
    let mut checked = false;
    let mut outcome = Outcome::default();
    let mut next_crash_ns = sim.now_ns() + sim.prng().exponential(CRASH_INTERVAL_MEAN_NS);
    let mut restart_ns = 0;
    let end_ns = sim.now_ns() + RUN_NS;
    while sim.now_ns() < end_ns && outcome.violation.is_none() {
        let now_ns = sim.now_ns();
        let mut crash = now_ns >= next_crash_ns;
        if let Some(process) = server.as_mut() {
            process.io.tick(&mut process.state)?;
            // A server that stopped itself (a failed fsync) is restarted too.
            crash |= process.state.fatal().is_some();
            if process.state.ready() && !checked {
                checked = true;
                outcome.violation = check(&process.state, &clients, &ledger).err();
            }
        }
        for client in &mut clients {
            client.io.tick(&mut client.state)?;
            if outcome.violation.is_none() {
                outcome.violation = client.state.violation.clone();
            }
            if let Err(violation) = take_queue_events(&mut ledger, &mut client.state) {
                outcome.violation.get_or_insert(violation);
            }
        }
        if server.is_some() && crash {
            crash_server(&mut sim, server_node, &mut clients);
            server = None;
            outcome.crashes += 1;
            restart_ns = now_ns + sim.prng().exponential(DOWNTIME_MEAN_NS);
            next_crash_ns = restart_ns + sim.prng().exponential(CRASH_INTERVAL_MEAN_NS);
        }
        if server.is_none() && now_ns >= restart_ns {
            match start_server(&mut sim, server_node, Bugs::of(args)) {
                Ok(process) => server = Some(process),
                // An injected EMFILE at start: the process exits; try later.
                Err(_) => restart_ns = now_ns + sim.prng().exponential(DOWNTIME_MEAN_NS),
            }
            checked = false;
        }
        if !sim.advance() {
            break;
        }
    }
    if outcome.violation.is_none() {
        outcome.crashes += 1;
        match final_check(
            &mut sim,
            server_node,
            server,
            &mut clients,
            &mut ledger,
            Bugs::of(args),
        )? {
            Ok(excused) => outcome.excused = excused,
            Err(violation) => outcome.violation = Some(violation),
        }
    }
    outcome.hash = sim.trace_hash();
    outcome.operations = sim.completions();
    outcome.acknowledged = clients.iter().map(|client| client.state.acked).sum();
    Ok(outcome)
}

/// With faults off, crashes the server once more, restarts it, waits for
/// its recovery, checks what it recovered, and checks that every client
/// then gets writes acknowledged again. `Ok(Some(reason))`: the disk
/// destroyed part of the log (a latent sector error), the server refused to
/// start, and there is nothing to check.
fn final_check(
    sim: &mut Simulator,
    server_node: NodeId,
    server: Option<Process<Server>>,
    clients: &mut [Process<Client>],
    ledger: &mut QueueLedger,
    bug: Bugs,
) -> io::Result<Result<Option<String>, String>> {
    sim.liveness();
    drop(server);
    crash_server(sim, server_node, clients);
    let mut server = start_server(sim, server_node, bug)?;
    let deadline_ns = sim.now_ns() + FINAL_RECOVERY_NS;
    let baseline: Vec<u64> = clients.iter().map(|client| client.state.acked).collect();
    let mut checked = false;
    loop {
        server.io.tick(&mut server.state)?;
        // Every process must run before the world advances: time only
        // moves once nobody has results waiting.
        for client in clients.iter_mut() {
            client.io.tick(&mut client.state)?;
            if let Some(violation) = &client.state.violation {
                return Ok(Err(violation.clone()));
            }
            if let Err(violation) = take_queue_events(ledger, &mut client.state) {
                return Ok(Err(violation));
            }
        }
        if let Some(reason) = server.state.fatal() {
            // The snapshot is as much the log as the log is: a sector
            // destroyed in either loses durable data.
            for (path, what) in [(WAL_PATH, "log"), (SNAPSHOT_PATH, "snapshot")] {
                let damaged = sim.damaged_sectors(server_node, path);
                if !damaged.is_empty() {
                    return Ok(Ok(Some(format!(
                        "the disk damaged sectors {damaged:?} of the {what} and the server \
                         refused to start: {reason}"
                    ))));
                }
            }
            return Ok(Err(format!("the server could not recover: {reason}")));
        }
        if server.state.ready() && !checked {
            checked = true;
            if let Err(violation) = check(&server.state, clients, ledger) {
                return Ok(Err(violation));
            }
        }
        let progressed = clients
            .iter()
            .zip(&baseline)
            .all(|(client, &before)| client.state.acked >= before + FINAL_PROGRESS_WRITES);
        if checked && progressed {
            return Ok(Ok(None));
        }
        if sim.now_ns() >= deadline_ns || !sim.advance() {
            let what = if checked {
                "the clients made no progress after the final recovery"
            } else {
                "the server did not finish recovery"
            };
            return Ok(Err(what.to_owned()));
        }
    }
}

/// Crashes the server's node. No connection to it survives into its next
/// process, so what clients sent on abandoned connections stops floating.
fn crash_server(sim: &mut Simulator, server_node: NodeId, clients: &mut [Process<Client>]) {
    sim.crash(server_node);
    for client in clients {
        client.state.model.server_crashed();
    }
}

/// What the recovered store holds for `key`, read as the clients read it
/// (a set member as "1", a score as ZSCORE prints it, a list's length).
fn stored_value(server: &Server, model: &model::Model, key: Key) -> Option<Vec<u8>> {
    let (name, inner) = model.name(key);
    let entry = server.store.peek(&name)?;
    let inner = inner.unwrap_or_default();
    match &entry.value {
        store::Value::String(value, _) => Some(value.clone()),
        store::Value::Hash(hash) => hash.get(&inner).cloned(),
        store::Value::Set(set) => set.contains(&inner).then(|| b"1".to_vec()),
        store::Value::ZSet(zset) => zset
            .score(&inner)
            .map(|score| resp::format_g17(score).into_bytes()),
        store::Value::List(list) => Some(list.len().to_string().into_bytes()),
    }
}

/// Hands what a client saw of the shared queue to the ledger.
fn take_queue_events(ledger: &mut QueueLedger, client: &mut Client) -> Result<(), String> {
    for event in std::mem::take(&mut client.queue_events) {
        ledger.record(client.id, event)?;
    }
    Ok(())
}

/// After a recovery: every key of every client holds its last acknowledged
/// write, or a later one whose outcome is unknown; the shared queue passes
/// the ledger's check.
fn check(server: &Server, clients: &[Process<Client>], ledger: &QueueLedger) -> Result<(), String> {
    // The queue's two halves, the list and the sorted set, as one.
    let list = match server.store.peek(model::QUEUE_KEY) {
        None => Ok(Vec::new()),
        Some(store::Entry {
            value: store::Value::List(list),
            ..
        }) => Ok(list.iter().cloned().collect()),
        Some(_) => Err(()),
    };
    let zset = match server.store.peek(model::ZQUEUE_KEY) {
        None => Ok(Vec::new()),
        Some(store::Entry {
            value: store::Value::ZSet(zset),
            ..
        }) => Ok(zset.iter().map(|(member, _)| member.to_vec()).collect()),
        Some(_) => Err(()),
    };
    let queue = match (list, zset) {
        (Ok(mut list), Ok(zset)) => {
            list.extend(zset);
            Ok(Some(list))
        }
        _ => Err(()),
    };
    let in_flight = clients
        .iter()
        .map(|client| client.state.pops_in_flight())
        .sum();
    ledger.check_recovered(queue, in_flight)?;
    for client in clients {
        let model = &client.state.model;
        for key in model.keys() {
            let found = stored_value(server, model, key);
            model
                .check(key, found.as_deref(), u64::MAX)
                .map_err(|message| format!("after recovery: acknowledged write lost: {message}"))?;
        }
    }
    Ok(())
}
