//! The Multi-Paxos replica: acceptor, learner and (when elected) leader in one
//! sans-IO state machine.
//!
//! It is driven by `step(now, input, &mut effects)` and asks to be woken at
//! `next_deadline()`. It never reads a clock, touches a socket or a file, spawns a
//! thread or draws OS randomness: time and messages come in, effects go out, and the
//! shell carries them out in order (honouring the `Persist` barrier).
//!
//! It orders opaque command bytes and knows nothing of objects or sessions.

use crate::ballot::Ballot;
use crate::effect::{DurableState, Effect, PersistOp, ReadId};
use crate::membership::{effective_slot, Membership, Role, Schedule};
use crate::message::{AcceptedEntry, Message, Snapshot};
use crate::options::{Bug, Options};
use crate::rng::Prng;
use crate::value::{Command, ConfigChange, Member, Value};
use concoord_wire::{ClusterId, ReplicaId, Slot, Span, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// An input to the state machine.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message from another replica (or from this one, looped back), with the
    /// cluster its sender says it belongs to (`None`: a joiner that has not learned
    /// it yet).
    Message { from: ReplicaId, cluster: Option<ClusterId>, msg: Message },
    /// Client commands to order. Accepted only by the leader.
    Propose(Vec<Command>),
    /// A linearizable read. Accepted only by the leader; answered by `ReadReady`.
    Read(ReadId),
    /// The state machine took a snapshot of itself after applying `slot`.
    SnapshotTaken { slot: Slot, data: Vec<u8> },
    /// Time passed (the shell calls this when `now >= next_deadline()`).
    Tick,
}

/// Why a `Propose` or `Read` was refused. Nothing was queued.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rejected {
    /// Only the leader orders commands; try the hinted replica.
    NotLeader { leader_hint: Option<ReplicaId> },
    /// The leader's queue is full; retry later.
    Busy,
}

/// What role the replica plays right now.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RoleKind {
    /// Not yet a member: waiting to be added and to receive the log.
    Joining,
    /// A member that is not leading.
    Follower,
    /// Running phase 1 or phase 2 with its own ballot.
    Leader,
    /// Removed from the membership by a committed change.
    Removed,
}

/// One slot of the acceptor's log.
#[derive(Clone, Debug)]
struct LogEntry {
    ballot: Ballot,
    value: Value,
    /// Known chosen (committed). Slots `<= commit_max` are always chosen.
    chosen: bool,
}

/// A value this leader proposed and is collecting acceptances for.
#[derive(Clone, Debug)]
struct Inflight {
    value: Value,
    acks: BTreeSet<ReplicaId>,
    sent_at: Time,
}

#[derive(Clone, Copy, Debug)]
struct PendingRead {
    id: ReadId,
    /// The heartbeat round that must be acknowledged by a quorum.
    round: u64,
    /// The slot the state machine must have applied; assigned once the leader has
    /// recovered every slot earlier leaders may have chosen.
    read_index: Option<Slot>,
}

#[derive(Clone, Copy, Debug)]
struct Progress {
    commit_max: Slot,
    last_heard: Time,
    /// Whether this member has ever answered this leader (not just been tracked).
    answered: bool,
    /// The highest slot it accepted from this leader: a learner accepting slots past
    /// the commit point takes part in phase 2 already, even while it still catches up
    /// on older slots.
    accepted_max: Slot,
}

/// A pre-vote this follower is collecting before it raises any promise.
#[derive(Debug)]
struct PreVote {
    ballot: Ballot,
    grants: BTreeSet<ReplicaId>,
}

#[derive(Debug)]
struct Leader {
    ballot: Ballot,
    /// When this replica started leading: check-quorum gives it one election timeout
    /// before it expects a quorum to have answered.
    started_at: Time,
    /// Acceptors that promised `ballot`, with their commit point at the time.
    promises: BTreeMap<ReplicaId, Slot>,
    /// Highest-ballot values reported in promises, for slots not yet proposed.
    adopted: BTreeMap<Slot, (Ballot, Value)>,
    prepare_sent_at: Time,
    /// Phase 1 covered the whole window at least once; reads may get an index.
    recovered: bool,
    /// Phase 1 covers the current window (memberships change as it moves).
    covered: bool,
    /// Every slot up to here may have been chosen by an earlier leader.
    recovery_target: Slot,
    next_slot: Slot,
    inflight: BTreeMap<Slot, Inflight>,
    pending: VecDeque<Command>,
    pending_config: VecDeque<ConfigChange>,
    /// Highest timestamp stamped or adopted; keeps cluster time monotonic.
    timestamp_floor: Time,
    reads: VecDeque<PendingRead>,
    round: u64,
    acks: BTreeMap<ReplicaId, u64>,
    heartbeat_due: Time,
    progress: BTreeMap<ReplicaId, Progress>,
}

#[derive(Debug)]
enum State {
    Joining { retry_at: Time },
    Follower,
    Leader(Box<Leader>),
    Removed,
}

/// A Multi-Paxos replica. See the module docs and `docs/consensus.md`.
#[derive(Debug)]
pub struct Replica {
    id: ReplicaId,
    addr: String,
    opts: Options,
    rng: Prng,
    /// The cluster this replica belongs to; `None` only for a joiner that has not
    /// heard from a member yet.
    cluster: Option<ClusterId>,

    // Acceptor (durable when `opts.durable`).
    promised: Ballot,
    log: BTreeMap<Slot, LogEntry>,

    // Learner. Every slot `<= commit_max` is chosen and has been handed to `Apply`.
    commit_max: Slot,
    snapshot: Option<Snapshot>,
    /// The founding membership (governs slot 1); sent to joiners that replay from slot 1.
    genesis: Option<Membership>,
    schedule: Schedule,
    timestamp_max: Time,

    state: State,
    max_seen: Ballot,
    leader_hint: Option<ReplicaId>,
    election_deadline: Time,
    /// Highest commit point a leader or peer told us about.
    known_commit: Slot,
    /// Peers that reported a commit point above ours, with the highest they reported:
    /// catch-up requests rotate among them, so a dead one cannot stall us.
    catchup_peers: BTreeMap<ReplicaId, Slot>,
    catchup_turn: usize,
    catchup_sent_at: Option<Time>,
    /// The commit point last handed to `Persist(Commit)` (or implied by a snapshot).
    commit_persisted: Slot,
    /// When a message carrying another replica's ballot last passed the ballot
    /// check: while that is recent, this replica refuses pre-votes.
    leader_heard_at: Option<Time>,
    prevote: Option<PreVote>,
}

impl Replica {
    /// A founding member of a new cluster whose initial membership is `membership`.
    pub fn new(
        id: ReplicaId,
        addr: String,
        opts: Options,
        cluster: ClusterId,
        membership: Membership,
        now: Time,
    ) -> Replica {
        let mut replica = Replica::blank(id, addr, opts, State::Follower);
        replica.cluster = Some(cluster);
        replica.schedule = Schedule::starting_with(membership.clone());
        replica.genesis = Some(membership);
        replica.reset_election_deadline(now);
        replica
    }

    /// A new replica that will ask a bootstrap peer to add it as a learner, receive a
    /// snapshot and the log, and then (once promoted) vote. `cluster` is the cluster
    /// it belongs to if it knows (a removed replica rejoining under a fresh identity);
    /// otherwise it adopts the cluster of the first member it hears from.
    pub fn join(
        id: ReplicaId,
        addr: String,
        opts: Options,
        cluster: Option<ClusterId>,
        now: Time,
    ) -> Replica {
        let mut replica = Replica::blank(id, addr, opts, State::Joining { retry_at: now });
        replica.cluster = cluster;
        replica
    }

    /// Restart of a replica that ran without durable state: it must not reuse its old
    /// acceptor identity (it forgot its promises), so it joins as `fresh_id`, and it
    /// learns its cluster again from the first member that answers. The injected bug
    /// `ReuseIdentity` instead comes back as `old_id` of `cluster`, amnesiac, voting.
    pub fn restart_in_memory(
        old_id: ReplicaId,
        fresh_id: ReplicaId,
        addr: String,
        opts: Options,
        cluster: ClusterId,
        base: Membership,
        now: Time,
    ) -> Replica {
        if opts.has_bug(Bug::ReuseIdentity) {
            return Replica::new(old_id, addr, opts, cluster, base, now);
        }
        Replica::join(fresh_id, addr, opts, None, now)
    }

    /// Restart of a durable replica from what its disk holds. Replays the snapshot
    /// and the chosen entries into `effects` (as `InstallSnapshot` and `Apply`).
    pub fn recover(
        id: ReplicaId,
        addr: String,
        opts: Options,
        base: Option<Membership>,
        durable: DurableState,
        now: Time,
        effects: &mut Vec<Effect>,
    ) -> Replica {
        let mut replica = Replica::blank(id, addr, opts, State::Follower);
        replica.cluster = durable.cluster;
        replica.promised = durable.promised;
        replica.max_seen = durable.promised;
        if let Some(base) = base.or(durable.genesis) {
            replica.schedule = Schedule::starting_with(base.clone());
            replica.genesis = Some(base);
        }
        replica.commit_persisted = durable.commit_max;
        if let Some(snapshot) = durable.snapshot {
            replica.commit_max = snapshot.slot;
            replica.commit_persisted = replica.commit_persisted.max(snapshot.slot);
            replica.schedule = snapshot.schedule.clone();
            replica.timestamp_max = snapshot.timestamp;
            effects.push(Effect::InstallSnapshot(snapshot.clone()));
            replica.snapshot = Some(snapshot);
        }
        for e in durable.entries {
            if e.slot > replica.commit_max {
                let chosen = e.slot <= durable.commit_max;
                replica.log.insert(e.slot, LogEntry { ballot: e.ballot, value: e.value, chosen });
            }
        }
        // Start as a joiner: `check_membership` makes it a follower if the membership
        // governing its next slot includes it. A joiner that crashed before applying
        // its own addition must not mistake itself for a removed member.
        replica.state = State::Joining { retry_at: now };
        replica.advance_commit(now, effects);
        replica.check_membership(now, effects);
        replica.reset_election_deadline(now);
        replica
    }

    fn blank(id: ReplicaId, addr: String, opts: Options, state: State) -> Replica {
        assert!(opts.alpha >= 1, "alpha must be at least 1");
        assert!(opts.accept_ahead_max >= 2 * opts.alpha, "accept_ahead_max must cover the window");
        let rng = Prng::new(opts.seed ^ id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Replica {
            id,
            addr,
            opts,
            rng,
            cluster: None,
            promised: Ballot::ZERO,
            log: BTreeMap::new(),
            commit_max: Slot::ZERO,
            snapshot: None,
            genesis: None,
            schedule: Schedule::default(),
            timestamp_max: Time(0),
            state,
            max_seen: Ballot::ZERO,
            leader_hint: None,
            election_deadline: Time(u64::MAX),
            known_commit: Slot::ZERO,
            catchup_peers: BTreeMap::new(),
            catchup_turn: 0,
            catchup_sent_at: None,
            commit_persisted: Slot::ZERO,
            leader_heard_at: None,
            prevote: None,
        }
    }

    // ------------------------------------------------------------------ queries

    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The cluster this replica belongs to (`None` while a joiner has heard from
    /// nobody).
    pub fn cluster(&self) -> Option<ClusterId> {
        self.cluster
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn role(&self) -> RoleKind {
        match self.state {
            State::Joining { .. } => RoleKind::Joining,
            State::Follower => RoleKind::Follower,
            State::Leader(_) => RoleKind::Leader,
            State::Removed => RoleKind::Removed,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.state, State::Leader(_))
    }

    /// The leader's ballot, when leading.
    pub fn ballot(&self) -> Option<Ballot> {
        match &self.state {
            State::Leader(l) => Some(l.ballot),
            _ => None,
        }
    }

    pub fn promised(&self) -> Ballot {
        self.promised
    }

    pub fn commit_max(&self) -> Slot {
        self.commit_max
    }

    pub fn leader_hint(&self) -> Option<ReplicaId> {
        if self.is_leader() {
            Some(self.id)
        } else {
            self.leader_hint
        }
    }

    /// The membership governing the next slot to be applied.
    pub fn membership(&self) -> Option<&Membership> {
        self.schedule.at(self.commit_max.next())
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The acceptor's entry at `slot`, if it still holds one.
    pub fn accepted(&self, slot: Slot) -> Option<(Ballot, &Value)> {
        self.log.get(&slot).map(|e| (e.ballot, &e.value))
    }

    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    pub fn snapshot_slot(&self) -> Slot {
        self.snapshot.as_ref().map_or(Slot::ZERO, |s| s.slot)
    }

    /// Client commands waiting at the leader for a slot.
    pub fn pending_len(&self) -> usize {
        match &self.state {
            State::Leader(l) => l.pending.len() + l.pending_config.len(),
            _ => 0,
        }
    }

    /// The leader's view of each member it tracks: the commit point it last reported
    /// and when it was last heard from. Empty unless leading.
    pub fn progress(&self) -> Vec<(ReplicaId, Slot, Time)> {
        match &self.state {
            State::Leader(l) => {
                l.progress.iter().map(|(id, p)| (*id, p.commit_max, p.last_heard)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// When the shell must call `step(now, Input::Tick)` next.
    pub fn next_deadline(&self) -> Time {
        let retransmit = self.opts.retransmit_interval;
        let mut deadline = Time(u64::MAX);
        match &self.state {
            State::Joining { retry_at } => deadline = deadline.min(*retry_at),
            State::Follower => deadline = deadline.min(self.election_deadline),
            State::Leader(l) => {
                deadline = deadline.min(l.heartbeat_due);
                if self.window_voters().iter().any(|v| !l.promises.contains_key(v)) {
                    deadline = deadline.min(l.prepare_sent_at + retransmit);
                }
                if let Some(oldest) = l.inflight.values().map(|i| i.sent_at).min() {
                    deadline = deadline.min(oldest + retransmit);
                }
            }
            State::Removed => {}
        }
        if self.commit_max < self.known_commit && !self.catchup_peers.is_empty() {
            if let Some(at) = self.catchup_sent_at {
                deadline = deadline.min(at + self.opts.catchup_retry);
            }
        }
        deadline
    }

    // ------------------------------------------------------------------ step

    /// Feeds one input. Effects are appended to `effects` in the order they must run.
    pub fn step(
        &mut self,
        now: Time,
        input: Input,
        effects: &mut Vec<Effect>,
    ) -> Result<(), Rejected> {
        let result = match input {
            Input::Message { from, cluster, msg } => {
                if self.admit_cluster(from, cluster, &msg, effects) {
                    self.on_message(now, from, msg, effects);
                }
                Ok(())
            }
            Input::Propose(commands) => self.on_propose(now, commands, effects),
            Input::Read(id) => self.on_read(id, effects),
            Input::SnapshotTaken { slot, data } => {
                self.on_snapshot_taken(slot, data, effects);
                Ok(())
            }
            Input::Tick => {
                self.on_tick(now, effects);
                Ok(())
            }
        };
        if matches!(self.state, State::Leader(_)) {
            self.lead(now, effects);
        }
        result
    }

    fn on_message(&mut self, now: Time, from: ReplicaId, msg: Message, effects: &mut Vec<Effect>) {
        match msg {
            Message::Prepare { ballot, from_slot } => {
                self.on_prepare(now, from, ballot, from_slot, effects)
            }
            Message::Promise { ballot, commit_max, accepted } => {
                self.on_promise(now, from, ballot, commit_max, accepted, effects)
            }
            Message::Accept { ballot, entries, commit_max } => {
                self.on_accept(now, from, ballot, entries, commit_max, effects)
            }
            Message::Accepted { ballot, slots, commit_max } => {
                self.on_accepted(now, from, ballot, slots, commit_max, effects)
            }
            Message::Nack { promised, rejected } => self.on_nack(now, promised, rejected, effects),
            Message::Heartbeat { ballot, commit_max, round } => {
                self.on_heartbeat(now, from, ballot, commit_max, round, effects)
            }
            Message::HeartbeatAck { ballot, round, commit_max } => {
                self.on_heartbeat_ack(now, from, ballot, round, commit_max, effects)
            }
            Message::CatchupRequest { from_slot } => {
                self.on_catchup_request(from, from_slot, effects)
            }
            Message::Catchup { entries, commit_max, genesis } => {
                self.on_catchup(now, from, entries, commit_max, genesis, effects)
            }
            Message::InstallSnapshot { snapshot } => {
                self.on_install_snapshot(now, from, snapshot, effects)
            }
            Message::JoinRequest { member } => self.on_join_request(member, effects),
            Message::JoinRefused => self.on_join_refused(effects),
            Message::Forward { commands } => self.on_forward(from, commands, effects),
            Message::ForwardRefused { commands, leader_hint } => {
                // Hand the commands back to the shell, which redirects their clients.
                let hint = leader_hint.filter(|l| *l != self.id);
                effects.push(Effect::Dropped { commands, leader_hint: hint });
            }
            Message::PreVote { ballot, commit_max } => {
                self.on_pre_vote(now, from, ballot, commit_max, effects)
            }
            Message::PreVoteReply { ballot, granted, promised, commit_max } => {
                self.on_pre_vote_reply(now, from, ballot, granted, promised, commit_max, effects)
            }
        }
    }

    /// The guard in front of every message: a replica takes part only in its own
    /// cluster's protocol. A process founded on an old member's address is another
    /// cluster, whatever address it has, and so is a replica given the wrong boot
    /// list. A joiner that has not learned its cluster adopts the first one it hears
    /// from; a sender that has not learned one may only ask to join or catch up.
    fn admit_cluster(
        &mut self,
        from: ReplicaId,
        theirs: Option<ClusterId>,
        msg: &Message,
        effects: &mut Vec<Effect>,
    ) -> bool {
        match (self.cluster, theirs) {
            _ if self.opts.has_bug(Bug::IgnoreClusterId) => true,
            (Some(mine), Some(theirs)) if mine != theirs => {
                effects.push(Effect::Foreign { from, cluster: theirs });
                false
            }
            (Some(_), None) => {
                matches!(msg, Message::JoinRequest { .. } | Message::CatchupRequest { .. })
            }
            (None, Some(theirs)) => {
                self.cluster = Some(theirs);
                self.persist(PersistOp::Cluster(theirs), effects);
                true
            }
            _ => true,
        }
    }

    // ------------------------------------------------------------------ acceptor

    fn on_prepare(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        from_slot: Slot,
        effects: &mut Vec<Effect>,
    ) {
        if !self.admit(now, from, ballot, false, effects) {
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            if !self.opts.has_bug(Bug::SkipPersistPromise) {
                self.persist(PersistOp::Promise(ballot), effects);
            }
        }
        let low = from_slot.max(self.commit_max.next());
        let accepted = self
            .log
            .range(low..)
            .map(|(slot, e)| AcceptedEntry {
                slot: *slot,
                ballot: e.ballot,
                value: e.value.clone(),
            })
            .collect();
        let msg = Message::Promise { ballot, commit_max: self.commit_max, accepted };
        effects.push(self.send(from, msg));
    }

    fn on_accept(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        entries: Vec<(Slot, Value)>,
        leader_commit: Slot,
        effects: &mut Vec<Effect>,
    ) {
        let raised = ballot > self.promised;
        if !self.admit(now, from, ballot, self.opts.has_bug(Bug::AcceptLowerBallot), effects) {
            return;
        }
        if raised {
            // Durable together with the entries below (`DurableState::apply`), or on
            // its own if none is stored.
            self.promised = ballot;
        }
        let limit = self.commit_max.plus(self.opts.accept_ahead_max);
        let mut stored = Vec::new();
        let mut slots = Vec::new();
        for (slot, value) in entries {
            if slot <= self.commit_max || slot > limit {
                continue;
            }
            if let Some(existing) = self.log.get(&slot) {
                if existing.chosen {
                    if existing.value == value {
                        slots.push(slot);
                    }
                    continue;
                }
            }
            self.log.insert(slot, LogEntry { ballot, value: value.clone(), chosen: false });
            stored.push(AcceptedEntry { slot, ballot, value });
            slots.push(slot);
        }
        // The barrier rule makes the acknowledgement wait for the write before it.
        let at = effects.len();
        if !stored.is_empty() {
            self.persist(PersistOp::Accept(stored), effects);
        } else if raised {
            self.persist(PersistOp::Promise(ballot), effects);
        }
        if !slots.is_empty() {
            let msg = Message::Accepted { ballot, slots, commit_max: self.commit_max };
            if self.opts.has_bug(Bug::AcceptedBeforeDurable) {
                effects.insert(at, self.send(from, msg));
            } else {
                effects.push(self.send(from, msg));
            }
        }
        self.learn_commit(now, from, ballot, leader_commit, effects);
    }

    fn on_heartbeat(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        leader_commit: Slot,
        round: u64,
        effects: &mut Vec<Effect>,
    ) {
        if !self.admit(now, from, ballot, false, effects) {
            return;
        }
        self.learn_commit(now, from, ballot, leader_commit, effects);
        let msg = Message::HeartbeatAck { ballot, round, commit_max: self.commit_max };
        effects.push(self.send(from, msg));
    }

    /// The guard of every message that carries a leader's ballot: one below our
    /// promise gets a Nack naming the promise (unless `allow_lower`, an injected bug);
    /// otherwise we note the ballot and its leader and give that leader time.
    fn admit(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        allow_lower: bool,
        effects: &mut Vec<Effect>,
    ) -> bool {
        if ballot < self.promised && !allow_lower {
            let msg = Message::Nack { promised: self.promised, rejected: ballot };
            effects.push(self.send(from, msg));
            return false;
        }
        self.observe_ballot(now, ballot, effects);
        if ballot.leader != self.id {
            self.leader_hint = Some(ballot.leader);
            self.leader_heard_at = Some(now);
            self.prevote = None;
            self.reset_election_deadline(now);
        }
        true
    }

    /// A ballot above ours exists: a leader with a lower ballot steps down.
    fn observe_ballot(&mut self, now: Time, ballot: Ballot, effects: &mut Vec<Effect>) {
        self.max_seen = self.max_seen.max(ballot);
        if let State::Leader(l) = &self.state {
            if ballot > l.ballot {
                self.step_down(now, Some(ballot.leader), effects);
            }
        }
    }

    // ------------------------------------------------------------------ learner

    /// The leader of `ballot` says every slot up to `leader_commit` is chosen. Our
    /// entries accepted at that same ballot are the chosen values (one value per
    /// ballot per slot); other slots we must fetch.
    fn learn_commit(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        leader_commit: Slot,
        effects: &mut Vec<Effect>,
    ) {
        self.note_commit(from, leader_commit);
        if leader_commit > self.commit_max {
            for (_, e) in self.log.range_mut(self.commit_max.next()..=leader_commit) {
                if e.ballot == ballot {
                    e.chosen = true;
                }
            }
            self.advance_commit(now, effects);
        }
        self.maybe_catch_up(now, from, effects);
    }

    /// Applies every contiguous chosen slot after `commit_max`.
    fn advance_commit(&mut self, now: Time, effects: &mut Vec<Effect>) {
        // A joiner that knows no membership yet cannot interpret the log (which
        // changes it is applying to what): it waits for the founding membership,
        // which catch-up from slot 1 brings. Without this, a joiner on an old member's
        // address that receives the old identity's Accepts and commit points applied
        // the whole log without a genesis and stayed Joining for good.
        if self.schedule.is_empty() {
            return;
        }
        let before = self.commit_max;
        while let Some(entry) = self.log.get(&self.commit_max.next()) {
            if !entry.chosen {
                break;
            }
            let slot = self.commit_max.next();
            let value = entry.value.clone();
            self.commit_max = slot;
            self.timestamp_max = self.timestamp_max.max(value.timestamp);
            for command in &value.commands {
                if let Command::Reconfigure(change) = command {
                    let effective = self.effective_slot(slot);
                    self.schedule.schedule(change, effective);
                }
            }
            effects.push(Effect::Apply { slot, value });
        }
        if self.commit_max > before {
            if let State::Leader(l) = &mut self.state {
                // Learned through catch-up while leading: those slots are settled.
                let next = self.commit_max.next();
                l.inflight = l.inflight.split_off(&next);
                l.adopted = l.adopted.split_off(&next);
            }
            if self.commit_max > self.commit_persisted {
                self.commit_persisted = self.commit_max;
                self.persist(PersistOp::Commit(self.commit_max), effects);
            }
            self.check_membership(now, effects);
        }
    }

    fn effective_slot(&self, chosen_at: Slot) -> Slot {
        if self.opts.has_bug(Bug::ImmediateConfigChange) {
            chosen_at.next()
        } else {
            effective_slot(chosen_at, self.opts.alpha)
        }
    }

    /// Moves between Joining, Follower/Leader and Removed as the membership governing
    /// the next slot changes.
    fn check_membership(&mut self, now: Time, effects: &mut Vec<Effect>) {
        let member = self.membership().is_some_and(|m| m.is_member(self.id));
        let retired = self.membership().is_some_and(|m| m.retired.contains(&self.id));
        let voter = self.is_voter_now();
        let role = self.role();
        match role {
            RoleKind::Joining if retired => {
                // Removed while it was away: this identity can never come back.
                self.state = State::Removed;
                effects.push(Effect::Removed);
            }
            RoleKind::Joining if member => {
                self.state = State::Follower;
                self.reset_election_deadline(now);
            }
            RoleKind::Follower | RoleKind::Leader if !member => {
                if let State::Leader(l) = &mut self.state {
                    abort_reads(l, None, effects);
                    drop_pending(l, None, effects);
                }
                self.state = State::Removed;
                effects.push(Effect::Removed);
            }
            RoleKind::Leader if !voter => self.step_down(now, None, effects),
            _ => {}
        }
    }

    fn is_voter_now(&self) -> bool {
        self.membership().is_some_and(|m| m.is_voter(self.id))
    }

    /// `from` says every slot up to `commit` is chosen.
    fn note_commit(&mut self, from: ReplicaId, commit: Slot) {
        if from != self.id && commit > self.commit_max {
            self.known_commit = self.known_commit.max(commit);
            let known = self.catchup_peers.entry(from).or_insert(commit);
            *known = (*known).max(commit);
        }
    }

    /// Asks `from` for chosen entries if we know we are behind (rate-limited).
    /// Asks a peer that knows more for chosen entries (rate-limited). Each retry
    /// goes to the next peer that reported a commit point above ours; `from` is the
    /// fallback when none did.
    fn maybe_catch_up(&mut self, now: Time, from: ReplicaId, effects: &mut Vec<Effect>) {
        if self.commit_max >= self.known_commit {
            return;
        }
        if let Some(at) = self.catchup_sent_at {
            if now < at + self.opts.catchup_retry {
                return;
            }
        }
        let commit_max = self.commit_max;
        self.catchup_peers.retain(|_, c| *c > commit_max);
        let peers: Vec<ReplicaId> = self.catchup_peers.keys().copied().collect();
        let target = if peers.is_empty() {
            from
        } else {
            self.catchup_turn = self.catchup_turn.wrapping_add(1);
            peers[self.catchup_turn % peers.len()]
        };
        if target == self.id {
            return;
        }
        self.catchup_sent_at = Some(now);
        let msg = Message::CatchupRequest { from_slot: self.commit_max.next() };
        effects.push(self.send(target, msg));
    }

    fn on_catchup_request(&mut self, from: ReplicaId, from_slot: Slot, effects: &mut Vec<Effect>) {
        if from_slot > self.commit_max {
            return;
        }
        let first_kept = self.log.keys().next().copied().unwrap_or(self.commit_max.next());
        if let Some(snapshot) = &self.snapshot {
            if from_slot < first_kept && from_slot <= snapshot.slot {
                let msg = Message::InstallSnapshot { snapshot: snapshot.clone() };
                effects.push(self.send(from, msg));
                return;
            }
        }
        let entries: Vec<AcceptedEntry> = self
            .log
            .range(from_slot..=self.commit_max)
            .take(self.opts.catchup_entries_max)
            .map(|(slot, e)| AcceptedEntry {
                slot: *slot,
                ballot: e.ballot,
                value: e.value.clone(),
            })
            .collect();
        if entries.first().is_some_and(|e| e.slot == from_slot) {
            let genesis = if from_slot == Slot(1) { self.genesis.clone() } else { None };
            let msg = Message::Catchup { entries, commit_max: self.commit_max, genesis };
            effects.push(self.send(from, msg));
        }
    }

    fn on_catchup(
        &mut self,
        now: Time,
        from: ReplicaId,
        entries: Vec<AcceptedEntry>,
        their_commit: Slot,
        genesis: Option<Membership>,
        effects: &mut Vec<Effect>,
    ) {
        self.note_commit(from, their_commit);
        if self.schedule.is_empty() {
            // A joiner replaying from slot 1 needs the founding membership first.
            let Some(genesis) = genesis else { return };
            if self.commit_max != Slot::ZERO {
                return;
            }
            self.schedule = Schedule::starting_with(genesis.clone());
            self.persist(PersistOp::Genesis(genesis.clone()), effects);
            self.genesis = Some(genesis);
        }
        let mut stored = Vec::new();
        let mut expected = self.commit_max.next();
        for e in entries {
            if e.slot < expected {
                continue;
            }
            if e.slot > expected || e.slot > their_commit {
                break;
            }
            // A chosen value may carry a lower ballot than what we hold; keep the
            // higher label so our reports never pull a leader below what we accepted.
            let ballot = self.log.get(&e.slot).map_or(e.ballot, |x| x.ballot.max(e.ballot));
            self.log.insert(e.slot, LogEntry { ballot, value: e.value.clone(), chosen: true });
            stored.push(AcceptedEntry { slot: e.slot, ballot, value: e.value });
            expected = expected.next();
        }
        if stored.is_empty() {
            return;
        }
        // Our commit point tells followers "your entries at my ballot up to here are
        // chosen". A slot chosen at a higher ballot may hold another value than the
        // one we proposed there, so a leader that learns of one is deposed: it must
        // stop before it announces a commit point covering that slot.
        let deposed_by = stored
            .iter()
            .map(|e| e.ballot)
            .filter(|b| self.ballot().is_some_and(|mine| *b > mine))
            .max()
            .filter(|_| !self.opts.has_bug(Bug::KeepLeadingAboveBallot));
        // The entries are stored as chosen, so the commit point covering them goes
        // to disk in the same sync: a crash between two syncs must not leave chosen
        // entries above the durable commit point, where recovery would take them for
        // mere acceptances (and more of them than `accept_ahead_max` allows). A crash
        // during that sync may still tear it (the log keeps a prefix of its records),
        // so they go in runs of at most `accept_ahead_max` entries, each followed by
        // its commit point: whatever prefix survives recovers.
        let top_label = stored.iter().map(|e| e.ballot).max();
        let run = (self.opts.accept_ahead_max as usize).max(1);
        let mut stored = stored.into_iter().peekable();
        while stored.peek().is_some() {
            let chunk: Vec<AcceptedEntry> = stored.by_ref().take(run).collect();
            let last = chunk.last().map_or(self.commit_max, |e| e.slot);
            if !self.opts.has_bug(Bug::SkipPersistCatchup) {
                self.persist(PersistOp::Accept(chunk), effects);
            }
            if last > self.commit_persisted {
                self.commit_persisted = last;
                self.persist(PersistOp::Commit(last), effects);
            }
        }
        if let Some(higher) = deposed_by {
            self.max_seen = self.max_seen.max(higher);
            self.step_down(now, Some(higher.leader), effects);
        }
        // The `Accept` op raises the promise on disk to its highest label (it doubles
        // as a promise); memory must agree, or a restart would change what this
        // acceptor refuses.
        if let Some(top) = top_label.filter(|b| *b > self.promised) {
            self.promised = top;
            self.max_seen = self.max_seen.max(top);
        }
        self.advance_commit(now, effects);
        self.catchup_sent_at = None;
        self.maybe_catch_up(now, from, effects);
    }

    fn on_install_snapshot(
        &mut self,
        now: Time,
        from: ReplicaId,
        snapshot: Snapshot,
        effects: &mut Vec<Effect>,
    ) {
        if snapshot.slot <= self.commit_max {
            return;
        }
        if snapshot.schedule.at(snapshot.slot.next()).is_none() {
            // Malformed: no membership for the slots after it. Ignore rather than
            // conclude we were removed.
            return;
        }
        // A snapshot does not say at which ballots its slots were chosen; a leader
        // cannot vouch for its own entries there any more (see `on_catchup`).
        if self.is_leader() && !self.opts.has_bug(Bug::KeepLeadingAboveBallot) {
            self.step_down(now, None, effects);
        }
        self.note_commit(from, snapshot.slot);
        self.commit_max = snapshot.slot;
        self.log = self.log.split_off(&snapshot.slot.next());
        self.schedule = snapshot.schedule.clone();
        self.timestamp_max = self.timestamp_max.max(snapshot.timestamp);
        effects.push(Effect::InstallSnapshot(snapshot.clone()));
        self.persist(PersistOp::Snapshot(snapshot.clone()), effects);
        self.commit_persisted = self.commit_persisted.max(snapshot.slot);
        self.snapshot = Some(snapshot);
        self.advance_commit(now, effects);
        self.check_membership(now, effects);
        self.catchup_sent_at = None;
        self.maybe_catch_up(now, from, effects);
    }

    fn on_snapshot_taken(&mut self, slot: Slot, data: Vec<u8>, effects: &mut Vec<Effect>) {
        if slot > self.commit_max || slot <= self.snapshot_slot() {
            return;
        }
        let Some(entry) = self.log.get(&slot) else { return };
        let mut schedule = self.schedule.clone();
        // Keep memberships from changes chosen at or before `slot` only: a replica that
        // installs this snapshot applies the later changes itself.
        let newest_known = self.effective_slot(slot);
        schedule.retain_up_to(newest_known);
        schedule.truncate_before(slot.next());
        let snapshot = Snapshot { slot, data, schedule, timestamp: entry.value.timestamp };
        self.persist(PersistOp::Snapshot(snapshot.clone()), effects);
        self.snapshot = Some(snapshot);
        let keep_from = slot.saturating_sub(self.opts.log_keep_after_snapshot).next();
        self.log = self.log.split_off(&keep_from);
        self.schedule.truncate_before(keep_from.min(self.commit_max.next()));
    }

    /// Only a replica that is still joining believes this: a member ignores it.
    fn on_join_refused(&mut self, effects: &mut Vec<Effect>) {
        if matches!(self.state, State::Joining { .. }) {
            self.state = State::Removed;
            effects.push(Effect::Removed);
        }
    }

    fn on_join_request(&mut self, member: Member, effects: &mut Vec<Effect>) {
        if member.id == self.id {
            return;
        }
        match self.role() {
            RoleKind::Leader => {
                let latest = self.schedule.latest();
                if latest.is_some_and(|m| m.retired.contains(&member.id)) {
                    effects.push(self.send(member.id, Message::JoinRefused));
                    return;
                }
                let known = latest.is_some_and(|m| m.is_member(member.id));
                let max = self.opts.pending_commands_max;
                let State::Leader(l) = &mut self.state else { return };
                let queued = l
                    .pending_config
                    .iter()
                    .any(|c| matches!(c, ConfigChange::AddLearner(m) if m.id == member.id));
                let in_flight = l.inflight.values().any(|i| adds(&i.value, member.id));
                let room = l.pending.len() + l.pending_config.len() < max;
                if !known && !queued && !in_flight && room {
                    l.pending_config.push_back(ConfigChange::AddLearner(member));
                }
            }
            RoleKind::Follower => {
                if let Some(leader) = self.leader_hint.filter(|l| *l != self.id) {
                    effects.push(self.send(leader, Message::JoinRequest { member }));
                }
            }
            RoleKind::Joining | RoleKind::Removed => {}
        }
    }

    // ------------------------------------------------------------------ leader

    fn on_tick(&mut self, now: Time, effects: &mut Vec<Effect>) {
        let join_retry = Span(self.opts.election_timeout_min.0 * 2);
        match self.role() {
            RoleKind::Joining => {
                if let State::Joining { retry_at } = &mut self.state {
                    if now >= *retry_at {
                        *retry_at = now + join_retry;
                        let member = Member {
                            id: self.id,
                            addr: self.addr.clone(),
                            dns_port: self.opts.dns_port,
                        };
                        effects.push(Effect::SendToBootstrap(Message::JoinRequest { member }));
                        // A restarted joiner that knows some members also asks one of
                        // them what it missed (it may learn it was added, or removed).
                        self.probe(now, effects);
                    }
                }
            }
            RoleKind::Follower => {
                if now >= self.election_deadline {
                    if self.is_voter_now() && self.opts.has_bug(Bug::SkipPreVote) {
                        self.start_election(now, effects);
                    } else if self.is_voter_now() {
                        self.start_pre_vote(now, effects);
                    } else {
                        self.probe(now, effects);
                    }
                }
            }
            RoleKind::Leader => self.leader_tick(now, effects),
            RoleKind::Removed => {}
        }
        if self.commit_max < self.known_commit && !self.catchup_peers.is_empty() {
            self.maybe_catch_up(now, self.id, effects);
        }
    }

    /// A learner that has heard no leader for an election timeout asks a random
    /// member for what it missed: it may have been removed, or its leader may be
    /// gone, and nobody else would tell it.
    fn probe(&mut self, now: Time, effects: &mut Vec<Effect>) {
        self.reset_election_deadline(now);
        let peers: Vec<ReplicaId> = self
            .membership()
            .map(|m| m.member_ids().filter(|id| *id != self.id).collect())
            .unwrap_or_default();
        if peers.is_empty() {
            return;
        }
        let peer = peers[self.rng.index(peers.len())];
        let msg = Message::CatchupRequest { from_slot: self.commit_max.next() };
        effects.push(self.send(peer, msg));
    }

    /// Asks the window's voters whether this replica could win an election, before
    /// raising any promise: a replica that was cut off, restarted, or is no longer a
    /// voter in the others' eyes must not depose a leader they still hear from.
    fn start_pre_vote(&mut self, now: Time, effects: &mut Vec<Effect>) {
        self.reset_election_deadline(now);
        let ballot = Ballot::next_after(self.max_seen.max(self.promised), self.id);
        let grants = BTreeSet::from([self.id]);
        self.prevote = Some(PreVote { ballot, grants });
        if self.pre_vote_won() {
            self.prevote = None;
            self.start_election(now, effects);
            return;
        }
        let commit_max = self.commit_max;
        for voter in self.window_voters() {
            if voter != self.id {
                effects.push(self.send(voter, Message::PreVote { ballot, commit_max }));
            }
        }
    }

    /// Whether the pre-vote's grants include a quorum of every membership governing
    /// the window (the quorums the election itself will need).
    fn pre_vote_won(&self) -> bool {
        let Some(pv) = &self.prevote else { return false };
        let from = self.commit_max.next();
        let to = self.commit_max.plus(self.opts.alpha);
        let memberships = self.schedule.governing(from, to);
        !memberships.is_empty() && memberships.iter().all(|m| m.is_quorum(&pv.grants))
    }

    /// Grants a pre-vote only as a follower that has heard from no leader for an
    /// election timeout and counts the candidate among the window's voters. A grant
    /// changes nothing here: it promises nothing.
    fn on_pre_vote(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        their_commit: Slot,
        effects: &mut Vec<Effect>,
    ) {
        let quiet =
            self.leader_heard_at.is_none_or(|at| now.since(at) >= self.opts.election_timeout_min);
        let granted = self.role() == RoleKind::Follower
            && quiet
            && ballot.leader == from
            && self.window_voters().contains(&from);
        self.note_commit(from, their_commit);
        let msg = Message::PreVoteReply {
            ballot,
            granted,
            promised: self.promised,
            commit_max: self.commit_max,
        };
        effects.push(self.send(from, msg));
    }

    #[allow(clippy::too_many_arguments)]
    fn on_pre_vote_reply(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        granted: bool,
        promised: Ballot,
        their_commit: Slot,
        effects: &mut Vec<Effect>,
    ) {
        self.max_seen = self.max_seen.max(promised);
        // A candidate that is behind (a restarted or removed replica) learns what it
        // missed, which may be that it is no longer a voter.
        self.note_commit(from, their_commit);
        self.maybe_catch_up(now, from, effects);
        if self.role() != RoleKind::Follower || !self.is_voter_now() {
            return;
        }
        let Some(pv) = &mut self.prevote else { return };
        if pv.ballot != ballot || !granted {
            return;
        }
        pv.grants.insert(from);
        if self.pre_vote_won() {
            self.prevote = None;
            self.start_election(now, effects);
        }
    }

    fn start_election(&mut self, now: Time, effects: &mut Vec<Effect>) {
        let ballot = Ballot::next_after(self.max_seen.max(self.promised), self.id);
        if ballot <= self.promised || ballot <= self.max_seen {
            // Only reachable after a peer reported the highest possible round: we
            // cannot outbid it, and must never lower our promise.
            self.reset_election_deadline(now);
            return;
        }
        self.max_seen = ballot;
        let from_slot = self.commit_max.next();
        let mut leader = Box::new(Leader {
            ballot,
            started_at: now,
            promises: BTreeMap::new(),
            adopted: BTreeMap::new(),
            prepare_sent_at: now,
            recovered: false,
            covered: false,
            recovery_target: self.commit_max,
            next_slot: from_slot,
            inflight: BTreeMap::new(),
            pending: VecDeque::new(),
            pending_config: VecDeque::new(),
            timestamp_floor: self.timestamp_max,
            reads: VecDeque::new(),
            round: 0,
            acks: BTreeMap::new(),
            heartbeat_due: now,
            progress: BTreeMap::new(),
        });
        for id in self.window_members() {
            leader.progress.insert(
                id,
                Progress {
                    commit_max: Slot::ZERO,
                    last_heard: now,
                    answered: false,
                    accepted_max: Slot::ZERO,
                },
            );
        }
        self.state = State::Leader(leader);
        // Our own promise is durable before any Prepare leaves: a crash must never
        // let this replica pick the same ballot again and propose other values.
        self.promised = ballot;
        if !self.opts.has_bug(Bug::SkipPersistPromise) {
            self.persist(PersistOp::Promise(ballot), effects);
        }
        for voter in self.window_voters() {
            effects.push(self.send(voter, Message::Prepare { ballot, from_slot }));
        }
    }

    fn on_promise(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        their_commit: Slot,
        accepted: Vec<AcceptedEntry>,
        effects: &mut Vec<Effect>,
    ) {
        let State::Leader(l) = &mut self.state else { return };
        if ballot != l.ballot {
            return;
        }
        l.promises.insert(from, their_commit);
        touch(l, from, their_commit, now);
        for e in accepted {
            if e.slot < l.next_slot || e.slot <= self.commit_max {
                continue;
            }
            l.timestamp_floor = l.timestamp_floor.max(e.value.timestamp);
            let better = if self.opts.has_bug(Bug::AdoptFirstValue) {
                !l.adopted.contains_key(&e.slot)
            } else {
                l.adopted.get(&e.slot).is_none_or(|(b, _)| e.ballot > *b)
            };
            if better {
                l.adopted.insert(e.slot, (e.ballot, e.value));
                // An earlier ballot may have chosen this slot: reads waiting now must
                // reflect it, whatever index they were given before.
                for read in l.reads.iter_mut() {
                    if let Some(index) = read.read_index.as_mut() {
                        *index = (*index).max(e.slot);
                    }
                }
            }
        }
        self.note_commit(from, their_commit);
        self.maybe_catch_up(now, from, effects);
    }

    fn on_accepted(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        slots: Vec<Slot>,
        their_commit: Slot,
        effects: &mut Vec<Effect>,
    ) {
        let State::Leader(l) = &mut self.state else { return };
        if ballot != l.ballot {
            return;
        }
        touch(l, from, their_commit, now);
        if let (Some(p), Some(top)) = (l.progress.get_mut(&from), slots.iter().max()) {
            p.accepted_max = p.accepted_max.max(*top);
        }
        let mut chosen = Vec::new();
        for slot in slots {
            let Some(inflight) = l.inflight.get_mut(&slot) else { continue };
            inflight.acks.insert(from);
            let quorum = if self.opts.has_bug(Bug::CommitOnMinority) {
                !inflight.acks.is_empty()
            } else if self.opts.has_bug(Bug::CountNonVoters) {
                self.schedule.at(slot).is_some_and(|m| inflight.acks.len() * 2 > m.voter_count())
            } else {
                self.schedule.at(slot).is_some_and(|m| m.is_quorum(&inflight.acks))
            };
            if quorum {
                chosen.push(slot);
            }
        }
        let ballot = l.ballot;
        let mut stored = Vec::new();
        for slot in chosen {
            let Some(inflight) = l.inflight.remove(&slot) else { continue };
            // Our own acceptance may still be on its way through the disk; the chosen
            // value must be in our log (and durable) before the commit point passes it.
            let ours = self.log.get(&slot).is_some_and(|e| e.ballot == ballot);
            if !ours {
                stored.push(AcceptedEntry { slot, ballot, value: inflight.value.clone() });
            }
            self.log.insert(slot, LogEntry { ballot, value: inflight.value, chosen: true });
        }
        if !stored.is_empty() {
            self.persist(PersistOp::Accept(stored), effects);
        }
        self.advance_commit(now, effects);
        if their_commit > self.commit_max {
            self.note_commit(from, their_commit);
            self.maybe_catch_up(now, from, effects);
        }
    }

    fn on_nack(
        &mut self,
        now: Time,
        promised: Ballot,
        rejected: Ballot,
        effects: &mut Vec<Effect>,
    ) {
        self.max_seen = self.max_seen.max(promised);
        if let State::Leader(l) = &self.state {
            if rejected == l.ballot && promised > l.ballot {
                self.step_down(now, Some(promised.leader), effects);
            }
        }
    }

    fn on_heartbeat_ack(
        &mut self,
        now: Time,
        from: ReplicaId,
        ballot: Ballot,
        round: u64,
        their_commit: Slot,
        effects: &mut Vec<Effect>,
    ) {
        let State::Leader(l) = &mut self.state else { return };
        if ballot != l.ballot {
            return;
        }
        touch(l, from, their_commit, now);
        let acked = l.acks.entry(from).or_insert(0);
        *acked = (*acked).max(round);
        if their_commit > self.commit_max {
            self.note_commit(from, their_commit);
            self.maybe_catch_up(now, from, effects);
        }
    }

    /// Queues commands for a slot. A follower that hears a leader forwards client
    /// commands to it instead of refusing them: a client that reaches any replica of
    /// a working majority is served, even if it cannot reach the leader itself. The
    /// forwarding replica answers its client when it applies the command, as every
    /// replica applies every slot.
    fn on_propose(
        &mut self,
        now: Time,
        commands: Vec<Command>,
        effects: &mut Vec<Effect>,
    ) -> Result<(), Rejected> {
        if let Some(leader) = self.forward_target(now, &commands) {
            effects.push(self.send(leader, Message::Forward { commands }));
            return Ok(());
        }
        self.queue(commands).map_err(|(rejected, _)| rejected)
    }

    /// Queues commands at the leader, or hands them back with the reason: not the
    /// leader, or its queue would overflow.
    fn queue(&mut self, commands: Vec<Command>) -> Result<(), (Rejected, Vec<Command>)> {
        let hint = self.leader_hint;
        let max = self.opts.pending_commands_max;
        let State::Leader(l) = &mut self.state else {
            return Err((Rejected::NotLeader { leader_hint: hint }, commands));
        };
        if l.pending.len() + l.pending_config.len() + commands.len() > max {
            return Err((Rejected::Busy, commands));
        }
        for command in commands {
            match command {
                Command::App(_) => l.pending.push_back(command),
                Command::Reconfigure(change) => l.pending_config.push_back(change),
                Command::Noop => {}
            }
        }
        Ok(())
    }

    /// The leader a follower may forward `commands` to: one it heard from within an
    /// election timeout. Only client commands travel this way, and only as many as
    /// a leader would queue.
    fn forward_target(&self, now: Time, commands: &[Command]) -> Option<ReplicaId> {
        let heard = self.leader_heard_at?;
        let leader = self.leader_hint.filter(|l| *l != self.id)?;
        let fresh = now.since(heard) < self.opts.election_timeout_min;
        let apps = commands.iter().all(|c| matches!(c, Command::App(_)));
        let fits = !commands.is_empty() && commands.len() <= self.opts.pending_commands_max;
        (self.role() == RoleKind::Follower && fresh && apps && fits).then_some(leader)
    }

    /// A follower forwarded client commands: a leader queues them as if proposed to
    /// it; anyone else (or a leader whose queue is full) hands them back, and the
    /// forwarder redirects their clients.
    fn on_forward(&mut self, from: ReplicaId, commands: Vec<Command>, effects: &mut Vec<Effect>) {
        let commands: Vec<Command> =
            commands.into_iter().filter(|c| matches!(c, Command::App(_))).collect();
        if commands.is_empty() {
            return;
        }
        let Err((_, commands)) = self.queue(commands) else { return };
        let msg = Message::ForwardRefused { commands, leader_hint: self.leader_hint() };
        effects.push(self.send(from, msg));
    }

    fn on_read(&mut self, id: ReadId, effects: &mut Vec<Effect>) -> Result<(), Rejected> {
        let hint = self.leader_hint;
        let max = self.opts.pending_reads_max;
        let State::Leader(l) = &mut self.state else {
            return Err(Rejected::NotLeader { leader_hint: hint });
        };
        if self.opts.bugs.contains(&Bug::ReadWithoutBarrier) {
            effects.push(Effect::ReadReady { id });
            return Ok(());
        }
        if l.reads.len() >= max {
            return Err(Rejected::Busy);
        }
        // A round already sent may have been acknowledged before this read arrived;
        // only a round started after it proves we still lead *now*.
        let round = l.round + 1;
        l.reads.push_back(PendingRead { id, round, read_index: None });
        Ok(())
    }

    fn step_down(&mut self, now: Time, hint: Option<ReplicaId>, effects: &mut Vec<Effect>) {
        if let State::Leader(l) = &mut self.state {
            abort_reads(l, hint, effects);
            drop_pending(l, hint, effects);
        }
        self.state = State::Follower;
        self.leader_hint = hint;
        self.prevote = None;
        self.reset_election_deadline(now);
    }

    /// A leader that has not heard from a quorum of the window's voters for an
    /// election timeout steps down (check-quorum): cut off from its followers, it
    /// could not commit anything anyway, and its clients should go elsewhere now,
    /// not when their own timeouts expire. Returns whether it stepped down.
    fn check_quorum(&mut self, now: Time, effects: &mut Vec<Effect>) -> bool {
        let timeout = self.opts.election_timeout_min;
        let from = self.commit_max.next();
        let to = self.commit_max.plus(self.opts.alpha);
        let memberships: Vec<Membership> =
            self.schedule.governing(from, to).into_iter().cloned().collect();
        let me = self.id;
        let State::Leader(l) = &self.state else { return false };
        if now.since(l.started_at) < timeout || self.opts.has_bug(Bug::NoCheckQuorum) {
            return false;
        }
        let heard: BTreeSet<ReplicaId> = l
            .progress
            .iter()
            .filter(|(_, p)| p.answered && now.since(p.last_heard) < timeout)
            .map(|(id, _)| *id)
            .chain(std::iter::once(me))
            .collect();
        if memberships.iter().all(|m| m.is_quorum(&heard)) {
            return false;
        }
        self.step_down(now, None, effects);
        true
    }

    fn leader_tick(&mut self, now: Time, effects: &mut Vec<Effect>) {
        if self.check_quorum(now, effects) {
            return;
        }
        let retransmit = self.opts.retransmit_interval;
        let State::Leader(l) = &mut self.state else { return };
        // Resend unanswered Accepts, one message per voter.
        let mut resend: BTreeMap<ReplicaId, Vec<(Slot, Value)>> = BTreeMap::new();
        for (slot, inflight) in l.inflight.iter_mut() {
            if now < inflight.sent_at + retransmit {
                continue;
            }
            inflight.sent_at = now;
            if let Some(m) = self.schedule.at(*slot) {
                for voter in m.voter_ids() {
                    if !inflight.acks.contains(&voter) {
                        resend.entry(voter).or_default().push((*slot, inflight.value.clone()));
                    }
                }
            }
        }
        let ballot = l.ballot;
        for (voter, entries) in resend {
            let msg = Message::Accept { ballot, entries, commit_max: self.commit_max };
            effects.push(self.send(voter, msg));
        }
        self.request_promises(now, false, effects);
    }

    /// Sends Prepare to voters of the window's memberships that have not promised.
    fn request_promises(&mut self, now: Time, force: bool, effects: &mut Vec<Effect>) {
        let retransmit = self.opts.retransmit_interval;
        let voters = self.window_voters();
        let from_slot = self.commit_max.next();
        let State::Leader(l) = &mut self.state else { return };
        if !force && now < l.prepare_sent_at + retransmit {
            return;
        }
        let missing: Vec<ReplicaId> =
            voters.into_iter().filter(|v| !l.promises.contains_key(v)).collect();
        if missing.is_empty() {
            return;
        }
        l.prepare_sent_at = now;
        let ballot = l.ballot;
        for voter in missing {
            effects.push(self.send(voter, Message::Prepare { ballot, from_slot }));
        }
    }

    /// Runs after every input while leading: phase 1 bookkeeping, proposing, reads,
    /// heartbeats and automatic membership changes.
    fn lead(&mut self, now: Time, effects: &mut Vec<Effect>) {
        let Some(ready) = self.phase1_ready(now, effects) else { return };
        if ready {
            self.propose_ready(now, effects);
        }
        self.maintain_membership(now);
        if ready {
            self.propose_ready(now, effects);
        }
        self.heartbeat(now, effects);
        self.serve_reads(effects);
    }

    /// Whether the leader may propose: no promiser knows of chosen slots we lack.
    /// Also notes when phase 1 covers the whole window (a quorum of every governing
    /// membership promised), which reads need. `None` if we stopped leading.
    fn phase1_ready(&mut self, now: Time, effects: &mut Vec<Effect>) -> Option<bool> {
        let commit_max = self.commit_max;
        let window_end = commit_max.plus(self.opts.alpha);
        let memberships: Vec<Membership> =
            self.schedule.governing(commit_max.next(), window_end).into_iter().cloned().collect();
        let State::Leader(l) = &mut self.state else { return None };
        // A promiser that knows chosen slots beyond our commit point did not report
        // them (it reports only above its own commit point), so its promise covers
        // nothing we still need: only the others count towards a quorum. Learning from
        // it is still the quickest way forward, so ask it; but if it is gone, a quorum
        // of the others can recover those slots as well.
        let usable = usable_promisers(l, commit_max);
        let ahead = l.promises.iter().find(|(_, c)| **c > commit_max).map(|(id, _)| *id);
        let covered = !memberships.is_empty() && memberships.iter().all(|m| m.is_quorum(&usable));
        l.covered = covered;
        if covered && !l.recovered {
            let highest_adopted = l.adopted.keys().next_back().copied();
            l.recovery_target = highest_adopted.unwrap_or(commit_max).max(commit_max);
            l.recovered = true;
        }
        if let Some(peer) = ahead {
            self.maybe_catch_up(now, peer, effects);
        }
        if !covered {
            // Keep asking, but slots whose own membership has promised can go ahead
            // (`propose_ready` checks coverage slot by slot): a later membership that
            // lost a voter must not stall the slots before it takes effect.
            self.request_promises(now, false, effects);
        }
        Some(true)
    }

    /// Fills free slots of the window: adopted values first (in slot order), noops in
    /// the gaps below the highest adopted slot, then batches of client commands.
    fn propose_ready(&mut self, now: Time, effects: &mut Vec<Effect>) {
        let window_end = self.commit_max.plus(self.opts.alpha);
        let commit_max = self.commit_max;
        let config_busy = self.config_change_in_flight();
        let applied_time = self.timestamp_max;
        let State::Leader(l) = &mut self.state else { return };
        l.next_slot = l.next_slot.max(commit_max.next());
        // Entries learned since the election (catch-up, a snapshot) may carry a later
        // time than anything adopted: cluster time never goes backwards.
        l.timestamp_floor = l.timestamp_floor.max(applied_time);
        let mut proposed: Vec<(Slot, Value)> = Vec::new();
        let mut config_taken = config_busy;
        while l.next_slot <= window_end {
            let slot = l.next_slot;
            let Some(m) = self.schedule.at(slot) else { break };
            if !m.is_quorum(&usable_promisers(l, commit_max)) {
                break;
            }
            let highest_adopted = l.adopted.keys().next_back().copied();
            let value = if let Some((_, v)) = l.adopted.remove(&slot) {
                v
            } else if highest_adopted.is_some_and(|h| h > slot) {
                Value::noop(l.timestamp_floor)
            } else if !l.pending.is_empty() || (!config_taken && !l.pending_config.is_empty()) {
                let timestamp = if self.opts.has_bug(Bug::StampLocalClock) {
                    now
                } else {
                    l.timestamp_floor.max(now)
                };
                l.timestamp_floor = timestamp;
                let mut commands = Vec::new();
                if !config_taken {
                    if let Some(change) = l.pending_config.pop_front() {
                        commands.push(Command::Reconfigure(change));
                        config_taken = true;
                    }
                }
                let mut bytes = 0;
                while let Some(c) = l.pending.front() {
                    let len = c.encoded_len();
                    if !commands.is_empty()
                        && (commands.len() >= self.opts.batch_commands_max
                            || bytes + len > self.opts.batch_bytes_max)
                    {
                        break;
                    }
                    bytes += len;
                    commands.extend(l.pending.pop_front());
                }
                Value { timestamp, commands }
            } else if self.schedule.has_change_after(Slot(slot.0 - 1)) {
                // A chosen membership change takes effect at a later slot: fill the
                // log up to it so it applies without waiting for client traffic.
                Value::noop(l.timestamp_floor.max(now))
            } else {
                break;
            };
            if value.commands.iter().any(|c| matches!(c, Command::Reconfigure(_))) {
                config_taken = true;
            }
            l.inflight.insert(
                slot,
                Inflight { value: value.clone(), acks: BTreeSet::new(), sent_at: now },
            );
            proposed.push((slot, value));
            l.next_slot = slot.next();
        }
        if proposed.is_empty() {
            return;
        }
        let ballot = l.ballot;
        // One Accept per member carrying every slot whose membership includes it.
        // Learners get them too: their acceptances count for no quorum, but they keep
        // up with the log as it is chosen (instead of only pulling it), and their
        // `Accepted` replies tell the leader they are ready to vote.
        let mut per_member: BTreeMap<ReplicaId, Vec<(Slot, Value)>> = BTreeMap::new();
        for (slot, value) in proposed {
            if let Some(m) = self.schedule.at(slot) {
                for member in m.member_ids() {
                    per_member.entry(member).or_default().push((slot, value.clone()));
                }
            }
        }
        for (member, entries) in per_member {
            let msg = Message::Accept { ballot, entries, commit_max };
            effects.push(self.send(member, msg));
        }
    }

    /// A membership change is chosen but not yet in effect, or is being proposed.
    fn config_change_in_flight(&self) -> bool {
        let State::Leader(l) = &self.state else { return false };
        self.schedule.has_change_after(self.commit_max)
            || l.inflight.values().any(|i| has_reconfigure(&i.value))
            || l.adopted.values().any(|(_, v)| has_reconfigure(v))
    }

    /// Promotes caught-up learners and proposes removal of long-silent members.
    fn maintain_membership(&mut self, now: Time) {
        if self.config_change_in_flight() {
            return;
        }
        let commit_max = self.commit_max;
        let Some(latest) = self.schedule.latest().cloned() else { return };
        let remove_after = self.opts.remove_dead_after_effective();
        let auto_promote = self.opts.auto_promote;
        let promote_lag = self.opts.promote_lag_max;
        let heard_within = Span(self.opts.heartbeat_interval.0 * 3);
        let me = self.id;
        let State::Leader(l) = &mut self.state else { return };
        if !l.recovered || !l.pending_config.is_empty() {
            return;
        }
        // Forget members that left, so the maps stay bounded by the membership.
        l.progress.retain(|id, _| latest.is_member(*id) || *id == me);
        l.acks.retain(|id, _| latest.is_member(*id));
        for id in latest.members.keys() {
            l.progress.entry(*id).or_insert(Progress {
                commit_max: Slot::ZERO,
                last_heard: now,
                answered: false,
                accepted_max: Slot::ZERO,
            });
        }
        for (id, (_, role)) in &latest.members {
            let progress = l.progress.get(id).copied();
            if *id == me {
                continue;
            }
            // Removing a dead voter from three or fewer only makes the cluster depend
            // on the survivors all the same, and takes away the dead one's chance to
            // come back: keep it.
            let removable = *role == Role::Learner || latest.voter_count() > 3;
            if let (Some(after), Some(p), true) = (remove_after, progress, removable) {
                if now.since(p.last_heard) >= after {
                    l.pending_config.push_back(ConfigChange::Remove(*id));
                    return;
                }
            }
            if auto_promote && *role == Role::Learner {
                if let Some(p) = progress {
                    // Only a learner that is caught up *and* answering: promoting a
                    // dead one would shrink the live majority. Caught up means it has
                    // applied the slot from which it is a member (so it holds the log
                    // before it, which may exist nowhere else: a cluster grown from one
                    // voter whose founder dies right after promoting two learners that
                    // hold nothing could never elect a leader again), and it is close
                    // to the commit point, or (under a load that keeps the commit point
                    // moving faster than its reports arrive) accepting the slots being
                    // chosen now.
                    let recent = now.since(p.last_heard) <= heard_within;
                    let member_from = self.schedule.first_with(*id).unwrap_or(commit_max);
                    let caught_up = p.commit_max >= member_from
                        && (p.commit_max.plus(promote_lag) >= commit_max
                            || p.accepted_max.plus(promote_lag) >= commit_max);
                    if p.answered && recent && caught_up {
                        l.pending_config.push_back(ConfigChange::Promote(*id));
                        return;
                    }
                }
            }
        }
    }

    fn heartbeat(&mut self, now: Time, effects: &mut Vec<Effect>) {
        let interval = self.opts.heartbeat_interval;
        let members = self.window_members();
        let commit_max = self.commit_max;
        let State::Leader(l) = &mut self.state else { return };
        // Start a new round when a read waits for one that has not been sent.
        // Reads that arrive while a round is out wait for the next one, so one round
        // serves a whole batch of reads.
        let read_waiting = l.reads.back().is_some_and(|r| r.round > l.round);
        let round_outstanding = l.reads.front().is_some_and(|r| r.round <= l.round);
        let start_round = read_waiting && !round_outstanding;
        if now < l.heartbeat_due && !start_round {
            return;
        }
        if read_waiting {
            l.round += 1;
        }
        l.heartbeat_due = now + interval;
        let (ballot, round) = (l.ballot, l.round);
        for id in members {
            if id != self.id {
                effects.push(self.send(id, Message::Heartbeat { ballot, commit_max, round }));
            }
        }
    }

    /// Completes reads whose round a quorum acknowledged and whose index is applied.
    fn serve_reads(&mut self, effects: &mut Vec<Effect>) {
        let commit_max = self.commit_max;
        let window_end = commit_max.plus(self.opts.alpha);
        let memberships: Vec<Membership> =
            self.schedule.governing(commit_max.next(), window_end).into_iter().cloned().collect();
        let me = self.id;
        let State::Leader(l) = &mut self.state else { return };
        // Only while phase 1 covers every membership of the window can the leader be
        // sure no earlier ballot chose a slot it does not know of.
        if !l.recovered || !l.covered {
            return;
        }
        let highest_adopted = l.adopted.keys().next_back().copied().unwrap_or(Slot::ZERO);
        let index = commit_max
            .max(Slot(l.next_slot.0.saturating_sub(1)))
            .max(l.recovery_target)
            .max(highest_adopted);
        while let Some(read) = l.reads.front_mut() {
            if read.read_index.is_none() {
                read.read_index = Some(index);
            }
            let round = read.round;
            let confirmed = round <= l.round
                && memberships.iter().all(|m| {
                    let ackers = l
                        .acks
                        .iter()
                        .filter(|(_, r)| **r >= round)
                        .map(|(id, _)| id)
                        .chain(std::iter::once(&me));
                    m.is_quorum(ackers)
                });
            if !confirmed || read.read_index.is_some_and(|i| i > commit_max) {
                break;
            }
            effects.push(Effect::ReadReady { id: read.id });
            l.reads.pop_front();
        }
        // Later reads may already have an index too (they share the round).
        for read in l.reads.iter_mut() {
            if read.read_index.is_none() {
                read.read_index = Some(index);
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    fn window_voters(&self) -> BTreeSet<ReplicaId> {
        let from = self.commit_max.next();
        let to = self.commit_max.plus(self.opts.alpha);
        self.schedule.governing(from, to).into_iter().flat_map(|m| m.voter_ids()).collect()
    }

    fn window_members(&self) -> BTreeSet<ReplicaId> {
        let from = self.commit_max.next();
        let to = self.commit_max.plus(self.opts.alpha);
        self.schedule.governing(from, to).into_iter().flat_map(|m| m.member_ids()).collect()
    }

    fn reset_election_deadline(&mut self, now: Time) {
        let min = self.opts.election_timeout_min.0;
        self.election_deadline = now + Span(min + self.rng.range(0, min));
    }

    fn persist(&self, op: PersistOp, effects: &mut Vec<Effect>) {
        if self.opts.durable {
            effects.push(Effect::Persist(op));
        }
    }

    fn send(&self, to: ReplicaId, msg: Message) -> Effect {
        Effect::Send { to, msg }
    }

    /// Asserts the relations between the replica's fields. Cheap enough for the
    /// simulator to call after every step; panics name the broken invariant.
    pub fn check_invariants(&self) {
        assert!(self.commit_max >= self.snapshot_slot(), "commit point behind snapshot");
        if self.commit_max > self.snapshot_slot() {
            let e = self.log.get(&self.commit_max);
            assert!(e.is_some_and(|e| e.chosen), "committed slot {:?} missing", self.commit_max);
        }
        if let Some((last, _)) = self.log.iter().next_back() {
            let limit = self.commit_max.plus(self.opts.accept_ahead_max + self.opts.alpha);
            assert!(*last <= limit, "log runs past accept_ahead_max");
        }
        match &self.state {
            State::Joining { .. } => {}
            State::Follower => {
                assert!(!self.schedule.is_empty(), "member without a membership");
            }
            // A joiner refused before it learned anything is removed with no membership.
            State::Removed => {}
            State::Leader(l) => {
                assert!(l.ballot.leader == self.id, "leading with another's ballot");
                assert!(self.promised <= l.ballot, "leading below our own promise");
                assert!(l.inflight.len() as u64 <= self.opts.alpha, "inflight beyond alpha");
                let window_end = self.commit_max.plus(self.opts.alpha);
                for slot in l.inflight.keys() {
                    assert!(
                        *slot > self.commit_max && *slot <= window_end,
                        "inflight outside window"
                    );
                }
                assert!(l.next_slot <= window_end.next(), "next slot beyond window");
                assert!(
                    l.pending.len() + l.pending_config.len() <= self.opts.pending_commands_max,
                    "pending over limit"
                );
                assert!(l.reads.len() <= self.opts.pending_reads_max, "reads over limit");
            }
        }
    }
}

/// Promisers whose reports cover every slot above `commit_max`.
fn usable_promisers(l: &Leader, commit_max: Slot) -> Vec<ReplicaId> {
    l.promises.iter().filter(|(_, c)| **c <= commit_max).map(|(id, _)| *id).collect()
}

fn touch(l: &mut Leader, from: ReplicaId, commit_max: Slot, now: Time) {
    let p = l.progress.entry(from).or_insert(Progress {
        commit_max,
        last_heard: now,
        answered: true,
        accepted_max: Slot::ZERO,
    });
    p.commit_max = p.commit_max.max(commit_max);
    p.last_heard = now;
    p.answered = true;
}

fn abort_reads(l: &mut Leader, hint: Option<ReplicaId>, effects: &mut Vec<Effect>) {
    for read in l.reads.drain(..) {
        effects.push(Effect::ReadAborted { id: read.id, leader_hint: hint });
    }
}

/// Commands that never got a slot are handed back so the shell can redirect their
/// clients (who retry under the same request number, so nothing runs twice).
fn drop_pending(l: &mut Leader, hint: Option<ReplicaId>, effects: &mut Vec<Effect>) {
    let commands: Vec<Command> = l.pending.drain(..).collect();
    l.pending_config.clear();
    if !commands.is_empty() {
        effects.push(Effect::Dropped { commands, leader_hint: hint });
    }
}

fn has_reconfigure(value: &Value) -> bool {
    value.commands.iter().any(|c| matches!(c, Command::Reconfigure(_)))
}

fn adds(value: &Value, id: ReplicaId) -> bool {
    value
        .commands
        .iter()
        .any(|c| matches!(c, Command::Reconfigure(ConfigChange::AddLearner(m)) if m.id == id))
}
