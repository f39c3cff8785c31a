//! A leader cut off from the others: it can neither commit nor serve reads, and it
//! steps down once it hears the new leader. Reads on a connected leader are served
//! and reflect everything applied before they were asked.

use crate::harness::*;
use concoord_paxos::{Bug, Command, ConfigChange, Options};
use concoord_wire::ReplicaId;

/// What an isolated leader managed to do.
#[derive(Debug, Default)]
struct Outcome {
    /// `x`, proposed on the isolated leader, was applied somewhere while cut off.
    applied_while_isolated: bool,
    /// The read asked of the isolated leader was served while cut off.
    read_served_while_isolated: bool,
    still_leads_after_heal: bool,
    read_aborted_after_heal: bool,
    read_served_after_heal: bool,
    applied_after_heal: bool,
    /// Every replica applied the same commands after the heal.
    converged: bool,
    violations: Vec<String>,
}

fn isolated_leader(bugs: &[Bug]) -> Outcome {
    let opts = Options { bugs: bugs.iter().copied().collect(), ..test_options() };
    let mut t = Cluster::with_options(3, opts);
    t.strict = bugs.is_empty();
    let old = t.run_until_leader();
    t.propose(old, apps(["a"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 1);

    t.isolate(old);
    // It still believes it leads, so it takes the command and the read.
    t.propose(old, apps(["x"])).unwrap();
    let read = t.read(old).unwrap();
    let new = t.run_until_leader_other_than(old);
    let others: Vec<ReplicaId> = t.live().into_iter().filter(|id| *id != old).collect();
    t.propose(new, apps(["y"])).unwrap();
    t.run_until_applied(&others, 2);
    t.run_for(ms(2_000));
    let has_x = |t: &Cluster| t.nodes.keys().any(|id| t.commands(*id).contains(&"x".to_string()));
    let mut outcome = Outcome {
        applied_while_isolated: has_x(&t),
        read_served_while_isolated: t.node(old).reads_ready.contains(&read),
        ..Outcome::default()
    };

    t.heal();
    t.run_for(ms(2_000));
    outcome.still_leads_after_heal = t.replica(old).is_leader();
    outcome.read_aborted_after_heal = t.node(old).reads_aborted.contains(&read);
    outcome.read_served_after_heal = t.node(old).reads_ready.contains(&read);
    outcome.applied_after_heal = has_x(&t);
    let reference = t.commands(new);
    outcome.converged =
        [R1, R2, R3].iter().all(|id| t.commands(*id) == reference) && reference == ["a", "y"];
    outcome.violations = std::mem::take(&mut t.violations);
    outcome
}

#[test]
fn a_partitioned_leader_commits_nothing_serves_no_read_and_steps_down_when_healed() {
    let o = isolated_leader(&[]);
    assert!(!o.applied_while_isolated, "its proposal was applied: {o:?}");
    assert!(!o.read_served_while_isolated, "it served a read without a quorum: {o:?}");
    assert!(!o.still_leads_after_heal, "it did not step down: {o:?}");
    assert!(o.read_aborted_after_heal, "its pending read was not aborted: {o:?}");
    assert!(!o.read_served_after_heal, "{o:?}");
    assert!(!o.applied_after_heal, "the lost proposal resurfaced: {o:?}");
    assert!(o.converged, "{o:?}");
    assert!(o.violations.is_empty(), "{o:?}");
}

/// The scenario can fail: with the leader counting its own acceptance as a quorum,
/// the isolated leader applies its command and the replicas disagree.
#[test]
fn the_partition_scenario_catches_commit_on_minority() {
    let o = isolated_leader(&[Bug::CommitOnMinority]);
    assert!(o.applied_while_isolated, "{o:?}");
    assert!(o.violations.iter().any(|v| v.starts_with("agreement")), "{o:?}");
}

#[test]
fn the_partition_scenario_catches_reads_without_a_barrier() {
    let o = isolated_leader(&[Bug::ReadWithoutBarrier]);
    assert!(o.read_served_while_isolated, "{o:?}");
}

#[test]
fn a_read_on_the_leader_is_served_once_a_quorum_confirms_it_and_sees_every_applied_command() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    t.propose(leader, apps(["a", "b"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 2);

    // The harness fails the run if a read is served from state older than what
    // was applied anywhere when it was asked.
    let read = t.read(leader).unwrap();
    assert!(t.node(leader).reads_ready.is_empty(), "served before any quorum round trip");
    t.run_until("the read is served", ms(1_000), |c| c.node(leader).reads_ready.contains(&read));
    t.expect_commands(&[leader], &["a", "b"]);

    // A read asked while a proposal is in flight is still served (the harness
    // checks it reflects everything applied anywhere when it was asked).
    t.propose(leader, apps(["c"])).unwrap();
    let read = t.read(leader).unwrap();
    t.run_until("the second read is served", ms(1_000), |c| {
        c.node(leader).reads_ready.contains(&read)
    });
    assert!(t.node(leader).reads_aborted.is_empty());
}

/// More seeds for the storm: `PAXOS_IT_SEEDS=200 cargo test ...`.
fn extra_seeds() -> u64 {
    std::env::var("PAXOS_IT_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Random isolations, one-way cuts, crashes, restarts, joins and removals under
/// steady proposals, with snapshots; the harness checks agreement, the barrier and
/// reads on every step. After the storm the network heals, everyone restarts, and
/// every member of the final membership converges.
fn storm(seed: u64) {
    let _reproduce = Reproduce(format!(
        "storm({seed}): PAXOS_IT_SEEDS={} cargo test --release -p concoord-paxos --test it storm",
        seed.saturating_sub(99)
    ));
    let mut rng = concoord_paxos::Prng::new(seed);
    let size = if rng.chance(0.5) { 3 } else { 5 };
    let opts = Options {
        seed,
        batch_commands_max: 4,
        log_keep_after_snapshot: rng.range(2, 40),
        ..test_options()
    };
    let mut t = Cluster::with_options(size, opts);
    t.fsync = concoord_wire::Span(rng.range(0, 1_500));
    t.jitter = concoord_wire::Span(rng.range(0, 3_000));
    t.loss = if rng.chance(0.5) { 0.05 } else { 0.0 };
    t.duplicate = if rng.chance(0.5) { 0.05 } else { 0.0 };
    if rng.chance(0.6) {
        t.snapshot_every = Some(rng.range(5, 60));
    }
    let mut next = 0;
    let mut next_id = size + 1;
    for _ in 0..60 {
        let ids: Vec<ReplicaId> = t.nodes.keys().copied().collect();
        let leaders = t.leaders();
        if let Some(leader) = leaders.last() {
            let batch: Vec<String> = (next..next + 3).map(|i| format!("s{seed}.{i}")).collect();
            next += 3;
            let _ = t.propose(*leader, apps(&batch));
            if rng.chance(0.1) {
                let _ = t.read(*leader);
            }
        }
        let id = ids[rng.index(ids.len())];
        let up = t.live().len();
        match rng.range(0, 9) {
            0 => t.isolate(id),
            1 => t.cut(id, ids[rng.index(ids.len())]),
            2 | 3 => t.heal(),
            4 if t.node(id).replica.is_some() && up > ids.len() / 2 + 1 => t.crash(id),
            5 if t.node(id).replica.is_none() => t.restart(id),
            6 if next_id < 9 => {
                let bootstrap = t.live()[rng.index(up)];
                t.join(ReplicaId(next_id), bootstrap);
                next_id += 1;
            }
            7 => {
                if let (Some(leader), true) = (leaders.last(), rng.chance(0.5)) {
                    let remove = Command::Reconfigure(ConfigChange::Remove(id));
                    let _ = t.propose(*leader, vec![remove]);
                }
            }
            _ => {}
        }
        t.run_for(concoord_wire::Span(rng.range(0, 400_000)));
    }
    t.heal();
    t.loss = 0.0;
    for id in t.nodes.keys().copied().collect::<Vec<_>>() {
        if t.node(id).replica.is_none() {
            t.restart(id);
        }
    }
    // A leader that is deposed drops what it had queued (clients retry), so keep
    // proposing a fresh marker until one is applied by every member.
    let done = |c: &Cluster| {
        let Some(leader) = c.established_leader() else { return false };
        let members = c.replica(leader).schedule().latest().unwrap();
        members.member_ids().all(|id| {
            c.nodes.contains_key(&id)
                && c.commands(id).last().is_some_and(|l| l.starts_with("last"))
        })
    };
    for attempt in 0..20 {
        let leader = t.run_until_leader();
        let _ = t.propose(leader, apps([format!("last{attempt}")]));
        t.run_for(ms(1_000));
        if done(&t) {
            break;
        }
    }
    assert!(done(&t), "seed {seed}: the cluster did not converge\n{}", t.describe());
    let leader = t.established_leader().unwrap();
    let reference = t.commands(leader);
    let members: Vec<ReplicaId> =
        t.replica(leader).schedule().latest().unwrap().member_ids().collect();
    t.expect_commands(&members, &reference);
}

#[test]
fn a_storm_of_partitions_and_crashes_never_breaks_agreement_and_the_cluster_converges() {
    for seed in 1..=20 {
        storm(seed);
    }
    for seed in 0..extra_seeds() {
        storm(100 + seed);
    }
}
