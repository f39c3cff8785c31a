//! The fault schedule: which faults strike, when, and where, drawn from the
//! seed. Crashes (with the in-memory crash policy), pauses, partitions
//! (symmetric, one-way, partial), and membership changes made by a careful
//! operator; the workload may add its own (client crashes).
//!
//! Operator faults (issue 8) come from a stream of their own, switched on in
//! some seeds and off in others (swarm testing), so seeds without them draw the
//! main stream as before:
//!
//! - a process restarted on an old member's address without its data and
//!   without boot addresses (a *stranger*): it founds a cluster of its own, and
//!   later the operator restarts it again with boot addresses and it joins;
//! - a durable replica the operator removed is restarted, finds it was removed,
//!   and rejoins through the members it knew (a founder has no boot list);
//! - boot lists that name only dead or removed replicas;
//! - a leader cut off from every peer (both ways or one way) while clients still
//!   reach it, judged by `checkers/step_down.rs`;
//! - a follower cut off and back, judged by `checkers/stable_leader.rs`.
//!
//! The two cuts are scenarios: while one runs, the schedule holds every other
//! fault and the network loses and duplicates nothing, so what the checkers
//! see is the protocol's doing.

use crate::checkers::stable_leader::{established, CutFollower, VoterView};
use crate::checkers::step_down::CutLeader;
use crate::workload::Driver;
use crate::world::{Event, Phase, World, CLUSTER, MS, SEC};
use concoord_paxos::{
    Command, ConfigChange, DurableState, Input, Member, Membership, Prng, Replica, Role, RoleKind,
};
use concoord_wire::{ClusterId, ReplicaId, Slot, Time};
use std::collections::{BTreeMap, BTreeSet};

/// The operator faults a seed uses, and their own random stream.
#[derive(Debug)]
struct Operator {
    rng: Prng,
    /// Chance that a fault event is an operator fault.
    share: f64,
    stranger_weight: u64,
    comeback_weight: u64,
    cut_leader_weight: u64,
    cut_follower_weight: u64,
    /// Chance that a boot list names only dead or removed replicas.
    dead_boot: f64,
}

impl Operator {
    fn draw(seed: u64, durable: bool) -> Operator {
        let mut rng = Prng::new(seed ^ 0x0fe7_a70e_5eed_0000);
        let on = rng.chance(0.6);
        let weight = |rng: &mut Prng| if on { rng.range(0, 4) } else { 0 };
        let stranger_weight = weight(&mut rng);
        let comeback_weight = if durable { weight(&mut rng) } else { 0 };
        let cut_leader_weight = weight(&mut rng);
        let cut_follower_weight = weight(&mut rng);
        let dead_boot = if on { [0.0, 0.3, 0.7][rng.index(3)] } else { 0.0 };
        let share = if on { [0.1, 0.25, 0.5][rng.index(3)] } else { 0.0 };
        Operator {
            rng,
            share,
            stranger_weight,
            comeback_weight,
            cut_leader_weight,
            cut_follower_weight,
            dead_boot,
        }
    }
}

/// A scenario the schedule runs and judges, holding every other fault.
#[derive(Debug)]
struct Scenario {
    kind: Cut,
    /// The leader's node, identity and ballot when the cut began.
    leader: usize,
    leader_id: ReplicaId,
    ballot: concoord_paxos::Ballot,
    started_at: u64,
    /// The blocked links, until `heal_at`.
    links: Vec<(usize, usize)>,
    heal_at: u64,
}

#[derive(Debug)]
enum Cut {
    /// The leader is cut off from every peer.
    Leader(CutLeader),
    /// One follower is cut off from every peer, then comes back.
    Follower(CutFollower),
}

/// How often a scenario samples public status.
const WATCH_EVERY: u64 = 20 * MS;

/// The fault schedule's own state.
#[derive(Debug)]
pub(crate) struct Faults {
    /// Replicas the operator removed: they stop for good instead of rejoining.
    pub(crate) retiring: BTreeSet<ReplicaId>,
    /// When the operator last proposed a membership change.
    last_reconfigure: u64,
    operator: Operator,
    scenario: Option<Scenario>,
    /// Strangers founded so far (each gets a cluster of its own).
    strangers: u64,
}

impl Faults {
    pub(crate) fn new(seed: u64, durable: bool) -> Faults {
        Faults {
            retiring: BTreeSet::new(),
            last_reconfigure: 0,
            operator: Operator::draw(seed, durable),
            scenario: None,
            strangers: 0,
        }
    }

    /// One fault event: picks a kind by the run's weights and strikes.
    pub(crate) fn inject(&mut self, w: &mut World, driver: &mut dyn Driver) {
        if w.hold_faults {
            return;
        }
        if self.operator.share > 0.0 && self.operator.rng.chance(self.operator.share) {
            self.operator_fault(w, driver);
            return;
        }
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
        let settled = real.iter().all(|r| {
            r.pending_len() == 0
                && r.membership() == r.schedule().latest()
                && !holds_unchosen_change(r)
        });
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
                // The operator gives a new replica every address it knows.
                let boot = (0..w.nodes.len()).collect();
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
        self.scenario = None;
        w.hold_faults = false;
        self.repair_foreign(w, driver);
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

    /// Once faults end, the operator restarts with boot addresses every process
    /// that `status` shows in another cluster (a stranger, or a process that
    /// joined one), or that will come back in one from its disk.
    pub(crate) fn repair_foreign(&mut self, w: &mut World, driver: &mut dyn Driver) {
        for node in 0..w.nodes.len() {
            let n = &w.nodes[node];
            let foreign = n.disk.cluster.is_some_and(|c| c != CLUSTER);
            if !n.retired && (n.stranger || foreign || w.is_stranger(node)) {
                self.reboot(w, driver, node);
            }
        }
    }

    /// After healing, the operator restarts with boot addresses of live members a
    /// joiner that has been joining for seconds and can reach no member: every
    /// address it knows (its boot list, when it was added, and whatever it learned
    /// since) is dead or removed by now, and it would ask them for ever, as the
    /// server would. `concoord status` shows it joining; the operator gives it `-b`.
    pub(crate) fn repair_stranded_joiners(&mut self, w: &mut World, driver: &mut dyn Driver) {
        if w.now < w.heal_at + 5 * SEC {
            return;
        }
        for node in 0..w.nodes.len() {
            let n = &w.nodes[node];
            let joining = n.replica.as_ref().is_some_and(|r| r.role() == RoleKind::Joining);
            if n.retired || !joining || w.is_stranger(node) {
                continue;
            }
            let reachable = n.boot.iter().chain(n.known.iter()).any(|&i| {
                i != node
                    && w.in_cluster(i)
                    && w.nodes[i]
                        .replica
                        .as_ref()
                        .is_some_and(|r| matches!(r.role(), RoleKind::Follower | RoleKind::Leader))
            });
            if reachable {
                continue;
            }
            w.crash(driver, node);
            w.nodes[node].boot = (0..w.nodes.len()).filter(|i| *i != node).collect();
            w.restart(driver, node);
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

    // ------------------------------------------------------------------ operator faults

    fn operator_fault(&mut self, w: &mut World, driver: &mut dyn Driver) {
        let op = &self.operator;
        let weights =
            [op.stranger_weight, op.comeback_weight, op.cut_leader_weight, op.cut_follower_weight];
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return;
        }
        let mut pick = self.operator.rng.range(0, total);
        let mut kind = 0;
        for (i, weight) in weights.iter().enumerate() {
            if pick < *weight {
                kind = i;
                break;
            }
            pick -= weight;
        }
        match kind {
            0 => self.fault_stranger(w, driver),
            1 => self.fault_comeback(w, driver),
            2 => self.cut_leader(w),
            _ => self.cut_follower(w),
        }
    }

    /// A boot-list fault, for a process that knows members of its own (a removed
    /// replica about to rejoin, or one restarted from its disk): its boot list
    /// names only replicas that are dead or removed by now, so it must find its
    /// way back through the members it knew. A founder keeps its empty list.
    fn stale_boot_list(&mut self, w: &mut World, node: usize) {
        let op = &mut self.operator;
        if w.nodes[node].boot.is_empty() || !(op.dead_boot > 0.0 && op.rng.chance(op.dead_boot)) {
            return;
        }
        let dead: Vec<usize> =
            (0..w.nodes.len()).filter(|i| *i != node && w.nodes[*i].replica.is_none()).collect();
        if !dead.is_empty() {
            w.nodes[node].boot = dead;
        }
    }

    /// A removed replica is about to rejoin under a fresh identity.
    pub(crate) fn before_rejoin(&mut self, w: &mut World, node: usize) {
        self.stale_boot_list(w, node);
    }

    /// An operator restarts the process at some member's address without its
    /// data and without boot addresses: it founds a cluster of its own there.
    fn fault_stranger(&mut self, w: &mut World, driver: &mut dyn Driver) {
        // Every client has talked to the real cluster already (it pins it).
        if w.client_cluster.iter().any(Option::is_none) || w.now + SEC > w.heal_at {
            return;
        }
        // The identity the stranger replaces is dead for good: one at a time, and
        // only while no other member identity is dead.
        let durable = w.params.durable;
        let candidates: Vec<usize> = (0..w.nodes.len())
            .filter(|i| {
                let n = &w.nodes[*i];
                !n.retired && !n.stranger && !w.is_stranger(*i) && (durable || n.is_up())
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let node = candidates[self.operator.rng.index(candidates.len())];
        // Not while a membership change may be in flight (an unchosen change is in
        // nobody's schedule yet, and could leave the dead identity a majority).
        if w.now < self.last_reconfigure + 2 * SEC || !no_dead_identity(w, node) {
            return;
        }
        // The old identity dies: without disks, the same rule as any crash.
        if !durable && !self.majority_survives_without(w, node) {
            return;
        }
        if w.nodes[node].is_up() {
            w.crash(driver, node);
        }
        self.strangers += 1;
        let cluster = ClusterId(0x0007_0000 + self.strangers);
        let id = ReplicaId(w.next_id);
        w.next_id += 1;
        let local = w.nodes[node].local(w.now);
        let opts = w.replica_options(id);
        let n = &mut w.nodes[node];
        let genesis = Membership::voters([Member::new(id, n.addr.clone())]);
        n.gen += 1;
        n.id = id;
        n.stranger = true;
        n.boot = Vec::new();
        n.base = Some(genesis.clone());
        n.disk = DurableState { cluster: Some(cluster), ..DurableState::default() };
        n.replica = Some(Replica::new(id, n.addr.clone(), opts, cluster, genesis, local));
        let gen = n.gen;
        w.id_to_node.insert(id, node);
        w.disturbed_at = w.now;
        w.schedule_timer(node);
        let after = self.operator.rng.range(500 * MS, 4 * SEC);
        w.schedule(w.now + after, Event::Reboot { node, gen });
    }

    /// The operator restarts a stranger with boot addresses (and without the
    /// stranger's data): it joins the real cluster under a fresh identity.
    pub(crate) fn reboot(&mut self, w: &mut World, driver: &mut dyn Driver, node: usize) {
        w.crash(driver, node);
        let boot = (0..w.nodes.len()).filter(|i| *i != node).collect();
        let id = ReplicaId(w.next_id);
        w.next_id += 1;
        let local = w.nodes[node].local(w.now);
        let opts = w.replica_options(id);
        let n = &mut w.nodes[node];
        n.gen += 1;
        n.id = id;
        n.stranger = false;
        n.boot = boot;
        n.base = None;
        n.disk = DurableState::default();
        n.replica = Some(Replica::join(id, n.addr.clone(), opts, None, local));
        w.id_to_node.insert(id, node);
        w.schedule_timer(node);
    }

    /// A `Reboot` event: the stranger at `node` (if it still is one) is restarted
    /// with boot addresses.
    pub(crate) fn on_reboot(
        &mut self,
        w: &mut World,
        driver: &mut dyn Driver,
        node: usize,
        gen: u64,
    ) {
        if w.nodes[node].gen == gen && w.phase == Phase::Faults && w.nodes[node].stranger {
            self.reboot(w, driver, node);
        }
    }

    /// The operator restarts a durable replica it removed: it finds on its disk
    /// that it was removed and rejoins under a fresh identity, through its boot
    /// list (none for a founder, or only dead replicas) and the members it knew.
    fn fault_comeback(&mut self, w: &mut World, driver: &mut dyn Driver) {
        if !w.params.durable {
            return;
        }
        let retired: Vec<usize> = (0..w.nodes.len()).filter(|i| w.nodes[*i].retired).collect();
        if retired.is_empty() {
            return;
        }
        let node = retired[self.operator.rng.index(retired.len())];
        let id = w.nodes[node].id;
        self.retiring.remove(&id);
        self.stale_boot_list(w, node);
        w.nodes[node].retired = false;
        w.restart(driver, node);
    }

    /// Whether a scenario may start: nothing else disturbs the cluster, every
    /// process runs in the real cluster, and the leader's membership is settled.
    /// Returns the leader's node.
    fn quiet_leader(&self, w: &World, span: u64) -> Option<usize> {
        if w.phase != Phase::Faults || w.now + span + SEC > w.heal_at || !w.blocked.is_empty() {
            return None;
        }
        let all_run = (0..w.nodes.len()).all(|i| {
            let n = &w.nodes[i];
            n.retired || (w.in_cluster(i) && n.paused_until.is_none())
        });
        let leaders = (0..w.nodes.len())
            .filter(|i| w.nodes[*i].replica.as_ref().is_some_and(|r| r.is_leader()))
            .count();
        if !all_run || leaders != 1 || w.now < self.last_reconfigure + 2 * SEC {
            return None;
        }
        let leader = w.leader_node()?;
        let r = w.nodes[leader].replica.as_ref()?;
        let settled = r.pending_len() == 0 && r.membership() == r.schedule().latest();
        (settled && Self::established(w, leader)).then_some(leader)
    }

    /// Whether every other running voter of the leader's window follows it (see
    /// `stable_leader::established`): a scenario judges a leader, not a candidate.
    fn established(w: &World, leader: usize) -> bool {
        let Some(r) = w.nodes[leader].replica.as_ref() else { return false };
        let Some(ballot) = r.ballot() else { return false };
        let window = Self::window(w, leader);
        let local_now = w.nodes[leader].local(w.now);
        let heard: BTreeMap<ReplicaId, Time> =
            r.progress().into_iter().map(|(id, _, at)| (id, at)).collect();
        let voters: Vec<VoterView> = (0..w.nodes.len())
            .filter(|i| *i != leader && w.in_cluster(*i))
            .filter(|i| window.iter().any(|m| m.is_voter(w.nodes[*i].id)))
            .filter_map(|i| {
                let f = w.nodes[i].replica.as_ref()?;
                Some(VoterView {
                    promised: f.promised(),
                    commit_max: f.commit_max(),
                    heard_ago: heard.get(&w.nodes[i].id).map(|at| local_now.since(*at).0),
                })
            })
            .collect();
        established(ballot, r.commit_max(), &voters, election_timeout(w) / 2)
    }

    /// The memberships governing the leader's window (public status).
    fn window(w: &World, leader: usize) -> Vec<Membership> {
        let Some(r) = w.nodes[leader].replica.as_ref() else { return Vec::new() };
        let from = r.commit_max().next();
        let to = r.commit_max().plus(w.params.alpha);
        r.schedule().governing(from, to).into_iter().cloned().collect()
    }

    /// Starts holding every other fault, with a network that loses nothing.
    fn hold(w: &mut World) {
        w.hold_faults = true;
        w.loss = 0.0;
        w.duplicate = 0.0;
        w.schedule(w.now + WATCH_EVERY, Event::Watch);
    }

    fn release(w: &mut World) {
        w.hold_faults = false;
        if w.phase == Phase::Faults {
            w.loss = w.params.loss;
            w.duplicate = w.params.duplicate;
        }
    }

    fn block(w: &mut World, links: &[(usize, usize)]) {
        for link in links {
            *w.blocked.entry(*link).or_insert(0) += 1;
        }
    }

    fn unblock(w: &mut World, links: &[(usize, usize)]) {
        for link in links {
            if let Some(count) = w.blocked.get_mut(link) {
                *count -= 1;
                if *count == 0 {
                    w.blocked.remove(link);
                }
            }
        }
    }

    /// Cuts the leader off from every peer, both ways or one way; clients still
    /// reach it.
    fn cut_leader(&mut self, w: &mut World) {
        let span = 4 * SEC;
        let Some(leader) = self.quiet_leader(w, span) else { return };
        let window = Self::window(w, leader);
        let id = w.nodes[leader].id;
        let others: Vec<ReplicaId> = (0..w.nodes.len())
            .filter(|i| *i != leader && w.in_cluster(*i))
            .map(|i| w.nodes[i].id)
            .collect();
        // Only a leader that needs others for a quorum, and others that are one.
        let needs_others = window.iter().any(|m| !m.is_quorum(&[id]));
        let others_quorum = !window.is_empty() && window.iter().all(|m| m.is_quorum(&others));
        if !needs_others || !others_quorum {
            return;
        }
        let Some(ballot) = w.nodes[leader].replica.as_ref().and_then(|r| r.ballot()) else {
            return;
        };
        let way = self.operator.rng.range(0, 3);
        let mut links = Vec::new();
        for peer in (0..w.nodes.len()).filter(|i| *i != leader) {
            if way != 1 {
                links.push((peer, leader));
            }
            if way != 2 {
                links.push((leader, peer));
            }
        }
        Self::block(w, &links);
        Self::hold(w);
        let step_down_bound = 2 * election_timeout(w) + 200 * MS;
        let check = CutLeader::new(id, ballot, w.now, step_down_bound, span - 500 * MS);
        let heal_at = check.due();
        self.scenario = Some(Scenario {
            kind: Cut::Leader(check),
            leader,
            leader_id: id,
            ballot,
            started_at: w.now,
            links,
            heal_at,
        });
    }

    /// Cuts one voter (not the leader) off from every peer, for longer than an
    /// election timeout, then heals it.
    fn cut_follower(&mut self, w: &mut World) {
        let cut_for = self.operator.rng.range(3 * election_timeout(w), 5 * election_timeout(w));
        let span = cut_for + SEC;
        let Some(leader) = self.quiet_leader(w, span) else { return };
        let window = Self::window(w, leader);
        let leader_id = w.nodes[leader].id;
        let voters: Vec<usize> = (0..w.nodes.len())
            .filter(|i| *i != leader && window.iter().any(|m| m.is_voter(w.nodes[*i].id)))
            .collect();
        if voters.is_empty() {
            return;
        }
        let node = voters[self.operator.rng.index(voters.len())];
        let id = w.nodes[node].id;
        let rest: Vec<ReplicaId> = (0..w.nodes.len())
            .filter(|i| *i != node && w.in_cluster(*i))
            .map(|i| w.nodes[i].id)
            .collect();
        if !window.iter().all(|m| m.is_quorum(&rest)) {
            return;
        }
        let Some(ballot) = w.nodes[leader].replica.as_ref().and_then(|r| r.ballot()) else {
            return;
        };
        let mut links = Vec::new();
        for peer in (0..w.nodes.len()).filter(|i| *i != node) {
            links.push((peer, node));
            links.push((node, peer));
        }
        Self::block(w, &links);
        Self::hold(w);
        let heal_at = w.now + cut_for;
        let check = CutFollower::new(leader_id, ballot, id, w.now, heal_at, SEC);
        self.scenario = Some(Scenario {
            kind: Cut::Follower(check),
            leader,
            leader_id,
            ballot,
            started_at: w.now,
            links,
            heal_at,
        });
    }

    /// A `Watch` event: the running scenario samples public status, heals its cut
    /// when due, and judges when its verdict is due.
    pub(crate) fn watch(&mut self, w: &mut World) {
        let Some(sc) = self.scenario.as_mut() else { return };
        let n = &w.nodes[sc.leader];
        let still_leading = n.id == sc.leader_id
            && n.replica.as_ref().is_some_and(|r| r.ballot() == Some(sc.ballot));
        let due = match &mut sc.kind {
            Cut::Leader(check) => {
                let another_leads = (0..w.nodes.len()).any(|i| {
                    i != sc.leader
                        && w.in_cluster(i)
                        && w.nodes[i].replica.as_ref().is_some_and(|r| r.is_leader())
                });
                check.observe(w.now, still_leading, another_leads);
                check.due()
            }
            Cut::Follower(check) => {
                check.observe(w.now, still_leading);
                check.due()
            }
        };
        if w.now >= sc.heal_at && !sc.links.is_empty() {
            let links = std::mem::take(&mut sc.links);
            Self::unblock(w, &links);
        }
        if w.now < due {
            w.schedule(w.now + WATCH_EVERY, Event::Watch);
            return;
        }
        let Some(sc) = self.scenario.take() else { return };
        Self::unblock(w, &sc.links);
        Self::release(w);
        // Something outside the scenario (a removed replica rejoining, say)
        // disturbed a process meanwhile: no verdict.
        if w.disturbed_at >= sc.started_at {
            return;
        }
        let verdict = match &sc.kind {
            Cut::Leader(check) => check.verdict(),
            Cut::Follower(check) => check.verdict(),
        };
        w.record(verdict);
    }
}

/// Whether every identity in a membership still to govern a slot (in any real
/// replica's view) runs, or will run again with its disk, at its address.
/// And losing `victim`'s identity leaves every such membership with at least
/// three voters and a quorum of live ones.
fn no_dead_identity(w: &World, victim: usize) -> bool {
    let far = Slot(u64::MAX / 2);
    let live = |id: ReplicaId| {
        w.id_to_node.get(&id).is_some_and(|&j| {
            let n = &w.nodes[j];
            n.id == id && !n.retired && !n.stranger && (w.params.durable || n.is_up())
        })
    };
    let survivors: Vec<ReplicaId> = (0..w.nodes.len())
        .filter(|i| *i != victim && live(w.nodes[*i].id))
        .map(|i| w.nodes[i].id)
        .collect();
    // Judged in the view of every running replica, a leader among them, with
    // nothing pending and no change accepted but not chosen yet: a deposed leader's
    // change, adopted and chosen later, is in nobody's schedule until then (seed 83515
    // of the registers workload: a removal accepted long before, chosen after the
    // stranger struck, left two voters, one of them the dead identity).
    w.leader_node().is_some()
        && (0..w.nodes.len()).filter(|i| w.in_cluster(*i)).all(|i| {
            let Some(r) = &w.nodes[i].replica else { return true };
            let settled = r.pending_len() == 0
                && r.membership() == r.schedule().latest()
                && !holds_unchosen_change(r);
            settled
                && r.schedule().governing(r.commit_max().next(), far).iter().all(|m| {
                    m.member_ids().all(live) && m.voter_count() >= 3 && m.is_quorum(&survivors)
                })
        })
}

fn election_timeout(w: &World) -> u64 {
    w.replica_options(ReplicaId(0)).election_timeout_min.0
}

/// Whether `r` accepted, above its commit point, a value carrying a membership
/// change: a leader deposed before that change was chosen leaves it in acceptors'
/// logs, and a later leader may adopt and choose it at any time.
fn holds_unchosen_change(r: &Replica) -> bool {
    let from = r.commit_max().0 + 1;
    let to = r.commit_max().0 + r.options().accept_ahead_max + r.options().alpha;
    (from..=to).any(|slot| {
        r.accepted(Slot(slot)).is_some_and(|(_, value)| {
            value.commands.iter().any(|c| matches!(c, Command::Reconfigure(_)))
        })
    })
}
