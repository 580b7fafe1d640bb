//! A Redis client node: keeps a window of pipelined requests on its own
//! keys of every type (SET, HSET, SADD, ZADD with values never used
//! before; DEL, HDEL, SREM, ZREM; INCR, RPUSH; GET, HGET, SISMEMBER,
//! ZSCORE, LLEN; BLMOVE rotating its list), checks every reply against its
//! [`Model`], and reconnects after any failure. It also pushes to and
//! blocks on the queue every client shares (RPUSH; BLPOP, BRPOP, BLMPOP
//! with a short timeout; and its sorted-set half, ZADD; BZPOPMIN,
//! BZPOPMAX, BZMPOP), and reports what it saw of it as
//! [`QueueEvent`]s for the harness's ledger. A request whose reply never
//! came has an unknown outcome: the model keeps it as possible, unless its
//! bytes were never all handed to a send.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use ringio::sim::Prng;
use ringio::{CompletionId, Handle, IO};

use crate::model::{CounterKind, Key, Kind, Model, QueueEvent, Write, QUEUE_KEY, ZQUEUE_KEY};

/// Requests in flight per client.
const WINDOW: usize = 4;
/// Registers of each kind per client: few, so that they are overwritten
/// often.
const REGISTERS: usize = 4;
/// A connect that has not finished after this long is cancelled.
const CONNECT_TIMEOUT_NS: u64 = 50_000_000;
/// The pause before reconnecting.
const RECONNECT_DELAY_NS: u64 = 10_000_000;
/// A connection with requests outstanding and no reply for this long is
/// given up on. Without it a client waits forever on a server whose machine
/// crashed: nothing tells a peer that only reads (no keepalive), as on a
/// real network.
const REPLY_TIMEOUT_NS: u64 = 200_000_000;

/// How long a blocking pop of the shared queue waits: long enough that
/// another client's push often wakes it, short against the reply
/// watchdog.
const QUEUE_POP_TIMEOUT: &[u8] = b"0.01";
/// How long BLMOVE waits on the client's own list, which only its own
/// pipeline (stuck behind it) could fill.
const ROTATE_TIMEOUT: &[u8] = b"0.005";

/// What a request does.
#[derive(Debug)]
enum Op {
    /// A write of the model's `key`, or a read (`write` `None`).
    Model { key: Key, write: Option<Write> },
    /// BLMOVE of the client's list onto itself, right to left.
    Rotate,
    /// RPUSH of a unique value onto the shared queue, or ZADD of it to
    /// the queue's sorted-set half (`zset`).
    Push { value: Vec<u8>, zset: bool },
    /// A blocking pop of the shared queue (or of its sorted-set half), of
    /// at most `count` values.
    Pop { count: u64, zset: bool },
}

/// A request: what it does, and where it ends in the connection's stream.
#[derive(Debug)]
struct Request {
    seq: u64,
    op: Op,
    end: u64,
}

/// A reply, as far as this client needs to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// One client's state: the ctx of its `IO`.
pub struct Client {
    pub id: u32,
    server: SocketAddr,
    prng: Prng,
    pub model: Model,
    socket: Option<Handle>,
    /// Bumped per connection attempt, so stale callbacks know they are.
    generation: u32,
    /// Replies received, ever: the reply watchdog's measure of progress.
    replies: u64,
    next_seq: u64,
    in_flight: VecDeque<Request>,
    /// Bytes of this connection's stream queued, accepted by sends, and
    /// handed to sends (the in-flight one's included).
    queued: u64,
    sent: u64,
    handed: u64,
    input: Vec<u8>,
    output: Vec<u8>,
    sending: bool,
    /// Acknowledged writes.
    pub acked: u64,
    /// What happened to the shared queue, for the harness to take.
    pub queue_events: Vec<QueueEvent>,
    /// The first reply that contradicted the model.
    pub violation: Option<String>,
}

impl Client {
    /// A client of the server at `server`; it connects at once.
    pub fn start(io: &mut IO<Client>, id: u32, server: SocketAddr, seed: u64) -> Client {
        let mut client = Client {
            id,
            server,
            prng: Prng::new(seed),
            model: Model::new(id, REGISTERS),
            socket: None,
            generation: 0,
            replies: 0,
            next_seq: 1,
            in_flight: VecDeque::new(),
            queued: 0,
            sent: 0,
            handed: 0,
            input: Vec::new(),
            output: Vec::new(),
            sending: false,
            acked: 0,
            queue_events: Vec::new(),
            violation: None,
        };
        connect(io, &mut client);
        client
    }

    /// The values that this client's blocking pops, sent but not
    /// answered yet, may have taken.
    pub fn pops_in_flight(&self) -> u64 {
        self.in_flight
            .iter()
            .filter(|request| request.end <= self.handed)
            .map(|request| match request.op {
                Op::Pop { count, .. } => count,
                _ => 0,
            })
            .sum()
    }

    fn fail(&mut self, message: String) {
        if self.violation.is_none() {
            self.violation = Some(format!("client {}: {message}", self.id));
        }
    }
}

fn connect(io: &mut IO<Client>, client: &mut Client) {
    client.generation += 1;
    let generation = client.generation;
    let socket = match io.open_socket(client.server) {
        Ok(socket) => socket,
        Err(_) => return reconnect_later(io, generation),
    };
    let connecting: CompletionId = io.connect(socket, client.server, move |io, client, result| {
        if client.generation != generation {
            io.close(socket, |_, _, _| {});
            return;
        }
        match result {
            Ok(()) => on_connected(io, client, socket),
            Err(_) => {
                io.close(socket, |_, _, _| {});
                reconnect_later(io, generation);
            }
        }
    });
    // A server that is down never answers: give up on the connect after a while.
    io.timeout(CONNECT_TIMEOUT_NS, move |io, client, _| {
        if client.generation == generation && client.socket.is_none() {
            io.cancel(connecting, |_, _, _| {});
        }
    });
}

/// Every `REPLY_TIMEOUT_NS` while connection `generation` lasts: if
/// requests are outstanding and no reply came since the last look
/// (`replies_seen`), the connection is dropped (and the requests resent or
/// left unknown, as after any failure).
fn watch_replies(io: &mut IO<Client>, generation: u32, replies_seen: u64) {
    io.timeout(REPLY_TIMEOUT_NS, move |io, client, _| {
        if client.generation != generation || client.socket.is_none() {
            return;
        }
        if !client.in_flight.is_empty() && client.replies == replies_seen {
            return disconnect(io, client);
        }
        watch_replies(io, generation, client.replies);
    });
}

fn reconnect_later(io: &mut IO<Client>, generation: u32) {
    io.timeout(RECONNECT_DELAY_NS, move |io, client, _| {
        if client.generation == generation {
            connect(io, client);
        }
    });
}

fn on_connected(io: &mut IO<Client>, client: &mut Client, socket: Handle) {
    client.socket = Some(socket);
    watch_replies(io, client.generation, client.replies);
    client.queued = 0;
    client.sent = 0;
    client.handed = 0;
    top_up(client);
    send_output(io, client);
    recv_next(io, client);
}

/// Fills the window with new random requests.
fn top_up(client: &mut Client) {
    while client.in_flight.len() < WINDOW {
        let seq = client.next_seq;
        client.next_seq += 1;
        let kind = Kind::ALL[client.prng.below(Kind::ALL.len() as u64) as usize];
        let register = Key::Register(kind, client.prng.below(REGISTERS as u64) as usize);
        let incr = Key::Counter(CounterKind::Incr);
        let list = Key::Counter(CounterKind::ListLength);
        let (key, write) = match client.prng.below(120) {
            0..=39 => {
                let value = match kind {
                    Kind::String | Kind::HashField => format!("c{}-v{seq}", client.id),
                    Kind::SetMember => "1".to_string(),
                    Kind::ZSetMember => seq.to_string(),
                };
                (register, Some(Write::Set(value.into_bytes())))
            }
            40..=49 => (register, Some(Write::Del)),
            50..=59 => (incr, Some(Write::Incr)),
            60..=69 => (list, Some(Write::Incr)),
            70..=89 => (register, None),
            90..=94 => (incr, None),
            95..=99 => (list, None),
            draw => {
                queue_request(client, seq, draw);
                continue;
            }
        };
        let start = client.output.len();
        let (name, inner) = client.model.name(key);
        let command = request(key, write.as_ref(), &name, inner.as_deref());
        encode(&mut client.output, &command);
        if let Some(write) = &write {
            client.model.sent(key, seq, write);
        }
        client.queued += (client.output.len() - start) as u64;
        client.in_flight.push_back(Request {
            seq,
            op: Op::Model { key, write },
            end: client.queued,
        });
    }
}

/// A request on the shared queue (a push, or a blocking pop) or the
/// rotation of the client's list, for a draw of 100..120.
fn queue_request(client: &mut Client, seq: u64, draw: u64) {
    let start = client.output.len();
    let op = match draw {
        100..=107 => {
            let value = format!("c{}-q{seq}", client.id).into_bytes();
            let zset = client.prng.below(2) == 1;
            if zset {
                let score = (client.prng.below(1000)).to_string();
                let command: [&[u8]; 4] = [b"ZADD", ZQUEUE_KEY, score.as_bytes(), &value];
                encode(&mut client.output, &command);
            } else {
                encode(&mut client.output, &[b"RPUSH", QUEUE_KEY, &value]);
            }
            client.queue_events.push(QueueEvent::Sent(value.clone()));
            Op::Push { value, zset }
        }
        108..=115 => {
            let (command, count): (Vec<&[u8]>, u64) = match client.prng.below(6) {
                0 => (vec![b"BLPOP", QUEUE_KEY, QUEUE_POP_TIMEOUT], 1),
                1 => (vec![b"BRPOP", QUEUE_KEY, QUEUE_POP_TIMEOUT], 1),
                3 => (vec![b"BZPOPMIN", ZQUEUE_KEY, QUEUE_POP_TIMEOUT], 1),
                4 => (vec![b"BZPOPMAX", ZQUEUE_KEY, QUEUE_POP_TIMEOUT], 1),
                5 => {
                    let command: Vec<&[u8]> = vec![
                        b"BZMPOP",
                        QUEUE_POP_TIMEOUT,
                        b"1",
                        ZQUEUE_KEY,
                        b"MIN",
                        b"COUNT",
                        b"2",
                    ];
                    (command, 2)
                }
                _ => {
                    let command: Vec<&[u8]> = vec![
                        b"BLMPOP",
                        QUEUE_POP_TIMEOUT,
                        b"1",
                        QUEUE_KEY,
                        b"LEFT",
                        b"COUNT",
                        b"2",
                    ];
                    (command, 2)
                }
            };
            let zset = command[0][0] == b'B' && command[0][1] == b'Z';
            encode(&mut client.output, &command);
            Op::Pop { count, zset }
        }
        _ => {
            let (name, _) = client.model.name(Key::Counter(CounterKind::ListLength));
            let command: [&[u8]; 6] = [b"BLMOVE", &name, &name, b"RIGHT", b"LEFT", ROTATE_TIMEOUT];
            encode(&mut client.output, &command);
            Op::Rotate
        }
    };
    client.queued += (client.output.len() - start) as u64;
    client.in_flight.push_back(Request {
        seq,
        op,
        end: client.queued,
    });
}

/// The command of a request: `name` is the key, `inner` a register's field
/// or member.
fn request<'a>(
    key: Key,
    write: Option<&'a Write>,
    name: &'a [u8],
    inner: Option<&'a [u8]>,
) -> Vec<&'a [u8]> {
    let inner = inner.unwrap_or_default();
    match (key, write) {
        (Key::Register(Kind::String, _), Some(Write::Set(value))) => vec![b"SET", name, value],
        (Key::Register(Kind::HashField, _), Some(Write::Set(value))) => {
            vec![b"HSET", name, inner, value]
        }
        (Key::Register(Kind::SetMember, _), Some(Write::Set(_))) => vec![b"SADD", name, inner],
        (Key::Register(Kind::ZSetMember, _), Some(Write::Set(score))) => {
            vec![b"ZADD", name, score, inner]
        }
        (Key::Register(Kind::String, _), Some(_)) => vec![b"DEL", name],
        (Key::Register(Kind::HashField, _), Some(_)) => vec![b"HDEL", name, inner],
        (Key::Register(Kind::SetMember, _), Some(_)) => vec![b"SREM", name, inner],
        (Key::Register(Kind::ZSetMember, _), Some(_)) => vec![b"ZREM", name, inner],
        (Key::Register(Kind::String, _), None) => vec![b"GET", name],
        (Key::Register(Kind::HashField, _), None) => vec![b"HGET", name, inner],
        (Key::Register(Kind::SetMember, _), None) => vec![b"SISMEMBER", name, inner],
        (Key::Register(Kind::ZSetMember, _), None) => vec![b"ZSCORE", name, inner],
        (Key::Counter(CounterKind::Incr), Some(_)) => vec![b"INCR", name],
        (Key::Counter(CounterKind::ListLength), Some(_)) => vec![b"RPUSH", name, b"x"],
        (Key::Counter(CounterKind::Incr), None) => vec![b"GET", name],
        (Key::Counter(CounterKind::ListLength), None) => vec![b"LLEN", name],
    }
}

/// A command as a RESP array of bulk strings.
fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn send_output(io: &mut IO<Client>, client: &mut Client) {
    let Some(socket) = client.socket else {
        return;
    };
    if client.sending || client.output.is_empty() {
        return;
    }
    client.sending = true;
    let generation = client.generation;
    let output = std::mem::take(&mut client.output);
    client.handed = client.sent + output.len() as u64;
    io.send(socket, output, move |io, client, result, mut sent| {
        if client.generation != generation {
            return;
        }
        client.sending = false;
        match result {
            Ok(count) => {
                client.sent += count as u64;
                sent.drain(..count);
                sent.extend_from_slice(&client.output);
                client.output = sent;
                send_output(io, client);
            }
            Err(_) => disconnect(io, client),
        }
    });
}

fn recv_next(io: &mut IO<Client>, client: &mut Client) {
    let Some(socket) = client.socket else {
        return;
    };
    let generation = client.generation;
    io.recv(
        socket,
        Vec::with_capacity(1024),
        move |io, client, result, buf| {
            if client.generation != generation {
                return;
            }
            match result {
                Ok(count) if count > 0 => {
                    client.input.extend_from_slice(&buf);
                    take_replies(client);
                    top_up(client);
                    send_output(io, client);
                    recv_next(io, client);
                }
                _ => disconnect(io, client),
            }
        },
    );
}

fn take_replies(client: &mut Client) {
    let mut position = 0;
    while let Some((reply, end)) = parse_reply(&client.input[position..]) {
        position += end;
        client.replies += 1;
        let Some(request) = client.in_flight.pop_front() else {
            client.fail(format!("a reply with no request: {reply:?}"));
            break;
        };
        if let Err(message) = on_reply(client, &request, reply) {
            client.fail(message);
        }
    }
    client.input.drain(..position);
}

fn on_reply(client: &mut Client, request: &Request, reply: Reply) -> Result<(), String> {
    let seq = request.seq;
    let (key, write) = match &request.op {
        Op::Model { key, write } => (*key, write),
        Op::Push { value, zset } => {
            // ZADD of a new member adds 1; RPUSH gives the new length.
            let added = match reply {
                Reply::Integer(1) => true,
                Reply::Integer(2..) => !zset,
                _ => false,
            };
            if !added {
                let name = if *zset { "ZADD" } else { "RPUSH" };
                return Err(format!(
                    "request {seq} ({name} of the shared queue) got {reply:?}"
                ));
            }
            client.acked += 1;
            client.queue_events.push(QueueEvent::Pushed(value.clone()));
            return Ok(());
        }
        Op::Pop { count, zset } => {
            let values = popped_values(reply, *count, *zset).map_err(|reply| {
                format!("request {seq} (a pop of the shared queue) got {reply:?}")
            })?;
            if !values.is_empty() {
                client.acked += 1;
                client.queue_events.push(QueueEvent::Popped(values));
            }
            return Ok(());
        }
        Op::Rotate => {
            let list = Key::Counter(CounterKind::ListLength);
            return match reply {
                Reply::Bulk(Some(element)) if element == b"x" => {
                    client.acked += 1;
                    client
                        .model
                        .check_nonzero(list, seq)
                        .map_err(|message| format!("BLMOVE (request {seq}): {message}"))
                }
                // Timed out: the list must have been empty.
                Reply::Array(None) => client
                    .model
                    .check(list, None, seq)
                    .map_err(|message| format!("BLMOVE timed out (request {seq}): {message}")),
                reply => Err(format!("request {seq} (BLMOVE) got {reply:?}")),
            };
        }
    };
    let string_key = matches!(key, Key::Register(Kind::String, _));
    match (write, reply) {
        (Some(Write::Set(_)), Reply::Simple(ok)) if ok == b"OK" && string_key => {
            client.acked += 1;
            client.model.acked(key, seq, None)
        }
        (Some(Write::Set(_)), Reply::Integer(0 | 1)) if !string_key => {
            client.acked += 1;
            client.model.acked(key, seq, None)
        }
        (Some(Write::Del), Reply::Integer(0 | 1)) => {
            client.acked += 1;
            client.model.acked(key, seq, None)
        }
        (Some(Write::Incr), Reply::Integer(value)) => {
            client.acked += 1;
            client.model.acked(key, seq, Some(value))
        }
        (None, reply) => {
            let value = match (key, reply) {
                (Key::Register(Kind::SetMember, _), Reply::Integer(1)) => Some(b"1".to_vec()),
                (Key::Register(Kind::SetMember, _), Reply::Integer(0)) => None,
                (Key::Counter(CounterKind::ListLength), Reply::Integer(len)) => {
                    (len > 0).then(|| len.to_string().into_bytes())
                }
                (_, Reply::Bulk(value)) => value,
                (_, reply) => {
                    return Err(format!("request {seq} (a read of {key:?}) got {reply:?}"));
                }
            };
            client
                .model
                .check(key, value.as_deref(), seq)
                .map_err(|message| format!("read (request {seq}): {message}"))
        }
        (write, reply) => Err(format!(
            "request {seq} ({write:?} on {key:?}) got an unexpected reply {reply:?}"
        )),
    }
}

/// The values a blocking pop of the shared queue took: none for a timeout
/// (the null array); BLPOP's and BRPOP's key and value; BLMPOP's key and
/// array of 1 to `count` values. `Err` with the reply if it is none of
/// those. For the sorted-set half (`zset`): BZPOPMIN's and BZPOPMAX's key,
/// member and score; BZMPOP's key and array of 1 to `count` pairs of
/// member and score.
fn popped_values(reply: Reply, count: u64, zset: bool) -> Result<Vec<Vec<u8>>, Reply> {
    let items = match reply {
        Reply::Array(None) => return Ok(Vec::new()),
        Reply::Array(Some(items)) => items,
        reply => return Err(reply),
    };
    let whole = || Reply::Array(Some(items.clone()));
    if zset {
        return match items.as_slice() {
            [Reply::Bulk(Some(key)), Reply::Bulk(Some(member)), Reply::Bulk(Some(_))]
                if key == ZQUEUE_KEY && count == 1 =>
            {
                Ok(vec![member.clone()])
            }
            [Reply::Bulk(Some(key)), Reply::Array(Some(pairs))]
                if key == ZQUEUE_KEY && (1..=count as usize).contains(&pairs.len()) =>
            {
                let mut popped = Vec::new();
                for pair in pairs {
                    match pair {
                        Reply::Array(Some(pair)) => match pair.as_slice() {
                            [Reply::Bulk(Some(member)), Reply::Bulk(Some(_))] => {
                                popped.push(member.clone());
                            }
                            _ => return Err(whole()),
                        },
                        _ => return Err(whole()),
                    }
                }
                Ok(popped)
            }
            _ => Err(whole()),
        };
    }
    match items.as_slice() {
        [Reply::Bulk(Some(key)), Reply::Bulk(Some(value))] if key == QUEUE_KEY && count == 1 => {
            Ok(vec![value.clone()])
        }
        [Reply::Bulk(Some(key)), Reply::Array(Some(values))]
            if key == QUEUE_KEY && (1..=count as usize).contains(&values.len()) =>
        {
            let mut popped = Vec::new();
            for value in values {
                match value {
                    Reply::Bulk(Some(value)) => popped.push(value.clone()),
                    _ => return Err(whole()),
                }
            }
            Ok(popped)
        }
        _ => Err(whole()),
    }
}

/// One whole reply at the start of `input`, and its length.
fn parse_reply(input: &[u8]) -> Option<(Reply, usize)> {
    let line_end = input.windows(2).position(|pair| pair == b"\r\n")?;
    let line = &input[1..line_end];
    let after = line_end + 2;
    let integer = || std::str::from_utf8(line).ok()?.parse::<i64>().ok();
    match input[0] {
        b'+' => Some((Reply::Simple(line.to_vec()), after)),
        b'-' => Some((Reply::Error(line.to_vec()), after)),
        b':' => Some((Reply::Integer(integer()?), after)),
        b'$' => {
            let len = integer()?;
            if len < 0 {
                return Some((Reply::Bulk(None), after));
            }
            let end = after + len as usize;
            if input.len() < end + 2 {
                return None;
            }
            Some((Reply::Bulk(Some(input[after..end].to_vec())), end + 2))
        }
        b'*' => {
            let len = integer()?;
            if len < 0 {
                return Some((Reply::Array(None), after));
            }
            let mut items = Vec::new();
            let mut position = after;
            for _ in 0..len {
                let (item, used) = parse_reply(&input[position..])?;
                items.push(item);
                position += used;
            }
            Some((Reply::Array(Some(items)), position))
        }
        _ => Some((Reply::Error(b"unparseable reply".to_vec()), input.len())),
    }
}

/// Drops the connection. A request whose bytes were all handed to a send
/// has an unknown outcome, and may still land at any time (the model's
/// "floating" writes); the others never reached the server.
fn disconnect(io: &mut IO<Client>, client: &mut Client) {
    if let Some(socket) = client.socket.take() {
        io.close(socket, |_, _, _: io::Result<()>| {});
    }
    for request in std::mem::take(&mut client.in_flight) {
        let handed = request.end <= client.handed;
        match request.op {
            Op::Model {
                key,
                write: Some(_),
            } => {
                if handed {
                    client.model.abandoned(key, request.seq);
                } else {
                    client.model.not_sent(key, request.seq);
                }
            }
            Op::Pop { count, .. } if handed => {
                client.queue_events.push(QueueEvent::Unknown(count));
            }
            _ => {}
        }
    }
    client.input.clear();
    client.output.clear();
    client.sending = false;
    client.generation += 1;
    reconnect_later(io, client.generation);
}
