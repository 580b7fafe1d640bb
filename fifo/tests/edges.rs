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
    let mut links = [Link::new(); 6];
    let mut fifo = pushed(&mut links, &[0, 1, 2]);
    let mut other = pushed(&mut links, &[3, 4, 5]);
    for index in 3..6 {
        assert!(!fifo.remove(&mut links[..], index));
        assert!(links[index as usize].is_linked());
    }
    for index in 0..3 {
        assert!(!other.remove(&mut links[..], index));
        assert!(links[index as usize].is_linked());
    }
    assert_eq!(items(&fifo, &links), [0, 1, 2]);
    assert_eq!(items(&other, &links), [3, 4, 5]);
    assert!(other.remove(&mut links[..], 4));
    assert_eq!(items(&other, &links), [3, 5]);
    assert_eq!(items(&fifo, &links), [0, 1, 2]);
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
