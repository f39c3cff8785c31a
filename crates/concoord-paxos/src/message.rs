//! Messages between replicas. Every field is a plain value; the shell encodes them
//! with a compact serde codec and size-limits frames.
//!
//! See `docs/consensus.md` for the table of who sends what, and when.

use crate::ballot::Ballot;
use crate::membership::{Membership, Schedule};
use crate::value::{Command, Member, Value};
use concoord_wire::{ReplicaId, Slot, Time};
use serde::{Deserialize, Serialize};

/// An acceptor's record of one slot: the highest ballot it accepted there and the
/// value of that ballot.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AcceptedEntry {
    pub slot: Slot,
    pub ballot: Ballot,
    pub value: Value,
}

/// A state-machine snapshot that replaces the log up to and including `slot`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last slot whose effects the snapshot includes.
    pub slot: Slot,
    /// The state machine's own bytes; opaque to the core.
    pub data: Vec<u8>,
    /// Memberships governing slots after `slot`, including changes chosen at or
    /// before `slot` that take effect later.
    pub schedule: Schedule,
    /// The leader timestamp of slot `slot` itself.
    pub timestamp: Time,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a: "promise me `ballot` for every slot from `from_slot` on".
    Prepare { ballot: Ballot, from_slot: Slot },
    /// Phase 1b: the promise, with the acceptor's accepted entries above both
    /// `from_slot - 1` and its own `commit_max` (slots it knows are chosen it does not
    /// report: the leader catches up on those instead).
    Promise { ballot: Ballot, commit_max: Slot, accepted: Vec<AcceptedEntry> },
    /// Phase 2a for a run of slots, with the leader's commit point.
    Accept { ballot: Ballot, entries: Vec<(Slot, Value)>, commit_max: Slot },
    /// Phase 2b: the acceptor durably accepted these slots at `ballot`.
    Accepted { ballot: Ballot, slots: Vec<Slot>, commit_max: Slot },
    /// The sender has promised a ballot higher than the one in `rejected`.
    Nack { promised: Ballot, rejected: Ballot },
    /// Leader liveness, commit notification and read-barrier round.
    Heartbeat { ballot: Ballot, commit_max: Slot, round: u64 },
    /// The sender has promised nothing above `ballot` as of this `round`.
    HeartbeatAck { ballot: Ballot, round: u64, commit_max: Slot },
    /// "Send me chosen entries from `from_slot` on."
    CatchupRequest { from_slot: Slot },
    /// Chosen entries (contiguous from the requested slot), and the sender's commit
    /// point. From slot 1 it also carries the founding membership, which a joiner
    /// needs to interpret the log.
    Catchup { entries: Vec<AcceptedEntry>, commit_max: Slot, genesis: Option<Membership> },
    /// A snapshot, for a replica that needs entries already truncated.
    InstallSnapshot { snapshot: Snapshot },
    /// A new replica asks to be added as a learner.
    JoinRequest { member: Member },
    /// The leader's answer to a join request from an identity that was removed
    /// before: it can never be a member again and must rejoin under a fresh one.
    JoinRefused,
    /// Client commands a follower received, for its leader to order.
    Forward { commands: Vec<Command> },
    /// Commands forwarded to a replica that cannot queue them (it does not lead, or
    /// its queue is full), handed back so the forwarder redirects their clients.
    ForwardRefused { commands: Vec<Command>, leader_hint: Option<ReplicaId> },
    /// "Could I win an election at `ballot`?", asked before raising any promise.
    /// Binds nobody to anything (pre-vote; Ongaro's thesis §9.6).
    PreVote { ballot: Ballot, commit_max: Slot },
    /// The answer: granted only by a voter that has not heard from a leader for an
    /// election timeout and counts the candidate as a voter. `promised` and
    /// `commit_max` let a candidate that is behind catch up or bid higher.
    PreVoteReply { ballot: Ballot, granted: bool, promised: Ballot, commit_max: Slot },
}

impl Message {
    /// A short name for traces and per-type counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Nack { .. } => "nack",
            Message::Heartbeat { .. } => "heartbeat",
            Message::HeartbeatAck { .. } => "heartbeat_ack",
            Message::CatchupRequest { .. } => "catchup_request",
            Message::Catchup { .. } => "catchup",
            Message::InstallSnapshot { .. } => "install_snapshot",
            Message::JoinRequest { .. } => "join_request",
            Message::JoinRefused => "join_refused",
            Message::Forward { .. } => "forward",
            Message::ForwardRefused { .. } => "forward_refused",
            Message::PreVote { .. } => "pre_vote",
            Message::PreVoteReply { .. } => "pre_vote_reply",
        }
    }
}
