//! No client command is applied twice: each `(client, seq)` executes at one slot
//! of the agreed log only; retries are answered from the session table.
//!
//! Source: the at-most-once requirement of replicated state machines with client
//! retries (Schneider 1990 §3.2; the original ConCoord's `executed` map, whose
//! failure modes §10.1.8 of our reference lists). Combined with liveness (every
//! request answered), this is exactly-once.

use super::{Check, Violation};
use concoord_wire::{ReplicaId, Slot};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct ExactlyOnce {
    /// (client, seq) -> the slot where it executed.
    executed: BTreeMap<(u64, u64), Slot>,
}

impl ExactlyOnce {
    /// `replica` executed (not deduplicated) request `(client, seq)` at `slot`.
    pub fn on_executed(&mut self, replica: ReplicaId, client: u64, seq: u64, slot: Slot) -> Check {
        match self.executed.get(&(client, seq)) {
            Some(first) if *first != slot => Err(Violation {
                checker: "exactly_once",
                detail: format!(
                    "request (client {client}, seq {seq}) executed at slot {first:?} and again at slot {slot:?} (by {replica:?})"
                ),
            }),
            Some(_) => Ok(()),
            None => {
                self.executed.insert((client, seq), slot);
                Ok(())
            }
        }
    }
}
