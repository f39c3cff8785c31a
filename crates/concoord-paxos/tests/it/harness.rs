//! A deterministic in-memory cluster of `Replica`s for scenario tests: one simulated
//! clock, a perfect but controllable network, disks that honour the `Persist`
//! barrier, and a tiny state machine (the list of applied command bytes).
//!
//! Not the simulator: no random faults unless a test asks for them (jitter, loss,
//! duplication), no clients, no swarm parameters; scenarios drive it step by step.
//! It does check, on every step, what must hold in any run:
//! `Replica::check_invariants`, agreement (one value per slot across replicas),
//! in-order apply, the persist barrier (a `Promise`/`Accepted` leaves only once the
//! disk holds it), read freshness, and an optional bound on `log_len()`.

use concoord_paxos::{
    Command, ConfigChange, DurableState, Effect, Input, Member, Membership, Message, Options,
    PersistOp, Prng, ReadId, Rejected, Replica, Snapshot, Value,
};
use concoord_wire::{ClusterId, ReplicaId, Slot, Span, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// The cluster every founding replica of a test belongs to.
pub const CLUSTER: ClusterId = ClusterId(0xc1);
pub const R1: ReplicaId = ReplicaId(1);
pub const R2: ReplicaId = ReplicaId(2);
pub const R3: ReplicaId = ReplicaId(3);
pub const R4: ReplicaId = ReplicaId(4);
pub const R5: ReplicaId = ReplicaId(5);

/// Most inputs handled at one instant before the harness calls it a livelock.
const STEPS_PER_INSTANT_MAX: u64 = 200_000;

pub fn ms(n: u64) -> Span {
    Span::from_millis(n)
}

pub fn member(id: ReplicaId) -> Member {
    Member::new(id, format!("r{}", id.0))
}

pub fn app(text: &str) -> Command {
    Command::App(text.as_bytes().to_vec())
}

pub fn apps<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Vec<Command> {
    texts.into_iter().map(|t| app(t.as_ref())).collect()
}

/// Prints how to reproduce a seeded run if the test panics while it is alive.
#[derive(Debug)]
pub struct Reproduce(pub String);

impl Drop for Reproduce {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("reproduce: {}", self.0);
        }
    }
}

/// Options for tests: the defaults with a fixed seed.
pub fn test_options() -> Options {
    Options { seed: 7, ..Options::default() }
}

/// The replicated state machine: every application command applied, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct App {
    pub applied: Slot,
    pub commands: Vec<Vec<u8>>,
}

impl App {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.commands.len() as u64).to_le_bytes());
        for c in &self.commands {
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(c);
        }
        out
    }

    fn decode(slot: Slot, data: &[u8]) -> Option<App> {
        let count = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
        let mut at = 8;
        let mut commands = Vec::new();
        for _ in 0..count {
            let len = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize;
            at += 4;
            commands.push(data.get(at..at + len)?.to_vec());
            at += len;
        }
        (at == data.len()).then_some(App { applied: slot, commands })
    }
}

/// A message the harness saw leave a replica (kept when `record_sends` is on).
#[derive(Clone, Debug)]
pub struct Sent {
    pub from: ReplicaId,
    pub to: ReplicaId,
    pub msg: Message,
}

#[derive(Clone, Debug)]
struct Envelope {
    from: ReplicaId,
    /// The sender's cluster when it sent the message.
    cluster: Option<ClusterId>,
    to: ReplicaId,
    msg: Message,
}

/// One machine: a replica (absent while crashed), its disk, and its state machine.
#[derive(Debug)]
pub struct Node {
    pub id: ReplicaId,
    pub addr: String,
    pub opts: Options,
    pub replica: Option<Replica>,
    /// What survives a crash: every `Persist` op that has been synced.
    pub disk: DurableState,
    /// Persist ops written but not yet synced; a crash loses them.
    unsynced: Vec<PersistOp>,
    /// When the sync in progress completes; effects wait behind it.
    sync_at: Option<Time>,
    effects: VecDeque<Effect>,
    pub app: App,
    /// Where `Effect::SendToBootstrap` goes.
    pub bootstrap: Option<ReplicaId>,
    pub removed: bool,
    /// Senders from other clusters whose messages this replica ignored.
    pub foreign: Vec<(ReplicaId, ClusterId)>,
    pub reads_ready: Vec<ReadId>,
    pub reads_aborted: Vec<ReadId>,
    pub snapshots_installed: u64,
    /// Applied slots that carried at least one application command.
    pub app_slots: u64,
    /// Membership changes applied here, with their slots.
    pub configs: Vec<(Slot, ConfigChange)>,
    pub log_len_max_seen: usize,
}

impl Node {
    fn new(id: ReplicaId, opts: Options, replica: Replica) -> Node {
        Node {
            id,
            addr: member(id).addr,
            opts,
            replica: Some(replica),
            disk: DurableState::default(),
            unsynced: Vec::new(),
            sync_at: None,
            effects: VecDeque::new(),
            app: App::default(),
            bootstrap: None,
            removed: false,
            foreign: Vec::new(),
            reads_ready: Vec::new(),
            reads_aborted: Vec::new(),
            snapshots_installed: 0,
            app_slots: 0,
            configs: Vec::new(),
            log_len_max_seen: 0,
        }
    }

    pub fn commands(&self) -> Vec<String> {
        self.app.commands.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect()
    }
}

/// The whole cluster and its network.
#[derive(Debug)]
pub struct Cluster {
    pub now: Time,
    pub nodes: BTreeMap<ReplicaId, Node>,
    pub genesis: Membership,
    pub opts: Options,
    queue: BTreeMap<(Time, u64), Envelope>,
    seq: u64,
    /// Directed links that drop everything.
    cuts: BTreeSet<(ReplicaId, ReplicaId)>,
    /// One-way delay between two replicas (a replica talks to itself instantly),
    /// plus a random extra delay below `jitter` (which reorders messages).
    pub latency: Span,
    pub jitter: Span,
    /// Chance that a message between two replicas is lost, or delivered twice.
    pub loss: f64,
    pub duplicate: f64,
    /// Draws jitter, loss and duplication; seeded, so runs replay exactly.
    pub rng: Prng,
    /// How long a sync takes; zero means a `Persist` is durable at once.
    pub fsync: Span,
    /// Feed `Input::SnapshotTaken` after every slot that is a multiple of this.
    pub snapshot_every: Option<u64>,
    /// Assert `log_len() <= this` on every replica after every step.
    pub log_len_max: Option<usize>,
    pub record_sends: bool,
    pub sends: Vec<Sent>,
    /// Panic on the first violation (otherwise collect them in `violations`).
    pub strict: bool,
    pub violations: Vec<String>,
    /// Persist ops lost because their replica crashed before they synced.
    pub unsynced_lost: usize,
    /// The value digest applied at each slot by whoever applied it first.
    chosen: BTreeMap<Slot, (ReplicaId, u64)>,
    /// For each pending read: the highest slot applied anywhere when it was asked.
    read_floor: BTreeMap<(ReplicaId, ReadId), Slot>,
    next_read: u64,
    steps_this_instant: (Time, u64),
}

impl Cluster {
    /// `voters` founding replicas `R1..` with the given options.
    pub fn with_options(voters: u64, opts: Options) -> Cluster {
        let genesis = Membership::voters((1..=voters).map(|i| member(ReplicaId(i))));
        let now = Time(0);
        let mut nodes = BTreeMap::new();
        for i in 1..=voters {
            let id = ReplicaId(i);
            let replica =
                Replica::new(id, member(id).addr, opts.clone(), CLUSTER, genesis.clone(), now);
            nodes.insert(id, Node::new(id, opts.clone(), replica));
        }
        Cluster {
            now,
            nodes,
            genesis,
            queue: BTreeMap::new(),
            seq: 0,
            cuts: BTreeSet::new(),
            latency: ms(1),
            jitter: Span(0),
            loss: 0.0,
            duplicate: 0.0,
            rng: Prng::new(opts.seed),
            fsync: Span(0),
            snapshot_every: None,
            log_len_max: None,
            record_sends: false,
            sends: Vec::new(),
            strict: true,
            violations: Vec::new(),
            unsynced_lost: 0,
            chosen: BTreeMap::new(),
            read_floor: BTreeMap::new(),
            next_read: 0,
            steps_this_instant: (Time(0), 0),
            opts,
        }
    }

    pub fn new(voters: u64) -> Cluster {
        Cluster::with_options(voters, test_options())
    }

    // ------------------------------------------------------------ inspection

    pub fn node(&self, id: ReplicaId) -> &Node {
        self.nodes.get(&id).unwrap_or_else(|| panic!("no node {id:?}"))
    }

    /// The live replica `id` (panics if it is crashed).
    pub fn replica(&self, id: ReplicaId) -> &Replica {
        self.node(id).replica.as_ref().unwrap_or_else(|| panic!("{id:?} is crashed"))
    }

    pub fn live(&self) -> Vec<ReplicaId> {
        self.nodes.values().filter(|n| n.replica.is_some()).map(|n| n.id).collect()
    }

    pub fn commands(&self, id: ReplicaId) -> Vec<String> {
        self.node(id).commands()
    }

    /// Live replicas that believe they lead (including stale leaders).
    pub fn leaders(&self) -> Vec<ReplicaId> {
        self.live().into_iter().filter(|id| self.replica(*id).is_leader()).collect()
    }

    /// The live leader whose ballot a quorum of live replicas has promised: the one
    /// that can actually get things chosen. A cut-off stale leader is not it.
    pub fn established_leader(&self) -> Option<ReplicaId> {
        self.leaders().into_iter().rev().find(|id| {
            let r = self.replica(*id);
            let Some(ballot) = r.ballot() else { return false };
            let promisers: Vec<ReplicaId> =
                self.live().into_iter().filter(|p| self.replica(*p).promised() == ballot).collect();
            r.membership().is_some_and(|m| m.is_quorum(&promisers))
        })
    }

    /// Slots carried by `Accept` messages from `from` still in the network.
    pub fn accepts_in_network(&self, from: ReplicaId) -> BTreeSet<Slot> {
        self.queue
            .values()
            .filter(|e| e.from == from)
            .flat_map(|e| match &e.msg {
                Message::Accept { entries, .. } => entries.iter().map(|(s, _)| *s).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// Highest slot applied by any replica, live or crashed.
    pub fn applied_max(&self) -> Slot {
        self.nodes.values().map(|n| n.app.applied).max().unwrap_or(Slot::ZERO)
    }

    pub fn describe(&self) -> String {
        let mut out = format!("at {:?}:\n", self.now);
        for n in self.nodes.values() {
            match &n.replica {
                None => {
                    let _ = writeln!(out, "  {:?}: crashed (applied {:?})", n.id, n.app.applied);
                }
                Some(r) => {
                    let _ = writeln!(
                        out,
                        "  {:?}: {:?} ballot={:?} promised={:?} commit={:?} log_len={} \
                         snapshot={:?} applied={:?} commands={} hint={:?}",
                        n.id,
                        r.role(),
                        r.ballot(),
                        r.promised(),
                        r.commit_max(),
                        r.log_len(),
                        r.snapshot_slot(),
                        n.app.applied,
                        n.app.commands.len(),
                        r.leader_hint(),
                    );
                }
            }
        }
        let _ = writeln!(out, "  in flight: {} messages, cuts: {:?}", self.queue.len(), self.cuts);
        out
    }

    fn violation(&mut self, what: String) {
        if self.strict {
            panic!("{what}\n{}", self.describe());
        }
        self.violations.push(what);
    }

    // ------------------------------------------------------------ faults

    /// Crash `id`: the replica, its queued effects and its unsynced writes are gone;
    /// its disk stays.
    pub fn crash(&mut self, id: ReplicaId) {
        let n = self.nodes.get_mut(&id).expect("crash: unknown node");
        self.unsynced_lost += n.unsynced.len();
        n.replica = None;
        n.effects.clear();
        n.unsynced.clear();
        n.sync_at = None;
    }

    /// Restart a crashed durable replica from its disk (`Replica::recover`).
    pub fn restart(&mut self, id: ReplicaId) {
        let now = self.now;
        let n = self.nodes.get_mut(&id).expect("restart: unknown node");
        assert!(n.replica.is_none(), "restart: {id:?} is running");
        // A founding member knows the initial membership from its configuration; a
        // joiner knows only what its disk says.
        let base = self.genesis.is_member(id).then(|| self.genesis.clone());
        let mut effects = Vec::new();
        let replica = Replica::recover(
            id,
            n.addr.clone(),
            n.opts.clone(),
            base,
            n.disk.clone(),
            now,
            &mut effects,
        );
        replica.check_invariants();
        n.replica = Some(replica);
        n.app = App::default();
        n.removed = false;
        n.effects.extend(effects);
        self.run_effects(id);
    }

    /// Add a brand-new replica that asks `bootstrap` to let it join.
    pub fn join(&mut self, id: ReplicaId, bootstrap: ReplicaId) {
        assert!(!self.nodes.contains_key(&id), "join: {id:?} exists");
        let opts = self.opts.clone();
        let replica = Replica::join(id, member(id).addr, opts.clone(), None, self.now);
        let mut node = Node::new(id, opts, replica);
        node.bootstrap = Some(bootstrap);
        self.nodes.insert(id, node);
    }

    /// Cut both directions between `id` and every other replica.
    pub fn isolate(&mut self, id: ReplicaId) {
        let others: Vec<ReplicaId> = self.nodes.keys().copied().filter(|o| *o != id).collect();
        for o in others {
            self.cuts.insert((id, o));
            self.cuts.insert((o, id));
        }
    }

    pub fn cut(&mut self, from: ReplicaId, to: ReplicaId) {
        self.cuts.insert((from, to));
    }

    pub fn heal(&mut self) {
        self.cuts.clear();
    }

    // ------------------------------------------------------------ inputs

    pub fn propose(&mut self, id: ReplicaId, commands: Vec<Command>) -> Result<(), Rejected> {
        self.step(id, Input::Propose(commands))
    }

    /// Asks `id` for a linearizable read; remembers what it must reflect.
    pub fn read(&mut self, id: ReplicaId) -> Result<ReadId, Rejected> {
        self.next_read += 1;
        let read = ReadId(self.next_read);
        let floor = self.applied_max();
        self.step(id, Input::Read(read))?;
        self.read_floor.insert((id, read), floor);
        Ok(read)
    }

    /// Delivers `msg` to `to` as if from `from`, right now, bypassing the network.
    /// Returns the effects the step produced (they are carried out as usual).
    pub fn inject(&mut self, from: ReplicaId, to: ReplicaId, msg: Message) -> Vec<Effect> {
        let before = self.node(to).effects.len();
        let cluster = self.cluster_of(from);
        let _ = self.step_replica(to, Input::Message { from, cluster, msg });
        let produced: Vec<Effect> = self.node(to).effects.iter().skip(before).cloned().collect();
        self.run_effects(to);
        produced
    }

    /// Like `inject`, from a sender that says it belongs to `cluster`.
    pub fn inject_as(
        &mut self,
        from: ReplicaId,
        cluster: Option<ClusterId>,
        to: ReplicaId,
        msg: Message,
    ) -> Vec<Effect> {
        let before = self.node(to).effects.len();
        let _ = self.step_replica(to, Input::Message { from, cluster, msg });
        let produced: Vec<Effect> = self.node(to).effects.iter().skip(before).cloned().collect();
        self.run_effects(to);
        produced
    }

    /// Steps a live replica and carries out its effects.
    pub fn step(&mut self, id: ReplicaId, input: Input) -> Result<(), Rejected> {
        let result = self.step_replica(id, input);
        self.run_effects(id);
        result
    }

    /// Steps a live replica, checks it, and queues its effects (without running them).
    fn step_replica(&mut self, id: ReplicaId, input: Input) -> Result<(), Rejected> {
        let now = self.now;
        if self.steps_this_instant.0 == now {
            self.steps_this_instant.1 += 1;
            assert!(
                self.steps_this_instant.1 < STEPS_PER_INSTANT_MAX,
                "livelock: {STEPS_PER_INSTANT_MAX} steps at {now:?} (last {id:?})\n{}",
                self.describe()
            );
        } else {
            self.steps_this_instant = (now, 1);
        }
        let n = self.nodes.get_mut(&id).unwrap_or_else(|| panic!("step: no node {id:?}"));
        let r = n.replica.as_mut().unwrap_or_else(|| panic!("step: {id:?} is crashed"));
        let mut out = Vec::new();
        let result = r.step(now, input, &mut out);
        r.check_invariants();
        let len = r.log_len();
        n.log_len_max_seen = n.log_len_max_seen.max(len);
        n.effects.extend(out);
        if let Some(max) = self.log_len_max {
            if len > max {
                self.violation(format!("{id:?} holds {len} log entries, more than {max}"));
            }
        }
        result
    }

    // ------------------------------------------------------------ effects

    /// Carries out `id`'s queued effects in order, stopping behind a `Persist`
    /// until its sync completes (consecutive persists share one sync).
    fn run_effects(&mut self, id: ReplicaId) {
        loop {
            let fsync = self.fsync;
            let now = self.now;
            let n = self.nodes.get_mut(&id).expect("run_effects: unknown node");
            if n.sync_at.is_some() || n.replica.is_none() {
                return;
            }
            let Some(effect) = n.effects.pop_front() else { return };
            match effect {
                Effect::Persist(op) => {
                    if fsync == Span(0) {
                        n.disk.apply(&op);
                    } else {
                        n.unsynced.push(op);
                        while let Some(Effect::Persist(_)) = n.effects.front() {
                            if let Some(Effect::Persist(op)) = n.effects.pop_front() {
                                n.unsynced.push(op);
                            }
                        }
                        n.sync_at = Some(now + fsync);
                    }
                }
                Effect::Send { to, msg } => {
                    self.check_barrier(id, &msg);
                    self.send(id, to, msg);
                }
                Effect::SendToBootstrap(msg) => {
                    if let Some(to) = n.bootstrap {
                        self.send(id, to, msg);
                    }
                }
                Effect::Apply { slot, value } => self.on_apply(id, slot, value),
                Effect::InstallSnapshot(snapshot) => self.on_install_snapshot(id, snapshot),
                Effect::ReadReady { id: read } => {
                    n.reads_ready.push(read);
                    let applied = n.app.applied;
                    let floor = self.read_floor.remove(&(id, read)).unwrap_or(Slot::ZERO);
                    if applied < floor {
                        self.violation(format!(
                            "{id:?} served read {read:?} at slot {applied:?}, but slot \
                             {floor:?} was applied before the read was asked"
                        ));
                    }
                }
                Effect::ReadAborted { id: read, .. } => {
                    n.reads_aborted.push(read);
                    self.read_floor.remove(&(id, read));
                }
                Effect::Removed => n.removed = true,
                Effect::Foreign { from, cluster } => n.foreign.push((from, cluster)),
                // The tests' clients resubmit what was not applied; nothing to do here.
                Effect::Dropped { .. } => {}
            }
        }
    }

    /// The barrier rule seen from outside: an acceptor's answer leaves only once
    /// the promise or entries it vouches for are on disk.
    fn check_barrier(&mut self, id: ReplicaId, msg: &Message) {
        let n = self.node(id);
        if !n.opts.durable {
            return;
        }
        let disk = &n.disk;
        let problem = match msg {
            Message::Promise { ballot, .. } if disk.promised < *ballot => {
                Some(format!("{id:?} sent Promise {ballot:?} with {:?} on disk", disk.promised))
            }
            Message::Accepted { ballot, slots, .. } => {
                let snapshot = disk.snapshot.as_ref().map_or(Slot::ZERO, |s| s.slot);
                let missing: Vec<Slot> = slots
                    .iter()
                    .copied()
                    .filter(|s| *s > snapshot && !disk.entries.iter().any(|e| e.slot == *s))
                    .collect();
                if disk.promised < *ballot || !missing.is_empty() {
                    Some(format!(
                        "{id:?} sent Accepted {ballot:?} for {slots:?}: disk has promised \
                         {:?}, lacks {missing:?}",
                        disk.promised
                    ))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(p) = problem {
            self.violation(format!("persist barrier broken: {p}"));
        }
    }

    fn on_apply(&mut self, id: ReplicaId, slot: Slot, value: Value) {
        let digest = value.digest();
        match self.chosen.get(&slot) {
            Some((first, d)) if *d != digest => {
                let first = *first;
                self.violation(format!(
                    "agreement: {id:?} applied {value:?} at {slot:?}, {first:?} applied another value"
                ));
            }
            Some(_) => {}
            None => {
                self.chosen.insert(slot, (id, digest));
            }
        }
        let n = self.nodes.get_mut(&id).expect("apply: unknown node");
        let expected = n.app.applied.next();
        if slot != expected {
            self.violation(format!("{id:?} applied {slot:?} where {expected:?} was next"));
        }
        let n = self.nodes.get_mut(&id).expect("apply: unknown node");
        n.app.applied = slot;
        let mut any_app = false;
        for command in value.commands {
            match command {
                Command::App(bytes) => {
                    n.app.commands.push(bytes);
                    any_app = true;
                }
                Command::Reconfigure(change) => n.configs.push((slot, change)),
                Command::Noop => {}
            }
        }
        if any_app {
            n.app_slots += 1;
        }
        if let Some(every) = self.snapshot_every {
            if slot.0.is_multiple_of(every) {
                let data = n.app.encode();
                let _ = self.step_replica(id, Input::SnapshotTaken { slot, data });
            }
        }
    }

    fn on_install_snapshot(&mut self, id: ReplicaId, snapshot: Snapshot) {
        let n = self.nodes.get_mut(&id).expect("install: unknown node");
        let Some(app) = App::decode(snapshot.slot, &snapshot.data) else {
            return self.violation(format!("{id:?} was given an undecodable snapshot"));
        };
        let before = n.app.applied;
        n.app = app;
        n.snapshots_installed += 1;
        if snapshot.slot < before {
            self.violation(format!(
                "{id:?} installed a snapshot at {:?} over state at {before:?}",
                snapshot.slot
            ));
        }
    }

    // ------------------------------------------------------------ network

    /// The cluster `id` says it belongs to: its own if it runs here, else the
    /// test cluster (a message injected as if from an absent member).
    pub fn cluster_of(&self, id: ReplicaId) -> Option<ClusterId> {
        match self.nodes.get(&id).and_then(|n| n.replica.as_ref()) {
            Some(r) => r.cluster(),
            None => Some(CLUSTER),
        }
    }

    fn send(&mut self, from: ReplicaId, to: ReplicaId, msg: Message) {
        let cluster = self.cluster_of(from);
        if self.record_sends {
            self.sends.push(Sent { from, to, msg: msg.clone() });
        }
        if self.cuts.contains(&(from, to)) || !self.nodes.contains_key(&to) {
            return;
        }
        if from == to {
            self.seq += 1;
            self.queue.insert((self.now, self.seq), Envelope { from, cluster, to, msg });
            return;
        }
        if self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(self.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = Span(self.latency.0 + self.rng.range(0, self.jitter.0));
            self.seq += 1;
            let envelope = Envelope { from, cluster, to, msg: msg.clone() };
            self.queue.insert((self.now + delay, self.seq), envelope);
        }
    }

    // ------------------------------------------------------------ time

    /// When something happens next: a delivery, a sync completing, or a timer.
    fn next_event_at(&self) -> Option<Time> {
        let delivery = self.queue.keys().next().map(|(t, _)| *t);
        let node_events = self.nodes.values().filter_map(|n| {
            let timer = n.replica.as_ref().map(|r| r.next_deadline());
            match (timer, n.sync_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        });
        delivery.into_iter().chain(node_events).filter(|t| *t != Time(u64::MAX)).min()
    }

    /// Handles everything due at `self.now`: deliveries, syncs, then timers.
    fn process_due(&mut self) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let env = entry.remove();
            let up = self.nodes.get(&env.to).is_some_and(|n| n.replica.is_some());
            if up && !self.cuts.contains(&(env.from, env.to)) {
                let input = Input::Message { from: env.from, cluster: env.cluster, msg: env.msg };
                let _ = self.step(env.to, input);
            }
        }
        let ids: Vec<ReplicaId> = self.nodes.keys().copied().collect();
        for id in &ids {
            let n = self.nodes.get_mut(id).expect("node");
            if n.sync_at.is_some_and(|t| t <= self.now) {
                n.sync_at = None;
                for op in std::mem::take(&mut n.unsynced) {
                    n.disk.apply(&op);
                }
                self.run_effects(*id);
            }
        }
        for id in &ids {
            let due =
                self.nodes[id].replica.as_ref().is_some_and(|r| r.next_deadline() <= self.now);
            if due {
                let _ = self.step(*id, Input::Tick);
            }
        }
    }

    /// Runs until `until` (inclusive), handling every event on the way.
    pub fn run_to(&mut self, until: Time) {
        loop {
            match self.next_event_at() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.process_due();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, span: Span) {
        self.run_to(self.now + span);
    }

    /// Runs until `cond` holds, or panics saying `what` did not happen within `limit`.
    pub fn run_until(&mut self, what: &str, limit: Span, cond: impl Fn(&Cluster) -> bool) {
        let deadline = self.now + limit;
        loop {
            if cond(self) {
                return;
            }
            match self.next_event_at() {
                Some(t) if t <= deadline => {
                    self.now = self.now.max(t);
                    self.process_due();
                }
                _ => panic!("{what}: not within {limit:?}\n{}", self.describe()),
            }
        }
    }

    /// Runs until some live replica leads with a quorum's promise; returns it.
    pub fn run_until_leader(&mut self) -> ReplicaId {
        self.run_until("a leader is elected", ms(5_000), |c| c.established_leader().is_some());
        self.established_leader().expect("leader")
    }

    /// Runs until a leader other than `old` is established; returns it.
    pub fn run_until_leader_other_than(&mut self, old: ReplicaId) -> ReplicaId {
        self.run_until("another leader is elected", ms(5_000), |c| {
            c.established_leader().is_some_and(|l| l != old)
        });
        self.established_leader().expect("leader")
    }

    /// Runs until every listed replica has applied `count` application commands.
    pub fn run_until_applied(&mut self, ids: &[ReplicaId], count: usize) {
        let what = format!("{ids:?} apply {count} commands");
        let ids = ids.to_vec();
        self.run_until(&what, ms(10_000), move |c| {
            ids.iter().all(|id| c.node(*id).app.commands.len() >= count)
        });
    }

    /// Asserts that every listed replica applied exactly `expected`, in that order.
    pub fn expect_commands<S: AsRef<str>>(&self, ids: &[ReplicaId], expected: &[S]) {
        let expected: Vec<&str> = expected.iter().map(|s| s.as_ref()).collect();
        for id in ids {
            let got = self.commands(*id);
            assert_eq!(got, expected, "commands applied by {id:?}\n{}", self.describe());
        }
    }
}
