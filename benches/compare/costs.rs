//! What a server spends per message (`--costs`): its user and system CPU
//! time, its context switches, and counts of the kernel events that tell
//! how it got its work done (io_uring submissions, completions, poll arms,
//! task work, syscalls), read with `perf stat` on its pid over the timed
//! window.
//!
//! Throughput on this shared two-core machine moves by ±15% between runs;
//! these counts per message move much less, so they are what says where a
//! server's time goes when two servers are compared (docs/benchmarks.md).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The events counted, in the order the table prints them.
pub const EVENTS: [(&str, &str); 10] = [
    ("context-switches", "ctx sw"),
    ("syscalls:sys_enter_io_uring_enter", "enter"),
    ("syscalls:sys_enter_epoll_wait", "epoll_wait"),
    ("io_uring:io_uring_submit_req", "submit"),
    ("io_uring:io_uring_complete", "cqe"),
    ("io_uring:io_uring_poll_arm", "poll arm"),
    ("io_uring:io_uring_task_add", "task add"),
    ("io_uring:io_uring_local_work_run", "local work"),
    ("io_uring:io_uring_queue_async_work", "io-wq"),
    ("syscalls:sys_enter_read", "read"),
];

/// A server's costs over one timed window.
#[derive(Clone, Debug, Default)]
pub struct Costs {
    /// CPU time of the whole process, from /proc/PID/task/*/schedstat
    /// (nanoseconds, unlike /proc/PID/stat's 10 ms ticks).
    pub cpu_s: f64,
    /// The share of `perf record`'s cpu-clock samples taken in user space
    /// (0 to 1); `None` without perf.
    pub user_share: Option<f64>,
    /// Counts of `EVENTS`, in order; empty when perf could not count them.
    pub events: Vec<u64>,
}

/// CPU seconds process `pid` has run, all threads, at nanosecond
/// resolution (the first field of each thread's schedstat).
pub fn cpu_s(pid: u32) -> io::Result<f64> {
    let mut total_ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(path) else {
            continue; // a thread that has just exited
        };
        let first = text.split_whitespace().next().unwrap_or("0");
        total_ns += first.parse::<u64>().unwrap_or(0);
    }
    Ok(total_ns as f64 / 1e9)
}

/// `perf stat` counting `EVENTS` on one process for a fixed time.
pub struct Probe {
    child: Child,
    /// `perf record` sampling the same process, for the user/kernel split.
    sampler: Option<(Child, PathBuf)>,
}

impl Probe {
    /// Starts counting on `pid` for `duration`; `None` if perf is missing
    /// or refuses (the table then shows CPU time only).
    pub fn start(pid: u32, duration: Duration) -> Option<Probe> {
        let events: Vec<&str> = EVENTS.iter().map(|(event, _)| *event).collect();
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", &events.join(","), "-p"])
            .arg(pid.to_string())
            .arg("--")
            .args(["sleep", &format!("{:.3}", duration.as_secs_f64())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let sampler = Self::start_sampler(pid, duration);
        Some(Probe { child, sampler })
    }

    fn start_sampler(pid: u32, duration: Duration) -> Option<(Child, PathBuf)> {
        let path = std::env::temp_dir().join(format!("ringio-costs-{pid}.data"));
        let child = Command::new("perf")
            .args(["record", "-q", "-F", "2000", "-e", "cpu-clock", "-o"])
            .arg(&path)
            .arg("-p")
            .arg(pid.to_string())
            .arg("--")
            .args(["sleep", &format!("{:.3}", duration.as_secs_f64())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some((child, path))
    }

    /// Whether the counting time is over.
    pub fn done(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The counts, in `EVENTS` order (0 for an event perf did not count),
    /// and the user-space share of the samples.
    pub fn finish(self) -> (Vec<u64>, Option<f64>) {
        let user_share = self.sampler.and_then(|(child, path)| {
            let share = user_share(child, &path);
            let _ = std::fs::remove_file(&path);
            share
        });
        (Self::counts(self.child), user_share)
    }

    fn counts(child: Child) -> Vec<u64> {
        let Ok(output) = child.wait_with_output() else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(&output.stderr);
        EVENTS
            .iter()
            .map(|(event, _)| {
                text.lines()
                    .filter_map(|line| {
                        let mut fields = line.split(',');
                        let count = fields.next()?;
                        let name = fields.nth(1)?;
                        (name == *event).then(|| count.parse::<u64>().unwrap_or(0))
                    })
                    .next()
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// The share of samples outside the kernel, from `perf report --sort dso`.
fn user_share(mut child: Child, path: &Path) -> Option<f64> {
    child.wait().ok()?;
    let output = Command::new("perf")
        .args(["report", "--stdio", "--sort", "dso", "-i"])
        .arg(path)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut kernel = 0.0;
    let mut total = 0.0;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let (Some(percent), Some(dso)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(percent) = percent.trim_end_matches('%').parse::<f64>() else {
            continue;
        };
        total += percent;
        if dso.starts_with("[kernel") {
            kernel += percent;
        }
    }
    (total > 0.0).then(|| 1.0 - kernel / total)
}
