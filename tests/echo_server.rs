//! Runs the built `echo_server` example as a child process and checks it
//! against real clients: many at once, a large message, resets, half-close,
//! and a client that never reads.
#![allow(unsafe_code)]

#[macro_use]
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use util::Backend;

/// Bounds every blocking read and wait, so a bug fails the test instead of
/// hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The server exits by itself after this long even if a test process is
/// killed before its guard can.
const SERVER_MAX_SECONDS: &str = "300";

// All kernel-only: each runs the built `echo_server` example as a child
// process, on a real backend, and drives it with real TCP clients (threads
// and std sockets); a simulated world lives inside one process.
conformance!(;
    kernel_only:
    echoes_a_thousand_concurrent_connections,
    echoes_an_eight_mebibyte_message,
    survives_clients_that_reset_mid_stream,
    half_close_gets_every_byte_then_eof,
    a_client_that_never_reads_does_not_stall_others,
    echoes_a_thousand_concurrent_connections_multishot,
    echoes_an_eight_mebibyte_message_multishot,
    survives_clients_that_reset_mid_stream_multishot,
    half_close_gets_every_byte_then_eof_multishot,
    a_client_that_never_reads_does_not_stall_others_multishot,
);

/// The running server; killed when dropped, whatever the test's outcome.
struct ServerGuard {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(backend: Backend, mode: &str) -> ServerGuard {
    let binary = util::example_binary("echo_server");
    let mut child = Command::new(&binary)
        .args(["--addr", "127.0.0.1:0", "--max-seconds", SERVER_MAX_SECONDS])
        .args(["--backend", backend.kind().name()])
        .args(["--recv", mode])
        // A pool far smaller than the clients: dry pools, starved and
        // paused streams all happen.
        .args(["--pool-buffers", "64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {}: {error}", binary.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    // Build the guard before anything can panic, so the child is always killed.
    let mut server = ServerGuard {
        child,
        addr: "127.0.0.1:0".parse().unwrap(),
    };
    let line = first_line(stdout);
    server.addr = parse_listening_line(&line, backend);
    server
}

/// Reads the server's first stdout line on a helper thread, so that a server
/// that never prints fails the test after a timeout.
fn first_line(stdout: std::process::ChildStdout) -> String {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = sender.send(result);
    });
    receiver
        .recv_timeout(IO_TIMEOUT)
        .expect("the server printed its first line in time")
        .expect("read the server's first line")
}

/// Checks the first line names the backend asked for, and returns the
/// address it names.
fn parse_listening_line(line: &str, backend: Backend) -> SocketAddr {
    let rest = line
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let port = rest
        .strip_suffix(&format!(" (backend: {})\n", backend.kind()))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("bad port in {line:?}"));
    assert_ne!(port, 0, "the server printed the port it really bound");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The fd limit is often 1024 (soft) while the hard limit is far higher.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit");
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0, "setrlimit");
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the echo server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut echoed = vec![0; len];
    stream.read_exact(&mut echoed).expect("read the echo");
    echoed
}

fn round_trip(addr: SocketAddr, seed: u64) {
    let mut stream = connect(addr);
    let message = util::pattern(4096, seed);
    stream.write_all(&message).expect("send");
    assert!(
        read_exactly(&mut stream, message.len()) == message,
        "echo differs"
    );
}

/// A message of 100..2000 bytes that starts with the connection's index.
fn message_for(index: usize) -> Vec<u8> {
    let mut message = format!("connection {index}: ").into_bytes();
    let len = 100 + (index * 7919) % 1900;
    message.extend(util::pattern(len - message.len(), index as u64));
    message
}

fn echoes_a_thousand_concurrent_connections(backend: Backend) {
    echoes_a_thousand_concurrent_connections_in(backend, "single");
}

/// As above, with `accept_multi` and `recv_multi` from a shared pool.
fn echoes_a_thousand_concurrent_connections_multishot(backend: Backend) {
    echoes_a_thousand_concurrent_connections_in(backend, "multishot");
}

fn echoes_a_thousand_concurrent_connections_in(backend: Backend, mode: &str) {
    const CONNECTIONS: usize = 1000;
    const THREADS: usize = 4;
    raise_fd_limit();
    let server = start_server(backend, mode);
    // All connections are open before any message is sent.
    let streams: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(server.addr)).collect();

    let mut groups: Vec<Vec<(usize, TcpStream)>> = (0..THREADS).map(|_| Vec::new()).collect();
    for (index, stream) in streams.into_iter().enumerate() {
        groups[index % THREADS].push((index, stream));
    }
    let workers: Vec<_> = groups
        .into_iter()
        .map(|group| thread::spawn(move || echo_group(group)))
        .collect();
    let checked: usize = workers
        .into_iter()
        .map(|worker| worker.join().expect("client thread"))
        .sum();
    assert_eq!(checked, CONNECTIONS);
}

/// Sends every connection's message, then reads every echo back, so the
/// server has the whole group in flight at once. Returns how many matched.
fn echo_group(mut group: Vec<(usize, TcpStream)>) -> usize {
    for (index, stream) in &mut group {
        stream.write_all(&message_for(*index)).expect("send");
    }
    for (index, stream) in &mut group {
        let message = message_for(*index);
        let echoed = read_exactly(stream, message.len());
        assert!(echoed == message, "connection {index}: echo differs");
    }
    group.len()
}

fn echoes_an_eight_mebibyte_message(backend: Backend) {
    echoes_an_eight_mebibyte_message_in(backend, "single");
}

/// As above, with `accept_multi` and `recv_multi` from a shared pool.
fn echoes_an_eight_mebibyte_message_multishot(backend: Backend) {
    echoes_an_eight_mebibyte_message_in(backend, "multishot");
}

fn echoes_an_eight_mebibyte_message_in(backend: Backend, mode: &str) {
    const LEN: usize = 8 << 20;
    let server = start_server(backend, mode);
    let mut reader = connect(server.addr);
    let mut writer = reader.try_clone().unwrap();
    let message = Arc::new(util::pattern(LEN, 8));
    let to_send = Arc::clone(&message);
    // Write and read at once: the message is far larger than the socket
    // buffers, so writing it all first would deadlock.
    let sender = thread::spawn(move || writer.write_all(&to_send).expect("send"));
    let echoed = read_exactly(&mut reader, LEN);
    sender.join().expect("writer thread");
    assert!(echoed == *message, "8 MiB echo differs");
}

/// Makes the drop of `stream` send RST instead of FIN.
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the call, and `linger` is a valid `struct
    // linger` of the given size that outlives it.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0, "setsockopt(SO_LINGER)");
}

fn survives_clients_that_reset_mid_stream(backend: Backend) {
    survives_clients_that_reset_mid_stream_in(backend, "single");
}

/// As above, with `accept_multi` and `recv_multi` from a shared pool.
fn survives_clients_that_reset_mid_stream_multishot(backend: Backend) {
    survives_clients_that_reset_mid_stream_in(backend, "multishot");
}

fn survives_clients_that_reset_mid_stream_in(backend: Backend, mode: &str) {
    let server = start_server(backend, mode);
    for attempt in 0..20u64 {
        let mut stream = connect(server.addr);
        // Some attempts reset with echoes unread (the server may be sending),
        // others right after a full round trip (the server is receiving).
        stream
            .write_all(&util::pattern(256 * 1024, attempt))
            .expect("send");
        if attempt % 2 == 0 {
            let _ = read_exactly(&mut stream, 1024);
        }
        set_linger_zero(&stream);
        drop(stream);
    }
    round_trip(server.addr, 1);
    round_trip(server.addr, 2);
}

fn half_close_gets_every_byte_then_eof(backend: Backend) {
    half_close_gets_every_byte_then_eof_in(backend, "single");
}

/// As above, with `accept_multi` and `recv_multi` from a shared pool.
fn half_close_gets_every_byte_then_eof_multishot(backend: Backend) {
    half_close_gets_every_byte_then_eof_in(backend, "multishot");
}

fn half_close_gets_every_byte_then_eof_in(backend: Backend, mode: &str) {
    let server = start_server(backend, mode);
    let mut stream = connect(server.addr);
    let message = util::pattern(100_000, 4);
    stream.write_all(&message).expect("send");
    stream.shutdown(Shutdown::Write).expect("shutdown(Write)");
    let mut echoed = Vec::new();
    // read_to_end returns only at EOF: the server closed after echoing.
    stream.read_to_end(&mut echoed).expect("read until EOF");
    assert!(echoed == message, "echo after half-close differs");
}

fn a_client_that_never_reads_does_not_stall_others(backend: Backend) {
    a_client_that_never_reads_does_not_stall_others_in(backend, "single");
}

/// As above, with `accept_multi` and `recv_multi` from a shared pool.
fn a_client_that_never_reads_does_not_stall_others_multishot(backend: Backend) {
    a_client_that_never_reads_does_not_stall_others_in(backend, "multishot");
}

fn a_client_that_never_reads_does_not_stall_others_in(backend: Backend, mode: &str) {
    const FLOOD: usize = 32 << 20;
    let server = start_server(backend, mode);
    let mut flooder = connect(server.addr);
    // Once the buffers on both sides fill, its write blocks; the timeout ends
    // the thread then, with the connection still open.
    flooder
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_by_flooder = Arc::clone(&sent);
    let flood = thread::spawn(move || {
        let chunk = util::pattern(64 * 1024, 5);
        while sent_by_flooder.load(Ordering::Relaxed) < FLOOD {
            match flooder.write(&chunk) {
                Ok(count) => sent_by_flooder.fetch_add(count, Ordering::Relaxed),
                Err(_) => break,
            };
        }
        flooder
    });

    wait_until_sent(&sent, 4 << 20);
    // The server is stuck sending to the flooder, or about to be.
    round_trip(server.addr, 6);
    let flooder = flood.join().expect("flooding thread");
    // Now the flooder has stopped, blocked or done, and still reads nothing.
    round_trip(server.addr, 7);
    drop(flooder);
}

/// Waits until the flooder has sent `bytes`, or made no progress for a
/// moment (it is blocked: everything between it and the server is full).
fn wait_until_sent(sent: &AtomicUsize, bytes: usize) {
    let started = Instant::now();
    let mut last = usize::MAX;
    while sent.load(Ordering::Relaxed) < bytes && started.elapsed() < IO_TIMEOUT {
        let now = sent.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
        thread::sleep(Duration::from_millis(200));
    }
}

/// `echo_server --help | head -3` with the reader gone before the help is
/// written: a quiet exit with success, not a panic on EPIPE.
#[test]
fn help_into_a_closed_pipe_exits_quietly() {
    let binary = util::example_binary("echo_server");
    let (read, write) = util::pipe();
    drop(read);
    let output = Command::new(&binary)
        .arg("--help")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("run echo_server --help");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", output.status);
    assert_eq!(stderr, "");
}
