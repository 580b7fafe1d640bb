//! Workloads 3 and 4: TCP echo ping-pong (round trips per second),
//! streaming (MB/s) and connection churn (connections per second), every
//! server driven by the same client.

use crate::client::{self, Load, Pattern, Workload};
use crate::options::Options;
use crate::process::Server;
use crate::servers::{self, Contender};
use crate::stats::{Better, Row, Section, Side};

/// One echo configuration: connections, message size, traffic pattern.
#[derive(Clone, Copy, Debug)]
struct Config {
    connections: usize,
    message_bytes: usize,
    pattern: Pattern,
}

impl Config {
    /// The exact configuration, used as the row's name.
    fn name(&self) -> String {
        let conns = match self.connections {
            1 => "1 conn".to_string(),
            n => format!("{n} conns"),
        };
        match self.pattern {
            Pattern::PingPong => {
                format!("tcp echo ping-pong, {conns}, {}", bytes(self.message_bytes))
            }
            Pattern::Stream { window_bytes } => format!(
                "tcp echo streaming, {conns}, {} messages, {} window per conn",
                bytes(self.message_bytes),
                bytes(window_bytes)
            ),
            Pattern::Churn => format!(
                "tcp churn: connect, echo {}, close, one at a time",
                bytes(self.message_bytes)
            ),
        }
    }
}

fn bytes(count: usize) -> String {
    if count >= 1024 && count % 1024 == 0 {
        format!("{} KiB", count / 1024)
    } else {
        format!("{count} B")
    }
}

/// Every contender's loads in one configuration, or why it has none.
struct Measured {
    config: Config,
    loads: Vec<Result<Vec<Load>, String>>,
}

/// Runs the echo workloads that `options` selects (`echo`: ping-pong and
/// streaming; `churn`), against servers started once for all.
pub fn run(options: &Options) -> Vec<Section> {
    eprintln!("echo: starting servers");
    let servers = servers::start_all();
    let mut sections = Vec::new();
    if options.selected("echo") {
        let ping_pong = ping_pong_configs()
            .into_iter()
            .map(|config| measure(options, &servers, config));
        sections.push(section_ping_pong(ping_pong.collect()));
        let streaming = streaming_configs()
            .into_iter()
            .map(|config| measure(options, &servers, config));
        sections.push(section_streaming(streaming.collect()));
    }
    if options.selected("churn") {
        let churn = Config {
            connections: 1,
            message_bytes: 64,
            pattern: Pattern::Churn,
        };
        sections.push(section_churn(measure(options, &servers, churn)));
    }
    sections
}

fn ping_pong_configs() -> Vec<Config> {
    [1, 128]
        .map(|connections| Config {
            connections,
            message_bytes: 64,
            pattern: Pattern::PingPong,
        })
        .to_vec()
}

fn streaming_configs() -> Vec<Config> {
    let mut streaming = Vec::new();
    // The window is 64 messages of 64 B, or 4 of 16 KiB: enough in flight
    // to keep the pipe full, written in one write per top-up.
    for (message_bytes, window_bytes) in [(64, 4096), (16 * 1024, 64 * 1024)] {
        for connections in [1, 16, 128] {
            streaming.push(Config {
                connections,
                message_bytes,
                pattern: Pattern::Stream { window_bytes },
            });
        }
    }
    streaming
}

/// Alternates contenders run by run, `options.runs` times.
fn measure(
    options: &Options,
    servers: &[(Contender, Result<Server, String>)],
    config: Config,
) -> Measured {
    let mut loads: Vec<Result<Vec<Load>, String>> = servers
        .iter()
        .map(|(_, server)| server.as_ref().map(|_| Vec::new()).map_err(Clone::clone))
        .collect();
    for _ in 0..options.runs {
        for (index, (_, server)) in servers.iter().enumerate() {
            let (Ok(server), Ok(samples)) = (server, &mut loads[index]) else {
                continue;
            };
            let workload = Workload {
                addr: server.addr,
                connections: config.connections,
                message_bytes: config.message_bytes,
                pattern: config.pattern,
                warmup: options.echo_warmup,
                duration: options.echo_duration,
                server_pid: server.pid(),
                costs: options.costs,
            };
            match client::run(workload) {
                Ok(load) => samples.push(load),
                Err(error) => loads[index] = Err(format!("failed: {error}")),
            }
        }
    }
    eprintln!("  {}: done", config.name());
    let measured = Measured { config, loads };
    if options.costs {
        print_costs(servers, &measured);
    }
    measured
}

/// Messages a load's units stand for: round trips, or echoed bytes over
/// the message size.
fn messages(config: &Config, load: &Load) -> f64 {
    match config.pattern {
        Pattern::PingPong | Pattern::Churn => load.units as f64,
        Pattern::Stream { .. } => load.units as f64 / config.message_bytes as f64,
    }
}

/// One markdown table per configuration: each contender's rate and, per
/// message, its server's CPU time (all, and the part perf's samples put in
/// user space) and kernel events, each the
/// median over the runs (`--costs`).
fn print_costs(servers: &[(Contender, Result<Server, String>)], measured: &Measured) {
    let config = &measured.config;
    println!("\n{} (per message; medians of the runs)\n", config.name());
    let events = crate::costs::EVENTS.map(|(_, short)| short).join(" | ");
    println!("| server | msgs/s | CPU ns | user ns | {events} |");
    println!(
        "|---|---:|---:|---:|{}",
        "---:|".repeat(crate::costs::EVENTS.len())
    );
    let median = |values: Vec<f64>| crate::stats::Summary::of(&values).map_or(0.0, |s| s.median);
    for ((contender, _), loads) in servers.iter().zip(&measured.loads) {
        let Ok(loads) = loads else { continue };
        let with_costs: Vec<(&Load, &crate::costs::Costs)> = loads
            .iter()
            .filter_map(|load| load.costs.as_ref().map(|costs| (load, costs)))
            .collect();
        if with_costs.is_empty() {
            continue;
        }
        let per = |f: &dyn Fn(&Load, &crate::costs::Costs) -> f64| {
            median(
                with_costs
                    .iter()
                    .map(|(load, costs)| f(load, costs) / messages(config, load).max(1.0))
                    .collect(),
            )
        };
        let rate = median(
            with_costs
                .iter()
                .map(|(load, _)| messages(config, load) / load.elapsed_s)
                .collect(),
        );
        let cpu_ns = per(&|_, costs| costs.cpu_s * 1e9);
        let user_ns = per(&|_, costs| costs.cpu_s * 1e9 * costs.user_share.unwrap_or(0.0));
        let counts: Vec<String> = (0..crate::costs::EVENTS.len())
            .map(|index| {
                let value = per(&|_, costs| costs.events.get(index).copied().unwrap_or(0) as f64);
                format!("{value:.3}")
            })
            .collect();
        println!(
            "| {} | {rate:.0} | {cpu_ns:.0} | {user_ns:.0} | {} |",
            contender.label,
            counts.join(" | ")
        );
    }
}

/// Median rate of one contender, with its and the client's CPU use.
fn side(loads: &Result<Vec<Load>, String>, scale: f64, show_cpu: bool) -> Side {
    let loads = match loads {
        Ok(loads) => loads,
        Err(reason) => return Side::Missing(reason.clone()),
    };
    let rates: Vec<f64> = loads.iter().map(|load| load.per_second() / scale).collect();
    let median = |values: Vec<f64>| crate::stats::Summary::of(&values).map_or(0.0, |s| s.median);
    let note = show_cpu.then(|| {
        format!(
            "CPU: server {:.0}%, client {:.0}%",
            median(loads.iter().map(Load::server_cpu_percent).collect()),
            median(loads.iter().map(Load::client_cpu_percent).collect()),
        )
    });
    Side::from_samples(&rates, note, "no runs")
}

/// The server's median CPU time per unit (a round trip or a connection, or
/// 1000 bytes when `scale` is 10^6), from its /proc CPU ticks (10 ms
/// resolution).
fn cpu_side(loads: &Result<Vec<Load>, String>, scale: f64) -> Side {
    let loads = match loads {
        Ok(loads) => loads,
        Err(reason) => return Side::Missing(reason.clone()),
    };
    let per_unit = if scale == 1.0 { 1.0 } else { 1000.0 };
    let costs: Vec<f64> = loads
        .iter()
        .map(|load| load.server_cpu_s * 1e9 * per_unit / load.units.max(1) as f64)
        .collect();
    Side::from_samples(&costs, None, "no runs")
}

/// Rows of one configuration: ringio on io_uring against each peer (the C
/// liburing server twice: on default ring flags, and on ringio's default
/// SINGLE_ISSUER + DEFER_TASKRUN), ringio on epoll against tokio (both
/// readiness-based), and ringio's other ring set-ups against the peers on
/// the same kernel features.
fn rows(
    measured: &Measured,
    unit: &'static str,
    scale: f64,
    targets: [Option<f64>; 2],
) -> Vec<Row> {
    let name = measured.config.name();
    let sides: Vec<Side> = measured
        .loads
        .iter()
        .map(|loads| side(loads, scale, true))
        .collect();
    let [uring, epoll, tokio, bare, multishot, coop, plain, c_uring, c_uring_defer, unregistered] =
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(|index| sides[index].clone());
    let row = |ringio: &Side, suffix: &str, peer: &str, peer_value: &Side, target| Row {
        name: format!("{name}{suffix}"),
        unit,
        better: Better::Higher,
        ringio: ringio.clone(),
        peer: peer.to_string(),
        peer_value: peer_value.clone(),
        target,
    };
    vec![
        row(&uring, "", servers::TOKIO.label, &tokio, targets[0]),
        row(&uring, "", servers::BARE.label, &bare, targets[1]),
        row(&uring, "", servers::C_LIBURING.label, &c_uring, targets[0]),
        row(
            &uring,
            "",
            servers::C_LIBURING_DEFER.label,
            &c_uring_defer,
            targets[0],
        ),
        row(
            &epoll,
            ", ringio on epoll",
            servers::TOKIO.label,
            &tokio,
            None,
        ),
        row(
            &multishot,
            ", ringio multishot",
            servers::TOKIO.label,
            &tokio,
            targets[0],
        ),
        row(
            &multishot,
            ", ringio multishot",
            servers::BARE.label,
            &bare,
            None,
        ),
        row(
            &coop,
            ", ringio coop_taskrun",
            servers::TOKIO.label,
            &tokio,
            None,
        ),
        row(
            &coop,
            ", ringio coop_taskrun",
            servers::BARE.label,
            &bare,
            None,
        ),
        row(
            &plain,
            ", ringio plain ring",
            servers::TOKIO.label,
            &tokio,
            None,
        ),
        row(
            &plain,
            ", ringio plain ring",
            servers::BARE.label,
            &bare,
            None,
        ),
        row(
            &plain,
            ", ringio plain ring",
            servers::C_LIBURING.label,
            &c_uring,
            None,
        ),
        // Registered files (the default) against the same server on plain
        // fds: the gain of the table alone, as throughput and as the
        // server's CPU time per unit (what a loaded machine's scheduling
        // changes least).
        row(
            &uring,
            ", registered files on vs off",
            servers::RINGIO_UNREGISTERED.label,
            &unregistered,
            None,
        ),
        Row {
            name: format!("{name}, registered files on vs off, server CPU"),
            unit: match measured.config.pattern {
                Pattern::PingPong => "server CPU ns/round trip",
                Pattern::Stream { .. } => "server CPU ns/KB echoed",
                Pattern::Churn => "server CPU ns/connection",
            },
            better: Better::Lower,
            ringio: cpu_side(&measured.loads[0], scale),
            peer: servers::RINGIO_UNREGISTERED.label.to_string(),
            peer_value: cpu_side(&measured.loads[9], scale),
            target: None,
        },
        row(
            &unregistered,
            ", ringio without registered files",
            servers::C_LIBURING_DEFER.label,
            &c_uring_defer,
            None,
        ),
    ]
}

fn section_ping_pong(measured: Vec<Measured>) -> Section {
    Section {
        title: "TCP echo ping-pong".to_string(),
        method: "Each connection sends a 64 B message and waits for its echo before the next. \
                 Servers run on core 0, the client on core 1. ringio's figure is its echo_server \
                 example on io_uring (`ringio` column); the epoll rows put ringio's echo_server \
                 with `--backend epoll` in that column instead. The C liburing server is \
                 `benches/peers/uring_echo.c` (4096 entries, one \
                 `io_uring_submit_and_wait_timeout` per tick, plain recv/send), built by the \
                 harness with `cc -O2 ... -luring`, once on default ring flags and once with \
                 SINGLE_ISSUER|DEFER_TASKRUN, ringio's default ring. Targets: ≥1.0× tokio and \
                 the C liburing server, ≥0.95× the bare io-uring loop."
            .to_string(),
        rows: measured
            .iter()
            .flat_map(|m| rows(m, "round trips/s", 1.0, [Some(1.0), Some(0.95)]))
            .collect(),
        notes: Vec::new(),
    }
}

fn section_streaming(measured: Vec<Measured>) -> Section {
    Section {
        title: "TCP echo streaming".to_string(),
        method: "Each connection keeps a window of unechoed bytes in flight; whenever echo comes \
                 back, the client writes as many whole messages as the window has room for, in \
                 one write. MB/s counts echoed bytes received by the client (10^6 B). CPU is the \
                 median share of one core used by the server process and by the client thread."
            .to_string(),
        rows: measured
            .iter()
            .flat_map(|m| rows(m, "MB/s", 1e6, [Some(1.0), Some(0.95)]))
            .collect(),
        notes: Vec::new(),
    }
}

fn section_churn(measured: Measured) -> Section {
    Section {
        title: "TCP connection churn".to_string(),
        method: "One blocking client connects (TCP_NODELAY), sends a 64 B message, reads its echo \
                 and closes, then does it again: connections per second, one at a time. It \
                 measures each server's accept and close paths; for ringio that includes \
                 installing each socket in io_uring's registered file table and the close's \
                 cancel, slot-clear and close chain, which the `registered files on vs off` rows \
                 isolate. The client closes first (its TIME_WAIT is reused on loopback). Same \
                 servers and cores as the ping-pong rows."
            .to_string(),
        rows: rows(&measured, "connections/s", 1.0, [Some(1.0), Some(0.95)]),
        notes: Vec::new(),
    }
}
