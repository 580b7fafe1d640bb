//! UDP on the simulated network: datagram sockets over a packet network.
//!
//! Each datagram travels alone: it samples its own latency (so datagrams
//! overtake each other, as on a real network), it can be lost or
//! duplicated (`DatagramOptions`), a partition drops it, a clog holds it,
//! and a receive queue that is full drops it, as Linux's `SO_RCVBUF` does.
//! A datagram larger than `DatagramOptions::max_bytes` is refused with
//! `EMSGSIZE`. Nothing answers a datagram sent to a port nobody holds
//! (Linux would send an ICMP port-unreachable, which a connected socket
//! reads as `ECONNREFUSED`: a difference listed in docs/simulation.md).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use super::iov::Memory;
use super::net::{SocketState, Wake};
use super::world::{EventKind, FdEntry, Parked, World};
use crate::completion::Operation;
use crate::sys::Fd;

/// One datagram, queued at its receiver.
pub(crate) struct Datagram {
    from: SocketAddr,
    bytes: Vec<u8>,
}

/// A datagram on the wire, until its arrival event.
pub(crate) struct Packet {
    to_node: usize,
    to_port: u16,
    datagram: Datagram,
}

impl World {
    /// `socket(AF_INET*, SOCK_DGRAM)` bound to `address` (port 0 picks a
    /// free one).
    pub(crate) fn open_udp(&mut self, node: usize, address: SocketAddr) -> Result<Fd, i32> {
        self.descriptor_fault()?;
        let ip = address.ip();
        if !self.nodes[node].owns(ip) {
            return Err(libc::EADDRNOTAVAIL);
        }
        let port = match address.port() {
            0 => self.udp_ephemeral_port(node).ok_or(libc::EADDRINUSE)?,
            port if self.nodes[node].udp_ports.contains_key(&port) => return Err(libc::EADDRINUSE),
            port => port,
        };
        let state = SocketState::Datagram {
            peer: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
        };
        let local = SocketAddr::new(ip, port);
        let socket = self.socket_new(node, address.is_ipv6(), Some(local), state);
        self.nodes[node].udp_ports.insert(port, socket);
        Ok(self.nodes[node].alloc_fd(FdEntry::Socket(socket)))
    }

    /// A free UDP port on `node`, from the ephemeral range (UDP's ports
    /// are their own space, apart from TCP's).
    fn udp_ephemeral_port(&mut self, node: usize) -> Option<u16> {
        let node = &mut self.nodes[node];
        let ports = &node.udp_ports;
        super::net::next_free_port(&mut node.next_udp_port, |port| ports.contains_key(&port))
    }

    /// A closed datagram socket gives back its port and its queue.
    pub(crate) fn close_datagram(&mut self, socket: usize, queue: VecDeque<Datagram>) {
        let state = &self.sockets[socket];
        if let Some(local) = state.local {
            let ports = &mut self.nodes[state.node].udp_ports;
            if ports.get(&local.port()) == Some(&socket) {
                ports.remove(&local.port());
            }
        }
        for datagram in queue {
            self.datagram_spares.push(datagram.bytes);
        }
    }

    /// `connect(2)` of a datagram socket: sets the default destination,
    /// and from then on only datagrams from it are received. At once, as
    /// on Linux: no handshake.
    pub(crate) fn connect_datagram(&mut self, socket: usize, target: SocketAddr) -> i32 {
        let v6 = self.sockets[socket].v6;
        if !v6 && target.is_ipv6() {
            return -libc::EAFNOSUPPORT;
        }
        let SocketState::Datagram { peer, .. } = &mut self.sockets[socket].state else {
            unreachable!("called for datagram sockets");
        };
        *peer = Some(target);
        0
    }

    /// One attempt at an operation on a datagram socket: its result, or
    /// `None` to wait (a receive with nothing queued).
    pub(crate) fn try_datagram_operation(&mut self, socket: usize, parked: &Parked) -> Option<i32> {
        let operation = parked.operation;
        let memory = Memory::of(&operation);
        match operation {
            Operation::Recv { .. } | Operation::Read { offset: 0, .. } => {
                self.try_datagram_recv(socket, memory?, None)
            }
            Operation::Readv { offset: 0, .. } => self.try_datagram_recv(socket, memory?, None),
            Operation::RecvMsg { msg, .. } => self.try_datagram_recv(socket, memory?, Some(msg)),
            Operation::Send { .. }
            | Operation::SendZc { .. }
            | Operation::Write { offset: 0, .. } => Some(self.datagram_send(socket, memory?, None)),
            Operation::Writev { offset: 0, .. } => Some(self.datagram_send(socket, memory?, None)),
            Operation::SendMsg { msg, .. } => {
                // SAFETY: the header of this in-flight send_msg, with its
                // address (if any) in the operation's message.
                let to = unsafe { destination(msg) };
                match to {
                    Ok(to) => Some(self.datagram_send(socket, memory?, to)),
                    Err(errno) => Some(-errno),
                }
            }
            Operation::Read { .. }
            | Operation::Write { .. }
            | Operation::Readv { .. }
            | Operation::Writev { .. } => Some(-libc::ESPIPE),
            Operation::Poll { events, .. } => {
                let ready = self.datagram_readiness(socket) & (events | libc::POLLERR as u32);
                (ready != 0).then_some(ready as i32)
            }
            Operation::Accept { .. } => Some(-libc::EOPNOTSUPP),
            Operation::Shutdown { .. } => Some(-libc::ENOTCONN),
            Operation::Fsync { .. } => Some(-libc::EINVAL),
            _ => Some(-libc::EINVAL),
        }
    }

    /// Readable with a datagram queued; always writable.
    pub(crate) fn datagram_readiness(&self, socket: usize) -> u32 {
        let SocketState::Datagram { queue, .. } = &self.sockets[socket].state else {
            unreachable!("called for datagram sockets");
        };
        let readable = if queue.is_empty() {
            0
        } else {
            libc::POLLIN as u32
        };
        readable | libc::POLLOUT as u32
    }

    fn try_datagram_recv(
        &mut self,
        socket: usize,
        memory: Memory,
        msg: Option<*mut libc::msghdr>,
    ) -> Option<i32> {
        let SocketState::Datagram {
            queue,
            queued_bytes,
            ..
        } = &mut self.sockets[socket].state
        else {
            unreachable!("called for datagram sockets");
        };
        let datagram = queue.pop_front()?;
        *queued_bytes -= datagram.bytes.len();
        let count = datagram.bytes.len().min(memory.len());
        // SAFETY: a receive's memory, writable for `memory.len() >= count`.
        unsafe { memory.write_at(0, &datagram.bytes[..count]) };
        if let Some(msg) = msg {
            let truncated = count < datagram.bytes.len();
            // SAFETY: the header of this in-flight recv_msg.
            unsafe { super::iov::finish_recvmsg(msg, Some(datagram.from), truncated) };
        }
        self.datagram_spares.push(datagram.bytes);
        Some(count as i32)
    }

    /// Sends one datagram: whole, or `EMSGSIZE`. It leaves at once; what
    /// happens on the way is the packet network's.
    fn datagram_send(&mut self, socket: usize, memory: Memory, to: Option<SocketAddr>) -> i32 {
        let state = &self.sockets[socket];
        let SocketState::Datagram { peer, .. } = &state.state else {
            unreachable!("called for datagram sockets");
        };
        let Some(to) = to.or(*peer) else {
            return -libc::EDESTADDRREQ;
        };
        if !state.v6 && to.is_ipv6() {
            return -libc::EAFNOSUPPORT;
        }
        let len = memory.len();
        if len > self.options.datagram.max_bytes as usize {
            return -libc::EMSGSIZE;
        }
        let node = state.node;
        let local = state.local.expect("a datagram socket is bound");
        let from = SocketAddr::new(self.source_ip(node, local.ip(), to.ip()), local.port());
        let mut bytes = self.datagram_spares.pop().unwrap_or_default();
        bytes.clear();
        // SAFETY: a send's memory, initialized for `len` bytes.
        unsafe { memory.gather(len, &mut bytes) };
        let Some(to_node) = self.route(node, to.ip()) else {
            self.datagram_spares.push(bytes);
            return len as i32; // no such host: gone without a word
        };
        let copies = 1 + usize::from(
            self.streams
                .datagrams
                .chance(self.options.datagram.duplicate_probability),
        );
        for copy in 0..copies {
            let bytes = if copy + 1 == copies {
                std::mem::take(&mut bytes)
            } else {
                let mut spare = self.datagram_spares.pop().unwrap_or_default();
                spare.clear();
                spare.extend_from_slice(&bytes);
                spare
            };
            let datagram = Datagram { from, bytes };
            self.datagram_transmit(node, to_node, to.port(), datagram);
        }
        len as i32
    }

    /// The source address a datagram carries: the bound address, or for a
    /// socket bound to the wildcard, the node's address toward `to`.
    fn source_ip(&self, node: usize, bound: IpAddr, to: IpAddr) -> IpAddr {
        if !bound.is_unspecified() {
            return bound;
        }
        let ip = if to.is_loopback() || to.is_unspecified() {
            match to {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            }
        } else {
            self.nodes[node].ip
        };
        match (bound, ip) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => ip,
        }
    }

    /// Puts a datagram on the wire from `from` to `to`: lost, or arriving
    /// after its own latency (behind a clog, if one holds the link).
    fn datagram_transmit(&mut self, from: usize, to: usize, port: u16, datagram: Datagram) {
        let lost = self.blocked(from, to)
            || !self.nodes[to].up
            || self
                .streams
                .datagrams
                .chance(self.options.datagram.loss_probability);
        if lost {
            self.datagram_spares.push(datagram.bytes);
            return;
        }
        let departure_ns = self.transmit(from, to, datagram.bytes.len());
        let mut arrival_ns = departure_ns + self.latency_sample(from, to);
        let options = &self.options.datagram;
        if self.streams.datagrams.chance(options.reorder_probability) {
            arrival_ns += self
                .streams
                .datagrams
                .exponential(options.reorder_delay_mean_ns);
        }
        if let Some(&until_ns) = self.clogged.get(&(from, to)) {
            if until_ns > self.now_ns {
                arrival_ns = arrival_ns.max(until_ns + self.latency_sample(from, to));
            }
        }
        let packet = Packet {
            to_node: to,
            to_port: port,
            datagram,
        };
        let index = match self.packets_free.pop() {
            Some(index) => {
                self.packets[index] = Some(packet);
                index
            }
            None => {
                self.packets.push(Some(packet));
                self.packets.len() - 1
            }
        };
        self.schedule(arrival_ns, EventKind::DatagramArrive { packet: index });
    }

    /// A datagram reaches its node: queued at the socket that holds its
    /// port, if that socket takes it and has room; else dropped.
    pub(crate) fn on_datagram_arrive(&mut self, index: usize) {
        let packet = self.packets[index].take().expect("an in-flight packet");
        self.packets_free.push(index);
        let room_bytes = self.options.network.buffer_bytes as usize;
        let node = &self.nodes[packet.to_node];
        let socket = node.udp_ports.get(&packet.to_port).copied();
        let taken = match (node.up && node.process.is_some(), socket) {
            (true, Some(socket)) => match &mut self.sockets[socket].state {
                SocketState::Datagram {
                    peer,
                    queue,
                    queued_bytes,
                } => {
                    let from = packet.datagram.from;
                    let accepted = peer.map_or(true, |peer| same_peer(peer, from));
                    let fits = *queued_bytes + packet.datagram.bytes.len() <= room_bytes;
                    if accepted && fits {
                        *queued_bytes += packet.datagram.bytes.len();
                        queue.push_back(packet.datagram);
                        self.to_wake.push((socket, Wake::Readable));
                        None
                    } else {
                        Some(packet.datagram)
                    }
                }
                _ => Some(packet.datagram),
            },
            _ => Some(packet.datagram),
        };
        if let Some(dropped) = taken {
            self.datagram_spares.push(dropped.bytes);
        }
        self.wake_sockets();
    }
}

/// Whether a datagram from `from` comes from the connected `peer` (an
/// IPv4 peer matches its IPv4-mapped IPv6 form).
fn same_peer(peer: SocketAddr, from: SocketAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        ip => ip,
    };
    peer.port() == from.port() && canonical(peer.ip()) == canonical(from.ip())
}

/// The destination a `sendmsg` header names, if any.
///
/// # Safety
///
/// `msg` must be the header of an in-flight `SendMsg`, whose name (if
/// any) points at `msg_namelen` readable bytes.
unsafe fn destination(msg: *const libc::msghdr) -> Result<Option<SocketAddr>, i32> {
    // SAFETY: the caller's promise.
    let header = unsafe { &*msg };
    if header.msg_name.is_null() || header.msg_namelen == 0 {
        return Ok(None);
    }
    // SAFETY: as above: `msg_namelen` readable bytes at `msg_name`.
    let address =
        unsafe { crate::sys::socket_addr_from_raw(header.msg_name.cast(), header.msg_namelen) };
    address
        .map(Some)
        .map_err(|error| error.raw_os_error().unwrap_or(libc::EINVAL))
}
