//! fio, the storage peer: installed through apt when missing (as root only),
//! run pinned to the server core, its JSON output parsed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process;
use crate::system;

/// Makes sure `fio` is on the PATH, installing it as root when it is not.
/// `Err` explains why the fio rows are skipped.
pub fn ensure_installed() -> Result<(), String> {
    if found() {
        return Ok(());
    }
    if !system::is_root() {
        return Err("not available: fio is not installed and the harness is not root, so it cannot apt-get install it".to_string());
    }
    eprintln!("storage: fio missing, running apt-get install -y fio");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "fio"])
            .status()
    };
    let mut status = install();
    if !status.as_ref().is_ok_and(|status| status.success()) {
        // A fresh machine has no package lists yet: fetch them, then retry.
        eprintln!("storage: running apt-get update, then installing fio again");
        let _ = Command::new("apt-get").arg("update").status();
        status = install();
    }
    match status {
        Ok(status) if status.success() && found() => Ok(()),
        Ok(status) => Err(format!(
            "not available: apt-get install -y fio failed ({status})"
        )),
        Err(error) => Err(format!("not available: apt-get: {error}")),
    }
}

fn found() -> bool {
    Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// One fio job on `path` for `duration`; returns its parsed JSON.
fn run_job(path: &Path, duration: Duration, job: &[String]) -> Result<serde_json::Value, String> {
    let mut command = Command::new("fio");
    command
        .arg("--name=ringio-compare")
        .arg("--ioengine=io_uring")
        .arg(format!("--filename={}", path.display()))
        .arg("--time_based")
        .arg(format!("--runtime={}ms", duration.as_millis()))
        // fio would otherwise drop the file's page cache before each run;
        // ringio does not, and both must see the same cache state.
        .arg("--invalidate=0")
        .arg("--output-format=json")
        .args(job);
    system::pin_child(&mut command, system::SERVER_CORE);
    let output = process::output_with_timeout(&mut command, duration + Duration::from_secs(60))
        .map_err(|error| format!("fio: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "fio failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // fio may print notices before the JSON document.
    let start = output
        .stdout
        .iter()
        .position(|&b| b == b'{')
        .ok_or("fio printed no JSON")?;
    serde_json::from_slice(&output.stdout[start..]).map_err(|error| format!("fio JSON: {error}"))
}

/// Read IOPS of 4 KiB random reads at `queue_depth`.
pub fn randread_iops(
    path: &Path,
    direct: bool,
    queue_depth: u32,
    duration: Duration,
    extra: &[&str],
) -> Result<f64, String> {
    let mut job = vec![
        "--rw=randread".to_string(),
        "--bs=4k".to_string(),
        format!("--iodepth={queue_depth}"),
        format!("--direct={}", u8::from(direct)),
    ];
    job.extend(extra.iter().map(|arg| arg.to_string()));
    let json = run_job(path, duration, &job)?;
    json["jobs"][0]["read"]["iops"]
        .as_f64()
        .ok_or_else(|| "fio JSON has no read iops".to_string())
}

/// MB/s of sequential 1 MiB buffered writes with an fsync every `fsync_every` writes.
pub fn write_fsync_mb_s(
    path: &Path,
    file_bytes: u64,
    fsync_every: u32,
    duration: Duration,
) -> Result<f64, String> {
    let job = [
        "--rw=write".to_string(),
        "--bs=1m".to_string(),
        "--iodepth=1".to_string(),
        "--direct=0".to_string(),
        format!("--size={file_bytes}"),
        format!("--fsync={fsync_every}"),
    ];
    let json = run_job(path, duration, &job)?;
    let bytes_per_s = json["jobs"][0]["write"]["bw_bytes"].as_f64();
    bytes_per_s
        .map(|b| b / 1e6)
        .ok_or_else(|| "fio JSON has no write bw_bytes".to_string())
}
