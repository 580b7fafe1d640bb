//! UDP under the simulator's packet network, with its faults on: loss,
//! duplication, reordering, partitions and the datagram size limit, each
//! deterministic for a seed. (The fault-free behaviour is compared with
//! the kernel's in tests/messages.rs.)

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use ringio::sim::{Probability, SimOptions, Simulator};
use ringio::{Handle, IO};

/// What the receiver saw: sequence numbers in arrival order.
type Arrivals = Rc<RefCell<Vec<u32>>>;

/// Receives datagrams on `socket` forever, recording their numbers.
fn receive_forever(io: &mut IO<()>, socket: Handle, arrivals: Arrivals) {
    io.recv_from(socket, Vec::with_capacity(64), move |io, _, result, buf| {
        let (count, peer) = result.expect("recv_from");
        assert_eq!(count, 4);
        assert!(peer.is_some());
        arrivals
            .borrow_mut()
            .push(u32::from_le_bytes(buf[..4].try_into().unwrap()));
        receive_forever(io, socket, arrivals);
    });
}

struct Net {
    sim: Simulator,
    nodes: [ringio::sim::NodeId; 2],
    a: IO<()>,
    b: IO<()>,
    a_socket: Handle,
    b_addr: SocketAddr,
    arrivals: Arrivals,
}

fn net(seed: u64, options: SimOptions) -> Net {
    let mut sim = Simulator::new(seed, options);
    let (node_a, node_b) = (sim.add_node("a"), sim.add_node("b"));
    let mut a: IO<()> = sim.io(node_a).unwrap();
    let mut b: IO<()> = sim.io(node_b).unwrap();
    let a_socket = a.open_udp("0.0.0.0:0".parse().unwrap()).unwrap();
    let b_socket = b.open_udp("0.0.0.0:9000".parse().unwrap()).unwrap();
    let b_addr = sim.address(node_b, 9000);
    let arrivals = Arrivals::default();
    receive_forever(&mut b, b_socket, Rc::clone(&arrivals));
    Net {
        sim,
        nodes: [node_a, node_b],
        a,
        b,
        a_socket,
        b_addr,
        arrivals,
    }
}

impl Net {
    /// Sends datagrams `range` from a to b, all at once.
    fn send(&mut self, range: std::ops::Range<u32>) {
        for sequence in range {
            let buf = sequence.to_le_bytes().to_vec();
            self.a
                .send_to(self.a_socket, buf, self.b_addr, |_, _, result, _| {
                    assert_eq!(result.unwrap(), 4, "a datagram goes whole");
                });
        }
    }

    /// Runs both nodes for `duration_ns` of world time.
    fn run_for_ns(&mut self, duration_ns: u64) {
        let done = Rc::new(Cell::new(false));
        let flag = Rc::clone(&done);
        self.a.timeout(duration_ns, move |_, _, _| flag.set(true));
        while !done.get() {
            self.a.tick(&mut ()).unwrap();
            self.b.tick(&mut ()).unwrap();
            if !done.get() {
                assert!(self.sim.advance(), "the world went idle");
            }
        }
    }
}

fn lossy(seed: u64) -> Net {
    let mut options = SimOptions::default().without_faults();
    options.datagram.loss_probability = Probability::percent(10);
    options.datagram.duplicate_probability = Probability::percent(5);
    net(seed, options)
}

#[test]
fn udp_under_the_simulator_loses_duplicates_and_reorders() {
    let mut net = lossy(7);
    net.send(0..1_000);
    net.run_for_ns(5_000_000_000);
    let arrivals = net.arrivals.borrow();
    let mut distinct = arrivals.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let duplicates = arrivals.len() - distinct.len();
    let lost = 1_000 - distinct.len();
    let overtaken = arrivals.windows(2).filter(|pair| pair[1] < pair[0]).count();
    assert!(distinct.iter().all(|&sequence| sequence < 1_000));
    assert!((50..=150).contains(&lost), "about 10% lost: {lost}");
    assert!(
        (20..=80).contains(&duplicates),
        "about 5% duplicated: {duplicates}"
    );
    assert!(
        overtaken > 100,
        "datagrams in flight at once overtake each other: {overtaken}"
    );
}

#[test]
fn the_same_seed_delivers_the_same_datagrams_in_the_same_order() {
    let run = |seed| {
        let mut net = lossy(seed);
        net.send(0..300);
        net.run_for_ns(2_000_000_000);
        let arrivals = net.arrivals.borrow().clone();
        (arrivals, net.sim.trace_hash())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0);
}

#[test]
fn a_partition_drops_datagrams_and_healing_lets_them_through() {
    let mut options = SimOptions::default().without_faults();
    options.network.partition_interval_mean_ns = 0;
    let mut net = net(3, options);
    let [a, b] = net.nodes;
    net.sim.partition(&[a], &[b], true);
    net.send(0..100);
    net.run_for_ns(1_000_000_000);
    assert!(
        net.arrivals.borrow().is_empty(),
        "a partition drops, never delays"
    );
    net.sim.heal();
    net.send(100..200);
    net.run_for_ns(1_000_000_000);
    let mut arrivals = net.arrivals.borrow().clone();
    arrivals.sort_unstable();
    assert_eq!(
        arrivals,
        (100..200).collect::<Vec<_>>(),
        "no loss without faults"
    );
}

#[test]
fn held_back_datagrams_are_overtaken_by_later_ones() {
    let mut options = SimOptions::default().without_faults();
    options.datagram.reorder_probability = Probability::percent(50);
    options.datagram.reorder_delay_mean_ns = 50_000_000;
    let mut net = net(9, options);
    // One datagram a millisecond: without the knob, each would arrive in
    // order (their latencies are far below the spacing).
    for sequence in 0..100u32 {
        net.send(sequence..sequence + 1);
        net.run_for_ns(1_000_000);
    }
    net.run_for_ns(2_000_000_000);
    let arrivals = net.arrivals.borrow();
    assert_eq!(arrivals.len(), 100, "held back, never lost");
    let overtaken = arrivals.windows(2).filter(|pair| pair[1] < pair[0]).count();
    assert!(
        overtaken > 10,
        "held-back datagrams arrive after later ones: {overtaken}"
    );
}

#[test]
fn datagrams_over_the_configured_limit_are_emsgsize() {
    let mut options = SimOptions::default().without_faults();
    options.datagram.max_bytes = 1_000;
    let mut net = net(5, options);
    let errno = Rc::new(Cell::new(None));
    let slot = Rc::clone(&errno);
    net.a.send_to(
        net.a_socket,
        vec![0u8; 1_001],
        net.b_addr,
        move |_, _, result, _| {
            slot.set(result.err().and_then(|error| error.raw_os_error()));
        },
    );
    net.run_for_ns(1_000_000);
    assert_eq!(errno.get(), Some(libc::EMSGSIZE));
}
