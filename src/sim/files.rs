//! File operations on the simulated disk: open, read, write, fsync, and
//! their latencies and injected errors.
#![allow(unsafe_code)]

use std::path::Path;

use super::disk::{FileId, InFlightWrite};
use super::iov::Memory;
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
    /// `open(2)` on the node's disk.
    pub(crate) fn open_file(
        &mut self,
        node: usize,
        path: &Path,
        options: FileOptions,
    ) -> Result<Fd, i32> {
        if path.as_os_str().is_empty() {
            return Err(libc::ENOENT);
        }
        self.descriptor_fault()?;
        let sector_bytes = self.options.disk.sector_bytes;
        let node_state = &mut self.nodes[node];
        if node_state.disk.is_directory(path) {
            if options.write {
                return Err(libc::EISDIR);
            }
            return Ok(node_state.alloc_fd(FdEntry::Directory));
        }
        let file = node_state
            .disk
            .open(path, options.create)
            .ok_or(libc::ENOENT)?;
        if options.truncate && options.write {
            node_state.disk.set_len(file, 0, sector_bytes);
        }
        Ok(node_state.alloc_fd(FdEntry::File {
            file,
            read: options.read,
            write: options.write,
            direct: options.direct,
            dsync: options.dsync,
        }))
    }

    /// `ftruncate(2)`.
    pub(crate) fn set_len(&mut self, node: usize, fd: Fd, len_bytes: u64) -> Result<(), i32> {
        let sector_bytes = self.options.disk.sector_bytes;
        let capacity_bytes = self.options.disk.capacity_bytes;
        let entry = self.nodes[node].fd_entry(fd);
        let disk = &mut self.nodes[node].disk;
        match entry {
            Some(FdEntry::File {
                file, write: true, ..
            }) => {
                let grows_by = len_bytes.saturating_sub(disk.len(file));
                if disk.used_bytes() + grows_by > capacity_bytes {
                    return Err(libc::ENOSPC);
                }
                disk.set_len(file, len_bytes, sector_bytes);
                Ok(())
            }
            Some(FdEntry::File { .. }) => Err(libc::EBADF),
            Some(FdEntry::Directory) => Err(libc::EISDIR),
            Some(FdEntry::Socket(_)) => Err(libc::EINVAL),
            None => Err(libc::EBADF),
        }
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

    /// A directory fd: fsync succeeds after an fsync's latency (directory
    /// entries are durable at once in this model); reads and writes are
    /// `EISDIR`.
    pub(crate) fn start_directory_operation(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        operation: &Operation,
    ) {
        let result = match operation {
            Operation::Fsync { .. } => {
                let delay_ns = self.disk_latency(
                    self.options.disk.fsync_latency_min_ns,
                    self.options.disk.fsync_latency_mean_ns,
                );
                return self.complete_after(delay_ns, node, process, user_data, 0);
            }
            Operation::Read { .. }
            | Operation::Write { .. }
            | Operation::Readv { .. }
            | Operation::Writev { .. } => -libc::EISDIR,
            Operation::Poll { events, .. } => poll_regular(*events),
            _ => -libc::ENOTSOCK,
        };
        self.complete(node, process, user_data, result);
    }

    /// Why a read or write may not start: `EBADF` if the fd was not opened
    /// for it (`allowed`), `EINVAL` if an `O_DIRECT` transfer is misaligned.
    fn refuse_transfer(
        &self,
        access: Access,
        allowed: bool,
        memory: Memory,
        offset: u64,
    ) -> Option<i32> {
        let sector_bytes = self.options.disk.sector_bytes;
        let mut misaligned = access.direct && offset % sector_bytes != 0;
        memory.for_each_segment(|buf, len| {
            misaligned |=
                access.direct && (buf as u64 % sector_bytes != 0 || len as u64 % sector_bytes != 0);
        });
        if !allowed {
            Some(libc::EBADF)
        } else if misaligned {
            Some(libc::EINVAL)
        } else {
            None
        }
    }

    /// A read copies from the page cache at once; the result arrives after
    /// the read latency. `None`: the result is scheduled.
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
        if let Some(errno) = self.refuse_transfer(access, access.read, memory, offset) {
            return Some(-errno);
        }
        let result = if self.streams.faults.chance(self.options.faults.read) {
            -libc::EIO
        } else {
            let options = &self.options.disk;
            match self.nodes[node]
                .disk
                .read(file, offset, len, options, &mut self.streams.disk)
            {
                Ok(data) => {
                    // SAFETY: a read's memory (Memory's invariant: in
                    // flight, kept allocated and unmoved until reaped),
                    // writable for `len >= data.len()` bytes.
                    unsafe { memory.write_at(0, data) };
                    data.len() as i32
                }
                Err(errno) => -errno,
            }
        };
        let delay_ns = self.disk_latency(
            self.options.disk.read_latency_min_ns,
            self.options.disk.read_latency_mean_ns,
        );
        self.complete_after(delay_ns, node, process, user_data, result);
        None
    }

    /// A write copies the caller's bytes at once and lands in the page
    /// cache when it completes, after the write latency.
    fn file_write(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        file: FileId,
        access: Access,
        (memory, offset): (Memory, u64),
    ) -> Option<i32> {
        let len = memory.len();
        if let Some(errno) = self.refuse_transfer(access, access.write, memory, offset) {
            return Some(-errno);
        }
        let delay_ns = self.disk_latency(
            self.options.disk.write_latency_min_ns,
            self.options.disk.write_latency_mean_ns,
        );
        if self.streams.faults.chance(self.options.faults.write) {
            let errno = *self.streams.faults.pick(&[libc::EIO, libc::ENOSPC]);
            self.complete_after(delay_ns, node, process, user_data, -errno);
            return None;
        }
        let disk = &mut self.nodes[node].disk;
        let grows_by = (offset + len as u64).saturating_sub(disk.len(file));
        if disk.used_bytes() + grows_by > self.options.disk.capacity_bytes {
            self.complete_after(delay_ns, node, process, user_data, -libc::ENOSPC);
            return None;
        }
        let mut data = Vec::with_capacity(len);
        // SAFETY: a write's memory (Memory's invariant), initialized for
        // its whole length.
        unsafe { memory.gather(len, &mut data) };
        let write = disk.begin_write(InFlightWrite {
            file,
            offset,
            data,
            dsync: access.dsync,
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
        let disk = &mut self.nodes[node].disk;
        if disk.epoch != epoch {
            return; // A crash came first and resolved this write.
        }
        let count = disk.complete_write(write, &self.options.disk, &mut self.streams.disk);
        self.complete(node, process, user_data, count as i32);
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

    /// `max(min, Exp(mean))`.
    fn disk_latency(&mut self, min_ns: u64, mean_ns: u64) -> u64 {
        self.streams.disk.exponential(mean_ns).max(min_ns)
    }
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
