//! ConCoord's shared vocabulary: identifier newtypes and time types.
//!
//! This crate is pure: no IO, no clock reads, no randomness. Time values are
//! plain numbers handed in by a shell (or the simulator); nothing here knows
//! where they came from. `frame` holds the length-prefixed framing both wire
//! protocols use; the client protocol's messages live in `concoord-object::protocol`
//! (they carry object values).

pub mod frame;

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identity of one replica *incarnation*: an acceptor identity.
///
/// A replica restarted without durable state gets a fresh id and rejoins as a new
/// member; an id is never reused by a process that forgot what it promised.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct ReplicaId(pub u64);

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "R{}", self.0)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "R{}", self.0)
    }
}

/// Identity of one cluster, drawn at random when the cluster is founded. Durable
/// replicas persist it, joiners learn it from the first member that answers them,
/// and every message between replicas carries the sender's: a replica never takes
/// part in the protocol of a cluster it does not belong to, whatever address the
/// other process has.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct ClusterId(pub u64);

impl fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "C{:x}", self.0)
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A client session, registered through the log. Its number is assigned when the
/// registration is applied, so every replica agrees on it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct SessionId(pub u64);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S{}", self.0)
    }
}

/// A client's request number within its session: requests are numbered 1, 2, 3...
/// and a retry reuses the number, which is what makes execution exactly-once.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct RequestNumber(pub u64);

/// A position in the replicated log. Slot 0 is never used for a command: the log
/// starts at slot 1, and "applied through slot 0" means nothing applied.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Slot(pub u64);

impl Slot {
    pub const ZERO: Slot = Slot(0);

    pub fn next(self) -> Slot {
        Slot(self.0.saturating_add(1))
    }

    /// `self - n`, saturating at slot 0.
    pub fn saturating_sub(self, n: u64) -> Slot {
        Slot(self.0.saturating_sub(n))
    }

    pub fn plus(self, n: u64) -> Slot {
        Slot(self.0.saturating_add(n))
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A point in time, in microseconds since an arbitrary epoch chosen by the shell.
///
/// Each replica's `Time` comes from its own clock; two replicas' values are not
/// comparable. Cluster time seen by objects is the leader's `Time` stamped into
/// log entries.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct Time(pub u64);

/// A span of time in microseconds.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct Span(pub u64);

impl Span {
    pub const fn from_millis(ms: u64) -> Span {
        Span(ms * 1_000)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }
}

impl Time {
    pub fn saturating_add(self, d: Span) -> Time {
        Time(self.0.saturating_add(d.0))
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Span> for Time {
    type Output = Time;
    fn add(self, d: Span) -> Time {
        self.saturating_add(d)
    }
}
