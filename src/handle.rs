//! Descriptors owned by the `IO`: the table behind [`Handle`].
//!
//! No safe function of ringio takes a raw descriptor (RFC 3128, I/O safety).
//! Sockets, files and directories are created through the `IO`, which owns
//! each `OwnedFd` in this table and names it by a `Copy` handle: a table
//! index, the index's generation, and the tag of the `IO` that made it. A
//! closed, stale or foreign handle names nothing, so an operation on it
//! completes with `EBADF` without reaching the kernel.
//!
//! An entry is reused only once nothing in flight refers to it: closing marks
//! it `Closing` at once (new operations get `EBADF`), and it is freed when its
//! close and every operation that was in flight on it have completed. The
//! completion table can therefore keep the entry's index in each slot and
//! count operations per entry without a generation check. An entry whose
//! generation would wrap is retired instead of reused, so that no handle can
//! ever name a later descriptor.
//!
//! On io_uring the table is mirrored by the ring's registered file table
//! ([`Config::registered_files`](crate::Config::registered_files)): the
//! descriptor of entry `i` is also installed at slot `i`, and operations
//! on it name the slot. The rule above is what makes that safe: a slot is
//! reused only with its entry, after every operation that named it has
//! completed, and the close clears the slot before it closes the fd.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::backend::Backend;
use crate::io::IO;
use crate::sys;

/// A descriptor (socket, file or directory) owned by an [`IO`](crate::IO).
///
/// Returned by [`open_socket`](crate::IO::open_socket),
/// [`listen`](crate::IO::listen), [`accept`](crate::IO::accept),
/// [`open_file`](crate::IO::open_file) and [`adopt`](crate::IO::adopt). It
/// is `Copy`: copies name the same descriptor, and once it is closed (with
/// [`close`](crate::IO::close)) or given back (with
/// [`release`](crate::IO::release)) every copy is stale. An operation on a
/// stale handle, or on one from another `IO`, completes with `EBADF` in its
/// callback; no handle can ever name a different descriptor than the one it
/// was made for.
///
/// For interoperation (a socket option that ringio does not offer), borrow
/// the descriptor with [`IO::as_fd`](crate::IO::as_fd).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    pub(crate) index: u32,
    pub(crate) generation: u32,
    pub(crate) io: u32,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}#{}@{})", self.index, self.generation, self.io)
    }
}

/// No entry: the `handle` field of a completion slot whose operation names
/// no descriptor.
pub(crate) const NO_HANDLE: u32 = u32::MAX;

/// What an open entry holds.
pub(crate) enum Descriptor {
    /// A kernel descriptor the `IO` owns.
    Os(OwnedFd),
    /// A simulated descriptor, in the simulator's per-node numbering.
    Virtual(RawFd),
}

impl Descriptor {
    /// The number the backend uses.
    pub(crate) fn raw(&self) -> RawFd {
        match self {
            Descriptor::Os(fd) => fd.as_raw_fd(),
            Descriptor::Virtual(fd) => *fd,
        }
    }
}

enum State {
    Free,
    Open(Descriptor),
    /// Closed by the user: new operations get `EBADF`. The descriptor stays
    /// here until the close operation is handed to the backend, so that an
    /// `IO` dropped before then still closes it.
    Closing(Option<Descriptor>),
}

struct Entry {
    generation: u32,
    state: State,
    /// Operations in flight on this entry, the close not included.
    in_flight: u32,
    /// The close's completion slot, once its result is in while other
    /// operations on the entry were still in flight.
    close_held: Option<u32>,
    /// The close operation has completed (its result is in).
    close_done: bool,
}

/// What `Handles::close_finished` asks the loop to do with the close's slot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CloseDone {
    /// Nothing else is in flight: complete it now.
    Complete,
    /// Hold it until the last operation on the entry completes.
    Hold,
}

/// The table of descriptors an `IO` owns.
pub(crate) struct Handles {
    entries: Vec<Entry>,
    free: VecDeque<u32>,
    /// The owning `IO`'s tag, carried by every handle it makes.
    io: u32,
    open: u32,
}

impl Handles {
    pub(crate) fn new(io: u32) -> Handles {
        Handles {
            entries: Vec::new(),
            free: VecDeque::new(),
            io,
            open: 0,
        }
    }

    /// Takes ownership of `descriptor` and returns its handle.
    pub(crate) fn insert(&mut self, descriptor: Descriptor) -> Handle {
        let index = match self.free.pop_front() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 descriptors");
                assert!(index < NO_HANDLE);
                self.entries.push(Entry {
                    generation: 0,
                    state: State::Free,
                    in_flight: 0,
                    close_held: None,
                    close_done: false,
                });
                index
            }
        };
        let entry = &mut self.entries[index as usize];
        assert!(matches!(entry.state, State::Free));
        assert_eq!(entry.in_flight, 0);
        entry.state = State::Open(descriptor);
        entry.close_held = None;
        entry.close_done = false;
        self.open += 1;
        Handle {
            index,
            generation: entry.generation,
            io: self.io,
        }
    }

    fn entry(&self, handle: Handle) -> Option<&Entry> {
        if handle.io != self.io {
            return None;
        }
        let entry = self.entries.get(handle.index as usize)?;
        (entry.generation == handle.generation).then_some(entry)
    }

    /// The raw number of an open handle's descriptor.
    pub(crate) fn raw(&self, handle: Handle) -> Option<RawFd> {
        self.entry(handle)?;
        self.raw_at(handle.index)
    }

    /// The raw number of the open entry at `index`'s descriptor.
    pub(crate) fn raw_at(&self, index: u32) -> Option<RawFd> {
        match &self.entries.get(index as usize)?.state {
            State::Open(descriptor) => Some(descriptor.raw()),
            _ => None,
        }
    }

    /// The open handle's descriptor.
    pub(crate) fn descriptor(&self, handle: Handle) -> Option<&Descriptor> {
        match &self.entry(handle)?.state {
            State::Open(descriptor) => Some(descriptor),
            _ => None,
        }
    }

    /// Whether the entry at `index` is open (not closing or free).
    pub(crate) fn is_open_index(&self, index: u32) -> bool {
        matches!(self.entries[index as usize].state, State::Open(_))
    }

    /// Operations in flight on an open handle (`None` if it is not open).
    pub(crate) fn in_flight(&self, handle: Handle) -> Option<u32> {
        let entry = self.entry(handle)?;
        matches!(entry.state, State::Open(_)).then_some(entry.in_flight)
    }

    /// Operations in flight on the entry at `index`, open or closing.
    pub(crate) fn in_flight_at(&self, index: u32) -> u32 {
        self.entries[index as usize].in_flight
    }

    /// An operation on the entry at `index` was submitted.
    pub(crate) fn op_started(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        assert!(!matches!(entry.state, State::Free));
        entry.in_flight += 1;
    }

    /// An operation on the entry at `index` completed. Returns the close
    /// slot to complete now, if this was the last operation a held close
    /// was waiting for.
    pub(crate) fn op_finished(&mut self, index: u32) -> Option<u32> {
        let entry = &mut self.entries[index as usize];
        assert!(entry.in_flight > 0);
        entry.in_flight -= 1;
        if entry.in_flight > 0 || !entry.close_done {
            return None;
        }
        let held = entry.close_held.take();
        assert!(held.is_some());
        self.free_entry(index);
        held
    }

    /// Marks an open handle closing and returns its raw number, which
    /// stays valid (owned here) until [`hand_over`](Handles::hand_over).
    pub(crate) fn start_close(&mut self, handle: Handle) -> Option<RawFd> {
        let entry = self.entry(handle)?;
        if !matches!(entry.state, State::Open(_)) {
            return None;
        }
        let entry = &mut self.entries[handle.index as usize];
        let State::Open(descriptor) = std::mem::replace(&mut entry.state, State::Free) else {
            unreachable!("checked above");
        };
        let raw = descriptor.raw();
        entry.state = State::Closing(Some(descriptor));
        self.open -= 1;
        Some(raw)
    }

    /// The close of entry `index` is being handed to the backend, which
    /// will close the descriptor: the table stops owning it.
    pub(crate) fn hand_over(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        let State::Closing(descriptor) = &mut entry.state else {
            panic!("hand_over of an entry that is not closing");
        };
        if let Some(Descriptor::Os(fd)) = descriptor.take() {
            // The close operation now owns the number.
            let _ = fd.into_raw_fd();
        }
    }

    /// The close of entry `index` completed, its result in slot `slot`.
    pub(crate) fn close_finished(&mut self, index: u32, slot: u32) -> CloseDone {
        let entry = &mut self.entries[index as usize];
        assert!(matches!(entry.state, State::Closing(_)));
        assert!(!entry.close_done);
        entry.close_done = true;
        if entry.in_flight > 0 {
            entry.close_held = Some(slot);
            return CloseDone::Hold;
        }
        self.free_entry(index);
        CloseDone::Complete
    }

    /// Removes an open handle's descriptor from the table, for `release`.
    /// The caller checked that nothing is in flight on it.
    pub(crate) fn remove(&mut self, handle: Handle) -> Option<Descriptor> {
        let entry = self.entry(handle)?;
        if !matches!(entry.state, State::Open(_)) || entry.in_flight > 0 {
            return None;
        }
        let entry = &mut self.entries[handle.index as usize];
        let State::Open(descriptor) = std::mem::replace(&mut entry.state, State::Closing(None))
        else {
            unreachable!("checked above");
        };
        self.open -= 1;
        self.free_entry(handle.index);
        Some(descriptor)
    }

    fn free_entry(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        assert_eq!(entry.in_flight, 0);
        assert!(matches!(entry.state, State::Closing(_)));
        entry.state = State::Free;
        entry.close_done = false;
        entry.close_held = None;
        // Retire an entry whose generation is used up rather than let a
        // handle alias a later descriptor.
        if let Some(generation) = entry.generation.checked_add(1) {
            entry.generation = generation;
            self.free.push_back(index);
        }
    }

    /// Descriptors open now.
    pub(crate) fn open(&self) -> u32 {
        self.open
    }
}

impl fmt::Debug for Handles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handles")
            .field("open", &self.open)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl<C> IO<C> {
    /// Takes ownership of a descriptor that other code made (a `TcpListener`
    /// from std, a socket from `socket2`, a file, a pipe) and returns the
    /// handle that names it from now on. The `IO` closes it on
    /// [`close`](IO::close) or when dropped; [`release`](IO::release) gives
    /// it back.
    ///
    /// Blocking descriptors work on every backend. On the epoll backend
    /// the `IO` may set `O_NONBLOCK` on it while it owns it, and clears it
    /// again on `release`.
    ///
    /// # Examples
    ///
    /// ```
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut io: ringio::IO<()> = ringio::IO::new()?;
    /// let handle = io.adopt(listener.into())?;
    /// assert!(io.local_addr(handle)?.port() > 0);
    /// let listener = std::net::TcpListener::from(io.release(handle)?);
    /// assert!(listener.local_addr()?.port() > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` under the simulator, whose descriptors are virtual (the
    /// descriptor is closed).
    pub fn adopt(&mut self, fd: OwnedFd) -> io::Result<Handle> {
        if self.sim().is_some() {
            return Err(sys::errno(libc::EOPNOTSUPP));
        }
        let raw = fd.as_raw_fd();
        let handle = self.handles.insert(Descriptor::Os(fd));
        self.backend.register_file(handle.index, raw);
        Ok(handle)
    }

    /// Gives the descriptor back: the handle (and every copy) is stale from
    /// now on, and the caller owns the descriptor. Flags the `IO` changed
    /// (`O_NONBLOCK` on epoll) are restored first.
    ///
    /// # Errors
    ///
    /// - `EBADF`: the handle is closed, released, stale or another `IO`'s;
    /// - `EBUSY`: operations are in flight on it (cancel them and let their
    ///   callbacks run first); the handle stays valid;
    /// - `EOPNOTSUPP` under the simulator; the handle stays valid.
    pub fn release(&mut self, handle: Handle) -> io::Result<OwnedFd> {
        match self.handles.in_flight(handle) {
            None => return Err(sys::errno(libc::EBADF)),
            Some(0) => {}
            Some(_) => return Err(sys::errno(libc::EBUSY)),
        }
        if self.sim().is_some() {
            return Err(sys::errno(libc::EOPNOTSUPP));
        }
        let Some(Descriptor::Os(fd)) = self.handles.remove(handle) else {
            unreachable!("an open descriptor outside the simulator is a kernel one");
        };
        self.backend.forget_fd(fd.as_raw_fd());
        Ok(fd)
    }

    /// Borrows the descriptor, for interoperation: a socket option through
    /// `socket2`, `nix` or `libc`, `fstat`, and so on. The borrow keeps the
    /// `IO` from closing it meanwhile. Do not close it, or change its
    /// `O_NONBLOCK` flag, through the borrow.
    ///
    /// # Errors
    ///
    /// `EBADF` (closed, released, stale or another `IO`'s); `EOPNOTSUPP`
    /// under the simulator, whose descriptors are virtual.
    pub fn as_fd(&self, handle: Handle) -> io::Result<BorrowedFd<'_>> {
        match self.handles.descriptor(handle) {
            Some(Descriptor::Os(fd)) => Ok(fd.as_fd()),
            Some(Descriptor::Virtual(_)) => Err(sys::errno(libc::EOPNOTSUPP)),
            None => Err(sys::errno(libc::EBADF)),
        }
    }

    /// Takes a descriptor the kernel (or the simulator) just made for this
    /// `IO` (a socket, a file, an accepted connection) into the table.
    #[allow(unsafe_code)]
    pub(crate) fn own_new_fd(&mut self, fd: RawFd) -> Handle {
        let descriptor = if self.sim().is_some() {
            Descriptor::Virtual(fd)
        } else {
            // SAFETY: `fd` was just returned to this IO by socket(2),
            // open(2) or an accept, and nothing else has seen it: it is open
            // and owned by nobody.
            Descriptor::Os(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let handle = self.handles.insert(descriptor);
        self.backend.register_file(handle.index, fd);
        handle
    }

    /// The raw number behind an open handle, for the set-up calls.
    pub(crate) fn raw_fd(&self, handle: Handle) -> io::Result<RawFd> {
        self.handles
            .raw(handle)
            .ok_or_else(|| sys::errno(libc::EBADF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_foreign_handles_name_nothing() {
        let mut handles = Handles::new(7);
        let first = handles.insert(Descriptor::Virtual(3));
        assert_eq!(handles.raw(first), Some(3));
        let foreign = Handle { io: 8, ..first };
        assert_eq!(handles.raw(foreign), None);
        assert_eq!(handles.start_close(first), Some(3));
        assert_eq!(handles.raw(first), None);
        handles.hand_over(first.index);
        assert_eq!(handles.close_finished(first.index, 0), CloseDone::Complete);
        let second = handles.insert(Descriptor::Virtual(3));
        assert_eq!(second.index, first.index);
        assert_ne!(second.generation, first.generation);
        assert_eq!(handles.raw(first), None);
        assert_eq!(handles.raw(second), Some(3));
    }

    #[test]
    fn a_close_is_held_until_the_operations_on_it_finish() {
        let mut handles = Handles::new(1);
        let handle = handles.insert(Descriptor::Virtual(5));
        handles.op_started(handle.index);
        handles.op_started(handle.index);
        handles.start_close(handle);
        assert_eq!(handles.close_finished(handle.index, 42), CloseDone::Hold);
        assert_eq!(handles.op_finished(handle.index), None);
        assert_eq!(handles.op_finished(handle.index), Some(42));
        assert_eq!(handles.open(), 0);
    }

    #[test]
    fn an_exhausted_generation_is_retired() {
        let mut handles = Handles::new(1);
        let handle = handles.insert(Descriptor::Virtual(5));
        handles.entries[handle.index as usize].generation = u32::MAX;
        let handle = Handle {
            generation: u32::MAX,
            ..handle
        };
        handles.start_close(handle);
        handles.close_finished(handle.index, 0);
        let next = handles.insert(Descriptor::Virtual(5));
        assert_ne!(next.index, handle.index);
    }
}
