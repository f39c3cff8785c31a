//! Throughput mechanics under load: memory stays bounded with periodic snapshots,
//! commands queued behind a full window are batched, and the leader keeps up to
//! `alpha` slots in flight but never more.

use crate::harness::*;
use concoord_paxos::{Message, Options};
use concoord_wire::{Slot, Span};

#[test]
fn memory_stays_bounded_under_endless_load_with_snapshots_every_hundred_slots() {
    const TOTAL: usize = 20_000;
    // `accept_ahead_max` covers the snapshot interval, so the log of any replica
    // holds at most the kept tail, one interval, and the window.
    let opts = Options {
        batch_commands_max: 10,
        log_keep_after_snapshot: 64,
        accept_ahead_max: 128,
        ..test_options()
    };
    let bound = (opts.log_keep_after_snapshot + opts.accept_ahead_max + opts.alpha) as usize;
    let mut t = Cluster::with_options(3, opts);
    t.snapshot_every = Some(100);
    t.log_len_max = Some(bound);
    let leader = t.run_until_leader();

    let mut proposed = 0;
    let mut last_snapshot = [Slot::ZERO; 3];
    let mut snapshot_advances = 0;
    while proposed < TOTAL || t.nodes.values().any(|n| n.app.commands.len() < TOTAL) {
        if proposed < TOTAL && t.replica(leader).pending_len() < 200 {
            let end = (proposed + 100).min(TOTAL);
            t.propose(leader, apps((proposed..end).map(|i| format!("c{i}")))).unwrap();
            proposed = end;
        }
        t.run_for(ms(1));
        for (k, id) in [R1, R2, R3].into_iter().enumerate() {
            let slot = t.replica(id).snapshot_slot();
            assert!(slot >= last_snapshot[k], "{id:?}'s snapshot went back");
            if slot > last_snapshot[k] {
                snapshot_advances += 1;
                last_snapshot[k] = slot;
            }
        }
        assert!(t.now.0 < 60_000_000, "load did not drain\n{}", t.describe());
    }

    let expected: Vec<String> = (0..TOTAL).map(|i| format!("c{i}")).collect();
    t.expect_commands(&[R1, R2, R3], &expected);
    for id in [R1, R2, R3] {
        let r = t.replica(id);
        assert!(r.commit_max() >= Slot(2_000), "batches of 10 use 2000 slots or more");
        assert!(r.snapshot_slot().plus(100) > r.commit_max(), "{id:?} snapshots kept up");
        assert!(t.node(id).log_len_max_seen <= bound);
    }
    assert!(snapshot_advances >= 3 * 19, "snapshots advanced {snapshot_advances} times");
}

#[test]
fn commands_queued_behind_a_full_window_are_batched_into_few_slots() {
    let mut t = Cluster::new(3);
    let alpha = t.opts.alpha as usize;
    let leader = t.run_until_leader();
    t.run_for(ms(50));
    for i in 0..alpha {
        t.propose(leader, apps([format!("w{i}")])).unwrap();
    }
    assert_eq!(t.accepts_in_network(leader).len(), alpha, "the window is full");

    let batch: Vec<String> = (0..500).map(|i| format!("b{i}")).collect();
    t.propose(leader, apps(&batch)).unwrap();
    assert_eq!(t.accepts_in_network(leader).len(), alpha, "nothing is proposed past the window");
    assert_eq!(t.replica(leader).pending_len(), 500);

    let total = alpha + batch.len();
    t.run_until_applied(&[R1, R2, R3], total);
    let mut expected: Vec<String> = (0..alpha).map(|i| format!("w{i}")).collect();
    expected.extend(batch);
    t.expect_commands(&[R1, R2, R3], &expected);
    for id in [R1, R2, R3] {
        let slots = t.node(id).app_slots as usize;
        assert!(total / slots > 10, "{id:?} used {slots} slots for {total} commands");
    }
}

#[test]
fn the_leader_pipelines_up_to_alpha_slots_and_never_more() {
    let opts = Options { alpha: 8, batch_commands_max: 1, ..test_options() };
    let mut t = Cluster::with_options(3, opts);
    t.record_sends = true;
    let leader = t.run_until_leader();
    t.run_for(ms(50));
    let base = t.replica(leader).commit_max();

    t.propose(leader, apps((0..40).map(|i| format!("p{i}")))).unwrap();
    let expected: std::collections::BTreeSet<Slot> = (1..=8).map(|k| base.plus(k)).collect();
    assert_eq!(t.accepts_in_network(leader), expected, "eight slots go out at once");

    let mut most = 0;
    while t.nodes.values().any(|n| n.app.commands.len() < 40) {
        t.run_for(Span(100));
        let proposed_max = t
            .sends
            .iter()
            .filter(|s| s.from == leader)
            .flat_map(|s| match &s.msg {
                Message::Accept { entries, .. } => entries.iter().map(|(slot, _)| slot.0).collect(),
                _ => Vec::new(),
            })
            .max()
            .unwrap_or(0);
        let ahead = proposed_max.saturating_sub(t.replica(leader).commit_max().0);
        assert!(ahead <= 8, "{ahead} slots in flight\n{}", t.describe());
        most = most.max(ahead);
        assert!(t.now.0 < 10_000_000, "pipeline stalled\n{}", t.describe());
    }
    assert_eq!(most, 8, "the pipeline fills to alpha");
}
