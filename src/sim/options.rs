//! Every knob of the simulated world, with its default. `Debug` prints all
//! of them, so that a run can print exactly what it used and be replayed.

use super::prng::{Prng, Probability};

/// The whole world's configuration: network, disk and injected errors.
///
/// `SimOptions::default()` is a hostile but fair world: realistic latencies,
/// split receives, partitions and clogs, crash-torn writes, rare latent
/// sector errors, rare disk stalls, and errors injected from every
/// operation's documented errno set. Silent corruption, misdirected writes,
/// the read-path faults, gray failure and fsync lies are off unless asked
/// for. [`SimOptions::without_faults`] keeps the nondeterminism (latency,
/// splits) and turns every fault off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// The network between nodes.
    pub network: NetworkOptions,
    /// Each node's disk.
    pub disk: DiskOptions,
    /// Errors injected into operations.
    pub faults: FaultOptions,
    /// Each node's clocks: drift, offsets, wall-clock steps.
    pub clocks: ClockOptions,
    /// Virtual CPU time that callbacks cost.
    pub cpu: CpuOptions,
    /// The packet network that UDP datagrams cross.
    pub datagram: DatagramOptions,
}

impl SimOptions {
    /// These options with every fault off (the liveness mode): no injected
    /// errors or BUGGIFY, partitions, clogs, half-open crashes, latent
    /// sector errors, corruption or misdirected writes, corrupt or
    /// misdirected reads, disk stalls or gray failure, fsync lies, clock
    /// drift, offsets
    /// or steps, or CPU cost. Latency, bandwidth, split receives and short
    /// sends stay, as do TCP's timers and what a crash does to unsynced
    /// writes and to metadata not yet durable (crashes are the harness's to
    /// cause).
    pub fn without_faults(mut self) -> SimOptions {
        self.faults = FaultOptions::none();
        self.clocks = ClockOptions::none();
        self.cpu = CpuOptions::none();
        self.network.partition_interval_mean_ns = 0;
        self.network.clog_interval_mean_ns = 0;
        self.network.crash_half_open_probability = Probability::NEVER;
        self.disk.latent_error_probability = Probability::NEVER;
        self.disk.corruption_probability = Probability::NEVER;
        self.disk.misdirect_probability = Probability::NEVER;
        self.disk.read_corruption_probability = Probability::NEVER;
        self.disk.read_misdirect_probability = Probability::NEVER;
        self.disk.stall_probability = Probability::NEVER;
        self.disk.gray_interval_mean_ns = 0;
        self.disk.fsync_lie_probability = Probability::NEVER;
        self.datagram.loss_probability = Probability::NEVER;
        self.datagram.duplicate_probability = Probability::NEVER;
        self
    }

    /// Swarm testing: every probability, latency and buffer size drawn from
    /// `seed`, so that many seeds explore many different worlds (some calm,
    /// some hostile) instead of one average one. Corruption and misdirected
    /// writes stay off, and so do the read-path faults and the fsync lie:
    /// turn them on explicitly. Disk stalls and gray failure are drawn.
    pub fn swarm(seed: u64) -> SimOptions {
        let mut prng = Prng::new(seed ^ 0x5377_6172_6d21); // "Swarm!"
        let maybe = |prng: &mut Prng, max_ppm: u64| {
            if prng.chance(Probability::percent(50)) {
                Probability::ppm(prng.below(max_ppm + 1) as u32)
            } else {
                Probability::NEVER
            }
        };
        let mut options = SimOptions::default();
        let network = &mut options.network;
        network.latency_min_ns = prng.range_inclusive(1_000, 200_000);
        network.latency_mean_ns = network.latency_min_ns + prng.below(2_000_000);
        network.tail_probability = maybe(&mut prng, 10_000);
        network.buffer_bytes = 1 << prng.range_inclusive(10, 20);
        network.recv_split_probability = Probability::ppm(prng.below(1_000_001) as u32);
        network.bandwidth_bytes_per_s = 1 << prng.range_inclusive(23, 34); // 8 MB/s to 16 GB/s
        network.crash_half_open_probability = Probability::ppm(prng.below(1_000_001) as u32);
        network.partition_interval_mean_ns = prng.below(2) * prng.range_inclusive(1, 20) * SECOND;
        network.clog_interval_mean_ns = prng.below(2) * prng.range_inclusive(1, 20) * SECOND;
        let disk = &mut options.disk;
        disk.write_latency_mean_ns = prng.range_inclusive(10_000, 2_000_000);
        disk.read_latency_mean_ns = prng.range_inclusive(10_000, 2_000_000);
        disk.fsync_latency_mean_ns = prng.range_inclusive(100_000, 20_000_000);
        disk.crash_lost_probability = Probability::ppm(prng.below(1_000_001) as u32);
        disk.crash_torn_probability = Probability::ppm(prng.below(1_000_001) as u32);
        disk.latent_error_probability = maybe(&mut prng, 1_000);
        let faults = &mut options.faults;
        for probability in faults.all_mut() {
            *probability = maybe(&mut prng, 20_000);
        }
        faults.buggify = prng.chance(Probability::percent(50));
        let clocks = &mut options.clocks;
        clocks.drift_ppm_max = prng.below(2) as u32 * prng.below(1_001) as u32;
        clocks.wall_offset_max_ns = prng.below(2) * prng.below(10 * SECOND);
        clocks.wall_jump_interval_mean_ns = prng.below(2) * prng.range_inclusive(1, 60) * SECOND;
        clocks.wall_jump_max_ns = prng.range_inclusive(1, 5 * SECOND);
        let cpu = &mut options.cpu;
        cpu.callback_mean_ns = prng.below(2) * prng.below(100_000);
        cpu.per_kib_ns = prng.below(2) * prng.below(2_000);
        // Drawn last, so that the knobs above keep the values they had.
        let datagram = &mut options.datagram;
        datagram.loss_probability = maybe(&mut prng, 100_000);
        datagram.duplicate_probability = maybe(&mut prng, 20_000);
        datagram.reorder_probability = maybe(&mut prng, 100_000);
        options.disk.crash_metadata_lost_probability =
            Probability::ppm(prng.below(1_000_001) as u32);
        // Stalls and gray failure: latency only, which every program must
        // bear. The read-path faults stay off, as the write-time ones do,
        // and so does the fsync lie (see `DiskOptions`).
        let disk = &mut options.disk;
        disk.stall_probability = maybe(&mut prng, 2_000);
        disk.stall_mean_ns = prng.range_inclusive(10_000_000, SECOND);
        disk.gray_interval_mean_ns = prng.below(2) * prng.range_inclusive(1, 10) * SECOND;
        disk.gray_duration_mean_ns = prng.range_inclusive(10_000_000, SECOND);
        disk.gray_latency_multiplier = prng.range_inclusive(2, 50);
        options
    }
}

const SECOND: u64 = 1_000_000_000;

/// The packet network under UDP. Each datagram samples its own latency
/// from [`NetworkOptions`] (so datagrams overtake each other: reordering
/// needs no knob of its own), waits behind a clog, is dropped by a
/// partition, and is dropped at a receiver whose queue holds
/// `NetworkOptions::buffer_bytes` already (Linux's `SO_RCVBUF`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatagramOptions {
    /// How often a datagram is lost on the way.
    pub loss_probability: Probability,
    /// How often a datagram arrives twice (each copy with its own latency).
    pub duplicate_probability: Probability,
    /// How often a datagram is held back on top of its latency, by
    /// `Exp(reorder_delay_mean_ns)`, so that later datagrams overtake it
    /// (reordering beyond what independent latencies already give).
    pub reorder_probability: Probability,
    /// The mean extra delay of a held-back datagram.
    pub reorder_delay_mean_ns: u64,
    /// The largest datagram a send takes; larger is `EMSGSIZE`. Linux's
    /// UDP over IPv4 takes 65,507 bytes (65,535 less the IP and UDP headers).
    pub max_bytes: u32,
}

impl Default for DatagramOptions {
    fn default() -> DatagramOptions {
        DatagramOptions {
            loss_probability: Probability::percent(1),
            duplicate_probability: Probability::ppm(2_000),
            reorder_probability: Probability::percent(1),
            reorder_delay_mean_ns: 1_000_000,
            max_bytes: 65_507,
        }
    }
}

/// The simulated network: latency, buffers, partitions and clogs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkOptions {
    /// The least one-way latency of a segment or handshake.
    pub latency_min_ns: u64,
    /// One-way latency is `max(latency_min_ns, Exp(latency_mean_ns))`.
    pub latency_mean_ns: u64,
    /// How often a segment takes the long tail ...
    pub tail_probability: Probability,
    /// ... which adds `Exp(tail_mean_ns)` to its latency.
    pub tail_mean_ns: u64,
    /// Bytes one direction of a connection holds, in flight and unread,
    /// before `send` comes back short (or waits): the peer's buffer.
    pub buffer_bytes: u64,
    /// How often a `recv` returns a random prefix of what has arrived,
    /// as a real network's segmentation would.
    pub recv_split_probability: Probability,
    /// Bytes per second each link (each ordered pair of nodes, and each
    /// node's loopback) carries: a segment of `n` bytes waits for the link,
    /// then takes `n / bandwidth` on the wire before its latency (0: no limit).
    pub bandwidth_bytes_per_s: u64,
    /// The first retransmission of an unanswered SYN (a partition, a node
    /// that is down, a full listen queue), doubling after each: Linux's
    /// `TCP_TIMEOUT_INIT`.
    pub syn_retransmit_timeout_ns: u64,
    /// SYN retransmissions before `connect` gives up with `ETIMEDOUT`:
    /// Linux's `tcp_syn_retries` (6: 127 s with a 1 s first timeout).
    pub syn_retries: u32,
    /// How often a listener retries a handshake whose last ACK found its
    /// accept queue full before it forgets it: Linux's `tcp_synack_retries`.
    pub synack_retries: u32,
    /// How long data may stall behind a partition (or go unanswered across
    /// one, or into a crashed machine) before the connection breaks with
    /// `ETIMEDOUT` (TCP's retransmission timeout).
    pub retransmit_timeout_ns: u64,
    /// How often a crash leaves the node's connections half-open: its
    /// peers are told nothing, as when a machine loses power, and learn
    /// only when they send (a RST once the node is up again, or
    /// `ETIMEDOUT`). Otherwise they see a reset. A process exit always
    /// closes its sockets (FIN or RST).
    pub crash_half_open_probability: Probability,
    /// Mean time between random partitions (0: never). Each splits the
    /// nodes into two random groups.
    pub partition_interval_mean_ns: u64,
    /// Mean time a partition lasts before it heals.
    pub partition_duration_mean_ns: u64,
    /// How often a partition blocks one direction only.
    pub partition_asymmetric_probability: Probability,
    /// Mean time between random clogs (0: never). A clog holds all
    /// traffic from one node to another until it clears, dropping none.
    pub clog_interval_mean_ns: u64,
    /// Mean time a clog lasts.
    pub clog_duration_mean_ns: u64,
}

impl Default for NetworkOptions {
    fn default() -> NetworkOptions {
        NetworkOptions {
            latency_min_ns: 20_000,
            latency_mean_ns: 100_000,
            tail_probability: Probability::ppm(1_000),
            tail_mean_ns: 20_000_000,
            buffer_bytes: 64 * 1024,
            recv_split_probability: Probability::percent(20),
            bandwidth_bytes_per_s: 1_250_000_000, // 10 Gbit/s
            syn_retransmit_timeout_ns: SECOND,
            syn_retries: 6,
            synack_retries: 5,
            retransmit_timeout_ns: SECOND,
            crash_half_open_probability: Probability::percent(50),
            partition_interval_mean_ns: 10 * SECOND,
            partition_duration_mean_ns: SECOND / 2,
            partition_asymmetric_probability: Probability::percent(30),
            clog_interval_mean_ns: 5 * SECOND,
            clog_duration_mean_ns: SECOND / 5,
        }
    }
}

impl NetworkOptions {
    /// How long a connect whose every SYN goes unanswered waits before
    /// `ETIMEDOUT`: the first timeout times `2^(syn_retries + 1) - 1`.
    pub fn syn_timeout_ns(&self) -> u64 {
        let factor = (2u64 << self.syn_retries.min(40)) - 1;
        self.syn_retransmit_timeout_ns.saturating_mul(factor)
    }
}

/// Each node's clocks (TigerBeetle's VOPR models these): one oscillator
/// per node, read as a monotonic clock ([`IO::now_ns`](crate::IO::now_ns))
/// and a wall clock ([`IO::realtime_ns`](crate::IO::realtime_ns)). Drawn per
/// node when it is added; [`SimOptions::without_faults`] zeroes them, so
/// every node reads the world's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockOptions {
    /// Each node's clocks run fast or slow by up to this many parts per
    /// million, drawn per node (a quartz oscillator: tens of ppm).
    pub drift_ppm_max: u32,
    /// Each boot (the first process, and every restart after a crash)
    /// starts the node's monotonic clock at a random reading up to this
    /// (plus 1 s): `now_ns` is not comparable across reboots or nodes.
    pub monotonic_offset_max_ns: u64,
    /// Each node's wall clock is off by up to this either way.
    pub wall_offset_max_ns: u64,
    /// Mean time between steps of a node's wall clock (0: never), as NTP
    /// or an operator makes them: the wall clock jumps, backward too.
    pub wall_jump_interval_mean_ns: u64,
    /// A step moves the wall clock by up to this, either way.
    pub wall_jump_max_ns: u64,
}

impl ClockOptions {
    /// Every node reads the world's clock.
    pub const fn none() -> ClockOptions {
        ClockOptions {
            drift_ppm_max: 0,
            monotonic_offset_max_ns: 0,
            wall_offset_max_ns: 0,
            wall_jump_interval_mean_ns: 0,
            wall_jump_max_ns: 0,
        }
    }
}

impl Default for ClockOptions {
    fn default() -> ClockOptions {
        ClockOptions {
            drift_ppm_max: 100,
            monotonic_offset_max_ns: 24 * 3_600 * SECOND,
            wall_offset_max_ns: SECOND / 10,
            wall_jump_interval_mean_ns: 30 * SECOND,
            wall_jump_max_ns: SECOND,
        }
    }
}

/// Virtual CPU time: each callback a node runs costs it time, so that a
/// program that spins is seen to spin (its clock moves, its timers fire)
/// and a node that falls behind falls behind in virtual time (its next
/// results wait until it is done). Off by default and without faults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuOptions {
    /// Mean cost of one callback, drawn `Exp(mean)` per callback (0: free).
    pub callback_mean_ns: u64,
    /// Cost per KiB a recv, send, read or write moved, added to its callback's.
    pub per_kib_ns: u64,
}

impl CpuOptions {
    /// Callbacks cost nothing.
    pub const fn none() -> CpuOptions {
        CpuOptions {
            callback_mean_ns: 0,
            per_kib_ns: 0,
        }
    }

    /// Whether any cost is on.
    pub const fn is_on(&self) -> bool {
        self.callback_mean_ns > 0 || self.per_kib_ns > 0
    }
}

/// Each node's simulated disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskOptions {
    /// The unit that is written atomically, and the `O_DIRECT` alignment of
    /// offsets and lengths (the device's logical block size).
    pub sector_bytes: u64,
    /// The file system's block: the unit in which writes allocate space
    /// (a block never written is a hole) and in which `O_DIRECT` transfers
    /// are checked (ext4's rules; see docs/simulation.md). A power of two,
    /// and a multiple of `sector_bytes`.
    pub block_bytes: u64,
    /// The alignment `O_DIRECT` wants of the memory each part of a
    /// transfer that reaches the device starts at (`stx_dio_mem_align`;
    /// the device's DMA alignment, 512 on virtio-blk and SCSI). The
    /// simulator takes every buffer to start on such a boundary (a host
    /// address is not something a seed decides) and judges where each
    /// part starts within the buffer: see docs/simulation.md.
    pub direct_memory_align_bytes: u64,
    /// The largest file (`s_maxbytes`): a write at or past it, or a
    /// `set_len` above it, is `EFBIG`, and a write across it is cut short
    /// there. The default is ext4's with 4 KiB blocks, 16 TiB - 4 KiB.
    pub file_bytes_max: u64,
    /// The bytes of all blocks allocated on one node; a write that needs
    /// more is `ENOSPC`. A sparse file's holes take none.
    pub capacity_bytes: u64,
    /// Read latency: `max(read_latency_min_ns, Exp(read_latency_mean_ns))`.
    pub read_latency_min_ns: u64,
    /// See `read_latency_min_ns`.
    pub read_latency_mean_ns: u64,
    /// Write latency, as for reads.
    pub write_latency_min_ns: u64,
    /// See `write_latency_min_ns`.
    pub write_latency_mean_ns: u64,
    /// Fsync latency, as for reads.
    pub fsync_latency_min_ns: u64,
    /// See `fsync_latency_min_ns`.
    pub fsync_latency_mean_ns: u64,
    /// Latency of the metadata and namespace operations (`openat`,
    /// `statx`, `fallocate`, `ftruncate`, `renameat`, `unlinkat`,
    /// `mkdirat`), as for reads.
    pub metadata_latency_min_ns: u64,
    /// See `metadata_latency_min_ns`.
    pub metadata_latency_mean_ns: u64,
    /// On a crash, how often an unsynced write is lost whole.
    pub crash_lost_probability: Probability,
    /// On a crash, how often an unsynced write that is not lost is torn:
    /// each of its sectors kept or lost independently. The others keep a
    /// random prefix of their sectors (possibly all of them).
    pub crash_torn_probability: Probability,
    /// On a crash, how often a metadata change that is not durable yet is
    /// lost: a file's length set by `ftruncate`/`set_len`/`fallocate`/
    /// `O_TRUNC` since its last fsync (each kept or lost on its own), and
    /// each namespace change (a create, mkdir, rename, unlink) since its
    /// directory's last fsync, in order: the first one lost takes every
    /// later one with it, as a journal that commits in order does.
    pub crash_metadata_lost_probability: Probability,
    /// How often a read finds a new latent sector error, in the sectors it
    /// reads: that sector cannot be read until it is overwritten. A
    /// buffered read that reaches a bad sector returns the bytes of the
    /// pages (`block_bytes`) before the page that holds it, a short read,
    /// or `EIO` if that page is the read's first, as Linux's page cache
    /// does; an `O_DIRECT` read over one is `EIO`.
    pub latent_error_probability: Probability,
    /// How often a write reaching the medium has one bit flipped silently.
    pub corruption_probability: Probability,
    /// How often a write reaching the medium lands on the wrong sectors.
    pub misdirect_probability: Probability,
    /// How often a read hands back one bit flipped in a byte it read from a
    /// written block (a hole's zeros come from no device): corruption on
    /// the way back (the bus, the controller, memory), with the page cache
    /// and the medium unharmed, so a re-read is right. No sector is
    /// recorded as damaged. Off by default, and in [`SimOptions::swarm`]:
    /// as with [`DiskOptions::corruption_probability`], only a program
    /// that checksums what it reads can tell, so a harness turns it on.
    pub read_corruption_probability: Probability,
    /// How often a read hands back the data at another offset of the file
    /// (whole sectors away, zeros past its end) instead of what is asked
    /// for: a misdirected read. The length is the one the right read would
    /// have; nothing is damaged, so a re-read is right. Off by default and
    /// in `swarm()`, as `read_corruption_probability` is.
    pub read_misdirect_probability: Probability,
    /// How often a disk operation (a read, a write, an fsync, a metadata or
    /// path operation) stalls: its latency gains `Exp(stall_mean_ns)`, the
    /// long tail of a drive that remaps a sector, garbage-collects or
    /// retries. Latency only: what the operation does is unchanged.
    pub stall_probability: Probability,
    /// The mean extra latency of a stall.
    pub stall_mean_ns: u64,
    /// Mean time between a disk's slow periods (gray failure; 0: never):
    /// each node's disk turns slow for `Exp(gray_duration_mean_ns)`, then
    /// is well for `Exp(gray_interval_mean_ns)`, and so on, drawn as its
    /// operations reach each period. Latency only.
    pub gray_interval_mean_ns: u64,
    /// Mean length of a slow period.
    pub gray_duration_mean_ns: u64,
    /// During a slow period every disk operation's latency (its stall
    /// aside) is multiplied by this.
    pub gray_latency_multiplier: u64,
    /// How often a successful fsync of a file is a lie: it completes with
    /// success, but the drive performed no flush, so every change it
    /// covered stays volatile, exactly as before the fsync: the data of the
    /// writes, and the lengths set (`ftruncate`, `O_TRUNC`, `fallocate`
    /// extending the file). A crash may then lose or tear them as it would
    /// have without the fsync; a later fsync that is not a lie makes them
    /// durable. A directory's fsync (the namespace) and an `O_DSYNC` write
    /// are never lies. Off in [`SimOptions::default`] and in `swarm()`, not
    /// only in `without_faults()`: a drive that ignores flushes breaks the
    /// contract every storage engine is built on, and most cannot defend
    /// against it (only by replication, or by checking after a power cycle
    /// what the drive kept); a harness turns it on to show that its checker
    /// catches what it does.
    pub fsync_lie_probability: Probability,
}

impl Default for DiskOptions {
    fn default() -> DiskOptions {
        DiskOptions {
            sector_bytes: 512,
            block_bytes: 4096,
            direct_memory_align_bytes: 512,
            file_bytes_max: ((1 << 32) - 1) * 4096,
            capacity_bytes: 1 << 30,
            read_latency_min_ns: 10_000,
            read_latency_mean_ns: 80_000,
            write_latency_min_ns: 10_000,
            write_latency_mean_ns: 60_000,
            fsync_latency_min_ns: 100_000,
            fsync_latency_mean_ns: 1_000_000,
            metadata_latency_min_ns: 5_000,
            metadata_latency_mean_ns: 20_000,
            crash_lost_probability: Probability::percent(34),
            crash_torn_probability: Probability::percent(50),
            crash_metadata_lost_probability: Probability::percent(50),
            latent_error_probability: Probability::ppm(100),
            corruption_probability: Probability::NEVER,
            misdirect_probability: Probability::NEVER,
            read_corruption_probability: Probability::NEVER,
            read_misdirect_probability: Probability::NEVER,
            stall_probability: Probability::ppm(100),
            stall_mean_ns: 100_000_000,
            gray_interval_mean_ns: 0,
            gray_duration_mean_ns: SECOND,
            gray_latency_multiplier: 10,
            fsync_lie_probability: Probability::NEVER,
        }
    }
}

/// Errors injected into operations, each from the operation's documented
/// errno set, with a probability per operation. An injected error has its
/// real consequences: an injected `ECONNRESET` resets the connection for
/// both ends; an injected fsync `EIO` drops the writes it covered, as
/// Linux does ("fsyncgate").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultOptions {
    /// `accept`: `ECONNABORTED` (the connection was reset before accept).
    pub accept: Probability,
    /// `connect`: `ECONNREFUSED` or `ETIMEDOUT`.
    pub connect: Probability,
    /// `recv`: `ECONNRESET` (after the data already received, as on Linux).
    pub recv: Probability,
    /// `send`: `ECONNRESET` or `EPIPE`.
    pub send: Probability,
    /// `send`: `ENOMEM` or `ENOBUFS`, nothing sent; the connection is intact.
    pub send_buffers: Probability,
    /// `accept`, `open_socket`, `listen`, `open_file`: `EMFILE` or `ENFILE`,
    /// nothing opened (an accept's connection stays queued).
    pub descriptors: Probability,
    /// Any operation but `close` and `cancel`: `EINTR` before it starts, as
    /// a signal at the syscall boundary. The loop resubmits it, so an
    /// application never sees it: it checks the loop.
    pub interrupt: Probability,
    /// `read`: `EIO`, once (a latent sector error is the sticky kind).
    pub read: Probability,
    /// `write`: `EIO` (nothing written) or `ENOSPC`.
    pub write: Probability,
    /// `fsync`/`fdatasync`: `EIO`, and the writes it covered are dropped.
    pub fsync: Probability,
    /// `close`: `EINTR`, with the descriptor closed all the same, as Linux
    /// does. The loop reports it as success and never retries it, so an
    /// application never sees it: it checks the loop.
    pub close: Probability,
    /// Whether [`IO::sim_coin`](crate::IO::sim_coin), the application's own
    /// BUGGIFY points, ever comes up true.
    pub buggify: bool,
}

impl FaultOptions {
    /// No injected errors at all.
    pub const fn none() -> FaultOptions {
        FaultOptions {
            accept: Probability::NEVER,
            connect: Probability::NEVER,
            recv: Probability::NEVER,
            send: Probability::NEVER,
            send_buffers: Probability::NEVER,
            descriptors: Probability::NEVER,
            interrupt: Probability::NEVER,
            read: Probability::NEVER,
            write: Probability::NEVER,
            fsync: Probability::NEVER,
            close: Probability::NEVER,
            buggify: false,
        }
    }

    fn all_mut(&mut self) -> [&mut Probability; 11] {
        [
            &mut self.accept,
            &mut self.connect,
            &mut self.recv,
            &mut self.send,
            &mut self.send_buffers,
            &mut self.descriptors,
            &mut self.interrupt,
            &mut self.read,
            &mut self.write,
            &mut self.fsync,
            &mut self.close,
        ]
    }
}

impl Default for FaultOptions {
    fn default() -> FaultOptions {
        FaultOptions {
            accept: Probability::ppm(1_000),
            connect: Probability::ppm(5_000),
            recv: Probability::ppm(200),
            send: Probability::ppm(200),
            send_buffers: Probability::ppm(200),
            descriptors: Probability::ppm(200),
            interrupt: Probability::ppm(1_000),
            read: Probability::ppm(500),
            write: Probability::ppm(500),
            fsync: Probability::ppm(1_000),
            close: Probability::ppm(1_000),
            buggify: true,
        }
    }
}
