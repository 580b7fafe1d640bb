//! The simulated world: virtual time, the event queue, nodes and their
//! processes, and the dispatch of operations to the network and the disk.
//!
//! Events are totally ordered by (virtual time, sequence number), and every
//! collection whose order can matter is a `Vec`, `VecDeque` or `BTreeMap`,
//! so that one seed always replays the same world.
#![allow(unsafe_code)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};

use super::clock::{NodeClock, EPOCH_NS};
use super::disk::{Disk, FileId};
use super::options::SimOptions;
use super::prng::{mix, split_mix, Prng};
use super::tcp::ConnId;
use crate::backend::RawCompletion;
use crate::completion::Operation;
use crate::sys::Fd;

/// The first fd number a process gets, as after stdin, stdout and stderr.
const FD_FIRST: Fd = 3;

/// An entry in a process's fd table.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FdEntry {
    Socket(usize),
    /// A directory, opened to fsync it.
    Directory(super::namespace::DirId),
    File {
        file: FileId,
        read: bool,
        write: bool,
        direct: bool,
        dsync: bool,
    },
}

/// An operation waiting in the world for something to happen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parked {
    pub(crate) user_data: u64,
    pub(crate) operation: Operation,
}

pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) ip: IpAddr,
    /// The machine is up: false from a crash until a process starts again.
    pub(crate) up: bool,
    /// The live process (the `IO`), if any.
    pub(crate) process: Option<u64>,
    processes_started: u64,
    pub(crate) fds: Vec<Option<FdEntry>>,
    /// Completions waiting for the process to reap them.
    pub(crate) ready: VecDeque<RawCompletion>,
    pub(crate) paused_until_ns: Option<u64>,
    pub(crate) paused_at_ns: u64,
    /// The node's own clocks.
    pub(crate) clock: NodeClock,
    /// Until when (world time) the process is busy running the callbacks
    /// it ran so far (`CpuOptions`): its clock reads at least this, and
    /// its next results wait until then.
    pub(crate) busy_until_ns: u64,
    /// The earliest deadline among the process's timers, as it last said.
    pub(crate) next_timer_ns: Option<u64>,
    pub(crate) next_port: u16,
    /// Ports in use (listening, or a connecting socket's), with how many
    /// sockets hold each.
    pub(crate) ports: BTreeMap<u16, u32>,
    /// Listening sockets, by port.
    pub(crate) listeners: BTreeMap<u16, Vec<usize>>,
    /// Unix-domain stream listeners, by name (`unix.rs`).
    pub(crate) unix_listeners: BTreeMap<crate::addr::UnixAddr, usize>,
    /// Paths whose listener closed: socket files left behind.
    pub(crate) unix_stale: BTreeSet<crate::addr::UnixAddr>,
    /// UDP sockets, by port (UDP's own port space).
    pub(crate) udp_ports: BTreeMap<u16, usize>,
    pub(crate) next_udp_port: u16,
    /// When each outgoing link (by target node) is free to send again.
    pub(crate) link_free_ns: Vec<u64>,
    /// Whether the last crash left the node's connections half-open.
    pub(crate) crash_half_open: bool,
    pub(crate) disk: Disk,
}

impl Node {
    pub(crate) fn is_paused(&self) -> bool {
        self.paused_until_ns.is_some()
    }

    pub(crate) fn fd_entry(&self, fd: Fd) -> Option<FdEntry> {
        let index = usize::try_from(fd.checked_sub(FD_FIRST)?).ok()?;
        *self.fds.get(index)?
    }

    /// The lowest free fd, as POSIX hands them out.
    pub(crate) fn alloc_fd(&mut self, entry: FdEntry) -> Fd {
        let index = match self.fds.iter().position(Option::is_none) {
            Some(index) => index,
            None => {
                self.fds.push(None);
                self.fds.len() - 1
            }
        };
        self.fds[index] = Some(entry);
        FD_FIRST + index as Fd
    }

    /// Whether a socket of this node may bind `ip`: the wildcard, a
    /// loopback address, or the node's own.
    pub(crate) fn owns(&self, ip: IpAddr) -> bool {
        ip.is_unspecified() || ip.is_loopback() || ip == self.ip
    }

    pub(crate) fn free_fd(&mut self, fd: Fd) -> Option<FdEntry> {
        let index = usize::try_from(fd.checked_sub(FD_FIRST)?).ok()?;
        self.fds.get_mut(index)?.take()
    }
}

/// Something that happens at a virtual time.
#[derive(Debug)]
pub(crate) enum EventKind {
    /// A result computed earlier reaches the process.
    Complete {
        node: usize,
        process: u64,
        user_data: u64,
        result: i32,
    },
    WriteDone {
        node: usize,
        process: u64,
        user_data: u64,
        write: u64,
        epoch: u64,
    },
    FsyncDone {
        node: usize,
        process: u64,
        user_data: u64,
        file: FileId,
        watermark: u64,
        failed: bool,
        epoch: u64,
    },
    /// An fsync of a directory completes.
    DirectoryFsyncDone {
        node: usize,
        process: u64,
        user_data: u64,
        directory: super::namespace::DirId,
        watermark: u64,
        failed: bool,
        epoch: u64,
    },
    /// A node's wall clock steps.
    WallJump {
        node: usize,
    },
    /// A node's process is done with the CPU time its callbacks cost.
    CpuIdle {
        node: usize,
    },
    /// Segments of one direction of a connection arrive.
    Arrive {
        connection: ConnId,
        direction: usize,
    },
    /// A client's SYN retransmission is due (SYN number `attempt`).
    SynTimer {
        connection: ConnId,
        attempt: u32,
    },
    SynArrive {
        connection: ConnId,
    },
    SynAckArrive {
        connection: ConnId,
    },
    AckArrive {
        connection: ConnId,
        attempt: u32,
    },
    /// The handshake fails at the client (a RST answered its SYN, or the
    /// retries ran out).
    ConnectFail {
        connection: ConnId,
        errno: i32,
    },
    RetransmitTimeout {
        connection: ConnId,
        direction: usize,
    },
    /// Data sent into a crashed machine is retransmitted.
    Probe {
        connection: ConnId,
        direction: usize,
        attempt: u32,
    },
    Resume {
        node: usize,
    },
    /// A datagram (in `World::packets`) reaches its node.
    DatagramArrive {
        packet: usize,
    },
    Weather,
    Heal,
}

pub(crate) struct Event {
    time_ns: u64,
    sequence: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Event) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest first.
    fn cmp(&self, other: &Event) -> Ordering {
        (other.time_ns, other.sequence).cmp(&(self.time_ns, self.sequence))
    }
}

/// The random streams, one per subsystem, each from its own sub-seed of
/// the root seed: a change in how often one subsystem draws does not
/// reshuffle the others.
pub(crate) struct Streams {
    pub(crate) network: Prng,
    pub(crate) disk: Prng,
    pub(crate) faults: Prng,
    pub(crate) weather: Prng,
    pub(crate) crash: Prng,
    /// What happens to processes: half-open crashes, CPU costs.
    pub(crate) process: Prng,
    /// Each node's clock: offset, drift, wall-clock steps.
    pub(crate) clocks: Prng,
    /// `IO::sim_coin`, the application's own fault points.
    pub(crate) buggify: Prng,
    /// The packet network's losses and duplicates.
    pub(crate) datagrams: Prng,
}

impl Streams {
    fn new(seed: u64) -> Streams {
        let mut splitter = seed;
        Streams {
            network: Prng::new(split_mix(&mut splitter)),
            disk: Prng::new(split_mix(&mut splitter)),
            faults: Prng::new(split_mix(&mut splitter)),
            weather: Prng::new(split_mix(&mut splitter)),
            crash: Prng::new(split_mix(&mut splitter)),
            // Added later, after the others: their sub-seeds stay as they were.
            process: Prng::new(split_mix(&mut splitter)),
            clocks: Prng::new(split_mix(&mut splitter)),
            buggify: Prng::new(split_mix(&mut splitter)),
            datagrams: Prng::new(split_mix(&mut splitter)),
        }
    }
}

pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) options: SimOptions,
    pub(crate) now_ns: u64,
    events: BinaryHeap<Event>,
    next_sequence: u64,
    pub(crate) nodes: Vec<Node>,
    pub(crate) sockets: Vec<super::net::Socket>,
    /// Closed sockets' slots, for reuse.
    pub(crate) sockets_free: Vec<usize>,
    pub(crate) connections: Vec<super::tcp::Connection>,
    /// Freed connections' slots, for reuse.
    pub(crate) connections_free: Vec<u32>,
    /// (from node, to node) pairs a partition blocks.
    pub(crate) blocked: BTreeSet<(usize, usize)>,
    /// (from node, to node) pairs clogged until a time.
    pub(crate) clogged: BTreeMap<(usize, usize), u64>,
    pub(crate) streams: Streams,
    /// Sockets whose waiters should be retried.
    pub(crate) to_wake: Vec<(usize, super::net::Wake)>,
    /// The batch of `to_wake` being retried (kept for its capacity).
    pub(crate) wake_batch: Vec<(usize, super::net::Wake)>,
    /// Datagrams on the wire, by the index their arrival event names.
    pub(crate) packets: Vec<Option<super::udp::Packet>>,
    pub(crate) packets_free: Vec<usize>,
    /// Byte buffers of delivered or dropped datagrams, for reuse.
    pub(crate) datagram_spares: Vec<Vec<u8>>,
    trace_hash: u64,
    pub(crate) completions: u64,
    weather_scheduled: bool,
}

impl World {
    pub(crate) fn new(seed: u64, options: SimOptions) -> World {
        World {
            seed,
            options,
            now_ns: EPOCH_NS,
            events: BinaryHeap::new(),
            next_sequence: 0,
            nodes: Vec::new(),
            sockets: Vec::new(),
            sockets_free: Vec::new(),
            connections: Vec::new(),
            connections_free: Vec::new(),
            blocked: BTreeSet::new(),
            clogged: BTreeMap::new(),
            streams: Streams::new(seed),
            to_wake: Vec::new(),
            wake_batch: Vec::new(),
            packets: Vec::new(),
            packets_free: Vec::new(),
            datagram_spares: Vec::new(),
            trace_hash: mix(seed),
            completions: 0,
            weather_scheduled: false,
        }
    }

    pub(crate) fn add_node(&mut self, name: &str) -> usize {
        let index = self.nodes.len();
        let ip = Ipv4Addr::new(10, 0, (index >> 8) as u8, (index & 0xff) as u8 + 1);
        self.nodes.push(Node {
            name: name.to_owned(),
            ip: IpAddr::V4(ip),
            up: true,
            process: None,
            processes_started: 0,
            fds: Vec::new(),
            ready: VecDeque::new(),
            paused_until_ns: None,
            paused_at_ns: 0,
            clock: NodeClock::new(&self.options.clocks, &mut self.streams.clocks, self.now_ns),
            busy_until_ns: 0,
            next_timer_ns: None,
            next_port: 32768,
            ports: BTreeMap::new(),
            listeners: BTreeMap::new(),
            unix_listeners: BTreeMap::new(),
            unix_stale: BTreeSet::new(),
            udp_ports: BTreeMap::new(),
            next_udp_port: 32768,
            link_free_ns: Vec::new(),
            crash_half_open: false,
            disk: Disk::new(),
        });
        if self.nodes.len() == 2 && !self.weather_scheduled {
            self.weather_scheduled = true;
            self.schedule_weather();
        }
        self.schedule_wall_jump(index);
        index
    }

    /// Starts a new process on `node`: the world's side of a new `IO`.
    /// After a crash this is a boot too: the monotonic clock starts over.
    pub(crate) fn start_process(&mut self, node: usize) -> Option<u64> {
        let now_ns = self.now_ns;
        let node = &mut self.nodes[node];
        if node.process.is_some() {
            return None;
        }
        if !node.up {
            node.clock
                .boot(&self.options.clocks, &mut self.streams.clocks, now_ns);
        }
        node.busy_until_ns = 0;
        node.processes_started += 1;
        let process = node.processes_started;
        node.process = Some(process);
        node.up = true;
        node.next_timer_ns = None;
        Some(process)
    }

    pub(crate) fn is_live(&self, node: usize, process: u64) -> bool {
        self.nodes[node].process == Some(process)
    }

    /// The world time a node's process lives at: frozen while it is
    /// paused, ahead of the world while it is busy with CPU time.
    fn node_world_ns(&self, node: usize) -> u64 {
        let node = &self.nodes[node];
        if node.is_paused() {
            node.paused_at_ns
        } else {
            self.now_ns.max(node.busy_until_ns)
        }
    }

    /// The monotonic clock a node's process sees (`IO::now_ns`).
    pub(crate) fn node_now_ns(&self, node: usize) -> u64 {
        self.nodes[node]
            .clock
            .monotonic_ns(self.node_world_ns(node))
    }

    /// The wall clock a node's process sees (`IO::realtime_ns`).
    pub(crate) fn node_realtime_ns(&self, node: usize) -> u64 {
        self.nodes[node].clock.wall_ns(self.node_world_ns(node))
    }

    /// The world time at which `node`'s monotonic clock reaches `deadline_ns`.
    pub(crate) fn world_deadline_ns(&self, node: usize, deadline_ns: u64) -> u64 {
        self.nodes[node].clock.world_ns_at(deadline_ns)
    }

    /// The world time a wait of `timeout_ns` on `node`'s clock ends: at
    /// least the world's now plus the timeout, stretched by the node's
    /// drift. While the node is paused its clock stands still, so the wait
    /// is counted on the world's clock (the pause ends by its own event).
    pub(crate) fn wait_deadline_ns(&self, node: usize, timeout_ns: u64) -> u64 {
        if self.nodes[node].is_paused() {
            return self.now_ns.saturating_add(timeout_ns);
        }
        let node_deadline_ns = self.node_now_ns(node).saturating_add(timeout_ns);
        self.world_deadline_ns(node, node_deadline_ns)
            .max(self.now_ns)
    }

    /// A callback of `node`'s process ran: with `CpuOptions` on, it cost
    /// CPU time, which moves the node's clock and holds its next results.
    pub(crate) fn charge_callback(&mut self, node: usize, operation: &Operation, result: i32) {
        let cpu = &self.options.cpu;
        if !cpu.is_on() {
            return;
        }
        let moved = match operation {
            Operation::Recv { .. }
            | Operation::Send { .. }
            | Operation::Read { .. }
            | Operation::Write { .. }
            | Operation::Readv { .. }
            | Operation::Writev { .. }
            | Operation::SendMsg { .. }
            | Operation::RecvMsg { .. } => result.max(0) as u64,
            _ => 0,
        };
        let mut cost_ns = moved * cpu.per_kib_ns / 1024;
        if cpu.callback_mean_ns > 0 {
            cost_ns += self.streams.process.exponential(cpu.callback_mean_ns);
        }
        let now_ns = self.now_ns;
        let node_state = &mut self.nodes[node];
        let was_idle = node_state.busy_until_ns <= now_ns;
        node_state.busy_until_ns = node_state.busy_until_ns.max(now_ns) + cost_ns;
        assert!(node_state.busy_until_ns >= now_ns);
        if was_idle && node_state.busy_until_ns > now_ns {
            let until_ns = node_state.busy_until_ns;
            self.schedule(until_ns, EventKind::CpuIdle { node });
        }
    }

    fn on_cpu_idle(&mut self, node: usize) {
        let until_ns = self.nodes[node].busy_until_ns;
        if until_ns > self.now_ns {
            self.schedule(until_ns, EventKind::CpuIdle { node });
        }
    }

    fn schedule_wall_jump(&mut self, node: usize) {
        let mean_ns = self.options.clocks.wall_jump_interval_mean_ns;
        if mean_ns == 0 {
            return;
        }
        let delay_ns = self.streams.clocks.exponential(mean_ns).max(1);
        self.schedule(self.now_ns + delay_ns, EventKind::WallJump { node });
    }

    fn on_wall_jump(&mut self, node: usize) {
        if self.options.clocks.wall_jump_interval_mean_ns == 0 {
            return; // Turned off since (the liveness mode).
        }
        let max_ns = self.options.clocks.wall_jump_max_ns;
        let step_ns = self.nodes[node]
            .clock
            .step_wall(max_ns, &mut self.streams.clocks);
        tracing::debug!(target: "ringio", node, step_ns = step_ns as i64, "sim: wall clock step");
        self.schedule_wall_jump(node);
    }

    pub(crate) fn schedule(&mut self, time_ns: u64, kind: EventKind) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.events.push(Event {
            time_ns,
            sequence,
            kind,
        });
    }

    /// Delivers a result to a live process now.
    pub(crate) fn complete(&mut self, node: usize, process: u64, user_data: u64, result: i32) {
        if self.is_live(node, process) {
            self.nodes[node].ready.push_back(RawCompletion {
                user_data,
                result,
                flags: 0,
            });
        }
    }

    /// Delivers a result to a process after `delay_ns`.
    pub(crate) fn complete_after(
        &mut self,
        delay_ns: u64,
        node: usize,
        process: u64,
        user_data: u64,
        result: i32,
    ) {
        let kind = EventKind::Complete {
            node,
            process,
            user_data,
            result,
        };
        self.schedule(self.now_ns + delay_ns, kind);
    }

    /// Starts one operation a process submitted.
    pub(crate) fn start(
        &mut self,
        node: usize,
        process: u64,
        user_data: u64,
        operation: &Operation,
    ) {
        if !self.is_live(node, process) {
            return;
        }
        match *operation {
            Operation::Nop => self.complete(node, process, user_data, 0),
            Operation::Cancel { target } => {
                let result = self.cancel(node, process, target.user_data());
                self.complete(node, process, user_data, result);
            }
            Operation::Close { fd, .. } => {
                let mut result = self.close_fd(node, process, fd);
                // As on Linux, an interrupted close has closed the fd all
                // the same: a loop that retried it would close a reused number.
                if result == 0 && self.streams.faults.chance(self.options.faults.close) {
                    result = -libc::EINTR;
                }
                self.complete(node, process, user_data, result);
            }
            Operation::Timeout { .. } => self.complete(node, process, user_data, -libc::EINVAL),
            // A signal at the syscall boundary, before anything happened:
            // the loop must resubmit it.
            _ if self.streams.faults.chance(self.options.faults.interrupt) => {
                self.complete(node, process, user_data, -libc::EINTR)
            }
            _ => self.start_io(node, process, user_data, operation),
        }
        self.wake_sockets();
    }

    /// An operation on an fd: a socket's go to the network, a file's to the disk.
    fn start_io(&mut self, node: usize, process: u64, user_data: u64, operation: &Operation) {
        let Some(fd) = operation_fd(operation) else {
            return self.start_path_operation(node, process, user_data, operation);
        };
        if let Operation::Statx { .. } | Operation::Fallocate { .. } | Operation::Ftruncate { .. } =
            operation
        {
            let entry = self.nodes[node].fd_entry(fd);
            return self.start_metadata_operation(node, process, user_data, operation, entry);
        }
        match self.nodes[node].fd_entry(fd) {
            None => self.complete(node, process, user_data, -libc::EBADF),
            Some(FdEntry::Socket(socket)) => {
                let parked = Parked {
                    user_data,
                    operation: *operation,
                };
                self.start_socket_operation(socket, parked);
            }
            Some(FdEntry::Directory(directory)) => {
                self.start_directory_operation(node, process, user_data, operation, directory)
            }
            Some(FdEntry::File {
                file,
                read,
                write,
                direct,
                dsync,
            }) => {
                let access = super::files::Access {
                    read,
                    write,
                    direct,
                    dsync,
                };
                self.start_file_operation(node, process, user_data, operation, file, access);
            }
        }
    }

    /// `close(2)`: frees the fd; a socket's waiters get `ECANCELED`.
    pub(crate) fn close_fd(&mut self, node: usize, process: u64, fd: Fd) -> i32 {
        let Some(entry) = self.nodes[node].free_fd(fd) else {
            return -libc::EBADF;
        };
        match entry {
            FdEntry::Socket(socket) => {
                for parked in self.close_socket(socket, super::net::CloseHow::Orderly) {
                    self.complete(node, process, parked.user_data, -libc::ECANCELED);
                }
            }
            FdEntry::File { file, .. } => self.nodes[node].disk.file_closed(file),
            FdEntry::Directory(_) => {}
        }
        0
    }

    /// Cancels a parked operation of the process. `ENOENT` if it already
    /// completed (its result waits to be reaped), `EALREADY` if it is
    /// running (a disk operation or a handshake under way).
    fn cancel(&mut self, node: usize, process: u64, target: u64) -> i32 {
        if self.unpark(node, target) {
            self.complete(node, process, target, -libc::ECANCELED);
            return 0;
        }
        if self.nodes[node]
            .ready
            .iter()
            .any(|raw| raw.user_data == target)
        {
            -libc::ENOENT
        } else {
            -libc::EALREADY
        }
    }

    /// Removes the parked operation `user_data` of `node`'s process, if
    /// there is one.
    fn unpark(&mut self, node: usize, user_data: u64) -> bool {
        let sockets: Vec<usize> = self.nodes[node]
            .fds
            .iter()
            .filter_map(|entry| match entry {
                Some(FdEntry::Socket(socket)) => Some(*socket),
                _ => None,
            })
            .collect();
        for socket in sockets {
            let waiters = &mut self.sockets[socket].waiters;
            if let Some(index) = waiters.iter().position(|p| p.user_data == user_data) {
                // A cancelled connect leaves its handshake going, as the
                // kernel does: a new connect gets EALREADY meanwhile.
                waiters.remove(index).expect("found above");
                return true;
            }
        }
        false
    }

    /// The process behind an `IO` is gone (the `IO` was dropped): its fds
    /// close as at exit, and nothing of it is touched again.
    pub(crate) fn exit_process(&mut self, node: usize, process: u64) {
        if !self.is_live(node, process) {
            return;
        }
        self.release_process(node, super::net::CloseHow::Orderly);
    }

    /// The machine crashes: the process is gone, its peers see resets, and
    /// the disk keeps only what a crash leaves of unsynced writes.
    pub(crate) fn crash(&mut self, node: usize) {
        let probability = self.options.network.crash_half_open_probability;
        let half_open = self.streams.process.chance(probability);
        self.nodes[node].crash_half_open = half_open;
        self.release_process(node, super::net::CloseHow::Crash { half_open });
        let options = self.options.disk.clone();
        let node_state = &mut self.nodes[node];
        node_state.disk.crash(&options, &mut self.streams.crash);
        node_state.up = false;
        node_state.paused_until_ns = None;
    }

    fn release_process(&mut self, node: usize, how: super::net::CloseHow) {
        let fds = std::mem::take(&mut self.nodes[node].fds);
        for entry in fds.into_iter().flatten() {
            match entry {
                // The waiters' memory belongs to the dying IO: forget them.
                FdEntry::Socket(socket) => drop(self.close_socket(socket, how)),
                FdEntry::File { file, .. } => self.nodes[node].disk.file_closed(file),
                FdEntry::Directory(_) => {}
            }
        }
        let node = &mut self.nodes[node];
        node.process = None;
        node.ready.clear();
        node.next_timer_ns = None;
        self.wake_sockets();
    }

    /// Pauses a node's process for `duration_ns`: its clock stops, and its
    /// completions wait, until it resumes.
    pub(crate) fn pause(&mut self, node: usize, duration_ns: u64) {
        let now_ns = self.now_ns;
        let until_ns = now_ns.saturating_add(duration_ns);
        let node_state = &mut self.nodes[node];
        if node_state.paused_until_ns.is_none() {
            node_state.paused_at_ns = now_ns;
        }
        node_state.paused_until_ns = Some(until_ns.max(node_state.paused_until_ns.unwrap_or(0)));
        self.schedule(until_ns, EventKind::Resume { node });
    }

    /// Runs every event due at the current time.
    pub(crate) fn run_due(&mut self) {
        while self
            .events
            .peek()
            .is_some_and(|event| event.time_ns <= self.now_ns)
        {
            let event = self.events.pop().expect("peeked");
            self.handle(event.kind);
            self.wake_sockets();
        }
    }

    /// The time of the next event, if any.
    pub(crate) fn next_event_ns(&self) -> Option<u64> {
        self.events.peek().map(|event| event.time_ns)
    }

    /// Moves time forward to the next event (at most to `deadline_ns`) and
    /// runs what is due, until `node` has something to reap. Returns
    /// `false` if nothing at all is left to happen before the deadline.
    pub(crate) fn run_until(&mut self, node: usize, deadline_ns: u64) -> bool {
        loop {
            self.run_due();
            if self.has_reapable(node) {
                return true;
            }
            match self.next_event_ns() {
                Some(time_ns) if time_ns <= deadline_ns => self.now_ns = time_ns,
                next => {
                    if deadline_ns != u64::MAX {
                        self.now_ns = self.now_ns.max(deadline_ns);
                    }
                    return next.is_some() || deadline_ns != u64::MAX;
                }
            }
        }
    }

    pub(crate) fn has_reapable(&self, node: usize) -> bool {
        let node = &self.nodes[node];
        !node.is_paused() && !node.ready.is_empty() && node.busy_until_ns <= self.now_ns
    }

    fn handle(&mut self, kind: EventKind) {
        match kind {
            EventKind::Complete {
                node,
                process,
                user_data,
                result,
            } => self.complete(node, process, user_data, result),
            EventKind::WriteDone {
                node,
                process,
                user_data,
                write,
                epoch,
            } => self.on_write_done(node, process, user_data, write, epoch),
            EventKind::FsyncDone {
                node,
                process,
                user_data,
                file,
                watermark,
                failed,
                epoch,
            } => self.on_fsync_done(node, process, user_data, file, watermark, failed, epoch),
            EventKind::DirectoryFsyncDone {
                node,
                process,
                user_data,
                directory,
                watermark,
                failed,
                epoch,
            } => self.on_directory_fsync_done(
                node, process, user_data, directory, watermark, failed, epoch,
            ),
            EventKind::Arrive {
                connection,
                direction,
            } => self.on_arrive(connection, direction),
            EventKind::SynTimer {
                connection,
                attempt,
            } => self.on_syn_timer(connection, attempt),
            EventKind::SynArrive { connection } => self.on_syn_arrive(connection),
            EventKind::SynAckArrive { connection } => self.on_syn_ack_arrive(connection),
            EventKind::AckArrive {
                connection,
                attempt,
            } => self.on_ack_arrive(connection, attempt),
            EventKind::ConnectFail { connection, errno } => self.on_connect_fail(connection, errno),
            EventKind::RetransmitTimeout {
                connection,
                direction,
            } => self.on_retransmit_timeout(connection, direction),
            EventKind::Probe {
                connection,
                direction,
                attempt,
            } => self.on_probe(connection, direction, attempt),
            EventKind::Resume { node } => {
                let node = &mut self.nodes[node];
                if node
                    .paused_until_ns
                    .is_some_and(|until| until <= self.now_ns)
                {
                    node.paused_until_ns = None;
                }
            }
            EventKind::WallJump { node } => self.on_wall_jump(node),
            EventKind::CpuIdle { node } => self.on_cpu_idle(node),
            EventKind::DatagramArrive { packet } => self.on_datagram_arrive(packet),
            EventKind::Weather => self.on_weather(),
            EventKind::Heal => self.heal(),
        }
    }

    /// A BUGGIFY point: `true` with `probability` when the application's
    /// own fault points are on (`FaultOptions::buggify`).
    pub(crate) fn coin(&mut self, probability: super::Probability) -> bool {
        self.options.faults.buggify && self.streams.buggify.chance(probability)
    }

    /// Folds one completion into the trace hash.
    pub(crate) fn trace(&mut self, node: usize, operation: &Operation, result: i32) {
        let (code, fd, offset, len) = describe(operation);
        let fields = [
            node as u64,
            code,
            fd as u64,
            offset,
            u64::from(len),
            result as u64,
            self.now_ns,
        ];
        // A multiply-rotate fold per field (cheap), then one strong mix
        // per completion, so that no field can cancel another out.
        let folded = fields.iter().fold(self.trace_hash, |hash, &field| {
            (hash.rotate_left(5) ^ field).wrapping_mul(0x517c_c1b7_2722_0a95)
        });
        self.trace_hash = mix(folded);
        self.completions += 1;
    }

    pub(crate) fn trace_hash(&self) -> u64 {
        self.trace_hash
    }

    /// The first `len` bytes of a process's buffer, to send or write.
    ///
    /// # Safety
    ///
    /// `buf` must be the buffer of an operation of a live process that is
    /// in flight (parked or being started): the loop core keeps such a
    /// buffer allocated and unmoved until the completion is reaped, and the
    /// world forgets a process's operations before its `IO` is freed. Its
    /// first `len` bytes must be initialized, as they are for a send or a
    /// write (`len` is at most the buffer's `IoBuf::bytes_init`).
    pub(crate) unsafe fn user_bytes<'a>(buf: *const u8, len: usize) -> &'a [u8] {
        // SAFETY: as the function's contract says.
        unsafe { std::slice::from_raw_parts(buf, len) }
    }

    /// Copies `source` into the start of a process's buffer `buf`, of which
    /// an operation may fill `len` bytes.
    ///
    /// The buffer of a recv or a read may be uninitialized (a `Vec`'s spare
    /// capacity), so this writes through the raw pointer: a `&mut [u8]` over
    /// uninitialized bytes would be undefined behaviour, even if nothing read
    /// them before they were written.
    ///
    /// # Safety
    ///
    /// `buf` must be the buffer of an in-flight operation of a live process,
    /// as for [`World::user_bytes`], valid for writes of `len` bytes (a
    /// recv's or a read's `len` is at most `IoBufMut::bytes_total`), and no
    /// reference to it may be live.
    ///
    /// # Panics
    ///
    /// If `source` is longer than `len`.
    pub(crate) unsafe fn write_user_bytes(buf: *mut u8, len: usize, source: &[u8]) {
        assert!(source.len() <= len);
        // SAFETY: `buf` is valid for writes of `len >= source.len()` bytes
        // (the caller's contract, and the assertion above); `source` is the
        // world's own memory (page cache or socket bytes), so the two cannot
        // overlap.
        unsafe { std::ptr::copy_nonoverlapping(source.as_ptr(), buf, source.len()) };
    }
}

/// The fd an operation acts on.
pub(crate) fn operation_fd(operation: &Operation) -> Option<Fd> {
    match *operation {
        Operation::Accept { fd }
        | Operation::Connect { fd, .. }
        | Operation::Recv { fd, .. }
        | Operation::Send { fd, .. }
        | Operation::Read { fd, .. }
        | Operation::Write { fd, .. }
        | Operation::Fsync { fd, .. }
        | Operation::Close { fd, .. }
        | Operation::Poll { fd, .. } => Some(fd),
        Operation::AcceptMulti { fd }
        | Operation::Shutdown { fd, .. }
        | Operation::RecvMulti { fd, .. }
        | Operation::SendZc { fd, .. } => Some(fd),
        Operation::ReadFixed { fd, .. } | Operation::WriteFixed { fd, .. } => Some(fd),
        Operation::Readv { fd, .. }
        | Operation::Writev { fd, .. }
        | Operation::SendMsg { fd, .. }
        | Operation::RecvMsg { fd, .. } => Some(fd),
        Operation::Statx { fd, .. }
        | Operation::Fallocate { fd, .. }
        | Operation::Ftruncate { fd, .. } => Some(fd),
        Operation::Nop
        | Operation::Cancel { .. }
        | Operation::Timeout { .. }
        | Operation::Shot { .. }
        | Operation::OpenAt { .. }
        | Operation::RenameAt { .. }
        | Operation::UnlinkAt { .. }
        | Operation::MkDirAt { .. } => None,
    }
}

/// (operation code, fd, offset, length) for the trace hash.
fn describe(operation: &Operation) -> (u64, Fd, u64, u32) {
    match *operation {
        Operation::Nop => (1, 0, 0, 0),
        Operation::Accept { fd } => (2, fd, 0, 0),
        Operation::Connect { fd, .. } => (3, fd, 0, 0),
        Operation::Recv { fd, len, .. } => (4, fd, 0, len),
        Operation::Send { fd, len, .. } => (5, fd, 0, len),
        Operation::Read {
            fd, len, offset, ..
        } => (6, fd, offset, len),
        Operation::Write {
            fd, len, offset, ..
        } => (7, fd, offset, len),
        Operation::Fsync { fd, datasync } => (8, fd, u64::from(datasync), 0),
        Operation::Close { fd, .. } => (9, fd, 0, 0),
        Operation::Poll { fd, events } => (10, fd, 0, events),
        Operation::Cancel { target } => (11, 0, target.user_data(), 0),
        Operation::Timeout { deadline_ns } => (12, 0, deadline_ns, 0),
        Operation::AcceptMulti { fd } => (13, fd, 0, 0),
        Operation::RecvMulti { fd, pool } => (15, fd, u64::from(pool), 0),
        Operation::SendZc { fd, len, .. } => (16, fd, 0, len),
        Operation::Shutdown { fd, how } => (17, fd, 0, how as u32),
        Operation::ReadFixed {
            fd, len, offset, ..
        } => (40, fd, offset, len),
        Operation::WriteFixed {
            fd, len, offset, ..
        } => (41, fd, offset, len),
        Operation::Readv {
            fd, count, offset, ..
        } => (18, fd, offset, count),
        Operation::Writev {
            fd, count, offset, ..
        } => (19, fd, offset, count),
        Operation::SendMsg { fd, .. } => (20, fd, 0, 0),
        Operation::RecvMsg { fd, .. } => (21, fd, 0, 0),
        Operation::Shot { parent } => (14, 0, u64::from(parent), 0),
        Operation::OpenAt { flags, .. } => (22, 0, flags as u64, 0),
        Operation::Statx { fd, .. } => (23, fd, 0, 0),
        Operation::Fallocate {
            fd,
            mode,
            offset,
            len,
        } => (24, fd, offset, (len as u32) ^ (mode as u32)),
        Operation::Ftruncate { fd, len } => (25, fd, len, 0),
        Operation::RenameAt { flags, .. } => (26, 0, 0, flags),
        Operation::UnlinkAt { flags, .. } => (27, 0, 0, flags as u32),
        Operation::MkDirAt { .. } => (28, 0, 0, 0),
    }
}
