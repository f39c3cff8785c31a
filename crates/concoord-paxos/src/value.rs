//! What the log orders: batches of commands, each an opaque application command,
//! a membership change, or a noop.
//!
//! The consensus core never looks inside `Command::App` bytes: the object layer
//! above gives them meaning (sessions, dedup, objects).

use concoord_wire::{ReplicaId, Time};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A replica as the membership knows it: its acceptor identity, an address the
/// shell can use to reach it, and the port of the DNS name server it runs on that
/// address's host (`-n`), if it runs one. The core never parses the address.
///
/// Encoding: the serialized form is still `{ id, addr }`, the shape written before
/// members carried a name-server port, so logs, snapshots and peer messages written
/// then still decode (as members without a name server). A name-server port travels
/// inside the address string as a ` dns=PORT` suffix, which no `host:port` contains.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "MemberWire", into = "MemberWire")]
pub struct Member {
    pub id: ReplicaId,
    pub addr: String,
    pub dns_port: Option<u16>,
}

impl Member {
    /// A member that runs no name server.
    pub fn new(id: ReplicaId, addr: impl Into<String>) -> Member {
        Member { id, addr: addr.into(), dns_port: None }
    }
}

/// Separates a member's address from its name-server port in `MemberWire::addr`.
const DNS_PORT_MARK: &str = " dns=";

/// `Member` as it is serialized (see `Member`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename = "Member")]
struct MemberWire {
    id: ReplicaId,
    addr: String,
}

impl From<Member> for MemberWire {
    fn from(m: Member) -> MemberWire {
        let addr = match m.dns_port {
            Some(port) => format!("{}{DNS_PORT_MARK}{port}", m.addr),
            None => m.addr,
        };
        MemberWire { id: m.id, addr }
    }
}

impl TryFrom<MemberWire> for Member {
    type Error = String;

    fn try_from(w: MemberWire) -> Result<Member, String> {
        match w.addr.split_once(DNS_PORT_MARK) {
            None => Ok(Member { id: w.id, addr: w.addr, dns_port: None }),
            Some((addr, port)) => match port.parse::<u16>() {
                Ok(port) => Ok(Member { id: w.id, addr: addr.to_string(), dns_port: Some(port) }),
                Err(_) => Err(format!("member {} has a bad name-server port {port:?}", w.id.0)),
            },
        }
    }
}

/// A membership change. It is committed at some slot `s` and takes effect at
/// slot `s + alpha` (see `membership.rs`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum ConfigChange {
    /// Add a non-voting learner that receives the log but is in no quorum.
    AddLearner(Member),
    /// Turn a learner into a voter.
    Promote(ReplicaId),
    /// Remove a voter or learner.
    Remove(ReplicaId),
    /// Remove one voter and promote one learner in the same step.
    Replace { remove: ReplicaId, promote: ReplicaId },
}

/// One command in a batch.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Opaque bytes for the state machine above.
    App(Vec<u8>),
    /// A membership change, interpreted by the core itself.
    Reconfigure(ConfigChange),
    /// Fills a slot that has no value (after a leader change); does nothing.
    Noop,
}

impl Command {
    pub fn encoded_len(&self) -> usize {
        match self {
            Command::App(bytes) => bytes.len() + 8,
            Command::Reconfigure(ConfigChange::AddLearner(m)) => m.addr.len() + 24,
            Command::Reconfigure(_) => 24,
            Command::Noop => 1,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::App(bytes) => write!(f, "App({}B)", bytes.len()),
            Command::Reconfigure(change) => write!(f, "Reconfigure({change:?})"),
            Command::Noop => write!(f, "Noop"),
        }
    }
}

/// The value of one slot: a batch of commands plus the leader's timestamp, which is
/// the only notion of time the state machine above may use.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Value {
    pub timestamp: Time,
    pub commands: Vec<Command>,
}

impl Value {
    pub fn noop(timestamp: Time) -> Value {
        Value { timestamp, commands: vec![Command::Noop] }
    }

    pub fn encoded_len(&self) -> usize {
        8 + self.commands.iter().map(Command::encoded_len).sum::<usize>()
    }

    /// A stable 64-bit digest (FNV-1a over a canonical encoding), used by checkers
    /// and traces. Not cryptographic.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        h.u64(self.timestamp.0);
        h.u64(self.commands.len() as u64);
        for command in &self.commands {
            match command {
                Command::App(bytes) => {
                    h.u64(1);
                    h.bytes(bytes);
                }
                Command::Reconfigure(change) => {
                    h.u64(2);
                    match change {
                        ConfigChange::AddLearner(m) => {
                            h.u64(1);
                            h.u64(m.id.0);
                            h.bytes(m.addr.as_bytes());
                        }
                        ConfigChange::Promote(id) => {
                            h.u64(2);
                            h.u64(id.0);
                        }
                        ConfigChange::Remove(id) => {
                            h.u64(3);
                            h.u64(id.0);
                        }
                        ConfigChange::Replace { remove, promote } => {
                            h.u64(4);
                            h.u64(remove.0);
                            h.u64(promote.0);
                        }
                    }
                }
                Command::Noop => h.u64(3),
            }
        }
        h.finish()
    }
}

/// FNV-1a, 64 bit: a tiny stable hash for digests and trace hashes.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn u64(&mut self, x: u64) {
        for b in x.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}
