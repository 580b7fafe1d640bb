//! What a client knows about its own keys: per key, the last acknowledged
//! write, and the writes whose outcome is not known yet (in flight, or sent
//! on a connection that broke before the reply came). A value read back,
//! by a GET or from the recovered store, must be one of those.
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

/// One client's keys: `registers` SET/DEL keys and one counter.
#[derive(Debug)]
pub struct Model {
    client: u32,
    registers: Vec<Register>,
    counter: Counter,
}

/// Which key: a register's index, or the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Register(usize),
    Counter,
}

impl Model {
    pub fn new(client: u32, registers: usize) -> Model {
        Model {
            client,
            registers: (0..registers).map(|_| Register::default()).collect(),
            counter: Counter::default(),
        }
    }

    /// The key's name on the server.
    pub fn name(&self, key: Key) -> Vec<u8> {
        match key {
            Key::Register(index) => format!("r{}:{index}", self.client).into_bytes(),
            Key::Counter => format!("n{}", self.client).into_bytes(),
        }
    }

    /// Every key, for the checker.
    pub fn keys(&self) -> impl Iterator<Item = Key> {
        (0..self.registers.len())
            .map(Key::Register)
            .chain([Key::Counter])
    }

    /// A write is about to be sent.
    pub fn sent(&mut self, key: Key, seq: u64, write: &Write) {
        match (key, write) {
            (Key::Register(index), Write::Set(value)) => {
                self.registers[index]
                    .possible
                    .insert(seq, Some(value.clone()));
            }
            (Key::Register(index), Write::Del) => {
                self.registers[index].possible.insert(seq, None);
            }
            (Key::Counter, Write::Incr) => {
                self.counter.possible.insert(seq);
            }
            _ => unreachable!("{write:?} on {key:?}"),
        }
    }

    /// The write never reached the server (its bytes were never all sent).
    pub fn not_sent(&mut self, key: Key, seq: u64) {
        match key {
            Key::Register(index) => {
                self.registers[index].possible.remove(&seq);
            }
            Key::Counter => {
                self.counter.possible.remove(&seq);
            }
        }
    }

    /// The write was sent on a connection the client gave up on before its
    /// reply came: it may land at any time until the server crashes.
    pub fn abandoned(&mut self, key: Key, seq: u64) {
        match key {
            Key::Register(index) => {
                let register = &mut self.registers[index];
                if let Some(value) = register.possible.remove(&seq) {
                    register.floating.insert(seq, value);
                }
            }
            Key::Counter => {
                if self.counter.possible.remove(&seq) {
                    self.counter.floating.insert(seq);
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
        let floating = std::mem::take(&mut self.counter.floating);
        self.counter.possible.extend(floating);
    }

    /// The write was acknowledged; an INCR's reply is the new value, which
    /// is checked against what the earlier INCRs allow.
    pub fn acked(&mut self, key: Key, seq: u64, incr_reply: Option<i64>) -> Result<(), String> {
        match key {
            Key::Register(index) => {
                let register = &mut self.registers[index];
                let value = register
                    .possible
                    .remove(&seq)
                    .expect("an acknowledged write was possible");
                register.acked_seq = seq;
                register.acked = value;
                register.possible = register.possible.split_off(&seq);
            }
            Key::Counter => {
                let name = String::from_utf8_lossy(&self.name(Key::Counter)).into_owned();
                let counter = &mut self.counter;
                let reply = incr_reply.expect("INCR replies with an integer");
                let unknown = counter.possible.range(..seq).count() as i64;
                let floating = counter.floating.len() as i64;
                let low = counter.acked + 1;
                if reply < low || reply > low + unknown + floating {
                    return Err(format!(
                        "INCR {name} (request {seq}) replied {reply}: expected {low}..={} \
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
        let name = String::from_utf8_lossy(&self.name(key)).into_owned();
        let show = |value: Option<&[u8]>| {
            value.map_or("(nil)".to_owned(), |v| {
                format!("{:?}", String::from_utf8_lossy(v))
            })
        };
        match key {
            Key::Register(index) => {
                let register = &self.registers[index];
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
            Key::Counter => {
                let counter = &self.counter;
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
                    "{name} holds {}, but its last acknowledged INCR (request {}) made it {} \
                     and {unknown} INCRs of unknown outcome followed",
                    show(found),
                    counter.acked_seq,
                    counter.acked
                ))
            }
        }
    }
}
