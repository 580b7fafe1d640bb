//! The store: a write-ahead log served over TCP, written on the ringio API
//! only, so that it runs on io_uring and under the simulator alike.
//!
//! - At start it reads the whole log back (retrying transient `EIO`, then
//!   sector by sector), keeps every valid record, reports every sector that
//!   is not one (torn, corrupt, misdirected, unreadable, or a hole below the
//!   end), cuts the file after the last valid record, and then listens.
//! - Requests are appended in groups: while one group's write and fsync are
//!   in flight, new requests wait and share the next group.
//! - A reply is sent only after the fsync that covers it completes (unless
//!   the planted bug `ack_before_fsync` is on).
//! - A failed write or fsync is fatal: after a failed fsync the data may be
//!   gone from the disk while reads still show it, so the store stops and
//!   lets its supervisor restart it from what is really durable.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;

use ringio::{FileOptions, Handle, IO};
use slab::Slab;

use crate::record::{self, Record, Sector, REPLY_BYTES, REQUEST_BYTES, SECTOR_BYTES};

/// The log's file name on the node's disk.
pub const WAL_PATH: &str = "wal";
/// Bytes read per recovery read, before falling back to single sectors.
const RECOVERY_CHUNK_BYTES: usize = 64 * SECTOR_BYTES;
/// Reads of one range before it is declared unreadable: injected `EIO` is
/// transient, a latent sector error is not.
const READ_ATTEMPTS_MAX: u32 = 8;
/// The most records one group appends.
const GROUP_RECORDS_MAX: usize = 64;
/// Bytes one recv may fill.
const RECV_BYTES: usize = 4096;

/// A request waiting for its group.
struct Append {
    connection: u32,
    generation: u32,
    client: u32,
    request: u64,
}

struct Connection {
    socket: Handle,
    generation: u32,
    input: Vec<u8>,
    output: Vec<u8>,
    sending: bool,
}

/// Where recovery has got to.
struct Recovery {
    offset: u64,
    attempts: u32,
    /// Below this offset, read one sector at a time (a chunk failed).
    sector_mode_end: u64,
    empty_sectors: BTreeSet<u64>,
}

/// The store's state: the ctx of its `IO`.
pub struct Store {
    ack_before_fsync: bool,
    address: SocketAddr,
    wal: Handle,
    recovery: Recovery,
    /// The log's valid records, by seq, as recovery found them.
    pub recovered: BTreeMap<u64, Record>,
    /// Sectors recovery reported as not holding a valid record.
    pub reported: BTreeSet<u64>,
    /// Recovery finished and the store serves requests.
    pub ready: bool,
    /// Why the store stopped, if it did.
    pub fatal: Option<String>,
    next_seq: u64,
    waiting: Vec<Append>,
    group: Vec<(Append, u64)>,
    writing: bool,
    /// Open connections by index (a slab reuses the index of a closed one).
    connections: Slab<Connection>,
    generations: u32,
}

impl Store {
    /// Opens the log and starts recovery; the store listens on `address`
    /// once recovery is done.
    pub fn start(
        io: &mut IO<Store>,
        address: SocketAddr,
        ack_before_fsync: bool,
    ) -> io::Result<Store> {
        let wal = io.open_file(WAL_PATH, FileOptions::new().create(true))?;
        let store = Store {
            ack_before_fsync,
            address,
            wal,
            recovery: Recovery {
                offset: 0,
                attempts: 0,
                sector_mode_end: 0,
                empty_sectors: BTreeSet::new(),
            },
            recovered: BTreeMap::new(),
            reported: BTreeSet::new(),
            ready: false,
            fatal: None,
            next_seq: 1,
            waiting: Vec::new(),
            group: Vec::new(),
            writing: false,
            connections: Slab::new(),
            generations: 0,
        };
        read_next(io, &store);
        Ok(store)
    }

    fn stop(&mut self, reason: String) {
        if self.fatal.is_none() {
            self.fatal = Some(reason);
        }
    }
}

fn read_next(io: &mut IO<Store>, store: &Store) {
    let offset = store.recovery.offset;
    let len = if offset < store.recovery.sector_mode_end {
        SECTOR_BYTES
    } else {
        RECOVERY_CHUNK_BYTES
    };
    io.read(store.wal, Vec::with_capacity(len), offset, on_read);
}

fn on_read(io: &mut IO<Store>, store: &mut Store, result: io::Result<usize>, buf: Vec<u8>) {
    let recovery = &mut store.recovery;
    match result {
        Ok(0) => return finish_recovery(io, store),
        Ok(count) => {
            let first_sector = recovery.offset / SECTOR_BYTES as u64;
            for (index, bytes) in buf[..count].chunks(SECTOR_BYTES).enumerate() {
                let sector = first_sector + index as u64;
                match record::decode(bytes, sector) {
                    Sector::Record(record) => {
                        store.recovered.insert(record.seq, record);
                    }
                    Sector::Empty => {
                        recovery.empty_sectors.insert(sector);
                    }
                    Sector::Corrupt => {
                        store.reported.insert(sector);
                    }
                }
            }
            recovery.offset += count as u64;
            recovery.attempts = 0;
        }
        Err(error) if error.raw_os_error() == Some(libc::EIO) => {
            recovery.attempts += 1;
            if recovery.attempts >= READ_ATTEMPTS_MAX {
                recovery.attempts = 0;
                if buf.capacity() > SECTOR_BYTES {
                    recovery.sector_mode_end = recovery.offset + buf.capacity() as u64;
                } else {
                    store.reported.insert(recovery.offset / SECTOR_BYTES as u64);
                    recovery.offset += SECTOR_BYTES as u64;
                }
            }
        }
        Err(error) => return store.stop(format!("recovery read failed: {error}")),
    }
    read_next(io, store);
}

/// Cuts the log after its last valid record and starts serving.
fn finish_recovery(io: &mut IO<Store>, store: &mut Store) {
    let end_sector = store.recovered.keys().next_back().copied().unwrap_or(0);
    let holes = store.recovery.empty_sectors.range(..end_sector);
    store.reported.extend(holes);
    let wal = store.wal;
    let len_bytes = end_sector * SECTOR_BYTES as u64;
    store.next_seq = end_sector + 1;
    // Before anything is acknowledged, the log's cut length and its name
    // must be durable: a truncate follows the file's fsync, and a new
    // file's name its directory's (the simulator undoes either at a crash
    // otherwise, as a file system may).
    io.ftruncate(wal, len_bytes, move |io, store, result| {
        if let Err(error) = result {
            return store.stop(format!("truncating the log's tail failed: {error}"));
        }
        io.fsync(wal, |io, store, result| {
            if let Err(error) = result {
                return store.stop(format!("fsync of the log after recovery failed: {error}"));
            }
            sync_directory(io, store);
        });
    });
}

/// Fsyncs the directory the log is in, then starts serving.
fn sync_directory(io: &mut IO<Store>, store: &mut Store) {
    let directory = match io.open_file(".", FileOptions::new().write(false)) {
        Ok(directory) => directory,
        Err(error) => return store.stop(format!("opening the log's directory failed: {error}")),
    };
    io.fsync(directory, move |io, store, result| {
        io.close(directory, |_, _, _| {});
        if let Err(error) = result {
            return store.stop(format!("fsync of the log's directory failed: {error}"));
        }
        start_serving(io, store);
    });
}

/// Listens once the log is recovered and durable.
fn start_serving(io: &mut IO<Store>, store: &mut Store) {
    let listener = match io.listen(store.address, 128) {
        Ok(listener) => listener,
        Err(error) => return store.stop(format!("listen failed: {error}")),
    };
    store.ready = true;
    accept_next(io, listener);
}

fn accept_next(io: &mut IO<Store>, listener: Handle) {
    io.accept(listener, move |io, store, result| match result {
        Ok(socket) => {
            let index = store.add_connection(socket);
            recv_next(io, store, index);
            accept_next(io, listener);
        }
        // The connection was reset before we took it: take the next one.
        Err(error) if error.raw_os_error() == Some(libc::ECONNABORTED) => accept_next(io, listener),
        Err(error) => store.stop(format!("accept failed: {error}")),
    });
}

impl Store {
    fn add_connection(&mut self, socket: Handle) -> u32 {
        self.generations += 1;
        let connection = Connection {
            socket,
            generation: self.generations,
            input: Vec::new(),
            output: Vec::new(),
            sending: false,
        };
        let index = self.connections.insert(connection);
        u32::try_from(index).expect("fewer than 2^32 connections")
    }

    /// The connection at `index`, if it is still the one of `generation`.
    fn connection(&mut self, index: u32, generation: u32) -> Option<&mut Connection> {
        self.connections
            .get_mut(index as usize)
            .filter(|connection| connection.generation == generation)
    }
}

fn recv_next(io: &mut IO<Store>, store: &mut Store, index: u32) {
    let Some(connection) = store.connections.get(index as usize) else {
        return;
    };
    let generation = connection.generation;
    io.recv(
        connection.socket,
        Vec::with_capacity(RECV_BYTES),
        move |io, store, result, buf| {
            let Some(connection) = store.connection(index, generation) else {
                return;
            };
            match result {
                Ok(count) if count > 0 => {
                    connection.input.extend_from_slice(&buf);
                    take_requests(store, index, generation);
                    write_group(io, store);
                    recv_next(io, store, index);
                }
                _ => close_connection(io, store, index),
            }
        },
    );
}

fn take_requests(store: &mut Store, index: u32, generation: u32) {
    let Some(connection) = store.connection(index, generation) else {
        return;
    };
    let frames = connection.input.len() / REQUEST_BYTES;
    let mut appends = Vec::with_capacity(frames);
    for frame in connection.input.chunks_exact(REQUEST_BYTES) {
        appends.push(Append {
            connection: index,
            generation,
            client: u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")),
            request: u64::from_le_bytes(frame[4..12].try_into().expect("8 bytes")),
        });
    }
    connection.input.drain(..frames * REQUEST_BYTES);
    store.waiting.extend(appends);
}

/// Writes the waiting requests as one group, unless a group is in flight.
fn write_group(io: &mut IO<Store>, store: &mut Store) {
    if store.writing || store.waiting.is_empty() || store.fatal.is_some() {
        return;
    }
    let count = store.waiting.len().min(GROUP_RECORDS_MAX);
    let first_seq = store.next_seq;
    store.next_seq += count as u64;
    let mut buf = vec![0; count * SECTOR_BYTES];
    store.group = store
        .waiting
        .drain(..count)
        .zip(first_seq..)
        .map(|(append, seq)| {
            let record = Record {
                seq,
                client: append.client,
                request: append.request,
                payload: record::payload(append.client, append.request),
            };
            let at = (seq - first_seq) as usize * SECTOR_BYTES;
            record::encode(&record, seq - 1, &mut buf[at..at + SECTOR_BYTES]);
            (append, seq)
        })
        .collect();
    store.writing = true;
    let offset = (first_seq - 1) * SECTOR_BYTES as u64;
    io.write(
        store.wal,
        buf,
        offset,
        |io, store, result, buf| match result {
            Ok(count) if count == buf.len() => {
                if store.ack_before_fsync {
                    acknowledge_group(io, store); // The planted bug.
                }
                io.fsync(store.wal, on_synced);
            }
            Ok(count) => store.stop(format!(
                "short write to the log: {count} of {} bytes",
                buf.len()
            )),
            Err(error) => store.stop(format!("log write failed: {error}")),
        },
    );
}

fn on_synced(io: &mut IO<Store>, store: &mut Store, result: io::Result<()>) {
    if let Err(error) = result {
        return store.stop(format!(
            "log fsync failed: {error}; the data may be lost, restarting"
        ));
    }
    if !store.ack_before_fsync {
        acknowledge_group(io, store);
    }
    store.writing = false;
    write_group(io, store);
}

fn acknowledge_group(io: &mut IO<Store>, store: &mut Store) {
    for (append, seq) in std::mem::take(&mut store.group) {
        let Some(connection) = store.connection(append.connection, append.generation) else {
            continue; // The client went away; it will retry.
        };
        connection
            .output
            .extend_from_slice(&append.request.to_le_bytes());
        connection.output.extend_from_slice(&seq.to_le_bytes());
        debug_assert_eq!(REPLY_BYTES, 16);
        send_output(io, store, append.connection);
    }
}

fn send_output(io: &mut IO<Store>, store: &mut Store, index: u32) {
    let Some(connection) = store.connections.get_mut(index as usize) else {
        return;
    };
    if connection.sending || connection.output.is_empty() {
        return;
    }
    connection.sending = true;
    let generation = connection.generation;
    let output = std::mem::take(&mut connection.output);
    io.send(
        connection.socket,
        output,
        move |io, store, result, mut sent| {
            let Some(connection) = store.connection(index, generation) else {
                return;
            };
            connection.sending = false;
            match result {
                Ok(count) => {
                    sent.drain(..count);
                    sent.extend_from_slice(&connection.output);
                    connection.output = sent;
                    send_output(io, store, index);
                }
                Err(_) => close_connection(io, store, index),
            }
        },
    );
}

fn close_connection(io: &mut IO<Store>, store: &mut Store, index: u32) {
    if let Some(connection) = store.connections.try_remove(index as usize) {
        io.close(connection.socket, |_, _, _| {});
    }
}
