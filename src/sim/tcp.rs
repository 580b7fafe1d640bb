//! TCP connections of the simulated network, as Linux orders them: the
//! handshake (SYN retransmission, the listen backlog), byte streams with
//! latency and bandwidth, FIN and RST as segments behind the data, and what
//! partitions and crashes do to a connection.
//!
//! Each direction of a connection holds its bytes in one `VecDeque`: a
//! prefix that has arrived (readable), then bytes still in flight, in
//! segments that arrive in order. A FIN or a RST is a segment too, so it
//! arrives after the data sent before it, as on a real link.
//!
//! A reset is never shared state: each side learns of it when the RST
//! arrives (or when it sends one itself), and what it had received before
//! stays readable, as Linux keeps its receive queue. After a reset, a
//! side reports its error once (`ECONNRESET`, or `EPIPE` if the peer's FIN
//! had arrived, as Linux's `tcp_reset` does in `CLOSE_WAIT`), then `recv`
//! gives 0 and `send` `EPIPE`.
//!
//! Connections live in a table with a free list; an event names one by
//! index and generation, so an event for a connection that is gone (and
//! whose slot was reused) is recognised and dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::net::{SocketState, Wake};
use super::prng::Probability;
use super::world::{EventKind, World};

/// Names a connection: its slot and the slot's generation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ConnId {
    index: u32,
    generation: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SegmentKind {
    Data,
    Fin,
    Reset,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    /// `None` while a partition holds it back.
    arrival_ns: Option<u64>,
    len: usize,
    kind: SegmentKind,
}

#[derive(Default)]
pub(crate) struct Direction {
    /// Arrived-and-unread bytes, then bytes in flight.
    pub(crate) bytes: VecDeque<u8>,
    pub(crate) arrived: usize,
    segments: VecDeque<Segment>,
    pub(crate) fin_arrived: bool,
    pub(crate) fin_sent: bool,
    reset_sent: bool,
    last_arrival_ns: u64,
    /// Data sent into a crashed machine is being retransmitted, since this time.
    lost_since_ns: Option<u64>,
}

impl Direction {
    fn stalled(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| segment.arrival_ns.is_none())
    }

    /// Drops what is in flight; what has arrived stays readable.
    fn drop_in_flight(&mut self) {
        self.bytes.truncate(self.arrived);
        self.segments.clear();
        self.lost_since_ns = None;
    }

    /// Drops everything: nobody will read this direction again.
    pub(crate) fn drop_all(&mut self) {
        self.bytes.clear();
        self.arrived = 0;
        self.segments.clear();
        self.lost_since_ns = None;
    }

    fn reset_for_reuse(&mut self) {
        self.drop_all();
        self.fin_arrived = false;
        self.fin_sent = false;
        self.reset_sent = false;
        self.last_arrival_ns = 0;
    }
}

/// One end of a connection, as that end sees it.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Side {
    /// Its socket is gone (closed, crashed, or never accepted).
    pub(crate) closed: bool,
    /// Gone with its machine, without a word: data for it is lost, and
    /// nothing answers until the machine is up again.
    vanished: bool,
    /// It knows the connection is over (a reset, a timeout).
    pub(crate) reset: bool,
    /// The error it has yet to report, once.
    pub(crate) error: Option<i32>,
    /// `shutdown(SHUT_RD)`: once what arrived is read, receives give 0.
    pub(crate) read_shut: bool,
}

/// Where the three-way handshake is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Handshake {
    /// The client's SYN number `attempt` (0 first) is out; the first left at `first_ns`.
    SynSent { attempt: u32, first_ns: u64 },
    /// The client is established; its ACK is on the way to the listener.
    AckSent,
    /// The server end is in the listener's queue, accepted, or gone.
    Done,
}

/// A TCP connection. Side 0 connected, side 1 was accepted; direction `d`
/// carries bytes from side `d` to side `1 - d`.
pub(crate) struct Connection {
    generation: u32,
    live: bool,
    pub(crate) nodes: [usize; 2],
    pub(crate) addrs: [SocketAddr; 2],
    pub(crate) sockets: [Option<usize>; 2],
    pub(crate) directions: [Direction; 2],
    pub(crate) sides: [Side; 2],
    pub(crate) handshake: Handshake,
    /// A Unix-domain connection (`unix.rs`): what one end sends is in the
    /// other's queue at once, with no wire between them.
    pub(crate) unix: bool,
    /// The server's process that answered the SYN: the request belongs to
    /// its listener, and dies with it (Linux resets it), so a process
    /// restarted meanwhile never receives it.
    syn_answered_by: Option<u64>,
}

/// Linux's minimum retransmission timeout (`TCP_RTO_MIN`): the first
/// retransmission of data into a crashed machine.
const RTO_MIN_NS: u64 = 200_000_000;
/// Linux's maximum retransmission timeout (`TCP_RTO_MAX`).
const RTO_MAX_NS: u64 = 120_000_000_000;

impl World {
    /// A new connection from `socket` (side 0), handshaking.
    pub(crate) fn connection_open(
        &mut self,
        nodes: [usize; 2],
        addrs: [SocketAddr; 2],
        socket: usize,
    ) -> ConnId {
        let index = match self.connections_free.pop() {
            Some(index) => index,
            None => {
                self.connections.push(Connection {
                    generation: 0,
                    live: false,
                    nodes,
                    addrs,
                    sockets: [None, None],
                    directions: [Direction::default(), Direction::default()],
                    sides: [Side::default(); 2],
                    handshake: Handshake::Done,
                    unix: false,
                    syn_answered_by: None,
                });
                self.connections.len() as u32 - 1
            }
        };
        let conn = &mut self.connections[index as usize];
        assert!(!conn.live, "a free connection slot is not live");
        conn.live = true;
        conn.nodes = nodes;
        conn.addrs = addrs;
        conn.sockets = [Some(socket), None];
        conn.sides = [Side::default(); 2];
        conn.unix = false;
        conn.syn_answered_by = None;
        conn.handshake = Handshake::SynSent {
            attempt: 0,
            first_ns: self.now_ns,
        };
        ConnId {
            index,
            generation: conn.generation,
        }
    }

    /// The connection `id` names, unless it is gone.
    pub(crate) fn conn(&self, id: ConnId) -> Option<&Connection> {
        let conn = self.connections.get(id.index as usize)?;
        (conn.live && conn.generation == id.generation).then_some(conn)
    }

    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        let conn = self.connections.get_mut(id.index as usize)?;
        (conn.live && conn.generation == id.generation).then_some(conn)
    }

    /// Frees the connection once neither end has a socket left: nothing
    /// can observe it any more. Events still queued for it are dropped.
    pub(crate) fn connection_free_if_done(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if !(conn.sides[0].closed && conn.sides[1].closed) {
            return;
        }
        assert!(conn.sockets[0].is_none());
        assert!(conn.sockets[1].is_none());
        conn.live = false;
        conn.generation = conn.generation.wrapping_add(1);
        assert!(
            self.conn(id).is_none(),
            "a freed connection's id names nothing"
        );
        let conn = &mut self.connections[id.index as usize];
        for direction in &mut conn.directions {
            direction.reset_for_reuse();
        }
        self.connections_free.push(id.index);
    }

    /// Live connections, for the rare passes over all of them (healing).
    pub(crate) fn connection_ids(&self) -> Vec<ConnId> {
        let live = self.connections.iter().enumerate();
        live.filter(|(_, conn)| conn.live)
            .map(|(index, conn)| ConnId {
                index: index as u32,
                generation: conn.generation,
            })
            .collect()
    }

    /// Connections in use now, and slots the table has (in use or free).
    pub(crate) fn connections_live(&self) -> (usize, usize) {
        let slots = self.connections.len();
        (slots - self.connections_free.len(), slots)
    }

    /// Whether traffic from `from` to `to` crosses a partition.
    pub(crate) fn blocked(&self, from: usize, to: usize) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&(from, to))
    }

    // -----------------------------------------------------------------------
    // The handshake

    /// The client sends SYN number `attempt`: it arrives, or is lost and
    /// retransmitted on Linux's schedule (1 s, doubling).
    pub(crate) fn syn_send(&mut self, id: ConnId) {
        let conn = self.conn(id).expect("a handshaking connection is live");
        assert!(matches!(conn.handshake, Handshake::SynSent { .. }));
        let [client, server] = conn.nodes;
        if !self.nodes[server].up || self.blocked(client, server) {
            return self.syn_lost(id);
        }
        let arrival_ns = self.now_ns + self.latency_sample(client, server);
        self.schedule(arrival_ns, EventKind::SynArrive { connection: id });
    }

    /// The SYN (or its answer) went missing: the client retransmits after
    /// its timeout, or gives up with `ETIMEDOUT` after `syn_retries`.
    fn syn_lost(&mut self, id: ConnId) {
        let conn = self.conn(id).expect("a handshaking connection is live");
        let Handshake::SynSent { attempt, first_ns } = conn.handshake else {
            unreachable!("only a SYN is lost this way");
        };
        let rto_ns = self.options.network.syn_retransmit_timeout_ns;
        let next_ns = first_ns + rto_ns.saturating_mul((2u64 << attempt.min(40)) - 1);
        let kind = EventKind::SynTimer {
            connection: id,
            attempt: attempt + 1,
        };
        self.schedule(next_ns, kind);
    }

    pub(crate) fn on_syn_timer(&mut self, id: ConnId, attempt: u32) {
        let retries = self.options.network.syn_retries;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Handshake::SynSent { first_ns, .. } = conn.handshake else {
            return;
        };
        if conn.sides[0].closed {
            return self.handshake_abandoned(id);
        }
        if attempt > retries {
            return self.on_connect_fail(id, libc::ETIMEDOUT);
        }
        conn.handshake = Handshake::SynSent { attempt, first_ns };
        self.syn_send(id);
    }

    /// The client closed its socket before the handshake finished: the
    /// server end, if any, dies with the client's RST, unseen.
    fn handshake_abandoned(&mut self, id: ConnId) {
        let conn = self.conn_mut(id).expect("checked by the caller");
        assert!(conn.sides[0].closed);
        assert!(conn.sockets[0].is_none());
        conn.handshake = Handshake::Done;
        conn.sides[1].closed = true;
        self.connection_free_if_done(id);
    }

    pub(crate) fn on_syn_arrive(&mut self, id: ConnId) {
        let Some(conn) = self.conn(id) else {
            return;
        };
        if !matches!(conn.handshake, Handshake::SynSent { .. }) {
            return; // A retransmitted SYN after the first got through.
        }
        if conn.sides[0].closed {
            return self.handshake_abandoned(id);
        }
        let [client, server] = conn.nodes;
        let target = conn.addrs[1];
        if !self.nodes[server].up || self.blocked(server, client) {
            return self.syn_lost(id);
        }
        let back_ns = self.now_ns + self.latency_sample(server, client);
        let Some(listener) = self.listener(server, target.ip(), target.port()) else {
            let kind = EventKind::ConnectFail {
                connection: id,
                errno: libc::ECONNREFUSED,
            };
            return self.schedule(back_ns, kind);
        };
        if self.listen_queue_full(listener) {
            // Linux drops a SYN while the accept queue is full.
            return self.syn_lost(id);
        }
        let answered_by = self.nodes[server].process;
        self.conn_mut(id).expect("checked above").syn_answered_by = answered_by;
        self.schedule(back_ns, EventKind::SynAckArrive { connection: id });
    }

    pub(crate) fn listen_queue_full(&self, listener: usize) -> bool {
        match &self.sockets[listener].state {
            SocketState::Listening { queue, backlog } => queue.len() > *backlog as usize,
            _ => unreachable!("a listener listens"),
        }
    }

    pub(crate) fn on_syn_ack_arrive(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if !matches!(conn.handshake, Handshake::SynSent { .. }) {
            return;
        }
        if conn.sides[0].closed {
            return self.handshake_abandoned(id);
        }
        conn.handshake = Handshake::AckSent;
        assert!(
            !conn.sides[0].reset,
            "a handshaking client has not been reset"
        );
        let socket = conn.sockets[0].expect("an open client has its socket");
        self.connect_established(socket, id);
        self.ack_send(id, 0);
    }

    /// The client's ACK leaves, in order ahead of any data sent after it.
    /// Across a partition it is retried as the server's SYN-ACK
    /// retransmissions would make it.
    fn ack_send(&mut self, id: ConnId, attempt: u32) {
        let conn = self.conn(id).expect("the caller checked");
        let [client, server] = conn.nodes;
        let rto_ns = self.options.network.syn_retransmit_timeout_ns;
        let arrival_ns = if self.blocked(client, server) {
            self.now_ns + (rto_ns << attempt.min(20))
        } else {
            self.arrival_ns(id, 0, 0)
        };
        let kind = EventKind::AckArrive {
            connection: id,
            attempt,
        };
        self.schedule(arrival_ns, kind);
    }

    pub(crate) fn on_ack_arrive(&mut self, id: ConnId, attempt: u32) {
        let Some(conn) = self.conn(id) else {
            return;
        };
        if conn.handshake != Handshake::AckSent {
            return;
        }
        let [client, server] = conn.nodes;
        let target = conn.addrs[1];
        if self.blocked(client, server) {
            return self.ack_send(id, attempt + 1);
        }
        if !self.nodes[server].up {
            return self.server_end_gone(id, self.nodes[server].crash_half_open);
        }
        // The listener that answered the SYN went with its process: the
        // request went with it, and a restarted process's listener never
        // sees it (Linux answers the ACK with a RST).
        if conn.syn_answered_by != self.nodes[server].process {
            return self.server_end_gone(id, false);
        }
        let Some(listener) = self.listener(server, target.ip(), target.port()) else {
            return self.server_end_gone(id, false);
        };
        if self.listen_queue_full(listener) {
            // Linux drops the ACK and retransmits its SYN-ACK; after
            // `synack_retries` it forgets the request.
            if attempt >= self.options.network.synack_retries {
                return self.server_end_gone(id, false);
            }
            let rto_ns = self.options.network.syn_retransmit_timeout_ns;
            let kind = EventKind::AckArrive {
                connection: id,
                attempt: attempt + 1,
            };
            return self.schedule(self.now_ns + (rto_ns << attempt.min(20)), kind);
        }
        let conn = self.conn_mut(id).expect("checked above");
        conn.handshake = Handshake::Done;
        assert!(conn.sockets[1].is_none(), "queued before it is accepted");
        assert!(!conn.sides[1].closed);
        if let SocketState::Listening { queue, .. } = &mut self.sockets[listener].state {
            queue.push_back(id);
        }
        self.to_wake.push((listener, Wake::Readable));
    }

    /// The server end of a connection never made it to a socket: it
    /// answers the client with a RST, or, if its machine crashed, with
    /// nothing at all (`half_open`).
    fn server_end_gone(&mut self, id: ConnId, half_open: bool) {
        let conn = self.conn_mut(id).expect("the caller checked");
        conn.handshake = Handshake::Done;
        assert!(conn.sockets[1].is_none());
        conn.sides[1].closed = true;
        if half_open {
            conn.sides[1].vanished = true;
        } else {
            self.reset_and_forget(id, 1);
        }
        self.connection_free_if_done(id);
    }

    /// The handshake failed (`ECONNREFUSED`, `ETIMEDOUT`): the client's
    /// socket is dead, as Linux's `TCP_CLOSE` with both directions shut.
    pub(crate) fn on_connect_fail(&mut self, id: ConnId, errno: i32) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if !matches!(conn.handshake, Handshake::SynSent { .. }) {
            return;
        }
        conn.handshake = Handshake::Done;
        conn.sides = [Side {
            closed: true,
            ..Side::default()
        }; 2];
        if let Some(socket) = conn.sockets[0].take() {
            self.connect_failed(socket, errno);
        }
        self.connection_free_if_done(id);
        assert!(self.conn(id).is_none(), "a failed handshake leaves nothing");
    }

    // -----------------------------------------------------------------------
    // Segments

    /// Queues `len` bytes (already in the direction's buffer), a FIN or a
    /// RST, to arrive after the link's delay, in order behind earlier
    /// segments, or to wait behind a partition.
    pub(crate) fn send_segment(
        &mut self,
        id: ConnId,
        direction: usize,
        len: usize,
        kind: SegmentKind,
    ) {
        let conn = self.conn(id).expect("segments go on live connections");
        if conn.unix {
            // No wire: the segment is in the peer's queue before send returns.
            let now_ns = self.now_ns;
            let conn = self.conn_mut(id).expect("checked above");
            let segment = Segment {
                arrival_ns: Some(now_ns),
                len,
                kind,
            };
            conn.directions[direction].segments.push_back(segment);
            return self.on_arrive(id, direction);
        }
        let (from, to) = (conn.nodes[direction], conn.nodes[1 - direction]);
        let stalled = conn.directions[direction].stalled();
        let held = stalled || self.blocked(from, to);
        // Data no ACK can answer (the way back is cut) times out too.
        let unanswered = kind == SegmentKind::Data && self.blocked(to, from);
        if (held && !stalled) || unanswered {
            let timeout_ns = self.options.network.retransmit_timeout_ns;
            let timer = EventKind::RetransmitTimeout {
                connection: id,
                direction,
            };
            self.schedule(self.now_ns + timeout_ns, timer);
        }
        let arrival_ns = (!held).then(|| self.arrival_ns(id, direction, len));
        let segment = Segment {
            arrival_ns,
            len,
            kind,
        };
        let conn = self.conn_mut(id).expect("checked above");
        conn.directions[direction].segments.push_back(segment);
        if let Some(time_ns) = arrival_ns {
            let kind = EventKind::Arrive {
                connection: id,
                direction,
            };
            self.schedule(time_ns, kind);
        }
    }

    /// When a segment of `len` bytes sent now arrives: it waits for the
    /// link to be free, takes `len / bandwidth` on the wire, then the
    /// latency; it waits behind a clog; and it never overtakes the segment
    /// before it (a stream stays in order).
    fn arrival_ns(&mut self, id: ConnId, direction: usize, len: usize) -> u64 {
        let conn = self.conn(id).expect("the caller checked");
        let (from, to) = (conn.nodes[direction], conn.nodes[1 - direction]);
        let departure_ns = self.transmit(from, to, len);
        let mut arrival_ns = departure_ns + self.latency_sample(from, to);
        if let Some(&until_ns) = self.clogged.get(&(from, to)) {
            if until_ns > self.now_ns {
                arrival_ns = arrival_ns.max(until_ns + self.latency_sample(from, to));
            }
        }
        let conn = self.conn_mut(id).expect("checked above");
        let flow = &mut conn.directions[direction];
        arrival_ns = arrival_ns.max(flow.last_arrival_ns);
        flow.last_arrival_ns = arrival_ns;
        arrival_ns
    }

    /// Puts `len` bytes on the link from `from` to `to`: returns when its
    /// last byte has left. Links are per ordered pair of nodes.
    pub(crate) fn transmit(&mut self, from: usize, to: usize, len: usize) -> u64 {
        let bandwidth = self.options.network.bandwidth_bytes_per_s;
        if bandwidth == 0 || len == 0 {
            return self.now_ns;
        }
        let wire_ns = (len as u128 * 1_000_000_000).div_ceil(u128::from(bandwidth)) as u64;
        let links = &mut self.nodes[from].link_free_ns;
        if links.len() <= to {
            links.resize(to + 1, 0);
        }
        let start_ns = links[to].max(self.now_ns);
        links[to] = start_ns + wire_ns;
        assert!(links[to] >= self.now_ns);
        links[to]
    }

    /// One-way latency: `max(min, Exp(mean))`, plus sometimes a long tail.
    pub(crate) fn latency_sample(&mut self, _from: usize, _to: usize) -> u64 {
        let network = &self.options.network;
        let prng = &mut self.streams.network;
        let mut latency_ns = prng
            .exponential(network.latency_mean_ns)
            .max(network.latency_min_ns);
        if prng.chance(network.tail_probability) {
            latency_ns += prng.exponential(network.tail_mean_ns);
        }
        latency_ns
    }

    pub(crate) fn on_arrive(&mut self, id: ConnId, direction: usize) {
        let now_ns = self.now_ns;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let receiver = 1 - direction;
        let ignored = conn.sides[receiver].reset && !conn.sides[receiver].closed;
        let flow = &mut conn.directions[direction];
        let (mut data_arrived, mut fin_arrived, mut reset_arrived) = (false, false, false);
        while let Some(segment) = flow.segments.front() {
            match segment.arrival_ns {
                Some(time_ns) if time_ns <= now_ns => {}
                _ => break,
            }
            let segment = flow.segments.pop_front().expect("peeked");
            match segment.kind {
                SegmentKind::Data => flow.arrived += segment.len,
                SegmentKind::Fin => flow.fin_arrived = true,
                SegmentKind::Reset => reset_arrived = true,
            }
            data_arrived |= segment.len > 0;
            fin_arrived |= segment.kind == SegmentKind::Fin;
        }
        if ignored {
            // A side that reset its end takes nothing more in.
            flow.drop_all();
            return;
        }
        if conn.sides[receiver].closed {
            flow.drop_all();
            if data_arrived {
                self.data_for_a_closed_side(id, direction);
            }
            return;
        }
        let socket = self.conn(id).and_then(|conn| conn.sockets[receiver]);
        if let (Some(socket), true) = (socket, data_arrived) {
            self.to_wake.push((socket, Wake::Readable));
        }
        if reset_arrived {
            self.reset_arrived(id, receiver); // It wakes the socket.
        } else if let (Some(socket), true) = (socket, fin_arrived) {
            self.to_wake.push((socket, Wake::State));
        }
    }

    /// Data reached a side whose socket is gone: Linux answers with a RST
    /// (`TCPAbortOnData`), unless the machine crashed, where nothing
    /// answers and the sender retransmits into the void.
    fn data_for_a_closed_side(&mut self, id: ConnId, direction: usize) {
        let conn = self.conn(id).expect("the caller checked");
        let receiver = 1 - direction;
        let vanished = conn.sides[receiver].vanished;
        if vanished && !self.nodes[conn.nodes[receiver]].up {
            return self.data_lost(id, direction);
        }
        self.reset_and_forget(id, receiver);
    }

    fn data_lost(&mut self, id: ConnId, direction: usize) {
        let now_ns = self.now_ns;
        let conn = self.conn_mut(id).expect("the caller checked");
        let flow = &mut conn.directions[direction];
        if flow.lost_since_ns.is_some() {
            return;
        }
        flow.lost_since_ns = Some(now_ns);
        let kind = EventKind::Probe {
            connection: id,
            direction,
            attempt: 0,
        };
        self.schedule(now_ns + RTO_MIN_NS, kind);
    }

    /// A retransmission into a crashed machine: once it is up again it
    /// answers with a RST; if it stays down past `retransmit_timeout_ns`,
    /// the sender gives up with `ETIMEDOUT`.
    pub(crate) fn on_probe(&mut self, id: ConnId, direction: usize, attempt: u32) {
        let now_ns = self.now_ns;
        let timeout_ns = self.options.network.retransmit_timeout_ns;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Some(since_ns) = conn.directions[direction].lost_since_ns else {
            return;
        };
        let receiver_node = conn.nodes[1 - direction];
        if conn.sides[direction].reset || conn.sides[direction].closed {
            conn.directions[direction].lost_since_ns = None;
            return;
        }
        if self.nodes[receiver_node].up {
            self.conn_mut(id).expect("live").directions[direction].lost_since_ns = None;
            return self.reset_and_forget(id, 1 - direction);
        }
        if now_ns - since_ns >= timeout_ns {
            self.abort_side(id, direction, Some(libc::ETIMEDOUT));
            return;
        }
        let delay_ns = (RTO_MIN_NS << attempt.min(20)).min(RTO_MAX_NS);
        let kind = EventKind::Probe {
            connection: id,
            direction,
            attempt: attempt + 1,
        };
        self.schedule(now_ns + delay_ns, kind);
    }

    // -----------------------------------------------------------------------
    // Resets

    /// A RST reached `side`: it learns the connection is gone. What it
    /// had received stays readable; its error is `EPIPE` if the peer's FIN
    /// had arrived (Linux's `CLOSE_WAIT`), else `ECONNRESET`.
    fn reset_arrived(&mut self, id: ConnId, side: usize) {
        let conn = self.conn(id).expect("the caller checked");
        if conn.sides[side].reset {
            return;
        }
        let errno = if conn.directions[1 - side].fin_arrived {
            libc::EPIPE
        } else {
            libc::ECONNRESET
        };
        self.abort_side(id, side, Some(errno));
    }

    /// `side` learns that the connection is over, with `error` to report
    /// once. What it had received stays readable; what it had in flight
    /// is dropped.
    pub(crate) fn abort_side(&mut self, id: ConnId, side: usize, error: Option<i32>) {
        let conn = self.conn_mut(id).expect("the caller checked");
        let state = &mut conn.sides[side];
        if state.reset || state.closed {
            return;
        }
        state.reset = true;
        state.error = error;
        assert!(conn.sides[side].reset);
        conn.directions[side].drop_in_flight();
        if let Some(socket) = conn.sockets[side] {
            self.to_wake.push((socket, Wake::State));
        }
    }

    /// `side` sends a RST behind what it has in flight, and takes nothing
    /// more in: what it had not read is dropped.
    pub(crate) fn reset_and_forget(&mut self, id: ConnId, side: usize) {
        let conn = self.conn_mut(id).expect("the caller checked");
        conn.sides[side].reset = true;
        conn.directions[1 - side].drop_all();
        self.reset_send(id, side);
    }

    /// `side` sends a RST (once), behind what it has in flight.
    pub(crate) fn reset_send(&mut self, id: ConnId, side: usize) {
        let conn = self.conn_mut(id).expect("the caller checked");
        let flow = &mut conn.directions[side];
        if flow.reset_sent {
            return;
        }
        flow.reset_sent = true;
        assert!(conn.directions[side].reset_sent);
        self.send_segment(id, side, 0, SegmentKind::Reset);
    }

    /// `side` sends a FIN behind its data.
    pub(crate) fn fin_send(&mut self, id: ConnId, side: usize) {
        let conn = self.conn_mut(id).expect("the caller checked");
        assert!(!conn.directions[side].fin_sent, "one FIN per direction");
        conn.directions[side].fin_sent = true;
        self.send_segment(id, side, 0, SegmentKind::Fin);
    }

    /// Its machine crashed under `side`: with `half_open` nothing tells
    /// the peer (it learns when it sends, or never), else the peer sees a
    /// reset. Either way the side is gone.
    pub(crate) fn side_crashed(&mut self, id: ConnId, side: usize, half_open: bool) {
        let conn = self.conn_mut(id).expect("the caller checked");
        conn.sides[side].closed = true;
        conn.sockets[side] = None;
        if half_open {
            conn.sides[side].vanished = true;
            conn.sides[side].reset = true;
            conn.directions[1 - side].drop_all();
        } else if !conn.sides[side].reset {
            self.reset_and_forget(id, side);
        }
        self.connection_free_if_done(id);
    }

    /// Data stalled behind a partition (or unanswered across one) too
    /// long: TCP gives up. Both ends see `ETIMEDOUT` (the model tells the
    /// silent end too, so that nothing waits forever on a dead link).
    pub(crate) fn on_retransmit_timeout(&mut self, id: ConnId, direction: usize) {
        let Some(conn) = self.conn(id) else {
            return;
        };
        let (from, to) = (conn.nodes[direction], conn.nodes[1 - direction]);
        let stalled = conn.directions[direction].stalled();
        if stalled || self.blocked(to, from) {
            self.abort_side(id, direction, Some(libc::ETIMEDOUT));
            self.abort_side(id, 1 - direction, Some(libc::ETIMEDOUT));
        }
    }

    // -----------------------------------------------------------------------
    // Weather

    /// Schedules the next random partition or clog, if they are on.
    pub(crate) fn schedule_weather(&mut self) {
        let network = &self.options.network;
        let intervals = [
            network.partition_interval_mean_ns,
            network.clog_interval_mean_ns,
        ];
        let mean_ns = match intervals {
            [0, 0] => return,
            [0, clog] => clog,
            [partition, 0] => partition,
            [partition, clog] => partition.min(clog),
        };
        let delay_ns = self.streams.weather.exponential(mean_ns).max(1);
        self.schedule(self.now_ns + delay_ns, EventKind::Weather);
    }

    pub(crate) fn on_weather(&mut self) {
        let network = self.options.network.clone();
        let partitions_on = network.partition_interval_mean_ns > 0;
        let clogs_on = network.clog_interval_mean_ns > 0;
        if !partitions_on && !clogs_on {
            return;
        }
        let prng = &mut self.streams.weather;
        let partition = partitions_on && (!clogs_on || prng.chance(Probability::percent(50)));
        if partition && self.blocked.is_empty() {
            self.partition_randomly();
        } else if clogs_on {
            let nodes = self.nodes.len() as u64;
            let prng = &mut self.streams.weather;
            let from = prng.below(nodes) as usize;
            let to = prng.below(nodes) as usize;
            let until_ns = self.now_ns + prng.exponential(network.clog_duration_mean_ns);
            tracing::debug!(target: "ringio", from, to, until_ns, "sim: clog");
            let entry = self.clogged.entry((from, to)).or_insert(0);
            *entry = (*entry).max(until_ns);
        }
        self.schedule_weather();
    }

    /// A random split: each node on side A or B, both sides non-empty;
    /// B cannot reach A, and (unless asymmetric) A cannot reach B.
    fn partition_randomly(&mut self) {
        let nodes = self.nodes.len() as u64;
        let network = &self.options.network;
        let prng = &mut self.streams.weather;
        let split = prng.range_inclusive(1, (1 << nodes.min(63)) - 2);
        let asymmetric = prng.chance(network.partition_asymmetric_probability);
        let duration_ns = prng.exponential(network.partition_duration_mean_ns).max(1);
        for from in 0..nodes as usize {
            for to in 0..nodes as usize {
                let side = |node: usize| split >> (node % 63) & 1;
                if side(from) == 1 && side(to) == 0
                    || (!asymmetric && side(from) == 0 && side(to) == 1)
                {
                    self.blocked.insert((from, to));
                }
            }
        }
        tracing::debug!(target: "ringio", split, asymmetric, duration_ns, "sim: partition");
        self.schedule(self.now_ns + duration_ns, EventKind::Heal);
    }

    /// Ends every partition: held segments leave now, in order.
    pub(crate) fn heal(&mut self) {
        self.blocked.clear();
        for id in self.connection_ids() {
            for direction in 0..2 {
                self.release_held(id, direction);
            }
        }
    }

    fn release_held(&mut self, id: ConnId, direction: usize) {
        let conn = self.conn(id).expect("listed as live");
        let flow = &conn.directions[direction];
        let held: Vec<(usize, usize)> = flow
            .segments
            .iter()
            .enumerate()
            .filter(|(_, segment)| segment.arrival_ns.is_none())
            .map(|(index, segment)| (index, segment.len))
            .collect();
        for (index, len) in held {
            let arrival_ns = self.arrival_ns(id, direction, len);
            let conn = self.conn_mut(id).expect("listed as live");
            conn.directions[direction].segments[index].arrival_ns = Some(arrival_ns);
            let kind = EventKind::Arrive {
                connection: id,
                direction,
            };
            self.schedule(arrival_ns, kind);
        }
    }

    /// Lifts partitions and clogs (the liveness mode).
    pub(crate) fn calm(&mut self) {
        self.heal();
        self.clogged.clear();
    }
}
