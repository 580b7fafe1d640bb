//! `--restart-bench`: how long the store's restart takes against the
//! length of its history, with and without compaction, with faults off.
//!
//! For each history length, a world runs the store and its clients until
//! that many appends were acknowledged, crashes the store, restarts it, and
//! measures its recovery: virtual time until it serves, bytes read, and
//! records read from the log's tail.

use std::io;
use std::process::ExitCode;

use ringio::sim::{SimOptions, Simulator};

use crate::client::Client;
use crate::seeds::Process;
use crate::store::{Config, Store};
use crate::{start_clients, start_store, COMPACT_RECORDS, STORE_PORT};

/// History lengths measured (acknowledged appends).
const HISTORIES: [u64; 3] = [1_000, 5_000, 20_000];
/// Virtual time a run may take to reach its history.
const RUN_NS_MAX: u64 = 3_600_000_000_000;

/// A restart's cost.
struct Restart {
    acknowledged: u64,
    recovery_ns: u64,
    bytes_read: u64,
    tail_records: u64,
}

pub fn restart_bench() -> ExitCode {
    println!("history  compaction  acknowledged  restart_ms  bytes_read  tail_records");
    for history in HISTORIES {
        for compaction in [false, true] {
            match measure(history, compaction) {
                Ok(restart) => println!(
                    "{history:>7}  {:>10}  {:>12}  {:>10.2}  {:>10}  {:>12}",
                    if compaction { "on" } else { "off" },
                    restart.acknowledged,
                    restart.recovery_ns as f64 / 1e6,
                    restart.bytes_read,
                    restart.tail_records
                ),
                Err(error) => {
                    eprintln!("sim_wal: restart bench: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn measure(history: u64, compaction: bool) -> io::Result<Restart> {
    let mut sim = Simulator::new(1, SimOptions::default().without_faults());
    let config = Config {
        bug: None,
        compact_records: compaction.then_some(COMPACT_RECORDS),
    };
    let store_node = sim.add_node("store");
    let store_address = sim.address(store_node, STORE_PORT);
    let mut clients = start_clients(&mut sim, store_address)?;
    let acknowledged = |clients: &[Process<Client>]| {
        clients
            .iter()
            .map(|client| client.state.acked.len() as u64)
            .sum::<u64>()
    };
    let mut store = start_store(&mut sim, store_node, config)?;
    let end_ns = sim.now_ns() + RUN_NS_MAX;
    while acknowledged(&clients) < history && sim.now_ns() < end_ns {
        tick_all(&mut store, &mut clients)?;
        if !sim.advance() {
            break;
        }
    }
    let acknowledged = acknowledged(&clients);
    drop(store);
    sim.crash(store_node);
    let started_ns = sim.now_ns();
    let mut store = start_store(&mut sim, store_node, config)?;
    while !store.state.ready && store.state.fatal.is_none() {
        tick_all(&mut store, &mut clients)?;
        if !store.state.ready && !sim.advance() {
            break;
        }
    }
    if let Some(reason) = &store.state.fatal {
        return Err(io::Error::other(reason.clone()));
    }
    Ok(Restart {
        acknowledged,
        recovery_ns: sim.now_ns() - started_ns,
        bytes_read: store.state.recovery_bytes,
        tail_records: store.state.recovery_tail_records,
    })
}

fn tick_all(store: &mut Process<Store>, clients: &mut [Process<Client>]) -> io::Result<()> {
    store.io.tick(&mut store.state)?;
    for client in clients {
        client.io.tick(&mut client.state)?;
    }
    Ok(())
}
