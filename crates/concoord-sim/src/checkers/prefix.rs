//! Committed prefix never changes: every replica applies, at each slot, the same
//! value as every other replica did, in slot order without gaps (a snapshot may
//! skip ahead, but never back).
//!
//! Source: the state machine approach, Schneider 1990 §3 ("every replica executes
//! the same requests in the same order"); Lamport, "Paxos Made Simple" §3.

use super::{Check, Violation};
use concoord_paxos::Value;
use concoord_wire::{ReplicaId, Slot};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Prefix {
    /// The agreed log: the digest each slot was first applied with.
    agreed: BTreeMap<Slot, u64>,
    agreed_through: Slot,
    /// Last slot each replica applied (or installed by snapshot).
    applied: BTreeMap<ReplicaId, Slot>,
    /// Slots below this were forgotten to bound memory.
    forgotten_below: Slot,
}

impl Prefix {
    /// `replica` applied `value` at `slot`. Returns whether this extended the agreed log.
    pub fn on_apply(
        &mut self,
        replica: ReplicaId,
        slot: Slot,
        value: &Value,
    ) -> Result<bool, Violation> {
        let digest = value.digest();
        let last = self.applied.get(&replica).copied().unwrap_or(Slot::ZERO);
        if slot != last.next() {
            return Err(Violation {
                checker: "prefix",
                detail: format!("{replica:?} applied slot {slot:?} right after slot {last:?}"),
            });
        }
        self.applied.insert(replica, slot);
        if slot < self.forgotten_below {
            return Ok(false);
        }
        match self.agreed.get(&slot) {
            Some(d) if *d != digest => Err(Violation {
                checker: "prefix",
                detail: format!(
                    "{replica:?} applied {digest:x} at slot {slot:?}, but {d:x} was applied there before"
                ),
            }),
            Some(_) => Ok(false),
            None => {
                if slot != self.agreed_through.next() {
                    return Err(Violation {
                        checker: "prefix",
                        detail: format!("slot {slot:?} applied before slot {:?}", self.agreed_through.next()),
                    });
                }
                self.agreed.insert(slot, digest);
                self.agreed_through = slot;
                Ok(true)
            }
        }
    }

    /// `replica` replaced its state with a snapshot through `slot`.
    pub fn on_snapshot(&mut self, replica: ReplicaId, slot: Slot) -> Check {
        let last = self.applied.get(&replica).copied().unwrap_or(Slot::ZERO);
        if slot < last {
            return Err(Violation {
                checker: "prefix",
                detail: format!(
                    "{replica:?} installed a snapshot at {slot:?} after applying {last:?}"
                ),
            });
        }
        if slot > self.agreed_through {
            return Err(Violation {
                checker: "prefix",
                detail: format!(
                    "{replica:?} installed a snapshot at {slot:?} beyond any applied slot"
                ),
            });
        }
        self.applied.insert(replica, slot);
        Ok(())
    }

    /// A replica lost its memory (crash): its next apply starts over.
    pub fn on_restart(&mut self, replica: ReplicaId) {
        self.applied.remove(&replica);
    }

    pub fn agreed_through(&self) -> Slot {
        self.agreed_through
    }

    pub fn forget_below(&mut self, slot: Slot) {
        self.agreed = self.agreed.split_off(&slot);
        self.forgotten_below = self.forgotten_below.max(slot);
    }
}
