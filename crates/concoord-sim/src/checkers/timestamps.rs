//! Applied timestamps are monotonic across the pipeline window: on every replica,
//! the leader timestamp of slot `s` is at least the timestamp of every slot at or
//! below `s - alpha`, across leader changes included.
//!
//! Why not every slot: a leader may propose slot `s` only once every slot at or
//! below `s - alpha` is chosen and known to it, so it has seen their timestamps and
//! stamps above them. Inside the window, a value accepted under an older ballot
//! (stamped by an older leader) may be adopted at a higher slot than a value a newer
//! leader stamped: those two may be out of order, and the object layer's cluster time
//! is the highest timestamp applied so far for that reason.
//!
//! Source: the monotonic cluster time that leases rely on (Burrows, "The Chubby lock
//! service", OSDI 2006, §2.8 on the master's lease across fail-overs), with the
//! window of Lamport, Malkhi & Zhou, "Vertical Paxos"/"Stoppable Paxos" (alpha).
//! Each replica's apply stream is checked on its own; a crash or a snapshot starts
//! it over.

use super::{Check, Violation};
use concoord_wire::{Slot, Time};
use std::collections::VecDeque;

#[derive(Debug, Default, Clone)]
struct Stream {
    /// Applied slots not yet `alpha` below the latest: (slot, timestamp).
    window: VecDeque<(Slot, Time)>,
    /// The highest timestamp of the slots that left the window, and its slot.
    settled: Option<(Slot, Time)>,
}

/// Each node's apply stream (indexed by node).
#[derive(Debug)]
pub struct AppliedTimestamps {
    alpha: u64,
    nodes: Vec<Stream>,
}

impl AppliedTimestamps {
    pub fn new(alpha: u64) -> AppliedTimestamps {
        AppliedTimestamps { alpha, nodes: Vec::new() }
    }

    /// Node `node` applied `slot`, stamped `timestamp`.
    pub fn on_apply(&mut self, node: usize, slot: Slot, timestamp: Time) -> Check {
        if self.nodes.len() <= node {
            self.nodes.resize(node + 1, Stream::default());
        }
        let stream = &mut self.nodes[node];
        while let Some(&(s, t)) = stream.window.front() {
            if s.0 + self.alpha > slot.0 {
                break;
            }
            stream.window.pop_front();
            if stream.settled.is_none_or(|(_, max)| t > max) {
                stream.settled = Some((s, t));
            }
        }
        if let Some((s, max)) = stream.settled {
            if timestamp < max {
                return Err(Violation {
                    checker: "applied_timestamps",
                    detail: format!(
                        "node {node} applied slot {slot:?} stamped {timestamp:?}, below slot \
                         {s:?} stamped {max:?} at least alpha = {} slots before it: \
                         cluster time went backwards",
                        self.alpha
                    ),
                });
            }
        }
        stream.window.push_back((slot, timestamp));
        Ok(())
    }

    /// The node's process died, or it installed a snapshot: its stream starts over.
    pub fn reset(&mut self, node: usize) {
        if let Some(stream) = self.nodes.get_mut(node) {
            *stream = Stream::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_below_a_slot_alpha_before_is_caught() {
        let mut t = AppliedTimestamps::new(2);
        assert_eq!(t.on_apply(0, Slot(1), Time(5)), Ok(()));
        assert_eq!(t.on_apply(0, Slot(2), Time(9)), Ok(()));
        // Inside the window, an older leader's stamp may come later.
        assert_eq!(t.on_apply(0, Slot(3), Time(6)), Ok(()));
        // Slot 4 is alpha above slot 2: it must not be below 9.
        assert!(t.on_apply(0, Slot(4), Time(8)).is_err());
        t.reset(0);
        assert_eq!(t.on_apply(0, Slot(4), Time(8)), Ok(()));
        assert_eq!(t.on_apply(1, Slot(1), Time(0)), Ok(()));
    }
}
