//! One simulated run: N replicas running the real `concoord-paxos` code and M
//! clients, in one thread, over a simulated network, disks and clocks, all driven
//! by one seed.
//!
//! What it is not: a model of Paxos. Every protocol decision is made by the real
//! `Replica`; the simulator only delivers messages, loses them, crashes and
//! restarts processes, and watches.

use crate::app::{App, Op, Outcome, Request};
use crate::checkers::agreement::Agreement;
use crate::checkers::exactly_once::ExactlyOnce;
use crate::checkers::linearizability::{self, Model, Operation, Verdict};
use crate::checkers::liveness::{self, NodeView};
use crate::checkers::object_spec::{ObjectCall, ObjectResult, ObjectSpec, SESSION_CLOSED};
use crate::checkers::prefix::Prefix;
use crate::checkers::state::StateEquality;
use crate::checkers::{Check, Violation};
use concoord_object::builtins::{
    bank::Bank, binary_tree::BinaryTree, bounded_semaphore::BoundedSemaphore,
    job_manager::JobManager, lock::Lock, log::Log, membership::Membership as MembershipObject,
    mesh_membership::MeshMembership, nameserver_coord::NameserverCoord, queue::Queue, rlock::RLock,
    semaphore::Semaphore, stack::Stack, Counter,
};
use concoord_object::machine::{self as om, Execution, Machine};
use concoord_object::{ObjectType, Types, Value as ObjValue};
use concoord_paxos::{
    Bug, Command, ConfigChange, DurableState, Effect, Fnv, Input, Member, Membership, Message,
    Options, PersistOp, Prng, ReadId, Rejected, Replica, Role, RoleKind,
};
use concoord_wire::{ClusterId, ReplicaId, Slot, Span, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// The cluster the simulated replicas found.
const CLUSTER: ClusterId = ClusterId(0x5eed);
const MS: u64 = 1_000;
const SEC: u64 = 1_000_000;
/// How long after healing the cluster has to converge.
const CONVERGENCE_BOUND: u64 = 40 * SEC;
/// How long a removed replica keeps answering before it stops or rejoins.
const REMOVED_LINGER: u64 = 3 * SEC;
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
}

impl Params {
    pub fn draw(rng: &mut Prng) -> Params {
        let nodes = [1, 3, 3, 3, 5, 5, 7][rng.index(7)];
        let durable = rng.chance(0.6);
        let delay_max = [2 * MS, 10 * MS, 40 * MS][rng.index(3)];
        Params {
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
        }
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

#[derive(Clone, Debug)]
enum Reply {
    Done {
        seq: u64,
        result: i64,
    },
    Redirect {
        seq: u64,
        hint: Option<ReplicaId>,
    },
    /// The object layer's answer to request `seq` (a request number, or the nonce of
    /// an `OpenSession`), produced at `slot`.
    /// `session` is 0 for the answer to an `OpenSession`.
    Object {
        session: u64,
        seq: u64,
        slot: Slot,
        position: u64,
        reply: om::Reply,
    },
}

/// What an objects-workload client sends to a replica.
#[derive(Clone, Debug)]
enum ObjectMsg {
    /// A command for the log.
    Log(om::Request),
    /// A query served after a read barrier.
    Query { session: u64, seq: u64, op: ObjOp },
}

/// One call of the objects workload.
#[derive(Clone, Debug, PartialEq)]
struct ObjOp {
    object: &'static str,
    method: &'static str,
    args: Vec<ObjValue>,
}

#[derive(Clone, Debug)]
enum Event {
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
    ToNode {
        node: usize,
        req: Request,
    },
    ToNodeObject {
        node: usize,
        client: u64,
        msg: ObjectMsg,
    },
    ToClient {
        client: usize,
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
}

impl Event {
    fn tag(&self) -> (u64, u64) {
        match self {
            Event::Deliver { node, .. } => (1, *node as u64),
            Event::Timer { node, .. } => (2, *node as u64),
            Event::SyncDone { node, .. } => (3, *node as u64),
            Event::ToNode { node, .. } | Event::ToNodeObject { node, .. } => (4, *node as u64),
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
        }
    }
}

#[derive(Debug)]
struct Node {
    id: ReplicaId,
    addr: String,
    replica: Option<Replica>,
    retired: bool,
    paused_until: Option<u64>,
    /// Bumped on every crash and restart; stale timers and syncs are ignored.
    gen: u64,
    timer_token: u64,
    timer_at: Option<u64>,
    app: App,
    /// The object layer, in the objects workload.
    machine: Option<Box<Machine>>,
    app_applied: Slot,
    /// What survived on disk (synced) and what is written but not yet synced.
    disk: DurableState,
    unsynced: Vec<PersistOp>,
    /// The founding membership, if this node founded the cluster (it is on disk too).
    base: Option<Membership>,
    last_membership: Option<Membership>,
    queue: VecDeque<Effect>,
    syncing: bool,
    clock_offset: u64,
    clock_ppm: i64,
    /// Requests this node proposed and must answer: key -> client id.
    waiting: BTreeMap<(u64, u64), u64>,
    reads: BTreeMap<ReadId, (u64, u64, u8)>,
    object_reads: BTreeMap<ReadId, (u64, u64, u64, ObjOp)>,
    next_read: u64,
}

impl Node {
    fn is_up(&self) -> bool {
        self.replica.is_some() && !self.retired
    }

    fn local(&self, sim: u64) -> Time {
        let scaled =
            u128::from(sim) * (1_000_000i128 + i128::from(self.clock_ppm)) as u128 / 1_000_000;
        Time(self.clock_offset + scaled as u64)
    }

    /// The earliest sim time at which the local clock reads at least `local`.
    fn sim_at(&self, local: Time) -> u64 {
        let l = u128::from(local.0.saturating_sub(self.clock_offset));
        let rate = (1_000_000i128 + i128::from(self.clock_ppm)) as u128;
        (l * 1_000_000).div_ceil(rate) as u64
    }
}

#[derive(Debug)]
struct PendingOp {
    seq: u64,
    op: Op,
    invoke: u64,
    attempt: u32,
    target: usize,
}

#[derive(Debug)]
struct Client {
    id: u64,
    next_seq: u64,
    /// The node that answered last: where the next request goes first.
    favourite: Option<usize>,
    current: Option<PendingOp>,
    /// The objects workload's client state.
    obj: ObjClient,
}

#[derive(Debug, Default)]
struct ObjClient {
    session: Option<u64>,
    next_request: u64,
    /// Objects this client has created (through the log) so far.
    created: usize,
    pending: Option<ObjPending>,
    crashed: bool,
    /// Lock-like objects this client holds (it releases them before anything else).
    holds: Vec<&'static str>,
    /// Whether the client, holding the condition's lock, already waited or notified.
    cond_acted: bool,
    /// The mesh group's epoch as this client last saw it.
    mesh_epoch: i64,
    /// Sessions opened so far (nonces must differ between them).
    incarnation: u64,
}

#[derive(Debug)]
struct ObjPending {
    /// Request number, or the nonce of an `OpenSession`.
    seq: u64,
    msg: ObjectMsg,
    /// The call as the history records it (`None` for opens and creates).
    op: Option<ObjOp>,
    invoke: u64,
    attempt: u32,
    target: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Faults,
    Healing,
    Done,
}

/// The whole simulated world.
#[derive(Debug)]
pub struct Sim {
    seed: u64,
    opts: SimOptions,
    params: Params,
    rng: Prng,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    id_to_node: BTreeMap<ReplicaId, usize>,
    next_id: u64,
    retiring: BTreeSet<ReplicaId>,
    /// When the operator last proposed a membership change.
    last_reconfigure: u64,
    clients: Vec<Client>,
    blocked: BTreeMap<(usize, usize), u32>,
    loss: f64,
    duplicate: f64,
    phase: Phase,
    heal_at: u64,
    history: Vec<(u8, Operation<Op, i64>)>,
    obj_history: BTreeMap<&'static str, Vec<Operation<ObjectCall, ObjectResult>>>,
    agreement: Agreement,
    prefix: Prefix,
    state: StateEquality,
    exactly_once: ExactlyOnce,
    violation: Option<Violation>,
    trace: Fnv,
    stats: Stats,
    last_liveness: String,
    /// Objects workload: how often a blocking call is cancelled by its client, and
    /// the generator that decides it. A stream of its own, so seeds that never cancel
    /// replay exactly as before cancellation existed.
    cancel_chance: f64,
    cancel_rng: Prng,
}

impl Sim {
    pub fn new(seed: u64, opts: SimOptions) -> Sim {
        let mut rng = Prng::new(seed);
        let params = Params::draw(&mut rng);
        let members: Vec<Member> = (0..params.nodes)
            .map(|i| Member { id: ReplicaId(i as u64 + 1), addr: format!("node{i}") })
            .collect();
        let membership = Membership::voters(members.clone());
        let mut sim = Sim {
            seed,
            agreement: Agreement::new(membership.clone(), params.alpha),
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
            next_id: 1_000,
            retiring: BTreeSet::new(),
            last_reconfigure: 0,
            clients: Vec::new(),
            blocked: BTreeMap::new(),
            phase: Phase::Faults,
            heal_at: 0,
            history: Vec::new(),
            obj_history: OBJECTS.iter().map(|(name, _, _)| (*name, Vec::new())).collect(),
            prefix: Prefix::default(),
            state: StateEquality::default(),
            exactly_once: ExactlyOnce::default(),
            violation: None,
            trace: Fnv::new(),
            stats: Stats::default(),
            last_liveness: String::new(),
            cancel_chance: 0.0,
            cancel_rng: Prng::new(seed ^ 0xca9c_e11e_d000_0000),
        };
        if sim.opts.workload == Workload::Objects {
            sim.cancel_chance = [0.0, 0.0, 0.1, 0.3][sim.cancel_rng.index(4)];
        }
        for m in members {
            let n = sim.add_node(m.id, m.addr.clone(), Some(membership.clone()));
            let opts = sim.replica_options(m.id);
            let local = sim.nodes[n].local(0);
            let replica = Replica::new(m.id, m.addr, opts, CLUSTER, membership.clone(), local);
            sim.nodes[n].replica = Some(replica);
            // A founder writes its cluster's identity before it does anything else
            // (the server does the same when it founds a cluster).
            sim.nodes[n].disk = DurableState { cluster: Some(CLUSTER), ..DurableState::default() };
            sim.schedule_timer(n);
        }
        for i in 0..sim.params.clients {
            sim.clients.push(Client {
                id: i as u64 + 1,
                next_seq: 1,
                favourite: None,
                current: None,
                obj: ObjClient::default(),
            });
            let at = sim.rng.range(0, 50 * MS);
            sim.schedule(at, Event::ClientNext { client: i });
        }
        sim.heal_at = sim.params.fault_phase;
        let first_fault = sim.rng.range(100 * MS, sim.params.fault_gap_max + 100 * MS);
        sim.schedule(first_fault, Event::Fault);
        sim.schedule(sim.heal_at, Event::Heal);
        sim
    }

    fn add_node(&mut self, id: ReplicaId, addr: String, base: Option<Membership>) -> usize {
        let n = self.nodes.len();
        let clock_offset = self.rng.range(0, 10 * SEC);
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
            app: App::default(),
            machine: (self.opts.workload == Workload::Objects).then(|| self.new_machine()),
            app_applied: Slot::ZERO,
            disk: DurableState::default(),
            unsynced: Vec::new(),
            base,
            last_membership: None,
            queue: VecDeque::new(),
            syncing: false,
            clock_offset,
            clock_ppm,
            waiting: BTreeMap::new(),
            reads: BTreeMap::new(),
            object_reads: BTreeMap::new(),
            next_read: 1,
        });
        self.id_to_node.insert(id, n);
        n
    }

    fn replica_options(&self, id: ReplicaId) -> Options {
        Options {
            alpha: self.params.alpha,
            accept_ahead_max: 64.max(4 * self.params.alpha),
            auto_promote: self.params.auto_promote,
            remove_dead_after: self.params.remove_dead_after.map(Span),
            durable: self.params.durable,
            seed: self.seed ^ id.0,
            bugs: self.opts.bugs.clone(),
            ..Options::default()
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    // ------------------------------------------------------------------ loop

    /// Runs the seed to the end and reports.
    pub fn run(mut self) -> Report {
        while let Some(((at, _), event)) = self.queue.pop_first() {
            self.now = at;
            self.stats.events += 1;
            let (kind, who) = event.tag();
            self.trace.u64(at);
            self.trace.u64(kind);
            self.trace.u64(who);
            if let Event::Deliver { from, to, msg, .. } = &event {
                self.trace.u64(from.0);
                self.trace.u64(to.0);
                self.trace.bytes(format!("{msg:?}").as_bytes());
            }
            if self.opts.trace {
                println!("{:>10}us {}", at, describe(&event));
            }
            self.handle(event);
            if self.violation.is_some() || self.phase == Phase::Done {
                break;
            }
            if self.stats.events > EVENTS_MAX {
                self.fail("liveness", format!("event budget exhausted at {at}us"));
                break;
            }
        }
        if self.violation.is_none() && self.phase != Phase::Done {
            self.fail("liveness", "simulation ran out of events before converging".to_string());
        }
        if self.violation.is_none() {
            if let Err(v) = self.agreement.finish() {
                self.violation = Some(v);
            }
        }
        if self.violation.is_none() {
            if self.opts.workload == Workload::Objects {
                self.check_object_linearizability();
            } else {
                self.check_linearizability();
            }
        }
        self.stats.sim_micros = self.now;
        Report {
            seed: self.seed,
            params: self.params,
            violation: self.violation,
            trace_hash: self.trace.finish(),
            stats: self.stats,
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), event);
    }

    fn fail(&mut self, checker: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { checker, detail });
        }
    }

    fn record(&mut self, check: Check) {
        if let Err(v) = check {
            if self.violation.is_none() {
                self.violation = Some(v);
            }
        }
    }

    fn handle(&mut self, event: Event) {
        // A paused process handles nothing; its events wait until it resumes.
        if let Some(node) = event_node(&event) {
            if let Some(until) = self.nodes[node].paused_until {
                if !matches!(event, Event::Unpause { .. }) {
                    self.schedule(until + 1, event);
                    return;
                }
            }
        }
        match event {
            Event::Deliver { node, to, from, cluster, msg, gen } => {
                let n = &self.nodes[node];
                if n.id != to || !n.is_up() || gen.is_some_and(|g| g != n.gen) {
                    return;
                }
                let _ = self.step(node, Input::Message { from, cluster, msg });
            }
            Event::Timer { node, token } => {
                if self.nodes[node].timer_token != token || !self.nodes[node].is_up() {
                    return;
                }
                self.nodes[node].timer_at = None;
                let _ = self.step(node, Input::Tick);
                // A tick must move the deadline forward, or the shell would spin.
                let local = self.nodes[node].local(self.now);
                if let Some(r) = &self.nodes[node].replica {
                    if r.next_deadline() <= local && self.nodes[node].queue.is_empty() {
                        let id = r.id();
                        self.fail(
                            "liveness",
                            format!("{id:?} busy loop: deadline not advanced by a tick"),
                        );
                    }
                }
            }
            Event::SyncDone { node, gen } => {
                let n = &mut self.nodes[node];
                if n.gen != gen || !n.is_up() {
                    return;
                }
                for op in n.unsynced.drain(..) {
                    n.disk.apply(&op);
                }
                n.syncing = false;
                self.run_effects(node);
                self.schedule_timer(node);
            }
            Event::ToNode { node, req } => self.on_request(node, req),
            Event::ToNodeObject { node, client, msg } => self.on_object_request(node, client, msg),
            Event::ToClient { client, reply } => self.on_reply(client, reply),
            Event::ClientTimeout { client, seq, attempt }
                if self.opts.workload == Workload::Objects =>
            {
                let c = &self.clients[client].obj;
                let Some(p) = &c.pending else { return };
                if p.seq != seq || p.attempt != attempt || c.crashed {
                    return;
                }
                let target = self.rng.index(self.nodes.len());
                self.resend_object(client, target, 0);
            }
            Event::ClientTimeout { client, seq, attempt } => {
                let c = &self.clients[client];
                let Some(p) = &c.current else { return };
                if p.seq != seq || p.attempt != attempt {
                    return;
                }
                let target = self.rng.index(self.nodes.len());
                self.resend(client, target, 0);
            }
            Event::ClientNext { client } => self.start_op(client),
            Event::ClientCancel { client, seq } => self.cancel_object_op(client, seq),
            Event::Fault => {
                if self.phase == Phase::Faults {
                    self.inject_fault();
                    let gap = self.rng.range(10 * MS, self.params.fault_gap_max);
                    self.schedule(self.now + gap, Event::Fault);
                }
            }
            Event::Restart { node, gen } => {
                if self.nodes[node].gen == gen && self.nodes[node].replica.is_none() {
                    self.restart(node);
                }
            }
            Event::Rejoin { node, gen } => {
                if self.nodes[node].gen != gen || self.nodes[node].retired {
                    return;
                }
                if self.successors_caught_up(node) || self.now > self.heal_at + CONVERGENCE_BOUND {
                    self.rejoin(node);
                } else {
                    self.schedule(self.now + 100 * MS, Event::Rejoin { node, gen });
                }
            }
            Event::Unpause { node, gen } => {
                if self.nodes[node].gen == gen {
                    self.nodes[node].paused_until = None;
                }
            }
            Event::Unblock { links } => {
                for link in links {
                    if let Some(count) = self.blocked.get_mut(&link) {
                        *count -= 1;
                        if *count == 0 {
                            self.blocked.remove(&link);
                        }
                    }
                }
            }
            Event::Heal => self.heal(),
            Event::Check => self.check_convergence(),
        }
    }

    // ------------------------------------------------------------------ replicas

    fn step(&mut self, node: usize, input: Input) -> Result<(), Rejected> {
        let local = self.nodes[node].local(self.now);
        let mut effects = Vec::new();
        let Some(replica) = self.nodes[node].replica.as_mut() else {
            return Err(Rejected::NotLeader { leader_hint: None });
        };
        let result = replica.step(local, input, &mut effects);
        replica.check_invariants();
        self.nodes[node].queue.extend(effects);
        self.run_effects(node);
        self.schedule_timer(node);
        result
    }

    fn schedule_timer(&mut self, node: usize) {
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

    /// Carries out queued effects in order, stopping at a `Persist` until the disk
    /// has synced it (the barrier rule). Consecutive persists share one sync.
    fn run_effects(&mut self, node: usize) {
        loop {
            if self.violation.is_some() {
                return;
            }
            let n = &mut self.nodes[node];
            if n.syncing || n.replica.is_none() {
                return;
            }
            let Some(effect) = n.queue.pop_front() else { return };
            match effect {
                Effect::Persist(op) => {
                    n.unsynced.push(op);
                    if !matches!(n.queue.front(), Some(Effect::Persist(_))) {
                        n.syncing = true;
                        let gen = n.gen;
                        self.stats.fsyncs += 1;
                        let latency = self.rng.range(20, self.params.disk_latency_max + 21);
                        self.schedule(self.now + latency, Event::SyncDone { node, gen });
                    }
                }
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
                    if risk > 0.0 && self.phase == Phase::Faults && self.rng.chance(risk) {
                        self.crash(node);
                        let gen = self.nodes[node].gen;
                        // Back quickly, while the leaders it talked to still act.
                        let after = self.rng.range(MS, 100 * MS);
                        self.schedule(self.now + after, Event::Restart { node, gen });
                        return;
                    }
                }
                Effect::SendToBootstrap(msg) => {
                    let candidates: Vec<usize> = (0..self.nodes.len())
                        .filter(|i| *i != node && self.nodes[*i].is_up())
                        .collect();
                    if !candidates.is_empty() {
                        let target = candidates[self.rng.index(candidates.len())];
                        let to = self.nodes[target].id;
                        self.send(node, to, msg);
                    }
                }
                Effect::Apply { slot, value } => self.on_apply(node, slot, value),
                Effect::InstallSnapshot(snapshot) if n.machine.is_some() => {
                    let id = n.id;
                    match Machine::restore(object_types(), &snapshot.data) {
                        Ok(mut machine) => {
                            machine.set_bugs(self.opts.object_bugs.clone());
                            let hash = machine_hash(&machine);
                            n.machine = Some(Box::new(machine));
                            n.app_applied = snapshot.slot;
                            let check = self.prefix.on_snapshot(id, snapshot.slot);
                            self.record(check);
                            let check = self.state.on_state(id, snapshot.slot, hash);
                            self.record(check);
                        }
                        Err(e) => self.fail("state", format!("{id:?} got a bad snapshot: {e}")),
                    }
                }
                Effect::InstallSnapshot(snapshot) => {
                    let id = n.id;
                    match App::decode(&snapshot.data) {
                        Some(app) => {
                            n.app = app;
                            n.app_applied = snapshot.slot;
                            let hash = n.app.state_hash();
                            let check = self.prefix.on_snapshot(id, snapshot.slot);
                            self.record(check);
                            let check = self.state.on_state(id, snapshot.slot, hash);
                            self.record(check);
                        }
                        None => self.fail("state", format!("{id:?} got an undecodable snapshot")),
                    }
                }
                Effect::ReadReady { id } => {
                    if let Some((client, session, seq, op)) = n.object_reads.remove(&id) {
                        let slot = n.app_applied;
                        let result = match &n.machine {
                            Some(m) => m.query(op.object, op.method, &op.args),
                            None => continue,
                        };
                        let reply = match result {
                            Ok(v) => om::Reply::Value(v),
                            Err(e) => om::Reply::Error(e),
                        };
                        self.reply(
                            client,
                            Reply::Object { session, seq, slot, position: 0, reply },
                        );
                        continue;
                    }
                    if let Some((client, seq, key)) = n.reads.remove(&id) {
                        let result = n.app.get(key);
                        self.reply(client, Reply::Done { seq, result });
                    }
                }
                Effect::Dropped { commands, leader_hint } if n.machine.is_some() => {
                    for command in commands {
                        let Command::App(bytes) = command else { continue };
                        let Some(key) =
                            om::Request::decode(&bytes).ok().as_ref().and_then(object_key)
                        else {
                            continue;
                        };
                        if let Some(client) = self.nodes[node].waiting.remove(&key) {
                            self.reply(client, Reply::Redirect { seq: key.1, hint: leader_hint });
                        }
                    }
                }
                Effect::Dropped { commands, leader_hint } => {
                    for command in commands {
                        let Command::App(bytes) = command else { continue };
                        let Some(req) = Request::decode(&bytes) else { continue };
                        if self.nodes[node].waiting.remove(&(req.client, req.seq)).is_some() {
                            let reply = Reply::Redirect { seq: req.seq, hint: leader_hint };
                            self.reply(req.client, reply);
                        }
                    }
                }
                Effect::ReadAborted { id, leader_hint } if n.object_reads.contains_key(&id) => {
                    if let Some((client, _, seq, _)) = n.object_reads.remove(&id) {
                        self.reply(client, Reply::Redirect { seq, hint: leader_hint });
                    }
                }
                Effect::ReadAborted { id, leader_hint } => {
                    if let Some((client, seq, _)) = n.reads.remove(&id) {
                        self.reply(client, Reply::Redirect { seq, hint: leader_hint });
                    }
                }
                Effect::Removed => {
                    // A removed replica lingers a while as a passive acceptor and
                    // catch-up source: the slots before its removal took effect may
                    // still need it to be recovered by a new leader.
                    let gen = n.gen;
                    self.schedule(self.now + REMOVED_LINGER, Event::Rejoin { node, gen });
                }
                Effect::Foreign { from, cluster } => {
                    // Every simulated replica belongs to one cluster: a replica that
                    // calls a peer foreign misread an identity.
                    let id = n.id;
                    self.fail(
                        "cluster",
                        format!("{id:?} took {from:?} for a member of {cluster:?}"),
                    );
                }
            }
        }
    }

    fn send(&mut self, node: usize, to: ReplicaId, msg: Message) {
        let from = self.nodes[node].id;
        let cluster = self.nodes[node].replica.as_ref().and_then(|r| r.cluster());
        self.observe_send(from, &msg);
        if to == from {
            let gen = Some(self.nodes[node].gen);
            self.schedule(self.now, Event::Deliver { node, to, from, cluster, msg, gen });
            return;
        }
        self.stats.messages += 1;
        let Some(&target) = self.id_to_node.get(&to) else { return };
        if self.blocked.contains_key(&(node, target)) || self.rng.chance(self.loss) {
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

    fn on_apply(&mut self, node: usize, slot: Slot, value: concoord_paxos::Value) {
        let id = self.nodes[node].id;
        let check = self.agreement.on_apply(id, slot, value.digest());
        self.record(check);
        let extended = match self.prefix.on_apply(id, slot, &value) {
            Ok(true) => {
                self.agreement.on_agreed(slot, &value);
                self.stats.slots += 1;
                let commands =
                    value.commands.iter().filter(|c| matches!(c, Command::App(_))).count() as u64;
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
        if self.nodes[node].machine.is_some() {
            self.apply_objects(node, slot, &value, extended);
            return;
        }
        let n = &mut self.nodes[node];
        let outcomes = n.app.apply(&value);
        n.app_applied = slot;
        let hash = n.app.state_hash();
        let mut replies = Vec::new();
        for (req, outcome) in outcomes {
            let result = match outcome {
                Outcome::Executed(r) => {
                    let check = self.exactly_once.on_executed(id, req.client, req.seq, slot);
                    self.record(check);
                    Some(r)
                }
                Outcome::Duplicate(r) => Some(r),
                Outcome::Stale => None,
            };
            if let Some(result) = result {
                if self.nodes[node].waiting.remove(&(req.client, req.seq)).is_some() {
                    replies.push((req.client, Reply::Done { seq: req.seq, result }));
                }
            }
        }
        let check = self.state.on_state(id, slot, hash);
        self.record(check);
        for (client, reply) in replies {
            self.reply(client, reply);
        }
        if slot.0.is_multiple_of(self.params.snapshot_every) {
            let data = self.nodes[node].app.encode();
            let local = self.nodes[node].local(self.now);
            let mut effects = Vec::new();
            if let Some(replica) = self.nodes[node].replica.as_mut() {
                let _ = replica.step(local, Input::SnapshotTaken { slot, data }, &mut effects);
                replica.check_invariants();
                self.nodes[node].queue.extend(effects);
            }
        }
    }

    // ------------------------------------------------------------------ clients

    fn start_op(&mut self, client: usize) {
        if self.opts.workload == Workload::Objects {
            self.start_object_op(client);
            return;
        }
        if self.phase != Phase::Faults || self.clients[client].current.is_some() {
            return;
        }
        let key = self.rng.range(0, u64::from(self.params.keys)) as u8;
        let c = &mut self.clients[client];
        let seq = c.next_seq;
        c.next_seq += 1;
        let op = match self.rng.range(0, 10) {
            0..=2 => Op::Write { key, value: (c.id as i64) * 1_000_000 + seq as i64 },
            3..=5 => Op::Add { key, delta: self.rng.range(1, 100) as i64 },
            _ => {
                if self.rng.chance(self.params.barrier_reads) {
                    Op::Read { key }
                } else {
                    Op::LogRead { key }
                }
            }
        };
        let target = self.rng.index(self.nodes.len());
        self.clients[client].current =
            Some(PendingOp { seq, op, invoke: self.now, attempt: 0, target });
        self.resend(client, target, 0);
    }

    fn resend(&mut self, client: usize, target: usize, delay: u64) {
        let c = &mut self.clients[client];
        let Some(p) = c.current.as_mut() else { return };
        p.attempt += 1;
        p.target = target;
        let req = Request { client: c.id, seq: p.seq, op: p.op };
        let (seq, attempt) = (p.seq, p.attempt);
        if !self.rng.chance(self.loss) {
            let d = delay + self.rng.range(self.params.delay_min, self.params.delay_max + 1);
            self.schedule(self.now + d, Event::ToNode { node: target, req });
        }
        let timeout = self.now + delay + self.params.client_timeout;
        self.schedule(timeout, Event::ClientTimeout { client, seq, attempt });
    }

    fn on_request(&mut self, node: usize, req: Request) {
        if !self.nodes[node].is_up() {
            return;
        }
        let result = match req.op {
            Op::Read { key } => {
                let n = &mut self.nodes[node];
                let id = ReadId(n.next_read);
                n.next_read += 1;
                n.reads.insert(id, (req.client, req.seq, key));
                let result = self.step(node, Input::Read(id));
                if result.is_err() {
                    self.nodes[node].reads.remove(&id);
                }
                result
            }
            _ => {
                let command = Command::App(req.encode());
                let result = self.step(node, Input::Propose(vec![command]));
                if result.is_ok() {
                    self.nodes[node].waiting.insert((req.client, req.seq), req.client);
                }
                result
            }
        };
        match result {
            Ok(()) => {}
            Err(Rejected::NotLeader { leader_hint }) => {
                self.reply(req.client, Reply::Redirect { seq: req.seq, hint: leader_hint })
            }
            Err(Rejected::Busy) => {
                let hint = Some(self.nodes[node].id);
                self.reply(req.client, Reply::Redirect { seq: req.seq, hint });
            }
        }
    }

    fn reply(&mut self, client_id: u64, reply: Reply) {
        if self.rng.chance(self.loss) {
            return;
        }
        let client = (client_id - 1) as usize;
        let d = self.rng.range(self.params.delay_min, self.params.delay_max + 1);
        self.schedule(self.now + d, Event::ToClient { client, reply });
    }

    fn on_reply(&mut self, client: usize, reply: Reply) {
        if self.opts.workload == Workload::Objects {
            self.on_object_reply(client, reply);
            return;
        }
        let Some(p) = &self.clients[client].current else { return };
        match reply {
            Reply::Done { seq, result } => {
                if seq != p.seq {
                    return;
                }
                let op = Operation {
                    client: self.clients[client].id,
                    invoke: p.invoke,
                    complete: Some((self.now, result)),
                    op: p.op,
                };
                let favourite = p.target;
                self.history.push((p.op.key(), op));
                self.stats.client_ops += 1;
                self.clients[client].favourite = Some(favourite);
                self.clients[client].current = None;
                let think = self.rng.range(0, 20 * MS);
                self.schedule(self.now + think, Event::ClientNext { client });
            }
            Reply::Redirect { seq, hint } => {
                if seq != p.seq {
                    return;
                }
                let target = match hint.and_then(|h| self.id_to_node.get(&h).copied()) {
                    Some(t) if t != p.target => t,
                    _ => self.rng.index(self.nodes.len()),
                };
                let backoff = self.rng.range(MS, 30 * MS);
                self.resend(client, target, backoff);
            }
            Reply::Object { .. } => {}
        }
    }

    // ------------------------------------------------------------------ faults

    fn inject_fault(&mut self) {
        let p = &self.params;
        let weights = [p.crash_weight, p.pause_weight, p.partition_weight, p.reconfig_weight];
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return;
        }
        let mut pick = self.rng.range(0, total);
        let mut kind = 0;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                kind = i;
                break;
            }
            pick -= w;
        }
        if self.opts.workload == Workload::Objects && self.rng.chance(0.1) {
            self.crash_a_client();
            return;
        }
        match kind {
            0 => self.fault_crash(),
            1 => self.fault_pause(),
            2 => self.fault_partition(),
            _ => self.fault_reconfigure(),
        }
    }

    fn up_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].is_up()).collect()
    }

    fn fault_crash(&mut self) {
        let up = self.up_nodes();
        if up.is_empty() {
            return;
        }
        let node = up[self.rng.index(up.len())];
        if !self.params.durable && !self.majority_survives_without(node) {
            // Without disks a majority's memory is the only copy of the log: losing
            // it is data loss by design, not a bug to find.
            return;
        }
        self.crash(node);
        let gen = self.nodes[node].gen;
        let after = self.rng.range(100 * MS, 3 * SEC);
        self.schedule(self.now + after, Event::Restart { node, gen });
    }

    /// Whether every membership still to govern a slot keeps a majority of its
    /// voters running (with their memory) if `node` goes down.
    fn majority_survives_without(&self, node: usize) -> bool {
        let most_advanced =
            self.nodes.iter().filter_map(|n| n.replica.as_ref()).max_by_key(|r| r.commit_max());
        let Some(r) = most_advanced else { return false };
        let far = Slot(u64::MAX / 2);
        // Nor while a membership change may be in flight: an unchosen change is
        // invisible in any schedule, yet may shrink the membership right after.
        let settled = self.nodes.iter().filter_map(|n| n.replica.as_ref()).all(|r| {
            r.pending_len() == 0
                && r.membership() == r.schedule().latest()
                && !holds_unchosen_change(r)
        });
        if !settled || self.now < self.last_reconfigure + 2 * SEC {
            return false;
        }
        let alive: Vec<ReplicaId> = (0..self.nodes.len())
            .filter(|i| *i != node && self.nodes[*i].is_up())
            .map(|i| self.nodes[i].id)
            .collect();
        // At most one dead identity at a time: until the dead one is removed, the
        // memberships in flight (which no single replica fully knows) could
        // otherwise add up dead voters past the majority.
        let everyone_alive = self.nodes.iter().filter_map(|n| n.replica.as_ref()).all(|r| {
            r.schedule()
                .governing(r.commit_max().next(), far)
                .iter()
                .all(|m| m.member_ids().all(|id| id == self.nodes[node].id || alive.contains(&id)))
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

    fn crash(&mut self, node: usize) {
        let fresh = self.nodes[node].machine.is_some().then(|| self.new_machine());
        let n = &mut self.nodes[node];
        n.last_membership = n.replica.as_ref().and_then(|r| r.membership().cloned());
        n.replica = None;
        n.gen += 1;
        n.timer_token += 1;
        n.timer_at = None;
        n.queue.clear();
        n.syncing = false;
        // Written but not synced: lost with the process.
        n.unsynced.clear();
        n.paused_until = None;
        n.app = App::default();
        // The state machine's memory is lost with the process.
        n.machine = fresh;
        n.app_applied = Slot::ZERO;
        n.waiting.clear();
        n.reads.clear();
        n.object_reads.clear();
        let id = n.id;
        self.prefix.on_restart(id);
    }

    fn restart(&mut self, node: usize) {
        let local = self.nodes[node].local(self.now);
        let n = &self.nodes[node];
        let old = n.id;
        let opts = self.replica_options(old);
        let mut effects = Vec::new();
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
        self.run_effects(node);
        self.schedule_timer(node);
    }

    /// Whether the replica `id` is running (its node is up under that identity).
    fn is_running(&self, id: ReplicaId) -> bool {
        self.id_to_node.get(&id).is_some_and(|&i| self.nodes[i].id == id && self.nodes[i].is_up())
    }

    /// Whether every running member of the membership that removed `node` has
    /// applied as far as `node` has: only then may a removed replica go away, since
    /// the slots before its removal took effect may exist nowhere else.
    fn successors_caught_up(&self, node: usize) -> bool {
        let Some(r) = &self.nodes[node].replica else { return true };
        let Some(m) = r.membership() else { return true };
        m.member_ids().all(|id| match self.id_to_node.get(&id) {
            Some(&i) if self.nodes[i].id == id => {
                self.nodes[i].replica.as_ref().is_none_or(|s| s.commit_max() >= r.commit_max())
            }
            _ => true,
        })
    }

    /// A removed replica that was not meant to leave comes back as a new member.
    fn rejoin(&mut self, node: usize) {
        let old = self.nodes[node].id;
        if self.retiring.contains(&old) {
            self.crash(node);
            self.nodes[node].retired = true;
            return;
        }
        self.crash(node);
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

    fn fault_pause(&mut self) {
        let up = self.up_nodes();
        if up.is_empty() {
            return;
        }
        let node = up[self.rng.index(up.len())];
        let until = self.now + self.rng.range(50 * MS, 1500 * MS);
        self.nodes[node].paused_until = Some(until);
        let gen = self.nodes[node].gen;
        self.schedule(until, Event::Unpause { node, gen });
    }

    fn fault_partition(&mut self) {
        let count = self.nodes.len();
        if count < 2 {
            return;
        }
        let mut links = Vec::new();
        match self.rng.range(0, 3) {
            0 => {
                // Symmetric split into two sides.
                let side: Vec<bool> = (0..count).map(|_| self.rng.chance(0.5)).collect();
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
                let a = self.rng.index(count);
                let b = self.rng.index(count);
                if a != b {
                    links.push((a, b));
                }
            }
            _ => {
                // Partial: a sees b, b sees c, a does not see c.
                if count >= 3 {
                    let a = self.rng.index(count);
                    let c = (a + 1 + self.rng.index(count - 1)) % count;
                    links.push((a, c));
                    links.push((c, a));
                }
            }
        }
        if links.is_empty() {
            return;
        }
        for link in &links {
            *self.blocked.entry(*link).or_insert(0) += 1;
        }
        let until = self.now + self.rng.range(200 * MS, 3 * SEC);
        self.schedule(until, Event::Unblock { links });
    }

    fn leader_node(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_up())
            .filter_map(|i| Some((self.nodes[i].replica.as_ref()?.ballot()?, i)))
            .max()
            .map(|(_, i)| i)
    }

    fn fault_reconfigure(&mut self) {
        let Some(leader) = self.leader_node() else { return };
        let Some(latest) = self.nodes[leader].replica.as_ref().and_then(|r| r.schedule().latest())
        else {
            return;
        };
        let latest = latest.clone();
        let voters: Vec<ReplicaId> = latest.voter_ids().collect();
        // A careful operator shrinks or swaps voters only while every member runs
        // and is caught up; otherwise the change could leave no live majority.
        let leader_commit =
            self.nodes[leader].replica.as_ref().map_or(Slot::ZERO, |r| r.commit_max());
        let healthy = latest.member_ids().all(|id| {
            self.id_to_node.get(&id).is_some_and(|&i| {
                let n = &self.nodes[i];
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
            .filter(|(id, (_, r))| *r == Role::Learner && self.is_running(**id))
            .map(|(id, _)| *id)
            .collect();
        let change = match self.rng.range(0, 4) {
            0 => {
                if self.nodes.len() >= self.params.nodes_max {
                    return;
                }
                let id = ReplicaId(self.next_id);
                self.next_id += 1;
                let addr = format!("node{}", self.nodes.len());
                let node = self.add_node(id, addr.clone(), None);
                let local = self.nodes[node].local(self.now);
                let opts = self.replica_options(id);
                self.nodes[node].replica = Some(Replica::join(id, addr, opts, None, local));
                self.schedule_timer(node);
                return;
            }
            1 => {
                if voters.len() < 3 || !healthy {
                    return;
                }
                let victim = voters[self.rng.index(voters.len())];
                self.retiring.insert(victim);
                ConfigChange::Remove(victim)
            }
            2 => {
                let (Some(&learner), false) = (learners.first(), voters.is_empty()) else { return };
                if !healthy {
                    return;
                }
                let victim = voters[self.rng.index(voters.len())];
                self.retiring.insert(victim);
                ConfigChange::Replace { remove: victim, promote: learner }
            }
            _ => {
                let Some(&learner) = learners.first() else { return };
                ConfigChange::Promote(learner)
            }
        };
        self.last_reconfigure = self.now;
        let _ = self.step(leader, Input::Propose(vec![Command::Reconfigure(change)]));
    }

    fn heal(&mut self) {
        self.phase = Phase::Healing;
        self.blocked.clear();
        self.loss = 0.0;
        self.duplicate = 0.0;
        for node in 0..self.nodes.len() {
            let n = &mut self.nodes[node];
            if n.retired {
                continue;
            }
            n.paused_until = None;
            if n.replica.is_none() {
                self.restart(node);
            }
        }
        self.schedule(self.now + 100 * MS, Event::Check);
    }

    fn check_convergence(&mut self) {
        let mut views = Vec::new();
        let leader_membership = self
            .leader_node()
            .and_then(|l| self.nodes[l].replica.as_ref())
            .and_then(|r| r.membership().cloned());
        for n in &self.nodes {
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
        let unanswered = self
            .clients
            .iter()
            .filter(|c| {
                let o = &c.obj;
                c.current.is_some() || (!o.crashed && (o.pending.is_some() || !o.holds.is_empty()))
            })
            .count();
        if self.opts.workload == Workload::Objects {
            for client in 0..self.clients.len() {
                self.start_object_op(client);
            }
        }
        match liveness::converged(&views, unanswered) {
            Ok(()) => self.phase = Phase::Done,
            Err(why) => {
                self.last_liveness = why;
                if !self.params.auto_promote {
                    self.operator_promotes_a_learner();
                }
                if self.now > self.heal_at + CONVERGENCE_BOUND {
                    let mut why = std::mem::take(&mut self.last_liveness);
                    if let Some(r) = self.leader_node().and_then(|l| self.nodes[l].replica.as_ref())
                    {
                        let voters: Vec<ReplicaId> = r
                            .schedule()
                            .latest()
                            .map(|m| m.member_ids().collect())
                            .unwrap_or_default();
                        let up: Vec<ReplicaId> =
                            self.up_nodes().iter().map(|i| self.nodes[*i].id).collect();
                        why.push_str(&format!(
                            " (leader {:?} at {:?}, members {voters:?}, running {up:?})",
                            r.id(),
                            r.commit_max()
                        ));
                    }
                    self.fail(
                        "liveness",
                        format!("no convergence {}s after healing: {why}", CONVERGENCE_BOUND / SEC),
                    );
                } else {
                    self.schedule(self.now + 100 * MS, Event::Check);
                }
            }
        }
    }

    /// Without automatic promotion, the operator promotes learners once faults end.
    fn operator_promotes_a_learner(&mut self) {
        let Some(leader) = self.leader_node() else { return };
        let Some(r) = self.nodes[leader].replica.as_ref() else { return };
        if r.pending_len() > 0 || r.membership() != r.schedule().latest() {
            return;
        }
        let Some(m) = r.membership() else { return };
        let learner = m
            .members
            .iter()
            .find(|(id, (_, role))| *role == Role::Learner && self.is_running(**id))
            .map(|(id, _)| *id);
        if let Some(learner) = learner {
            self.last_reconfigure = self.now;
            let change = ConfigChange::Promote(learner);
            let _ = self.step(leader, Input::Propose(vec![Command::Reconfigure(change)]));
        }
    }

    fn check_linearizability(&mut self) {
        let mut by_key: BTreeMap<u8, Vec<Operation<Op, i64>>> = BTreeMap::new();
        for (key, op) in self.history.drain(..) {
            by_key.entry(key).or_default().push(op);
        }
        for c in &self.clients {
            if let Some(p) = &c.current {
                let op = Operation { client: c.id, invoke: p.invoke, complete: None, op: p.op };
                by_key.entry(p.op.key()).or_default().push(op);
            }
        }
        for (key, ops) in by_key {
            match linearizability::check(&Register, &ops, 2_000_000) {
                Verdict::Linearizable => {}
                Verdict::NotLinearizable { explanation } => {
                    self.fail("linearizability", format!("key {key}: {explanation}"));
                    return;
                }
                Verdict::Unknown { reason } => {
                    self.fail("linearizability", format!("key {key}: checker gave up: {reason}"));
                    return;
                }
            }
        }
    }
}

/// The instances the objects workload creates through the log: (name, type,
/// constructor argument or none).
const OBJECTS: [(&str, &str, Option<i64>); 16] = [
    ("mesh", "MeshMembership", None),
    ("barrier", "Barrier", Some(2)),
    ("cond", "Condition", None),
    ("counter", "Counter", None),
    ("lock", "Lock", None),
    ("rlock", "RLock", None),
    ("semaphore", "Semaphore", Some(2)),
    ("permits", "BoundedSemaphore", Some(2)),
    ("queue", "Queue", Some(3)),
    ("stack", "Stack", None),
    ("log", "Log", None),
    ("members", "Membership", None),
    ("bank", "Bank", None),
    ("jobs", "JobManager", None),
    ("tree", "BinaryTree", None),
    ("names", "NameserverCoord", None),
];

/// Whether the workload may cancel this call while it waits: the blocking calls
/// whose cancellation leaves no trace in the object (a condition's `wait` released
/// the lock on the way in, which a history without the call could not explain).
fn cancellable(op: &ObjOp) -> bool {
    matches!(
        (op.object, op.method),
        ("lock" | "rlock" | "semaphore" | "permits", "acquire" | "acquire_token")
            | ("queue", "get")
            | ("barrier" | "mesh", "wait")
    )
}

/// Session lease of the objects workload's clients.
const OBJECT_LEASE_MS: u64 = 8_000;

fn object_types() -> Types {
    let mut types = Types::new();
    concoord_object::builtins::register_all(&mut types);
    types
}

/// The one mesh group the workload uses.
fn group() -> ObjValue {
    ObjValue::Str("g".into())
}

fn object_args(arg: Option<i64>) -> Vec<ObjValue> {
    arg.map(|a| vec![ObjValue::Int(a)]).unwrap_or_default()
}

fn machine_hash(machine: &Machine) -> u64 {
    let mut h = Fnv::new();
    h.bytes(&machine.snapshot().unwrap_or_default());
    h.finish()
}

/// The key a node files a waiting request under: (session, request number), or
/// (0, nonce) for an `OpenSession`.
fn object_key(req: &om::Request) -> Option<(u64, u64)> {
    match req {
        om::Request::OpenSession { nonce, .. } => Some((0, *nonce)),
        om::Request::Call { session, request, .. }
        | om::Request::Create { session, request, .. }
        | om::Request::Cancel { session, request, .. } => Some((session.0, request.0)),
        om::Request::KeepAlive { .. } | om::Request::CloseSession { .. } => None,
    }
}

impl Sim {
    // ------------------------------------------------------------------ objects workload

    fn new_machine(&self) -> Box<Machine> {
        let mut machine = Machine::new(object_types());
        machine.set_bugs(self.opts.object_bugs.clone());
        Box::new(machine)
    }

    /// Applies one chosen slot to a node's object machine and answers the calls this
    /// node is waiting for. `extended`: this apply is the first of `slot` anywhere.
    fn apply_objects(
        &mut self,
        node: usize,
        slot: Slot,
        value: &concoord_paxos::Value,
        extended: bool,
    ) {
        let id = self.nodes[node].id;
        let n = &mut self.nodes[node];
        let Some(machine) = n.machine.as_mut() else { return };
        let mut responses = Vec::new();
        let mut executed = Vec::new();
        let mut ended = Vec::new();
        for command in &value.commands {
            let Command::App(bytes) = command else { continue };
            let execution = machine.apply(slot, value.timestamp, bytes, &mut responses);
            ended.extend(machine.take_ended());
            if execution == Execution::Executed {
                if let Ok(om::Request::Call { session, request, .. }) = om::Request::decode(bytes) {
                    executed.push((session.0, request.0));
                }
            }
        }
        let hash = machine_hash(machine);
        n.app_applied = slot;
        for (session, request) in executed {
            let check = self.exactly_once.on_executed(id, session, request, slot);
            self.record(check);
        }
        let check = self.state.on_state(id, slot, hash);
        self.record(check);
        if extended {
            for (session, position) in ended {
                for history in self.obj_history.values_mut() {
                    history.push(Operation {
                        client: 0,
                        invoke: self.now,
                        complete: Some((
                            self.now,
                            ObjectResult { slot, position, result: Ok(ObjValue::Nil) },
                        )),
                        op: ObjectCall {
                            session: concoord_wire::SessionId(session.0),
                            method: SESSION_CLOSED.into(),
                            args: vec![],
                        },
                    });
                }
            }
        }
        for response in responses {
            if response.reply == om::Reply::Parked {
                continue; // answered when woken, by whichever node the caller waits on
            }
            let key = (response.call.session.0, response.call.request.0);
            if let Some(client) = self.nodes[node].waiting.remove(&key) {
                let reply = Reply::Object {
                    session: key.0,
                    seq: key.1,
                    slot: response.slot,
                    position: response.position,
                    reply: response.reply,
                };
                self.reply(client, reply);
            }
        }
        if slot.0.is_multiple_of(self.params.snapshot_every) {
            let data = self.nodes[node].machine.as_ref().and_then(|m| m.snapshot().ok());
            let local = self.nodes[node].local(self.now);
            let mut effects = Vec::new();
            if let (Some(data), Some(replica)) = (data, self.nodes[node].replica.as_mut()) {
                let _ = replica.step(local, Input::SnapshotTaken { slot, data }, &mut effects);
                replica.check_invariants();
                self.nodes[node].queue.extend(effects);
            }
        }
    }

    fn start_object_op(&mut self, client: usize) {
        let faults = self.phase == Phase::Faults;
        let c = &self.clients[client];
        let o = &c.obj;
        if o.crashed || o.pending.is_some() {
            return;
        }
        let (seq, msg, op) = match o.session {
            None => {
                // After the faults, a client without a session opens one only to help
                // others finish (a barrier round, a condition's waiters).
                let needed = self.someone_waits_at_the_barrier(client)
                    || self.waiting_on(client, "cond", "wait") > 0
                    || self.waiting_on(client, "queue", "get") > 0
                    || self.waiting_on(client, "mesh", "wait") > 0;
                if !faults && !needed {
                    return;
                }
                let c = &self.clients[client];
                let o = &c.obj;
                let nonce = (c.id << 32) | (o.incarnation + 1);
                let open = om::Request::OpenSession { nonce, lease_ms: OBJECT_LEASE_MS };
                (nonce, ObjectMsg::Log(open), None)
            }
            Some(session) => {
                let seq = o.next_request;
                let session = concoord_wire::SessionId(session);
                let request = concoord_wire::RequestNumber(seq);
                if o.created < OBJECTS.len() {
                    let (name, type_name, arg) = OBJECTS[o.created];
                    let create = om::Request::Create {
                        session,
                        request,
                        name: name.into(),
                        type_name: type_name.into(),
                        args: object_args(arg),
                        acked: request,
                    };
                    (seq, ObjectMsg::Log(create), None)
                } else {
                    let op = if o.holds.contains(&"cond") && !o.cond_acted {
                        // Holding the condition's lock: wait for a notification (only
                        // while another live client can still notify), or notify all.
                        if faults && self.rng.chance(0.5) && self.a_free_client_remains(client) {
                            ObjOp { object: "cond", method: "wait", args: vec![] }
                        } else {
                            ObjOp { object: "cond", method: "notify_all", args: vec![] }
                        }
                    } else if let Some(object) = o.holds.first() {
                        ObjOp { object, method: "release", args: vec![] }
                    } else if !faults && self.waiting_on(client, "mesh", "wait") > 0 {
                        // Once faults stop, idle clients end the group waiters wait on
                        // (removing it wakes them with KeyError).
                        ObjOp { object: "mesh", method: "remove_group", args: vec![group()] }
                    } else if !faults && self.waiting_on(client, "queue", "get") > 0 {
                        // Once faults stop, idle clients feed blocked getters.
                        ObjOp {
                            object: "queue",
                            method: "put_nowait",
                            args: vec![ObjValue::Int(0)],
                        }
                    } else if !faults && self.waiting_on(client, "cond", "wait") > 0 {
                        // Once faults stop, idle clients notify the condition's waiters.
                        ObjOp { object: "cond", method: "acquire", args: vec![] }
                    } else if !faults && self.someone_waits_at_the_barrier(client) {
                        // Once faults stop, idle clients complete the barrier rounds
                        // others are waiting in, so no live caller waits forever.
                        ObjOp { object: "barrier", method: "wait", args: vec![] }
                    } else if !faults {
                        return;
                    } else {
                        self.random_object_op(client)
                    };
                    let query =
                        op.method == "getvalue" && self.rng.chance(self.params.barrier_reads);
                    let msg = if query {
                        ObjectMsg::Query { session: session.0, seq, op: op.clone() }
                    } else {
                        ObjectMsg::Log(om::Request::Call {
                            session,
                            request,
                            acked: request,
                            object: op.object.into(),
                            method: op.method.into(),
                            args: op.args.clone(),
                        })
                    };
                    (seq, msg, Some(op))
                }
            }
        };
        let target = match self.clients[client].favourite {
            Some(f) if !self.rng.chance(0.05) => f,
            _ => self.rng.index(self.nodes.len()),
        };
        let o = &mut self.clients[client].obj;
        if o.session.is_some() {
            o.next_request += 1;
        }
        let cancellable = op.as_ref().is_some_and(cancellable);
        o.pending = Some(ObjPending { seq, msg, op, invoke: self.now, attempt: 0, target });
        self.resend_object(client, target, 0);
        if cancellable && faults && self.cancel_rng.chance(self.cancel_chance) {
            let after = self.cancel_rng.range(5 * MS, 300 * MS);
            self.schedule(self.now + after, Event::ClientCancel { client, seq });
        }
    }

    /// The client stops waiting for its call `seq` (if that call still waits): it
    /// sends a `Cancel` to the replica it waits on, once (a lost cancel leaves the
    /// call parked, which the workload tolerates anyway). The call then ends with
    /// `CancelledError` (no effect: it leaves the history) or with its real result.
    fn cancel_object_op(&mut self, client: usize, seq: u64) {
        let c = &self.clients[client];
        let o = &c.obj;
        let (Some(p), Some(session)) = (&o.pending, o.session) else { return };
        if p.seq != seq || o.crashed || p.op.is_none() {
            return;
        }
        let (id, target, request) = (c.id, p.target, o.next_request);
        let cancel = om::Request::Cancel {
            session: concoord_wire::SessionId(session),
            request: concoord_wire::RequestNumber(request),
            target: concoord_wire::RequestNumber(seq),
        };
        self.clients[client].obj.next_request += 1;
        self.stats.cancels += 1;
        let d = self.rng.range(self.params.delay_min, self.params.delay_max + 1);
        let msg = ObjectMsg::Log(cancel);
        self.schedule(self.now + d, Event::ToNodeObject { node: target, client: id, msg });
    }

    /// How many live clients other than `client` have `object.method` outstanding.
    fn waiting_on(&self, client: usize, object: &str, method: &str) -> usize {
        self.clients
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                *i != client
                    && !c.obj.crashed
                    && c.obj
                        .pending
                        .as_ref()
                        .and_then(|p| p.op.as_ref())
                        .is_some_and(|op| op.object == object && op.method == method)
            })
            .count()
    }

    /// Whether, if `client` blocks (waits at the barrier or on the condition), some
    /// other live client is left that is not blocked, and so can complete a barrier
    /// round or notify: otherwise the workload itself could deadlock.
    fn a_free_client_remains(&self, client: usize) -> bool {
        let alive = self.clients.iter().filter(|c| !c.obj.crashed).count();
        let blocked = self.waiting_on(client, "cond", "wait")
            + self.waiting_on(client, "barrier", "wait")
            + self.waiting_on(client, "queue", "get")
            + self.waiting_on(client, "mesh", "wait");
        alive >= 2 + blocked
    }

    /// Whether an odd number of live clients other than `client` have a barrier wait
    /// outstanding: one of them needs a partner (the barrier has two parties), and a
    /// single helper is enough.
    fn someone_waits_at_the_barrier(&self, client: usize) -> bool {
        self.waiting_on(client, "barrier", "wait") % 2 == 1
    }

    /// A call on the mesh group `g`, with the epoch this client last saw.
    fn mesh_op(&mut self, client: usize) -> ObjOp {
        let epoch = self.clients.get(client).map_or(1, |c| c.obj.mesh_epoch.max(1));
        let node = ObjValue::Str(format!("n{}", self.rng.range(0, 3)));
        let (method, args) = match self.rng.range(0, 7) {
            0 => ("add_group", vec![group(), ObjValue::Int(1)]),
            1 | 2 => ("approve_join", vec![group(), node, ObjValue::Int(epoch)]),
            3 => ("get_group_epoch", vec![group()]),
            4 => ("check_member", vec![group(), node]),
            5 => ("notify_failure", vec![group(), ObjValue::Int(epoch), node]),
            _ if self.a_free_client_remains(usize::MAX) => ("wait", vec![group()]),
            _ => ("get_group_state", vec![group()]),
        };
        ObjOp { object: "mesh", method, args }
    }

    fn random_object_op(&mut self, client: usize) -> ObjOp {
        let alive = self.clients.iter().filter(|c| !c.obj.crashed).count();
        if alive >= 2 && self.rng.chance(0.03) && self.a_free_client_remains(usize::MAX) {
            return ObjOp { object: "barrier", method: "wait", args: vec![] };
        }
        if self.rng.chance(0.03) {
            return ObjOp { object: "cond", method: "acquire", args: vec![] };
        }
        if self.rng.chance(0.08) {
            return self.mesh_op(client);
        }
        let v = ObjValue::Int(self.rng.range(0, 1_000) as i64);
        // Few distinct small values, so operations on the same one collide.
        let small = ObjValue::Int(self.rng.range(0, 4) as i64);
        let amount = ObjValue::Float(self.rng.range(0, 50) as f64);
        let node = ObjValue::Str(format!("10.0.0.{}:14000", self.rng.range(1, 4)));
        let (object, method, args) = match self.rng.range(0, 32) {
            0 => ("counter", "increment", vec![]),
            1 => ("counter", "getvalue", vec![]),
            2 => ("counter", "decrement", vec![]),
            3 | 4 => ("lock", "acquire_token", vec![]),
            5 => ("rlock", "acquire_token", vec![]),
            6 => ("semaphore", "acquire_token", vec![]),
            7 => ("permits", "acquire_token", vec![]),
            8 => ("queue", "put_nowait", vec![v]),
            9 if self.a_free_client_remains(usize::MAX) => ("queue", "get", vec![]),
            9 => ("queue", "get_nowait", vec![]),
            10 => ("stack", "append", vec![v]),
            11 => ("stack", "pop", vec![]),
            12 => ("log", "append", vec![v]),
            13 => ("log", "read", vec![]),
            14 => ("members", "add", vec![small]),
            15 => ("members", "remove", vec![small]),
            16 => ("members", "members", vec![]),
            17 => ("bank", "open", vec![small]),
            18 => ("bank", "deposit", vec![small, amount]),
            19 => ("bank", "debit", vec![small, amount]),
            20 => ("bank", "balance", vec![small]),
            21 => ("jobs", "schedule", vec![small]),
            22 => ("jobs", "deschedule", vec![small]),
            23 => ("jobs", "list_jobs", vec![]),
            24 => ("tree", "insert", vec![small]),
            25 => ("tree", "delete", vec![small]),
            26 => ("tree", "find", vec![small]),
            27 => ("tree", "get_size", vec![]),
            28 => (
                "names",
                "addnodetosubdomain",
                vec![ObjValue::Str("db".into()), ObjValue::Int(1), node],
            ),
            29 => (
                "names",
                "delnodefromsubdomain",
                vec![ObjValue::Str("db".into()), ObjValue::Int(1), node],
            ),
            30 => ("names", "getdomains", vec![]),
            _ => ("names", "getsubdomains", vec![]),
        };
        ObjOp { object, method, args }
    }

    fn resend_object(&mut self, client: usize, target: usize, delay: u64) {
        let id = self.clients[client].id;
        let Some(p) = self.clients[client].obj.pending.as_mut() else { return };
        p.attempt += 1;
        p.target = target;
        let (seq, attempt, msg) = (p.seq, p.attempt, p.msg.clone());
        if !self.rng.chance(self.loss) {
            let d = delay + self.rng.range(self.params.delay_min, self.params.delay_max + 1);
            self.schedule(self.now + d, Event::ToNodeObject { node: target, client: id, msg });
        }
        let timeout = self.now + delay + self.params.client_timeout;
        self.schedule(timeout, Event::ClientTimeout { client, seq, attempt });
    }

    fn on_object_request(&mut self, node: usize, client: u64, msg: ObjectMsg) {
        if !self.nodes[node].is_up() {
            return;
        }
        let (seq, result) = match msg {
            ObjectMsg::Log(req) => {
                let Some(key) = object_key(&req) else { return };
                let result = self.step(node, Input::Propose(vec![Command::App(req.encode())]));
                if result.is_ok() {
                    self.nodes[node].waiting.insert(key, client);
                }
                (key.1, result)
            }
            ObjectMsg::Query { session, seq, op } => {
                let n = &mut self.nodes[node];
                let id = ReadId(n.next_read);
                n.next_read += 1;
                n.object_reads.insert(id, (client, session, seq, op));
                let result = self.step(node, Input::Read(id));
                if result.is_err() {
                    self.nodes[node].object_reads.remove(&id);
                }
                (seq, result)
            }
        };
        match result {
            Ok(()) => {}
            Err(Rejected::NotLeader { leader_hint }) => {
                self.reply(client, Reply::Redirect { seq, hint: leader_hint })
            }
            Err(Rejected::Busy) => {
                let hint = Some(self.nodes[node].id);
                self.reply(client, Reply::Redirect { seq, hint });
            }
        }
    }

    fn on_object_reply(&mut self, client: usize, reply: Reply) {
        let o = &self.clients[client].obj;
        let Some(p) = &o.pending else { return };
        if o.crashed {
            return;
        }
        match reply {
            Reply::Redirect { seq, hint } if seq == p.seq => {
                let target = match hint.and_then(|h| self.id_to_node.get(&h).copied()) {
                    Some(t) if t != p.target => t,
                    _ => self.rng.index(self.nodes.len()),
                };
                let backoff = self.rng.range(MS, 30 * MS);
                self.resend_object(client, target, backoff);
            }
            // Request numbers restart in a new session: a reply must match both.
            Reply::Object { session, seq, slot, position, reply }
                if seq == p.seq && session == expected_session(o, p) =>
            {
                let target = p.target;
                let Some(p) = self.clients[client].obj.pending.take() else { return };
                match reply {
                    om::Reply::SessionOpened { session, .. } => {
                        let o = &mut self.clients[client].obj;
                        o.session = Some(session.0);
                        o.next_request = 1;
                        o.incarnation += 1;
                    }
                    om::Reply::SessionUnknown | om::Reply::Parked => {
                        // The session ended under the client: what its call did is
                        // unknown to it. Record it as never answered and start over.
                        self.record_object_op(client, p, None);
                        let o = &mut self.clients[client].obj;
                        o.session = None;
                        o.holds.clear();
                    }
                    om::Reply::Value(v) => {
                        self.complete_object_op(client, p, slot, position, Ok(v))
                    }
                    om::Reply::Error(e) if e.kind == "CancelledError" => {
                        // Taken back by its cancel: it had no effect, and the history
                        // leaves it out (the object's own code would still wait).
                        self.stats.cancelled += 1;
                    }
                    om::Reply::Error(e) => {
                        self.complete_object_op(client, p, slot, position, Err(e))
                    }
                }
                self.clients[client].favourite = Some(target);
                let think = self.rng.range(0, 20 * MS);
                self.schedule(self.now + think, Event::ClientNext { client });
            }
            _ => {}
        }
    }

    fn complete_object_op(
        &mut self,
        client: usize,
        p: ObjPending,
        slot: Slot,
        position: u64,
        result: Result<ObjValue, concoord_object::ObjectError>,
    ) {
        let o = &mut self.clients[client].obj;
        let Some(op) = &p.op else {
            o.created += 1; // a Create answered
            return;
        };
        if op.method == "acquire_token" && matches!(result, Ok(ObjValue::Int(_))) {
            o.holds.push(op.object);
        }
        if op.object == "mesh" {
            match &result {
                Ok(ObjValue::Int(e)) if op.method == "get_group_epoch" => o.mesh_epoch = *e,
                Ok(ObjValue::List(items)) if op.method == "approve_join" => {
                    if let Some(ObjValue::Int(e)) = items.get(1) {
                        o.mesh_epoch = *e;
                    }
                }
                _ => {}
            }
        }
        if op.object == "cond" {
            match op.method {
                "acquire" if result == Ok(ObjValue::Bool(true)) => {
                    o.holds.push("cond");
                    o.cond_acted = false;
                }
                "wait" | "notify_all" => o.cond_acted = true,
                _ => {}
            }
        }
        if op.method == "release" {
            o.holds.retain(|h| *h != op.object);
        }
        self.stats.client_ops += 1;
        self.record_object_op(client, p, Some(ObjectResult { slot, position, result }));
    }

    fn record_object_op(&mut self, client: usize, p: ObjPending, result: Option<ObjectResult>) {
        let (Some(op), Some(session)) = (p.op, self.clients[client].obj.session) else { return };
        let entry = Operation {
            client: self.clients[client].id,
            invoke: p.invoke,
            complete: result.map(|r| (self.now, r)),
            op: ObjectCall {
                session: concoord_wire::SessionId(session),
                method: op.method.into(),
                args: op.args,
            },
        };
        if let Some(history) = self.obj_history.get_mut(op.object) {
            history.push(entry);
        }
    }

    fn crash_a_client(&mut self) {
        let alive: Vec<usize> =
            (0..self.clients.len()).filter(|c| !self.clients[*c].obj.crashed).collect();
        // Keep two clients alive (a barrier round needs a partner), and one that is
        // not waiting on the condition (someone must be able to notify).
        if alive.len() > 2 {
            let c = alive[self.rng.index(alive.len())];
            let blocked = self.waiting_on(usize::MAX, "cond", "wait")
                + self.waiting_on(usize::MAX, "barrier", "wait")
                + self.waiting_on(usize::MAX, "queue", "get")
                + self.waiting_on(usize::MAX, "mesh", "wait");
            let is_blocked = self.clients[c]
                .obj
                .pending
                .as_ref()
                .and_then(|p| p.op.as_ref())
                .is_some_and(|op| op.method == "wait" || op.method == "get");
            if is_blocked || alive.len() - 1 > blocked {
                self.clients[c].obj.crashed = true;
            }
        }
    }

    fn check_object_linearizability(&mut self) {
        for c in 0..self.clients.len() {
            if let Some(p) = self.clients[c].obj.pending.take() {
                self.record_object_op(c, p, None);
            }
        }
        let histories = std::mem::take(&mut self.obj_history);
        if let Some(lock) = histories.get("lock") {
            if let Err(v) = crate::checkers::mutual_exclusion::check(lock) {
                self.violation = Some(v);
                return;
            }
        }
        if let Some(mesh) = histories.get("mesh") {
            if let Err(v) = crate::checkers::mesh::check(mesh) {
                self.violation = Some(v);
                return;
            }
        }
        if let Some(cond) = histories.get("cond") {
            if let Err(v) = crate::checkers::condition::check(cond) {
                self.violation = Some(v);
                return;
            }
        }
        if let Some(barrier) = histories.get("barrier") {
            if let Err(v) = crate::checkers::barrier::check(barrier, 2) {
                self.violation = Some(v);
                return;
            }
        }
        for (name, ops) in histories {
            if name == "barrier" || name == "cond" {
                // Rendezvous objects have no sequential model: the barrier is checked
                // above, the condition's waits by liveness (every wait is answered).
                continue;
            }
            let arg = OBJECTS.iter().find(|(n, _, _)| *n == name).and_then(|(_, _, a)| *a);
            let verdict = match name {
                "counter" => object_verdict::<Counter>(arg, &ops),
                "lock" => object_verdict::<Lock>(arg, &ops),
                "rlock" => object_verdict::<RLock>(arg, &ops),
                "semaphore" => object_verdict::<Semaphore>(arg, &ops),
                "permits" => object_verdict::<BoundedSemaphore>(arg, &ops),
                "queue" => object_verdict::<Queue>(arg, &ops),
                "stack" => object_verdict::<Stack>(arg, &ops),
                "log" => object_verdict::<Log>(arg, &ops),
                "members" => object_verdict::<MembershipObject>(arg, &ops),
                "bank" => object_verdict::<Bank>(arg, &ops),
                "jobs" => object_verdict::<JobManager>(arg, &ops),
                "tree" => object_verdict::<BinaryTree>(arg, &ops),
                // `wait` parks until the group changes: a rendezvous, answered or not as
                // liveness requires; every other mesh call has a sequential model.
                "mesh" => {
                    let ops: Vec<_> = ops.into_iter().filter(|o| o.op.method != "wait").collect();
                    object_verdict::<MeshMembership>(arg, &ops)
                }
                _ => object_verdict::<NameserverCoord>(arg, &ops),
            };
            match verdict {
                Verdict::Linearizable => {}
                Verdict::NotLinearizable { explanation } => {
                    self.fail("linearizability", format!("object {name}: {explanation}"));
                    return;
                }
                Verdict::Unknown { reason } => {
                    self.fail(
                        "linearizability",
                        format!("object {name}: checker gave up: {reason}"),
                    );
                    return;
                }
            }
        }
    }
}

/// The session a reply to `p` must come from: 0 for an `OpenSession`.
fn expected_session(o: &ObjClient, p: &ObjPending) -> u64 {
    match &p.msg {
        ObjectMsg::Log(om::Request::OpenSession { .. }) => 0,
        _ => o.session.unwrap_or(0),
    }
}

fn object_verdict<T: ObjectType>(
    arg: Option<i64>,
    ops: &[Operation<ObjectCall, ObjectResult>],
) -> Verdict {
    let initial = match T::construct(&object_args(arg)) {
        Ok(o) => o,
        Err(e) => return Verdict::Unknown { reason: format!("cannot build the model: {e}") },
    };
    match ObjectSpec::new(&initial) {
        Ok(spec) => linearizability::check(&spec, ops, 2_000_000),
        Err(e) => Verdict::Unknown { reason: format!("cannot build the model: {e}") },
    }
}

/// The sequential specification of one register: the application's own semantics.
#[derive(Debug)]
struct Register;

impl Model for Register {
    type State = i64;
    type Op = Op;
    type Ret = i64;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, op: &Op, ret: &i64) -> Option<i64> {
        let (next, expect) = apply_register(*state, op);
        (expect == *ret).then_some(next)
    }

    fn step_pending(&self, state: &i64, op: &Op) -> Option<i64> {
        Some(apply_register(*state, op).0)
    }
}

fn apply_register(state: i64, op: &Op) -> (i64, i64) {
    match *op {
        Op::Write { value, .. } => (value, value),
        Op::Add { delta, .. } => (state.wrapping_add(delta), state.wrapping_add(delta)),
        Op::Read { .. } | Op::LogRead { .. } => (state, state),
    }
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

fn event_node(event: &Event) -> Option<usize> {
    match event {
        Event::Deliver { node, .. }
        | Event::Timer { node, .. }
        | Event::SyncDone { node, .. }
        | Event::ToNode { node, .. }
        | Event::ToNodeObject { node, .. }
        | Event::Unpause { node, .. } => Some(*node),
        _ => None,
    }
}

fn describe(event: &Event) -> String {
    let mut s = String::new();
    match event {
        Event::Deliver { node, to, from, msg, .. } => {
            let _ = write!(s, "deliver n{node} {from:?}->{to:?} {}", brief(msg));
        }
        other => {
            let _ = write!(s, "{other:?}");
        }
    }
    s
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
