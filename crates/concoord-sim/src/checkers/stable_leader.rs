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
//!
//! The premise is a leader that a quorum *follows* when the cut begins
//! ([`established`]): a replica in the leader role may still be in phase 1, with
//! a rival candidate's pre-vote under way or a follower ahead of it that it must
//! catch up from, and losing to either is ordinary Paxos, not a disruption. The
//! soak found three such seeds (a rival's pre-vote granted a moment before the
//! cut, then its higher promise carried back in by the cut follower).

use super::{Check, Violation};
use concoord_paxos::Ballot;
use concoord_wire::{ReplicaId, Slot};

/// What the premise needs to know about one running voter other than the leader.
#[derive(Clone, Copy, Debug)]
pub struct VoterView {
    pub promised: Ballot,
    pub commit_max: Slot,
    /// How long ago the leader last heard from it (`None`: never, as leader).
    pub heard_ago: Option<u64>,
}

/// Whether a leader at `ballot` with commit point `commit_max` is followed by
/// every other running voter: each has promised exactly its ballot (no rival
/// election raised a promise, and phase 1 reached it), none is ahead of it (so
/// it needs no catch-up, which may end its term, see docs/consensus.md §j.6),
/// and it heard from each within `heard_within` (none is about to time out).
pub fn established(
    ballot: Ballot,
    commit_max: Slot,
    voters: &[VoterView],
    heard_within: u64,
) -> bool {
    voters.iter().all(|v| {
        v.promised == ballot
            && v.commit_max <= commit_max
            && v.heard_ago.is_some_and(|ago| ago <= heard_within)
    })
}

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

    fn voter(promised: Ballot, commit: u64, heard_ago: Option<u64>) -> VoterView {
        VoterView { promised, commit_max: Slot(commit), heard_ago }
    }

    #[test]
    fn only_a_leader_every_voter_follows_is_established() {
        let b = Ballot { round: 3, leader: ReplicaId(1) };
        let older = Ballot { round: 2, leader: ReplicaId(3) };
        let rival = Ballot { round: 3, leader: ReplicaId(3) };
        let following = [voter(b, 19, Some(10)), voter(b, 18, Some(40))];
        assert!(established(b, Slot(19), &following, 50));
        // Still in phase 1: a voter has not promised yet (seed 8043 of the objects workload).
        assert!(!established(b, Slot(19), &[voter(b, 19, Some(10)), voter(older, 19, None)], 50));
        // A rival candidate raised a promise (seed 92178 of the registers workload).
        assert!(!established(b, Slot(19), &[voter(rival, 19, Some(10))], 50));
        // A follower is ahead: the leader must catch up from it (seed 87456 of objects).
        assert!(!established(b, Slot(19), &[voter(b, 21, Some(10))], 50));
        // A follower the leader has not heard from lately.
        assert!(!established(b, Slot(19), &[voter(b, 19, Some(60))], 50));
    }

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
