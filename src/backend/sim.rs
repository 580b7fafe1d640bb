//! The simulator backend: one process (one `IO`) on a node of a simulated
//! world. It keeps the backend contract exactly (a bounded submission queue;
//! operations start in `submit_and_wait`, in order; results come back
//! through `reap`), so the loop core cannot tell it from a kernel.
//!
//! Waiting does not sleep: it moves the world's virtual time to its next
//! event, jumping over idle gaps, up to the wait's deadline.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use super::{Backend, RawCompletion, Wait};
use crate::completion::Operation;
use crate::sim::world::World;
use crate::sys;

pub(crate) struct SimBackend {
    world: Rc<RefCell<World>>,
    node: usize,
    process: u64,
    submissions: VecDeque<(u64, Operation)>,
    submissions_max: usize,
    /// Calls that submitted or waited: the simulated `io_uring_enter`s.
    enters: u64,
}

impl SimBackend {
    pub(crate) fn new(
        world: Rc<RefCell<World>>,
        node: usize,
        process: u64,
        entries: u32,
    ) -> SimBackend {
        let submissions_max = entries.clamp(1, 32_768).next_power_of_two() as usize;
        SimBackend {
            world,
            node,
            process,
            submissions: VecDeque::with_capacity(submissions_max),
            submissions_max,
            enters: 0,
        }
    }

    /// The process's clock: virtual, and frozen while the node is paused.
    pub(crate) fn now_ns(&self) -> u64 {
        self.world.borrow().node_now_ns(self.node)
    }

    /// The process's wall clock: the node's, in nanoseconds since the Unix
    /// epoch (the world starts at 2026-01-01T00:00:00Z).
    pub(crate) fn realtime_ns(&self) -> u64 {
        self.world.borrow().node_realtime_ns(self.node)
    }

    /// Folds a completion whose callback is about to run into the trace
    /// hash, and charges the node the callback's CPU time, if that is on.
    pub(crate) fn trace(&self, operation: &Operation, result: i32) {
        let mut world = self.world.borrow_mut();
        world.trace(self.node, operation, result);
        world.charge_callback(self.node, operation, result);
    }

    /// Tells the world when this process's earliest timer is due, so that
    /// advancing the world does not jump past it.
    pub(crate) fn publish_next_timer(&self, deadline_ns: Option<u64>) {
        let mut world = self.world.borrow_mut();
        if world.is_live(self.node, self.process) {
            let deadline_ns = deadline_ns.map(|ns| world.world_deadline_ns(self.node, ns));
            world.nodes[self.node].next_timer_ns = deadline_ns;
        }
    }

    /// A timer was added: the published deadline may only move earlier.
    pub(crate) fn note_timer(&self, deadline_ns: u64) {
        let mut world = self.world.borrow_mut();
        if world.is_live(self.node, self.process) {
            let deadline_ns = world.world_deadline_ns(self.node, deadline_ns);
            let next = &mut world.nodes[self.node].next_timer_ns;
            *next = Some(next.map_or(deadline_ns, |next| next.min(deadline_ns)));
        }
    }

    /// Closes a virtual descriptor the process holds but no handle names
    /// (a socket a multishot accept made that no callback saw), at once.
    pub(crate) fn close_now(&self, fd: crate::sys::Fd) {
        let mut world = self.world.borrow_mut();
        if world.is_live(self.node, self.process) {
            world.close_fd(self.node, self.process, fd);
            world.wake_sockets();
        }
    }

    /// Runs `body` on the world for this process's node, or fails with
    /// `ESHUTDOWN` if the node crashed under this `IO`.
    pub(crate) fn with_world<T>(
        &self,
        body: impl FnOnce(&mut World, usize) -> Result<T, i32>,
    ) -> io::Result<T> {
        let mut world = self.world.borrow_mut();
        if !world.is_live(self.node, self.process) {
            return Err(sys::errno(libc::ESHUTDOWN));
        }
        body(&mut world, self.node).map_err(sys::errno)
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn push(&mut self, user_data: u64, operation: &Operation) -> bool {
        if self.submissions.len() >= self.submissions_max {
            return false;
        }
        self.submissions.push_back((user_data, *operation));
        true
    }

    fn submit_and_wait(&mut self, wait: Wait) -> io::Result<()> {
        let mut world = self.world.borrow_mut();
        if !world.is_live(self.node, self.process) {
            return Err(sys::errno(libc::ESHUTDOWN));
        }
        self.enters += 1;
        for (user_data, operation) in self.submissions.drain(..) {
            world.start(self.node, self.process, user_data, &operation);
        }
        match wait {
            Wait::Never => world.run_due(),
            Wait::Timeout(timeout_ns) => {
                let deadline_ns = world.wait_deadline_ns(self.node, timeout_ns);
                world.run_until(self.node, deadline_ns);
            }
            Wait::Forever => {
                if !world.run_until(self.node, u64::MAX) {
                    // Nothing in the whole world can ever complete an
                    // operation: a real loop would block forever.
                    return Err(sys::errno(libc::EDEADLK));
                }
            }
        }
        Ok(())
    }

    /// Operations start in `submit_and_wait` only, once per pass, in order.
    fn submit_early(&mut self, _batch: u32) {}

    fn reap(&mut self, batch: &mut Vec<RawCompletion>, max: usize) {
        let mut world = self.world.borrow_mut();
        if !world.is_live(self.node, self.process) || !world.has_reapable(self.node) {
            return;
        }
        let ready = &mut world.nodes[self.node].ready;
        let count = ready.len().min(max);
        batch.extend(ready.drain(..count));
    }

    fn syscalls(&self) -> u64 {
        self.enters
    }

    fn abandon(&mut self) -> bool {
        self.submissions.clear();
        self.world
            .borrow_mut()
            .exit_process(self.node, self.process);
        true
    }
}
