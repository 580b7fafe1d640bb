//! Direct file I/O on ringio: writes a file with `O_DIRECT` from aligned
//! buffers, keeping several writes in flight, fsyncs it, reads it back the same
//! way, and checks every byte through a checksum.
//!
//! ```text
//! cargo run --release --example file_io -- --size-mib 64 --queue-depth 8
//! ```
//!
//! `O_DIRECT` bypasses the page cache, so the buffer address, the length and
//! the file offset must all be multiples of the device's block size: every
//! chunk here is a 1 MiB [`AlignedBuf`] aligned to 4096 bytes.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use ringio::{AlignedBuf, FileOptions, Handle, IO};

#[path = "common/stdout.rs"]
mod stdout;

const CHUNK_BYTES: usize = 1 << 20;
/// A multiple of every common logical block size (512, 4096).
const ALIGNMENT: usize = 4096;
const MIB: u64 = 1 << 20;

const USAGE: &str = "\
usage: file_io [--path P] [--size-mib N] [--queue-depth Q]

  --path P           file to write, read and remove (default: in the temp dir);
                     must be on a file system that supports O_DIRECT (tmpfs does
                     only since Linux 6.6)
  --size-mib N       file size in MiB (default 64)
  --queue-depth Q    operations in flight at once (default 8)
  --help             print this help";

struct Args {
    path: PathBuf,
    size_mib: u64,
    queue_depth: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Write,
    Read,
}

/// One pass over the file (all writes, or all reads): the state every
/// callback receives.
struct Pass {
    file: Handle,
    direction: Direction,
    chunks: u64,
    next_chunk: u64,
    /// Checksum of each chunk, by index: completions arrive in any order.
    chunk_sums: Vec<u64>,
    /// Buffers not in flight.
    idle_buffers: Vec<AlignedBuf>,
    /// The first failure; once set, no new operation starts.
    error: Option<io::Error>,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        // `file_io --help | head -3` exits quietly, with success.
        Ok(None) => return stdout::print_help("file_io", USAGE),
        Err(message) => {
            eprintln!("file_io: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = run(&args);
    // The file is scratch data: remove it whatever happened.
    let _ = std::fs::remove_file(&args.path);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("file_io: {}: {error}", args.path.display());
            if error.raw_os_error() == Some(libc::EINVAL) {
                eprintln!(
                    "file_io: the file system refused O_DIRECT (tmpfs did before Linux 6.6); \
                     pass --path with a file on a disk-backed file system such as ext4 or xfs"
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let file_name = format!("ringio-file_io-{}.dat", std::process::id());
    let mut parsed = Args {
        path: std::env::temp_dir().join(file_name),
        size_mib: 64,
        queue_depth: 8,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--path" => parsed.path = PathBuf::from(value()?),
            "--size-mib" => parsed.size_mib = parse_positive(&value()?)?,
            "--queue-depth" => parsed.queue_depth = parse_positive(&value()?)?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Some(parsed))
}

fn parse_positive<T: std::str::FromStr + Default + PartialEq>(text: &str) -> Result<T, String> {
    match text.parse::<T>() {
        Ok(number) if number != T::default() => Ok(number),
        _ => Err(format!("expected a positive number, got {text:?}")),
    }
}

fn run(args: &Args) -> io::Result<()> {
    let mut io: IO<Pass> = IO::new()?;
    let options = FileOptions::new().create(true).truncate(true).direct(true);
    let file = io.open_file(&args.path, options)?;
    let result = write_then_verify(&mut io, file, args);
    close(&mut io, file)?;
    result
}

fn write_then_verify(io: &mut IO<Pass>, file: Handle, args: &Args) -> io::Result<()> {
    let chunks = args.size_mib * MIB / CHUNK_BYTES as u64;
    let bytes = (chunks * CHUNK_BYTES as u64) as f64;

    let started_ns = io.now_ns();
    let written = run_pass(
        io,
        Pass::new(file, Direction::Write, chunks, args.queue_depth)?,
    )?;
    sync(io, file)?;
    let write_ns = io.now_ns() - started_ns;

    let started_ns = io.now_ns();
    let read = run_pass(
        io,
        Pass::new(file, Direction::Read, chunks, args.queue_depth)?,
    )?;
    let read_ns = io.now_ns() - started_ns;

    report(format_args!(
        "wrote {} MiB in {:.3} s: {:.1} MB/s (O_DIRECT, queue depth {}, fsync included)",
        args.size_mib,
        write_ns as f64 / 1e9,
        megabytes_per_second(bytes, write_ns),
        args.queue_depth
    ))?;
    report(format_args!(
        "read  {} MiB in {:.3} s: {:.1} MB/s (O_DIRECT, queue depth {})",
        args.size_mib,
        read_ns as f64 / 1e9,
        megabytes_per_second(bytes, read_ns),
        args.queue_depth
    ))?;
    compare_checksums(&written, &read)
}

fn megabytes_per_second(bytes: f64, ns: u64) -> f64 {
    bytes / 1e6 / (ns.max(1) as f64 / 1e9)
}

fn compare_checksums(written: &[u64], read: &[u64]) -> io::Result<()> {
    if let Some(chunk) = (0..written.len()).find(|&chunk| written[chunk] != read[chunk]) {
        let message = format!(
            "checksum MISMATCH in chunk {chunk} (offset {})",
            chunk * CHUNK_BYTES
        );
        return Err(io::Error::new(io::ErrorKind::InvalidData, message));
    }
    report(format_args!(
        "checksum ok ({:016x})",
        fnv1a_words(&as_bytes(written))
    ))
}

/// Prints a result line. A reader that closed the pipe (`file_io | head -1`)
/// is no failure: the run goes on, and its exit status still says whether
/// every byte came back.
///
/// # Errors
///
/// Any other write error to stdout.
fn report(line: fmt::Arguments<'_>) -> io::Result<()> {
    stdout::print_line(line).map(drop)
}

fn as_bytes(sums: &[u64]) -> Vec<u8> {
    sums.iter().flat_map(|sum| sum.to_le_bytes()).collect()
}

/// Runs one pass to completion and returns its per-chunk checksums.
fn run_pass(io: &mut IO<Pass>, mut pass: Pass) -> io::Result<Vec<u64>> {
    while let Some(buf) = pass.idle_buffers.pop() {
        start_chunk(io, &mut pass, buf);
    }
    io.run(&mut pass)?;
    match pass.error {
        Some(error) => Err(error),
        None => Ok(pass.chunk_sums),
    }
}

fn sync(io: &mut IO<Pass>, file: Handle) -> io::Result<()> {
    io.fsync(file, |_io, pass, result| {
        if let Err(error) = result {
            pass.fail(error);
        }
    });
    run_alone(io, file)
}

fn close(io: &mut IO<Pass>, file: Handle) -> io::Result<()> {
    io.close(file, |_io, pass, result| {
        if let Err(error) = result {
            pass.fail(error);
        }
    });
    run_alone(io, file)
}

/// Runs the one operation just submitted, with a pass that moves no data.
fn run_alone(io: &mut IO<Pass>, file: Handle) -> io::Result<()> {
    let mut pass = Pass::new(file, Direction::Write, 0, 0)?;
    io.run(&mut pass)?;
    pass.error.map_or(Ok(()), Err)
}

impl Pass {
    fn new(
        file: Handle,
        direction: Direction,
        chunks: u64,
        queue_depth: usize,
    ) -> io::Result<Pass> {
        let buffers = queue_depth.min(chunks as usize);
        let idle_buffers = (0..buffers)
            .map(|_| AlignedBuf::new(CHUNK_BYTES, ALIGNMENT))
            .collect::<io::Result<_>>()?;
        Ok(Pass {
            file,
            direction,
            chunks,
            next_chunk: 0,
            chunk_sums: vec![0; chunks as usize],
            idle_buffers,
            error: None,
        })
    }

    fn fail(&mut self, error: io::Error) {
        self.error.get_or_insert(error);
    }
}

/// Starts the next chunk's write or read with `buf`, or parks `buf` when the
/// pass is done or has failed.
fn start_chunk(io: &mut IO<Pass>, pass: &mut Pass, mut buf: AlignedBuf) {
    if pass.next_chunk == pass.chunks || pass.error.is_some() {
        pass.idle_buffers.push(buf);
        return;
    }
    let chunk = pass.next_chunk;
    pass.next_chunk += 1;
    let offset = chunk * CHUNK_BYTES as u64;
    match pass.direction {
        Direction::Write => {
            fill_pattern(&mut buf, offset);
            pass.chunk_sums[chunk as usize] = fnv1a_words(&buf);
            io.write(pass.file, buf, offset, move |io, pass, result, buf| {
                on_chunk_done(io, pass, chunk, result, buf)
            });
        }
        Direction::Read => {
            io.read(pass.file, buf, offset, move |io, pass, result, buf| {
                on_chunk_done(io, pass, chunk, result, buf)
            });
        }
    }
}

fn on_chunk_done(
    io: &mut IO<Pass>,
    pass: &mut Pass,
    chunk: u64,
    result: io::Result<usize>,
    buf: AlignedBuf,
) {
    match result {
        Ok(count) if count == buf.len() => {
            if pass.direction == Direction::Read {
                pass.chunk_sums[chunk as usize] = fnv1a_words(&buf);
            }
        }
        // O_DIRECT transfers whole blocks; a short count means the disk is
        // full (write) or the file shorter than written (read).
        Ok(count) => {
            let message = format!(
                "short transfer in chunk {chunk}: {count} of {} bytes",
                buf.len()
            );
            pass.fail(io::Error::new(io::ErrorKind::UnexpectedEof, message));
        }
        Err(error) => pass.fail(error),
    }
    start_chunk(io, pass, buf);
}

/// Deterministic, offset-dependent data, so a chunk written to or read
/// from the wrong place changes the checksum.
fn fill_pattern(buf: &mut [u8], offset: u64) {
    let first_word = offset / 8;
    for (index, word) in buf.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&splitmix64(first_word + index as u64).to_le_bytes());
    }
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over little-endian 64-bit words (then the tail bytes): the classic
/// byte-wise FNV-1a, eight times fewer multiplications.
fn fnv1a_words(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for word in words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        hash = (hash ^ word).wrapping_mul(PRIME);
    }
    for &byte in tail {
        hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
    }
    hash
}
