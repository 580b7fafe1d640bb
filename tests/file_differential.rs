//! The file differential test: random sequences of file operations run on
//! the real kernel (io_uring, on ext4) and on the simulator (faults off),
//! with every result compared (bytes and errnos), then every file's length
//! and contents. A behaviour in which the simulator differs from ext4 fails
//! here, unless the sequences keep out of it for one of the reasons listed
//! in docs/simulation.md ("The file differential test").
//!
//! ```text
//! cargo test --test file_differential                                         # CI: 200 seeds
//! RINGIO_FILE_DIFFERENTIAL_SEEDS=1000 cargo test --release --test file_differential
//! RINGIO_FILE_DIFFERENTIAL_SEED=1234 cargo test --test file_differential     # replay one
//! RINGIO_EXT4_DIR=/mnt/ext4 cargo test --test file_differential             # elsewhere
//! ```
//!
//! **Where the kernel's files live.** Not in `TMPDIR`, which CI may point at
//! /dev/shm: tmpfs takes `O_DIRECT` as buffered I/O, with none of ext4's
//! rules. The files go under `RINGIO_EXT4_DIR` if it is set,
//! else under the target directory (`CARGO_TARGET_TMPDIR`), which is on the
//! disk that holds the build. That directory must be on ext4 and take
//! `O_DIRECT`; if it is not, the test fails and says so. It never skips
//! for that. The simulator takes the file system's geometry from it: its
//! `sector_bytes` is `stx_dio_offset_align`, `direct_memory_align_bytes`
//! `stx_dio_mem_align`, `block_bytes` the file system's block, and its
//! largest file ext4's for that block size.
//!
//! A step is one operation, run to completion on both before the next:
//! open (of a file, an alias such as `d/../f1`, a directory, a path under
//! a missing directory or under a file, with random `FileOptions`: read,
//! write, create, truncate, direct, dsync), close, read and write (at
//! block-aligned, sector-aligned and unaligned offsets, near the end of the
//! file, and near the largest file; `O_DIRECT` ones from aligned buffers),
//! `set_len` and `ftruncate` (shorter, longer, sparse to 1 TiB, past the
//! largest file), `fallocate` (allocate, `KEEP_SIZE`, punch, and the
//! refused `PUNCH_HOLE` alone), `statx` (kind, length, block size and
//! `O_DIRECT` alignment), `renameat` (plain, `NO_REPLACE`, `EXCHANGE`; of
//! files and directories, over files, directories and nothing), `unlinkat`
//! (of files and directories, with and without `REMOVE_DIR`), `mkdirat`,
//! fsync and fdatasync. At the end every name either side may have made is
//! compared: whether it is there, and what it holds.
//!
//! Kept out of the sequences, each for a reason docs/simulation.md gives:
//! `O_DIRECT` from memory off `stx_dio_mem_align` (the simulator takes
//! every buffer as aligned); an `O_DIRECT` write that starts on a sector,
//! ends off one, and either ends in an allocated block whose block before
//! it (within the write) is allocated too (ext4's extent boundaries decide
//! how much it writes before it fails) or reaches past the end of the file
//! over an allocated block (what it leaves there depends on the page
//! cache); operations in flight together; `ENOSPC`; crashes; and a
//! `statx`'s allocated bytes and times (ext4 counts the blocks of its
//! extent tree once a file has more than four extents, and the times are
//! each clock's own). The
//! generator keeps a shadow of each file's length and allocated blocks for
//! this, from the results both backends agreed on.

#[macro_use]
mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ringio::sim::{Prng, Probability, SimOptions, Simulator};
use ringio::{
    AlignedBuf, BackendKind, Config, DirectIoAlign, FallocateFlags, FileKind, FileOptions, Handle,
    RenameFlags, UnlinkFlags, IO,
};
use util::DirectIoGeometry;

/// Seeds per CI run; `RINGIO_FILE_DIFFERENTIAL_SEEDS` asks for more.
const SEEDS_CI: u64 = 200;
/// Steps per seed.
const STEPS: u32 = 100;
/// Most open handles at once.
const OPEN_MAX: usize = 6;
/// Where most offsets fall.
const WINDOW_BYTES: u64 = 32 * 1024;
/// How much of a file's start, and of its end, the final comparison reads.
const COMPARED_BYTES: u64 = 1 << 20;
/// A sparse length the steps set now and then.
const SPARSE_BYTES: u64 = 1 << 40;

/// The names the final comparison always reads. Others a step made (by
/// a rename, or a create under a renamed directory) are read too.
const FILES: [&str; 6] = ["f0", "f1", "f2", "d/f3", "g0", "d/g1"];

/// Every path a step may open, and the name it stands for in the
/// generator's namespace (`None`: the root).
const PATHS: [(&str, Option<&str>); 17] = [
    ("f0", Some("f0")),
    ("f1", Some("f1")),
    ("f2", Some("f2")),
    ("d/f3", Some("d/f3")),
    ("f0", Some("f0")),
    ("f1", Some("f1")),
    ("g0", Some("g0")),
    ("d/../f1", Some("f1")),
    ("./d/./f3", Some("d/f3")),
    ("d", Some("d")),
    (".", None),
    ("d/", Some("d")),
    ("e", Some("e")),
    ("missing/f", Some("missing/f")),
    ("f0/x", Some("f0/x")),
    ("f2/", Some("f2")),
    ("e/f5", Some("e/f5")),
];

/// Paths a rename, unlink or mkdir may name, and the name each stands for.
const ENTRIES: [(&str, &str); 14] = [
    ("f0", "f0"),
    ("f1", "f1"),
    ("f2", "f2"),
    ("g0", "g0"),
    ("d/f3", "d/f3"),
    ("d/g1", "d/g1"),
    ("d/../f2", "f2"),
    ("e", "e"),
    ("e/", "e"),
    ("e2", "e2"),
    ("d", "d"),
    ("d/", "d"),
    ("missing/x", "missing/x"),
    ("f0/x", "f0/x"),
];

/// What an operation came to, as both backends must agree on it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Opened(Result<(), i32>),
    Done(Result<(), i32>),
    Wrote(Result<usize, i32>),
    Read(Result<Vec<u8>, i32>),
    /// A `statx`: kind, length, block size, `O_DIRECT` alignment.
    Stat(Result<(FileKind, u64, u32, Option<DirectIoAlign>), i32>),
}

/// How a step opens a file: `FileOptions`, as the generator knows them.
#[derive(Clone, Copy, Debug)]
struct Open {
    read: bool,
    write: bool,
    create: bool,
    truncate: bool,
    direct: bool,
    dsync: bool,
}

impl Open {
    fn options(self) -> FileOptions {
        FileOptions::new()
            .read(self.read)
            .write(self.write)
            .create(self.create)
            .truncate(self.truncate)
            .direct(self.direct)
            .dsync(self.dsync)
    }
}

/// An operation of a step, with handles named by slot.
#[derive(Clone, Debug)]
enum Action {
    Open {
        path: &'static str,
        open: Open,
    },
    Close {
        slot: usize,
    },
    Write {
        slot: usize,
        offset: u64,
        len: usize,
        seed: u64,
        vec: bool,
    },
    Read {
        slot: usize,
        offset: u64,
        len: usize,
        vec: bool,
    },
    SetLen {
        slot: usize,
        len: u64,
        /// Through the loop (`ftruncate`) rather than `set_len`.
        loop_: bool,
    },
    Fsync {
        slot: usize,
        datasync: bool,
    },
    Fallocate {
        slot: usize,
        flags: FallocateFlags,
        offset: u64,
        len: u64,
    },
    Stat {
        slot: usize,
    },
    Rename {
        old: usize,
        new: usize,
        flags: RenameFlags,
    },
    Unlink {
        entry: usize,
        remove_dir: bool,
    },
    Mkdir {
        entry: usize,
    },
}

fn errno(error: std::io::Error) -> i32 {
    error.raw_os_error().expect("an errno")
}

/// One backend: its `IO`, where its paths start, and its open handles.
struct Side {
    io: IO<Option<Outcome>>,
    root: PathBuf,
    handles: Vec<Handle>,
}

impl Side {
    fn run(&mut self) -> Outcome {
        let mut outcome = None;
        self.io.run(&mut outcome).expect("run");
        outcome.expect("the operation completed")
    }

    fn issue(&mut self, action: &Action) -> Outcome {
        match *action {
            Action::Open { path, open } => {
                let opened = self.io.open_file(self.root.join(path), open.options());
                Outcome::Opened(
                    opened
                        .map(|handle| self.handles.push(handle))
                        .map_err(errno),
                )
            }
            Action::Close { slot } => {
                let handle = self.handles.remove(slot);
                self.io.close(handle, |_, out, result| {
                    *out = Some(Outcome::Done(result.map_err(errno)));
                });
                self.run()
            }
            Action::Write {
                slot,
                offset,
                len,
                seed,
                vec,
            } => {
                let data = util::pattern(len, seed);
                let handle = self.handles[slot];
                if vec {
                    self.io.write(handle, data, offset, |_, out, result, _| {
                        *out = Some(Outcome::Wrote(result.map_err(errno)));
                    });
                } else {
                    let mut buf = AlignedBuf::new(len, 4096).unwrap();
                    buf.copy_from_slice(&data);
                    self.io.write(handle, buf, offset, |_, out, result, _| {
                        *out = Some(Outcome::Wrote(result.map_err(errno)));
                    });
                }
                self.run()
            }
            Action::Read {
                slot,
                offset,
                len,
                vec,
            } => {
                let handle = self.handles[slot];
                if vec {
                    self.io.read(
                        handle,
                        Vec::with_capacity(len),
                        offset,
                        |_, out, result, buf| {
                            let read = result.map(|count| buf[..count].to_vec());
                            *out = Some(Outcome::Read(read.map_err(errno)));
                        },
                    );
                } else {
                    let buf = AlignedBuf::new(len, 4096).unwrap();
                    self.io.read(handle, buf, offset, |_, out, result, buf| {
                        let read = result.map(|count| buf[..count].to_vec());
                        *out = Some(Outcome::Read(read.map_err(errno)));
                    });
                }
                self.run()
            }
            Action::SetLen {
                slot,
                len,
                loop_: false,
            } => Outcome::Done(self.io.set_len(self.handles[slot], len).map_err(errno)),
            Action::SetLen { slot, len, .. } => {
                self.io
                    .ftruncate(self.handles[slot], len, |_, out, result| {
                        *out = Some(Outcome::Done(result.map_err(errno)));
                    });
                self.run()
            }
            Action::Fallocate {
                slot,
                flags,
                offset,
                len,
            } => {
                let handle = self.handles[slot];
                self.io
                    .fallocate(handle, flags, offset, len, |_, out, result| {
                        *out = Some(Outcome::Done(result.map_err(errno)));
                    });
                self.run()
            }
            Action::Stat { slot } => {
                self.io.statx(self.handles[slot], |_, out, result| {
                    let stat = result
                        .map(|stat| (stat.kind, stat.size_bytes, stat.block_bytes, stat.direct_io));
                    *out = Some(Outcome::Stat(stat.map_err(errno)));
                });
                self.run()
            }
            Action::Rename { old, new, flags } => {
                let (old, new) = (
                    self.root.join(ENTRIES[old].0),
                    self.root.join(ENTRIES[new].0),
                );
                self.io.renameat(old, new, flags, |_, out, result| {
                    *out = Some(Outcome::Done(result.map_err(errno)));
                });
                self.run()
            }
            Action::Unlink { entry, remove_dir } => {
                let flags = match remove_dir {
                    true => UnlinkFlags::REMOVE_DIR,
                    false => UnlinkFlags::FILE,
                };
                let path = self.root.join(ENTRIES[entry].0);
                self.io.unlinkat(path, flags, |_, out, result| {
                    *out = Some(Outcome::Done(result.map_err(errno)));
                });
                self.run()
            }
            Action::Mkdir { entry } => {
                let path = self.root.join(ENTRIES[entry].0);
                self.io.mkdirat(path, |_, out, result| {
                    *out = Some(Outcome::Done(result.map_err(errno)));
                });
                self.run()
            }
            Action::Fsync { slot, datasync } => {
                let handle = self.handles[slot];
                let done = |_: &mut IO<Option<Outcome>>,
                            out: &mut Option<Outcome>,
                            result: std::io::Result<()>| {
                    *out = Some(Outcome::Done(result.map_err(errno)));
                };
                if datasync {
                    self.io.fdatasync(handle, done);
                } else {
                    self.io.fsync(handle, done);
                }
                self.run()
            }
        }
    }

    /// Reads `len` bytes at `offset` through `handle`, buffered.
    fn read_at(&mut self, handle: Handle, offset: u64, len: usize) -> Result<Vec<u8>, i32> {
        self.io.read(
            handle,
            Vec::with_capacity(len),
            offset,
            |_, out, result, buf| {
                let read = result.map(|count| buf[..count].to_vec());
                *out = Some(Outcome::Read(read.map_err(errno)));
            },
        );
        match self.run() {
            Outcome::Read(result) => result,
            other => panic!("a read completed as {other:?}"),
        }
    }

    /// The length of the file behind `handle`, by `statx`.
    fn length(&mut self, handle: Handle) -> Result<u64, i32> {
        self.io.statx(handle, |_, out, result| {
            let stat =
                result.map(|stat| (stat.kind, stat.size_bytes, stat.block_bytes, stat.direct_io));
            *out = Some(Outcome::Stat(stat.map_err(errno)));
        });
        match self.run() {
            Outcome::Stat(result) => result.map(|(_, size_bytes, _, _)| size_bytes),
            other => panic!("a statx completed as {other:?}"),
        }
    }

    /// What the file `name` holds: (length, the bytes of its first and last
    /// `COMPARED_BYTES`), or the errno of opening or reading it.
    fn contents(&mut self, name: &str) -> Result<(u64, Vec<u8>, Vec<u8>), i32> {
        let handle = self
            .io
            .open_file(self.root.join(name), FileOptions::new().write(false))
            .map_err(errno)?;
        let length = self.length(handle)?;
        let read = |side: &mut Side, range: std::ops::Range<u64>| -> Result<Vec<u8>, i32> {
            let mut data = Vec::new();
            let mut at = range.start;
            while at < range.end {
                let chunk = side.read_at(handle, at, (range.end - at).min(1 << 20) as usize)?;
                if chunk.is_empty() {
                    break;
                }
                at += chunk.len() as u64;
                data.extend_from_slice(&chunk);
            }
            Ok(data)
        };
        let head_end = length.min(COMPARED_BYTES);
        let head = read(self, 0..head_end)?;
        let tail = read(
            self,
            length.saturating_sub(COMPARED_BYTES).max(head_end)..length,
        )?;
        self.io.close(handle, |_, out, result| {
            *out = Some(Outcome::Done(result.map_err(errno)));
        });
        assert_eq!(self.run(), Outcome::Done(Ok(())));
        Ok((length, head, tail))
    }
}

/// What the generator knows of a file, to keep the sequences out of the
/// cases the docs list (it never decides a result: both backends do).
#[derive(Clone, Debug, Default)]
struct Shadow {
    len: u64,
    /// Blocks allocated and written, as ext4 has them (a hole is not here,
    /// nor a block `fallocate` reserved and nothing wrote).
    allocated: BTreeSet<u64>,
}

/// An open handle, as the generator knows it.
#[derive(Clone, Debug)]
struct Slot {
    /// The file it names (an index into `Model::files`), or `None` for a
    /// directory.
    file: Option<usize>,
    direct: bool,
}

/// What a name is, in the generator's copy of the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    File(usize),
    Directory,
}

/// The generator: random actions from the seed, steered by what it knows.
struct Model {
    prng: Prng,
    geometry: DirectIoGeometry,
    file_bytes_max: u64,
    /// Every file made so far, by index: a renamed or unlinked one keeps
    /// its index, as an open handle keeps its file.
    files: Vec<Shadow>,
    /// The namespace as both backends agreed on it, by normalized path.
    names: BTreeMap<String, Entry>,
    slots: Vec<Slot>,
    next_seed: u64,
}

impl Model {
    fn new(seed: u64, geometry: DirectIoGeometry, file_bytes_max: u64) -> Model {
        Model {
            prng: Prng::new(seed),
            geometry,
            file_bytes_max,
            files: Vec::new(),
            names: BTreeMap::from([("d".to_string(), Entry::Directory)]),
            slots: Vec::new(),
            next_seed: seed << 20,
        }
    }

    /// The names in or under `root`, taken out of the namespace, relative
    /// to it ("" is `root` itself).
    fn take_names(&mut self, root: &str) -> Vec<(String, Entry)> {
        let inside = format!("{root}/");
        let keys: Vec<String> = self
            .names
            .keys()
            .filter(|key| *key == root || key.starts_with(&inside))
            .cloned()
            .collect();
        keys.into_iter()
            .map(|key| {
                let entry = self.names.remove(&key).unwrap();
                (key[root.len()..].to_string(), entry)
            })
            .collect()
    }

    fn put_names(&mut self, root: &str, names: Vec<(String, Entry)>) {
        for (relative, entry) in names {
            self.names.insert(format!("{root}{relative}"), entry);
        }
    }

    /// A rename both backends made, applied to the namespace.
    fn rename_names(&mut self, old: &str, new: &str, exchange: bool) {
        if old == new {
            return;
        }
        let moved = self.take_names(old);
        let replaced = self.take_names(new);
        self.put_names(new, moved);
        if exchange {
            self.put_names(old, replaced);
        }
    }

    /// An action for the log, with what its slot names.
    fn describe(&self, action: &Action) -> String {
        let slot = match *action {
            Action::Rename { old, new, .. } => {
                return format!("{action:?} [{} -> {}]", ENTRIES[old].0, ENTRIES[new].0)
            }
            Action::Unlink { entry, .. } | Action::Mkdir { entry } => {
                return format!("{action:?} [{}]", ENTRIES[entry].0)
            }
            Action::Open { .. } => None,
            Action::Close { slot }
            | Action::Write { slot, .. }
            | Action::Read { slot, .. }
            | Action::SetLen { slot, .. }
            | Action::Fallocate { slot, .. }
            | Action::Stat { slot }
            | Action::Fsync { slot, .. } => Some(slot),
        };
        match slot {
            Some(slot) => {
                let Slot { file, direct } = &self.slots[slot];
                let shadow = file.map(|index| &self.files[index]);
                let len = shadow.map(|shadow| shadow.len);
                let blocks = shadow.map(|shadow| shadow.allocated.iter().collect::<Vec<_>>());
                let what = file.map_or("directory".to_string(), |index| format!("file #{index}"));
                format!("{action:?} [{what} direct {direct}, len {len:?}, blocks {blocks:?}]")
            }
            None => format!("{action:?}"),
        }
    }

    fn percent(&mut self, percent: u32) -> bool {
        self.prng.chance(Probability::percent(percent))
    }

    fn choose(&mut self) -> Action {
        loop {
            let roll = self.prng.below(100);
            let action = match roll {
                _ if self.slots.is_empty() || roll < 12 => Some(self.choose_open()),
                12..=17 => Some(self.choose_close()),
                18..=41 => self.choose_write(),
                42..=61 => Some(self.choose_read()),
                62..=70 => Some(self.choose_set_len()),
                71..=76 => Some(self.choose_fallocate()),
                77..=79 => Some(Action::Stat {
                    slot: self.some_slot(),
                }),
                80..=85 => Some(self.choose_namespace()),
                _ => Some(Action::Fsync {
                    slot: self.some_slot(),
                    datasync: self.percent(50),
                }),
            };
            if let Some(action) = action {
                return action;
            }
        }
    }

    fn some_slot(&mut self) -> usize {
        self.prng.below(self.slots.len() as u64) as usize
    }

    fn choose_open(&mut self) -> Action {
        if self.slots.len() >= OPEN_MAX {
            return self.choose_close();
        }
        let (path, _) = *self.prng.pick(&PATHS);
        let read_only = self.percent(15);
        let open = Open {
            read: !read_only || self.percent(50),
            write: !read_only && !self.percent(10),
            create: self.percent(60),
            truncate: self.percent(8),
            direct: self.percent(40),
            dsync: self.percent(10),
        };
        Action::Open { path, open }
    }

    fn choose_close(&mut self) -> Action {
        Action::Close {
            slot: self.some_slot(),
        }
    }

    /// A rename, an unlink or a mkdir, of files and directories alike.
    fn choose_namespace(&mut self) -> Action {
        let entry = self.prng.below(ENTRIES.len() as u64) as usize;
        match self.prng.below(100) {
            0..=49 => {
                let flags = *self.prng.pick(&[
                    RenameFlags::REPLACE,
                    RenameFlags::REPLACE,
                    RenameFlags::NO_REPLACE,
                    RenameFlags::EXCHANGE,
                ]);
                Action::Rename {
                    old: entry,
                    new: self.prng.below(ENTRIES.len() as u64) as usize,
                    flags,
                }
            }
            50..=79 => Action::Unlink {
                entry,
                remove_dir: self.percent(40),
            },
            _ => Action::Mkdir { entry },
        }
    }

    fn choose_fallocate(&mut self) -> Action {
        let slot = self.some_slot();
        let flags = *self.prng.pick(&[
            FallocateFlags::ALLOCATE,
            FallocateFlags::KEEP_SIZE,
            FallocateFlags::KEEP_SIZE,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            FallocateFlags::PUNCH_HOLE,
        ]);
        let offset = self.choose_offset(slot);
        let len = match self.prng.below(100) {
            0..=2 => 0,
            _ => self.choose_len() as u64,
        };
        Action::Fallocate {
            slot,
            flags,
            offset,
            len,
        }
    }

    /// The file behind a slot, if it is one.
    fn shadow(&self, slot: usize) -> Option<&Shadow> {
        self.slots[slot].file.map(|index| &self.files[index])
    }

    fn choose_offset(&mut self, slot: usize) -> u64 {
        let sector = self.geometry.sector_bytes;
        let block = self.geometry.block_bytes;
        let len = self.shadow(slot).map_or(0, |shadow| shadow.len);
        match self.prng.below(100) {
            0..=34 => self.prng.below(WINDOW_BYTES / block) * block,
            35..=59 => self.prng.below(WINDOW_BYTES / sector) * sector,
            60..=74 => self.prng.below(WINDOW_BYTES),
            75..=89 => {
                // Near the end of the file: on it, a sector or a few bytes
                // either side, or at the start of its last block.
                let near = [
                    len,
                    len + sector,
                    len.saturating_sub(sector),
                    len + self.prng.below(64),
                    len.saturating_sub(self.prng.below(64)),
                    len / block * block,
                    len.next_multiple_of(sector),
                ];
                *self.prng.pick(&near)
            }
            90..=94 => {
                let max = self.file_bytes_max;
                *self
                    .prng
                    .pick(&[max - sector, max - 1, max, max + block, max - 2 * block])
            }
            _ => SPARSE_BYTES - block + self.prng.below(2 * block),
        }
    }

    fn choose_len(&mut self) -> usize {
        let sector = self.geometry.sector_bytes as usize;
        let block = self.geometry.block_bytes as usize;
        match self.prng.below(100) {
            0..=34 => sector * self.prng.range_inclusive(1, 16) as usize,
            35..=54 => block * self.prng.range_inclusive(1, 4) as usize,
            _ => self.prng.range_inclusive(1, 10_000) as usize,
        }
    }

    fn choose_write(&mut self) -> Option<Action> {
        let slot = self.some_slot();
        let offset = self.choose_offset(slot);
        let mut len = self.choose_len();
        if self.slots[slot].direct && self.ambiguous_direct_write(slot, offset, len as u64) {
            // Round the length up to a sector: an aligned write is never
            // ambiguous (see `ambiguous_direct_write`).
            len = (len as u64).next_multiple_of(self.geometry.sector_bytes) as usize;
            if self.ambiguous_direct_write(slot, offset, len as u64) {
                return None;
            }
        }
        self.next_seed += 1;
        Some(Action::Write {
            slot,
            offset,
            len,
            seed: self.next_seed,
            vec: !self.slots[slot].direct && self.percent(50),
        })
    }

    /// Whether an `O_DIRECT` write's effect on ext4 depends on what the
    /// simulator cannot know: where ext4 put extent boundaries, and what a
    /// failed write leaves past the end of the file.
    ///
    /// A write that starts on a sector and ends off one fails at its last
    /// segment, after writing the ones before it. If its end falls in an
    /// allocated block whose block before (within the write) is allocated
    /// too, the two may be one extent or two on ext4, and the kernel
    /// writes that earlier block or not: the simulator takes a run of
    /// allocated blocks as one extent. And if such a write reaches past
    /// the end of the file over an allocated block, ext4 writes that
    /// block's bytes past the end, which a later extension may show or
    /// not, depending on the page cache.
    fn ambiguous_direct_write(&self, slot: usize, offset: u64, len: u64) -> bool {
        let Some(shadow) = self.shadow(slot) else {
            return false;
        };
        let (sector, block) = (self.geometry.sector_bytes, self.geometry.block_bytes);
        let end = (offset + len).min(self.file_bytes_max);
        if offset % sector != 0 || end % sector == 0 || offset >= self.file_bytes_max {
            return false;
        }
        let (first, last) = (offset / block, (end - 1) / block);
        let split = last > first
            && shadow.allocated.contains(&last)
            && shadow.allocated.contains(&(last - 1));
        let past_end = end > shadow.len && shadow.allocated.range(first..=last).next().is_some();
        split || past_end
    }

    fn choose_read(&mut self) -> Action {
        let slot = self.some_slot();
        let offset = self.choose_offset(slot);
        let len = self.choose_len();
        Action::Read {
            slot,
            offset,
            len,
            vec: !self.slots[slot].direct && self.percent(50),
        }
    }

    fn choose_set_len(&mut self) -> Action {
        let slot = self.some_slot();
        let block = self.geometry.block_bytes;
        let len = self.shadow(slot).map_or(0, |shadow| shadow.len);
        let len = match self.prng.below(100) {
            0..=39 => self.prng.below(WINDOW_BYTES),
            40..=59 => self.prng.below(WINDOW_BYTES / block) * block,
            60..=79 => len.saturating_sub(self.prng.below(2 * block)),
            80..=89 => len + self.prng.below(2 * block),
            90..=94 => SPARSE_BYTES,
            _ => *self
                .prng
                .pick(&[self.file_bytes_max, self.file_bytes_max + 1]),
        };
        Action::SetLen {
            slot,
            len,
            loop_: self.percent(50),
        }
    }

    /// A class of what an action came to, for a tally of what the
    /// sequences reach (`RINGIO_FILE_DIFFERENTIAL_STATS=1`, with
    /// `--nocapture`).
    fn classify(&self, action: &Action, outcome: &Outcome) -> String {
        let (sector, block) = (self.geometry.sector_bytes, self.geometry.block_bytes);
        let result = match outcome {
            Outcome::Read(Ok(data)) if data.is_empty() => "0".to_string(),
            Outcome::Read(Ok(_)) | Outcome::Wrote(Ok(_)) => "ok".to_string(),
            Outcome::Read(Err(errno)) | Outcome::Wrote(Err(errno)) => format!("errno {errno}"),
            Outcome::Opened(result) | Outcome::Done(result) => format!("{result:?}"),
            Outcome::Stat(result) => format!("{:?}", result.map(drop)),
        };
        let (slot, offset, len, verb) = match *action {
            Action::Read {
                slot, offset, len, ..
            } => (slot, offset, len as u64, "read"),
            Action::Write {
                slot, offset, len, ..
            } => (slot, offset, len as u64, "write"),
            Action::Open { .. } => return format!("open {result}"),
            Action::Close { .. } => return "close".to_string(),
            Action::SetLen { .. } => return format!("set_len {result}"),
            Action::Fsync { .. } => return format!("fsync {result}"),
            Action::Fallocate { flags, .. } => return format!("fallocate {flags:?} {result}"),
            Action::Stat { .. } => return format!("statx {result}"),
            Action::Rename { flags, .. } => return format!("rename {flags:?} {result}"),
            Action::Unlink { remove_dir, .. } => {
                return format!("unlink remove_dir {remove_dir} {result}")
            }
            Action::Mkdir { .. } => return format!("mkdir {result}"),
        };
        let direct = if self.slots[slot].direct {
            "direct"
        } else {
            "buffered"
        };
        let Some(shadow) = self.shadow(slot) else {
            return format!("{verb} directory {result}");
        };
        let end = offset.saturating_add(len);
        let blocks = offset / block..=(end - 1) / block;
        let allocated = shadow.allocated.range(blocks.clone()).count();
        let span = (end - 1) / block - offset / block + 1;
        let over = match (allocated, offset >= shadow.len) {
            (_, true) => "at or past the end",
            (0, false) => "hole only",
            (n, false) if n as u64 == span => "allocated only",
            _ => "allocated and hole",
        };
        let aligned = match (offset % sector == 0, end % sector == 0) {
            (true, true) => "aligned",
            (false, _) => "start off a sector",
            (true, false) => "end off a sector",
        };
        format!("{verb} {direct} {over} {aligned}: {result}")
    }

    /// Takes in what an action came to (on both backends alike).
    fn absorb(&mut self, action: &Action, outcome: &Outcome) {
        let block = self.geometry.block_bytes;
        match (action, outcome) {
            (Action::Open { path, open }, Outcome::Opened(Ok(()))) => {
                let name = PATHS
                    .iter()
                    .find(|(p, _)| p == path)
                    .and_then(|(_, name)| *name);
                let entry = match name {
                    None => Entry::Directory,
                    Some(name) => match self.names.get(name) {
                        Some(&entry) => entry,
                        None => {
                            // A create: a new file.
                            self.files.push(Shadow::default());
                            let entry = Entry::File(self.files.len() - 1);
                            self.names.insert(name.to_string(), entry);
                            entry
                        }
                    },
                };
                let file = match entry {
                    Entry::File(index) => Some(index),
                    Entry::Directory => None,
                };
                if let (Some(index), true) = (file, open.truncate) {
                    self.files[index] = Shadow::default();
                }
                self.slots.push(Slot {
                    file,
                    direct: open.direct,
                });
            }
            (Action::Close { slot }, _) => {
                self.slots.remove(*slot);
            }
            (Action::Write { slot, offset, .. }, Outcome::Wrote(Ok(count))) if *count > 0 => {
                let index = self.slots[*slot].file.expect("a write succeeded on a file");
                let shadow = &mut self.files[index];
                let end = offset + *count as u64;
                shadow.len = shadow.len.max(end);
                shadow.allocated.extend(offset / block..end.div_ceil(block));
            }
            (Action::SetLen { slot, len, .. }, Outcome::Done(Ok(()))) => {
                let index = self.slots[*slot].file.expect("set_len succeeded on a file");
                let shadow = &mut self.files[index];
                shadow.len = *len;
                let kept = len.div_ceil(block);
                shadow.allocated.retain(|&allocated| allocated < kept);
            }
            (
                Action::Fallocate {
                    slot,
                    flags,
                    offset,
                    len,
                },
                Outcome::Done(Ok(())),
            ) => {
                let index = self.slots[*slot]
                    .file
                    .expect("fallocate succeeded on a file");
                let shadow = &mut self.files[index];
                let end = offset + len;
                if flags.contains(FallocateFlags::PUNCH_HOLE) {
                    if *offset < shadow.len {
                        let end = match end > shadow.len {
                            true => shadow.len.next_multiple_of(block),
                            false => end,
                        };
                        let whole = offset.div_ceil(block)..end / block;
                        shadow
                            .allocated
                            .retain(|allocated| !whole.contains(allocated));
                    }
                } else if !flags.contains(FallocateFlags::KEEP_SIZE) {
                    // The reserved blocks stay unwritten: not `allocated`.
                    shadow.len = shadow.len.max(end);
                }
            }
            (Action::Rename { old, new, flags }, Outcome::Done(Ok(()))) => {
                let exchange = flags.contains(RenameFlags::EXCHANGE);
                self.rename_names(ENTRIES[*old].1, ENTRIES[*new].1, exchange);
            }
            (Action::Unlink { entry, .. }, Outcome::Done(Ok(()))) => {
                drop(self.take_names(ENTRIES[*entry].1));
            }
            (Action::Mkdir { entry }, Outcome::Done(Ok(()))) => {
                self.names
                    .insert(ENTRIES[*entry].1.to_string(), Entry::Directory);
            }
            _ => {}
        }
    }

    /// Every name the final comparison reads: the fixed ones, and the
    /// files the namespace holds now.
    fn names_to_compare(&self) -> BTreeSet<String> {
        let files = self
            .names
            .iter()
            .filter(|(_, entry)| matches!(entry, Entry::File(_)))
            .map(|(name, _)| name.clone());
        FILES
            .iter()
            .map(|name| name.to_string())
            .chain(files)
            .collect()
    }
}

/// Where the kernel's files go (see the module docs), and its geometry.
fn kernel_base() -> (PathBuf, DirectIoGeometry) {
    let base = util::ext4_base().join(format!("ringio-file-differential-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    match util::ext4_geometry(&base) {
        Ok(geometry) => (base, geometry),
        Err(why) => {
            let _ = std::fs::remove_dir_all(&base);
            panic!(
                "the file differential test compares the simulator with ext4, and {why}. \
                 Point RINGIO_EXT4_DIR at a directory on ext4 that takes O_DIRECT \
                 (tmpfs, such as /dev/shm, does not keep ext4's rules)"
            )
        }
    }
}

/// ext4's largest file for a block size (`ext4_max_size` with extents).
fn ext4_file_bytes_max(block_bytes: u64) -> u64 {
    ((1 << 32) - 1) * block_bytes
}

fn kernel_io() -> Result<IO<Option<Outcome>>, String> {
    IO::with_config(Config::new().backend(BackendKind::IoUring)).map_err(|e| e.to_string())
}

fn sim_side(seed: u64, geometry: DirectIoGeometry) -> Side {
    let mut options = SimOptions::default().without_faults();
    options.disk.sector_bytes = geometry.sector_bytes;
    options.disk.block_bytes = geometry.block_bytes;
    options.disk.direct_memory_align_bytes = geometry.memory_align_bytes;
    options.disk.file_bytes_max = ext4_file_bytes_max(geometry.block_bytes);
    let mut sim = Simulator::new(seed, options);
    let node = sim.add_node("file-differential");
    sim.create_dir_all(node, "d").unwrap();
    Side {
        io: sim.io(node).expect("the simulator's IO"),
        root: PathBuf::new(),
        handles: Vec::new(),
    }
}

fn kernel_side(base: &Path, seed: u64) -> Result<Side, String> {
    let root = base.join(format!("seed-{seed}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("d")).map_err(|e| e.to_string())?;
    Ok(Side {
        io: kernel_io()?,
        root,
        handles: Vec::new(),
    })
}

/// Runs one seed; `Err` describes the first difference.
fn run_seed(seed: u64, base: &Path, geometry: DirectIoGeometry) -> Result<(), String> {
    let mut kernel = kernel_side(base, seed)?;
    let mut sim = sim_side(seed, geometry);
    let mut model = Model::new(seed, geometry, ext4_file_bytes_max(geometry.block_bytes));
    let mut history = Vec::new();
    for step in 0..STEPS {
        let action = model.choose();
        let described = model.describe(&action);
        let (k, s) = (kernel.issue(&action), sim.issue(&action));
        history.push(format!("{step}: {described} -> {}", brief(&s)));
        if k != s {
            let difference = format!("kernel {}, sim {}", brief(&k), brief(&s));
            return Err(report(seed, &history, &difference));
        }
        if std::env::var_os("RINGIO_FILE_DIFFERENTIAL_STATS").is_some() {
            eprintln!("STAT {}", model.classify(&action, &s));
        }
        model.absorb(&action, &s);
    }
    while !model.slots.is_empty() {
        let action = Action::Close { slot: 0 };
        let (k, s) = (kernel.issue(&action), sim.issue(&action));
        if k != s {
            return Err(report(
                seed,
                &history,
                &format!("close: kernel {k:?}, sim {s:?}"),
            ));
        }
        model.absorb(&action, &s);
    }
    for name in model.names_to_compare() {
        let name = name.as_str();
        let (k, s) = (kernel.contents(name), sim.contents(name));
        if k != s {
            let show = |c: &Result<(u64, Vec<u8>, Vec<u8>), i32>| {
                match c {
                Ok((len, head, tail)) => format!(
                    "length {len}, head {} bytes sum {:#x}, tail {} bytes, first difference at {:?}",
                    head.len(),
                    util::checksum(head),
                    tail.len(),
                    first_difference(c, if c == &k { &s } else { &k })
                ),
                Err(errno) => format!("errno {errno}"),
            }
            };
            let difference = format!("{name}: kernel {}; sim {}", show(&k), show(&s));
            return Err(report(seed, &history, &difference));
        }
    }
    let _ = std::fs::remove_dir_all(&kernel.root);
    Ok(())
}

/// Where two files' heads first differ, if both are there.
fn first_difference(
    a: &Result<(u64, Vec<u8>, Vec<u8>), i32>,
    b: &Result<(u64, Vec<u8>, Vec<u8>), i32>,
) -> Option<usize> {
    let (Ok((_, a, _)), Ok((_, b, _))) = (a, b) else {
        return None;
    };
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// An outcome for the log, read bytes as their count and checksum.
fn brief(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Read(Ok(data)) => {
            format!(
                "Read(Ok({} bytes, sum {:#x}))",
                data.len(),
                util::checksum(data)
            )
        }
        other => format!("{other:?}"),
    }
}

fn report(seed: u64, history: &[String], difference: &str) -> String {
    let tail: Vec<&String> = history.iter().rev().take(120).rev().collect();
    let tail: Vec<&str> = tail.iter().map(|line| line.as_str()).collect();
    format!(
        "seed {seed}: {difference}\nreplay: RINGIO_FILE_DIFFERENTIAL_SEED={seed} cargo test --test file_differential\nlast steps:\n  {}",
        tail.join("\n  ")
    )
}

/// The seeds to run: `RINGIO_FILE_DIFFERENTIAL_SEED` (one), else
/// `RINGIO_FILE_DIFFERENTIAL_SEEDS` (how many, from 1), else `SEEDS_CI`.
fn seeds() -> std::ops::Range<u64> {
    let number = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|value| value.parse::<u64>().expect(name))
    };
    if let Some(seed) = number("RINGIO_FILE_DIFFERENTIAL_SEED") {
        return seed..seed + 1;
    }
    1..1 + number("RINGIO_FILE_DIFFERENTIAL_SEEDS").unwrap_or(SEEDS_CI)
}

#[test]
fn io_uring_on_ext4_and_the_simulator_agree_on_random_file_sequences() {
    if let Err(error) = kernel_io() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no io_uring in CI: {error}"
        );
        eprintln!("SKIPPED: the file differential test needs io_uring ({error})");
        return;
    }
    let (base, geometry) = kernel_base();
    eprintln!(
        "file differential: kernel files in {} ({geometry:?})",
        base.display()
    );
    let failures: Vec<String> = seeds()
        .filter_map(|seed| run_seed(seed, &base, geometry).err())
        .collect();
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&base);
    }
    assert!(
        failures.is_empty(),
        "{} seed(s) differ (kernel files kept in {}):\n{}",
        failures.len(),
        base.display(),
        failures.join("\n\n")
    );
}
