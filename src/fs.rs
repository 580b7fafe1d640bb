//! Asynchronous file-system operations, through the loop on every backend:
//! `openat`, `statx`, `fallocate`, `ftruncate`, `renameat`, `unlinkat` and
//! `mkdirat` (and `fsync` of a directory handle, which is
//! [`IO::fsync`](crate::IO::fsync)).
//!
//! The kernel reads a path, and writes a `statx` record, while the
//! operation is in flight, so they live in an [`FsArgs`] that the `IO`
//! owns and reuses, as [`msg`](crate::msg) does for message headers: once
//! the pool is warm, an operation allocates nothing (each pooled buffer
//! has room for a rename's two longest paths from the start).
//!
//! Paths are relative to the process's current directory (`AT_FDCWD`), or
//! absolute; under the simulator, relative to the node's root.
#![allow(unsafe_code)]

use std::io;
use std::ops::BitOr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

use crate::callback::Handler;
use crate::completion::{CompletionId, Operation};
use crate::file::FileOptions;
use crate::handle::Handle;
use crate::io::IO;
use crate::ops::unit_result;
use crate::sys;

/// `PATH_MAX`, counting the terminating NUL: a longer path is
/// `ENAMETOOLONG` (refused before it is copied, as the kernel refuses it).
const PATH_BYTES_MAX: usize = 4096;

/// The mode a created file gets, before the umask.
pub(crate) const FILE_MODE: u32 = 0o644;
/// The mode a created directory gets, before the umask.
pub(crate) const DIRECTORY_MODE: u32 = 0o755;

/// What the `statx` of [`IO::statx`] asks the kernel for.
pub(crate) const STATX_MASK: u32 =
    libc::STATX_BASIC_STATS | libc::STATX_BTIME | libc::STATX_DIOALIGN;

/// The kind of file a [`FileStat`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// Anything else: a socket, a pipe, a device, a symbolic link.
    Other,
}

/// The alignment `O_DIRECT` needs on a file (`STATX_DIOALIGN`, Linux 6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DirectIoAlign {
    /// Offsets and lengths must be multiples of this
    /// (`stx_dio_offset_align`: the device's logical block size).
    pub offset_bytes: u32,
    /// Buffer addresses must be multiples of this (`stx_dio_mem_align`).
    pub memory_bytes: u32,
}

/// What [`IO::statx`] found: enough to size a data file and to check its
/// `O_DIRECT` alignment. Times are nanoseconds since the Unix epoch
/// (negative before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileStat {
    /// A regular file, a directory, or something else.
    pub kind: FileKind,
    /// The length in bytes (`stx_size`).
    pub size_bytes: u64,
    /// The bytes of storage allocated to it (`stx_blocks` × 512): less than
    /// `size_bytes` for a sparse file, more after `fallocate` with
    /// [`FallocateFlags::KEEP_SIZE`].
    pub allocated_bytes: u64,
    /// The preferred I/O size (`stx_blksize`: the file system's block).
    pub block_bytes: u32,
    /// The `O_DIRECT` alignment, where the file system reports one (a
    /// regular file on a file system that does direct I/O); `None` for a
    /// directory, or where the file system cannot do direct I/O.
    pub direct_io: Option<DirectIoAlign>,
    /// Last access (`stx_atime`).
    pub accessed_ns: i64,
    /// Last change of the contents (`stx_mtime`).
    pub modified_ns: i64,
    /// Last change of the contents or the metadata (`stx_ctime`).
    pub changed_ns: i64,
    /// Creation (`stx_btime`), where the file system records it.
    pub born_ns: Option<i64>,
}

impl FileStat {
    /// Reads a `statx` record the kernel (or the simulator) filled.
    pub(crate) fn from_statx(stx: &libc::statx) -> FileStat {
        let kind = match u32::from(stx.stx_mode) & libc::S_IFMT {
            libc::S_IFREG => FileKind::Regular,
            libc::S_IFDIR => FileKind::Directory,
            _ => FileKind::Other,
        };
        let ns = |time: libc::statx_timestamp| {
            time.tv_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(time.tv_nsec))
        };
        let direct_io = (stx.stx_mask & libc::STATX_DIOALIGN != 0 && stx.stx_dio_offset_align != 0)
            .then_some(DirectIoAlign {
                offset_bytes: stx.stx_dio_offset_align,
                memory_bytes: stx.stx_dio_mem_align,
            });
        FileStat {
            kind,
            size_bytes: stx.stx_size,
            allocated_bytes: stx.stx_blocks.saturating_mul(512),
            block_bytes: stx.stx_blksize,
            direct_io,
            accessed_ns: ns(stx.stx_atime),
            modified_ns: ns(stx.stx_mtime),
            changed_ns: ns(stx.stx_ctime),
            born_ns: (stx.stx_mask & libc::STATX_BTIME != 0).then(|| ns(stx.stx_btime)),
        }
    }
}

/// How [`IO::fallocate`] changes a file's space (`fallocate(2)` modes).
/// No flag at all allocates the range, zero-filled where it was a hole, and
/// extends the file to cover it.
///
/// # Examples
///
/// ```
/// use ringio::FallocateFlags;
/// let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
/// assert!(punch.contains(FallocateFlags::KEEP_SIZE));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FallocateFlags(i32);

impl FallocateFlags {
    /// Allocate, and extend the file to cover the range.
    pub const ALLOCATE: FallocateFlags = FallocateFlags(0);
    /// Leave the file's length as it is, even if the range reaches past it
    /// (`FALLOC_FL_KEEP_SIZE`): space reserved past the end.
    pub const KEEP_SIZE: FallocateFlags = FallocateFlags(libc::FALLOC_FL_KEEP_SIZE);
    /// Free the range's storage: it reads as zeros after
    /// (`FALLOC_FL_PUNCH_HOLE`). Linux wants it with `KEEP_SIZE`; alone it
    /// is `EOPNOTSUPP`.
    pub const PUNCH_HOLE: FallocateFlags = FallocateFlags(libc::FALLOC_FL_PUNCH_HOLE);

    /// The raw `FALLOC_FL_*` bits.
    pub const fn bits(self) -> i32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: FallocateFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for FallocateFlags {
    type Output = FallocateFlags;
    fn bitor(self, other: FallocateFlags) -> FallocateFlags {
        FallocateFlags(self.0 | other.0)
    }
}

/// How [`IO::renameat`] renames (`renameat2(2)` flags). No flag replaces
/// what is at the new path, atomically.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct RenameFlags(u32);

impl RenameFlags {
    /// Replace the new path if it exists.
    pub const REPLACE: RenameFlags = RenameFlags(0);
    /// Fail with `EEXIST` if the new path exists (`RENAME_NOREPLACE`).
    pub const NO_REPLACE: RenameFlags = RenameFlags(libc::RENAME_NOREPLACE);
    /// Swap the two paths, atomically; both must exist (`RENAME_EXCHANGE`).
    /// With `NO_REPLACE` it is `EINVAL`.
    pub const EXCHANGE: RenameFlags = RenameFlags(libc::RENAME_EXCHANGE);

    /// The raw `RENAME_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: RenameFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for RenameFlags {
    type Output = RenameFlags;
    fn bitor(self, other: RenameFlags) -> RenameFlags {
        RenameFlags(self.0 | other.0)
    }
}

/// What [`IO::unlinkat`] removes (`unlinkat(2)` flags). No flag removes a
/// file (anything but a directory).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct UnlinkFlags(i32);

impl UnlinkFlags {
    /// Remove a file.
    pub const FILE: UnlinkFlags = UnlinkFlags(0);
    /// Remove an empty directory (`AT_REMOVEDIR`, as `rmdir(2)`).
    pub const REMOVE_DIR: UnlinkFlags = UnlinkFlags(libc::AT_REMOVEDIR);

    /// The raw `AT_*` bits.
    pub const fn bits(self) -> i32 {
        self.0
    }
}

/// What the kernel reads and writes besides the caller's memory: the
/// NUL-terminated paths and the `statx` record.
pub(crate) struct FsArgs {
    /// NUL-terminated paths, back to back: one, or two for a rename.
    paths: Vec<u8>,
    statx: libc::statx,
}

/// An owned [`FsArgs`] at a fixed address, held as a raw pointer for the
/// reason [`MessageBox`](crate::msg::MessageBox) is: the kernel holds
/// pointers into it while the handler that owns it moves.
pub(crate) struct FsBox(NonNull<FsArgs>);

impl FsBox {
    fn new() -> FsBox {
        let args = Box::new(FsArgs {
            // Room for the longest paths an operation may hold (a rename's
            // two), so that no box grows later: which box of the pool an
            // operation gets depends on the order earlier ones completed,
            // and a box that had held only short paths would otherwise
            // reallocate the first time it got a long one, long after the
            // pool was warm (tests/alloc.rs caught one such allocation in
            // 5,000 rounds, under load).
            paths: Vec::with_capacity(2 * PATH_BYTES_MAX),
            // SAFETY: statx is plain old data; all-zero is a valid value.
            statx: unsafe { std::mem::zeroed() },
        });
        FsBox(NonNull::from(Box::leak(args)))
    }

    fn get(&mut self) -> &mut FsArgs {
        // SAFETY: the pointer came from `Box::leak` and is freed only in
        // `drop`; `&mut self` means no other reference to it is live here
        // (the kernel's pointers are raw and not used while we hold this).
        unsafe { self.0.as_mut() }
    }

    /// Copies `paths`, each NUL-terminated, and returns a pointer to each
    /// copy; or the errno that refuses them (`EINVAL` for a NUL byte in
    /// one, `ENAMETOOLONG` for one of `PATH_MAX` bytes or more), with null
    /// pointers, copying nothing.
    fn set_paths<const N: usize>(
        &mut self,
        paths: [&Path; N],
    ) -> Result<[*const libc::c_char; N], i32> {
        let args = self.get();
        args.paths.clear();
        let mut starts = [0usize; N];
        for (start, path) in starts.iter_mut().zip(paths) {
            let bytes = path.as_os_str().as_bytes();
            if bytes.contains(&0) {
                return Err(libc::EINVAL);
            }
            if bytes.len() >= PATH_BYTES_MAX {
                return Err(libc::ENAMETOOLONG);
            }
            *start = args.paths.len();
            args.paths.extend_from_slice(bytes);
            args.paths.push(0);
        }
        // After every copy: the buffer no longer moves.
        let base = args.paths.as_ptr();
        // SAFETY: each start is within `paths`, where its copy begins.
        Ok(starts.map(|start| unsafe { base.add(start) }.cast()))
    }

    fn statx_ptr(&mut self) -> *mut libc::statx {
        &mut self.get().statx
    }

    /// The record the kernel filled, zeroed again for the next use.
    fn take_stat(&mut self) -> FileStat {
        let args = self.get();
        let stat = FileStat::from_statx(&args.statx);
        // SAFETY: as in `new`.
        args.statx = unsafe { std::mem::zeroed() };
        stat
    }
}

impl Drop for FsBox {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak`, and this is its only
        // owner; a handler the kernel may still use is leaked, never dropped.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Null paths, for an operation refused before submission.
const NO_PATH: *const libc::c_char = std::ptr::null();

/// An `openat`: the new descriptor goes into the `IO`'s table.
struct Opened<F> {
    args: FsBox,
    callback: F,
}

impl<C, F> Handler<C> for Opened<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<Handle>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        io.fs_args.push(self.args);
        let handle = sys::result_from_raw(result).map(|fd| io.own_new_fd(fd as sys::Fd));
        (self.callback)(io, ctx, handle)
    }
}

/// A `statx`: the record becomes a [`FileStat`].
struct Stated<F> {
    args: FsBox,
    callback: F,
}

impl<C, F> Handler<C> for Stated<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<FileStat>) + 'static,
{
    fn complete(mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        let stat = sys::result_from_raw(result).map(|_| self.args.take_stat());
        io.fs_args.push(self.args);
        (self.callback)(io, ctx, stat)
    }
}

/// A rename, unlink or mkdir: owns its paths until the kernel is done.
struct PathDone<F> {
    args: FsBox,
    callback: F,
}

impl<C, F> Handler<C> for PathDone<F>
where
    F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
{
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        io.fs_args.push(self.args);
        (self.callback)(io, ctx, unit_result(result))
    }
}

/// `EINVAL` for an offset or length the kernel's `loff_t` cannot hold.
fn refuse_range(offset: u64, len: u64) -> i32 {
    if offset > i64::MAX as u64 || len > i64::MAX as u64 {
        -libc::EINVAL
    } else {
        0
    }
}

impl<C> IO<C> {
    /// An `FsArgs` from the pool, or a new one while the pool is cold.
    fn fs_args(&mut self) -> FsBox {
        self.fs_args.pop().unwrap_or_else(FsBox::new)
    }

    /// Submits a path operation: `refused` settles it at once, else it
    /// goes to the backend. A path names no handle.
    fn submit_path(
        &mut self,
        operation: Operation,
        refused: Option<i32>,
        callback: crate::callback::Callback<C>,
    ) -> CompletionId {
        match refused {
            Some(errno) => self.submit_completed(operation, callback, -errno),
            None => self.submit(operation, callback),
        }
    }

    /// Opens (or creates) the file or directory at `path`, close-on-exec,
    /// as `options` say, as [`open_file`](IO::open_file) does but through
    /// the loop: the callback gets the new handle, which the `IO` owns. A
    /// created file gets mode `0644` (less the umask).
    ///
    /// The path is copied into storage the `IO` owns while the operation
    /// is in flight: the caller's path is free at once.
    ///
    /// Backends: io_uring (`IORING_OP_OPENAT`, Linux 5.6), epoll
    /// (`openat(2)`, run at once and completed on the next pass), the
    /// simulator (its namespace).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("ringio-doc-openat-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// use ringio::{FileOptions, Handle};
    /// let mut io: ringio::IO<Option<Handle>> = ringio::IO::new()?;
    /// io.openat(dir.join("data"), FileOptions::new().create(true), |_, file, result| {
    ///     *file = Some(result.expect("openat"));
    /// });
    /// let mut file = None;
    /// io.run(&mut file)?;
    /// assert!(file.is_some());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `ENOENT` (no such file without `create`, a missing directory on the
    /// way, or an empty path), `ENOTDIR` (a file on the way, a file named
    /// with a trailing `/`, or not a directory with
    /// [`directory`](FileOptions::directory)), `EEXIST` (something is there
    /// with [`create_new`](FileOptions::create_new)), `EISDIR` (a directory
    /// opened to write, create or truncate), `EINVAL` (a NUL byte in the
    /// path, `O_DIRECT` unsupported here or on a directory),
    /// `ENAMETOOLONG`, `EACCES`, `EMFILE`, `ENFILE`, `ENOSPC`, `ECANCELED`.
    pub fn openat<F>(
        &mut self,
        path: impl AsRef<Path>,
        options: FileOptions,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<Handle>) + 'static,
    {
        let mut args = self.fs_args();
        let (path, refused) = match args.set_paths([path.as_ref()]) {
            Ok([path]) => (path, None),
            Err(errno) => (NO_PATH, Some(errno)),
        };
        let operation = Operation::OpenAt {
            path,
            flags: options.flags() | libc::O_CLOEXEC,
            mode: FILE_MODE,
        };
        let callback = self.callback(Opened { args, callback });
        self.submit_path(operation, refused, callback)
    }

    /// Reads what `file` is (`statx(2)` of the descriptor itself): its
    /// kind, length, allocated bytes, block size, times and `O_DIRECT`
    /// alignment, as a [`FileStat`].
    ///
    /// Backends: io_uring (`IORING_OP_STATX`, Linux 5.6), epoll (`statx`,
    /// at once), the simulator (its disk: `allocated_bytes` counts its
    /// blocks, the times are the node's wall clock at each change, an
    /// access time is the last modification's, and a socket is
    /// [`FileKind::Other`] of length 0).
    ///
    /// # Errors
    ///
    /// `EBADF` (a closed or stale handle), `ENOMEM`, `ECANCELED`.
    pub fn statx<F>(&mut self, file: Handle, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<FileStat>) + 'static,
    {
        let mut args = self.fs_args();
        let statx = args.statx_ptr();
        let callback = self.callback(Stated { args, callback });
        self.submit_on(file, 0, callback, |fd| Operation::Statx { fd, statx })
    }

    /// Allocates, reserves or frees the storage of `len` bytes of `file`
    /// at `offset` (`fallocate(2)`), as `flags` say: with no flag
    /// ([`FallocateFlags::ALLOCATE`]) the range is allocated, zero-filled
    /// where it was a hole, and the file extended to cover it, so that
    /// later writes there cannot fail with `ENOSPC`; with `KEEP_SIZE` the
    /// length stays; `PUNCH_HOLE | KEEP_SIZE` frees the range, which then
    /// reads as zeros. The change is durable only after
    /// [`fsync`](IO::fsync).
    ///
    /// Backends: io_uring (`IORING_OP_FALLOCATE`, Linux 5.6), epoll
    /// (`fallocate`, at once), the simulator (its disk's blocks).
    ///
    /// # Errors
    ///
    /// `EINVAL` (`len` of 0, or `offset` or `len` above `i64::MAX`),
    /// `EOPNOTSUPP` (`PUNCH_HOLE` without `KEEP_SIZE`, or a mode the file
    /// system lacks), `EBADF` (not open for writing, a directory, or a
    /// closed or stale handle), `ENODEV` (not a regular file: a socket),
    /// `EFBIG` (past the largest file), `ENOSPC`, `EIO`, `ECANCELED`.
    pub fn fallocate<F>(
        &mut self,
        file: Handle,
        flags: FallocateFlags,
        offset: u64,
        len: u64,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let callback = self.callback(crate::ops::Done(callback));
        let refused = match len {
            0 => -libc::EINVAL,
            _ => refuse_range(offset, len),
        };
        self.submit_on(file, refused, callback, |fd| Operation::Fallocate {
            fd,
            mode: flags.bits(),
            offset,
            len,
        })
    }

    /// Sets the length of `file` to `len_bytes` (`ftruncate(2)`), through
    /// the loop: [`set_len`](IO::set_len) is the synchronous set-up form.
    /// Cutting frees the blocks past the new end; extending adds a hole,
    /// which takes no space. The new length is durable only after
    /// [`fsync`](IO::fsync).
    ///
    /// Backends: io_uring (`IORING_OP_FTRUNCATE`, Linux 6.9, found by
    /// probing; on older kernels the syscall, run at once and completed on
    /// the next pass), epoll (`ftruncate`, at once), the simulator.
    ///
    /// # Errors
    ///
    /// `EINVAL` (not a regular file open for writing: a read-only fd, a
    /// directory, a socket; or a length above `i64::MAX`), `EBADF` (a
    /// closed or stale handle), `EFBIG` (above the largest file), `EIO`,
    /// `EPERM`, `ECANCELED`.
    pub fn ftruncate<F>(&mut self, file: Handle, len_bytes: u64, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let callback = self.callback(crate::ops::Done(callback));
        let refused = refuse_range(0, len_bytes);
        self.submit_on(file, refused, callback, |fd| Operation::Ftruncate {
            fd,
            len: len_bytes,
        })
    }

    /// Renames `old` to `new` (`renameat2(2)`), atomically: whoever looks
    /// finds `new` naming the old or the new file, never nothing. With
    /// [`RenameFlags::REPLACE`] an existing `new` is replaced (a directory
    /// only by a directory, and only if empty); `NO_REPLACE` fails instead;
    /// `EXCHANGE` swaps the two. The rename is durable only after an
    /// [`fsync`](IO::fsync) of the directory (both directories, if they
    /// differ).
    ///
    /// Backends: io_uring (`IORING_OP_RENAMEAT`, Linux 5.11), epoll
    /// (`renameat2`, at once), the simulator (its namespace).
    ///
    /// # Errors
    ///
    /// `ENOENT` (no `old`; with `EXCHANGE`, no `new`; a missing directory
    /// on the way), `EEXIST` (`new` exists, with `NO_REPLACE`), `ENOTEMPTY`
    /// (`new` is a directory that is not empty), `EISDIR` (`new` is a
    /// directory, `old` is not), `ENOTDIR` (`old` is a directory and `new`
    /// is not, or a file on the way), `EINVAL` (a NUL byte in a path,
    /// `NO_REPLACE` with `EXCHANGE`, or a directory moved into itself),
    /// `EBUSY` (`old` or `new` ends in `.` or `..`), `ENAMETOOLONG`,
    /// `EXDEV` (another file system), `EACCES`, `ENOSPC`, `ECANCELED`.
    pub fn renameat<F>(
        &mut self,
        old: impl AsRef<Path>,
        new: impl AsRef<Path>,
        flags: RenameFlags,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let mut args = self.fs_args();
        let ([old, new], refused) = match args.set_paths([old.as_ref(), new.as_ref()]) {
            Ok(paths) => (paths, None),
            Err(errno) => ([NO_PATH; 2], Some(errno)),
        };
        let operation = Operation::RenameAt {
            old,
            new,
            flags: flags.bits(),
        };
        let callback = self.callback(PathDone { args, callback });
        self.submit_path(operation, refused, callback)
    }

    /// Removes the file at `path`, or with [`UnlinkFlags::REMOVE_DIR`] the
    /// empty directory (`unlinkat(2)`). A file still open stays readable
    /// and writable through its handles until they are closed. The removal
    /// is durable only after an [`fsync`](IO::fsync) of the directory.
    ///
    /// Backends: io_uring (`IORING_OP_UNLINKAT`, Linux 5.11), epoll
    /// (`unlinkat`, at once), the simulator (its namespace).
    ///
    /// # Errors
    ///
    /// `ENOENT` (nothing there, or a missing directory on the way),
    /// `EISDIR` (a directory, without `REMOVE_DIR`), `ENOTDIR` (not a
    /// directory, with `REMOVE_DIR`; or a file on the way), `ENOTEMPTY` (a
    /// directory that is not empty), `EINVAL` (a NUL byte in the path, or
    /// a last component `.`), `EBUSY` (the root), `ENAMETOOLONG`,
    /// `EACCES`, `ECANCELED`.
    pub fn unlinkat<F>(
        &mut self,
        path: impl AsRef<Path>,
        flags: UnlinkFlags,
        callback: F,
    ) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let mut args = self.fs_args();
        let (path, refused) = match args.set_paths([path.as_ref()]) {
            Ok([path]) => (path, None),
            Err(errno) => (NO_PATH, Some(errno)),
        };
        let operation = Operation::UnlinkAt {
            path,
            flags: flags.bits(),
        };
        let callback = self.callback(PathDone { args, callback });
        self.submit_path(operation, refused, callback)
    }

    /// Makes the directory `path` (`mkdirat(2)`), mode `0755` less the
    /// umask. Its entry is durable only after an [`fsync`](IO::fsync) of
    /// the directory it is in.
    ///
    /// Backends: io_uring (`IORING_OP_MKDIRAT`, Linux 5.15), epoll
    /// (`mkdirat`, at once), the simulator (its namespace).
    ///
    /// # Errors
    ///
    /// `EEXIST` (anything is there already), `ENOENT` (a missing directory
    /// on the way), `ENOTDIR` (a file on the way), `EINVAL` (a NUL byte in
    /// the path), `ENAMETOOLONG`, `EACCES`, `ENOSPC`, `ECANCELED`.
    pub fn mkdirat<F>(&mut self, path: impl AsRef<Path>, callback: F) -> CompletionId
    where
        F: FnOnce(&mut IO<C>, &mut C, io::Result<()>) + 'static,
    {
        let mut args = self.fs_args();
        let (path, refused) = match args.set_paths([path.as_ref()]) {
            Ok([path]) => (path, None),
            Err(errno) => (NO_PATH, Some(errno)),
        };
        let operation = Operation::MkDirAt {
            path,
            mode: DIRECTORY_MODE,
        };
        let callback = self.callback(PathDone { args, callback });
        self.submit_path(operation, refused, callback)
    }
}
