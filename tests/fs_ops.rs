//! The asynchronous file-system operations (`openat`, `statx`,
//! `fallocate`, `ftruncate`, `renameat`, `unlinkat`, `mkdirat`, and `fsync`
//! of a directory), each through the loop on io_uring, epoll and the
//! simulator, with the same observable results: contents, lengths,
//! allocation, and the errnos of the corners (test names read
//! `io_uring::<case>`, `epoll::<case>`, `sim::<case>`).
//!
//! Each corner was first probed on Linux 6.18 on ext4, then the simulator
//! made to match. The kernel's files live under `util::ext4_base()`
//! (`RINGIO_EXT4_DIR`, else the target directory), never in `TMPDIR`:
//! allocation and `O_DIRECT` alignment are ext4's, and the cases that
//! depend on them fail, with the reason, elsewhere.

#[macro_use]
mod util;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use ringio::sim::DiskOptions;
use ringio::{
    AlignedBuf, Config, DirectIoAlign, FallocateFlags, FileKind, FileOptions, FileStat, Handle,
    RenameFlags, UnlinkFlags, IO,
};
use util::Backend;

conformance!(
    openat_creates_and_opens_files_through_the_loop,
    openat_refuses_as_open_does,
    openat_opens_a_directory_that_fsync_syncs,
    statx_reports_size_allocation_block_size_and_direct_alignment,
    statx_times_follow_the_loop_s_wall_clock,
    fallocate_allocates_and_extends,
    fallocate_keep_size_reserves_past_the_end_until_a_truncate,
    fallocate_punches_holes_that_read_as_zeros,
    fallocate_refuses_bad_modes_fds_and_ranges,
    ftruncate_cuts_and_extends_through_the_loop,
    ftruncate_refuses_what_set_len_refuses,
    ftruncate_without_the_kernel_opcode_runs_the_syscall,
    renameat_moves_a_file_and_replaces_the_target,
    renameat_no_replace_is_eexist_and_exchange_swaps,
    renameat_refuses_directory_and_trailing_slash_corners,
    unlinkat_removes_files_and_empty_directories,
    an_unlinked_file_stays_readable_through_an_open_handle,
    mkdirat_makes_directories_and_refuses_what_exists,
    bad_paths_are_refused_in_the_callback_never_a_panic,
    metadata_operations_on_a_closed_handle_are_ebadf,
);

type Outcome<T> = Rc<RefCell<Option<Result<T, i32>>>>;

fn errno(error: std::io::Error) -> i32 {
    error.raw_os_error().expect("an errno")
}

/// One backend's files for a case: an `IO`, and where its paths start.
struct Fs {
    io: IO<()>,
    scratch: util::Scratch,
}

impl Fs {
    /// Files on `backend`, in a fresh scratch directory on ext4 (with the
    /// simulator's default geometry) on a kernel.
    fn new(backend: Backend, name: &str) -> Fs {
        Fs::with_config(backend, name, Config::new())
    }

    fn with_config(backend: Backend, name: &str, config: Config) -> Fs {
        let scratch = util::Scratch::under(&util::ext4_base(), backend, name);
        if backend.is_kernel() {
            let dir = scratch.path(".");
            let defaults = DiskOptions::default();
            let expected = util::DirectIoGeometry {
                sector_bytes: defaults.sector_bytes,
                memory_align_bytes: defaults.direct_memory_align_bytes,
                block_bytes: defaults.block_bytes,
            };
            match util::ext4_geometry(&dir) {
                Ok(geometry) => assert_eq!(
                    geometry, expected,
                    "these cases pin ext4 with the simulator's default geometry"
                ),
                Err(why) => panic!(
                    "these cases compare the simulator with ext4, but {why}; point \
                     RINGIO_EXT4_DIR at a directory on ext4"
                ),
            }
        }
        Fs {
            io: backend.io_with(config),
            scratch,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path(name)
    }

    /// Runs until the operation whose result lands in `outcome` is done.
    fn wait<T>(&mut self, outcome: &Outcome<T>) -> Result<T, i32> {
        self.io.run(&mut ()).unwrap();
        outcome
            .borrow_mut()
            .take()
            .expect("the operation completed")
    }

    fn outcome<T: 'static>() -> (Outcome<T>, impl FnOnce(std::io::Result<T>) + 'static) {
        let outcome: Outcome<T> = Rc::default();
        let out = Rc::clone(&outcome);
        (outcome, move |result: std::io::Result<T>| {
            *out.borrow_mut() = Some(result.map_err(errno));
        })
    }

    fn open(&mut self, name: &str, options: FileOptions) -> Result<Handle, i32> {
        let (outcome, set) = Fs::outcome();
        let path = self.path(name);
        self.io
            .openat(path, options, move |_, _, result| set(result));
        self.wait(&outcome)
    }

    fn stat(&mut self, file: Handle) -> Result<FileStat, i32> {
        let (outcome, set) = Fs::outcome();
        self.io.statx(file, move |_, _, result| set(result));
        self.wait(&outcome)
    }

    fn fallocate(
        &mut self,
        file: Handle,
        flags: FallocateFlags,
        offset: u64,
        len: u64,
    ) -> Result<(), i32> {
        let (outcome, set) = Fs::outcome();
        self.io
            .fallocate(file, flags, offset, len, move |_, _, result| set(result));
        self.wait(&outcome)
    }

    fn ftruncate(&mut self, file: Handle, len: u64) -> Result<(), i32> {
        let (outcome, set) = Fs::outcome();
        self.io
            .ftruncate(file, len, move |_, _, result| set(result));
        self.wait(&outcome)
    }

    fn rename(&mut self, old: &str, new: &str, flags: RenameFlags) -> Result<(), i32> {
        let (outcome, set) = Fs::outcome();
        let (old, new) = (self.path(old), self.path(new));
        self.io
            .renameat(old, new, flags, move |_, _, result| set(result));
        self.wait(&outcome)
    }

    fn unlink(&mut self, name: &str, flags: UnlinkFlags) -> Result<(), i32> {
        let (outcome, set) = Fs::outcome();
        let path = self.path(name);
        self.io
            .unlinkat(path, flags, move |_, _, result| set(result));
        self.wait(&outcome)
    }

    fn mkdir(&mut self, name: &str) -> Result<(), i32> {
        let (outcome, set) = Fs::outcome();
        let path = self.path(name);
        self.io.mkdirat(path, move |_, _, result| set(result));
        self.wait(&outcome)
    }

    fn fsync(&mut self, file: Handle) -> Result<(), i32> {
        let (outcome, set) = Fs::outcome();
        self.io.fsync(file, move |_, _, result| set(result));
        self.wait(&outcome)
    }

    fn write(&mut self, file: Handle, data: &[u8], offset: u64) -> Result<usize, i32> {
        let outcome: Outcome<usize> = Rc::default();
        let out = Rc::clone(&outcome);
        self.io
            .write(file, data.to_vec(), offset, move |_, _, result, _| {
                *out.borrow_mut() = Some(result.map_err(errno));
            });
        self.wait(&outcome)
    }

    fn read(&mut self, file: Handle, len: usize, offset: u64) -> Result<Vec<u8>, i32> {
        let outcome: Outcome<Vec<u8>> = Rc::default();
        let out = Rc::clone(&outcome);
        self.io.read(
            file,
            Vec::with_capacity(len),
            offset,
            move |_, _, result, buf| {
                *out.borrow_mut() = Some(result.map(|_| buf).map_err(errno));
            },
        );
        self.wait(&outcome)
    }

    fn close(&mut self, file: Handle) {
        util::close_io(&mut self.io, &mut (), file);
    }

    /// Creates `name` holding `data`, and closes it.
    fn create_with(&mut self, name: &str, data: &[u8]) {
        let file = self.open(name, create().truncate(true)).unwrap();
        if !data.is_empty() {
            assert_eq!(self.write(file, data, 0), Ok(data.len()));
        }
        self.close(file);
    }

    /// The first `len` bytes of `name`, or the errno of opening it.
    fn contents(&mut self, name: &str, len: usize) -> Result<Vec<u8>, i32> {
        let file = self.open(name, read_only())?;
        let data = self.read(file, len, 0);
        self.close(file);
        data
    }
}

fn create() -> FileOptions {
    FileOptions::new().create(true)
}

fn read_only() -> FileOptions {
    FileOptions::new().write(false)
}

fn directory() -> FileOptions {
    FileOptions::new().write(false).directory(true)
}

const KEEP_SIZE: FallocateFlags = FallocateFlags::KEEP_SIZE;

fn punch() -> FallocateFlags {
    FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE
}

/// 16 TiB - 4 KiB: ext4's `s_maxbytes` with 4 KiB blocks.
const EXT4_FILE_BYTES_MAX: u64 = ((1 << 32) - 1) * 4096;

// ---------------------------------------------------------------------------
// openat

fn openat_creates_and_opens_files_through_the_loop(backend: Backend) {
    let mut fs = Fs::new(backend, "openat");
    let file = fs.open("data", create()).expect("create");
    assert_eq!(fs.write(file, b"through the loop", 0), Ok(16));
    fs.close(file);
    let file = fs.open("data", read_only()).expect("open again");
    assert_eq!(fs.read(file, 64, 0), Ok(b"through the loop".to_vec()));
    assert_eq!(fs.write(file, b"x", 0), Err(libc::EBADF), "read-only");
    fs.close(file);
    let file = fs.open("data", FileOptions::new().truncate(true)).unwrap();
    assert_eq!(fs.stat(file).map(|stat| stat.size_bytes), Ok(0));
    fs.close(file);
    let file = fs.open("new", FileOptions::new().create_new(true)).unwrap();
    fs.close(file);
    assert_eq!(fs.io.stats().descriptors_open, 0);
}

fn openat_refuses_as_open_does(backend: Backend) {
    let mut fs = Fs::new(backend, "openat-errnos");
    fs.mkdir("d").unwrap();
    fs.create_with("f", b"");
    assert_eq!(fs.open("missing", read_only()), Err(libc::ENOENT));
    assert_eq!(fs.open("missing/f", create()), Err(libc::ENOENT));
    assert_eq!(fs.open("f/x", create()), Err(libc::ENOTDIR));
    assert_eq!(fs.open("f/", read_only()), Err(libc::ENOTDIR));
    assert_eq!(fs.open("f/", create()), Err(libc::EISDIR));
    let create_new = FileOptions::new().create_new(true);
    assert_eq!(fs.open("f", create_new), Err(libc::EEXIST));
    assert_eq!(fs.open("d", create_new), Err(libc::EEXIST));
    assert_eq!(fs.open("d", FileOptions::new()), Err(libc::EISDIR));
    assert_eq!(fs.open("d", create()), Err(libc::EISDIR));
    assert_eq!(fs.open("f", directory()), Err(libc::ENOTDIR));
    assert_eq!(fs.open("missing", directory()), Err(libc::ENOENT));
    assert_eq!(
        fs.open("d", FileOptions::new().directory(true)),
        Err(libc::EISDIR)
    );
    assert_eq!(fs.open("d", directory().create(true)), Err(libc::EINVAL));
    assert_eq!(fs.open("d", read_only().direct(true)), Err(libc::EINVAL));
    assert_eq!(fs.open(&"n".repeat(256), create()), Err(libc::ENAMETOOLONG));
    assert_eq!(fs.io.stats().descriptors_open, 0);
}

fn openat_opens_a_directory_that_fsync_syncs(backend: Backend) {
    let mut fs = Fs::new(backend, "openat-dir");
    fs.mkdir("d").unwrap();
    let dir = fs.open("d", directory()).expect("a directory, read-only");
    let stat = fs.stat(dir).unwrap();
    assert_eq!(stat.kind, FileKind::Directory);
    assert_eq!(stat.size_bytes, 4096);
    assert_eq!(stat.direct_io, None);
    assert_eq!(fs.fsync(dir), Ok(()));
    assert_eq!(fs.read(dir, 16, 0), Err(libc::EISDIR));
    fs.close(dir);
    let here = fs.open(".", directory()).expect("the current directory");
    assert_eq!(fs.fsync(here), Ok(()));
    fs.close(here);
}

// ---------------------------------------------------------------------------
// statx

fn statx_reports_size_allocation_block_size_and_direct_alignment(backend: Backend) {
    let mut fs = Fs::new(backend, "statx");
    let file = fs.open("data", create()).unwrap();
    let empty = fs.stat(file).unwrap();
    assert_eq!(empty.kind, FileKind::Regular);
    assert_eq!(empty.size_bytes, 0);
    assert_eq!(empty.allocated_bytes, 0);
    assert_eq!(empty.block_bytes, 4096);
    let align = DirectIoAlign {
        offset_bytes: 512,
        memory_bytes: 512,
    };
    assert_eq!(empty.direct_io, Some(align));
    assert_eq!(fs.write(file, &[1; 5000], 0), Ok(5000));
    let written = fs.stat(file).unwrap();
    assert_eq!(written.size_bytes, 5000);
    assert_eq!(
        written.allocated_bytes, 8192,
        "two blocks, before writeback too"
    );
    // A sparse tail takes nothing.
    assert_eq!(fs.ftruncate(file, 1 << 30), Ok(()));
    let sparse = fs.stat(file).unwrap();
    assert_eq!(sparse.size_bytes, 1 << 30);
    assert_eq!(sparse.allocated_bytes, 8192);
    fs.close(file);
    // What an engine checks at start-up: O_DIRECT reads sized from statx.
    let file = fs.open("data", read_only().direct(true)).unwrap();
    let stat = fs.stat(file).unwrap();
    let align = stat.direct_io.expect("ext4 does direct I/O");
    let buf = AlignedBuf::new(4096, align.memory_bytes as usize).unwrap();
    let outcome: Outcome<usize> = Rc::default();
    let out = Rc::clone(&outcome);
    fs.io.read(file, buf, 0, move |_, _, result, _| {
        *out.borrow_mut() = Some(result.map_err(errno));
    });
    assert_eq!(fs.wait(&outcome), Ok(4096));
    fs.close(file);
}

fn statx_times_follow_the_loop_s_wall_clock(backend: Backend) {
    let mut fs = Fs::new(backend, "statx-times");
    let file = fs.open("data", create()).unwrap();
    let before = fs.stat(file).unwrap();
    let now_ns = fs.io.realtime_ns() as i64;
    let minute_ns = 60_000_000_000;
    assert!(before.born_ns.is_some(), "ext4 records the creation time");
    for time_ns in [
        before.modified_ns,
        before.changed_ns,
        before.born_ns.unwrap(),
    ] {
        assert!(
            (now_ns - time_ns).abs() < minute_ns,
            "{time_ns} near {now_ns}"
        );
    }
    // Let the clock move on (the simulator's moves only with events).
    let timer: Outcome<()> = Rc::default();
    let out = Rc::clone(&timer);
    fs.io.timeout(2_000_000, move |_, _, result| {
        *out.borrow_mut() = Some(result.map_err(errno));
    });
    fs.wait(&timer).unwrap();
    assert_eq!(fs.write(file, b"later", 0), Ok(5));
    let after = fs.stat(file).unwrap();
    assert!(after.modified_ns > before.modified_ns);
    assert!(after.changed_ns >= after.modified_ns);
    assert_eq!(after.born_ns, before.born_ns);
    fs.close(file);
}

// ---------------------------------------------------------------------------
// fallocate

fn fallocate_allocates_and_extends(backend: Backend) {
    let mut fs = Fs::new(backend, "fallocate");
    let file = fs.open("data", create()).unwrap();
    assert_eq!(
        fs.fallocate(file, FallocateFlags::ALLOCATE, 0, 8192),
        Ok(())
    );
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.size_bytes, 8192);
    assert_eq!(stat.allocated_bytes, 8192);
    assert_eq!(fs.read(file, 8192, 0), Ok(vec![0; 8192]), "reads as zeros");
    // Over what is written, nothing changes.
    assert_eq!(fs.write(file, b"kept", 100), Ok(4));
    assert_eq!(
        fs.fallocate(file, FallocateFlags::ALLOCATE, 0, 4096),
        Ok(())
    );
    assert_eq!(fs.read(file, 4, 100), Ok(b"kept".to_vec()));
    // A range that ends inside a block allocates the whole block.
    assert_eq!(
        fs.fallocate(file, FallocateFlags::ALLOCATE, 8192, 100),
        Ok(())
    );
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.size_bytes, 8292);
    assert_eq!(stat.allocated_bytes, 12288);
    // And a direct read over an allocated, never written block is
    // judged as a hole's: zeros, however aligned.
    fs.close(file);
    let direct = fs.open("data", read_only().direct(true)).unwrap();
    assert_eq!(fs.read(direct, 100, 4096 + 7), Ok(vec![0; 100]));
    fs.close(direct);
}

fn fallocate_keep_size_reserves_past_the_end_until_a_truncate(backend: Backend) {
    let mut fs = Fs::new(backend, "fallocate-keep");
    let file = fs.open("data", create()).unwrap();
    assert_eq!(fs.write(file, &[7; 100], 0), Ok(100));
    assert_eq!(fs.fallocate(file, KEEP_SIZE, 0, 16384), Ok(()));
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.size_bytes, 100, "the length stays");
    assert_eq!(stat.allocated_bytes, 16384);
    assert_eq!(fs.read(file, 200, 0), Ok(vec![7; 100]));
    // A truncate that does not grow the file frees what lies past the end.
    assert_eq!(fs.ftruncate(file, 100), Ok(()));
    assert_eq!(fs.stat(file).unwrap().allocated_bytes, 4096);
    // One that grows it keeps a reservation.
    assert_eq!(fs.fallocate(file, KEEP_SIZE, 8192, 4096), Ok(()));
    assert_eq!(fs.ftruncate(file, 4096), Ok(()));
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.size_bytes, 4096);
    assert_eq!(stat.allocated_bytes, 8192);
    // Writing into the reservation extends the file as any write does.
    assert_eq!(fs.write(file, b"end", 8192), Ok(3));
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.size_bytes, 8195);
    assert_eq!(stat.allocated_bytes, 8192);
    fs.close(file);
}

fn fallocate_punches_holes_that_read_as_zeros(backend: Backend) {
    let mut fs = Fs::new(backend, "fallocate-punch");
    let file = fs.open("data", create()).unwrap();
    assert_eq!(fs.write(file, &[9; 12288], 0), Ok(12288));
    // Part of block 0, part of block 1: zeros there, nothing freed.
    assert_eq!(fs.fallocate(file, punch(), 100, 4900), Ok(()));
    assert_eq!(fs.stat(file).unwrap().allocated_bytes, 12288);
    let data = fs.read(file, 12288, 0).unwrap();
    assert!(data[..100].iter().all(|&byte| byte == 9));
    assert!(data[100..5000].iter().all(|&byte| byte == 0));
    assert!(data[5000..].iter().all(|&byte| byte == 9));
    // All of block 1: freed.
    assert_eq!(fs.fallocate(file, punch(), 4096, 4096), Ok(()));
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.size_bytes, 12288, "the length stays");
    assert_eq!(stat.allocated_bytes, 8192);
    // At or past the end: nothing to punch.
    assert_eq!(fs.fallocate(file, punch(), 20000, 4096), Ok(()));
    // Past the end stops at the end's block: a reservation beyond stays.
    assert_eq!(fs.fallocate(file, KEEP_SIZE, 16384, 8192), Ok(()));
    assert_eq!(fs.fallocate(file, punch(), 12000, 18000), Ok(()));
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.allocated_bytes, 16384);
    let tail = fs.read(file, 1000, 11288).unwrap();
    assert!(tail[..712].iter().all(|&byte| byte == 9));
    assert!(tail[712..].iter().all(|&byte| byte == 0));
    // The punched bytes stay gone after an fsync: the dirty pages went too.
    assert_eq!(fs.fsync(file), Ok(()));
    fs.close(file);
    let data = fs.contents("data", 12288).unwrap();
    assert!(data[4096..8192].iter().all(|&byte| byte == 0));
    // A range that passes the end reaches the end of the end's block,
    // however short of it the range stops: ext4 frees that block too.
    let file = fs.open("tail", create()).unwrap();
    assert_eq!(fs.write(file, &[3; 6000], 0), Ok(6000));
    assert_eq!(fs.fallocate(file, punch(), 4096, 2404), Ok(()));
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.size_bytes, 6000);
    assert_eq!(stat.allocated_bytes, 4096);
    fs.close(file);
}

fn fallocate_refuses_bad_modes_fds_and_ranges(backend: Backend) {
    let mut fs = Fs::new(backend, "fallocate-errnos");
    fs.mkdir("d").unwrap();
    let file = fs.open("data", create()).unwrap();
    let punch_alone = FallocateFlags::PUNCH_HOLE;
    assert_eq!(
        fs.fallocate(file, punch_alone, 0, 4096),
        Err(libc::EOPNOTSUPP)
    );
    assert_eq!(
        fs.fallocate(file, FallocateFlags::ALLOCATE, 0, 0),
        Err(libc::EINVAL)
    );
    let huge = i64::MAX as u64 + 1;
    assert_eq!(fs.fallocate(file, KEEP_SIZE, huge, 1), Err(libc::EINVAL));
    assert_eq!(fs.fallocate(file, KEEP_SIZE, 0, huge), Err(libc::EINVAL));
    let max = EXT4_FILE_BYTES_MAX;
    assert_eq!(
        fs.fallocate(file, KEEP_SIZE, max - 4096, 8192),
        Err(libc::EFBIG)
    );
    assert_eq!(fs.fallocate(file, KEEP_SIZE, max - 4096, 4096), Ok(()));
    assert_eq!(
        fs.fallocate(file, KEEP_SIZE, i64::MAX as u64, i64::MAX as u64),
        Err(libc::EFBIG)
    );
    fs.close(file);
    let read = fs.open("data", read_only()).unwrap();
    assert_eq!(fs.fallocate(read, KEEP_SIZE, 0, 4096), Err(libc::EBADF));
    assert_eq!(
        fs.fallocate(read, punch_alone, 0, 4096),
        Err(libc::EOPNOTSUPP),
        "the mode first"
    );
    fs.close(read);
    let dir = fs.open("d", directory()).unwrap();
    assert_eq!(fs.fallocate(dir, KEEP_SIZE, 0, 4096), Err(libc::EBADF));
    fs.close(dir);
}

// ---------------------------------------------------------------------------
// ftruncate

fn ftruncate_cuts_and_extends(fs: &mut Fs) {
    let file = fs.open("data", create()).unwrap();
    assert_eq!(fs.write(file, &[5; 10_000], 0), Ok(10_000));
    assert_eq!(fs.ftruncate(file, 100), Ok(()));
    let stat = fs.stat(file).unwrap();
    assert_eq!(stat.size_bytes, 100);
    assert_eq!(stat.allocated_bytes, 4096);
    assert_eq!(fs.ftruncate(file, 5000), Ok(()));
    let data = fs.read(file, 10_000, 0).unwrap();
    assert_eq!(data.len(), 5000);
    assert!(data[..100].iter().all(|&byte| byte == 5));
    assert!(
        data[100..].iter().all(|&byte| byte == 0),
        "extending shows zeros"
    );
    assert_eq!(fs.ftruncate(file, EXT4_FILE_BYTES_MAX), Ok(()));
    assert_eq!(
        fs.ftruncate(file, EXT4_FILE_BYTES_MAX + 1),
        Err(libc::EFBIG)
    );
    assert_eq!(fs.ftruncate(file, 0), Ok(()));
    assert_eq!(fs.stat(file).unwrap().allocated_bytes, 0);
    fs.close(file);
}

fn ftruncate_cuts_and_extends_through_the_loop(backend: Backend) {
    let mut fs = Fs::new(backend, "ftruncate");
    ftruncate_cuts_and_extends(&mut fs);
}

fn ftruncate_without_the_kernel_opcode_runs_the_syscall(backend: Backend) {
    // On io_uring this is the path of a kernel older than 6.9; elsewhere
    // it is the same as the case above.
    let config = Config::new().emulate_kernel_features(true);
    let mut fs = Fs::with_config(backend, "ftruncate-fallback", config);
    ftruncate_cuts_and_extends(&mut fs);
}

fn ftruncate_refuses_what_set_len_refuses(backend: Backend) {
    let mut fs = Fs::new(backend, "ftruncate-errnos");
    fs.mkdir("d").unwrap();
    fs.create_with("data", b"data");
    let read = fs.open("data", read_only()).unwrap();
    assert_eq!(fs.ftruncate(read, 0), Err(libc::EINVAL), "read-only");
    fs.close(read);
    let dir = fs.open("d", directory()).unwrap();
    assert_eq!(fs.ftruncate(dir, 0), Err(libc::EINVAL), "a directory");
    fs.close(dir);
    let file = fs.open("data", FileOptions::new()).unwrap();
    assert_eq!(fs.ftruncate(file, i64::MAX as u64 + 1), Err(libc::EINVAL));
    assert_eq!(fs.ftruncate(file, u64::MAX), Err(libc::EINVAL));
    fs.close(file);
    assert_eq!(
        fs.contents("data", 16),
        Ok(b"data".to_vec()),
        "nothing changed"
    );
}

// ---------------------------------------------------------------------------
// renameat

fn renameat_moves_a_file_and_replaces_the_target(backend: Backend) {
    let mut fs = Fs::new(backend, "rename");
    fs.mkdir("d").unwrap();
    fs.create_with("old", b"old data");
    fs.create_with("target", b"replaced");
    assert_eq!(fs.rename("old", "d/new", RenameFlags::REPLACE), Ok(()));
    assert_eq!(fs.contents("old", 16), Err(libc::ENOENT));
    assert_eq!(fs.contents("d/new", 16), Ok(b"old data".to_vec()));
    assert_eq!(fs.rename("d/new", "target", RenameFlags::REPLACE), Ok(()));
    assert_eq!(fs.contents("target", 16), Ok(b"old data".to_vec()));
    assert_eq!(fs.contents("d/new", 16), Err(libc::ENOENT));
    // The same entry by two names: nothing happens.
    assert_eq!(
        fs.rename("target", "d/../target", RenameFlags::REPLACE),
        Ok(())
    );
    assert_eq!(fs.contents("target", 16), Ok(b"old data".to_vec()));
    // A directory moves with what is in it, and over an empty one.
    fs.mkdir("d/sub").unwrap();
    fs.create_with("d/sub/inner", b"inner");
    fs.mkdir("empty").unwrap();
    assert_eq!(fs.rename("d", "empty", RenameFlags::REPLACE), Ok(()));
    assert_eq!(fs.contents("empty/sub/inner", 16), Ok(b"inner".to_vec()));
    assert_eq!(fs.contents("d/sub/inner", 16), Err(libc::ENOENT));
    assert_eq!(
        fs.rename("missing", "x", RenameFlags::REPLACE),
        Err(libc::ENOENT)
    );
    assert_eq!(
        fs.rename("target", "missing/x", RenameFlags::REPLACE),
        Err(libc::ENOENT)
    );
    assert_eq!(
        fs.rename("target", "target/x", RenameFlags::REPLACE),
        Err(libc::ENOTDIR)
    );
}

fn renameat_no_replace_is_eexist_and_exchange_swaps(backend: Backend) {
    let mut fs = Fs::new(backend, "rename-flags");
    fs.create_with("a", b"first");
    fs.create_with("b", b"second");
    let no_replace = RenameFlags::NO_REPLACE;
    let exchange = RenameFlags::EXCHANGE;
    assert_eq!(fs.rename("a", "b", no_replace), Err(libc::EEXIST));
    assert_eq!(fs.rename("a", "a", no_replace), Err(libc::EEXIST));
    assert_eq!(
        fs.contents("b", 16),
        Ok(b"second".to_vec()),
        "nothing replaced"
    );
    assert_eq!(fs.rename("a", "c", no_replace), Ok(()));
    assert_eq!(fs.rename("c", "a", no_replace), Ok(()));
    assert_eq!(fs.rename("a", "b", exchange), Ok(()));
    assert_eq!(fs.contents("a", 16), Ok(b"second".to_vec()));
    assert_eq!(fs.contents("b", 16), Ok(b"first".to_vec()));
    assert_eq!(fs.rename("a", "missing", exchange), Err(libc::ENOENT));
    assert_eq!(
        fs.rename("a", "b", no_replace | exchange),
        Err(libc::EINVAL)
    );
    // A file and a directory swap too, the directory with its contents.
    fs.mkdir("d").unwrap();
    fs.create_with("d/inside", b"inside");
    assert_eq!(fs.rename("a", "d", exchange), Ok(()));
    assert_eq!(fs.contents("d", 16), Ok(b"second".to_vec()));
    assert_eq!(fs.contents("a/inside", 16), Ok(b"inside".to_vec()));
    assert_eq!(fs.rename("b", "d/", exchange), Err(libc::ENOTDIR));
    assert_eq!(fs.rename("a/inside", "a", exchange), Err(libc::EINVAL));
}

fn renameat_refuses_directory_and_trailing_slash_corners(backend: Backend) {
    let mut fs = Fs::new(backend, "rename-corners");
    fs.mkdir("d").unwrap();
    fs.mkdir("d/sub").unwrap();
    fs.mkdir("e").unwrap();
    fs.create_with("f", b"f");
    fs.create_with("d/x", b"x");
    let replace = RenameFlags::REPLACE;
    assert_eq!(fs.rename("f", "d", replace), Err(libc::EISDIR));
    assert_eq!(fs.rename("d", "f", replace), Err(libc::ENOTDIR));
    assert_eq!(fs.rename("e", "d", replace), Err(libc::ENOTEMPTY));
    assert_eq!(
        fs.rename("d", "d/sub/y", replace),
        Err(libc::EINVAL),
        "into itself"
    );
    assert_eq!(
        fs.rename("d/sub", "d", replace),
        Err(libc::ENOTEMPTY),
        "over its parent"
    );
    assert_eq!(fs.rename("f/", "z", replace), Err(libc::ENOTDIR));
    assert_eq!(fs.rename("f", "z/", replace), Err(libc::ENOTDIR));
    assert_eq!(fs.rename(".", "z", replace), Err(libc::EBUSY));
    assert_eq!(fs.rename("f", ".", replace), Err(libc::EBUSY));
    assert_eq!(
        fs.rename("f", ".", RenameFlags::NO_REPLACE),
        Err(libc::EEXIST)
    );
    assert_eq!(
        fs.rename("e/", "z/", replace),
        Ok(()),
        "a directory may end in /"
    );
    assert_eq!(fs.open("z", directory()).map(|_| ()), Ok(()));
}

// ---------------------------------------------------------------------------
// unlinkat

fn unlinkat_removes_files_and_empty_directories(backend: Backend) {
    let mut fs = Fs::new(backend, "unlink");
    fs.mkdir("d").unwrap();
    fs.mkdir("e").unwrap();
    fs.create_with("f", b"f");
    fs.create_with("d/x", b"x");
    let file = UnlinkFlags::FILE;
    let dir = UnlinkFlags::REMOVE_DIR;
    assert_eq!(fs.unlink("missing", file), Err(libc::ENOENT));
    assert_eq!(fs.unlink("missing", dir), Err(libc::ENOENT));
    assert_eq!(fs.unlink("d", file), Err(libc::EISDIR));
    assert_eq!(fs.unlink("e/", file), Err(libc::EISDIR));
    assert_eq!(fs.unlink(".", file), Err(libc::EISDIR));
    assert_eq!(fs.unlink("f/", file), Err(libc::ENOTDIR));
    assert_eq!(fs.unlink("f", dir), Err(libc::ENOTDIR));
    assert_eq!(fs.unlink("d", dir), Err(libc::ENOTEMPTY));
    assert_eq!(fs.unlink(".", dir), Err(libc::EINVAL));
    assert_eq!(fs.unlink("d/..", dir), Err(libc::ENOTEMPTY));
    assert_eq!(fs.unlink("f/x", file), Err(libc::ENOTDIR));
    assert_eq!(fs.unlink("f", file), Ok(()));
    assert_eq!(fs.contents("f", 16), Err(libc::ENOENT));
    assert_eq!(fs.unlink("d/x", file), Ok(()));
    let open_dir = fs.open("d", directory()).unwrap();
    assert_eq!(fs.unlink("d", dir), Ok(()));
    assert_eq!(fs.unlink("e/", dir), Ok(()));
    // A removed directory open elsewhere is empty and 0 long, and syncs.
    assert_eq!(fs.stat(open_dir).map(|stat| stat.size_bytes), Ok(0));
    assert_eq!(fs.fsync(open_dir), Ok(()));
    fs.close(open_dir);
    assert_eq!(fs.open("d", directory()), Err(libc::ENOENT));
    // The name is free again.
    fs.create_with("f", b"again");
    assert_eq!(fs.contents("f", 16), Ok(b"again".to_vec()));
}

fn an_unlinked_file_stays_readable_through_an_open_handle(backend: Backend) {
    let mut fs = Fs::new(backend, "unlink-open");
    let file = fs.open("data", create()).unwrap();
    assert_eq!(fs.write(file, b"still here", 0), Ok(10));
    assert_eq!(fs.unlink("data", UnlinkFlags::FILE), Ok(()));
    assert_eq!(fs.contents("data", 16), Err(libc::ENOENT));
    assert_eq!(fs.write(file, b"!", 10), Ok(1));
    assert_eq!(fs.read(file, 64, 0), Ok(b"still here!".to_vec()));
    assert_eq!(fs.stat(file).map(|stat| stat.size_bytes), Ok(11));
    fs.close(file);
    // A new file by the same name is a new file.
    let file = fs.open("data", create()).unwrap();
    assert_eq!(fs.stat(file).map(|stat| stat.size_bytes), Ok(0));
    fs.close(file);
}

// ---------------------------------------------------------------------------
// mkdirat

fn mkdirat_makes_directories_and_refuses_what_exists(backend: Backend) {
    let mut fs = Fs::new(backend, "mkdir");
    assert_eq!(fs.mkdir("d"), Ok(()));
    assert_eq!(fs.mkdir("d/sub/"), Ok(()), "a trailing slash is fine");
    fs.create_with("d/sub/f", b"deep");
    assert_eq!(fs.contents("d/sub/f", 16), Ok(b"deep".to_vec()));
    assert_eq!(fs.mkdir("d"), Err(libc::EEXIST));
    assert_eq!(fs.mkdir("d/sub/f"), Err(libc::EEXIST), "a file is there");
    assert_eq!(fs.mkdir("d/sub/f/"), Err(libc::EEXIST));
    assert_eq!(fs.mkdir("."), Err(libc::EEXIST));
    assert_eq!(fs.mkdir("d/.."), Err(libc::EEXIST));
    assert_eq!(fs.mkdir("missing/x"), Err(libc::ENOENT));
    assert_eq!(fs.mkdir("d/sub/f/x"), Err(libc::ENOTDIR));
    let dir = fs.open("d/sub", directory()).unwrap();
    assert_eq!(fs.stat(dir).unwrap().kind, FileKind::Directory);
    assert_eq!(fs.fsync(dir), Ok(()));
    fs.close(dir);
}

// ---------------------------------------------------------------------------
// Bad input

fn bad_paths_are_refused_in_the_callback_never_a_panic(backend: Backend) {
    let mut fs = Fs::new(backend, "bad-paths");
    fs.create_with("f", b"");
    let nul = "a\0b";
    let long = "l/".repeat(2048);
    for (path, expected) in [(nul, libc::EINVAL), (long.as_str(), libc::ENAMETOOLONG)] {
        assert_eq!(fs.open(path, create()), Err(expected));
        assert_eq!(fs.mkdir(path), Err(expected));
        assert_eq!(fs.unlink(path, UnlinkFlags::FILE), Err(expected));
        assert_eq!(fs.rename("f", path, RenameFlags::REPLACE), Err(expected));
        assert_eq!(fs.rename(path, "f", RenameFlags::REPLACE), Err(expected));
    }
    // A bare name resolves from the current directory, which the kernel
    // backends' scratch directory is not: check the path the IO gets.
    let (outcome, set) = Fs::outcome();
    fs.io
        .openat("", read_only(), move |_, _, result| set(result));
    assert_eq!(fs.wait(&outcome), Err(libc::ENOENT), "an empty path");
    assert_eq!(
        fs.contents("f", 16),
        Ok(Vec::new()),
        "nothing happened to f"
    );
    assert_eq!(fs.io.stats().callbacks_boxed, 0);
}

fn metadata_operations_on_a_closed_handle_are_ebadf(backend: Backend) {
    let mut fs = Fs::new(backend, "closed-handle");
    let file = fs.open("data", create()).unwrap();
    fs.close(file);
    assert_eq!(fs.stat(file), Err(libc::EBADF));
    assert_eq!(fs.fallocate(file, KEEP_SIZE, 0, 4096), Err(libc::EBADF));
    assert_eq!(fs.ftruncate(file, 0), Err(libc::EBADF));
    assert_eq!(fs.fsync(file), Err(libc::EBADF));
}
