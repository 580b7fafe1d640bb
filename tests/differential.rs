//! The differential test: random sequences of TCP and timer operations run
//! on io_uring and on the simulator (faults off), with every observable
//! result compared after each step settles. It keeps the simulator honest:
//! a behaviour in which it differs from the kernel fails here, unless it
//! is one of the allowances below, each listed with its reason in
//! docs/simulation.md ("The differential test").
//!
//! ```text
//! cargo test --test differential                                   # 100 seeds, CI
//! RINGIO_DIFFERENTIAL_SEEDS=500 cargo test --release --test differential  # more
//! RINGIO_DIFFERENTIAL_SEED=1234 cargo test --test differential     # one seed, replayed
//! ```
//!
//! One `IO` per backend, everything on loopback. A step is one operation
//! (open and connect, accept, send, recv, positional read or write, poll,
//! close, cancel of an operation in flight or already finished, a short or
//! an endless timeout, getpeername), issued on both backends at once. Then
//! each backend runs until the step settles: the simulator for 50 ms of
//! virtual time, the kernel until it has as many results as the simulator
//! (at most 2 s), then 2 ms more for results the simulator lacks. The
//! results of the step (which operations finished, with what, and the bytes
//! received) must be equal.
//!
//! Not generated, so not compared: `shutdown` (ringio has no such
//! operation yet), a second connect on a socket still connecting, more than
//! one recv or send in flight per socket, and more unread data per direction
//! than both sides' buffers hold (so sends are never short: a short send is
//! legal, and the two backends' buffer sizes differ). The simulator runs
//! with split receives and the latency tail off, so a recv returns all that
//! has arrived, as on loopback.
//!
//! What the API leaves open is kept out of the sequences rather than
//! forgiven in the comparison, so that every result can be compared
//! exactly; each such allowance is listed, with its reason, in
//! docs/simulation.md ("The differential test"). No result that the
//! sequences do produce may differ.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use ringio::sim::{Prng, Probability, SimOptions, Simulator};
use ringio::{BackendKind, CompletionId, Config, Handle, PollEvents, IO};

/// Seeds per CI run; `RINGIO_DIFFERENTIAL_SEEDS` asks for more.
const SEEDS_CI: u64 = 100;
/// Steps per seed.
const STEPS: u32 = 120;
/// The most unread bytes the generator lets pile up in one direction:
/// below both the kernel's loopback buffers and the simulator's 64 KiB.
const UNREAD_MAX: u64 = 32 * 1024;
/// Virtual time the simulator runs per step.
const SIM_SETTLE_NS: u64 = 50_000_000;
/// How long the kernel may take to catch up with the simulator's results.
const KERNEL_SETTLE_NS: u64 = 2_000_000_000;
/// How long the kernel runs on, for results the simulator lacks.
const KERNEL_EXTRA_NS: u64 = 2_000_000;
const MS: u64 = 1_000_000;

/// What one operation came to, as both backends must agree on it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Done(Result<(), i32>),
    Count(Result<usize, i32>),
    Received(Result<Vec<u8>, i32>),
    Accepted(Result<(), i32>),
    Polled(Result<u32, i32>),
}

/// A backend's ctx: results in the order callbacks ran, and accepted handles.
#[derive(Default)]
struct Log {
    results: Vec<(u32, Outcome)>,
    accepted: Vec<(u32, Handle)>,
}

fn errno(error: &std::io::Error) -> i32 {
    error.raw_os_error().expect("an errno")
}

/// One backend: its `IO` and the names of its sockets and operations.
struct Side {
    io: IO<Log>,
    log: Log,
    /// Logical socket id to handle.
    sockets: BTreeMap<u32, Handle>,
    /// Logical operation id to its id in this `IO`.
    ops: BTreeMap<u32, CompletionId>,
    listen_address: SocketAddr,
    dead_address: SocketAddr,
}

impl Side {
    fn new(mut io: IO<Log>, dead_address: SocketAddr) -> Side {
        let listener = io.listen("127.0.0.1:0".parse().unwrap(), 64).unwrap();
        let listen_address = io.local_addr(listener).unwrap();
        Side {
            io,
            log: Log::default(),
            sockets: BTreeMap::from([(LISTENER, listener)]),
            ops: BTreeMap::new(),
            listen_address,
            dead_address,
        }
    }

    fn is_kernel(&self) -> bool {
        self.io.backend() != BackendKind::Simulator
    }

    /// Runs until the step settles: see the module docs.
    fn settle(&mut self, results_expected: usize) {
        if !self.is_kernel() {
            return self.io.run_for_ns(&mut self.log, SIM_SETTLE_NS).unwrap();
        }
        let deadline_ns = self.io.now_ns() + KERNEL_SETTLE_NS;
        while self.log.results.len() < results_expected && self.io.now_ns() < deadline_ns {
            self.io.run_for_ns(&mut self.log, MS / 4).unwrap();
        }
        self.io.run_for_ns(&mut self.log, KERNEL_EXTRA_NS).unwrap();
    }
}

/// The listener's logical socket id.
const LISTENER: u32 = 0;

/// One operation of a step, with logical ids for sockets and operations.
#[derive(Clone)]
enum Action {
    Connect { socket: u32, dead: bool },
    Reconnect { socket: u32 },
    Accept,
    Send { socket: u32, data: Vec<u8> },
    Recv { socket: u32, capacity: usize },
    WriteAt { socket: u32, offset: u64 },
    ReadAt { socket: u32, offset: u64 },
    Poll { socket: u32, events: u32 },
    Close { socket: u32 },
    Cancel { target: u32 },
    Timeout { timeout_ns: u64 },
    PeerAddr { socket: u32 },
}

impl std::fmt::Debug for Action {
    /// As derived, but a send shows its length, not its bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Connect { socket, dead } => {
                write!(f, "Connect {{ socket: {socket}, dead: {dead} }}")
            }
            Action::Reconnect { socket } => write!(f, "Reconnect {{ socket: {socket} }}"),
            Action::Accept => write!(f, "Accept"),
            Action::Send { socket, data } => {
                write!(f, "Send {{ socket: {socket}, len: {} }}", data.len())
            }
            Action::Recv { socket, capacity } => {
                write!(f, "Recv {{ socket: {socket}, capacity: {capacity} }}")
            }
            Action::WriteAt { socket, offset } => {
                write!(f, "WriteAt {{ socket: {socket}, offset: {offset} }}")
            }
            Action::ReadAt { socket, offset } => {
                write!(f, "ReadAt {{ socket: {socket}, offset: {offset} }}")
            }
            Action::Poll { socket, events } => {
                write!(f, "Poll {{ socket: {socket}, events: {events:#x} }}")
            }
            Action::Close { socket } => write!(f, "Close {{ socket: {socket} }}"),
            Action::Cancel { target } => write!(f, "Cancel {{ target: {target} }}"),
            Action::Timeout { timeout_ns } => write!(f, "Timeout {{ timeout_ns: {timeout_ns} }}"),
            Action::PeerAddr { socket } => write!(f, "PeerAddr {{ socket: {socket} }}"),
        }
    }
}

/// What the generator knows of a socket, from results both sides agreed on.
#[derive(Clone, Debug, Default)]
struct SocketModel {
    peer: Option<u32>,
    /// Bytes this socket's sends have accepted.
    sent: u64,
    /// Bytes its recvs have returned.
    received: u64,
    recv_in_flight: bool,
    send_in_flight: bool,
}

/// The generator's model of both worlds.
struct Model {
    prng: Prng,
    sockets: BTreeMap<u32, SocketModel>,
    next_socket: u32,
    next_op: u32,
    /// Operations issued and not finished: their socket and kind.
    in_flight: BTreeMap<u32, (Option<u32>, &'static str)>,
    /// Operations that finished (for cancels that must find nothing).
    finished: Vec<u32>,
    /// Clients connected and not accepted yet, in connection order.
    unaccepted: VecDeque<u32>,
    accepts_in_flight: u32,
}

/// The byte at `offset` of what socket `socket` sends: the generator's
/// streams are known, so every recv can be checked too.
fn stream_byte(socket: u32, offset: u64) -> u8 {
    let mixed = (u64::from(socket) << 40 ^ offset).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 56) as u8
}

const POLL_EVENTS: [PollEvents; 4] = [
    PollEvents::READABLE,
    PollEvents::WRITABLE,
    PollEvents::READ_HANGUP,
    PollEvents::HANGUP,
];

impl Model {
    fn new(seed: u64) -> Model {
        Model {
            prng: Prng::new(seed),
            sockets: BTreeMap::new(),
            next_socket: LISTENER + 1,
            next_op: 0,
            in_flight: BTreeMap::new(),
            finished: Vec::new(),
            unaccepted: VecDeque::new(),
            accepts_in_flight: 0,
        }
    }

    /// An open socket (the listener now and then), if there is one.
    fn some_socket(&mut self, listener_too: bool) -> Option<u32> {
        if listener_too && self.prng.chance(Probability::percent(5)) {
            return Some(LISTENER);
        }
        let ids: Vec<u32> = self.sockets.keys().copied().collect();
        (!ids.is_empty()).then(|| *self.prng.pick(&ids))
    }

    /// Bytes socket `socket` has sent that its peer has not read.
    fn unread_from(&self, socket: u32) -> u64 {
        let model = &self.sockets[&socket];
        let read = model
            .peer
            .and_then(|peer| self.sockets.get(&peer))
            .map_or(0, |peer| peer.received);
        model.sent.saturating_sub(read)
    }

    /// The next step's action, drawn from the seed.
    fn choose(&mut self) -> Action {
        loop {
            if let Some(action) = self.try_choose() {
                return action;
            }
        }
    }

    fn try_choose(&mut self) -> Option<Action> {
        match self.prng.below(100) {
            0..=11 if self.sockets.len() < 24 => Some(self.choose_connect()),
            12..=17 if self.accepts_in_flight == 0 => Some(Action::Accept),
            18..=35 => self.choose_send(),
            36..=51 => self.choose_recv(),
            52..=54 => {
                let socket = self.some_socket(true)?;
                let offset = self.prng.range_inclusive(1, 4096);
                if self.prng.chance(Probability::percent(50)) {
                    Some(Action::WriteAt { socket, offset })
                } else {
                    Some(Action::ReadAt { socket, offset })
                }
            }
            55..=62 => {
                let socket = self.some_socket(true)?;
                let first = *self.prng.pick(&POLL_EVENTS);
                let events = first | *self.prng.pick(&POLL_EVENTS);
                Some(Action::Poll {
                    socket,
                    events: events.bits(),
                })
            }
            63..=70 => self
                .some_socket(false)
                .map(|socket| Action::Close { socket }),
            71..=82 => self.choose_cancel(),
            83..=92 => {
                let timeout_ns = if self.prng.chance(Probability::percent(20)) {
                    u64::MAX
                } else {
                    self.prng.below(3 * MS)
                };
                Some(Action::Timeout { timeout_ns })
            }
            93..=96 => self
                .some_socket(true)
                .map(|socket| Action::PeerAddr { socket }),
            97..=99 => {
                let socket = self.some_socket(false)?;
                let connecting = self
                    .in_flight
                    .values()
                    .any(|&(s, kind)| s == Some(socket) && kind == "connect");
                (!connecting).then_some(Action::Reconnect { socket })
            }
            _ => None,
        }
    }

    fn choose_connect(&mut self) -> Action {
        let socket = self.next_socket;
        self.next_socket += 1;
        let dead = self.prng.chance(Probability::percent(15));
        self.sockets.insert(socket, SocketModel::default());
        Action::Connect { socket, dead }
    }

    fn choose_send(&mut self) -> Option<Action> {
        let socket = self.some_socket(true)?;
        if socket == LISTENER {
            return Some(Action::Send {
                socket,
                data: vec![1],
            });
        }
        if self.sockets[&socket].send_in_flight {
            return None;
        }
        let room = UNREAD_MAX.saturating_sub(self.unread_from(socket));
        if room == 0 {
            return None;
        }
        let len = self.prng.range_inclusive(1, room.min(8192));
        let sent = self.sockets[&socket].sent;
        let data = (0..len)
            .map(|index| stream_byte(socket, sent + index))
            .collect();
        self.sockets.get_mut(&socket).unwrap().send_in_flight = true;
        Some(Action::Send { socket, data })
    }

    fn choose_recv(&mut self) -> Option<Action> {
        let socket = self.some_socket(true)?;
        if socket != LISTENER {
            let model = self.sockets.get_mut(&socket).unwrap();
            if model.recv_in_flight {
                return None;
            }
            model.recv_in_flight = true;
        }
        let capacity = self.prng.range_inclusive(1, 16 * 1024) as usize;
        Some(Action::Recv { socket, capacity })
    }

    fn choose_cancel(&mut self) -> Option<Action> {
        let in_flight: Vec<u32> = self.in_flight.keys().copied().collect();
        let target = if !in_flight.is_empty() && self.prng.chance(Probability::percent(75)) {
            *self.prng.pick(&in_flight)
        } else if !self.finished.is_empty() {
            *self.prng.pick(&self.finished)
        } else {
            return None;
        };
        Some(Action::Cancel { target })
    }

    /// Records an operation issued now, for cancels and for bookkeeping.
    fn issued(&mut self, action: &Action) -> u32 {
        let op = self.next_op;
        self.next_op += 1;
        let (socket, kind) = match action {
            Action::Connect { socket, .. } | Action::Reconnect { socket } => {
                (Some(*socket), "connect")
            }
            Action::Accept => {
                self.accepts_in_flight += 1;
                (Some(LISTENER), "accept")
            }
            Action::Send { socket, .. } => (Some(*socket), "send"),
            Action::Recv { socket, .. } => (Some(*socket), "recv"),
            Action::WriteAt { socket, .. } | Action::ReadAt { socket, .. } => {
                (Some(*socket), "positional")
            }
            Action::Poll { socket, .. } => (Some(*socket), "poll"),
            Action::Close { socket } => (Some(*socket), "close"),
            Action::Cancel { .. } => (None, "cancel"),
            Action::Timeout { .. } => (None, "timeout"),
            Action::PeerAddr { .. } => (None, "peer_addr"),
        };
        if let Action::Close { socket } = action {
            // A client closed before it was accepted stays in the accept
            // queue: its connection is there, with the FIN behind it.
            self.sockets.remove(socket);
        }
        self.in_flight.insert(op, (socket, kind));
        op
    }
}

impl Model {
    /// Takes in the results of a step, on which both sides agreed; the
    /// accepted sockets get their logical ids here. Returns them.
    fn absorb(&mut self, results: &BTreeMap<u32, Outcome>) -> Vec<(u32, u32)> {
        let mut accepted = Vec::new();
        // Connects first: an accept waiting from an earlier step (a lower
        // op id) takes a connection made in this one.
        let is_accept = |op: &u32| {
            self.in_flight
                .get(op)
                .is_some_and(|&(_, kind)| kind == "accept")
        };
        let (accepts, others): (Vec<_>, Vec<_>) = results.iter().partition(|(op, _)| is_accept(op));
        for (&op, outcome) in others.into_iter().chain(accepts) {
            let (socket, kind) = self
                .in_flight
                .remove(&op)
                .expect("a result for an issued op");
            self.finished.push(op);
            let model = socket.and_then(|socket| self.sockets.get_mut(&socket));
            match (kind, outcome, model) {
                // The connection is in the accept queue, even if its
                // client has closed since.
                ("connect", Outcome::Done(Ok(())), _) => {
                    self.unaccepted
                        .push_back(socket.expect("a connect's socket"));
                }
                ("accept", outcome, _) => {
                    self.accepts_in_flight -= 1;
                    if *outcome == Outcome::Accepted(Ok(())) {
                        accepted.push((op, self.accept_one()));
                    }
                }
                ("send", outcome, Some(model)) => {
                    model.send_in_flight = false;
                    if let Outcome::Count(Ok(count)) = outcome {
                        model.sent += *count as u64;
                    }
                }
                ("recv", outcome, Some(model)) => {
                    model.recv_in_flight = false;
                    if let Outcome::Received(Ok(data)) = outcome {
                        model.received += data.len() as u64;
                    }
                }
                _ => {}
            }
        }
        accepted
    }

    /// An accept took the oldest connection of the queue: a new socket,
    /// paired with its client.
    fn accept_one(&mut self) -> u32 {
        let socket = self.next_socket;
        self.next_socket += 1;
        let client = self
            .unaccepted
            .pop_front()
            .expect("an accepted connection was queued");
        if let Some(model) = self.sockets.get_mut(&client) {
            model.peer = Some(socket);
        }
        let model = SocketModel {
            peer: Some(client),
            ..SocketModel::default()
        };
        self.sockets.insert(socket, model);
        socket
    }

    /// Checks that received bytes are the peer's stream, in order.
    fn check_received(&self, socket: u32, data: &[u8], received_before: u64) -> Result<(), String> {
        let Some(peer) = self.sockets.get(&socket).and_then(|model| model.peer) else {
            return Ok(());
        };
        for (index, &byte) in data.iter().enumerate() {
            if byte != stream_byte(peer, received_before + index as u64) {
                return Err(format!("socket {socket} received a wrong byte at {index}"));
            }
        }
        Ok(())
    }
}

fn done(op: u32) -> impl FnOnce(&mut IO<Log>, &mut Log, std::io::Result<()>) {
    move |_, log, result| {
        log.results
            .push((op, Outcome::Done(result.map_err(|e| errno(&e)))))
    }
}

fn counted(op: u32) -> impl FnOnce(&mut IO<Log>, &mut Log, std::io::Result<usize>, Vec<u8>) {
    move |_, log, result, _| {
        log.results
            .push((op, Outcome::Count(result.map_err(|e| errno(&e)))))
    }
}

fn received(op: u32) -> impl FnOnce(&mut IO<Log>, &mut Log, std::io::Result<usize>, Vec<u8>) {
    move |_, log, result, buf| {
        let outcome = result.map(|_| buf).map_err(|e| errno(&e));
        log.results.push((op, Outcome::Received(outcome)));
    }
}

impl Side {
    /// Issues `action` as operation `op`. Returns a synchronous result
    /// (getpeername), to compare at once.
    fn issue(&mut self, action: &Action, op: u32) -> Option<Result<(), i32>> {
        let socket = |side: &Side, id: &u32| side.sockets[id];
        let id = match action {
            Action::Connect { socket: id, dead } => {
                let address = if *dead {
                    self.dead_address
                } else {
                    self.listen_address
                };
                let handle = self.io.open_socket(address).expect("open_socket");
                // No Nagle: a small send leaves at once on the kernel too,
                // instead of waiting for the peer's (delayed) ACK.
                self.io.set_nodelay(handle, true).expect("TCP_NODELAY");
                self.sockets.insert(*id, handle);
                self.io.connect(handle, address, done(op))
            }
            Action::Reconnect { socket: id } => {
                let address = self.listen_address;
                self.io.connect(socket(self, id), address, done(op))
            }
            Action::Accept => {
                self.io.accept(
                    socket(self, &LISTENER),
                    move |_, log, result| match result {
                        Ok(handle) => {
                            log.accepted.push((op, handle));
                            log.results.push((op, Outcome::Accepted(Ok(()))));
                        }
                        Err(e) => log.results.push((op, Outcome::Accepted(Err(errno(&e))))),
                    },
                )
            }
            Action::Close { socket: id } => {
                let handle = self.sockets.remove(id).expect("an open socket");
                self.io.close(handle, done(op))
            }
            Action::Cancel { target } => self.io.cancel(self.ops[target], done(op)),
            Action::Timeout { timeout_ns } => self.io.timeout(*timeout_ns, done(op)),
            Action::PeerAddr { socket: id } => {
                let result = self
                    .io
                    .peer_addr(socket(self, id))
                    .map(drop)
                    .map_err(|e| errno(&e));
                // Nothing in flight: it completes as a nop, to keep the ids aligned.
                self.ops.insert(op, self.io.nop(done(op)));
                return Some(result);
            }
            _ => self.issue_transfer(action, op),
        };
        self.ops.insert(op, id);
        None
    }

    /// Issues a send, recv, positional read or write, or poll.
    fn issue_transfer(&mut self, action: &Action, op: u32) -> CompletionId {
        let socket = |side: &Side, id: &u32| side.sockets[id];
        match action {
            Action::Send { socket: id, data } => {
                self.io.send(socket(self, id), data.clone(), counted(op))
            }
            Action::Recv {
                socket: id,
                capacity,
            } => self.io.recv(
                socket(self, id),
                Vec::with_capacity(*capacity),
                received(op),
            ),
            Action::WriteAt { socket: id, offset } => {
                self.io
                    .write(socket(self, id), vec![1], *offset, counted(op))
            }
            Action::ReadAt { socket: id, offset } => self.io.read(
                socket(self, id),
                Vec::with_capacity(8),
                *offset,
                received(op),
            ),
            Action::Poll { socket: id, events } => {
                let events = POLL_EVENTS
                    .iter()
                    .filter(|event| events & event.bits() != 0)
                    .fold(PollEvents::default(), |all, &event| all | event);
                self.io
                    .poll(socket(self, id), events, move |_, log, result| {
                        let outcome = result.map(|events| events.bits()).map_err(|e| errno(&e));
                        log.results.push((op, Outcome::Polled(outcome)));
                    })
            }
            _ => unreachable!("not a transfer: {action:?}"),
        }
    }

    /// This step's results, by operation, and the handles accepted.
    fn drain(&mut self) -> (BTreeMap<u32, Outcome>, BTreeMap<u32, Handle>) {
        let results = self.log.results.drain(..).collect();
        let accepted = self.log.accepted.drain(..).collect();
        (results, accepted)
    }
}

/// The kernel backend, or why there is none.
fn kernel_io() -> Result<IO<Log>, String> {
    IO::with_config(Config::new().backend(BackendKind::IoUring)).map_err(|e| e.to_string())
}

/// A loopback port nothing listens on (connects to it are refused).
fn dead_kernel_address() -> SocketAddr {
    for port in 1..1024 {
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let attempt =
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(1));
        if matches!(&attempt, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused) {
            return address;
        }
    }
    panic!("every privileged loopback port answers");
}

fn sim_io(seed: u64) -> IO<Log> {
    let mut options = SimOptions::default().without_faults();
    // A recv returns all that has arrived, as on loopback.
    options.network.recv_split_probability = Probability::NEVER;
    options.network.tail_probability = Probability::NEVER;
    let mut sim = Simulator::new(seed, options);
    let node = sim.add_node("differential");
    sim.io(node).expect("the simulator's IO")
}

/// Runs one seed; `Err` describes the first difference.
fn run_seed(seed: u64, dead_address: SocketAddr) -> Result<(), String> {
    let mut kernel = Side::new(kernel_io()?, dead_address);
    let mut sim = Side::new(sim_io(seed), "127.0.0.1:1".parse().unwrap());
    let mut model = Model::new(seed);
    let mut history = Vec::new();
    for step in 0..STEPS {
        let action = model.choose();
        let op = model.issued(&action);
        history.push(format!("{step}: op {op} {action:?}"));
        let sync = (kernel.issue(&action, op), sim.issue(&action, op));
        if sync.0 != sync.1 {
            return Err(report(
                seed,
                &history,
                &format!("kernel {:?}, sim {:?}", sync.0, sync.1),
            ));
        }
        sim.settle(0);
        let (sim_results, sim_accepted) = sim.drain();
        kernel.settle(sim_results.len());
        let (kernel_results, kernel_accepted) = kernel.drain();
        if let Err(difference) = compare(&kernel_results, &sim_results) {
            let show = |results: &BTreeMap<u32, Outcome>| {
                results
                    .iter()
                    .map(|(op, outcome)| format!("op {op} {}", brief(outcome)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            history.push(format!("     kernel: [{}]", show(&kernel_results)));
            history.push(format!("     sim:    [{}]", show(&sim_results)));
            return Err(report(seed, &history, &difference));
        }
        check_streams(&model, &sim_results).map_err(|error| report(seed, &history, &error))?;
        for (op, outcome) in &sim_results {
            history.push(format!("     op {op} -> {}", brief(outcome)));
        }
        for (op, socket) in model.absorb(&sim_results) {
            for (side, accepted) in [(&mut kernel, &kernel_accepted), (&mut sim, &sim_accepted)] {
                let handle = accepted[&op];
                side.io.set_nodelay(handle, true).expect("TCP_NODELAY");
                side.sockets.insert(socket, handle);
            }
        }
    }
    Ok(())
}

fn compare(kernel: &BTreeMap<u32, Outcome>, sim: &BTreeMap<u32, Outcome>) -> Result<(), String> {
    let ops: std::collections::BTreeSet<u32> = kernel.keys().chain(sim.keys()).copied().collect();
    for op in ops {
        match (kernel.get(&op), sim.get(&op)) {
            (Some(k), Some(s)) if k == s => {}
            (k, s) => {
                let (k, s) = (k.map(brief), s.map(brief));
                return Err(format!("op {op}: kernel {k:?}, sim {s:?}"));
            }
        }
    }
    Ok(())
}

/// Every byte received is the peer's stream at the right offset.
fn check_streams(model: &Model, results: &BTreeMap<u32, Outcome>) -> Result<(), String> {
    for (op, outcome) in results {
        let (Some((Some(socket), "recv")), Outcome::Received(Ok(data))) =
            (model.in_flight.get(op), outcome)
        else {
            continue;
        };
        let before = model
            .sockets
            .get(socket)
            .map_or(0, |socket| socket.received);
        model.check_received(*socket, data, before)?;
    }
    Ok(())
}

/// An outcome for the log, received bytes as their count.
fn brief(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Received(Ok(data)) => {
            let sum = data
                .iter()
                .fold(0u32, |sum, &byte| sum.rotate_left(5) ^ u32::from(byte));
            format!("Received(Ok({} bytes, sum {sum:#x}))", data.len())
        }
        other => format!("{other:?}"),
    }
}

fn report(seed: u64, history: &[String], difference: &str) -> String {
    let tail = history
        .iter()
        .rev()
        .take(60)
        .rev()
        .cloned()
        .collect::<Vec<_>>();
    format!(
        "seed {seed}: {difference}\nreplay: RINGIO_DIFFERENTIAL_SEED={seed} cargo test --test differential\nlast steps:\n  {}",
        tail.join("\n  ")
    )
}

/// The seeds to run: `RINGIO_DIFFERENTIAL_SEED` (one), else
/// `RINGIO_DIFFERENTIAL_SEEDS` (how many, from 1), else `SEEDS_CI`.
fn seeds() -> std::ops::Range<u64> {
    let number = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|value| value.parse::<u64>().expect(name))
    };
    if let Some(seed) = number("RINGIO_DIFFERENTIAL_SEED") {
        return seed..seed + 1;
    }
    1..1 + number("RINGIO_DIFFERENTIAL_SEEDS").unwrap_or(SEEDS_CI)
}

#[test]
fn io_uring_and_the_simulator_agree_on_random_tcp_and_timer_sequences() {
    if let Err(error) = kernel_io() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no io_uring in CI: {error}"
        );
        eprintln!("SKIPPED: the differential test needs io_uring ({error})");
        return;
    }
    let dead_address = dead_kernel_address();
    let failures: Vec<String> = seeds()
        .filter_map(|seed| run_seed(seed, dead_address).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} seed(s) differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
