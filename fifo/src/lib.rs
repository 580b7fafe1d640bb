//! An intrusive FIFO whose nodes are linked by `u32` index, in the spirit of
//! TigerBeetle's `fifo.zig`.
//!
//! Each node carries its own [`Link`], so queueing a node never allocates and
//! [`Fifo::push`], [`Fifo::pop`] and [`Fifo::remove`] are O(1). A node can be
//! in at most one fifo at a time, and whether it is queued can be read off its
//! link ([`Link::is_linked`]).
//!
//! # Why indices instead of pointers
//!
//! TigerBeetle links nodes by pointer. Here the nodes live in storage owned by
//! the caller (a slice, an array, a `Vec` or slab of slots), and that storage
//! may move or reallocate when it grows, which would leave pointers dangling.
//! Linking by index into the storage is immune to that, and it needs no
//! `unsafe` code at all: the crate is `#![forbid(unsafe_code)]`, so every
//! access goes through checked indexing and the whole crate is trivially
//! Miri-clean. The price is that every operation takes the storage as an
//! argument (anything implementing [`Links`]; any slice of nodes that expose
//! their link via [`AsRef<Link>`] and [`AsMut<Link>`] does).
//!
//! The crate is `#![no_std]` and never allocates.
//!
//! # Encoding
//!
//! The list is doubly linked, so that a node can be unlinked from the middle
//! in O(1) (cancelling one of many queued operations, newest first, must not
//! walk the queue). A [`Link`] holds two `u32`s, `prev` and `next`, 8 bytes:
//!
//! * `next == u32::MAX` means *unlinked* (the node is in no fifo); `prev` is
//!   then `u32::MAX` too,
//! * `next == u32::MAX - 1` means *tail* (linked, and the last node of its
//!   fifo), and `prev == u32::MAX - 1` means *head* (the first); a fifo's
//!   only node is both,
//! * any other value is the index of the next (or previous) node in the same
//!   fifo.
//!
//! Node indices are therefore limited to [`INDEX_MAX`] (`u32::MAX - 2`), which
//! also bounds a fifo's length so that it fits in a `u32`.
//!
//! # Which fifo a node is in
//!
//! A link says whether its node is in *a* fifo, not in which one. Several
//! fifos may share one storage (a node moves between them), so
//! [`Fifo::remove`] checks in O(1) what it can: an unlinked node, and the head
//! or tail of another fifo, are refused (`false`, nothing changes), and the
//! neighbours of a node must point back at it. What O(1) cannot tell apart is
//! a node in the *middle* of another fifo sharing the storage. Removing one is
//! a caller bug: debug builds catch it with a membership walk and panic;
//! release builds unlink the node from the other fifo, whose list stays well
//! formed but whose length is then one too high (and this fifo's one too
//! low), which a later push, pop or iteration notices by panicking. The crate
//! has no `unsafe` code, so no misuse can break memory safety. Callers that
//! track which fifo each node is in (as a state field beside the link) never
//! hit this.
//!
//! # Assertions
//!
//! Following TigerBeetle's style, the O(1) conditions each operation relies
//! on are checked with `assert!` (kept in release builds) on both the push and
//! the pop side: a pushed node is not linked, a popped or removed node was
//! linked, and its neighbours point back at it. Those are what the caller's
//! storage says, and misuse can break them. Head, tail and length are the
//! fifo's own private fields, changed together by its methods alone, so in
//! `push` and `pop` (the hot path of an I/O loop, run once per operation)
//! their agreement with each other is checked in debug builds only, where
//! the model test would catch a bug in this crate. The whole-fifo invariant
//! check, which reads the tail's link, runs after every push, pop and remove
//! in debug builds only, because in a large table that read is a cache miss;
//! so does the membership walk in `remove`. Misuse, such as pushing a node that is already
//! linked or operating on a fifo with storage other than its own, panics
//! instead of corrupting the lists.
//!
//! # Example
//!
//! ```
//! use fifo::{Fifo, Link};
//!
//! struct Slot {
//!     name: &'static str,
//!     link: Link,
//! }
//!
//! impl AsRef<Link> for Slot {
//!     fn as_ref(&self) -> &Link {
//!         &self.link
//!     }
//! }
//!
//! impl AsMut<Link> for Slot {
//!     fn as_mut(&mut self) -> &mut Link {
//!         &mut self.link
//!     }
//! }
//!
//! let mut slots = [
//!     Slot { name: "a", link: Link::new() },
//!     Slot { name: "b", link: Link::new() },
//!     Slot { name: "c", link: Link::new() },
//! ];
//! let mut fifo = Fifo::new();
//!
//! fifo.push(&mut slots[..], 2);
//! fifo.push(&mut slots[..], 0);
//! assert_eq!(fifo.len(), 2);
//! assert!(slots[2].link.is_linked());
//! assert!(!slots[1].link.is_linked());
//!
//! let order: Vec<&str> = fifo.iter(&slots[..]).map(|i| slots[i as usize].name).collect();
//! assert_eq!(order, ["c", "a"]);
//!
//! assert_eq!(fifo.pop(&mut slots[..]), Some(2));
//! assert!(!slots[2].link.is_linked()); // Popped nodes are unlinked and may be pushed again.
//! assert_eq!(fifo.pop(&mut slots[..]), Some(0));
//! assert_eq!(fifo.pop(&mut slots[..]), None);
//!
//! // A bare array of links works as storage too.
//! let mut links = [Link::new(); 4];
//! let mut fifo = Fifo::new();
//! fifo.push(&mut links, 3);
//! fifo.push(&mut links, 1);
//! fifo.push(&mut links, 2);
//! assert!(fifo.remove(&mut links, 1)); // From the middle, in O(1).
//! assert!(!fifo.remove(&mut links, 1)); // No longer linked.
//! assert_eq!(fifo.iter(&links).collect::<Vec<_>>(), [3, 2]);
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::fmt;
use core::iter::FusedIterator;

/// The largest index a node may have (`u32::MAX - 2`); the two values above it
/// encode "unlinked" and "head"/"tail".
pub const INDEX_MAX: u32 = u32::MAX - 2;

/// `Link::next` and `Link::prev` of a node that is in no fifo.
const UNLINKED: u32 = u32::MAX;
/// `Link::next` of the last node of a fifo.
const TAIL: u32 = u32::MAX - 1;
/// `Link::prev` of the first node of a fifo.
const HEAD: u32 = u32::MAX - 1;
/// `Fifo::head`/`Fifo::tail`/`Iter::next` when there is no such node.
const NONE: u32 = u32::MAX;

const _: () = assert!(INDEX_MAX < TAIL);
const _: () = assert!(INDEX_MAX < HEAD);
const _: () = assert!(TAIL < UNLINKED);
const _: () = assert!(HEAD < UNLINKED);
const _: () = assert!(core::mem::size_of::<Link>() == 8);

/// The link that each node carries. Unlinked by default.
///
/// A node is *linked* while it is in a fifo (from [`Fifo::push`] until it is
/// popped or removed) and *unlinked* otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    prev: u32,
    next: u32,
}

impl Link {
    /// Returns an unlinked link.
    #[must_use]
    pub const fn new() -> Link {
        Link {
            prev: UNLINKED,
            next: UNLINKED,
        }
    }

    /// Returns whether the node carrying this link is currently in a fifo.
    #[must_use]
    pub const fn is_linked(&self) -> bool {
        self.next != UNLINKED
    }

    /// Returns whether the node is the first of its fifo.
    const fn is_head(&self) -> bool {
        self.prev == HEAD
    }

    /// Returns whether the node is the last of its fifo.
    const fn is_tail(&self) -> bool {
        self.next == TAIL
    }

    /// Asserts that `prev` and `next` agree on whether the node is linked.
    fn assert_consistent(&self) {
        assert_eq!(self.prev == UNLINKED, self.next == UNLINKED);
    }
}

impl Default for Link {
    /// Returns an unlinked link.
    fn default() -> Link {
        Link::new()
    }
}

impl AsRef<Link> for Link {
    /// Returns the link itself, so that `[Link]` works as [`Links`] storage.
    fn as_ref(&self) -> &Link {
        self
    }
}

impl AsMut<Link> for Link {
    /// Returns the link itself, so that `[Link]` works as [`Links`] storage.
    fn as_mut(&mut self) -> &mut Link {
        self
    }
}

/// Storage that holds nodes addressed by `u32` index and hands out each
/// node's link.
///
/// Implementations must return the same link for the same index on every call
/// (as long as the storage is not otherwise modified), and may panic for an
/// index that is out of range.
pub trait Links {
    /// Returns the link of the node at `index`.
    fn link(&self, index: u32) -> &Link;

    /// Returns the link of the node at `index`, mutably.
    fn link_mut(&mut self, index: u32) -> &mut Link;
}

/// Converts a node index to a slice index. An index that does not fit in a
/// `usize` maps to `usize::MAX`, which is out of range of any slice of
/// non-zero-sized nodes, so indexing panics rather than truncating.
fn slot(index: u32) -> usize {
    usize::try_from(index).unwrap_or(usize::MAX)
}

/// Any slice of nodes that expose their link works as storage.
///
/// # Panics
///
/// [`Links::link`] and [`Links::link_mut`] panic if `index` is out of range,
/// like slice indexing.
impl<T: AsRef<Link> + AsMut<Link>> Links for [T] {
    fn link(&self, index: u32) -> &Link {
        self[slot(index)].as_ref()
    }

    fn link_mut(&mut self, index: u32) -> &mut Link {
        self[slot(index)].as_mut()
    }
}

/// Any array of nodes that expose their link works as storage, like a slice.
///
/// # Panics
///
/// [`Links::link`] and [`Links::link_mut`] panic if `index` is out of range,
/// like array indexing.
impl<T: AsRef<Link> + AsMut<Link>, const N: usize> Links for [T; N] {
    fn link(&self, index: u32) -> &Link {
        self[slot(index)].as_ref()
    }

    fn link_mut(&mut self, index: u32) -> &mut Link {
        self[slot(index)].as_mut()
    }
}

/// A FIFO of node indices, linked through the nodes' own [`Link`]s.
///
/// The fifo itself is just a head, a tail and a length; the links live in the
/// caller's storage, which every operation takes as an argument. A fifo must
/// always be used with the same storage.
///
/// Moving a `Fifo` value moves the whole list in O(1) (see [`Fifo::take`]).
/// `Fifo` is deliberately neither `Copy` nor `Clone`: two copies would share
/// the same links, and mutating one would corrupt the other.
#[derive(Debug, PartialEq, Eq)]
pub struct Fifo {
    head: u32,
    tail: u32,
    len: u32,
}

impl Fifo {
    /// Returns an empty fifo.
    #[must_use]
    pub const fn new() -> Fifo {
        Fifo {
            head: NONE,
            tail: NONE,
            len: 0,
        }
    }

    /// Returns the number of nodes in the fifo.
    #[must_use]
    pub const fn len(&self) -> u32 {
        self.len
    }

    /// Returns whether the fifo holds no nodes.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the index of the node at the head (the next to be popped),
    /// without removing it.
    #[must_use]
    pub const fn peek(&self) -> Option<u32> {
        if self.head == NONE {
            None
        } else {
            Some(self.head)
        }
    }

    /// Appends the node at `index` to the tail of the fifo. O(1).
    ///
    /// # Panics
    ///
    /// Panics if `index` is greater than [`INDEX_MAX`], if `index` is out of
    /// range for `links`, or if the node is already linked (in this fifo or in
    /// any other). Panics if the fifo's invariants do not hold, which happens
    /// when it is used with storage other than its own.
    // Always inlined: an I/O loop runs each once per operation, and the
    // call would cost about as much as the body.
    #[inline(always)]
    pub fn push<L: Links + ?Sized>(&mut self, links: &mut L, index: u32) {
        assert!(index <= INDEX_MAX);
        // Catches a node already in this fifo or any other, in O(1); an O(n)
        // `contains` scan here would add nothing and make pushes quadratic.
        let link = links.link(index);
        assert!(!link.is_linked());
        debug_assert!(link.prev == UNLINKED);
        self.debug_assert_invariants(links);

        // Head, tail and length are private and change together below, so
        // checks of them against each other are debug-only: only a bug in
        // this crate could break them, and the model test looks for one.
        // What the caller's storage says (the tail's link) stays checked.
        let prev = if self.tail == NONE {
            debug_assert!(self.head == NONE && self.len == 0);
            self.head = index;
            HEAD
        } else {
            debug_assert!(self.head != NONE && self.len > 0);
            let tail = links.link_mut(self.tail);
            assert!(tail.is_tail());
            tail.next = index;
            self.tail
        };
        *links.link_mut(index) = Link { prev, next: TAIL };
        self.tail = index;
        // Cannot overflow: every node in the fifo has a distinct index of at
        // most INDEX_MAX, so len <= INDEX_MAX + 1 < u32::MAX.
        self.len += 1;
        self.debug_assert_invariants(links);
    }

    /// Removes the node at the head of the fifo and returns its index, or
    /// returns `None` if the fifo is empty. O(1).
    ///
    /// The popped node's link is reset to unlinked, so it may be pushed again.
    ///
    /// # Panics
    ///
    /// Panics if the fifo's invariants do not hold (for example the head node
    /// is not linked), which happens when it is used with storage other than
    /// its own.
    // Always inlined: an I/O loop runs each once per operation, and the
    // call would cost about as much as the body.
    #[inline(always)]
    pub fn pop<L: Links + ?Sized>(&mut self, links: &mut L) -> Option<u32> {
        self.debug_assert_invariants(links);
        if self.head == NONE {
            debug_assert!(self.tail == NONE && self.len == 0);
            return None;
        }
        debug_assert!(self.tail != NONE && self.len > 0);

        // As in `push`: the storage's links are checked, the fifo's own
        // fields against each other only in debug builds.
        let index = self.head;
        let link = *links.link(index);
        // A head is linked: its `prev` is HEAD, never UNLINKED.
        assert!(link.is_head());
        debug_assert!(link.is_linked());
        if link.is_tail() {
            assert!(self.tail == index);
            self.head = NONE;
            self.tail = NONE;
        } else {
            let next = links.link_mut(link.next);
            assert!(next.prev == index);
            next.prev = HEAD;
            self.head = link.next;
        }
        *links.link_mut(index) = Link::new();
        self.len -= 1;
        self.debug_assert_invariants(links);
        Some(index)
    }

    /// Removes the node at `index` from anywhere in the fifo. O(1).
    ///
    /// Returns `true` if the node was in this fifo and is now unlinked.
    /// Returns `false`, changing nothing, if the node is unlinked, if it is
    /// the head or the tail of another fifo, or if it is in the middle of
    /// another fifo while this one has fewer than three nodes (so no middle).
    ///
    /// A node in the middle of another fifo that shares the storage cannot
    /// be told apart in O(1) from one in the middle of this fifo (see the
    /// crate docs, "Which fifo a node is in"): removing one is a caller bug,
    /// which panics in debug builds and, in release builds, leaves both
    /// fifos' lengths wrong until a later operation panics on them.
    ///
    /// # Panics
    ///
    /// Panics if `index` is greater than [`INDEX_MAX`] or out of range for
    /// `links`, or if the fifo's invariants do not hold (say a neighbour does
    /// not point back at the node), which happens when it is used with
    /// storage other than its own. In debug builds, also panics if the node
    /// is in the middle of another fifo, as above.
    pub fn remove<L: Links + ?Sized>(&mut self, links: &mut L, index: u32) -> bool {
        assert!(index <= INDEX_MAX);
        self.debug_assert_invariants(links);
        let link = *links.link(index);
        link.assert_consistent();
        if !self.may_hold(&link, index) {
            return false;
        }
        debug_assert!(
            self.contains_near(links, index),
            "node {index} is in the middle of another fifo"
        );
        assert!(self.len > 0);
        self.unlink(links, &link, index);
        self.len -= 1;

        assert!(!links.link(index).is_linked());
        self.debug_assert_invariants(links);
        true
    }

    /// Returns whether the node at `index`, whose link is `link`, may be in
    /// this fifo, from what O(1) can tell: it is linked, and it is either one
    /// of this fifo's ends or a middle node while this fifo has a middle.
    fn may_hold(&self, link: &Link, index: u32) -> bool {
        if !link.is_linked() {
            return false;
        }
        let at_head = self.head == index;
        let at_tail = self.tail == index;
        if at_head || at_tail {
            // Ours. Our ends must say so in their links, else the storage is
            // not this fifo's own.
            assert!(link.is_head() == at_head);
            assert!(link.is_tail() == at_tail);
            return true;
        }
        // An end of another fifo is refused; a middle node may be ours only
        // if we have a middle.
        !link.is_head() && !link.is_tail() && self.len >= 3
    }

    /// Unlinks the node at `index` (whose link is `link`) from its
    /// neighbours, or from this fifo's head and tail where it has none,
    /// after checking that each neighbour points back at it.
    fn unlink<L: Links + ?Sized>(&mut self, links: &mut L, link: &Link, index: u32) {
        if !link.is_head() {
            assert!(links.link(link.prev).next == index);
        }
        if !link.is_tail() {
            assert!(links.link(link.next).prev == index);
        }
        if link.is_head() {
            assert!(self.head == index);
            self.head = if link.is_tail() { NONE } else { link.next };
        } else {
            links.link_mut(link.prev).next = link.next;
        }
        if link.is_tail() {
            assert!(self.tail == index);
            self.tail = if link.is_head() { NONE } else { link.prev };
        } else {
            links.link_mut(link.next).prev = link.prev;
        }
        *links.link_mut(index) = Link::new();
    }

    /// Returns whether the node at `index` is in this fifo. O(n), meant for
    /// `debug_assert!`.
    ///
    /// # Panics
    ///
    /// Panics if the fifo's invariants do not hold, which happens when it is
    /// used with storage other than its own.
    #[must_use]
    pub fn contains<L: Links + ?Sized>(&self, links: &L, index: u32) -> bool {
        self.iter(links).any(|i| i == index)
    }

    /// Returns whether the linked node at `index` is in this fifo, by walking
    /// from it towards both ends at once until one of them is reached.
    /// O(distance to the nearer end), meant for `debug_assert!` in `remove`.
    ///
    /// [`Fifo::contains`] walks from the head, so checking each removal with
    /// it would make removing newest first (as when a loop cancels all its
    /// queued operations) quadratic in debug builds. This walk is O(1) for a
    /// node at either end.
    fn contains_near<L: Links + ?Sized>(&self, links: &L, index: u32) -> bool {
        let mut backward = index;
        let mut forward = index;
        // A member is fewer than `len` steps from either end, so a longer walk
        // means the node is in a longer fifo (or the links form a cycle).
        for _ in 0..self.len {
            let back = links.link(backward);
            assert!(back.is_linked());
            if back.is_head() {
                return backward == self.head;
            }
            let fore = links.link(forward);
            assert!(fore.is_linked());
            if fore.is_tail() {
                return forward == self.tail;
            }
            backward = back.prev;
            forward = fore.next;
        }
        false
    }

    /// Returns the whole list, leaving `self` empty. O(1).
    ///
    /// The returned fifo owns the nodes (they stay linked) and uses the same
    /// storage. This lets a caller process a snapshot of the queue while new
    /// work is pushed to `self` for a later pass.
    #[must_use = "the nodes stay linked in the returned fifo"]
    pub fn take(&mut self) -> Fifo {
        let taken = core::mem::take(self);
        assert!(self.is_empty());
        assert!(self.head == NONE);
        assert!(self.tail == NONE);
        taken
    }

    /// Returns an iterator over the indices of the nodes in the fifo, from
    /// head to tail.
    ///
    /// The iterator borrows `links`, so the fifo cannot be modified while it
    /// is alive.
    pub fn iter<'a, L: Links + ?Sized>(&self, links: &'a L) -> Iter<'a, L> {
        Iter {
            links,
            prev: HEAD,
            next: self.head,
            remaining: self.len,
        }
    }

    /// [`assert_invariants`](Fifo::assert_invariants) in debug builds only.
    /// Push, pop and remove already assert, in every build, the conditions
    /// their own branches rely on; the whole-fifo check would add reads of
    /// the head's and the tail's links (often cache misses in a large table)
    /// to every call.
    #[inline]
    fn debug_assert_invariants<L: Links + ?Sized>(&self, links: &L) {
        if cfg!(debug_assertions) {
            self.assert_invariants(links);
        }
    }

    /// Checks the O(1) invariants that tie head, tail, length and the links
    /// of the head and the tail together.
    fn assert_invariants<L: Links + ?Sized>(&self, links: &L) {
        assert_eq!(self.head == NONE, self.tail == NONE);
        assert_eq!(self.len == 0, self.head == NONE);
        if self.head != NONE {
            assert_eq!(self.len == 1, self.head == self.tail);
        }
        if self.head != NONE {
            let head = links.link(self.head);
            assert!(head.is_linked());
            assert!(head.is_head());
        }
        if self.tail != NONE {
            let tail = links.link(self.tail);
            assert!(tail.is_linked());
            assert!(tail.is_tail());
        }
    }
}

impl Default for Fifo {
    /// Returns an empty fifo.
    fn default() -> Fifo {
        Fifo::new()
    }
}

/// An iterator over the indices of the nodes in a [`Fifo`], from head to
/// tail. Returned by [`Fifo::iter`].
///
/// # Panics
///
/// [`Iterator::next`] panics if the links do not form a list of the fifo's
/// length whose back links match, which happens when the fifo is iterated with storage other than
/// its own.
pub struct Iter<'a, L: ?Sized> {
    links: &'a L,
    /// The node last yielded (`HEAD` before the first), which the next
    /// node's `prev` must name.
    prev: u32,
    next: u32,
    remaining: u32,
}

impl<L: ?Sized> Clone for Iter<'_, L> {
    fn clone(&self) -> Self {
        Iter {
            links: self.links,
            prev: self.prev,
            next: self.next,
            remaining: self.remaining,
        }
    }
}

/// Shows the index the iterator will yield next (`None` when exhausted) and
/// how many indices remain; the storage is not shown, so `L` need not be
/// `Debug`.
impl<L: ?Sized> fmt::Debug for Iter<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let next = if self.next == NONE {
            None
        } else {
            Some(self.next)
        };
        f.debug_struct("Iter")
            .field("next", &next)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<L: Links + ?Sized> Iterator for Iter<'_, L> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.next == NONE {
            assert!(self.remaining == 0);
            return None;
        }
        assert!(self.remaining > 0);

        let index = self.next;
        let link = self.links.link(index);
        assert!(link.is_linked());
        assert!(link.prev == self.prev);
        let next = link.next;
        self.prev = index;
        self.remaining -= 1;
        if next == TAIL {
            assert!(self.remaining == 0);
            self.next = NONE;
        } else {
            self.next = next;
        }
        Some(index)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = slot(self.remaining);
        (remaining, Some(remaining))
    }
}

impl<L: Links + ?Sized> ExactSizeIterator for Iter<'_, L> {}

impl<L: Links + ?Sized> FusedIterator for Iter<'_, L> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(Link::new().next, u32::MAX);
        assert_eq!(Link::new().prev, u32::MAX);
        assert_eq!(Link::default(), Link::new());
        assert_eq!(INDEX_MAX, u32::MAX - 2);

        let mut links = [Link::new(); 4];
        let mut fifo = Fifo::new();
        assert_eq!((fifo.head, fifo.tail, fifo.len), (NONE, NONE, 0));

        fifo.push(&mut links, 1);
        assert_eq!(
            links[1],
            Link {
                prev: HEAD,
                next: TAIL
            }
        );
        fifo.push(&mut links, 0);
        assert_eq!(
            links[1],
            Link {
                prev: HEAD,
                next: 0
            }
        );
        assert_eq!(
            links[0],
            Link {
                prev: 1,
                next: TAIL
            }
        );
        fifo.push(&mut links, 3);
        assert_eq!(links[0], Link { prev: 1, next: 3 });
        assert_eq!(
            links[3],
            Link {
                prev: 0,
                next: TAIL
            }
        );
        assert_eq!(links[2], Link::new());
        assert_eq!((fifo.head, fifo.tail, fifo.len), (1, 3, 3));

        assert!(fifo.remove(&mut links, 0));
        assert_eq!(links[0], Link::new());
        assert_eq!(
            links[1],
            Link {
                prev: HEAD,
                next: 3
            }
        );
        assert_eq!(
            links[3],
            Link {
                prev: 1,
                next: TAIL
            }
        );

        assert_eq!(fifo.pop(&mut links), Some(1));
        assert_eq!(links[1], Link::new());
        assert_eq!(
            links[3],
            Link {
                prev: HEAD,
                next: TAIL
            }
        );
        assert_eq!((fifo.head, fifo.tail, fifo.len), (3, 3, 1));
    }

    #[test]
    fn contains_near_walks_to_the_nearer_end() {
        let mut links = [Link::new(); 8];
        let mut fifo = Fifo::new();
        let mut other = Fifo::new();
        for index in 0..5 {
            fifo.push(&mut links, index);
        }
        for index in 5..8 {
            other.push(&mut links, index);
        }
        for index in 0..5 {
            assert!(fifo.contains_near(&links, index));
            assert!(!other.contains_near(&links, index));
        }
        for index in 5..8 {
            assert!(!fifo.contains_near(&links, index));
            assert!(other.contains_near(&links, index));
        }
    }

    #[test]
    fn slot_does_not_truncate() {
        assert_eq!(slot(0), 0);
        assert_eq!(
            slot(INDEX_MAX),
            usize::try_from(INDEX_MAX).unwrap_or(usize::MAX)
        );
    }

    #[test]
    fn iter_debug_and_size_hint() {
        extern crate std;
        use std::format;

        let mut links = [Link::new(); 2];
        let mut fifo = Fifo::new();
        assert_eq!(
            format!("{:?}", fifo.iter(&links)),
            "Iter { next: None, remaining: 0, .. }"
        );
        fifo.push(&mut links, 1);
        fifo.push(&mut links, 0);
        let mut iter = fifo.iter(&links);
        assert_eq!(
            format!("{iter:?}"),
            "Iter { next: Some(1), remaining: 2, .. }"
        );
        assert_eq!(iter.len(), 2);
        assert_eq!(iter.next(), Some(1));
        assert_eq!(iter.len(), 1);
        assert_eq!(iter.next(), Some(0));
        assert_eq!(iter.len(), 0);
        assert_eq!(iter.next(), None);
        assert_eq!(iter.next(), None);
    }

    #[test]
    #[should_panic(expected = "remaining")]
    fn iter_with_foreign_storage_panics() {
        let mut links = [Link::new(); 3];
        let mut fifo = Fifo::new();
        fifo.push(&mut links, 0);
        fifo.push(&mut links, 1);
        // Different storage in which node 0 is the tail: the list is too short.
        let mut other = [Link::new(); 3];
        let mut other_fifo = Fifo::new();
        other_fifo.push(&mut other, 0);
        let _ = fifo.iter(&other).count();
    }
}
