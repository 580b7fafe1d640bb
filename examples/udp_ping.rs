//! A UDP ping client on ringio: sends datagrams to an echo server and
//! measures round trips, as `ping` does for ICMP.
//!
//! ```text
//! cargo run --release --example echo_server -- --proto udp --addr 127.0.0.1:7879
//! cargo run --release --example udp_ping -- --addr 127.0.0.1:7879 --count 100000
//! ```
//!
//! `--window N` keeps N datagrams in flight (1: strict ping-pong). Each
//! datagram carries its sequence number; an answer that does not come back
//! within `--timeout-ms` counts as lost (UDP may drop, duplicate or reorder
//! datagrams: a late or duplicate answer is counted, never matched twice).
//! The last line is a summary a script can read:
//!
//! ```text
//! sent 100000 received 100000 lost 0 round_trips_per_s 61234 p50_us 15 p99_us 31
//! ```

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use ringio::{BackendKind, CompletionId, Config, Handle, IO};

const USAGE: &str = "\
usage: udp_ping [--addr HOST:PORT] [--count N] [--size BYTES] [--window N]
                [--timeout-ms N] [--backend io_uring|epoll]

  --addr HOST:PORT   the echo server (default 127.0.0.1:7879)
  --count N          datagrams to send (default 10000)
  --size BYTES       bytes per datagram, at least 12 (default 64)
  --window N         datagrams in flight at once (default 1)
  --timeout-ms N     an answer later than this is lost (default 1000)
  --backend NAME     force a backend (default: RINGIO_BACKEND, else io_uring)
  --help             print this help";

struct Args {
    addr: SocketAddr,
    count: u64,
    size: usize,
    window: u64,
    timeout_ns: u64,
    backend: Option<BackendKind>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:7879".parse().unwrap(),
        count: 10_000,
        size: 64,
        window: 1,
        timeout_ns: 1_000_000_000,
        backend: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--help" {
            return Err(String::new());
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("bad {what} {value:?}");
        match flag.as_str() {
            "--addr" => args.addr = value.parse().map_err(|_| bad("address"))?,
            "--count" => args.count = value.parse().map_err(|_| bad("count"))?,
            "--size" => args.size = value.parse().map_err(|_| bad("size"))?,
            "--window" => args.window = value.parse().map_err(|_| bad("window"))?,
            "--timeout-ms" => {
                let ms: u64 = value.parse().map_err(|_| bad("timeout"))?;
                args.timeout_ns = ms.saturating_mul(1_000_000);
            }
            "--backend" => {
                args.backend = Some(match value.as_str() {
                    "io_uring" => BackendKind::IoUring,
                    "epoll" => BackendKind::Epoll,
                    _ => return Err(bad("backend")),
                })
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.size < HEADER_BYTES || args.size > 65_507 {
        return Err("--size must be 12..=65507 (a sequence number and slot fit)".into());
    }
    if args.window == 0 || args.count == 0 {
        return Err("--window and --count must be at least 1".into());
    }
    Ok(args)
}

/// The client's state: what is in flight, and what came back.
struct Ping {
    socket: Handle,
    server: SocketAddr,
    size: usize,
    count: u64,
    timeout_ns: u64,
    next_sequence: u64,
    /// Each window slot's datagram in flight: its sequence number and send
    /// time. A datagram carries its slot, so that answers out of order
    /// find theirs.
    in_flight: Vec<Option<(u64, u64)>>,
    /// The loss timer of each window slot.
    timers: Vec<Option<CompletionId>>,
    received: u64,
    lost: u64,
    late_or_duplicate: u64,
    rtts_ns: Vec<u64>,
    spares: Vec<Vec<u8>>,
}

impl Ping {
    fn finished(&self) -> bool {
        self.received + self.lost == self.count
    }
}

/// Sends the next datagram, if any is left, from window slot `slot`.
fn send_next(io: &mut IO<Ping>, ping: &mut Ping, slot: usize) {
    if ping.next_sequence == ping.count {
        return;
    }
    let sequence = ping.next_sequence;
    ping.next_sequence += 1;
    ping.in_flight[slot] = Some((sequence, io.now_ns()));
    let mut buf = ping.spares.pop().unwrap_or_default();
    buf.clear();
    buf.extend_from_slice(&sequence.to_le_bytes());
    buf.extend_from_slice(&(slot as u32).to_le_bytes());
    buf.resize(ping.size, 0x55);
    io.send_to(ping.socket, buf, ping.server, |_, ping, result, buf| {
        if let Err(error) = result {
            eprintln!("udp_ping: send: {error}");
        }
        ping.spares.push(buf);
    });
    let timer = io.timeout(ping.timeout_ns, move |io, ping, result| {
        let still_waiting = ping.in_flight[slot].is_some_and(|(s, _)| s == sequence);
        if result.is_ok() && still_waiting {
            // No answer in time: lost. The slot sends the next one.
            ping.in_flight[slot] = None;
            ping.timers[slot] = None;
            ping.lost += 1;
            send_next(io, ping, slot);
        }
    });
    ping.timers[slot] = Some(timer);
}

/// Receives one answer, matches it to its send, and keeps receiving.
fn receive(io: &mut IO<Ping>, ping: &mut Ping) {
    let buf = ping
        .spares
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(ping.size));
    let socket = ping.socket;
    io.recv_from(socket, buf, |io, ping, result, buf| {
        match result {
            Ok((count, _)) if count >= HEADER_BYTES => answered(io, ping, &buf),
            Ok(_) => ping.late_or_duplicate += 1,
            Err(error) => eprintln!("udp_ping: recv: {error}"),
        }
        ping.spares.push(buf);
        if !ping.finished() {
            receive(io, ping);
        }
    });
}

/// Bytes of a datagram's header: its sequence number and window slot.
const HEADER_BYTES: usize = 12;

fn answered(io: &mut IO<Ping>, ping: &mut Ping, buf: &[u8]) {
    let sequence = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
    let slot = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
    let sent_at_ns = match ping.in_flight.get(slot).copied().flatten() {
        Some((waiting, sent_at_ns)) if waiting == sequence => sent_at_ns,
        // Answered already, or given up on: a duplicate or a late answer.
        _ => {
            ping.late_or_duplicate += 1;
            return;
        }
    };
    ping.rtts_ns.push(io.now_ns() - sent_at_ns);
    ping.in_flight[slot] = None;
    ping.received += 1;
    if let Some(timer) = ping.timers[slot].take() {
        io.cancel(timer, |_, _, _| {});
    }
    send_next(io, ping, slot);
}

fn run(args: Args) -> io::Result<()> {
    let mut config = Config::new();
    if let Some(backend) = args.backend {
        config = config.backend(backend);
    }
    let mut io: IO<Ping> = IO::with_config(config)?;
    let local: SocketAddr = match args.addr {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
        SocketAddr::V6(_) => "[::]:0".parse().unwrap(),
    };
    let socket = io.open_udp(local)?;
    let window = args.window.min(args.count) as usize;
    let mut ping = Ping {
        socket,
        server: args.addr,
        size: args.size,
        count: args.count,
        timeout_ns: args.timeout_ns,
        next_sequence: 0,
        in_flight: vec![None; window],
        timers: vec![None; window],
        received: 0,
        lost: 0,
        late_or_duplicate: 0,
        rtts_ns: Vec::with_capacity(args.count as usize),
        spares: (0..2 * window + 2)
            .map(|_| Vec::with_capacity(args.size))
            .collect(),
    };
    let start_ns = io.now_ns();
    receive(&mut io, &mut ping);
    for slot in 0..window {
        send_next(&mut io, &mut ping, slot);
    }
    while !ping.finished() {
        io.run_for_ns(&mut ping, 10_000_000)?;
    }
    let elapsed_ns = (io.now_ns() - start_ns).max(1);
    summarize(&ping, elapsed_ns);
    Ok(())
}

fn summarize(ping: &Ping, elapsed_ns: u64) {
    let mut rtts = ping.rtts_ns.clone();
    rtts.sort_unstable();
    let percentile = |p: usize| {
        rtts.get(rtts.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or(0)
    };
    let per_s = ping.received as u128 * 1_000_000_000 / u128::from(elapsed_ns);
    if ping.late_or_duplicate > 0 {
        println!("late or duplicate answers: {}", ping.late_or_duplicate);
    }
    println!(
        "sent {} received {} lost {} round_trips_per_s {} p50_us {} p99_us {}",
        ping.count,
        ping.received,
        ping.lost,
        per_s,
        percentile(50) / 1_000,
        percentile(99) / 1_000,
    );
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("udp_ping: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("udp_ping: {error}");
            ExitCode::FAILURE
        }
    }
}
