//! The on-disk record and the wire frames.
//!
//! A log segment is an array of sectors: the segment `wal.<base>` holds
//! record `seq` (from `base`) in sector `seq - base`. Each record is self-checking: its checksum covers its
//! sector index too, so a record that a misdirected write put in the wrong
//! place is caught like a corrupt one.
//!
//! ```text
//! 0..8    checksum of bytes 8..512, seeded with the sector index
//! 8..16   seq
//! 16..20  client
//! 20..28  request
//! 28..30  payload length
//! 30..    payload, then zeros
//! ```

/// The disk's sector: the simulator's default, the unit written atomically.
pub const SECTOR_BYTES: usize = 512;
/// A client request on the wire: client, request id, payload.
pub const REQUEST_BYTES: usize = 4 + 8 + PAYLOAD_BYTES;
/// A reply: request id, then the seq it was logged at.
pub const REPLY_BYTES: usize = 16;
/// Bytes of payload per request.
pub const PAYLOAD_BYTES: usize = 52;

/// One logged append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub client: u32,
    pub request: u64,
    pub payload: Vec<u8>,
}

/// What a sector holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Sector {
    /// Never written (all zeros).
    Empty,
    /// A valid record for this position.
    Record(Record),
    /// Anything else: torn, corrupt, or misdirected.
    Corrupt,
}

/// The payload a client sends with a request: derived from its identity,
/// so that a checker can tell a genuine record from a corrupted one.
pub fn payload(client: u32, request: u64) -> Vec<u8> {
    let mut state = u64::from(client) << 40 ^ request ^ 0x9e37_79b9_7f4a_7c15;
    (0..PAYLOAD_BYTES)
        .map(|_| {
            state = mix(state);
            state as u8
        })
        .collect()
}

/// Encodes `record` into a sector at index `sector`.
pub fn encode(record: &Record, sector: u64, out: &mut [u8]) {
    assert_eq!(out.len(), SECTOR_BYTES);
    out.fill(0);
    out[8..16].copy_from_slice(&record.seq.to_le_bytes());
    out[16..20].copy_from_slice(&record.client.to_le_bytes());
    out[20..28].copy_from_slice(&record.request.to_le_bytes());
    out[28..30].copy_from_slice(&(record.payload.len() as u16).to_le_bytes());
    out[30..30 + record.payload.len()].copy_from_slice(&record.payload);
    let checksum = checksum(sector, &out[8..]);
    out[..8].copy_from_slice(&checksum.to_le_bytes());
}

/// Decodes the sector at index `sector` of the segment whose first seq is
/// `base`.
pub fn decode(bytes: &[u8], sector: u64, base: u64) -> Sector {
    if bytes.iter().all(|&byte| byte == 0) {
        return Sector::Empty;
    }
    if bytes.len() != SECTOR_BYTES {
        return Sector::Corrupt;
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let stored = u64_at(0);
    let seq = u64_at(8);
    let len = u16::from_le_bytes([bytes[28], bytes[29]]) as usize;
    if stored != checksum(sector, &bytes[8..]) || seq != base + sector || 30 + len > SECTOR_BYTES {
        return Sector::Corrupt;
    }
    Sector::Record(Record {
        seq,
        client: u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
        request: u64_at(20),
        payload: bytes[30..30 + len].to_vec(),
    })
}

/// A 64-bit checksum (a chain of SplitMix64 mixes over 8-byte words):
/// any bit flip changes it, with no dependency.
pub fn checksum(seed: u64, bytes: &[u8]) -> u64 {
    bytes
        .chunks(8)
        .fold(mix(seed ^ 0x5741_4c21), |hash, chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            mix(hash ^ u64::from_le_bytes(word))
        })
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
