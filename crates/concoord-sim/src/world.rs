//! The simulated world: processes (nodes), their disks and clocks, the network
//! between them, and the one event queue that orders everything.
//!
//! `World::step` plays the part of a shell's event loop for one input, and
//! `World::run_effects` carries out the effects a replica asks for, in order, as
//! the server does (the barrier rule, sends, bootstrap sends, and the application
//! effects, which it hands to the workload's `Driver`).

use crate::checkers::agreement::Agreement;
use crate::checkers::exactly_once::ExactlyOnce;
use crate::checkers::prefix::Prefix;
use crate::checkers::state::StateEquality;
use crate::checkers::{Check, Violation};
use crate::sim::{Params, SimOptions, Stats};
use crate::workload::{ClientMsg, Driver, Reply};
use concoord_paxos::{
    Bug, DurableState, Effect, EffectGate, Fnv, Gated, Input, Membership, Message, Options,
    PersistOp, Prng, Rejected, Replica,
};
use concoord_wire::{ClusterId, ReplicaId, Slot, Span, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// The cluster the simulated replicas found.
pub(crate) const CLUSTER: ClusterId = ClusterId(0x5eed);
pub(crate) const MS: u64 = 1_000;
pub(crate) const SEC: u64 = 1_000_000;
/// How long after healing the cluster has to converge.
pub(crate) const CONVERGENCE_BOUND: u64 = 40 * SEC;
/// How long a removed replica keeps answering before it stops or rejoins.
pub(crate) const REMOVED_LINGER: u64 = 3 * SEC;

#[derive(Clone, Debug)]
pub(crate) enum Event {
    Deliver {
        node: usize,
        to: ReplicaId,
        from: ReplicaId,
        /// The sender's cluster when it sent the message.
        cluster: Option<ClusterId>,
        msg: Message,
        gen: Option<u64>,
    },
    Timer {
        node: usize,
        token: u64,
    },
    SyncDone {
        node: usize,
        gen: u64,
    },
    /// A client's request reaches a node.
    ToNode {
        node: usize,
        client: u64,
        msg: ClientMsg,
    },
    ToClient {
        client: usize,
        /// The cluster of the process that answered.
        cluster: Option<ClusterId>,
        reply: Reply,
    },
    ClientTimeout {
        client: usize,
        seq: u64,
        attempt: u32,
    },
    ClientNext {
        client: usize,
    },
    ClientCancel {
        client: usize,
        seq: u64,
    },
    Fault,
    Restart {
        node: usize,
        gen: u64,
    },
    Rejoin {
        node: usize,
        gen: u64,
    },
    Unpause {
        node: usize,
        gen: u64,
    },
    Unblock {
        links: Vec<(usize, usize)>,
    },
    Heal,
    Check,
    /// The fault schedule's running scenario samples status.
    Watch,
    /// The operator restarts the stranger at `node` with boot addresses.
    Reboot {
        node: usize,
        gen: u64,
    },
    /// The adversarial schedule takes its next step (`adversary.rs`).
    Adversary,
}

impl Event {
    /// The event's kind and the node or client it concerns, folded into the trace.
    pub(crate) fn tag(&self) -> (u64, u64) {
        match self {
            Event::Deliver { node, .. } => (1, *node as u64),
            Event::Timer { node, .. } => (2, *node as u64),
            Event::SyncDone { node, .. } => (3, *node as u64),
            Event::ToNode { node, .. } => (4, *node as u64),
            Event::ToClient { client, .. } => (5, *client as u64),
            Event::ClientTimeout { client, .. } => (6, *client as u64),
            Event::ClientNext { client } => (7, *client as u64),
            Event::Fault => (8, 0),
            Event::Restart { node, .. } => (9, *node as u64),
            Event::Rejoin { node, .. } => (10, *node as u64),
            Event::Unpause { node, .. } => (11, *node as u64),
            Event::Unblock { .. } => (12, 0),
            Event::Heal => (13, 0),
            Event::Check => (14, 0),
            Event::ClientCancel { client, .. } => (15, *client as u64),
            Event::Watch => (16, 0),
            Event::Reboot { node, .. } => (17, *node as u64),
            Event::Adversary => (18, 0),
        }
    }

    /// The node whose process handles this event (a paused one defers it).
    pub(crate) fn node(&self) -> Option<usize> {
        match self {
            Event::Deliver { node, .. }
            | Event::Timer { node, .. }
            | Event::SyncDone { node, .. }
            | Event::ToNode { node, .. }
            | Event::Unpause { node, .. } => Some(*node),
            _ => None,
        }
    }

    pub(crate) fn describe(&self) -> String {
        let mut s = String::new();
        match self {
            Event::Deliver { node, to, from, msg, .. } => {
                let _ = write!(s, "deliver n{node} {from:?}->{to:?} {}", brief(msg));
            }
            other => {
                let _ = write!(s, "{other:?}");
            }
        }
        s
    }
}

fn brief(msg: &Message) -> String {
    match msg {
        Message::Accept { ballot, entries, commit_max } => format!(
            "accept {ballot:?} slots {:?} commit {commit_max:?}",
            entries.iter().map(|(s, _)| s.0).collect::<Vec<_>>()
        ),
        Message::Promise { ballot, commit_max, accepted } => {
            format!("promise {ballot:?} commit {commit_max:?} accepted {}", accepted.len())
        }
        Message::Catchup { entries, commit_max, .. } => {
            format!("catchup {} entries commit {commit_max:?}", entries.len())
        }
        Message::InstallSnapshot { snapshot } => format!("install_snapshot at {:?}", snapshot.slot),
        other => format!("{other:?}"),
    }
}

/// One simulated process at one address: its replica (if running), its disk, its
/// local clock, and the shell's bookkeeping.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) id: ReplicaId,
    pub(crate) addr: String,
    pub(crate) replica: Option<Replica>,
    pub(crate) retired: bool,
    pub(crate) paused_until: Option<u64>,
    /// Bumped on every crash and restart; stale timers and syncs are ignored.
    pub(crate) gen: u64,
    pub(crate) timer_token: u64,
    pub(crate) timer_at: Option<u64>,
    /// The last slot the application applied (public status, for liveness).
    pub(crate) app_applied: Slot,
    /// What survived on disk (synced) and what is written but not yet synced.
    pub(crate) disk: DurableState,
    /// Written but not synced, by write number (`EffectGate`'s numbering).
    pub(crate) unsynced: Vec<(u64, PersistOp)>,
    /// The founding membership, if this node founded the cluster (it is on disk too).
    pub(crate) base: Option<Membership>,
    pub(crate) last_membership: Option<Membership>,
    /// Effects the replica produced, not yet through the gate.
    pub(crate) queue: VecDeque<Effect>,
    /// The process's barrier gate (the server's rule, shared code): built from the
    /// disk's promise when the process first runs effects, dropped with it.
    pub(crate) gate: Option<EffectGate>,
    /// Effects the gate released (their write is durable), to carry out in order
    /// before any effect still in `queue`.
    pub(crate) ready: VecDeque<Effect>,
    /// The sync in flight covers the writes up to this number.
    pub(crate) syncing: Option<u64>,
    /// The local clock reads `clock_offset + sim * (1 + clock_ppm / 10^6)`.
    pub(crate) clock_offset: i64,
    pub(crate) clock_ppm: i64,
    pub(crate) next_read: u64,
    /// The boot addresses of the process's command line (`-b`), as node indexes
    /// (a node index is an address).
    pub(crate) boot: Vec<usize>,
    /// Every member address the process's replica has known (the server's
    /// `known_addrs`): lost with the process, kept when it rejoins.
    pub(crate) known: BTreeSet<usize>,
    /// The process was started as a stranger (its own cluster, on disk too) and
    /// the operator has not restarted it with boot addresses yet.
    pub(crate) stranger: bool,
}

impl Node {
    pub(crate) fn is_up(&self) -> bool {
        self.replica.is_some() && !self.retired
    }

    pub(crate) fn local(&self, sim: u64) -> Time {
        let scaled = i128::from(sim) * (1_000_000 + i128::from(self.clock_ppm)) / 1_000_000;
        Time((i128::from(self.clock_offset) + scaled).max(0) as u64)
    }

    /// The earliest sim time at which the local clock reads at least `local`.
    fn sim_at(&self, local: Time) -> u64 {
        let l = (i128::from(local.0) - i128::from(self.clock_offset)).max(0) as u128;
        let rate = (1_000_000i128 + i128::from(self.clock_ppm)) as u128;
        (l * 1_000_000).div_ceil(rate) as u64
    }

    /// The local clock runs at another rate from `sim` on, without a jump: a
    /// process's clock may run slow or fast, and Paxos' safety must not care.
    pub(crate) fn set_clock_ppm(&mut self, sim: u64, ppm: i64) {
        let now = i128::from(self.local(sim).0);
        self.clock_ppm = ppm;
        let scaled = i128::from(sim) * (1_000_000 + i128::from(ppm)) / 1_000_000;
        self.clock_offset = (now - scaled) as i64;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    Faults,
    Healing,
    Done,
}

/// Everything but the workload and the fault schedule: nodes, network, disks,
/// clocks, the event queue, the one random stream, and the safety checkers that
/// watch replicas talk and apply.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) opts: SimOptions,
    pub(crate) params: Params,
    pub(crate) rng: Prng,
    pub(crate) now: u64,
    seq: u64,
    pub(crate) queue: BTreeMap<(u64, u64), Event>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) id_to_node: BTreeMap<ReplicaId, usize>,
    pub(crate) addr_to_node: BTreeMap<String, usize>,
    pub(crate) next_id: u64,
    /// The cluster each client talks to: the first one that answered it (the real
    /// client pins the cluster id it first sees and ignores any other).
    pub(crate) client_cluster: Vec<Option<ClusterId>>,
    /// When a process last crashed, restarted or rejoined: the availability
    /// checkers judge only spans that nothing disturbed.
    pub(crate) disturbed_at: u64,
    /// While the fault schedule runs a scenario it judges, it holds every other
    /// fault, the crashes at the worst point included.
    pub(crate) hold_faults: bool,
    pub(crate) blocked: BTreeMap<(usize, usize), u32>,
    /// Links that lose every message carrying a leader's ballot (Prepare, Accept,
    /// Heartbeat) and deliver the rest: the adversarial schedule's selective loss.
    pub(crate) muted: BTreeSet<(usize, usize)>,
    pub(crate) loss: f64,
    pub(crate) duplicate: f64,
    pub(crate) phase: Phase,
    pub(crate) heal_at: u64,
    pub(crate) agreement: Agreement,
    pub(crate) prefix: Prefix,
    pub(crate) state: StateEquality,
    pub(crate) exactly_once: ExactlyOnce,
    pub(crate) violation: Option<Violation>,
    pub(crate) trace: Fnv,
    pub(crate) stats: Stats,
}

impl World {
    pub(crate) fn new(seed: u64, opts: SimOptions, mut rng: Prng) -> World {
        let params = Params::draw(&mut rng);
        World {
            seed,
            agreement: Agreement::new(founders(params.nodes), params.alpha),
            loss: params.loss,
            duplicate: params.duplicate,
            params,
            opts,
            rng,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::new(),
            id_to_node: BTreeMap::new(),
            addr_to_node: BTreeMap::new(),
            next_id: 1_000,
            client_cluster: Vec::new(),
            disturbed_at: 0,
            hold_faults: false,
            blocked: BTreeMap::new(),
            muted: BTreeSet::new(),
            phase: Phase::Faults,
            heal_at: 0,
            prefix: Prefix::default(),
            state: StateEquality::default(),
            exactly_once: ExactlyOnce::default(),
            violation: None,
            trace: Fnv::new(),
            stats: Stats::default(),
        }
    }

    pub(crate) fn add_node(
        &mut self,
        driver: &mut dyn Driver,
        id: ReplicaId,
        addr: String,
        base: Option<Membership>,
        boot: Vec<usize>,
    ) -> usize {
        let n = self.nodes.len();
        self.addr_to_node.insert(addr.clone(), n);
        let clock_offset = self.rng.range(0, 10 * SEC) as i64;
        let clock_ppm = self.rng.range(0, 40_001) as i64 - 20_000;
        self.nodes.push(Node {
            id,
            addr,
            replica: None,
            retired: false,
            paused_until: None,
            gen: 0,
            timer_token: 0,
            timer_at: None,
            app_applied: Slot::ZERO,
            disk: DurableState::default(),
            unsynced: Vec::new(),
            base,
            last_membership: None,
            queue: VecDeque::new(),
            gate: None,
            ready: VecDeque::new(),
            syncing: None,
            clock_offset,
            clock_ppm,
            next_read: 1,
            boot,
            known: BTreeSet::new(),
            stranger: false,
        });
        driver.add_node();
        self.id_to_node.insert(id, n);
        n
    }

    pub(crate) fn replica_options(&self, id: ReplicaId) -> Options {
        Options {
            alpha: self.params.alpha,
            accept_ahead_max: self.params.accept_ahead_max,
            auto_promote: self.params.auto_promote,
            remove_dead_after: self.params.remove_dead_after.map(Span),
            durable: self.params.durable,
            seed: self.seed ^ id.0,
            bugs: self.opts.bugs.clone(),
            ..Options::default()
        }
    }

    pub(crate) fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), event);
    }

    pub(crate) fn fail(&mut self, checker: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { checker, detail });
        }
    }

    pub(crate) fn record(&mut self, check: Check) {
        if let Err(v) = check {
            if self.violation.is_none() {
                self.violation = Some(v);
            }
        }
    }

    /// Folds one event into the trace hash: its time, kind and node, and for a
    /// delivered message also its sender, receiver and full contents.
    pub(crate) fn trace_event(&mut self, at: u64, event: &Event) {
        let (kind, who) = event.tag();
        self.trace.u64(at);
        self.trace.u64(kind);
        self.trace.u64(who);
        if let Event::Deliver { from, to, msg, .. } = event {
            self.trace.u64(from.0);
            self.trace.u64(to.0);
            self.trace.bytes(format!("{msg:?}").as_bytes());
        }
    }

    // ------------------------------------------------------------------ replicas

    /// Feeds one input to a node's replica and carries out its effects.
    pub(crate) fn step(
        &mut self,
        driver: &mut dyn Driver,
        node: usize,
        input: Input,
    ) -> Result<(), Rejected> {
        let local = self.nodes[node].local(self.now);
        let mut effects = Vec::new();
        let Some(replica) = self.nodes[node].replica.as_mut() else {
            return Err(Rejected::NotLeader { leader_hint: None });
        };
        let result = replica.step(local, input, &mut effects);
        replica.check_invariants();
        self.nodes[node].queue.extend(effects);
        self.remember_members(node);
        self.run_effects(driver, node);
        self.schedule_timer(node);
        result
    }

    /// Adds the address of every member of every membership the node's replica
    /// knows to the node's `known` addresses, as the server does.
    pub(crate) fn remember_members(&mut self, node: usize) {
        let n = &self.nodes[node];
        let Some(r) = &n.replica else { return };
        let known = |addr: &String| {
            self.addr_to_node.get(addr).is_none_or(|i| *i == node || n.known.contains(i))
        };
        if r.schedule().latest().is_none_or(|m| m.members.values().all(|(m, _)| known(&m.addr))) {
            return;
        }
        let learned: Vec<usize> = r
            .schedule()
            .governing(Slot::ZERO, Slot(u64::MAX))
            .iter()
            .flat_map(|m| m.members.values())
            .filter_map(|(m, _)| self.addr_to_node.get(&m.addr).copied())
            .filter(|i| *i != node)
            .collect();
        self.nodes[node].known.extend(learned);
    }

    /// Whether the node runs a replica of another cluster than the real one: a
    /// process an operator started on the node's address without data and
    /// without boot addresses, which founded a cluster of its own.
    pub(crate) fn is_stranger(&self, node: usize) -> bool {
        let cluster = self.nodes[node].replica.as_ref().and_then(|r| r.cluster());
        cluster.is_some_and(|c| c != CLUSTER)
    }

    /// Whether the node runs a replica that is (or is joining) the real cluster.
    pub(crate) fn in_cluster(&self, node: usize) -> bool {
        self.nodes[node].is_up() && !self.is_stranger(node)
    }

    /// A timer fired: tick the replica, which must move its deadline forward.
    pub(crate) fn on_timer(&mut self, driver: &mut dyn Driver, node: usize, token: u64) {
        if self.nodes[node].timer_token != token || !self.nodes[node].is_up() {
            return;
        }
        self.nodes[node].timer_at = None;
        let _ = self.step(driver, node, Input::Tick);
        // A tick must move the deadline forward, or the shell would spin.
        let local = self.nodes[node].local(self.now);
        if let Some(r) = &self.nodes[node].replica {
            let n = &self.nodes[node];
            let idle = n.queue.is_empty() && n.gate.as_ref().is_none_or(|g| g.held_len() == 0);
            if r.next_deadline() <= local && idle {
                let id = r.id();
                self.fail("liveness", format!("{id:?} busy loop: deadline not advanced by a tick"));
            }
        }
    }

    /// The simulated fsync completed: what was written before it started is on disk.
    pub(crate) fn on_sync_done(&mut self, driver: &mut dyn Driver, node: usize, gen: u64) {
        let n = &mut self.nodes[node];
        if n.gen != gen || !n.is_up() {
            return;
        }
        let Some(upto) = n.syncing.take() else { return };
        // A crash may strike at any sync: before it (nothing of the batch reaches
        // the disk), during it (a torn write: a prefix of the batch, record by
        // record, as the server's log recovers it), or after it (all of it, but
        // none of the effects that waited for it). `crash` keeps a random prefix
        // of everything written.
        let risk = self.params.crash_at_persist;
        if risk > 0.0 && self.phase == Phase::Faults && !self.hold_faults && self.rng.chance(risk) {
            self.crash(driver, node);
            let gen = self.nodes[node].gen;
            let after = self.rng.range(MS, 100 * MS);
            self.schedule(self.now + after, Event::Restart { node, gen });
            return;
        }
        let n = &mut self.nodes[node];
        let done = n.unsynced.iter().take_while(|(seq, _)| *seq <= upto).count();
        for (_, op) in n.unsynced.drain(..done) {
            n.disk.apply(&op);
        }
        let check = crate::checkers::durability::on_disk(n.id, &n.disk);
        self.record(check);
        let n = &mut self.nodes[node];
        if let Some(gate) = n.gate.as_mut() {
            n.ready.extend(gate.durable(upto));
        }
        self.run_effects(driver, node);
        self.schedule_timer(node);
    }

    pub(crate) fn schedule_timer(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let Some(replica) = &n.replica else { return };
        let deadline = replica.next_deadline();
        if deadline.0 == u64::MAX {
            n.timer_at = None;
            n.timer_token += 1;
            return;
        }
        let at = n.sim_at(deadline).max(self.now);
        if n.timer_at == Some(at) {
            return;
        }
        n.timer_at = Some(at);
        n.timer_token += 1;
        let token = n.timer_token;
        self.schedule(at, Event::Timer { node, token });
    }

    /// Passes the queued effects through the node's gate in order (the barrier rule,
    /// `EffectGate`): writes go to the simulated disk's write buffer, effects the
    /// gate lets through are carried out, the rest wait for a sync. Then starts a
    /// sync if a write needs one and none is in flight.
    pub(crate) fn run_effects(&mut self, driver: &mut dyn Driver, node: usize) {
        loop {
            if self.violation.is_some() {
                return;
            }
            let bugs = &self.opts.bugs;
            let n = &mut self.nodes[node];
            if n.replica.is_none() {
                return;
            }
            if let Some(effect) = n.ready.pop_front() {
                if self.execute(driver, node, effect) {
                    return;
                }
                continue;
            }
            let Some(effect) = n.queue.pop_front() else { break };
            let promised = n.disk.promised;
            let gate = n.gate.get_or_insert_with(|| EffectGate::new(promised, bugs));
            match gate.admit(effect) {
                Gated::Write { seq, op, .. } => n.unsynced.push((seq, op)),
                Gated::Held => {}
                Gated::Run(effect) => {
                    if self.execute(driver, node, effect) {
                        return;
                    }
                }
            }
        }
        let n = &mut self.nodes[node];
        if n.syncing.is_none() && n.gate.as_ref().is_some_and(|g| g.wants_sync()) {
            n.syncing = n.gate.as_ref().map(|g| g.written());
            let gen = n.gen;
            self.stats.fsyncs += 1;
            let latency = self.rng.range(20, self.params.disk_latency_max + 21);
            self.schedule(self.now + latency, Event::SyncDone { node, gen });
        }
    }

    /// Carries out one effect the gate let through. Returns whether the node
    /// crashed doing it (a crash right after a send).
    fn execute(&mut self, driver: &mut dyn Driver, node: usize, effect: Effect) -> bool {
        let n = &mut self.nodes[node];
        match effect {
            Effect::Persist(_) => {}
            Effect::Send { to, msg } => {
                let risk = match msg {
                    Message::Promise { .. } if to != n.id => self.params.crash_after_promise,
                    // A candidate or leader may crash right after its first
                    // Prepare or Accept leaves, as an acceptor may after a Promise.
                    Message::Prepare { .. } | Message::Accept { .. } if to != n.id => {
                        self.params.crash_after_send
                    }
                    Message::Accepted { .. } => self.params.crash_after_send,
                    _ => 0.0,
                };
                self.send(node, to, msg);
                if risk > 0.0
                    && self.phase == Phase::Faults
                    && !self.hold_faults
                    && self.rng.chance(risk)
                {
                    self.crash(driver, node);
                    let gen = self.nodes[node].gen;
                    // Back quickly, while the leaders it talked to still act.
                    let after = self.rng.range(MS, 100 * MS);
                    self.schedule(self.now + after, Event::Restart { node, gen });
                    return true;
                }
            }
            Effect::SendToBootstrap(msg) => {
                // As the server does: any address of the command line's boot
                // list or of every membership the replica has known, whether or
                // not a process runs there now (a shell cannot know).
                let mut candidates: Vec<usize> = n.boot.clone();
                if !self.opts.bugs.contains(&Bug::BootListOnly) {
                    candidates.extend(n.known.iter().filter(|i| !n.boot.contains(i)));
                }
                candidates.retain(|i| *i != node);
                if !candidates.is_empty() {
                    let target = candidates[self.rng.index(candidates.len())];
                    let to = self.nodes[target].id;
                    self.send(node, to, msg);
                }
            }
            Effect::Apply { slot, value } => self.on_apply(driver, node, slot, value),
            Effect::InstallSnapshot(snapshot) => {
                let id = n.id;
                match driver.restore(node, &snapshot.data) {
                    Ok(hash) => {
                        self.nodes[node].app_applied = snapshot.slot;
                        if !self.is_stranger(node) {
                            let check = self.prefix.on_snapshot(id, snapshot.slot);
                            self.record(check);
                        }
                        self.on_state(node, snapshot.slot, hash);
                    }
                    Err(e) => self.fail("state", format!("{id:?} got {e}")),
                }
            }
            Effect::ReadReady { id } => driver.read_ready(self, node, id),
            Effect::Dropped { commands, leader_hint } => {
                driver.dropped(self, node, commands, leader_hint)
            }
            Effect::ReadAborted { id, leader_hint } => {
                driver.read_aborted(self, node, id, leader_hint)
            }
            Effect::Removed => {
                // A removed replica lingers a while as a passive acceptor and
                // catch-up source: the slots before its removal took effect may
                // still need it to be recovered by a new leader.
                let gen = n.gen;
                self.schedule(self.now + REMOVED_LINGER, Event::Rejoin { node, gen });
            }
            Effect::Foreign { from, cluster } => {
                let mine = n.replica.as_ref().and_then(|r| r.cluster());
                let check =
                    crate::checkers::cluster_identity::on_foreign(n.id, mine, from, cluster);
                self.record(check);
            }
        }
        false
    }

    pub(crate) fn send(&mut self, node: usize, to: ReplicaId, msg: Message) {
        let from = self.nodes[node].id;
        let cluster = self.nodes[node].replica.as_ref().and_then(|r| r.cluster());
        // Durability is every process's own business, a stranger's included.
        if self.params.durable {
            let n = &self.nodes[node];
            let memory =
                |slot| n.replica.as_ref().and_then(|r| r.accepted(slot)).map(|(_, v)| v.clone());
            let check = crate::checkers::durability::on_send(from, &n.disk, &msg, memory);
            self.record(check);
        }
        // The checkers watch the real cluster: a stranger's own protocol is not theirs.
        if !self.is_stranger(node) {
            self.observe_send(from, &msg);
        }
        if to == from {
            let gen = Some(self.nodes[node].gen);
            self.schedule(self.now, Event::Deliver { node, to, from, cluster, msg, gen });
            return;
        }
        self.stats.messages += 1;
        // The sender knows the address of every id it names (from memberships and
        // join requests), and an id's address never changes.
        let Some(&target) = self.id_to_node.get(&to) else { return };
        if self.blocked.contains_key(&(node, target)) || self.rng.chance(self.loss) {
            return;
        }
        let leads = matches!(
            msg,
            Message::Prepare { .. } | Message::Accept { .. } | Message::Heartbeat { .. }
        );
        if leads && self.muted.contains(&(node, target)) {
            return;
        }
        let copies = if self.rng.chance(self.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.rng.range(self.params.delay_min, self.params.delay_max + 1);
            let event =
                Event::Deliver { node: target, to, from, cluster, msg: msg.clone(), gen: None };
            self.schedule(self.now + delay, event);
        }
    }

    /// A message reaches a node's address, and whatever process runs there takes it
    /// as its own, as a real server does (its peer frames name no receiver): after a
    /// restart under another identity, or of another cluster, the new process
    /// receives what was sent to the old one.
    pub(crate) fn on_deliver(
        &mut self,
        driver: &mut dyn Driver,
        node: usize,
        input: Input,
        gen: Option<u64>,
    ) {
        let n = &self.nodes[node];
        if !n.is_up() || gen.is_some_and(|g| g != n.gen) {
            return;
        }
        let _ = self.step(driver, node, input);
    }

    /// Ground truth for the agreement checker, taken from what replicas say to each
    /// other (an `Accepted` leaves only after its entries are durable).
    fn observe_send(&mut self, from: ReplicaId, msg: &Message) {
        match msg {
            Message::Accept { ballot, entries, .. } => {
                for (slot, value) in entries {
                    let check = self.agreement.on_accept_sent(*ballot, *slot, value.digest());
                    self.record(check);
                }
            }
            Message::Accepted { ballot, slots, .. } => {
                self.agreement.on_accepted_sent(from, *ballot, slots);
            }
            _ => {}
        }
    }

    fn on_apply(
        &mut self,
        driver: &mut dyn Driver,
        node: usize,
        slot: Slot,
        value: concoord_paxos::Value,
    ) {
        let id = self.nodes[node].id;
        if self.is_stranger(node) {
            // Another cluster's log: the application runs it, no checker judges it.
            driver.apply(self, node, slot, &value, false);
            self.maybe_snapshot(driver, node, slot);
            return;
        }
        let check = self.agreement.on_apply(id, slot, value.digest());
        self.record(check);
        let extended = match self.prefix.on_apply(id, slot, &value) {
            Ok(true) => {
                self.agreement.on_agreed(slot, &value);
                self.stats.slots += 1;
                let commands = value
                    .commands
                    .iter()
                    .filter(|c| matches!(c, concoord_paxos::Command::App(_)))
                    .count() as u64;
                self.stats.commands += commands;
                if commands > 0 {
                    self.stats.command_slots += 1;
                }
                if slot.0.is_multiple_of(512) && slot.0 > 4096 {
                    let below = Slot(slot.0 - 4096);
                    self.agreement.forget_below(below);
                    self.prefix.forget_below(below);
                    self.state.forget_below(below);
                }
                true
            }
            Ok(false) => false,
            Err(v) => {
                self.record(Err(v));
                return;
            }
        };
        driver.apply(self, node, slot, &value, extended);
        self.maybe_snapshot(driver, node, slot);
    }

    /// Every `snapshot_every` slots the application snapshots itself.
    fn maybe_snapshot(&mut self, driver: &mut dyn Driver, node: usize, slot: Slot) {
        if slot.0.is_multiple_of(self.params.snapshot_every) {
            let data = driver.snapshot(node);
            let local = self.nodes[node].local(self.now);
            let mut effects = Vec::new();
            if let (Some(data), Some(replica)) = (data, self.nodes[node].replica.as_mut()) {
                let _ = replica.step(local, Input::SnapshotTaken { slot, data }, &mut effects);
                replica.check_invariants();
                self.nodes[node].queue.extend(effects);
            }
        }
    }

    /// Sends a reply to a client over the lossy network.
    /// The node's application reached `hash` after `slot` (the state checker
    /// judges the real cluster's replicas only).
    pub(crate) fn on_state(&mut self, node: usize, slot: Slot, hash: u64) {
        if !self.is_stranger(node) {
            let check = self.state.on_state(self.nodes[node].id, slot, hash);
            self.record(check);
        }
    }

    /// The node's application executed `(client, seq)` at `slot`.
    pub(crate) fn on_executed(&mut self, node: usize, client: u64, seq: u64, slot: Slot) {
        if !self.is_stranger(node) {
            let check = self.exactly_once.on_executed(self.nodes[node].id, client, seq, slot);
            self.record(check);
        }
    }

    /// Sends `node`'s reply to a client over the lossy network.
    pub(crate) fn reply(&mut self, node: usize, client_id: u64, reply: Reply) {
        if self.rng.chance(self.loss) {
            return;
        }
        let client = (client_id - 1) as usize;
        let cluster = self.nodes[node].replica.as_ref().and_then(|r| r.cluster());
        let d = self.rng.range(self.params.delay_min, self.params.delay_max + 1);
        self.schedule(self.now + d, Event::ToClient { client, cluster, reply });
    }

    /// Whether a client takes a reply from a process of `cluster`: the first
    /// cluster that answers it is the one it talks to from then on.
    pub(crate) fn client_accepts(&mut self, client: usize, cluster: Option<ClusterId>) -> bool {
        let Some(cluster) = cluster else { return true };
        let pinned = &mut self.client_cluster[client];
        *pinned.get_or_insert(cluster) == cluster
    }

    /// Sends a client's request to a node over the lossy network, after `delay`.
    pub(crate) fn request(&mut self, node: usize, client: u64, msg: ClientMsg, delay: u64) {
        if !self.rng.chance(self.loss) {
            let d = delay + self.rng.range(self.params.delay_min, self.params.delay_max + 1);
            self.schedule(self.now + d, Event::ToNode { node, client, msg });
        }
    }

    // ------------------------------------------------------------------ processes

    pub(crate) fn up_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].is_up()).collect()
    }

    /// Whether the replica `id` is running (its node is up under that identity) in
    /// the real cluster: a joiner that a stranger admitted runs in the stranger's
    /// cluster, and the operator must not promote it in the real one.
    pub(crate) fn is_running(&self, id: ReplicaId) -> bool {
        self.id_to_node.get(&id).is_some_and(|&i| {
            self.nodes[i].id == id && self.nodes[i].is_up() && !self.is_stranger(i)
        })
    }

    /// The real cluster's leader with the highest ballot (a stranger leads only
    /// its own cluster).
    pub(crate) fn leader_node(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|i| self.in_cluster(*i))
            .filter_map(|i| Some((self.nodes[i].replica.as_ref()?.ballot()?, i)))
            .max()
            .map(|(_, i)| i)
    }

    /// The process dies: its memory, its unsynced writes and its timers are lost.
    pub(crate) fn crash(&mut self, driver: &mut dyn Driver, node: usize) {
        driver.crash(node);
        let kept = self.rng.range(0, self.nodes[node].unsynced.len() as u64 + 1) as usize;
        let n = &mut self.nodes[node];
        n.last_membership = n.replica.as_ref().and_then(|r| r.membership().cloned());
        n.replica = None;
        n.gen += 1;
        n.timer_token += 1;
        n.timer_at = None;
        n.queue.clear();
        n.ready.clear();
        n.gate = None;
        n.syncing = None;
        // Written but not synced: a prefix of it may have reached the disk (the
        // sync in flight, or the OS writing back on its own); the rest is lost.
        for (_, op) in n.unsynced.drain(..kept) {
            n.disk.apply(&op);
        }
        n.unsynced.clear();
        let check = crate::checkers::durability::on_disk(n.id, &n.disk);
        self.record(check);
        let n = &mut self.nodes[node];
        n.paused_until = None;
        n.app_applied = Slot::ZERO;
        // The shell's memory goes with the process.
        n.known.clear();
        let id = n.id;
        self.prefix.on_restart(id);
        self.disturbed_at = self.now;
    }

    /// The process starts again with what its disk holds (durable runs), or under a
    /// fresh identity that joins (in-memory runs).
    pub(crate) fn restart(&mut self, driver: &mut dyn Driver, node: usize) {
        let local = self.nodes[node].local(self.now);
        let n = &self.nodes[node];
        let old = n.id;
        let opts = self.replica_options(old);
        let mut effects = Vec::new();
        let knows_nothing =
            n.base.is_none() && n.disk.genesis.is_none() && n.disk.snapshot.is_none();
        if self.params.durable && knows_nothing && n.boot.is_empty() {
            // A joiner (a rejoined founder, say) that crashed before its disk held a
            // membership finds no member on its own: its known addresses died with
            // the process and a founder has no boot list. The operator restarts it
            // with boot addresses, as `-b` would.
            let others = (0..self.nodes.len()).filter(|i| *i != node).collect();
            self.nodes[node].boot = others;
        }
        let n = &self.nodes[node];
        let replica = if self.params.durable {
            Replica::recover(
                old,
                n.addr.clone(),
                opts,
                n.base.clone(),
                n.disk.clone(),
                local,
                &mut effects,
            )
        } else {
            if n.boot.is_empty() {
                // A process without its data must be given boot addresses, or it
                // founds a cluster of its own: the operator gives it the others.
                let others = (0..self.nodes.len()).filter(|i| *i != node).collect();
                self.nodes[node].boot = others;
            }
            // Given boot addresses, a process without data joins the real cluster.
            self.nodes[node].stranger = false;
            let n = &self.nodes[node];
            let fresh = ReplicaId(self.next_id);
            let base = n.last_membership.clone().or(n.base.clone()).unwrap_or_default();
            let opts = Options { seed: self.seed ^ fresh.0, ..opts };
            Replica::restart_in_memory(old, fresh, n.addr.clone(), opts, CLUSTER, base, local)
        };
        let n = &mut self.nodes[node];
        n.gen += 1;
        if replica.id() != old {
            self.next_id += 1;
            n.id = replica.id();
            n.disk = DurableState::default();
            n.base = None;
            self.id_to_node.insert(replica.id(), node);
        }
        replica.check_invariants();
        n.replica = Some(replica);
        n.queue.extend(effects);
        self.disturbed_at = self.now;
        self.remember_members(node);
        self.run_effects(driver, node);
        self.schedule_timer(node);
    }

    /// Whether every member of the membership that removed `node` has applied as far
    /// as `node` has: only then may a removed replica go away, since the slots before
    /// its removal took effect may exist nowhere else. A durable member that is down
    /// counts as behind: it comes back with its disk and may need those slots (seed
    /// 74144 of the registers workload: the removed replica left while the only other
    /// voter of those slots was down, and no quorum could ever choose them again). An
    /// in-memory one comes back without its identity, so there is nothing to wait for.
    pub(crate) fn successors_caught_up(&self, node: usize) -> bool {
        let Some(r) = &self.nodes[node].replica else { return true };
        let Some(m) = r.membership() else { return true };
        m.member_ids().all(|id| match self.id_to_node.get(&id) {
            Some(&i) if self.nodes[i].id == id => match &self.nodes[i].replica {
                Some(s) => s.commit_max() >= r.commit_max(),
                None => !self.params.durable || self.nodes[i].retired,
            },
            _ => true,
        })
    }

    /// A removed replica that was not meant to leave comes back as a new member;
    /// one the operator removed (`retiring`) stops for good.
    pub(crate) fn rejoin(&mut self, driver: &mut dyn Driver, node: usize, retiring: bool) {
        if retiring {
            self.crash(driver, node);
            self.nodes[node].retired = true;
            return;
        }
        // The same process rejoins: it keeps every address it has known.
        let known = std::mem::take(&mut self.nodes[node].known);
        self.crash(driver, node);
        self.nodes[node].known = known;
        let fresh = ReplicaId(self.next_id);
        self.next_id += 1;
        let local = self.nodes[node].local(self.now);
        let opts = self.replica_options(fresh);
        let n = &mut self.nodes[node];
        n.gen += 1;
        n.id = fresh;
        n.disk = DurableState::default();
        n.base = None;
        n.replica = Some(Replica::join(fresh, n.addr.clone(), opts, Some(CLUSTER), local));
        self.id_to_node.insert(fresh, node);
        self.schedule_timer(node);
    }
}

/// The founding membership: voters `1..=nodes` at addresses `node0..`.
pub(crate) fn founders(nodes: usize) -> Membership {
    Membership::voters(
        (0..nodes)
            .map(|i| concoord_paxos::Member::new(ReplicaId(i as u64 + 1), format!("node{i}"))),
    )
}
