//! A deterministic simulator that replaces the kernel under an [`IO`].
//!
//! A [`Simulator`] is a world with a seed and a virtual clock. Each node
//! gets an `IO` of the very type production code uses, so the same
//! callback code runs on io_uring in production and here in tests, where
//! the network and the disk are simulated, with faults, and one seed always
//! replays the same run.
//!
//! - **Time** is virtual. [`IO::now_ns`] reads the node's monotonic clock
//!   and [`IO::realtime_ns`] its wall clock: each node has its own, with a
//!   seeded drift, a monotonic clock that starts over at each boot, and a
//!   wall clock that steps backward and forward ([`ClockOptions`]).
//!   `run_for_ns` and `run` jump over idle gaps, so a simulated minute
//!   takes milliseconds. Callbacks can cost CPU time ([`CpuOptions`]).
//! - **Network**: TCP as Linux has it, on virtual addresses (node `i` is
//!   `10.0.0.(i+1)`; loopback is the node itself): a handshake with SYN
//!   retransmission and a listen backlog, byte streams with latency
//!   `max(min, Exp(mean))`, a rare long tail and a bandwidth per link,
//!   short sends when the peer's buffer is full, receives split at random
//!   points, FIN and RST behind the data (a reset never reads as end of
//!   file, and received data stays readable), half-open connections after
//!   a crash, symmetric and asymmetric partitions, and clogs.
//! - **Disk**: per node, a tree of directories and files (paths resolve
//!   with Linux's errnos), each file made of blocks that writes allocate
//!   (a sparse file's holes take no space), with ext4's `O_DIRECT` rules and
//!   largest file (`EFBIG`). A write is durable only after an fsync
//!   submitted after it completed (or at once with `O_DSYNC`). On a crash
//!   each write not yet durable is lost, torn at sector granularity, or kept
//!   as a prefix. Latent sector errors, optional silent corruption and
//!   misdirected writes, and a capacity limit (`ENOSPC`).
//! - **Faults**: errors injected from each operation's documented errno
//!   set (`EINTR` at the syscall boundary, `EMFILE`, `ENOMEM` among them);
//!   [`Simulator::crash`], restart (a new `IO` on the same node),
//!   [`Simulator::pause`], partitions, clogs; the application's own fault
//!   points ([`IO::sim_coin`]); [`Simulator::liveness`] turns every fault
//!   off; [`SimOptions::swarm`] draws the knobs from a seed.
//! - **Trace hash**: every completion (node, operation, fd, offset, length,
//!   result, time) is folded into [`Simulator::trace_hash`]. Same seed,
//!   same hash.
//!
//! Driving one `IO` alone, `io.run(&mut ctx)` and `io.run_for_ns` move the
//! world's time as they wait. With several nodes, tick each node's `IO`,
//! then [`Simulator::advance`] the world to its next event:
//!
//! ```
//! use ringio::sim::{SimOptions, Simulator};
//! use ringio::IO;
//!
//! let mut sim = Simulator::new(42, SimOptions::default().without_faults());
//! let server_node = sim.add_node("server");
//! let client_node = sim.add_node("client");
//! let address = sim.address(server_node, 7000);
//!
//! let mut server: IO<Vec<u8>> = sim.io(server_node)?;
//! let mut client: IO<Vec<u8>> = sim.io(client_node)?;
//! let listener = server.listen(address, 16)?;
//! server.accept(listener, |io, _, socket| {
//!     let socket = socket.expect("accept");
//!     io.recv(socket, Vec::with_capacity(16), |_, got, result, buf| {
//!         result.expect("recv");
//!         got.extend_from_slice(&buf);
//!     });
//! });
//! let socket = client.open_socket(address)?;
//! client.connect(socket, address, move |io, _, result| {
//!     result.expect("connect");
//!     io.send(socket, b"hi".to_vec(), |_, _, result, _| { result.expect("send"); });
//! });
//!
//! let (mut got, mut sent) = (Vec::new(), Vec::new());
//! loop {
//!     server.tick(&mut got)?;
//!     client.tick(&mut sent)?;
//!     if !got.is_empty() {
//!         break;
//!     }
//!     assert!(sim.advance(), "the world went idle");
//! }
//! assert_eq!(got, b"hi");
//! println!("{}", sim.describe()); // the seed and every option, to replay
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! See docs/simulation.md for how to write an application that runs on
//! both, how to replay a seed, and every knob of the fault model.
//!
//! [`IO`]: crate::IO
//! [`IO::now_ns`]: crate::IO::now_ns
//! [`IO::realtime_ns`]: crate::IO::realtime_ns
//! [`IO::sim_coin`]: crate::IO::sim_coin

mod clock;
mod contents;
mod disk;
mod files;
mod iov;
mod namespace;
mod net;
mod options;
mod prng;
mod tcp;
mod udp;
mod unix;
pub(crate) mod world;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

pub use options::{
    ClockOptions, CpuOptions, DatagramOptions, DiskOptions, FaultOptions, NetworkOptions,
    SimOptions,
};
pub use prng::{Prng, Probability};

use crate::backend::sim::SimBackend;
use crate::backend::AnyBackend;
use crate::{sys, Config, IO};
use world::World;

/// A node of the simulated world: a machine with an address, a disk, and
/// at most one running process (one `IO`) at a time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId(usize);

impl NodeId {
    /// The node's index, in the order nodes were added.
    pub const fn index(self) -> usize {
        self.0
    }
}

/// A deterministic world: a seed, virtual time, nodes, a network and disks.
///
/// Cheap handles: `IO`s made by [`Simulator::io`] share the world with it,
/// and keep it alive if the `Simulator` is dropped first.
pub struct Simulator {
    world: Rc<RefCell<World>>,
    /// Randomness for the harness (when to crash, what to write), from its
    /// own sub-seed so that it never perturbs the world's streams.
    prng: Prng,
}

impl Simulator {
    /// Creates a world from `seed` and `options`. Logs the seed and every
    /// option (tracing, at `info`): print [`Simulator::describe`] at the
    /// start of a run so that a failure can be replayed exactly.
    pub fn new(seed: u64, options: SimOptions) -> Simulator {
        tracing::info!(target: "ringio", seed, ?options, "simulator created");
        let world = World::new(seed, options);
        Simulator {
            world: Rc::new(RefCell::new(world)),
            prng: Prng::new(prng::mix(seed ^ 0x0068_6172_6e65_7373)), // "harness"
        }
    }

    /// The seed this world was made from.
    pub fn seed(&self) -> u64 {
        self.world.borrow().seed
    }

    /// The options in force (changed by [`Simulator::liveness`]).
    pub fn options(&self) -> SimOptions {
        self.world.borrow().options.clone()
    }

    /// `seed=N options=...`: everything needed to replay this run.
    pub fn describe(&self) -> String {
        let world = self.world.borrow();
        format!("seed={} options={:?}", world.seed, world.options)
    }

    /// Adds a node named `name` (for logs), with an empty disk.
    pub fn add_node(&mut self, name: &str) -> NodeId {
        NodeId(self.world.borrow_mut().add_node(name))
    }

    /// The node's name.
    pub fn node_name(&self, node: NodeId) -> String {
        self.world.borrow().nodes[node.0].name.clone()
    }

    /// The address of `port` on `node`: what other nodes connect to.
    pub fn address(&self, node: NodeId, port: u16) -> SocketAddr {
        SocketAddr::new(self.world.borrow().nodes[node.0].ip, port)
    }

    /// Starts a process on `node`: an `IO` bound to this world, with the
    /// default [`Config`]. After a crash, this is the restart: a new `IO`
    /// over the same disk.
    ///
    /// # Errors
    ///
    /// `EBUSY` if the node already runs a process (drop its `IO` first, or
    /// crash the node).
    pub fn io<C>(&mut self, node: NodeId) -> io::Result<IO<C>> {
        self.io_with_config(node, Config::new())
    }

    /// As [`Simulator::io`], with `config`'s `entries`, `completions_initial`
    /// and `drop_drain_ns` (its backend choice does not apply).
    ///
    /// # Errors
    ///
    /// As [`Simulator::io`]; and `EINVAL` for zero `entries`, `ENOMEM` if
    /// the completion slots cannot be allocated.
    pub fn io_with_config<C>(&mut self, node: NodeId, config: Config) -> io::Result<IO<C>> {
        if config.entries == 0 {
            return Err(sys::errno(libc::EINVAL));
        }
        let process = self
            .world
            .borrow_mut()
            .start_process(node.0)
            .ok_or_else(|| sys::errno(libc::EBUSY))?;
        let backend = SimBackend::new(Rc::clone(&self.world), node.0, process, config.entries);
        let io = IO::from_backend(AnyBackend::Sim(backend), config);
        if io.is_err() {
            self.world.borrow_mut().exit_process(node.0, process);
        }
        io
    }

    /// The world's virtual clock, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.world.borrow().now_ns
    }

    /// Moves the world forward, for harnesses that tick several `IO`s:
    /// if no process has results waiting to be reaped or a timer due, time
    /// jumps to the next event (a delivery, a disk completion, a timer of
    /// any node) and everything due then runs. Returns `false` if nothing
    /// is left to happen at all: the world is idle.
    pub fn advance(&mut self) -> bool {
        let mut world = self.world.borrow_mut();
        world.run_due();
        let now_ns = world.now_ns;
        let mut next_ns = world.next_event_ns();
        for (index, node) in world.nodes.iter().enumerate() {
            if node.process.is_none() || node.is_paused() {
                continue;
            }
            if world.has_reapable(index) {
                return true;
            }
            if let Some(timer_ns) = node.next_timer_ns {
                next_ns = Some(next_ns.map_or(timer_ns, |next| next.min(timer_ns)));
            }
        }
        let Some(next_ns) = next_ns else {
            return false;
        };
        world.now_ns = now_ns.max(next_ns);
        world.run_due();
        true
    }

    /// Crashes `node`: its process is gone (its `IO` now fails every call
    /// with `ESHUTDOWN`; drop it, and its pending callbacks with it), its
    /// peers see resets (or, with `crash_half_open_probability`, nothing:
    /// their connections stay half-open), and its disk keeps what the crash
    /// model leaves of writes that were not durable. [`Simulator::io`]
    /// restarts it, with a fresh monotonic clock.
    pub fn crash(&mut self, node: NodeId) {
        tracing::debug!(target: "ringio", node = node.0, "sim: crash");
        self.world.borrow_mut().crash(node.0);
    }

    /// Whether `node` runs a process (an `IO` that has not crashed or been dropped).
    pub fn is_running(&self, node: NodeId) -> bool {
        self.world.borrow().nodes[node.0].process.is_some()
    }

    /// Pauses `node`'s process for `duration_ns` of virtual time, as a
    /// stop-the-world pause would: its clock stops and its completions wait.
    pub fn pause(&mut self, node: NodeId, duration_ns: u64) {
        self.world.borrow_mut().pause(node.0, duration_ns);
    }

    /// Partitions the network: traffic from `from` nodes to `to` nodes is
    /// held (and the reverse too, if `symmetric`). Held data waits for
    /// [`Simulator::heal`]; a connection that holds data (or whose data no
    /// ACK can answer) longer than `retransmit_timeout_ns` breaks with
    /// `ETIMEDOUT`; a connect across the partition retransmits its SYN and
    /// succeeds if the partition heals in time.
    pub fn partition(&mut self, from: &[NodeId], to: &[NodeId], symmetric: bool) {
        let mut world = self.world.borrow_mut();
        for &a in from {
            for &b in to {
                world.blocked.insert((a.0, b.0));
                if symmetric {
                    world.blocked.insert((b.0, a.0));
                }
            }
        }
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.world.borrow_mut().heal();
    }

    /// Clogs traffic from `from` to `to` for `duration_ns`: it is delayed
    /// until then, never dropped.
    pub fn clog(&mut self, from: NodeId, to: NodeId, duration_ns: u64) {
        let mut world = self.world.borrow_mut();
        let until_ns = world.now_ns.saturating_add(duration_ns);
        let entry = world.clogged.entry((from.0, to.0)).or_insert(0);
        *entry = (*entry).max(until_ns);
    }

    /// Removes the socket file a closed Unix listener left at `path` on
    /// `node`, as a harness's set-up would (`rm` of a stale socket), so
    /// that a listener can bind it again. Returns whether there was one.
    pub fn unlink_unix_socket(&mut self, node: NodeId, path: impl AsRef<Path>) -> bool {
        self.world.borrow_mut().unix_unlink(node.0, path.as_ref())
    }

    /// The liveness mode: turns every fault off from now on (see
    /// [`SimOptions::without_faults`]), heals partitions and clears clogs,
    /// so that a harness can check that the system makes progress.
    pub fn liveness(&mut self) {
        let mut world = self.world.borrow_mut();
        world.options = world.options.clone().without_faults();
        world.calm();
    }

    /// The running hash of every completion so far.
    pub fn trace_hash(&self) -> u64 {
        self.world.borrow().trace_hash()
    }

    /// What the world's tables hold now: (sockets open, socket slots,
    /// connections live, connection slots). Closed sockets and finished
    /// connections are freed and their slots reused, so under steady churn
    /// the slot counts stay flat; a test can check that nothing leaks.
    pub fn table_sizes(&self) -> (usize, usize, usize, usize) {
        let world = self.world.borrow();
        let socket_slots = world.sockets.len();
        let sockets = socket_slots - world.sockets_free.len();
        let (connections, connection_slots) = world.connections_live();
        (sockets, socket_slots, connections, connection_slots)
    }

    /// How many completions (callbacks) all nodes have run so far: the
    /// simulated operations.
    pub fn completions(&self) -> u64 {
        self.world.borrow().completions
    }

    /// Creates the directory `path` on `node`'s disk, and every missing one
    /// above it, as `main` would with `std::fs::create_dir_all` before
    /// starting the application: ringio has no `mkdir` operation yet, and a
    /// file can be created only in a directory that exists (`ENOENT`
    /// otherwise, as on Linux). The root, which relative and absolute paths
    /// both start from, always exists. The directories are durable at once.
    ///
    /// # Errors
    ///
    /// `ENOTDIR` if a component of `path` is a file, `ENAMETOOLONG`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringio::sim::{SimOptions, Simulator};
    /// use ringio::{FileOptions, IO};
    ///
    /// let mut sim = Simulator::new(1, SimOptions::default().without_faults());
    /// let node = sim.add_node("store");
    /// let mut io: IO<()> = sim.io(node)?;
    /// let options = FileOptions::new().create(true);
    /// let missing = io.open_file("data/log", options).unwrap_err();
    /// assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
    /// sim.create_dir_all(node, "data")?;
    /// io.open_file("data/log", options)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_dir_all(&mut self, node: NodeId, path: impl AsRef<Path>) -> io::Result<()> {
        self.world
            .borrow_mut()
            .create_dir_all(node.0, path.as_ref())
            .map_err(sys::errno)
    }

    /// Sectors of the file at `path` on `node` that the disk damaged
    /// (latent error, corruption, misdirected write) and that have not been
    /// rewritten since: what a checker may forgive an application for losing.
    pub fn damaged_sectors(&self, node: NodeId, path: impl AsRef<Path>) -> BTreeSet<u64> {
        self.world.borrow().nodes[node.0]
            .disk
            .damaged_sectors(path.as_ref())
    }

    /// The harness's own random stream, derived from the seed: use it for
    /// every random choice a test makes, so that the seed replays those too.
    pub fn prng(&mut self) -> &mut Prng {
        &mut self.prng
    }
}

impl<C> IO<C> {
    /// A BUGGIFY point (FoundationDB's name for it): asks the simulator
    /// whether to take a rare path now, such as a slow retry, a smaller
    /// buffer, or an early flush, so that tests reach code that production
    /// seldom runs. Under the simulator it is `true` with `probability`,
    /// drawn from the seed (so it replays), unless
    /// [`FaultOptions::buggify`] is off (it is off without faults and in
    /// the liveness mode). On a real backend it is always `false`, and
    /// costs a branch.
    ///
    /// ```
    /// use ringio::sim::Probability;
    /// let io: ringio::IO<()> = ringio::IO::new()?;
    /// let batch = if io.sim_coin(Probability::percent(10)) { 1 } else { 64 };
    /// assert_eq!(batch, 64); // never on a kernel backend
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// Backends: sim (io_uring and epoll: always `false`).
    pub fn sim_coin(&self, probability: Probability) -> bool {
        self.sim().is_some_and(|sim| {
            sim.with_world(|world, _| Ok(world.coin(probability)))
                .unwrap_or(false)
        })
    }
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let world = self.world.borrow();
        f.debug_struct("Simulator")
            .field("seed", &world.seed)
            .field("now_ns", &world.now_ns)
            .field("nodes", &world.nodes.len())
            .field("trace_hash", &format_args!("{:#018x}", world.trace_hash()))
            .finish()
    }
}
