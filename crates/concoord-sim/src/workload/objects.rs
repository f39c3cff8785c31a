//! The `objects` workload: every node runs `concoord-object`'s `Machine` with the
//! built-ins. Clients open sessions through the log, create the instances
//! (`OBJECTS`), and call every built-in, some queries through the read barrier,
//! blocking calls included; they hold and release locks and permits, retry with
//! the same request number, cancel some blocking calls, and some crash for good
//! (their sessions expire and release). Histories are checked per object against
//! the object's own code, plus the rendezvous checkers.

use super::{ClientMsg, Driver, Reply};
use crate::checkers::fifo::WakeOrder;
use crate::checkers::leases::Leases;
use crate::checkers::linearizability::{self, Operation, Verdict};
use crate::checkers::mutual_exclusion::{Answer, ConditionLock};
use crate::checkers::object_spec::{ObjectCall, ObjectResult, ObjectSpec, SESSION_CLOSED};
use crate::checkers::timestamps::AppliedTimestamps;
use crate::world::{Event, Phase, World, MS};
use concoord_object::builtins::{
    bank::Bank, binary_tree::BinaryTree, bounded_semaphore::BoundedSemaphore,
    job_manager::JobManager, lock::Lock, log::Log, membership::Membership as MembershipObject,
    mesh_membership::MeshMembership, nameserver_coord::NameserverCoord, queue::Queue, rlock::RLock,
    semaphore::Semaphore, stack::Stack, Counter,
};
use concoord_object::machine::{self as om, Execution, Machine, MachineBug};
use concoord_object::{ObjectType, Types, Value as ObjValue};
use concoord_paxos::{Command, Fnv, Input, Prng, ReadId, Rejected};
use concoord_wire::{ReplicaId, Slot, Span};
use std::collections::{BTreeMap, BTreeSet};

/// What an objects-workload client sends to a replica.
#[derive(Clone, Debug)]
pub(crate) enum ObjectMsg {
    /// A command for the log.
    Log(om::Request),
    /// Commands a client wrote back to back, which the replica reads in one turn and
    /// proposes together, as the server does (`Server::flush_proposals`): the leader
    /// can put them all in one slot.
    Batch(Vec<om::Request>),
    /// A query served after a read barrier.
    Query { session: u64, seq: u64, op: ObjOp },
}

/// One call of the objects workload.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ObjOp {
    object: &'static str,
    method: &'static str,
    args: Vec<ObjValue>,
}

#[derive(Debug)]
struct Client {
    id: u64,
    /// The node that answered last: where the next request goes first.
    favourite: Option<usize>,
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

/// One node's object machine and the calls it must answer.
#[derive(Debug)]
struct NodeMachine {
    machine: Machine,
    /// Calls this node proposed and must answer: (session, request) -> client id.
    waiting: BTreeMap<(u64, u64), u64>,
    object_reads: BTreeMap<ReadId, (u64, u64, u64, ObjOp)>,
}

#[derive(Debug)]
pub(crate) struct Objects {
    clients: Vec<Client>,
    nodes: Vec<NodeMachine>,
    obj_history: BTreeMap<&'static str, Vec<Operation<ObjectCall, ObjectResult>>>,
    object_bugs: BTreeSet<MachineBug>,
    /// How often a blocking call is cancelled by its client, and the generator that
    /// decides it. A stream of its own, so seeds that never cancel replay exactly as
    /// before cancellation existed.
    cancel_chance: f64,
    cancel_rng: Prng,
    /// Calls and creations the machine refused, (session, request), since the
    /// driver last looked (the pipelined workload judges them).
    pub(crate) refused: Vec<(u64, u64)>,
    /// Each node's applied leader timestamps, checked as they are applied.
    timestamps: AppliedTimestamps,
    /// The calls parked on objects that promise FIFO wake-ups, in line.
    wake_order: WakeOrder,
    /// The condition's lock, followed in log order.
    condition_lock: ConditionLock,
    /// Session leases by the applied timestamps.
    leases: Leases,
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

/// A command that calls an object: (session, request), object, method, arguments.
type Called = ((u64, u64), String, String, Vec<ObjValue>);

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

impl Objects {
    pub(crate) fn new(
        seed: u64,
        clients: usize,
        object_bugs: BTreeSet<MachineBug>,
        alpha: u64,
    ) -> Objects {
        let mut cancel_rng = Prng::new(seed ^ 0xca9c_e11e_d000_0000);
        let cancel_chance = [0.0, 0.0, 0.1, 0.3][cancel_rng.index(4)];
        Objects {
            clients: (0..clients)
                .map(|i| Client { id: i as u64 + 1, favourite: None, obj: ObjClient::default() })
                .collect(),
            nodes: Vec::new(),
            obj_history: OBJECTS.iter().map(|(name, _, _)| (*name, Vec::new())).collect(),
            object_bugs,
            cancel_chance,
            cancel_rng,
            refused: Vec::new(),
            timestamps: AppliedTimestamps::new(alpha),
            wake_order: WakeOrder::default(),
            condition_lock: ConditionLock::default(),
            leases: Leases::default(),
        }
    }

    /// Follows the condition's lock through one answer, in log order: a wake-up or drop
    /// of a call parked on it, or the answer of a command on it that ran.
    fn follow_condition_lock(
        lock: &mut ConditionLock,
        called: &Option<Called>,
        execution: Execution,
        r: &om::Response,
    ) -> crate::checkers::Check {
        let call = (r.call.session.0, r.call.request.0);
        if lock.is_parked(call) && r.reply != om::Reply::Parked {
            let woken = r.reply == om::Reply::Value(ObjValue::Bool(true));
            return lock.on_answer(call, woken, r.position);
        }
        let Some((own, object, method, _)) = called else { return Ok(()) };
        if *own != call || object != "cond" || execution != Execution::Executed {
            return Ok(());
        }
        let answer = match &r.reply {
            om::Reply::Value(ObjValue::Bool(true)) => Answer::Granted,
            om::Reply::Parked => Answer::Parked,
            om::Reply::Error(_) => Answer::Raised,
            _ => Answer::Returned,
        };
        lock.on_call(call, method, answer, r.position)
    }

    /// Whether response `r` to `call` is the answer of the command `called` itself, a
    /// `notify` that ran: then the object it notified and how many waits it moved
    /// (`None`: all). A wake-up of the same call (a session's end woke it before its
    /// retry ran) is not.
    fn notified<'c>(
        called: &'c Option<Called>,
        call: (u64, u64),
        r: &om::Response,
    ) -> Option<(&'c str, Option<u64>)> {
        let (own, object, method, args) = called.as_ref()?;
        if *own != call || r.reply != om::Reply::Value(ObjValue::Nil) {
            return None;
        }
        let count = match method.as_str() {
            "notify" => match args.first() {
                Some(ObjValue::Int(n)) => Some((*n).max(0) as u64),
                _ => Some(1),
            },
            "notify_all" | "notifyAll" => None,
            _ => return None,
        };
        Some((object, count))
    }

    /// A query of `object` on `node`'s machine, as the replica would answer it.
    pub(crate) fn query(
        &self,
        node: usize,
        object: &str,
        method: &str,
    ) -> Result<ObjValue, concoord_object::ObjectError> {
        self.nodes[node].machine.query(object, method, &[])
    }

    fn new_machine(&self) -> Machine {
        let mut machine = Machine::new(object_types());
        machine.set_bugs(self.object_bugs.clone());
        machine
    }

    /// Applies one chosen slot to a node's object machine and answers the calls this
    /// node is waiting for. `extended`: this apply is the first of `slot` anywhere.
    fn apply_objects(
        &mut self,
        w: &mut World,
        node: usize,
        slot: Slot,
        value: &concoord_paxos::Value,
        extended: bool,
    ) {
        w.record(self.timestamps.on_apply(node, slot, value.timestamp));
        let machine = &mut self.nodes[node].machine;
        let mut responses = Vec::new();
        let mut executed = Vec::new();
        let mut ended = Vec::new();
        for command in &value.commands {
            let Command::App(bytes) = command else { continue };
            let first = responses.len();
            let execution = machine.apply(slot, value.timestamp, bytes, &mut responses);
            let ended_now = machine.take_ended();
            if extended {
                // Sessions end before the command runs (expiry; the workload never
                // closes one).
                self.leases.tick(value.timestamp);
                for (session, _) in &ended_now {
                    self.wake_order.on_session_end(session.0);
                    self.condition_lock.on_session_end(session.0);
                    w.record(self.leases.expired(session.0));
                }
                match om::Request::decode(bytes) {
                    Ok(
                        om::Request::Call { session, .. }
                        | om::Request::Create { session, .. }
                        | om::Request::Cancel { session, .. },
                    ) => self.leases.touch(session.0),
                    Ok(om::Request::OpenSession { lease_ms, .. }) => {
                        let lease =
                            Span::from_millis(lease_ms).max(om::LEASE_MIN).min(om::LEASE_MAX);
                        for r in &responses[first..] {
                            if let om::Reply::SessionOpened { session, .. } = r.reply {
                                self.leases.active(session.0, lease);
                            }
                        }
                    }
                    _ => {}
                }
                let called = match om::Request::decode(bytes) {
                    Ok(om::Request::Call { session, request, object, method, args, .. }) => {
                        Some(((session.0, request.0), object, method, args))
                    }
                    _ => None,
                };
                for r in &responses[first..] {
                    let call = (r.call.session.0, r.call.request.0);
                    w.record(Self::follow_condition_lock(
                        &mut self.condition_lock,
                        &called,
                        execution,
                        r,
                    ));
                    if r.reply == om::Reply::Parked {
                        if let Some((_, object, method, _)) = &called {
                            self.wake_order.on_park(call, object, method, r.position);
                        }
                    } else if let Some((object, count)) = Self::notified(&called, call, r)
                        .filter(|_| execution == Execution::Executed)
                    {
                        self.wake_order.on_notify(object, count, r.position);
                    } else {
                        let woken = matches!(r.reply, om::Reply::Value(_));
                        w.record(self.wake_order.on_answer(call, r.position, woken));
                    }
                }
            }
            ended.extend(ended_now);
            if execution == Execution::Executed {
                if let Ok(om::Request::Call { session, request, .. }) = om::Request::decode(bytes) {
                    executed.push((session.0, request.0));
                }
            }
            if execution == Execution::Refused {
                if let Ok(
                    om::Request::Call { session, request, .. }
                    | om::Request::Create { session, request, .. },
                ) = om::Request::decode(bytes)
                {
                    self.refused.push((session.0, request.0));
                }
            }
        }
        let hash = machine_hash(machine);
        w.nodes[node].app_applied = slot;
        for (session, request) in executed {
            w.on_executed(node, session, request, slot);
        }
        w.on_state(node, slot, hash);
        if extended {
            for (session, position) in ended {
                for history in self.obj_history.values_mut() {
                    history.push(Operation {
                        client: 0,
                        invoke: w.now,
                        complete: Some((
                            w.now,
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
                w.reply(node, client, reply);
            }
        }
    }

    fn start_object_op(&mut self, w: &mut World, client: usize) {
        let faults = w.phase == Phase::Faults;
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
                        if faults && w.rng.chance(0.5) && self.a_free_client_remains(client) {
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
                        self.random_object_op(w, client)
                    };
                    let query = op.method == "getvalue" && w.rng.chance(w.params.barrier_reads);
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
            Some(f) if !w.rng.chance(0.05) => f,
            _ => w.rng.index(w.nodes.len()),
        };
        let o = &mut self.clients[client].obj;
        if o.session.is_some() {
            o.next_request += 1;
        }
        let cancellable = op.as_ref().is_some_and(cancellable);
        o.pending = Some(ObjPending { seq, msg, op, invoke: w.now, attempt: 0, target });
        self.resend_object(w, client, target, 0);
        if cancellable && faults && self.cancel_rng.chance(self.cancel_chance) {
            let after = self.cancel_rng.range(5 * MS, 300 * MS);
            w.schedule(w.now + after, Event::ClientCancel { client, seq });
        }
    }

    /// The client stops waiting for its call `seq` (if that call still waits): it
    /// sends a `Cancel` to the replica it waits on, once (a lost cancel leaves the
    /// call parked, which the workload tolerates anyway). The call then ends with
    /// `CancelledError` (no effect: it leaves the history) or with its real result.
    fn cancel_object_op(&mut self, w: &mut World, client: usize, seq: u64) {
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
        w.stats.cancels += 1;
        let d = w.rng.range(w.params.delay_min, w.params.delay_max + 1);
        let msg = ObjectMsg::Log(cancel);
        w.schedule(
            w.now + d,
            Event::ToNode { node: target, client: id, msg: ClientMsg::Object(msg) },
        );
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
    fn mesh_op(&mut self, w: &mut World, client: usize) -> ObjOp {
        let epoch = self.clients.get(client).map_or(1, |c| c.obj.mesh_epoch.max(1));
        let node = ObjValue::Str(format!("n{}", w.rng.range(0, 3)));
        let (method, args) = match w.rng.range(0, 7) {
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

    fn random_object_op(&mut self, w: &mut World, client: usize) -> ObjOp {
        let alive = self.clients.iter().filter(|c| !c.obj.crashed).count();
        if alive >= 2 && w.rng.chance(0.03) && self.a_free_client_remains(usize::MAX) {
            return ObjOp { object: "barrier", method: "wait", args: vec![] };
        }
        if w.rng.chance(0.03) {
            return ObjOp { object: "cond", method: "acquire", args: vec![] };
        }
        if w.rng.chance(0.08) {
            return self.mesh_op(w, client);
        }
        let v = ObjValue::Int(w.rng.range(0, 1_000) as i64);
        // Few distinct small values, so operations on the same one collide.
        let small = ObjValue::Int(w.rng.range(0, 4) as i64);
        let amount = ObjValue::Float(w.rng.range(0, 50) as f64);
        let node = ObjValue::Str(format!("10.0.0.{}:14000", w.rng.range(1, 4)));
        let (object, method, args) = match w.rng.range(0, 32) {
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

    fn resend_object(&mut self, w: &mut World, client: usize, target: usize, delay: u64) {
        let id = self.clients[client].id;
        let Some(p) = self.clients[client].obj.pending.as_mut() else { return };
        p.attempt += 1;
        p.target = target;
        let (seq, attempt, msg) = (p.seq, p.attempt, p.msg.clone());
        if !w.rng.chance(w.loss) {
            let d = delay + w.rng.range(w.params.delay_min, w.params.delay_max + 1);
            w.schedule(
                w.now + d,
                Event::ToNode { node: target, client: id, msg: ClientMsg::Object(msg) },
            );
        }
        let timeout = w.now + delay + w.params.client_timeout;
        w.schedule(timeout, Event::ClientTimeout { client, seq, attempt });
    }

    fn on_object_request(&mut self, w: &mut World, node: usize, client: u64, msg: ObjectMsg) {
        if !w.nodes[node].is_up() {
            return;
        }
        let (seq, result) = match msg {
            ObjectMsg::Batch(reqs) => {
                let keys: Vec<(u64, u64)> = reqs.iter().filter_map(object_key).collect();
                let commands = reqs.iter().map(|r| Command::App(r.encode())).collect();
                let result = w.step(self, node, Input::Propose(commands));
                for key in keys {
                    match result {
                        Ok(()) => {
                            self.nodes[node].waiting.insert(key, client);
                        }
                        Err(Rejected::NotLeader { leader_hint }) => {
                            w.reply(node, client, Reply::Redirect { seq: key.1, hint: leader_hint })
                        }
                        Err(Rejected::Busy) => {
                            let hint = Some(w.nodes[node].id);
                            w.reply(node, client, Reply::Redirect { seq: key.1, hint });
                        }
                    }
                }
                return;
            }
            ObjectMsg::Log(req) => {
                let Some(key) = object_key(&req) else { return };
                let result = w.step(self, node, Input::Propose(vec![Command::App(req.encode())]));
                if result.is_ok() {
                    self.nodes[node].waiting.insert(key, client);
                }
                (key.1, result)
            }
            ObjectMsg::Query { session, seq, op } => {
                let n = &mut w.nodes[node];
                let id = ReadId(n.next_read);
                n.next_read += 1;
                self.nodes[node].object_reads.insert(id, (client, session, seq, op));
                let result = w.step(self, node, Input::Read(id));
                if result.is_err() {
                    self.nodes[node].object_reads.remove(&id);
                }
                (seq, result)
            }
        };
        match result {
            Ok(()) => {}
            Err(Rejected::NotLeader { leader_hint }) => {
                w.reply(node, client, Reply::Redirect { seq, hint: leader_hint })
            }
            Err(Rejected::Busy) => {
                let hint = Some(w.nodes[node].id);
                w.reply(node, client, Reply::Redirect { seq, hint });
            }
        }
    }

    fn on_object_reply(&mut self, w: &mut World, client: usize, reply: Reply) {
        let o = &self.clients[client].obj;
        let Some(p) = &o.pending else { return };
        if o.crashed {
            return;
        }
        match reply {
            Reply::Redirect { seq, hint } if seq == p.seq => {
                let target = match hint.and_then(|h| w.id_to_node.get(&h).copied()) {
                    Some(t) if t != p.target => t,
                    _ => w.rng.index(w.nodes.len()),
                };
                let backoff = w.rng.range(MS, 30 * MS);
                self.resend_object(w, client, target, backoff);
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
                        self.record_object_op(w, client, p, None);
                        let o = &mut self.clients[client].obj;
                        o.session = None;
                        o.holds.clear();
                    }
                    om::Reply::Value(v) => {
                        self.complete_object_op(w, client, p, slot, position, Ok(v))
                    }
                    om::Reply::Error(e) if e.kind == "CancelledError" => {
                        // Taken back by its cancel: it had no effect, and the history
                        // leaves it out (the object's own code would still wait).
                        w.stats.cancelled += 1;
                    }
                    om::Reply::Error(e) => {
                        self.complete_object_op(w, client, p, slot, position, Err(e))
                    }
                }
                self.clients[client].favourite = Some(target);
                let think = w.rng.range(0, 20 * MS);
                w.schedule(w.now + think, Event::ClientNext { client });
            }
            _ => {}
        }
    }

    fn complete_object_op(
        &mut self,
        w: &mut World,
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
        w.stats.client_ops += 1;
        self.record_object_op(w, client, p, Some(ObjectResult { slot, position, result }));
    }

    fn record_object_op(
        &mut self,
        w: &mut World,
        client: usize,
        p: ObjPending,
        result: Option<ObjectResult>,
    ) {
        let (Some(op), Some(session)) = (p.op, self.clients[client].obj.session) else { return };
        let entry = Operation {
            client: self.clients[client].id,
            invoke: p.invoke,
            complete: result.map(|r| (w.now, r)),
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

    fn crash_a_client(&mut self, w: &mut World) {
        let alive: Vec<usize> =
            (0..self.clients.len()).filter(|c| !self.clients[*c].obj.crashed).collect();
        // Keep two clients alive (a barrier round needs a partner), and one that is
        // not waiting on the condition (someone must be able to notify).
        if alive.len() > 2 {
            let c = alive[w.rng.index(alive.len())];
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

    fn check_object_linearizability(&mut self, w: &mut World) {
        for c in 0..self.clients.len() {
            if let Some(p) = self.clients[c].obj.pending.take() {
                self.record_object_op(w, c, p, None);
            }
        }
        let histories = std::mem::take(&mut self.obj_history);
        if let Some(lock) = histories.get("lock") {
            if let Err(v) = crate::checkers::mutual_exclusion::check(lock) {
                w.violation = Some(v);
                return;
            }
        }
        if let Some(rlock) = histories.get("rlock") {
            if let Err(mut v) = crate::checkers::mutual_exclusion::check(rlock) {
                v.detail = format!("object rlock: {}", v.detail);
                w.violation = Some(v);
                return;
            }
        }
        for name in ["semaphore", "permits"] {
            if let Some(permits) = histories.get(name) {
                if let Err(mut v) = crate::checkers::mutual_exclusion::check_tokens(permits) {
                    v.detail = format!("object {name}: {}", v.detail);
                    w.violation = Some(v);
                    return;
                }
            }
        }
        if let Some(mesh) = histories.get("mesh") {
            if let Err(v) = crate::checkers::mesh::check(mesh) {
                w.violation = Some(v);
                return;
            }
        }
        if let Some(cond) = histories.get("cond") {
            if let Err(v) = crate::checkers::condition::check(cond) {
                w.violation = Some(v);
                return;
            }
        }
        if let Some(barrier) = histories.get("barrier") {
            if let Err(v) = crate::checkers::barrier::check(barrier, 2) {
                w.violation = Some(v);
                return;
            }
        }
        for (name, ops) in histories {
            if name == "barrier" || name == "cond" {
                // Rendezvous objects have no sequential model: the barrier is checked
                // above, the condition's waits by liveness (every wait is answered).
                continue;
            }
            // Every ended session is recorded in every object's history, but an object
            // learns of a session only through its calls: closing one that never
            // called this object leaves it as it was, so it is left out here. Kept in,
            // each such close is one more operation that may go anywhere in its instant,
            // and a few dozen ending at once (a burst of expiries) made the search
            // explore every subset of them (objects seed 12080 gave up after 2 million
            // configurations of a queue history, 26 of its 65 operations such closes).
            let callers: BTreeSet<u64> = ops
                .iter()
                .filter(|o| o.op.method != SESSION_CLOSED)
                .map(|o| o.op.session.0)
                .collect();
            let ops: Vec<_> = ops
                .into_iter()
                .filter(|o| o.op.method != SESSION_CLOSED || callers.contains(&o.op.session.0))
                .collect();
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
                    w.fail("linearizability", format!("object {name}: {explanation}"));
                    return;
                }
                Verdict::Unknown { reason } => {
                    w.fail("linearizability", format!("object {name}: checker gave up: {reason}"));
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

impl Driver for Objects {
    fn add_node(&mut self) {
        let machine = self.new_machine();
        self.nodes.push(NodeMachine {
            machine,
            waiting: BTreeMap::new(),
            object_reads: BTreeMap::new(),
        });
    }

    fn crash(&mut self, node: usize) {
        // The state machine's memory is lost with the process.
        let machine = self.new_machine();
        let n = &mut self.nodes[node];
        n.machine = machine;
        n.waiting.clear();
        n.object_reads.clear();
        self.timestamps.reset(node);
    }

    fn apply(
        &mut self,
        w: &mut World,
        node: usize,
        slot: Slot,
        value: &concoord_paxos::Value,
        extended: bool,
    ) {
        self.apply_objects(w, node, slot, value, extended);
    }

    fn snapshot(&self, node: usize) -> Option<Vec<u8>> {
        self.nodes[node].machine.snapshot().ok()
    }

    fn restore(&mut self, node: usize, data: &[u8]) -> Result<u64, String> {
        let mut machine =
            Machine::restore(object_types(), data).map_err(|e| format!("a bad snapshot: {e}"))?;
        machine.set_bugs(self.object_bugs.clone());
        let hash = machine_hash(&machine);
        self.nodes[node].machine = machine;
        self.timestamps.reset(node);
        Ok(hash)
    }

    fn read_ready(&mut self, w: &mut World, node: usize, id: ReadId) {
        let n = &mut self.nodes[node];
        if let Some((client, session, seq, op)) = n.object_reads.remove(&id) {
            let slot = w.nodes[node].app_applied;
            let reply = match n.machine.query(op.object, op.method, &op.args) {
                Ok(v) => om::Reply::Value(v),
                Err(e) => om::Reply::Error(e),
            };
            w.reply(node, client, Reply::Object { session, seq, slot, position: 0, reply });
        }
    }

    fn read_aborted(&mut self, w: &mut World, node: usize, id: ReadId, hint: Option<ReplicaId>) {
        if let Some((client, _, seq, _)) = self.nodes[node].object_reads.remove(&id) {
            w.reply(node, client, Reply::Redirect { seq, hint });
        }
    }

    fn dropped(
        &mut self,
        w: &mut World,
        node: usize,
        commands: Vec<Command>,
        hint: Option<ReplicaId>,
    ) {
        for command in commands {
            let Command::App(bytes) = command else { continue };
            let Some(key) = om::Request::decode(&bytes).ok().as_ref().and_then(object_key) else {
                continue;
            };
            if let Some(client) = self.nodes[node].waiting.remove(&key) {
                w.reply(node, client, Reply::Redirect { seq: key.1, hint });
            }
        }
    }

    fn start_op(&mut self, w: &mut World, client: usize) {
        self.start_object_op(w, client);
    }

    fn on_request(&mut self, w: &mut World, node: usize, client: u64, msg: ClientMsg) {
        if let ClientMsg::Object(msg) = msg {
            self.on_object_request(w, node, client, msg);
        }
    }

    fn on_reply(&mut self, w: &mut World, client: usize, reply: Reply) {
        self.on_object_reply(w, client, reply);
    }

    fn on_timeout(&mut self, w: &mut World, client: usize, seq: u64, attempt: u32) {
        let c = &self.clients[client].obj;
        let Some(p) = &c.pending else { return };
        if p.seq != seq || p.attempt != attempt || c.crashed {
            return;
        }
        let target = w.rng.index(w.nodes.len());
        self.resend_object(w, client, target, 0);
    }

    fn on_cancel(&mut self, w: &mut World, client: usize, seq: u64) {
        self.cancel_object_op(w, client, seq);
    }

    fn fault(&mut self, w: &mut World) -> bool {
        if w.rng.chance(0.1) {
            self.crash_a_client(w);
            return true;
        }
        false
    }

    fn unanswered(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| {
                let o = &c.obj;
                !o.crashed && (o.pending.is_some() || !o.holds.is_empty())
            })
            .count()
    }

    fn on_check(&mut self, w: &mut World) {
        for client in 0..self.clients.len() {
            self.start_object_op(w, client);
        }
    }

    fn finish(&mut self, w: &mut World) {
        self.check_object_linearizability(w);
    }
}
