//! The Redis-protocol server: ringio's `kv_server` example against a real
//! `redis-server` (the Debian package), both driven by `redis-benchmark`
//! with 50 clients and no `-t`, so every one of its default tests runs
//! (PING_INLINE to MSET, 20 of them), at pipeline depths 1 and 16. Like is
//! compared with like: no persistence (`kv_server --appendonly no`, no log,
//! against `redis-server --appendonly no --save ''`), and an fsync before every
//! reply to a write (`--fsync always` against `--appendonly yes
//! --appendfsync always`). Both keep their data in a scratch directory
//! under `target/ringio-bench`, on the same real filesystem.
//!
//! Servers run pinned to core 0, redis-benchmark to core 1; contenders
//! alternate run by run, and each figure is the median of the runs.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::options::Options;
use crate::process::{self, Server};
use crate::stats::{Better, Row, Section, Side};
use crate::system;

/// How long a server may live, in case the harness dies without killing it.
const SERVER_SECONDS_MAX: &str = "1800";
/// redis-benchmark's connections.
const CLIENTS: u32 = 50;

/// The two persistence settings compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persistence {
    None,
    Always,
}

impl Persistence {
    fn label(self) -> &'static str {
        match self {
            Persistence::None => "no persistence",
            Persistence::Always => "fsync always",
        }
    }

    fn kv_server_args(self) -> &'static [&'static str] {
        match self {
            Persistence::None => &["--appendonly", "no"],
            Persistence::Always => &["--fsync", "always"],
        }
    }

    fn redis_args(self) -> &'static [&'static str] {
        match self {
            Persistence::None => &["--appendonly", "no", "--save", ""],
            Persistence::Always => &[
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
        }
    }
}

/// Requests per test of a redis-benchmark run (`-n`): each run is the
/// whole default suite of 20 tests, so about 20 to 40 seconds a run on a
/// 2-vCPU machine (a quarter with `--quick`).
fn requests(options: &Options, persistence: Persistence, pipeline: u32) -> u64 {
    let full = match (persistence, pipeline) {
        (Persistence::None, 1) => 20_000,
        (Persistence::None, _) => 200_000,
        (Persistence::Always, 1) => 10_000,
        (Persistence::Always, _) => 100_000,
    };
    if options.quick {
        full / 4
    } else {
        full
    }
}

/// A running redis-server, killed on drop.
struct Redis {
    addr: SocketAddr,
    child: Child,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Either contender, running.
enum Running {
    Kv(Server),
    Redis(Redis),
}

impl Running {
    fn addr(&self) -> SocketAddr {
        match self {
            Running::Kv(server) => server.addr,
            Running::Redis(redis) => redis.addr,
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Running::Kv(server) => server.pid(),
            Running::Redis(redis) => redis.child.id(),
        }
    }
}

/// One test of a redis-benchmark run: requests per second, and the
/// server's and redis-benchmark's CPU use during the whole run. A client
/// near 100% is the bottleneck: the row then measures redis-benchmark's
/// cost per reply more than the server's.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rps: f64,
    server_cpu_percent: f64,
    client_cpu_percent: f64,
}

/// Makes sure `redis-server` and `redis-benchmark` are on the PATH,
/// installing them through apt as root when they are not.
fn ensure_installed() -> Result<(), String> {
    if found() {
        return Ok(());
    }
    if !system::is_root() {
        return Err(
            "not available: redis-server/redis-benchmark are not installed and the \
                    harness is not root, so it cannot apt-get install them"
                .to_string(),
        );
    }
    eprintln!("kv: running apt-get install -y redis-server redis-tools");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "redis-server", "redis-tools"])
            .status()
    };
    let mut status = install();
    if !status.as_ref().is_ok_and(|status| status.success()) {
        eprintln!("kv: running apt-get update, then installing again");
        let _ = Command::new("apt-get").arg("update").status();
        status = install();
    }
    match status {
        Ok(status) if status.success() && found() => Ok(()),
        Ok(status) => Err(format!(
            "not available: apt-get install -y redis-server redis-tools failed ({status})"
        )),
        Err(error) => Err(format!("not available: apt-get: {error}")),
    }
}

fn found() -> bool {
    ["redis-server", "redis-benchmark"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// A fresh, empty scratch directory for one server's data.
fn scratch_dir(name: &str) -> std::io::Result<PathBuf> {
    let dir = process::output_dir().join("kv-data").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn start_kv_server(persistence: Persistence) -> Result<Running, String> {
    let dir = scratch_dir("kv_server").map_err(|error| format!("scratch dir: {error}"))?;
    let dir = dir.to_str().ok_or("scratch dir is not UTF-8")?.to_string();
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--dir",
        &dir,
        "--max-seconds",
        SERVER_SECONDS_MAX,
        "--backend",
        "io_uring",
    ];
    args.extend(persistence.kv_server_args());
    let binary = process::example_path("kv_server");
    Server::start("kv_server", &binary, &args)
        .map(Running::Kv)
        .map_err(|error| format!("not available: {error}"))
}

fn start_redis(persistence: Persistence) -> Result<Running, String> {
    let dir = scratch_dir("redis").map_err(|error| format!("scratch dir: {error}"))?;
    // A free port: bind one, then hand it to redis-server.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|error| format!("picking a port: {error}"))?
        .port();
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--daemonize", "no", "--protected-mode", "no"])
        .arg("--dir")
        .arg(&dir)
        .args(persistence.redis_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    system::pin_child(&mut command, system::SERVER_CORE);
    let child = command
        .spawn()
        .map_err(|error| format!("not available: redis-server: {error}"))?;
    let redis = Redis {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        child,
    };
    wait_for_pong(redis.addr)?;
    Ok(Running::Redis(redis))
}

/// Waits until the server answers PING.
fn wait_for_pong(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let mut reply = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok()
                && stream.read_exact(&mut reply).is_ok()
                && &reply == b"+PONG\r\n"
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("not available: nothing answered PING on {addr}"))
}

/// One redis-benchmark run of every default test against `server`: each
/// test's name (as `--csv` spells it) and sample, in the order they ran.
fn bench(server: &Running, pipeline: u32, requests: u64) -> Result<Vec<(String, Sample)>, String> {
    let addr = server.addr();
    let mut command = Command::new("redis-benchmark");
    command
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-c", &CLIENTS.to_string(), "-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string(), "--csv"]);
    system::pin_child(&mut command, system::CLIENT_CORE);
    let cpu_before = system::process_cpu_s(server.pid()).unwrap_or(0.0);
    // redis-benchmark is the only child waited for in between.
    let client_before = system::children_cpu_s();
    let started = Instant::now();
    let output = process::output_with_timeout(&mut command, Duration::from_secs(900))
        .map_err(|error| format!("redis-benchmark: {error}"))?;
    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu_s = system::process_cpu_s(server.pid()).unwrap_or(0.0) - cpu_before;
    let client_cpu_s = system::children_cpu_s() - client_before;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || stderr.to_lowercase().contains("error") {
        return Err(format!("redis-benchmark failed: {}", stderr.trim()));
    }
    let server_cpu_percent = 100.0 * cpu_s / elapsed_s;
    let client_cpu_percent = 100.0 * client_cpu_s / elapsed_s;
    let rows = parse_csv(&stdout);
    if rows.is_empty() {
        return Err(format!("no figures in redis-benchmark's output: {stdout}"));
    }
    Ok(rows
        .into_iter()
        .map(|(name, rps)| {
            let sample = Sample {
                rps,
                server_cpu_percent,
                client_cpu_percent,
            };
            (name, sample)
        })
        .collect())
}

/// Every `"TEST","rps",...` line of `--csv` output.
fn parse_csv(csv: &str) -> Vec<(String, f64)> {
    csv.lines()
        .filter_map(|line| {
            let mut fields = line.split('"').skip(1).step_by(2);
            let name = fields.next()?;
            let rps = fields.next()?.parse().ok()?;
            Some((name.to_string(), rps))
        })
        .collect()
}

/// Runs every configuration; see the module docs.
pub fn run(options: &Options) -> Section {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    match ensure_installed() {
        Ok(()) => {
            for persistence in [Persistence::None, Persistence::Always] {
                rows.extend(run_persistence(options, persistence, &mut notes));
            }
        }
        Err(reason) => notes.push(reason),
    }
    Section {
        title: "Redis-protocol server".to_string(),
        method: format!(
            "`redis-benchmark -c {CLIENTS} -P 1|16 --csv` with no `-t` (every default test, one \
             run of the whole suite per sample) against the kv_server example on io_uring and against redis-server {} (Debian package), both \
             with their data in a scratch directory on the same filesystem. No persistence: \
             `kv_server --appendonly no` (no log: a cache, as Redis is here) against \
             `redis-server --appendonly no --save ''`. fsync always: `kv_server --fsync always` \
             against `redis-server --appendonly yes --appendfsync always --save ''`. Servers on \
             core 0, redis-benchmark on core 1; CPU is the server's median share of a core \
             over the whole suite.",
            redis_version().unwrap_or_else(|| "(version unknown)".to_string())
        ),
        rows,
        notes,
    }
}

fn redis_version() -> Option<String> {
    let output = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix("v="))?;
    Some(version.to_string())
}

/// Both servers under one persistence setting: a row per default test and
/// pipeline depth.
fn run_persistence(
    options: &Options,
    persistence: Persistence,
    notes: &mut Vec<String>,
) -> Vec<Row> {
    eprintln!("kv: {}", persistence.label());
    let servers = [start_kv_server(persistence), start_redis(persistence)];
    for (name, server) in ["kv_server", "redis-server"].iter().zip(&servers) {
        if let Err(reason) = server {
            notes.push(format!("{name} ({}): {reason}", persistence.label()));
        }
    }
    let mut rows = Vec::new();
    for pipeline in [1, 16] {
        let requests = requests(options, persistence, pipeline);
        let mut tests: Vec<String> = Vec::new();
        // samples[contender]: per test name, the samples; or why none.
        let mut samples: [Result<Vec<(String, Sample)>, String>; 2] = [0, 1].map(|index| {
            let server: &Result<Running, String> = &servers[index];
            server.as_ref().map(|_| Vec::new()).map_err(Clone::clone)
        });
        for _ in 0..options.runs {
            for (contender, server) in servers.iter().enumerate() {
                let Ok(server) = server else { continue };
                let slot = &mut samples[contender];
                let Ok(list) = slot else { continue };
                match bench(server, pipeline, requests) {
                    Ok(run) => {
                        for (name, _) in &run {
                            if !tests.contains(name) {
                                tests.push(name.clone());
                            }
                        }
                        list.extend(run);
                    }
                    Err(error) => *slot = Err(format!("failed: {error}")),
                }
            }
        }
        for test in &tests {
            let of_test = |slot: &Result<Vec<(String, Sample)>, String>| {
                slot.as_ref().map_err(Clone::clone).map(|list| {
                    list.iter()
                        .filter(|(name, _)| name == test)
                        .map(|(_, sample)| *sample)
                        .collect::<Vec<Sample>>()
                })
            };
            rows.push(Row {
                name: format!("{test}, -P {pipeline}, {}", persistence.label()),
                unit: "requests/s",
                better: Better::Higher,
                ringio: side(&of_test(&samples[0])),
                peer: "redis-server".to_string(),
                peer_value: side(&of_test(&samples[1])),
                target: Some(1.0),
            });
        }
        eprintln!("  -P {pipeline}: done");
    }
    rows
}

fn side(samples: &Result<Vec<Sample>, String>) -> Side {
    let samples = match samples {
        Ok(samples) => samples,
        Err(reason) => return Side::Missing(reason.clone()),
    };
    let rates: Vec<f64> = samples.iter().map(|sample| sample.rps).collect();
    let median_of = |cpu: fn(&Sample) -> f64| {
        let values: Vec<f64> = samples.iter().map(cpu).collect();
        crate::stats::Summary::of(&values).map(|summary| summary.median)
    };
    let server = median_of(|sample| sample.server_cpu_percent);
    let client = median_of(|sample| sample.client_cpu_percent);
    let spread = crate::stats::Summary::of(&rates);
    let note = server
        .zip(client)
        .zip(spread)
        .map(|((server, client), rates)| {
            format!(
                "CPU: server {server:.0}%, client {client:.0}%; runs {:.0}..{:.0}",
                rates.min, rates.max
            )
        });
    Side::from_samples(&rates, note, "no runs")
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\"\n\"SET\",\"81967.21\",\"0.3\"\n\
                   \"MSET (10 keys)\",\"1000.5\",\"1\"\n";
        let rows = super::parse_csv(csv);
        assert_eq!(
            rows,
            [
                ("SET".to_string(), 81967.21),
                ("MSET (10 keys)".to_string(), 1000.5)
            ]
        );
    }
}
