//! [`Stable<T>`]: a heap value at a fixed address that the kernel may hold
//! pointers into while its owner moves.
//!
//! A `Box<T>` would do, but moving a `Box` asserts unique access to what it
//! points at (Stacked Borrows), which the kernel's raw pointers, taken
//! before the move, contradict. A raw pointer owned by this type claims
//! nothing when it moves.
#![allow(unsafe_code)]

use std::ptr::NonNull;

/// An owned `T` on the heap, freed on drop, never moved once made.
pub(crate) struct Stable<T>(NonNull<T>);

impl<T> Stable<T> {
    pub(crate) fn new(value: T) -> Stable<T> {
        Stable(NonNull::from(Box::leak(Box::new(value))))
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: the pointer came from `Box::leak` and is freed only in
        // `drop`; `&mut self` means no other reference made through this
        // owner is live (the kernel's pointers are raw, and the value is
        // touched here only while no operation that uses it is in flight).
        unsafe { self.0.as_mut() }
    }
}

impl<T> Drop for Stable<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak`, and this is its only
        // owner; a handler the kernel may still use is leaked, never dropped.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}
