//! What INFO reads from the process and its host, for the real server
//! (the simulator passes fixed values instead: `HostInfo::fixed`). Made
//! once at start, except the memory and CPU readings, which INFO takes
//! when it is asked for them.

use std::io::Read;

use crate::commands::{Cpu, HostInfo, Memory};

/// The host's figures, with `multiplexing_api` the backend really running.
pub fn host_info(multiplexing_api: &str) -> HostInfo {
    HostInfo {
        run_id: random_hex_40(),
        master_replid: random_hex_40(),
        os: os_name(),
        multiplexing_api: multiplexing_api.to_string(),
        executable: std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        process_id: std::process::id(),
        total_system_memory: total_system_memory(),
        memory,
        allocated,
        cpu,
    }
}

/// 40 hex digits from `/dev/urandom`, as Redis makes its run id.
fn random_hex_40() -> String {
    let mut bytes = [0u8; 20];
    if let Ok(mut file) = std::fs::File::open("/dev/urandom") {
        let _ = file.read_exact(&mut bytes);
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `uname`'s system, release and machine, as Redis prints `os`.
fn os_name() -> String {
    // SAFETY: `uname` fills the zeroed struct it is given.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a valid, writable utsname.
    if unsafe { libc::uname(&mut name) } != 0 {
        return std::env::consts::OS.to_string();
    }
    let field = |chars: &[libc::c_char]| {
        let bytes: Vec<u8> = chars
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {}",
        field(&name.sysname),
        field(&name.release),
        field(&name.machine)
    )
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

fn total_system_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    u64::try_from(pages).unwrap_or(0) * page_size()
}

/// glibc's `mallinfo2`: the bytes handed out, `uordblks + hblkhd`.
fn allocated() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's state.
    let info = unsafe { libc::mallinfo2() };
    allocated_of(&info)
}

fn allocated_of(info: &libc::mallinfo2) -> u64 {
    (info.uordblks + info.hblkhd) as u64
}

/// glibc's `mallinfo2` (allocated: `uordblks + hblkhd`; held: `arena +
/// hblkhd`) and the RSS from `/proc/self/statm`.
fn memory() -> Memory {
    // SAFETY: mallinfo2 only reads the allocator's state.
    let info = unsafe { libc::mallinfo2() };
    let mut rss = 0;
    let mut statm = [0u8; 128];
    if let Ok(mut file) = std::fs::File::open("/proc/self/statm") {
        if let Ok(read) = file.read(&mut statm) {
            let text = std::str::from_utf8(&statm[..read]).unwrap_or("");
            let pages: u64 = text
                .split_whitespace()
                .nth(1)
                .and_then(|pages| pages.parse().ok())
                .unwrap_or(0);
            rss = pages * page_size();
        }
    }
    Memory {
        allocated: allocated_of(&info),
        active: (info.arena + info.hblkhd) as u64,
        rss,
    }
}

fn rusage_us(who: libc::c_int) -> (u64, u64) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return (0, 0);
    }
    let us = |time: libc::timeval| time.tv_sec as u64 * 1_000_000 + time.tv_usec as u64;
    (us(usage.ru_stime), us(usage.ru_utime))
}

/// `getrusage` of the process, its children and the calling thread (the
/// loop's: INFO runs on it).
fn cpu() -> Cpu {
    let (sys_us, user_us) = rusage_us(libc::RUSAGE_SELF);
    let (children_sys_us, children_user_us) = rusage_us(libc::RUSAGE_CHILDREN);
    let (thread_sys_us, thread_user_us) = rusage_us(libc::RUSAGE_THREAD);
    Cpu {
        sys_us,
        user_us,
        children_sys_us,
        children_user_us,
        thread_sys_us,
        thread_user_us,
    }
}
