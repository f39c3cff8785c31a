//! Replicas that applied slot `s` have equal state.
//!
//! Source: Schneider, "Implementing fault-tolerant services using the state machine
//! approach" (1990) §3: deterministic replicas fed the same requests in the same
//! order stay identical. A mismatch means a nondeterministic apply, a bad snapshot,
//! or a divergent log.

use super::{Check, Violation};
use concoord_wire::{ReplicaId, Slot};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct StateEquality {
    /// slot -> state hash after applying it (first replica to report it).
    hashes: BTreeMap<Slot, (ReplicaId, u64)>,
}

impl StateEquality {
    /// `replica`'s state after applying (or installing a snapshot through) `slot`.
    pub fn on_state(&mut self, replica: ReplicaId, slot: Slot, hash: u64) -> Check {
        match self.hashes.get(&slot) {
            Some((first, h)) if *h != hash => Err(Violation {
                checker: "state",
                detail: format!(
                    "after slot {slot:?}, {replica:?} has state {hash:x} but {first:?} had {h:x}"
                ),
            }),
            Some(_) => Ok(()),
            None => {
                self.hashes.insert(slot, (replica, hash));
                Ok(())
            }
        }
    }

    pub fn forget_below(&mut self, slot: Slot) {
        self.hashes = self.hashes.split_off(&slot);
    }
}
