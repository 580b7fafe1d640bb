//! The one load client that drives every echo server identically. It runs on
//! its own thread, pinned to the client core, and measures its own CPU use
//! next to the server's.
//!
//! One connection in ping-pong uses a blocking socket (a write and a read per
//! round trip: the fewest syscalls possible). More connections, and
//! streaming, use one io_uring ring with batched submission
//! (`client_uring.rs`), so one thread keeps them all busy without being the
//! bottleneck. Streaming writes a connection's whole free window in one
//! send, not one send per message.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::client_uring::UringDriver;
use crate::costs::{self, Costs, Probe};
use crate::system;

/// No reply for this long means the server is stuck or gone.
pub const STALL_LIMIT: Duration = Duration::from_secs(5);

/// What the client does on each connection.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    /// Send one message, wait for its echo, repeat.
    PingPong,
    /// Keep up to `window_bytes` unechoed on the connection at all times.
    Stream { window_bytes: usize },
    /// Connection churn, one at a time: connect, send one message, wait
    /// for its echo, close; repeat. What a server's accept and close paths
    /// cost (for ringio: installing each socket in the registered file
    /// table, and the cancel, slot clear and close chain).
    Churn,
}

/// One client run against one server.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub addr: SocketAddr,
    pub connections: usize,
    pub message_bytes: usize,
    pub pattern: Pattern,
    pub warmup: Duration,
    pub duration: Duration,
    pub server_pid: u32,
    /// Also count the server's CPU split and kernel events (`--costs`).
    pub costs: bool,
}

/// What one run measured, over the timed window only.
#[derive(Clone, Debug)]
pub struct Load {
    /// Round trips (ping-pong), echoed bytes received (streaming), or
    /// connections served (churn).
    pub units: u64,
    pub elapsed_s: f64,
    pub client_cpu_s: f64,
    pub server_cpu_s: f64,
    /// The server's costs over the window, with `--costs`.
    pub costs: Option<Costs>,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.units as f64 / self.elapsed_s
    }
    pub fn client_cpu_percent(&self) -> f64 {
        100.0 * self.client_cpu_s / self.elapsed_s
    }
    pub fn server_cpu_percent(&self) -> f64 {
        100.0 * self.server_cpu_s / self.elapsed_s
    }
}

/// Progress in steps: each `step` does some I/O and may block briefly.
pub trait Driver {
    fn step(&mut self) -> io::Result<()>;
    fn units(&self) -> u64;
}

/// Runs `workload` on a fresh thread pinned to the client core.
pub fn run(workload: Workload) -> io::Result<Load> {
    std::thread::scope(|scope| {
        let client = scope.spawn(move || {
            // On a one-CPU machine this fails and the client shares the
            // server's core; main() has warned about that already.
            let _ = system::pin(0, system::CLIENT_CORE);
            run_pinned(&workload)
        });
        client
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("client thread panicked")))
    })
}

fn run_pinned(workload: &Workload) -> io::Result<Load> {
    if let Pattern::Churn = workload.pattern {
        let mut driver = BlockingChurn::new(workload.addr, workload.message_bytes);
        return measure(workload, &mut driver);
    }
    let streams = connect_all(workload.addr, workload.connections)?;
    let payload: Vec<u8> = (0..workload.message_bytes.max(window_of(workload)))
        .map(|i| (i % 251) as u8)
        .collect();
    match workload.pattern {
        Pattern::PingPong if workload.connections == 1 => {
            let mut driver = BlockingPingPong::new(streams, payload, workload.message_bytes)?;
            measure(workload, &mut driver)
        }
        Pattern::PingPong => {
            let mut driver = UringDriver::new(streams, payload, workload.message_bytes, None)?;
            measure(workload, &mut driver)
        }
        Pattern::Stream { window_bytes } => {
            let mut driver =
                UringDriver::new(streams, payload, workload.message_bytes, Some(window_bytes))?;
            measure(workload, &mut driver)
        }
        Pattern::Churn => unreachable!("returned above"),
    }
}

fn window_of(workload: &Workload) -> usize {
    match workload.pattern {
        Pattern::PingPong | Pattern::Churn => workload.message_bytes,
        Pattern::Stream { window_bytes } => window_bytes,
    }
}

/// Opens `count` connections with TCP_NODELAY (request-response traffic
/// must not wait for Nagle).
pub fn connect_all(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpStream>> {
    (0..count)
        .map(|_| {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
        .collect()
}

/// Warms up, then times `duration` of traffic, taking client and server CPU
/// time at both ends of the timed window.
fn measure(workload: &Workload, driver: &mut impl Driver) -> io::Result<Load> {
    // perf attaches to the server while the warm-up traffic goes on.
    let probe = workload
        .costs
        .then(|| Probe::start(workload.server_pid))
        .flatten();
    let warm_end = Instant::now() + workload.warmup;
    while Instant::now() < warm_end {
        driver.step()?;
    }
    if workload.costs {
        return measure_costs(workload, driver, probe);
    }
    let units_start = driver.units();
    let client_start = system::thread_cpu_s();
    let server_start = system::process_cpu_s(workload.server_pid)?;
    let start = Instant::now();
    let end = start + workload.duration;
    while Instant::now() < end {
        driver.step()?;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    Ok(Load {
        units: driver.units() - units_start,
        elapsed_s,
        client_cpu_s: system::thread_cpu_s() - client_start,
        server_cpu_s: system::process_cpu_s(workload.server_pid)? - server_start,
        costs: None,
    })
}

/// As `measure`, with `perf` attached to the server (when it can be) and
/// counting switched on and off around the timed window, so its counts
/// belong to the messages counted in it.
fn measure_costs(
    workload: &Workload,
    driver: &mut impl Driver,
    mut probe: Option<Probe>,
) -> io::Result<Load> {
    let pid = workload.server_pid;
    if let Some(probe) = probe.as_mut() {
        probe.enable()?;
    }
    let cpu_start = costs::cpu_s(pid)?;
    let client_start = system::thread_cpu_s();
    let units_start = driver.units();
    let start = Instant::now();
    let end = start + workload.duration;
    while Instant::now() < end {
        driver.step()?;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let units = driver.units() - units_start;
    let cpu_s = costs::cpu_s(pid)? - cpu_start;
    let client_cpu_s = system::thread_cpu_s() - client_start;
    let (events, user_share) = probe.map(Probe::finish).unwrap_or_default();
    Ok(Load {
        units,
        elapsed_s,
        client_cpu_s,
        server_cpu_s: cpu_s,
        costs: Some(Costs {
            cpu_s,
            user_share,
            events,
        }),
    })
}

/// One connection, blocking: write a message, read its echo.
struct BlockingPingPong {
    stream: TcpStream,
    payload: Vec<u8>,
    reply: Vec<u8>,
    round_trips: u64,
}

impl BlockingPingPong {
    fn new(
        mut streams: Vec<TcpStream>,
        payload: Vec<u8>,
        message_bytes: usize,
    ) -> io::Result<Self> {
        let stream = streams.pop().expect("one connection");
        stream.set_read_timeout(Some(STALL_LIMIT))?;
        Ok(BlockingPingPong {
            stream,
            payload: payload[..message_bytes].to_vec(),
            reply: vec![0; message_bytes],
            round_trips: 0,
        })
    }
}

impl Driver for BlockingPingPong {
    fn step(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.payload)?;
        self.stream.read_exact(&mut self.reply)?;
        if self.reply != self.payload {
            return Err(io::Error::other("echo returned different bytes"));
        }
        self.round_trips += 1;
        Ok(())
    }
    fn units(&self) -> u64 {
        self.round_trips
    }
}

/// Connection churn, blocking: each step connects, writes one message,
/// reads its echo and closes. The client closes first, so its side holds
/// the TIME_WAIT (reused on loopback by Linux's default `tcp_tw_reuse=2`),
/// and the server sees a plain EOF, as from a well-behaved client.
struct BlockingChurn {
    addr: SocketAddr,
    payload: Vec<u8>,
    reply: Vec<u8>,
    connections: u64,
}

impl BlockingChurn {
    fn new(addr: SocketAddr, message_bytes: usize) -> Self {
        BlockingChurn {
            addr,
            payload: (0..message_bytes).map(|i| (i % 251) as u8).collect(),
            reply: vec![0; message_bytes],
            connections: 0,
        }
    }
}

impl Driver for BlockingChurn {
    fn step(&mut self) -> io::Result<()> {
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(STALL_LIMIT))?;
        stream.write_all(&self.payload)?;
        stream.read_exact(&mut self.reply)?;
        if self.reply != self.payload {
            return Err(io::Error::other("echo returned different bytes"));
        }
        self.connections += 1;
        Ok(())
    }
    fn units(&self) -> u64 {
        self.connections
    }
}
