//! No heap allocation per operation in steady state: a counting global
//! allocator watches 100,000 send/recv round trips on a socket pair, after a
//! warm-up that lets the completion table and pools reach their size. It
//! counts the calling thread's allocations only, so that tests running in
//! parallel do not see each other's.

#[macro_use]
mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::fd::RawFd;

use ringio::IO;
use util::Backend;

struct CountingAllocator;

thread_local! {
    /// Allocations made by this thread. Const-initialized, so reading it
    /// never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: a thread being torn down has no counter left to bump.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's layout, as the caller promised.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

conformance!(send_recv_round_trips_do_not_allocate);

struct PingPong {
    client: RawFd,
    server: RawFd,
    round_trips_left: u32,
}

/// Client sends 64 bytes; the server echoes them; the client receives them
/// and starts the next round trip. Buffers are handed back and reused.
fn client_send(io: &mut IO<PingPong>, client: RawFd, buf: Vec<u8>) {
    io.send(client, buf, move |io, _, result, mut buf| {
        assert_eq!(result.unwrap(), 64);
        buf.clear();
        io.recv(client, buf, move |io, state, result, buf| {
            assert_eq!(result.unwrap(), 64);
            state.round_trips_left -= 1;
            if state.round_trips_left > 0 {
                client_send(io, client, buf);
            }
        });
    });
}

fn server_echo(io: &mut IO<PingPong>, server: RawFd, buf: Vec<u8>) {
    io.recv(server, buf, move |io, _, result, buf| {
        if result.unwrap() == 0 {
            return;
        }
        io.send(server, buf, move |io, _, result, mut buf| {
            assert_eq!(result.unwrap(), 64);
            buf.clear();
            server_echo(io, server, buf);
        });
    });
}

fn round_trips(io: &mut IO<PingPong>, state: &mut PingPong, count: u32, client_buf: Vec<u8>) {
    state.round_trips_left = count;
    client_send(io, state.client, client_buf);
    while state.round_trips_left > 0 {
        io.run_for_ns(state, 1_000_000).unwrap();
    }
}

fn send_recv_round_trips_do_not_allocate(backend: Backend) {
    let mut io: IO<PingPong> = backend.io();
    let (client, server) = util::tcp_pair();
    let mut state = PingPong {
        client,
        server,
        round_trips_left: 0,
    };
    server_echo(&mut io, state.server, Vec::with_capacity(64));
    round_trips(&mut io, &mut state, 1_000, vec![7u8; 64]);

    let client_buf = vec![7u8; 64];
    let before = allocations();
    round_trips(&mut io, &mut state, 100_000, client_buf);
    let after = allocations();
    assert_eq!(after - before, 0, "allocations during 100,000 round trips");
    assert_eq!(io.stats().completed, 4 * 101_000);
    util::close(client);
    util::close(server);
}
