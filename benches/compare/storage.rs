//! Workload 5: storage against fio's io_uring engine, on the same files in
//! the same run: 4 KiB random reads (buffered and O_DIRECT, QD 1, 32, 128)
//! and sequential 1 MiB writes with an fsync every write or every 16.
//!
//! Buffered reads run on a warm page cache for both sides: the file is read
//! once before those rows, caches are never dropped, and fio runs with
//! `--invalidate=0` so it does not drop them either.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringio::{AlignedBuf, Config, FileOptions, Handle, IO};

use crate::fio;
use crate::options::Options;
use crate::process::output_dir;
use crate::stats::{Better, Row, Section, Side};

const READ_FILE_BYTES: u64 = 1 << 30;
const WRITE_FILE_BYTES: u64 = 256 << 20;
const BLOCK_BYTES: usize = 4096;
const WRITE_BYTES: usize = 1 << 20;
const QUEUE_DEPTHS: [u32; 3] = [1, 32, 128];
const FIO: &str = "fio --ioengine=io_uring";

pub fn run(options: &Options) -> Section {
    let mut section = Section {
        title: "Storage".to_string(),
        method: format!(
            "4 KiB random reads over a 1 GiB file of random data, and sequential 1 MiB buffered \
             writes over a {} MiB file with an fsync after every write or every 16 (one write or \
             fsync in flight; fio `--fsync=N`, `--iodepth=1`). ringio keeps QD `read`s in flight \
             on one `IO`; in the O_DIRECT rows above QD 1 it submits each read as soon as it is \
             made (`Config::submit_batch(1)`), as fio does by default (at QD 1 the pass's own \
             `io_uring_enter` submits and waits in one call). fio runs `--rw=randread --bs=4k --iodepth=QD --direct=0/1 --time_based \
             --runtime=... --invalidate=0`. Buffered reads hit a warm page cache on both sides \
             (the file is read once first; caches are never dropped). Both run pinned to core 0. \
             Target: ≥0.95× fio in every row.",
            WRITE_FILE_BYTES >> 20
        ),
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let files = prepare_files();
    let fio_ready = fio::ensure_installed();
    let (read_path, write_path) = match files {
        Ok(paths) => paths,
        Err(error) => {
            section.notes.push(format!(
                "Storage skipped: cannot create the data files: {error}"
            ));
            return section;
        }
    };
    if let Err(reason) = &fio_ready {
        section.notes.push(format!("fio rows: {reason}"));
    }
    let fio_ready = fio_ready.is_ok();
    for direct in [false, true] {
        if !direct {
            warm_page_cache(&read_path);
        }
        for queue_depth in QUEUE_DEPTHS {
            section.rows.push(randread_row(
                options,
                &read_path,
                direct,
                queue_depth,
                fio_ready,
            ));
        }
    }
    // Registered buffers, against fio with its registration options: with
    // registered files on both sides (ringio's default), then on plain fds
    // on both sides (`Config::registered_files(0)`, fio without
    // `--registerfiles`), alternating run by run within each row.
    for registered_files in [true, false] {
        for queue_depth in QUEUE_DEPTHS {
            section.rows.push(randread_fixed_row(
                options,
                &read_path,
                queue_depth,
                registered_files,
                fio_ready,
            ));
        }
    }
    // The table's own gain: ringio against itself on plain fds
    // (`Config::registered_files(0)`), the two alternating run by run.
    for (direct, fixed_buffers) in [(false, false), (true, false), (true, true)] {
        for queue_depth in QUEUE_DEPTHS {
            section.rows.push(registered_files_row(
                options,
                &read_path,
                direct,
                fixed_buffers,
                queue_depth,
            ));
        }
    }
    for fsync_every in [1, 16] {
        section
            .rows
            .push(write_row(options, &write_path, fsync_every, fio_ready));
    }
    section
}

/// Creates the data files once and reuses them between runs.
fn prepare_files() -> io::Result<(PathBuf, PathBuf)> {
    let dir = output_dir();
    std::fs::create_dir_all(&dir)?;
    let read_path = dir.join("randread-1GiB.dat");
    let write_path = dir.join("write-256MiB.dat");
    for (path, bytes) in [
        (&read_path, READ_FILE_BYTES),
        (&write_path, WRITE_FILE_BYTES),
    ] {
        if std::fs::metadata(path).map(|m| m.len()).ok() != Some(bytes) {
            eprintln!("storage: creating {} ({} MiB)", path.display(), bytes >> 20);
            fill_file(path, bytes)?;
        }
    }
    Ok((read_path, write_path))
}

/// Writes `bytes` of pseudo-random data, so nothing is sparse or compressible.
fn fill_file(path: &Path, bytes: u64) -> io::Result<()> {
    let mut file = File::create(path)?;
    let mut random = 0x2545_f491_4f6c_dd1du64;
    let mut chunk = vec![0u8; WRITE_BYTES];
    for _ in 0..bytes / WRITE_BYTES as u64 {
        for word in chunk.chunks_exact_mut(8) {
            random = xorshift(random);
            word.copy_from_slice(&random.to_le_bytes());
        }
        file.write_all(&chunk)?;
    }
    file.sync_all()
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Reads the file once so buffered reads start from a warm page cache.
fn warm_page_cache(path: &Path) {
    let mut buf = vec![0u8; WRITE_BYTES];
    if let Ok(mut file) = File::open(path) {
        while matches!(file.read(&mut buf), Ok(count) if count > 0) {}
    }
}

fn randread_row(
    options: &Options,
    path: &Path,
    direct: bool,
    queue_depth: u32,
    fio_ready: bool,
) -> Row {
    let mode = if direct {
        "O_DIRECT"
    } else {
        "buffered (page cache warm)"
    };
    let mut ringio = Vec::new();
    let mut peer = Vec::new();
    let mut peer_error = None;
    let mut ringio_error = None;
    for _ in 0..options.runs {
        match ringio_randread(path, direct, queue_depth, true, options.storage_duration) {
            Ok(reads) => ringio.push(reads.iops),
            Err(error) => ringio_error = Some(format!("failed: {error}")),
        }
        if fio_ready && peer_error.is_none() {
            let registration = ["--registerfiles"];
            let duration = options.storage_duration;
            match fio::randread_iops(path, direct, queue_depth, duration, &registration) {
                Ok(iops) => peer.push(iops),
                Err(error) => peer_error = Some(error),
            }
        }
    }
    eprintln!("  randread {mode} QD {queue_depth}: done");
    storage_row(
        format!("4 KiB random read, 1 GiB file, {mode}, QD {queue_depth}"),
        "IOPS",
        (&ringio, ringio_error),
        (&peer, peer_error),
    )
}

/// O_DIRECT random reads through registered buffers (`read_fixed`)
/// against fio with `--fixedbufs`, both sides with registered files
/// (fio `--registerfiles`) or both without.
fn randread_fixed_row(
    options: &Options,
    path: &Path,
    queue_depth: u32,
    registered_files: bool,
    fio_ready: bool,
) -> Row {
    let mut ringio = Vec::new();
    let mut peer = Vec::new();
    let (mut ringio_error, mut peer_error) = (None, None);
    let registration: &[&str] = if registered_files {
        &["--fixedbufs", "--registerfiles"]
    } else {
        &["--fixedbufs"]
    };
    for _ in 0..options.runs {
        match ringio_randread_fixed(
            path,
            queue_depth,
            registered_files,
            options.storage_duration,
        ) {
            Ok(reads) => ringio.push(reads.iops),
            Err(error) => ringio_error = Some(format!("failed: {error}")),
        }
        if fio_ready && peer_error.is_none() {
            let duration = options.storage_duration;
            match fio::randread_iops(path, true, queue_depth, duration, registration) {
                Ok(iops) => peer.push(iops),
                Err(error) => peer_error = Some(error),
            }
        }
    }
    eprintln!("  randread O_DIRECT fixed buffers, registered files {registered_files}, QD {queue_depth}: done");
    let files = if registered_files {
        "registered files (fio --fixedbufs --registerfiles)"
    } else {
        "plain fds (ringio registered_files(0), fio --fixedbufs)"
    };
    storage_row(
        format!(
            "4 KiB random read, 1 GiB file, O_DIRECT, registered buffers, {files}, QD {queue_depth}"
        ),
        "IOPS",
        (&ringio, ringio_error),
        (&peer, peer_error),
    )
}

/// `Config::submit_batch` for O_DIRECT reads at `queue_depth`: each read
/// submitted as soon as its predecessor's callback makes it (1), as fio
/// does; at QD 1 that callback is the pass's last, and the pass's own
/// `io_uring_enter` submits the read and waits in one call (0), where an
/// early submit would make it two.
fn early_submit_batch(queue_depth: u32) -> u32 {
    if queue_depth > 1 {
        1
    } else {
        0
    }
}

fn ringio_randread_fixed(
    path: &Path,
    queue_depth: u32,
    registered_files: bool,
    duration: Duration,
) -> io::Result<Reads> {
    let mut config = Config::new()
        .entries(256.max(queue_depth))
        .completions_initial(queue_depth)
        .submit_batch(early_submit_batch(queue_depth));
    if !registered_files {
        config = config.registered_files(0);
    }
    let mut io: IO<FileState> = IO::with_config(config)?;
    let count = u16::try_from(queue_depth).map_err(|_| io::Error::other("queue depth"))?;
    let set = io.register_fixed_buffers(count, BLOCK_BYTES as u32)?;
    let file = io.open_file(path, FileOptions::new().write(false).direct(true))?;
    let mut state = FileState::new(file, 0);
    while let Some(buf) = set.take_any() {
        read_fixed_next(&mut io, &mut state, buf);
    }
    let result = run_timed(&mut io, &mut state, duration);
    close(&mut io, file);
    let (completed, _, elapsed_s) = result?;
    Ok(Reads::of(completed, elapsed_s, state.cpu_s))
}

fn read_fixed_next(io: &mut IO<FileState>, state: &mut FileState, buf: ringio::FixedBuf) {
    state.random = xorshift(state.random);
    let offset = state.random % (READ_FILE_BYTES / BLOCK_BYTES as u64) * BLOCK_BYTES as u64;
    io.read_fixed(
        state.file,
        buf,
        offset,
        |io, state, result, buf| match result {
            Ok(count) if count == BLOCK_BYTES => {
                state.completed += 1;
                if !state.stop {
                    read_fixed_next(io, state, buf);
                }
            }
            Ok(count) => state.fail(io::Error::other(format!("short read of {count} bytes"))),
            Err(error) => state.fail(error),
        },
    );
}

fn write_row(options: &Options, path: &Path, fsync_every: u32, fio_ready: bool) -> Row {
    let mut ringio = Vec::new();
    let mut peer = Vec::new();
    let mut peer_error = None;
    let mut ringio_error = None;
    for _ in 0..options.runs {
        match ringio_write_fsync(path, fsync_every, options.storage_duration) {
            Ok(mb_s) => ringio.push(mb_s),
            Err(error) => ringio_error = Some(format!("failed: {error}")),
        }
        if fio_ready && peer_error.is_none() {
            let result = fio::write_fsync_mb_s(
                path,
                WRITE_FILE_BYTES,
                fsync_every,
                options.storage_duration,
            );
            match result {
                Ok(mb_s) => peer.push(mb_s),
                Err(error) => peer_error = Some(error),
            }
        }
    }
    let every = if fsync_every == 1 {
        "every write".to_string()
    } else {
        format!("every {fsync_every} writes")
    };
    eprintln!("  write + fsync {every}: done");
    storage_row(
        format!("1 MiB sequential write, buffered, fsync after {every}, QD 1"),
        "MB/s",
        (&ringio, ringio_error),
        (&peer, peer_error),
    )
}

/// What a timed run of random reads did: reads per second, and the
/// thread's CPU time per read (the loop's user time and the system time of
/// its submissions and inline completions; what a loaded machine's
/// scheduling changes least).
struct Reads {
    iops: f64,
    cpu_ns_per_read: f64,
}

impl Reads {
    fn of(completed: u64, elapsed_s: f64, cpu_s: f64) -> Reads {
        Reads {
            iops: completed as f64 / elapsed_s,
            cpu_ns_per_read: cpu_s * 1e9 / completed.max(1) as f64,
        }
    }
}

/// ringio with registered files (the default) against ringio on plain
/// fds, alternating run by run: random 4 KiB reads, buffered or O_DIRECT,
/// into plain or registered buffers. The figure is the loop thread's CPU
/// time per read; the IOPS are in the note.
fn registered_files_row(
    options: &Options,
    path: &Path,
    direct: bool,
    fixed_buffers: bool,
    queue_depth: u32,
) -> Row {
    let mut sides: [Vec<Reads>; 2] = [Vec::new(), Vec::new()];
    let mut errors = [None, None];
    let duration = options.storage_duration;
    for _ in 0..options.runs {
        for (side, registered) in [(0, true), (1, false)] {
            let result = if fixed_buffers {
                ringio_randread_fixed(path, queue_depth, registered, duration)
            } else {
                ringio_randread(path, direct, queue_depth, registered, duration)
            };
            match result {
                Ok(reads) => sides[side].push(reads),
                Err(error) => errors[side] = Some(format!("failed: {error}")),
            }
        }
    }
    let mode = match (direct, fixed_buffers) {
        (false, _) => "buffered (page cache warm)",
        (true, false) => "O_DIRECT",
        (true, true) => "O_DIRECT, registered buffers",
    };
    eprintln!("  registered files on/off, randread {mode} QD {queue_depth}: done");
    let side = |reads: &[Reads], error: Option<String>| {
        let cpu: Vec<f64> = reads.iter().map(|r| r.cpu_ns_per_read).collect();
        let iops: Vec<f64> = reads.iter().map(|r| r.iops).collect();
        let note = crate::stats::Summary::of(&iops).map(|s| {
            format!(
                "{} IOPS [{}–{}]",
                crate::report::number(s.median),
                crate::report::number(s.min),
                crate::report::number(s.max)
            )
        });
        match error {
            Some(error) if reads.is_empty() => Side::Missing(error),
            _ => Side::from_samples(&cpu, note, "no runs"),
        }
    };
    let [on, off] = sides;
    let [on_error, off_error] = errors;
    Row {
        name: format!(
            "4 KiB random read, 1 GiB file, {mode}, registered files on vs off, QD {queue_depth}"
        ),
        unit: "CPU ns/read",
        better: Better::Lower,
        ringio: side(&on, on_error),
        peer: "ringio, Config::registered_files(0)".to_string(),
        peer_value: side(&off, off_error),
        target: None,
    }
}

fn storage_row(
    name: String,
    unit: &'static str,
    ringio: (&[f64], Option<String>),
    peer: (&[f64], Option<String>),
) -> Row {
    let side = |(samples, error): (&[f64], Option<String>), missing: &str| match error {
        Some(error) if samples.is_empty() => Side::Missing(error),
        _ => Side::from_samples(samples, None, missing),
    };
    Row {
        name,
        unit,
        better: Better::Higher,
        ringio: side(ringio, "no runs"),
        peer: FIO.to_string(),
        peer_value: side(peer, "not available: fio not installed"),
        target: Some(0.95),
    }
}

/// The loop state of a storage run.
struct FileState {
    file: Handle,
    random: u64,
    completed: u64,
    bytes: u64,
    offset: u64,
    writes_since_sync: u32,
    fsync_every: u32,
    stop: bool,
    error: Option<io::Error>,
    cpu_s: f64,
}

impl FileState {
    fn new(file: Handle, fsync_every: u32) -> FileState {
        FileState {
            file,
            random: 0x9e37_79b9_7f4a_7c15,
            completed: 0,
            bytes: 0,
            offset: 0,
            writes_since_sync: 0,
            fsync_every,
            stop: false,
            error: None,
            cpu_s: 0.0,
        }
    }

    fn fail(&mut self, error: io::Error) {
        self.error.get_or_insert(error);
        self.stop = true;
    }
}

/// Runs the loop for `duration`, then stops re-arming and drains. Returns
/// the state as it was at the end of the timed window, and the window's
/// length; `state.cpu_s` is the thread's CPU time (user plus system) in it.
fn run_timed(
    io: &mut IO<FileState>,
    state: &mut FileState,
    duration: Duration,
) -> io::Result<(u64, u64, f64)> {
    let start = Instant::now();
    let cpu_start_s = crate::system::thread_cpu_s();
    while start.elapsed() < duration {
        io.run_for_ns(state, 10_000_000)?;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    state.cpu_s = crate::system::thread_cpu_s() - cpu_start_s;
    let (completed, bytes) = (state.completed, state.bytes);
    state.stop = true;
    io.run(state)?;
    if let Some(error) = state.error.take() {
        return Err(error);
    }
    Ok((completed, bytes, elapsed_s))
}

/// IOPS of 4 KiB random reads with `queue_depth` reads always in flight.
fn ringio_randread(
    path: &Path,
    direct: bool,
    queue_depth: u32,
    registered_files: bool,
    duration: Duration,
) -> io::Result<Reads> {
    // O_DIRECT reads go to the device: hand each one to the kernel as soon
    // as its predecessor's callback makes it (one io_uring_enter per read),
    // as fio does by default (`iodepth_batch_submit=1`). On the virtual disk
    // a burst of 30 reads submitted at once after the pass's callbacks was
    // served about 20% slower at QD 32 (docs/benchmarks.md). Page-cache
    // reads never reach the device and keep one submission per pass.
    let submit_batch = if direct {
        early_submit_batch(queue_depth)
    } else {
        0
    };
    let mut config = Config::new()
        .entries(256.max(queue_depth))
        .completions_initial(queue_depth)
        .submit_batch(submit_batch);
    if !registered_files {
        config = config.registered_files(0);
    }
    let mut io: IO<FileState> = IO::with_config(config)?;
    let file = io.open_file(path, FileOptions::new().write(false).direct(direct))?;
    let mut state = FileState::new(file, 0);
    for _ in 0..queue_depth {
        read_next(
            &mut io,
            &mut state,
            AlignedBuf::new(BLOCK_BYTES, BLOCK_BYTES)?,
        );
    }
    let result = run_timed(&mut io, &mut state, duration);
    close(&mut io, file);
    let (completed, _, elapsed_s) = result?;
    Ok(Reads::of(completed, elapsed_s, state.cpu_s))
}

fn read_next(io: &mut IO<FileState>, state: &mut FileState, buf: AlignedBuf) {
    state.random = xorshift(state.random);
    let offset = state.random % (READ_FILE_BYTES / BLOCK_BYTES as u64) * BLOCK_BYTES as u64;
    io.read(
        state.file,
        buf,
        offset,
        |io, state, result, buf| match result {
            Ok(count) if count == BLOCK_BYTES => {
                state.completed += 1;
                if !state.stop {
                    read_next(io, state, buf);
                }
            }
            Ok(count) => state.fail(io::Error::other(format!("short read of {count} bytes"))),
            Err(error) => state.fail(error),
        },
    );
}

/// MB/s of sequential 1 MiB writes, one in flight, with an fsync after every
/// `fsync_every` writes (the fsync's time counts, as in fio).
fn ringio_write_fsync(path: &Path, fsync_every: u32, duration: Duration) -> io::Result<f64> {
    let mut io: IO<FileState> = IO::new()?;
    let file = io.open_file(path, FileOptions::new())?;
    let mut state = FileState::new(file, fsync_every);
    let buf: Vec<u8> = (0..WRITE_BYTES).map(|i| (i % 251) as u8).collect();
    write_next(&mut io, &mut state, buf);
    let result = run_timed(&mut io, &mut state, duration);
    close(&mut io, file);
    let (_, bytes, elapsed_s) = result?;
    Ok(bytes as f64 / 1e6 / elapsed_s)
}

fn write_next(io: &mut IO<FileState>, state: &mut FileState, buf: Vec<u8>) {
    let offset = state.offset;
    io.write(
        state.file,
        buf,
        offset,
        |io, state, result, buf| match result {
            Ok(count) => {
                state.bytes += count as u64;
                state.offset = (state.offset + count as u64) % WRITE_FILE_BYTES;
                state.writes_since_sync += 1;
                if state.writes_since_sync < state.fsync_every {
                    if !state.stop {
                        write_next(io, state, buf);
                    }
                    return;
                }
                state.writes_since_sync = 0;
                io.fsync(state.file, move |io, state, result| match result {
                    Ok(()) if !state.stop => write_next(io, state, buf),
                    Ok(()) => {}
                    Err(error) => state.fail(error),
                });
            }
            Err(error) => state.fail(error),
        },
    );
}

/// Closes the file at once, outside the timed window: released (no
/// operation on it is in flight once the loop was drained) and dropped. If
/// the run failed with operations still in flight, release refuses (EBUSY)
/// and the `IO` closes the file when it is dropped.
fn close(io: &mut IO<FileState>, file: Handle) {
    let _ = io.release(file);
}
