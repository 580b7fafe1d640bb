//! io_uring ring set-up flags that are not the default: a ring with a
//! submission-queue polling thread (`SQPOLL`), alone and asked for beside
//! the default `DEFER_TASKRUN` (which the kernel refuses with it, so the
//! ring falls back). Each runs the loop through timers, nops and a TCP
//! echo. Other backends ignore these flags.

#[macro_use]
mod util;

use std::cell::Cell;
use std::rc::Rc;

use ringio::{BackendKind, Config, IO};

/// The threads of this process. A ring's SQPOLL thread is one (it names
/// itself `iou-sqp-PID` once it runs; until then it has its creator's name,
/// so it is counted, not looked for by name).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn exercise(config: Config) {
    // A dropped ring's thread exits on its own time: wait for an earlier
    // test's to go, so that the count below is this ring's.
    let baseline = threads();
    let mut before = baseline;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        before = threads();
        if before < baseline {
            break;
        }
    }
    let mut io: IO<u32> = IO::with_config(config.backend(BackendKind::IoUring)).unwrap();
    assert_eq!(io.backend(), BackendKind::IoUring);
    assert_eq!(threads(), before + 1, "the ring has its polling thread");
    let mut count = 0u32;
    for _ in 0..1_000 {
        io.nop(|_, count, result| {
            result.unwrap();
            *count += 1
        });
    }
    io.timeout(2_000_000, |_, count, result| {
        result.unwrap();
        *count += 1
    });
    io.run(&mut count).unwrap();
    assert_eq!(count, 1_001);
    let (client, server) = util::tcp_pair_io(&mut io, &mut count);
    let got = Rc::new(Cell::new(0));
    for _ in 0..100 {
        util::send_all_io(&mut io, &mut count, client, b"ping");
        let slot = Rc::clone(&got);
        io.recv(server, Vec::with_capacity(4), move |_, _, result, _| {
            slot.set(slot.get() + result.unwrap())
        });
        io.run(&mut count).unwrap();
    }
    assert_eq!(got.get(), 400);
}

/// One test, running its cases in turn: each counts this process's
/// threads, which tests running in parallel would change.
#[test]
fn sqpoll_rings() {
    an_sqpoll_ring_runs_the_loop();
    sqpoll_beside_defer_taskrun_falls_back_and_runs();
    an_sqpoll_thread_that_fell_asleep_is_woken_by_the_next_submission();
    a_failed_chain_member_on_an_sqpoll_ring_cancels_the_rest();
}

/// On an SQPOLL ring the kernel thread may read the submission queue
/// between two members' pushes, and the kernel ends a link at the end of
/// the batch it took, so the loop links the members itself there. Chains
/// of three writes whose middle one fails (a read-only descriptor): the
/// third is cancelled every time, and its byte never reaches the file.
fn a_failed_chain_member_on_an_sqpoll_ring_cancels_the_rest() {
    const CHAINS: u64 = 300;
    let dir = std::env::temp_dir().join(format!("ringio-sqpoll-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("file");
    let config = Config::new().defer_taskrun(false).sqpoll_idle_ms(Some(10));
    let mut io: IO<Vec<(u64, i32)>> =
        IO::with_config(config.backend(BackendKind::IoUring)).unwrap();
    let writable = io
        .open_file(&path, ringio::FileOptions::new().create(true))
        .unwrap();
    let read_only = io
        .open_file(&path, ringio::FileOptions::new().read(true).write(false))
        .unwrap();
    let errno = |result: std::io::Result<usize>| match result {
        Ok(_) => 0,
        Err(error) => error.raw_os_error().unwrap(),
    };
    for chain in 0..CHAINS {
        io.chain(|io| {
            io.write(writable, vec![b'a'], chain, move |_, log, result, _| {
                log.push((chain * 3, errno(result)))
            });
            io.write(read_only, vec![b'b'], chain, move |_, log, result, _| {
                log.push((chain * 3 + 1, errno(result)))
            });
            io.write(
                writable,
                vec![b'c'],
                CHAINS + chain,
                move |_, log, result, _| log.push((chain * 3 + 2, errno(result))),
            );
        });
    }
    let mut log = Vec::new();
    io.run(&mut log).unwrap();
    // Each chain's members complete in order (chains interleave).
    let position = |member: u64| log.iter().position(|&(m, _)| m == member).unwrap();
    for chain in 0..CHAINS {
        assert!(position(chain * 3) < position(chain * 3 + 1));
        assert!(position(chain * 3 + 1) < position(chain * 3 + 2));
    }
    log.sort_unstable();
    let expected: Vec<(u64, i32)> = (0..CHAINS)
        .flat_map(|chain| {
            [
                (chain * 3, 0),
                (chain * 3 + 1, libc::EBADF),
                (chain * 3 + 2, libc::ECANCELED),
            ]
        })
        .collect();
    assert_eq!(log, expected);
    // No third member ran: the file holds the first members' bytes only.
    assert_eq!(std::fs::read(&path).unwrap(), vec![b'a'; CHAINS as usize]);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn an_sqpoll_ring_runs_the_loop() {
    exercise(Config::new().defer_taskrun(false).sqpoll_idle_ms(Some(10)));
}

fn sqpoll_beside_defer_taskrun_falls_back_and_runs() {
    exercise(Config::new().sqpoll_idle_ms(Some(10)));
}

fn an_sqpoll_thread_that_fell_asleep_is_woken_by_the_next_submission() {
    let config = Config::new().defer_taskrun(false).sqpoll_idle_ms(Some(1));
    let mut io: IO<u32> = IO::with_config(config.backend(BackendKind::IoUring)).unwrap();
    let mut count = 0;
    for round in 1..=5 {
        // Idle long past the thread's 1 ms: it sleeps, and must be woken.
        std::thread::sleep(std::time::Duration::from_millis(20));
        io.nop(|_, count, result| {
            result.unwrap();
            *count += 1
        });
        io.run(&mut count).unwrap();
        assert_eq!(count, round);
    }
}
