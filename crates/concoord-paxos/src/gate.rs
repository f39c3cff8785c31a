//! The shell's half of the barrier rule: which effects may be carried out now, and
//! which wait until a write is durable. The server and the simulator both run their
//! effects through an [`EffectGate`], so the rule they follow is one piece of code.
//!
//! Writes (`Effect::Persist`) are handed to the disk at once, in effect order, each
//! with a sequence number; the disk makes them durable in that order (a sync covers
//! every write before it) and the shell reports the highest durable number with
//! [`EffectGate::durable`]. Every other effect waits, in order, until every write
//! before it that needs a sync is durable, with two relaxations (`docs/consensus.md`
//! §c gives the argument for each):
//!
//! - **A `Commit` record sets no barrier and asks for no sync of its own.** It becomes
//!   durable with the next sync; a crash before that recovers a lower commit point,
//!   which the replica re-learns from the leader. Writes keep their order, so a
//!   `Commit` on disk always has every entry written before it.
//! - **A leader's `Accept` leaves at once** when the leader's promise of that ballot
//!   is durable: it promises nothing else about the leader's disk. The leader's own
//!   acceptance counts only through the `Accepted` it sends itself, which waits for
//!   its write like any acceptor's.
//! - **What the state machine does runs at once**: `Apply`, `InstallSnapshot`,
//!   `ReadReady`, `ReadAborted` and `Dropped` depend on no write of this replica. A
//!   slot is applied because a quorum's durable acceptances chose it (this replica's
//!   own counts only once durable), a read is served because a heartbeat round
//!   confirmed the leadership, and a dropped command was never proposed. So a lock's
//!   wake-up reply leaves as soon as its release is chosen, not behind the syncs of
//!   later slots. Their order among themselves is the core's.
//!
//! With no writes (an in-memory replica) every effect runs at once.

use crate::ballot::Ballot;
use crate::effect::{Effect, PersistOp};
use crate::message::Message;
use crate::options::Bug;
use std::collections::{BTreeSet, VecDeque};

/// What the shell does with one effect handed to [`EffectGate::admit`].
#[derive(Debug)]
pub enum Gated {
    /// Hand this write to the disk now, as number `seq`. `sync`: the disk must make
    /// it durable soon (a sync); `false` for a `Commit` record, which may wait for
    /// the next sync that another write asks for.
    Write { seq: u64, op: PersistOp, sync: bool },
    /// Carry this effect out now.
    Run(Effect),
    /// The gate keeps it until a write before it is durable ([`EffectGate::durable`]
    /// releases it).
    Held,
}

/// See the module documentation.
#[derive(Debug)]
pub struct EffectGate {
    /// Sequence number of the last write handed out (the first is 1).
    written: u64,
    /// Every write up to this one is durable.
    durable: u64,
    /// The last write that needs a sync: effects admitted after it wait for it.
    barrier: u64,
    held: VecDeque<(u64, Effect)>,
    /// Promises written but not yet durable, by write number.
    promises: VecDeque<(u64, Ballot)>,
    /// The highest promise durable on disk.
    durable_promise: Ballot,
    /// `Bug::SendBeforeDurable`: every message leaves at once.
    send_before_durable: bool,
}

impl EffectGate {
    /// A gate for a process whose disk holds `durable_promise` (what recovery found,
    /// or `Ballot::ZERO` for a fresh one).
    pub fn new(durable_promise: Ballot, bugs: &BTreeSet<Bug>) -> EffectGate {
        EffectGate {
            written: 0,
            durable: 0,
            barrier: 0,
            held: VecDeque::new(),
            promises: VecDeque::new(),
            durable_promise,
            send_before_durable: bugs.contains(&Bug::SendBeforeDurable),
        }
    }

    /// Takes the next effect, in the order the core produced it.
    pub fn admit(&mut self, effect: Effect) -> Gated {
        let effect = match effect {
            Effect::Persist(op) => {
                self.written += 1;
                let seq = self.written;
                let sync = !matches!(op, PersistOp::Commit(_));
                if sync {
                    self.barrier = seq;
                }
                let raised = match &op {
                    PersistOp::Promise(b) => Some(*b),
                    PersistOp::Accept(entries) => entries.iter().map(|e| e.ballot).max(),
                    _ => None,
                };
                if let Some(b) = raised.filter(|b| *b > self.durable_promise) {
                    self.promises.push_back((seq, b));
                }
                return Gated::Write { seq, op, sync };
            }
            Effect::Send { to, msg: Message::Accept { ballot, entries, commit_max } }
                if ballot <= self.durable_promise =>
            {
                return Gated::Run(Effect::Send {
                    to,
                    msg: Message::Accept { ballot, entries, commit_max },
                });
            }
            effect @ Effect::Send { .. } if self.send_before_durable => return Gated::Run(effect),
            effect @ (Effect::Apply { .. }
            | Effect::InstallSnapshot(_)
            | Effect::ReadReady { .. }
            | Effect::ReadAborted { .. }
            | Effect::Dropped { .. }) => return Gated::Run(effect),
            effect => effect,
        };
        if self.held.is_empty() && self.barrier <= self.durable {
            Gated::Run(effect)
        } else {
            self.held.push_back((self.barrier, effect));
            Gated::Held
        }
    }

    /// Every write up to `seq` is durable. Returns the effects this releases, in order.
    pub fn durable(&mut self, seq: u64) -> Vec<Effect> {
        self.durable = self.durable.max(seq.min(self.written));
        while let Some((s, b)) = self.promises.front().copied() {
            if s > self.durable {
                break;
            }
            self.durable_promise = self.durable_promise.max(b);
            self.promises.pop_front();
        }
        let mut released = Vec::new();
        while self.held.front().is_some_and(|(need, _)| *need <= self.durable) {
            if let Some((_, effect)) = self.held.pop_front() {
                released.push(effect);
            }
        }
        released
    }

    /// The last write handed out.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether some write that needs a sync is not durable yet.
    pub fn wants_sync(&self) -> bool {
        self.barrier > self.durable
    }

    /// Effects waiting for a write.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The replica behind the gate was replaced (a rejoin under a fresh identity on a
    /// wiped disk): drop what it held and forget its promise. Write numbers go on.
    pub fn reset(&mut self) {
        self.held.clear();
        self.promises.clear();
        self.durable_promise = Ballot::ZERO;
        self.durable = self.written;
        self.barrier = self.written;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::AcceptedEntry;
    use crate::value::Value;
    use concoord_wire::{ReplicaId, Slot};

    fn ballot(round: u64) -> Ballot {
        Ballot { round, leader: ReplicaId(1) }
    }

    fn accept(b: Ballot) -> Effect {
        Effect::Send {
            to: ReplicaId(2),
            msg: Message::Accept { ballot: b, entries: Vec::new(), commit_max: Slot::ZERO },
        }
    }

    fn accepted(b: Ballot) -> Effect {
        Effect::Send {
            to: ReplicaId(1),
            msg: Message::Accepted { ballot: b, slots: vec![Slot(1)], commit_max: Slot::ZERO },
        }
    }

    fn entry(b: Ballot) -> PersistOp {
        PersistOp::Accept(vec![AcceptedEntry {
            slot: Slot(1),
            ballot: b,
            value: Value::noop(concoord_wire::Time(0)),
        }])
    }

    fn is_run(g: &Gated) -> bool {
        matches!(g, Gated::Run(_))
    }

    #[test]
    fn effects_after_a_write_wait_for_it_and_leave_in_order() {
        let mut gate = EffectGate::new(ballot(1), &BTreeSet::new());
        assert!(matches!(
            gate.admit(Effect::Persist(entry(ballot(1)))),
            Gated::Write { seq: 1, sync: true, .. }
        ));
        assert!(matches!(gate.admit(accepted(ballot(1))), Gated::Held));
        assert!(matches!(gate.admit(Effect::Removed), Gated::Held));
        // The state machine's effects wait for no write.
        assert!(is_run(&gate.admit(Effect::ReadReady { id: crate::effect::ReadId(1) })));
        assert!(gate.wants_sync());
        let released = gate.durable(1);
        assert_eq!(released.len(), 2);
        assert!(matches!(released[1], Effect::Removed));
        assert!(!gate.wants_sync());
        assert!(is_run(&gate.admit(Effect::Removed)));
    }

    #[test]
    fn a_commit_record_sets_no_barrier() {
        let mut gate = EffectGate::new(ballot(1), &BTreeSet::new());
        assert!(matches!(
            gate.admit(Effect::Persist(PersistOp::Commit(Slot(3)))),
            Gated::Write { seq: 1, sync: false, .. }
        ));
        assert!(!gate.wants_sync());
        assert!(is_run(&gate.admit(accepted(ballot(1)))));
    }

    #[test]
    fn a_leaders_accept_overtakes_pending_writes_once_its_ballot_is_durable() {
        let mut gate = EffectGate::new(Ballot::ZERO, &BTreeSet::new());
        let _ = gate.admit(Effect::Persist(PersistOp::Promise(ballot(2))));
        // The promise of ballot 2 is not durable yet: its Accept waits.
        assert!(matches!(gate.admit(accept(ballot(2))), Gated::Held));
        assert_eq!(gate.durable(1).len(), 1);
        let _ = gate.admit(Effect::Persist(entry(ballot(2))));
        assert!(matches!(gate.admit(accepted(ballot(2))), Gated::Held));
        // Ahead of the held Accepted and the pending write.
        assert!(is_run(&gate.admit(accept(ballot(2)))));
        assert!(matches!(gate.admit(accept(ballot(3))), Gated::Held));
    }

    #[test]
    fn the_injected_bug_lets_every_message_run_ahead() {
        let bugs = BTreeSet::from([Bug::SendBeforeDurable]);
        let mut gate = EffectGate::new(ballot(1), &bugs);
        let _ = gate.admit(Effect::Persist(entry(ballot(1))));
        assert!(is_run(&gate.admit(accepted(ballot(1)))));
    }
}
