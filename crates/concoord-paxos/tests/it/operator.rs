//! Faults operators cause every day: a process founded on an old member's address,
//! a replica cut off and coming back, a leader cut off from its followers, and a
//! crash in the middle of a catch-up. None of them may disturb a healthy cluster
//! or make a replica forget what it knew was chosen.

use crate::harness::*;
use concoord_paxos::{AcceptedEntry, Ballot, Effect, Message, PersistOp};
use concoord_wire::{ClusterId, ReplicaId, Slot};

const STRANGER: ReplicaId = ReplicaId(99);
const OTHER_CLUSTER: ClusterId = ClusterId(0xbad);

fn sends(effects: &[Effect]) -> Vec<&Message> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect()
}

#[test]
fn a_replica_of_another_cluster_is_ignored_whatever_ballot_it_sends() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let ballot = t.replica(leader).ballot().unwrap();
    let follower = *t.live().iter().find(|id| **id != leader).unwrap();
    let promised = t.replica(follower).promised();

    // A process founded on an old member's address: its own cluster, its own ballots.
    let high = Ballot { round: 1_000, leader: STRANGER };
    let stranger = Some(OTHER_CLUSTER);
    for to in [follower, leader] {
        for msg in [
            Message::Prepare { ballot: high, from_slot: Slot(1) },
            Message::Heartbeat { ballot: high, commit_max: Slot(50), round: 1 },
            Message::Accept { ballot: high, entries: Vec::new(), commit_max: Slot(50) },
            Message::PreVote { ballot: high, commit_max: Slot(50) },
            Message::CatchupRequest { from_slot: Slot(1) },
        ] {
            let effects = t.inject_as(STRANGER, stranger, to, msg);
            assert!(sends(&effects).is_empty(), "answered a stranger: {effects:?}");
            let foreign = Effect::Foreign { from: STRANGER, cluster: OTHER_CLUSTER };
            assert_eq!(effects, vec![foreign], "the shell is told, nothing else happens");
        }
    }
    t.run_for(ms(1_000));
    assert_eq!(t.replica(follower).promised(), promised, "no promise to a stranger");
    assert_eq!(t.leaders(), vec![leader]);
    assert_eq!(t.replica(leader).ballot(), Some(ballot), "the leader was not deposed");
    assert!(t.node(follower).foreign.iter().all(|f| *f == (STRANGER, OTHER_CLUSTER)));
}

#[test]
fn a_sender_that_knows_no_cluster_may_only_ask_to_join_or_catch_up() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let follower = *t.live().iter().find(|id| **id != leader).unwrap();
    let high = Ballot { round: 1_000, leader: STRANGER };
    t.propose(leader, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);

    let effects = t.inject_as(
        STRANGER,
        None,
        follower,
        Message::Prepare { ballot: high, from_slot: Slot(1) },
    );
    assert!(sends(&effects).is_empty(), "a joiner cannot take part in phase 1: {effects:?}");
    let effects =
        t.inject_as(STRANGER, None, leader, Message::CatchupRequest { from_slot: Slot(1) });
    assert!(
        sends(&effects).iter().any(|m| matches!(m, Message::Catchup { .. })),
        "a joiner gets the log: {effects:?}"
    );
}

#[test]
fn a_joiner_adopts_the_cluster_of_the_first_member_it_hears_from_and_then_ignores_others() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    t.propose(leader, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);
    t.join(R4, leader);
    t.run_until("R4 is a member", ms(5_000), |c| {
        c.replica(R4).membership().is_some_and(|m| m.is_member(R4))
    });
    assert_eq!(t.replica(R4).cluster(), Some(CLUSTER));
    assert!(
        t.node(R4).disk.cluster == Some(CLUSTER),
        "a durable joiner persists the cluster it adopted"
    );
    let high = Ballot { round: 1_000, leader: STRANGER };
    let effects = t.inject_as(
        STRANGER,
        Some(OTHER_CLUSTER),
        R4,
        Message::Prepare { ballot: high, from_slot: Slot(1) },
    );
    assert!(sends(&effects).is_empty());
    t.expect_commands(&[R4], &["a"]);
}

#[test]
fn a_follower_cut_off_and_coming_back_does_not_depose_a_healthy_leader() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let ballot = t.replica(leader).ballot();
    let lagger = *t.live().iter().find(|id| **id != leader).unwrap();

    // Cut off for several election timeouts, it asks to be elected again and again.
    t.isolate(lagger);
    t.propose(leader, apps(["a", "b"])).unwrap();
    t.run_for(ms(3_000));
    t.heal();
    t.run_until_applied(&[lagger], 2);
    t.run_for(ms(1_000));

    assert_eq!(t.leaders(), vec![leader], "{}", t.describe());
    assert_eq!(
        t.replica(leader).ballot(),
        ballot,
        "pre-vote kept the leader's ballot\n{}",
        t.describe()
    );
    assert!(
        t.replica(lagger).promised() <= ballot.unwrap(),
        "the lagger raised no promise above the leader's"
    );
}

#[test]
fn a_pre_vote_is_granted_only_to_a_voter_by_a_replica_that_hears_no_leader() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let follower = *t.live().iter().find(|id| **id != leader).unwrap();
    let other = *t.live().iter().find(|id| **id != leader && **id != follower).unwrap();
    let granted = |effects: &[Effect]| {
        sends(effects).iter().find_map(|m| match m {
            Message::PreVoteReply { granted, .. } => Some(*granted),
            _ => None,
        })
    };
    let ask = |id: ReplicaId| Message::PreVote {
        ballot: Ballot { round: 500, leader: id },
        commit_max: Slot(0),
    };

    // The leader is alive: nobody grants, not even to a voter.
    let effects = t.inject(other, follower, ask(other));
    assert_eq!(granted(&effects), Some(false), "granted while hearing from a leader");
    let effects = t.inject(other, leader, ask(other));
    assert_eq!(granted(&effects), Some(false), "a live leader granted");

    // The leader is gone, and so is the other follower: alone, this follower asks
    // for pre-votes in vain, and never raises its promise while it does.
    let promised = t.replica(follower).promised();
    t.crash(leader);
    t.crash(other);
    t.run_for(ms(2_000));
    assert_eq!(t.replica(follower).promised(), promised, "a lone follower inflated its ballot");
    // Now it hears no leader: a voter gets the grant, a non-member does not.
    let effects = t.inject(other, follower, ask(other));
    assert_eq!(granted(&effects), Some(true), "refused a voter after the leader died");
    let effects = t.inject(STRANGER, follower, ask(STRANGER));
    assert_eq!(granted(&effects), Some(false), "granted a replica that is not a voter");
    // A grant binds nothing: the follower's promise did not move.
    assert!(t.replica(follower).promised().round < 500);
}

#[test]
fn a_leader_cut_off_from_its_followers_steps_down_within_an_election_timeout() {
    let mut t = Cluster::new(3);
    let old = t.run_until_leader();
    t.isolate(old);
    let timeout = test_options().election_timeout_min;
    t.run_for(ms(2 * timeout.0 / 1_000 + 100));
    assert!(!t.replica(old).is_leader(), "an isolated leader kept leading\n{}", t.describe());
    let others: Vec<_> = t.live().into_iter().filter(|id| *id != old).collect();
    let new = t.run_until_leader_other_than(old);
    assert!(others.contains(&new));
    t.heal();
    t.propose(new, apps(["x"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);
}

#[test]
fn a_catch_up_writes_its_commit_point_in_the_same_sync_as_its_entries() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let lagger = *t.live().iter().find(|id| **id != leader).unwrap();
    t.isolate(lagger);
    t.propose(leader, apps(["a", "b", "c", "d"])).unwrap();
    let others: Vec<_> = t.live().into_iter().filter(|id| *id != lagger).collect();
    t.run_until_applied(&others, 4);
    let commit = t.replica(leader).commit_max();
    let entries: Vec<AcceptedEntry> = (1..=commit.0)
        .filter_map(|s| {
            let (ballot, value) = t.replica(leader).accepted(Slot(s))?;
            Some(AcceptedEntry { slot: Slot(s), ballot, value: value.clone() })
        })
        .collect();
    assert!(t.replica(lagger).commit_max() < commit);

    let from = t.replica(lagger).commit_max().next();
    let entries: Vec<AcceptedEntry> = entries.into_iter().filter(|e| e.slot >= from).collect();
    let last = entries.last().unwrap().slot;
    let effects =
        t.inject(leader, lagger, Message::Catchup { entries, commit_max: commit, genesis: None });

    // Everything up to the first Apply is one run of Persists (one sync), and it
    // includes the commit point: a crash after that sync keeps the entries chosen.
    let first_apply = effects.iter().position(|e| matches!(e, Effect::Apply { .. })).unwrap();
    let before: Vec<&Effect> = effects[..first_apply].iter().collect();
    assert!(before.iter().all(|e| matches!(e, Effect::Persist(_))), "{before:?}");
    assert!(
        before.iter().any(|e| matches!(e, Effect::Persist(PersistOp::Commit(s)) if *s == last)),
        "the commit point is not in the sync before the applies: {before:?}"
    );
    // The labels raised the promise on disk; memory agrees.
    assert_eq!(t.replica(lagger).promised(), t.node(lagger).disk.promised);
    // A crash right after that sync: the replica recovers everything as chosen.
    t.crash(lagger);
    t.restart(lagger);
    assert_eq!(t.replica(lagger).commit_max(), last, "recovered the caught-up commit point");
    t.replica(lagger).check_invariants();
}

/// docs/consensus.md §j point 5: a caught-up entry keeps the higher of the label it
/// held and the label it arrives with.
#[test]
fn catch_up_keeps_the_higher_of_the_held_and_the_incoming_label() {
    use concoord_paxos::Value;
    use concoord_wire::Time;
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    t.propose(leader, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);
    let follower = *t.live().iter().find(|id| **id != leader).unwrap();
    let b = t.replica(leader).ballot().unwrap();
    // Keep the leader from telling the follower anything more on its own.
    t.cut(leader, follower);
    let slot = t.replica(follower).commit_max().next();
    let w = Value { timestamp: Time(1), commands: apps(["w"]) };
    t.inject(
        leader,
        follower,
        Message::Accept { ballot: b, entries: vec![(slot, w.clone())], commit_max: Slot(0) },
    );
    assert_eq!(t.replica(follower).accepted(slot).map(|(l, _)| l), Some(b));
    // The chosen value arrives by catch-up under a lower label.
    let lower = Ballot { round: 0, leader: R1 };
    let entry = AcceptedEntry { slot, ballot: lower, value: w };
    t.inject(
        leader,
        follower,
        Message::Catchup { entries: vec![entry], commit_max: slot, genesis: None },
    );
    assert_eq!(t.replica(follower).commit_max(), slot, "the caught-up entry is applied");
    assert_eq!(
        t.replica(follower).accepted(slot).map(|(l, _)| l),
        Some(b),
        "the label was lowered from {b:?}"
    );
}

/// docs/consensus.md §j point 6: a leader that learns through catch-up that a higher
/// ballot chose a slot it proposed steps down before its commit point covers that slot,
/// so its followers never mark its losing proposal chosen.
#[test]
fn a_leader_that_catches_up_a_higher_label_steps_down_before_announcing_it() {
    use concoord_paxos::Value;
    use concoord_wire::Time;
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    t.propose(leader, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);
    let b = t.replica(leader).ballot().unwrap();
    // Its next proposal reaches nobody: only its own acceptor holds it.
    t.isolate(leader);
    t.propose(leader, apps(["lost"])).unwrap();
    t.run_for(ms(5));
    let slot = t.replica(leader).commit_max().next();
    assert_eq!(t.replica(leader).accepted(slot).map(|(l, _)| l), Some(b));
    // A higher ballot chose another value there; the leader catches it up.
    let other = *t.live().iter().find(|id| **id != leader).unwrap();
    let higher = Ballot { round: b.round + 1, leader: other };
    let w = Value { timestamp: Time(1), commands: apps(["won"]) };
    let entry = AcceptedEntry { slot, ballot: higher, value: w };
    let effects = t.inject(
        other,
        leader,
        Message::Catchup { entries: vec![entry], commit_max: slot, genesis: None },
    );
    assert!(!t.replica(leader).is_leader(), "kept leading after a higher label: {effects:?}");
    // Nothing it sent under its own ballot announces a commit point over that slot.
    for e in &effects {
        if let Effect::Send {
            msg:
                Message::Heartbeat { ballot, commit_max, .. }
                | Message::Accept { ballot, commit_max, .. },
            ..
        } = e
        {
            assert!(!(*ballot == b && *commit_max >= slot), "announced {commit_max:?} under {b:?}");
        }
    }
    assert_eq!(t.replica(leader).commit_max(), slot);
    t.heal();
    t.run_for(ms(2_000));
    let applied = t.commands(leader);
    assert!(
        applied.contains(&"won".to_string()) && !applied.contains(&"lost".to_string()),
        "{applied:?}"
    );
}

/// docs/consensus.md §j point 6, the snapshot case: a snapshot does not say at which
/// ballots its slots were chosen, so a leader that installs one covering a slot it
/// proposed steps down before any message of its ballot announces that commit point.
#[test]
fn a_leader_that_installs_a_snapshot_over_its_proposal_steps_down_before_announcing_it() {
    use concoord_paxos::{Schedule, Snapshot};
    use concoord_wire::Time;
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    t.propose(leader, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);
    let b = t.replica(leader).ballot().unwrap();
    // Its next proposal reaches nobody: only its own acceptor holds it.
    t.isolate(leader);
    t.propose(leader, apps(["lost"])).unwrap();
    t.run_for(ms(5));
    let slot = t.replica(leader).commit_max().next();
    assert_eq!(t.replica(leader).accepted(slot).map(|(l, _)| l), Some(b));
    // The state after another value was chosen there arrives as a snapshot.
    let mut data = 2u64.to_le_bytes().to_vec();
    for command in ["a", "won"] {
        data.extend((command.len() as u32).to_le_bytes());
        data.extend(command.as_bytes());
    }
    let schedule = Schedule::starting_with(t.genesis.clone());
    let snapshot = Snapshot { slot, data, schedule, timestamp: Time(1) };
    let other = *t.live().iter().find(|id| **id != leader).unwrap();
    let effects = t.inject(other, leader, Message::InstallSnapshot { snapshot });
    assert!(!t.replica(leader).is_leader(), "kept leading over a snapshot: {effects:?}");
    assert_eq!(t.replica(leader).commit_max(), slot);
    for e in &effects {
        if let Effect::Send {
            msg:
                Message::Heartbeat { ballot, commit_max, .. }
                | Message::Accept { ballot, commit_max, .. },
            ..
        } = e
        {
            assert!(!(*ballot == b && *commit_max >= slot), "announced {commit_max:?} under {b:?}");
        }
    }
    assert!(!t.commands(leader).contains(&"lost".to_string()), "{:?}", t.commands(leader));
}

/// A crash during the catch-up's sync may tear it: the log keeps a prefix of its
/// records. Whatever prefix survives, the replica recovers to a state that passes
/// its invariants (no run of entries above the durable commit point longer than
/// `accept_ahead_max` allows), and recovers every entry whose commit point made it.
#[test]
fn a_torn_catch_up_recovers_whatever_prefix_reached_the_disk() {
    use concoord_paxos::{Options, Replica};
    let opts = Options { alpha: 2, accept_ahead_max: 4, ..test_options() };
    let mut t = Cluster::with_options(3, opts.clone());
    let leader = t.run_until_leader();
    let lagger = *t.live().iter().find(|id| **id != leader).unwrap();
    t.isolate(lagger);
    let others: Vec<_> = t.live().into_iter().filter(|id| *id != lagger).collect();
    for i in 0..20 {
        t.propose(leader, apps([format!("c{i}")])).unwrap();
        t.run_until_applied(&others, i + 1);
    }
    let commit = t.replica(leader).commit_max();
    let from = t.replica(lagger).commit_max().next();
    let entries: Vec<AcceptedEntry> = (from.0..=commit.0)
        .filter_map(|s| {
            let (ballot, value) = t.replica(leader).accepted(Slot(s))?;
            Some(AcceptedEntry { slot: Slot(s), ballot, value: value.clone() })
        })
        .collect();
    assert!(entries.len() as u64 > 2 * opts.accept_ahead_max, "too few slots to tear");
    let disk = t.node(lagger).disk.clone();
    let effects =
        t.inject(leader, lagger, Message::Catchup { entries, commit_max: commit, genesis: None });
    let ops: Vec<PersistOp> = effects
        .iter()
        .take_while(|e| matches!(e, Effect::Persist(_)))
        .filter_map(|e| match e {
            Effect::Persist(op) => Some(op.clone()),
            _ => None,
        })
        .collect();
    assert!(!ops.is_empty());
    for keep in 0..=ops.len() {
        let mut torn = disk.clone();
        for op in &ops[..keep] {
            torn.apply(op);
        }
        let mut out = Vec::new();
        let base = Some(t.replica(leader).schedule().at(Slot(1)).unwrap().clone());
        let r =
            Replica::recover(lagger, "x".into(), opts.clone(), base, torn.clone(), t.now, &mut out);
        r.check_invariants();
        assert!(r.commit_max() >= torn.commit_max, "prefix {keep}: commit point lost");
    }
}

/// Cluster time never goes backwards (docs/consensus.md §e): a leader that learns,
/// after its election, a chosen entry stamped later than anything it adopted (here by
/// catch-up, from a predecessor whose clock ran ahead) stamps its next proposal no
/// earlier than that entry. Before the fix its floor came from phase 1 only, and it
/// stamped the next slot with its own, earlier clock.
#[test]
fn a_leader_stamps_no_earlier_than_an_entry_it_caught_up_after_its_election() {
    use concoord_paxos::Value;
    use concoord_wire::Time;
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    t.propose(leader, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);
    let other = *t.live().iter().find(|id| **id != leader).unwrap();
    let slot = t.replica(leader).commit_max().next();
    // Chosen at a lower label by a predecessor whose clock read a day ahead.
    let ahead = Time(t.replica(leader).accepted(Slot(1)).unwrap().1.timestamp.0 + 86_400_000_000);
    let entry = AcceptedEntry {
        slot,
        ballot: Ballot { round: 0, leader: other },
        value: Value { timestamp: ahead, commands: apps(["from the past leader"]) },
    };
    t.inject(
        other,
        leader,
        Message::Catchup { entries: vec![entry], commit_max: slot, genesis: None },
    );
    assert!(t.replica(leader).is_leader());
    assert_eq!(t.replica(leader).commit_max(), slot);
    t.propose(leader, apps(["b"])).unwrap();
    t.run_until_applied(&[leader], 3);
    let (_, next) = t.replica(leader).accepted(slot.next()).unwrap();
    assert!(
        next.timestamp >= ahead,
        "slot {:?} stamped {:?}, before the caught-up slot's {ahead:?}",
        slot.next(),
        next.timestamp
    );
}
