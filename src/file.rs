//! File set-up that goes through the `IO`, so that a simulator can
//! virtualize it.

use std::io;
use std::path::Path;

use crate::handle::Handle;
use crate::io::IO;
use crate::sys;

/// How [`IO::open_file`] opens a file. Reading and writing are on by default.
///
/// # Examples
///
/// ```
/// let options = ringio::FileOptions::new().create(true).direct(true);
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOptions {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) create: bool,
    pub(crate) truncate: bool,
    pub(crate) direct: bool,
    pub(crate) dsync: bool,
    pub(crate) create_new: bool,
    pub(crate) directory: bool,
}

impl FileOptions {
    /// Read and write, no other flags.
    pub const fn new() -> FileOptions {
        FileOptions {
            read: true,
            write: true,
            create: false,
            truncate: false,
            direct: false,
            dsync: false,
            create_new: false,
            directory: false,
        }
    }

    /// Open for reading.
    pub const fn read(mut self, read: bool) -> FileOptions {
        self.read = read;
        self
    }

    /// Open for writing.
    pub const fn write(mut self, write: bool) -> FileOptions {
        self.write = write;
        self
    }

    /// Create the file (mode 0644) if it does not exist (`O_CREAT`).
    pub const fn create(mut self, create: bool) -> FileOptions {
        self.create = create;
        self
    }

    /// Truncate the file to zero length (`O_TRUNC`).
    pub const fn truncate(mut self, truncate: bool) -> FileOptions {
        self.truncate = truncate;
        self
    }

    /// Bypass the page cache (`O_DIRECT`). Buffers, lengths and offsets must
    /// then be aligned to the device's block size; see [`AlignedBuf`](crate::AlignedBuf).
    /// On ext4 (Linux 6.18) only the parts of a transfer over allocated
    /// blocks must be: a read at or past the end of the file, or over a
    /// hole, is not judged, and a write that fails part-way has written the
    /// allocated blocks before the failing part (docs/simulation.md, "Disk",
    /// has the rules, which the simulator follows). A file system that
    /// cannot do direct I/O refuses the open with `EINVAL` (tmpfs did before
    /// Linux 6.6; since then it accepts it, and accepts unaligned buffers
    /// too). A directory cannot be opened with it (`EINVAL`).
    pub const fn direct(mut self, direct: bool) -> FileOptions {
        self.direct = direct;
        self
    }

    /// Make every write durable on completion, as if followed by
    /// `fdatasync` (`O_DSYNC`).
    pub const fn dsync(mut self, dsync: bool) -> FileOptions {
        self.dsync = dsync;
        self
    }

    /// Create the file, failing with `EEXIST` if anything is already at
    /// the path (`O_CREAT | O_EXCL`): for a file that must be new, such as
    /// the next log segment. Implies [`create`](FileOptions::create).
    pub const fn create_new(mut self, create_new: bool) -> FileOptions {
        self.create_new = create_new;
        self
    }

    /// The path must name a directory (`O_DIRECTORY`): `ENOTDIR` otherwise.
    /// For opening a directory to [`fsync`](IO::fsync) it, with
    /// `write(false)` (a directory opens only for reading).
    pub const fn directory(mut self, directory: bool) -> FileOptions {
        self.directory = directory;
        self
    }

    /// The `open(2)` flags, without `O_CLOEXEC` (which every open adds).
    pub(crate) fn flags(&self) -> libc::c_int {
        let mut flags = match (self.read, self.write) {
            (true, true) => libc::O_RDWR,
            (false, true) => libc::O_WRONLY,
            _ => libc::O_RDONLY,
        };
        for (on, flag) in [
            (self.create || self.create_new, libc::O_CREAT),
            (self.create_new, libc::O_EXCL),
            (self.truncate, libc::O_TRUNC),
            (self.direct, libc::O_DIRECT),
            (self.dsync, libc::O_DSYNC),
            (self.directory, libc::O_DIRECTORY),
        ] {
            if on {
                flags |= flag;
            }
        }
        flags
    }

    /// The options `flags` (from [`FileOptions::flags`]) stand for: how the
    /// simulator reads an `openat` back.
    pub(crate) fn from_flags(flags: libc::c_int) -> FileOptions {
        let access = flags & libc::O_ACCMODE;
        let has = |flag: libc::c_int| flags & flag == flag;
        FileOptions {
            read: access == libc::O_RDONLY || access == libc::O_RDWR,
            write: access == libc::O_WRONLY || access == libc::O_RDWR,
            create: has(libc::O_CREAT),
            truncate: has(libc::O_TRUNC),
            direct: has(libc::O_DIRECT),
            dsync: has(libc::O_DSYNC),
            create_new: has(libc::O_CREAT | libc::O_EXCL),
            directory: has(libc::O_DIRECTORY),
        }
    }
}

impl Default for FileOptions {
    fn default() -> FileOptions {
        FileOptions::new()
    }
}

impl<C> IO<C> {
    /// Opens the file (or, read-only, the directory) at `path`,
    /// close-on-exec, as `options` say. The `IO` owns it.
    ///
    /// # Errors
    ///
    /// What `open(2)` returns: `ENOENT` (no such file without `create`, or
    /// a missing directory on the way), `ENOTDIR` (a file on the way, or a
    /// file named with a trailing `/`), `EISDIR` (a directory opened to
    /// write, create or truncate), `EINVAL` (`O_DIRECT` unsupported here or
    /// on a directory, or a NUL byte in the path), `ENAMETOOLONG`,
    /// `EACCES`, `EMFILE`, `ENFILE`, `ENOSPC`. With `truncate`, the file is
    /// truncated even if opened read-only, as Linux does.
    pub fn open_file(
        &mut self,
        path: impl AsRef<Path>,
        options: FileOptions,
    ) -> io::Result<Handle> {
        let fd = match self.sim() {
            Some(sim) => {
                sim.with_world(|world, node| world.open_file(node, path.as_ref(), options))?
            }
            None => sys::open(path.as_ref(), options.flags(), 0o644)?,
        };
        Ok(self.own_new_fd(fd))
    }

    /// Sets the length of the regular file `file` to `len_bytes`
    /// (`ftruncate(2)`), cutting it short or extending it with zeros. A set-up
    /// call, synchronous like [`open_file`](IO::open_file): for example, to cut
    /// a torn tail off a log found at start-up. The new length is durable only
    /// after [`fsync`](IO::fsync).
    ///
    /// # Errors
    ///
    /// `EINVAL` (not a regular file open for writing: a read-only file, a
    /// directory, a socket; or a length above `i64::MAX`), `EBADF` (a
    /// closed or stale handle), `EFBIG` (above the file system's largest
    /// file), `EIO`, `EPERM`. Extending a file allocates nothing (the new
    /// part is a hole), so it takes no space.
    pub fn set_len(&mut self, file: Handle, len_bytes: u64) -> io::Result<()> {
        let fd = self.raw_fd(file)?;
        let len_bytes = i64::try_from(len_bytes).map_err(|_| sys::errno(libc::EINVAL))?;
        if let Some(sim) = self.sim() {
            return sim.with_world(|world, node| world.set_len(node, fd, len_bytes as u64));
        }
        sys::ftruncate(fd, len_bytes)
    }
}
