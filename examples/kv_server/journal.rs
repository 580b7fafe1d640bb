//! The write-ahead log's I/O, all through ringio: recovery reads the log
//! back with `read`, and group commit appends with `write` then `fsync`.
//! The format and the recovery rules are in `wal.rs`.
//!
//! # Group commit
//!
//! Commands append their records to one *pending* group. When the log is
//! idle, the pending group is written as one group at the end of the file
//! and, under `--fsync always`, fsynced; writes that arrive meanwhile gather
//! in the next pending group and share the next fsync. One write or fsync is
//! in flight at a time, so group N+1 is written only after group N is
//! durable: only the last group can be torn by a crash.
//!
//! A group is *acknowledged* (its replies may go out) once its fsync
//! completes under `always`, or once its write completes under `everysec`
//! and `no`: then a killed process loses nothing acknowledged, and a
//! machine crash loses at most about a second (`everysec`) or what the
//! kernel had not written back (`no`).
//!
//! A failed write or fsync stops the server ([`Server::fail`]): after an
//! fsync error the kernel may have dropped the dirty pages, so a retry could
//! report success for data that is gone.

use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use ringio::{FileOptions, Handle, IO};

use crate::commands;
use crate::server::{log, Server};
use crate::store;
use crate::wal::{self, Outcome, Record};

/// Bytes each recovery read asks for.
const RECOVERY_READ_BYTES: usize = 1024 * 1024;
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

/// The log's state.
#[derive(Debug)]
pub struct Journal {
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
    /// The buffer groups are built in, while no write is in flight.
    spare: Option<Vec<u8>>,
    /// Recovery: the log read so far.
    recovered: Vec<u8>,
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
        Ok(Journal {
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
            spare: Some(Vec::new()),
            recovered: Vec::new(),
            ack_before_fsync: false,
        })
    }

    /// Adds a record to the pending group. Call [`flush`] once the
    /// commands at hand have run.
    pub fn append(&mut self, record: &Record<'_>) {
        wal::encode(&mut self.pending, record);
        self.pending_records += 1;
    }

    /// Adds a [`Record::Command`] of `parts` to the pending group.
    pub fn append_command(&mut self, parts: &[&[u8]]) {
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

    /// The log file.
    pub fn fd(&self) -> Handle {
        self.fd
    }
}

/// Starts recovery of the log open on `fd`: reads all of it, then replays
/// it ([`Server::on_recovered`] when done).
pub fn recover(io: &mut IO<Server>, fd: Handle) {
    let buf = Vec::with_capacity(RECOVERY_READ_BYTES);
    io.read(fd, buf, 0, move |io, server, result, buf| {
        on_recover_read(io, server, 0, result, buf)
    });
}

fn on_recover_read(
    io: &mut IO<Server>,
    server: &mut Server,
    offset: u64,
    result: io::Result<usize>,
    buf: Vec<u8>,
) {
    match result {
        Ok(0) => replay(io, server),
        Ok(count) => {
            server.journal.recovered.extend_from_slice(&buf);
            let fd = server.journal.fd;
            let next = offset + count as u64;
            io.read(fd, buf, next, move |io, server, result, buf| {
                on_recover_read(io, server, next, result, buf)
            });
        }
        Err(error) => {
            let path = server.journal.path.display().to_string();
            server.fail(format!(
                "reading the log {path} at offset {offset}: {error}"
            ));
        }
    }
}

/// Applies the log read back to the store, and settles its end.
fn replay(io: &mut IO<Server>, server: &mut Server) {
    let data = std::mem::take(&mut server.journal.recovered);
    let fresh = data.is_empty();
    let Server { store, shared, .. } = server;
    let mut records: u64 = 0;
    let mut failure = None;
    store.set_loading(true);
    let outcome = wal::recover(&data, |record| {
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
    if server.journal.policy == FsyncPolicy::EverySec {
        everysec_tick(io);
    }
    Server::on_recovered(io, server);
}

/// Writes the pending group, or fsyncs under `everysec`, if the log is idle.
pub fn flush(io: &mut IO<Server>, server: &mut Server) {
    if server.fatal().is_some() || !server.ready() {
        return;
    }
    let journal = &mut server.journal;
    if journal.busy {
        return;
    }
    if journal.sync_due && journal.written_sequence > journal.synced_sequence {
        journal.sync_due = false;
        sync(io, server);
        return;
    }
    journal.sync_due = false;
    if journal.pending_records == 0 {
        return;
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
    journal.pending.clear();
    journal.pending_records = 0;
    journal.next_sequence += 1;
    journal.busy = true;
    write_group(io, journal.fd, journal.file_len, sequence, buf);
    Server::on_pending_taken(io, server);
}

fn write_group(io: &mut IO<Server>, fd: Handle, offset: u64, sequence: u64, buf: Vec<u8>) {
    io.write(fd, buf, offset, move |io, server, result, buf| {
        on_write(io, server, sequence, result, buf)
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
        buf.drain(..written);
        write_group(io, journal.fd, journal.file_len, sequence, buf);
        return;
    }
    buf.clear();
    journal.spare = Some(buf);
    journal.written_sequence = sequence;
    if journal.policy == FsyncPolicy::Always {
        if journal.ack_before_fsync {
            Server::on_acknowledged(io, server); // The planted bug.
        }
        sync(io, server);
    } else {
        journal.busy = false;
        Server::on_acknowledged(io, server);
        flush(io, server);
    }
}

/// Fsyncs everything written so far.
fn sync(io: &mut IO<Server>, server: &mut Server) {
    let journal = &mut server.journal;
    journal.busy = true;
    let sequence = journal.written_sequence;
    io.fsync(journal.fd, move |io, server, result| {
        if server.fatal().is_some() {
            return;
        }
        if let Err(error) = result {
            let path = server.journal.path.display().to_string();
            server.fail(format!(
                "fsync of the log {path} failed: {error}; stopping, since the data may be lost"
            ));
            return;
        }
        let journal = &mut server.journal;
        journal.busy = false;
        journal.synced_sequence = sequence;
        Server::on_acknowledged(io, server);
        flush(io, server);
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
