//! Durable restart: a replica comes back from its `DurableState`, replays what it
//! knows is chosen, and catches up on what it missed; a crash loses only writes
//! that were never synced, and the replica never acted on those.

use crate::harness::*;
use concoord_paxos::{Bug, Options, Prng};
use concoord_wire::{Slot, Span};

#[test]
fn a_durable_replica_recovers_from_its_disk_replays_its_chosen_entries_and_catches_up() {
    let mut t = Cluster::new(3);
    let leader = t.run_until_leader();
    let follower = t.live().into_iter().find(|id| *id != leader).unwrap();
    for c in ["a", "b", "c"] {
        t.propose(leader, apps([c])).unwrap();
    }
    t.run_until_applied(&[R1, R2, R3], 3);
    let commit_before = t.replica(follower).commit_max();

    t.crash(follower);
    t.propose(leader, apps(["d", "e"])).unwrap();
    let others: Vec<_> = t.live();
    t.run_until_applied(&others, 5);

    t.restart(follower);
    // Before it hears from anyone, it has replayed what its disk says is chosen.
    t.expect_commands(&[follower], &["a", "b", "c"]);
    assert_eq!(t.replica(follower).commit_max(), commit_before);
    assert_eq!(t.node(follower).app.applied, commit_before);

    t.run_until_applied(&[follower], 5);
    t.expect_commands(&[R1, R2, R3], &["a", "b", "c", "d", "e"]);
    assert_eq!(t.replica(follower).commit_max(), t.replica(leader).commit_max());
}

#[test]
fn a_durable_replica_recovers_from_its_snapshot_plus_the_entries_after_it() {
    let mut opts = test_options();
    opts.batch_commands_max = 1;
    opts.log_keep_after_snapshot = 2;
    let mut t = Cluster::with_options(3, opts);
    t.snapshot_every = Some(4);
    let leader = t.run_until_leader();
    let follower = t.live().into_iter().find(|id| *id != leader).unwrap();
    let first: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    t.propose(leader, apps(&first)).unwrap();
    t.run_until_applied(&[R1, R2, R3], 10);
    assert_eq!(t.replica(follower).snapshot_slot(), Slot(8));
    assert_eq!(t.node(follower).disk.snapshot.as_ref().map(|s| s.slot), Some(Slot(8)));

    t.crash(follower);
    t.restart(follower);
    assert_eq!(t.node(follower).snapshots_installed, 1, "the snapshot was installed");
    t.expect_commands(&[follower], &first);
    assert_eq!(t.replica(follower).commit_max(), Slot(10));

    t.propose(leader, apps(["after"])).unwrap();
    t.run_until_applied(&[R1, R2, R3], 11);
    let mut all = first.clone();
    all.push("after".into());
    t.expect_commands(&[R1, R2, R3], &all);
}

/// Crashes at arbitrary moments with slow disks: whatever was not yet synced is
/// lost, and the harness's checks (agreement, persist barrier) hold throughout.
#[test]
fn crashes_lose_only_unsynced_writes_and_never_break_agreement() {
    let lost = crash_at_random_moments(11);
    assert!(lost > 0, "no crash ever caught a write in flight");
    for seed in 0..extra_seeds() {
        crash_at_random_moments(1_000 + seed);
    }
}

/// More seeds for the crash scenario: `PAXOS_IT_SEEDS=200 cargo test ...`.
fn extra_seeds() -> u64 {
    std::env::var("PAXOS_IT_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Forty rounds of: propose, crash a random replica mid-flight, restart it. Returns
/// how many unsynced writes the crashes lost.
fn crash_at_random_moments(seed: u64) -> usize {
    let _reproduce = Reproduce(format!(
        "crash_at_random_moments({seed}): PAXOS_IT_SEEDS={} cargo test --release \
         -p concoord-paxos --test it crashes_lose",
        seed.saturating_sub(999)
    ));
    let mut t = Cluster::with_options(3, Options { seed, ..test_options() });
    t.fsync = Span(700);
    let mut rng = Prng::new(seed);
    let mut proposed: Vec<String> = Vec::new();
    for round in 0..40 {
        let leader = t.run_until_leader();
        let batch: Vec<String> = (0..5).map(|i| format!("r{round}.{i}")).collect();
        t.propose(leader, apps(&batch)).unwrap();
        proposed.extend(batch);
        t.run_for(Span(rng.range(0, 4_000)));
        let live = t.live();
        let victim = live[rng.index(live.len())];
        t.crash(victim);
        t.run_for(Span(rng.range(0, 4_000)));
        t.restart(victim);
    }
    t.run_for(ms(2_000));

    let reference = t.commands(R1);
    t.expect_commands(&[R1, R2, R3], &reference);
    let mut seen = std::collections::BTreeSet::new();
    for c in &reference {
        assert!(proposed.contains(c), "{c} was never proposed");
        assert!(seen.insert(c.clone()), "{c} was applied twice");
    }
    assert!(
        reference.len() * 2 >= proposed.len(),
        "most commands survive: {} of {}",
        reference.len(),
        proposed.len()
    );
    t.unsynced_lost
}

/// The barrier check can fail: an acceptor that promises without persisting is
/// caught the first time its Promise leaves.
#[test]
fn the_persist_barrier_check_catches_a_promise_that_is_not_durable() {
    let opts = Options { bugs: [Bug::SkipPersistPromise].into_iter().collect(), ..test_options() };
    let mut t = Cluster::with_options(3, opts);
    t.strict = false;
    t.run_for(ms(2_000));
    assert!(
        t.violations.iter().any(|v| v.starts_with("persist barrier broken")),
        "{:?}",
        t.violations
    );
}
