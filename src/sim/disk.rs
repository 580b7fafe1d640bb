//! A node's simulated disk: files made of sectors, with a page cache
//! (`current`, what reads see) over a medium (`durable`, what survives a
//! crash).
//!
//! - A write lands in the page cache when it completes; it reaches the
//!   medium only through an fsync that was submitted after it completed, or
//!   at once with `O_DSYNC`.
//! - A crash resolves every write not yet on the medium (completed or still
//!   in flight), in order: lost whole, torn (each sector kept or not), or
//!   kept as a prefix of its sectors. Then the page cache is the medium.
//! - Latent sector errors stick until the sector is overwritten; silent
//!   corruption and misdirected writes happen on the way to the medium.
//!   Every such sector is recorded as damaged, for checkers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::options::DiskOptions;
use super::prng::{Prng, Probability};

/// One file's index in a disk.
pub(crate) type FileId = usize;

/// A write that reached the page cache but not the medium.
struct Unsynced {
    /// Order of completion: an fsync covers the writes completed before it
    /// was submitted.
    completion: u64,
    offset: u64,
    data: Vec<u8>,
}

pub(crate) struct File {
    /// What reads see: the page cache.
    current: Vec<u8>,
    /// What survives a crash: the medium.
    durable: Vec<u8>,
    unsynced: Vec<Unsynced>,
    /// Sectors that give `EIO` until overwritten.
    latent: BTreeSet<u64>,
    /// Sectors hit by a latent error, corruption or a misdirected write
    /// since they were last written correctly.
    damaged: BTreeSet<u64>,
}

/// A write submitted and not yet completed. Kept here, not in the event,
/// so that a crash can resolve it like an unsynced write.
pub(crate) struct InFlightWrite {
    pub(crate) file: FileId,
    pub(crate) offset: u64,
    pub(crate) data: Vec<u8>,
    pub(crate) dsync: bool,
}

pub(crate) struct Disk {
    paths: BTreeMap<PathBuf, FileId>,
    files: Vec<File>,
    pub(crate) in_flight: BTreeMap<u64, InFlightWrite>,
    next_write: u64,
    /// Counts completed writes, for fsync coverage.
    completions: u64,
    /// Bumped by a crash: disk events from before it are void.
    pub(crate) epoch: u64,
}

impl Disk {
    pub(crate) fn new() -> Disk {
        Disk {
            paths: BTreeMap::new(),
            files: Vec::new(),
            in_flight: BTreeMap::new(),
            next_write: 0,
            completions: 0,
            epoch: 0,
        }
    }

    /// The file at `path`, created empty if `create`.
    pub(crate) fn open(&mut self, path: &Path, create: bool) -> Option<FileId> {
        if let Some(&file) = self.paths.get(path) {
            return Some(file);
        }
        if !create {
            return None;
        }
        let file = self.files.len();
        self.files.push(File {
            current: Vec::new(),
            durable: Vec::new(),
            unsynced: Vec::new(),
            latent: BTreeSet::new(),
            damaged: BTreeSet::new(),
        });
        self.paths.insert(path.to_path_buf(), file);
        Some(file)
    }

    /// Whether `path` names a directory: the current one, or one that
    /// holds a file. The namespace is flat otherwise: creating a file needs
    /// no directory, and directory entries are durable at once.
    pub(crate) fn is_directory(&self, path: &Path) -> bool {
        if self.paths.contains_key(path) {
            return false;
        }
        let current = path.as_os_str().is_empty() || path == Path::new(".");
        current || self.paths.keys().any(|file| file.starts_with(path))
    }

    pub(crate) fn lookup(&self, path: &Path) -> Option<FileId> {
        self.paths.get(path).copied()
    }

    pub(crate) fn len(&self, file: FileId) -> u64 {
        self.files[file].current.len() as u64
    }

    /// Bytes all files take in the page cache.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|file| file.current.len() as u64)
            .sum()
    }

    /// Sets a file's length in the page cache and on the medium at once:
    /// length changes are metadata, which this model makes durable at once.
    pub(crate) fn set_len(&mut self, file: FileId, len_bytes: u64, sector_bytes: u64) {
        let file = &mut self.files[file];
        file.current.resize(len_bytes as usize, 0);
        file.durable.resize(len_bytes as usize, 0);
        let first_gone = len_bytes.div_ceil(sector_bytes);
        file.latent.retain(|&sector| sector < first_gone);
    }

    /// Reads up to `len` bytes at `offset` from the page cache: the bytes
    /// (none at the end), for the caller to copy into the reader's buffer.
    /// `Err(EIO)` if a sector in range has a latent error, possibly a new
    /// one found now.
    pub(crate) fn read(
        &mut self,
        file: FileId,
        offset: u64,
        len: usize,
        options: &DiskOptions,
        prng: &mut Prng,
    ) -> Result<&[u8], i32> {
        let sector_bytes = options.sector_bytes;
        let file = &mut self.files[file];
        let file_len = file.current.len() as u64;
        if offset >= file_len {
            return Ok(&[]);
        }
        let end = file_len.min(offset + len as u64);
        let sectors = offset / sector_bytes..end.div_ceil(sector_bytes);
        if prng.chance(options.latent_error_probability) {
            let sector = prng.range_inclusive(sectors.start, sectors.end - 1);
            file.latent.insert(sector);
            file.damaged.insert(sector);
        }
        if file.latent.range(sectors).next().is_some() {
            return Err(libc::EIO);
        }
        let data = &file.current[offset as usize..end as usize];
        assert!(data.len() <= len);
        Ok(data)
    }

    /// Records a write as in flight; returns its id.
    pub(crate) fn begin_write(&mut self, write: InFlightWrite) -> u64 {
        let id = self.next_write;
        self.next_write += 1;
        self.in_flight.insert(id, write);
        id
    }

    /// Completes an in-flight write: into the page cache, and onto the
    /// medium too with `O_DSYNC`. Returns the bytes written.
    pub(crate) fn complete_write(
        &mut self,
        id: u64,
        options: &DiskOptions,
        prng: &mut Prng,
    ) -> usize {
        let Some(write) = self.in_flight.remove(&id) else {
            return 0;
        };
        let count = write.data.len();
        let file = &mut self.files[write.file];
        splice(&mut file.current, write.offset, &write.data);
        let sector_bytes = options.sector_bytes;
        let sectors =
            write.offset / sector_bytes..(write.offset + count as u64).div_ceil(sector_bytes);
        // A full rewrite of a sector clears its latent error; a partial one
        // is a read-modify-write, which the error would have failed, but
        // the model keeps it simple and clears it too.
        for sector in sectors {
            file.latent.remove(&sector);
            file.damaged.remove(&sector);
        }
        if write.dsync {
            persist(file, write.offset, &write.data, options, prng);
        } else {
            self.completions += 1;
            file.unsynced.push(Unsynced {
                completion: self.completions,
                offset: write.offset,
                data: write.data,
            });
        }
        count
    }

    /// The fsync watermark: an fsync submitted now covers the writes that
    /// completed up to here.
    pub(crate) fn fsync_watermark(&self) -> u64 {
        self.completions
    }

    /// Completes an fsync of `file` covering writes up to `watermark`: they
    /// reach the medium, or with `failed` they are dropped from it for good
    /// while reads still see them (what Linux does after a writeback error).
    pub(crate) fn complete_fsync(
        &mut self,
        file: FileId,
        watermark: u64,
        failed: bool,
        options: &DiskOptions,
        prng: &mut Prng,
    ) {
        let file = &mut self.files[file];
        let covered = file
            .unsynced
            .iter()
            .take_while(|write| write.completion <= watermark)
            .count();
        let writes: Vec<Unsynced> = file.unsynced.drain(..covered).collect();
        if failed {
            return;
        }
        for write in writes {
            persist(file, write.offset, &write.data, options, prng);
        }
    }

    /// A crash: every write not on the medium is lost, torn or kept as a
    /// prefix; then the page cache is what the medium holds.
    pub(crate) fn crash(&mut self, options: &DiskOptions, prng: &mut Prng) {
        self.epoch += 1;
        let in_flight = std::mem::take(&mut self.in_flight);
        for (index, file) in self.files.iter_mut().enumerate() {
            let unsynced = std::mem::take(&mut file.unsynced);
            let pending = in_flight.values().filter(|write| write.file == index);
            let writes = unsynced
                .iter()
                .map(|write| (write.offset, &write.data))
                .chain(pending.map(|write| (write.offset, &write.data)));
            for (offset, data) in writes {
                resolve_on_crash(file, offset, data, options, prng);
            }
            file.current = file.durable.clone();
        }
    }

    /// Sectors of the file at `path` damaged by latent errors, corruption
    /// or misdirected writes, and not rewritten since.
    pub(crate) fn damaged_sectors(&self, path: &Path) -> BTreeSet<u64> {
        self.lookup(path)
            .map(|file| self.files[file].damaged.clone())
            .unwrap_or_default()
    }
}

/// Copies `data` into `bytes` at `offset`, growing it with zeros as needed.
fn splice(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[offset as usize..end].copy_from_slice(data);
}

/// Splits a write into its sector-bounded pieces: (offset, bytes).
fn sector_pieces(offset: u64, data: &[u8], sector_bytes: u64) -> Vec<(u64, &[u8])> {
    let mut pieces = Vec::new();
    let mut start = 0usize;
    while start < data.len() {
        let at = offset + start as u64;
        let room = (sector_bytes - at % sector_bytes) as usize;
        let end = data.len().min(start + room);
        pieces.push((at, &data[start..end]));
        start = end;
    }
    pieces
}

fn resolve_on_crash(
    file: &mut File,
    offset: u64,
    data: &[u8],
    options: &DiskOptions,
    prng: &mut Prng,
) {
    if prng.chance(options.crash_lost_probability) {
        return;
    }
    let pieces = sector_pieces(offset, data, options.sector_bytes);
    if prng.chance(options.crash_torn_probability) {
        for (at, piece) in pieces {
            if prng.chance(Probability::percent(50)) {
                persist(file, at, piece, options, prng);
            }
        }
    } else {
        let kept = prng.range_inclusive(1, pieces.len() as u64) as usize;
        for &(at, piece) in &pieces[..kept] {
            persist(file, at, piece, options, prng);
        }
    }
}

/// Writes to the medium, where corruption and misdirection happen.
fn persist(file: &mut File, offset: u64, data: &[u8], options: &DiskOptions, prng: &mut Prng) {
    let sector_bytes = options.sector_bytes;
    let first = offset / sector_bytes;
    let last = (offset + data.len() as u64).div_ceil(sector_bytes);
    let mut target = offset;
    if prng.chance(options.misdirect_probability) {
        // Land whole sectors away, somewhere within the file or just past it.
        let sectors = (file.durable.len() as u64 / sector_bytes).max(last) + 1;
        let shift = prng.range_inclusive(1, sectors);
        target = (offset + shift * sector_bytes) % (sectors * sector_bytes);
        for sector in first..last {
            file.damaged.insert(sector);
        }
        let moved = target / sector_bytes;
        for sector in moved..moved + (last - first) + 1 {
            file.damaged.insert(sector);
        }
    }
    splice(&mut file.durable, target, data);
    if prng.chance(options.corruption_probability) && !data.is_empty() {
        let byte = target + prng.below(data.len() as u64);
        file.durable[byte as usize] ^= 1 << prng.below(8);
        file.damaged.insert(byte / sector_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DiskOptions {
        DiskOptions {
            latent_error_probability: Probability::NEVER,
            ..DiskOptions::default()
        }
    }

    fn write(disk: &mut Disk, file: FileId, offset: u64, data: &[u8], prng: &mut Prng) {
        let id = disk.begin_write(InFlightWrite {
            file,
            offset,
            data: data.to_vec(),
            dsync: false,
        });
        disk.complete_write(id, &options(), prng);
    }

    fn read_all(disk: &mut Disk, file: FileId, prng: &mut Prng) -> Vec<u8> {
        let len = disk.len(file) as usize;
        let data = disk.read(file, 0, len, &options(), prng).unwrap().to_vec();
        assert_eq!(data.len(), len);
        data
    }

    #[test]
    fn synced_writes_survive_a_crash_and_reads_see_unsynced_ones() {
        let mut prng = Prng::new(1);
        let mut disk = Disk::new();
        let file = disk.open(Path::new("log"), true).unwrap();
        write(&mut disk, file, 0, b"durable", &mut prng);
        let watermark = disk.fsync_watermark();
        disk.complete_fsync(file, watermark, false, &options(), &mut prng);
        write(&mut disk, file, 7, b"+volatile", &mut prng);
        assert_eq!(read_all(&mut disk, file, &mut prng), b"durable+volatile");
        let lost = DiskOptions {
            crash_lost_probability: Probability::ALWAYS,
            ..options()
        };
        disk.crash(&lost, &mut prng);
        assert_eq!(read_all(&mut disk, file, &mut prng), b"durable");
    }

    #[test]
    fn an_fsync_covers_only_writes_completed_before_it() {
        let mut prng = Prng::new(2);
        let mut disk = Disk::new();
        let file = disk.open(Path::new("log"), true).unwrap();
        write(&mut disk, file, 0, b"a", &mut prng);
        let watermark = disk.fsync_watermark();
        write(&mut disk, file, 1, b"b", &mut prng);
        disk.complete_fsync(file, watermark, false, &options(), &mut prng);
        let lost = DiskOptions {
            crash_lost_probability: Probability::ALWAYS,
            ..options()
        };
        disk.crash(&lost, &mut prng);
        assert_eq!(read_all(&mut disk, file, &mut prng), b"a");
    }

    #[test]
    fn a_failed_fsync_drops_its_writes_from_the_medium() {
        let mut prng = Prng::new(3);
        let mut disk = Disk::new();
        let file = disk.open(Path::new("log"), true).unwrap();
        write(&mut disk, file, 0, b"gone", &mut prng);
        let watermark = disk.fsync_watermark();
        disk.complete_fsync(file, watermark, true, &options(), &mut prng);
        assert_eq!(read_all(&mut disk, file, &mut prng), b"gone");
        // A later fsync succeeds, but the data never reached the medium.
        let watermark = disk.fsync_watermark();
        disk.complete_fsync(file, watermark, false, &options(), &mut prng);
        disk.crash(&options(), &mut prng);
        assert_eq!(read_all(&mut disk, file, &mut prng), b"");
    }

    #[test]
    fn crash_tears_at_sector_granularity_only() {
        for seed in 0..200 {
            let mut prng = Prng::new(seed);
            let mut disk = Disk::new();
            let file = disk.open(Path::new("log"), true).unwrap();
            let data: Vec<u8> = (0..4 * 512).map(|i| (i / 512) as u8 + 1).collect();
            write(&mut disk, file, 0, &data, &mut prng);
            disk.crash(&options(), &mut prng);
            let after = read_all(&mut disk, file, &mut prng);
            for sector in after.chunks(512) {
                let first = sector[0];
                assert!(sector.iter().all(|&byte| byte == first), "seed {seed}");
            }
        }
    }

    #[test]
    fn latent_errors_stick_until_overwritten() {
        let mut prng = Prng::new(4);
        let mut disk = Disk::new();
        let file = disk.open(Path::new("data"), true).unwrap();
        write(&mut disk, file, 0, &[7; 1024], &mut prng);
        let always = DiskOptions {
            latent_error_probability: Probability::ALWAYS,
            ..options()
        };
        assert_eq!(disk.read(file, 0, 1024, &always, &mut prng), Err(libc::EIO));
        assert_eq!(
            disk.read(file, 0, 1024, &options(), &mut prng),
            Err(libc::EIO)
        );
        assert!(!disk.damaged_sectors(Path::new("data")).is_empty());
        write(&mut disk, file, 0, &[8; 1024], &mut prng);
        assert_eq!(
            disk.read(file, 0, 1024, &options(), &mut prng)
                .map(<[u8]>::len),
            Ok(1024)
        );
        assert!(disk.damaged_sectors(Path::new("data")).is_empty());
    }
}
