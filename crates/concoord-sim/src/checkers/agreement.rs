//! Agreement: at most one value is chosen per slot, and a replica applies only a
//! value that is already chosen.
//!
//! Source: Lamport, "Paxos Made Simple" (2001) §2.1 safety requirements ("only a
//! value that has been proposed may be chosen, only a single value is chosen, and a
//! process never learns that a value has been chosen unless it actually has been"),
//! with per-slot memberships as in §3 (the alpha rule).
//!
//! "Chosen" is judged from outside, by the checker's own ground truth: a value is
//! chosen at slot `t` when a majority of the voters of the membership that truly
//! governs `t` (computed from the agreed log with the correct alpha rule) have sent
//! `Accepted` for the ballot that proposed it. Replicas' own beliefs play no part,
//! and neither does the product's membership code: quorums and the slot schedule
//! come from the checkers' own `oracle.rs`.

use super::oracle::Oracle;
use super::{Check, Violation};
use concoord_paxos::{Ballot, Command, Membership, Value};
use concoord_wire::{ReplicaId, Slot};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
pub struct Agreement {
    alpha: u64,
    /// The membership schedule implied by the agreed log, with the correct rule.
    truth: Oracle,
    /// Highest slot folded into `truth`.
    truth_through: Slot,
    /// (slot, ballot) -> digest of the value that ballot proposed there.
    proposals: BTreeMap<(Slot, Ballot), u64>,
    /// (slot, ballot) -> acceptors that acknowledged it.
    acceptances: BTreeMap<(Slot, Ballot), BTreeSet<ReplicaId>>,
}

impl Agreement {
    pub fn new(initial: Membership, alpha: u64) -> Agreement {
        Agreement {
            alpha,
            truth: Oracle::new(&initial, alpha),
            truth_through: Slot::ZERO,
            proposals: BTreeMap::new(),
            acceptances: BTreeMap::new(),
        }
    }

    /// A leader sent `Accept(ballot, slot, value)`. One ballot proposes at most one
    /// value per slot ("Paxos Made Simple" §2.2, P2c's premise).
    pub fn on_accept_sent(&mut self, ballot: Ballot, slot: Slot, digest: u64) -> Check {
        match self.proposals.insert((slot, ballot), digest) {
            Some(old) if old != digest => Err(Violation {
                checker: "agreement",
                detail: format!(
                    "ballot {ballot:?} proposed two values at slot {slot:?} ({old:x} and {digest:x})"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// An acceptor sent `Accepted(ballot, slots)`.
    pub fn on_accepted_sent(&mut self, acceptor: ReplicaId, ballot: Ballot, slots: &[Slot]) {
        for slot in slots {
            self.acceptances.entry((*slot, ballot)).or_default().insert(acceptor);
        }
    }

    /// The agreed log grew by `slot` (fed in slot order by the prefix checker).
    pub fn on_agreed(&mut self, slot: Slot, value: &Value) {
        if slot != self.truth_through.next() {
            return;
        }
        self.truth_through = slot;
        for command in &value.commands {
            if let Command::Reconfigure(change) = command {
                self.truth.chosen(slot, change);
            }
        }
    }

    /// Values chosen at `slot` so far, by ballot.
    fn chosen(&self, slot: Slot) -> Vec<(Ballot, u64)> {
        let Some(membership) = self.truth.at(slot) else { return Vec::new() };
        let mut out = Vec::new();
        let records =
            self.acceptances.range((slot, Ballot::ZERO)..).take_while(|((s, _), _)| *s == slot);
        for ((_, ballot), acceptors) in records {
            if membership.is_quorum(acceptors) {
                if let Some(d) = self.proposals.get(&(slot, *ballot)) {
                    out.push((*ballot, *d));
                }
            }
        }
        out
    }

    /// A replica applied `digest` at `slot` (before the agreed log includes `slot`
    /// if it is the first to apply it).
    pub fn on_apply(&self, replica: ReplicaId, slot: Slot, digest: u64) -> Check {
        if slot.0 > self.truth_through.0 + 1 {
            // Membership of `slot` is not known yet (cannot happen: someone applied
            // every earlier slot first). Nothing to judge.
            return Ok(());
        }
        let chosen = self.chosen(slot);
        let distinct: BTreeSet<u64> = chosen.iter().map(|(_, d)| *d).collect();
        if distinct.len() > 1 {
            return Err(Violation {
                checker: "agreement",
                detail: format!("two values chosen at slot {slot:?}: {chosen:x?}"),
            });
        }
        if !distinct.contains(&digest) {
            return Err(Violation {
                checker: "agreement",
                detail: format!(
                    "{replica:?} applied value {digest:x} at slot {slot:?}, which a quorum of {:?} had not accepted (chosen: {chosen:x?})",
                    self.truth.at(slot).map(|m| &m.voters)
                ),
            });
        }
        Ok(())
    }

    /// Final sweep: every slot with acceptances has at most one chosen value.
    pub fn finish(&self) -> Check {
        let slots: BTreeSet<Slot> = self.acceptances.keys().map(|(s, _)| *s).collect();
        for slot in slots {
            if slot > self.truth_through.plus(self.alpha) {
                continue;
            }
            let distinct: BTreeSet<u64> = self.chosen(slot).iter().map(|(_, d)| *d).collect();
            if distinct.len() > 1 {
                return Err(Violation {
                    checker: "agreement",
                    detail: format!("two values chosen at slot {slot:?}"),
                });
            }
        }
        Ok(())
    }

    /// Drops records for slots far below the agreed log (memory bound for long runs).
    pub fn forget_below(&mut self, slot: Slot) {
        self.proposals = self.proposals.split_off(&(slot, Ballot::ZERO));
        self.acceptances = self.acceptances.split_off(&(slot, Ballot::ZERO));
        self.truth.forget_below(slot);
    }
}
