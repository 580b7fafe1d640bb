//! Workload 7: memory. (a) Heap bytes of bookkeeping per operation in
//! flight, measured with the counting allocator in `alloc.rs` while N recvs
//! wait on a socket; (b) peak RSS (VmHWM) of ringio's echo_server and of the
//! tokio echo server, each holding the same number of idle connections.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use ringio::{Config, IO};

use crate::alloc;
use crate::client;
use crate::options::Options;
use crate::servers::{self, Contender};
use crate::stats::{Better, Row, Section, Side};
use crate::system;

/// Connections opened before waiting for their echoes. Far below the
/// listen backlog (4096), so that a server that accepts more slowly than the
/// client connects never overflows its accept queue: an overflow makes the
/// kernel retransmit SYN-ACKs with 1 s back-offs, which would measure the
/// kernel's timers rather than the server.
const CONNECT_BATCH: usize = 500;
/// Recvs left pending for the bookkeeping measurement.
const PENDING_RECVS: u32 = 10_000;

pub fn run(options: &Options) -> Section {
    let mut section = Section {
        title: "Memory".to_string(),
        method: format!(
            "Peak RSS (VmHWM from /proc/PID/status) of a freshly started server after {} \
             clients connected and each completed one 64 B echo round trip, then went idle. \
             A fresh server per run, alternating. Lower is better, so the ratio is \
             tokio / ringio. Target: ringio below tokio (ratio > 1).",
            options.idle_connections
        ),
        rows: Vec::new(),
        notes: Vec::new(),
    };
    match bookkeeping_bytes_per_op() {
        Ok(note) => section.notes.push(note),
        Err(error) => section
            .notes
            .push(format!("Bookkeeping per operation: failed: {error}")),
    }
    if let Err(error) = system::raise_fd_limit() {
        section
            .notes
            .push(format!("could not raise RLIMIT_NOFILE: {error}"));
    }
    // Single-shot: every connection keeps its own 16 KiB buffer, of which
    // one page is touched by its echo. Multishot: one pool of buffers
    // shared by all, so an idle connection holds none (target: at most
    // half of tokio's peak, a ratio of 2).
    section
        .rows
        .push(idle_rss_row(options, servers::RINGIO_IO_URING, 1.0));
    section
        .rows
        .push(idle_rss_row(options, servers::RINGIO_MULTISHOT, 2.0));
    section
}

/// Peak RSS with idle connections: ringio's echo_server (`ringio`) against
/// the tokio echo server, in alternating runs.
fn idle_rss_row(options: &Options, ringio: Contender, target: f64) -> Row {
    let contenders = [ringio, servers::TOKIO];
    let mut samples: [Result<Vec<f64>, String>; 2] = [Ok(Vec::new()), Ok(Vec::new())];
    for _ in 0..options.runs {
        for (index, contender) in contenders.iter().enumerate() {
            let Ok(values) = &mut samples[index] else {
                continue;
            };
            match peak_rss_with_idle(contender, options.idle_connections) {
                Ok(bytes) => values.push(bytes as f64 / (1 << 20) as f64),
                Err(error) => samples[index] = Err(format!("failed: {error}")),
            }
        }
    }
    eprintln!("  idle connections: done");
    let side = |samples: &Result<Vec<f64>, String>| match samples {
        Ok(values) => Side::from_samples(values, None, "no runs"),
        Err(reason) => Side::Missing(reason.clone()),
    };
    Row {
        name: format!(
            "peak RSS, {} holding {} idle connections",
            ringio.label, options.idle_connections
        ),
        unit: "MiB",
        better: Better::Lower,
        ringio: side(&samples[0]),
        peer: servers::TOKIO.label.to_string(),
        peer_value: side(&samples[1]),
        target: Some(target),
    }
}

/// Starts a fresh server, connects `count` clients from the client core in
/// batches, echoes 64 B on each, and reads the server's VmHWM while they are idle.
fn peak_rss_with_idle(contender: &Contender, count: usize) -> io::Result<u64> {
    let server = contender.start().map_err(io::Error::other)?;
    let addr = server.addr;
    let streams = std::thread::scope(|scope| {
        scope
            .spawn(move || {
                system::pin(0, system::CLIENT_CORE)?;
                let mut streams = Vec::with_capacity(count);
                while streams.len() < count {
                    let batch = CONNECT_BATCH.min(count - streams.len());
                    let mut batch = client::connect_all(addr, batch)?;
                    echo_once(&mut batch)?;
                    streams.append(&mut batch);
                }
                Ok::<_, io::Error>(streams)
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("client thread panicked")))
    })?;
    // Let the server settle: every echo has been answered already.
    std::thread::sleep(Duration::from_millis(100));
    let peak = system::peak_rss_bytes(server.pid());
    drop(streams);
    peak
}

/// One 64 B round trip on every connection, so every server has served,
/// and sized its state for, each one.
fn echo_once(streams: &mut [TcpStream]) -> io::Result<()> {
    let payload = [7u8; 64];
    for stream in streams.iter_mut() {
        stream.write_all(&payload)?;
    }
    let mut reply = [0u8; 64];
    for stream in streams.iter_mut() {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.read_exact(&mut reply)?;
    }
    Ok(())
}

/// Heap bytes per pending recv: live heap after N recvs are submitted and
/// reach the kernel, minus live heap before the `IO` existed, minus the N
/// one-byte buffers, over N. Both with the completion table preallocated
/// for N and grown on demand from the default. Kernel memory (the rings,
/// io_uring's per-request state) is not heap and is not counted.
fn bookkeeping_bytes_per_op() -> io::Result<String> {
    let preallocated = heap_per_pending_recv(Config::new().completions_initial(PENDING_RECVS))?;
    let grown = heap_per_pending_recv(Config::new())?;
    Ok(format!(
        "Bookkeeping per operation in flight: `ringio::COMPLETION_SLOT_BYTES` = {} B. Measured \
         with a counting allocator, {PENDING_RECVS} pending recvs: {preallocated:.1} B of heap \
         per op with the completion table preallocated (`completions_initial({PENDING_RECVS})`), \
         {grown:.1} B with the default table grown on demand (doubling leaves slack). Kernel-side \
         memory is not included.",
        ringio::COMPLETION_SLOT_BYTES
    ))
}

fn heap_per_pending_recv(config: Config) -> io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server_side, _) = listener.accept()?;
    let before = alloc::live_bytes();
    let mut io: IO<()> = IO::with_config(config)?;
    let server_side = io.adopt(server_side.into())?;
    for _ in 0..PENDING_RECVS {
        io.recv(server_side, Vec::with_capacity(1), |_, _, _, _| {});
    }
    io.tick(&mut ())?;
    let after = alloc::live_bytes();
    let buffers = i64::from(PENDING_RECVS);
    let per_op = (after - before - buffers) as f64 / f64::from(PENDING_RECVS);
    // Wake every recv (a shutdown makes each return 0) and drain.
    client.shutdown(Shutdown::Write)?;
    io.run(&mut ())?;
    drop(io);
    Ok(per_op)
}
