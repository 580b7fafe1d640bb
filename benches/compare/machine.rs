//! A one-line description of the machine and the date, for the report.

use std::process::Command;

/// CPU model, core count, memory and kernel, from /proc and uname.
pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, name)| {
            name.trim().to_string()
        });
    let cores = crate::system::cpus_online();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let kernel = command_output("uname", &["-r"]);
    format!("{model}, {cores} CPUs (nproc), {memory_gib:.1} GiB RAM, Linux {kernel}")
}

/// The 1-minute load average: this machine is shared, and a load near 1
/// means another job held a core for part of the run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Today's date in UTC, as `date -u +%Y-%m-%d` prints it.
pub fn date() -> String {
    command_output("date", &["-u", "+%Y-%m-%d"])
}

/// rustc's version line, since figures depend on the compiler.
pub fn rustc() -> String {
    command_output("rustc", &["--version"])
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
