//! Ballots: `(round, leader)` pairs, totally ordered, unique per leader.
//!
//! Not a clock and not an epoch counter: membership changes do not bump ballots
//! (the original's epoch did; here each slot carries its own configuration).

use concoord_wire::ReplicaId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A ballot number. Ordered by `round`, then by `leader`, so two replicas never
/// pick the same ballot and every ballot has exactly one proposer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub leader: ReplicaId,
}

impl Ballot {
    /// Below every ballot a leader can use; what a fresh acceptor has promised.
    pub const ZERO: Ballot = Ballot { round: 0, leader: ReplicaId(0) };

    /// The smallest ballot owned by `leader` that is above `seen`.
    pub fn next_after(seen: Ballot, leader: ReplicaId) -> Ballot {
        // Saturating: a peer may report any round; at u64::MAX we stay put rather
        // than panic (ballots that high are unreachable by honest replicas).
        Ballot { round: seen.round.saturating_add(1), leader }
    }
}

impl fmt::Debug for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}.{}", self.round, self.leader.0)
    }
}
