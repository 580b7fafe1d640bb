//! The write-ahead log's format, and the rules that read it back. No I/O
//! here: `journal.rs` moves the bytes through ringio.
//!
//! # Format
//!
//! The log is a sequence of *groups*, one per group commit, back to back
//! from offset 0. A group is a 32-byte header, then its records. Integers are
//! little-endian.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic, `RKV2` (the format's version: see below) |
//! | 4 | 4 | CRC32C of header bytes 8..32 and of the whole body |
//! | 8 | 8 | sequence: 1 for the first group, then one more each group |
//! | 16 | 8 | synced: the highest sequence whose fsync had completed when this group was written (0: none) |
//! | 24 | 4 | body length in bytes |
//! | 28 | 4 | record count |
//!
//! Records:
//!
//! - `0x01` SET: key length (u32), key, value length (u32), value,
//!   deadline (u64: when the key expires, in milliseconds since the Unix
//!   epoch on the wall clock, as Redis keeps it; 0 for none). INCR and
//!   friends are logged as the SET of their result.
//!
//! # Versions
//!
//! The magic is the format's version. `RKV1` logs held deadlines in ns on
//! CLOCK_MONOTONIC, which restarts at every boot, so their keys lived too
//! long or died at once after a reboot. `RKV2` holds wall-clock Unix
//! milliseconds, which mean the same in every run. An `RKV1` deadline
//! cannot be converted (the boot it counted from is gone), so a log that
//! starts with `RKV1` is refused with a message saying so
//! ([`Outcome::OldFormat`]), never replayed with wrong expiry times, and
//! never cut as a torn tail.
//! - `0x02` DEL: key length (u32), key.
//! - `0x03` FLUSHALL.
//! - `0x04` COMMAND: argument count (u32), then each argument as a length
//!   (u32) and its bytes: a write command to run again on replay.
//! - `0x05` SNAPSHOT END: through (u64). Only in a snapshot file, as the
//!   last record of its last group: the snapshot holds the state after the
//!   log's groups `1..=through`, and is complete.
//!
//! # Snapshots
//!
//! A snapshot (`kv.snapshot`, written by compaction, see journal.rs) is a
//! file in this same format: groups numbered from 1, whose records
//! recreate the whole keyspace (SET for strings; HSET, RPUSH, SADD and
//! ZADD commands for the collections; PEXPIREAT for their absolute expiry
//! times), ending with a SNAPSHOT END record. It is fsynced before it is
//! renamed into place, so any damage in it is corruption, never a torn
//! tail ([`recover_snapshot`]). The log then holds only groups after
//! `through`; groups at or below it (a log whose cut a crash undid) are
//! skipped ([`recover`]'s `after`).
//!
//! One command's records always go in one group, and a group is checksummed
//! as a whole, so a command is replayed entirely or not at all.
//!
//! # Recovery
//!
//! Groups are read from offset 0 while they are whole, checksum-valid and
//! numbered one after another. At the first group that is not (a short
//! header, a bad magic, a length past the end of the file, a bad checksum),
//! the rest of the file is searched for a valid group whose `synced` field
//! claims the bad group's sequence was durable:
//!
//! - **None does: a torn tail.** The bad group was never known durable, so
//!   nothing acknowledged under `--fsync always` is in it. The file is cut
//!   at its start, and the server says so on stderr, with the bytes and any
//!   later groups discarded. Under `always`, group N+1 is written only after
//!   group N's fsync, so only the last group can be torn, and later groups
//!   do not exist. Under `everysec` and `no`, several unsynced groups may be
//!   torn independently; all of them, and every group after the first bad
//!   one, were unsynced, which those policies allow to lose (the message
//!   counts them).
//! - **One does: corruption in the middle.** Data that was durable has
//!   changed. The server refuses to start and names the offset.
//!
//! A group that is checksum-valid but has the wrong sequence number, or
//! whose records do not parse, is corruption too.

/// The magic at the start of every group: the format's version.
pub const MAGIC: [u8; 4] = *b"RKV2";
/// The magic of the previous format, whose deadlines were monotonic.
pub const MAGIC_V1: [u8; 4] = *b"RKV1";
/// Bytes in a group header.
pub const HEADER_BYTES: usize = 32;

const TAG_SET: u8 = 0x01;
const TAG_DEL: u8 = 0x02;
const TAG_FLUSHALL: u8 = 0x03;
const TAG_COMMAND: u8 = 0x04;
const TAG_SNAPSHOT_END: u8 = 0x05;
/// The most arguments a logged command has (a request's limit).
const COMMAND_ARGS_MAX: u32 = 1024 * 1024;

/// One logged change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// The key now holds the value, expiring at the deadline (0: never).
    Set {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
        /// Unix milliseconds on the wall clock; 0 for no expiry.
        deadline_ms: u64,
    },
    /// The key was removed.
    Del {
        /// The key.
        key: &'a [u8],
    },
    /// Every key was removed.
    FlushAll,
    /// A command to run again on replay, as Redis's AOF logs them: one
    /// whose effect depends only on the state it ran on (not on the clock,
    /// which is why relative expiry times are logged as PEXPIREAT, nor on
    /// chance, which is why SPOP is logged as SREM).
    Command {
        /// The arguments, the name first.
        args: Vec<&'a [u8]>,
    },
    /// The end of a snapshot: it holds the state after the log's groups
    /// `1..=through`.
    SnapshotEnd {
        /// The last log group the snapshot covers.
        through: u64,
    },
}

/// Appends `record` to a group body.
pub fn encode(body: &mut Vec<u8>, record: &Record<'_>) {
    match record {
        Record::Set {
            key,
            value,
            deadline_ms,
        } => {
            body.push(TAG_SET);
            encode_bytes(body, key);
            encode_bytes(body, value);
            body.extend_from_slice(&deadline_ms.to_le_bytes());
        }
        Record::Del { key } => {
            body.push(TAG_DEL);
            encode_bytes(body, key);
        }
        Record::FlushAll => body.push(TAG_FLUSHALL),
        Record::Command { args } => encode_command(body, args),
        Record::SnapshotEnd { through } => {
            body.push(TAG_SNAPSHOT_END);
            body.extend_from_slice(&through.to_le_bytes());
        }
    }
}

/// Appends a [`Record::Command`] of `args` to a group body, without
/// building the record.
pub fn encode_command<A: AsRef<[u8]>>(body: &mut Vec<u8>, args: &[A]) {
    assert!(!args.is_empty());
    let count = u32::try_from(args.len()).expect("a command's arguments are bounded");
    assert!(count <= COMMAND_ARGS_MAX);
    body.push(TAG_COMMAND);
    body.extend_from_slice(&count.to_le_bytes());
    for arg in args {
        encode_bytes(body, arg.as_ref());
    }
}

fn encode_bytes(body: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("keys and values are bounded far below 4 GiB");
    body.extend_from_slice(&len.to_le_bytes());
    body.extend_from_slice(bytes);
}

/// Writes a whole group, header then `body`, into `target` (cleared first).
pub fn encode_group(
    target: &mut Vec<u8>,
    sequence: u64,
    synced: u64,
    record_count: u32,
    body: &[u8],
) {
    let body_len = u32::try_from(body.len()).expect("a group body is below 4 GiB");
    target.clear();
    target.extend_from_slice(&MAGIC);
    target.extend_from_slice(&[0; 4]);
    target.extend_from_slice(&sequence.to_le_bytes());
    target.extend_from_slice(&synced.to_le_bytes());
    target.extend_from_slice(&body_len.to_le_bytes());
    target.extend_from_slice(&record_count.to_le_bytes());
    target.extend_from_slice(body);
    let checksum = crc32c(&target[8..]);
    target[4..8].copy_from_slice(&checksum.to_le_bytes());
}

/// A group that passed its checksum.
#[derive(Debug)]
struct Group<'a> {
    sequence: u64,
    synced: u64,
    record_count: u32,
    body: &'a [u8],
}

impl Group<'_> {
    fn total_bytes(&self) -> usize {
        HEADER_BYTES + self.body.len()
    }
}

/// Reads the group at `data[offset..]`, or says why it is not a valid one.
fn read_group(data: &[u8], offset: usize) -> Result<Group<'_>, &'static str> {
    let rest = &data[offset..];
    if rest.len() < HEADER_BYTES {
        return Err("incomplete group header");
    }
    if rest[0..4] != MAGIC {
        return Err("bad magic");
    }
    let field_u64 = |at: usize| u64::from_le_bytes(rest[at..at + 8].try_into().expect("8 bytes"));
    let field_u32 = |at: usize| u32::from_le_bytes(rest[at..at + 4].try_into().expect("4 bytes"));
    let body_len = field_u32(24) as usize;
    if body_len > rest.len() - HEADER_BYTES {
        return Err("group runs past the end of the file");
    }
    let end = HEADER_BYTES + body_len;
    if crc32c(&rest[8..end]) != field_u32(4) {
        return Err("checksum mismatch");
    }
    Ok(Group {
        sequence: field_u64(8),
        synced: field_u64(16),
        record_count: field_u32(28),
        body: &rest[HEADER_BYTES..end],
    })
}

/// What recovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte belongs to a valid group.
    Clean {
        /// The length of the log.
        end: u64,
        /// The last group's sequence (0 for an empty log).
        last_sequence: u64,
    },
    /// The log ends in a group that was never known durable: cut it at
    /// `offset`.
    TornTail {
        /// Where the bad group starts; the new length of the log.
        offset: u64,
        /// Why the group there is not valid.
        reason: &'static str,
        /// The sequence of the last valid group before it.
        last_sequence: u64,
        /// Bytes from `offset` to the end of the file.
        discarded_bytes: u64,
        /// Valid (unsynced) groups found after the bad one, discarded too.
        discarded_groups: u64,
    },
    /// The log is in the old format (`RKV1`, see the module docs): refuse
    /// to start, and touch nothing.
    OldFormat,
    /// Durable data changed: refuse to start.
    Corrupt {
        /// Where the bad group starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads the whole log in `data`, handing each record of each valid group
/// numbered above `after` (the last group a snapshot covers; 0 for none),
/// in order, to `apply`, and says how the log ends (see the module docs).
/// The first group may be numbered at most `after + 1`: a higher number
/// means groups between the snapshot and the log are gone (corruption).
pub fn recover(data: &[u8], after: u64, mut apply: impl FnMut(Record<'_>)) -> Outcome {
    // Checked before anything else: read as the current format, an old log
    // would have a bad magic at offset 0, and that is a torn tail that
    // would be cut to nothing.
    if data.starts_with(&MAGIC_V1) {
        return Outcome::OldFormat;
    }
    let mut offset = 0;
    let mut last_sequence = after;
    while offset < data.len() {
        let group = match read_group(data, offset) {
            Ok(group) => group,
            Err(reason) => return after_bad_group(data, offset, last_sequence, reason),
        };
        if offset == 0 && group.sequence >= 1 && group.sequence <= after {
            // A log whose cut after a snapshot a crash undid: its first
            // groups are in the snapshot already.
            last_sequence = group.sequence - 1;
        }
        if group.sequence != last_sequence + 1 {
            return Outcome::Corrupt {
                offset: offset as u64,
                reason: format!(
                    "group has sequence {} where {} was expected",
                    group.sequence,
                    last_sequence + 1
                ),
            };
        }
        let mut skip = |_: Record<'_>| {};
        let sink: &mut dyn FnMut(Record<'_>) = if group.sequence <= after {
            &mut skip
        } else {
            &mut apply
        };
        if let Err(reason) = decode_records(group.body, group.record_count, sink) {
            return Outcome::Corrupt {
                offset: offset as u64,
                reason: format!("group {} passed its checksum but {reason}", group.sequence),
            };
        }
        last_sequence = group.sequence;
        offset += group.total_bytes();
    }
    Outcome::Clean {
        end: offset as u64,
        last_sequence: last_sequence.max(after),
    }
}

/// Reads a whole snapshot file, handing its records (the SNAPSHOT END
/// excepted) to `apply`. Returns the last log group it covers, or why it
/// is not a complete, valid snapshot: it was fsynced before its rename, so
/// nothing in it may be torn.
pub fn recover_snapshot(data: &[u8], mut apply: impl FnMut(Record<'_>)) -> Result<u64, String> {
    let mut through = None;
    let mut misplaced = false;
    let outcome = recover(data, 0, |record| match record {
        Record::SnapshotEnd { through: end } => through = Some(end),
        record => {
            misplaced |= through.is_some();
            apply(record);
        }
    });
    match outcome {
        Outcome::Clean { .. } if misplaced => Err("records follow its end".to_string()),
        Outcome::Clean { .. } => through.ok_or_else(|| "it has no end record".to_string()),
        Outcome::TornTail { offset, reason, .. } => Err(format!("{reason} at offset {offset}")),
        Outcome::OldFormat => Err("it is in the old format".to_string()),
        Outcome::Corrupt { offset, reason } => Err(format!("{reason} at offset {offset}")),
    }
}

/// Decides between torn tail and corruption for the bad group at `offset`.
fn after_bad_group(
    data: &[u8],
    offset: usize,
    last_sequence: u64,
    reason: &'static str,
) -> Outcome {
    let expected = last_sequence + 1;
    let mut discarded_groups = 0;
    let mut candidate = offset + 1;
    while candidate + HEADER_BYTES <= data.len() {
        if data[candidate..candidate + 4] != MAGIC {
            candidate += 1;
            continue;
        }
        let Ok(group) = read_group(data, candidate) else {
            candidate += 1;
            continue;
        };
        if group.synced >= expected {
            return Outcome::Corrupt {
                offset: offset as u64,
                reason: format!(
                    "{reason} in group {expected}, which group {} at offset {candidate} \
                     records as synced",
                    group.sequence
                ),
            };
        }
        discarded_groups += 1;
        candidate += group.total_bytes();
    }
    Outcome::TornTail {
        offset: offset as u64,
        reason,
        last_sequence,
        discarded_bytes: (data.len() - offset) as u64,
        discarded_groups,
    }
}

fn decode_records(
    mut body: &[u8],
    record_count: u32,
    apply: &mut dyn FnMut(Record<'_>),
) -> Result<(), &'static str> {
    for _ in 0..record_count {
        let (&tag, rest) = body.split_first().ok_or("a record is missing")?;
        body = rest;
        let record = match tag {
            TAG_SET => {
                let key = take_bytes(&mut body)?;
                let value = take_bytes(&mut body)?;
                let deadline = take(&mut body, 8)?;
                let deadline_ms = u64::from_le_bytes(deadline.try_into().expect("8 bytes"));
                if deadline_ms > i64::MAX as u64 {
                    return Err("a record's expiry time is past Redis's range (i64 ms)");
                }
                Record::Set {
                    key,
                    value,
                    deadline_ms,
                }
            }
            TAG_DEL => Record::Del {
                key: take_bytes(&mut body)?,
            },
            TAG_FLUSHALL => Record::FlushAll,
            TAG_COMMAND => decode_command(&mut body)?,
            TAG_SNAPSHOT_END => {
                let through = take(&mut body, 8)?;
                Record::SnapshotEnd {
                    through: u64::from_le_bytes(through.try_into().expect("8 bytes")),
                }
            }
            _ => return Err("a record has an unknown type"),
        };
        apply(record);
    }
    if !body.is_empty() {
        return Err("bytes follow its last record");
    }
    Ok(())
}

fn decode_command<'a>(body: &mut &'a [u8]) -> Result<Record<'a>, &'static str> {
    let count = take(body, 4)?;
    let count = u32::from_le_bytes(count.try_into().expect("4 bytes"));
    if count == 0 || count > COMMAND_ARGS_MAX {
        return Err("a logged command has a bad argument count");
    }
    // Each argument takes at least its 4-byte length: a count the body
    // cannot hold is refused before anything is reserved for it.
    if count as usize > body.len() / 4 {
        return Err("a record is cut short");
    }
    let mut args = Vec::with_capacity(count as usize);
    for _ in 0..count {
        args.push(take_bytes(body)?);
    }
    Ok(Record::Command { args })
}

fn take<'a>(body: &mut &'a [u8], len: usize) -> Result<&'a [u8], &'static str> {
    if body.len() < len {
        return Err("a record is cut short");
    }
    let (taken, rest) = body.split_at(len);
    *body = rest;
    Ok(taken)
}

fn take_bytes<'a>(body: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
    let len = take(body, 4)?;
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    take(body, len)
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven, so
/// the log needs no dependency. Eight bytes a step (slicing-by-8): a byte
/// at a time was 6% of the server's time under `redis-benchmark -P 16 -t
/// set` (perf), every group being checksummed whole.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let tables = &CRC32C_TABLES;
    let mut crc = !0u32;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let low = u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes")) ^ crc;
        let high = u32::from_le_bytes(chunk[4..].try_into().expect("4 bytes"));
        crc = tables[7][(low & 0xff) as usize]
            ^ tables[6][((low >> 8) & 0xff) as usize]
            ^ tables[5][((low >> 16) & 0xff) as usize]
            ^ tables[4][(low >> 24) as usize]
            ^ tables[3][(high & 0xff) as usize]
            ^ tables[2][((high >> 8) & 0xff) as usize]
            ^ tables[1][((high >> 16) & 0xff) as usize]
            ^ tables[0][(high >> 24) as usize];
    }
    for &byte in chunks.remainder() {
        crc = tables[0][((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Table `k` gives the CRC of a byte followed by `k` zero bytes.
const CRC32C_TABLES: [[u32; 256]; 8] = crc32c_tables();

const fn crc32c_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    tables[0] = crc32c_table();
    let mut table = 1;
    while table < 8 {
        let mut index = 0;
        while index < 256 {
            let previous = tables[table - 1][index];
            tables[table][index] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            index += 1;
        }
        table += 1;
    }
    tables
}

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(groups: &[(u64, u64)]) -> Vec<u8> {
        let mut log = Vec::new();
        let mut group = Vec::new();
        for &(sequence, synced) in groups {
            let mut body = Vec::new();
            let key = format!("key{sequence}");
            encode(
                &mut body,
                &Record::Set {
                    key: key.as_bytes(),
                    value: b"v",
                    deadline_ms: 0,
                },
            );
            encode_group(&mut group, sequence, synced, 1, &body);
            log.extend_from_slice(&group);
        }
        log
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // Eight bytes a step gives what one byte a step gives, at every
        // length and alignment of the tail.
        let table = crc32c_table();
        let bytes: Vec<u8> = (0..100u32).map(|index| (index * 37 + 11) as u8).collect();
        for len in 0..bytes.len() {
            let mut crc = !0u32;
            for &byte in &bytes[..len] {
                crc = table[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
            }
            assert_eq!(crc32c(&bytes[..len]), !crc, "length {len}");
        }
    }

    #[test]
    fn clean_log_replays_every_record() {
        let log = log_of(&[(1, 0), (2, 1), (3, 2)]);
        let mut keys = Vec::new();
        let outcome = recover(&log, 0, |record| keys.push(format!("{record:?}")));
        assert_eq!(
            outcome,
            Outcome::Clean {
                end: log.len() as u64,
                last_sequence: 3
            }
        );
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn torn_last_group_is_a_torn_tail() {
        let mut log = log_of(&[(1, 0), (2, 1)]);
        let cut = log.len() - 3;
        log.truncate(cut);
        let first_group = log_of(&[(1, 0)]).len() as u64;
        match recover(&log, 0, |_| {}) {
            Outcome::TornTail {
                offset,
                last_sequence,
                ..
            } => {
                assert_eq!(offset, first_group);
                assert_eq!(last_sequence, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_group_that_a_later_group_calls_synced_is_corruption() {
        let mut log = log_of(&[(1, 0), (2, 1), (3, 2)]);
        log[HEADER_BYTES + 2] ^= 1;
        match recover(&log, 0, |_| {}) {
            Outcome::Corrupt { offset, .. } => assert_eq!(offset, 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_old_format_log_is_refused_untouched() {
        let mut log = log_of(&[(1, 0), (2, 1)]);
        log[0..4].copy_from_slice(&MAGIC_V1);
        let mut applied = 0;
        assert_eq!(recover(&log, 0, |_| applied += 1), Outcome::OldFormat);
        assert_eq!(applied, 0);
        // Even one torn byte short of a header.
        assert_eq!(recover(b"RKV1", 0, |_| {}), Outcome::OldFormat);
    }

    #[test]
    fn deadlines_round_trip_as_unix_milliseconds() {
        let mut body = Vec::new();
        let deadline_ms = i64::MAX as u64;
        let record = Record::Set {
            key: b"k",
            value: b"v",
            deadline_ms,
        };
        encode(&mut body, &record);
        let mut group = Vec::new();
        encode_group(&mut group, 1, 0, 1, &body);
        assert_eq!(&group[0..4], b"RKV2");
        assert_eq!(&group[group.len() - 8..], &deadline_ms.to_le_bytes());
        let mut records = Vec::new();
        recover(&group, 0, |record| records.push(format!("{record:?}")));
        assert_eq!(records, [format!("{record:?}")]);
    }

    #[test]
    fn logged_commands_round_trip() {
        let mut body = Vec::new();
        let args: [&[u8]; 3] = [b"HSET", b"h", b""];
        encode_command(&mut body, &args);
        let mut group = Vec::new();
        encode_group(&mut group, 1, 0, 1, &body);
        let mut records = Vec::new();
        let outcome = recover(&group, 0, |record| records.push(format!("{record:?}")));
        assert!(matches!(outcome, Outcome::Clean { .. }));
        let expected = Record::Command {
            args: args.to_vec(),
        };
        assert_eq!(records, [format!("{expected:?}")]);
        // A count the body cannot hold is corruption, not an allocation.
        let mut bad = vec![TAG_COMMAND];
        bad.extend_from_slice(&1000u32.to_le_bytes());
        encode_group(&mut group, 1, 0, 1, &bad);
        assert!(matches!(
            recover(&group, 0, |_| {}),
            Outcome::Corrupt { .. }
        ));
    }

    #[test]
    fn bad_unsynced_group_followed_by_unsynced_groups_is_a_torn_tail() {
        // As under --fsync no: nothing was ever synced.
        let mut log = log_of(&[(1, 0), (2, 0), (3, 0)]);
        let second = log_of(&[(1, 0)]).len();
        log[second + HEADER_BYTES + 1] ^= 1;
        match recover(&log, 0, |_| {}) {
            Outcome::TornTail {
                offset,
                discarded_groups,
                ..
            } => {
                assert_eq!(offset, second as u64);
                assert_eq!(discarded_groups, 1);
            }
            other => panic!("{other:?}"),
        }
    }
}
