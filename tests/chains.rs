//! Linked chains (`IO::chain`): each member runs only once the one before
//! it fully succeeded; a failure or a short transfer completes the rest
//! with `ECANCELED`, every buffer coming back. On io_uring with
//! `IOSQE_IO_LINK`, and emulated by the loop on epoll and the simulator
//! (and on io_uring with emulated features, the `emulated_io_uring`
//! module): the same results, in the same order, everywhere.

#[macro_use]
mod util;

use std::cell::RefCell;
use std::rc::Rc;

use ringio::{Config, FileOptions, Handle, RenameFlags, IO};
use util::Backend;

conformance!(
    write_then_fsync_both_succeed_in_order,
    a_failing_write_cancels_the_fsync_and_every_buffer_comes_back,
    a_write_on_a_stale_handle_breaks_the_chain_in_its_turn,
    a_short_write_breaks_the_chain,
    a_short_read_breaks_the_chain,
    a_chain_waits_whole_for_room_in_a_full_submission_queue,
    operations_that_cannot_be_linked_break_the_chain_with_einval,
    cancelling_the_running_member_cancels_the_rest,
    write_fsync_rename_fsync_replaces_a_file_atomically,
    a_failed_write_leaves_the_rename_undone,
    a_long_chain_runs_every_member_in_order,
    a_chain_longer_than_the_submission_queue_runs_in_pieces,
    a_panicking_chain_body_still_starts_what_it_submitted,
    a_chain_of_operations_on_no_descriptor_runs_in_order,
);

/// The same cases on io_uring with the loop's emulation of links, as a
/// kernel without them would run (and as epoll and the simulator do).
mod emulated_io_uring {
    macro_rules! emulated {
        ($($test:ident),* $(,)?) => {
            $(
                #[test]
                fn $test() {
                    super::emulated(super::$test);
                }
            )*
        };
    }
    emulated!(
        write_then_fsync_both_succeed_in_order,
        a_failing_write_cancels_the_fsync_and_every_buffer_comes_back,
        a_short_write_breaks_the_chain,
        a_chain_waits_whole_for_room_in_a_full_submission_queue,
        cancelling_the_running_member_cancels_the_rest,
        write_fsync_rename_fsync_replaces_a_file_atomically,
        a_chain_of_operations_on_no_descriptor_runs_in_order,
    );
}

thread_local! {
    /// Set while a case runs on io_uring with links emulated.
    static EMULATED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn emulated(case: fn(Backend)) {
    EMULATED.set(true);
    case(Backend::IoUring);
}

/// What the members' callbacks saw, in the order they ran.
type Log = Rc<RefCell<Vec<(&'static str, Result<usize, i32>)>>>;

fn errno(error: std::io::Error) -> i32 {
    error.raw_os_error().expect("an errno")
}

struct Files {
    io: IO<()>,
    scratch: util::Scratch,
    log: Log,
}

impl Files {
    fn new(backend: Backend, name: &str) -> Files {
        Files::with_config(backend, name, Config::new())
    }

    fn with_config(backend: Backend, name: &str, config: Config) -> Files {
        let config = config.emulate_kernel_features(EMULATED.get());
        // On ext4: a write across the largest file is cut short there.
        let scratch = util::Scratch::under(&util::ext4_base(), backend, name);
        Files {
            io: backend.io_with(config),
            scratch,
            log: Rc::default(),
        }
    }

    fn open(&mut self, name: &str, options: FileOptions) -> Handle {
        self.io
            .open_file(self.scratch.path(name), options)
            .expect("open_file")
    }

    /// A callback that logs `what` with a count.
    fn logs_count<B: 'static>(
        &self,
        what: &'static str,
    ) -> impl FnOnce(&mut IO<()>, &mut (), std::io::Result<usize>, B) + 'static {
        let log = Rc::clone(&self.log);
        move |_, _, result, _| log.borrow_mut().push((what, result.map_err(errno)))
    }

    /// A callback that logs `what` with 0 for success.
    fn logs(&self, what: &'static str) -> impl FnOnce(&mut IO<()>, &mut (), std::io::Result<()>) {
        let log = Rc::clone(&self.log);
        move |_, _, result| {
            log.borrow_mut()
                .push((what, result.map(|()| 0).map_err(errno)))
        }
    }

    fn run(&mut self) -> Vec<(&'static str, Result<usize, i32>)> {
        self.io.run(&mut ()).unwrap();
        std::mem::take(&mut *self.log.borrow_mut())
    }

    fn contents(&mut self, name: &str) -> Vec<u8> {
        std::fs::read(self.scratch.path(name)).unwrap_or_default()
    }
}

const CANCELED: Result<usize, i32> = Err(libc::ECANCELED);

fn write_then_fsync_both_succeed_in_order(backend: Backend) {
    let mut files = Files::new(backend, "chain-ok");
    let file = files.open("log", FileOptions::new().create(true));
    let (wrote, synced) = (files.logs_count("write"), files.logs("fsync"));
    let ids = files.io.chain(|io| {
        (
            io.write(file, b"record".to_vec(), 0, wrote),
            io.fsync(file, synced),
        )
    });
    assert_ne!(ids.0, ids.1);
    assert_eq!(files.io.in_flight(), 2);
    assert_eq!(files.run(), [("write", Ok(6)), ("fsync", Ok(0))]);
    if backend.is_kernel() {
        assert_eq!(files.contents("log"), b"record");
    }
    assert_eq!(files.io.stats().callbacks_boxed, 0);
}

fn a_failing_write_cancels_the_fsync_and_every_buffer_comes_back(backend: Backend) {
    let mut files = Files::new(backend, "chain-fail");
    let file = files.open("log", FileOptions::new().create(true));
    let read_only = files.open("log", FileOptions::new().write(false));
    let log = Rc::clone(&files.log);
    let buffers: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let (first, second) = (Rc::clone(&buffers), Rc::clone(&buffers));
    let synced = files.logs("fsync");
    files.io.chain(|io| {
        // EBADF: the fd is read-only, which only the kernel (or the
        // simulated disk) knows.
        io.write(read_only, b"first".to_vec(), 0, move |_, _, result, buf| {
            log.borrow_mut().push(("write", result.map_err(errno)));
            first.borrow_mut().push(buf);
        });
        io.write(file, b"second".to_vec(), 0, move |_, _, result, buf| {
            assert_eq!(result.map_err(errno), CANCELED);
            second.borrow_mut().push(buf);
        });
        io.fsync(file, synced);
    });
    assert_eq!(
        files.run(),
        [("write", Err(libc::EBADF)), ("fsync", CANCELED)]
    );
    assert_eq!(*buffers.borrow(), [b"first".to_vec(), b"second".to_vec()]);
    if backend.is_kernel() {
        assert_eq!(files.contents("log"), b"", "the cancelled write never ran");
    }
}

fn a_write_on_a_stale_handle_breaks_the_chain_in_its_turn(backend: Backend) {
    let mut files = Files::new(backend, "chain-stale");
    let file = files.open("log", FileOptions::new().create(true));
    let stale = files.open("other", FileOptions::new().create(true));
    util::close_io(&mut files.io, &mut (), stale);
    let (first, bad, synced) = (
        files.logs_count("first"),
        files.logs_count("stale"),
        files.logs("fsync"),
    );
    files.io.chain(|io| {
        io.write(file, b"ok".to_vec(), 0, first);
        // Refused before submission (EBADF), but only when its turn comes.
        io.write(stale, b"x".to_vec(), 0, bad);
        io.fsync(file, synced);
    });
    assert_eq!(
        files.run(),
        [
            ("first", Ok(2)),
            ("stale", Err(libc::EBADF)),
            ("fsync", CANCELED)
        ]
    );
}

/// 16 TiB - 4 KiB: ext4's `s_maxbytes` with 4 KiB blocks, and the
/// simulator's default largest file.
const FILE_BYTES_MAX: u64 = ((1 << 32) - 1) * 4096;

fn a_short_write_breaks_the_chain(backend: Backend) {
    let mut files = Files::new(backend, "chain-short-write");
    let file = files.open("sparse", FileOptions::new().create(true));
    let (wrote, synced) = (files.logs_count("write"), files.logs("fsync"));
    files.io.chain(|io| {
        // Across the largest file: cut short there, after 512 bytes.
        io.write(file, vec![1u8; 1024], FILE_BYTES_MAX - 512, wrote);
        io.fsync(file, synced);
    });
    assert_eq!(files.run(), [("write", Ok(512)), ("fsync", CANCELED)]);
}

fn a_short_read_breaks_the_chain(backend: Backend) {
    let mut files = Files::new(backend, "chain-short-read");
    let file = files.open("data", FileOptions::new().create(true));
    let outcome = files.logs_count("setup");
    files.io.write(file, b"ten bytes!".to_vec(), 0, outcome);
    assert_eq!(files.run(), [("setup", Ok(10))]);
    let (read, wrote, whole, after) = (
        files.logs_count("read"),
        files.logs_count("write"),
        files.logs_count("whole"),
        files.logs_count("after"),
    );
    files.io.chain(|io| {
        io.read(file, Vec::with_capacity(100), 0, read); // 10 of 100: short
        io.write(file, b"never".to_vec(), 0, wrote);
    });
    assert_eq!(files.run(), [("read", Ok(10)), ("write", CANCELED)]);
    files.io.chain(|io| {
        io.read(file, Vec::with_capacity(10), 0, whole); // all it asked for
        io.write(file, b"yes".to_vec(), 0, after);
    });
    assert_eq!(files.run(), [("whole", Ok(10)), ("after", Ok(3))]);
}

fn a_chain_waits_whole_for_room_in_a_full_submission_queue(backend: Backend) {
    // Two entries: a chain of two waits until both fit, so a write that
    // fails still cancels its fsync (a split link would let it run).
    let mut files = Files::with_config(backend, "chain-full", Config::new().entries(2));
    let file = files.open("log", FileOptions::new().create(true));
    let read_only = files.open("log", FileOptions::new().write(false));
    type RoundLog = Rc<RefCell<Vec<(u64, &'static str, Result<usize, i32>)>>>;
    let log: RoundLog = Rc::default();
    let counted = |round: u64, what: &'static str| {
        let log = Rc::clone(&log);
        move |_: &mut IO<()>, _: &mut (), result: std::io::Result<usize>, _: Vec<u8>| {
            log.borrow_mut().push((round, what, result.map_err(errno)))
        }
    };
    let done = |round: u64, what: &'static str| {
        let log = Rc::clone(&log);
        move |_: &mut IO<()>, _: &mut (), result: std::io::Result<()>| {
            log.borrow_mut()
                .push((round, what, result.map(|()| 0).map_err(errno)))
        }
    };
    for round in 0..50 {
        files.io.nop(done(round, "nop"));
        files.io.chain(|io| {
            io.write(read_only, b"x".to_vec(), 0, counted(round, "bad"));
            io.fsync(file, done(round, "fsync"));
        });
        files.io.chain(|io| {
            io.write(file, b"y".to_vec(), round, counted(round, "good"));
            io.fsync(file, done(round, "synced"));
        });
    }
    files.io.run(&mut ()).unwrap();
    let log = log.borrow();
    assert_eq!(log.len(), 50 * 5);
    // Chains are independent of each other: within each, members in order.
    for round in 0..50 {
        let of = |names: [&str; 2]| -> Vec<(&str, Result<usize, i32>)> {
            let members = log
                .iter()
                .filter(|(r, name, _)| *r == round && names.contains(name));
            members.map(|(_, name, result)| (*name, *result)).collect()
        };
        assert_eq!(
            of(["bad", "fsync"]),
            [("bad", Err(libc::EBADF)), ("fsync", CANCELED)]
        );
        assert_eq!(of(["good", "synced"]), [("good", Ok(1)), ("synced", Ok(0))]);
        assert_eq!(of(["nop", "nop"]), [("nop", Ok(0))]);
    }
    assert!(files.io.stats().unqueued_max > 0, "work waited for room");
}

fn operations_that_cannot_be_linked_break_the_chain_with_einval(backend: Backend) {
    let mut files = Files::new(backend, "chain-einval");
    let file = files.open("log", FileOptions::new().create(true));
    let (nop, timeout, after) = (
        files.logs("nop"),
        files.logs("timeout"),
        files.logs("after"),
    );
    files.io.chain(|io| {
        io.nop(nop);
        io.timeout(0, timeout);
        io.nop(after);
    });
    assert_eq!(
        files.run(),
        [
            ("nop", Ok(0)),
            ("timeout", Err(libc::EINVAL)),
            ("after", CANCELED)
        ]
    );
    let (close, synced) = (files.logs("close"), files.logs("fsync"));
    files.io.chain(|io| {
        io.close(file, close);
        io.fsync(file, synced);
    });
    assert_eq!(
        files.run(),
        [("close", Err(libc::EINVAL)), ("fsync", CANCELED)]
    );
    let (nop, cancel) = (files.logs("nop"), files.logs("cancel"));
    files.io.chain(|io| {
        let id = io.nop(nop);
        io.cancel(id, cancel);
    });
    assert_eq!(files.run(), [("nop", Ok(0)), ("cancel", Err(libc::EINVAL))]);
    // The refused close left the handle open.
    let synced = files.logs("fsync");
    files.io.fsync(file, synced);
    assert_eq!(files.run(), [("fsync", Ok(0))]);
}

fn cancelling_the_running_member_cancels_the_rest(backend: Backend) {
    let mut io: IO<()> = match EMULATED.get() {
        true => backend.io_with(Config::new().emulate_kernel_features(true)),
        false => backend.io(),
    };
    let (client, server) = util::tcp_pair_io(&mut io, &mut ());
    let log: Log = Rc::default();
    let logs = |what: &'static str| {
        let log = Rc::clone(&log);
        move |_: &mut IO<()>, _: &mut (), result: std::io::Result<usize>, _: Vec<u8>| {
            log.borrow_mut().push((what, result.map_err(errno)))
        }
    };
    let recv = io.chain(|io| {
        // Nothing is sent: the receive waits until it is cancelled.
        let recv = io.recv(server, Vec::with_capacity(16), logs("recv"));
        io.send(client, b"never".to_vec(), logs("send"));
        recv
    });
    let cancelled: Rc<RefCell<Option<Result<(), i32>>>> = Rc::default();
    let out = Rc::clone(&cancelled);
    io.run_for_ns(&mut (), 2_000_000).unwrap();
    assert!(log.borrow().is_empty(), "the receive waits");
    io.cancel(recv, move |_, _, result| {
        *out.borrow_mut() = Some(result.map_err(errno))
    });
    io.run(&mut ()).unwrap();
    assert_eq!(*cancelled.borrow(), Some(Ok(())));
    assert_eq!(*log.borrow(), [("recv", CANCELED), ("send", CANCELED)]);
}

fn write_fsync_rename_fsync_replaces_a_file_atomically(backend: Backend) {
    let mut files = Files::new(backend, "chain-rename");
    let old = files.open("snapshot", FileOptions::new().create(true));
    let written = files.logs_count("setup");
    files.io.write(old, b"old".to_vec(), 0, written);
    assert_eq!(files.run(), [("setup", Ok(3))]);
    let temporary = files.open("snapshot.tmp", FileOptions::new().create(true));
    let dir = files.open(".", FileOptions::new().write(false));
    let (source, target) = (
        files.scratch.path("snapshot.tmp"),
        files.scratch.path("snapshot"),
    );
    let (wrote, synced, renamed, dir_synced) = (
        files.logs_count("write"),
        files.logs("fsync"),
        files.logs("rename"),
        files.logs("fsync dir"),
    );
    files.io.chain(|io| {
        io.write(temporary, b"new".to_vec(), 0, wrote);
        io.fsync(temporary, synced);
        io.renameat(source, target, RenameFlags::REPLACE, renamed);
        io.fsync(dir, dir_synced);
    });
    assert_eq!(
        files.run(),
        [
            ("write", Ok(3)),
            ("fsync", Ok(0)),
            ("rename", Ok(0)),
            ("fsync dir", Ok(0)),
        ]
    );
    let current = files.open("snapshot", FileOptions::new().write(false));
    let read = files.logs_count("read");
    let data: Rc<RefCell<Vec<u8>>> = Rc::default();
    let out = Rc::clone(&data);
    files.io.read(
        current,
        Vec::with_capacity(16),
        0,
        move |io, ctx, result, buf| {
            *out.borrow_mut() = buf.clone();
            read(io, ctx, result, buf);
        },
    );
    assert_eq!(files.run(), [("read", Ok(3))]);
    assert_eq!(*data.borrow(), b"new");
}

fn a_failed_write_leaves_the_rename_undone(backend: Backend) {
    let mut files = Files::new(backend, "chain-rename-fail");
    let temporary = files.open("snapshot.tmp", FileOptions::new().create(true));
    let read_only = files.open("snapshot.tmp", FileOptions::new().write(false));
    let (source, target) = (
        files.scratch.path("snapshot.tmp"),
        files.scratch.path("snapshot"),
    );
    let (wrote, synced, renamed) = (
        files.logs_count("write"),
        files.logs("fsync"),
        files.logs("rename"),
    );
    files.io.chain(|io| {
        io.write(read_only, b"new".to_vec(), 0, wrote);
        io.fsync(temporary, synced);
        io.renameat(source, target, RenameFlags::NO_REPLACE, renamed);
    });
    assert_eq!(
        files.run(),
        [
            ("write", Err(libc::EBADF)),
            ("fsync", CANCELED),
            ("rename", CANCELED)
        ]
    );
    let outcome: Rc<RefCell<Option<Result<Handle, i32>>>> = Rc::default();
    let out = Rc::clone(&outcome);
    let path = files.scratch.path("snapshot");
    files.io.openat(
        path,
        FileOptions::new().write(false),
        move |_, _, result| {
            *out.borrow_mut() = Some(result.map_err(errno));
        },
    );
    files.io.run(&mut ()).unwrap();
    assert_eq!(*outcome.borrow(), Some(Err(libc::ENOENT)), "never renamed");
}

fn a_long_chain_runs_every_member_in_order(backend: Backend) {
    let mut files = Files::new(backend, "chain-long");
    let file = files.open("log", FileOptions::new().create(true));
    let order: Rc<RefCell<Vec<u64>>> = Rc::default();
    files.io.chain(|io| {
        for index in 0..20u64 {
            let order = Rc::clone(&order);
            io.write(
                file,
                vec![index as u8; 10],
                index * 10,
                move |_, _, result, _| {
                    assert_eq!(result.unwrap(), 10);
                    order.borrow_mut().push(index);
                },
            );
        }
        let order = Rc::clone(&order);
        io.fdatasync(file, move |_, _, result| {
            result.unwrap();
            order.borrow_mut().push(99);
        });
    });
    files.io.run(&mut ()).unwrap();
    let expected: Vec<u64> = (0..20).chain([99]).collect();
    assert_eq!(*order.borrow(), expected);
    if backend.is_kernel() {
        let data = files.contents("log");
        assert_eq!(data.len(), 200);
        assert!(data
            .chunks(10)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    }
}

fn a_chain_longer_than_the_submission_queue_runs_in_pieces(backend: Backend) {
    let mut files = Files::with_config(backend, "chain-pieces", Config::new().entries(2));
    let file = files.open("log", FileOptions::new().create(true));
    let read_only = files.open("log", FileOptions::new().write(false));
    let names = ["w0", "w1", "w2", "w3", "w4", "w5", "w6"];
    let callbacks: Vec<_> = names.iter().map(|&name| files.logs_count(name)).collect();
    let (failing, after) = (files.logs_count("failing"), files.logs_count("after"));
    files.io.chain(|io| {
        for (index, callback) in callbacks.into_iter().enumerate() {
            io.write(file, vec![index as u8], index as u64, callback);
        }
        io.write(read_only, b"x".to_vec(), 0, failing);
        io.write(file, b"never".to_vec(), 0, after);
    });
    let log = files.run();
    let expected: Vec<(&str, Result<usize, i32>)> = names
        .iter()
        .map(|&name| (name, Ok(1)))
        .chain([("failing", Err(libc::EBADF)), ("after", CANCELED)])
        .collect();
    assert_eq!(log, expected);
}

fn a_panicking_chain_body_still_starts_what_it_submitted(backend: Backend) {
    let mut files = Files::new(backend, "chain-panic");
    let (first, second) = (files.logs("first"), files.logs("second"));
    let io = &mut files.io;
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        io.chain(|io| {
            io.nop(first);
            io.nop(second);
            panic!("in the chain's body");
        })
    }));
    assert!(unwound.is_err());
    assert_eq!(files.run(), [("first", Ok(0)), ("second", Ok(0))]);
    // Not stuck building a chain: a lone operation runs alone.
    let alone = files.logs("alone");
    files.io.nop(alone);
    assert_eq!(files.run(), [("alone", Ok(0))]);
}

/// Write + fsync as one linked chain against two separate submissions (the
/// fsync submitted from the write's callback), on io_uring: latency from
/// submitting the write to the fsync's callback, and `io_uring_enter`s per
/// pair. On ext4 (`util::ext4_base()`), where the device's flush dominates,
/// and on tmpfs (/dev/shm), where fsync is nearly free and what is left is
/// the loop's own cost. Figures in docs/benchmarks.md:
///
/// ```text
/// cargo test --release --test chains -- --ignored --nocapture write_fsync_latency
/// ```
#[test]
#[ignore = "a measurement: run it by name with --ignored --nocapture"]
fn write_fsync_latency_linked_against_separate() {
    let mut bases = vec![(util::ext4_base(), "ext4", 2_000)];
    let shm = std::path::PathBuf::from("/dev/shm");
    if shm.is_dir() {
        bases.push((shm, "tmpfs", 100_000));
    }
    for (base, name, pairs) in bases {
        write_fsync_latency_on(&base, name, pairs);
    }
}

fn write_fsync_latency_on(base: &std::path::Path, name: &str, pairs: usize) {
    const BLOCK: usize = 4096;
    let scratch = util::Scratch::under(base, Backend::IoUring, "chain-bench");
    let mut io: IO<Option<u64>> = Backend::IoUring.io();
    let file = io
        .open_file(scratch.path("log"), FileOptions::new().create(true))
        .unwrap();
    // Allocate the blocks first, so that every pair is an overwrite.
    io.write(file, vec![0u8; 256 * BLOCK], 0, |_, _, result, _| {
        result.unwrap();
    });
    io.fsync(file, |_, _, result| result.unwrap());
    io.run(&mut None).unwrap();
    let mut buf = Some(vec![0u8; BLOCK]);
    let mut pair = |io: &mut IO<Option<u64>>, index: usize, linked: bool| -> u64 {
        let offset = (index % 256 * BLOCK) as u64;
        let data = buf.take().unwrap_or_else(|| vec![0u8; BLOCK]);
        let start_ns = io.now_ns();
        let done =
            |io: &mut IO<Option<u64>>, end: &mut Option<u64>, result: std::io::Result<()>| {
                result.unwrap();
                *end = Some(io.now_ns());
            };
        if linked {
            io.chain(|io| {
                io.write(file, data, offset, |_, _, result, _| {
                    assert_eq!(result.unwrap(), BLOCK);
                });
                io.fsync(file, done);
            });
        } else {
            io.write(file, data, offset, move |io, _, result, _| {
                assert_eq!(result.unwrap(), BLOCK);
                io.fsync(file, done);
            });
        }
        let mut end = None;
        io.run(&mut end).unwrap();
        end.unwrap() - start_ns
    };
    let mut linked = Vec::with_capacity(pairs);
    let mut separate = Vec::with_capacity(pairs);
    let (mut linked_enters, mut separate_enters) = (0, 0);
    // Alternate in blocks, so that drift in the device hits both alike.
    let block_pairs = 100;
    for block in 0..pairs / block_pairs {
        for index in 0..block_pairs {
            let before = io.stats().syscalls;
            let index = block * block_pairs + index;
            if block % 2 == 0 {
                linked.push(pair(&mut io, index, true));
                linked_enters += io.stats().syscalls - before;
            } else {
                separate.push(pair(&mut io, index, false));
                separate_enters += io.stats().syscalls - before;
            }
        }
    }
    let report = |mode: &str, samples: &mut Vec<u64>, enters: u64| {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
        println!(
            "{name:>5} {mode:>8}: {} pairs, p10 {:.1} us, p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, mean {:.1} us, {:.2} io_uring_enter per pair",
            samples.len(),
            at(0.1),
            at(0.5),
            at(0.9),
            at(0.99),
            mean,
            enters as f64 / samples.len() as f64
        );
    };
    println!(
        "write 4 KiB + fsync, overwrites, io_uring, {name} under {}",
        base.display()
    );
    report("linked", &mut linked, linked_enters);
    report("separate", &mut separate, separate_enters);
}

/// NOPs name no descriptor, so their completions take the loop's fastest
/// path: a member's end must still start the next.
fn a_chain_of_operations_on_no_descriptor_runs_in_order(backend: Backend) {
    let mut io: IO<Vec<u32>> = match EMULATED.get() {
        true => backend.io_with(Config::new().emulate_kernel_features(true)),
        false => backend.io(),
    };
    io.chain(|io| {
        for index in 0..10 {
            io.nop(move |_, order, result| {
                result.unwrap();
                order.push(index);
            });
        }
    });
    let mut order = Vec::new();
    io.run(&mut order).unwrap();
    assert_eq!(order, (0..10).collect::<Vec<_>>());
}
