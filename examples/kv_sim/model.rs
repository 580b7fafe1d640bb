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
//! counters.
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
