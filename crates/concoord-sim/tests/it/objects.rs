//! The object layer under a randomized client population, one replica's machine at a
//! time: retries and lost replies, parked calls, client crashes whose sessions expire,
//! snapshots restored mid-run. Checked for exactly-once, no lost wake-up, and
//! linearizability of every object against its own code (`ObjectSpec`), with each
//! session's end recorded as a pseudo-call.
//!
//! It exercises `concoord-object` with the real built-ins; the consensus underneath is
//! the simulator's business (the cluster workload over objects is the next step).

use concoord_object::builtins::{
    self, bounded_semaphore::BoundedSemaphore, lock::Lock, queue::Queue, stack::Stack, Counter,
};
use concoord_object::machine::{Execution, Machine, Reply, Request, Response};
use concoord_object::{CallId, ObjectType, Types, Value};
use concoord_paxos::Prng;
use concoord_sim::checkers::linearizability::{check, Model, Operation, Verdict};
use concoord_sim::checkers::object_spec::{ObjectCall, ObjectResult, ObjectSpec, SESSION_CLOSED};
use concoord_wire::{RequestNumber, SessionId, Slot, Time};
use std::collections::BTreeMap;

const MS: u64 = 1_000;
const LEASE_MS: u64 = 2_000;

/// The instances every run creates: (name, type, constructor arguments).
fn objects() -> Vec<(&'static str, &'static str, Vec<Value>)> {
    vec![
        ("counter", "Counter", vec![]),
        ("lock", "Lock", vec![]),
        ("permits", "BoundedSemaphore", vec![Value::Int(2)]),
        ("queue", "Queue", vec![Value::Int(3)]),
        ("stack", "Stack", vec![]),
    ]
}

#[derive(Debug)]
struct Pending {
    call: CallId,
    object: &'static str,
    method: &'static str,
    args: Vec<Value>,
    invoke: u64,
    /// Where the call took effect, once it has (even if the reply was lost).
    effect: Option<(Slot, u64)>,
}

#[derive(Debug, Default)]
struct Client {
    session: Option<SessionId>,
    next_request: u64,
    pending: Option<Pending>,
    crashed: bool,
    holds_lock: bool,
    holds_permit: bool,
}

type History = Vec<Operation<ObjectCall, ObjectResult>>;

struct World {
    rng: Prng,
    machine: Machine,
    slot: u64,
    time: u64,
    clients: Vec<Client>,
    history: BTreeMap<&'static str, History>,
    executed: BTreeMap<CallId, Slot>,
    failures: Vec<String>,
    stats: Stats,
}

/// What a run exercised, so the test can insist it was not vacuous.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    parked: u64,
    expired: u64,
    lost_replies: u64,
    duplicates: u64,
    restores: u64,
}

fn types() -> Types {
    let mut types = Types::new();
    builtins::register_all(&mut types);
    types
}

impl World {
    fn new(seed: u64, clients: usize) -> World {
        let mut w = World {
            rng: Prng::new(seed),
            machine: Machine::new(types()),
            slot: 0,
            time: 1_000 * MS,
            clients: (0..clients).map(|_| Client::default()).collect(),
            history: BTreeMap::new(),
            executed: BTreeMap::new(),
            failures: Vec::new(),
            stats: Stats::default(),
        };
        // An administrator session creates the instances through the log.
        let admin = w.open_session(u64::MAX);
        for (i, (name, type_name, args)) in objects().into_iter().enumerate() {
            let request = RequestNumber(i as u64 + 1);
            let create = Request::Create {
                session: admin,
                request,
                name: name.into(),
                type_name: type_name.into(),
                args,
                acked: request,
            };
            let out = w.apply(&create);
            assert!(out.iter().any(|r| r.reply == Reply::Value(Value::Nil)), "create {name}");
            w.history.insert(name, Vec::new());
        }
        let out = w.apply(&Request::CloseSession { session: admin });
        w.deliver(out);
        w
    }

    /// Applies one command at the next slot and returns its responses, recording
    /// executions and ended sessions.
    fn apply(&mut self, request: &Request) -> Vec<Response> {
        self.slot += 1;
        self.time += self.rng.range(1, 20) * MS;
        let mut out = Vec::new();
        let execution =
            self.machine.apply(Slot(self.slot), Time(self.time), &request.encode(), &mut out);
        self.machine.check_invariants();
        if execution == Execution::Duplicate {
            self.stats.duplicates += 1;
        }
        if let (Execution::Executed, Request::Call { session, request, .. }) = (execution, request)
        {
            let call = CallId { session: *session, request: *request };
            if let Some(first) = self.executed.insert(call, Slot(self.slot)) {
                self.failures.push(format!("{call:?} executed at {first:?} and again"));
            }
        }
        for (session, position) in self.machine.take_ended() {
            self.stats.expired += 1;
            for history in self.history.values_mut() {
                let result =
                    ObjectResult { slot: Slot(self.slot), position, result: Ok(Value::Nil) };
                history.push(Operation {
                    client: u64::MAX,
                    invoke: self.time,
                    complete: Some((self.time, result)),
                    op: ObjectCall { session, method: SESSION_CLOSED.into(), args: vec![] },
                });
            }
            for c in self.clients.iter_mut().filter(|c| c.session == Some(session)) {
                c.holds_lock = false;
                c.holds_permit = false;
            }
        }
        out
    }

    fn open_session(&mut self, nonce: u64) -> SessionId {
        let out = self.apply(&Request::OpenSession { nonce, lease_ms: LEASE_MS });
        let session = match out.last() {
            Some(Response { reply: Reply::SessionOpened { session, .. }, .. }) => *session,
            other => panic!("no session: {other:?}"),
        };
        // Expiries applied before the registration may have woken parked calls.
        self.deliver(out);
        session
    }

    fn next_op(&mut self, c: usize) -> (&'static str, &'static str, Vec<Value>) {
        let client = &self.clients[c];
        if client.holds_lock {
            return ("lock", "release", vec![]);
        }
        if client.holds_permit {
            return ("permits", "release", vec![]);
        }
        let v = Value::Int(self.rng.range(0, 1_000) as i64);
        match self.rng.range(0, 10) {
            0 => ("counter", "increment", vec![]),
            1 => ("counter", "getvalue", vec![]),
            2 | 3 => ("lock", "acquire_token", vec![]),
            4 => ("permits", "acquire_token", vec![]),
            5 => ("queue", "put_nowait", vec![v]),
            6 => ("queue", "get_nowait", vec![]),
            7 => ("stack", "append", vec![v]),
            8 => ("stack", "pop", vec![]),
            _ => ("counter", "decrement", vec![]),
        }
    }

    /// Sends client `c`'s pending call (again, for a retry).
    fn send(&mut self, c: usize) {
        let Some(p) = &self.clients[c].pending else { return };
        let request = Request::Call {
            session: p.call.session,
            request: p.call.request,
            acked: p.call.request,
            object: p.object.into(),
            method: p.method.into(),
            args: p.args.clone(),
        };
        let out = self.apply(&request);
        self.deliver(out);
    }

    /// Routes responses to the clients waiting for them; some replies are lost on
    /// the way, so the client retries and must get the same answer.
    fn deliver(&mut self, out: Vec<Response>) {
        for response in out {
            let Some(c) = self.clients.iter().position(|c| {
                c.pending.as_ref().is_some_and(|p| p.call == response.call) && !c.crashed
            }) else {
                continue;
            };
            let lost = self.rng.chance(0.15);
            let at = (response.slot, response.position);
            let client = &mut self.clients[c];
            let Some(p) = client.pending.as_mut() else { continue };
            let result = match response.reply {
                Reply::Parked => {
                    self.stats.parked += 1;
                    continue;
                }
                Reply::SessionUnknown => {
                    // The session ended under the client: whatever the call did is
                    // unknown to it. Record it as never answered, and start over.
                    let p = client.pending.take().unwrap();
                    client.session = None;
                    self.record(c, p, None);
                    continue;
                }
                Reply::Value(v) => Ok(v),
                Reply::Error(e) => Err(e),
                Reply::SessionOpened { .. } => continue,
            };
            let effect = *p.effect.get_or_insert(at);
            if lost {
                self.stats.lost_replies += 1;
                continue;
            }
            let p = client.pending.take().unwrap();
            if p.method == "acquire_token" && matches!(result, Ok(Value::Int(_))) {
                if p.object == "lock" {
                    client.holds_lock = true;
                } else {
                    client.holds_permit = true;
                }
            }
            if p.method == "release" {
                client.holds_lock &= p.object != "lock";
                client.holds_permit &= p.object != "permits";
            }
            let result = ObjectResult { slot: effect.0, position: effect.1, result };
            self.record(c, p, Some(result));
        }
    }

    fn record(&mut self, c: usize, p: Pending, result: Option<ObjectResult>) {
        let op = Operation {
            client: c as u64,
            invoke: p.invoke,
            complete: result.map(|r| (self.time, r)),
            op: ObjectCall { session: p.call.session, method: p.method.into(), args: p.args },
        };
        self.history.get_mut(p.object).expect("known object").push(op);
    }

    /// One client step: open a session, start a call, or retry the pending one.
    fn step(&mut self, c: usize, new_calls: bool) {
        if self.clients[c].crashed {
            return;
        }
        if self.clients[c].session.is_none() {
            if !new_calls {
                return;
            }
            let session = self.open_session(c as u64);
            self.clients[c] =
                Client { session: Some(session), next_request: 1, ..Client::default() };
            return;
        }
        if self.clients[c].pending.is_some() {
            if self.rng.chance(0.3) {
                self.send(c);
            } else if let Some(session) = self.clients[c].session {
                let out = self.apply(&Request::KeepAlive { session });
                self.deliver(out);
            }
            return;
        }
        let holding = self.clients[c].holds_lock || self.clients[c].holds_permit;
        if !new_calls && !holding {
            return;
        }
        let (object, method, args) = self.next_op(c);
        let client = &mut self.clients[c];
        let Some(session) = client.session else { return };
        let call = CallId { session, request: RequestNumber(client.next_request) };
        client.next_request += 1;
        let invoke = self.time;
        client.pending = Some(Pending { call, object, method, args, invoke, effect: None });
        self.send(c);
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            let c = self.rng.index(self.clients.len());
            self.step(c, true);
            if self.rng.chance(0.004) {
                // A client process dies: it never calls again, its session expires.
                let alive = self.clients.iter().filter(|c| !c.crashed).count();
                if alive > 1 {
                    self.clients[c].crashed = true;
                }
            }
            if self.rng.chance(0.01) {
                // A replica restarts from a snapshot: the state must carry on exactly.
                self.stats.restores += 1;
                let bytes = self.machine.snapshot().expect("snapshot");
                self.machine = Machine::restore(types(), &bytes).expect("restore");
            }
        }
        // Quiesce: live clients finish what they hold and wait for parked calls;
        // time passes so crashed clients' sessions expire and release.
        for _ in 0..20_000 {
            let busy: Vec<usize> = (0..self.clients.len())
                .filter(|&c| {
                    let c = &self.clients[c];
                    !c.crashed && (c.pending.is_some() || c.holds_lock || c.holds_permit)
                })
                .collect();
            if busy.is_empty() {
                self.record_unanswered();
                return;
            }
            let c = busy[self.rng.index(busy.len())];
            self.step(c, false);
        }
        let stuck: Vec<_> = self.clients.iter().filter_map(|c| c.pending.as_ref()).collect();
        self.failures.push(format!("lost wake-up: calls never answered: {stuck:?}"));
    }

    /// Calls of crashed clients were never answered: they may or may not have taken
    /// effect, which is exactly what a pending operation in the history says.
    fn record_unanswered(&mut self) {
        for c in 0..self.clients.len() {
            if let Some(p) = self.clients[c].pending.take() {
                self.record(c, p, None);
            }
        }
    }

    fn check(&self) -> Vec<String> {
        let mut failures = self.failures.clone();
        let verdicts = [
            ("counter", verdict(&spec::<Counter>(&[]), &self.history["counter"])),
            ("lock", verdict(&spec::<Lock>(&[]), &self.history["lock"])),
            (
                "permits",
                verdict(&spec::<BoundedSemaphore>(&[Value::Int(2)]), &self.history["permits"]),
            ),
            ("queue", verdict(&spec::<Queue>(&[Value::Int(3)]), &self.history["queue"])),
            ("stack", verdict(&spec::<Stack>(&[]), &self.history["stack"])),
        ];
        for (name, v) in verdicts {
            if v != Verdict::Linearizable {
                failures.push(format!("{name}: {v:?}"));
            }
        }
        failures
    }
}

fn spec<T: ObjectType>(args: &[Value]) -> ObjectSpec<T> {
    ObjectSpec::new(&T::construct(args).expect("construct")).expect("spec")
}

fn verdict<M: Model<Op = ObjectCall, Ret = ObjectResult>>(model: &M, history: &History) -> Verdict {
    check(model, history, 2_000_000)
}

#[test]
fn objects_stay_linearizable_exactly_once_and_wake_every_parked_call() {
    let mut ops = 0;
    let mut total = Stats::default();
    for seed in 0..40 {
        let mut world = World::new(seed, 2 + (seed % 5) as usize);
        world.run(1_500);
        ops += world.history.values().map(Vec::len).sum::<usize>();
        let failures = world.check();
        assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
        let s = world.stats;
        total.parked += s.parked;
        total.expired += s.expired;
        total.lost_replies += s.lost_replies;
        total.duplicates += s.duplicates;
        total.restores += s.restores;
    }
    eprintln!("objects workload: {ops} operations, {total:?}");
    assert!(ops > 10_000, "the workload ran too few operations ({ops})");
    let t = total;
    assert!(
        t.parked > 100
            && t.expired > 20
            && t.lost_replies > 100
            && t.duplicates > 100
            && t.restores > 100,
        "the workload did not exercise everything: {t:?}"
    );
}

#[test]
fn the_checks_catch_an_object_that_breaks_its_promise() {
    // Replaying a history against the wrong initial state must fail: the checker is
    // not vacuous for these objects.
    let mut world = World::new(7, 3);
    world.run(800);
    let wrong_start = spec::<Counter>(&[Value::Int(1)]);
    let counter = &world.history["counter"];
    assert!(counter.iter().any(|o| o.op.method == "getvalue" && o.complete.is_some()));
    assert!(matches!(verdict(&wrong_start, counter), Verdict::NotLinearizable { .. }));
}
