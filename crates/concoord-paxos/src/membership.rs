//! Membership (who votes, who learns) and the schedule that says which membership
//! governs each slot.
//!
//! Rule (Lamport, "Paxos Made Simple" §3; van Renesse & Altinbuken, "Paxos Made
//! Moderately Complex" §3): a change chosen at slot `s` governs slots `>= s + alpha`.
//! So the membership of slot `t` is a function of the chosen prefix up to `t - alpha`,
//! and every replica computes the same one. A leader may only propose slot `t` once
//! slots `<= t - alpha` are chosen, which is exactly the pipeline window.
//!
//! This module is pure bookkeeping; it never decides anything on its own.

use crate::value::{ConfigChange, Member};
use concoord_wire::{ReplicaId, Slot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Role of one member.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Role {
    Voter,
    Learner,
}

/// One configuration: members with their roles.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub struct Membership {
    pub members: BTreeMap<ReplicaId, (Member, Role)>,
    /// Identities removed so far. They can never be added again: a removed replica
    /// may already have stopped, or rejoined under a fresh identity, and a stale
    /// join request must not bring back a member nobody runs.
    pub retired: BTreeSet<ReplicaId>,
}

impl Membership {
    /// A configuration in which every given member votes.
    pub fn voters(members: impl IntoIterator<Item = Member>) -> Membership {
        Membership {
            members: members.into_iter().map(|m| (m.id, (m, Role::Voter))).collect(),
            retired: BTreeSet::new(),
        }
    }

    pub fn voter_ids(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.members.iter().filter(|(_, (_, r))| *r == Role::Voter).map(|(id, _)| *id)
    }

    pub fn member_ids(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.members.keys().copied()
    }

    pub fn voter_count(&self) -> usize {
        self.voter_ids().count()
    }

    pub fn is_voter(&self, id: ReplicaId) -> bool {
        matches!(self.members.get(&id), Some((_, Role::Voter)))
    }

    pub fn is_member(&self, id: ReplicaId) -> bool {
        self.members.contains_key(&id)
    }

    /// True when `ids` contains a strict majority of this configuration's voters.
    /// Counts distinct voters, never messages (the original's bug §10.1.2).
    pub fn is_quorum<'a>(&self, ids: impl IntoIterator<Item = &'a ReplicaId>) -> bool {
        let voters = self.voter_count();
        if voters == 0 {
            return false;
        }
        let mut count = 0;
        let mut last: Option<ReplicaId> = None;
        let mut sorted: Vec<ReplicaId> = ids.into_iter().copied().collect();
        sorted.sort_unstable();
        for id in sorted {
            if last == Some(id) {
                continue;
            }
            last = Some(id);
            if self.is_voter(id) {
                count += 1;
            }
        }
        count * 2 > voters
    }

    /// The configuration after `change`, or `None` when the change is not valid here
    /// (then it is a deterministic no-op on every replica).
    pub fn apply(&self, change: &ConfigChange) -> Option<Membership> {
        let mut next = self.clone();
        match change {
            ConfigChange::AddLearner(member) => {
                if self.is_member(member.id) || self.retired.contains(&member.id) {
                    return None;
                }
                next.members.insert(member.id, (member.clone(), Role::Learner));
            }
            ConfigChange::Promote(id) => {
                let (_, role) = next.members.get_mut(id)?;
                if *role != Role::Learner {
                    return None;
                }
                *role = Role::Voter;
            }
            ConfigChange::Remove(id) => {
                let (_, role) = self.members.get(id)?;
                if *role == Role::Voter && self.voter_count() <= 1 {
                    return None;
                }
                next.members.remove(id);
                next.retired.insert(*id);
            }
            ConfigChange::Replace { remove, promote } => {
                if !self.is_voter(*remove) || self.members.get(promote)?.1 != Role::Learner {
                    return None;
                }
                next.members.remove(remove);
                next.retired.insert(*remove);
                next.members.get_mut(promote)?.1 = Role::Voter;
            }
        }
        Some(next)
    }
}

/// Which membership governs which slots: `entries[k]` governs slots `>= k` until the
/// next key. Always has an entry at or below every slot the replica still cares about.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub struct Schedule {
    entries: BTreeMap<Slot, Membership>,
}

impl Schedule {
    /// A schedule in which `membership` governs every slot from 1 on.
    pub fn starting_with(membership: Membership) -> Schedule {
        let mut entries = BTreeMap::new();
        entries.insert(Slot(1), membership);
        Schedule { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The membership governing slot `slot`, if the schedule reaches back that far.
    pub fn at(&self, slot: Slot) -> Option<&Membership> {
        self.entries.range(..=slot).next_back().map(|(_, m)| m)
    }

    /// The membership governing `slot` and the slot from which it governs: the same
    /// pair on every replica that holds it (the name server's SOA serial).
    pub fn entry_at(&self, slot: Slot) -> Option<(Slot, &Membership)> {
        self.entries.range(..=slot).next_back().map(|(s, m)| (*s, m))
    }

    /// The newest scheduled membership (which may govern only future slots).
    pub fn latest(&self) -> Option<&Membership> {
        self.entries.values().next_back()
    }

    /// Every distinct membership governing some slot in `from..=to`.
    pub fn governing(&self, from: Slot, to: Slot) -> Vec<&Membership> {
        let mut out: Vec<&Membership> = Vec::new();
        if let Some(first) = self.at(from) {
            out.push(first);
        }
        if to > from {
            for (_, m) in self.entries.range(from.next()..=to) {
                out.push(m);
            }
        }
        out
    }

    /// The first slot, among those the schedule still holds, from which a
    /// membership containing `id` governs.
    pub fn first_with(&self, id: ReplicaId) -> Option<Slot> {
        self.entries.iter().find(|(_, m)| m.is_member(id)).map(|(slot, _)| *slot)
    }

    /// True when a change is scheduled to take effect after `slot`.
    pub fn has_change_after(&self, slot: Slot) -> bool {
        self.entries.range(slot.next()..).next().is_some()
    }

    /// Records that `change`, chosen at `chosen_at`, governs slots from `effective`
    /// on. Invalid changes are ignored; returns whether the schedule changed.
    pub fn schedule(&mut self, change: &ConfigChange, effective: Slot) -> bool {
        let Some(base) = self.entries.range(..=effective).next_back().map(|(_, m)| m) else {
            return false;
        };
        // Changes arrive in slot order and `effective` only grows, so `base` is the
        // newest membership: every earlier change is already folded in.
        match base.apply(change) {
            Some(next) => {
                self.entries.insert(effective, next);
                true
            }
            None => false,
        }
    }

    /// Forgets memberships that govern no slot at or after `slot`.
    pub fn truncate_before(&mut self, slot: Slot) {
        let keep_from = match self.entries.range(..=slot).next_back() {
            Some((k, _)) => *k,
            None => return,
        };
        self.entries = self.entries.split_off(&keep_from);
    }

    /// Forgets memberships that take effect after `slot` (changes chosen later).
    pub fn retain_up_to(&mut self, slot: Slot) {
        let _ = self.entries.split_off(&slot.next());
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The slot at which a change chosen at `chosen_at` takes effect.
pub fn effective_slot(chosen_at: Slot, alpha: u64) -> Slot {
    chosen_at.plus(alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64) -> Member {
        Member::new(ReplicaId(id), format!("n{id}"))
    }

    #[test]
    fn quorum_counts_distinct_voters_only() {
        let m = Membership::voters([member(1), member(2), member(3)]);
        assert!(!m.is_quorum(&[ReplicaId(1), ReplicaId(1)]));
        assert!(m.is_quorum(&[ReplicaId(1), ReplicaId(3)]));
        assert!(!m.is_quorum(&[ReplicaId(1), ReplicaId(9)]));
    }

    #[test]
    fn changes_take_effect_at_their_slot_and_invalid_ones_are_ignored() {
        let mut s = Schedule::starting_with(Membership::voters([member(1), member(2)]));
        assert!(s.schedule(&ConfigChange::AddLearner(member(3)), Slot(15)));
        assert!(!s.schedule(&ConfigChange::Promote(ReplicaId(7)), Slot(16)));
        assert!(s.schedule(
            &ConfigChange::Replace { remove: ReplicaId(1), promote: ReplicaId(3) },
            Slot(20)
        ));
        assert!(s.at(Slot(14)).unwrap().is_voter(ReplicaId(1)));
        assert!(!s.at(Slot(15)).unwrap().is_voter(ReplicaId(3)));
        assert!(s.at(Slot(20)).unwrap().is_voter(ReplicaId(3)));
        assert!(!s.at(Slot(25)).unwrap().is_member(ReplicaId(1)));
        assert_eq!(s.governing(Slot(10), Slot(20)).len(), 3);
        s.truncate_before(Slot(17));
        assert_eq!(s.len(), 2);
        assert!(s.at(Slot(17)).unwrap().is_member(ReplicaId(3)));
    }

    #[test]
    fn a_removed_identity_cannot_be_added_again() {
        let m = Membership::voters([member(1), member(2), member(3)]);
        let m = m.apply(&ConfigChange::Remove(ReplicaId(3))).unwrap();
        assert!(m.apply(&ConfigChange::AddLearner(member(3))).is_none());
        assert!(m.apply(&ConfigChange::AddLearner(member(4))).is_some());
    }

    #[test]
    fn the_last_voter_cannot_be_removed() {
        let m = Membership::voters([member(1)]);
        assert!(m.apply(&ConfigChange::Remove(ReplicaId(1))).is_none());
    }
}
