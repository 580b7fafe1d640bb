//! The write-ahead log's I/O, all through ringio: recovery reads the log
//! back with `read`, and group commit appends with a `write` chained to an
//! `fdatasync` (`IO::chain`). The format and the recovery rules are in
//! `wal.rs`.
//!
//! # Group commit
//!
//! Commands append their records to one *pending* group. When the log is
//! idle, the pending group is *cut*: written as one group at the end of the
//! file and, under `--fsync always`, fdatasynced, the write and the sync
//! linked so that the sync starts in the kernel as soon as the write is
//! done; writes that arrive meanwhile gather in the next pending group and
//! share the next sync. One write or sync is in flight at a time, so group
//! N+1 is written only after group N is durable: only the last group can be
//! torn by a crash.
//!
//! # When a group is cut
//!
//! Never in the middle of a loop pass: the cut waits for the end of the
//! pass (a zero-delay timer), so that the commands of every completion the
//! pass reaped join the group, as Redis's join the AOF buffer it writes
//! before it sleeps.
//!
//! Under `always`, it may wait a little longer, for the *cohort*: the
//! records of the group just acknowledged plus those that had gathered
//! behind it. Their clients were waiting on the log, and most send their
//! next write within microseconds of their reply. Cut before they are back,
//! the group holds only those that had gathered, and the clients settle
//! into two cohorts that take turns, each waiting a whole sync for the
//! other's: half the records per sync, at the same one sync in flight. So
//! the cut waits until the pending group holds as many records as the
//! cohort, or for a quarter of a group's write and sync (averaged, at most
//! 1 ms) if they never come: at worst, a group's latency grows by that
//! quarter. A lone client's cohort is its one record, so it never waits.
//! Measured in docs/benchmarks.md ("Group commit: when a group is cut").
//!
//! A group is *acknowledged* (its replies may go out) once its fsync
//! completes under `always`, or once its write completes under `everysec`
//! and `no`: then a killed process loses nothing acknowledged, and a
//! machine crash loses at most about a second (`everysec`) or what the
//! kernel had not written back (`no`).
//!
//! # Compaction
//!
//! When the log reaches `--compact-bytes` and a quarter of the last
//! snapshot's size (or BGREWRITEAOF asks), the log is compacted, with appends paused
//! (commands still run and gather in the pending group; their replies
//! wait, as for any group):
//!
//! 1. The whole keyspace (the pending group's effects included: that group
//!    is *folded* into the snapshot and never written to the log) is
//!    encoded as records that recreate it (wal.rs, "Snapshots"), through
//!    sequence `S`.
//! 2. It is written to `<log>.snapshot.tmp` (created or truncated), which
//!    is fsynced.
//! 3. It is renamed over `<log>.snapshot`, and the directory is fsynced:
//!    from here on the new snapshot is what a crash finds.
//! 4. The log is cut to 0 bytes and fsynced; groups continue from `S + 1`.
//! 5. Replies waiting on groups up to `S` go out.
//!
//! A crash before 3's directory fsync completes finds the old snapshot
//! (or none) and the whole old log (not yet cut): nothing is lost, and
//! nothing acknowledged depended on the new snapshot (step 5 comes last). A
//! crash after it finds the new snapshot, and a log that is either the old
//! one (the cut not durable: its groups, all `<= S`, are skipped) or cut
//! and holding only groups after `S`. The temporary file a crash leaves is
//! truncated by the next compaction.
//!
//! # The restart bound
//!
//! A restart reads the snapshot (`S` bytes, the live data as of the last
//! compaction) and the log, which the trigger keeps below
//! `max(S / 4, --compact-bytes)` plus what gathers while one compaction
//! runs. So once the snapshot passes four times `--compact-bytes`, a
//! restart reads at most about `1.25 S`, and takes at most twice one read
//! of the live data (a restart right after a compaction) as long as a log
//! byte costs less than four snapshot bytes to replay (random overwrites
//! cost about 2.2: the snapshot inserts in key order, the log in any).
//! docs/architecture.md argues it and docs/benchmarks.md measures it
//! (`benches/scripts/kv_restart.sh`). Recovery logs its time and the bytes
//! it read.
//!
//! A failed write or fsync stops the server ([`Server::fail`]): after an
//! fsync error the kernel may have dropped the dirty pages, so a retry could
//! report success for data that is gone.

use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use ringio::{FileOptions, Handle, RenameFlags, IO};

use crate::commands;
use crate::server::{log, Server};
use crate::store::{self, Store, Value};
use crate::wal::{self, Outcome, Record};

/// Bytes each recovery read asks for.
const RECOVERY_READ_BYTES: usize = 1024 * 1024;
/// Times recovery reads a bad part of a file again before it believes it.
const REREADS_MAX: u32 = 4;
/// How often `everysec` fsyncs.
const EVERYSEC_NS: u64 = 1_000_000_000;

/// When the log is fsynced (`--fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every group, before its replies are sent (Redis's
    /// `appendfsync always`).
    Always,
    /// About once a second (`appendfsync everysec`).
    EverySec,
    /// Never; the kernel writes back when it likes (`appendfsync no`).
    No,
}

impl FsyncPolicy {
    /// The name, as `--fsync` and Redis's `appendfsync` spell it.
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<FsyncPolicy, String> {
        match text {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::EverySec),
            "no" => Ok(FsyncPolicy::No),
            _ => Err(format!("bad fsync policy {text:?}: always, everysec or no")),
        }
    }
}

/// A planted log bug, for the simulator (`kv_sim --bug ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogBug {
    /// `rename-without-dir-fsync`: cut the log after renaming the snapshot
    /// without fsyncing the directory, so a crash can undo the rename.
    RenameWithoutDirFsync,
    /// `snapshot-without-fsync`: rename the snapshot without fsyncing it.
    SnapshotWithoutFsync,
    /// `torn-tail-not-cut`: recovery finds a torn tail but does not cut
    /// it, and takes the log's length from the file's size (what `statx`
    /// says, the torn bytes included) rather than from the end of the last
    /// valid group. New groups then land after the garbage, where the next
    /// recovery, stopping at the garbage, never reaches them.
    TornTailNotCut,
}

/// Bytes of records per snapshot group.
const SNAPSHOT_GROUP_BYTES: usize = 1024 * 1024;
/// Elements per snapshot command (HSET, RPUSH, SADD, ZADD).
const SNAPSHOT_CHUNK: usize = 512;

/// Under `always`, the longest the cut of a group waits for its cohort, as
/// a share of a group's write and fdatasync: at worst a group's latency
/// grows by this share, when the cohort never comes back.
const CUT_WAIT_SHARE: u64 = 4;
/// The cap on that wait.
const CUT_WAIT_MAX_NS: u64 = 1_000_000;

/// What decides when the pending group is cut (module docs, "When a group
/// is cut").
#[derive(Debug, Default, Clone, Copy)]
struct Cut {
    /// Counts cuts: a timer armed for an earlier group does nothing.
    epoch: u64,
    /// The records of the group in flight.
    group_records: u32,
    /// When the group in flight was cut (`IO::now_ns`).
    started_ns: u64,
    /// A group's write and fdatasync, in ns, averaged (1/8 the newest).
    group_ns: u64,
    /// The records the next group waits for: the last group's and those
    /// that had gathered behind it by its acknowledgement.
    cohort_records: u32,
    /// A timer to cut at the end of the pass is armed.
    soon_armed: bool,
    /// A timer to cut when the wait for the cohort ends is armed.
    wait_armed: bool,
}

impl Cut {
    /// The group in flight is durable; `pending` records wait behind it.
    fn learn(&mut self, now_ns: u64, pending: u32) {
        let sample_ns = now_ns.saturating_sub(self.started_ns);
        self.group_ns = if self.group_ns == 0 {
            sample_ns
        } else {
            self.group_ns - self.group_ns / 8 + sample_ns / 8
        };
        self.cohort_records = self.group_records.saturating_add(pending);
    }

    fn wait_ns(&self) -> u64 {
        (self.group_ns / CUT_WAIT_SHARE).min(CUT_WAIT_MAX_NS)
    }
}

/// The log's state.
#[derive(Debug)]
pub struct Journal {
    /// The snapshot's path: the log's, with `.snapshot` added.
    snapshot_path: PathBuf,
    /// Where a snapshot is written before it is renamed.
    snapshot_tmp_path: PathBuf,
    /// The log's directory, open to be fsynced.
    directory: Handle,
    /// Compact once the log has this many bytes (and a quarter of the
    /// snapshot's); 0: never.
    pub compact_bytes: u64,
    /// The planted log bug, if any (never in production).
    pub log_bug: Option<LogBug>,
    /// The last snapshot's size in bytes (0: none).
    snapshot_bytes: u64,
    /// The last log group the snapshot covers (0: none).
    snapshot_through: u64,
    /// Compactions done since start.
    pub compactions: u64,
    fd: Handle,
    path: PathBuf,
    policy: FsyncPolicy,
    /// The records of the next group.
    pending: Vec<u8>,
    pending_records: u32,
    /// The sequence the pending group will get.
    next_sequence: u64,
    /// Where the next group goes: the length of the log.
    file_len: u64,
    /// The last group whose write completed.
    written_sequence: u64,
    /// The last group whose fsync completed.
    synced_sequence: u64,
    /// A write or fsync is in flight.
    busy: bool,
    /// `everysec`: the timer fired, so fsync before the next write.
    sync_due: bool,
    /// When the pending group is cut.
    cut: Cut,
    /// The buffer groups are built in, while no write is in flight.
    spare: Option<Vec<u8>>,
    /// `--appendonly`: false makes every append a no-op and the log idle.
    pub enabled: bool,
    /// SHUTDOWN: write the pending group at once, fsync whatever the
    /// policy, and start no compaction; [`Journal::settled`] says when
    /// done.
    pub draining: bool,
    /// Recovery: the log read so far.
    recovered: Vec<u8>,
    /// Recovery: re-reads of the file being read, and the bytes the last
    /// read gave from the offset where it went bad.
    rereads: u32,
    previous_tail: Option<(usize, Vec<u8>)>,
    /// Recovery: when it started (`IO::now_ns`).
    recovery_started_ns: u64,
    /// Recovery: bytes read from the snapshot and from the log.
    recovery_snapshot_bytes: u64,
    recovery_log_bytes: u64,
    /// The planted bug of [`ServerConfig::ack_before_fsync`].
    ///
    /// [`ServerConfig::ack_before_fsync`]: crate::server::ServerConfig::ack_before_fsync
    pub ack_before_fsync: bool,
}

impl Journal {
    /// Opens (creating if needed) the log at `path`.
    ///
    /// # Errors
    ///
    /// What opening the file returns.
    pub fn open(io: &mut IO<Server>, path: PathBuf, policy: FsyncPolicy) -> io::Result<Journal> {
        let fd = io.open_file(&path, FileOptions::new().create(true))?;
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let directory = io.open_file(&directory, FileOptions::new().read(true).write(false))?;
        let with_suffix = |suffix: &str| {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        Ok(Journal {
            snapshot_path: with_suffix(".snapshot"),
            snapshot_tmp_path: with_suffix(".snapshot.tmp"),
            directory,
            compact_bytes: 0,
            log_bug: None,
            snapshot_bytes: 0,
            snapshot_through: 0,
            compactions: 0,
            fd,
            path,
            policy,
            pending: Vec::new(),
            pending_records: 0,
            next_sequence: 1,
            file_len: 0,
            written_sequence: 0,
            synced_sequence: 0,
            busy: false,
            sync_due: false,
            cut: Cut::default(),
            spare: Some(Vec::new()),
            enabled: true,
            draining: false,
            recovered: Vec::new(),
            rereads: 0,
            previous_tail: None,
            recovery_started_ns: 0,
            recovery_snapshot_bytes: 0,
            recovery_log_bytes: 0,
            ack_before_fsync: false,
        })
    }

    /// Adds a record to the pending group. Call [`flush`] once the
    /// commands at hand have run.
    pub fn append(&mut self, record: &Record<'_>) {
        if !self.enabled {
            return;
        }
        wal::encode(&mut self.pending, record);
        self.pending_records += 1;
    }

    /// Adds a [`Record::Command`] of `parts` to the pending group.
    pub fn append_command(&mut self, parts: &[&[u8]]) {
        if !self.enabled {
            return;
        }
        wal::encode_command(&mut self.pending, parts);
        self.pending_records += 1;
    }

    /// Bytes in the pending group.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// The sequence of the group holding the newest record: a reply that
    /// may depend on it waits until this is acknowledged.
    pub fn last_appended_sequence(&self) -> u64 {
        if self.pending_records > 0 {
            self.next_sequence
        } else {
            self.next_sequence - 1
        }
    }

    /// The last group whose replies may go out (see the module docs).
    pub fn acknowledged_sequence(&self) -> u64 {
        match self.policy {
            FsyncPolicy::Always if !self.ack_before_fsync => self.synced_sequence,
            FsyncPolicy::Always | FsyncPolicy::EverySec | FsyncPolicy::No => self.written_sequence,
        }
    }

    /// The snapshot's path.
    pub fn snapshot_path(&self) -> PathBuf {
        self.snapshot_path.clone()
    }

    /// The log file.
    pub fn fd(&self) -> Handle {
        self.fd
    }

    /// Whether every record appended is written and fsynced, with nothing
    /// in flight (always, with the log off).
    pub fn settled(&self) -> bool {
        !self.enabled
            || (!self.busy
                && self.pending_records == 0
                && self.synced_sequence >= self.written_sequence)
    }
}

/// Starts recovery: reads the snapshot (if there is one) and replays it,
/// then reads all of the log open on `fd` and replays the groups after the
/// snapshot ([`Server::on_recovered`] when done).
pub fn recover(io: &mut IO<Server>, fd: Handle, snapshot_path: PathBuf) {
    let now_ns = io.now_ns();
    io.openat(
        snapshot_path,
        FileOptions::new().read(true).write(false),
        move |io, server, result| {
            server.journal.recovery_started_ns = now_ns;
            match result {
                Ok(snapshot) => read_file(io, snapshot, true, 0),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    read_file(io, fd, false, 0)
                }
                Err(error) => {
                    let path = server.journal.snapshot_path.display().to_string();
                    server.fail(format!("opening the snapshot {path}: {error}"));
                }
            }
        },
    );
}

fn read_file(io: &mut IO<Server>, fd: Handle, snapshot: bool, offset: u64) {
    let buf = Vec::with_capacity(RECOVERY_READ_BYTES);
    io.read(fd, buf, offset, move |io, server, result, buf| {
        on_recover_read(io, server, fd, snapshot, offset, result, buf)
    });
}

fn on_recover_read(
    io: &mut IO<Server>,
    server: &mut Server,
    fd: Handle,
    snapshot: bool,
    offset: u64,
    result: io::Result<usize>,
    buf: Vec<u8>,
) {
    match result {
        Ok(0) => finish_read(io, server, fd, snapshot),
        Ok(count) => {
            let journal = &mut server.journal;
            journal.recovered.extend_from_slice(&buf);
            if snapshot {
                journal.recovery_snapshot_bytes += count as u64;
            } else {
                journal.recovery_log_bytes += count as u64;
            }
            read_file(io, fd, snapshot, offset + count as u64);
        }
        Err(error) => {
            let journal = &server.journal;
            let path = if snapshot {
                &journal.snapshot_path
            } else {
                &journal.path
            };
            let path = path.display().to_string();
            server.fail(format!("reading {path} at offset {offset}: {error}"));
        }
    }
}

/// A whole file is read: checks it without applying anything, and reads
/// again from where it went bad unless two reads agree there. A read can be
/// corrupted or misdirected on its way back from the disk, leaving the
/// medium intact (docs/simulation.md): believing the first read would cut
/// good groups as a torn tail, or refuse to start over a good snapshot.
fn finish_read(io: &mut IO<Server>, server: &mut Server, fd: Handle, snapshot: bool) {
    let journal = &mut server.journal;
    if let Some(from) = reread_from(journal, snapshot) {
        journal.rereads += 1;
        let path = if snapshot {
            &journal.snapshot_path
        } else {
            &journal.path
        };
        log(format_args!(
            "{}: bad data at offset {from}; reading it again ({} of {REREADS_MAX})",
            path.display(),
            journal.rereads
        ));
        let tail = journal.recovered.split_off(from);
        journal.previous_tail = Some((from, tail));
        read_file(io, fd, snapshot, from as u64);
        return;
    }
    journal.rereads = 0;
    journal.previous_tail = None;
    if snapshot {
        io.close(fd, |_io, _server, _result| {});
        replay_snapshot(io, server);
    } else {
        replay(io, server);
    }
}

/// Where the file read back goes bad, if it should be read again from
/// there: not when it is good, nor when the last read gave the same bytes
/// from the same offset, nor after `REREADS_MAX` re-reads.
fn reread_from(journal: &Journal, snapshot: bool) -> Option<usize> {
    let data = &journal.recovered;
    let bad = if snapshot {
        // A snapshot has no torn tail to locate: read it all again.
        wal::recover_snapshot(data, |_| {}).err().map(|_| 0)
    } else {
        match wal::recover(data, journal.snapshot_through, |_| {}) {
            Outcome::Clean { .. } | Outcome::OldFormat => None,
            Outcome::TornTail { offset, .. } | Outcome::Corrupt { offset, .. } => {
                Some(offset as usize)
            }
        }
    }?;
    let agrees = matches!(
        &journal.previous_tail,
        Some((from, tail)) if *from == bad && data.get(bad..) == Some(&tail[..])
    );
    (!agrees && journal.rereads < REREADS_MAX).then_some(bad)
}

/// Applies the snapshot read back to the store, then reads the log.
fn replay_snapshot(io: &mut IO<Server>, server: &mut Server) {
    let data = std::mem::take(&mut server.journal.recovered);
    let Server { store, shared, .. } = server;
    let mut records: u64 = 0;
    let mut failure = None;
    store.set_loading(true);
    let outcome = wal::recover_snapshot(&data, |record| {
        records += 1;
        if failure.is_none() {
            failure = apply_record(store, shared, record)
                .err()
                .map(|reason| format!("record {records}: {reason}"));
        }
    });
    store.set_loading(false);
    let path = server.journal.snapshot_path.display().to_string();
    let through = match (outcome, failure) {
        (Ok(through), None) => through,
        (Err(reason), _) | (Ok(_), Some(reason)) => {
            // It was fsynced before it was renamed: damage is corruption.
            server.fail(format!(
                "snapshot {path} is corrupt: {reason}; refusing to start"
            ));
            return;
        }
    };
    log(format_args!(
        "snapshot {path}: {records} records through group {through}, {} keys",
        server.store.len()
    ));
    let journal = &mut server.journal;
    journal.snapshot_through = through;
    journal.snapshot_bytes = data.len() as u64;
    let fd = journal.fd;
    read_file(io, fd, false, 0);
}

/// Applies the log read back to the store, and settles its end.
fn replay(io: &mut IO<Server>, server: &mut Server) {
    let data = std::mem::take(&mut server.journal.recovered);
    let fresh = data.is_empty() && server.journal.snapshot_through == 0;
    let mut records: u64 = 0;
    let mut failure = None;
    let after = server.journal.snapshot_through;
    let Server { store, shared, .. } = server;
    store.set_loading(true);
    let outcome = wal::recover(&data, after, |record| {
        records += 1;
        if failure.is_none() {
            let applied = apply_record(store, shared, record);
            failure = applied
                .err()
                .map(|reason| format!("record {records}: {reason}"));
        }
    });
    store.set_loading(false);
    if let Some(reason) = failure {
        // A record that passed its checksum but cannot be replayed: as for
        // corruption, start with nothing rather than with part of the log.
        let path = server.journal.path.display().to_string();
        server.fail(format!(
            "log {path}: a logged command did not replay ({reason}); refusing to start"
        ));
        return;
    }
    // Deadlines are wall-clock times, so they mean the same after a reboot.
    // Keys whose deadline passed while the server was down go now, each
    // logged as a DEL (written with the first group), so that no later
    // record can be replayed onto them.
    store.set_now_ms(store::realtime_ms(io));
    while store.active_expire(usize::MAX) > 0 {}
    for key in store.take_expired() {
        server.journal.append(&Record::Del { key: &key });
    }
    let Some(last_sequence) = settle_end(io, server, outcome) else {
        return;
    };
    let journal = &mut server.journal;
    let path = journal.path.display().to_string();
    journal.next_sequence = last_sequence + 1;
    journal.written_sequence = last_sequence;
    log(format_args!(
        "log {path}: replayed {records} records in {last_sequence} groups, {} keys",
        server.store.len()
    ));
    // Make what was read back (and any truncation) durable before anything
    // depends on it: the previous run may have used --fsync no.
    let fd = journal.fd;
    io.fsync(fd, move |io, server, result| {
        if let Err(error) = result {
            let path = server.journal.path.display().to_string();
            server.fail(format!("fsync of the log {path} after recovery: {error}"));
            return;
        }
        server.journal.synced_sequence = last_sequence;
        if fresh {
            sync_directory(io, server);
        } else {
            start_serving(io, server);
        }
    });
}

/// Replays one record onto the store (expiry is off while replaying).
fn apply_record(
    store: &mut crate::store::Store,
    shared: &mut commands::Shared,
    record: Record<'_>,
) -> Result<(), String> {
    match record {
        Record::Set {
            key,
            value,
            deadline_ms,
        } => store.set(key, value.to_vec(), deadline_ms),
        Record::Del { key } => {
            store.remove(key);
        }
        Record::FlushAll => store.clear(),
        Record::Command { args } => commands::replay(store, shared, &args)?,
        Record::SnapshotEnd { .. } => return Err("a snapshot's end record in the log".into()),
    }
    Ok(())
}

/// Acts on how the log ended: sets its length, truncating a torn tail, or
/// fails on corruption. Returns the last valid group's sequence.
fn settle_end(io: &mut IO<Server>, server: &mut Server, outcome: Outcome) -> Option<u64> {
    let journal = &mut server.journal;
    let path = journal.path.display().to_string();
    match outcome {
        Outcome::Clean { end, last_sequence } => {
            journal.file_len = end;
            Some(last_sequence)
        }
        Outcome::TornTail {
            offset,
            reason,
            last_sequence,
            discarded_bytes,
            discarded_groups,
        } => {
            log(format_args!(
                "log {path}: torn tail at offset {offset} ({reason}): truncating \
                 {discarded_bytes} bytes, with {discarded_groups} later unsynced groups"
            ));
            if journal.log_bug == Some(LogBug::TornTailNotCut) {
                // The planted bug: append at the file's size, past the tail.
                journal.file_len = offset + discarded_bytes;
                return Some(last_sequence);
            }
            if let Err(error) = io.set_len(journal.fd, offset) {
                server.fail(format!("truncating the log {path} to {offset}: {error}"));
                return None;
            }
            journal.file_len = offset;
            Some(last_sequence)
        }
        Outcome::OldFormat => {
            server.fail(format!(
                "log {path} was written by an older kv_server (format RKV1, whose expiry \
                 times count from a boot that is gone and cannot be converted); refusing \
                 to start: move it away to start with an empty store"
            ));
            None
        }
        Outcome::Corrupt { offset, reason } => {
            server.fail(format!(
                "log {path} is corrupt at offset {offset}: {reason}; refusing to start"
            ));
            None
        }
    }
}

/// A new log's directory entry is durable only once its directory is
/// fsynced: without it a machine crash could lose the whole file.
fn sync_directory(io: &mut IO<Server>, server: &mut Server) {
    let journal = &server.journal;
    let directory = match journal.path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let options = FileOptions::new().read(true).write(false);
    let fd = match io.open_file(&directory, options) {
        Ok(fd) => fd,
        Err(error) => {
            let path = directory.display();
            server.fail(format!(
                "opening the log's directory {path} to fsync it: {error}"
            ));
            return;
        }
    };
    io.fsync(fd, move |io, server, result| {
        io.close(fd, |_io, _server, _result| {});
        if let Err(error) = result {
            server.fail(format!("fsync of the log's directory: {error}"));
            return;
        }
        start_serving(io, server);
    });
}

fn start_serving(io: &mut IO<Server>, server: &mut Server) {
    let journal = &server.journal;
    let elapsed_ns = io.now_ns().saturating_sub(journal.recovery_started_ns);
    log(format_args!(
        "recovered in {}.{:03} ms: read {} snapshot bytes and {} log bytes, {} keys",
        elapsed_ns / 1_000_000,
        elapsed_ns / 1_000 % 1_000,
        journal.recovery_snapshot_bytes,
        journal.recovery_log_bytes,
        server.store.len()
    ));
    if server.journal.policy == FsyncPolicy::EverySec {
        everysec_tick(io);
    }
    Server::on_recovered(io, server);
}

/// Writes the pending group, or fsyncs under `everysec`, if the log is
/// idle; see the module docs, "When a group is cut", for when.
pub fn flush(io: &mut IO<Server>, server: &mut Server) {
    flush_when(io, server, false);
}

/// [`flush`]; `cut_due`: called from the timer that `flush` arms, once
/// the pass's completions have run or the wait for the cohort is over.
fn flush_when(io: &mut IO<Server>, server: &mut Server, cut_due: bool) {
    if server.fatal().is_some() || !server.ready() {
        return;
    }
    if !server.journal.enabled {
        // BGREWRITEAOF has no log to rewrite.
        server.shared.rewrite_requested = false;
        return;
    }
    let journal = &mut server.journal;
    if journal.busy {
        return;
    }
    let mut cut_due = cut_due;
    if journal.draining {
        // SHUTDOWN: what is written is fsynced first, then what is
        // pending is written at once (and fsynced by the next pass).
        journal.sync_due = journal.written_sequence > journal.synced_sequence;
        cut_due = true;
    }
    if journal.sync_due && journal.written_sequence > journal.synced_sequence {
        journal.sync_due = false;
        sync(io, server);
        return;
    }
    journal.sync_due = false;
    if !journal.draining && (journal.compact_due() || server.shared.rewrite_requested) {
        server.shared.rewrite_requested = false;
        server.shared.rewrite_in_progress = true;
        return compact(io, server);
    }
    if journal.pending_records == 0 {
        return;
    }
    if !cut_due {
        return arm_cut(io, journal);
    }
    let sequence = journal.next_sequence;
    let mut buf = journal.spare.take().expect("no write in flight");
    wal::encode_group(
        &mut buf,
        sequence,
        journal.synced_sequence,
        journal.pending_records,
        &journal.pending,
    );
    journal.cut = Cut {
        epoch: journal.cut.epoch + 1,
        group_records: journal.pending_records,
        started_ns: io.now_ns(),
        soon_armed: false, // Timers armed for this group do nothing now.
        wait_armed: false,
        ..journal.cut
    };
    journal.pending.clear();
    journal.pending_records = 0;
    journal.next_sequence += 1;
    journal.busy = true;
    write_group(io, journal, sequence, buf);
    Server::on_pending_taken(io, server);
}

/// Writes `buf` at the end of the log. Under `always` the write is chained
/// to the fdatasync that makes it durable, so the sync starts in the kernel
/// the moment the write is done, not a loop pass later (when the write's
/// callback would have submitted it); a failed or short write cancels it.
/// fdatasync, as Redis's `appendfsync always` uses: the log only grows, and
/// a size change is data to fdatasync.
fn write_group(io: &mut IO<Server>, journal: &Journal, sequence: u64, buf: Vec<u8>) {
    let (fd, offset) = (journal.fd, journal.file_len);
    let write = move |io: &mut IO<Server>, buf| {
        io.write(fd, buf, offset, move |io, server, result, buf| {
            on_write(io, server, sequence, result, buf)
        });
    };
    if journal.policy != FsyncPolicy::Always {
        return write(io, buf);
    }
    io.chain(|io| {
        write(io, buf);
        io.fdatasync(fd, move |io, server, result| {
            on_sync(io, server, sequence, result)
        });
    });
}

fn on_write(
    io: &mut IO<Server>,
    server: &mut Server,
    sequence: u64,
    result: io::Result<usize>,
    mut buf: Vec<u8>,
) {
    if server.fatal().is_some() {
        return;
    }
    let journal = &mut server.journal;
    let written = match result {
        Ok(written) => written,
        Err(error) => {
            let path = journal.path.display().to_string();
            let offset = journal.file_len;
            server.fail(format!(
                "writing the log {path} at offset {offset}: {error}"
            ));
            return;
        }
    };
    journal.file_len += written as u64;
    if written < buf.len() {
        // Under `always`, the chained fdatasync is cancelled: the rest goes
        // with a new one.
        buf.drain(..written);
        write_group(io, journal, sequence, buf);
        return;
    }
    buf.clear();
    journal.spare = Some(buf);
    journal.written_sequence = sequence;
    if journal.policy == FsyncPolicy::Always {
        if journal.ack_before_fsync {
            Server::on_acknowledged(io, server); // The planted bug.
        }
        // The chained fdatasync is on its way.
    } else {
        journal.busy = false;
        Server::on_acknowledged(io, server);
        flush(io, server);
    }
}

/// Fsyncs everything written so far (`everysec`).
fn sync(io: &mut IO<Server>, server: &mut Server) {
    let journal = &mut server.journal;
    journal.busy = true;
    let sequence = journal.written_sequence;
    io.fsync(journal.fd, move |io, server, result| {
        on_sync(io, server, sequence, result)
    });
}

/// The fsync or fdatasync covering groups up to `sequence` completed.
fn on_sync(io: &mut IO<Server>, server: &mut Server, sequence: u64, result: io::Result<()>) {
    if server.fatal().is_some() {
        return;
    }
    let journal = &mut server.journal;
    if journal.written_sequence < sequence {
        // Cancelled behind a short write (a failed one stopped the server
        // above): the write's callback chained the rest to another sync.
        debug_assert!(result.is_err());
        return;
    }
    if let Err(error) = result {
        let path = journal.path.display().to_string();
        server.fail(format!(
            "fsync of the log {path} failed: {error}; stopping, since the data may be lost"
        ));
        return;
    }
    journal.busy = false;
    journal.synced_sequence = sequence;
    if journal.policy == FsyncPolicy::Always {
        journal.cut.learn(io.now_ns(), journal.pending_records);
    }
    Server::on_acknowledged(io, server);
    flush(io, server);
}

/// Arms the timer that cuts the pending group: at the end of this pass, or
/// later while the cohort is still coming back.
fn arm_cut(io: &mut IO<Server>, journal: &mut Journal) {
    let full = journal.pending_bytes() >= crate::server::WAL_PENDING_LIMIT_BYTES;
    let back = journal.pending_records >= journal.cut.cohort_records;
    let soon = journal.policy != FsyncPolicy::Always || full || back;
    let wait_ns = if soon { 0 } else { journal.cut.wait_ns() };
    let cut = &mut journal.cut;
    let armed = if soon {
        &mut cut.soon_armed
    } else {
        &mut cut.wait_armed
    };
    if *armed {
        return;
    }
    *armed = true;
    let epoch = cut.epoch;
    io.timeout(wait_ns, move |io, server, _expired| {
        let cut = &mut server.journal.cut;
        if cut.epoch != epoch {
            return; // That group was cut already.
        }
        if soon {
            cut.soon_armed = false;
        } else {
            cut.wait_armed = false;
        }
        flush_when(io, server, true);
    });
}

/// `everysec`: asks for an fsync once a second, for as long as the server runs.
fn everysec_tick(io: &mut IO<Server>) {
    io.timeout(EVERYSEC_NS, |io, server, _expired| {
        if server.fatal().is_some() {
            return;
        }
        server.journal.sync_due = true;
        flush(io, server);
        everysec_tick(io);
    });
}

impl Journal {
    /// Whether the log has grown enough to compact (see the module docs):
    /// to `--compact-bytes`, and to a quarter of the last snapshot's size,
    /// so that a restart reads at most about 1.25 times the live data.
    fn compact_due(&self) -> bool {
        self.compact_bytes > 0
            && self.file_len >= self.compact_bytes
            && 4 * self.file_len >= self.snapshot_bytes
    }
}

/// Builds a snapshot file: groups of records that recreate the store.
struct SnapshotWriter {
    out: Vec<u8>,
    body: Vec<u8>,
    records: u32,
    sequence: u64,
    group: Vec<u8>,
}

impl SnapshotWriter {
    fn record(&mut self, record: &Record<'_>) {
        wal::encode(&mut self.body, record);
        self.records += 1;
        self.cut(false);
    }

    fn command<A: AsRef<[u8]>>(&mut self, parts: &[A]) {
        wal::encode_command(&mut self.body, parts);
        self.records += 1;
        self.cut(false);
    }

    /// Ends the group once it is big enough (or `now`).
    fn cut(&mut self, now: bool) {
        if self.records == 0 || (!now && self.body.len() < SNAPSHOT_GROUP_BYTES) {
            return;
        }
        wal::encode_group(&mut self.group, self.sequence, 0, self.records, &self.body);
        self.out.extend_from_slice(&self.group);
        self.sequence += 1;
        self.body.clear();
        self.records = 0;
    }
}

/// Encodes the whole store as a snapshot through log group `through`.
pub fn encode_snapshot(store: &Store, through: u64) -> Vec<u8> {
    let mut writer = SnapshotWriter {
        out: Vec::new(),
        body: Vec::new(),
        records: 0,
        sequence: 1,
        group: Vec::new(),
    };
    for (key, entry) in store.entries().iter() {
        let key = key.bytes();
        match &entry.value {
            Value::String(value, _) => {
                writer.record(&Record::Set {
                    key,
                    value,
                    deadline_ms: entry.deadline_ms,
                });
                continue;
            }
            Value::Hash(hash) => {
                let fields: Vec<(&[u8], &[u8])> = hash
                    .iter()
                    .map(|(field, value)| (field.bytes(), value.as_slice()))
                    .collect();
                for chunk in fields.chunks(SNAPSHOT_CHUNK) {
                    let mut parts: Vec<&[u8]> = vec![b"HSET", key];
                    for (field, value) in chunk {
                        parts.push(field);
                        parts.push(value);
                    }
                    writer.command(&parts);
                }
            }
            Value::List(list) => {
                let elements: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
                for chunk in elements.chunks(SNAPSHOT_CHUNK) {
                    let mut parts: Vec<&[u8]> = vec![b"RPUSH", key];
                    parts.extend_from_slice(chunk);
                    writer.command(&parts);
                }
            }
            Value::Set(set) => {
                let members: Vec<&[u8]> = set.iter().map(|(member, ())| member.bytes()).collect();
                for chunk in members.chunks(SNAPSHOT_CHUNK) {
                    let mut parts: Vec<&[u8]> = vec![b"SADD", key];
                    parts.extend_from_slice(chunk);
                    writer.command(&parts);
                }
            }
            Value::ZSet(zset) => {
                let members: Vec<(&[u8], f64)> = zset.iter().collect();
                for chunk in members.chunks(SNAPSHOT_CHUNK) {
                    let mut parts: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), key.to_vec()];
                    for (member, score) in chunk {
                        // Rust prints the shortest text that parses back to
                        // the same f64 ("inf" and "-inf" included).
                        parts.push(format!("{score}").into_bytes());
                        parts.push(member.to_vec());
                    }
                    writer.command(&parts);
                }
            }
        }
        if entry.deadline_ms != 0 {
            let deadline = entry.deadline_ms.to_string();
            writer.command(&[b"PEXPIREAT".as_slice(), key, deadline.as_bytes()]);
        }
    }
    writer.record(&Record::SnapshotEnd { through });
    writer.cut(true);
    writer.out
}

/// Starts a compaction (see the module docs): the log is idle.
fn compact(io: &mut IO<Server>, server: &mut Server) {
    let journal = &mut server.journal;
    debug_assert!(!journal.busy);
    // The pending group is folded into the snapshot.
    let through = if journal.pending_records > 0 {
        journal.pending.clear();
        journal.pending_records = 0;
        journal.next_sequence += 1;
        journal.next_sequence - 1
    } else {
        journal.next_sequence - 1
    };
    journal.busy = true;
    let data = encode_snapshot(&server.store, through);
    let path = server.journal.snapshot_tmp_path.clone();
    let options = FileOptions::new().create(true).truncate(true);
    io.openat(path, options, move |io, server, result| match result {
        Ok(file) => write_snapshot(io, file, through, data, 0),
        Err(error) => {
            let path = server.journal.snapshot_tmp_path.display().to_string();
            server.fail(format!("creating the snapshot {path}: {error}"));
        }
    });
    Server::on_pending_taken(io, server);
}

fn write_snapshot(io: &mut IO<Server>, file: Handle, through: u64, data: Vec<u8>, offset: u64) {
    let total = data.len() as u64;
    let rest = data[offset as usize..].to_vec();
    io.write(file, rest, offset, move |io, server, result, _rest| {
        if server.fatal().is_some() {
            return;
        }
        let written = match result {
            Ok(written) if written > 0 => written as u64,
            Ok(_) => return server.fail("writing the snapshot: no progress".to_string()),
            Err(error) => return server.fail(format!("writing the snapshot: {error}")),
        };
        if offset + written < total {
            return write_snapshot(io, file, through, data, offset + written);
        }
        if server.journal.log_bug == Some(LogBug::SnapshotWithoutFsync) {
            return rename_snapshot(io, server, file, through, total); // The planted bug.
        }
        io.fsync(file, move |io, server, result| {
            if let Err(error) = result {
                return server.fail(format!("fsync of the snapshot: {error}"));
            }
            rename_snapshot(io, server, file, through, total);
        });
    });
}

fn rename_snapshot(
    io: &mut IO<Server>,
    server: &mut Server,
    file: Handle,
    through: u64,
    bytes: u64,
) {
    io.close(file, |_io, _server, _result| {});
    let journal = &server.journal;
    let (from, to) = (
        journal.snapshot_tmp_path.clone(),
        journal.snapshot_path.clone(),
    );
    io.renameat(from, to, RenameFlags::REPLACE, move |io, server, result| {
        if let Err(error) = result {
            return server.fail(format!("renaming the snapshot into place: {error}"));
        }
        if server.journal.log_bug == Some(LogBug::RenameWithoutDirFsync) {
            return cut_log(io, server, through, bytes); // The planted bug.
        }
        let directory = server.journal.directory;
        io.fsync(directory, move |io, server, result| {
            if let Err(error) = result {
                return server.fail(format!("fsync of the log's directory: {error}"));
            }
            cut_log(io, server, through, bytes);
        });
    });
}

/// The new snapshot is durable: cut the log to nothing and fsync the cut.
fn cut_log(io: &mut IO<Server>, server: &mut Server, through: u64, bytes: u64) {
    let fd = server.journal.fd;
    io.ftruncate(fd, 0, move |io, server, result| {
        if let Err(error) = result {
            return server.fail(format!("cutting the log after a snapshot: {error}"));
        }
        io.fsync(fd, move |io, server, result| {
            if let Err(error) = result {
                return server.fail(format!("fsync of the cut log: {error}"));
            }
            let journal = &mut server.journal;
            let old_len = journal.file_len;
            journal.file_len = 0;
            journal.snapshot_bytes = bytes;
            journal.snapshot_through = through;
            journal.written_sequence = through;
            journal.synced_sequence = through;
            journal.compactions += 1;
            journal.busy = false;
            server.shared.rewrite_in_progress = false;
            let path = journal.snapshot_path.display().to_string();
            log(format_args!(
                "compacted: snapshot {path} of {bytes} bytes through group {through}, \
                 {} keys; log cut from {old_len} bytes",
                server.store.len()
            ));
            Server::on_acknowledged(io, server);
            flush(io, server);
        });
    });
}
