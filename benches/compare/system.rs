//! The operating-system plumbing the harness needs: CPU pinning, CPU time of
//! a thread and of a process, peak RSS, the fd limit, and a `Command` set-up
//! that pins a child and ties its life to ours.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Servers and in-process contenders run here.
pub const SERVER_CORE: usize = 0;
/// The load client runs here, so it never competes with the server.
pub const CLIENT_CORE: usize = 1;

/// Pins the calling thread (pid 0) or process `pid` to one core.
pub fn pin(pid: libc::pid_t, core: usize) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` is below CPU_SETSIZE (the machine has 2 cores); `set`
    // is a valid cpu_set_t.
    unsafe { libc::CPU_SET(core, &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is valid for `size` bytes for the duration of the call.
    let result = unsafe { libc::sched_setaffinity(pid, size, &set) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `command`'s child run on `core` and die with the harness (so an
/// interrupted benchmark leaves no server behind), set up between fork and exec.
pub fn pin_child(command: &mut Command, core: usize) -> &mut Command {
    let pre_exec = move || {
        pin(0, core)?;
        // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and no
        // pointers; it is async-signal-safe.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe syscalls
    // (sched_setaffinity, prctl) and does not allocate.
    unsafe { command.pre_exec(pre_exec) }
}

/// Lowers a child's priority (for builds, so the other work on this shared
/// machine is not starved), set up between fork and exec.
pub fn nice_child(command: &mut Command, niceness: i32) -> &mut Command {
    let pre_exec = move || {
        // SAFETY: setpriority takes integers only and is async-signal-safe.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, niceness) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure only makes one async-signal-safe syscall.
    unsafe { command.pre_exec(pre_exec) }
}

/// CPU seconds (user plus system) the calling thread has used.
pub fn thread_cpu_s() -> f64 {
    rusage_cpu_s(libc::RUSAGE_THREAD)
}

/// CPU seconds (user plus system) of every child this process has waited
/// for: the difference across one child's run and wait is that child's.
pub fn children_cpu_s() -> f64 {
    rusage_cpu_s(libc::RUSAGE_CHILDREN)
}

/// User plus system CPU seconds of `getrusage(who)`.
fn rusage_cpu_s(who: libc::c_int) -> f64 {
    // SAFETY: an all-zero rusage is a valid value to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid and writable for the duration of the call.
    let result = unsafe { libc::getrusage(who, &mut usage) };
    assert_eq!(result, 0, "getrusage({who})");
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds (user plus system, all threads) process `pid` has used, from
/// /proc/PID/stat. Its resolution is one clock tick (10 ms).
pub fn process_cpu_s(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; fields are counted after its ')'.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> io::Result<f64> {
        let field = fields.get(index).ok_or(io::ErrorKind::InvalidData)?;
        field
            .parse::<f64>()
            .map_err(|_| io::ErrorKind::InvalidData.into())
    };
    // utime and stime are fields 14 and 15; after the name, 12 and 13 (0-based: 11, 12).
    // SAFETY: sysconf takes an integer and has no memory effects.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / ticks_per_s)
}

/// Peak resident set size of process `pid` in bytes (VmHWM).
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .ok_or(io::ErrorKind::InvalidData)?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .ok_or(io::ErrorKind::InvalidData)?;
    Ok(kib * 1024)
}

/// Raises the soft fd limit to the hard one: the memory workload holds ten
/// thousand client sockets open.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid and writable for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Whether the harness runs as root (needed to install fio).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// CPUs online, whatever this thread's affinity (which, once pinned, would
/// make `available_parallelism` say 1).
pub fn cpus_online() -> usize {
    // SAFETY: sysconf takes an integer and has no memory effects.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(cpus).unwrap_or(0)
}
