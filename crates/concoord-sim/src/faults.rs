//! The fault schedule: which faults strike, when, and where, drawn from the
//! seed. Crashes (with the in-memory crash policy), pauses, partitions
//! (symmetric, one-way, partial), and membership changes made by a careful
//! operator; the workload may add its own (client crashes).

use crate::workload::Driver;
use crate::world::{Event, Phase, World, MS, SEC};
use concoord_paxos::{Command, ConfigChange, Input, Replica, Role, RoleKind};
use concoord_wire::{ReplicaId, Slot};
use std::collections::BTreeSet;

/// The fault schedule's own state.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Replicas the operator removed: they stop for good instead of rejoining.
    pub(crate) retiring: BTreeSet<ReplicaId>,
    /// When the operator last proposed a membership change.
    last_reconfigure: u64,
}

impl Faults {
    /// One fault event: picks a kind by the run's weights and strikes.
    pub(crate) fn inject(&mut self, w: &mut World, driver: &mut dyn Driver) {
        let p = &w.params;
        let weights = [p.crash_weight, p.pause_weight, p.partition_weight, p.reconfig_weight];
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return;
        }
        let mut pick = w.rng.range(0, total);
        let mut kind = 0;
        for (i, weight) in weights.iter().enumerate() {
            if pick < *weight {
                kind = i;
                break;
            }
            pick -= weight;
        }
        if driver.fault(w) {
            return;
        }
        match kind {
            0 => self.fault_crash(w, driver),
            1 => self.fault_pause(w),
            2 => self.fault_partition(w),
            _ => self.fault_reconfigure(w, driver),
        }
    }

    fn fault_crash(&mut self, w: &mut World, driver: &mut dyn Driver) {
        let up = w.up_nodes();
        if up.is_empty() {
            return;
        }
        let node = up[w.rng.index(up.len())];
        if !w.params.durable && !self.majority_survives_without(w, node) {
            // Without disks a majority's memory is the only copy of the log: losing
            // it is data loss by design, not a bug to find.
            return;
        }
        w.crash(driver, node);
        let gen = w.nodes[node].gen;
        let after = w.rng.range(100 * MS, 3 * SEC);
        w.schedule(w.now + after, Event::Restart { node, gen });
    }

    /// Whether every membership still to govern a slot keeps a majority of its
    /// voters running (with their memory) if `node` goes down.
    fn majority_survives_without(&self, w: &World, node: usize) -> bool {
        // Strangers (other clusters) play no part in the real cluster's majority.
        let real: Vec<&Replica> = (0..w.nodes.len())
            .filter(|i| !w.is_stranger(*i))
            .filter_map(|i| w.nodes[i].replica.as_ref())
            .collect();
        let most_advanced = real.iter().max_by_key(|r| r.commit_max());
        let Some(r) = most_advanced else { return false };
        let far = Slot(u64::MAX / 2);
        // Nor while a membership change may be in flight: an unchosen change is
        // invisible in any schedule, yet may shrink the membership right after.
        let settled =
            real.iter().all(|r| r.pending_len() == 0 && r.membership() == r.schedule().latest());
        if !settled || w.now < self.last_reconfigure + 2 * SEC {
            return false;
        }
        let alive: Vec<ReplicaId> = (0..w.nodes.len())
            .filter(|i| *i != node && w.in_cluster(*i))
            .map(|i| w.nodes[i].id)
            .collect();
        // At most one dead identity at a time: until the dead one is removed, the
        // memberships in flight (which no single replica fully knows) could
        // otherwise add up dead voters past the majority.
        let everyone_alive = real.iter().all(|r| {
            r.schedule()
                .governing(r.commit_max().next(), far)
                .iter()
                .all(|m| m.member_ids().all(|id| id == w.nodes[node].id || alive.contains(&id)))
        });
        if !everyone_alive {
            return false;
        }
        // Learners may be promoted at any time, so count them as voters: a dead
        // learner promoted later is a dead voter.
        r.schedule().governing(r.commit_max().next(), far).iter().all(|m| {
            let members = m.member_ids().count();
            let up = m.member_ids().filter(|id| alive.contains(id)).count();
            // Two voters tolerate no failure: without a disk, losing one loses the log.
            up * 2 > members && m.is_quorum(&alive) && m.voter_count() >= 3
        })
    }

    fn fault_pause(&mut self, w: &mut World) {
        let up = w.up_nodes();
        if up.is_empty() {
            return;
        }
        let node = up[w.rng.index(up.len())];
        let until = w.now + w.rng.range(50 * MS, 1500 * MS);
        w.nodes[node].paused_until = Some(until);
        let gen = w.nodes[node].gen;
        w.schedule(until, Event::Unpause { node, gen });
    }

    fn fault_partition(&mut self, w: &mut World) {
        let count = w.nodes.len();
        if count < 2 {
            return;
        }
        let mut links = Vec::new();
        match w.rng.range(0, 3) {
            0 => {
                // Symmetric split into two sides.
                let side: Vec<bool> = (0..count).map(|_| w.rng.chance(0.5)).collect();
                for a in 0..count {
                    for b in 0..count {
                        if side[a] != side[b] {
                            links.push((a, b));
                        }
                    }
                }
            }
            1 => {
                // Asymmetric: a hears b, b does not hear a.
                let a = w.rng.index(count);
                let b = w.rng.index(count);
                if a != b {
                    links.push((a, b));
                }
            }
            _ => {
                // Partial: a sees b, b sees c, a does not see c.
                if count >= 3 {
                    let a = w.rng.index(count);
                    let c = (a + 1 + w.rng.index(count - 1)) % count;
                    links.push((a, c));
                    links.push((c, a));
                }
            }
        }
        if links.is_empty() {
            return;
        }
        for link in &links {
            *w.blocked.entry(*link).or_insert(0) += 1;
        }
        let until = w.now + w.rng.range(200 * MS, 3 * SEC);
        w.schedule(until, Event::Unblock { links });
    }

    fn fault_reconfigure(&mut self, w: &mut World, driver: &mut dyn Driver) {
        let Some(leader) = w.leader_node() else { return };
        let Some(latest) = w.nodes[leader].replica.as_ref().and_then(|r| r.schedule().latest())
        else {
            return;
        };
        let latest = latest.clone();
        let voters: Vec<ReplicaId> = latest.voter_ids().collect();
        // A careful operator shrinks or swaps voters only while every member runs
        // and is caught up; otherwise the change could leave no live majority.
        let leader_commit = w.nodes[leader].replica.as_ref().map_or(Slot::ZERO, |r| r.commit_max());
        let healthy = latest.member_ids().all(|id| {
            w.id_to_node.get(&id).is_some_and(|&i| {
                let n = &w.nodes[i];
                n.id == id
                    && n.paused_until.is_none()
                    && n.replica.as_ref().is_some_and(|r| {
                        r.role() != RoleKind::Joining && r.commit_max().plus(8) >= leader_commit
                    })
            })
        });
        let learners: Vec<ReplicaId> = latest
            .members
            .iter()
            .filter(|(id, (_, r))| *r == Role::Learner && w.is_running(**id))
            .map(|(id, _)| *id)
            .collect();
        let change = match w.rng.range(0, 4) {
            0 => {
                if w.nodes.len() >= w.params.nodes_max {
                    return;
                }
                let id = ReplicaId(w.next_id);
                w.next_id += 1;
                let addr = format!("node{}", w.nodes.len());
                // A careful operator gives a new replica every address it knows.
                let boot: Vec<usize> = (0..w.nodes.len()).collect();
                let node = w.add_node(driver, id, addr.clone(), None, boot);
                let local = w.nodes[node].local(w.now);
                let opts = w.replica_options(id);
                w.nodes[node].replica = Some(Replica::join(id, addr, opts, None, local));
                w.schedule_timer(node);
                return;
            }
            1 => {
                if voters.len() < 3 || !healthy {
                    return;
                }
                let victim = voters[w.rng.index(voters.len())];
                self.retiring.insert(victim);
                ConfigChange::Remove(victim)
            }
            2 => {
                let (Some(&learner), false) = (learners.first(), voters.is_empty()) else { return };
                if !healthy {
                    return;
                }
                let victim = voters[w.rng.index(voters.len())];
                self.retiring.insert(victim);
                ConfigChange::Replace { remove: victim, promote: learner }
            }
            _ => {
                let Some(&learner) = learners.first() else { return };
                ConfigChange::Promote(learner)
            }
        };
        self.last_reconfigure = w.now;
        let _ = w.step(driver, leader, Input::Propose(vec![Command::Reconfigure(change)]));
    }

    /// The fault phase ends: every link heals, paused processes resume and crashed
    /// ones restart.
    pub(crate) fn heal(&mut self, w: &mut World, driver: &mut dyn Driver) {
        w.phase = Phase::Healing;
        w.blocked.clear();
        w.loss = 0.0;
        w.duplicate = 0.0;
        for node in 0..w.nodes.len() {
            let n = &mut w.nodes[node];
            if n.retired {
                continue;
            }
            n.paused_until = None;
            if n.replica.is_none() {
                w.restart(driver, node);
            }
        }
    }

    /// Without automatic promotion, the operator promotes learners once faults end.
    pub(crate) fn operator_promotes_a_learner(&mut self, w: &mut World, driver: &mut dyn Driver) {
        let Some(leader) = w.leader_node() else { return };
        let Some(r) = w.nodes[leader].replica.as_ref() else { return };
        if r.pending_len() > 0 || r.membership() != r.schedule().latest() {
            return;
        }
        let Some(m) = r.membership() else { return };
        let learner = m
            .members
            .iter()
            .find(|(id, (_, role))| *role == Role::Learner && w.is_running(**id))
            .map(|(id, _)| *id);
        if let Some(learner) = learner {
            self.last_reconfigure = w.now;
            let change = ConfigChange::Promote(learner);
            let _ = w.step(driver, leader, Input::Propose(vec![Command::Reconfigure(change)]));
        }
    }
}
