//! Pre-vote: a replica that was cut off from the others and comes back does not
//! depose a leader that a quorum follows.
//!
//! Source: Ongaro, "Consensus: Bridging Theory and Practice" (2014), §9.6
//! ("Preventing disruptions when a server rejoins the cluster"): a server that
//! was partitioned away keeps timing out and raising its term; without a
//! pre-vote, it forces the healthy leader to step down when it returns, although
//! the rest of the cluster still hears that leader.
//!
//! Judged only from public status (`role`, `ballot`), sampled by the simulator
//! while it holds every other fault and the network is otherwise healthy: the
//! leader that led when one of its followers was cut off must still lead, at
//! the same ballot, for a while after the follower is back.

use super::{Check, Violation};
use concoord_paxos::Ballot;
use concoord_wire::ReplicaId;

/// A leader one of whose followers is cut off from `cut_at` to `healed_at`.
#[derive(Clone, Debug)]
pub struct CutFollower {
    leader: ReplicaId,
    ballot: Ballot,
    follower: ReplicaId,
    cut_at: u64,
    healed_at: u64,
    bound: u64,
    deposed_at: Option<u64>,
}

impl CutFollower {
    pub fn new(
        leader: ReplicaId,
        ballot: Ballot,
        follower: ReplicaId,
        cut_at: u64,
        healed_at: u64,
        bound: u64,
    ) -> CutFollower {
        CutFollower { leader, ballot, follower, cut_at, healed_at, bound, deposed_at: None }
    }

    /// When the verdict is due: `bound` after the follower is back.
    pub fn due(&self) -> u64 {
        self.healed_at + self.bound
    }

    /// One sample at `now`: whether the leader still leads at its ballot.
    pub fn observe(&mut self, now: u64, still_leading: bool) {
        if !still_leading && self.deposed_at.is_none() {
            self.deposed_at = Some(now);
        }
    }

    pub fn verdict(&self) -> Check {
        match self.deposed_at {
            Some(at) => Err(Violation {
                checker: "stable_leader",
                detail: format!(
                    "{:?} (ballot {:?}) stopped leading at {at}us although a quorum still \
                     followed it, after {:?} was cut off ({}us) and came back ({}us)",
                    self.leader, self.ballot, self.follower, self.cut_at, self.healed_at
                ),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_deposed_after_its_follower_returns_fails() {
        let b = Ballot { round: 2, leader: ReplicaId(1) };
        let mut c = CutFollower::new(ReplicaId(1), b, ReplicaId(2), 0, 1_000, 1_000);
        c.observe(500, true);
        assert!(c.verdict().is_ok());
        c.observe(1_200, false);
        assert_eq!(c.verdict().unwrap_err().checker, "stable_leader");
    }
}
