//! Runs the built `kv_server` example as a child process and drives it with
//! real Redis clients (`redis-cli`, `redis-benchmark`) and with raw RESP:
//! every command and its errors, malformed input, bounds, restart and
//! recovery of the write-ahead log, and `kill -9` at random moments.
//!
//! `redis-cli` and `redis-benchmark` come from the `redis-tools` package,
//! which `.ci/run` installs. Where they are missing, the tests that need
//! them say so and return.

mod util;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Bounds every blocking read and wait, so a bug fails the test instead of
/// hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The server exits by itself after this long even if a test process is
/// killed before its guard can.
const SERVER_MAX_SECONDS: &str = "300";
/// Rounds of the kill -9 test.
const CRASH_ROUNDS: u32 = 50;

/// The commands `redis_cli_*` feeds to `redis-cli --no-raw`, one a line.
const TRANSCRIPT_COMMANDS: &str = "\
PING
PING hello
PING a b
ECHO \"hello world\"
ECHO
GET missing
GET
SET greeting hello
GET greeting
SET greeting
SET k v EX 100
SET k v PX 100000
SET k v EX 0
SET k v EX -1
SET k v EX abc
SET k v NX XX
SET k v EX 10 PX 10
SET k v FOO
SET k v EX
SET k v NX
SET k v2 XX
GET k
SET fresh v XX
GET fresh
SET fresh v NX
SET fresh v2 GET
SET k v KEEPTTL
DEL
DEL greeting fresh nope
EXISTS
EXISTS k k nope
INCR counter
INCR counter
INCRBY counter 10
INCRBY counter abc
INCRBY counter
DECR counter
DECRBY counter 5
DECR
INCR k
SET big 9223372036854775807
INCR big
SET small -9223372036854775808
DECR small
SET lead 012
INCR lead
MSET a 1 b 2 c 3
MSET a
MSET a 1 b
MGET a b c nope
MGET
DBSIZE
DBSIZE extra
SELECT 0
FOO a b
FOO
CLIENT SETNAME tester
CLIENT GETNAME
CLIENT FOO
CLIENT
CONFIG GET save
CONFIG GET nosuch
CONFIG GET
CONFIG
CONFIG FOO
FLUSHALL foo
FLUSHALL a b
FLUSHALL
DBSIZE
GET a
";

/// What redis-server 7.0 prints for them, through `redis-cli --no-raw`.
const TRANSCRIPT_EXPECTED: &str = "\
PONG
\"hello\"
(error) ERR wrong number of arguments for 'ping' command
\"hello world\"
(error) ERR wrong number of arguments for 'echo' command
(nil)
(error) ERR wrong number of arguments for 'get' command
OK
\"hello\"
(error) ERR wrong number of arguments for 'set' command
OK
OK
(error) ERR invalid expire time in 'set' command
(error) ERR invalid expire time in 'set' command
(error) ERR value is not an integer or out of range
(error) ERR syntax error
(error) ERR syntax error
(error) ERR syntax error
(error) ERR syntax error
(nil)
OK
\"v2\"
(nil)
(nil)
OK
\"v\"
OK
(error) ERR wrong number of arguments for 'del' command
(integer) 2
(error) ERR wrong number of arguments for 'exists' command
(integer) 2
(integer) 1
(integer) 2
(integer) 12
(error) ERR value is not an integer or out of range
(error) ERR wrong number of arguments for 'incrby' command
(integer) 11
(integer) 6
(error) ERR wrong number of arguments for 'decr' command
(error) ERR value is not an integer or out of range
OK
(error) ERR increment or decrement would overflow
OK
(error) ERR increment or decrement would overflow
OK
(error) ERR value is not an integer or out of range
OK
(error) ERR wrong number of arguments for 'mset' command
(error) ERR wrong number of arguments for 'mset' command
1) \"1\"
2) \"2\"
3) \"3\"
4) (nil)
(error) ERR wrong number of arguments for 'mget' command
(integer) 8
(error) ERR wrong number of arguments for 'dbsize' command
OK
(error) ERR unknown command 'FOO', with args beginning with: 'a' 'b' 
(error) ERR unknown command 'FOO', with args beginning with: 
OK
\"tester\"
(error) ERR unknown subcommand 'FOO'. Try CLIENT HELP.
(error) ERR wrong number of arguments for 'client' command
1) \"save\"
2) \"\"
(empty array)
(error) ERR wrong number of arguments for 'config|get' command
(error) ERR wrong number of arguments for 'config' command
(error) ERR unknown subcommand 'FOO'. Try CONFIG HELP.
(error) ERR syntax error
(error) ERR syntax error
OK
(integer) 0
(nil)
";

/// The running server; killed when dropped, whatever the test's outcome.
struct ServerGuard {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerGuard {
    /// Kills the server with SIGKILL (`kill -9`) and waits for it.
    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("wait for the server");
    }

    /// What the server wrote on stderr so far.
    fn stderr(&self) -> String {
        stderr_of(&self.dir)
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }
}

fn stderr_of(dir: &Path) -> String {
    fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
}

fn wal_path(dir: &Path) -> PathBuf {
    dir.join("data").join("wal.log")
}

/// Starts the server on `dir/data` with `extra` arguments, stderr appended
/// to `dir/stderr.log`.
fn start_server(dir: &Path, extra: &[&str]) -> ServerGuard {
    let mut child = spawn_server(dir, extra);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut server = ServerGuard {
        child,
        addr: "127.0.0.1:0".parse().unwrap(),
        dir: dir.to_path_buf(),
    };
    let line = first_line(stdout);
    server.addr = parse_listening_line(&line);
    server
}

fn spawn_server(dir: &Path, extra: &[&str]) -> Child {
    let binary = util::example_binary("kv_server");
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .expect("open stderr.log");
    let data = dir.join("data");
    Command::new(&binary)
        .args(["--addr", "127.0.0.1:0", "--max-seconds", SERVER_MAX_SECONDS])
        .arg("--dir")
        .arg(&data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {}: {error}", binary.display()))
}

/// Runs the server on a log that must make it fail, and returns its exit
/// status and stderr.
fn run_until_exit(dir: &Path) -> (ExitStatus, String) {
    let mut child = spawn_server(dir, &[]);
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status, stderr_of(dir));
        }
        if started.elapsed() > IO_TIMEOUT {
            let _ = child.kill();
            panic!("the server did not exit; stderr: {}", stderr_of(dir));
        }
        thread::sleep(Duration::from_millis(20));
    }
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

fn parse_listening_line(line: &str) -> SocketAddr {
    let rest = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let (addr, backend) = rest
        .split_once(" (backend: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(
        backend == "io_uring)\n" || backend == "epoll)\n",
        "unexpected first line {line:?}"
    );
    let addr: SocketAddr = addr.parse().expect("an address");
    assert_ne!(
        addr.port(),
        0,
        "the server printed the port it really bound"
    );
    addr
}

/// Whether `tool` runs; if not, says why the test is skipped.
fn have_tool(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        eprintln!(
            "SKIPPED: {tool} is not installed (apt-get install redis-tools; bash .ci/run installs it)"
        );
    }
    found
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

fn error(text: &str) -> Reply {
    Reply::Error(text.to_string())
}

/// A raw RESP client.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to kv_server");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client {
            writer: stream,
            reader,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        self.send_raw(&encode(args))
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    fn call(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        self.send(&args).expect("send a command");
        self.read().expect("read a reply")
    }

    /// Reads until the server closes the connection; what came before.
    fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).expect("read until EOF");
        rest
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut bytes = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        bytes.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        bytes.extend_from_slice(arg);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    assert!(line.ends_with("\r\n"), "a RESP line ends in CRLF: {line:?}");
    line.truncate(line.len() - 2);
    Ok(line)
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at(1);
    let number = || rest.parse::<i64>().expect("a RESP length");
    Ok(match kind {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Integer(number()),
        "$" if number() < 0 => Reply::Bulk(None),
        "$" => {
            let mut bytes = vec![0; number() as usize + 2];
            reader.read_exact(&mut bytes)?;
            bytes.truncate(bytes.len() - 2);
            Reply::Bulk(Some(bytes))
        }
        "*" if number() < 0 => Reply::Array(None),
        "*" => {
            let items = (0..number())
                .map(|_| read_reply(reader))
                .collect::<std::io::Result<Vec<_>>>()?;
            Reply::Array(Some(items))
        }
        _ => panic!("not a RESP reply: {line:?}"),
    })
}

/// Runs redis-cli with `args` against `server`, feeding `stdin`.
fn redis_cli(server: &ServerGuard, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .expect("write redis-cli's stdin");
    let output = child.wait_with_output().expect("run redis-cli");
    assert!(output.status.success(), "redis-cli failed: {output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 from redis-cli")
}

fn redis_cli_drives_every_command(backend: &str) {
    if !have_tool("redis-cli") {
        return;
    }
    let dir = util::scratch_dir(&format!("kv-cli-{backend}"));
    let server = start_server(&dir, &["--backend", backend]);
    let transcript = redis_cli(&server, &["--no-raw"], TRANSCRIPT_COMMANDS);
    let expected: Vec<&str> = TRANSCRIPT_EXPECTED.lines().collect();
    let got: Vec<&str> = transcript.lines().collect();
    for (index, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, expected, "line {} of the transcript", index + 1);
    }
    assert_eq!(got.len(), expected.len(), "transcript: {transcript}");
    // redis-cli with the command on its command line, as people type it.
    assert_eq!(redis_cli(&server, &["set", "cli", "value"], ""), "OK\n");
    assert_eq!(redis_cli(&server, &["get", "cli"], ""), "value\n");
}

#[test]
fn redis_cli_drives_every_command_on_io_uring() {
    redis_cli_drives_every_command("io_uring");
}

#[test]
fn redis_cli_drives_every_command_on_epoll() {
    redis_cli_drives_every_command("epoll");
}

#[test]
fn redis_benchmark_reports_no_errors() {
    if !have_tool("redis-benchmark") {
        return;
    }
    let dir = util::scratch_dir("kv-benchmark");
    let server = start_server(&dir, &[]);
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args([
            "-t",
            "set,get,incr,mset",
            "-P",
            "16",
            "-n",
            "20000",
            "-c",
            "20",
        ])
        .arg("--csv")
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "redis-benchmark failed: {stderr}");
    assert!(
        !stdout.to_lowercase().contains("error") && !stderr.to_lowercase().contains("error"),
        "redis-benchmark reported errors:\n{stdout}\n{stderr}"
    );
    for test in ["SET", "GET", "INCR", "MSET (10 keys)"] {
        assert!(
            stdout.contains(&format!("\"{test}\",")),
            "no {test} row in:\n{stdout}"
        );
    }
    // The benchmark's writes went through the log.
    let mut client = server.connect();
    assert_eq!(
        client.call(&["exists", "counter:__rand_int__"]),
        Reply::Integer(1)
    );
    assert!(fs::metadata(wal_path(&dir)).unwrap().len() > 0);
}

#[test]
fn inline_commands_work_as_in_redis() {
    let dir = util::scratch_dir("kv-inline");
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    client
        .send_raw(b"PING\r\nPING\n\r\nset k \"a b\\x41\"\r\nget k\r\nget 'k'\r\n")
        .unwrap();
    assert_eq!(client.read().unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(client.read().unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(client.read().unwrap(), Reply::Simple("OK".into()));
    assert_eq!(client.read().unwrap(), bulk("a bA"));
    assert_eq!(client.read().unwrap(), bulk("a bA"));
    client.send_raw(b"foo a b\r\n").unwrap();
    assert_eq!(
        client.read().unwrap(),
        error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
    );
}

/// Sends `input` on a fresh connection and returns everything the server
/// sends back before closing.
fn reply_then_close(server: &ServerGuard, input: &[u8]) -> String {
    let mut client = server.connect();
    client.send_raw(input).unwrap();
    String::from_utf8(client.read_to_close()).unwrap()
}

#[test]
fn malformed_resp_gets_the_protocol_error_and_only_that_connection_closes() {
    let dir = util::scratch_dir("kv-malformed");
    let server = start_server(&dir, &[]);
    let mut bystander = server.connect();
    assert_eq!(
        bystander.call(&["set", "k", "v"]),
        Reply::Simple("OK".into())
    );
    let cases: [(&[u8], &str); 7] = [
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*2\r\nx\r\n",
            "-ERR Protocol error: expected '$', got 'x'\r\n",
        ),
        (
            b"set a \"b c\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        // Commands before the error are answered first.
        (
            b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$-1\r\n",
            "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(reply_then_close(&server, input), expected, "for {input:?}");
        assert_eq!(bystander.call(&["get", "k"]), bulk("v"));
    }
    // A request line with no end, longer than Redis's 64 KiB inline limit.
    let endless = vec![b'a'; 70 * 1024];
    assert_eq!(
        reply_then_close(&server, &endless),
        "-ERR Protocol error: too big inline request\r\n"
    );
    assert_eq!(bystander.call(&["get", "k"]), bulk("v"));
}

/// The server's resident set size, from /proc.
fn rss_bytes(server: &ServerGuard) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

#[test]
fn huge_declared_lengths_are_rejected_without_allocating() {
    let dir = util::scratch_dir("kv-huge");
    let server = start_server(&dir, &[]);
    assert_eq!(
        reply_then_close(&server, b"*99999999999\r\n"),
        "-ERR Protocol error: invalid multibulk length\r\n"
    );
    assert_eq!(
        reply_then_close(&server, b"*1\r\n$99999999999\r\n"),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    // Lengths within the limits, declared by many clients that then send
    // nothing more: nothing is reserved for them.
    let before = rss_bytes(&server);
    let mut idle: Vec<Client> = Vec::new();
    for _ in 0..20 {
        let mut client = server.connect();
        client
            .send_raw(b"*1048576\r\n$3\r\nSET\r\n$1\r\nk\r\n$33554432\r\nabc")
            .unwrap();
        idle.push(client);
    }
    let mut probe = server.connect();
    assert_eq!(probe.call(&["ping"]), Reply::Simple("PONG".into()));
    let grown = rss_bytes(&server).saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "20 declared 32 MiB bulks grew the server by {grown} bytes"
    );
}

#[test]
fn pipelined_replies_come_back_in_order() {
    let dir = util::scratch_dir("kv-pipeline");
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    let mut batch = Vec::new();
    for index in 0..1000 {
        let key = format!("key{}", index % 10);
        let value = index.to_string();
        batch.extend(encode(&[b"set", key.as_bytes(), value.as_bytes()]));
        batch.extend(encode(&[b"get", key.as_bytes()]));
        batch.extend(encode(&[b"incr", b"counter"]));
    }
    client.send_raw(&batch).unwrap();
    for index in 0..1000 {
        assert_eq!(client.read().unwrap(), Reply::Simple("OK".into()));
        assert_eq!(client.read().unwrap(), bulk(&index.to_string()));
        assert_eq!(client.read().unwrap(), Reply::Integer(index + 1));
    }
}

#[test]
fn keys_expire_on_the_loop_clock() {
    let dir = util::scratch_dir("kv-expire");
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    assert_eq!(
        client.call(&["set", "short", "v", "px", "200"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        client.call(&["set", "long", "v", "ex", "100"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(client.call(&["get", "short"]), bulk("v"));
    thread::sleep(Duration::from_millis(300));
    assert_eq!(client.call(&["get", "short"]), Reply::Bulk(None));
    assert_eq!(client.call(&["dbsize"]), Reply::Integer(1));
    assert_eq!(client.call(&["incr", "n"]), Reply::Integer(1));
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let dir = util::scratch_dir("kv-slow-reader");
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    let value = "x".repeat(100_000);
    assert_eq!(
        client.call(&["set", "big", &value]),
        Reply::Simple("OK".into())
    );
    // Pipeline GETs of 100 KB without reading: the server stops reading
    // this client once its unsent replies pass the bound, so the client's
    // writes block; it never reads.
    let mut greedy = server.connect();
    greedy
        .writer
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = encode(&[b"get", b"big"]).repeat(1000);
    let mut sent = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        match greedy.writer.write(&request) {
            Ok(count) => sent += count,
            Err(_) => break, // Blocked: the server is not reading it.
        }
    }
    assert!(sent > 0);
    assert!(
        sent < 64 << 20,
        "the server kept reading a client that never reads"
    );
    // Others are served meanwhile.
    for index in 0..100 {
        assert_eq!(client.call(&["incr", "n"]), Reply::Integer(index + 1));
    }
    // A client trickling a command one byte at a time does not stall them either.
    let mut trickler = server.connect();
    let command = encode(&[b"set", b"trickled", b"yes"]);
    for (index, byte) in command.iter().enumerate() {
        trickler.send_raw(&[*byte]).unwrap();
        if index % 4 == 0 {
            assert_eq!(client.call(&["ping"]), Reply::Simple("PONG".into()));
        }
    }
    assert_eq!(trickler.read().unwrap(), Reply::Simple("OK".into()));
    drop(greedy);
    assert_eq!(client.call(&["get", "trickled"]), bulk("yes"));
}

#[test]
fn a_client_past_the_query_buffer_limit_is_closed() {
    let dir = util::scratch_dir("kv-query-limit");
    let server = start_server(&dir, &[]);
    let mut bystander = server.connect();
    let mut flooder = server.connect();
    // Three 30 MiB arguments: each within the bulk limit (32 MiB), together
    // past the query buffer limit (64 MiB).
    let chunk = vec![b'v'; 1 << 20];
    flooder
        .send_raw(b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n")
        .unwrap();
    let mut closed = false;
    'arguments: for _ in 0..3 {
        if flooder
            .send_raw(format!("${}\r\n", 30 << 20).as_bytes())
            .is_err()
        {
            closed = true;
            break;
        }
        for _ in 0..30 {
            if flooder.send_raw(&chunk).is_err() {
                closed = true;
                break 'arguments;
            }
        }
        if flooder.send_raw(b"\r\n").is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        assert!(flooder.read_to_close().is_empty(), "closed without a reply");
    }
    assert_eq!(bystander.call(&["ping"]), Reply::Simple("PONG".into()));
    assert!(server.stderr().contains("query buffer limit"));
}

#[test]
fn restart_replays_the_log() {
    let dir = util::scratch_dir("kv-restart");
    let mut server = start_server(&dir, &[]);
    let mut client = server.connect();
    client.call(&["mset", "a", "1", "b", "2", "c", "3"]);
    client.call(&["del", "b"]);
    client.call(&["incrby", "a", "41"]);
    client.call(&["set", "ttl", "v", "ex", "1000"]);
    client.call(&["set", "gone", "v", "px", "100"]);
    client.call(&["flushall"]);
    client.call(&["set", "after", "flush"]);
    client.call(&["mset", "x", "1", "y", "2"]);
    client.call(&["set", "ttl", "v", "ex", "1000"]);
    client.call(&["set", "gone", "v", "px", "100"]);
    thread::sleep(Duration::from_millis(200));
    drop(client);
    server.kill_9();
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    let got = client.call(&["mget", "a", "b", "after", "x", "y", "ttl", "gone"]);
    let expected = [
        None,
        None,
        Some("flush"),
        Some("1"),
        Some("2"),
        Some("v"),
        None,
    ];
    let expected = expected.map(|value| Reply::Bulk(value.map(|v| v.as_bytes().to_vec())));
    assert_eq!(got, Reply::Array(Some(expected.to_vec())));
    assert_eq!(client.call(&["dbsize"]), Reply::Integer(4));
    assert!(server.stderr().contains("replayed"));
}

/// Offsets where each group of a clean log starts, read from the headers
/// (32 bytes; the body length is the u32 at offset 24).
fn group_offsets(log: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = 0;
    while offset < log.len() {
        assert_eq!(&log[offset..offset + 4], b"RKV1");
        offsets.push(offset);
        let body = u32::from_le_bytes(log[offset + 24..offset + 28].try_into().unwrap());
        offset += 32 + body as usize;
    }
    offsets
}

/// Writes `count` keys one at a time (one group each), then stops the server.
fn log_of_keys(dir: &Path, count: usize) {
    let mut server = start_server(dir, &[]);
    let mut client = server.connect();
    for index in 0..count {
        let key = format!("key{index}");
        assert_eq!(
            client.call(&["set", &key, "value"]),
            Reply::Simple("OK".into())
        );
    }
    server.kill_9();
}

#[test]
fn a_torn_tail_is_truncated_and_reported() {
    let dir = util::scratch_dir("kv-torn");
    log_of_keys(&dir, 5);
    let path = wal_path(&dir);
    let log = fs::read(&path).unwrap();
    let offsets = group_offsets(&log);
    assert_eq!(offsets.len(), 5);
    // Tear the last group: its tail never reached the disk.
    let last = *offsets.last().unwrap();
    fs::write(&path, &log[..log.len() - 7]).unwrap();
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    assert_eq!(client.call(&["get", "key3"]), bulk("value"));
    assert_eq!(client.call(&["get", "key4"]), Reply::Bulk(None));
    let stderr = server.stderr();
    assert!(
        stderr.contains(&format!("torn tail at offset {last}")),
        "stderr: {stderr}"
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), last as u64, "truncated");
    // The log goes on from there, and replays cleanly.
    assert_eq!(
        client.call(&["set", "key4", "again"]),
        Reply::Simple("OK".into())
    );
    drop(server);
    let server = start_server(&dir, &[]);
    assert_eq!(server.connect().call(&["get", "key4"]), bulk("again"));
    assert_eq!(server.stderr().matches("torn tail").count(), 1);

    // Garbage after the last group is a torn tail too.
    drop(server);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"RKV1 and then some bytes that are not a group")
        .unwrap();
    drop(file);
    let server = start_server(&dir, &[]);
    assert_eq!(server.connect().call(&["get", "key4"]), bulk("again"));
    assert_eq!(server.stderr().matches("torn tail").count(), 2);
}

#[test]
fn a_corrupt_group_mid_log_stops_the_start_naming_its_offset() {
    let dir = util::scratch_dir("kv-corrupt");
    log_of_keys(&dir, 5);
    let path = wal_path(&dir);
    let mut log = fs::read(&path).unwrap();
    let offsets = group_offsets(&log);
    // Flip a bit in the body of group 2, which groups 3 to 5 record as synced.
    log[offsets[1] + 40] ^= 0x20;
    fs::write(&path, &log).unwrap();
    let (status, stderr) = run_until_exit(&dir);
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("corrupt at offset {}", offsets[1])),
        "stderr: {stderr}"
    );
    assert_eq!(fs::read(&path).unwrap(), log, "nothing was truncated");
}

/// What one writer connection of the crash test knows.
#[derive(Default)]
struct Writer {
    /// Per key, the value the server acknowledged last.
    acked: BTreeMap<String, String>,
    /// Per key, a value sent but not acknowledged when the server died.
    pending: BTreeMap<String, String>,
    /// INCR replies acknowledged, and whether one more INCR was in flight.
    counter: i64,
    counter_pending: bool,
}

/// Writes pipelined batches of SETs and an INCR until the server dies.
fn write_until_killed(addr: SocketAddr, id: usize, round: u32, mut writer: Writer) -> Writer {
    let mut client = Client::connect(addr);
    let counter_key = format!("w{id}-counter");
    let mut sequence = 0u64;
    loop {
        let mut batch = Vec::new();
        let mut sent = Vec::new();
        for _ in 0..8 {
            let key = format!("w{id}-k{}", sequence % 64);
            let value = format!("r{round}-s{sequence}");
            batch.extend(encode(&[b"set", key.as_bytes(), value.as_bytes()]));
            sent.push((key, value));
            sequence += 1;
        }
        batch.extend(encode(&[b"incr", counter_key.as_bytes()]));
        for (key, value) in &sent {
            writer.pending.insert(key.clone(), value.clone());
        }
        writer.counter_pending = true;
        if client.send_raw(&batch).is_err() {
            return writer;
        }
        for (key, value) in sent {
            match client.read() {
                Ok(reply) => assert_eq!(reply, Reply::Simple("OK".into())),
                Err(_) => return writer,
            }
            writer.pending.remove(&key);
            writer.acked.insert(key, value);
        }
        match client.read() {
            Ok(Reply::Integer(value)) => {
                assert_eq!(value, writer.counter + 1);
                writer.counter = value;
                writer.counter_pending = false;
            }
            Ok(other) => panic!("INCR replied {other:?}"),
            Err(_) => return writer,
        }
    }
}

/// Checks every acknowledged write survived (and that unacknowledged ones
/// are either absent or whole), then folds what is now on disk into the
/// writer's knowledge.
fn verify_after_crash(client: &mut Client, id: usize, writer: &mut Writer, round: u32) {
    let mut keys: Vec<String> = writer.acked.keys().cloned().collect();
    for key in writer.pending.keys() {
        if !writer.acked.contains_key(key) {
            keys.push(key.clone());
        }
    }
    let counter_key = format!("w{id}-counter");
    let mut args: Vec<&str> = vec!["mget", &counter_key];
    args.extend(keys.iter().map(String::as_str));
    let Reply::Array(Some(values)) = client.call(&args) else {
        panic!("MGET failed");
    };
    let text = |reply: &Reply| match reply {
        Reply::Bulk(Some(bytes)) => Some(String::from_utf8(bytes.clone()).unwrap()),
        Reply::Bulk(None) => None,
        other => panic!("MGET element {other:?}"),
    };
    let counter: i64 = text(&values[0]).map_or(0, |value| value.parse().unwrap());
    let counter_ok =
        counter == writer.counter || (writer.counter_pending && counter == writer.counter + 1);
    assert!(
        counter_ok,
        "round {round}, writer {id}: counter {counter}, acknowledged {}",
        writer.counter
    );
    writer.counter = counter;
    writer.counter_pending = false;
    for (key, value) in keys.iter().zip(&values[1..]) {
        let value = text(value);
        let acked = writer.acked.get(key);
        let pending = writer.pending.get(key);
        let ok = value.as_ref() == acked || (value.is_some() && value.as_ref() == pending);
        assert!(
            ok,
            "round {round}, writer {id}: {key} is {value:?}, acknowledged {acked:?} (in flight {pending:?})"
        );
        if let Some(value) = value {
            writer.acked.insert(key.clone(), value);
        }
    }
    writer.pending.clear();
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_write() {
    const WRITERS: usize = 4;
    let dir = util::scratch_dir("kv-crash");
    let mut writers: Vec<Writer> = (0..WRITERS).map(|_| Writer::default()).collect();
    let mut random = 0x2545_f491_4f6c_dd1d_u64;
    let mut rounds_passed = 0;
    for round in 0..CRASH_ROUNDS {
        let mut server = start_server(&dir, &[]);
        let mut client = server.connect();
        for (id, writer) in writers.iter_mut().enumerate() {
            verify_after_crash(&mut client, id, writer, round);
        }
        drop(client);
        rounds_passed += u32::from(round > 0);
        let handles: Vec<_> = std::mem::take(&mut writers)
            .into_iter()
            .enumerate()
            .map(|(id, writer)| {
                let addr = server.addr;
                thread::spawn(move || write_until_killed(addr, id, round, writer))
            })
            .collect();
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        thread::sleep(Duration::from_millis(20 + random % 150));
        server.kill_9();
        writers = handles
            .into_iter()
            .map(|handle| handle.join().expect("writer thread"))
            .collect();
    }
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    for (id, writer) in writers.iter_mut().enumerate() {
        verify_after_crash(&mut client, id, writer, CRASH_ROUNDS);
    }
    rounds_passed += 1;
    assert_eq!(rounds_passed, CRASH_ROUNDS);
    let acknowledged: usize = writers.iter().map(|writer| writer.acked.len()).sum();
    assert!(acknowledged > 0);
    println!("kill -9: {rounds_passed} of {CRASH_ROUNDS} rounds kept every acknowledged write");
    let stderr = server.stderr();
    assert!(!stderr.contains("corrupt"), "stderr: {stderr}");
}
