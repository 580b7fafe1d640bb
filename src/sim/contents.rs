//! A simulated file's bytes, kept by file-system block, so that a sparse
//! file costs only the blocks that were written: a block that is not here
//! is a hole and reads as zeros, as on ext4.
//!
//! Invariant: every byte at or past `len` in an allocated block is zero
//! (`set_len` zeroes the tail of the block it cuts; `splice` grows `len`
//! over what it writes), so extending a file never shows old bytes.
//!
//! Blocks `fallocate` reserves are *unwritten*, as ext4's unwritten
//! extents: they take space and count as allocated for `statx`, but read
//! as zeros and, for `O_DIRECT`, are holes (nothing goes to the device),
//! until a write lands in them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// One piece of a read: bytes from a block, or a run of zeros (a hole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Data(&'a [u8]),
    Zeros(usize),
}

#[derive(Clone, Debug)]
pub(crate) struct Contents {
    len: u64,
    block_bytes: u64,
    /// Allocated blocks by index, each `block_bytes` long.
    blocks: BTreeMap<u64, Box<[u8]>>,
    /// Blocks reserved and never written (ext4's unwritten extents): never
    /// in `blocks` too.
    unwritten: BTreeSet<u64>,
}

impl Contents {
    pub(crate) fn new(block_bytes: u64) -> Contents {
        assert!(block_bytes.is_power_of_two());
        assert!(usize::try_from(block_bytes).is_ok());
        Contents {
            len: 0,
            block_bytes,
            blocks: BTreeMap::new(),
            unwritten: BTreeSet::new(),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn block_bytes(&self) -> u64 {
        self.block_bytes
    }

    /// Whether the block with index `block` is allocated and written (not
    /// a hole, nor reserved and unwritten): whether `O_DIRECT` reaches the
    /// device there.
    pub(crate) fn is_allocated(&self, block: u64) -> bool {
        self.blocks.contains_key(&block)
    }

    /// How many blocks are allocated, written or not: what the file takes
    /// on the disk.
    pub(crate) fn blocks_allocated(&self) -> u64 {
        (self.blocks.len() + self.unwritten.len()) as u64
    }

    /// How many blocks in `range` (block indices) are neither written nor
    /// reserved: what reserving it would allocate.
    pub(crate) fn holes_in(&self, range: Range<u64>) -> u64 {
        let taken =
            self.blocks.range(range.clone()).count() + self.unwritten.range(range.clone()).count();
        range.end - range.start - taken as u64
    }

    /// Reserves the blocks in `range` (block indices) that are holes, as
    /// unwritten blocks (`fallocate`); the length does not change.
    pub(crate) fn reserve(&mut self, range: Range<u64>) {
        for block in range {
            if !self.blocks.contains_key(&block) {
                self.unwritten.insert(block);
            }
        }
    }

    /// Frees the storage of the bytes in `range` (`FALLOC_FL_PUNCH_HOLE`):
    /// the blocks it covers wholly become holes; in the blocks it covers in
    /// part, its bytes become zeros. The length does not change.
    pub(crate) fn punch(&mut self, range: Range<u64>) {
        let block_bytes = self.block_bytes;
        let first_whole = range.start.div_ceil(block_bytes);
        // Empty when the range lies within one block.
        let whole = first_whole..(range.end / block_bytes).max(first_whole);
        let mut at = range.start;
        while at < range.end {
            let block = at / block_bytes;
            let end = range.end.min((block + 1) * block_bytes);
            if whole.contains(&block) {
                self.blocks.remove(&block);
                self.unwritten.remove(&block);
            } else if let Some(bytes) = self.blocks.get_mut(&block) {
                let within = (at % block_bytes) as usize;
                bytes[within..within + (end - at) as usize].fill(0);
            }
            at = end;
        }
        assert!(self.blocks.range(whole.clone()).next().is_none());
    }

    /// Copies `data` in at `offset`, allocating the blocks it touches and
    /// growing the length to cover it.
    pub(crate) fn splice(&mut self, offset: u64, data: &[u8]) {
        let block_bytes = self.block_bytes;
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let block = at / block_bytes;
            let within = (at % block_bytes) as usize;
            let count = (data.len() - done).min(block_bytes as usize - within);
            self.unwritten.remove(&block);
            let target = self
                .blocks
                .entry(block)
                .or_insert_with(|| vec![0; block_bytes as usize].into_boxed_slice());
            target[within..within + count].copy_from_slice(&data[done..done + count]);
            done += count;
        }
        assert_eq!(done, data.len());
        self.len = self.len.max(offset + data.len() as u64);
    }

    /// Sets the length. Cutting frees the blocks wholly past the new end and
    /// zeroes the rest of the block it ends in; extending allocates nothing
    /// (the new bytes are a hole), as `ftruncate(2)` on ext4. A length that
    /// does not grow the file also frees the blocks reserved past the end,
    /// as ext4 does (`ext4_setattr` truncates whenever the size does not
    /// grow).
    pub(crate) fn set_len(&mut self, len: u64) {
        if len <= self.len {
            let block_bytes = self.block_bytes;
            let kept = len.div_ceil(block_bytes);
            drop(self.blocks.split_off(&kept));
            drop(self.unwritten.split_off(&kept));
            if len % block_bytes != 0 {
                if let Some(last) = self.blocks.get_mut(&(len / block_bytes)) {
                    last[(len % block_bytes) as usize..].fill(0);
                }
            }
            assert!(self.blocks.keys().all(|&block| block < kept));
        }
        self.len = len;
    }

    /// Visits the bytes in `offset..offset + len`, cut at the end of the
    /// file, in order: each piece as data or zeros. Returns how many bytes
    /// it visited.
    pub(crate) fn read(&self, offset: u64, len: u64, mut visit: impl FnMut(Piece<'_>)) -> u64 {
        if offset >= self.len {
            return 0;
        }
        let end = self.len.min(offset.saturating_add(len));
        let block_bytes = self.block_bytes;
        let mut at = offset;
        while at < end {
            let block = at / block_bytes;
            let within = (at % block_bytes) as usize;
            let count = (end - at).min(block_bytes - within as u64) as usize;
            match self.blocks.get(&block) {
                Some(bytes) => visit(Piece::Data(&bytes[within..within + count])),
                None => visit(Piece::Zeros(count)),
            }
            at += count as u64;
        }
        assert_eq!(at, end);
        end - offset
    }

    /// Flips bit `bit` of the byte at `offset`, an allocated one within the
    /// file: silent corruption on the medium.
    pub(crate) fn flip_bit(&mut self, offset: u64, bit: u32) {
        assert!(offset < self.len);
        let block = self.blocks.get_mut(&(offset / self.block_bytes));
        let block = block.expect("corruption hits a byte just written");
        block[(offset % self.block_bytes) as usize] ^= 1 << bit;
    }

    /// The bytes in `offset..offset + len`, cut at the end of the file.
    #[cfg(test)]
    pub(crate) fn to_vec(&self, offset: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        self.read(offset, len, |piece| match piece {
            Piece::Data(bytes) => out.extend_from_slice(bytes),
            Piece::Zeros(count) => out.resize(out.len() + count, 0),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_file_allocates_only_the_blocks_written() {
        let mut contents = Contents::new(4096);
        contents.set_len(1 << 40);
        assert_eq!(contents.blocks_allocated(), 0);
        contents.splice((1 << 40) - 2, b"xy");
        assert_eq!(contents.blocks_allocated(), 1);
        assert_eq!(contents.len(), 1 << 40);
        assert_eq!(contents.to_vec((1 << 40) - 4, 100), b"\0\0xy");
        assert!(contents.is_allocated(((1 << 40) - 1) / 4096));
        assert!(!contents.is_allocated(0));
    }

    #[test]
    fn a_write_across_blocks_reads_back_and_holes_read_as_zeros() {
        let mut contents = Contents::new(512);
        let data: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        contents.splice(1000, &data);
        assert_eq!(contents.len(), 2500);
        assert_eq!(contents.to_vec(1000, 1500), data);
        assert_eq!(contents.to_vec(0, 1000), vec![0; 1000]);
        assert!(!contents.is_allocated(0));
        assert!((1..=4).all(|block| contents.is_allocated(block)));
        let mut pieces = 0;
        assert_eq!(contents.read(0, 10_000, |_| pieces += 1), 2500);
        assert_eq!(pieces, 5);
    }

    #[test]
    fn cutting_zeroes_the_tail_so_extending_again_shows_zeros() {
        let mut contents = Contents::new(4096);
        contents.splice(0, &[7; 8192]);
        contents.set_len(1000);
        assert_eq!(contents.blocks_allocated(), 1);
        contents.set_len(8192);
        assert_eq!(contents.blocks_allocated(), 1);
        let after = contents.to_vec(0, 8192);
        assert!(after[..1000].iter().all(|&byte| byte == 7));
        assert!(after[1000..].iter().all(|&byte| byte == 0));
        contents.set_len(4096);
        contents.set_len(0);
        assert_eq!(contents.blocks_allocated(), 0);
    }
}
