//! What a client knows about its own keys: per key, the last acknowledged
//! write, and the writes whose outcome is not known yet (in flight, or sent
//! on a connection that broke before the reply came). A value read back,
//! by a GET or from the recovered store, must be one of those.
//!
//! Every type is a register or a counter here: a string key (SET, DEL,
//! GET), a hash field (HSET, HDEL, HGET), a set member (SADD, SREM,
//! SISMEMBER: its value is "1" while it is a member) and a sorted-set
//! member (ZADD, ZREM, ZSCORE: its value is its score) are registers; an
//! INCR counter and a list's length (RPUSH replies it, LLEN reads it) are
//! counters. BLMOVE rotates a client's list (right to left, the length
//! unchanged) with a short timeout: it must find an element once an RPUSH
//! was acknowledged, and may time out only before.
//!
//! One key is shared by every client, the queue of [`QueueLedger`]: pushes
//! and blocking pops of unique values, checked by the harness across all
//! clients.
//!
//! Each client owns its keys, so no other writer can explain a value.
//! Requests on one connection run in order, so on a live connection only
//! writes sent after the acknowledged one stay possible. A connection the
//! client gave up on is different: the server may still read what it sent
//! (Linux keeps received data readable after a reset or a FIN) and apply it
//! at any later time, after writes the client sent since were acknowledged.
//! Such writes "float" until the server crashes: no old connection reaches
//! its next process, so from then on they are ordinary unknown writes.

use std::collections::{BTreeMap, BTreeSet};

/// A key that SET and DEL write and GET reads.
#[derive(Debug, Default)]
struct Register {
    /// The last acknowledged write: its request number and value (`None`:
    /// deleted, or never written).
    acked_seq: u64,
    acked: Option<Vec<u8>>,
    /// Writes sent after it whose outcome is unknown, by request number.
    possible: BTreeMap<u64, Option<Vec<u8>>>,
    /// Writes of abandoned connections, which may land at any time.
    floating: BTreeMap<u64, Option<Vec<u8>>>,
}

/// A key that only INCR writes.
#[derive(Debug, Default)]
struct Counter {
    acked_seq: u64,
    acked: i64,
    /// INCRs sent after it whose outcome is unknown.
    possible: BTreeSet<u64>,
    /// INCRs of abandoned connections, which may land at any time.
    floating: BTreeSet<u64>,
}

/// A write, as the model records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Set(Vec<u8>),
    Del,
    Incr,
}

/// One client's keys: `registers` of each [`Kind`], and one counter of
/// each [`CounterKind`].
#[derive(Debug)]
pub struct Model {
    client: u32,
    registers_per_kind: usize,
    registers: Vec<Register>,
    counters: [Counter; 2],
}

/// What holds a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    HashField,
    SetMember,
    ZSetMember,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::String,
        Kind::HashField,
        Kind::SetMember,
        Kind::ZSetMember,
    ];
}

/// What holds a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// INCR on a string.
    Incr,
    /// RPUSH's reply, LLEN.
    ListLength,
}

/// Which key: a register, or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Register(Kind, usize),
    Counter(CounterKind),
}

impl Model {
    pub fn new(client: u32, registers_per_kind: usize) -> Model {
        let count = registers_per_kind * Kind::ALL.len();
        Model {
            client,
            registers_per_kind,
            registers: (0..count).map(|_| Register::default()).collect(),
            counters: Default::default(),
        }
    }

    /// The key's name on the server, and for a register inside a hash, set
    /// or sorted set, its field or member.
    pub fn name(&self, key: Key) -> (Vec<u8>, Option<Vec<u8>>) {
        let client = self.client;
        match key {
            Key::Register(Kind::String, index) => (format!("r{client}:{index}").into_bytes(), None),
            Key::Register(kind, index) => {
                let prefix = match kind {
                    Kind::HashField => 'h',
                    Kind::SetMember => 's',
                    _ => 'z',
                };
                let inner = format!("m{index}").into_bytes();
                (format!("{prefix}{client}").into_bytes(), Some(inner))
            }
            Key::Counter(CounterKind::Incr) => (format!("n{client}").into_bytes(), None),
            Key::Counter(CounterKind::ListLength) => (format!("l{client}").into_bytes(), None),
        }
    }

    fn display(&self, key: Key) -> String {
        let (name, inner) = self.name(key);
        let name = String::from_utf8_lossy(&name).into_owned();
        match inner {
            Some(inner) => format!("{name}/{}", String::from_utf8_lossy(&inner)),
            None => name,
        }
    }

    fn register(&self, kind: Kind, index: usize) -> &Register {
        let position = Kind::ALL.iter().position(|k| *k == kind).expect("a kind");
        &self.registers[position * self.registers_per_kind + index]
    }

    fn register_mut(&mut self, kind: Kind, index: usize) -> &mut Register {
        let position = Kind::ALL.iter().position(|k| *k == kind).expect("a kind");
        &mut self.registers[position * self.registers_per_kind + index]
    }

    fn counter(&self, kind: CounterKind) -> &Counter {
        &self.counters[kind as usize]
    }

    fn counter_mut(&mut self, kind: CounterKind) -> &mut Counter {
        &mut self.counters[kind as usize]
    }

    /// Every key, for the checker.
    pub fn keys(&self) -> impl Iterator<Item = Key> {
        let per_kind = self.registers_per_kind;
        Kind::ALL
            .into_iter()
            .flat_map(move |kind| (0..per_kind).map(move |index| Key::Register(kind, index)))
            .chain([
                Key::Counter(CounterKind::Incr),
                Key::Counter(CounterKind::ListLength),
            ])
    }

    /// A write is about to be sent.
    pub fn sent(&mut self, key: Key, seq: u64, write: &Write) {
        match (key, write) {
            (Key::Register(kind, index), Write::Set(value)) => {
                self.register_mut(kind, index)
                    .possible
                    .insert(seq, Some(value.clone()));
            }
            (Key::Register(kind, index), Write::Del) => {
                self.register_mut(kind, index).possible.insert(seq, None);
            }
            (Key::Counter(kind), Write::Incr) => {
                self.counter_mut(kind).possible.insert(seq);
            }
            _ => unreachable!("{write:?} on {key:?}"),
        }
    }

    /// The write never reached the server (its bytes were never all sent).
    pub fn not_sent(&mut self, key: Key, seq: u64) {
        match key {
            Key::Register(kind, index) => {
                self.register_mut(kind, index).possible.remove(&seq);
            }
            Key::Counter(kind) => {
                self.counter_mut(kind).possible.remove(&seq);
            }
        }
    }

    /// The write was sent on a connection the client gave up on before its
    /// reply came: it may land at any time until the server crashes.
    pub fn abandoned(&mut self, key: Key, seq: u64) {
        match key {
            Key::Register(kind, index) => {
                let register = self.register_mut(kind, index);
                if let Some(value) = register.possible.remove(&seq) {
                    register.floating.insert(seq, value);
                }
            }
            Key::Counter(kind) => {
                let counter = self.counter_mut(kind);
                if counter.possible.remove(&seq) {
                    counter.floating.insert(seq);
                }
            }
        }
    }

    /// The server crashed: no write of an abandoned connection can land
    /// after this, so each is an unknown write of its own place in order.
    pub fn server_crashed(&mut self) {
        for register in &mut self.registers {
            let floating = std::mem::take(&mut register.floating);
            register.possible.extend(floating);
        }
        for counter in &mut self.counters {
            let floating = std::mem::take(&mut counter.floating);
            counter.possible.extend(floating);
        }
    }

    /// The write was acknowledged; an INCR's reply is the new value, which
    /// is checked against what the earlier INCRs allow.
    pub fn acked(&mut self, key: Key, seq: u64, incr_reply: Option<i64>) -> Result<(), String> {
        match key {
            Key::Register(kind, index) => {
                let register = self.register_mut(kind, index);
                let value = register
                    .possible
                    .remove(&seq)
                    .expect("an acknowledged write was possible");
                register.acked_seq = seq;
                register.acked = value;
                register.possible = register.possible.split_off(&seq);
            }
            Key::Counter(kind) => {
                let name = self.display(key);
                let counter = self.counter_mut(kind);
                let reply = incr_reply.expect("INCR and RPUSH reply with an integer");
                let unknown = counter.possible.range(..seq).count() as i64;
                let floating = counter.floating.len() as i64;
                let low = counter.acked + 1;
                if reply < low || reply > low + unknown + floating {
                    return Err(format!(
                        "{kind:?} {name} (request {seq}) replied {reply}: expected {low}..={} \
                         (last acknowledged {} by request {}, {unknown} unknown since, \
                         {floating} of abandoned connections)",
                        low + unknown + floating,
                        counter.acked,
                        counter.acked_seq
                    ));
                }
                // What the unknown INCRs cannot explain, floating ones did.
                let landed = (reply - low - unknown).max(0);
                for _ in 0..landed {
                    counter.floating.pop_first();
                }
                counter.acked = reply;
                counter.acked_seq = seq;
                counter.possible = counter.possible.split_off(&(seq + 1));
            }
        }
        Ok(())
    }

    /// Whether the counter `key` may be above zero for a request sent as
    /// `before`: a list that BLMOVE found non-empty.
    pub fn check_nonzero(&self, key: Key, before: u64) -> Result<(), String> {
        let Key::Counter(kind) = key else {
            unreachable!("only a counter is nonzero");
        };
        let counter = self.counter(kind);
        let unknown = counter.possible.range(..before).count() + counter.floating.len();
        if counter.acked > 0 || unknown > 0 {
            return Ok(());
        }
        Err(format!(
            "{} had an element, but no RPUSH of it was acknowledged or of unknown outcome",
            self.display(key)
        ))
    }

    /// Whether `found` is a value `key` may hold: to a GET sent as request
    /// `before` (writes sent after it cannot show), or after a recovery
    /// (`before` = `u64::MAX`).
    pub fn check(&self, key: Key, found: Option<&[u8]>, before: u64) -> Result<(), String> {
        let name = self.display(key);
        let show = |value: Option<&[u8]>| {
            value.map_or("(nil)".to_owned(), |v| {
                format!("{:?}", String::from_utf8_lossy(v))
            })
        };
        match key {
            Key::Register(kind, index) => {
                let register = self.register(kind, index);
                let possible = register.possible.range(..before);
                let possible = possible.chain(register.floating.iter());
                if register.acked.as_deref() == found
                    || possible.clone().any(|(_, value)| value.as_deref() == found)
                {
                    return Ok(());
                }
                let unknown: Vec<String> =
                    possible.map(|(_, value)| show(value.as_deref())).collect();
                Err(format!(
                    "{name} holds {}, but its last acknowledged write (request {}) was {} \
                     and the writes of unknown outcome since are [{}]",
                    show(found),
                    register.acked_seq,
                    show(register.acked.as_deref()),
                    unknown.join(", ")
                ))
            }
            Key::Counter(kind) => {
                let counter = self.counter(kind);
                let value = match found {
                    None => Some(0),
                    Some(bytes) => std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|text| text.parse::<i64>().ok()),
                };
                let unknown = counter.possible.range(..before).count() + counter.floating.len();
                let unknown = unknown as i64;
                if value
                    .is_some_and(|value| value >= counter.acked && value <= counter.acked + unknown)
                {
                    return Ok(());
                }
                Err(format!(
                    "{name} holds {}, but its last acknowledged {kind:?} (request {}) made it {} \
                     and {unknown} of unknown outcome followed",
                    show(found),
                    counter.acked_seq,
                    counter.acked
                ))
            }
        }
    }
}

/// The key every client shares: a queue of unique values
/// (`c{client}-q{request}`), pushed with RPUSH and taken with blocking
/// pops (BLPOP, BRPOP, BLMPOP with a short timeout), so clients block and
/// are woken by each other's pushes.
pub const QUEUE_KEY: &[u8] = b"wq";
/// The shared queue's sorted-set half: the same unique values, pushed with
/// ZADD and taken with BZPOPMIN, BZPOPMAX and BZMPOP. The ledger checks
/// both halves as one queue (a value only ever goes into one of them).
pub const ZQUEUE_KEY: &[u8] = b"wz";

/// What a client saw of the shared queue, for the [`QueueLedger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// A push of this value is about to be sent.
    Sent(Vec<u8>),
    /// A push of this value was acknowledged.
    Pushed(Vec<u8>),
    /// An acknowledged pop took these values.
    Popped(Vec<Vec<u8>>),
    /// A pop of unknown outcome (sent on a connection given up on) may
    /// have taken up to this many values.
    Unknown(u64),
}

/// The whole world's knowledge of the shared queue: a value is pushed at
/// most once, so an acknowledged pop must return a value some push sent,
/// and no value twice; after a recovery the queue must hold no value an
/// acknowledged pop took (the pop was durable before its reply), only
/// values some push sent, and every acknowledged push's value, but for as
/// many as the pops of unknown outcome may have taken.
#[derive(Debug, Default)]
pub struct QueueLedger {
    sent: BTreeSet<Vec<u8>>,
    pushed: BTreeSet<Vec<u8>>,
    popped: BTreeSet<Vec<u8>>,
    unknown_pops: u64,
}

fn show_value(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

impl QueueLedger {
    /// Takes in one client's event; `Err` if it contradicts the rules.
    pub fn record(&mut self, client: u32, event: QueueEvent) -> Result<(), String> {
        match event {
            QueueEvent::Sent(value) => {
                self.sent.insert(value);
            }
            QueueEvent::Pushed(value) => {
                self.pushed.insert(value);
            }
            QueueEvent::Popped(values) => {
                for value in values {
                    if !self.sent.contains(&value) {
                        return Err(format!(
                            "client {client}: a pop of the shared queue returned {:?}, which \
                             no push sent",
                            show_value(&value)
                        ));
                    }
                    if !self.popped.insert(value.clone()) {
                        return Err(format!(
                            "client {client}: a pop of the shared queue returned {:?}, which \
                             an acknowledged pop had taken already",
                            show_value(&value)
                        ));
                    }
                }
            }
            QueueEvent::Unknown(count) => self.unknown_pops += count,
        }
        Ok(())
    }

    /// Checks the recovered queue (`None`: the key is missing; `Err(())`:
    /// it holds another type). `in_flight` pops, sent before the crash and
    /// not answered yet, may have taken values too.
    pub fn check_recovered(
        &self,
        queue: Result<Option<Vec<Vec<u8>>>, ()>,
        in_flight: u64,
    ) -> Result<(), String> {
        let Ok(queue) = queue else {
            return Err("after recovery: the shared queue holds another type".to_owned());
        };
        let queue = queue.unwrap_or_default();
        let present: BTreeSet<&Vec<u8>> = queue.iter().collect();
        if present.len() != queue.len() {
            return Err("after recovery: the shared queue holds a value twice".to_owned());
        }
        for value in &queue {
            if self.popped.contains(value) {
                return Err(format!(
                    "after recovery: acknowledged pop lost: {:?}, taken by an acknowledged \
                     pop, is back in the shared queue",
                    show_value(value)
                ));
            }
            if !self.sent.contains(value) {
                return Err(format!(
                    "after recovery: the shared queue holds {:?}, which no push sent",
                    show_value(value)
                ));
            }
        }
        let missing: Vec<&Vec<u8>> = self
            .pushed
            .iter()
            .filter(|value| !self.popped.contains(*value) && !present.contains(value))
            .collect();
        let unknown = self.unknown_pops + in_flight;
        if missing.len() as u64 > unknown {
            let first = missing.first().map(|value| show_value(value));
            return Err(format!(
                "after recovery: acknowledged push lost: {} acknowledged values (the first \
                 {first:?}) are missing from the shared queue, and pops of unknown outcome \
                 could have taken only {}",
                missing.len(),
                unknown
            ));
        }
        Ok(())
    }
}
