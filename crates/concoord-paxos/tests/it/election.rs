//! Leader election and ordering: one leader, one order, and the order survives
//! the leader's crash.

use crate::harness::*;
use concoord_paxos::Rejected;

#[test]
fn three_replicas_elect_one_leader_and_apply_commands_in_the_same_order() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let ballot = t.replica(leader).ballot();

    t.propose(leader, apps(["a", "b", "c"])).unwrap();
    t.propose(leader, apps(["d"])).unwrap();
    t.propose(leader, apps(["e", "f"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 6);
    t.run_for(ms(2_000));

    assert_eq!(t.leaders(), vec![leader], "exactly one replica leads\n{}", t.describe());
    assert_eq!(t.replica(leader).ballot(), ballot, "no election churn on a healthy network");
    for id in [R1, R2, R3] {
        assert_eq!(t.replica(id).leader_hint(), Some(leader), "{id:?} knows the leader");
        assert_eq!(t.replica(id).commit_max(), t.replica(leader).commit_max());
    }
    t.expect_commands(&[R1, R2, R3], &["a", "b", "c", "d", "e", "f"]);
}

#[test]
fn a_follower_forwards_proposals_to_the_leader_and_refuses_reads_naming_it() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    t.run_for(ms(100));
    let follower = t.live().into_iter().find(|id| *id != leader).unwrap();

    // A command given to a follower that hears its leader goes to the leader.
    assert_eq!(t.propose(follower, apps(["x"])), Ok(()));
    t.run_until_applied(&[R1, R2, R3], 1);
    t.expect_commands(&[R1, R2, R3], &["x"]);
    // Reads need the leader's read barrier: the follower names the leader.
    let hint = Some(leader);
    assert_eq!(t.read(follower), Err(Rejected::NotLeader { leader_hint: hint }));
}

#[test]
fn a_follower_that_hears_no_leader_refuses_proposals() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let follower = t.live().into_iter().find(|id| *id != leader).unwrap();
    t.isolate(follower);
    t.run_for(ms(400));
    assert!(matches!(t.propose(follower, apps(["x"])), Err(Rejected::NotLeader { .. })));
    t.heal();
    t.run_for(ms(1_000));
    assert!(t.commands(follower).is_empty(), "a refused command is never applied");
}

#[test]
fn commands_forwarded_to_a_replica_that_no_longer_leads_come_back_to_the_forwarder() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let follower = t.live().into_iter().find(|id| *id != leader).unwrap();
    let other = t.live().into_iter().find(|id| *id != leader && *id != follower).unwrap();
    // The follower believes `other` leads: `other` hands the commands back.
    let effects =
        t.inject(follower, other, concoord_paxos::Message::Forward { commands: apps(["y"]) });
    assert!(
        effects.iter().any(|e| matches!(
            e,
            concoord_paxos::Effect::Send {
                msg: concoord_paxos::Message::ForwardRefused { .. },
                ..
            }
        )),
        "{effects:?}"
    );
}

#[test]
fn when_the_leader_crashes_the_survivors_elect_another_and_keep_everything_committed() {
    let mut t = Cluster::new(3);
    let old = t.run_until_leader();
    t.propose(old, apps(["a", "b", "c"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 3);

    t.crash(old);
    let new = t.run_until_leader();
    assert_ne!(new, old, "a crashed replica cannot lead");
    let survivors = t.live();
    t.expect_commands(&survivors, &["a", "b", "c"]);

    t.propose(new, apps(["d", "e"])).unwrap();
    t.run_until_applied(&survivors, 5);
    t.expect_commands(&survivors, &["a", "b", "c", "d", "e"]);

    // The old leader comes back from its disk as a follower and catches up.
    t.restart(old);
    t.run_until_applied(&[old], 5);
    t.run_for(ms(1_000));
    assert_eq!(t.leaders(), vec![new], "the restarted replica follows\n{}", t.describe());
    t.expect_commands(&[R1, R2, R3], &["a", "b", "c", "d", "e"]);
}

#[test]
fn five_replicas_survive_two_crashes_stall_at_three_and_resume_when_one_returns() {
    let mut t = Cluster::new(5);
    let first = t.run_until_leader();
    t.propose(first, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3, R4, R5], 1);

    t.crash(first);
    let other = *t.live().iter().find(|id| **id != first).unwrap();
    t.crash(other);
    let leader = t.run_until_leader();
    t.propose(leader, apps(["b"])).unwrap();
    let three = t.live();
    t.run_until_applied(&three, 2);

    // A third crash leaves two of five: nothing more may be chosen.
    let victim = *t.live().iter().find(|id| **id != leader).unwrap();
    t.crash(victim);
    let _ = t.propose(leader, apps(["c"]));
    t.run_for(ms(3_000));
    let two = t.live();
    t.expect_commands(&two, &["a", "b"]);
    assert_eq!(t.established_leader(), None, "no leader without a quorum\n{}", t.describe());

    // One comes back from its disk: three of five again, and work resumes.
    t.restart(victim);
    let leader = t.run_until_leader();
    let _ = t.propose(leader, apps(["d"]));
    let up = t.live();
    t.run_until("the cluster commits again", ms(5_000), |c| {
        up.iter().all(|id| c.commands(*id).last().is_some_and(|last| last == "d"))
    });
    let reference = t.commands(leader);
    assert!(reference == ["a", "b", "d"] || reference == ["a", "b", "c", "d"], "{reference:?}");
    t.expect_commands(&up, &reference);
}

#[test]
fn a_follower_cut_off_for_hundreds_of_slots_catches_up_when_the_partition_heals() {
    let opts = concoord_paxos::Options { batch_commands_max: 1, ..test_options() };
    let mut t = Cluster::with_options(3, opts);
    let leader = t.run_until_leader();
    let lagger = *t.live().iter().find(|id| **id != leader).unwrap();
    t.isolate(lagger);
    let commands: Vec<String> = (0..600).map(|i| format!("c{i}")).collect();
    t.propose(leader, apps(&commands)).unwrap();
    let others: Vec<_> = t.live().into_iter().filter(|id| *id != lagger).collect();
    t.run_until_applied(&others, 600);
    assert!(t.commands(lagger).is_empty());

    t.heal();
    t.run_until_applied(&[lagger], 600);
    t.expect_commands(&[R1, R2, R3], &commands);
    assert_eq!(t.established_leader(), Some(leader), "the lagger did not disrupt the leader");
}
