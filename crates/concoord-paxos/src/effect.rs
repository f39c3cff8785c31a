//! Effects: what the core asks its shell to do, in the order it must be done.
//!
//! **The barrier rule.** A `Persist` effect must be durable (written and
//! fdatasync'ed) before any effect after it is carried out. Consecutive `Persist`
//! effects may share one sync (group commit). Effects before a `Persist` need not
//! wait for it.

use crate::ballot::Ballot;
use crate::membership::Membership;
use crate::message::{AcceptedEntry, Message, Snapshot};
use crate::value::Value;
use concoord_wire::{ClusterId, ReplicaId, Slot};

/// Identifies one linearizable read, chosen by the shell.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ReadId(pub u64);

/// One durable write.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PersistOp {
    /// The acceptor promised `ballot`.
    Promise(Ballot),
    /// The acceptor accepted these entries (each replaces any earlier entry at its slot).
    Accept(Vec<AcceptedEntry>),
    /// Every slot up to here is chosen (and its entry is on disk).
    Commit(Slot),
    /// A snapshot replaces the log up to its slot; entries at or below it may go.
    Snapshot(Snapshot),
    /// The founding membership, learned by a joiner that replays the log from slot 1.
    Genesis(Membership),
    /// The cluster this replica belongs to (written once: at founding, or when a
    /// joiner first hears from a member).
    Cluster(ClusterId),
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Effect {
    /// Make this durable before carrying out any later effect.
    Persist(PersistOp),
    /// Send a message. `to` may be this replica itself: deliver it locally.
    Send { to: ReplicaId, msg: Message },
    /// A new replica sends this to any bootstrap peer it knows by address. (Replies
    /// to a `JoinRequest`, such as `JoinRefused`, go to the joiner's id: the shell
    /// learns its address from the request's `Member::addr`.)
    SendToBootstrap(Message),
    /// Slot `slot` is chosen: apply its value to the state machine, in slot order.
    Apply { slot: Slot, value: Value },
    /// Replace the state machine with this snapshot; `Apply` continues after it.
    InstallSnapshot(Snapshot),
    /// A linearizable read may now be served from the state machine, which has
    /// applied everything it must reflect.
    ReadReady { id: ReadId },
    /// Commands accepted by `Propose` that will never get a slot here (this replica
    /// stopped leading before proposing them). Commands already proposed are not
    /// listed: they may still be chosen.
    Dropped { commands: Vec<crate::value::Command>, leader_hint: Option<ReplicaId> },
    /// A pending read cannot be served by this replica (it stopped leading).
    ReadAborted { id: ReadId, leader_hint: Option<ReplicaId> },
    /// This replica is no longer a member (a committed change removed it, or a join
    /// was refused because its identity was retired). The shell should keep it
    /// running for a while (it still answers as an acceptor and catch-up source, which
    /// its successors may need for the slots before its removal took effect), then
    /// stop it or rejoin under a fresh identity.
    Removed,
    /// A message from `from`, a process of another cluster, was ignored. The shell
    /// should say so (once per peer): an operator started a replica on an old
    /// member's address, or gave a replica the wrong boot addresses.
    Foreign { from: ReplicaId, cluster: ClusterId },
}

/// Everything a durable replica finds on its disk at restart.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DurableState {
    pub promised: Ballot,
    /// Accepted entries, one per slot (the last written wins).
    pub entries: Vec<AcceptedEntry>,
    pub commit_max: Slot,
    pub snapshot: Option<Snapshot>,
    pub genesis: Option<Membership>,
    pub cluster: Option<ClusterId>,
}

impl DurableState {
    /// Folds one persisted operation into the state, as a disk replay would.
    pub fn apply(&mut self, op: &PersistOp) {
        match op {
            PersistOp::Promise(b) => self.promised = self.promised.max(*b),
            PersistOp::Accept(entries) => {
                for e in entries {
                    self.promised = self.promised.max(e.ballot);
                    match self.entries.iter_mut().find(|x| x.slot == e.slot) {
                        Some(x) => *x = e.clone(),
                        None => self.entries.push(e.clone()),
                    }
                }
            }
            PersistOp::Commit(slot) => self.commit_max = self.commit_max.max(*slot),
            PersistOp::Genesis(m) => self.genesis = Some(m.clone()),
            PersistOp::Cluster(c) => self.cluster = Some(*c),
            PersistOp::Snapshot(snapshot) => {
                if self.snapshot.as_ref().is_none_or(|s| s.slot < snapshot.slot) {
                    self.entries.retain(|e| e.slot > snapshot.slot);
                    self.commit_max = self.commit_max.max(snapshot.slot);
                    self.snapshot = Some(snapshot.clone());
                }
            }
        }
    }
}
