//! The checkers' own model of memberships: who votes at which slot, and what a
//! quorum is. Written from `docs/consensus.md` §h, independently of the product's
//! `Membership::is_quorum`, `Schedule` and `effective_slot`, so a bug there (a
//! quorum that counts learners or retired identities, a change that takes effect at
//! the wrong slot) cannot hide by corrupting the checker's ground truth too.
//!
//! The rules, restated:
//! - a quorum of a configuration is a strict majority of its *voters*; learners,
//!   retired identities and strangers count for nothing, and one acceptor counts
//!   once;
//! - a change chosen at slot `s` governs slots `s + alpha` and later;
//! - `AddLearner` of a current member or a retired identity, `Promote` of anything
//!   but a learner, `Remove` of a non-member or of the last voter, and `Replace` of
//!   a non-voter or by a non-learner are no-ops; a removed identity is retired for
//!   good.

use concoord_paxos::{ConfigChange, Membership, Role};
use concoord_wire::{ReplicaId, Slot};
use std::collections::{BTreeMap, BTreeSet};

/// One configuration, as the oracle sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub voters: BTreeSet<ReplicaId>,
    pub learners: BTreeSet<ReplicaId>,
    pub retired: BTreeSet<ReplicaId>,
}

impl Config {
    /// Reads the founding membership's roles (plain data, no product logic).
    pub fn from_membership(m: &Membership) -> Config {
        let mut c = Config::default();
        for (id, (_, role)) in &m.members {
            match role {
                Role::Voter => c.voters.insert(*id),
                Role::Learner => c.learners.insert(*id),
            };
        }
        c.retired = m.retired.clone();
        c
    }

    /// Whether `acks` holds a strict majority of the voters.
    pub fn is_quorum(&self, acks: &BTreeSet<ReplicaId>) -> bool {
        let votes = self.voters.intersection(acks).count();
        !self.voters.is_empty() && 2 * votes > self.voters.len()
    }

    pub fn is_member(&self, id: ReplicaId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// The configuration after `change`, or `None` if the change is a no-op.
    pub fn after(&self, change: &ConfigChange) -> Option<Config> {
        let mut next = self.clone();
        match change {
            ConfigChange::AddLearner(m) => {
                if self.is_member(m.id) || self.retired.contains(&m.id) {
                    return None;
                }
                next.learners.insert(m.id);
            }
            ConfigChange::Promote(id) => {
                if !next.learners.remove(id) {
                    return None;
                }
                next.voters.insert(*id);
            }
            ConfigChange::Remove(id) => {
                if self.voters.contains(id) {
                    if self.voters.len() <= 1 {
                        return None;
                    }
                    next.voters.remove(id);
                } else if !next.learners.remove(id) {
                    return None;
                }
                next.retired.insert(*id);
            }
            ConfigChange::Replace { remove, promote } => {
                if !self.voters.contains(remove) || !self.learners.contains(promote) {
                    return None;
                }
                next.voters.remove(remove);
                next.retired.insert(*remove);
                next.learners.remove(promote);
                next.voters.insert(*promote);
            }
        }
        Some(next)
    }
}

/// Which configuration governs which slot, from the agreed log.
#[derive(Clone, Debug)]
pub struct Oracle {
    alpha: u64,
    /// `by_start[k]` governs slots from `k` until the next key.
    by_start: BTreeMap<u64, Config>,
}

impl Oracle {
    pub fn new(founders: &Membership, alpha: u64) -> Oracle {
        let mut by_start = BTreeMap::new();
        by_start.insert(1, Config::from_membership(founders));
        Oracle { alpha, by_start }
    }

    /// A change was chosen at `slot` (fed in slot order).
    pub fn chosen(&mut self, slot: Slot, change: &ConfigChange) {
        let from = slot.0 + self.alpha;
        let newest = self.by_start.values().next_back().cloned().unwrap_or_default();
        if let Some(next) = newest.after(change) {
            self.by_start.insert(from, next);
        }
    }

    /// The configuration governing `slot`.
    pub fn at(&self, slot: Slot) -> Option<&Config> {
        self.by_start.range(..=slot.0).next_back().map(|(_, c)| c)
    }

    /// Forgets configurations that govern no slot at or after `slot`.
    pub fn forget_below(&mut self, slot: Slot) {
        if let Some((&k, _)) = self.by_start.range(..=slot.0).next_back() {
            self.by_start = self.by_start.split_off(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_paxos::Member;

    fn m(id: u64) -> Member {
        Member::new(ReplicaId(id), format!("a{id}"))
    }

    #[test]
    fn quorums_count_distinct_voters_only() {
        let founders = Membership::voters([m(1), m(2), m(3)]);
        let mut o = Oracle::new(&founders, 3);
        o.chosen(Slot(5), &ConfigChange::AddLearner(m(4)));
        o.chosen(Slot(6), &ConfigChange::Remove(ReplicaId(3)));
        assert_eq!(o.at(Slot(7)).unwrap().voters.len(), 3, "not yet at 5 + 3 - 1");
        let c = o.at(Slot(9)).unwrap();
        assert_eq!(c.voters, [ReplicaId(1), ReplicaId(2)].into_iter().collect());
        let acks = |ids: &[u64]| ids.iter().map(|i| ReplicaId(*i)).collect::<BTreeSet<_>>();
        assert!(!c.is_quorum(&acks(&[1, 3, 4])), "a retired identity and a learner");
        assert!(c.is_quorum(&acks(&[1, 2])));
        assert!(o.at(Slot(9)).unwrap().after(&ConfigChange::AddLearner(m(3))).is_none());
    }
}
