//! A node's simulated disk: a namespace of directories and files, each file
//! made of file-system blocks (allocated or holes) with a page cache
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
//!   Every such sector is recorded as damaged, for checkers. Reads can be
//!   corrupt or misdirected on the way back, which damages nothing.
//! - A drive may lie about an fsync (off unless asked for): it succeeds and
//!   leaves what it covered unsynced.
//! - Latency faults (stalls, slow periods) are the world's (`files.rs`);
//!   the slow periods are kept here, per disk.
//! - Metadata follows fsync too. A length set by `ftruncate` (or
//!   `O_TRUNC`, or an extending `fallocate`) reaches the medium with the
//!   file's next fsync; a crash keeps or loses it. A namespace change
//!   (create, mkdir, rename, unlink) is logged, and becomes durable when an
//!   fsync of its directory completes, with every change logged before it
//!   (a journal commits in order); a crash keeps a prefix of the log, so a
//!   rename is kept or undone whole.
//! - Blocks are allocated by writes, never by extending the length, so a
//!   sparse file takes only what was written (`capacity_bytes` counts
//!   allocated blocks). `O_DIRECT` follows ext4's rules, which depend on
//!   which blocks are allocated: see [`Disk::plan_write`] and
//!   [`Disk::direct_read_refused`].
// A write's ranges are a `Vec` of `Range`s, often one: that is meant, not a
// `Vec` of the range's values.
#![allow(clippy::single_range_in_vec_init)]

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::contents::{Contents, Piece};
use super::namespace::{Change, DirId, Namespace, Resolved};
use super::options::DiskOptions;
use super::prng::{Prng, Probability};

/// One file's index in a disk.
pub(crate) type FileId = usize;

/// A change to a file in the page cache that has not reached the medium.
struct Unsynced {
    /// Order of completion: an fsync covers the changes completed before
    /// it was submitted.
    completion: u64,
    change: FileChange,
}

/// What an unsynced change is.
enum FileChange {
    /// A write landed.
    Write { offset: u64, data: Vec<u8> },
    /// The length was set (`ftruncate`, `O_TRUNC`, `fallocate` extending
    /// the file): metadata, durable only through an fsync or fdatasync of
    /// the file, as on ext4 (the inode is journaled with it).
    Length(u64),
}

/// A namespace change not yet durable, with the directories it changes.
struct Logged {
    change: Change,
    directories: [DirId; 2],
}

pub(crate) struct File {
    /// What reads see: the page cache.
    current: Contents,
    /// What survives a crash: the medium.
    durable: Contents,
    unsynced: Vec<Unsynced>,
    /// Sectors that give `EIO` until overwritten.
    latent: BTreeSet<u64>,
    /// Sectors hit by a latent error, corruption or a misdirected write
    /// since they were last written correctly.
    damaged: BTreeSet<u64>,
    /// Times on the node's wall clock, in nanoseconds since the epoch: of
    /// the creation, the last change of the contents, and the last change
    /// of the contents or the metadata.
    born_ns: i64,
    modified_ns: i64,
    changed_ns: i64,
    /// A name in the namespace refers to the file.
    linked: bool,
    /// Descriptors open on it. Once it has neither a name nor an open
    /// descriptor its blocks are freed, as Linux frees an unlinked file's
    /// at the last close.
    open_fds: u32,
}

impl File {
    fn new(options: &DiskOptions, now_ns: i64) -> File {
        File {
            current: Contents::new(options.block_bytes),
            durable: Contents::new(options.block_bytes),
            unsynced: Vec::new(),
            latent: BTreeSet::new(),
            damaged: BTreeSet::new(),
            born_ns: now_ns,
            modified_ns: now_ns,
            changed_ns: now_ns,
            linked: true,
            open_fds: 0,
        }
    }

    /// Its contents changed at `now_ns`.
    fn touch(&mut self, now_ns: i64) {
        self.modified_ns = now_ns;
        self.changed_ns = now_ns;
    }
}

/// How `fallocate` changes a file, from its mode bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fallocate {
    /// Reserve the range; extend the file over it unless `keep_size`.
    Reserve { keep_size: bool },
    /// Free the range (`PUNCH_HOLE | KEEP_SIZE`).
    Punch,
}

/// A write submitted and not yet completed. Kept here, not in the event,
/// so that a crash can resolve it like an unsynced write.
pub(crate) struct InFlightWrite {
    pub(crate) file: FileId,
    /// What lands, as (offset, bytes): the whole write, or for an
    /// `O_DIRECT` write that fails part-way, the part that ext4 writes
    /// before it fails (possibly nothing).
    pub(crate) pieces: Vec<(u64, Vec<u8>)>,
    pub(crate) dsync: bool,
    /// What the write completes with: the bytes written, or `-errno`.
    pub(crate) result: i32,
}

/// What a write will do, decided when it is submitted: the ranges of the
/// file that it changes, and its result.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WritePlan {
    pub(crate) ranges: Vec<Range<u64>>,
    pub(crate) result: Result<u64, i32>,
}

impl WritePlan {
    fn refused(errno: i32) -> WritePlan {
        WritePlan {
            ranges: Vec::new(),
            result: Err(errno),
        }
    }
}

/// A run of a transfer over blocks that are all allocated or all holes.
#[derive(Debug)]
struct Segment {
    range: Range<u64>,
    allocated: bool,
}

pub(crate) struct Disk {
    /// What paths name now.
    namespace: Namespace,
    /// What they would name after a crash: `namespace` without the
    /// changes in `log`.
    durable_namespace: Namespace,
    /// Namespace changes not yet durable, oldest first: the journal's
    /// uncommitted part.
    log: std::collections::VecDeque<Logged>,
    /// How many changes left the log before its first (committed, or
    /// resolved by a crash): the log position of `log[0]`.
    log_base: u64,
    files: Vec<File>,
    pub(crate) in_flight: std::collections::BTreeMap<u64, InFlightWrite>,
    next_write: u64,
    /// Counts completed writes, for fsync coverage.
    completions: u64,
    /// Bumped by a crash: disk events from before it are void.
    pub(crate) epoch: u64,
    /// The current or next slow period (gray failure), in world time, once
    /// drawn. The drive's, so a crash keeps it.
    gray: Option<Range<u64>>,
}

impl Disk {
    pub(crate) fn new() -> Disk {
        Disk {
            namespace: Namespace::default(),
            durable_namespace: Namespace::default(),
            log: std::collections::VecDeque::new(),
            log_base: 0,
            files: Vec::new(),
            in_flight: std::collections::BTreeMap::new(),
            next_write: 0,
            completions: 0,
            epoch: 0,
            gray: None,
        }
    }

    /// What `path` names (see [`Namespace::resolve`]).
    pub(crate) fn resolve(&self, path: &Path) -> Result<Resolved, i32> {
        self.namespace.resolve(path)
    }

    /// Creates an empty file at `path`, which [`Disk::resolve`] found
    /// missing, at `now_ns` on the node's wall clock. Its name is durable
    /// once its directory is fsynced.
    pub(crate) fn create_file(
        &mut self,
        path: PathBuf,
        options: &DiskOptions,
        now_ns: i64,
    ) -> FileId {
        let file = self.files.len();
        self.files.push(File::new(options, now_ns));
        self.namespace.insert_file(path.clone(), file);
        self.log_change(Change::File { path, file });
        file
    }

    /// Records a namespace change just made, as not yet durable.
    fn log_change(&mut self, change: Change) {
        // The directories as they are now: a change never moves them.
        let directories = change.directories(&self.namespace);
        self.log.push_back(Logged {
            change,
            directories,
        });
    }

    /// The log position an fsync of a directory submitted now covers up to.
    pub(crate) fn namespace_watermark(&self) -> u64 {
        self.log_base + self.log.len() as u64
    }

    /// An fsync of `directory`, submitted when the log was at `watermark`,
    /// completed: every change to its entries before that is durable, and
    /// with them every change before them (the journal commits in order).
    pub(crate) fn complete_directory_fsync(&mut self, directory: DirId, watermark: u64) {
        let covered = watermark
            .saturating_sub(self.log_base)
            .min(self.log.len() as u64) as usize;
        let last = self
            .log
            .iter()
            .take(covered)
            .rposition(|logged| logged.directories.contains(&directory));
        if let Some(last) = last {
            self.commit(last + 1);
        }
    }

    /// Makes the first `count` logged changes durable.
    fn commit(&mut self, count: usize) {
        assert!(count <= self.log.len());
        for logged in self.log.drain(..count) {
            self.durable_namespace.apply(&logged.change);
        }
        self.log_base += count as u64;
        // An unlink that is durable now may free a closed file.
        for file in 0..self.files.len() {
            self.release_if_unreferenced(file);
        }
    }

    /// Whether the directory `directory` was removed.
    pub(crate) fn is_directory_removed(&self, directory: super::namespace::DirId) -> bool {
        self.namespace.is_removed(directory)
    }

    /// `mkdir(2)`: see [`Namespace::mkdir`]. Durable once the directory
    /// it is in is fsynced.
    pub(crate) fn mkdir(&mut self, path: &Path) -> Result<(), i32> {
        let change = self.namespace.mkdir(path)?;
        self.log_change(change);
        Ok(())
    }

    /// `unlinkat(2)`: see [`Namespace::unlink`]. A file open elsewhere
    /// stays readable and writable until its last descriptor closes.
    /// Durable once the directory is fsynced.
    pub(crate) fn unlink(&mut self, path: &Path, remove_dir: bool) -> Result<(), i32> {
        let (file, change) = self.namespace.unlink(path, remove_dir)?;
        // The parent of the entry is still there: logged against it.
        self.log_change(change);
        if let Some(file) = file {
            self.unlinked(file);
        }
        Ok(())
    }

    /// `renameat2(2)`: see [`Namespace::rename`]. Atomic: a crash keeps it
    /// whole or undoes it whole; durable once the directories are fsynced.
    pub(crate) fn rename(
        &mut self,
        old: &Path,
        new: &Path,
        flags: u32,
        now_ns: i64,
    ) -> Result<(), i32> {
        let (replaced, change) = self.namespace.rename(old, new, flags)?;
        if let Some(change) = change {
            self.log_change(change);
        }
        if let Some(file) = replaced {
            self.unlinked(file);
        }
        if let Some(super::namespace::Kind::File(file)) = self.namespace.kind_at(new) {
            self.files[file].changed_ns = now_ns;
        }
        Ok(())
    }

    fn unlinked(&mut self, file: FileId) {
        assert!(self.files[file].linked);
        self.files[file].linked = false;
        self.release_if_unreferenced(file);
    }

    /// A descriptor was opened on `file`.
    pub(crate) fn file_opened(&mut self, file: FileId) {
        self.files[file].open_fds += 1;
    }

    /// A descriptor on `file` was closed.
    pub(crate) fn file_closed(&mut self, file: FileId) {
        let file_state = &mut self.files[file];
        assert!(file_state.open_fds > 0);
        file_state.open_fds -= 1;
        self.release_if_unreferenced(file);
    }

    /// Frees the blocks of a file nothing refers to any more: no name, no
    /// open descriptor, and no name a crash would bring back. Its id is
    /// never reused.
    fn release_if_unreferenced(&mut self, file: FileId) {
        let state = &self.files[file];
        if state.linked || state.open_fds > 0 {
            return;
        }
        let empty = state.current.blocks_allocated() == 0
            && state.durable.blocks_allocated() == 0
            && state.unsynced.is_empty();
        if empty || self.durable_namespace.references(file) {
            return;
        }
        let file = &mut self.files[file];
        let block_bytes = file.current.block_bytes();
        file.current = Contents::new(block_bytes);
        file.durable = Contents::new(block_bytes);
        file.unsynced.clear();
        file.latent.clear();
        file.damaged.clear();
        assert_eq!(file.current.blocks_allocated(), 0);
    }

    /// `fallocate(2)` of `len` bytes at `offset`, after the checks the fd
    /// allows: `EFBIG` past the largest file, `ENOSPC` if the blocks to
    /// reserve do not fit (nothing reserved then; ext4 may reserve a part
    /// first). A reservation is unwritten blocks (see `contents.rs`); a
    /// punch frees the whole blocks of the range and zeroes the rest, in
    /// the page cache and on the medium, and cuts the unsynced writes
    /// there, as Linux drops the dirty pages it punches. Reservations and
    /// punches are durable at once; an extension of the length follows
    /// the file's fsync, as a truncate does.
    pub(crate) fn fallocate(
        &mut self,
        file: FileId,
        how: Fallocate,
        (offset, len): (u64, u64),
        options: &DiskOptions,
        now_ns: i64,
    ) -> Result<(), i32> {
        let end = offset.checked_add(len).ok_or(libc::EFBIG)?;
        if end > options.file_bytes_max {
            return Err(libc::EFBIG);
        }
        let block_bytes = options.block_bytes;
        match how {
            Fallocate::Reserve { keep_size } => {
                let blocks = offset / block_bytes..end.div_ceil(block_bytes);
                let more = self.files[file].current.holes_in(blocks.clone());
                if !self.fits(more, options) {
                    return Err(libc::ENOSPC);
                }
                let state = &mut self.files[file];
                state.current.reserve(blocks.clone());
                state.durable.reserve(blocks);
                if !keep_size && end > state.current.len() {
                    // The length follows fsync, as a truncate's does.
                    self.set_len(file, end, options, now_ns);
                }
            }
            Fallocate::Punch => {
                let file = &mut self.files[file];
                let len_bytes = file.current.len();
                if offset >= len_bytes {
                    return Ok(()); // ext4_punch_hole: nothing at or past the end
                }
                // As ext4 does: a range past the end ends at the end of
                // the page that holds the end, whether it reached that far
                // or not.
                let end = match end > len_bytes {
                    true => len_bytes.next_multiple_of(block_bytes),
                    false => end,
                };
                file.current.punch(offset..end);
                file.durable.punch(offset..end);
                file.unsynced = std::mem::take(&mut file.unsynced)
                    .into_iter()
                    .flat_map(|unsynced| cut_out(unsynced, offset..end))
                    .collect();
                file.touch(now_ns);
            }
        }
        Ok(())
    }

    /// A `statx` record of `file`, as ext4 fills one.
    pub(crate) fn statx(&self, file: FileId, options: &DiskOptions) -> libc::statx {
        let file = &self.files[file];
        let mut stx = super::files::statx_zeroed();
        stx.stx_mask = crate::fs::STATX_MASK;
        stx.stx_mode = (libc::S_IFREG | crate::fs::FILE_MODE) as u16;
        stx.stx_nlink = u32::from(file.linked);
        stx.stx_size = file.current.len();
        stx.stx_blocks = file.current.blocks_allocated() * options.block_bytes / 512;
        stx.stx_blksize = options.block_bytes as u32;
        stx.stx_dio_offset_align = options.sector_bytes as u32;
        stx.stx_dio_mem_align = options.direct_memory_align_bytes as u32;
        stx.stx_btime = super::files::timestamp(file.born_ns);
        stx.stx_mtime = super::files::timestamp(file.modified_ns);
        stx.stx_atime = super::files::timestamp(file.modified_ns);
        stx.stx_ctime = super::files::timestamp(file.changed_ns);
        stx
    }

    /// A file's contents changed at `now_ns` (a write landed, a truncate).
    pub(crate) fn touch(&mut self, file: FileId, now_ns: i64) {
        self.files[file].touch(now_ns);
    }

    /// `mkdir -p`: see [`Namespace::create_dir_all`]. The harness's: the
    /// new directories are durable at once, and so is every namespace
    /// change before them.
    pub(crate) fn create_dir_all(&mut self, path: &Path) -> Result<(), i32> {
        self.commit(self.log.len());
        for change in self.namespace.create_dir_all(path)? {
            self.durable_namespace.apply(&change);
        }
        Ok(())
    }

    pub(crate) fn lookup(&self, path: &Path) -> Option<FileId> {
        self.namespace.lookup(path)
    }

    #[cfg(test)]
    pub(crate) fn len(&self, file: FileId) -> u64 {
        self.files[file].current.len()
    }

    /// Blocks all files take in the page cache: what counts against
    /// `capacity_bytes`.
    fn blocks_used(&self) -> u64 {
        self.files
            .iter()
            .map(|file| file.current.blocks_allocated())
            .sum()
    }

    /// Whether `more` blocks fit on the disk, besides those in use.
    fn fits(&self, more: u64, options: &DiskOptions) -> bool {
        let blocks = self.blocks_used() + more;
        blocks.saturating_mul(options.block_bytes) <= options.capacity_bytes
    }

    /// Sets a file's length in the page cache; on the medium it changes
    /// with the file's next fsync or fdatasync, or a crash may undo it
    /// (`crash_metadata_lost_probability`). Cutting also cuts the writes not
    /// yet synced, as Linux drops the dirty pages past the new end; it frees
    /// whole blocks past the end.
    pub(crate) fn set_len(
        &mut self,
        file: FileId,
        len_bytes: u64,
        options: &DiskOptions,
        now_ns: i64,
    ) {
        self.completions += 1;
        let completion = self.completions;
        let file = &mut self.files[file];
        file.touch(now_ns);
        file.current.set_len(len_bytes);
        let first_gone = len_bytes.div_ceil(options.sector_bytes);
        file.latent.retain(|&sector| sector < first_gone);
        for unsynced in &mut file.unsynced {
            if let FileChange::Write { offset, data } = &mut unsynced.change {
                let kept = len_bytes.saturating_sub(*offset);
                data.truncate(kept.min(data.len() as u64) as usize);
            }
        }
        file.unsynced.retain(|unsynced| match &unsynced.change {
            FileChange::Write { data, .. } => !data.is_empty(),
            FileChange::Length(_) => true,
        });
        file.unsynced.push(Unsynced {
            completion,
            change: FileChange::Length(len_bytes),
        });
        assert!(file.current.len() == len_bytes);
    }

    /// Reads up to `len` bytes at `offset` from the page cache, handing
    /// them to `visit` in order (holes as zeros); returns how many (0 at
    /// the end).
    ///
    /// A sector with a latent error (possibly one found now) cannot be
    /// read. Linux's page cache reads a file by whole pages, and a page that
    /// holds a bad sector fails: `filemap_read` returns what it copied from
    /// the pages before it, or `EIO` if it is the first. So a buffered read
    /// stops at the start of the first page (`block_bytes`, the page here)
    /// it touches that holds a bad sector, even one outside the bytes asked
    /// for, or is `Err(EIO)` if that page is where it starts. An `O_DIRECT` read (`direct`) is `Err(EIO)`
    /// whole, as iomap fails a direct read whose bio fails. Nothing is
    /// visited on an error.
    ///
    /// Then the read-path faults: a misdirected read
    /// (`read_misdirect_probability`) hands back as many bytes from whole
    /// sectors away (zeros past the end), and a corrupt one
    /// (`read_corruption_probability`) flips one bit of what it hands back,
    /// if that bit is in a written block. Neither touches the file.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read(
        &mut self,
        file: FileId,
        (offset, len): (u64, u64),
        direct: bool,
        options: &DiskOptions,
        prng: &mut Prng,
        mut visit: impl FnMut(Piece<'_>),
    ) -> Result<u64, i32> {
        let sector_bytes = options.sector_bytes;
        let file = &mut self.files[file];
        let file_len = file.current.len();
        if offset >= file_len {
            return Ok(0);
        }
        let mut end = file_len.min(offset.saturating_add(len));
        let sectors = offset / sector_bytes..end.div_ceil(sector_bytes);
        if prng.chance(options.latent_error_probability) {
            let sector = prng.range_inclusive(sectors.start, sectors.end - 1);
            file.latent.insert(sector);
            file.damaged.insert(sector);
        }
        // A buffered read reads whole pages: a bad sector anywhere in the
        // pages it touches fails its page.
        let page_bytes = options.block_bytes;
        let checked = match direct {
            true => sectors,
            false => {
                let sectors_per_page = page_bytes / sector_bytes;
                let first = sectors.start / sectors_per_page * sectors_per_page;
                first..sectors.end.next_multiple_of(sectors_per_page)
            }
        };
        if let Some(&bad) = file.latent.range(checked).next() {
            let page_start = bad * sector_bytes / page_bytes * page_bytes;
            if direct || page_start <= offset {
                return Err(libc::EIO);
            }
            end = page_start;
        }
        let count = end - offset;
        // Drawn only when on, so that a fault that is off moves no draw.
        let mut source = offset;
        if prng.chance(options.read_misdirect_probability) {
            // Whole sectors away, within the file or just past it, never
            // where it was asked for.
            let sectors = file_len.div_ceil(sector_bytes) + 1;
            let shift = prng.range_inclusive(1, sectors - 1);
            source = (offset + shift * sector_bytes) % (sectors * sector_bytes);
        }
        let mut flip = None;
        if prng.chance(options.read_corruption_probability) {
            flip = Some((prng.below(count), 1u8 << prng.below(8)));
        }
        let mut at = 0u64;
        let mut emit = |piece: Piece<'_>| {
            let piece_len = match piece {
                Piece::Data(bytes) => bytes.len() as u64,
                Piece::Zeros(zeros) => zeros as u64,
            };
            match (piece, flip) {
                (Piece::Data(bytes), Some((byte, mask)))
                    if (at..at + piece_len).contains(&byte) =>
                {
                    let within = (byte - at) as usize;
                    if within > 0 {
                        visit(Piece::Data(&bytes[..within]));
                    }
                    visit(Piece::Data(&[bytes[within] ^ mask]));
                    if within + 1 < bytes.len() {
                        visit(Piece::Data(&bytes[within + 1..]));
                    }
                }
                (piece, _) => visit(piece),
            }
            at += piece_len;
        };
        let visited = file.current.read(source, count, &mut emit);
        if visited < count {
            emit(Piece::Zeros((count - visited) as usize));
        }
        assert_eq!(at, count);
        Ok(count)
    }

    /// Whether the disk is in a slow period (gray failure) at `now_ns`:
    /// the periods are drawn as operations reach them, from the disk's
    /// stream, and only while `gray_interval_mean_ns` is not 0.
    pub(crate) fn is_slow(&mut self, now_ns: u64, options: &DiskOptions, prng: &mut Prng) -> bool {
        if options.gray_interval_mean_ns == 0 {
            return false;
        }
        let draw_period = |prng: &mut Prng, from_ns: u64| {
            let start_ns = from_ns.saturating_add(prng.exponential(options.gray_interval_mean_ns));
            let end_ns = start_ns.saturating_add(prng.exponential(options.gray_duration_mean_ns));
            start_ns..end_ns
        };
        let mut period = match self.gray.take() {
            Some(period) => period,
            None => draw_period(prng, now_ns),
        };
        while now_ns >= period.end {
            period = draw_period(prng, period.end);
        }
        let slow = now_ns >= period.start;
        self.gray = Some(period);
        slow
    }

    /// Whether ext4 refuses an `O_DIRECT` read of `len` bytes at `offset`
    /// with `EINVAL`. A read at or past the end of the file returns 0
    /// before anything is checked. Otherwise ext4 (iomap) walks the range
    /// by extent: over a hole it fills zeros without looking at alignment;
    /// each run over allocated blocks goes to the device, so it must start
    /// and end on a sector, and the memory it lands in must start on a
    /// `direct_memory_align_bytes` boundary: the buffer is taken to start
    /// on one, so that is where the run starts relative to the read's
    /// start. (A read that starts off a sector in a hole is refused, then,
    /// if allocated blocks follow it.) A read that reaches past the
    /// largest file is refused too: ext4 cannot map a block there, and
    /// does not cut a direct read short at `s_maxbytes` as it cuts a
    /// buffered one.
    pub(crate) fn direct_read_refused(
        &self,
        file: FileId,
        (offset, len): (u64, u64),
        options: &DiskOptions,
    ) -> bool {
        let contents = &self.files[file].current;
        if offset >= contents.len() || len == 0 {
            return false;
        }
        if offset.saturating_add(len) > options.file_bytes_max {
            return true;
        }
        // Nothing past the end of the file is allocated: walk up to it.
        let end = offset
            .saturating_add(len)
            .min(contents.len().next_multiple_of(options.block_bytes));
        segments(contents, offset..end, options.block_bytes)
            .iter()
            .any(|segment| segment.allocated && !direct_aligned(segment, offset, options))
    }

    /// What a write of `len` bytes at `offset` will do.
    ///
    /// - At or past `file_bytes_max`: `EFBIG`; a write across it is cut
    ///   there (a short write), as `generic_write_checks` does.
    /// - A buffered write lands up to the first block it would allocate
    ///   that does not fit: a short write, or `ENOSPC` if that is its first
    ///   byte (see [`Disk::buffered_write_end`]).
    /// - An `O_DIRECT` write goes extent by extent, as ext4's iomap path
    ///   does (see [`Disk::plan_direct_write`]).
    pub(crate) fn plan_write(
        &self,
        file: FileId,
        (offset, len): (u64, u64),
        direct: bool,
        options: &DiskOptions,
    ) -> WritePlan {
        if offset >= options.file_bytes_max {
            return WritePlan::refused(libc::EFBIG);
        }
        let end = offset + len.min(options.file_bytes_max - offset);
        if direct {
            return self.plan_direct_write(file, offset..end, options);
        }
        let wanted_end = end;
        let end = self.buffered_write_end(file, offset..wanted_end, options);
        if end == offset && wanted_end > offset {
            // Not one byte fits (a write of nothing writes nothing: 0).
            return WritePlan::refused(libc::ENOSPC);
        }
        WritePlan {
            ranges: vec![offset..end],
            result: Ok(end - offset),
        }
    }

    /// Where a buffered write of `range` stops: at its end, or at the
    /// start of the first block it would allocate that does not fit, as
    /// `generic_perform_write` stops at the first page whose block ext4
    /// cannot reserve and returns the bytes copied before it (measured:
    /// a 300 KiB write to a 4 MiB ext4 that had 112,212 bytes left wrote
    /// those and ended on a block boundary; the next write was `ENOSPC`).
    /// Blocks already allocated need nothing, wherever they are.
    fn buffered_write_end(&self, file: FileId, range: Range<u64>, options: &DiskOptions) -> u64 {
        let contents = &self.files[file].current;
        let block_bytes = options.block_bytes;
        let mut allocating = 0;
        for block in range.start / block_bytes..range.end.div_ceil(block_bytes) {
            if contents.is_allocated(block) {
                continue;
            }
            allocating += 1;
            if !self.fits(allocating, options) {
                return (block * block_bytes).max(range.start);
            }
        }
        range.end
    }

    /// An `O_DIRECT` write, segment by segment as ext4's iomap path maps
    /// it: a hole's blocks are allocated (`ENOSPC` if they do not fit),
    /// then each segment must start and end on a sector, and its memory
    /// start on `direct_memory_align_bytes` (`EINVAL`), as for reads. The
    /// first segment that fails fails the write; the segments before it
    /// were written, but only those over blocks that were already
    /// allocated show (ext4 leaves the new ones unwritten, so they read as
    /// zeros), and the length does not change. This model takes each run
    /// of allocated blocks as one extent; ext4 may split one, and then
    /// writes more of it before failing (the differential test keeps out
    /// of that case).
    fn plan_direct_write(
        &self,
        file: FileId,
        range: Range<u64>,
        options: &DiskOptions,
    ) -> WritePlan {
        let contents = &self.files[file].current;
        let mut landed = Vec::new();
        let mut allocating = 0;
        let mut failed = None;
        for segment in segments(contents, range.clone(), options.block_bytes) {
            if !segment.allocated {
                allocating += blocks_in(&segment.range, options.block_bytes);
                if !self.fits(allocating, options) {
                    failed = Some(libc::ENOSPC);
                    break;
                }
            }
            if !direct_aligned(&segment, range.start, options) {
                failed = Some(libc::EINVAL);
                break;
            }
            let shown = segment.range.start..segment.range.end.min(contents.len());
            if segment.allocated && !shown.is_empty() {
                landed.push(shown);
            }
        }
        match failed {
            Some(errno) => WritePlan {
                ranges: landed,
                result: Err(errno),
            },
            None => WritePlan {
                result: Ok(range.end - range.start),
                ranges: vec![range],
            },
        }
    }

    /// Records a write as in flight; returns its id.
    pub(crate) fn begin_write(&mut self, write: InFlightWrite) -> u64 {
        let id = self.next_write;
        self.next_write += 1;
        self.in_flight.insert(id, write);
        id
    }

    /// Completes an in-flight write: into the page cache, and onto the
    /// medium too with `O_DSYNC`. Returns its result.
    pub(crate) fn complete_write(
        &mut self,
        id: u64,
        options: &DiskOptions,
        prng: &mut Prng,
    ) -> i32 {
        let Some(write) = self.in_flight.remove(&id) else {
            return 0;
        };
        let (file_id, result) = (write.file, write.result);
        self.land_write(write, options, prng);
        // A write to a file unlinked and closed meanwhile lands nowhere.
        self.release_if_unreferenced(file_id);
        result
    }

    fn land_write(&mut self, write: InFlightWrite, options: &DiskOptions, prng: &mut Prng) {
        let file = &mut self.files[write.file];
        let sector_bytes = options.sector_bytes;
        if !write.dsync && !write.pieces.is_empty() {
            self.completions += 1;
        }
        for (offset, data) in write.pieces {
            file.current.splice(offset, &data);
            let sectors =
                offset / sector_bytes..(offset + data.len() as u64).div_ceil(sector_bytes);
            // A full rewrite of a sector clears its latent error; a partial
            // one is a read-modify-write, which the error would have failed,
            // but the model keeps it simple and clears it too.
            for sector in sectors {
                file.latent.remove(&sector);
                file.damaged.remove(&sector);
            }
            if write.dsync {
                persist(file, offset, &data, options, prng);
            } else {
                file.unsynced.push(Unsynced {
                    completion: self.completions,
                    change: FileChange::Write { offset, data },
                });
            }
        }
    }

    /// The fsync watermark: an fsync submitted now covers the writes that
    /// completed, and the lengths set, up to here.
    pub(crate) fn fsync_watermark(&self) -> u64 {
        self.completions
    }

    /// Completes an fsync of `file` covering writes up to `watermark`: they
    /// reach the medium, or with `failed` they are dropped from it for good
    /// while reads still see them (what Linux does after a writeback error).
    /// An fsync that does not fail may be a lie (`fsync_lie_probability`):
    /// then nothing changes, and every write and length it covered stays
    /// unsynced.
    pub(crate) fn complete_fsync(
        &mut self,
        file: FileId,
        watermark: u64,
        failed: bool,
        options: &DiskOptions,
        prng: &mut Prng,
    ) {
        if !failed && prng.chance(options.fsync_lie_probability) {
            return;
        }
        let file = &mut self.files[file];
        let covered = file
            .unsynced
            .iter()
            .take_while(|unsynced| unsynced.completion <= watermark)
            .count();
        // Taken out and put back, so that its room is kept for the next.
        let mut unsynced = std::mem::take(&mut file.unsynced);
        for covered in unsynced.drain(..covered) {
            if failed {
                continue;
            }
            match covered.change {
                FileChange::Write { offset, data } => persist(file, offset, &data, options, prng),
                FileChange::Length(len_bytes) => file.durable.set_len(len_bytes),
            }
        }
        file.unsynced = unsynced;
    }

    /// A crash: every write not on the medium is lost, torn or kept as a
    /// prefix, and every length not on it kept or lost; then the page cache
    /// is what the medium holds. The namespace keeps a prefix of the
    /// changes not yet durable (the journal commits in order), each one
    /// lost, with all after it, with `crash_metadata_lost_probability`.
    pub(crate) fn crash(&mut self, options: &DiskOptions, prng: &mut Prng) {
        self.epoch += 1;
        let in_flight = std::mem::take(&mut self.in_flight);
        for (index, file) in self.files.iter_mut().enumerate() {
            for unsynced in std::mem::take(&mut file.unsynced) {
                match unsynced.change {
                    FileChange::Write { offset, data } => {
                        resolve_on_crash(file, offset, &data, options, prng)
                    }
                    FileChange::Length(len_bytes) => {
                        if !prng.chance(options.crash_metadata_lost_probability) {
                            file.durable.set_len(len_bytes);
                        }
                    }
                }
            }
            let pending = in_flight
                .values()
                .filter(|write| write.file == index)
                .flat_map(|write| write.pieces.iter());
            for (offset, data) in pending {
                resolve_on_crash(file, *offset, data, options, prng);
            }
            file.current = file.durable.clone();
        }
        self.crash_namespace(options, prng);
    }

    /// The namespace after a crash: the durable one, with a prefix of the
    /// changes not yet durable.
    fn crash_namespace(&mut self, options: &DiskOptions, prng: &mut Prng) {
        let kept = (0..self.log.len())
            .take_while(|_| !prng.chance(options.crash_metadata_lost_probability))
            .count();
        self.commit(kept);
        self.log_base += self.log.len() as u64;
        self.log.clear();
        self.namespace = self.durable_namespace.clone();
        let named: BTreeSet<FileId> = self.namespace.files().collect();
        for (index, file) in self.files.iter_mut().enumerate() {
            file.linked = named.contains(&index);
        }
        // What no name refers to any more is gone: files whose creation the
        // crash undid, writes in flight to files unlinked meanwhile.
        for file in 0..self.files.len() {
            self.release_if_unreferenced(file);
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

/// The parts of an unsynced write outside `range` (none, one or two); a
/// length change stays whole.
fn cut_out(unsynced: Unsynced, range: Range<u64>) -> Vec<Unsynced> {
    let completion = unsynced.completion;
    let FileChange::Write { offset, data } = unsynced.change else {
        return vec![unsynced];
    };
    let end = offset + data.len() as u64;
    if end <= range.start || offset >= range.end {
        return vec![Unsynced {
            completion,
            change: FileChange::Write { offset, data },
        }];
    }
    let mut parts = Vec::new();
    if offset < range.start {
        let keep = (range.start - offset) as usize;
        let change = FileChange::Write {
            offset,
            data: data[..keep].to_vec(),
        };
        parts.push(Unsynced { completion, change });
    }
    if end > range.end {
        let skip = (range.end - offset) as usize;
        let change = FileChange::Write {
            offset: range.end,
            data: data[skip..].to_vec(),
        };
        parts.push(Unsynced { completion, change });
    }
    parts
}

/// `range` cut into runs over allocated blocks and over holes (a hole
/// runs on past the end of the file).
fn segments(contents: &Contents, range: Range<u64>, block_bytes: u64) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let block = at / block_bytes;
        let end = range.end.min((block + 1) * block_bytes);
        let allocated = contents.is_allocated(block);
        match segments.last_mut() {
            Some(last) if last.allocated == allocated => last.range.end = end,
            _ => segments.push(Segment {
                range: at..end,
                allocated,
            }),
        }
        at = end;
    }
    segments
}

/// Whether a segment of a transfer that starts at `start` may go to the
/// device: its ends on sectors, and the memory it starts at (its offset
/// from the transfer's start, the buffer taken as aligned) on the
/// device's memory alignment.
fn direct_aligned(segment: &Segment, start: u64, options: &DiskOptions) -> bool {
    let range = &segment.range;
    let sector_bytes = options.sector_bytes;
    range.start % sector_bytes == 0
        && range.end % sector_bytes == 0
        && (range.start - start) % options.direct_memory_align_bytes == 0
}

/// How many blocks `range` touches.
fn blocks_in(range: &Range<u64>, block_bytes: u64) -> u64 {
    if range.is_empty() {
        return 0;
    }
    range.end.div_ceil(block_bytes) - range.start / block_bytes
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
        let sectors = (file.durable.len() / sector_bytes).max(last) + 1;
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
    file.durable.splice(target, data);
    if prng.chance(options.corruption_probability) && !data.is_empty() {
        let byte = target + prng.below(data.len() as u64);
        file.durable.flip_bit(byte, prng.below(8) as u32);
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

    /// A file whose name is durable (as after an fsync of its directory).
    fn create(disk: &mut Disk, path: &str) -> FileId {
        let file = disk.create_file(PathBuf::from(path), &options(), 0);
        disk.commit(disk.log.len());
        file
    }

    fn write(disk: &mut Disk, file: FileId, offset: u64, data: &[u8], prng: &mut Prng) {
        let id = disk.begin_write(InFlightWrite {
            file,
            pieces: vec![(offset, data.to_vec())],
            dsync: false,
            result: data.len() as i32,
        });
        disk.complete_write(id, &options(), prng);
    }

    fn read_all(disk: &mut Disk, file: FileId, prng: &mut Prng) -> Vec<u8> {
        let len = disk.len(file);
        let mut data = Vec::new();
        let count = disk
            .read(
                file,
                (0, len),
                false,
                &options(),
                prng,
                |piece| match piece {
                    Piece::Data(bytes) => data.extend_from_slice(bytes),
                    Piece::Zeros(count) => data.resize(data.len() + count, 0),
                },
            )
            .unwrap();
        assert_eq!(count, len);
        assert_eq!(data.len() as u64, len);
        data
    }

    #[test]
    fn synced_writes_survive_a_crash_and_reads_see_unsynced_ones() {
        let mut prng = Prng::new(1);
        let mut disk = Disk::new();
        let file = create(&mut disk, "log");
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
        let file = create(&mut disk, "log");
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
        let file = create(&mut disk, "log");
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
            let file = create(&mut disk, "log");
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
        let file = create(&mut disk, "data");
        write(&mut disk, file, 0, &[7; 1024], &mut prng);
        let always = DiskOptions {
            latent_error_probability: Probability::ALWAYS,
            ..options()
        };
        let ignore = |_: Piece<'_>| {};
        assert_eq!(
            disk.read(file, (0, 1024), false, &always, &mut prng, ignore),
            Err(libc::EIO)
        );
        assert_eq!(
            disk.read(file, (0, 1024), false, &options(), &mut prng, ignore),
            Err(libc::EIO)
        );
        assert!(!disk.damaged_sectors(Path::new("data")).is_empty());
        write(&mut disk, file, 0, &[8; 1024], &mut prng);
        assert_eq!(
            disk.read(file, (0, 1024), false, &options(), &mut prng, ignore),
            Ok(1024)
        );
        assert!(disk.damaged_sectors(Path::new("data")).is_empty());
    }

    #[test]
    fn cutting_a_file_cuts_its_unsynced_writes_too() {
        let mut prng = Prng::new(5);
        let mut disk = Disk::new();
        let file = create(&mut disk, "data");
        write(&mut disk, file, 0, &[1; 8192], &mut prng);
        disk.set_len(file, 100, &options(), 0);
        let watermark = disk.fsync_watermark();
        disk.complete_fsync(file, watermark, false, &options(), &mut prng);
        disk.crash(&options(), &mut prng);
        assert_eq!(read_all(&mut disk, file, &mut prng), vec![1; 100]);
    }

    /// ext4 with 4 KiB blocks on 512-byte sectors (`DiskOptions::default`),
    /// as probed on Linux 6.18: block 0 allocated, block 1 a hole, block 2
    /// allocated, 12288 bytes long.
    fn sparse_disk() -> (Disk, FileId) {
        let mut prng = Prng::new(6);
        let mut disk = Disk::new();
        let file = create(&mut disk, "sparse");
        write(&mut disk, file, 0, &[1; 4096], &mut prng);
        write(&mut disk, file, 8192, &[2; 4096], &mut prng);
        (disk, file)
    }

    #[test]
    fn direct_reads_are_judged_extent_by_extent() {
        let (disk, file) = sparse_disk();
        let refused = |offset, len| disk.direct_read_refused(file, (offset, len), &options());
        assert!(!refused(0, 4096));
        assert!(!refused(512, 1024));
        assert!(
            refused(100, 512),
            "an unaligned start in an allocated block"
        );
        assert!(refused(0, 1000), "an unaligned end in an allocated block");
        assert!(!refused(4096 + 100, 100), "inside the hole");
        assert!(!refused(0, 5000), "allocated, then ending in the hole");
        assert!(
            refused(4000, 5000),
            "starting off a sector in an allocated block"
        );
        assert!(
            refused(4096, 5000),
            "hole, then ending in an allocated block"
        );
        assert!(!refused(8192, 4196), "ending past the end of the file");
        assert!(
            refused(4096 + 100, 8192),
            "off a sector in the hole: block 2's memory is too"
        );
        assert!(!refused(4096 + 512, 7680), "a sector into the hole");
        let max = options().file_bytes_max;
        let mut disk = disk;
        disk.set_len(file, max, &options(), 0);
        let refused = |offset, len| disk.direct_read_refused(file, (offset, len), &options());
        assert!(!refused(max - 512, 512));
        assert!(refused(max - 512, 1024), "past the largest file");
        assert!(!refused(12288 + 7, 3), "at or past the end");
    }

    #[test]
    fn a_direct_write_fails_at_its_first_misaligned_segment() {
        let (disk, file) = sparse_disk();
        let plan = |offset, len| disk.plan_write(file, (offset, len), true, &options());
        assert_eq!(
            plan(0, 5000),
            WritePlan {
                ranges: vec![0..4096],
                result: Err(libc::EINVAL)
            },
            "the allocated block is written, then the hole fails"
        );
        assert_eq!(
            plan(4096, 4196).ranges,
            Vec::<Range<u64>>::new(),
            "a hole shows nothing"
        );
        assert_eq!(plan(0, 8292).ranges, vec![0..4096]);
        assert_eq!(plan(100, 4096), WritePlan::refused(libc::EINVAL));
        assert_eq!(
            plan(512, 8192),
            WritePlan {
                ranges: vec![512..8704],
                result: Ok(8192)
            }
        );
    }

    #[test]
    fn efbig_past_the_largest_file_and_a_write_across_it_is_cut() {
        let (disk, file) = sparse_disk();
        let max = options().file_bytes_max;
        for direct in [false, true] {
            let plan = |offset, len| disk.plan_write(file, (offset, len), direct, &options());
            assert_eq!(plan(max, 512), WritePlan::refused(libc::EFBIG));
            assert_eq!(plan(max - 512, 1024).result, Ok(512));
        }
        let plan = disk.plan_write(file, (max - 1, 2), false, &options());
        assert_eq!(plan.ranges, vec![max - 1..max]);
    }

    #[test]
    fn only_allocated_blocks_count_against_the_capacity() {
        let mut prng = Prng::new(7);
        let mut disk = Disk::new();
        let small = DiskOptions {
            capacity_bytes: 8192,
            ..options()
        };
        let file = create(&mut disk, "sparse");
        disk.set_len(file, 1 << 40, &small, 0);
        assert_eq!(
            disk.plan_write(file, (0, 8192), false, &small).result,
            Ok(8192)
        );
        // A buffered write stops at the first block that does not fit.
        assert_eq!(
            disk.plan_write(file, (0, 8193), false, &small),
            WritePlan {
                ranges: vec![0..8192],
                result: Ok(8192)
            }
        );
        assert_eq!(
            disk.plan_write(file, (100, 8193), false, &small),
            WritePlan {
                ranges: vec![100..8192],
                result: Ok(8092)
            }
        );
        write(&mut disk, file, 1 << 30, &[1], &mut prng);
        assert_eq!(
            disk.plan_write(file, (0, 4096), false, &small).result,
            Ok(4096)
        );
        assert_eq!(
            disk.plan_write(file, (0, 4097), false, &small).result,
            Ok(4096)
        );
        // The disk full: a write that allocates from its first byte is
        // ENOSPC, nothing written, even with allocated blocks after; a
        // write of nothing is still 0.
        write(&mut disk, file, 0, &[1], &mut prng);
        assert_eq!(
            disk.plan_write(file, (8192, 0), false, &small),
            WritePlan {
                ranges: vec![8192..8192],
                result: Ok(0)
            }
        );
        assert_eq!(
            disk.plan_write(file, (4096, 1), false, &small),
            WritePlan::refused(libc::ENOSPC)
        );
        assert_eq!(
            disk.plan_write(file, ((1 << 30) - 4096, 8192), false, &small),
            WritePlan::refused(libc::ENOSPC)
        );
        // One that starts on an allocated block stops where it ends.
        assert_eq!(
            disk.plan_write(file, (1 << 30, 8192), false, &small),
            WritePlan {
                ranges: vec![(1 << 30)..(1 << 30) + 4096],
                result: Ok(4096)
            }
        );
        // Rewriting what is allocated needs nothing more.
        assert_eq!(
            disk.plan_write(file, (1 << 30, 4096), true, &small).result,
            Ok(4096)
        );
    }
}
