//! The simulator's test application: a tiny replicated key/value store of integer
//! registers, with a session table for exactly-once execution.
//!
//! It stands in for the object layer until that plugs in. It is deliberately small
//! and its encoding hand-written, so the checkers can run its sequential code as
//! the specification.

use concoord_paxos::{Command, Fnv, Value};
use std::collections::BTreeMap;

/// What a client asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Write {
        key: u8,
        value: i64,
    },
    Add {
        key: u8,
        delta: i64,
    },
    /// A read ordered through the log (the slow path).
    LogRead {
        key: u8,
    },
    /// A read served by the leader after a read barrier (the fast path).
    Read {
        key: u8,
    },
}

impl Op {
    pub fn key(self) -> u8 {
        match self {
            Op::Write { key, .. }
            | Op::Add { key, .. }
            | Op::LogRead { key }
            | Op::Read { key } => key,
        }
    }
}

/// One client request: `(client, seq)` identifies it across retries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Request {
    pub client: u64,
    pub seq: u64,
    pub op: Op,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let (tag, key, arg) = match self.op {
            Op::Write { key, value } => (1u8, key, value),
            Op::Add { key, delta } => (2, key, delta),
            Op::LogRead { key } => (3, key, 0),
            Op::Read { key } => (4, key, 0),
        };
        let mut out = Vec::with_capacity(26);
        out.extend_from_slice(&self.client.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.push(tag);
        out.push(key);
        out.extend_from_slice(&arg.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Request> {
        if bytes.len() != 26 {
            return None;
        }
        let client = u64::from_le_bytes(bytes[0..8].try_into().ok()?);
        let seq = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
        let key = bytes[17];
        let arg = i64::from_le_bytes(bytes[18..26].try_into().ok()?);
        let op = match bytes[16] {
            1 => Op::Write { key, value: arg },
            2 => Op::Add { key, delta: arg },
            3 => Op::LogRead { key },
            4 => Op::Read { key },
            _ => return None,
        };
        Some(Request { client, seq, op })
    }
}

/// What applying one request did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Executed now, returning this value.
    Executed(i64),
    /// Already executed earlier; this is the cached reply.
    Duplicate(i64),
    /// Older than the client's latest request; nobody waits for it.
    Stale,
}

#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct App {
    registers: BTreeMap<u8, i64>,
    /// client -> (last executed seq, its reply)
    sessions: BTreeMap<u64, (u64, i64)>,
}

impl App {
    pub fn get(&self, key: u8) -> i64 {
        self.registers.get(&key).copied().unwrap_or(0)
    }

    /// Applies one chosen slot; returns each request's outcome in order.
    pub fn apply(&mut self, value: &Value) -> Vec<(Request, Outcome)> {
        let mut out = Vec::new();
        for command in &value.commands {
            let Command::App(bytes) = command else { continue };
            let Some(req) = Request::decode(bytes) else { continue };
            out.push((req, self.execute(req)));
        }
        out
    }

    fn execute(&mut self, req: Request) -> Outcome {
        if let Some((last, reply)) = self.sessions.get(&req.client) {
            if req.seq == *last {
                return Outcome::Duplicate(*reply);
            }
            if req.seq < *last {
                return Outcome::Stale;
            }
        }
        let result = match req.op {
            Op::Write { key, value } => {
                self.registers.insert(key, value);
                value
            }
            Op::Add { key, delta } => {
                let v = self.get(key).wrapping_add(delta);
                self.registers.insert(key, v);
                v
            }
            Op::LogRead { key } | Op::Read { key } => self.get(key),
        };
        self.sessions.insert(req.client, (req.seq, result));
        Outcome::Executed(result)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.registers.len() as u64).to_le_bytes());
        for (k, v) in &self.registers {
            out.push(*k);
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.sessions.len() as u64).to_le_bytes());
        for (c, (s, r)) in &self.sessions {
            out.extend_from_slice(&c.to_le_bytes());
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<App> {
        let mut r = Reader { bytes, at: 0 };
        let mut app = App::default();
        for _ in 0..r.u64()? {
            let k = r.u8()?;
            app.registers.insert(k, r.u64()? as i64);
        }
        for _ in 0..r.u64()? {
            let c = r.u64()?;
            let s = r.u64()?;
            app.sessions.insert(c, (s, r.u64()? as i64));
        }
        (r.at == bytes.len()).then_some(app)
    }

    pub fn state_hash(&self) -> u64 {
        let mut h = Fnv::new();
        h.bytes(&self.encode());
        h.finish()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn u64(&mut self) -> Option<u64> {
        let s = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(u64::from_le_bytes(s.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_wire::Time;

    #[test]
    fn duplicates_answer_from_the_cache_and_snapshots_round_trip() {
        let mut app = App::default();
        let w = Request { client: 1, seq: 1, op: Op::Add { key: 0, delta: 5 } };
        let v = Value { timestamp: Time(1), commands: vec![Command::App(w.encode())] };
        assert_eq!(app.apply(&v), vec![(w, Outcome::Executed(5))]);
        assert_eq!(app.apply(&v), vec![(w, Outcome::Duplicate(5))]);
        assert_eq!(app.get(0), 5);
        assert_eq!(App::decode(&app.encode()), Some(app.clone()));
        assert_eq!(Request::decode(&w.encode()), Some(w));
        assert_eq!(App::decode(&[1, 2, 3]), None);
    }
}
