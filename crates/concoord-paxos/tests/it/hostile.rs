//! Stale, malformed and random input: a replica ignores it or answers with a Nack,
//! and never panics (bad network input is a handled case, not an assertion).

use crate::harness::*;
use concoord_paxos::{
    AcceptedEntry, Ballot, Command, ConfigChange, DurableState, Effect, Input, Member, Membership,
    Message, Options, Prng, ReadId, Replica, Role, RoleKind, Schedule, Snapshot, Value,
};
use concoord_wire::{ClusterId, ReplicaId, Slot, Span, Time};

fn value(text: &str) -> Value {
    Value { timestamp: Time(1), commands: apps([text]) }
}

#[test]
fn a_follower_ignores_or_refuses_stale_and_malformed_messages() {
    let opts = Options { batch_commands_max: 1, ..test_options() };
    let mut t = Cluster::with_options(3, opts);
    let leader = t.run_until_leader();
    for c in ["a", "b", "c"] {
        t.propose(leader, apps([c])).unwrap();
    }
    t.run_until_applied(&[R1, R2, R3], 3);
    t.run_for(ms(100));
    let f = t.live().into_iter().find(|id| *id != leader).unwrap();
    let other = t.live().into_iter().find(|id| *id != leader && *id != f).unwrap();
    let ballot = t.replica(leader).ballot().unwrap();
    let promised = t.replica(f).promised();
    assert_eq!(promised, ballot);
    let commit = t.replica(f).commit_max();
    assert_eq!(commit, Slot(3));
    let stale = Ballot { round: 0, leader: other };
    let nack =
        |rejected| vec![Effect::Send { to: other, msg: Message::Nack { promised, rejected } }];

    // Lower-ballot Accept, Prepare and Heartbeat: refused with a Nack, nothing stored.
    let accept = Message::Accept {
        ballot: stale,
        entries: vec![(commit.next(), value("bogus"))],
        commit_max: commit.next(),
    };
    assert_eq!(t.inject(other, f, accept), nack(stale));
    assert!(t.replica(f).accepted(commit.next()).is_none());
    let prepare = Message::Prepare { ballot: stale, from_slot: Slot(1) };
    assert_eq!(t.inject(other, f, prepare), nack(stale));
    let heartbeat = Message::Heartbeat { ballot: stale, commit_max: Slot(99), round: 1 };
    assert_eq!(t.inject(other, f, heartbeat), nack(stale));
    assert_eq!(t.replica(f).promised(), promised);
    assert_eq!(t.replica(f).commit_max(), commit);

    // A Promise, Accepted or HeartbeatAck for a ballot the follower never ran: ignored.
    let mine = Ballot { round: 99, leader: f };
    let entry = AcceptedEntry { slot: commit.next(), ballot: mine, value: value("bogus") };
    let promise = Message::Promise { ballot: mine, commit_max: commit, accepted: vec![entry] };
    assert_eq!(t.inject(other, f, promise), vec![]);
    let accepted =
        Message::Accepted { ballot: mine, slots: vec![commit.next()], commit_max: commit };
    assert_eq!(t.inject(other, f, accepted), vec![]);
    let ack = Message::HeartbeatAck { ballot: mine, round: 5, commit_max: commit };
    assert_eq!(t.inject(other, f, ack), vec![]);
    assert_eq!(t.replica(f).role(), RoleKind::Follower);

    // A Catchup with a gap: nothing is applied past the gap.
    let gap = AcceptedEntry { slot: commit.plus(2), ballot, value: value("bogus") };
    let catchup =
        Message::Catchup { entries: vec![gap], commit_max: commit.plus(2), genesis: None };
    let out = t.inject(other, f, catchup);
    assert!(!out.iter().any(|e| matches!(e, Effect::Apply { .. })), "{out:?}");
    assert_eq!(t.replica(f).commit_max(), commit);

    // An InstallSnapshot at or below the commit point: ignored, state untouched.
    for slot in [Slot(2), commit] {
        let snapshot = Snapshot {
            slot,
            data: vec![0; 8],
            schedule: Schedule::starting_with(t.genesis.clone()),
            timestamp: Time(0),
        };
        let out = t.inject(other, f, Message::InstallSnapshot { snapshot });
        assert_eq!(out, vec![], "snapshot at {slot:?}");
    }
    assert_eq!(t.replica(f).snapshot_slot(), Slot::ZERO);
    t.expect_commands(&[f], &["a", "b", "c"]);

    // A CatchupRequest beyond its commit point, and a JoinRequest naming itself.
    let request = Message::CatchupRequest { from_slot: commit.plus(5) };
    assert_eq!(t.inject(other, f, request), vec![]);
    let join = Message::JoinRequest { member: member(f) };
    assert_eq!(t.inject(other, f, join), vec![]);

    // The cluster carries on as if nothing happened.
    t.propose(leader, apps(["d"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 4);
    t.run_for(ms(500));
    assert_eq!(t.established_leader(), Some(leader));
    t.expect_commands(&[R1, R2, R3], &["a", "b", "c", "d"]);
}

/// Draws well-typed messages whose fields sit near the replica's own state, so
/// that many are plausible (matching ballots, slots just past the commit point).
struct Fuzzer {
    rng: Prng,
    memberships: Vec<Membership>,
    /// The last heartbeat round the replica sent, so acks can match it.
    round: u64,
    /// Slots of the last Accept the replica sent, so acceptances can match them.
    proposed: Vec<Slot>,
    /// The ballot of the replica's last pre-vote, so grants can match it.
    pre_vote: Option<Ballot>,
}

impl Fuzzer {
    fn id(&mut self) -> ReplicaId {
        ReplicaId(self.rng.range(0, 7))
    }

    fn ballot(&mut self, r: &Replica) -> Ballot {
        let near = if self.rng.chance(0.5) { r.promised() } else { r.ballot().unwrap_or_default() };
        match self.rng.range(0, 4) {
            0 => near,
            1 => {
                Ballot { round: near.round.saturating_add(self.rng.range(0, 3)), leader: self.id() }
            }
            2 => Ballot { round: near.round.saturating_sub(1), leader: self.id() },
            _ => Ballot { round: self.rng.range(0, 6), leader: self.id() },
        }
    }

    /// A ballot for an answer to a leader: usually its own, when it leads.
    fn answer_round(&mut self) -> u64 {
        if self.rng.chance(0.7) {
            self.round
        } else {
            self.rng.range(0, 5)
        }
    }

    fn answer_ballot(&mut self, r: &Replica) -> Ballot {
        match r.ballot() {
            Some(b) if self.rng.chance(0.7) => b,
            _ => self.ballot(r),
        }
    }

    /// A commit point reported by a follower: usually at or behind ours.
    fn their_commit(&mut self, r: &Replica) -> Slot {
        if self.rng.chance(0.8) {
            r.commit_max().saturating_sub(self.rng.range(0, 3))
        } else {
            self.slot(r)
        }
    }

    fn slot(&mut self, r: &Replica) -> Slot {
        Slot((r.commit_max().0 + self.rng.range(0, 20)).saturating_sub(4))
    }

    fn member(&mut self) -> Member {
        member(self.id())
    }

    fn command(&mut self) -> Command {
        match self.rng.range(0, 10) {
            0 => Command::Noop,
            1 => Command::Reconfigure(ConfigChange::AddLearner(self.member())),
            2 => Command::Reconfigure(ConfigChange::Promote(self.id())),
            3 if self.rng.chance(0.2) => Command::Reconfigure(ConfigChange::Remove(self.id())),
            4 => Command::Reconfigure(ConfigChange::Replace {
                remove: self.id(),
                promote: self.id(),
            }),
            _ => Command::App(vec![self.rng.range(0, 256) as u8; self.rng.range(0, 4) as usize]),
        }
    }

    fn value(&mut self) -> Value {
        let n = self.rng.range(0, 3);
        Value {
            timestamp: Time(self.rng.range(0, 1_000)),
            commands: (0..n).map(|_| self.command()).collect(),
        }
    }

    fn entries(&mut self, r: &Replica) -> Vec<AcceptedEntry> {
        let mut slot = self.slot(r);
        let contiguous = self.rng.chance(0.7);
        (0..self.rng.range(0, 5))
            .map(|_| {
                slot = if contiguous { slot.next() } else { self.slot(r) };
                AcceptedEntry { slot, ballot: self.ballot(r), value: self.value() }
            })
            .collect()
    }

    fn snapshot(&mut self, r: &Replica) -> Snapshot {
        let m = self.memberships[self.rng.index(self.memberships.len())].clone();
        let mut schedule = Schedule::starting_with(m);
        if self.rng.chance(0.3) {
            let change = ConfigChange::AddLearner(self.member());
            let at = self.slot(r).plus(5);
            schedule.schedule(&change, at);
        }
        let data = vec![self.rng.range(0, 256) as u8; self.rng.range(0, 16) as usize];
        Snapshot { slot: self.slot(r), data, schedule, timestamp: Time(self.rng.range(0, 1_000)) }
    }

    fn message(&mut self, r: &Replica) -> Message {
        // A pre-vote needs a quorum of grants before anything else can happen.
        if let Some(ballot) = self.pre_vote.filter(|_| self.rng.chance(0.2)) {
            let (promised, commit_max) = (r.promised(), self.their_commit(r));
            return Message::PreVoteReply { ballot, granted: true, promised, commit_max };
        }
        match self.rng.range(0, 13) {
            0 => Message::Prepare { ballot: self.ballot(r), from_slot: self.slot(r) },
            1 => Message::Promise {
                ballot: self.answer_ballot(r),
                commit_max: self.their_commit(r),
                accepted: self.entries(r),
            },
            2 => {
                let entries = self.entries(r).into_iter().map(|e| (e.slot, e.value)).collect();
                Message::Accept { ballot: self.ballot(r), entries, commit_max: self.slot(r) }
            }
            3 => {
                let slots = if self.rng.chance(0.6) {
                    self.proposed.clone()
                } else {
                    self.entries(r).into_iter().map(|e| e.slot).collect()
                };
                let commit_max = self.their_commit(r);
                Message::Accepted { ballot: self.answer_ballot(r), slots, commit_max }
            }
            4 => Message::Nack { promised: self.ballot(r), rejected: self.ballot(r) },
            5 => Message::Heartbeat {
                ballot: self.ballot(r),
                commit_max: self.slot(r),
                round: self.rng.range(0, 5),
            },
            6 => Message::HeartbeatAck {
                ballot: self.answer_ballot(r),
                round: self.answer_round(),
                commit_max: self.their_commit(r),
            },
            7 => Message::CatchupRequest { from_slot: self.slot(r) },
            8 => {
                let genesis = self.rng.chance(0.3).then(|| self.memberships[0].clone());
                Message::Catchup { entries: self.entries(r), commit_max: self.slot(r), genesis }
            }
            9 if self.rng.chance(0.3) => Message::InstallSnapshot { snapshot: self.snapshot(r) },
            9 => Message::JoinRequest { member: self.member() },
            10 => Message::JoinRefused,
            11 if self.rng.chance(0.5) => {
                Message::PreVote { ballot: self.ballot(r), commit_max: self.their_commit(r) }
            }
            11 => Message::PreVoteReply {
                ballot: match self.pre_vote {
                    Some(b) if self.rng.chance(0.8) => b,
                    _ => self.ballot(r),
                },
                granted: self.rng.chance(0.7),
                promised: self.ballot(r),
                commit_max: self.their_commit(r),
            },
            12 if self.rng.chance(0.3) => Message::Forward {
                commands: (0..self.rng.range(0, 4)).map(|_| self.command()).collect(),
            },
            12 if self.rng.chance(0.3) => Message::ForwardRefused {
                commands: (0..self.rng.range(0, 4)).map(|_| self.command()).collect(),
                leader_hint: Some(self.id()),
            },
            _ => Message::HeartbeatAck {
                ballot: self.answer_ballot(r),
                round: self.answer_round(),
                commit_max: self.their_commit(r),
            },
        }
    }
}

/// What one fuzz run reached, so the test can insist it explored something.
#[derive(Debug, Default)]
struct Coverage {
    inputs: u64,
    leader_inputs: u64,
    applied: u64,
    snapshots_installed: u64,
    reads_served: u64,
    removed: u64,
}

/// Feeds 10_000 random inputs (mostly messages from random senders) to a replica,
/// looping its messages to itself back as the shell would, checking invariants
/// after every step. When a replica is removed, its disk must recover cleanly and
/// a fresh one takes over.
fn fuzz(seed: u64, start: impl Fn(Membership) -> Replica) -> Coverage {
    let genesis = Membership::voters([member(R1), member(R2), member(R3)]);
    let mut with_learner = genesis.clone();
    with_learner.members.insert(R4, (member(R4), Role::Learner));
    let with_r4 = Membership::voters([member(R1), member(R2), member(R3), member(R4)]);
    let without_r1 = Membership::voters([member(R2), member(R3)]);
    let mut memberships = vec![genesis.clone(); 4];
    memberships.extend([with_learner, with_r4.clone(), with_r4, without_r1]);
    let mut fz = Fuzzer {
        rng: Prng::new(seed),
        memberships,
        round: 0,
        proposed: Vec::new(),
        pre_vote: None,
    };
    let mut r = start(genesis.clone());
    let mut disk = DurableState::default();
    let mut now = Time(0);
    let mut reads = 0;
    let mut to_self: Vec<Message> = Vec::new();
    let mut cov = Coverage::default();
    let recover = |disk: DurableState, now: Time| {
        let mut out = Vec::new();
        let r = Replica::recover(
            R1,
            "r1".into(),
            test_options(),
            Some(genesis.clone()),
            disk,
            now,
            &mut out,
        );
        r.check_invariants();
    };
    for i in 0..10_000 {
        let input = if let Some(msg) = to_self.pop() {
            Input::Message { from: r.id(), cluster: r.cluster(), msg }
        } else {
            now = now + Span(fz.rng.range(0, 30_000));
            if now >= r.next_deadline() {
                Input::Tick
            } else {
                match fz.rng.range(0, 40) {
                    0..=1 => Input::Tick,
                    2..=3 => {
                        Input::Propose((0..fz.rng.range(0, 4)).map(|_| fz.command()).collect())
                    }
                    4 => {
                        reads += 1;
                        Input::Read(ReadId(reads))
                    }
                    5 => Input::SnapshotTaken { slot: fz.slot(&r), data: vec![1, 2, 3] },
                    _ => {
                        // Mostly the replica's own cluster, sometimes a joiner that
                        // knows none or a stranger from another cluster.
                        let cluster = match fz.rng.range(0, 20) {
                            0 => None,
                            1 => Some(ClusterId(0xbad)),
                            _ => Some(CLUSTER),
                        };
                        Input::Message { from: fz.id(), cluster, msg: fz.message(&r) }
                    }
                }
            }
        };
        let described = format!("{input:?}");
        let mut out = Vec::new();
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = r.step(now, input, &mut out);
            r.check_invariants();
        }));
        if let Err(e) = step {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("seed {seed}, input #{i} at {now:?}: {described}\npanicked: {msg:?}\n{r:#?}");
        }
        cov.inputs += 1;
        cov.leader_inputs += u64::from(r.is_leader());
        for effect in out {
            match effect {
                Effect::Persist(op) => disk.apply(&op),
                Effect::Send { to, msg } if to == r.id() => to_self.push(msg),
                Effect::Send { msg: Message::Heartbeat { round, .. }, .. } => fz.round = round,
                Effect::Send { msg: Message::PreVote { ballot, .. }, .. } => {
                    fz.pre_vote = Some(ballot)
                }
                Effect::Send { msg: Message::Accept { entries, .. }, .. } => {
                    fz.proposed = entries.iter().map(|(slot, _)| *slot).collect();
                }
                Effect::Apply { .. } => cov.applied += 1,
                Effect::InstallSnapshot(_) => cov.snapshots_installed += 1,
                Effect::ReadReady { .. } => cov.reads_served += 1,
                _ => {}
            }
        }
        if r.role() == RoleKind::Removed {
            cov.removed += 1;
            recover(std::mem::take(&mut disk), now);
            r = start(genesis.clone());
            to_self.clear();
        }
    }
    recover(disk, now);
    cov
}

/// Extra fuzz seeds beyond the fixed one: `PAXOS_IT_FUZZ_SEEDS=500 cargo test ...`.
fn extra_seeds() -> u64 {
    std::env::var("PAXOS_IT_FUZZ_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn ten_thousand_random_messages_never_panic_a_founding_replica() {
    let start = |genesis| Replica::new(R1, "r1".into(), test_options(), CLUSTER, genesis, Time(0));
    let cov = fuzz(2024, start);
    assert!(cov.leader_inputs > 0 && cov.applied > 0, "the fuzz reached nothing: {cov:?}");
    assert!(cov.snapshots_installed > 0 && cov.removed > 0, "{cov:?}");
    for seed in 0..extra_seeds() {
        fuzz(seed, start);
    }
}

#[test]
fn ten_thousand_random_messages_never_panic_a_joining_replica() {
    let start = |_| Replica::join(R4, "r4".into(), test_options(), None, Time(0));
    let cov = fuzz(2025, start);
    assert!(cov.leader_inputs > 0 && cov.applied > 0, "the fuzz reached nothing: {cov:?}");
    for seed in 0..extra_seeds() {
        fuzz(seed, start);
    }
}
