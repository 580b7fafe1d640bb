//! What a server spends per message (`--costs`): its user and system CPU
//! time, its context switches, and counts of the kernel events that tell
//! how it got its work done (io_uring submissions, completions, poll arms,
//! task work, syscalls), read with `perf stat` on its pid over the timed
//! window.
//!
//! Throughput on this shared two-core machine moves by ±15% between runs;
//! these counts per message move much less, so they are what says where a
//! server's time goes when two servers are compared (docs/benchmarks.md).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The events counted, in the order the table prints them.
pub const EVENTS: [(&str, &str); 12] = [
    ("context-switches", "ctx sw"),
    ("syscalls:sys_enter_io_uring_enter", "enter"),
    // tokio (mio) waits in epoll_wait, ringio's epoll backend in
    // epoll_pwait2 (nanosecond timeouts).
    ("syscalls:sys_enter_epoll_wait", "epoll_wait"),
    ("syscalls:sys_enter_epoll_pwait2", "epoll_pwait2"),
    ("io_uring:io_uring_submit_req", "submit"),
    ("io_uring:io_uring_complete", "cqe"),
    ("io_uring:io_uring_poll_arm", "poll arm"),
    ("io_uring:io_uring_task_add", "task add"),
    ("io_uring:io_uring_local_work_run", "local work"),
    ("io_uring:io_uring_queue_async_work", "io-wq"),
    // The readiness servers' socket syscalls (`recv` and `send` are these).
    ("syscalls:sys_enter_recvfrom", "recvfrom"),
    ("syscalls:sys_enter_sendto", "sendto"),
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

/// One perf process attached to the server, started with its events
/// disabled and switched on and off through its control FIFOs, so that
/// what it counts covers exactly the window the client counts messages in.
struct Perf {
    child: Child,
    control: File,
    ack: BufReader<File>,
    directory: PathBuf,
}

impl Perf {
    /// `perf <args> -D -1 --control fifo:ctl,ack -p PID`, its output to
    /// stderr (stat) or to `directory/perf.data` (record).
    fn start(kind: &str, args: &[&str], pid: u32) -> io::Result<Perf> {
        let directory = std::env::temp_dir().join(format!("ringio-costs-{pid}-{kind}"));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory)?;
        let (control_path, ack_path) = (directory.join("ctl"), directory.join("ack"));
        for path in [&control_path, &ack_path] {
            let status = Command::new("mkfifo").arg(path).status()?;
            if !status.success() {
                return Err(io::Error::other("mkfifo failed"));
            }
        }
        let control_arg = format!("fifo:{},{}", control_path.display(), ack_path.display());
        let child = Command::new("perf")
            .arg(kind)
            .args(args)
            .args([
                "-D",
                "-1",
                "--control",
                &control_arg,
                "-p",
                &pid.to_string(),
            ])
            .current_dir(&directory)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // Read-write opens of a FIFO do not wait for the other end.
        let open = |path: &Path| OpenOptions::new().read(true).write(true).open(path);
        Ok(Perf {
            child,
            control: open(&control_path)?,
            ack: BufReader::new(open(&ack_path)?),
            directory,
        })
    }

    /// Sends `command` (enable, disable) and waits for perf's ack.
    fn command(&mut self, command: &str) -> io::Result<()> {
        writeln!(self.control, "{command}")?;
        let mut line = String::new();
        self.ack.read_line(&mut line)?;
        Ok(())
    }

    /// Stops perf (SIGINT, as ^C does) and returns what it printed.
    fn stop(mut self) -> io::Result<String> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill takes integers; `pid` is our own child, not reaped.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr)?;
        }
        self.child.wait()?;
        Ok(stderr)
    }
}

/// `perf stat` counting `EVENTS`, and `perf record` sampling cpu-clock for
/// the user/kernel split, both on the server, both over one window.
pub struct Probe {
    stat: Perf,
    record: Option<Perf>,
}

impl Probe {
    /// Attaches to `pid` with counting off; `None` if perf is missing or
    /// refuses (the table then shows CPU time only).
    pub fn start(pid: u32) -> Option<Probe> {
        let events: Vec<&str> = EVENTS.iter().map(|(event, _)| *event).collect();
        let stat = Perf::start("stat", &["-x", ",", "-e", &events.join(",")], pid).ok()?;
        let record = Perf::start("record", &["-q", "-F", "2000", "-e", "cpu-clock"], pid).ok();
        Some(Probe { stat, record })
    }

    /// Starts counting, once perf has said it did.
    pub fn enable(&mut self) -> io::Result<()> {
        self.stat.command("enable")?;
        match self.record.as_mut() {
            Some(record) => record.command("enable"),
            None => Ok(()),
        }
    }

    /// Stops counting and returns the counts, in `EVENTS` order (0 for an
    /// event perf did not count), and the user-space share of the samples.
    pub fn finish(mut self) -> (Vec<u64>, Option<f64>) {
        let _ = self.stat.command("disable");
        if let Some(record) = self.record.as_mut() {
            let _ = record.command("disable");
        }
        let user_share = self.record.and_then(|record| {
            let directory = record.directory.clone();
            record.stop().ok()?;
            let share = user_share(&directory.join("perf.data"));
            let _ = std::fs::remove_dir_all(&directory);
            share
        });
        let directory = self.stat.directory.clone();
        let text = self.stat.stop().unwrap_or_default();
        let _ = std::fs::remove_dir_all(&directory);
        (counts(&text), user_share)
    }
}

/// The counts of `EVENTS` in `perf stat -x ,`'s output.
fn counts(text: &str) -> Vec<u64> {
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

/// The share of samples outside the kernel, from `perf report --sort dso`.
fn user_share(path: &Path) -> Option<f64> {
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
