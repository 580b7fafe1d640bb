//! Runs the built `kv_server` example as a child process and drives it with
//! real Redis clients (`redis-cli`, `redis-benchmark`, redis-py) and with raw
//! RESP2 and RESP3: every command family against transcripts recorded from
//! redis-server 7.0.15 (tests/data/kv_transcripts), errors included,
//! malformed input, bounds, restart and recovery of the write-ahead log, and
//! `kill -9` at random moments with writes of every type.
//!
//! `redis-cli` and `redis-benchmark` come from the `redis-tools` package,
//! which `.ci/run` installs; redis-py lives in `target/redis-py-venv`, made
//! by `.ci/redis-py.sh` (which the redis-py test runs itself when it is
//! missing); the reboot test needs `unshare` (util-linux) and time
//! namespaces. Under CI (`CI=true`) a missing one fails the tests that need
//! it, naming the package; elsewhere they are skipped, and say so on the
//! terminal (see [`require`]).
//!
//! Every test works in a [`ScratchDir`], removed when the test ends, also
//! when it fails; every server is a [`ServerGuard`], killed likewise.

mod util;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
SET k v EX 10 EXAT 10
SET k v PXAT 10 KEEPTTL
SET k v EXAT
SET k v PX 9223372036854775807
SET k v EX 9223372036854775
TTL nokey
PTTL nokey
TTL k
PEXPIRETIME k
EXPIRETIME nokey
TTL
PTTL a b
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

/// What redis-server 7.0.15 prints for them, through `redis-cli --no-raw`.
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
(error) ERR syntax error
(error) ERR syntax error
(error) ERR syntax error
(error) ERR invalid expire time in 'set' command
(error) ERR invalid expire time in 'set' command
(integer) -2
(integer) -2
(integer) -1
(integer) -1
(integer) -2
(error) ERR wrong number of arguments for 'ttl' command
(error) ERR wrong number of arguments for 'pttl' command
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

/// A test's scratch directory (the server's log and its stderr), removed
/// when dropped: when the test passes, and when it fails too, since locals
/// are dropped while a failed assertion unwinds. Declare it before the
/// servers that use it, so that they are dropped (killed) first.
struct ScratchDir {
    dir: PathBuf,
}

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        ScratchDir {
            dir: util::scratch_dir(name),
        }
    }
}

impl Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if thread::panicking() {
            // The directory goes, so keep the server's side of the story in
            // the failed test's output.
            eprintln!(
                "kv_server's stderr ({}):\n{}",
                self.dir.display(),
                stderr_of(&self.dir)
            );
        }
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            eprintln!("removing {}: {error}", self.dir.display());
        }
    }
}

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
    guard_server(dir, spawn_server(dir, extra))
}

/// Waits for a spawned server's first line, killing it if that fails.
fn guard_server(dir: &Path, mut child: Child) -> ServerGuard {
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
    spawn_server_with(Command::new(&binary), dir, extra)
}

/// Spawns `command` (kv_server, or a wrapper that execs it) with the
/// server's arguments.
fn spawn_server_with(mut command: Command, dir: &Path, extra: &[&str]) -> Child {
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .expect("open stderr.log");
    let data = dir.join("data");
    command
        .args(["--addr", "127.0.0.1:0", "--max-seconds", SERVER_MAX_SECONDS])
        .arg("--dir")
        .arg(&data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {command:?}: {error}"))
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
            let _ = child.wait();
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

/// Whether `tool` runs (`tool --version` succeeds).
fn have_tool(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether a test may go on, given whether what it needs (`what`) is
/// `available`; `install` says how to get it. Under CI (`CI=true`) missing
/// is a failure: a green CI must mean the test ran. Elsewhere the test is
/// skipped: it returns early (and cargo reports it `ok`), after saying so
/// on the process's real stderr. Not through `eprintln!`, whose output the
/// test harness captures and shows only for failed tests.
fn require(test: &str, available: bool, what: &str, install: &str) -> bool {
    if available {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        !ci,
        "{test}: {what}: not available under CI=true: {install}"
    );
    let line = format!("SKIPPED {test}: {what}: not available ({install})\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// [`require`] for a tool of the `redis-tools` package.
fn require_redis_tool(test: &str, tool: &str) -> bool {
    require(
        test,
        have_tool(tool),
        tool,
        "apt-get install redis-tools; bash .ci/run installs it",
    )
}

/// A RESP2 or RESP3 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
    /// RESP3's `_`.
    Null,
    /// RESP3's `,`, as its text.
    Double(String),
    /// RESP3's `%`.
    Map(Vec<(Reply, Reply)>),
    /// RESP3's `~`.
    Set(Vec<Reply>),
    /// RESP3's `=`: the format, then the text.
    Verbatim(String, String),
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

    /// Whether nothing arrives within `wait` (a blocked client's reply has
    /// not come).
    fn nothing_within(&mut self, wait: Duration) -> bool {
        self.reader.get_ref().set_read_timeout(Some(wait)).unwrap();
        let result = self.reader.fill_buf().map(|buffered| buffered.len());
        self.reader
            .get_ref()
            .set_read_timeout(Some(IO_TIMEOUT))
            .unwrap();
        match result {
            Err(error) => matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            Ok(_) => false,
        }
    }

    /// Sends a command without waiting for its reply.
    fn send_command(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        self.send(&args).expect("send a command");
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
        "*" => Reply::Array(Some(read_items(reader, number())?)),
        "~" => Reply::Set(read_items(reader, number())?),
        "%" => {
            let items = read_items(reader, number() * 2)?;
            let mut pairs = Vec::new();
            let mut items = items.into_iter();
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                pairs.push((key, value));
            }
            Reply::Map(pairs)
        }
        "_" => Reply::Null,
        "," => Reply::Double(rest.to_string()),
        "=" => {
            let mut bytes = vec![0; number() as usize + 2];
            reader.read_exact(&mut bytes)?;
            bytes.truncate(bytes.len() - 2);
            let text = String::from_utf8(bytes).expect("UTF-8 verbatim text");
            let (format, text) = text.split_at(4);
            Reply::Verbatim(format.trim_end_matches(':').to_string(), text.to_string())
        }
        _ => panic!("not a RESP reply: {line:?}"),
    })
}

fn read_items(reader: &mut impl BufRead, count: i64) -> std::io::Result<Vec<Reply>> {
    (0..count).map(|_| read_reply(reader)).collect()
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
    let test = format!("redis_cli_drives_every_command_on_{backend}");
    if !require_redis_tool(&test, "redis-cli") {
        return;
    }
    let dir = ScratchDir::new(&format!("kv-cli-{backend}"));
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

/// The recorded transcripts in tests/data/kv_transcripts: each NAME.txt
/// holds commands, one a line, and NAME.resp2 and NAME.resp3 what
/// redis-server 7.0.15 printed for them through `redis-cli --no-raw`, in
/// RESP2 and with `-3` (recorded by `record.sh` there, which starts
/// redis-server 7.0.15 itself). Every command of every family is in one,
/// errors and WRONGTYPE included; replies whose order Redis leaves
/// unspecified (SMEMBERS of several members, KEYS) are kept to one element.
/// The blocking pops' transcripts (`blocking.txt` for lists, `zblocking.txt`
/// for sorted sets, ZMPOP and WAIT) have what one client can show: pops
/// that find a key, timeouts of a few milliseconds, every error, and
/// MULTI, where they never block; the tests below drive the rest with
/// several clients.
const TRANSCRIPTS: [&str; 13] = [
    "strings",
    "keys",
    "expire",
    "hashes",
    "lists",
    "sets",
    "zsets",
    "sort",
    "multi",
    "server",
    "blocking",
    "zblocking",
    "shutdown",
];

fn transcripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kv_transcripts")
}

/// Replays every transcript against kv_server on `backend`, in both
/// protocols, and compares line by line with redis-server's.
fn recorded_transcripts_match_redis(backend: &str) {
    let test = format!("recorded_transcripts_match_redis_7_0_15_on_{backend}");
    if !require_redis_tool(&test, "redis-cli") {
        return;
    }
    let dir = ScratchDir::new(&format!("kv-transcripts-{backend}"));
    let server = start_server(&dir, &["--backend", backend]);
    let mut compared = 0;
    for name in TRANSCRIPTS {
        let commands = fs::read_to_string(transcripts_dir().join(format!("{name}.txt")))
            .expect("read a transcript's commands");
        for protocol in ["resp2", "resp3"] {
            let path = transcripts_dir().join(format!("{name}.{protocol}"));
            let expected = fs::read_to_string(&path).expect("read a recorded transcript");
            assert_eq!(redis_cli(&server, &["flushall"], ""), "OK\n");
            let mut args = vec!["--no-raw"];
            if protocol == "resp3" {
                args.push("-3");
            }
            let got = redis_cli(&server, &args, &commands);
            let got_lines: Vec<&str> = got.lines().collect();
            for (index, (got, expected)) in got_lines.iter().zip(expected.lines()).enumerate() {
                assert_eq!(
                    got,
                    &expected,
                    "{name}.{protocol}, line {}; kv_server's whole transcript:\n{}",
                    index + 1,
                    got_lines.join("\n")
                );
            }
            assert_eq!(
                got_lines.len(),
                expected.lines().count(),
                "{name}.{protocol}:\n{got}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, TRANSCRIPTS.len() * 2);
}

#[test]
fn recorded_transcripts_match_redis_7_0_15_on_io_uring() {
    recorded_transcripts_match_redis("io_uring");
}

#[test]
fn recorded_transcripts_match_redis_7_0_15_on_epoll() {
    recorded_transcripts_match_redis("epoll");
}

/// COMMAND DOCS names each command's group as redis-server 7.0.15 does
/// (`command_groups`, recorded by record.sh): clients and tools sort
/// commands by it. RESP2, where a map is a flat array.
#[test]
fn command_docs_groups_match_redis_7_0_15() {
    let recorded = fs::read_to_string(transcripts_dir().join("command_groups"))
        .expect("read the recorded command groups");
    let groups: BTreeMap<&str, &str> = recorded
        .lines()
        .filter_map(|line| line.split_once(' '))
        .collect();
    let dir = ScratchDir::new("kv-command-groups");
    let server = start_server(&dir, &[]);
    let mut client = Client::connect(server.addr);
    let Reply::Array(Some(docs)) = client.call(&["COMMAND", "DOCS"]) else {
        panic!("COMMAND DOCS is not an array");
    };
    let mut checked = 0;
    for pair in docs.chunks(2) {
        let [Reply::Bulk(Some(name)), Reply::Array(Some(fields))] = pair else {
            panic!("COMMAND DOCS entry: {pair:?}");
        };
        let name = String::from_utf8_lossy(name);
        let group = fields
            .chunks(2)
            .find(|field| field[0] == bulk("group"))
            .map(|field| field[1].clone());
        let expected = groups
            .get(&*name)
            .unwrap_or_else(|| panic!("{name}: not a Redis command"));
        assert_eq!(group, Some(bulk(expected)), "{name}'s group");
        checked += 1;
    }
    let Reply::Integer(count) = client.call(&["COMMAND", "COUNT"]) else {
        panic!("COMMAND COUNT is not an integer");
    };
    assert_eq!(checked, count, "COMMAND DOCS lists every command");
}

#[test]
fn redis_benchmark_reports_no_errors() {
    if !require_redis_tool("redis_benchmark_reports_no_errors", "redis-benchmark") {
        return;
    }
    let dir = ScratchDir::new("kv-benchmark");
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

/// The tests redis-benchmark runs with no `-t`, as its `--csv` names them.
const BENCHMARK_DEFAULT_TESTS: [&str; 20] = [
    "PING_INLINE",
    "PING_MBULK",
    "SET",
    "GET",
    "INCR",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "SADD",
    "HSET",
    "SPOP",
    "ZADD",
    "ZPOPMIN",
    "LPUSH (needed to benchmark LRANGE)",
    "LRANGE_100 (first 100 elements)",
    "LRANGE_300 (first 300 elements)",
    "LRANGE_500 (first 500 elements)",
    "LRANGE_600 (first 600 elements)",
    "MSET (10 keys)",
];

/// `redis-benchmark -q -n 20000`, every default test, as a new user runs it
/// (with `--csv` so the rows can be read), under `--fsync always`.
#[test]
fn redis_benchmark_default_run_completes_every_test_without_errors() {
    let test = "redis_benchmark_default_run_completes_every_test_without_errors";
    if !require_redis_tool(test, "redis-benchmark") {
        return;
    }
    let dir = ScratchDir::new("kv-benchmark-default");
    let server = start_server(&dir, &[]);
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(["-q", "-n", "20000", "--csv"])
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "redis-benchmark failed: {stderr}");
    assert!(
        !stdout.to_lowercase().contains("error") && !stderr.to_lowercase().contains("error"),
        "redis-benchmark reported errors:\n{stdout}\n{stderr}"
    );
    for name in BENCHMARK_DEFAULT_TESTS {
        let row = stdout
            .lines()
            .find(|line| line.starts_with(&format!("\"{name}\",")))
            .unwrap_or_else(|| panic!("no {name} row in:\n{stdout}"));
        let rps: f64 = row
            .split('"')
            .nth(3)
            .and_then(|rps| rps.parse().ok())
            .unwrap();
        assert!(rps > 0.0, "{row}");
    }
    // Its writes went through the log: what is left is what Redis leaves.
    let mut client = server.connect();
    assert_eq!(
        client.call(&["type", "mylist"]),
        Reply::Simple("list".into())
    );
    assert!(integer(client.call(&["llen", "mylist"])) >= 600);
    assert_eq!(
        client.call(&["type", "myhash"]),
        Reply::Simple("hash".into())
    );
    assert_eq!(
        client.call(&["exists", "key:__rand_int__"]),
        Reply::Integer(1)
    );
    drop(client);
    let mut server = server;
    server.kill_9();
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    assert!(integer(client.call(&["llen", "mylist"])) >= 600);
    assert_eq!(
        client.call(&["hexists", "myhash", "element:__rand_int__"]),
        Reply::Integer(1)
    );
}

/// The Python interpreter of target/redis-py-venv, made by `.ci/redis-py.sh`
/// (run here when it is missing).
fn redis_py_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/redis-py-venv/bin/python");
    let works = |python: &Path| {
        Command::new(python)
            .args(["-c", "import redis"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if works(&python) {
        return Some(python);
    }
    let _ = Command::new("bash")
        .arg(root.join(".ci/redis-py.sh"))
        .stdout(Stdio::null())
        .status();
    works(&python).then_some(python)
}

/// redis-py 8 with its default settings (RESP3 through HELLO 3, pipelines
/// as MULTI/EXEC) on every type and on blocking pops (threads blocked in
/// BLPOP woken by another client, timeouts, a disconnect while blocked,
/// CLIENT UNBLOCK), then with protocol=2, then against a server started
/// with --requirepass: tests/redis_py_check.py.
#[test]
fn redis_py_with_default_settings_works() {
    let test = "redis_py_with_default_settings_works";
    let python = redis_py_python();
    let install = "bash .ci/redis-py.sh (python3 -m venv, pip install redis)";
    if !require(
        test,
        python.is_some(),
        "redis-py in target/redis-py-venv",
        install,
    ) {
        return;
    }
    let dir = ScratchDir::new("kv-redis-py");
    let server = start_server(&dir, &[]);
    let locked_dir = ScratchDir::new("kv-redis-py-password");
    let locked = start_server(&locked_dir, &["--requirepass", "sekrit"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redis_py_check.py");
    let output = Command::new(python.unwrap())
        .arg(script)
        .arg(server.addr.port().to_string())
        .arg(locked.addr.port().to_string())
        .arg("sekrit")
        .output()
        .expect("run redis_py_check.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "redis-py failed:\n{stdout}\n{stderr}"
    );
    for line in [
        "default settings (RESP3): ok",
        "protocol=2: ok",
        "password: ok",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
    assert!(stdout.contains("checks passed"), "{stdout}");
}

#[test]
fn inline_commands_work_as_in_redis() {
    let dir = ScratchDir::new("kv-inline");
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
    let dir = ScratchDir::new("kv-malformed");
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
    let dir = ScratchDir::new("kv-huge");
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
    let dir = ScratchDir::new("kv-pipeline");
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
fn keys_expire_on_the_wall_clock() {
    let dir = ScratchDir::new("kv-expire");
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

/// The wall clock in Unix milliseconds, as the server reads it.
fn unix_ms() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

fn integer(reply: Reply) -> i64 {
    match reply {
        Reply::Integer(value) => value,
        other => panic!("not an integer reply: {other:?}"),
    }
}

#[test]
fn expiry_survives_a_restart_at_its_absolute_wall_clock_time() {
    let dir = ScratchDir::new("kv-expire-restart");
    let mut server = start_server(&dir, &[]);
    let mut client = server.connect();
    let before_ms = unix_ms();
    assert_eq!(
        client.call(&["set", "long", "v", "ex", "3600"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        client.call(&["set", "short", "v", "px", "1500"]),
        Reply::Simple("OK".into())
    );
    let at_ms = before_ms + 7_200_123;
    let at = at_ms.to_string();
    assert_eq!(
        client.call(&["set", "at", "v", "pxat", &at]),
        Reply::Simple("OK".into())
    );
    assert_eq!(client.call(&["incr", "counter"]), Reply::Integer(1));
    let after_ms = unix_ms();
    // The deadlines are absolute Unix milliseconds: now plus the timeout.
    let long_ms = integer(client.call(&["pexpiretime", "long"]));
    assert!(
        (before_ms + 3_600_000..=after_ms + 3_600_000).contains(&long_ms),
        "PEXPIRETIME long {long_ms}, set between {before_ms} and {after_ms}"
    );
    let short_ms = integer(client.call(&["pexpiretime", "short"]));
    assert!((before_ms + 1500..=after_ms + 1500).contains(&short_ms));
    // EXPIRETIME rounds to the nearest second, as Redis's does.
    assert_eq!(
        integer(client.call(&["expiretime", "long"])),
        (long_ms + 500) / 1000
    );
    drop(client);
    server.kill_9();

    // The same absolute times after the restart, to the millisecond.
    let mut server = start_server(&dir, &[]);
    let mut client = server.connect();
    assert_eq!(integer(client.call(&["pexpiretime", "long"])), long_ms);
    assert_eq!(integer(client.call(&["pexpiretime", "at"])), at_ms);
    assert_eq!(integer(client.call(&["pexpiretime", "counter"])), -1);
    let ttl = integer(client.call(&["ttl", "long"]));
    assert!((3590..=3600).contains(&ttl), "TTL long {ttl}");
    let pttl = integer(client.call(&["pttl", "at"]));
    assert!((7_190_000..=7_200_123).contains(&pttl), "PTTL at {pttl}");
    // And the short key dies when its wall-clock deadline passes.
    let wait_ms = short_ms + 100 - unix_ms();
    thread::sleep(Duration::from_millis(wait_ms.max(0) as u64));
    assert_eq!(client.call(&["get", "short"]), Reply::Bulk(None));
    assert_eq!(integer(client.call(&["ttl", "short"])), -2);
    assert_eq!(client.call(&["get", "long"]), bulk("v"));
    drop(client);
    server.kill_9();

    // Replayed after its deadline, the short key is gone at once.
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    assert_eq!(client.call(&["exists", "short"]), Reply::Integer(0));
    assert_eq!(client.call(&["dbsize"]), Reply::Integer(3));
}

/// SET's expiry boundaries, each with what redis-server 7.0.15 replies.
/// Redis computes the absolute deadline in `i64` milliseconds (now plus the
/// timeout for EX and PX) and refuses what does not fit.
const EXPIRY_BOUNDARIES: &[(&[&str], &str)] = &[
    (&["ex", "0"], "invalid"),
    (&["ex", "-1"], "invalid"),
    (&["px", "0"], "invalid"),
    (&["px", "-1"], "invalid"),
    // The timeout fits, now plus the timeout does not.
    (&["px", "9223372036854775807"], "invalid"),
    (&["px", "9223372035000000000"], "invalid"),
    (&["ex", "9223372036854775"], "invalid"),
    // The timeout in milliseconds does not fit.
    (&["ex", "9223372036854776"], "invalid"),
    (&["ex", "9223372036854775807"], "invalid"),
    // Not an i64 at all, or not as Redis's string2ll reads one.
    (&["ex", "9223372036854775808"], "not an integer"),
    (&["px", "9223372036854775808"], "not an integer"),
    (&["ex", "1.5"], "not an integer"),
    (&["ex", "01"], "not an integer"),
    (&["ex", "+1"], "not an integer"),
    // Absolute times only need to be positive and fit in i64 milliseconds.
    (&["exat", "0"], "invalid"),
    (&["pxat", "-1"], "invalid"),
    (&["exat", "9223372036854776"], "invalid"),
];

#[test]
fn overflowing_expire_times_are_refused_as_redis_7_0_refuses_them() {
    let dir = ScratchDir::new("kv-expire-bounds");
    let mut server = start_server(&dir, &[]);
    let mut client = server.connect();
    assert_eq!(
        client.call(&["set", "k", "before"]),
        Reply::Simple("OK".into())
    );
    for (option, expected) in EXPIRY_BOUNDARIES {
        let mut args = vec!["set", "k", "after"];
        args.extend_from_slice(option);
        let expected = match *expected {
            "invalid" => error("ERR invalid expire time in 'set' command"),
            "not an integer" => error("ERR value is not an integer or out of range"),
            other => unreachable!("{other}"),
        };
        assert_eq!(client.call(&args), expected, "SET k after {option:?}");
        // A refused SET changes nothing.
        assert_eq!(client.call(&["get", "k"]), bulk("before"), "{option:?}");
        assert_eq!(integer(client.call(&["pttl", "k"])), -1, "{option:?}");
    }
    // The largest times Redis accepts, and what it then reports.
    let ok = Reply::Simple("OK".into());
    let far = "9223370000000000000";
    let before_ms = unix_ms();
    assert_eq!(client.call(&["set", "far", "v", "px", far]), ok);
    let far_ms = integer(client.call(&["pexpiretime", "far"]));
    assert!(far_ms >= before_ms + 9_223_370_000_000_000_000);
    assert!(far_ms <= unix_ms() + 9_223_370_000_000_000_000);
    assert_eq!(
        client.call(&["set", "exat", "v", "exat", "9223372036854775"]),
        ok
    );
    assert_eq!(
        integer(client.call(&["pexpiretime", "exat"])),
        9_223_372_036_854_775_000
    );
    assert_eq!(
        client.call(&["set", "pxat", "v", "pxat", "9223372036854775807"]),
        ok
    );
    assert_eq!(integer(client.call(&["pexpiretime", "pxat"])), i64::MAX);
    // An absolute time in the past is accepted, and the key is gone at once.
    assert_eq!(client.call(&["set", "past", "v", "exat", "1"]), ok);
    assert_eq!(client.call(&["get", "past"]), Reply::Bulk(None));
    // The accepted extremes replay.
    drop(client);
    server.kill_9();
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    assert_eq!(integer(client.call(&["pexpiretime", "far"])), far_ms);
    assert_eq!(integer(client.call(&["pexpiretime", "pxat"])), i64::MAX);
    assert_eq!(
        client.call(&["mget", "k", "past"]),
        Reply::Array(Some(vec![bulk("before"), Reply::Bulk(None)]))
    );
}

/// Whether this machine runs programs in a time namespace with a moved
/// monotonic clock (`unshare -T`, Linux 5.6 and later, as root).
fn have_time_namespaces() -> bool {
    Command::new("unshare")
        .args(["-T", "--monotonic=7200", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Starts the server in a new time namespace whose CLOCK_MONOTONIC reads
/// `monotonic_offset_s` seconds more than the machine's: as after a reboot,
/// the monotonic clock has nothing to do with the last run's, while the
/// wall clock is the same. unshare execs the server (no `--fork`), so the
/// child is the server itself, and killing it leaves nothing behind.
fn start_server_rebooted(dir: &Path, monotonic_offset_s: i64) -> ServerGuard {
    let binary = util::example_binary("kv_server");
    let mut command = Command::new("unshare");
    command
        .args(["-T", &format!("--monotonic={monotonic_offset_s}")])
        .arg(&binary);
    guard_server(dir, spawn_server_with(command, dir, &[]))
}

#[test]
fn expiry_holds_across_reboots_that_move_the_monotonic_clock() {
    let test = "expiry_holds_across_reboots_that_move_the_monotonic_clock";
    let available = have_time_namespaces();
    if !require(
        test,
        available,
        "time namespaces (unshare -T)",
        "util-linux's unshare, Linux 5.6+, root",
    ) {
        return;
    }
    let dir = ScratchDir::new("kv-expire-reboot");
    let ok = Reply::Simple("OK".into());
    // A boot, then one whose monotonic clock is 2 h ahead: an hour-long
    // expiry must not be over at once.
    let mut server = start_server_rebooted(&dir, 0);
    assert_eq!(
        server.connect().call(&["set", "hour", "v", "ex", "3600"]),
        ok
    );
    server.kill_9();
    let mut server = start_server_rebooted(&dir, 7200);
    let mut client = server.connect();
    assert_eq!(client.call(&["get", "hour"]), bulk("v"));
    let ttl = integer(client.call(&["ttl", "hour"]));
    assert!((3590..=3600).contains(&ttl), "TTL hour {ttl}");
    // Then one whose monotonic clock is 2 h behind again: a 2 s expiry
    // must not last 2 h.
    let set_ms = unix_ms();
    assert_eq!(client.call(&["set", "brief", "v", "ex", "2"]), ok);
    drop(client);
    server.kill_9();
    let server = start_server_rebooted(&dir, 0);
    let mut client = server.connect();
    assert_eq!(client.call(&["get", "hour"]), bulk("v"));
    let ttl = integer(client.call(&["ttl", "hour"]));
    assert!((3590..=3600).contains(&ttl), "TTL hour {ttl}");
    let wait_ms = set_ms + 2000 + 200 - unix_ms();
    thread::sleep(Duration::from_millis(wait_ms.max(0) as u64));
    assert_eq!(client.call(&["get", "brief"]), Reply::Bulk(None));
    assert_eq!(client.call(&["dbsize"]), Reply::Integer(1));
}

/// Runs `kv_server --help` with stdout a pipe whose reader reads
/// `lines_read` lines and closes it (`None`: closed before the server
/// starts, so its first write fails with EPIPE). The exit status and stderr.
fn help_into_pipe(lines_read: Option<usize>) -> (ExitStatus, String) {
    let binary = util::example_binary("kv_server");
    let mut command = Command::new(&binary);
    command.arg("--help").stderr(Stdio::piped());
    let mut child = match lines_read {
        None => {
            let (read, write) = util::pipe();
            drop(read);
            command
                .stdout(Stdio::from(write))
                .spawn()
                .expect("spawn kv_server")
        }
        Some(lines) => {
            let mut child = command
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn kv_server");
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            for _ in 0..lines {
                let mut line = String::new();
                stdout
                    .read_line(&mut line)
                    .expect("read a line of the help");
            }
            child
        }
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().expect("wait for kv_server"), stderr)
}

#[test]
fn help_into_a_closed_pipe_exits_quietly() {
    for lines_read in [None, Some(0), Some(3)] {
        let (status, stderr) = help_into_pipe(lines_read);
        assert!(
            status.success(),
            "{lines_read:?}: {status}, stderr: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{lines_read:?}: {stderr}");
        assert_eq!(stderr, "", "{lines_read:?}");
    }
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let dir = ScratchDir::new("kv-slow-reader");
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
    let dir = ScratchDir::new("kv-query-limit");
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
    let dir = ScratchDir::new("kv-restart");
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

/// A server killed with `kill -9` starts again on its own port at once,
/// as redis-server does: on io_uring the dead server's listening socket
/// lingers until the kernel has torn its ring down (some tens of
/// milliseconds), and kv_server's start waits that out rather than fail
/// with "Address already in use".
#[test]
fn a_server_killed_with_kill_9_starts_again_at_once_on_its_port() {
    let dir = ScratchDir::new("kv-rebind");
    let mut server = start_server(&dir, &[]);
    let addr = server.addr.to_string();
    for round in 0..3 {
        let mut client = server.connect();
        client.call(&["set", "round", &round.to_string()]);
        drop(client);
        server.kill_9();
        server = start_server(&dir, &["--addr", &addr]);
        assert_eq!(server.addr.to_string(), addr);
        let mut client = server.connect();
        let got = client.call(&["get", "round"]);
        assert_eq!(got, Reply::Bulk(Some(round.to_string().into_bytes())));
    }
}

/// Offsets where each group of a clean log starts, read from the headers
/// (32 bytes; the body length is the u32 at offset 24).
fn group_offsets(log: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = 0;
    while offset < log.len() {
        assert_eq!(&log[offset..offset + 4], b"RKV2");
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
    let dir = ScratchDir::new("kv-torn");
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
    file.write_all(b"RKV2 and then some bytes that are not a group")
        .unwrap();
    drop(file);
    let server = start_server(&dir, &[]);
    assert_eq!(server.connect().call(&["get", "key4"]), bulk("again"));
    assert_eq!(server.stderr().matches("torn tail").count(), 2);
}

#[test]
fn a_corrupt_group_mid_log_stops_the_start_naming_its_offset() {
    let dir = ScratchDir::new("kv-corrupt");
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

#[test]
fn an_old_format_log_is_refused_untouched() {
    let dir = ScratchDir::new("kv-old-format");
    log_of_keys(&dir, 3);
    let path = wal_path(&dir);
    // As an older kv_server wrote it: format RKV1, monotonic deadlines.
    let mut log = fs::read(&path).unwrap();
    log[0..4].copy_from_slice(b"RKV1");
    fs::write(&path, &log).unwrap();
    let (status, stderr) = run_until_exit(&dir);
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("written by an older kv_server (format RKV1"),
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
    let dir = ScratchDir::new("kv-crash");
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

/// The writes of the every-type crash test, by position in a writer's
/// stream: op `index` is kind `index % 6`, with values made from `index`.
const TYPED_KINDS: u64 = 6;

/// What a writer's keys hold after a prefix of its op stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TypedState {
    list: Vec<String>,
    hash: BTreeMap<String, String>,
    set: Vec<String>,
    zset: Vec<(String, String)>,
    /// MULTI; INCR a; INCR b; EXEC: both counters, always equal.
    tx: (i64, i64),
    /// SET with EX: the value, and whether a TTL was seen.
    expiring: Option<String>,
}

impl TypedState {
    fn apply(&mut self, index: u64) {
        match index % TYPED_KINDS {
            0 => self.list.push(format!("e{index}")),
            1 => {
                self.hash
                    .insert(format!("f{}", index % 8), format!("v{index}"));
            }
            2 => {
                self.set.push(format!("m{index}"));
                self.set.sort();
            }
            3 => {
                let member = format!("m{}", index % 8);
                self.zset.retain(|(existing, _)| *existing != member);
                self.zset.push((member, index.to_string()));
                self.zset
                    .sort_by_key(|(member, score)| (score.parse::<u64>().unwrap(), member.clone()));
            }
            4 => self.tx = (self.tx.0 + 1, self.tx.1 + 1),
            _ => self.expiring = Some(format!("x{index}")),
        }
    }
}

/// The commands of op `index` for writer `id`, and how many replies they get.
fn typed_op(id: usize, index: u64) -> (Vec<u8>, usize) {
    let key = |name: &str| format!("t{id}:{name}");
    let value = index.to_string();
    let mut bytes = Vec::new();
    let mut push = |args: &[&str]| {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        bytes.extend(encode(&args));
    };
    let replies = match index % TYPED_KINDS {
        0 => {
            push(&["rpush", &key("list"), &format!("e{index}")]);
            1
        }
        1 => {
            push(&[
                "hset",
                &key("hash"),
                &format!("f{}", index % 8),
                &format!("v{index}"),
            ]);
            1
        }
        2 => {
            push(&["sadd", &key("set"), &format!("m{index}")]);
            1
        }
        3 => {
            push(&["zadd", &key("zset"), &value, &format!("m{}", index % 8)]);
            1
        }
        4 => {
            push(&["multi"]);
            push(&["incr", &key("tx:a")]);
            push(&["incr", &key("tx:b")]);
            push(&["exec"]);
            4
        }
        _ => {
            push(&["set", &key("ttl"), &format!("x{index}"), "ex", "100000"]);
            1
        }
    };
    (bytes, replies)
}

/// Sends ops from `next` on, in pipelined batches, until the server dies;
/// returns how many ops were acknowledged (all their replies read) and sent.
fn write_typed_until_killed(addr: SocketAddr, id: usize, next: u64) -> (u64, u64) {
    let mut client = Client::connect(addr);
    let (mut acked, mut sent) = (next, next);
    loop {
        let mut batch = Vec::new();
        let mut replies = Vec::new();
        for index in sent..sent + 12 {
            let (bytes, count) = typed_op(id, index);
            batch.extend(bytes);
            replies.push(count);
        }
        if client.send_raw(&batch).is_err() {
            return (acked, sent);
        }
        sent += 12;
        for count in replies {
            for _ in 0..count {
                match client.read() {
                    Ok(Reply::Error(error)) => panic!("writer {id}: {error}"),
                    Ok(_) => {}
                    Err(_) => return (acked, sent),
                }
            }
            acked += 1;
        }
    }
}

fn strings_of(reply: Reply) -> Vec<String> {
    let Reply::Array(Some(items)) = reply else {
        panic!("not an array: {reply:?}");
    };
    items
        .into_iter()
        .map(|item| match item {
            Reply::Bulk(Some(bytes)) => String::from_utf8(bytes).unwrap(),
            other => panic!("not a bulk string: {other:?}"),
        })
        .collect()
}

/// What writer `id`'s keys hold now.
fn observe_typed(client: &mut Client, id: usize) -> TypedState {
    let key = |name: &str| format!("t{id}:{name}");
    let list = strings_of(client.call(&["lrange", &key("list"), "0", "-1"]));
    let flat = strings_of(client.call(&["hgetall", &key("hash")]));
    let hash = flat
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    let mut set = strings_of(client.call(&["smembers", &key("set")]));
    set.sort();
    let flat = strings_of(client.call(&["zrange", &key("zset"), "0", "-1", "withscores"]));
    let zset = flat
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    let counters = client.call(&["mget", &key("tx:a"), &key("tx:b")]);
    let counters: Vec<i64> = match counters {
        Reply::Array(Some(items)) => items
            .into_iter()
            .map(|item| match item {
                Reply::Bulk(Some(bytes)) => String::from_utf8(bytes).unwrap().parse().unwrap(),
                _ => 0,
            })
            .collect(),
        other => panic!("MGET {other:?}"),
    };
    let expiring = match client.call(&["get", &key("ttl")]) {
        Reply::Bulk(Some(bytes)) => {
            let ttl = integer(client.call(&["ttl", &key("ttl")]));
            assert!((99_000..=100_000).contains(&ttl), "writer {id}: TTL {ttl}");
            Some(String::from_utf8(bytes).unwrap())
        }
        _ => None,
    };
    TypedState {
        list,
        hash,
        set,
        zset,
        tx: (counters[0], counters[1]),
        expiring,
    }
}

#[test]
fn kill_9_loses_no_acknowledged_write_of_any_type() {
    kill_9_of_any_type("kv-crash-types", &[]);
}

/// The same, compacting the log every 4 KiB: kill -9 lands in every step
/// of compaction (snapshot written, renamed, log cut) as well as between.
#[test]
fn kill_9_while_compacting_loses_no_acknowledged_write_of_any_type() {
    let stderr = kill_9_of_any_type("kv-crash-compact", &["--compact-bytes", "4096"]);
    assert!(
        stderr.contains("snapshot"),
        "no snapshot was read: {stderr}"
    );
}

/// Rounds of writes of every type, each ended by kill -9; returns the last
/// server's stderr.
fn kill_9_of_any_type(name: &str, extra: &[&str]) -> String {
    const WRITERS: usize = 3;
    const ROUNDS: u32 = 20;
    let dir = ScratchDir::new(name);
    // Per writer: the state after its first `applied` ops, which the server
    // holds; the ops acknowledged and sent in the round that just ended.
    let mut states = vec![(TypedState::default(), 0u64, 0u64, 0u64); WRITERS];
    let mut random = 0x9e37_79b9_7f4a_7c15_u64;
    let mut stderr = String::new();
    for round in 0..=ROUNDS {
        let mut server = start_server(&dir, extra);
        let mut client = server.connect();
        for (id, (state, applied, acked, sent)) in states.iter_mut().enumerate() {
            let observed = observe_typed(&mut client, id);
            assert_eq!(
                observed.tx.0, observed.tx.1,
                "round {round}: a torn transaction"
            );
            // The server holds some prefix of the stream, no shorter than
            // what was acknowledged and no longer than what was sent.
            let mut candidate = state.clone();
            for index in *applied..*acked {
                candidate.apply(index);
            }
            let mut found = None;
            for index in *acked..=*sent {
                if candidate == observed {
                    found = Some(index);
                    break;
                }
                candidate.apply(index);
            }
            let Some(prefix) = found else {
                panic!(
                    "round {round}, writer {id}: the server holds {observed:?}, which no prefix \
                     of {acked}..={sent} ops gives (acknowledged: {acked})"
                );
            };
            *state = observed;
            *applied = prefix;
        }
        drop(client);
        if round == ROUNDS {
            stderr = server.stderr();
            break;
        }
        let handles: Vec<_> = states
            .iter()
            .enumerate()
            .map(|(id, (_, applied, _, _))| {
                let (addr, next) = (server.addr, *applied);
                thread::spawn(move || write_typed_until_killed(addr, id, next))
            })
            .collect();
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        thread::sleep(Duration::from_millis(30 + random % 150));
        server.kill_9();
        for (handle, (_, _, acked, sent)) in handles.into_iter().zip(states.iter_mut()) {
            (*acked, *sent) = handle.join().expect("writer thread");
        }
    }
    let applied: u64 = states.iter().map(|(_, applied, _, _)| applied).sum();
    assert!(applied > 0);
    println!("kill -9 with every type: {ROUNDS} rounds, {applied} ops survived");
    assert!(!stderr.contains("corrupt"), "stderr: {stderr}");
    stderr
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

#[test]
fn hello_3_switches_the_connection_to_resp3_replies() {
    let dir = ScratchDir::new("kv-resp3");
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    let id = integer(client.call(&["client", "id"]));
    let Reply::Map(hello) = client.call(&["hello", "3", "setname", "r3"]) else {
        panic!("HELLO 3 replies a map");
    };
    let field = |name: &str| {
        hello
            .iter()
            .find(|(key, _)| *key == bulk(name))
            .map(|(_, value)| value.clone())
    };
    assert_eq!(field("server"), Some(bulk("redis")));
    assert_eq!(field("version"), Some(bulk("7.0.15")));
    assert_eq!(field("proto"), Some(Reply::Integer(3)));
    assert_eq!(field("id"), Some(Reply::Integer(id)));
    assert_eq!(field("modules"), Some(Reply::Array(Some(vec![]))));
    assert_eq!(client.call(&["client", "getname"]), bulk("r3"));
    assert_eq!(client.call(&["get", "missing"]), Reply::Null);
    assert_eq!(client.call(&["hset", "h", "f", "v"]), Reply::Integer(1));
    assert_eq!(
        client.call(&["hgetall", "h"]),
        Reply::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(client.call(&["sadd", "s", "m"]), Reply::Integer(1));
    assert_eq!(client.call(&["smembers", "s"]), Reply::Set(vec![bulk("m")]));
    assert_eq!(client.call(&["zadd", "z", "0.1", "m"]), Reply::Integer(1));
    let score = Reply::Double("0.10000000000000001".into());
    assert_eq!(client.call(&["zscore", "z", "m"]), score);
    let pair = Reply::Array(Some(vec![bulk("m"), score.clone()]));
    let nested = Reply::Array(Some(vec![pair]));
    assert_eq!(
        client.call(&["zrange", "z", "0", "-1", "withscores"]),
        nested
    );
    assert_eq!(
        client.call(&["config", "get", "appendonly"]),
        Reply::Map(vec![(bulk("appendonly"), bulk("yes"))])
    );
    let Reply::Verbatim(format, info) = client.call(&["info", "server"]) else {
        panic!("INFO is verbatim text in RESP3");
    };
    assert_eq!(format, "txt");
    assert!(
        info.starts_with("# Server\r\nredis_version:7.0.15\r\n"),
        "{info}"
    );
    assert_eq!(client.call(&["multi"]), ok());
    assert_eq!(
        client.call(&["get", "missing"]),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        client.call(&["exec"]),
        Reply::Array(Some(vec![Reply::Null]))
    );
    // HELLO 2 goes back; another connection stayed in RESP2 throughout.
    let Reply::Array(Some(_)) = client.call(&["hello", "2"]) else {
        panic!("HELLO 2 replies a flat array");
    };
    assert_eq!(
        client.call(&["zscore", "z", "m"]),
        bulk("0.10000000000000001")
    );
    let mut other = server.connect();
    assert_eq!(other.call(&["get", "missing"]), Reply::Bulk(None));
}

#[test]
fn requirepass_makes_every_command_but_auth_wait_for_auth() {
    let dir = ScratchDir::new("kv-auth");
    let server = start_server(&dir, &["--requirepass", "sekrit"]);
    let noauth = error("NOAUTH Authentication required.");
    let wrongpass = error("WRONGPASS invalid username-password pair or user is disabled.");
    let mut client = server.connect();
    assert_eq!(client.call(&["get", "k"]), noauth);
    assert_eq!(client.call(&["multi"]), noauth);
    assert_eq!(client.call(&["auth", "nope"]), wrongpass);
    assert_eq!(client.call(&["auth", "someone", "sekrit"]), wrongpass);
    assert!(
        matches!(client.call(&["hello", "3"]), Reply::Error(text) if text.starts_with("NOAUTH HELLO"))
    );
    assert_eq!(client.call(&["auth", "sekrit"]), ok());
    assert_eq!(client.call(&["set", "k", "v"]), ok());
    let mut second = server.connect();
    assert!(matches!(
        second.call(&["hello", "3", "auth", "default", "sekrit"]),
        Reply::Map(_)
    ));
    assert_eq!(second.call(&["get", "k"]), bulk("v"));
    // CONFIG SET requirepass is honoured for new connections; existing
    // ones stay authenticated, as in Redis.
    assert_eq!(
        client.call(&["config", "set", "requirepass", "other"]),
        ok()
    );
    assert_eq!(client.call(&["get", "k"]), bulk("v"));
    let mut third = server.connect();
    assert_eq!(third.call(&["get", "k"]), noauth);
    assert_eq!(third.call(&["auth", "sekrit"]), wrongpass);
    assert_eq!(third.call(&["auth", "default", "other"]), ok());
    assert_eq!(client.call(&["config", "set", "requirepass", ""]), ok());
    assert_eq!(server.connect().call(&["get", "k"]), bulk("v"));
}

#[test]
fn watch_aborts_exec_when_another_client_touches_the_key() {
    let dir = ScratchDir::new("kv-watch");
    let server = start_server(&dir, &[]);
    let (mut first, mut second) = (server.connect(), server.connect());
    assert_eq!(first.call(&["set", "k", "1"]), ok());
    assert_eq!(first.call(&["watch", "k", "untouched"]), ok());
    assert_eq!(second.call(&["incr", "k"]), Reply::Integer(2));
    assert_eq!(first.call(&["multi"]), ok());
    assert_eq!(
        first.call(&["set", "k", "mine"]),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(first.call(&["exec"]), Reply::Array(None));
    assert_eq!(first.call(&["get", "k"]), bulk("2"));
    // Untouched, or touched only by this client before MULTI's EXEC... a
    // write by the watcher itself also counts, as in Redis.
    assert_eq!(first.call(&["watch", "k"]), ok());
    assert_eq!(first.call(&["multi"]), ok());
    assert_eq!(first.call(&["incr", "k"]), Reply::Simple("QUEUED".into()));
    assert_eq!(
        first.call(&["exec"]),
        Reply::Array(Some(vec![Reply::Integer(3)]))
    );
    // An expiry of a watched key aborts too.
    assert_eq!(first.call(&["set", "e", "v", "px", "100"]), ok());
    assert_eq!(first.call(&["watch", "e"]), ok());
    thread::sleep(Duration::from_millis(300));
    assert_eq!(first.call(&["multi"]), ok());
    assert_eq!(
        first.call(&["set", "e", "x"]),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(first.call(&["exec"]), Reply::Array(None));
    // A disconnect drops the watches with the connection.
    assert_eq!(second.call(&["watch", "k"]), ok());
    drop(second);
    assert_eq!(first.call(&["incr", "k"]), Reply::Integer(4));
}

#[test]
fn scan_returns_every_key_present_throughout_exactly_once_under_churn() {
    let dir = ScratchDir::new("kv-scan");
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    let mut batch = Vec::new();
    for index in 0..2000 {
        let key = format!("stay{index}");
        batch.extend(encode(&[b"set", key.as_bytes(), b"v"]));
    }
    client.send_raw(&batch).unwrap();
    for _ in 0..2000 {
        assert_eq!(client.read().unwrap(), ok());
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut cursor = "0".to_string();
    let mut round = 0;
    loop {
        let reply = client.call(&["scan", &cursor, "count", "7"]);
        let Reply::Array(Some(parts)) = reply else {
            panic!("SCAN replied {reply:?}");
        };
        let Reply::Bulk(Some(next)) = &parts[0] else {
            panic!("a cursor");
        };
        cursor = String::from_utf8(next.clone()).unwrap();
        for key in strings_of(parts[1].clone()) {
            *seen.entry(key).or_default() += 1;
        }
        // Grow and shrink the key space between steps.
        for index in 0..20 {
            let key = format!("churn{round}-{index}");
            assert_eq!(client.call(&["set", &key, "v"]), ok());
        }
        let gone = format!("churn{}-0", round / 2);
        client.call(&["del", &gone]);
        round += 1;
        if cursor == "0" {
            break;
        }
    }
    for index in 0..2000 {
        assert_eq!(seen.get(&format!("stay{index}")), Some(&1), "stay{index}");
    }
    assert!(seen.values().all(|&count| count == 1), "a key came twice");
    // MATCH and TYPE filter; HSCAN, SSCAN and ZSCAN work the same way.
    assert_eq!(
        client.call(&["hset", "h", "a", "1", "b", "2"]),
        Reply::Integer(2)
    );
    let Reply::Array(Some(parts)) = client.call(&["hscan", "h", "0", "match", "a"]) else {
        panic!("HSCAN");
    };
    assert_eq!(parts[1], Reply::Array(Some(vec![bulk("a"), bulk("1")])));
    let Reply::Array(Some(parts)) = client.call(&["scan", "0", "type", "hash", "count", "100000"])
    else {
        panic!("SCAN TYPE");
    };
    assert_eq!(parts, vec![bulk("0"), Reply::Array(Some(vec![bulk("h")]))]);
}

/// Pipelines `commands` and reads their replies.
fn pipeline(client: &mut Client, commands: &[Vec<Vec<u8>>]) -> Vec<Reply> {
    let mut batch = Vec::new();
    for command in commands {
        let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        batch.extend(encode(&args));
    }
    client.send_raw(&batch).unwrap();
    commands.iter().map(|_| client.read().unwrap()).collect()
}

#[test]
fn big_collections_take_linear_time_and_replies_stay_bounded() {
    let dir = ScratchDir::new("kv-bounds");
    let server = start_server(&dir, &["--fsync", "no"]);
    let mut client = server.connect();
    // A million-element list, 1,000 elements per RPUSH.
    let pushes: Vec<Vec<Vec<u8>>> = (0..1000)
        .map(|chunk| {
            let mut command = vec![b"rpush".to_vec(), b"big".to_vec()];
            command.extend(
                (0..1000).map(|index| format!("e{}", (chunk * 1000 + index) % 3).into_bytes()),
            );
            command
        })
        .collect();
    let replies = pipeline(&mut client, &pushes);
    assert_eq!(replies.last(), Some(&Reply::Integer(1_000_000)));
    let started = Instant::now();
    assert_eq!(integer(client.call(&["lrem", "big", "0", "e1"])), 333_333);
    assert_eq!(integer(client.call(&["lrem", "big", "-10", "e2"])), 10);
    assert_eq!(integer(client.call(&["llen", "big"])), 666_657);
    // SINTER with the small set first, and last: both probe from the small one.
    let adds: Vec<Vec<Vec<u8>>> = (0..200)
        .map(|chunk| {
            let mut command = vec![b"sadd".to_vec(), b"large".to_vec()];
            command
                .extend((0..1000).map(|index| format!("m{}", chunk * 1000 + index).into_bytes()));
            command
        })
        .collect();
    pipeline(&mut client, &adds);
    assert_eq!(
        client.call(&["sadd", "small", "m5", "m7", "nope"]),
        Reply::Integer(3)
    );
    for order in [["small", "large"], ["large", "small"]] {
        let mut members = strings_of(client.call(&["sinter", order[0], order[1]]));
        members.sort();
        assert_eq!(members, ["m5", "m7"]);
    }
    // Score ranges at the top of a 200,000-member sorted set start with a
    // search, not a walk from the lowest: 1,000 of them.
    let zadds: Vec<Vec<Vec<u8>>> = (0..200)
        .map(|chunk| {
            let mut command = vec![b"zadd".to_vec(), b"bigz".to_vec()];
            for index in chunk * 1000..(chunk + 1) * 1000 {
                command.push(index.to_string().into_bytes());
                command.push(format!("z{index}").into_bytes());
            }
            command
        })
        .collect();
    pipeline(&mut client, &zadds);
    let ranges: Vec<Vec<Vec<u8>>> = (0..1000)
        .map(|_| {
            vec![
                b"zcount".to_vec(),
                b"bigz".to_vec(),
                b"(199997".to_vec(),
                b"+inf".to_vec(),
            ]
        })
        .collect();
    assert!(pipeline(&mut client, &ranges)
        .iter()
        .all(|reply| *reply == Reply::Integer(2)));
    assert_eq!(
        strings_of(client.call(&["zrangebyscore", "bigz", "199998", "+inf"])),
        ["z199998", "z199999"]
    );
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // A reply past 64 MiB is refused rather than built: 70 values of 1 MiB.
    let value = "v".repeat(1 << 20);
    for _ in 0..70 {
        client.call(&["rpush", "huge", &value]);
    }
    let Reply::Error(text) = client.call(&["lrange", "huge", "0", "-1"]) else {
        panic!("a 70 MiB LRANGE must be refused");
    };
    assert!(
        text.starts_with("ERR reply would exceed 67108864 bytes"),
        "{text}"
    );
    assert_eq!(client.call(&["lindex", "huge", "69"]), bulk(&value));
    // LCS's table is bounded by proto-max-bulk-len (32 MiB, 4 bytes a
    // cell), as in Redis: 2,000 bytes each is 16 MB, 3,000 is 36 MB.
    for (key, length) in [
        ("lcs_a", 2000),
        ("lcs_b", 2000),
        ("lcs_c", 3000),
        ("lcs_d", 3000),
    ] {
        client.call(&["set", key, &"a".repeat(length)]);
    }
    assert_eq!(
        client.call(&["lcs", "lcs_a", "lcs_b", "len"]),
        Reply::Integer(2000)
    );
    let Reply::Error(text) = client.call(&["lcs", "lcs_c", "lcs_d", "len"]) else {
        panic!("a 36 MB LCS table must be refused");
    };
    assert!(text.contains("exceeds proto-max-bulk-len"), "{text}");
    // A huge negative count draws repeats until the reply's bound, and
    // refuses the reply there (the draws are made as it is written).
    client.call(&["hset", "one_field", "f", "v"]);
    client.call(&["sadd", "one_member", "m"]);
    for command in [
        ["hrandfield", "one_field", "-9223372036854775807"],
        ["srandmember", "one_member", "-9223372036854775807"],
    ] {
        let Reply::Error(text) = client.call(&command) else {
            panic!("{command:?} must be refused at the reply bound");
        };
        assert!(
            text.starts_with("ERR reply would exceed 67108864 bytes"),
            "{text}"
        );
    }
    assert_eq!(client.call(&["ping"]), Reply::Simple("PONG".into()));
}

#[test]
fn expired_keys_are_removed_in_the_background_and_logged() {
    let dir = ScratchDir::new("kv-active-expire");
    let mut server = start_server(&dir, &[]);
    let mut client = server.connect();
    let sets: Vec<Vec<Vec<u8>>> = (0..5000)
        .map(|index| {
            let key = format!("short{index}").into_bytes();
            vec![
                b"set".to_vec(),
                key,
                b"v".to_vec(),
                b"px".to_vec(),
                // Long enough that the pipeline is done before the first
                // expires, even on a loaded machine (100 ms was not, once).
                b"2000".to_vec(),
            ]
        })
        .collect();
    pipeline(&mut client, &sets);
    assert_eq!(client.call(&["rpush", "kept", "a"]), Reply::Integer(1));
    assert_eq!(integer(client.call(&["dbsize"])), 5001);
    // Nothing reads them: only active expiry can remove them. Polled, not
    // slept for a fixed time, so that a slow machine gets there too.
    let removed = (0..200).any(|_| {
        thread::sleep(Duration::from_millis(50));
        integer(client.call(&["dbsize"])) == 1
    });
    assert!(removed, "active expiry removed all 5000 within 10 s");
    let Reply::Bulk(Some(info)) = client.call(&["info", "stats"]) else {
        panic!("INFO");
    };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("expired_keys:5000\r\n"), "{info}");
    drop(client);
    server.kill_9();
    let server = start_server(&dir, &[]);
    assert_eq!(integer(server.connect().call(&["dbsize"])), 1);
}

#[test]
fn writes_that_change_nothing_are_not_logged() {
    let dir = ScratchDir::new("kv-noop-writes");
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    assert_eq!(client.call(&["sadd", "s", "m"]), Reply::Integer(1));
    assert_eq!(client.call(&["zadd", "z", "0", "m"]), Reply::Integer(1));
    assert_eq!(client.call(&["hset", "h", "f", "v"]), Reply::Integer(1));
    let logged = fs::metadata(wal_path(&dir)).unwrap().len();
    for _ in 0..10 {
        assert_eq!(client.call(&["sadd", "s", "m"]), Reply::Integer(0));
        assert_eq!(client.call(&["zadd", "z", "0", "m"]), Reply::Integer(0));
        assert_eq!(client.call(&["zadd", "z", "incr", "0", "m"]), bulk("0"));
        assert_eq!(client.call(&["srem", "s", "nope"]), Reply::Integer(0));
        assert_eq!(client.call(&["hdel", "h", "nope"]), Reply::Integer(0));
        assert_eq!(client.call(&["del", "nope"]), Reply::Integer(0));
        assert_eq!(client.call(&["expire", "nope", "10"]), Reply::Integer(0));
        assert_eq!(client.call(&["lpop", "nope"]), Reply::Bulk(None));
        assert_eq!(client.call(&["spop", "nope"]), Reply::Bulk(None));
    }
    assert_eq!(fs::metadata(wal_path(&dir)).unwrap().len(), logged);
    // A real change is logged.
    assert_eq!(client.call(&["zadd", "z", "1", "m"]), Reply::Integer(0));
    assert!(fs::metadata(wal_path(&dir)).unwrap().len() > logged);
}

/// Commands for the replay test: `K`, `H`, `L`, `T`, `Z` a string, hash,
/// list, set or sorted-set key, `A` any key (so types collide), `F` a
/// field, `M` a member, `N` a small integer, `S` a score, `V` a value,
/// each drawn at random.
const STORM_TEMPLATES: &[&str] = &[
    "SET K V",
    "SET K V EX 1000",
    "SET K V PX 1",
    "SET K V KEEPTTL GET",
    "SETNX K V",
    "GETSET K V",
    "MSET K V K V",
    "MSETNX K V K V",
    "APPEND K V",
    "SETRANGE K N V",
    "INCR K",
    "INCRBY K N",
    "INCRBYFLOAT K S",
    "GETEX K PX 100000",
    "GETEX A PERSIST",
    "GETDEL K",
    "DEL A A",
    "RENAME A A",
    "RENAMENX A A",
    "COPY A A REPLACE",
    "EXPIRE A 1000 GT",
    "PEXPIRE A 1",
    "PERSIST A",
    "HSET H F V F V",
    "HSETNX H F V",
    "HDEL H F",
    "HINCRBY H F N",
    "HINCRBYFLOAT H F S",
    "HSET A F V",
    "LPUSH L V",
    "RPUSH L V V",
    "LPUSHX L V",
    "LPOP L",
    "RPOP L N",
    "LSET L N V",
    "LREM L N V",
    "LTRIM L N N",
    "LINSERT L BEFORE V V",
    "LMOVE L L LEFT RIGHT",
    "BLPOP L L 0.001",
    "BRPOP A L 0.001",
    "BLMOVE L L RIGHT LEFT 0.001",
    "BRPOPLPUSH L A 0.001",
    "BLMPOP 0.001 2 L L LEFT COUNT N",
    "LMPOP 2 L A RIGHT COUNT N",
    "LPUSH A V",
    "SADD T M M",
    "SREM T M",
    "SPOP T",
    "SPOP T N",
    "SMOVE T T M",
    "SINTERSTORE T T A",
    "SUNIONSTORE T T T",
    "SDIFFSTORE T T T",
    "SADD A M",
    "ZADD Z S M",
    "ZADD Z GT CH S M S M",
    "ZADD Z INCR S M",
    "ZINCRBY Z S M",
    "ZREM Z M",
    "ZPOPMIN Z N",
    "ZPOPMAX Z",
    "ZREMRANGEBYSCORE Z S S",
    "ZREMRANGEBYRANK Z N N",
    "ZUNIONSTORE Z 2 Z A WEIGHTS S S",
    "ZINTERSTORE Z 2 Z T AGGREGATE MAX",
    "ZDIFFSTORE Z 2 A Z",
    "ZREMRANGEBYLEX Z - +",
    "ZRANGESTORE Z Z 0 N",
    "SORT L ALPHA STORE A",
    "SORT T ALPHA DESC LIMIT 0 N STORE L",
    "ZADD A S M",
    "INCR A",
    "GET A",
    "LRANGE A 0 -1",
];

fn storm_command(random: &mut u64) -> Vec<String> {
    let mut next = |below: u64| {
        *random ^= *random << 13;
        *random ^= *random >> 7;
        *random ^= *random << 17;
        *random % below
    };
    let template = STORM_TEMPLATES[next(STORM_TEMPLATES.len() as u64) as usize];
    template
        .split(' ')
        .map(|word| match word {
            "K" | "H" | "L" | "T" | "Z" => format!("{}{}", word.to_lowercase(), next(3)),
            "A" => format!("{}{}", ["k", "h", "l", "t", "z"][next(5) as usize], next(3)),
            "F" => format!("f{}", next(3)),
            "M" => format!("m{}", next(5)),
            "N" => (next(8) as i64 - 3).to_string(),
            "S" => ["1", "-2.5", "0.1", "3e2", "10"][next(5) as usize].to_string(),
            "V" => ["a", "bb", "10", "1.5", ""][next(5) as usize].to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// Every key's type, value and absolute expiry, as text.
fn dump_keyspace(client: &mut Client) -> Vec<String> {
    let mut keys = strings_of(client.call(&["keys", "*"]));
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let Reply::Simple(kind) = client.call(&["type", &key]) else {
                panic!("TYPE");
            };
            let mut value = match kind.as_str() {
                "string" => vec![format!("{:?}", client.call(&["get", &key]))],
                "hash" => strings_of(client.call(&["hgetall", &key])),
                "list" => strings_of(client.call(&["lrange", &key, "0", "-1"])),
                "set" => strings_of(client.call(&["smembers", &key])),
                _ => strings_of(client.call(&["zrange", &key, "0", "-1", "withscores"])),
            };
            if kind == "hash" {
                let mut pairs: Vec<String> = value.chunks(2).map(|pair| pair.join("=")).collect();
                pairs.sort();
                value = pairs;
            }
            if kind == "set" {
                value.sort();
            }
            let expiry = integer(client.call(&["pexpiretime", &key]));
            format!("{key} {kind} {value:?} expires {expiry}")
        })
        .collect()
}

/// Thousands of random writes of every type (and the errors they make),
/// then kill -9: the log replays to exactly the same key space, every type
/// and every expiry time, and the server never stopped answering.
#[test]
fn random_writes_of_every_type_replay_to_the_same_key_space() {
    replay_storm("kv-storm", &[]);
}

/// The same with the log compacted every 2 KiB: what the snapshot and the
/// tail replay is exactly the key space, every type and expiry time.
#[test]
fn random_writes_of_every_type_replay_through_snapshots_to_the_same_key_space() {
    replay_storm("kv-storm-compact", &["--compact-bytes", "2048"]);
}

fn replay_storm(name: &str, extra: &[&str]) {
    let mut kinds_seen = std::collections::BTreeSet::new();
    for seed in 1..=5u64 {
        let dir = ScratchDir::new(&format!("{name}-{seed}"));
        let mut server = start_server(&dir, extra);
        let mut client = server.connect();
        let mut random = 0x1234_5678_9abc_def1_u64.wrapping_mul(seed);
        let mut errors = 0;
        for _ in 0..40 {
            let commands: Vec<Vec<Vec<u8>>> = (0..100)
                .map(|_| {
                    storm_command(&mut random)
                        .into_iter()
                        .map(String::into_bytes)
                        .collect()
                })
                .collect();
            for reply in pipeline(&mut client, &commands) {
                if let Reply::Error(text) = reply {
                    assert!(!text.contains("Protocol"), "{text}");
                    errors += 1;
                }
            }
        }
        assert!(
            errors > 0,
            "the storm should hit WRONGTYPE and range errors"
        );
        // Keys set with PX 1 expire now, each logged as a DEL on access.
        thread::sleep(Duration::from_millis(50));
        let before = dump_keyspace(&mut client);
        for line in &before {
            kinds_seen.insert(line.split(' ').nth(1).unwrap_or_default().to_string());
        }
        assert_eq!(client.call(&["ping"]), Reply::Simple("PONG".into()));
        drop(client);
        server.kill_9();
        let server = start_server(&dir, extra);
        let after = dump_keyspace(&mut server.connect());
        assert_eq!(after, before, "seed {seed}");
        if !extra.is_empty() {
            let stderr = server.stderr();
            assert!(stderr.contains("snapshot"), "seed {seed}: {stderr}");
        }
    }
    let all = ["hash", "list", "set", "string", "zset"];
    assert_eq!(kinds_seen.into_iter().collect::<Vec<_>>(), all);
}

/// Overwriting the same keys again and again: with compaction the log
/// stays bounded by the live data, and a restart replays the snapshot and
/// a short tail instead of the whole history.
#[test]
fn compaction_bounds_the_log_and_the_replay() {
    const KEYS: usize = 100;
    const ROUNDS: usize = 200;
    let dir = ScratchDir::new("kv-compact-bound");
    let server = start_server(&dir, &["--compact-bytes", "65536"]);
    let mut client = server.connect();
    for round in 0..ROUNDS {
        let commands: Vec<Vec<Vec<u8>>> = (0..KEYS)
            .map(|key| {
                let value = format!("{round:0>64}");
                ["set".to_string(), format!("k{key}"), value]
                    .map(String::into_bytes)
                    .to_vec()
            })
            .collect();
        for reply in pipeline(&mut client, &commands) {
            assert_eq!(reply, ok());
        }
        client.call(&["rpush", "list", &round.to_string()]);
    }
    drop(client);
    let log_bytes = fs::metadata(wal_path(&dir)).unwrap().len();
    let snapshot_bytes = fs::metadata(dir.join("data").join("wal.log.snapshot"))
        .unwrap()
        .len();
    // About 100 bytes a SET: 2 MB of history without compaction.
    assert!(log_bytes <= 65536 + 16384, "log of {log_bytes} bytes");
    assert!(
        snapshot_bytes < 20_000,
        "snapshot of {snapshot_bytes} bytes"
    );
    assert!(server.stderr().contains("compacted"));
    drop(server);
    let server = start_server(&dir, &["--compact-bytes", "65536"]);
    let mut client = server.connect();
    let value = format!("{:0>64}", ROUNDS - 1);
    assert_eq!(
        client.call(&["get", "k7"]),
        Reply::Bulk(Some(value.into_bytes()))
    );
    assert_eq!(integer(client.call(&["llen", "list"])), ROUNDS as i64);
    let stderr = server.stderr();
    let replayed: u64 = stderr
        .lines()
        .filter_map(|line| line.split("replayed ").nth(1))
        .next_back()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .expect("a replayed line");
    // The tail is under 64 KiB of about 100-byte records.
    assert!(replayed < 1000, "replayed {replayed} records: {stderr}");
}

// Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) with several
// clients, each on io_uring and epoll. Every expected reply here is what
// redis-server 7.0.15 answered to the same steps.

/// INFO's `blocked_clients`.
fn blocked_clients(client: &mut Client) -> i64 {
    let Reply::Bulk(Some(text)) = client.call(&["info", "clients"]) else {
        panic!("INFO clients");
    };
    let text = String::from_utf8(text).unwrap();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .expect("blocked_clients in INFO clients");
    line.parse().expect("a count")
}

/// Waits until `count` clients are blocked: a client that sent a blocking
/// pop is on the key's wait list only once the server ran it.
fn wait_blocked(observer: &mut Client, count: i64) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while blocked_clients(observer) != count {
        assert!(Instant::now() < deadline, "never {count} blocked clients");
        thread::sleep(Duration::from_millis(2));
    }
}

/// `*2` of a key and an element, as BLPOP replies.
fn key_and(key: &str, element: &str) -> Reply {
    Reply::Array(Some(vec![bulk(key), bulk(element)]))
}

fn strings(items: &[&str]) -> Reply {
    Reply::Array(Some(items.iter().map(|item| bulk(item)).collect()))
}

fn blocked_clients_are_served_first_come_first_served(backend: &str) {
    let dir = ScratchDir::new(&format!("kv-block-order-{backend}"));
    let server = start_server(&dir, &["--backend", backend]);
    let mut observer = server.connect();
    let (mut a, mut b, mut c) = (server.connect(), server.connect(), server.connect());
    // Three clients on one key, served in the order they blocked.
    a.send_command(&["blpop", "q", "0"]);
    wait_blocked(&mut observer, 1);
    b.send_command(&["blpop", "q", "0"]);
    wait_blocked(&mut observer, 2);
    c.send_command(&["brpop", "q", "0"]);
    wait_blocked(&mut observer, 3);
    let Reply::Bulk(Some(list)) = observer.call(&["client", "list"]) else {
        panic!("CLIENT LIST");
    };
    let list = String::from_utf8(list).unwrap();
    assert_eq!(list.matches(" flags=b ").count(), 3, "{list}");
    assert_eq!(list.matches(" cmd=blpop ").count(), 2, "{list}");
    // A subcommand is named as Redis 7.0 names it.
    assert_eq!(list.matches(" cmd=client|list ").count(), 1, "{list}");
    // The push completes first: its reply is the length before any pop.
    assert_eq!(observer.call(&["rpush", "q", "x", "y"]), Reply::Integer(2));
    assert_eq!(a.read().unwrap(), key_and("q", "x"));
    assert_eq!(b.read().unwrap(), key_and("q", "y"));
    assert!(c.nothing_within(Duration::from_millis(100)));
    assert_eq!(observer.call(&["rpush", "q", "z"]), Reply::Integer(1));
    assert_eq!(c.read().unwrap(), key_and("q", "z"));
    assert_eq!(observer.call(&["exists", "q"]), Reply::Integer(0));
    wait_blocked(&mut observer, 0);

    // Blocked on several keys: served by the first that gets an element.
    a.send_command(&["blpop", "k1", "k2", "k3", "0"]);
    wait_blocked(&mut observer, 1);
    assert_eq!(observer.call(&["rpush", "k3", "v3"]), Reply::Integer(1));
    assert_eq!(a.read().unwrap(), key_and("k3", "v3"));
    // Several there already: the first in the command's order.
    observer.call(&["rpush", "k2", "x"]);
    observer.call(&["rpush", "k1", "y"]);
    assert_eq!(
        a.call(&["blpop", "k3", "k2", "k1", "0"]),
        key_and("k2", "x")
    );
    assert_eq!(a.call(&["brpop", "k1", "0"]), key_and("k1", "y"));
    // Several created by one transaction: the first created, whatever
    // their order in the command.
    a.send_command(&["blpop", "k1", "k2", "0"]);
    wait_blocked(&mut observer, 1);
    assert_eq!(observer.call(&["multi"]), ok());
    observer.call(&["rpush", "k2", "v2"]);
    observer.call(&["rpush", "k1", "v1"]);
    let both = Reply::Array(Some(vec![Reply::Integer(1), Reply::Integer(1)]));
    assert_eq!(observer.call(&["exec"]), both);
    assert_eq!(a.read().unwrap(), key_and("k2", "v2"));
    assert_eq!(
        observer.call(&["lrange", "k1", "0", "-1"]),
        strings(&["v1"])
    );

    // A key named twice waits once.
    a.send_command(&["blpop", "d", "d", "0"]);
    wait_blocked(&mut observer, 1);
    b.send_command(&["blpop", "d", "0"]);
    wait_blocked(&mut observer, 2);
    assert_eq!(observer.call(&["rpush", "d", "1", "2"]), Reply::Integer(2));
    assert_eq!(a.read().unwrap(), key_and("d", "1"));
    assert_eq!(b.read().unwrap(), key_and("d", "2"));

    // The commands pipelined after a blocked one wait for it.
    let mut batch = encode(&[b"blpop", b"p", b"0"]);
    batch.extend(encode(&[b"ping"]));
    batch.extend(encode(&[b"llen", b"p"]));
    a.send_raw(&batch).unwrap();
    wait_blocked(&mut observer, 1);
    assert!(a.nothing_within(Duration::from_millis(100)));
    assert_eq!(observer.call(&["rpush", "p", "1"]), Reply::Integer(1));
    assert_eq!(a.read().unwrap(), key_and("p", "1"));
    assert_eq!(a.read().unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(a.read().unwrap(), Reply::Integer(0));

    // BLMPOP, and RESP3 (the same arrays).
    let mut resp3 = server.connect();
    assert!(matches!(resp3.call(&["hello", "3"]), Reply::Map(_)));
    resp3.send_command(&["blmpop", "0", "2", "m1", "m2", "RIGHT", "COUNT", "5"]);
    wait_blocked(&mut observer, 1);
    assert_eq!(
        observer.call(&["rpush", "m2", "1", "2", "3"]),
        Reply::Integer(3)
    );
    let popped = Reply::Array(Some(vec![bulk("m2"), strings(&["3", "2", "1"])]));
    assert_eq!(resp3.read().unwrap(), popped);
    resp3.send_command(&["blpop", "z", "0"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["rpush", "z", "v"]);
    assert_eq!(resp3.read().unwrap(), key_and("z", "v"));
    assert_eq!(observer.call(&["exists", "m2", "z"]), Reply::Integer(0));
}

#[test]
fn blocked_clients_are_served_first_come_first_served_on_io_uring() {
    blocked_clients_are_served_first_come_first_served("io_uring");
}

#[test]
fn blocked_clients_are_served_first_come_first_served_on_epoll() {
    blocked_clients_are_served_first_come_first_served("epoll");
}

/// Calls `args` and returns the reply and how long it took.
fn timed_call(client: &mut Client, args: &[&str]) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = client.call(args);
    (reply, started.elapsed())
}

fn blocking_pops_time_out_on_ringio_timers(backend: &str) {
    let dir = ScratchDir::new(&format!("kv-block-timeout-{backend}"));
    let server = start_server(&dir, &["--backend", backend]);
    let mut observer = server.connect();
    let mut client = server.connect();
    let id = integer(client.call(&["client", "id"])).to_string();
    // A fractional timeout: the null array, no sooner.
    let (reply, took) = timed_call(&mut client, &["blpop", "nokey", "0.25"]);
    assert_eq!(reply, Reply::Array(None));
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Every blocking pop times out with the null array, BLMOVE's too (not
    // the null bulk it answers inside MULTI).
    for command in [
        &["brpop", "a", "b", "0.02"][..],
        &["blmove", "a", "b", "LEFT", "RIGHT", "0.02"],
        &["brpoplpush", "a", "b", "0.02"],
        &["blmpop", "0.02", "2", "a", "b", "LEFT", "COUNT", "2"],
        // 1.5e-4 s rounds up to 1 ms, as in Redis, not down to forever.
        &["blpop", "a", "1.5e-4"],
    ] {
        let (reply, took) = timed_call(&mut client, command);
        assert_eq!(reply, Reply::Array(None), "{command:?}");
        assert!(took < Duration::from_secs(10), "{command:?} took {took:?}");
    }
    // In RESP3, the null.
    let mut resp3 = server.connect();
    resp3.call(&["hello", "3"]);
    assert_eq!(resp3.call(&["blpop", "a", "0.02"]), Reply::Null);
    assert_eq!(
        resp3.call(&["blmove", "a", "b", "LEFT", "LEFT", "0.02"]),
        Reply::Null
    );
    assert_eq!(observer.call(&["exists", "a", "b"]), Reply::Integer(0));
    // Bad timeouts, before anything else.
    assert_eq!(
        client.call(&["blpop", "a", "-1"]),
        error("ERR timeout is negative")
    );
    assert_eq!(
        client.call(&["blpop", "a", "soon"]),
        error("ERR timeout is not a float or out of range")
    );

    // 0 blocks forever; so does -0.001 (its long double times 1000 rounds
    // up to 0, in Redis too).
    client.send_command(&["blpop", "forever", "0"]);
    wait_blocked(&mut observer, 1);
    resp3.send_command(&["blpop", "forever", "-0.001"]);
    wait_blocked(&mut observer, 2);
    assert!(client.nothing_within(Duration::from_millis(1200)));
    assert!(resp3.nothing_within(Duration::from_millis(10)));
    observer.call(&["rpush", "forever", "1", "2"]);
    assert_eq!(client.read().unwrap(), key_and("forever", "1"));
    assert_eq!(resp3.read().unwrap(), key_and("forever", "2"));

    // A served client's timer is cancelled: it does not time out the next
    // block of the same connection.
    client.send_command(&["blpop", "s1", "0.3"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["rpush", "s1", "v"]);
    assert_eq!(client.read().unwrap(), key_and("s1", "v"));
    client.send_command(&["blpop", "s2", "0"]);
    wait_blocked(&mut observer, 1);
    assert!(client.nothing_within(Duration::from_millis(600)));
    // CLIENT UNBLOCK: the timeout's reply, or the UNBLOCKED error; 0 for
    // a client that is not blocked.
    assert_eq!(
        observer.call(&["client", "unblock", &id]),
        Reply::Integer(1)
    );
    assert_eq!(client.read().unwrap(), Reply::Array(None));
    assert_eq!(
        observer.call(&["client", "unblock", &id]),
        Reply::Integer(0)
    );
    client.send_command(&["blmove", "s2", "t", "LEFT", "LEFT", "10"]);
    wait_blocked(&mut observer, 1);
    let unblock = ["client", "unblock", &id, "ERROR"];
    assert_eq!(observer.call(&unblock), Reply::Integer(1));
    let unblocked = error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
    assert_eq!(client.read().unwrap(), unblocked);
    let Reply::Integer(resp3_id) = resp3.call(&["client", "id"]) else {
        panic!("CLIENT ID");
    };
    resp3.send_command(&["brpoplpush", "s2", "t", "0"]);
    wait_blocked(&mut observer, 1);
    let unblock = ["client", "unblock", &resp3_id.to_string(), "timeout"];
    assert_eq!(observer.call(&unblock), Reply::Integer(1));
    assert_eq!(resp3.read().unwrap(), Reply::Null);
    wait_blocked(&mut observer, 0);
    // Nothing was popped by any of it, and the connections go on.
    assert_eq!(client.call(&["ping"]), Reply::Simple("PONG".into()));
    assert_eq!(observer.call(&["dbsize"]), Reply::Integer(0));
}

#[test]
fn blocking_pops_time_out_on_ringio_timers_on_io_uring() {
    blocking_pops_time_out_on_ringio_timers("io_uring");
}

#[test]
fn blocking_pops_time_out_on_ringio_timers_on_epoll() {
    blocking_pops_time_out_on_ringio_timers("epoll");
}

fn blocking_pops_in_transactions_and_after_moves(backend: &str) {
    let dir = ScratchDir::new(&format!("kv-block-multi-{backend}"));
    let server = start_server(&dir, &["--backend", backend]);
    let mut observer = server.connect();
    let (mut a, mut b) = (server.connect(), server.connect());
    // Inside MULTI a blocking pop never blocks: the null array, and
    // BLMOVE's null bulk, at once.
    assert_eq!(a.call(&["multi"]), ok());
    for command in [
        &["blpop", "nokey", "0"][..],
        &["brpop", "nokey", "0"],
        &["blmove", "nokey", "d", "LEFT", "RIGHT", "0"],
        &["brpoplpush", "nokey", "d", "0"],
        &["blmpop", "0", "1", "nokey", "LEFT"],
    ] {
        assert_eq!(a.call(command), Reply::Simple("QUEUED".into()));
    }
    let nulls = vec![
        Reply::Array(None),
        Reply::Array(None),
        Reply::Bulk(None),
        Reply::Bulk(None),
        Reply::Array(None),
    ];
    let (reply, took) = timed_call(&mut a, &["exec"]);
    assert_eq!(reply, Reply::Array(Some(nulls)));
    assert!(took < Duration::from_secs(10));

    // Pushes inside a transaction wake the blocked after EXEC, which sees
    // the transaction's final state.
    a.send_command(&["blpop", "t", "0"]);
    wait_blocked(&mut observer, 1);
    assert_eq!(observer.call(&["multi"]), ok());
    observer.call(&["lpush", "t", "a"]);
    observer.call(&["lpush", "t", "b"]);
    observer.call(&["llen", "t"]);
    let replies = vec![Reply::Integer(1), Reply::Integer(2), Reply::Integer(2)];
    assert_eq!(observer.call(&["exec"]), Reply::Array(Some(replies)));
    assert_eq!(a.read().unwrap(), key_and("t", "b"));
    assert_eq!(observer.call(&["lrange", "t", "0", "-1"]), strings(&["a"]));
    // A push that the transaction pops again wakes nobody.
    a.send_command(&["blpop", "t2", "0"]);
    wait_blocked(&mut observer, 1);
    assert_eq!(observer.call(&["multi"]), ok());
    observer.call(&["lpush", "t2", "x"]);
    observer.call(&["lpop", "t2"]);
    observer.call(&["exec"]);
    assert!(a.nothing_within(Duration::from_millis(100)));
    observer.call(&["lpush", "t2", "late"]);
    assert_eq!(a.read().unwrap(), key_and("t2", "late"));

    // LMOVE, RPOPLPUSH and RENAME onto a key with waiters wake them.
    observer.call(&["rpush", "src", "e1", "e2"]);
    a.send_command(&["brpop", "dst", "0"]);
    wait_blocked(&mut observer, 1);
    let moved = observer.call(&["lmove", "src", "dst", "LEFT", "LEFT"]);
    assert_eq!(moved, bulk("e1"));
    assert_eq!(a.read().unwrap(), key_and("dst", "e1"));
    a.send_command(&["brpop", "dst", "0"]);
    wait_blocked(&mut observer, 1);
    assert_eq!(observer.call(&["rpoplpush", "src", "dst"]), bulk("e2"));
    assert_eq!(a.read().unwrap(), key_and("dst", "e2"));
    observer.call(&["rpush", "r1", "v"]);
    a.send_command(&["blpop", "r2", "0"]);
    wait_blocked(&mut observer, 1);
    assert_eq!(observer.call(&["rename", "r1", "r2"]), ok());
    assert_eq!(a.read().unwrap(), key_and("r2", "v"));

    // A served BLMOVE wakes the waiters of its destination in turn.
    a.send_command(&["blmove", "src", "dst", "LEFT", "RIGHT", "0"]);
    wait_blocked(&mut observer, 1);
    b.send_command(&["blpop", "dst", "0"]);
    wait_blocked(&mut observer, 2);
    assert_eq!(observer.call(&["rpush", "src", "e3"]), Reply::Integer(1));
    assert_eq!(a.read().unwrap(), bulk("e3"));
    assert_eq!(b.read().unwrap(), key_and("dst", "e3"));
    // A destination that became another type: WRONGTYPE for the blocked
    // client, and nothing moves.
    a.send_command(&["brpoplpush", "src", "dst", "0"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["set", "dst", "string"]);
    assert_eq!(observer.call(&["rpush", "src", "e4"]), Reply::Integer(1));
    assert_eq!(a.read().unwrap(), error(WRONGTYPE));
    assert_eq!(
        observer.call(&["lrange", "src", "0", "-1"]),
        strings(&["e4"])
    );
    // A key of another type with waiters wakes nobody; a list there does.
    a.send_command(&["blpop", "other", "0"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["set", "other", "string"]);
    assert!(a.nothing_within(Duration::from_millis(100)));
    observer.call(&["del", "other"]);
    observer.call(&["rpush", "other", "v"]);
    assert_eq!(a.read().unwrap(), key_and("other", "v"));
    wait_blocked(&mut observer, 0);
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn blocking_pops_in_transactions_and_after_moves_on_io_uring() {
    blocking_pops_in_transactions_and_after_moves("io_uring");
}

#[test]
fn blocking_pops_in_transactions_and_after_moves_on_epoll() {
    blocking_pops_in_transactions_and_after_moves("epoll");
}

fn client_lines(observer: &mut Client) -> usize {
    let Reply::Bulk(Some(list)) = observer.call(&["client", "list"]) else {
        panic!("CLIENT LIST");
    };
    String::from_utf8(list).unwrap().lines().count()
}

fn a_blocked_client_that_disconnects_is_forgotten(backend: &str) {
    let dir = ScratchDir::new(&format!("kv-block-gone-{backend}"));
    let server = start_server(&dir, &["--backend", backend]);
    let mut observer = server.connect();
    // Gone while blocked forever, and while blocked with a timeout armed.
    let mut forever = server.connect();
    forever.send_command(&["blpop", "gone", "0"]);
    wait_blocked(&mut observer, 1);
    let mut timed = server.connect();
    timed.send_command(&["blpop", "gone", "other", "0.4"]);
    wait_blocked(&mut observer, 2);
    drop(forever);
    drop(timed);
    wait_blocked(&mut observer, 0);
    assert_eq!(client_lines(&mut observer), 1);
    // Nobody takes the element: it stays.
    assert_eq!(observer.call(&["rpush", "gone", "1"]), Reply::Integer(1));
    assert_eq!(observer.call(&["llen", "gone"]), Reply::Integer(1));
    // A crowd that leaves, timers armed: when those timers would have
    // fired, nothing happens to the new clients that took their places.
    let crowd: Vec<Client> = (0..50)
        .map(|_| {
            let mut client = server.connect();
            client.send_command(&["brpop", "crowd", "0.3"]);
            client
        })
        .collect();
    wait_blocked(&mut observer, 50);
    drop(crowd);
    wait_blocked(&mut observer, 0);
    let newcomers: Vec<Client> = (0..50)
        .map(|_| {
            let mut client = server.connect();
            client.send_command(&["brpop", "crowd", "0"]);
            client
        })
        .collect();
    wait_blocked(&mut observer, 50);
    thread::sleep(Duration::from_millis(600));
    assert_eq!(blocked_clients(&mut observer), 50);
    let mut newcomers = newcomers;
    for (index, client) in newcomers.iter_mut().enumerate() {
        let element = index.to_string();
        assert_eq!(
            observer.call(&["lpush", "crowd", &element]),
            Reply::Integer(1)
        );
        assert_eq!(client.read().unwrap(), key_and("crowd", &element));
    }
    assert_eq!(observer.call(&["exists", "crowd"]), Reply::Integer(0));
    assert_eq!(observer.call(&["llen", "gone"]), Reply::Integer(1));
}

#[test]
fn a_blocked_client_that_disconnects_is_forgotten_on_io_uring() {
    a_blocked_client_that_disconnects_is_forgotten("io_uring");
}

#[test]
fn a_blocked_client_that_disconnects_is_forgotten_on_epoll() {
    a_blocked_client_that_disconnects_is_forgotten("epoll");
}

/// A served blocking pop is logged as the plain pop it amounts to (so the
/// log never holds a blocking command), and its reply comes after the
/// fsync: a kill -9 then a restart give the same key space.
#[test]
fn served_blocking_pops_are_logged_as_plain_pops_and_replay() {
    let dir = ScratchDir::new("kv-block-wal");
    let mut server = start_server(&dir, &[]);
    let mut observer = server.connect();
    let mut client = server.connect();
    client.send_command(&["blpop", "q", "0"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["rpush", "q", "a", "b", "c"]);
    assert_eq!(client.read().unwrap(), key_and("q", "a"));
    client.send_command(&["blmove", "m", "n", "LEFT", "RIGHT", "0"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["rpush", "m", "x", "y"]);
    assert_eq!(client.read().unwrap(), bulk("x"));
    client.send_command(&["blmpop", "0", "1", "c", "RIGHT", "COUNT", "2"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["rpush", "c", "1", "2", "3"]);
    let popped = Reply::Array(Some(vec![bulk("c"), strings(&["3", "2"])]));
    assert_eq!(client.read().unwrap(), popped);
    client.send_command(&["brpoplpush", "e", "n", "0"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["multi"]);
    observer.call(&["rpush", "e", "1"]);
    observer.call(&["rpush", "e", "2"]);
    observer.call(&["exec"]);
    assert_eq!(client.read().unwrap(), bulk("2"));
    // Pops that found their list at once are logged the same way.
    assert_eq!(client.call(&["brpop", "q", "0"]), key_and("q", "c"));
    assert_eq!(
        client.call(&["blmpop", "0", "2", "nokey", "m", "LEFT"]),
        Reply::Array(Some(vec![bulk("m"), strings(&["y"])]))
    );
    let popped = Reply::Array(Some(vec![bulk("n"), strings(&["x"])]));
    assert_eq!(client.call(&["lmpop", "1", "n", "RIGHT"]), popped);
    let before = dump_keyspace(&mut observer);
    let expected = [
        r#"c list ["1"] expires -1"#,
        r#"e list ["1"] expires -1"#,
        r#"n list ["2"] expires -1"#,
        r#"q list ["b"] expires -1"#,
    ];
    assert_eq!(before, expected);
    let log = fs::read(wal_path(&dir)).unwrap();
    let has = |word: &[u8]| log.windows(word.len()).any(|window| window == word);
    for plain in [&b"LPOP"[..], b"RPOP", b"LMOVE"] {
        assert!(has(plain), "{}", String::from_utf8_lossy(plain));
    }
    for blocking in [&b"BLPOP"[..], b"BRPOP", b"BLMOVE", b"BLMPOP", b"LMPOP"] {
        assert!(!has(blocking), "{}", String::from_utf8_lossy(blocking));
    }
    drop((observer, client));
    server.kill_9();
    let server = start_server(&dir, &[]);
    assert_eq!(dump_keyspace(&mut server.connect()), before);
}

// The sorted sets' blocking pops (BZPOPMIN, BZPOPMAX, BZMPOP) and WAIT, on
// the lists' machinery. Every expected reply is what redis-server 7.0.15
// answered to the same steps.

/// `*3` of a key, a member and its score (RESP2: the score as a bulk).
fn key_member_score(key: &str, member: &str, score: &str) -> Reply {
    Reply::Array(Some(vec![bulk(key), bulk(member), bulk(score)]))
}

fn sorted_set_blocking_pops_and_wait(backend: &str) {
    let dir = ScratchDir::new(&format!("kv-zblock-{backend}"));
    let server = start_server(&dir, &["--backend", backend]);
    let mut observer = server.connect();
    let (mut a, mut b) = (server.connect(), server.connect());
    // Woken by another client's ZADD, first come, first served.
    a.send_command(&["bzpopmin", "z", "0"]);
    wait_blocked(&mut observer, 1);
    b.send_command(&["bzpopmax", "other", "z", "0"]);
    wait_blocked(&mut observer, 2);
    let Reply::Bulk(Some(list)) = observer.call(&["client", "list"]) else {
        panic!("CLIENT LIST");
    };
    let list = String::from_utf8(list).unwrap();
    assert_eq!(list.matches(" flags=b ").count(), 2, "{list}");
    assert_eq!(list.matches(" cmd=bzpopmax ").count(), 1, "{list}");
    let zadd = ["zadd", "z", "1", "a", "2.5", "b", "3", "c"];
    assert_eq!(observer.call(&zadd), Reply::Integer(3));
    assert_eq!(a.read().unwrap(), key_member_score("z", "a", "1"));
    assert_eq!(b.read().unwrap(), key_member_score("z", "c", "3"));
    assert_eq!(
        observer.call(&["zrange", "z", "0", "-1", "withscores"]),
        strings(&["b", "2.5"])
    );

    // A list pop and a sorted-set pop waiting on one key: whichever type
    // the key is created as serves its own kind, the other stays blocked.
    a.send_command(&["blpop", "k", "0"]);
    wait_blocked(&mut observer, 1);
    b.send_command(&["bzpopmin", "k", "0"]);
    wait_blocked(&mut observer, 2);
    assert_eq!(observer.call(&["zadd", "k", "5", "m"]), Reply::Integer(1));
    assert_eq!(b.read().unwrap(), key_member_score("k", "m", "5"));
    assert!(a.nothing_within(Duration::from_millis(100)));
    assert_eq!(blocked_clients(&mut observer), 1);
    assert_eq!(observer.call(&["rpush", "k", "v"]), Reply::Integer(1));
    assert_eq!(a.read().unwrap(), key_and("k", "v"));

    // BZMPOP in RESP3: pairs of member and double, as ZMPOP gives them.
    let mut resp3 = server.connect();
    assert!(matches!(resp3.call(&["hello", "3"]), Reply::Map(_)));
    resp3.send_command(&["bzmpop", "0", "2", "z1", "z2", "MAX", "COUNT", "2"]);
    wait_blocked(&mut observer, 1);
    let zadd = ["zadd", "z2", "1", "x", "2", "y", "3", "w"];
    assert_eq!(observer.call(&zadd), Reply::Integer(3));
    let pair = |member: &str, score: &str| {
        Reply::Array(Some(vec![bulk(member), Reply::Double(score.into())]))
    };
    let popped = Reply::Array(Some(vec![
        bulk("z2"),
        Reply::Array(Some(vec![pair("w", "3"), pair("y", "2")])),
    ]));
    assert_eq!(resp3.read().unwrap(), popped);
    // And in RESP2, the same nesting with the scores as bulks.
    let popped = Reply::Array(Some(vec![
        bulk("z2"),
        Reply::Array(Some(vec![strings(&["x", "1"])])),
    ]));
    assert_eq!(a.call(&["zmpop", "1", "z2", "MIN"]), popped);

    // Timeouts: the null array (RESP3's null), no sooner.
    let (reply, took) = timed_call(&mut a, &["bzpopmin", "nokey", "0.2"]);
    assert_eq!(reply, Reply::Array(None));
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let bzmpop = ["bzmpop", "0.02", "1", "nokey", "MIN", "COUNT", "3"];
    assert_eq!(a.call(&bzmpop), Reply::Array(None));
    assert_eq!(resp3.call(&["bzpopmax", "nokey", "0.02"]), Reply::Null);

    // WAIT, with no replicas: 0 at once for none wanted, after the timeout
    // for some, and never for some with no timeout, until CLIENT UNBLOCK
    // (its timeout reply, 0, or the UNBLOCKED error).
    assert_eq!(a.call(&["wait", "0", "0"]), Reply::Integer(0));
    let (reply, took) = timed_call(&mut a, &["wait", "1", "150"]);
    assert_eq!(reply, Reply::Integer(0));
    assert!(took >= Duration::from_millis(150), "{took:?}");
    let id = integer(a.call(&["client", "id"])).to_string();
    a.send_command(&["wait", "1", "0"]);
    wait_blocked(&mut observer, 1);
    let Reply::Bulk(Some(list)) = observer.call(&["client", "list"]) else {
        panic!("CLIENT LIST");
    };
    let list = String::from_utf8(list).unwrap();
    assert!(
        list.contains(" flags=b ") && list.contains(" cmd=wait "),
        "{list}"
    );
    assert!(a.nothing_within(Duration::from_millis(300)));
    assert_eq!(
        observer.call(&["client", "unblock", &id]),
        Reply::Integer(1)
    );
    assert_eq!(a.read().unwrap(), Reply::Integer(0));
    a.send_command(&["wait", "2", "0"]);
    wait_blocked(&mut observer, 1);
    let unblock = ["client", "unblock", &id, "ERROR"];
    assert_eq!(observer.call(&unblock), Reply::Integer(1));
    let unblocked = error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
    assert_eq!(a.read().unwrap(), unblocked);
    assert_eq!(resp3.call(&["wait", "1", "10"]), Reply::Integer(0));

    // Gone while blocked: forever, with a timer armed, and in WAIT.
    let mut forever = server.connect();
    forever.send_command(&["bzpopmin", "gone", "0"]);
    let mut timed = server.connect();
    timed.send_command(&["bzmpop", "0.3", "1", "gone", "MAX"]);
    let mut waiting = server.connect();
    waiting.send_command(&["wait", "1", "0"]);
    wait_blocked(&mut observer, 3);
    drop((forever, timed, waiting));
    wait_blocked(&mut observer, 0);
    // Nobody takes the member: it stays, and nothing fires later.
    assert_eq!(
        observer.call(&["zadd", "gone", "1", "m"]),
        Reply::Integer(1)
    );
    thread::sleep(Duration::from_millis(400));
    assert_eq!(observer.call(&["zcard", "gone"]), Reply::Integer(1));
    assert_eq!(a.call(&["ping"]), Reply::Simple("PONG".into()));
}

#[test]
fn sorted_set_blocking_pops_and_wait_on_io_uring() {
    sorted_set_blocking_pops_and_wait("io_uring");
}

#[test]
fn sorted_set_blocking_pops_and_wait_on_epoll() {
    sorted_set_blocking_pops_and_wait("epoll");
}

/// A served BZPOPMIN, BZPOPMAX or BZMPOP (and a ZMPOP) is logged as the
/// ZPOPMIN or ZPOPMAX it amounts to, and its reply comes after the fsync:
/// a kill -9 then a restart give the same key space, the pops undone by
/// nothing.
#[test]
fn served_sorted_set_pops_are_logged_as_plain_pops_and_replay() {
    let dir = ScratchDir::new("kv-zblock-wal");
    let mut server = start_server(&dir, &[]);
    let mut observer = server.connect();
    let mut client = server.connect();
    client.send_command(&["bzpopmin", "z", "0"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["zadd", "z", "1", "a", "2", "b", "3", "c", "4", "d"]);
    assert_eq!(client.read().unwrap(), key_member_score("z", "a", "1"));
    client.send_command(&["bzpopmax", "y", "0"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["zadd", "y", "1", "p", "2", "q"]);
    assert_eq!(client.read().unwrap(), key_member_score("y", "q", "2"));
    client.send_command(&["bzmpop", "0", "1", "x", "MIN", "COUNT", "2"]);
    wait_blocked(&mut observer, 1);
    observer.call(&["multi"]);
    observer.call(&["zadd", "x", "7", "s"]);
    observer.call(&["zadd", "x", "8", "t", "9", "u"]);
    observer.call(&["exec"]);
    let popped = Reply::Array(Some(vec![
        bulk("x"),
        Reply::Array(Some(vec![strings(&["s", "7"]), strings(&["t", "8"])])),
    ]));
    assert_eq!(client.read().unwrap(), popped);
    // Pops that found their sorted set at once are logged the same way.
    assert_eq!(
        client.call(&["bzpopmax", "nokey", "z", "0"]),
        key_member_score("z", "d", "4")
    );
    let popped = Reply::Array(Some(vec![
        bulk("z"),
        Reply::Array(Some(vec![strings(&["b", "2"])])),
    ]));
    assert_eq!(client.call(&["zmpop", "2", "nokey", "z", "MIN"]), popped);
    let before = dump_keyspace(&mut observer);
    assert_eq!(before.len(), 3, "{before:?}");
    let log = fs::read(wal_path(&dir)).unwrap();
    let has = |word: &[u8]| log.windows(word.len()).any(|window| window == word);
    for plain in [&b"ZPOPMIN"[..], b"ZPOPMAX"] {
        assert!(has(plain), "{}", String::from_utf8_lossy(plain));
    }
    for blocking in [&b"BZPOPMIN"[..], b"BZPOPMAX", b"BZMPOP", b"ZMPOP"] {
        assert!(!has(blocking), "{}", String::from_utf8_lossy(blocking));
    }
    drop((observer, client));
    server.kill_9();
    let server = start_server(&dir, &[]);
    assert_eq!(dump_keyspace(&mut server.connect()), before);
}

/// BGREWRITEAOF compacts the log now, whatever its size: the data
/// directory then holds a snapshot and an empty log, and a restart
/// rebuilds the same key space from the snapshot alone.
#[test]
fn bgrewriteaof_compacts_the_log_now() {
    let dir = ScratchDir::new("kv-bgrewriteaof");
    let mut server = start_server(&dir, &["--compact-bytes", "0"]);
    let mut client = server.connect();
    for index in 0..100 {
        let key = format!("k{}", index % 10);
        client.call(&["set", &key, &index.to_string()]);
    }
    client.call(&["zadd", "z", "1", "a", "2", "b"]);
    let before = dump_keyspace(&mut client);
    assert!(fs::metadata(wal_path(&dir)).unwrap().len() > 0);
    assert_eq!(
        client.call(&["bgrewriteaof"]),
        Reply::Simple("Background append only file rewriting started".into())
    );
    let deadline = Instant::now() + IO_TIMEOUT;
    while !server.stderr().contains("compacted") {
        assert!(Instant::now() < deadline, "no compaction");
        thread::sleep(Duration::from_millis(5));
    }
    // A write after the compaction's reply waits for it, so the log is
    // empty up to it.
    assert_eq!(client.call(&["ping"]), Reply::Simple("PONG".into()));
    assert_eq!(fs::metadata(wal_path(&dir)).unwrap().len(), 0);
    drop(client);
    server.kill_9();
    let server = start_server(&dir, &["--compact-bytes", "0"]);
    assert_eq!(dump_keyspace(&mut server.connect()), before);
    let stderr = server.stderr();
    assert!(
        stderr.contains("snapshot bytes and 0 log bytes"),
        "{stderr}"
    );
}

/// `--appendonly no` is a cache, as Redis with `appendonly no` and no
/// saves: writes are served, nothing reaches the log, a restart starts
/// empty (and leaves an existing log alone), and INFO and CONFIG say so.
#[test]
fn appendonly_no_is_a_cache_that_leaves_the_log_alone() {
    let dir = ScratchDir::new("kv-appendonly-no");
    let mut logged = start_server(&dir, &[]);
    assert_eq!(
        logged.connect().call(&["SET", "kept", "1"]),
        Reply::Simple("OK".into())
    );
    logged.kill_9();
    let log_bytes = std::fs::metadata(wal_path(&dir)).expect("the log").len();
    assert!(log_bytes > 0);

    let mut cache = start_server(&dir, &["--appendonly", "no"]);
    let mut client = cache.connect();
    assert_eq!(client.call(&["GET", "kept"]), Reply::Bulk(None));
    assert_eq!(client.call(&["SET", "k", "v"]), Reply::Simple("OK".into()));
    assert_eq!(client.call(&["INCR", "n"]), Reply::Integer(1));
    assert_eq!(client.call(&["GET", "k"]), bulk("v"));
    let Reply::Bulk(Some(info)) = client.call(&["INFO", "persistence"]) else {
        panic!("INFO persistence is a bulk string");
    };
    assert!(String::from_utf8_lossy(&info).contains("aof_enabled:0"));
    assert_eq!(
        client.call(&["CONFIG", "GET", "appendonly"]),
        Reply::Array(Some(vec![bulk("appendonly"), bulk("no")]))
    );
    cache.kill_9();
    assert_eq!(std::fs::metadata(wal_path(&dir)).unwrap().len(), log_bytes);

    let again = start_server(&dir, &["--appendonly", "no"]);
    assert_eq!(again.connect().call(&["GET", "k"]), Reply::Bulk(None));
    drop(again);
    let logged = start_server(&dir, &[]);
    assert_eq!(logged.connect().call(&["GET", "kept"]), bulk("1"));
}

/// INFO's text for `args` (RESP2: a bulk string).
fn info_text(client: &mut Client, args: &[&str]) -> String {
    let mut call = vec!["info"];
    call.extend_from_slice(args);
    match client.call(&call) {
        Reply::Bulk(Some(text)) => String::from_utf8(text).expect("UTF-8 INFO"),
        other => panic!("INFO {args:?}: {other:?}"),
    }
}

/// INFO's `name:value` fields, by name.
fn info_fields(text: &str) -> BTreeMap<String, String> {
    text.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// INFO's section titles, in order.
fn info_titles(text: &str) -> Vec<String> {
    text.split("\r\n")
        .filter_map(|line| line.strip_prefix("# "))
        .map(str::to_string)
        .collect()
}

fn field_u64(fields: &BTreeMap<String, String>, name: &str) -> u64 {
    fields
        .get(name)
        .unwrap_or_else(|| panic!("{name} in INFO"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is a number: {:?}", fields[name]))
}

/// INFO everything has every section and field of redis-server 7.0.15's,
/// in its order (`info_fields`, recorded by record.sh, without the lines
/// that depend on what ran); the constants have Redis's idle values, the
/// measured fields move, and sections are chosen as Redis 7.0 chooses.
fn info_reports_redis_fields(backend: &str) {
    let dir = ScratchDir::new(&format!("kv-info-{backend}"));
    let server = start_server(&dir, &["--backend", backend]);
    let mut client = server.connect();
    let recorded = fs::read_to_string(transcripts_dir().join("info_fields"))
        .expect("read the recorded INFO fields");
    let text = info_text(&mut client, &["everything"]);
    let names: Vec<&str> = text
        .strip_suffix("\r\n")
        .expect("INFO's last line ends with CRLF")
        .split("\r\n")
        .map(|line| line.split(':').next().unwrap())
        .filter(|name| {
            !["cmdstat_", "latency_percentiles_usec_", "errorstat_", "db0"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
        })
        .collect();
    let expected: Vec<&str> = recorded.lines().collect();
    for (index, (got, expected)) in names.iter().zip(&expected).enumerate() {
        assert_eq!(
            got,
            expected,
            "INFO everything, line {}:\n{text}",
            index + 1
        );
    }
    assert_eq!(names.len(), expected.len(), "INFO everything:\n{text}");

    let fields = info_fields(&text);
    for (name, value) in [
        ("redis_version", "7.0.15"),
        ("redis_mode", "standalone"),
        ("multiplexing_api", backend),
        ("mem_allocator", "libc"),
        ("process_supervised", "no"),
        ("role", "master"),
        ("connected_slaves", "0"),
        ("master_replid2", "0000000000000000000000000000000000000000"),
        ("repl_backlog_size", "1048576"),
        ("aof_enabled", "1"),
        ("aof_last_write_status", "ok"),
        ("rdb_last_bgsave_status", "ok"),
        ("maxmemory_human", "0B"),
        ("maxmemory_policy", "noeviction"),
        ("cluster_enabled", "0"),
        ("io_threads_active", "0"),
        ("total_forks", "0"),
        ("connected_clients", "1"),
    ] {
        assert_eq!(fields[name], value, "{name}");
    }
    assert_eq!(
        field_u64(&fields, "process_id"),
        u64::from(server.child.id())
    );
    assert_eq!(
        field_u64(&fields, "tcp_port"),
        u64::from(server.addr.port())
    );
    for name in ["run_id", "master_replid"] {
        let id = &fields[name];
        assert!(
            id.len() == 40 && id.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "{name}:{id}"
        );
    }
    let used = field_u64(&fields, "used_memory");
    assert!(used > 0);
    assert!(field_u64(&fields, "used_memory_rss") > used);
    assert!(field_u64(&fields, "used_memory_peak") >= used);
    assert!(field_u64(&fields, "total_system_memory") > 0);
    let human = &fields["used_memory_human"];
    assert!(
        human.ends_with('K') || human.ends_with('M'),
        "used_memory_human:{human}"
    );
    for name in ["used_cpu_sys", "used_cpu_user", "used_cpu_sys_main_thread"] {
        let value = &fields[name];
        let (seconds, micros) = value.split_once('.').expect("seconds.micros");
        assert!(
            seconds.parse::<u64>().is_ok() && micros.len() == 6,
            "{name}:{value}"
        );
    }
    assert_eq!(
        fields["instantaneous_input_kbps"]
            .split('.')
            .nth(1)
            .map(str::len),
        Some(2)
    );

    // The counters move.
    let commands = field_u64(&fields, "total_commands_processed");
    let input = field_u64(&fields, "total_net_input_bytes");
    let errors = field_u64(&fields, "total_error_replies");
    for index in 0..50 {
        let key = format!("k{index}");
        client.call(&["set", &key, "v", "ex", "1000"]);
    }
    client.call(&["set", "plain", "v"]);
    assert!(matches!(client.call(&["nosuch"]), Reply::Error(_)));
    assert!(matches!(client.call(&["incr", "plain"]), Reply::Error(_)));
    let text = info_text(&mut client, &[]);
    let after = info_fields(&text);
    assert!(field_u64(&after, "total_commands_processed") >= commands + 53);
    assert!(field_u64(&after, "total_net_input_bytes") > input + 50 * 30);
    assert!(field_u64(&after, "total_net_output_bytes") > 0);
    assert_eq!(field_u64(&after, "total_error_replies"), errors + 2);
    assert_eq!(after["errorstat_ERR"], "count=2");
    let db0 = &after["db0"];
    let (counts, avg_ttl) = db0.rsplit_once(",avg_ttl=").expect("avg_ttl");
    assert_eq!(counts, "keys=51,expires=50", "db0:{db0}");
    let avg_ttl: u64 = avg_ttl.parse().unwrap();
    assert!(
        (990_000..=1_000_000).contains(&avg_ttl),
        "avg_ttl={avg_ttl}"
    );
    // A busy second shows in the instantaneous rate.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        client.call(&["ping"]);
    }
    let after = info_fields(&info_text(&mut client, &["stats"]));
    assert!(
        field_u64(&after, "instantaneous_ops_per_sec") > 0,
        "{after:?}"
    );

    // Section choice, as in Redis 7.0.
    let default = [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
        "Modules",
        "Errorstats",
        "Cluster",
        "Keyspace",
    ];
    let mut all = default.to_vec();
    all.insert(8, "Commandstats");
    all.insert(10, "Latencystats");
    assert_eq!(info_titles(&text), default);
    assert_eq!(info_titles(&info_text(&mut client, &["default"])), default);
    assert_eq!(info_titles(&info_text(&mut client, &["all"])), all);
    assert_eq!(info_titles(&info_text(&mut client, &["EVERYTHING"])), all);
    assert_eq!(
        info_titles(&info_text(&mut client, &["cpu", "SERVER", "cpu"])),
        ["Server", "CPU"]
    );
    assert_eq!(
        info_titles(&info_text(&mut client, &["keyspace", "nosuch"])),
        ["Keyspace"]
    );
    assert_eq!(info_text(&mut client, &["nosuch"]), "");
    let memory = info_text(&mut client, &["memory"]);
    assert!(memory.starts_with("# Memory\r\nused_memory:"), "{memory}");
}

#[test]
fn info_reports_redis_7_0_15_fields_on_io_uring() {
    info_reports_redis_fields("io_uring");
}

#[test]
fn info_reports_redis_7_0_15_fields_on_epoll() {
    info_reports_redis_fields("epoll");
}

/// `keyspace_hits` and `keyspace_misses` count what Redis counts: the
/// lookups of commands that read (and of GETEX and GETDEL, writes that
/// Redis looks up as reads), once each; never a write's. Each command's
/// expected change was recorded against redis-server 7.0.15.
#[test]
fn keyspace_hits_and_misses_count_reads_as_redis_does() {
    let dir = ScratchDir::new("kv-keyspace-stats");
    let server = start_server(&dir, &[]);
    let mut client = server.connect();
    let counts = |client: &mut Client| {
        let fields = info_fields(&info_text(client, &["stats"]));
        let number = |name: &str| -> i64 { fields[name].parse().unwrap() };
        (number("keyspace_hits"), number("keyspace_misses"))
    };
    // (command, hits, misses) as redis-server 7.0.15 counts them.
    let expected: &[(&str, i64, i64)] = &[
        ("set a 1", 0, 0),
        ("set b 2", 0, 0),
        ("incr c", 0, 0),
        ("get zz", 0, 1),
        ("get a", 1, 0),
        ("lpush l x", 0, 0),
        ("exists nope", 0, 1),
        ("exists a b", 2, 0),
        ("lrange l 0 -1", 1, 0),
        ("type a", 1, 0),
        ("setnx a 2", 0, 0),
        ("hget h f", 0, 1),
        ("mget a b q", 2, 1),
        ("strlen a", 1, 0),
        ("ttl a", 1, 0),
        ("getex a", 1, 0),
        ("getdel b", 1, 0),
        ("getdel nope", 0, 1),
        ("append a x", 0, 0),
        ("hset h f v", 0, 0),
        ("llen l", 1, 0),
        ("rpop l", 0, 0),
        ("expire a 100", 0, 0),
        ("rename a a2", 0, 0),
        // Writes that read a key as a read (`lookupKeyRead`), as Redis
        // counts them: the key GETSET and SET ... GET return, COPY's
        // source, the sources of the set STORE forms (not their
        // destinations).
        ("getset a2 5", 1, 0),
        ("getset fresh 5", 0, 1),
        ("set a2 7 get", 1, 0),
        ("set fresh2 3 nx get", 0, 1),
        ("set a2 8", 0, 0),
        ("copy a2 a3", 1, 0),
        ("copy nope a4", 0, 1),
        ("sadd s1 a b c", 0, 0),
        ("sadd s2 b c d", 0, 0),
        ("sunionstore d1 s1 s2 nope", 2, 1),
        ("sinterstore d1 s1 s2", 2, 0),
        ("sdiffstore d2 s1 nope", 1, 1),
        ("sunion s1 nope", 1, 1),
        ("smove s1 s2 a", 0, 0),
        ("zadd zz 1 a", 0, 0),
        ("zunionstore zo 2 zz nope", 1, 1),
        ("zinter 2 zz zz", 2, 0),
        ("zdiffstore zo 1 zz", 1, 0),
        ("zremrangebyscore zz 5 6", 0, 0),
        ("zrangestore zo zz 0 -1", 1, 0),
        ("zrangestore zo nope 0 -1", 0, 1),
        ("zintercard 2 zz nope", 1, 1),
        ("sintercard 2 s1 nope", 1, 1),
        ("sort nope", 0, 1),
        ("rpush sl 2 1", 0, 0),
        ("sort sl by w_*", 1, 2),
        ("sort sl by nosort get # get g_*", 1, 2),
        ("sort sl store sd", 1, 0),
        ("sort_ro sl", 1, 0),
    ];
    for &(command, hits, misses) in expected {
        let (hits_before, misses_before) = counts(&mut client);
        let args: Vec<&str> = command.split(' ').collect();
        client.call(&args);
        let (hits_after, misses_after) = counts(&mut client);
        assert_eq!(
            (hits_after - hits_before, misses_after - misses_before),
            (hits, misses),
            "{command}: (hits, misses) counted"
        );
    }
}

/// Waits for the server to exit by itself, and returns its status.
fn wait_exit(server: &mut ServerGuard) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            started.elapsed() < IO_TIMEOUT,
            "the server did not exit; stderr: {}",
            server.stderr()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// `redis-cli shutdown` stops kv_server as it stops redis-server: no
/// output, exit status 0, and every write acknowledged before it durable,
/// under every fsync policy (`no` and `everysec` included: SHUTDOWN
/// fsyncs); a restart on the same directory finds them. Other clients'
/// connections are closed.
#[test]
fn redis_cli_shutdown_exits_0_and_keeps_the_writes() {
    let test = "redis_cli_shutdown_exits_0_and_keeps_the_writes";
    if !require_redis_tool(test, "redis-cli") {
        return;
    }
    for policy in ["always", "everysec", "no"] {
        let dir = ScratchDir::new(&format!("kv-shutdown-{policy}"));
        let mut server = start_server(&dir, &["--fsync", policy]);
        let mut client = server.connect();
        let mut bystander = server.connect();
        assert_eq!(client.call(&["set", "k", policy]), ok());
        assert_eq!(client.call(&["rpush", "list", "a", "b"]), Reply::Integer(2));
        assert_eq!(redis_cli(&server, &["shutdown"], ""), "");
        let status = wait_exit(&mut server);
        assert!(status.success(), "{policy}: exit status {status:?}");
        assert!(server.stderr().contains("User requested shutdown"));
        let mut rest = Vec::new();
        let read = bystander.reader.read_to_end(&mut rest);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "{policy}: the other connection was closed: {read:?}"
        );
        let restarted = start_server(&dir, &["--fsync", policy]);
        let mut client = restarted.connect();
        assert_eq!(client.call(&["get", "k"]), bulk(policy), "{policy}");
        assert_eq!(client.call(&["llen", "list"]), Reply::Integer(2));
    }
    // With no log, as redis-server with appendonly no: it just exits.
    let dir = ScratchDir::new("kv-shutdown-cache");
    let mut server = start_server(&dir, &["--appendonly", "no"]);
    assert_eq!(redis_cli(&server, &["set", "k", "v"], ""), "OK\n");
    assert_eq!(redis_cli(&server, &["shutdown", "nosave", "now"], ""), "");
    assert!(wait_exit(&mut server).success());
}
