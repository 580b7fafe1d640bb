//! Dropping an `IO` with operations in flight never lets the kernel write into
//! freed memory: the drop cancels what the kernel holds, waits for it, and
//! only then frees the buffers. `.ci/run` also runs this binary under valgrind
//! and fails on any invalid read or write.

#[macro_use]
mod util;

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use ringio::{IoBuf, IoBufMut, IO};
use util::Backend;

conformance!(
    drop_with_recv_and_read_in_flight_frees_buffers_after_the_kernel_is_done,
    drop_with_unqueued_and_timer_operations_frees_them_without_callbacks,
    drop_with_more_operations_in_the_kernel_than_ring_entries_drains_them_all,
);

static BUFFERS_DROPPED: AtomicU32 = AtomicU32::new(0);

/// The tests share `BUFFERS_DROPPED`, so they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// A Vec that counts its drops, to observe when the IO frees it.
struct CountedBuf(Vec<u8>);

impl Drop for CountedBuf {
    fn drop(&mut self) {
        BUFFERS_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: delegates to Vec<u8>, whose heap data does not move with the wrapper.
unsafe impl IoBuf for CountedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.0.bytes_total()
    }
}

// SAFETY: delegates to Vec<u8>.
unsafe impl IoBufMut for CountedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, len: usize) {
        // SAFETY: forwarded with the caller's guarantee.
        unsafe { self.0.set_init(len) }
    }
}

fn drop_with_recv_and_read_in_flight_frees_buffers_after_the_kernel_is_done(backend: Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let dropped_before = BUFFERS_DROPPED.load(Ordering::SeqCst);
    // On the kernel backends the IO gets duplicates of a socket and a pipe,
    // and the test keeps the originals: the kernel objects outlive the IO,
    // so data sent after the drop would land in the buffers if the kernel
    // still held the operations.
    let mut kept = None;
    {
        let mut io: IO<u32> = backend.io();
        let mut calls = 0;
        let (server, reader) = if backend.is_kernel() {
            let (client, server) = util::tcp_pair();
            let (reader, writer) = util::pipe();
            let server_io = io.adopt(server.try_clone().unwrap().into()).unwrap();
            let reader_io = io.adopt(reader.try_clone().unwrap()).unwrap();
            kept = Some((client, server, reader, writer));
            (server_io, reader_io)
        } else {
            // The simulator has no pipes, so the read waits on a socket there.
            let (_, server) = util::tcp_pair_io(&mut io, &mut calls);
            let (_, reader) = util::tcp_pair_io(&mut io, &mut calls);
            (server, reader)
        };
        let recv_buf = CountedBuf(Vec::with_capacity(1 << 16));
        let read_buf = CountedBuf(Vec::with_capacity(1 << 16));
        io.recv(server, recv_buf, |_, calls, _, _| *calls += 1);
        io.read(reader, read_buf, 0, |_, calls, _, _| *calls += 1);
        // Hand both to the kernel, where they block: nothing to receive or read.
        io.run_for_ns(&mut calls, 2_000_000).unwrap();
        assert_eq!(calls, 0);
        assert_eq!(io.in_flight(), 2);
    }
    // The drop cancelled both, waited for the kernel, and freed both buffers.
    assert_eq!(BUFFERS_DROPPED.load(Ordering::SeqCst) - dropped_before, 2);
    let Some((mut client, _server, _reader, writer)) = kept else {
        // The simulated process exited with its IO: its sockets closed with
        // it (as at exit), so no data can arrive for them any more.
        return;
    };
    // Data arriving now has nowhere to go in freed memory: the kernel no
    // longer holds either operation. Fresh allocations stay intact.
    let canaries: Vec<Vec<u8>> = (0..64).map(|_| vec![0xAA; 1 << 16]).collect();
    client.write_all(&[0x55; 4096]).unwrap();
    util::write_all(writer.as_fd(), &[0x55; 4096]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(canaries
        .iter()
        .all(|canary| canary.iter().all(|&byte| byte == 0xAA)));
}

fn drop_with_unqueued_and_timer_operations_frees_them_without_callbacks(backend: Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let dropped_before = BUFFERS_DROPPED.load(Ordering::SeqCst);
    {
        let config = ringio::Config::new().entries(2);
        let mut io: IO<u32> = backend.io_with(config);
        let (_client, server) = util::tcp_pair_io(&mut io, &mut 0);
        for _ in 0..6 {
            let buf = CountedBuf(Vec::with_capacity(64));
            io.recv(server, buf, |_, calls, _, _| *calls += 1);
        }
        io.timeout(u64::MAX, |_, calls, _| *calls += 1);
        assert!(io.stats().unqueued_max > 0);
    }
    assert_eq!(BUFFERS_DROPPED.load(Ordering::SeqCst) - dropped_before, 6);
}

fn drop_with_more_operations_in_the_kernel_than_ring_entries_drains_them_all(backend: Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let dropped_before = BUFFERS_DROPPED.load(Ordering::SeqCst);
    {
        let mut pairs = Vec::new();
        // The cancels on drop must go through a 2-entry submission queue.
        let mut io: IO<u32> = backend.io_with(ringio::Config::new().entries(2));
        let mut calls = 0;
        pairs.extend((0..50).map(|_| util::tcp_pair_io(&mut io, &mut calls)));
        for &(_, server) in &pairs {
            let buf = CountedBuf(Vec::with_capacity(64));
            io.recv(server, buf, |_, calls, _, _| *calls += 1);
        }
        // Each non-blocking pass moves a few more recvs into the kernel.
        while io.stats().unqueued > 0 {
            io.tick(&mut calls).unwrap();
        }
        assert_eq!(calls, 0);
        assert_eq!(io.in_flight(), 50);
    }
    assert_eq!(BUFFERS_DROPPED.load(Ordering::SeqCst) - dropped_before, 50);
}
