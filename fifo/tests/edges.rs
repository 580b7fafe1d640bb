//! Edge cases of the public API.

use fifo::{Fifo, Link, Links, INDEX_MAX};

fn items(fifo: &Fifo, links: &[Link]) -> Vec<u32> {
    fifo.iter(links).collect()
}

fn pushed(links: &mut [Link], indices: &[u32]) -> Fifo {
    let mut fifo = Fifo::new();
    for &index in indices {
        fifo.push(links, index);
    }
    fifo
}

#[test]
fn new_is_empty() {
    let fifo = Fifo::new();
    assert!(fifo.is_empty());
    assert_eq!(fifo.len(), 0);
    assert_eq!(fifo.peek(), None);
    assert_eq!(Fifo::default(), fifo);
    assert!(!Link::new().is_linked());
    assert!(!Link::default().is_linked());
}

#[test]
fn pop_and_peek_on_empty() {
    let mut links = [Link::new(); 2];
    let mut fifo = Fifo::new();
    assert_eq!(fifo.peek(), None);
    assert_eq!(fifo.pop(&mut links[..]), None);
    assert_eq!(fifo.pop(&mut links[..]), None);
    assert!(fifo.is_empty());
    assert!(links.iter().all(|link| !link.is_linked()));
}

#[test]
fn push_one_pop_one() {
    let mut links = [Link::new(); 2];
    let mut fifo = Fifo::new();
    fifo.push(&mut links[..], 1);
    assert!(links[1].is_linked());
    assert!(!links[0].is_linked());
    assert_eq!(fifo.len(), 1);
    assert!(!fifo.is_empty());
    assert_eq!(fifo.peek(), Some(1));
    assert_eq!(fifo.pop(&mut links[..]), Some(1));
    assert!(!links[1].is_linked());
    assert!(fifo.is_empty());
    assert_eq!(fifo.peek(), None);
    assert_eq!(fifo.pop(&mut links[..]), None);
}

#[test]
fn fifo_order_of_many() {
    let mut links = vec![Link::new(); 100];
    let order: Vec<u32> = (0..100).map(|i| (i * 37) % 100).collect();
    let mut fifo = pushed(&mut links, &order);
    assert_eq!(fifo.len(), 100);
    assert_eq!(items(&fifo, &links), order);
    for &expected in &order {
        assert_eq!(fifo.peek(), Some(expected));
        assert_eq!(fifo.pop(&mut links[..]), Some(expected));
        assert!(!links[expected as usize].is_linked());
    }
    assert!(fifo.is_empty());
    assert!(links.iter().all(|link| !link.is_linked()));
}

#[test]
#[should_panic(expected = "is_linked")]
fn push_linked_head_of_same_fifo_panics() {
    let mut links = [Link::new(); 3];
    let mut fifo = pushed(&mut links, &[0, 1]);
    fifo.push(&mut links[..], 0);
}

#[test]
#[should_panic(expected = "is_linked")]
fn push_linked_tail_of_same_fifo_panics() {
    let mut links = [Link::new(); 3];
    let mut fifo = pushed(&mut links, &[0, 1]);
    fifo.push(&mut links[..], 1);
}

#[test]
#[should_panic(expected = "is_linked")]
fn push_only_element_again_panics() {
    let mut links = [Link::new(); 3];
    let mut fifo = pushed(&mut links, &[2]);
    fifo.push(&mut links[..], 2);
}

#[test]
#[should_panic(expected = "is_linked")]
fn push_node_linked_in_other_fifo_panics() {
    let mut links = [Link::new(); 3];
    let _other = pushed(&mut links, &[0, 1]);
    let mut fifo = pushed(&mut links, &[2]);
    fifo.push(&mut links[..], 0);
}

#[test]
#[should_panic(expected = "INDEX_MAX")]
fn push_index_above_max_panics() {
    let mut links = [Link::new(); 2];
    let mut fifo = Fifo::new();
    fifo.push(&mut links[..], INDEX_MAX + 1);
}

#[test]
#[should_panic(expected = "INDEX_MAX")]
fn push_index_u32_max_panics() {
    let mut links = [Link::new(); 2];
    let mut fifo = Fifo::new();
    fifo.push(&mut links[..], u32::MAX);
}

#[test]
#[should_panic(expected = "index out of bounds")]
fn push_index_out_of_range_panics() {
    let mut links = [Link::new(); 2];
    let mut fifo = Fifo::new();
    fifo.push(&mut links[..], 2);
}

/// Storage that pretends to hold every index, to reach `INDEX_MAX` itself.
struct Sparse {
    index: u32,
    link: Link,
    other: Link,
}

impl Links for Sparse {
    fn link(&self, index: u32) -> &Link {
        if index == self.index {
            &self.link
        } else {
            &self.other
        }
    }

    fn link_mut(&mut self, index: u32) -> &mut Link {
        if index == self.index {
            &mut self.link
        } else {
            &mut self.other
        }
    }
}

#[test]
fn push_index_max_is_allowed() {
    let mut sparse = Sparse {
        index: INDEX_MAX,
        link: Link::new(),
        other: Link::new(),
    };
    let mut fifo = Fifo::new();
    fifo.push(&mut sparse, INDEX_MAX);
    assert!(sparse.link.is_linked());
    assert_eq!(fifo.peek(), Some(INDEX_MAX));
    assert_eq!(fifo.iter(&sparse).collect::<Vec<_>>(), [INDEX_MAX]);
    assert!(fifo.contains(&sparse, INDEX_MAX));
    assert_eq!(fifo.pop(&mut sparse), Some(INDEX_MAX));
    assert!(!sparse.link.is_linked());
}

#[test]
fn remove_head() {
    let mut links = [Link::new(); 4];
    let mut fifo = pushed(&mut links, &[0, 1, 2]);
    assert!(fifo.remove(&mut links[..], 0));
    assert!(!links[0].is_linked());
    assert_eq!(fifo.len(), 2);
    assert_eq!(fifo.peek(), Some(1));
    assert_eq!(items(&fifo, &links), [1, 2]);
    fifo.push(&mut links[..], 0);
    assert_eq!(items(&fifo, &links), [1, 2, 0]);
}

#[test]
fn remove_tail_then_push() {
    let mut links = [Link::new(); 4];
    let mut fifo = pushed(&mut links, &[0, 1, 2]);
    assert!(fifo.remove(&mut links[..], 2));
    assert!(!links[2].is_linked());
    assert_eq!(fifo.len(), 2);
    assert_eq!(items(&fifo, &links), [0, 1]);
    fifo.push(&mut links[..], 3);
    fifo.push(&mut links[..], 2);
    assert_eq!(items(&fifo, &links), [0, 1, 3, 2]);
    let mut popped = Vec::new();
    while let Some(index) = fifo.pop(&mut links[..]) {
        popped.push(index);
    }
    assert_eq!(popped, [0, 1, 3, 2]);
}

#[test]
fn remove_middle() {
    let mut links = [Link::new(); 4];
    let mut fifo = pushed(&mut links, &[3, 1, 2, 0]);
    assert!(fifo.remove(&mut links[..], 2));
    assert!(!links[2].is_linked());
    assert_eq!(fifo.len(), 3);
    assert_eq!(items(&fifo, &links), [3, 1, 0]);
    assert!(fifo.remove(&mut links[..], 1));
    assert_eq!(items(&fifo, &links), [3, 0]);
    fifo.push(&mut links[..], 2);
    assert_eq!(items(&fifo, &links), [3, 0, 2]);
}

#[test]
fn remove_only_element() {
    let mut links = [Link::new(); 2];
    let mut fifo = pushed(&mut links, &[1]);
    assert!(fifo.remove(&mut links[..], 1));
    assert!(!links[1].is_linked());
    assert!(fifo.is_empty());
    assert_eq!(fifo.peek(), None);
    assert_eq!(fifo.pop(&mut links[..]), None);
    fifo.push(&mut links[..], 0);
    fifo.push(&mut links[..], 1);
    assert_eq!(items(&fifo, &links), [0, 1]);
}

#[test]
fn remove_absent_node() {
    let mut links = [Link::new(); 4];
    let mut fifo = pushed(&mut links, &[0, 1]);
    let (len_before, head_before) = (fifo.len(), fifo.peek());
    assert!(!fifo.remove(&mut links[..], 3));
    assert_eq!((fifo.len(), fifo.peek()), (len_before, head_before));
    assert_eq!(items(&fifo, &links), [0, 1]);
    assert!(!links[3].is_linked());

    let mut empty = Fifo::new();
    assert!(!empty.remove(&mut links[..], 2));
    assert!(empty.is_empty());

    // Removing twice: the second time it is absent.
    assert!(fifo.remove(&mut links[..], 1));
    assert!(!fifo.remove(&mut links[..], 1));
    assert_eq!(items(&fifo, &links), [0]);
}

#[test]
fn remove_node_linked_in_other_fifo() {
    let mut links = [Link::new(); 8];
    let mut fifo = pushed(&mut links, &[0, 1, 2]);
    let mut other = pushed(&mut links, &[3, 4, 5]);
    let mut small = pushed(&mut links, &[6, 7]);
    // The ends of another fifo are refused in O(1).
    for index in [3, 5, 6, 7] {
        assert!(!fifo.remove(&mut links[..], index));
        assert!(links[index as usize].is_linked());
    }
    for index in [0, 2, 6, 7] {
        assert!(!other.remove(&mut links[..], index));
        assert!(links[index as usize].is_linked());
    }
    // So is a middle node of another fifo, by a fifo that has no middle.
    for index in [1, 4] {
        assert!(!small.remove(&mut links[..], index));
        assert!(links[index as usize].is_linked());
    }
    assert_eq!(items(&fifo, &links), [0, 1, 2]);
    assert_eq!(items(&other, &links), [3, 4, 5]);
    assert_eq!(items(&small, &links), [6, 7]);
    assert!(other.remove(&mut links[..], 4));
    assert_eq!(items(&other, &links), [3, 5]);
    assert_eq!(items(&fifo, &links), [0, 1, 2]);
    assert!(small.remove(&mut links[..], 7));
    assert!(small.remove(&mut links[..], 6));
    assert!(small.is_empty());
}

/// A middle node of another fifo sharing the storage looks, in O(1), like
/// one of ours: debug builds catch it with the membership walk.
#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "middle of another fifo")]
fn remove_middle_of_other_fifo_panics_in_debug() {
    let mut links = [Link::new(); 6];
    let mut fifo = pushed(&mut links, &[0, 1, 2]);
    let _other = pushed(&mut links, &[3, 4, 5]);
    fifo.remove(&mut links[..], 4);
}

/// Release builds do not walk: the node leaves the other fifo (whose list
/// stays well formed), both lengths are off by one, and the next operation
/// that relies on a length panics rather than corrupting anything.
#[test]
#[cfg(not(debug_assertions))]
#[should_panic(expected = "assertion failed")]
fn remove_middle_of_other_fifo_is_caught_later_in_release() {
    let mut links = [Link::new(); 6];
    let mut fifo = pushed(&mut links, &[0, 1, 2]);
    let other = pushed(&mut links, &[3, 4, 5]);
    assert!(fifo.remove(&mut links[..], 4));
    assert!(!links[4].is_linked());
    let _ = other.iter(&links[..]).count();
}

#[test]
#[should_panic(expected = "assertion failed")]
fn remove_with_foreign_storage_panics() {
    let mut links = [Link::new(); 3];
    let mut fifo = pushed(&mut links, &[0, 1, 2]);
    // Node 1 still names 0 and 2 as neighbours, but 0 is no longer linked.
    let mut foreign = links;
    foreign[0] = Link::new();
    fifo.remove(&mut foreign[..], 1);
}

#[test]
#[should_panic(expected = "assertion failed")]
fn remove_head_with_foreign_storage_panics() {
    let mut links = [Link::new(); 3];
    let mut fifo = pushed(&mut links, &[0, 1]);
    // In this storage, our head (0) is the middle of a list.
    let mut foreign = [Link::new(); 3];
    let _other = pushed(&mut foreign, &[2, 0, 1]);
    fifo.remove(&mut foreign[..], 0);
}

#[test]
#[should_panic(expected = "INDEX_MAX")]
fn remove_index_above_max_panics() {
    let mut links = [Link::new(); 2];
    let mut fifo = Fifo::new();
    fifo.remove(&mut links[..], u32::MAX);
}

#[test]
fn remove_each_position_of_three() {
    for position in 0..3 {
        let mut links = [Link::new(); 3];
        let mut fifo = pushed(&mut links, &[0, 1, 2]);
        assert!(fifo.remove(&mut links[..], position));
        let rest: Vec<u32> = (0..3).filter(|&i| i != position).collect();
        assert_eq!(items(&fifo, &links), rest);
        // Its neighbours were relinked both ways: pushing and popping work.
        fifo.push(&mut links[..], position);
        assert_eq!(fifo.pop(&mut links[..]), Some(rest[0]));
        assert_eq!(fifo.pop(&mut links[..]), Some(rest[1]));
        assert_eq!(fifo.pop(&mut links[..]), Some(position));
        assert!(fifo.is_empty());
        assert!(links.iter().all(|link| !link.is_linked()));
    }
}

/// Nodes in each test below; Miri runs the same loops, shorter.
const MANY: u32 = if cfg!(miri) { 2_000 } else { 200_000 };

/// With O(n) removal this is 2 * 10^10 steps (minutes); with O(1) it is a
/// blink, in debug builds too (the debug membership walk is O(1) at an end).
#[test]
fn remove_many_newest_first() {
    let mut links = vec![Link::new(); MANY as usize];
    let mut fifo = Fifo::new();
    for index in 0..MANY {
        fifo.push(&mut links[..], index);
    }
    for index in (0..MANY).rev() {
        assert!(fifo.remove(&mut links[..], index));
        assert!(!links[index as usize].is_linked());
        assert_eq!(fifo.len(), index);
    }
    assert!(fifo.is_empty());
    assert!(links.iter().all(|link| !link.is_linked()));
}

#[test]
fn remove_many_oldest_first_and_alternating() {
    let mut links = vec![Link::new(); MANY as usize];
    let mut fifo = Fifo::new();
    for index in 0..MANY {
        fifo.push(&mut links[..], index);
    }
    // Oldest first, half of them.
    for index in 0..MANY / 2 {
        assert!(fifo.remove(&mut links[..], index));
        assert_eq!(fifo.peek(), Some(index + 1));
    }
    // Then from both ends in turn.
    let (mut low, mut high) = (MANY / 2, MANY - 1);
    while low <= high {
        assert!(fifo.remove(&mut links[..], high));
        if low < high {
            assert!(fifo.remove(&mut links[..], low));
        }
        low += 1;
        high = high.saturating_sub(1);
    }
    assert!(fifo.is_empty());
    assert!(links.iter().all(|link| !link.is_linked()));
}

#[test]
fn take_leaves_empty_and_returns_list() {
    let mut links = [Link::new(); 4];
    let mut fifo = pushed(&mut links, &[2, 0, 3]);
    let mut taken = fifo.take();
    assert!(fifo.is_empty());
    assert_eq!(fifo.peek(), None);
    assert_eq!(fifo, Fifo::new());
    assert_eq!(taken.len(), 3);
    assert_eq!(items(&taken, &links), [2, 0, 3]);
    assert!(links[2].is_linked());

    // New work queued on the original while the snapshot is drained.
    fifo.push(&mut links[..], 1);
    assert_eq!(taken.pop(&mut links[..]), Some(2));
    fifo.push(&mut links[..], 2);
    assert_eq!(items(&taken, &links), [0, 3]);
    assert_eq!(items(&fifo, &links), [1, 2]);

    let mut empty = Fifo::new();
    let taken_empty = empty.take();
    assert!(taken_empty.is_empty());
    assert!(empty.is_empty());
}

#[test]
fn popped_node_can_be_pushed_again() {
    let mut links = [Link::new(); 3];
    let mut fifo = pushed(&mut links, &[0, 1, 2]);
    let index = fifo.pop(&mut links[..]).unwrap();
    assert_eq!(index, 0);
    fifo.push(&mut links[..], index);
    assert_eq!(items(&fifo, &links), [1, 2, 0]);
    let mut other = Fifo::new();
    let index = fifo.pop(&mut links[..]).unwrap();
    other.push(&mut links[..], index);
    assert_eq!(items(&fifo, &links), [2, 0]);
    assert_eq!(items(&other, &links), [1]);
}

#[test]
fn iter_on_empty() {
    let links = [Link::new(); 3];
    let fifo = Fifo::new();
    let mut iter = fifo.iter(&links[..]);
    assert_eq!(iter.len(), 0);
    assert_eq!(iter.next(), None);
    assert_eq!(iter.next(), None);
    assert!(!format!("{iter:?}").is_empty());
}

#[test]
fn len_after_mixed_ops() {
    let mut links = [Link::new(); 8];
    let mut fifo = Fifo::new();
    for index in 0..5 {
        fifo.push(&mut links[..], index);
    }
    assert_eq!(fifo.len(), 5);
    assert_eq!(fifo.pop(&mut links[..]), Some(0));
    assert_eq!(fifo.len(), 4);
    assert!(fifo.remove(&mut links[..], 3));
    assert_eq!(fifo.len(), 3);
    assert!(!fifo.remove(&mut links[..], 3));
    assert_eq!(fifo.len(), 3);
    fifo.push(&mut links[..], 7);
    fifo.push(&mut links[..], 0);
    assert_eq!(fifo.len(), 5);
    assert_eq!(items(&fifo, &links), [1, 2, 4, 7, 0]);
    let taken = fifo.take();
    assert_eq!(fifo.len(), 0);
    assert_eq!(taken.len(), 5);
    assert_eq!(taken.iter(&links[..]).len(), 5);
}

#[test]
fn contains() {
    let mut links = [Link::new(); 5];
    let fifo = pushed(&mut links, &[4, 1]);
    let other = pushed(&mut links, &[2]);
    assert!(fifo.contains(&links[..], 4));
    assert!(fifo.contains(&links[..], 1));
    assert!(!fifo.contains(&links[..], 2));
    assert!(!fifo.contains(&links[..], 0));
    assert!(other.contains(&links[..], 2));
    assert!(!other.contains(&links[..], 4));
    assert!(!Fifo::new().contains(&links[..], 0));
}

#[test]
fn move_whole_fifo() {
    let mut links = [Link::new(); 3];
    let fifo = pushed(&mut links, &[1, 2]);
    let mut moved = fifo;
    assert_eq!(moved.pop(&mut links[..]), Some(1));
    assert_eq!(moved.pop(&mut links[..]), Some(2));
    assert_eq!(moved.pop(&mut links[..]), None);
}

/// A node type with a payload, as the crate docs describe.
#[derive(Debug, Default)]
struct Slot {
    value: u64,
    link: Link,
}

impl AsRef<Link> for Slot {
    fn as_ref(&self) -> &Link {
        &self.link
    }
}

impl AsMut<Link> for Slot {
    fn as_mut(&mut self) -> &mut Link {
        &mut self.link
    }
}

#[test]
fn struct_slots_survive_reallocation() {
    let mut slots: Vec<Slot> = Vec::with_capacity(1);
    let mut fifo = Fifo::new();
    for value in 0..64u32 {
        slots.push(Slot {
            value: u64::from(value) * 10,
            ..Slot::default()
        });
        // Growing the Vec reallocates; index links stay valid.
        fifo.push(&mut slots[..], value);
    }
    let values: Vec<u64> = fifo
        .iter(&slots[..])
        .map(|index| slots[index as usize].value)
        .collect();
    assert_eq!(values, (0..64).map(|v| v * 10).collect::<Vec<u64>>());
    assert!(fifo.remove(&mut slots[..], 10));
    assert_eq!(fifo.pop(&mut slots[..]), Some(0));
    assert_eq!(fifo.len(), 62);
}
