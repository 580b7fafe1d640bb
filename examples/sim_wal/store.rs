//! The store: a write-ahead log served over TCP, written on the ringio API
//! only, so that it runs on io_uring and under the simulator alike.
//!
//! Files, in the node's root directory:
//!
//! - `wal.<base>`: the log segment the tail is appended to; record `seq`
//!   is in its sector `seq - base` (record.rs).
//! - `snapshot`: every record up to `through`, seven to a 512-byte block
//!   (snapshot.rs), with `through` and the segment it replaced
//!   (`previous_base`) in every block. The tail segment is `wal.<through + 1>`,
//!   or, if a crash undid that name, still `wal.<previous_base>`.
//! - `snapshot.tmp`: a snapshot being written.
//!
//! - At start it reads the snapshot (if any), then the tail segment
//!   (retrying transient `EIO`, then sector by sector; re-reading a range
//!   with a sector that is not valid, since a read can be corrupted or
//!   misdirected on the way back and a re-read then is right), keeps every valid
//!   record, reports every seq it cannot serve (a damaged snapshot block, a
//!   torn, corrupt, misdirected or unreadable sector, or a hole below the
//!   end), cuts the segment after its last valid record, fsyncs it and the
//!   directory, and then listens.
//! - Requests are appended in groups: while one group's write and fsync are
//!   in flight, new requests wait and share the next group.
//! - A reply is sent only after the fsync that covers it completes (unless
//!   the planted bug `ack-before-fsync` is on).
//! - Every `compact_records` records (when compaction is on), appends
//!   pause and the store compacts, in this order (docs/simulation.md has
//!   the argument that a crash at any point loses nothing):
//!   1. write `snapshot.tmp` (every record so far), fsync it;
//!   2. create the new segment `wal.<through + 1>`, fsync it;
//!   3. rename `snapshot.tmp` over `snapshot`, fsync the directory (this
//!      makes the rename and the new segment's name durable together);
//!   4. cut the old segment to 0 bytes and fsync it (from here on its
//!      records exist only in the snapshot);
//!   5. unlink the old segment (not fsynced: a name a crash brings back is
//!      an empty file, removed at the next start).
//! - A failed write, fsync or file-system operation is fatal: after a failed
//!   fsync the data may be gone from the disk while reads still show it, so
//!   the store stops and lets its supervisor restart it from what is really
//!   durable.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;

use ringio::{AlignedBuf, FileOptions, Handle, RenameFlags, UnlinkFlags, IO};
use slab::Slab;

use crate::record::{self, Record, Sector, REPLY_BYTES, REQUEST_BYTES, SECTOR_BYTES};
use crate::snapshot::{self, Block, Slot, SLOTS_PER_BLOCK};

/// The snapshot's name.
pub const SNAPSHOT_PATH: &str = "snapshot";
/// The name a snapshot is written under, until it is complete and durable.
pub const SNAPSHOT_TMP_PATH: &str = "snapshot.tmp";
/// The directory all the store's files are in (the node's root).
const DIRECTORY_PATH: &str = ".";
/// Bytes read per recovery read, before falling back to single sectors.
const RECOVERY_CHUNK_BYTES: usize = 64 * SECTOR_BYTES;
/// Reads of one range before it is declared unreadable: injected `EIO` is
/// transient, a latent sector error is not. Also the reads of a range with
/// a sector that is not a valid record (or block) before that sector is
/// taken as corrupt or empty: a read can be corrupted or misdirected on the
/// way back, and then a re-read is right (a valid record cannot come of a
/// fault, since its checksum covers its position).
const READ_ATTEMPTS_MAX: u32 = 8;
/// The most records one group appends.
const GROUP_RECORDS_MAX: usize = 64;
/// Bytes one recv may fill.
const RECV_BYTES: usize = 4096;
/// Snapshot blocks per write: a snapshot is written in several writes, so
/// that one misdirected write cannot take every copy of its header.
const SNAPSHOT_WRITE_BLOCKS: u64 = 8;

/// The name of the log segment whose first seq is `base`.
pub fn segment_path(base: u64) -> String {
    format!("wal.{base}")
}

/// A bug to plant, for the simulator to catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Acknowledge a group before its fsync completes.
    AckBeforeFsync,
    /// Compaction: rename the snapshot and go on without fsyncing the
    /// directory (so the rename, and the new segment's name, may be undone
    /// by a crash after the old segment was cut).
    RenameWithoutDirFsync,
    /// Compaction: rename the snapshot without ever fsyncing its data.
    SnapshotWithoutFsync,
    /// Compaction: cut the old segment (and fsync the cut) as soon as the
    /// snapshot is written, before the snapshot is fsynced and renamed.
    TruncateBeforeSnapshotDurable,
    /// Recovery: trust the first read of a range, so that a sector that
    /// fails its checksum is corrupt at once (and an all-zero one empty),
    /// where the fault may have been on the way back, not on the disk.
    TrustFirstRead,
}

impl Bug {
    /// The bug's `--bug` name.
    pub const NAMES: [&'static str; 5] = [
        "ack-before-fsync",
        "rename-without-dir-fsync",
        "snapshot-without-fsync",
        "truncate-before-snapshot-durable",
        "trust-first-read",
    ];

    /// The bug named `name` on the command line.
    pub fn from_name(name: &str) -> Option<Bug> {
        let bugs = [
            Bug::AckBeforeFsync,
            Bug::RenameWithoutDirFsync,
            Bug::SnapshotWithoutFsync,
            Bug::TruncateBeforeSnapshotDurable,
            Bug::TrustFirstRead,
        ];
        let index = Bug::NAMES.iter().position(|known| *known == name)?;
        Some(bugs[index])
    }
}

/// How the store runs.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The planted bug, if any.
    pub bug: Option<Bug>,
    /// Compact once the tail segment holds this many records; `None`: never.
    pub compact_records: Option<u64>,
}

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
    /// The file being read: the snapshot, or the tail segment.
    file: Option<Handle>,
    /// Reading the snapshot (else the segment).
    snapshot: bool,
    offset: u64,
    attempts: u32,
    /// Reads of the range at `offset` that came back with a sector that is
    /// not valid.
    rereads: u32,
    /// Sectors (or blocks) of the file read as valid, on any read.
    valid: BTreeSet<u64>,
    /// Below this offset, read one sector at a time (a chunk failed).
    sector_mode_end: u64,
    /// The file's O_DIRECT handle, for reading sector by sector.
    direct: Direct,
    /// Sectors (or blocks) read as all zeros.
    empty: BTreeSet<u64>,
    /// Sectors (or blocks) read as corrupt, or unreadable.
    corrupt: BTreeSet<u64>,
    /// The snapshot's valid blocks, by index.
    blocks: BTreeMap<u64, Block>,
    /// The snapshot's `previous_base`.
    previous_base: u64,
}

/// The O_DIRECT handle on the file recovery reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direct {
    Closed,
    Opening,
    Open(Handle),
    /// The file system refused O_DIRECT: sectors are read buffered.
    Refused,
}

/// A compaction in flight.
struct Compaction {
    /// The last seq the snapshot covers.
    through: u64,
    /// The segment being replaced: its first seq, and its handle.
    old_base: u64,
    old: Handle,
    snapshot: Option<Handle>,
    segment: Option<Handle>,
    writes_pending: u32,
    /// The old segment was cut already (the planted bug does it early).
    cut: bool,
}

/// The store's state: the ctx of its `IO`.
pub struct Store {
    config: Config,
    address: SocketAddr,
    directory: Option<Handle>,
    /// The tail segment, and its first seq.
    segment: Option<Handle>,
    /// The first seq of the tail segment.
    pub segment_base: u64,
    /// The last seq the snapshot covers (0: no snapshot).
    pub snapshot_through: u64,
    recovery: Recovery,
    /// Bytes recovery read (snapshot and segment).
    pub recovery_bytes: u64,
    /// Records recovery read from a segment (the tail).
    pub recovery_tail_records: u64,
    /// The valid records, by seq, as recovery found them.
    pub recovered: BTreeMap<u64, Record>,
    /// Seqs recovery reported as lost: below the end, and not served.
    pub reported: BTreeSet<u64>,
    /// Every durable record, by seq: what the next snapshot holds.
    records: BTreeMap<u64, Record>,
    /// Recovery finished and the store serves requests.
    pub ready: bool,
    /// Why the store stopped, if it did.
    pub fatal: Option<String>,
    /// Compactions this run of the store finished.
    pub compactions: u64,
    next_seq: u64,
    waiting: Vec<Append>,
    group: Vec<(Append, u64)>,
    writing: bool,
    compaction: Option<Compaction>,
    /// Open connections by index (a slab reuses the index of a closed one).
    connections: Slab<Connection>,
    generations: u32,
}

impl Store {
    /// Starts recovery (it opens the directory, then the snapshot, then the
    /// tail segment); the store listens on `address` once recovery is done.
    pub fn start(io: &mut IO<Store>, address: SocketAddr, config: Config) -> Store {
        let directory = FileOptions::new().write(false).directory(true);
        io.openat(DIRECTORY_PATH, directory, |io, store, result| {
            match result {
                Ok(directory) => store.directory = Some(directory),
                Err(error) => return store.stop(format!("opening the directory: {error}")),
            }
            let read_only = FileOptions::new().write(false);
            io.openat(SNAPSHOT_PATH, read_only, on_snapshot_opened);
        });
        Store {
            config,
            address,
            directory: None,
            segment: None,
            segment_base: 1,
            snapshot_through: 0,
            recovery: Recovery {
                file: None,
                snapshot: true,
                offset: 0,
                attempts: 0,
                rereads: 0,
                valid: BTreeSet::new(),
                sector_mode_end: 0,
                direct: Direct::Closed,
                empty: BTreeSet::new(),
                corrupt: BTreeSet::new(),
                blocks: BTreeMap::new(),
                previous_base: 1,
            },
            recovery_bytes: 0,
            recovery_tail_records: 0,
            recovered: BTreeMap::new(),
            reported: BTreeSet::new(),
            records: BTreeMap::new(),
            ready: false,
            fatal: None,
            compactions: 0,
            next_seq: 1,
            waiting: Vec::new(),
            group: Vec::new(),
            writing: false,
            compaction: None,
            connections: Slab::new(),
            generations: 0,
        }
    }

    fn stop(&mut self, reason: String) {
        if self.fatal.is_none() {
            self.fatal = Some(reason);
        }
    }

    fn bug(&self, bug: Bug) -> bool {
        self.config.bug == Some(bug)
    }
}
fn on_snapshot_opened(io: &mut IO<Store>, store: &mut Store, result: io::Result<Handle>) {
    match result {
        Ok(file) => {
            store.recovery.file = Some(file);
            read_next(io, store);
        }
        // No snapshot yet: the log is all in `wal.1`.
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => open_tail(io, 1, false),
        Err(error) => store.stop(format!("opening the snapshot: {error}")),
    }
}

fn read_next(io: &mut IO<Store>, store: &mut Store) {
    let recovery = &store.recovery;
    let offset = recovery.offset;
    let file = recovery.file.expect("a file to read");
    if offset >= recovery.sector_mode_end {
        let buf = Vec::with_capacity(RECOVERY_CHUNK_BYTES);
        io.read(file, buf, offset, |io, store, result, buf| {
            on_read(io, store, result, &buf, RECOVERY_CHUNK_BYTES)
        });
        return;
    }
    // Sector by sector, with O_DIRECT: the page cache reads whole pages,
    // so a bad sector would take the buffered reads of its page's other
    // sectors with it.
    match recovery.direct {
        Direct::Open(direct) => {
            let buf = AlignedBuf::new(SECTOR_BYTES, SECTOR_BYTES).expect("a sector's buffer");
            io.read(direct, buf, offset, |io, store, result, buf| {
                on_read(io, store, result, &buf, SECTOR_BYTES)
            });
        }
        Direct::Refused => {
            let buf = Vec::with_capacity(SECTOR_BYTES);
            io.read(file, buf, offset, |io, store, result, buf| {
                on_read(io, store, result, &buf, SECTOR_BYTES)
            });
        }
        Direct::Closed => {
            let path = match recovery.snapshot {
                true => SNAPSHOT_PATH.to_owned(),
                false => segment_path(store.segment_base),
            };
            store.recovery.direct = Direct::Opening;
            let options = FileOptions::new().write(false).direct(true);
            io.openat(path, options, |io, store, result| {
                // A file system without O_DIRECT (tmpfs): read buffered.
                store.recovery.direct = match result {
                    Ok(direct) => Direct::Open(direct),
                    Err(_) => Direct::Refused,
                };
                read_next(io, store);
            });
        }
        Direct::Opening => unreachable!("no read while the O_DIRECT handle opens"),
    }
}

/// Closes the file being read's O_DIRECT handle, if it has one.
fn close_direct(io: &mut IO<Store>, store: &mut Store) {
    if let Direct::Open(direct) = std::mem::replace(&mut store.recovery.direct, Direct::Closed) {
        io.close(direct, |_, _, _| {});
    }
    store.recovery.direct = Direct::Closed;
}

/// A read of `len` bytes (`buf`, of which `result` filled a prefix) at
/// the recovery's offset completed.
fn on_read(
    io: &mut IO<Store>,
    store: &mut Store,
    result: io::Result<usize>,
    buf: &[u8],
    len: usize,
) {
    let recovery = &mut store.recovery;
    match result {
        Ok(0) if recovery.snapshot => return finish_snapshot(io, store),
        Ok(0) => return finish_recovery(io, store),
        Ok(count) => {
            store.recovery_bytes += count as u64;
            let first = recovery.offset / SECTOR_BYTES as u64;
            let sectors = buf[..count].chunks(SECTOR_BYTES).zip(first..);
            // The valid sectors are taken at once; the others only once
            // re-reads have not made them valid.
            let mut suspect = false;
            for (bytes, at) in sectors.clone() {
                suspect |= !take_sector(store, at, bytes, false);
            }
            let trusting = store.bug(Bug::TrustFirstRead);
            let recovery = &mut store.recovery;
            let last_read = trusting || recovery.rereads + 1 >= READ_ATTEMPTS_MAX;
            if suspect && !last_read {
                recovery.rereads += 1;
                return read_next(io, store);
            }
            if suspect {
                for (bytes, at) in sectors {
                    take_sector(store, at, bytes, true);
                }
            }
            let recovery = &mut store.recovery;
            recovery.offset += count as u64;
            recovery.attempts = 0;
            recovery.rereads = 0;
        }
        Err(error) if error.raw_os_error() == Some(libc::EIO) => {
            recovery.attempts += 1;
            if recovery.attempts >= READ_ATTEMPTS_MAX {
                recovery.attempts = 0;
                if len > SECTOR_BYTES {
                    recovery.sector_mode_end = recovery.offset + len as u64;
                } else {
                    recovery
                        .corrupt
                        .insert(recovery.offset / SECTOR_BYTES as u64);
                    recovery.offset += SECTOR_BYTES as u64;
                }
            }
        }
        Err(error) => return store.stop(format!("recovery read failed: {error}")),
    }
    read_next(io, store);
}

/// Takes sector `at` of the file being read, if it is valid; if not, and
/// `last` (no more reads of it will come) and no read found it valid,
/// records it as empty or corrupt. Returns whether it is valid.
fn take_sector(store: &mut Store, at: u64, bytes: &[u8], last: bool) -> bool {
    let recovery = &mut store.recovery;
    let (empty, corrupt) = if recovery.snapshot {
        match snapshot::decode(bytes, at) {
            Block::Empty => (true, false),
            Block::Corrupt => (false, true),
            block => {
                recovery.valid.insert(at);
                recovery.blocks.insert(at, block);
                return true;
            }
        }
    } else {
        match record::decode(bytes, at, store.segment_base) {
            Sector::Record(record) => {
                if recovery.valid.insert(at) {
                    store.recovery_tail_records += 1;
                }
                store.recovered.entry(record.seq).or_insert(record);
                return true;
            }
            Sector::Empty => (true, false),
            Sector::Corrupt => (false, true),
        }
    };
    if last && !recovery.valid.contains(&at) {
        if empty {
            recovery.empty.insert(at);
        }
        if corrupt {
            recovery.corrupt.insert(at);
        }
    }
    false
}

/// The snapshot is read: takes its records, reports the seqs of its
/// damaged blocks, and opens the tail segment.
fn finish_snapshot(io: &mut IO<Store>, store: &mut Store) {
    close_direct(io, store);
    let recovery = &mut store.recovery;
    if let Some(file) = recovery.file.take() {
        io.close(file, |_, _, _| {});
    }
    // A block of an older snapshot (a crash undid a cut that was not
    // fsynced) says less; the largest `through` is this snapshot's.
    let through = recovery
        .blocks
        .values()
        .map(|block| match block {
            Block::Valid { through, .. } => *through,
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    for (&index, block) in &recovery.blocks {
        let Block::Valid {
            through: block_through,
            previous_base,
            slots,
        } = block
        else {
            continue;
        };
        if *block_through != through {
            continue;
        }
        recovery.previous_base = *previous_base;
        let first = index * SLOTS_PER_BLOCK + 1;
        for (seq, slot) in (first..).zip(slots) {
            match slot {
                Some((client, request, payload)) => {
                    let record = Record {
                        seq,
                        client: *client,
                        request: *request,
                        payload: payload.clone(),
                    };
                    store.recovered.insert(seq, record);
                }
                None => {
                    store.reported.insert(seq);
                }
            }
        }
    }
    // Every seq the snapshot covers and did not give back is reported.
    for seq in 1..=through {
        if !store.recovered.contains_key(&seq) {
            store.reported.insert(seq);
        }
    }
    store.snapshot_through = through;
    let previous_base = recovery.previous_base;
    recovery.blocks.clear();
    if through == 0 {
        // Nothing valid (an empty snapshot, or every block destroyed).
        return open_tail(io, 1, false);
    }
    open_tail_after_snapshot(io, through, previous_base);
}

/// Opens `wal.<through + 1>`; if a crash undid its name, the segment the
/// snapshot replaced, which compaction cuts only once the new name is
/// durable.
fn open_tail_after_snapshot(io: &mut IO<Store>, through: u64, previous_base: u64) {
    let options = FileOptions::new();
    io.openat(
        segment_path(through + 1),
        options,
        move |io, store, result| match result {
            Ok(file) => on_tail_opened(io, store, through + 1, file),
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {
                open_tail(io, previous_base, true)
            }
            Err(error) => store.stop(format!("opening the log segment: {error}")),
        },
    );
}

/// Opens the segment `wal.<base>`; if `fallback`, and it is not there,
/// creates `wal.<through + 1>`.
fn open_tail(io: &mut IO<Store>, base: u64, fallback: bool) {
    let options = FileOptions::new().create(!fallback);
    io.openat(segment_path(base), options, move |io, store, result| {
        match result {
            Ok(file) => on_tail_opened(io, store, base, file),
            Err(error) if fallback && error.raw_os_error() == Some(libc::ENOENT) => {
                // Neither segment: the store goes on with an empty tail,
                // and the checker judges what is missing.
                open_tail(io, store.snapshot_through + 1, false)
            }
            Err(error) => store.stop(format!("opening the log segment: {error}")),
        }
    });
}

fn on_tail_opened(io: &mut IO<Store>, store: &mut Store, base: u64, file: Handle) {
    store.segment = Some(file);
    store.segment_base = base;
    let recovery = &mut store.recovery;
    recovery.file = Some(file);
    recovery.snapshot = false;
    recovery.offset = 0;
    recovery.sector_mode_end = 0;
    recovery.rereads = 0;
    recovery.valid.clear();
    recovery.empty.clear();
    recovery.corrupt.clear();
    read_next(io, store);
}

/// The tail is read: reports the seqs not served below the end, cuts the
/// segment after its last valid record, makes the cut and every name
/// durable, removes what an interrupted compaction left, and serves.
fn finish_recovery(io: &mut IO<Store>, store: &mut Store) {
    close_direct(io, store);
    store.recovery.file = None;
    let base = store.segment_base;
    let end_seq = store
        .recovered
        .keys()
        .next_back()
        .copied()
        .unwrap_or(0)
        .max(store.snapshot_through);
    let recovery = &store.recovery;
    let below_end = |sector: &&u64| base + **sector <= end_seq;
    let lost: Vec<u64> = (recovery.empty.iter().filter(below_end))
        .chain(recovery.corrupt.iter())
        .map(|sector| base + sector)
        .collect();
    store.reported.extend(lost);
    let recovered = &store.recovered;
    store.reported.retain(|seq| !recovered.contains_key(seq));
    store.records = store.recovered.clone();
    store.next_seq = end_seq + 1;
    let segment = store.segment.expect("the tail segment is open");
    let len_bytes = (end_seq + 1).saturating_sub(base) * SECTOR_BYTES as u64;
    io.ftruncate(segment, len_bytes, move |io, store, result| {
        if let Err(error) = result {
            return store.stop(format!("truncating the log's tail failed: {error}"));
        }
        io.fsync(segment, |io, store, result| {
            if let Err(error) = result {
                return store.stop(format!("fsync of the log segment: {error}"));
            }
            let directory = store.directory.expect("the directory is open");
            io.fsync(directory, |io, store, result| match result {
                Ok(()) => remove_leftovers(io, store),
                Err(error) => store.stop(format!("fsync of the directory: {error}")),
            });
        });
    });
}

/// Removes what a compaction a crash interrupted may have left: the
/// temporary snapshot, and the segment the snapshot replaced (if the new
/// one is in use). Neither may be there: `ENOENT` is fine.
fn remove_leftovers(io: &mut IO<Store>, store: &mut Store) {
    let previous_base = store.recovery.previous_base;
    let old_segment = store.snapshot_through > 0 && store.segment_base != previous_base;
    io.unlinkat(
        SNAPSHOT_TMP_PATH,
        UnlinkFlags::FILE,
        move |io, store, result| {
            if let Err(error) = result.or_else(allow_missing) {
                return store.stop(format!("removing {SNAPSHOT_TMP_PATH}: {error}"));
            }
            if !old_segment {
                return serve(io, store);
            }
            io.unlinkat(
                segment_path(previous_base),
                UnlinkFlags::FILE,
                |io, store, result| match result.or_else(allow_missing) {
                    Ok(()) => serve(io, store),
                    Err(error) => store.stop(format!("removing the old segment: {error}")),
                },
            );
        },
    );
}

fn allow_missing(error: io::Error) -> io::Result<()> {
    match error.raw_os_error() {
        Some(libc::ENOENT) => Ok(()),
        _ => Err(error),
    }
}

fn serve(io: &mut IO<Store>, store: &mut Store) {
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

/// Writes the waiting requests as one group, unless a group or a
/// compaction is in flight.
fn write_group(io: &mut IO<Store>, store: &mut Store) {
    if store.writing || store.compaction.is_some() || store.fatal.is_some() {
        return;
    }
    if store.waiting.is_empty() {
        return;
    }
    let count = store.waiting.len().min(GROUP_RECORDS_MAX);
    let first_seq = store.next_seq;
    let base = store.segment_base;
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
            record::encode(&record, seq - base, &mut buf[at..at + SECTOR_BYTES]);
            (append, seq)
        })
        .collect();
    store.writing = true;
    let offset = (first_seq - base) * SECTOR_BYTES as u64;
    let segment = store.segment.expect("the tail segment is open");
    io.write(
        segment,
        buf,
        offset,
        move |io, store, result, buf| match result {
            Ok(count) if count == buf.len() => {
                if store.bug(Bug::AckBeforeFsync) {
                    acknowledge_group(io, store); // The planted bug.
                }
                io.fsync(segment, on_synced);
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
    // The group is durable: the next snapshot holds it.
    for (append, seq) in &store.group {
        let record = Record {
            seq: *seq,
            client: append.client,
            request: append.request,
            payload: record::payload(append.client, append.request),
        };
        store.records.insert(*seq, record);
    }
    if !store.bug(Bug::AckBeforeFsync) {
        acknowledge_group(io, store);
    }
    store.group.clear();
    store.writing = false;
    let tail_records = store.next_seq - store.segment_base;
    if store
        .config
        .compact_records
        .is_some_and(|records| tail_records >= records)
    {
        compact(io, store);
    }
    write_group(io, store);
}

/// Starts a compaction through the last durable seq (appends wait).
fn compact(io: &mut IO<Store>, store: &mut Store) {
    assert!(!store.writing);
    assert!(store.compaction.is_none());
    let through = store.next_seq - 1;
    store.compaction = Some(Compaction {
        through,
        old_base: store.segment_base,
        old: store.segment.expect("the tail segment is open"),
        snapshot: None,
        segment: None,
        writes_pending: 0,
        cut: false,
    });
    let options = FileOptions::new().create(true).truncate(true);
    io.openat(
        SNAPSHOT_TMP_PATH,
        options,
        |io, store, result| match result {
            Ok(file) => {
                compaction(store).snapshot = Some(file);
                compact_write(io, store, file);
            }
            Err(error) => store.stop(format!("opening {SNAPSHOT_TMP_PATH}: {error}")),
        },
    );
}

fn compaction(store: &mut Store) -> &mut Compaction {
    store.compaction.as_mut().expect("a compaction in flight")
}

/// Writes every block of the snapshot, `SNAPSHOT_WRITE_BLOCKS` to a write,
/// and its last block (no slots) in a write of its own.
fn compact_write(io: &mut IO<Store>, store: &mut Store, file: Handle) {
    let (through, previous_base) = {
        let compaction = compaction(store);
        (compaction.through, compaction.old_base)
    };
    let blocks = snapshot::blocks(through);
    let mut buf = vec![0; blocks as usize * SECTOR_BYTES];
    for (block, out) in (0..blocks).zip(buf.chunks_mut(SECTOR_BYTES)) {
        let first = block * SLOTS_PER_BLOCK + 1;
        let last = (first + SLOTS_PER_BLOCK - 1).min(through);
        let slots: Vec<Slot> = (first..=last)
            .map(|seq| {
                let record = store.records.get(&seq)?;
                Some((record.client, record.request, record.payload.clone()))
            })
            .collect();
        snapshot::encode(block, through, previous_base, &slots, out);
    }
    let data_blocks = blocks - 1;
    let mut starts: Vec<u64> = (0..data_blocks)
        .step_by(SNAPSHOT_WRITE_BLOCKS as usize)
        .collect();
    starts.push(data_blocks);
    compaction(store).writes_pending = starts.len() as u32;
    for (index, &start) in starts.iter().enumerate() {
        let end = starts.get(index + 1).copied().unwrap_or(blocks);
        let piece = buf[start as usize * SECTOR_BYTES..end as usize * SECTOR_BYTES].to_vec();
        let offset = start * SECTOR_BYTES as u64;
        io.write(file, piece, offset, on_snapshot_written);
    }
}

fn on_snapshot_written(
    io: &mut IO<Store>,
    store: &mut Store,
    result: io::Result<usize>,
    buf: Vec<u8>,
) {
    match result {
        Ok(count) if count == buf.len() => {}
        Ok(count) => return store.stop(format!("short snapshot write: {count} of {}", buf.len())),
        Err(error) => return store.stop(format!("snapshot write failed: {error}")),
    }
    if store.compaction.is_none() || store.fatal.is_some() {
        return;
    }
    let compaction = compaction(store);
    compaction.writes_pending -= 1;
    if compaction.writes_pending > 0 {
        return;
    }
    if store.bug(Bug::TruncateBeforeSnapshotDurable) {
        // The planted bug: the old segment's records now exist only in a
        // snapshot that is neither durable nor named.
        return compact_cut(io, store, compact_fsync_snapshot);
    }
    compact_fsync_snapshot(io, store);
}

fn compact_fsync_snapshot(io: &mut IO<Store>, store: &mut Store) {
    if store.bug(Bug::SnapshotWithoutFsync) {
        return compact_new_segment(io, store); // The planted bug.
    }
    let file = compaction(store).snapshot.expect("the snapshot is open");
    io.fsync(file, |io, store, result| match result {
        Ok(()) => compact_new_segment(io, store),
        Err(error) => store.stop(format!("fsync of the snapshot: {error}")),
    });
}

/// Creates the new tail segment (empty: appends wait) and fsyncs it.
fn compact_new_segment(io: &mut IO<Store>, store: &mut Store) {
    let base = compaction(store).through + 1;
    // A crash may have left this name from an earlier attempt: truncate.
    let options = FileOptions::new().create(true).truncate(true);
    io.openat(segment_path(base), options, |io, store, result| {
        let file = match result {
            Ok(file) => file,
            Err(error) => return store.stop(format!("creating the new segment: {error}")),
        };
        compaction(store).segment = Some(file);
        io.fsync(file, |io, store, result| match result {
            Ok(()) => compact_rename(io, store),
            Err(error) => store.stop(format!("fsync of the new segment: {error}")),
        });
    });
}

/// Renames the snapshot into place and fsyncs the directory, which makes
/// the rename and the new segment's name durable together.
fn compact_rename(io: &mut IO<Store>, _store: &mut Store) {
    let flags = RenameFlags::REPLACE;
    io.renameat(
        SNAPSHOT_TMP_PATH,
        SNAPSHOT_PATH,
        flags,
        |io, store, result| {
            if let Err(error) = result {
                return store.stop(format!("renaming the snapshot: {error}"));
            }
            if store.bug(Bug::RenameWithoutDirFsync) {
                return compact_after_rename(io, store); // The planted bug.
            }
            let directory = store.directory.expect("the directory is open");
            io.fsync(directory, |io, store, result| match result {
                Ok(()) => compact_after_rename(io, store),
                Err(error) => store.stop(format!("fsync of the directory: {error}")),
            });
        },
    );
}

fn compact_after_rename(io: &mut IO<Store>, store: &mut Store) {
    if compaction(store).cut {
        return compact_finish(io, store);
    }
    compact_cut(io, store, compact_finish);
}

/// Cuts the old segment to nothing and fsyncs the cut, then `next`.
fn compact_cut(io: &mut IO<Store>, store: &mut Store, next: fn(&mut IO<Store>, &mut Store)) {
    let old = compaction(store).old;
    io.ftruncate(old, 0, move |io, store, result| {
        if let Err(error) = result {
            return store.stop(format!("cutting the old segment: {error}"));
        }
        io.fsync(old, move |io, store, result| {
            if let Err(error) = result {
                return store.stop(format!("fsync of the cut segment: {error}"));
            }
            compaction(store).cut = true;
            next(io, store);
        });
    });
}

/// Removes the old segment's name and appends to the new segment.
fn compact_finish(io: &mut IO<Store>, store: &mut Store) {
    let old_base = compaction(store).old_base;
    io.unlinkat(
        segment_path(old_base),
        UnlinkFlags::FILE,
        |io, store, result| {
            if let Err(error) = result {
                return store.stop(format!("removing the old segment: {error}"));
            }
            let compaction = store.compaction.take().expect("a compaction in flight");
            io.close(compaction.old, |_, _, _| {});
            if let Some(snapshot) = compaction.snapshot {
                io.close(snapshot, |_, _, _| {});
            }
            store.segment = compaction.segment;
            store.segment_base = compaction.through + 1;
            store.snapshot_through = compaction.through;
            store.compactions += 1;
            write_group(io, store);
        },
    );
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
