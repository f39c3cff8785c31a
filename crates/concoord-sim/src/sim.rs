//! One simulated run: N replicas running the real `concoord-paxos` code and M
//! clients, in one thread, over a simulated network, disks and clocks, all driven
//! by one seed.
//!
//! What it is not: a model of Paxos. Every protocol decision is made by the real
//! `Replica`; the simulator only delivers messages, loses them, crashes and
//! restarts processes, and watches.
//!
//! Where things live: `world.rs` is the world (nodes, network, disks, clocks, the
//! event queue, `run_effects`), `faults.rs` the fault schedule, and `workload/`
//! one file per workload behind the `Driver` trait. This file draws the run's
//! parameters, dispatches events, and judges convergence at the end.

use crate::adversary::Adversary;
use crate::checkers::liveness::{self, NodeView};
use crate::checkers::Violation;
use crate::faults::Faults;
use crate::workload::objects::Objects;
use crate::workload::pipelined::Pipelined;
use crate::workload::registers::Registers;
use crate::workload::Driver;
use crate::world::{founders, Event, Phase, World, CLUSTER, CONVERGENCE_BOUND, MS, SEC};
use concoord_object::machine as om;
use concoord_paxos::{Bug, DurableState, Input, Prng, Replica, RoleKind};
use concoord_wire::ReplicaId;
use std::collections::BTreeSet;

/// A run that processes more events than this is reported as stuck.
const EVENTS_MAX: u64 = 20_000_000;

/// What the caller controls; everything else is drawn from the seed.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    pub bugs: BTreeSet<Bug>,
    /// Object-layer bugs (they matter in the objects workload).
    pub object_bugs: BTreeSet<om::MachineBug>,
    pub trace: bool,
    pub workload: Workload,
}

/// What the clients do and which state machine the replicas run.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Workload {
    /// Integer registers with a session table: the consensus core's own test app.
    #[default]
    Registers,
    /// The object layer (`concoord-object`'s machine) with built-in objects, sessions,
    /// parked calls and clients that crash (their sessions expire).
    Objects,
    /// The object layer under pipelining clients: many requests in flight per
    /// session, bursts that fill batches and the window, creations mid-stream.
    Pipelined,
}

/// Parameters of one run, drawn from its seed ("swarm testing": each seed explores
/// a different mix of cluster size, faults and workload).
#[derive(Clone, Debug)]
pub struct Params {
    pub nodes: usize,
    pub nodes_max: usize,
    pub clients: usize,
    pub keys: u8,
    pub durable: bool,
    pub alpha: u64,
    pub auto_promote: bool,
    pub remove_dead_after: Option<u64>,
    pub loss: f64,
    pub duplicate: f64,
    pub delay_min: u64,
    pub delay_max: u64,
    pub fault_phase: u64,
    pub fault_gap_max: u64,
    pub crash_weight: u64,
    pub pause_weight: u64,
    pub partition_weight: u64,
    pub reconfig_weight: u64,
    pub snapshot_every: u64,
    pub barrier_reads: f64,
    pub disk_latency_max: u64,
    pub client_timeout: u64,
    /// Chance that a durable replica crashes right after sending an Accepted, and
    /// right after sending a Promise (crashes at the worst points of its effect stream).
    pub crash_after_send: f64,
    pub crash_after_promise: f64,
    /// Chance that a durable replica crashes at a sync: before, during (a torn
    /// write of a prefix of the batch) or after it.
    pub crash_at_persist: f64,
    /// How far above its commit point an acceptor accepts (from the pipeline
    /// window's minimum, `2 * alpha`, up): small values make catch-up common.
    pub accept_ahead_max: u64,
}

impl Params {
    pub fn draw(rng: &mut Prng) -> Params {
        let nodes = [1, 3, 3, 3, 5, 5, 7][rng.index(7)];
        let durable = rng.chance(0.6);
        let delay_max = [2 * MS, 10 * MS, 40 * MS][rng.index(3)];
        let mut p = Params {
            nodes,
            nodes_max: nodes + 2,
            clients: rng.range(1, 9) as usize,
            keys: rng.range(1, 4) as u8,
            durable,
            alpha: rng.range(1, 11),
            auto_promote: rng.chance(0.5),
            // Without durable state, a restart comes back under a new identity, so
            // the dead one must be removed or the cluster would run out of majority.
            remove_dead_after: if !durable || rng.chance(0.5) {
                Some(rng.range(2 * SEC, 5 * SEC))
            } else {
                None
            },
            loss: [0.0, 0.01, 0.05, 0.15][rng.index(4)],
            duplicate: [0.0, 0.01, 0.05][rng.index(3)],
            delay_min: rng.range(50, 500),
            delay_max,
            fault_phase: rng.range(3 * SEC, 10 * SEC),
            fault_gap_max: rng.range(200 * MS, 1500 * MS),
            crash_weight: rng.range(0, 4),
            pause_weight: rng.range(0, 3),
            partition_weight: rng.range(0, 4),
            reconfig_weight: rng.range(0, 3),
            snapshot_every: rng.range(5, 80),
            barrier_reads: rng.unit(),
            disk_latency_max: [100, 1_000, 5 * MS][rng.index(3)],
            client_timeout: rng.range(150 * MS, 600 * MS),
            crash_after_send: if durable { [0.0, 0.0, 0.005, 0.02][rng.index(4)] } else { 0.0 },
            crash_after_promise: if durable { [0.0, 0.1, 0.3, 0.5][rng.index(4)] } else { 0.0 },
            crash_at_persist: if durable { [0.0, 0.002, 0.01, 0.03][rng.index(4)] } else { 0.0 },
            accept_ahead_max: 0,
        };
        p.accept_ahead_max = [2 * p.alpha, 4 * p.alpha, 64.max(4 * p.alpha)][rng.index(3)];
        p
    }
}

/// Protocol costs of a run: hardware-independent numbers whose regressions are real.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub messages: u64,
    pub fsyncs: u64,
    pub commands: u64,
    pub command_slots: u64,
    pub slots: u64,
    pub client_ops: u64,
    pub events: u64,
    pub sim_micros: u64,
    /// Objects workload: cancels sent, and calls they took back.
    pub cancels: u64,
    pub cancelled: u64,
}

/// The result of one seed.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub params: Params,
    pub violation: Option<Violation>,
    pub trace_hash: u64,
    pub stats: Stats,
}
/// The whole simulated world, its workload and its fault schedule.
#[derive(Debug)]
pub struct Sim {
    world: World,
    driver: Box<dyn Driver>,
    faults: Faults,
    adversary: Adversary,
    last_liveness: String,
}

impl Sim {
    pub fn new(seed: u64, opts: SimOptions) -> Sim {
        let mut world = World::new(seed, opts, Prng::new(seed));
        let clients = world.params.clients;
        let mut driver: Box<dyn Driver> = match world.opts.workload {
            Workload::Registers => Box::new(Registers::new(clients, world.params.alpha)),
            Workload::Objects => {
                let bugs = world.opts.object_bugs.clone();
                Box::new(Objects::new(seed, clients, bugs, world.params.alpha))
            }
            Workload::Pipelined => {
                let bugs = world.opts.object_bugs.clone();
                Box::new(Pipelined::new(&mut world, seed, clients, bugs))
            }
        };
        let membership = founders(world.params.nodes);
        for (id, (m, _)) in membership.members.clone() {
            // Founders start without boot addresses (no -b).
            let base = Some(membership.clone());
            let n = world.add_node(driver.as_mut(), id, m.addr.clone(), base, Vec::new());
            let opts = world.replica_options(id);
            let local = world.nodes[n].local(0);
            let replica = Replica::new(id, m.addr, opts, CLUSTER, membership.clone(), local);
            world.nodes[n].replica = Some(replica);
            // A founder writes its cluster's identity before it does anything else
            // (the server does the same when it founds a cluster).
            world.nodes[n].disk =
                DurableState { cluster: Some(CLUSTER), ..DurableState::default() };
            world.schedule_timer(n);
        }
        world.client_cluster = vec![None; clients];
        for client in 0..clients {
            let at = world.rng.range(0, 50 * MS);
            world.schedule(at, Event::ClientNext { client });
        }
        world.heal_at = world.params.fault_phase;
        let first_fault = world.rng.range(100 * MS, world.params.fault_gap_max + 100 * MS);
        world.schedule(first_fault, Event::Fault);
        world.schedule(world.heal_at, Event::Heal);
        let faults = Faults::new(seed, world.params.durable);
        let adversary = Adversary::new(seed, &mut world);
        Sim { world, driver, faults, adversary, last_liveness: String::new() }
    }

    pub fn params(&self) -> &Params {
        &self.world.params
    }

    // ------------------------------------------------------------------ loop

    /// Runs the seed to the end and reports.
    pub fn run(mut self) -> Report {
        while let Some(((at, _), event)) = self.world.queue.pop_first() {
            let w = &mut self.world;
            w.now = at;
            w.stats.events += 1;
            w.trace_event(at, &event);
            if w.opts.trace {
                println!("{:>10}us {}", at, event.describe());
            }
            self.handle(event);
            let w = &mut self.world;
            if w.violation.is_some() || w.phase == Phase::Done {
                break;
            }
            if w.stats.events > EVENTS_MAX {
                w.fail("liveness", format!("event budget exhausted at {at}us"));
                break;
            }
        }
        let w = &mut self.world;
        if w.violation.is_none() && w.phase != Phase::Done {
            w.fail("liveness", "simulation ran out of events before converging".to_string());
        }
        if w.violation.is_none() {
            if let Err(v) = w.agreement.finish() {
                w.violation = Some(v);
            }
        }
        if w.violation.is_none() {
            self.driver.finish(w);
        }
        let w = self.world;
        let mut stats = w.stats;
        stats.sim_micros = w.now;
        Report {
            seed: w.seed,
            params: w.params,
            violation: w.violation,
            trace_hash: w.trace.finish(),
            stats,
        }
    }

    fn handle(&mut self, event: Event) {
        let (w, driver) = (&mut self.world, self.driver.as_mut());
        // A paused process handles nothing; its events wait until it resumes.
        if let Some(node) = event.node() {
            if let Some(until) = w.nodes[node].paused_until {
                if !matches!(event, Event::Unpause { .. }) {
                    w.schedule(until + 1, event);
                    return;
                }
            }
        }
        match event {
            Event::Deliver { node, from, cluster, msg, gen, .. } => {
                w.on_deliver(driver, node, Input::Message { from, cluster, msg }, gen)
            }
            Event::Timer { node, token } => w.on_timer(driver, node, token),
            Event::SyncDone { node, gen } => w.on_sync_done(driver, node, gen),
            Event::ToNode { node, client, msg } => driver.on_request(w, node, client, msg),
            Event::ToClient { client, cluster, reply } => {
                if w.client_accepts(client, cluster) {
                    driver.on_reply(w, client, reply);
                }
            }
            Event::ClientTimeout { client, seq, attempt } => {
                driver.on_timeout(w, client, seq, attempt)
            }
            Event::ClientNext { client } => driver.start_op(w, client),
            Event::ClientCancel { client, seq } => driver.on_cancel(w, client, seq),
            Event::Fault => {
                if w.phase == Phase::Faults {
                    self.faults.inject(w, driver);
                    let gap = w.rng.range(10 * MS, w.params.fault_gap_max);
                    w.schedule(w.now + gap, Event::Fault);
                }
            }
            Event::Restart { node, gen } => {
                if w.nodes[node].gen == gen && w.nodes[node].replica.is_none() {
                    w.restart(driver, node);
                }
            }
            Event::Rejoin { node, gen } => {
                if w.nodes[node].gen != gen || w.nodes[node].retired {
                    return;
                }
                if w.successors_caught_up(node) || w.now > w.heal_at + CONVERGENCE_BOUND {
                    let retiring = self.faults.retiring.contains(&w.nodes[node].id);
                    self.faults.before_rejoin(w, node);
                    w.rejoin(driver, node, retiring);
                } else {
                    w.schedule(w.now + 100 * MS, Event::Rejoin { node, gen });
                }
            }
            Event::Unpause { node, gen } => {
                if w.nodes[node].gen == gen {
                    w.nodes[node].paused_until = None;
                }
            }
            Event::Unblock { links } => {
                for link in links {
                    if let Some(count) = w.blocked.get_mut(&link) {
                        *count -= 1;
                        if *count == 0 {
                            w.blocked.remove(&link);
                        }
                    }
                }
            }
            Event::Heal => {
                self.faults.heal(w, driver);
                self.adversary.heal(w);
                w.schedule(w.now + 100 * MS, Event::Check);
            }
            Event::Check => self.check_convergence(),
            Event::Watch => self.faults.watch(w),
            Event::Reboot { node, gen } => self.faults.on_reboot(w, driver, node, gen),
            Event::Adversary => self.adversary.step(w),
        }
    }

    /// After healing: has the cluster converged (liveness)? Checked every 100 ms
    /// until it has, or until `CONVERGENCE_BOUND` runs out.
    fn check_convergence(&mut self) {
        let (w, driver) = (&mut self.world, self.driver.as_mut());
        self.faults.repair_foreign(w, driver);
        self.faults.repair_stranded_joiners(w, driver);
        let mut views = Vec::new();
        let leader_membership = w
            .leader_node()
            .and_then(|l| w.nodes[l].replica.as_ref())
            .and_then(|r| r.membership().cloned());
        for n in &w.nodes {
            let Some(r) = &n.replica else { continue };
            if n.retired || r.role() == RoleKind::Removed {
                continue;
            }
            let settled = r.membership() == r.schedule().latest();
            views.push(NodeView {
                id: n.id,
                role: r.role(),
                commit_max: r.commit_max(),
                app_applied: n.app_applied,
                membership_settled: settled && r.pending_len() == 0,
                in_leader_membership: leader_membership.as_ref().is_some_and(|m| m.is_member(n.id)),
            });
        }
        let unanswered = driver.unanswered();
        driver.on_check(w);
        match liveness::converged(&views, unanswered) {
            Ok(()) => w.phase = Phase::Done,
            Err(why) => {
                self.last_liveness = why;
                if !w.params.auto_promote {
                    self.faults.operator_promotes_a_learner(w, driver);
                }
                if w.now > w.heal_at + CONVERGENCE_BOUND {
                    let mut why = std::mem::take(&mut self.last_liveness);
                    if let Some(r) = w.leader_node().and_then(|l| w.nodes[l].replica.as_ref()) {
                        let voters: Vec<ReplicaId> = r
                            .schedule()
                            .latest()
                            .map(|m| m.member_ids().collect())
                            .unwrap_or_default();
                        let up: Vec<ReplicaId> =
                            w.up_nodes().iter().map(|i| w.nodes[*i].id).collect();
                        why.push_str(&format!(
                            " (leader {:?} at {:?}, members {voters:?}, running {up:?})",
                            r.id(),
                            r.commit_max()
                        ));
                    }
                    // Each running replica's public status, as `concoord status` shows it.
                    let status: Vec<String> = w
                        .nodes
                        .iter()
                        .filter_map(|n| n.replica.as_ref())
                        .map(|r| {
                            // Who may vote matters when no leader emerges.
                            let members = r.membership().map(|m| {
                                m.members
                                    .iter()
                                    .map(|(id, (_, role))| format!("{id:?} {role:?}"))
                                    .collect::<Vec<_>>()
                            });
                            // The elections need a quorum of every membership of the window.
                            let window: Vec<Vec<ReplicaId>> = r
                                .schedule()
                                .governing(
                                    r.commit_max().next(),
                                    r.commit_max().plus(w.params.alpha),
                                )
                                .iter()
                                .map(|m| m.voter_ids().collect())
                                .collect();
                            format!(
                                "{:?} {:?} commit {:?} cluster {:?} members {members:?} \
                                 window voters {window:?}",
                                r.id(),
                                r.role(),
                                r.commit_max(),
                                r.cluster()
                            )
                        })
                        .collect();
                    why.push_str(&format!("; status: {}", status.join(", ")));
                    w.fail(
                        "liveness",
                        format!("no convergence {}s after healing: {why}", CONVERGENCE_BOUND / SEC),
                    );
                } else {
                    w.schedule(w.now + 100 * MS, Event::Check);
                }
            }
        }
    }
}
