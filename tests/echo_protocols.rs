//! Runs the built `echo_server` example with `--proto udp` and `--proto
//! unix`, on both kernel backends and both receive modes, and drives it
//! with std clients and with the `udp_ping` example.

#[macro_use]
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use util::Backend;

const IO_TIMEOUT: Duration = Duration::from_secs(30);

conformance!(;
    kernel_only:
    udp_echo_returns_every_datagram_whole_to_its_sender,
    udp_echo_multishot_mode_echoes_too,
    udp_ping_measures_round_trips_without_loss,
    unix_echo_serves_concurrent_streams,
    unix_echo_multishot_serves_a_large_message,
);

struct ServerGuard {
    child: Child,
    /// What the first line named: `HOST:PORT`, or the Unix path.
    addr: String,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(backend: Backend, proto: &str, addr: &str, mode: &str) -> ServerGuard {
    let binary = util::example_binary("echo_server");
    let mut child = Command::new(&binary)
        .args(["--proto", proto, "--addr", addr, "--max-seconds", "300"])
        .args(["--backend", backend.kind().name(), "--recv", mode])
        .args(["--pool-buffers", "64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {}: {error}", binary.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut server = ServerGuard {
        child,
        addr: String::new(),
    };
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = sender.send(result);
    });
    let line = receiver.recv_timeout(IO_TIMEOUT).unwrap().unwrap();
    let suffix = format!(" (backend: {})\n", backend.kind());
    let named = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.strip_suffix(&suffix))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    server.addr = named.to_owned();
    server
}

fn udp_client(server: &ServerGuard) -> (UdpSocket, SocketAddr) {
    let addr: SocketAddr = server.addr.parse().unwrap();
    assert_ne!(addr.port(), 0);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    (client, addr)
}

fn udp_echo_in(backend: Backend, mode: &str) {
    let server = start(backend, "udp", "127.0.0.1:0", mode);
    let (client, addr) = udp_client(&server);
    let mut answer = vec![0u8; 65_536];
    for size in (0..1_000)
        .map(|i| 1 + i * 37 % 1_400)
        .chain([0, 9_000, 65_507])
    {
        let datagram = util::pattern(size, size as u64);
        client.send_to(&datagram, addr).unwrap();
        let (count, from) = client.recv_from(&mut answer).unwrap();
        assert_eq!(from, addr, "the answer comes from the server's address");
        assert_eq!(
            &answer[..count],
            &datagram[..],
            "a datagram of {size} bytes, whole"
        );
    }
}

fn udp_echo_returns_every_datagram_whole_to_its_sender(backend: Backend) {
    udp_echo_in(backend, "single");
}

fn udp_echo_multishot_mode_echoes_too(backend: Backend) {
    udp_echo_in(backend, "multishot");
}

fn udp_ping_measures_round_trips_without_loss(backend: Backend) {
    let server = start(backend, "udp", "127.0.0.1:0", "single");
    let output = Command::new(util::example_binary("udp_ping"))
        .args(["--addr", &server.addr, "--count", "5000", "--window", "8"])
        .args(["--backend", backend.kind().name()])
        .output()
        .expect("run udp_ping");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let summary = stdout.lines().last().expect("a summary line");
    assert!(
        summary.starts_with("sent 5000 received 5000 lost 0 "),
        "{summary}"
    );
}

fn unix_path(backend: Backend, name: &str) -> (util::Scratch, String) {
    let scratch = util::Scratch::new(backend, name);
    let path = scratch.path("echo.sock").to_str().unwrap().to_owned();
    (scratch, path)
}

fn unix_round_trip(path: &str, message: &[u8]) {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let data = message.to_vec();
    let sender = thread::spawn(move || writer.write_all(&data).unwrap());
    let mut echoed = vec![0u8; message.len()];
    stream.read_exact(&mut echoed).unwrap();
    sender.join().unwrap();
    assert!(echoed == message, "every byte back, in order");
}

fn unix_echo_serves_concurrent_streams(backend: Backend) {
    let (_scratch, path) = unix_path(backend, "echo-unix");
    let server = start(backend, "unix", &path, "single");
    assert_eq!(server.addr, path);
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let path = path.clone();
            thread::spawn(move || unix_round_trip(&path, &util::pattern(1 + i * 1_000, i as u64)))
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    // A restart over the stale socket file binds again.
    drop(server);
    let again = start(backend, "unix", &path, "single");
    unix_round_trip(&again.addr, b"after a restart");
}

fn unix_echo_multishot_serves_a_large_message(backend: Backend) {
    let (_scratch, path) = unix_path(backend, "echo-unix-multi");
    let server = start(backend, "unix", &path, "multishot");
    unix_round_trip(&server.addr, &util::pattern(8 << 20, 3));
}
