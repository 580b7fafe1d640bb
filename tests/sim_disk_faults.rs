//! The simulator's storage faults beyond those at write time, one rule per
//! test (docs/simulation.md, "Disk", states them): reads corrupted or
//! misdirected on the way back (the medium unharmed, so a re-read is
//! right); a latent sector error that cuts a buffered read short at its
//! page, or fails it with `EIO` when the page is the read's first; disk
//! stalls and gray failure, seen in virtual time and never in the data; and
//! a drive that acknowledges an fsync it did not perform. Each fault draws
//! from the disk's own stream, so a seed replays to the same trace hash.

use std::cell::RefCell;
use std::rc::Rc;

use ringio::sim::{NodeId, Probability, SimOptions, Simulator};
use ringio::{FileOptions, Handle, IO};

const SECTOR: usize = 512;
const PAGE: usize = 4096;

/// A one-node world with a file `data`, whose name is durable.
struct Node {
    sim: Simulator,
    node: NodeId,
    io: IO<()>,
    file: Handle,
}

impl Node {
    fn new(seed: u64, options: SimOptions) -> Node {
        let mut sim = Simulator::new(seed, options);
        let node = sim.add_node("db");
        let mut io = sim.io(node).unwrap();
        let file = io
            .open_file("data", FileOptions::new().create(true))
            .unwrap();
        let mut node = Node {
            sim,
            node,
            io,
            file,
        };
        node.fsync_directory();
        node
    }

    fn run(&mut self) {
        self.io.run(&mut ()).unwrap();
    }

    fn fsync_directory(&mut self) {
        let directory = self
            .io
            .open_file(".", FileOptions::new().write(false))
            .unwrap();
        self.io.fsync(directory, |_, _, result| result.unwrap());
        self.run();
        self.io.close(directory, |_, _, result| result.unwrap());
        self.run();
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let len = data.len();
        self.io
            .write(self.file, data.to_vec(), offset, move |_, _, result, _| {
                assert_eq!(result.unwrap(), len);
            });
        self.run();
    }

    /// Fsyncs the file; returns whether it succeeded.
    fn fsync(&mut self) -> bool {
        let done = Rc::new(RefCell::new(None));
        let out = Rc::clone(&done);
        self.io.fsync(self.file, move |_, _, result| {
            *out.borrow_mut() = Some(result.is_ok());
        });
        self.run();
        let succeeded = done.borrow().expect("the fsync completed");
        succeeded
    }

    /// Reads `len` bytes at `offset`: the bytes, or the errno; and the
    /// read's latency on the node's clock.
    fn read_timed(&mut self, offset: u64, len: usize) -> (Result<Vec<u8>, i32>, u64) {
        self.read_from(self.file, offset, len)
    }

    fn read_from(&mut self, file: Handle, offset: u64, len: usize) -> (Result<Vec<u8>, i32>, u64) {
        let done = Rc::new(RefCell::new(None));
        let out = Rc::clone(&done);
        let started_ns = self.io.now_ns();
        self.io.read(
            file,
            Vec::with_capacity(len),
            offset,
            move |io, _, result, buf| {
                let result = result.map(|count| buf[..count].to_vec());
                let result = result.map_err(|error| error.raw_os_error().unwrap());
                *out.borrow_mut() = Some((result, io.now_ns() - started_ns));
            },
        );
        self.run();
        let done = done.borrow_mut().take().expect("the read completed");
        done
    }

    fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, i32> {
        self.read_timed(offset, len).0
    }

    /// Crashes the node and reopens `data` in a new process.
    fn crash(&mut self) {
        self.sim.crash(self.node);
        let mut io = self.sim.io(self.node).unwrap();
        self.file = io.open_file("data", FileOptions::new()).unwrap();
        drop(std::mem::replace(&mut self.io, io));
    }

    fn damaged(&self) -> std::collections::BTreeSet<u64> {
        self.sim.damaged_sectors(self.node, "data")
    }
}

/// Options with every fault off, and crashes that keep every write whole
/// (so that what a crash loses is the fault's doing).
fn calm() -> SimOptions {
    let mut options = SimOptions::default().without_faults();
    options.disk.crash_lost_probability = Probability::NEVER;
    options.disk.crash_torn_probability = Probability::NEVER;
    options.disk.crash_metadata_lost_probability = Probability::NEVER;
    options
}

/// CRC-32 (IEEE), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `blocks` 4 KiB blocks, each of 4092 bytes of its own and its CRC-32.
fn checksummed(blocks: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(blocks * PAGE);
    for block in 0..blocks {
        let start = data.len();
        data.extend((0..PAGE - 4).map(|i| (i * 7 + block * 31) as u8));
        let crc = crc32(&data[start..]);
        data.extend_from_slice(&crc.to_le_bytes());
    }
    data
}

/// Whether every block of `data` passes its checksum.
fn verified(data: &[u8]) -> bool {
    data.chunks(PAGE).all(|block| {
        let (body, crc) = block.split_at(PAGE - 4);
        crc32(body).to_le_bytes() == crc
    })
}

/// The bits in which `a` and `b` differ.
fn bits_differing(a: &[u8], b: &[u8]) -> u32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[test]
fn a_corrupt_read_is_caught_by_the_checksum_and_a_reread_is_right() {
    let mut options = calm();
    options.disk.read_corruption_probability = Probability::percent(50);
    let mut node = Node::new(1, options);
    let data = checksummed(8);
    node.write(0, &data);
    assert!(node.fsync());
    let (mut corrupt, mut right) = (0, 0);
    for _ in 0..100 {
        let read = node.read(0, data.len()).unwrap();
        assert_eq!(read.len(), data.len());
        if read == data {
            right += 1;
            assert!(verified(&read));
        } else {
            corrupt += 1;
            // One bit, in what the caller received: the checksum sees it.
            assert_eq!(bits_differing(&read, &data), 1);
            assert!(!verified(&read), "the checksum missed a flipped bit");
            // Transient: reading again until the checksum passes gives the
            // data as written.
            let again = (0..64)
                .map(|_| node.read(0, data.len()).unwrap())
                .find(|read| verified(read))
                .expect("a re-read passes the checksum");
            assert_eq!(again, data);
        }
    }
    assert!(
        corrupt > 20 && right > 20,
        "corrupt {corrupt}, right {right}"
    );
    // The medium is unharmed: nothing damaged, and after a crash, with the
    // faults off, the data is as written.
    assert!(node.damaged().is_empty());
    node.sim.liveness();
    node.crash();
    assert_eq!(node.read(0, data.len()), Ok(data));
}

#[test]
fn a_misdirected_read_hands_back_other_sectors_and_harms_nothing() {
    let mut options = calm();
    options.disk.read_misdirect_probability = Probability::ALWAYS;
    let mut node = Node::new(2, options);
    // Sector i holds the byte i + 1, so any sector tells where it is from.
    let data: Vec<u8> = (0..32 * SECTOR).map(|i| (i / SECTOR) as u8 + 1).collect();
    node.write(0, &data);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let read = node.read(5 * SECTOR as u64, 3 * SECTOR).unwrap();
        assert_eq!(read.len(), 3 * SECTOR, "as long as the right read");
        // Whole sectors from elsewhere (zeros past the end): never sector 5.
        let sectors: Vec<u8> = read.chunks(SECTOR).map(|sector| sector[0]).collect();
        for (sector, &first) in read.chunks(SECTOR).zip(&sectors) {
            assert!(sector.iter().all(|&byte| byte == first));
        }
        assert_ne!(sectors[0], 6, "the read came from where it was asked");
        if sectors[0] != 0 {
            // Three consecutive sectors, as far as the file reaches.
            let expected: Vec<u8> = (0..3)
                .map(|i| sectors[0].checked_add(i).filter(|&s| s <= 32).unwrap_or(0))
                .collect();
            assert_eq!(sectors, expected);
        }
        seen.insert(sectors[0]);
    }
    assert!(seen.len() > 10, "{seen:?}");
    assert!(node.damaged().is_empty());
    node.sim.liveness();
    assert_eq!(node.read(0, data.len()), Ok(data));
}

#[test]
fn a_latent_sector_error_cuts_a_buffered_read_at_its_page_or_fails_it() {
    let mut options = calm();
    options.disk.latent_error_probability = Probability::ALWAYS;
    let mut node = Node::new(3, options);
    let data: Vec<u8> = (0..4 * PAGE).map(|i| (i % 251) as u8).collect();
    node.write(0, &data);
    // A one-sector read finds the bad sector where it reads: sector 20, in
    // page 2 (sectors 16 to 23).
    assert_eq!(node.read(20 * SECTOR as u64, SECTOR), Err(libc::EIO));
    assert_eq!(node.damaged().into_iter().collect::<Vec<_>>(), vec![20]);
    // No new errors from here on; the bad sector stays.
    node.sim.liveness();
    // From the start: the pages before page 2, a short read.
    assert_eq!(node.read(0, 4 * PAGE), Ok(data[..2 * PAGE].to_vec()));
    // From within page 1: the rest of page 1.
    assert_eq!(
        node.read(PAGE as u64 + 100, 4 * PAGE),
        Ok(data[PAGE + 100..2 * PAGE].to_vec())
    );
    // The first page is bad: EIO, whether the read starts before the bad
    // sector or after it.
    assert_eq!(node.read(2 * PAGE as u64, 2 * PAGE), Err(libc::EIO));
    assert_eq!(
        node.read(2 * PAGE as u64 + SECTOR as u64, SECTOR),
        Err(libc::EIO)
    );
    assert_eq!(node.read(22 * SECTOR as u64, 4 * PAGE), Err(libc::EIO));
    // Past the bad page, all is well.
    assert_eq!(
        node.read(3 * PAGE as u64, PAGE),
        Ok(data[3 * PAGE..].to_vec())
    );
    // O_DIRECT goes to the device whole: the bio fails, the read is EIO.
    let direct = node
        .io
        .open_file("data", FileOptions::new().write(false).direct(true))
        .unwrap();
    assert_eq!(node.read_from(direct, 0, 4 * PAGE).0, Err(libc::EIO));
    assert_eq!(
        node.read_from(direct, 0, 2 * PAGE).0,
        Ok(data[..2 * PAGE].to_vec())
    );
    // Rewriting the sector clears it.
    node.write(20 * SECTOR as u64, &data[20 * SECTOR..21 * SECTOR]);
    assert_eq!(node.read(0, 4 * PAGE), Ok(data));
    assert!(node.damaged().is_empty());
}

/// Base read latency exactly 100 µs (the mean of 1 ns never reaches the
/// minimum), so that any added latency shows.
fn fixed_latency() -> SimOptions {
    let mut options = calm();
    options.disk.read_latency_min_ns = 100_000;
    options.disk.read_latency_mean_ns = 1;
    options
}

#[test]
fn a_stall_shows_in_virtual_time_and_not_in_the_data() {
    let mut options = fixed_latency();
    options.disk.stall_probability = Probability::percent(10);
    options.disk.stall_mean_ns = 50_000_000;
    let mut node = Node::new(4, options);
    let data = checksummed(1);
    node.write(0, &data);
    let mut latencies = Vec::new();
    for _ in 0..300 {
        let (read, latency_ns) = node.read_timed(0, PAGE);
        assert_eq!(read, Ok(data.clone()));
        assert!(latency_ns >= 100_000);
        latencies.push(latency_ns);
    }
    let plain = latencies.iter().filter(|&&ns| ns == 100_000).count();
    let stalled: Vec<u64> = latencies
        .iter()
        .copied()
        .filter(|&ns| ns > 100_000)
        .collect();
    assert!((240..=295).contains(&plain), "{plain} of 300 not stalled");
    let mean_ns = stalled.iter().map(|ns| ns - 100_000).sum::<u64>() / stalled.len() as u64;
    assert!(
        (20_000_000..100_000_000).contains(&mean_ns),
        "mean stall {mean_ns} ns"
    );
    // Off, no read stalls.
    let mut node = Node::new(4, fixed_latency());
    node.write(0, &data);
    assert!((0..300).all(|_| node.read_timed(0, PAGE).1 == 100_000));
}

#[test]
fn a_gray_failure_slows_every_operation_for_a_period() {
    let mut options = fixed_latency();
    options.disk.gray_interval_mean_ns = 20_000_000;
    options.disk.gray_duration_mean_ns = 20_000_000;
    options.disk.gray_latency_multiplier = 20;
    let mut node = Node::new(5, options);
    let data = checksummed(1);
    node.write(0, &data);
    let mut latencies = Vec::new();
    for _ in 0..2_000 {
        let (read, latency_ns) = node.read_timed(0, PAGE);
        assert_eq!(read, Ok(data.clone()));
        latencies.push(latency_ns);
    }
    // Every read is either well (100 µs) or slow (20 times that).
    assert!(latencies.iter().all(|&ns| ns == 100_000 || ns == 2_000_000));
    let slow = latencies.iter().filter(|&&ns| ns == 2_000_000).count();
    assert!(slow > 20 && slow < 1_980, "{slow} slow reads");
    // In periods: slow reads come in runs, not one at a time.
    let runs = latencies
        .windows(2)
        .filter(|pair| pair[0] != 2_000_000 && pair[1] == 2_000_000)
        .count();
    assert!(
        runs >= 2 && runs * 3 < slow,
        "{runs} slow periods, {slow} slow reads"
    );
}

#[test]
fn a_lying_fsync_is_acknowledged_and_a_crash_loses_what_it_covered() {
    let mut options = calm();
    options.disk.fsync_lie_probability = Probability::ALWAYS;
    options.disk.crash_lost_probability = Probability::ALWAYS;
    options.disk.crash_metadata_lost_probability = Probability::ALWAYS;
    let mut node = Node::new(6, options);
    node.write(0, b"acknowledged as durable");
    assert!(node.fsync(), "the lie is a success");
    assert_eq!(node.read(0, 100), Ok(b"acknowledged as durable".to_vec()));
    node.crash();
    assert_eq!(
        node.read(0, 100),
        Ok(Vec::new()),
        "the data stayed volatile"
    );
    // The length an fsync covers stays volatile too.
    node.io.set_len(node.file, 8192).unwrap();
    assert!(node.fsync());
    node.crash();
    let done = Rc::new(RefCell::new(u64::MAX));
    let size = Rc::clone(&done);
    node.io.statx(node.file, move |_, _, result| {
        *size.borrow_mut() = result.unwrap().size_bytes;
    });
    node.run();
    assert_eq!(*done.borrow(), 0, "the length stayed volatile");
    assert!(node.damaged().is_empty(), "a lie damages no sector");
}

#[test]
fn without_the_lie_an_acknowledged_fsync_survives_every_crash() {
    // Swarm options: every crash loss, tear and metadata loss drawn per seed,
    // injected fsync errors too; the lie is off there.
    for seed in 0..300 {
        let options = SimOptions::swarm(seed);
        assert!(options.disk.fsync_lie_probability.is_never());
        let mut options = options;
        options.faults = SimOptions::default().without_faults().faults;
        options.disk.latent_error_probability = Probability::NEVER;
        let mut node = Node::new(seed, options);
        let record = format!("record of seed {seed}").into_bytes();
        node.write(0, &record);
        assert!(node.fsync());
        node.write(record.len() as u64, b" and an unsynced tail");
        node.crash();
        let read = node.read(0, 100).unwrap();
        assert!(read.starts_with(&record), "seed {seed}: {read:?}");
    }
}

#[test]
fn the_lie_is_off_by_default_and_without_faults() {
    assert!(SimOptions::default().disk.fsync_lie_probability.is_never());
    assert!(SimOptions::default()
        .without_faults()
        .disk
        .fsync_lie_probability
        .is_never());
    let calm = SimOptions::default().without_faults().disk;
    assert!(calm.read_corruption_probability.is_never());
    assert!(calm.read_misdirect_probability.is_never());
    assert!(calm.stall_probability.is_never());
    assert_eq!(calm.gray_interval_mean_ns, 0);
}

/// A workload on one node with every new fault on: writes, fsyncs, reads,
/// a crash; its trace hash.
fn hash_of(seed: u64, options: SimOptions) -> u64 {
    let mut node = Node::new(seed, options);
    let data = checksummed(4);
    for round in 0..20u64 {
        node.write(round * PAGE as u64, &data[..PAGE]);
        node.fsync();
        let _ = node.read(0, 4 * PAGE);
        if round == 10 {
            node.crash();
        }
    }
    node.sim.trace_hash()
}

fn every_new_fault() -> SimOptions {
    let mut options = SimOptions::default();
    let disk = &mut options.disk;
    disk.read_corruption_probability = Probability::percent(20);
    disk.read_misdirect_probability = Probability::percent(20);
    disk.stall_probability = Probability::percent(20);
    disk.gray_interval_mean_ns = 5_000_000;
    disk.fsync_lie_probability = Probability::percent(20);
    disk.latent_error_probability = Probability::percent(5);
    options
}

#[test]
fn a_seed_replays_to_the_same_trace_hash_with_the_new_faults_on() {
    let first = hash_of(7, every_new_fault());
    assert_eq!(first, hash_of(7, every_new_fault()));
    assert_ne!(first, hash_of(8, every_new_fault()));
    assert_ne!(first, hash_of(7, SimOptions::default()));
}

#[test]
fn a_fault_that_is_off_draws_nothing() {
    // With each new fault off, its other knobs change nothing: they are
    // never drawn on.
    let mut options = SimOptions::default();
    options.disk.stall_probability = Probability::NEVER;
    let base = hash_of(9, options.clone());
    options.disk.stall_mean_ns = 12_345;
    options.disk.gray_duration_mean_ns = 1;
    options.disk.gray_latency_multiplier = 1_000;
    assert_eq!(base, hash_of(9, options));
}
