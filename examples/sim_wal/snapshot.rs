//! The snapshot's on-disk blocks: every record so far, seven to a block,
//! in a file that replaces the log's history.
//!
//! Block `b` (from 0) holds the slots of seqs `7b + 1 ..= min(7b + 7, S)`,
//! where `S` (`through`) is the last seq the snapshot covers; one more
//! block after them holds no slot. Every block is self-checking and
//! self-describing, as a log record is: its checksum covers its block index,
//! so a misdirected block is caught, and it repeats `through` and the log
//! segment the snapshot replaced (`previous_base`), so that any one block
//! that survives the disk tells recovery where the log's tail is.
//!
//! ```text
//! 0..8    checksum of bytes 8..512, seeded with the block index
//! 8..16   through: the last seq the snapshot covers
//! 16..24  previous_base: the first seq of the segment it replaced
//! 24..26  slots in this block (0 to 7)
//! 26..    slots, 66 bytes each: client (4), request (8), payload length
//!         (2; LOST for a seq whose record the disk destroyed before the
//!         snapshot was taken), payload (52, zero-padded)
//! ```

use crate::record::{checksum, PAYLOAD_BYTES, SECTOR_BYTES};

/// Slots per block.
pub const SLOTS_PER_BLOCK: u64 = 7;
const HEADER_BYTES: usize = 26;
const SLOT_BYTES: usize = 4 + 8 + 2 + PAYLOAD_BYTES;
/// The payload length that marks a lost record.
const LOST: u16 = u16::MAX;
/// Seeds the checksum, so a log record never passes as a snapshot block.
const SEED: u64 = 0x534e_4150_5348_4f54; // "SNAPSHOT"

const _: () = assert!(HEADER_BYTES + SLOTS_PER_BLOCK as usize * SLOT_BYTES <= SECTOR_BYTES);

/// One seq's slot: its record's client, request and payload, or `None` if
/// the record was lost before the snapshot was taken.
pub type Slot = Option<(u32, u64, Vec<u8>)>;

/// What a snapshot block holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Block {
    /// Never written (all zeros).
    Empty,
    /// A valid block for this position.
    Valid {
        through: u64,
        previous_base: u64,
        slots: Vec<Slot>,
    },
    /// Anything else: torn, corrupt, or misdirected.
    Corrupt,
}

/// How many blocks a snapshot through `through` has, the last block (no
/// slots) included.
pub fn blocks(through: u64) -> u64 {
    through.div_ceil(SLOTS_PER_BLOCK) + 1
}

/// The block that holds seq `seq`.
pub fn block_of(seq: u64) -> u64 {
    assert!(seq >= 1);
    (seq - 1) / SLOTS_PER_BLOCK
}

/// Encodes block `block` of a snapshot through `through`, whose slots are
/// `slots` (the slots of exactly this block's seqs).
pub fn encode(block: u64, through: u64, previous_base: u64, slots: &[Slot], out: &mut [u8]) {
    assert_eq!(out.len(), SECTOR_BYTES);
    assert!(slots.len() as u64 <= SLOTS_PER_BLOCK);
    out.fill(0);
    out[8..16].copy_from_slice(&through.to_le_bytes());
    out[16..24].copy_from_slice(&previous_base.to_le_bytes());
    out[24..26].copy_from_slice(&(slots.len() as u16).to_le_bytes());
    for (index, slot) in slots.iter().enumerate() {
        let at = HEADER_BYTES + index * SLOT_BYTES;
        let out = &mut out[at..at + SLOT_BYTES];
        match slot {
            Some((client, request, payload)) => {
                assert!(payload.len() <= PAYLOAD_BYTES);
                out[..4].copy_from_slice(&client.to_le_bytes());
                out[4..12].copy_from_slice(&request.to_le_bytes());
                out[12..14].copy_from_slice(&(payload.len() as u16).to_le_bytes());
                out[14..14 + payload.len()].copy_from_slice(payload);
            }
            None => out[12..14].copy_from_slice(&LOST.to_le_bytes()),
        }
    }
    let checksum = checksum(block ^ SEED, &out[8..]);
    out[..8].copy_from_slice(&checksum.to_le_bytes());
}

/// Decodes the block at index `block`.
pub fn decode(bytes: &[u8], block: u64) -> Block {
    if bytes.iter().all(|&byte| byte == 0) {
        return Block::Empty;
    }
    if bytes.len() != SECTOR_BYTES || read_u64(bytes, 0) != checksum(block ^ SEED, &bytes[8..]) {
        return Block::Corrupt;
    }
    let through = read_u64(bytes, 8);
    let count = u16::from_le_bytes([bytes[24], bytes[25]]) as u64;
    // The slots this position must hold, given `through`.
    let expected = through
        .saturating_sub(block * SLOTS_PER_BLOCK)
        .min(SLOTS_PER_BLOCK);
    if count != expected || block >= blocks(through) {
        return Block::Corrupt;
    }
    let mut slots = Vec::with_capacity(count as usize);
    for index in 0..count as usize {
        let slot = &bytes[HEADER_BYTES + index * SLOT_BYTES..][..SLOT_BYTES];
        let len = u16::from_le_bytes([slot[12], slot[13]]);
        if len == LOST {
            slots.push(None);
            continue;
        }
        if len as usize > PAYLOAD_BYTES {
            return Block::Corrupt;
        }
        let client = u32::from_le_bytes(slot[..4].try_into().expect("4 bytes"));
        let payload = slot[14..14 + len as usize].to_vec();
        slots.push(Some((client, read_u64(slot, 4), payload)));
    }
    Block::Valid {
        through,
        previous_base: read_u64(bytes, 16),
        slots,
    }
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
