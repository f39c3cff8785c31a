//! Membership: a new replica joins as a learner, catches up (from a snapshot when
//! the log was truncated), is promoted and then counts in quorums; a change chosen
//! at slot `s` governs slots from `s + alpha` on, not earlier, not later.

use crate::harness::*;
use concoord_paxos::{Bug, Command, ConfigChange, Message, Options};
use concoord_wire::{ReplicaId, Slot};

#[test]
fn a_joining_replica_catches_up_from_a_snapshot_is_promoted_and_then_holds_up_a_quorum() {
    let opts = Options { batch_commands_max: 1, log_keep_after_snapshot: 5, ..test_options() };
    let mut t = Cluster::with_options(3, opts);
    t.snapshot_every = Some(10);
    let leader = t.run_until_leader();
    let first: Vec<String> = (0..60).map(|i| format!("c{i}")).collect();
    t.propose(leader, apps(&first)).unwrap();
    t.run_until_applied(&[R1, R2, R3], 60);
    for id in [R1, R2, R3] {
        assert!(t.replica(id).accepted(Slot(1)).is_none(), "{id:?} truncated its log");
    }

    let bootstrap = t.live().into_iter().find(|id| *id != leader).unwrap();
    t.join(R4, bootstrap);
    t.run_until("R4 votes in every replica's membership", ms(10_000), |c| {
        c.live().iter().all(|id| c.replica(*id).membership().is_some_and(|m| m.is_voter(R4)))
    });

    assert!(t.node(R4).snapshots_installed >= 1, "R4 caught up from a snapshot");
    t.run_until_applied(&[R4], 60);
    t.expect_commands(&[R1, R2, R3, R4], &first);
    let changes: Vec<ConfigChange> =
        t.node(leader).configs.iter().map(|(_, change)| change.clone()).collect();
    assert_eq!(changes, vec![ConfigChange::AddLearner(member(R4)), ConfigChange::Promote(R4)]);

    // Four voters: losing an original member leaves exactly a quorum, R4 included.
    t.crash(leader);
    let new = t.run_until_leader();
    let survivors = t.live();
    assert!(survivors.contains(&R4));
    t.propose(new, apps(["after"])).unwrap();
    t.run_until_applied(&survivors, 61);
    let mut all = first.clone();
    all.push("after".into());
    t.expect_commands(&survivors, &all);
}

/// A 4-replica cluster removes one follower; returns the cluster, the removed
/// replica and the slot at which the change was chosen.
fn remove_a_follower(bugs: &[Bug]) -> (Cluster, ReplicaId, Slot) {
    let opts = Options { bugs: bugs.iter().copied().collect(), ..test_options() };
    let mut t = Cluster::with_options(4, opts);
    t.record_sends = true;
    let leader = t.run_until_leader();
    t.propose(leader, apps(["a", "b"])).unwrap();
    t.run_until_applied(&[R1, R2, R3, R4], 2);

    let victim = *t.live().iter().rev().find(|id| **id != leader).unwrap();
    let remove = Command::Reconfigure(ConfigChange::Remove(victim));
    t.propose(leader, vec![remove]).unwrap();
    t.run_until("the removed replica learns it", ms(5_000), |c| c.node(victim).removed);
    let chosen_at = t.node(leader).configs[0].0;
    assert_eq!(t.node(leader).configs, vec![(chosen_at, ConfigChange::Remove(victim))]);
    (t, victim, chosen_at)
}

/// Whether every remaining replica schedules the change at exactly `s + alpha`,
/// and the leader stopped sending the removed replica Accepts exactly there.
fn takes_effect_at_s_plus_alpha(t: &Cluster, victim: ReplicaId, s: Slot) -> Result<(), String> {
    let alpha = t.opts.alpha;
    let last_old = s.plus(alpha - 1);
    let first_new = s.plus(alpha);
    for id in t.live().into_iter().filter(|id| *id != victim) {
        let schedule = t.replica(id).schedule();
        if !schedule.at(last_old).is_some_and(|m| m.is_voter(victim)) {
            return Err(format!("{id:?}: {victim:?} no longer votes at {last_old:?}"));
        }
        if schedule.at(first_new).is_none_or(|m| m.is_member(victim)) {
            return Err(format!("{id:?}: {victim:?} still a member at {first_new:?}"));
        }
    }
    let accepted_slots = t.sends.iter().filter(|s| s.to == victim).flat_map(|s| match &s.msg {
        Message::Accept { entries, .. } => entries.iter().map(|(slot, _)| *slot).collect(),
        _ => Vec::new(),
    });
    let last_sent = accepted_slots.max();
    if last_sent != Some(last_old) {
        return Err(format!("last Accept to {victim:?} was for {last_sent:?}, not {last_old:?}"));
    }
    Ok(())
}

#[test]
fn a_membership_change_chosen_at_s_takes_effect_exactly_at_s_plus_alpha() {
    let (mut t, victim, s) = remove_a_follower(&[]);
    takes_effect_at_s_plus_alpha(&t, victim, s).unwrap();
    assert!(t.replica(victim).commit_max() >= s.plus(t.opts.alpha - 1));

    // The three that remain carry on without it.
    let rest: Vec<ReplicaId> = t.live().into_iter().filter(|id| *id != victim).collect();
    let leader = t.run_until_leader();
    assert_ne!(leader, victim);
    t.propose(leader, apps(["c"])).unwrap();
    t.run_until_applied(&rest, 3);
    t.expect_commands(&rest, &["a", "b", "c"]);
    t.expect_commands(&[victim], &["a", "b"]);
}

/// The check can fail: with changes taking effect at the next slot, it notices.
#[test]
fn the_effective_slot_check_catches_immediate_config_changes() {
    let (t, victim, s) = remove_a_follower(&[Bug::ImmediateConfigChange]);
    assert!(takes_effect_at_s_plus_alpha(&t, victim, s).is_err());
}

#[test]
fn a_joiner_replays_the_whole_log_from_slot_one_when_nothing_was_truncated() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    for c in ["a", "b", "c"] {
        t.propose(leader, apps([c])).unwrap();
        t.run_for(ms(5));
    }
    t.run_until_applied(&[R1, R2, R3], 3);
    t.join(R4, leader);
    t.run_until("R4 votes everywhere", ms(10_000), |c| {
        c.live().iter().all(|id| c.replica(*id).membership().is_some_and(|m| m.is_voter(R4)))
    });
    t.run_until_applied(&[R4], 3);
    assert_eq!(t.node(R4).snapshots_installed, 0, "no snapshot was needed");
    assert_eq!(t.node(R4).disk.genesis.as_ref(), Some(&t.genesis), "R4 persisted the genesis");
    t.expect_commands(&[R1, R2, R3, R4], &["a", "b", "c"]);
}

#[test]
fn removing_the_leader_hands_leadership_to_a_remaining_replica() {
    let mut t = Cluster::new(3);
    let old = t.run_until_leader();
    t.propose(old, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);

    t.propose(old, vec![Command::Reconfigure(ConfigChange::Remove(old))]).unwrap();
    t.run_until("the leader learns it was removed", ms(5_000), |c| c.node(old).removed);
    let rest: Vec<ReplicaId> = t.live().into_iter().filter(|id| *id != old).collect();
    let new = t.run_until_leader_other_than(old);
    assert!(rest.contains(&new));
    assert!(!t.replica(old).is_leader());
    t.propose(new, apps(["b"])).unwrap();
    t.run_until_applied(&rest, 2);
    t.expect_commands(&rest, &["a", "b"]);
    for id in &rest {
        let m = t.replica(*id).membership().unwrap();
        assert!(!m.is_member(old) && m.voter_count() == 2, "{id:?}: {m:?}");
    }
}
