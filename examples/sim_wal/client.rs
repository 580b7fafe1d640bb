//! A client: keeps a window of appends outstanding, records every
//! acknowledgement, and on any connection trouble reconnects and resends
//! what was not acknowledged (at-least-once).

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;

use ringio::{CompletionId, Handle, IO};

use crate::record::{self, REPLY_BYTES, REQUEST_BYTES};

/// Appends in flight per client.
const WINDOW: usize = 4;
/// A connect that has not finished after this long is cancelled.
const CONNECT_TIMEOUT_NS: u64 = 50_000_000;
/// The pause before reconnecting.
const RECONNECT_DELAY_NS: u64 = 10_000_000;
/// A connection with requests outstanding and no reply for this long is
/// given up on. Without it a client waits forever on a server whose machine
/// crashed: nothing tells a peer that only reads (no keepalive), as on a
/// real network.
const REPLY_TIMEOUT_NS: u64 = 200_000_000;

/// One client's state: the ctx of its `IO`.
pub struct Client {
    pub id: u32,
    server: SocketAddr,
    socket: Option<Handle>,
    /// Bumped per connection attempt, so stale callbacks know they are.
    generation: u32,
    /// Replies received, ever: the reply watchdog's measure of progress.
    replies: u64,
    next_request: u64,
    /// Requests sent (or to resend) and not yet acknowledged.
    outstanding: BTreeSet<u64>,
    /// Every acknowledgement: (request, seq).
    pub acked: Vec<(u64, u64)>,
    input: Vec<u8>,
    output: Vec<u8>,
    sending: bool,
}

impl Client {
    /// A client of the store at `server`; it connects at once.
    pub fn start(io: &mut IO<Client>, id: u32, server: SocketAddr) -> Client {
        let mut client = Client {
            id,
            server,
            socket: None,
            generation: 0,
            replies: 0,
            next_request: 1,
            outstanding: BTreeSet::new(),
            acked: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
            sending: false,
        };
        connect(io, &mut client);
        client
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
        if !client.outstanding.is_empty() && client.replies == replies_seen {
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
    // Resend everything not acknowledged, then top the window up.
    let resend: Vec<u64> = client.outstanding.iter().copied().collect();
    for request in resend {
        queue_request(client, request);
    }
    top_up(client);
    send_output(io, client);
    recv_next(io, client);
}

fn top_up(client: &mut Client) {
    while client.outstanding.len() < WINDOW {
        let request = client.next_request;
        client.next_request += 1;
        client.outstanding.insert(request);
        queue_request(client, request);
    }
}

fn queue_request(client: &mut Client, request: u64) {
    let start = client.output.len();
    client.output.extend_from_slice(&client.id.to_le_bytes());
    client.output.extend_from_slice(&request.to_le_bytes());
    client
        .output
        .extend_from_slice(&record::payload(client.id, request));
    debug_assert_eq!(client.output.len() - start, REQUEST_BYTES);
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
    io.send(socket, output, move |io, client, result, mut sent| {
        if client.generation != generation {
            return;
        }
        client.sending = false;
        match result {
            Ok(count) => {
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
    let frames = client.input.len() / REPLY_BYTES;
    for index in 0..frames {
        let frame = &client.input[index * REPLY_BYTES..(index + 1) * REPLY_BYTES];
        let request = u64::from_le_bytes(frame[..8].try_into().expect("8 bytes"));
        let seq = u64::from_le_bytes(frame[8..].try_into().expect("8 bytes"));
        if client.outstanding.remove(&request) {
            client.acked.push((request, seq));
        }
    }
    client.replies += frames as u64;
    client.input.drain(..frames * REPLY_BYTES);
}

/// Drops the connection; what was not acknowledged is resent on the next.
fn disconnect(io: &mut IO<Client>, client: &mut Client) {
    if let Some(socket) = client.socket.take() {
        io.close(socket, |_, _, _: io::Result<()>| {});
    }
    client.input.clear();
    client.output.clear();
    client.sending = false;
    client.generation += 1;
    reconnect_later(io, client.generation);
}
