//! File operations on the simulated disk: open, read, write, fsync, and
//! their latencies and injected errors.
//!
//! What the kernel would refuse at once (`EBADF`, `EINVAL`, `EFBIG`) is
//! refused at once, with no latency; the rest completes after the disk's
//! latency. The errnos of the corners follow Linux 6.18 on ext4, as
//! `tests/file_semantics.rs` checks on io_uring, epoll and the simulator.
#![allow(unsafe_code)]

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::contents::Piece;
use super::disk::{Fallocate, FileId, InFlightWrite};
use super::iov::Memory;
use super::namespace::{DirId, Found};
use super::world::{EventKind, FdEntry, World};
use crate::completion::Operation;
use crate::file::FileOptions;
use crate::sys::Fd;

/// How an fd may use its file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Access {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) direct: bool,
    pub(crate) dsync: bool,
}

impl World {
    /// `open(2)` on the node's disk, with Linux's errnos: `EINVAL` for a
    /// NUL byte in the path; the path's own (`ENOENT`, `ENOTDIR`,
    /// `ENAMETOOLONG`: see `namespace.rs`); a directory opened to write,
    /// create or truncate is `EISDIR`, and with `O_DIRECT` `EINVAL`; a
    /// missing file without `create` is `ENOENT`, and a create of a path
    /// ending in `/` is `EISDIR` (a file so named, opened without
    /// `create`, is `ENOTDIR`). `O_TRUNC` truncates even a read-only
    /// open, as Linux does; opening for neither reading nor writing opens
    /// for reading (`O_RDONLY` is 0).
    pub(crate) fn open_file(
        &mut self,
        node: usize,
        path: &Path,
        options: FileOptions,
    ) -> Result<Fd, i32> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.contains(&0) {
            return Err(libc::EINVAL);
        }
        let create = options.create || options.create_new;
        if create && options.directory {
            return Err(libc::EINVAL); // Linux 6.4 refuses O_CREAT | O_DIRECTORY
        }
        if bytes.is_empty() {
            return Err(libc::ENOENT);
        }
        self.descriptor_fault()?;
        let now_ns = self.node_realtime_ns(node) as i64;
        let disk_options = &self.options.disk;
        let node_state = &mut self.nodes[node];
        let resolved = node_state.disk.resolve(path)?;
        if resolved.directory_only && create {
            return Err(libc::EISDIR);
        }
        if options.create_new && !matches!(resolved.found, Found::Missing(_)) {
            return Err(libc::EEXIST);
        }
        let file = match resolved.found {
            Found::Directory(directory) => {
                if create || options.write || options.truncate {
                    return Err(libc::EISDIR);
                }
                if options.direct {
                    return Err(libc::EINVAL);
                }
                return Ok(node_state.alloc_fd(FdEntry::Directory(directory)));
            }
            Found::File(_) if resolved.directory_only || options.directory => {
                return Err(libc::ENOTDIR)
            }
            Found::File(file) => file,
            Found::Missing(_) if !create => return Err(libc::ENOENT),
            Found::Missing(path) => node_state.disk.create_file(path, disk_options, now_ns),
        };
        if options.truncate {
            node_state.disk.set_len(file, 0, disk_options, now_ns);
        }
        node_state.disk.file_opened(file);
        Ok(node_state.alloc_fd(FdEntry::File {
            file,
            read: options.read || !options.write,
            write: options.write,
            direct: options.direct,
            dsync: options.dsync,
        }))
    }

    /// `mkdir -p` on the node's disk, for a harness to set up what `main`
    /// would (`std::fs::create_dir_all`).
    pub(crate) fn create_dir_all(&mut self, node: usize, path: &Path) -> Result<(), i32> {
        self.nodes[node].disk.create_dir_all(path)
    }

    /// `ftruncate(2)`: `EINVAL` unless the fd is a regular file open for
    /// writing (a read-only fd, a directory, a socket), `EFBIG` above the
    /// largest file. Extending allocates nothing, so it never runs out of
    /// space.
    pub(crate) fn set_len(&mut self, node: usize, fd: Fd, len_bytes: u64) -> Result<(), i32> {
        let entry = self.nodes[node].fd_entry(fd);
        self.set_len_of(node, entry, len_bytes)
    }

    /// `ftruncate(2)` of what an fd names (see [`World::set_len`]).
    fn set_len_of(
        &mut self,
        node: usize,
        entry: Option<FdEntry>,
        len_bytes: u64,
    ) -> Result<(), i32> {
        let now_ns = self.node_realtime_ns(node) as i64;
        let options = &self.options.disk;
        let node_state = &mut self.nodes[node];
        match entry {
            Some(FdEntry::File {
                file, write: true, ..
            }) => {
                if len_bytes > options.file_bytes_max {
                    return Err(libc::EFBIG);
                }
                node_state.disk.set_len(file, len_bytes, options, now_ns);
                Ok(())
            }
            Some(FdEntry::File { .. } | FdEntry::Directory(_) | FdEntry::Socket(_)) => {
                Err(libc::EINVAL)
            }
            None => Err(libc::EBADF),
        }
    }

    /// `fallocate(2)` on what an fd names, with Linux's order of checks
    /// (`vfs_fallocate`): the mode (`EOPNOTSUPP`), the fd's access
    /// (`EBADF`: a read-only fd or a directory), the kind of file
    /// (`ENODEV`: a socket), then what the disk says (`EFBIG`, `ENOSPC`).
    fn fallocate_of(
        &mut self,
        node: usize,
        entry: Option<FdEntry>,
        mode: i32,
        range: (u64, u64),
    ) -> Result<(), i32> {
        const KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;
        const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        let how = match mode {
            0 => Fallocate::Reserve { keep_size: false },
            KEEP_SIZE => Fallocate::Reserve { keep_size: true },
            PUNCH => Fallocate::Punch,
            _ => return Err(libc::EOPNOTSUPP),
        };
        let file = match entry {
            None => return Err(libc::EBADF),
            Some(FdEntry::File {
                file, write: true, ..
            }) => file,
            Some(FdEntry::File { .. } | FdEntry::Directory(_)) => return Err(libc::EBADF),
            Some(FdEntry::Socket(_)) => return Err(libc::ENODEV),
        };
        let now_ns = self.node_realtime_ns(node) as i64;
        let options = &self.options.disk;
        self.nodes[node]
            .disk
            .fallocate(file, how, range, options, now_ns)
    }

    /// `statx(2)` of what an fd names, as Linux fills it for an ext4 file,
    /// an ext4 directory (a block long; the simulator keeps no directory
    /// times, so they read 0) or a socket.
    fn statx_of(&self, node: usize, entry: FdEntry) -> libc::statx {
        let options = &self.options.disk;
        let block_bytes = options.block_bytes;
        match entry {
            FdEntry::File { file, .. } => self.nodes[node].disk.statx(file, options),
            FdEntry::Directory(directory) => {
                // A removed directory is empty and 0 long, as ext4's rmdir
                // leaves it.
                let removed = self.nodes[node].disk.is_directory_removed(directory);
                let mut stx = statx_zeroed();
                stx.stx_mask = libc::STATX_BASIC_STATS;
                stx.stx_mode = (libc::S_IFDIR | crate::fs::DIRECTORY_MODE) as u16;
                stx.stx_nlink = if removed { 0 } else { 2 };
                stx.stx_size = if removed { 0 } else { block_bytes };
                stx.stx_blocks = block_bytes / 512;
                stx.stx_blksize = block_bytes as u32;
                stx
            }
            FdEntry::Socket(_) => {
                let mut stx = statx_zeroed();
                stx.stx_mask = libc::STATX_BASIC_STATS;
                stx.stx_mode = (libc::S_IFSOCK | 0o777) as u16;
                stx.stx_nlink = 1;
                stx.stx_blksize = 4096;
                stx
            }
        }
    }

    /// `statx`, `fallocate` and `ftruncate`: on any fd (a socket's too), so
    /// they come here before the socket, file or directory paths. What
    /// changes, changes at once; the result comes after the metadata
    /// latency (a refusal too, for simplicity).
    pub(crate) fn start_metadata_operation(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        operation: &Operation,
        entry: Option<FdEntry>,
    ) {
        let result = match (*operation, entry) {
            (Operation::Statx { .. }, None) => Err(libc::EBADF),
            (Operation::Statx { statx, .. }, Some(entry)) => {
                let record = self.statx_of(node, entry);
                // SAFETY: `statx` is the record in the in-flight operation's
                // `FsArgs`, owned by its handler until the completion is
                // reaped (as `Memory`'s invariant says of buffers).
                unsafe { statx.write(record) };
                Ok(0)
            }
            (
                Operation::Fallocate {
                    mode, offset, len, ..
                },
                entry,
            ) => self
                .fallocate_of(node, entry, mode, (offset, len))
                .map(|()| 0),
            (Operation::Ftruncate { len, .. }, entry) => {
                self.set_len_of(node, entry, len).map(|()| 0)
            }
            _ => unreachable!("not a metadata operation"),
        };
        self.complete_metadata(node, process, user_data, result);
    }

    /// `openat`, `renameat`, `unlinkat` and `mkdirat`, by path from the
    /// node's root: the namespace changes at once (durable once the
    /// directory is fsynced), and the result comes after the metadata
    /// latency.
    pub(crate) fn start_path_operation(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        operation: &Operation,
    ) {
        let now_ns = self.node_realtime_ns(node) as i64;
        let result = match *operation {
            Operation::OpenAt { path, flags, .. } => {
                // SAFETY: the paths of an in-flight path operation are
                // NUL-terminated copies in its `FsArgs`, owned by its
                // handler until the completion is reaped; used only here.
                let path = unsafe { user_path(path) };
                self.open_file(node, path, FileOptions::from_flags(flags))
            }
            Operation::RenameAt { old, new, flags } => {
                // SAFETY: as for OpenAt.
                let old = unsafe { user_path(old) };
                // SAFETY: as for OpenAt.
                let new = unsafe { user_path(new) };
                self.nodes[node]
                    .disk
                    .rename(old, new, flags, now_ns)
                    .map(|()| 0)
            }
            Operation::UnlinkAt { path, flags } => {
                // SAFETY: as for OpenAt.
                let path = unsafe { user_path(path) };
                match flags & !libc::AT_REMOVEDIR {
                    // A stale Unix socket file (`unix.rs`) is a file to unlink.
                    0 if flags == 0 && self.unix_unlink(node, path) => Ok(0),
                    0 => self.nodes[node]
                        .disk
                        .unlink(path, flags & libc::AT_REMOVEDIR != 0)
                        .map(|()| 0),
                    _ => Err(libc::EINVAL),
                }
            }
            Operation::MkDirAt { path, .. } => {
                // SAFETY: as for OpenAt.
                let path = unsafe { user_path(path) };
                self.nodes[node].disk.mkdir(path).map(|()| 0)
            }
            _ => unreachable!("not a path operation"),
        };
        self.complete_metadata(node, process, user_data, result);
    }

    /// Completes a metadata or path operation after the metadata latency.
    fn complete_metadata(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        result: Result<i32, i32>,
    ) {
        let delay_ns = self.disk_latency(
            node,
            self.options.disk.metadata_latency_min_ns,
            self.options.disk.metadata_latency_mean_ns,
        );
        let result = result.unwrap_or_else(|errno| -errno);
        self.complete_after(delay_ns, node, process, user_data, result);
    }

    pub(crate) fn start_file_operation(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        operation: &Operation,
        file: FileId,
        access: Access,
    ) {
        let memory = Memory::of(operation);
        let result = match *operation {
            Operation::Read { offset, .. } | Operation::Readv { offset, .. } => {
                let memory = memory.expect("a read names its memory");
                self.file_read(node, process, user_data, file, access, (memory, offset))
            }
            Operation::Write { offset, .. } | Operation::Writev { offset, .. } => {
                let memory = memory.expect("a write names its memory");
                self.file_write(node, process, user_data, file, access, (memory, offset))
            }
            Operation::Fsync { .. } => self.file_fsync(node, process, user_data, file),
            Operation::Poll { events, .. } => Some(poll_regular(events)),
            // accept, connect, recv and send need a socket.
            _ => Some(-libc::ENOTSOCK),
        };
        if let Some(result) = result {
            self.complete(node, process, user_data, result);
        }
    }

    /// A directory fd: an fsync makes the changes to the directory's
    /// entries durable (and, as the journal commits in order, every
    /// namespace change before them) when it completes, after an fsync's
    /// latency; one that fails (`FaultOptions::fsync`) makes nothing
    /// durable. A read is `EISDIR`, and a write `EBADF` (a directory is
    /// only ever open read-only).
    pub(crate) fn start_directory_operation(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        operation: &Operation,
        directory: DirId,
    ) {
        let result = match operation {
            Operation::Fsync { .. } => {
                let failed = self.streams.faults.chance(self.options.faults.fsync);
                let delay_ns = self.disk_latency(
                    node,
                    self.options.disk.fsync_latency_min_ns,
                    self.options.disk.fsync_latency_mean_ns,
                );
                let disk = &self.nodes[node].disk;
                let kind = EventKind::DirectoryFsyncDone {
                    node,
                    process,
                    user_data,
                    directory,
                    watermark: disk.namespace_watermark(),
                    failed,
                    epoch: disk.epoch,
                };
                return self.schedule(self.now_ns + delay_ns, kind);
            }
            Operation::Read { .. } | Operation::Readv { .. } => -libc::EISDIR,
            Operation::Write { .. } | Operation::Writev { .. } => -libc::EBADF,
            Operation::Poll { events, .. } => poll_regular(*events),
            _ => -libc::ENOTSOCK,
        };
        self.complete(node, process, user_data, result);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_directory_fsync_done(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        directory: DirId,
        watermark: u64,
        failed: bool,
        epoch: u64,
    ) {
        let disk = &mut self.nodes[node].disk;
        if disk.epoch != epoch {
            return; // A crash came first.
        }
        if !failed {
            disk.complete_directory_fsync(directory, watermark);
        }
        let result = if failed { -libc::EIO } else { 0 };
        self.complete(node, process, user_data, result);
    }

    /// A read copies from the page cache at once; the result arrives after
    /// the read latency. `None`: the result is scheduled.
    ///
    /// `EBADF` if the fd is not open for reading. With `O_DIRECT`, `EINVAL`
    /// where ext4 gives it ([`Disk::direct_read_refused`]): an end of
    /// the range off a sector, in an allocated block. The buffer's address
    /// is not judged: see docs/simulation.md.
    ///
    /// [`Disk::direct_read_refused`]: super::disk::Disk::direct_read_refused
    fn file_read(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        file: FileId,
        access: Access,
        (memory, offset): (Memory, u64),
    ) -> Option<i32> {
        let len = memory.len();
        let range = (offset, len as u64);
        if !access.read {
            return Some(-libc::EBADF);
        }
        let disk_options = &self.options.disk;
        if access.direct
            && self.nodes[node]
                .disk
                .direct_read_refused(file, range, disk_options)
        {
            return Some(-libc::EINVAL);
        }
        let result = if self.streams.faults.chance(self.options.faults.read) {
            -libc::EIO
        } else {
            let mut at = 0usize;
            let copy = |piece: Piece<'_>| {
                // Stays inside the memory: the disk visits at most `len`
                // bytes in all.
                at += match piece {
                    // SAFETY: a read's memory (Memory's invariant: in
                    // flight, kept allocated and unmoved until reaped),
                    // writable for `len` bytes, of which `at + bytes.len()`
                    // are visited so far.
                    Piece::Data(bytes) => unsafe {
                        memory.write_at(at, bytes);
                        bytes.len()
                    },
                    // SAFETY: as above.
                    Piece::Zeros(count) => unsafe {
                        memory.zero_at(at, count);
                        count
                    },
                };
            };
            let disk = &mut self.nodes[node].disk;
            match disk.read(
                file,
                range,
                access.direct,
                disk_options,
                &mut self.streams.disk,
                copy,
            ) {
                Ok(count) => count as i32,
                Err(errno) => -errno,
            }
        };
        let delay_ns = self.disk_latency(
            node,
            self.options.disk.read_latency_min_ns,
            self.options.disk.read_latency_mean_ns,
        );
        self.complete_after(delay_ns, node, process, user_data, result);
        None
    }

    /// A write copies the caller's bytes at once and lands in the page
    /// cache when it completes, after the write latency.
    ///
    /// `EBADF` if the fd is not open for writing; then what
    /// [`Disk::plan_write`] decides: `EFBIG` at the largest file,
    /// `ENOSPC` when its blocks do not fit, and with `O_DIRECT` `EINVAL`
    /// where ext4 gives it, after writing what ext4 writes first. A
    /// refusal that changes nothing (`EFBIG`, or `EINVAL` with nothing
    /// written) is at once; the rest take the write latency.
    ///
    /// [`Disk::plan_write`]: super::disk::Disk::plan_write
    fn file_write(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        file: FileId,
        access: Access,
        (memory, offset): (Memory, u64),
    ) -> Option<i32> {
        if !access.write {
            return Some(-libc::EBADF);
        }
        let disk_options = &self.options.disk;
        let len = memory.len();
        let range = (offset, len as u64);
        let plan = self.nodes[node]
            .disk
            .plan_write(file, range, access.direct, disk_options);
        if let (true, Err(errno @ (libc::EFBIG | libc::EINVAL))) =
            (plan.ranges.is_empty(), plan.result)
        {
            return Some(-errno);
        }
        let delay_ns = self.disk_latency(
            node,
            self.options.disk.write_latency_min_ns,
            self.options.disk.write_latency_mean_ns,
        );
        if self.streams.faults.chance(self.options.faults.write) {
            let errno = *self.streams.faults.pick(&[libc::EIO, libc::ENOSPC]);
            self.complete_after(delay_ns, node, process, user_data, -errno);
            return None;
        }
        let result = match plan.result {
            Ok(count) => count as i32,
            Err(errno) if plan.ranges.is_empty() => {
                self.complete_after(delay_ns, node, process, user_data, -errno);
                return None;
            }
            Err(errno) => -errno,
        };
        let pieces = plan
            .ranges
            .iter()
            .map(|range| {
                let skip = (range.start - offset) as usize;
                let count = (range.end - range.start) as usize;
                assert!(skip + count <= len);
                let mut bytes = Vec::with_capacity(count);
                // SAFETY: a write's memory (Memory's invariant), initialized
                // for its `len` bytes, and `skip + count <= len` (asserted).
                unsafe { memory.gather_range(skip, count, &mut bytes) };
                (range.start, bytes)
            })
            .collect();
        let disk = &mut self.nodes[node].disk;
        let write = disk.begin_write(InFlightWrite {
            file,
            pieces,
            dsync: access.dsync,
            result,
        });
        let epoch = disk.epoch;
        let kind = EventKind::WriteDone {
            node,
            process,
            user_data,
            write,
            epoch,
        };
        self.schedule(self.now_ns + delay_ns, kind);
        None
    }

    fn file_fsync(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        file: FileId,
    ) -> Option<i32> {
        let failed = self.streams.faults.chance(self.options.faults.fsync);
        let delay_ns = self.disk_latency(
            node,
            self.options.disk.fsync_latency_min_ns,
            self.options.disk.fsync_latency_mean_ns,
        );
        let disk = &self.nodes[node].disk;
        let kind = EventKind::FsyncDone {
            node,
            process,
            user_data,
            file,
            watermark: disk.fsync_watermark(),
            failed,
            epoch: disk.epoch,
        };
        self.schedule(self.now_ns + delay_ns, kind);
        None
    }

    pub(crate) fn on_write_done(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        write: u64,
        epoch: u64,
    ) {
        let now_ns = self.node_realtime_ns(node) as i64;
        let disk = &mut self.nodes[node].disk;
        if disk.epoch != epoch {
            return; // A crash came first and resolved this write.
        }
        let file = disk.in_flight.get(&write).map(|write| write.file);
        let result = disk.complete_write(write, &self.options.disk, &mut self.streams.disk);
        if let (Some(file), true) = (file, result > 0) {
            disk.touch(file, now_ns);
        }
        self.complete(node, process, user_data, result);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_fsync_done(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        file: FileId,
        watermark: u64,
        failed: bool,
        epoch: u64,
    ) {
        let disk = &mut self.nodes[node].disk;
        if disk.epoch != epoch {
            return;
        }
        disk.complete_fsync(
            file,
            watermark,
            failed,
            &self.options.disk,
            &mut self.streams.disk,
        );
        let result = if failed { -libc::EIO } else { 0 };
        self.complete(node, process, user_data, result);
    }

    /// A disk operation's latency on `node`: `max(min, Exp(mean))`, times
    /// `gray_latency_multiplier` while the disk is in a slow period, plus
    /// `Exp(stall_mean_ns)` if it stalls. The faults draw from the disk's
    /// stream only while they are on, after the base latency, so turning
    /// one off moves no other draw.
    fn disk_latency(&mut self, node: usize, min_ns: u64, mean_ns: u64) -> u64 {
        let options = &self.options.disk;
        let prng = &mut self.streams.disk;
        let mut latency_ns = prng.exponential(mean_ns).max(min_ns);
        if self.nodes[node].disk.is_slow(self.now_ns, options, prng) {
            latency_ns = latency_ns.saturating_mul(options.gray_latency_multiplier);
        }
        if prng.chance(options.stall_probability) {
            latency_ns = latency_ns.saturating_add(prng.exponential(options.stall_mean_ns));
        }
        latency_ns
    }
}

/// The path at `path`, a NUL-terminated string in a process's memory.
///
/// # Safety
///
/// `path` must point at a NUL-terminated string of an in-flight operation
/// of a live process (its `FsArgs`), which the loop core keeps allocated
/// and unmoved until the completion is reaped; the returned path must not
/// be used after the operation is started.
unsafe fn user_path<'a>(path: *const libc::c_char) -> &'a Path {
    // SAFETY: as the function's contract says.
    let bytes = unsafe { std::ffi::CStr::from_ptr(path) }.to_bytes();
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

/// A poll of a regular file or directory, which is always readable and
/// writable: ready at once for either, and `EINVAL` for neither, as io_uring
/// says (such a file has no wait queue for anything else).
fn poll_regular(events: u32) -> i32 {
    let ready = events & (libc::POLLIN | libc::POLLOUT) as u32;
    if ready == 0 {
        -libc::EINVAL
    } else {
        ready as i32
    }
}

/// An all-zero `statx` record.
pub(crate) fn statx_zeroed() -> libc::statx {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// A time in nanoseconds since the epoch as a `statx` timestamp.
pub(crate) fn timestamp(ns: i64) -> libc::statx_timestamp {
    // SAFETY: plain old data; all-zero is a valid value.
    let mut time: libc::statx_timestamp = unsafe { std::mem::zeroed() };
    time.tv_sec = ns.div_euclid(1_000_000_000);
    time.tv_nsec = ns.rem_euclid(1_000_000_000) as u32;
    time
}
