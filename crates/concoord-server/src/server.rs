//! The replica's event loop: one task that owns the consensus core, the object
//! machine and the storage, and is the only one to touch them.
//!
//! Each turn: wait for an event, a report from the disk writer or the core's next
//! deadline, then drain whatever else is ready (up to `EVENTS_PER_TURN`), feeding
//! each into `Replica::step`; then pass the accumulated effects through the
//! `EffectGate` (the barrier rule, shared with the simulator): writes go to the disk
//! writer thread (`disk.rs`) at once, effects that need no pending write run at once,
//! and the rest wait, in order, until the writer reports their write durable. The
//! loop never waits for the disk: it keeps receiving, proposing and sending while a
//! sync runs, and everything written meanwhile shares the next sync (group commit).
//!
//! What it deliberately is not: a place for protocol decisions. Those live in
//! `concoord-paxos` (ordering) and `concoord-object` (sessions, objects).

use crate::clock::Clock;
use crate::disk::{Disk, DiskEvent};
use crate::host::{Host, HostConfig};
use crate::metrics::{self, Metrics, RequestKind, Role};
use crate::net::{self, ConnId, Event, Gate, Links, PeerHello, Shared};
use crate::storage::{Identity, Storage, StorageError};
use concoord_object::machine::{Machine, Reply, Request, Response};
use concoord_object::protocol::{
    ClientFrame, ErrorKind, MemberStatus, ServerFrame, StatusReport, PROTOCOL_VERSION,
    REQUEST_BYTES_MAX,
};
use concoord_object::{CallId, Types, Value};
use concoord_paxos::{
    Ballot, Command, Effect, EffectGate, Gated, Input, Member, Membership, Message, Options,
    ReadId, Rejected, Replica, RoleKind, Snapshot,
};
use concoord_wire::{ClusterId, ReplicaId, RequestNumber, SessionId, Slot, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Events handled per turn before effects run (bounds latency under load while
/// letting one fdatasync cover many commands).
const EVENTS_PER_TURN: usize = 1_024;
/// Capacity of the queue from connection tasks to the event loop.
const EVENT_QUEUE_MAX: usize = 65_536;
/// Name of the instance created from `-o` on every replica.
pub const DEFAULT_OBJECT: &str = "default";
/// How long a joiner waits before it says why it is not admitted, and how often it
/// says it again.
const JOIN_PATIENCE: Duration = Duration::from_secs(3);
const JOIN_REPORT_EVERY: Duration = Duration::from_secs(30);
/// Most member addresses remembered as places to rejoin through.
const KNOWN_ADDRS_MAX: usize = 1_024;

/// How to run one replica.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on, `host:port` (port 0 picks a free one).
    pub listen: String,
    /// Address other replicas and clients use to reach this one; defaults to the
    /// bound address.
    pub advertise: Option<String>,
    /// Replicas of a running cluster to join through; empty founds a new cluster.
    pub boot: Vec<String>,
    /// Type of the default instance (`-o`), by short or dotted name.
    pub object_type: String,
    /// Durable state lives here (`-w` / `--data-dir`); `None` keeps it in memory.
    pub data_dir: Option<PathBuf>,
    /// Clients and peers must present this token.
    pub token: Option<String>,
    /// Consensus tunables.
    pub paxos: Options,
    /// Take a snapshot at most every this many applied slots, and only once the log
    /// applied since the last one is at least as large as that snapshot was (so a
    /// large state is not rewritten every few thousand small commands: snapshot cost
    /// stays proportional to the log it replaces).
    pub snapshot_every: u64,
    /// How long a removed replica keeps serving as an acceptor and catch-up source
    /// before it rejoins under a fresh identity.
    pub removed_linger: Duration,
    /// How to run the Python object host, when `object_type` is a Python class.
    pub host: HostConfig,
    /// Serve Prometheus metrics over HTTP at `/metrics` on this address.
    pub metrics_addr: Option<String>,
    /// Serve DNS for a domain from the membership (`-n`).
    pub naming: Option<concoord_naming::NamingConfig>,
    /// Speak TLS to clients and replicas, and accept nothing else.
    pub tls: Option<crate::tls::Tls>,
}

impl Config {
    pub fn new(listen: impl Into<String>, object_type: impl Into<String>) -> Config {
        let paxos = Options {
            remove_dead_after: Some(concoord_wire::Span::from_millis(30_000)),
            batch_bytes_max: 512 * 1024,
            ..Options::default()
        };
        Config {
            listen: listen.into(),
            advertise: None,
            boot: Vec::new(),
            object_type: object_type.into(),
            data_dir: None,
            token: None,
            paxos,
            snapshot_every: 4_096,
            removed_linger: Duration::from_secs(10),
            host: HostConfig::default(),
            metrics_addr: None,
            naming: None,
            tls: None,
        }
    }
}

/// Why a replica could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics { addr: String, source: std::io::Error },
    #[error("unknown object type {0:?}: give a built-in by short name (Counter) or dotted name (concoord.object.counter.Counter), or a Python class as module.Class; `concoord replica --list-objects` lists the built-ins")]
    UnknownObject(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Config(String),
    #[error("the object machine failed: {0}")]
    Machine(String),
    #[error("the Python object host failed: {0}; this replica stops rather than answer from an object it can no longer trust (the others keep serving)")]
    Host(String),
    #[error(transparent)]
    Naming(#[from] concoord_naming::NamingError),
}

/// A started replica.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on and advertises.
    pub addr: String,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Running {
    /// Asks the replica to stop and waits until it has.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Waits until the replica stops (on its own, after a fatal error).
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(ServerError::Machine(format!("the event loop panicked: {e}"))),
        }
    }

    /// A handle that asks the replica to stop.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Binds, recovers or creates this replica's state, and starts its event loop.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let (types, host) = crate::host::types_for(&config.object_type, object_types(), &config.host)?;
    let object_type = types
        .canonical(&config.object_type)
        .ok_or_else(|| ServerError::UnknownObject(config.object_type.clone()))?
        .to_string();
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| ServerError::Listen { addr: config.listen.clone(), source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Listen { addr: config.listen.clone(), source })?;
    let addr = config.advertise.clone().unwrap_or_else(|| bound.to_string());
    let metrics = Arc::new(Metrics::new());
    if let Some(metrics_addr) = &config.metrics_addr {
        let listener = TcpListener::bind(metrics_addr)
            .await
            .map_err(|source| ServerError::Metrics { addr: metrics_addr.clone(), source })?;
        let at = listener
            .local_addr()
            .map_err(|source| ServerError::Metrics { addr: metrics_addr.clone(), source })?;
        tracing::info!("metrics at http://{at}/metrics");
        tokio::spawn(crate::metrics::serve(listener, metrics.clone()));
    }
    let naming = match config.naming.clone() {
        Some(n) => Some(concoord_naming::Naming::start(n, bound.ip()).await?),
        None => None,
    };
    let clock = Clock::new();
    let now = clock.now();
    let mut opts = config.paxos.clone();
    opts.durable = config.data_dir.is_some();
    // Members record whether they serve DNS, so name servers list only real ones.
    opts.dns_port = naming.as_ref().and_then(|n| n.addr()).map(|a| a.port());

    let mut effects = Vec::new();
    let mut founded = false;
    let mut durable_promise = Ballot::ZERO;
    let (storage, replica) = match &config.data_dir {
        Some(dir) => {
            let (mut storage, recovered) = Storage::open(dir)?;
            if recovered.tail_bytes_dropped > 0 {
                tracing::warn!(
                    "dropped a torn log tail of {} bytes in {} (a write cut short by a crash)",
                    recovered.tail_bytes_dropped,
                    dir.display()
                );
            }
            let replica = match recovered.identity {
                Some(identity) => {
                    if identity.addr != addr {
                        return Err(ServerError::Config(format!(
                            "{} holds replica {} at {}, but this replica is at {addr}: start it \
                             with the same -a/-p, or use another data directory",
                            dir.display(),
                            identity.replica,
                            identity.addr
                        )));
                    }
                    if identity.object_type != object_type {
                        return Err(ServerError::Config(format!(
                            "{} holds a replica of {}, not {object_type}",
                            dir.display(),
                            identity.object_type
                        )));
                    }
                    opts.seed = identity.replica.0;
                    durable_promise = recovered.durable.promised;
                    tracing::info!(
                        "recovering replica {} from {}",
                        identity.replica,
                        dir.display()
                    );
                    Replica::recover(
                        identity.replica,
                        addr.clone(),
                        opts,
                        None,
                        recovered.durable,
                        now,
                        &mut effects,
                    )
                }
                None => {
                    let id = fresh_id(&clock);
                    opts.seed = id.0;
                    storage.write_identity(&Identity {
                        replica: id,
                        addr: addr.clone(),
                        object_type: object_type.clone(),
                    })?;
                    let replica = fresh_replica(id, &addr, opts, &config.boot, &clock);
                    founded = config.boot.is_empty();
                    if let (Some(cluster), Some(genesis)) =
                        (replica.cluster(), replica.membership())
                    {
                        storage.append(&concoord_paxos::PersistOp::Cluster(cluster))?;
                        storage.append(&concoord_paxos::PersistOp::Genesis(genesis.clone()))?;
                        storage.sync()?;
                    }
                    replica
                }
            };
            (Some(storage), replica)
        }
        None => {
            let id = fresh_id(&clock);
            opts.seed = id.0;
            founded = config.boot.is_empty();
            (None, fresh_replica(id, &addr, opts, &config.boot, &clock))
        }
    };

    let effect_gate = EffectGate::new(durable_promise, &replica.options().bugs);
    let (disk, disk_events) = match storage {
        Some(storage) => {
            let (disk, events) = Disk::start(storage, metrics.clone(), clock)
                .map_err(|e| ServerError::Config(format!("cannot start the disk writer: {e}")))?;
            (Some(disk), Some(events))
        }
        None => (None, None),
    };
    let mut machine = Machine::new(types);
    machine
        .create_default(DEFAULT_OBJECT, &object_type)
        .map_err(|e| ServerError::Machine(e.to_string()))?;

    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE_MAX);
    let (shared_tx, shared_rx) =
        watch::channel(Shared { replica: replica.id(), leader: None, cluster: replica.cluster() });
    let gate = Arc::new(Gate::new(config.token.clone(), object_type.clone(), config.tls.clone()));
    let hello = PeerHello {
        version: PROTOCOL_VERSION,
        from: replica.id(),
        addr: addr.clone(),
        object_type: object_type.clone(),
        token: config.token.clone(),
        cluster: replica.cluster(),
    };
    tokio::spawn(net::accept_loop(listener, events_tx.clone(), shared_rx, gate));
    tracing::info!(
        "replica {} of {} listening on {addr}{}",
        replica.id(),
        object_type,
        if disk.is_some() { " (durable)" } else { " (in memory)" }
    );
    if founded {
        tracing::info!(
            "founded a new cluster {} (to join an existing cluster instead, give -b)",
            replica.cluster().map(|c| c.to_string()).unwrap_or_default()
        );
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let replica_cluster = replica.cluster();
    let local_ip = Some(bound.ip()).filter(|ip| !ip.is_unspecified());
    let links = Links::new(hello, events_tx.clone(), local_ip, config.tls.as_ref());
    let mut server = Server {
        config,
        addr: addr.clone(),
        object_type,
        clock,
        replica,
        machine,
        host,
        applied: Slot::ZERO,
        last_snapshot: Slot::ZERO,
        log_bytes_since_snapshot: 0,
        last_snapshot_bytes: 0,
        disk,
        gate: effect_gate,
        links,
        addrs: BTreeMap::new(),
        boot_turn: 0,
        clients: BTreeMap::new(),
        waiting: BTreeMap::new(),
        control: BTreeMap::new(),
        reads: BTreeMap::new(),
        next_read: 1,
        proposals: Vec::new(),
        effects: Vec::new(),
        local: Vec::new(),
        shared: shared_tx,
        was_leader: false,
        removed_at: None,
        hello_cluster: replica_cluster,
        known_addrs: BTreeSet::new(),
        link_trouble: BTreeMap::new(),
        joining_since: now,
        join_reported_at: None,
        foreign_addrs: BTreeMap::new(),
        misaddressed: BTreeSet::new(),
        metrics,
        started: BTreeMap::new(),
        last_promised: Ballot::ZERO,
        last_role: None,
        last_hint: None,
        foreign_reported: BTreeSet::new(),
        naming,
        _events_tx: events_tx,
    };
    server.effects = effects;
    let task = tokio::spawn(async move { server.run(events_rx, disk_events, shutdown_rx).await });
    Ok(Running { addr, shutdown: shutdown_tx, task })
}

/// The registry of object types replicas can host.
pub fn object_types() -> Types {
    let mut types = Types::new();
    concoord_object::builtins::register_all(&mut types);
    types
}

/// Founds a new cluster (no boot addresses) or joins one. A founder draws the new
/// cluster's identity: a process that founds a cluster on an old member's address
/// is a stranger to that member's cluster, which ignores it.
fn fresh_replica(
    id: ReplicaId,
    addr: &str,
    opts: Options,
    boot: &[String],
    clock: &Clock,
) -> Replica {
    let now = clock.now();
    if boot.is_empty() {
        let me = Member { id, addr: addr.to_string(), dns_port: opts.dns_port };
        let cluster = ClusterId(random_u64(clock));
        Replica::new(id, addr.to_string(), opts, cluster, Membership::voters([me]), now)
    } else {
        Replica::join(id, addr.to_string(), opts, None, now)
    }
}

/// 64 random bits from the OS (mixed with the clock in the unlikely case the OS
/// source is unavailable).
fn random_u64(clock: &Clock) -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        return clock.now().0 ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_le_bytes(bytes)
}

/// A replica identity nobody else uses: 64 random bits from the OS (mixed with the
/// clock in the unlikely case the OS source is unavailable).
fn fresh_id(clock: &Clock) -> ReplicaId {
    // Small ids read better in logs and status tables; keep 48 bits.
    ReplicaId((random_u64(clock) & 0xffff_ffff_ffff).max(1))
}

/// A request that waits for an answer: which connection, under which id.
type Waiter = (ConnId, u64);

/// A client connection as the event loop sees it.
#[derive(Debug)]
struct ClientConn {
    writer: mpsc::Sender<Vec<u8>>,
    kill: tokio::sync::oneshot::Sender<()>,
}

/// A request gathered during a turn, proposed at its end with the others.
#[derive(Debug)]
struct Proposal {
    waiter: Waiter,
    answer: Answer,
    bytes: Vec<u8>,
}

/// How a proposed request is answered: by the machine's response to a call, or by
/// the server once a keep-alive or close of `session` is applied.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Call(CallId),
    Control(SessionId),
}

/// Everyone waiting for one call's reply.
#[derive(Debug, Default)]
struct Wait {
    waiters: Vec<Waiter>,
    /// The call is parked in the replicated state: any replica that applies its
    /// wake-up can answer it, leader or not.
    parked: bool,
}

struct Server {
    config: Config,
    addr: String,
    object_type: String,
    clock: Clock,
    replica: Replica,
    machine: Machine,
    /// The Python object host, when the default object is a Python class.
    host: Option<Host>,
    applied: Slot,
    /// Where the last snapshot was taken (or tried and failed): the next one is due
    /// `snapshot_every` slots later.
    last_snapshot: Slot,
    /// Bytes of log applied since the last snapshot, and that snapshot's size.
    log_bytes_since_snapshot: u64,
    last_snapshot_bytes: u64,
    /// The disk writer (durable replicas), and the barrier gate in front of it.
    disk: Option<Disk>,
    gate: EffectGate,
    links: Links,
    /// Addresses of replicas learned from hellos and join requests (the membership
    /// has the rest).
    addrs: BTreeMap<ReplicaId, String>,
    boot_turn: usize,
    clients: BTreeMap<ConnId, ClientConn>,
    /// Calls (and session openings, keyed by nonce) waiting for their reply.
    waiting: BTreeMap<CallId, Wait>,
    /// Keep-alives and closes waiting to be applied, by session.
    control: BTreeMap<SessionId, Vec<Waiter>>,
    reads: BTreeMap<ReadId, (Waiter, String, String, Vec<Value>)>,
    next_read: u64,
    /// Requests received this turn, proposed together at its end.
    proposals: Vec<Proposal>,
    effects: Vec<Effect>,
    /// Messages this replica sent to itself (the gate let them through).
    local: Vec<Message>,
    shared: watch::Sender<Shared>,
    was_leader: bool,
    removed_at: Option<Time>,
    /// The cluster named in this replica's peer hellos (the links say it again when
    /// a joiner learns its cluster).
    hello_cluster: Option<ClusterId>,
    /// Every member address this replica has known: where it asks to join again.
    known_addrs: BTreeSet<String>,
    /// Addresses of replicas of other clusters that sent to this one, and which of
    /// them were reported (once each).
    foreign_addrs: BTreeMap<ReplicaId, String>,
    foreign_reported: BTreeSet<ReplicaId>,
    /// Peers that sent messages meant for another identity (reported once each).
    misaddressed: BTreeSet<ReplicaId>,
    metrics: Arc<Metrics>,
    /// When each client request still waiting for its first answer arrived, and
    /// what it is (for the request latency metric).
    started: BTreeMap<Waiter, (Time, RequestKind)>,
    /// The promise last seen, to count ballot changes.
    last_promised: Ballot,
    /// The role last published in the metrics.
    last_role: Option<Role>,
    /// The leader this replica knew at the end of the last turn.
    last_hint: Option<ReplicaId>,
    /// The last trouble each peer address gave (a failed connect, a refusal),
    /// cleared when a message arrives from it: what a joiner reports as the reason
    /// it is not admitted.
    link_trouble: BTreeMap<String, String>,
    /// Since when this replica has been joining, and when it last said why it is
    /// not admitted yet.
    joining_since: Time,
    join_reported_at: Option<Time>,
    /// The name server (`-n`), fed the applied membership after every turn.
    naming: Option<concoord_naming::Naming>,
    /// Keeps the event channel open even with no connection task alive.
    _events_tx: mpsc::Sender<Event>,
}

impl Server {
    async fn run(
        &mut self,
        mut events: mpsc::Receiver<Event>,
        mut disk_events: Option<mpsc::UnboundedReceiver<DiskEvent>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ServerError> {
        self.run_effects()?;
        loop {
            let deadline = self.deadline();
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    self.on_event(event);
                    for _ in 1..EVENTS_PER_TURN {
                        match events.try_recv() {
                            Ok(event) => self.on_event(event),
                            Err(_) => break,
                        }
                    }
                    self.flush_proposals();
                }
                Some(event) = next_disk_event(&mut disk_events) => {
                    match event {
                        DiskEvent::Durable(seq) => self.durable(seq)?,
                        DiskEvent::Failed(e) => return Err(e.into()),
                    }
                }
                _ = tokio::time::sleep_until(self.clock.instant_at(deadline)) => {
                    self.on_tick()?;
                }
                _ = shutdown.changed() => {
                    tracing::info!("replica {} stopping", self.replica.id());
                    return Ok(());
                }
            }
            self.run_effects()?;
            self.after_turn();
        }
    }

    fn deadline(&self) -> Time {
        let mut deadline = self.replica.next_deadline();
        if let Some(at) = self.disk.as_ref().and_then(Disk::flush_at) {
            deadline = deadline.min(at);
        }
        if let Some(at) = self.removed_at {
            deadline = deadline.min(at + span(self.config.removed_linger));
        }
        deadline
    }

    fn step(&mut self, input: Input) -> Result<(), Rejected> {
        let now = self.clock.now();
        let result = self.replica.step(now, input, &mut self.effects);
        self.replica.check_invariants();
        result
    }

    fn on_tick(&mut self) -> Result<(), ServerError> {
        if let Some(disk) = self.disk.as_mut() {
            disk.flush_due(self.clock.now());
        }
        if let Some(at) = self.removed_at {
            if self.clock.now() >= at + span(self.config.removed_linger) {
                return self.rejoin();
            }
        }
        let _ = self.step(Input::Tick);
        self.report_join_problem();
        Ok(())
    }

    /// Why this joiner is not admitted yet, once it has waited `JOIN_PATIENCE`:
    /// what each address it asks answered (or that none answered).
    fn join_problem(&self) -> Option<String> {
        if self.replica.role() != RoleKind::Joining
            || self.clock.now().since(self.joining_since) < span(JOIN_PATIENCE)
        {
            return None;
        }
        let boot = self.boot_addrs();
        if boot.is_empty() {
            return Some(
                "no address to ask: start this replica with -b <a member's address>".into(),
            );
        }
        let asked: Vec<String> = boot
            .iter()
            .map(|addr| match self.link_trouble.get(addr) {
                Some(reason) => format!("{addr}: {reason}"),
                None => format!("{addr}: no answer yet"),
            })
            .collect();
        Some(format!("not admitted to the cluster yet; {}", asked.join("; ")))
    }

    /// Says on this replica's own side why it is not admitted: first after
    /// `JOIN_PATIENCE`, then every `JOIN_REPORT_EVERY`.
    fn report_join_problem(&mut self) {
        let now = self.clock.now();
        // `after_turn` restarts `joining_since` whenever the replica is not joining.
        if self.join_reported_at.is_some_and(|at| now.since(at) < span(JOIN_REPORT_EVERY)) {
            return;
        }
        if let Some(problem) = self.join_problem() {
            tracing::warn!("replica {}: {problem}", self.replica.id());
            self.join_reported_at = Some(now);
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::ClientOpened { conn, writer, kill } => {
                self.clients.insert(conn, ClientConn { writer, kill });
            }
            Event::ClientClosed { conn } => {
                self.clients.remove(&conn);
                self.started.retain(|w, _| w.0 != conn);
                self.waiting.retain(|_, w| {
                    w.waiters.retain(|w| w.0 != conn);
                    !w.waiters.is_empty()
                });
                self.control.retain(|_, ws| {
                    ws.retain(|w| w.0 != conn);
                    !ws.is_empty()
                });
                self.reads.retain(|_, r| r.0 .0 != conn);
            }
            Event::ClientFrame { conn, frame } => self.on_client_frame(conn, frame),
            Event::LinkTrouble { addr, reason } => {
                tracing::debug!("link to {addr}: {reason}");
                if self.link_trouble.len() < KNOWN_ADDRS_MAX
                    || self.link_trouble.contains_key(&addr)
                {
                    self.link_trouble.insert(addr, reason);
                }
            }
            Event::Peer { from, to, addr, cluster, msg } => {
                if to.is_some_and(|to| to != self.replica.id()) {
                    // Meant for another identity that lived at this address (this
                    // process was started here without that one's data): taking it
                    // would let a cluster this replica never joined capture it.
                    if self.misaddressed.insert(from) {
                        tracing::warn!(
                            "replica {from} at {addr} sends {} meant for replica {}, not \
                             this one ({}): ignoring its messages to that identity. If this \
                             address held that replica, it was restarted without its data: a \
                             replica without its data must be started with -b <a member's \
                             address> to rejoin",
                            msg.kind(),
                            to.map(|t| t.to_string()).unwrap_or_default(),
                            self.replica.id()
                        );
                    }
                    return;
                }
                if let Message::JoinRequest { member } = &msg {
                    self.addrs.insert(member.id, member.addr.clone());
                } else if cluster == self.replica.cluster() && self.is_stranger(from) {
                    // Phase-2 traffic from a replica this one has never counted as a
                    // member: typically this address was a member of another cluster
                    // and restarted without its state and without -b.
                    tracing::warn!(
                        "replica {from} at {addr} sends {} but is no member of this \
                         replica's cluster; if this address belonged to its cluster, this \
                         replica was restarted without its data and must be started with -b",
                        msg.kind()
                    );
                }
                if cluster.is_none() || cluster == self.replica.cluster() {
                    self.link_trouble.remove(&addr);
                    self.addrs.insert(from, addr.clone());
                } else {
                    self.foreign_addrs.insert(from, addr);
                }
                let _ = self.step(Input::Message { from, cluster, msg });
            }
        }
    }

    /// A peer sending leader traffic that no membership this replica knows contains
    /// (reported once per peer).
    fn is_stranger(&mut self, from: ReplicaId) -> bool {
        if self.addrs.contains_key(&from) || self.replica.role() == RoleKind::Joining {
            return false;
        }
        let known = self.replica.schedule().latest().is_some_and(|m| m.is_member(from))
            || self.replica.membership().is_some_and(|m| m.is_member(from));
        !known
    }

    fn on_client_frame(&mut self, conn: ConnId, frame: ClientFrame) {
        match frame {
            ClientFrame::Hello { .. } => {}
            ClientFrame::Status { id } => {
                self.started.insert((conn, id), (self.clock.now(), RequestKind::Status));
                let status = Box::new(self.status());
                self.send_client(conn, &ServerFrame::Status { id, status });
            }
            ClientFrame::Request { id, request } => {
                let kind = match &request {
                    Request::Call { .. } => RequestKind::Command,
                    Request::Create { .. } => RequestKind::Create,
                    Request::Cancel { .. } => RequestKind::Cancel,
                    Request::OpenSession { .. }
                    | Request::KeepAlive { .. }
                    | Request::CloseSession { .. } => RequestKind::Session,
                };
                self.started.insert((conn, id), (self.clock.now(), kind));
                self.on_request(conn, id, request)
            }
        }
    }

    fn on_request(&mut self, conn: ConnId, id: u64, request: Request) {
        if matches!(self.replica.role(), RoleKind::Joining | RoleKind::Removed) {
            let message = "this replica is joining the cluster; try another".to_string();
            self.send_client(
                conn,
                &ServerFrame::Error { id: Some(id), kind: ErrorKind::NotReady, message },
            );
            return;
        }
        if let Request::Call { object, method, args, .. } = &request {
            // The leader serves a query with its read barrier. A follower cannot;
            // it orders the query through the log instead (forwarded to its leader
            // like a command), which is just as linearizable and serves a client
            // that cannot reach the leader.
            if self.machine.is_query(object, method) && self.replica.is_leader() {
                if let Some(started) = self.started.get_mut(&(conn, id)) {
                    started.1 = RequestKind::Query;
                }
                let read = ReadId(self.next_read);
                self.next_read += 1;
                match self.step(Input::Read(read)) {
                    Ok(()) => {
                        let entry = ((conn, id), object.clone(), method.clone(), args.clone());
                        self.reads.insert(read, entry);
                    }
                    Err(rejected) => self.refuse(conn, id, rejected),
                }
                return;
            }
        }
        let bytes = request.encode();
        if bytes.len() > REQUEST_BYTES_MAX {
            let message = format!(
                "request of {} bytes exceeds the limit of {REQUEST_BYTES_MAX} bytes",
                bytes.len()
            );
            let error =
                ServerFrame::Error { id: Some(id), kind: ErrorKind::RequestTooLarge, message };
            self.send_client(conn, &error);
            return;
        }
        let answer = match request {
            Request::OpenSession { nonce, .. } => {
                Answer::Call(CallId { session: SessionId(0), request: RequestNumber(nonce) })
            }
            Request::Call { session, request, .. }
            | Request::Create { session, request, .. }
            | Request::Cancel { session, request, .. } => Answer::Call(CallId { session, request }),
            Request::KeepAlive { session } | Request::CloseSession { session } => {
                Answer::Control(session)
            }
        };
        // Proposed together with the rest of this turn's requests, at its end: one
        // `Propose` lets the leader put them all in one slot.
        self.proposals.push(Proposal { waiter: (conn, id), answer, bytes });
    }

    /// Proposes the requests gathered this turn as one batch and registers who
    /// waits for each answer (or refuses them all, if this replica cannot order).
    fn flush_proposals(&mut self) {
        if self.proposals.is_empty() {
            return;
        }
        let mut proposals = std::mem::take(&mut self.proposals);
        let commands = proposals.iter_mut().map(|p| Command::App(std::mem::take(&mut p.bytes)));
        let result = self.step(Input::Propose(commands.collect()));
        if result.is_ok() {
            self.metrics.proposed_commands.inc_by(proposals.len() as u64);
        }
        for Proposal { waiter, answer, .. } in proposals {
            if !self.clients.contains_key(&waiter.0) {
                continue; // the connection closed later in this turn
            }
            match (result, answer) {
                (Ok(()), Answer::Call(call)) => {
                    self.waiting.entry(call).or_default().waiters.push(waiter);
                }
                (Ok(()), Answer::Control(session)) => {
                    self.control.entry(session).or_default().push(waiter);
                }
                (Err(rejected), _) => self.refuse(waiter.0, waiter.1, rejected),
            }
        }
    }

    fn refuse(&mut self, conn: ConnId, id: u64, rejected: Rejected) {
        let frame = match rejected {
            Rejected::NotLeader { leader_hint } => {
                ServerFrame::Redirect { id, leader: leader_hint.and_then(|l| self.addr_of(l)) }
            }
            Rejected::Busy => ServerFrame::Error {
                id: Some(id),
                kind: ErrorKind::Busy,
                message: "the leader's queue is full; retry shortly".into(),
            },
        };
        self.send_client(conn, &frame);
    }

    fn send_client(&mut self, conn: ConnId, frame: &ServerFrame) {
        let id = match frame {
            ServerFrame::Reply { id, .. }
            | ServerFrame::Status { id, .. }
            | ServerFrame::Redirect { id, .. } => Some(*id),
            ServerFrame::Error { id, .. } => *id,
            ServerFrame::Welcome { .. } => None,
        };
        if let Some((at, kind)) = id.and_then(|id| self.started.remove(&(conn, id))) {
            let took = self.clock.now().since(at);
            self.metrics.observe_request(kind, Duration::from_micros(took.0));
        }
        match frame {
            ServerFrame::Error { kind, .. } => self.metrics.count_error(&format!("{kind:?}")),
            ServerFrame::Redirect { .. } => self.metrics.count_error("Redirect"),
            _ => {}
        }
        let Some(client) = self.clients.get(&conn) else { return };
        if client.writer.try_send(net::client_frame(frame)).is_err() {
            // A client that does not read its replies: close its connection rather
            // than buffer without bound. It reconnects and retries with the same
            // request numbers.
            tracing::warn!("closing client connection {conn}: its reply queue is full");
            if let Some(client) = self.clients.remove(&conn) {
                let _ = client.kill.send(());
            }
        }
    }

    fn addr_of(&self, id: ReplicaId) -> Option<String> {
        if id == self.replica.id() {
            return Some(self.addr.clone());
        }
        let schedule = self.replica.schedule();
        if let Some(m) = schedule.latest().and_then(|m| m.members.get(&id)) {
            return Some(m.0.addr.clone());
        }
        if let Some(m) = self.replica.membership().and_then(|m| m.members.get(&id)) {
            return Some(m.0.addr.clone());
        }
        self.addrs.get(&id).cloned()
    }

    // ------------------------------------------------------------------ effects

    /// Passes the core's effects through the gate, in order, until none are left
    /// (messages to itself produce more): writes go to the disk writer, effects the
    /// gate lets through run now, the rest wait for `DiskEvent::Durable`.
    fn run_effects(&mut self) -> Result<(), ServerError> {
        let mut rounds = 0;
        while !self.effects.is_empty() || !self.local.is_empty() {
            rounds += 1;
            assert!(rounds < 1_000_000, "effects never settle");
            for effect in std::mem::take(&mut self.effects) {
                match self.gate.admit(effect) {
                    Gated::Write { seq, op, sync } => match &mut self.disk {
                        Some(disk) => disk.write(seq, op, sync, self.clock.now()),
                        // Never happens (an in-memory core writes nothing); if it
                        // did, nothing could ever make it durable.
                        None => self.durable(seq)?,
                    },
                    Gated::Held => {}
                    Gated::Run(effect) => self.execute(effect)?,
                }
            }
            let me = self.replica.id();
            let cluster = self.replica.cluster();
            for msg in std::mem::take(&mut self.local) {
                let _ = self.step(Input::Message { from: me, cluster, msg });
            }
        }
        Ok(())
    }

    /// Every write up to `seq` is durable: carry out the effects that waited for it.
    fn durable(&mut self, seq: u64) -> Result<(), ServerError> {
        for effect in self.gate.durable(seq) {
            self.execute(effect)?;
        }
        Ok(())
    }

    fn execute(&mut self, effect: Effect) -> Result<(), ServerError> {
        match effect {
            Effect::Persist(_) => {}
            Effect::Send { to, msg } => {
                if to == self.replica.id() {
                    self.local.push(msg);
                } else if let Some(addr) = self.addr_of(to) {
                    if let Some(frame) = net::peer_frame(Some(to), &msg) {
                        self.links.send(&addr, frame);
                    }
                }
            }
            Effect::SendToBootstrap(msg) => {
                // Every address this replica was given or has learned, in turn: a
                // founder (no -b) or a replica whose only boot peer is gone still
                // finds its way back through the members it knew.
                let boot = self.boot_addrs();
                if !boot.is_empty() {
                    let addr = boot[self.boot_turn % boot.len()].clone();
                    self.boot_turn += 1;
                    if let Some(frame) = net::peer_frame(None, &msg) {
                        self.links.send(&addr, frame);
                    }
                }
            }
            Effect::Apply { slot, value } => self.apply(slot, &value)?,
            Effect::InstallSnapshot(snapshot) => self.install(&snapshot)?,
            Effect::ReadReady { id } => {
                if let Some((waiter, object, method, args)) = self.reads.remove(&id) {
                    let reply = match self.machine.query(&object, &method, &args) {
                        Ok(v) => Reply::Value(v),
                        Err(e) => Reply::Error(e),
                    };
                    self.check_host()?;
                    let frame = ServerFrame::Reply {
                        id: waiter.1,
                        slot: self.applied,
                        position: self.machine.position(),
                        reply,
                    };
                    self.send_client(waiter.0, &frame);
                }
            }
            Effect::ReadAborted { id, leader_hint } => {
                if let Some((waiter, ..)) = self.reads.remove(&id) {
                    self.refuse(waiter.0, waiter.1, Rejected::NotLeader { leader_hint });
                }
            }
            Effect::Dropped { commands, leader_hint } => {
                for command in commands {
                    let Command::App(bytes) = command else { continue };
                    let Ok(request) = Request::decode(&bytes) else { continue };
                    let waiters = match request {
                        Request::OpenSession { nonce, .. } => self
                            .waiting
                            .remove(&CallId {
                                session: SessionId(0),
                                request: RequestNumber(nonce),
                            })
                            .map(|w| w.waiters),
                        Request::Call { session, request, .. }
                        | Request::Create { session, request, .. }
                        | Request::Cancel { session, request, .. } => {
                            self.waiting.remove(&CallId { session, request }).map(|w| w.waiters)
                        }
                        Request::KeepAlive { session } | Request::CloseSession { session } => {
                            self.control.remove(&session)
                        }
                    };
                    for (conn, id) in waiters.unwrap_or_default() {
                        self.refuse(conn, id, Rejected::NotLeader { leader_hint });
                    }
                }
            }
            Effect::Foreign { from, cluster } => {
                let addr = self.foreign_addrs.get(&from).cloned().unwrap_or_default();
                self.link_trouble.insert(
                    addr.clone(),
                    format!("the replica there belongs to another cluster ({cluster})"),
                );
                if self.foreign_reported.insert(from) {
                    tracing::warn!(
                        "ignoring replica {from} at {addr}: it belongs to cluster {cluster}, this \
                         replica to cluster {}. One of the two was restarted on an old member's \
                         address without its data and without -b, and founded a new cluster: \
                         a replica without its data must be started with -b <a member's address>",
                        self.replica.cluster().map(|c| c.to_string()).unwrap_or_default()
                    );
                }
            }
            Effect::Removed => {
                tracing::warn!(
                    "replica {} was removed from the cluster; it keeps serving its log for {:?}, \
                     then rejoins as a new member",
                    self.replica.id(),
                    self.config.removed_linger
                );
                self.removed_at = Some(self.clock.now());
            }
        }
        Ok(())
    }

    fn apply(&mut self, slot: Slot, value: &concoord_paxos::Value) -> Result<(), ServerError> {
        let mut responses = Vec::new();
        for command in &value.commands {
            let Command::App(bytes) = command else { continue };
            self.machine.apply(slot, value.timestamp, bytes, &mut responses);
            self.check_host()?;
            if !self.control.is_empty() {
                if let Ok(Request::KeepAlive { session } | Request::CloseSession { session }) =
                    Request::decode(bytes)
                {
                    if let Some(waiters) = self.control.remove(&session) {
                        let alive = self.machine.has_session(session);
                        for (conn, id) in waiters {
                            let frame = ServerFrame::Reply {
                                id,
                                slot,
                                position: self.machine.position(),
                                reply: Reply::Value(Value::Bool(alive)),
                            };
                            self.send_client(conn, &frame);
                        }
                    }
                }
            }
        }
        // Calls to a pipelined (hosted) object were only submitted: run them now,
        // in one exchange with the host, and check it before any reply leaves.
        self.machine.settle(&mut responses);
        self.check_host()?;
        self.applied = slot;
        let commands = value.commands.len() as u64;
        self.metrics.applied_slots.inc();
        self.metrics.applied_commands.inc_by(commands);
        self.metrics.commands_per_slot.observe(commands as f64);
        for response in responses {
            self.answer(response);
        }
        // Sessions that ended (closed, expired, evicted) took their parked calls with
        // them: tell whoever still waits here instead of letting them wait for a
        // keep-alive to find out. (Draining also keeps the machine's list bounded.)
        for (session, _) in self.machine.take_ended() {
            let from = CallId { session, request: RequestNumber(0) };
            let to = CallId { session, request: RequestNumber(u64::MAX) };
            let calls: Vec<CallId> = self.waiting.range(from..=to).map(|(c, _)| *c).collect();
            for call in calls {
                for (conn, id) in self.waiting.remove(&call).map(|w| w.waiters).unwrap_or_default()
                {
                    let reply = Reply::SessionUnknown;
                    let frame =
                        ServerFrame::Reply { id, slot, position: self.machine.position(), reply };
                    self.send_client(conn, &frame);
                }
            }
        }
        self.log_bytes_since_snapshot += value.encoded_len() as u64;
        if slot.0 >= self.last_snapshot.0 + self.config.snapshot_every
            && self.log_bytes_since_snapshot >= self.last_snapshot_bytes
        {
            self.take_snapshot(slot)?;
        }
        Ok(())
    }

    /// A failed object host stops the replica before any reply computed with it
    /// leaves.
    fn check_host(&self) -> Result<(), ServerError> {
        match self.host.as_ref().and_then(Host::failure) {
            Some(reason) => Err(ServerError::Host(reason)),
            None => Ok(()),
        }
    }

    fn answer(&mut self, response: Response) {
        let parked = response.reply == Reply::Parked;
        let waiters = if parked {
            match self.waiting.get_mut(&response.call) {
                Some(wait) => {
                    wait.parked = true;
                    wait.waiters.clone()
                }
                None => Vec::new(),
            }
        } else {
            self.waiting.remove(&response.call).map(|w| w.waiters).unwrap_or_default()
        };
        for (conn, id) in waiters {
            let frame = ServerFrame::Reply {
                id,
                slot: response.slot,
                position: response.position,
                reply: response.reply.clone(),
            };
            self.send_client(conn, &frame);
        }
    }

    fn take_snapshot(&mut self, slot: Slot) -> Result<(), ServerError> {
        let data = match self.machine.snapshot() {
            Ok(data) => data,
            Err(e) => {
                // Nothing is lost: the log since the last snapshot stays (a durable
                // restart replays it), the object is unchanged, and the next attempt
                // is `snapshot_every` slots later.
                tracing::error!(
                    "replica {} cannot take a snapshot at slot {slot}: {e}; it keeps its log \
                     instead of compacting and tries again in {} slots",
                    self.replica.id(),
                    self.config.snapshot_every
                );
                self.last_snapshot = slot;
                return Ok(());
            }
        };
        self.last_snapshot = slot;
        self.last_snapshot_bytes = data.len() as u64;
        self.metrics.snapshots.inc();
        self.log_bytes_since_snapshot = 0;
        let _ = self.step(Input::SnapshotTaken { slot, data });
        Ok(())
    }

    fn install(&mut self, snapshot: &Snapshot) -> Result<(), ServerError> {
        match Machine::restore(self.machine.types().clone(), &snapshot.data) {
            Ok(machine) => {
                tracing::info!(
                    "replica {} installed a snapshot of slot {} ({} bytes)",
                    self.replica.id(),
                    snapshot.slot,
                    snapshot.data.len()
                );
                self.machine = machine;
                self.metrics.snapshots.inc();
                self.applied = snapshot.slot;
                self.last_snapshot = snapshot.slot;
                self.last_snapshot_bytes = snapshot.data.len() as u64;
                self.log_bytes_since_snapshot = 0;
                Ok(())
            }
            Err(e) => Err(ServerError::Machine(format!(
                "cannot restore the snapshot of slot {}: {e}",
                snapshot.slot
            ))),
        }
    }

    /// After a turn: publish who leads, and hand back calls this replica can no
    /// longer answer because it stopped leading.
    fn after_turn(&mut self) {
        if self.replica.cluster() != self.hello_cluster {
            // A joiner learned its cluster: say so in every hello from now on.
            let cluster = self.replica.cluster();
            if let Some(c) = cluster {
                tracing::info!("replica {} joins cluster {c}", self.replica.id());
            }
            self.hello_cluster = cluster;
            self.links.reset(PeerHello {
                version: PROTOCOL_VERSION,
                from: self.replica.id(),
                addr: self.addr.clone(),
                object_type: self.object_type.clone(),
                token: self.config.token.clone(),
                cluster,
            });
        }
        self.remember_members();
        if let Some(naming) = self.naming.as_mut() {
            // The membership governing the next slot to apply, keyed by the slot it
            // took effect at: a change shows in DNS as soon as it is applied.
            if let Some((from, m)) = self.replica.schedule().entry_at(self.applied.next()) {
                let leading = self.replica.is_leader();
                naming.update(from.0, leading, || {
                    m.members.values().map(|(m, _)| (m.addr.clone(), m.dns_port)).collect()
                });
            }
        }
        if self.replica.role() != RoleKind::Joining {
            self.joining_since = self.clock.now();
            self.join_reported_at = None;
        }
        let leader = self.replica.leader_hint().and_then(|l| self.addr_of(l));
        let id = self.replica.id();
        let cluster = self.replica.cluster();
        let changed = self.shared.send_if_modified(|s| {
            let changed = s.leader != leader || s.replica != id || s.cluster != cluster;
            s.leader = leader.clone();
            s.replica = id;
            s.cluster = cluster;
            changed
        });
        let leading = self.replica.is_leader();
        if changed || leading != self.was_leader {
            match (&leader, leading) {
                (_, true) => tracing::info!(
                    "replica {id} leads (ballot {:?}, commit slot {})",
                    self.replica.promised(),
                    self.replica.commit_max()
                ),
                (Some(l), false) => tracing::info!("replica {id} follows the leader at {l}"),
                (None, false) => tracing::debug!("replica {id} knows no leader"),
            }
        }
        let hint = self.replica.leader_hint();
        // A follower forwards its clients' commands to its leader; a leader that dies
        // or is deposed before proposing them drops them, and nobody would answer
        // (not even this replica if it leads now: it never held them as proposals).
        let forwarded_to_old_leader =
            !self.was_leader && self.last_hint.is_some() && hint != self.last_hint;
        self.last_hint = hint;
        if (self.was_leader && !leading) || forwarded_to_old_leader {
            // Commands it proposed (or forwarded) may or may not be chosen: send their
            // callers to the new leader, where a retry is answered exactly once.
            // Parked calls stay: this replica still applies the log and will deliver
            // their wake-up.
            let calls: Vec<CallId> =
                self.waiting.iter().filter(|(_, w)| !w.parked).map(|(c, _)| *c).collect();
            for call in calls {
                if let Some(wait) = self.waiting.remove(&call) {
                    for (conn, id) in wait.waiters {
                        self.refuse(conn, id, Rejected::NotLeader { leader_hint: hint });
                    }
                }
            }
            let sessions: Vec<SessionId> = self.control.keys().copied().collect();
            for session in sessions {
                for (conn, id) in self.control.remove(&session).unwrap_or_default() {
                    self.refuse(conn, id, Rejected::NotLeader { leader_hint: hint });
                }
            }
        }
        if leading && !self.was_leader {
            self.metrics.leaderships.inc();
        }
        self.was_leader = leading;
        self.publish_metrics();
    }

    /// Sets the gauges from the replica's state (a few atomic stores per turn).
    fn publish_metrics(&mut self) {
        let m = &self.metrics;
        let role = match self.replica.role() {
            RoleKind::Leader => Role::Leader,
            RoleKind::Follower => Role::Follower,
            RoleKind::Joining => Role::Joining,
            RoleKind::Removed => Role::Removed,
        };
        if self.last_role != Some(role) {
            m.set_role(role);
            self.last_role = Some(role);
        }
        let promised = self.replica.promised();
        if promised > self.last_promised {
            if self.last_promised != Ballot::ZERO {
                m.ballot_changes.inc();
            }
            self.last_promised = promised;
        }
        metrics::set(&m.ballot_round, promised.round);
        metrics::set(&m.commit_slot, self.replica.commit_max().0);
        metrics::set(&m.applied_slot, self.applied.0);
        metrics::set(&m.snapshot_slot, self.replica.snapshot_slot().0);
        metrics::set(&m.log_entries, self.replica.log_len() as u64);
        metrics::set(&m.log_bytes, self.disk.as_ref().map_or(0, |d| d.log_bytes()));
        metrics::set(&m.snapshot_bytes, self.last_snapshot_bytes);
        let members = self.replica.membership().map_or(0, |m| m.members.len());
        metrics::set(&m.members, members as u64);
        let parked = self.waiting.values().filter(|w| w.parked).count();
        metrics::set(&m.parked_calls, parked as u64);
        metrics::set(&m.sessions, self.machine.session_count() as u64);
        metrics::set(&m.client_connections, self.clients.len() as u64);
    }

    /// Adds the addresses of every membership the replica knows to `known_addrs`.
    fn remember_members(&mut self) {
        let schedule = self.replica.schedule();
        if schedule.latest().is_some_and(|m| {
            m.members.values().all(|(member, _)| self.known_addrs.contains(&member.addr))
        }) {
            return;
        }
        for m in schedule.governing(Slot::ZERO, Slot(u64::MAX)) {
            for (member, _) in m.members.values() {
                if member.addr != self.addr && self.known_addrs.len() < KNOWN_ADDRS_MAX {
                    self.known_addrs.insert(member.addr.clone());
                }
            }
        }
    }

    /// Where a joiner sends its join requests: its -b list, then every member address
    /// it has known (a founder restarted from disk or removed has no -b list).
    fn boot_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self.config.boot.clone();
        for addr in &self.known_addrs {
            if !addrs.contains(addr) && *addr != self.addr {
                addrs.push(addr.clone());
            }
        }
        addrs
    }

    /// A removed replica comes back as a new member under a fresh identity.
    fn rejoin(&mut self) -> Result<(), ServerError> {
        let now = self.clock.now();
        let id = fresh_id(&self.clock);
        tracing::warn!("replica {} rejoins the cluster as {id}", self.replica.id());
        let mut opts = self.replica.options().clone();
        opts.seed = id.0;
        if let Some(disk) = self.disk.as_mut() {
            // A replica that cannot reset its disk must not rejoin on top of it.
            disk.wipe(Identity {
                replica: id,
                addr: self.addr.clone(),
                object_type: self.object_type.clone(),
            })?;
        }
        // What the old identity's effects waited for is gone with it.
        self.gate.reset();
        let cluster = self.replica.cluster();
        self.remember_members();
        self.replica = Replica::join(id, self.addr.clone(), opts, cluster, now);
        // The old machine goes first: a hosted Python class has one instance.
        self.machine = Machine::new(self.machine.types().clone());
        let _ = self.machine.create_default(DEFAULT_OBJECT, &self.object_type);
        self.applied = Slot::ZERO;
        self.last_snapshot = Slot::ZERO;
        self.last_snapshot_bytes = 0;
        self.log_bytes_since_snapshot = 0;
        self.removed_at = None;
        // Callers waiting here are sent elsewhere: this identity's state is gone.
        let reads: Vec<ReadId> = self.reads.keys().copied().collect();
        for read in reads {
            if let Some((waiter, ..)) = self.reads.remove(&read) {
                self.refuse(waiter.0, waiter.1, Rejected::NotLeader { leader_hint: None });
            }
        }
        let waiters: Vec<Waiter> = std::mem::take(&mut self.waiting)
            .into_values()
            .flat_map(|w| w.waiters)
            .chain(std::mem::take(&mut self.control).into_values().flatten())
            .collect();
        for (conn, id) in waiters {
            self.refuse(conn, id, Rejected::NotLeader { leader_hint: None });
        }
        self.links.reset(PeerHello {
            version: PROTOCOL_VERSION,
            from: id,
            addr: self.addr.clone(),
            object_type: self.object_type.clone(),
            token: self.config.token.clone(),
            cluster,
        });
        self.hello_cluster = cluster;
        let _ = self.step(Input::Tick);
        Ok(())
    }

    fn status(&self) -> StatusReport {
        let r = &self.replica;
        let role = match r.role() {
            RoleKind::Leader => "leader",
            RoleKind::Follower => "follower",
            RoleKind::Joining => "joining",
            RoleKind::Removed => "removed",
        };
        let now = self.clock.now();
        let progress: BTreeMap<ReplicaId, (Slot, Time)> =
            r.progress().into_iter().map(|(id, slot, heard)| (id, (slot, heard))).collect();
        let members = r
            .schedule()
            .latest()
            .map(|m| {
                m.members
                    .values()
                    .map(|(member, role)| {
                        let p = if member.id == r.id() && r.is_leader() {
                            Some((r.commit_max(), now))
                        } else {
                            progress.get(&member.id).copied()
                        };
                        MemberStatus {
                            replica: member.id,
                            addr: member.addr.clone(),
                            role: match role {
                                concoord_paxos::Role::Voter => "voter".into(),
                                concoord_paxos::Role::Learner => "learner".into(),
                            },
                            commit_slot: p.map(|p| p.0),
                            lag: p.map(|p| r.commit_max().0.saturating_sub(p.0 .0)),
                            last_heard_ms: p.map(|p| now.since(p.1).as_micros() / 1_000),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let promised = r.promised();
        StatusReport {
            replica: r.id(),
            addr: self.addr.clone(),
            role: role.into(),
            leader: r.leader_hint().and_then(|l| self.addr_of(l)),
            ballot: format!("{}.{}", promised.round, promised.leader.0),
            commit_slot: r.commit_max(),
            applied_slot: self.applied,
            snapshot_slot: r.snapshot_slot(),
            durable: self.disk.is_some(),
            object_type: self.object_type.clone(),
            objects: self.machine.object_names().map(String::from).collect(),
            sessions: self.machine.session_count() as u64,
            members,
            cluster: r.cluster().map(|c| c.to_string()),
            join_problem: self.join_problem(),
        }
    }
}

/// The disk writer's next report, or never for an in-memory replica.
async fn next_disk_event(
    events: &mut Option<mpsc::UnboundedReceiver<DiskEvent>>,
) -> Option<DiskEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

fn span(d: Duration) -> concoord_wire::Span {
    concoord_wire::Span(d.as_micros() as u64)
}
