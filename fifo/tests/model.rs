//! Model-based tests: random sequences of operations on one or two fifos that
//! share one storage slice, checked after every operation against
//! `VecDeque<u32>` models.

use std::collections::VecDeque;

use fifo::{Fifo, Link};
use proptest::prelude::*;

/// Number of nodes in the shared storage.
const POOL: u32 = 32;
/// Longest sequence of operations in one case.
const OPS_MAX: usize = 200;

#[cfg(not(miri))]
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        ..ProptestConfig::default()
    }
}

/// Miri is slow and isolated from the file system: few cases, no persistence.
#[cfg(miri)]
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Push the `n % count`-th unlinked node, if any.
    Push(u32),
    Pop,
    Peek,
    /// Remove any node, whether it is in this fifo, the other fifo or none.
    Remove(u32),
    /// Remove the `n % len`-th node of this fifo (front, middle or back).
    RemoveMember(u32),
    /// Remove the node at the back of this fifo (newest first, as a loop
    /// cancelling everything it queued does).
    RemoveBack,
    /// Take the list and push every node back onto the emptied fifo.
    TakePushBack,
    /// Take the list and drain it, comparing with the model.
    TakeCompare,
    Len,
    Iter,
    Contains(u32),
    /// Pop from this fifo and push onto the other one (two-fifo runs only).
    Move,
}

/// Generates an operation from a weighted kind and an argument.
///
/// A plain tuple of integers is much cheaper to generate than a
/// `prop_oneof!` of a dozen arms (about 20 times faster under Miri), and it still
/// shrinks: the kind towards `Push`, the argument towards 0.
fn op() -> impl Strategy<Value = Op> {
    (0..24u32, any::<u32>()).prop_map(|(kind, n)| match kind {
        0..=6 => Op::Push(n),
        7..=9 => Op::Pop,
        10 => Op::Peek,
        11..=13 => Op::Remove(n % POOL),
        14..=15 => Op::RemoveMember(n),
        16 => Op::RemoveBack,
        17 => Op::TakePushBack,
        18 => Op::TakeCompare,
        19 => Op::Len,
        20 => Op::Iter,
        21 => Op::Contains(n % POOL),
        _ => Op::Move,
    })
}

/// Picks the `n % count`-th node that is in no fifo, if there is one.
fn unlinked(links: &[Link], n: u32) -> Option<u32> {
    let free = links.iter().filter(|link| !link.is_linked()).count();
    if free == 0 {
        return None;
    }
    let position = links
        .iter()
        .enumerate()
        .filter(|(_, link)| !link.is_linked())
        .nth(n as usize % free)?
        .0;
    Some(u32::try_from(position).unwrap())
}

/// Checks every fifo against its model, and every node's link against
/// membership in any model.
fn check(fifos: &[Fifo], models: &[VecDeque<u32>], links: &[Link]) {
    let mut in_model = [false; POOL as usize];
    for (fifo, model) in fifos.iter().zip(models) {
        assert!(fifo.iter(links).eq(model.iter().copied()));
        assert_eq!(fifo.iter(links).len(), model.len());
        assert_eq!(fifo.len() as usize, model.len());
        assert_eq!(fifo.is_empty(), model.is_empty());
        assert_eq!(fifo.peek(), model.front().copied());
        for &index in model {
            assert!(!in_model[index as usize]);
            in_model[index as usize] = true;
        }
    }
    for (index, link) in links.iter().enumerate() {
        assert_eq!(link.is_linked(), in_model[index], "node {index}");
    }
}

/// Applies `op` to fifo `which` (the other fifo is `1 - which` when there are
/// two) and its model.
fn apply(
    op: &Op,
    which: usize,
    fifos: &mut [Fifo],
    models: &mut [VecDeque<u32>],
    links: &mut [Link],
) {
    let other = if fifos.len() == 2 {
        Some(1 - which)
    } else {
        None
    };
    match *op {
        Op::Push(n) => {
            if let Some(index) = unlinked(links, n) {
                fifos[which].push(links, index);
                models[which].push_back(index);
            }
        }
        Op::Pop => {
            assert_eq!(fifos[which].pop(links), models[which].pop_front());
        }
        Op::Peek => {
            assert_eq!(fifos[which].peek(), models[which].front().copied());
        }
        Op::Remove(index) => {
            if other.is_some_and(|other| is_middle(&models[other], index))
                && fifos[which].len() >= 3
            {
                // Undetectable in O(1): a caller bug, which panics in debug
                // builds (tests/edges.rs checks that).
                return;
            }
            remove(index, &mut fifos[which], &mut models[which], links);
        }
        Op::RemoveMember(n) => {
            if !models[which].is_empty() {
                let index = models[which][n as usize % models[which].len()];
                remove(index, &mut fifos[which], &mut models[which], links);
            }
        }
        Op::RemoveBack => {
            if let Some(&index) = models[which].back() {
                remove(index, &mut fifos[which], &mut models[which], links);
            }
        }
        Op::TakePushBack => {
            let mut taken = fifos[which].take();
            assert!(fifos[which].is_empty());
            assert_eq!(taken.len() as usize, models[which].len());
            while let Some(index) = taken.pop(links) {
                fifos[which].push(links, index);
            }
            assert!(taken.is_empty());
        }
        Op::TakeCompare => {
            let mut taken = fifos[which].take();
            assert!(fifos[which].is_empty());
            assert_eq!(
                taken.iter(links).collect::<Vec<_>>(),
                Vec::from(models[which].clone())
            );
            for expected in models[which].drain(..) {
                assert_eq!(taken.peek(), Some(expected));
                assert_eq!(taken.pop(links), Some(expected));
            }
            assert_eq!(taken.pop(links), None);
        }
        Op::Len => {
            assert_eq!(fifos[which].len() as usize, models[which].len());
            assert_eq!(fifos[which].is_empty(), models[which].is_empty());
        }
        Op::Iter => {
            assert!(fifos[which].iter(links).eq(models[which].iter().copied()));
        }
        Op::Contains(index) => {
            assert_eq!(
                fifos[which].contains(links, index),
                models[which].contains(&index)
            );
        }
        Op::Move => {
            if let Some(other) = other {
                let popped = fifos[which].pop(links);
                assert_eq!(popped, models[which].pop_front());
                if let Some(index) = popped {
                    fifos[other].push(links, index);
                    models[other].push_back(index);
                }
            }
        }
    }
}

/// Returns whether `index` is in `model` but at neither end.
fn is_middle(model: &VecDeque<u32>, index: u32) -> bool {
    let position = model.iter().position(|&i| i == index);
    position.is_some_and(|position| position > 0 && position + 1 < model.len())
}

/// Removes `index` from `fifo` and from its model, and checks that the
/// result says whether it was there and that the node is unlinked after.
fn remove(index: u32, fifo: &mut Fifo, model: &mut VecDeque<u32>, links: &mut [Link]) {
    let was_linked = links[index as usize].is_linked();
    let position = model.iter().position(|&i| i == index);
    if let Some(position) = position {
        model.remove(position);
    }
    assert_eq!(fifo.remove(links, index), position.is_some());
    assert!(!fifo.contains(links, index));
    // A node of another fifo stays linked; ours, or an unlinked one, is not.
    assert_eq!(
        links[index as usize].is_linked(),
        was_linked && position.is_none()
    );
}

fn run(ops: &[(usize, Op)], count: usize) {
    let mut links = vec![Link::new(); POOL as usize];
    let mut fifos: Vec<Fifo> = (0..count).map(|_| Fifo::new()).collect();
    let mut models: Vec<VecDeque<u32>> = vec![VecDeque::new(); count];
    check(&fifos, &models, &links);
    for (which, op) in ops {
        apply(op, which % count, &mut fifos, &mut models, &mut links);
        check(&fifos, &models, &links);
    }
    // Drain everything: all nodes end up unlinked.
    for (fifo, model) in fifos.iter_mut().zip(&mut models) {
        while let Some(index) = fifo.pop(&mut links[..]) {
            assert_eq!(Some(index), model.pop_front());
        }
        assert!(model.is_empty());
    }
    assert!(links.iter().all(|link| !link.is_linked()));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn one_fifo_matches_model(ops in prop::collection::vec((Just(0usize), op()), 0..=OPS_MAX)) {
        run(&ops, 1);
    }

    #[test]
    fn two_fifos_share_storage(ops in prop::collection::vec((0..2usize, op()), 0..=OPS_MAX)) {
        run(&ops, 2);
    }
}

/// A fixed sequence that fills the pool, so pushes with no free node occur.
#[test]
fn full_pool() {
    let mut ops: Vec<(usize, Op)> = (0..POOL + 4).map(|n| (0, Op::Push(n * 7))).collect();
    ops.push((0, Op::TakePushBack));
    ops.extend((0..POOL).map(|n| (0, Op::Remove((n * 5) % POOL))));
    run(&ops, 1);
    let mut ops: Vec<(usize, Op)> = (0..POOL + 4)
        .map(|n| ((n % 2) as usize, Op::Push(n)))
        .collect();
    ops.extend((0..POOL).map(|n| ((n % 3 % 2) as usize, Op::Move)));
    ops.push((1, Op::TakeCompare));
    run(&ops, 2);
}

/// Fixed sequences of removals from a full pool: newest first, from the
/// middle with pushes in between, and across two fifos.
#[test]
fn full_pool_removals() {
    let mut ops: Vec<(usize, Op)> = (0..POOL).map(|n| (0, Op::Push(n))).collect();
    ops.extend((0..POOL / 2).map(|_| (0, Op::RemoveBack)));
    for n in 0..POOL {
        ops.push((0, Op::RemoveMember(n * 3)));
        ops.push((0, Op::Push(n)));
        ops.push((0, Op::Remove(n)));
    }
    run(&ops, 1);

    let mut ops: Vec<(usize, Op)> = (0..POOL).map(|n| ((n % 2) as usize, Op::Push(n))).collect();
    ops.extend((0..POOL).map(|n| (0, Op::Remove(n))));
    ops.extend((0..POOL).map(|n| ((n % 2) as usize, Op::RemoveBack)));
    run(&ops, 2);
}
