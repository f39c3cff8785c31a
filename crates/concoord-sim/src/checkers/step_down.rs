//! Check-quorum: a leader cut off from every peer (clients still reach it) stops
//! leading within a bound, and the replicas that still form a quorum elect a
//! leader within a bound.
//!
//! Source: Ongaro, "Consensus: Bridging Theory and Practice" (2014), §6.2: a
//! leader steps down if an election timeout elapses without a successful round
//! of heartbeats to a majority of its cluster, so that its clients retry with
//! another server. It matters more with pre-vote (§9.6): followers that still
//! hear a leader never elect another, so a leader that hears no quorum (a
//! one-way cut) would otherwise keep the whole cluster without a working leader.
//!
//! Judged only from public status (`role`, `ballot`), sampled by the simulator
//! while it holds every other fault and the network is otherwise healthy.

use super::{Check, Violation};
use concoord_paxos::Ballot;
use concoord_wire::ReplicaId;

/// One leader cut off from its peers at `cut_at`.
#[derive(Clone, Debug)]
pub struct CutLeader {
    leader: ReplicaId,
    ballot: Ballot,
    cut_at: u64,
    step_down_bound: u64,
    elect_bound: u64,
    stopped_at: Option<u64>,
    elected_at: Option<u64>,
}

impl CutLeader {
    pub fn new(
        leader: ReplicaId,
        ballot: Ballot,
        cut_at: u64,
        step_down_bound: u64,
        elect_bound: u64,
    ) -> CutLeader {
        CutLeader {
            leader,
            ballot,
            cut_at,
            step_down_bound,
            elect_bound,
            stopped_at: None,
            elected_at: None,
        }
    }

    /// When the verdict is due.
    pub fn due(&self) -> u64 {
        self.cut_at + self.step_down_bound.max(self.elect_bound)
    }

    /// One sample at `now`, while the cut lasts: whether the cut-off leader still
    /// leads at its ballot, and whether another replica of its cluster leads at a
    /// higher ballot.
    pub fn observe(&mut self, now: u64, still_leading: bool, another_leads: bool) {
        if !still_leading && self.stopped_at.is_none() {
            self.stopped_at = Some(now);
        }
        if another_leads && self.elected_at.is_none() {
            self.elected_at = Some(now);
        }
    }

    /// The verdict, once `due`.
    pub fn verdict(&self) -> Check {
        let late = |at: Option<u64>, bound: u64| at.is_none_or(|t| t > self.cut_at + bound);
        if late(self.stopped_at, self.step_down_bound) {
            return Err(Violation {
                checker: "step_down",
                detail: format!(
                    "{:?} (ballot {:?}) still led {}ms after it was cut off from every peer at {}us",
                    self.leader,
                    self.ballot,
                    self.step_down_bound / 1_000,
                    self.cut_at
                ),
            });
        }
        if late(self.elected_at, self.elect_bound) {
            return Err(Violation {
                checker: "step_down",
                detail: format!(
                    "no other replica led within {}ms after {:?} was cut off from every peer at {}us",
                    self.elect_bound / 1_000,
                    self.leader,
                    self.cut_at
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut() -> CutLeader {
        CutLeader::new(ReplicaId(1), Ballot { round: 3, leader: ReplicaId(1) }, 1_000, 500, 2_000)
    }

    #[test]
    fn a_leader_that_steps_down_and_is_replaced_in_time_passes() {
        let mut c = cut();
        c.observe(1_200, false, false);
        c.observe(2_500, false, true);
        assert!(c.verdict().is_ok());
    }

    #[test]
    fn a_leader_that_keeps_leading_fails() {
        let mut c = cut();
        c.observe(1_400, true, true);
        c.observe(2_600, false, true);
        assert_eq!(c.verdict().unwrap_err().checker, "step_down");
    }

    #[test]
    fn a_majority_that_elects_nobody_fails() {
        let mut c = cut();
        c.observe(1_200, false, false);
        assert!(c.verdict().is_err());
    }
}
