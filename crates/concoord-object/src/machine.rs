//! The replicated state machine of the object layer: named object instances,
//! client sessions with exactly-once execution, parked calls and session expiry.
//!
//! It applies the log's commands in order (`apply`), answers queries between them
//! (`query`), and snapshots and restores itself as bytes. Everything it decides is a
//! function of the commands and their leader timestamps, so every replica decides
//! the same. It is not a network server: it returns `Response`s addressed to calls,
//! and the shell delivers them to whichever connection the caller uses by then.

use crate::error::ObjectError;
use crate::object::{CallId, Ctx, Object, Outcome, Types, Wake};
use crate::value::Value;
use concoord_wire::{RequestNumber, SessionId, Slot, Span, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most sessions the table holds; opening one more evicts the least recently active.
pub const SESSIONS_MAX: usize = 10_000;
/// Most replies one session keeps for retries (unacknowledged requests).
pub const REPLIES_PER_SESSION_MAX: usize = 1_024;
/// Bounds on the lease a client may ask for.
pub const LEASE_MIN: Span = Span::from_millis(1_000);
pub const LEASE_MAX: Span = Span::from_millis(3_600_000);
/// Most object instances in one cluster.
pub const OBJECTS_MAX: usize = 10_000;

/// The method names that re-initialise an instance through the log (`Machine::reinit`).
/// The error kind of the answer to a request numbered below its session's `acked`.
pub const ACKNOWLEDGED_ERROR: &str = "AcknowledgedError";
const REINIT_METHODS: [&str; 2] = ["__init__", "__concoordinit__"];

/// Object-layer bugs the simulator can switch on to prove its checkers catch them.
/// Each is a branch in the real code path; none is ever on in production.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum MachineBug {
    /// A retried request runs again instead of being answered from the session table.
    ApplyDuplicateTwice,
    /// An expired session's holdings are not released (objects never hear of it).
    KeepHoldingsOnExpiry,
    /// A wake-up goes to another parked call than the one the object woke.
    WakeWrongWaiter,
    /// A cancel answers the parked call as cancelled without asking its object to
    /// forget it: the object may still grant it later, to a caller who left.
    CancelWithoutObject,
    /// A `Create` acknowledges every earlier request of its session (it takes its
    /// own request number for `acked`): a pipelining client's earlier calls lose
    /// their replies (issue 13). Only the pipelined workload can show it.
    CreateAcksEarlier,
    /// Objects see the command's slot as its fencing token instead of its position:
    /// two grants in one slot (batching), or two sessions expiring before one
    /// command, hand out the same token (issue 13).
    FencingTokenIsSlot,
    /// A wake-up goes to the newest call parked on the same object instead of the
    /// one the object woke (the oldest, for the objects that promise FIFO order).
    WakeNewestWaiter,
    /// A woken `acquire_token` gets the slot as its token where a grant at once gets
    /// the position: two counters mixed, so tokens go backwards or repeat.
    WakeTokenIsSlot,
    /// Sessions expire after half their lease.
    ExpireAtHalfLease,
    /// A `Condition`'s `notify` puts the waiters it moves at the head of the lock's
    /// acquire queue, ahead of calls already waiting for the lock (a branch in
    /// `builtins/condition.rs`).
    NotifyJumpsQueue,
}

impl MachineBug {
    pub const ALL: [MachineBug; 10] = [
        MachineBug::ApplyDuplicateTwice,
        MachineBug::KeepHoldingsOnExpiry,
        MachineBug::WakeWrongWaiter,
        MachineBug::CancelWithoutObject,
        MachineBug::CreateAcksEarlier,
        MachineBug::FencingTokenIsSlot,
        MachineBug::WakeNewestWaiter,
        MachineBug::WakeTokenIsSlot,
        MachineBug::ExpireAtHalfLease,
        MachineBug::NotifyJumpsQueue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MachineBug::ApplyDuplicateTwice => "apply-duplicate-twice",
            MachineBug::KeepHoldingsOnExpiry => "keep-holdings-on-expiry",
            MachineBug::WakeWrongWaiter => "wake-wrong-waiter",
            MachineBug::CancelWithoutObject => "cancel-without-object",
            MachineBug::CreateAcksEarlier => "create-acks-earlier",
            MachineBug::FencingTokenIsSlot => "fencing-token-is-slot",
            MachineBug::WakeNewestWaiter => "wake-newest-waiter",
            MachineBug::WakeTokenIsSlot => "wake-token-is-slot",
            MachineBug::ExpireAtHalfLease => "expire-at-half-lease",
            MachineBug::NotifyJumpsQueue => "notify-jumps-queue",
        }
    }

    pub fn from_name(name: &str) -> Option<MachineBug> {
        MachineBug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// One command of the log, as clients submit it (encoded with MessagePack).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Registers a new session. `nonce` lets the client recognise the reply.
    OpenSession { nonce: u64, lease_ms: u64 },
    /// Keeps a session alive without calling anything.
    KeepAlive { session: SessionId },
    /// Ends a session now: what it held is released, its parked calls dropped.
    CloseSession { session: SessionId },
    /// Calls `method` on the instance `object`. `acked`: the client has the replies
    /// of every request below this number and will never ask for them again.
    Call {
        session: SessionId,
        request: RequestNumber,
        acked: RequestNumber,
        object: String,
        method: String,
        args: Vec<Value>,
    },
    /// Creates the instance `name` of type `type_name`, unless it exists with that
    /// type already (then this is a no-op returning `None`). `acked` as for `Call`:
    /// a creation is pipelined like any call, so it acknowledges only what its
    /// client says it has. It comes last, and a missing one is 0 (acknowledges
    /// nothing), so creations encoded before it existed still decode: from older
    /// clients, and from logs and snapshots written by older replicas.
    Create {
        session: SessionId,
        request: RequestNumber,
        name: String,
        type_name: String,
        args: Vec<Value>,
        #[serde(default)]
        acked: RequestNumber,
    },
    /// The caller gave up waiting for its call `target` (same session). If that call
    /// is still parked, its object forgets it and it is answered with
    /// `CancelledError`; this request then returns True. False when the call is not
    /// parked (it completed first, or has not been applied yet) or its object cannot
    /// take it back. Numbered like a call, and exactly-once like one.
    Cancel { session: SessionId, request: RequestNumber, target: RequestNumber },
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        // Encoding a plain enum of owned data into a Vec cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, ObjectError> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| ObjectError::value_error(format!("malformed request: {e}")))
    }
}

/// What a caller gets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Value(Value),
    Error(ObjectError),
    /// The call is parked; its result comes later as another response.
    Parked,
    /// Answer to `OpenSession`.
    SessionOpened {
        nonce: u64,
        session: SessionId,
    },
    /// The session does not exist (never opened, expired, closed or evicted).
    SessionUnknown,
}

/// A reply for a call (or, for `OpenSession`, for `CallId { session: 0, request: nonce }`).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub call: CallId,
    pub reply: Reply,
    /// The slot at which this reply was decided: where the call took effect (for a
    /// woken call, the slot of the command that woke it). A retry answered from the
    /// session table carries the original slot.
    pub slot: Slot,
    /// The command position (`Ctx::fencing_token`) at which it was decided, likewise.
    pub position: u64,
}

/// What became of one request (for the simulator's exactly-once checker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Execution {
    /// Ran now.
    Executed,
    /// A retry of a request that already ran: answered from the session table.
    Duplicate,
    /// Not run (unknown session, acknowledged already, or malformed).
    Refused,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    lease: Span,
    last_active: Time,
    /// Replies of requests at or above `acked`, for retries. A parked request is
    /// recorded as `Reply::Parked` until it is woken.
    replies: BTreeMap<RequestNumber, (Slot, u64, Reply)>,
    acked: RequestNumber,
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    clock: Time,
    position: u64,
    next_session: u64,
    sessions: BTreeMap<SessionId, Session>,
    objects: Vec<(String, String, Vec<u8>)>,
}

/// The object layer's replicated state.
#[derive(Debug)]
pub struct Machine {
    types: Types,
    objects: BTreeMap<String, Box<dyn Object>>,
    sessions: BTreeMap<SessionId, Session>,
    next_session: u64,
    /// Cluster time: the highest leader timestamp applied.
    clock: Time,
    /// Commands applied so far: the position of the next one.
    position: u64,
    /// Sessions ended since the last `take_ended`, with the position at which each
    /// ended (for observers; not replicated).
    ended: Vec<(SessionId, u64)>,
    /// Injected bugs (simulator only; empty in production).
    bugs: BTreeSet<MachineBug>,
    /// With `WakeNewestWaiter` or `WakeTokenIsSlot` only: the object and method each
    /// parked call waits on (not replicated: a restored machine does not know them).
    parked_on: BTreeMap<CallId, (String, String)>,
    /// Every session by the time its lease runs out (`last_active + lease`), so a
    /// command finds the expired ones without looking at the others. Derived from
    /// `sessions` (rebuilt on restore, never saved).
    expiry: BTreeSet<(Time, SessionId)>,
    /// Calls handed to pipelined objects (`Object::submit`) whose outcomes `settle`
    /// has not taken yet, in log order. Empty between slots.
    pending: Vec<Pending>,
}

/// A call submitted to a pipelined object, waiting for its outcome.
#[derive(Debug)]
struct Pending {
    object: String,
    call: CallId,
    slot: Slot,
    position: u64,
}

impl Session {
    fn deadline(&self) -> Time {
        self.last_active + self.lease
    }

    /// A call numbered `request` says its client has every reply below `acked`
    /// (never its own): moves the watermark and forgets those replies (parked calls
    /// stay, they are not answered yet).
    fn acknowledge(&mut self, request: RequestNumber, acked: RequestNumber) {
        self.acked = self.acked.max(acked.min(request));
        let watermark = self.acked;
        self.replies.retain(|n, (_, _, reply)| *n >= watermark || *reply == Reply::Parked);
    }
}

impl Machine {
    pub fn new(types: Types) -> Machine {
        Machine {
            types,
            objects: BTreeMap::new(),
            sessions: BTreeMap::new(),
            next_session: 1,
            clock: Time(0),
            position: 0,
            ended: Vec::new(),
            bugs: BTreeSet::new(),
            parked_on: BTreeMap::new(),
            expiry: BTreeSet::new(),
            pending: Vec::new(),
        }
    }

    /// Switches on injected bugs (the simulator's `--inject`).
    pub fn set_bugs(&mut self, bugs: BTreeSet<MachineBug>) {
        self.bugs = bugs;
    }

    /// Commands applied so far (the position of the last one, as `Ctx::fencing_token`
    /// saw it).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Sessions ended (closed, expired or evicted) since the last call, in order,
    /// each with the position at which it ended. Observers such as the simulator's
    /// checkers use it; replicas need not.
    pub fn take_ended(&mut self) -> Vec<(SessionId, u64)> {
        std::mem::take(&mut self.ended)
    }

    pub fn types(&self) -> &Types {
        &self.types
    }

    pub fn object_names(&self) -> impl Iterator<Item = &str> {
        self.objects.keys().map(String::as_str)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn has_session(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// Applies one command of slot `slot`, stamped `timestamp` by the leader.
    /// Expired sessions are ended first, so a dead client's lock is free for this
    /// very command. Returns the responses to deliver, in order.
    ///
    /// A call to a pipelined object (`Object::pipelined`) may be only submitted
    /// here: its response comes from `settle`, which the caller must run after the
    /// last command of the slot (and before queries, snapshots or replies). The
    /// responses, their order and the resulting state are the same as if every call
    /// had run here, one by one.
    pub fn apply(
        &mut self,
        slot: Slot,
        timestamp: Time,
        bytes: &[u8],
        responses: &mut Vec<Response>,
    ) -> Execution {
        self.clock = self.clock.max(timestamp);
        self.position += 1;
        self.expire_sessions(slot, responses);
        let request = match Request::decode(bytes) {
            Ok(r) => r,
            Err(_) => return Execution::Refused,
        };
        match request {
            Request::OpenSession { nonce, lease_ms } => {
                // Its answer comes after those of the calls before it.
                self.settle(responses);
                let session = self.open_session(slot, Span::from_millis(lease_ms), responses);
                let call = CallId { session: SessionId(0), request: RequestNumber(nonce) };
                responses.push(Response {
                    call,
                    reply: Reply::SessionOpened { nonce, session },
                    slot,
                    position: self.position,
                });
                Execution::Executed
            }
            Request::KeepAlive { session } => {
                self.restart_lease(session);
                Execution::Executed
            }
            Request::CloseSession { session } => {
                if self.sessions.contains_key(&session) {
                    self.end_session(slot, session, responses);
                }
                Execution::Executed
            }
            Request::Call { session, request, acked, object, method, args } => {
                if self.submit(slot, session, request, acked, &object, &method, &args) {
                    return Execution::Executed;
                }
                self.settle(responses);
                let first = responses.len();
                let track = self.bugs.contains(&MachineBug::WakeNewestWaiter)
                    || self.bugs.contains(&MachineBug::WakeTokenIsSlot);
                let parked_on = track.then(|| (object.clone(), method.clone()));
                let execution = self.on_call(
                    slot,
                    session,
                    request,
                    acked,
                    |m, ctx| match m.objects.get_mut(&object) {
                        Some(_) if REINIT_METHODS.contains(&method.as_str()) => {
                            m.reinit(ctx, &object, &args)
                        }
                        Some(o) => o.call(ctx, &method, &args),
                        None => Outcome::Raise(ObjectError::attribute_error(format!(
                            "no object named {object:?}"
                        ))),
                    },
                    responses,
                );
                let call = CallId { session, request };
                let parked = responses[first..].iter().any(|r| {
                    r.call == call && r.reply == Reply::Parked && r.position == self.position
                });
                if let (Some(object), true) = (parked_on, parked) {
                    self.parked_on.insert(call, object);
                }
                execution
            }
            Request::Create { session, request, name, type_name, args, acked } => {
                self.settle(responses);
                self.on_call(
                    slot,
                    session,
                    request,
                    if self.bugs.contains(&MachineBug::CreateAcksEarlier) {
                        request
                    } else {
                        acked
                    },
                    |m, _| m.create(&name, &type_name, &args),
                    responses,
                )
            }
            Request::Cancel { session, request, target } => {
                self.settle(responses);
                self.on_call(
                    slot,
                    session,
                    request,
                    // A cancel acknowledges nothing: it never moves the reply watermark.
                    RequestNumber(0),
                    |m, ctx| Outcome::Return(Value::Bool(m.cancel(ctx, session, target))),
                    responses,
                )
            }
        }
    }

    /// Submits a call to a pipelined object instead of running it, when its
    /// outcome cannot change what the machine decides before `settle`: the session
    /// exists, the call is new (no cached reply, nothing of it pending, not below
    /// `acked`), its session's reply table has room whatever the pending calls
    /// return, it is not `__init__`, and no bug is injected. Does what `on_call`
    /// does to the session before running a call, and returns true; false changes
    /// nothing.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        slot: Slot,
        session: SessionId,
        request: RequestNumber,
        acked: RequestNumber,
        object: &str,
        method: &str,
        args: &[Value],
    ) -> bool {
        if !self.bugs.is_empty() || REINIT_METHODS.contains(&method) {
            return false;
        }
        if !self.objects.get(object).is_some_and(|o| o.pipelined()) {
            return false;
        }
        let call = CallId { session, request };
        let Some(s) = self.sessions.get(&session) else { return false };
        let watermark = s.acked.max(acked.min(request));
        let pending_here = self.pending.iter().filter(|p| p.call.session == session).count();
        if request < watermark
            || s.replies.contains_key(&request)
            || self.pending.iter().any(|p| p.call == call)
            || s.replies.len() + pending_here + 1 >= REPLIES_PER_SESSION_MAX
        {
            return false;
        }
        let (clock, position) = (self.clock, self.position);
        if let Some(s) = self.restart_lease(session) {
            s.acknowledge(request, acked);
        }
        if let Some(o) = self.objects.get_mut(object) {
            o.submit(call, clock, position, method, args);
        }
        self.pending.push(Pending { object: object.to_string(), call, slot, position });
        true
    }

    /// Takes the outcomes of the calls submitted to pipelined objects, in log
    /// order, and does with each what `on_call` does with an outcome: records the
    /// reply in its session, answers it, and delivers the calls it woke, all at the
    /// call's own slot and position. Run it after the last command of a slot;
    /// `apply` runs it itself before anything whose effect could depend on those
    /// outcomes.
    pub fn settle(&mut self, responses: &mut Vec<Response>) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let names: BTreeSet<&str> = pending.iter().map(|p| p.object.as_str()).collect();
        let mut outcomes: BTreeMap<String, std::vec::IntoIter<(Outcome, Vec<Wake>)>> =
            BTreeMap::new();
        for name in names {
            let collected = self.objects.get_mut(name).map(|o| o.collect()).unwrap_or_default();
            outcomes.insert(name.to_string(), collected.into_iter());
        }
        for p in pending {
            let (outcome, wakes) =
                outcomes.get_mut(&p.object).and_then(Iterator::next).unwrap_or_else(|| {
                    let e = ObjectError::runtime_error(format!(
                        "the object {:?} lost a submitted call",
                        p.object
                    ));
                    (Outcome::Raise(e), Vec::new())
                });
            let reply = match outcome {
                Outcome::Return(v) => Reply::Value(v),
                Outcome::Raise(e) => Reply::Error(e),
                Outcome::Park => Reply::Parked,
            };
            if let Some(s) = self.sessions.get_mut(&p.call.session) {
                // A later call of the session may have acknowledged this one: the
                // reply would have been dropped then, unless the call parked.
                if p.call.request >= s.acked || reply == Reply::Parked {
                    s.replies.insert(p.call.request, (p.slot, p.position, reply.clone()));
                }
            }
            responses.push(Response { call: p.call, reply, slot: p.slot, position: p.position });
            self.deliver_wakes(p.slot, p.position, wakes, responses);
        }
    }

    /// Creates the cluster's default instance before anything is applied, identically
    /// on every replica (the replica's `-o` type). It is part of every snapshot, so a
    /// joiner that installs one gets it from there.
    pub fn create_default(&mut self, name: &str, type_name: &str) -> Result<(), ObjectError> {
        match self.create(name, type_name, &[]) {
            Outcome::Raise(e) => Err(e),
            Outcome::Return(_) | Outcome::Park => Ok(()),
        }
    }

    /// Runs a query on `object` between commands (after a read barrier): no log
    /// write, no session needed.
    pub fn query(&self, object: &str, method: &str, args: &[Value]) -> Result<Value, ObjectError> {
        assert!(self.pending.is_empty(), "query with submitted calls not settled");
        let o = self
            .objects
            .get(object)
            .ok_or_else(|| ObjectError::attribute_error(format!("no object named {object:?}")))?;
        o.query(method, args).unwrap_or_else(|| {
            Err(ObjectError::type_error(format!(
                "{method} is not a query: call it through the log"
            )))
        })
    }

    /// Whether `method` of `object` can take the query path.
    pub fn is_query(&self, object: &str, method: &str) -> bool {
        self.objects.get(object).is_some_and(|o| {
            o.methods().iter().any(|m| m.name == method && m.kind == crate::MethodKind::Query)
        })
    }

    fn create(&mut self, name: &str, type_name: &str, args: &[Value]) -> Outcome {
        if let Some(existing) = self.objects.get(name) {
            if self.types.canonical(type_name) == Some(existing.type_name()) {
                return Outcome::Return(Value::Nil);
            }
            return Outcome::Raise(ObjectError::value_error(format!(
                "object {name:?} exists with type {}",
                existing.type_name()
            )));
        }
        if self.objects.len() >= OBJECTS_MAX {
            return Outcome::Raise(ObjectError::runtime_error(format!(
                "too many objects (at most {OBJECTS_MAX})"
            )));
        }
        match self.types.construct(type_name, args) {
            Ok(object) => {
                self.objects.insert(name.to_string(), object);
                Outcome::Return(Value::Nil)
            }
            Err(e) => Outcome::Raise(e),
        }
    }

    /// `__init__(*args)` (or the original's `__concoordinit__`) on instance `name`:
    /// an object that re-initialises itself (`Object::reinit`, a hosted Python
    /// object) does; any other is replaced by a fresh instance of its type built
    /// from `args`. Every call parked in the old instance is answered with
    /// `RuntimeError`, not forgotten; what sessions held in it (a lock, permits) is
    /// simply gone, so a later release by a holder raises as for any non-holder.
    /// A constructor that refuses `args` changes nothing.
    fn reinit(&mut self, ctx: &mut Ctx<'_>, name: &str, args: &[Value]) -> Outcome {
        let parked: Vec<CallId> = self
            .sessions
            .iter()
            .flat_map(|(session, s)| {
                s.replies
                    .iter()
                    .filter(|(_, (_, _, reply))| *reply == Reply::Parked)
                    .map(|(request, _)| CallId { session: *session, request: *request })
            })
            .collect();
        let Some(old) = self.objects.get_mut(name) else {
            return Outcome::Raise(ObjectError::attribute_error(format!(
                "no object named {name:?}"
            )));
        };
        if let Some(outcome) = old.reinit(ctx, args) {
            return outcome;
        }
        let fresh = match self.types.construct(old.type_name(), args) {
            Ok(fresh) => fresh,
            Err(e) => return Outcome::Raise(e),
        };
        // Take the parked calls out of the old instance. What taking them back would
        // wake there (a lock handed to the next waiter) is dropped with the old state.
        let mut discarded = Vec::new();
        let mut scratch =
            Ctx::at(ctx.call(), ctx.timestamp(), ctx.slot(), ctx.fencing_token(), &mut discarded);
        let taken: Vec<CallId> =
            parked.into_iter().filter(|call| old.cancel(&mut scratch, *call)).collect();
        *old = fresh;
        for call in taken {
            ctx.wake_error(
                call,
                ObjectError::runtime_error(format!(
                    "{name} was re-initialised (__init__) while this call waited"
                )),
            );
        }
        Outcome::Return(Value::Nil)
    }

    /// Takes back the parked call `target` of `session`, if its object lets it go;
    /// the call is then woken with `CancelledError`.
    fn cancel(&mut self, ctx: &mut Ctx<'_>, session: SessionId, target: RequestNumber) -> bool {
        let call = CallId { session, request: target };
        let parked = self
            .sessions
            .get(&session)
            .and_then(|s| s.replies.get(&target))
            .is_some_and(|(_, _, reply)| *reply == Reply::Parked);
        if !parked {
            return false;
        }
        // A call parks in one object; the first that knows it takes it back.
        let cancelled = self.bugs.contains(&MachineBug::CancelWithoutObject)
            || self.objects.values_mut().any(|o| o.cancel(ctx, call));
        if cancelled {
            ctx.wake_error(
                call,
                ObjectError::new("CancelledError", "the caller stopped waiting (its timeout)"),
            );
        }
        cancelled
    }

    /// The exactly-once core shared by calls and creations.
    fn on_call(
        &mut self,
        slot: Slot,
        session: SessionId,
        request: RequestNumber,
        acked: RequestNumber,
        run: impl FnOnce(&mut Machine, &mut Ctx<'_>) -> Outcome,
        responses: &mut Vec<Response>,
    ) -> Execution {
        let call = CallId { session, request };
        let clock = self.clock;
        let position = self.position;
        let duplicate_runs = self.bugs.contains(&MachineBug::ApplyDuplicateTwice);
        let Some(s) = self.restart_lease(session) else {
            responses.push(Response { call, reply: Reply::SessionUnknown, slot, position });
            return Execution::Refused;
        };
        s.acknowledge(request, acked);
        if let Some((at, pos, reply)) = s.replies.get(&request).filter(|_| !duplicate_runs) {
            responses.push(Response { call, reply: reply.clone(), slot: *at, position: *pos });
            return Execution::Duplicate;
        }
        if request < s.acked && !duplicate_runs {
            // Acknowledged: its reply is forgotten and it must not run now. A client
            // that still waits for it has a bug; tell it rather than stay silent.
            let e = ObjectError::new(
                ACKNOWLEDGED_ERROR,
                format!(
                    "request {} of session {} is below acked {}: the client said it holds \
                     its reply, which is forgotten, and it is not run again",
                    request.0, session.0, s.acked.0
                ),
            );
            responses.push(Response { call, reply: Reply::Error(e), slot, position });
            return Execution::Refused;
        }
        if s.replies.len() >= REPLIES_PER_SESSION_MAX {
            let e = ObjectError::runtime_error(format!(
                "more than {REPLIES_PER_SESSION_MAX} unacknowledged requests in one session"
            ));
            responses.push(Response { call, reply: Reply::Error(e), slot, position });
            return Execution::Refused;
        }
        let mut wakes = Vec::new();
        let outcome = {
            let token = self.fencing_token(slot, position);
            let bugs = self.bugs.clone();
            let mut ctx = Ctx::at(call, clock, slot, token, &mut wakes).with_bugs(bugs);
            run(self, &mut ctx)
        };
        let reply = match outcome {
            Outcome::Return(v) => Reply::Value(v),
            Outcome::Raise(e) => Reply::Error(e),
            Outcome::Park => Reply::Parked,
        };
        if let Some(s) = self.sessions.get_mut(&session) {
            s.replies.insert(request, (slot, position, reply.clone()));
        }
        responses.push(Response { call, reply, slot, position });
        self.deliver_wakes(slot, position, wakes, responses);
        Execution::Executed
    }

    /// Records woken calls' results in their sessions and answers them, as decided
    /// at `slot` and command `position`. A wake for a call that is not parked (an
    /// object bug, or a session that ended) is dropped.
    fn deliver_wakes(
        &mut self,
        slot: Slot,
        position: u64,
        wakes: Vec<Wake>,
        responses: &mut Vec<Response>,
    ) {
        for mut wake in wakes {
            if self.bugs.contains(&MachineBug::WakeWrongWaiter) {
                // Another parked call, if any, gets this wake-up instead.
                let other = self.sessions.iter().find_map(|(id, s)| {
                    s.replies.iter().find_map(|(n, (_, _, r))| {
                        let call = CallId { session: *id, request: *n };
                        (*r == Reply::Parked && call != wake.call).then_some(call)
                    })
                });
                if let Some(other) = other {
                    wake.call = other;
                }
            }
            if let Some((_, method)) = self.parked_on.get(&wake.call) {
                if self.bugs.contains(&MachineBug::WakeTokenIsSlot)
                    && method == "acquire_token"
                    && wake.result == Ok(Value::Int(position as i64))
                {
                    wake.result = Ok(Value::Int(slot.0 as i64));
                }
            }
            if let Some((object, _)) = self
                .parked_on
                .get(&wake.call)
                .filter(|_| self.bugs.contains(&MachineBug::WakeNewestWaiter))
            {
                // The newest call still parked on the same object gets this wake-up.
                let newest = self
                    .parked_on
                    .iter()
                    .filter(|(_, (o, _))| o == object)
                    .filter_map(|(call, _)| {
                        let (_, position, reply) =
                            self.sessions.get(&call.session)?.replies.get(&call.request)?;
                        (*reply == Reply::Parked).then_some((*position, *call))
                    })
                    .max();
                if let Some((_, newest)) = newest {
                    wake.call = newest;
                }
                self.parked_on.remove(&wake.call);
            }
            let Some(s) = self.sessions.get_mut(&wake.call.session) else { continue };
            let Some(entry) = s.replies.get_mut(&wake.call.request) else { continue };
            if entry.2 != Reply::Parked {
                continue;
            }
            let reply = match wake.result {
                Ok(v) => Reply::Value(v),
                Err(e) => Reply::Error(e),
            };
            *entry = (slot, position, reply.clone());
            responses.push(Response { call: wake.call, reply, slot, position });
        }
    }

    /// `session` was active now: its lease starts again (and its place in the
    /// expiry index moves). `None` for a session that does not exist.
    fn restart_lease(&mut self, session: SessionId) -> Option<&mut Session> {
        let s = self.sessions.get_mut(&session)?;
        self.expiry.remove(&(s.deadline(), session));
        s.last_active = self.clock;
        self.expiry.insert((s.deadline(), session));
        Some(s)
    }

    fn open_session(
        &mut self,
        slot: Slot,
        lease: Span,
        responses: &mut Vec<Response>,
    ) -> SessionId {
        if self.sessions.len() >= SESSIONS_MAX {
            let oldest =
                self.sessions.iter().min_by_key(|(id, s)| (s.last_active, **id)).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.end_session(slot, oldest, responses);
            }
        }
        let id = SessionId(self.next_session);
        self.next_session += 1;
        let lease = lease.max(LEASE_MIN).min(LEASE_MAX);
        let session = Session {
            lease,
            last_active: self.clock,
            replies: BTreeMap::new(),
            acked: RequestNumber(0),
        };
        self.expiry.insert((session.deadline(), id));
        self.sessions.insert(id, session);
        id
    }

    /// Ends every session whose lease ran out before the cluster time (idle for
    /// longer than its lease), in session order.
    fn expire_sessions(&mut self, slot: Slot, responses: &mut Vec<Response>) {
        let clock = self.clock;
        let mut expired: Vec<SessionId> = if self.bugs.contains(&MachineBug::ExpireAtHalfLease) {
            let early = |s: &Session| clock.since(s.last_active) > Span(s.lease.0 / 2);
            self.sessions.iter().filter(|(_, s)| early(s)).map(|(id, _)| *id).collect()
        } else {
            // Idle for longer than the lease: `clock - last_active > lease`, that is
            // a deadline (`last_active + lease`) before `clock`.
            self.expiry.range(..(clock, SessionId(0))).map(|(_, id)| *id).collect()
        };
        // Session order, whatever the deadlines: replicas of every version end them
        // (and hand out what they held) in the same order.
        expired.sort_unstable();
        for session in expired {
            self.end_session(slot, session, responses);
        }
    }

    /// The fencing token objects see for a step at `position` of `slot`.
    fn fencing_token(&self, slot: Slot, position: u64) -> u64 {
        if self.bugs.contains(&MachineBug::FencingTokenIsSlot) {
            slot.0
        } else {
            position
        }
    }

    /// Ends a session: every object releases what it held (waking others), then the
    /// session and its parked calls are gone.
    fn end_session(&mut self, slot: Slot, session: SessionId, responses: &mut Vec<Response>) {
        // What the session releases depends on what its pending calls did.
        self.settle(responses);
        if let Some(s) = self.sessions.remove(&session) {
            self.expiry.remove(&(s.deadline(), session));
        }
        // Ending a session is a step of its own: what it releases is granted at a
        // fresh position, so fencing tokens stay unique even when several sessions
        // end before one command.
        self.position += 1;
        self.ended.push((session, self.position));
        let mut wakes = Vec::new();
        // The call id of a release has request 0: it is the system acting, not a client.
        let call = CallId { session, request: RequestNumber(0) };
        let release = !self.bugs.contains(&MachineBug::KeepHoldingsOnExpiry);
        let token = self.fencing_token(slot, self.position);
        for object in self.objects.values_mut().filter(|_| release) {
            let mut ctx =
                Ctx::at(call, self.clock, slot, token, &mut wakes).with_bugs(self.bugs.clone());
            object.session_closed(&mut ctx, session);
        }
        self.deliver_wakes(slot, self.position, wakes, responses);
    }

    /// The whole state as bytes (objects, sessions with cached replies and parked
    /// markers, cluster time).
    pub fn snapshot(&self) -> Result<Vec<u8>, ObjectError> {
        assert!(self.pending.is_empty(), "snapshot with submitted calls not settled");
        let mut objects = Vec::with_capacity(self.objects.len());
        for (name, object) in &self.objects {
            objects.push((name.clone(), object.type_name().to_string(), object.snapshot()?));
        }
        let saved = Saved {
            clock: self.clock,
            position: self.position,
            next_session: self.next_session,
            sessions: self.sessions.clone(),
            objects,
        };
        crate::object::encode_state(&saved)
    }

    /// Rebuilds a machine from `snapshot` bytes, with the object types of `types`.
    pub fn restore(types: Types, bytes: &[u8]) -> Result<Machine, ObjectError> {
        let saved: Saved = crate::object::decode_state(bytes)?;
        let mut objects = BTreeMap::new();
        for (name, type_name, state) in saved.objects {
            objects.insert(name, types.restore(&type_name, &state)?);
        }
        let expiry = saved.sessions.iter().map(|(id, s)| (s.deadline(), *id)).collect();
        Ok(Machine {
            types,
            objects,
            expiry,
            sessions: saved.sessions,
            next_session: saved.next_session,
            clock: saved.clock,
            position: saved.position,
            ended: Vec::new(),
            bugs: BTreeSet::new(),
            parked_on: BTreeMap::new(),
            pending: Vec::new(),
        })
    }

    /// Asserts the table's limits.
    pub fn check_invariants(&self) {
        assert!(self.sessions.len() <= SESSIONS_MAX, "session table over its limit");
        let derived: BTreeSet<(Time, SessionId)> =
            self.sessions.iter().map(|(id, s)| (s.deadline(), *id)).collect();
        assert_eq!(self.expiry, derived, "session expiry index out of step with the sessions");
        assert!(self.objects.len() <= OBJECTS_MAX, "too many objects");
        for (id, s) in &self.sessions {
            assert!(id.0 < self.next_session, "session id not yet issued");
            assert!(s.replies.len() <= REPLIES_PER_SESSION_MAX, "reply cache over its limit");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The machine is tested with a hand-written lock: the built-in objects, written
    //! with the macro, are tested in their own modules.
    use super::*;
    use crate::object::{MethodInfo, MethodKind, ObjectType};
    use std::collections::VecDeque;

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct TestLock {
        holder: Option<SessionId>,
        waiters: VecDeque<CallId>,
        grants: u64,
    }

    const METHODS: &[MethodInfo] = &[
        MethodInfo { name: "acquire", kind: MethodKind::Command, args: &[] },
        MethodInfo { name: "release", kind: MethodKind::Command, args: &[] },
        MethodInfo { name: "grants", kind: MethodKind::Query, args: &[] },
    ];

    impl Object for TestLock {
        fn type_name(&self) -> &'static str {
            "TestLock"
        }

        fn methods(&self) -> &'static [MethodInfo] {
            METHODS
        }

        fn call(&mut self, ctx: &mut Ctx<'_>, method: &str, _args: &[Value]) -> Outcome {
            match method {
                "acquire" if self.holder.is_none() => {
                    self.holder = Some(ctx.session());
                    self.grants += 1;
                    Outcome::Return(Value::Int(ctx.slot().0 as i64))
                }
                "acquire" => {
                    self.waiters.push_back(ctx.call());
                    Outcome::Park
                }
                "release" if self.holder == Some(ctx.session()) => {
                    self.hand_over(ctx);
                    Outcome::Return(Value::Nil)
                }
                "release" => {
                    Outcome::Raise(ObjectError::runtime_error("cannot release un-acquired lock"))
                }
                "grants" => Outcome::Return(Value::Int(self.grants as i64)),
                other => Outcome::Raise(ObjectError::attribute_error(other.to_string())),
            }
        }

        fn query(&self, method: &str, _args: &[Value]) -> Option<Result<Value, ObjectError>> {
            (method == "grants").then_some(Ok(Value::Int(self.grants as i64)))
        }

        fn session_closed(&mut self, ctx: &mut Ctx<'_>, session: SessionId) {
            self.waiters.retain(|c| c.session != session);
            if self.holder == Some(session) {
                self.hand_over(ctx);
            }
        }

        fn snapshot(&self) -> Result<Vec<u8>, ObjectError> {
            crate::object::encode_state(self)
        }
    }

    impl TestLock {
        fn hand_over(&mut self, ctx: &mut Ctx<'_>) {
            self.holder = None;
            if let Some(next) = self.waiters.pop_front() {
                self.holder = Some(next.session);
                self.grants += 1;
                ctx.wake(next, ctx.slot().0 as i64);
            }
        }
    }

    impl ObjectType for TestLock {
        const TYPE_NAME: &'static str = "TestLock";

        fn construct(_args: &[Value]) -> Result<Self, ObjectError> {
            Ok(TestLock::default())
        }

        fn restore(bytes: &[u8]) -> Result<Self, ObjectError> {
            crate::object::decode_state(bytes)
        }
    }

    /// A scripted log: each `step` applies one command at the next slot.
    struct Log {
        machine: Machine,
        slot: u64,
        time: u64,
        out: Vec<Response>,
    }

    impl Log {
        fn new() -> Log {
            let mut types = Types::new();
            types.register::<TestLock>(&["tests.TestLock"]);
            crate::builtins::register_all(&mut types);
            let mut log =
                Log { machine: Machine::new(types), slot: 0, time: 1_000_000, out: Vec::new() };
            let session = log.open();
            log.step(Request::Create {
                session,
                request: RequestNumber(1),
                name: "lock".into(),
                type_name: "TestLock".into(),
                args: vec![],
                acked: RequestNumber(1),
            });
            log
        }

        fn step(&mut self, request: Request) -> Execution {
            self.slot += 1;
            self.time += 1_000;
            self.out.clear();
            let (slot, time) = (Slot(self.slot), Time(self.time));
            let execution = self.machine.apply(slot, time, &request.encode(), &mut self.out);
            self.machine.check_invariants();
            execution
        }

        fn open(&mut self) -> SessionId {
            self.open_with(5_000)
        }

        fn open_with(&mut self, lease_ms: u64) -> SessionId {
            self.step(Request::OpenSession { nonce: 7, lease_ms });
            match self.out.last() {
                Some(Response { reply: Reply::SessionOpened { session, nonce: 7 }, .. }) => {
                    *session
                }
                other => panic!("no session opened: {other:?}"),
            }
        }

        fn call(&mut self, session: SessionId, request: u64, method: &str) -> Execution {
            self.step(Request::Call {
                session,
                request: RequestNumber(request),
                acked: RequestNumber(request),
                object: "lock".into(),
                method: method.into(),
                args: vec![],
            })
        }

        fn reply_to(&self, session: SessionId, request: u64) -> Option<&Reply> {
            let call = CallId { session, request: RequestNumber(request) };
            self.out.iter().find(|r| r.call == call).map(|r| &r.reply)
        }
    }

    #[test]
    fn a_parked_acquire_is_woken_by_release_with_its_own_fencing_token() {
        let mut t = Log::new();
        let (a, b) = (t.open(), t.open());
        t.call(a, 1, "acquire");
        let Some(Reply::Value(Value::Int(first))) = t.reply_to(a, 1).cloned() else { panic!() };
        t.call(b, 1, "acquire");
        assert_eq!(t.reply_to(b, 1), Some(&Reply::Parked));
        t.call(a, 2, "release");
        assert_eq!(t.reply_to(a, 2), Some(&Reply::Value(Value::Nil)));
        let Some(Reply::Value(Value::Int(second))) = t.reply_to(b, 1).cloned() else {
            panic!("waiter not woken: {:?}", t.out)
        };
        assert!(second > first, "fencing tokens must grow");
        // A retry of the parked call after it was woken gets the wake-up result.
        assert_eq!(t.call(b, 1, "acquire"), Execution::Duplicate);
        assert_eq!(t.reply_to(b, 1), Some(&Reply::Value(Value::Int(second))));
    }

    fn call_on(t: &mut Log, session: SessionId, request: u64, object: &str, method: &str) {
        t.step(Request::Call {
            session,
            request: RequestNumber(request),
            acked: RequestNumber(1),
            object: object.into(),
            method: method.into(),
            args: vec![],
        });
    }

    fn cancel(t: &mut Log, session: SessionId, request: u64, target: u64) -> Execution {
        t.step(Request::Cancel {
            session,
            request: RequestNumber(request),
            target: RequestNumber(target),
        })
    }

    fn call_with(
        t: &mut Log,
        session: SessionId,
        request: u64,
        object: &str,
        method: &str,
        args: Vec<Value>,
    ) {
        t.step(Request::Call {
            session,
            request: RequestNumber(request),
            acked: RequestNumber(1),
            object: object.into(),
            method: method.into(),
            args,
        });
    }

    fn create(
        t: &mut Log,
        session: SessionId,
        request: u64,
        name: &str,
        type_name: &str,
        args: Vec<Value>,
    ) {
        t.step(Request::Create {
            session,
            request: RequestNumber(request),
            name: name.into(),
            type_name: type_name.into(),
            args,
            acked: RequestNumber(1),
        });
        assert_eq!(t.reply_to(session, request), Some(&Reply::Value(Value::Nil)));
    }

    fn is_error(reply: Option<&Reply>, kind: &str) -> bool {
        matches!(reply, Some(Reply::Error(e)) if e.kind == kind)
    }

    #[test]
    fn init_rebuilds_a_builtin_from_its_arguments_and_bad_arguments_change_nothing() {
        let mut t = Log::new();
        let a = t.open();
        create(&mut t, a, 1, "hits", "Counter", vec![Value::Int(5)]);
        call_with(&mut t, a, 2, "hits", "increment", vec![]);
        call_with(&mut t, a, 3, "hits", "__concoordinit__", vec![Value::Int(40)]);
        assert_eq!(t.reply_to(a, 3), Some(&Reply::Value(Value::Nil)));
        call_with(&mut t, a, 4, "hits", "getvalue", vec![]);
        assert_eq!(t.reply_to(a, 4), Some(&Reply::Value(Value::Int(40))));
        call_with(&mut t, a, 5, "hits", "__init__", vec![Value::Str("x".into())]);
        assert!(is_error(t.reply_to(a, 5), "TypeError"), "{:?}", t.out);
        call_with(&mut t, a, 6, "hits", "__init__", vec![]);
        call_with(&mut t, a, 7, "hits", "getvalue", vec![]);
        assert_eq!(t.reply_to(a, 7), Some(&Reply::Value(Value::Int(0))));
        // A retried __init__ is answered from the session table, not run again.
        call_with(&mut t, a, 8, "hits", "increment", vec![]);
        assert_eq!(
            t.step(Request::Call {
                session: a,
                request: RequestNumber(6),
                acked: RequestNumber(6),
                object: "hits".into(),
                method: "__init__".into(),
                args: vec![],
            }),
            Execution::Duplicate
        );
        call_with(&mut t, a, 9, "hits", "getvalue", vec![]);
        assert_eq!(t.reply_to(a, 9), Some(&Reply::Value(Value::Int(1))));
    }

    #[test]
    fn init_answers_the_calls_parked_in_the_old_instance_and_drops_what_it_held() {
        let mut t = Log::new();
        let (a, b, c) = (t.open(), t.open(), t.open());
        create(&mut t, a, 1, "door", "Lock", vec![]);
        call_with(&mut t, a, 2, "door", "acquire", vec![]);
        assert_eq!(t.reply_to(a, 2), Some(&Reply::Value(Value::Bool(true))));
        call_with(&mut t, b, 1, "door", "acquire", vec![]);
        call_with(&mut t, c, 1, "door", "acquire", vec![]);
        // A call parked in another object is not touched.
        call_on(&mut t, c, 2, "lock", "acquire");
        call_on(&mut t, b, 2, "lock", "acquire");
        assert_eq!(t.reply_to(b, 2), Some(&Reply::Parked));
        call_with(&mut t, a, 3, "door", "__init__", vec![]);
        assert_eq!(t.reply_to(a, 3), Some(&Reply::Value(Value::Nil)));
        for waiter in [b, c] {
            assert!(is_error(t.reply_to(waiter, 1), "RuntimeError"), "{:?}", t.out);
        }
        assert_eq!(t.out.len(), 3, "the re-init and its two waiters only: {:?}", t.out);
        // The old holder holds nothing in the fresh lock; anyone may take it.
        call_with(&mut t, a, 4, "door", "release", vec![]);
        assert!(is_error(t.reply_to(a, 4), "RuntimeError"));
        call_with(&mut t, b, 3, "door", "acquire", vec![]);
        assert_eq!(t.reply_to(b, 3), Some(&Reply::Value(Value::Bool(true))));
        // The other object's waiter is still parked, and woken by its release.
        call_on(&mut t, c, 3, "lock", "release");
        assert!(matches!(t.reply_to(b, 2), Some(Reply::Value(_))), "{:?}", t.out);
    }

    #[test]
    fn a_cancelled_parked_call_is_forgotten_and_answered_with_cancelled_error() {
        let mut t = Log::new();
        let (a, b) = (t.open(), t.open());
        t.step(Request::Create {
            session: a,
            request: RequestNumber(1),
            name: "mutex".into(),
            type_name: "Lock".into(),
            args: vec![],
            acked: RequestNumber(1),
        });
        call_on(&mut t, a, 2, "mutex", "acquire");
        call_on(&mut t, b, 1, "mutex", "acquire");
        assert_eq!(t.reply_to(b, 1), Some(&Reply::Parked));
        assert_eq!(cancel(&mut t, b, 2, 1), Execution::Executed);
        assert_eq!(t.reply_to(b, 2), Some(&Reply::Value(Value::Bool(true))));
        match t.reply_to(b, 1) {
            Some(Reply::Error(e)) => assert_eq!(e.kind, "CancelledError"),
            other => panic!("the cancelled call must be answered: {other:?}"),
        }
        // The lock no longer knows the cancelled caller: the release frees it.
        call_on(&mut t, a, 3, "mutex", "release");
        assert_eq!(t.machine.query("mutex", "locked", &[]), Ok(Value::Bool(false)));
        // A retried cancel is answered from the table; a new one finds nothing parked.
        assert_eq!(cancel(&mut t, b, 2, 1), Execution::Duplicate);
        assert_eq!(t.reply_to(b, 2), Some(&Reply::Value(Value::Bool(true))));
        cancel(&mut t, b, 3, 1);
        assert_eq!(t.reply_to(b, 3), Some(&Reply::Value(Value::Bool(false))));
        // A call that completed first is not taken back: its grant stands.
        call_on(&mut t, b, 4, "mutex", "acquire");
        assert_eq!(t.reply_to(b, 4), Some(&Reply::Value(Value::Bool(true))));
        cancel(&mut t, b, 5, 4);
        assert_eq!(t.reply_to(b, 5), Some(&Reply::Value(Value::Bool(false))));
        assert_eq!(t.machine.query("mutex", "locked", &[]), Ok(Value::Bool(true)));
        // Another session cannot cancel b's calls: a cancel names its own session.
        call_on(&mut t, a, 4, "mutex", "acquire");
        assert_eq!(t.reply_to(a, 4), Some(&Reply::Parked));
        cancel(&mut t, b, 6, 4);
        assert_eq!(t.reply_to(b, 6), Some(&Reply::Value(Value::Bool(false))));
        assert!(t.reply_to(a, 4).is_none(), "a's parked call is untouched");
    }

    /// Every built-in that parks lets a parked call go, and forgets it for good.
    #[test]
    fn every_blocking_builtin_takes_back_a_cancelled_call() {
        let s = |x: &str| Value::Str(x.into());
        // (type, constructor args, calls by the other session first, the parking call,
        //  a query and its value once the parked call is gone)
        type Case = (
            &'static str,
            Vec<Value>,
            Vec<(&'static str, Vec<Value>)>,
            (&'static str, Vec<Value>),
            (&'static str, Value),
        );
        let cases: Vec<Case> = vec![
            (
                "Lock",
                vec![],
                vec![("acquire", vec![])],
                ("acquire_token", vec![]),
                ("locked", Value::Bool(true)),
            ),
            (
                "RLock",
                vec![],
                vec![("acquire", vec![])],
                ("acquire", vec![]),
                ("locked", Value::Bool(true)),
            ),
            (
                "Semaphore",
                vec![Value::Int(0)],
                vec![],
                ("acquire", vec![]),
                ("value", Value::Int(0)),
            ),
            (
                "BoundedSemaphore",
                vec![Value::Int(1)],
                vec![("acquire", vec![])],
                ("acquire", vec![]),
                ("value", Value::Int(0)),
            ),
            (
                "Barrier",
                vec![Value::Int(3)],
                vec![],
                ("wait", vec![]),
                ("n_waiting", Value::Int(0)),
            ),
            ("Queue", vec![], vec![], ("get", vec![]), ("qsize", Value::Int(0))),
            (
                "Queue",
                vec![Value::Int(1)],
                vec![("put", vec![Value::Int(1)])],
                ("put", vec![Value::Int(2)]),
                ("qsize", Value::Int(1)),
            ),
            (
                "MeshMembership",
                vec![],
                vec![("add_group", vec![s("g"), Value::Int(1)])],
                ("wait", vec![s("g")]),
                ("get_group_members", Value::List(vec![])),
            ),
        ];
        for (type_name, ctor, setup, (method, args), (query, expected)) in cases {
            let mut t = Log::new();
            let (a, b) = (t.open(), t.open());
            t.step(Request::Create {
                session: a,
                request: RequestNumber(1),
                name: "o".into(),
                type_name: type_name.into(),
                args: ctor,
                acked: RequestNumber(1),
            });
            for (i, (m, args)) in setup.into_iter().enumerate() {
                t.step(Request::Call {
                    session: a,
                    request: RequestNumber(2 + i as u64),
                    acked: RequestNumber(1),
                    object: "o".into(),
                    method: m.into(),
                    args,
                });
            }
            t.step(Request::Call {
                session: b,
                request: RequestNumber(1),
                acked: RequestNumber(1),
                object: "o".into(),
                method: method.into(),
                args,
            });
            assert_eq!(t.reply_to(b, 1), Some(&Reply::Parked), "{type_name}.{method} parks");
            cancel(&mut t, b, 2, 1);
            assert_eq!(t.reply_to(b, 2), Some(&Reply::Value(Value::Bool(true))), "{type_name}");
            assert!(
                matches!(t.reply_to(b, 1), Some(Reply::Error(e)) if e.kind == "CancelledError")
            );
            let query_args = if type_name == "MeshMembership" { vec![s("g")] } else { vec![] };
            assert_eq!(t.machine.query("o", query, &query_args), Ok(expected), "{type_name}");
        }
    }

    #[test]
    fn a_condition_wait_can_be_cancelled_and_leaves_the_lock_free() {
        let mut t = Log::new();
        let (a, b) = (t.open(), t.open());
        t.step(Request::Create {
            session: a,
            request: RequestNumber(1),
            name: "cv".into(),
            type_name: "Condition".into(),
            args: vec![],
            acked: RequestNumber(1),
        });
        call_on(&mut t, b, 1, "cv", "acquire");
        call_on(&mut t, b, 2, "cv", "wait");
        assert_eq!(t.reply_to(b, 2), Some(&Reply::Parked));
        cancel(&mut t, b, 3, 2);
        assert_eq!(t.reply_to(b, 3), Some(&Reply::Value(Value::Bool(true))));
        // The wait had released the lock: another session takes it at once.
        call_on(&mut t, a, 2, "cv", "acquire");
        assert_eq!(t.reply_to(a, 2), Some(&Reply::Value(Value::Bool(true))));
        // And a notify finds no waiter to move.
        call_on(&mut t, a, 3, "cv", "notify_all");
        call_on(&mut t, a, 4, "cv", "release");
        assert!(t.reply_to(b, 2).is_none(), "the cancelled wait is never woken");
    }

    #[test]
    fn an_object_without_a_cancel_hook_keeps_its_parked_call() {
        let mut t = Log::new();
        let (a, b) = (t.open(), t.open());
        t.call(a, 1, "acquire");
        t.call(b, 1, "acquire");
        assert_eq!(t.reply_to(b, 1), Some(&Reply::Parked));
        cancel(&mut t, b, 2, 1);
        assert_eq!(t.reply_to(b, 2), Some(&Reply::Value(Value::Bool(false))));
        assert!(t.reply_to(b, 1).is_none());
        // It still gets the lock when released.
        t.call(a, 2, "release");
        assert!(matches!(t.reply_to(b, 1), Some(Reply::Value(Value::Int(_)))));
    }

    /// Issue 13, bug 1 (a): a client pipelines `Call #1` and `Create #2`; both are
    /// applied, the leader dies before answering, and the client resends #1. The
    /// `Create` did not acknowledge #1 (the client never had its reply), so the retry
    /// is answered from the session table.
    #[test]
    fn a_create_pipelined_after_a_call_does_not_acknowledge_that_call() {
        let mut t = Log::new();
        let a = t.open();
        t.step(call_request(a, 1, 1, "acquire"));
        let granted = t.reply_to(a, 1).cloned();
        assert!(matches!(granted, Some(Reply::Value(Value::Int(_)))));
        t.step(create_request(a, 2, 1, "other"));
        assert_eq!(t.reply_to(a, 2), Some(&Reply::Value(Value::Nil)));
        // The replies were lost with the leader: the client resends #1 unchanged.
        assert_eq!(t.step(call_request(a, 1, 1, "acquire")), Execution::Duplicate);
        assert_eq!(t.reply_to(a, 1).cloned(), granted, "the retry gets the original reply");
    }

    /// Issue 13, bug 1 (b): `Call #1` is dropped at a leader change and `Create #2`
    /// is applied first. #1, resent, must still run and be answered.
    #[test]
    fn a_call_applied_after_a_later_create_still_runs() {
        let mut t = Log::new();
        let a = t.open();
        t.step(create_request(a, 2, 1, "other"));
        assert_eq!(t.reply_to(a, 2), Some(&Reply::Value(Value::Nil)));
        assert_eq!(t.step(call_request(a, 1, 1, "acquire")), Execution::Executed);
        assert!(matches!(t.reply_to(a, 1), Some(Reply::Value(Value::Int(_)))));
        assert_eq!(t.machine.query("lock", "grants", &[]), Ok(Value::Int(1)));
    }

    /// A `Cancel` acknowledges nothing, whatever its own number.
    #[test]
    fn a_cancel_does_not_acknowledge_earlier_requests() {
        let mut t = Log::new();
        let (a, b) = (t.open(), t.open());
        t.step(call_request(a, 1, 1, "acquire"));
        t.step(call_request(b, 1, 1, "release"));
        let refused = t.reply_to(b, 1).cloned();
        assert!(matches!(refused, Some(Reply::Error(_))));
        cancel(&mut t, b, 2, 1);
        assert_eq!(t.step(call_request(b, 1, 1, "release")), Execution::Duplicate);
        assert_eq!(t.reply_to(b, 1).cloned(), refused);
    }

    fn call_request(session: SessionId, request: u64, acked: u64, method: &str) -> Request {
        Request::Call {
            session,
            request: RequestNumber(request),
            acked: RequestNumber(acked),
            object: "lock".into(),
            method: method.into(),
            args: vec![],
        }
    }

    fn create_request(session: SessionId, request: u64, acked: u64, name: &str) -> Request {
        Request::Create {
            session,
            request: RequestNumber(request),
            name: name.into(),
            type_name: "Counter".into(),
            args: vec![],
            acked: RequestNumber(acked),
        }
    }

    /// A `Create` without `acked` (from an older client, or in a log or snapshot
    /// written before the field existed) decodes, and acknowledges nothing.
    #[test]
    fn a_create_encoded_without_acked_decodes_and_acknowledges_nothing() {
        #[derive(Serialize)]
        enum Before {
            #[allow(dead_code)]
            OpenSession { nonce: u64, lease_ms: u64 },
            #[allow(dead_code)]
            KeepAlive { session: SessionId },
            #[allow(dead_code)]
            CloseSession { session: SessionId },
            #[allow(dead_code)]
            Call { session: SessionId },
            Create {
                session: SessionId,
                request: RequestNumber,
                name: String,
                type_name: String,
                args: Vec<Value>,
            },
        }
        let before = Before::Create {
            session: SessionId(4),
            request: RequestNumber(9),
            name: "n".into(),
            type_name: "Counter".into(),
            args: vec![Value::Int(1)],
        };
        let expected = Request::Create {
            session: SessionId(4),
            request: RequestNumber(9),
            name: "n".into(),
            type_name: "Counter".into(),
            args: vec![Value::Int(1)],
            acked: RequestNumber(0),
        };
        // The log's compact form, and the client protocol's form with field names.
        let compact = rmp_serde::to_vec(&before).unwrap();
        assert_eq!(Request::decode(&compact), Ok(expected.clone()));
        let named = rmp_serde::to_vec_named(&before).unwrap();
        assert_eq!(Request::decode(&named), Ok(expected));
    }

    #[test]
    fn a_retried_request_is_answered_from_the_session_table_and_runs_once() {
        let mut t = Log::new();
        let a = t.open();
        assert_eq!(t.call(a, 1, "acquire"), Execution::Executed);
        let first = t.reply_to(a, 1).cloned();
        assert_eq!(t.call(a, 1, "acquire"), Execution::Duplicate);
        assert_eq!(t.reply_to(a, 1).cloned(), first);
        assert_eq!(t.machine.query("lock", "grants", &[]), Ok(Value::Int(1)));
        // A retry of a parked call is still parked, not queued twice.
        let b = t.open();
        t.call(b, 1, "acquire");
        assert_eq!(t.call(b, 1, "acquire"), Execution::Duplicate);
        assert_eq!(t.reply_to(b, 1), Some(&Reply::Parked));
        t.call(a, 2, "release");
        t.call(b, 2, "release");
        assert_eq!(t.machine.query("lock", "grants", &[]), Ok(Value::Int(2)));
    }

    #[test]
    fn an_expired_session_releases_its_lock_to_the_next_waiter() {
        let mut t = Log::new();
        let (dead, alive) = (t.open(), t.open());
        t.call(dead, 1, "acquire");
        t.call(alive, 1, "acquire");
        assert_eq!(t.reply_to(alive, 1), Some(&Reply::Parked));
        // The waiter keeps its session alive; the holder stays silent past its lease.
        let mut woken = None;
        for _ in 0..6 {
            t.time += 1_000_000;
            t.step(Request::KeepAlive { session: alive });
            woken = woken.or(t.reply_to(alive, 1).cloned());
        }
        assert!(!t.machine.has_session(dead));
        assert!(matches!(woken, Some(Reply::Value(Value::Int(_)))), "waiter not woken");
        assert_eq!(t.call(dead, 2, "release"), Execution::Refused);
        assert_eq!(t.reply_to(dead, 2), Some(&Reply::SessionUnknown));
    }

    #[test]
    fn sessions_expire_exactly_when_idle_past_their_own_lease_in_session_order() {
        let mut t = Log::new();
        t.machine.take_ended();
        // Opened in this order, at about the same time: the longest lease first.
        let long = t.open_with(9_000);
        let short = t.open_with(2_000);
        let middle = t.open_with(4_000);
        let (opened_long, opened_short) = (t.time - 2_000, t.time - 1_000);
        // A command stamped exactly `lease` after `short`'s last activity keeps it.
        t.time = opened_short + 2_000_000 - 1_000;
        t.step(Request::KeepAlive { session: long });
        assert!(t.machine.has_session(short), "idle for exactly its lease is not expired");
        // One microsecond later it is gone, and only it.
        t.time += 1;
        t.step(Request::KeepAlive { session: long });
        assert!(!t.machine.has_session(short));
        assert!(t.machine.has_session(middle) && t.machine.has_session(long));
        // Far beyond every lease, one command ends all three left, in session order,
        // although their deadlines come in another (`middle`'s first, `long`'s last,
        // since it was touched): replicas of any version hand out what they held in
        // the same order. A restored machine knows the same deadlines.
        assert!(opened_long < opened_short);
        let bytes = t.machine.snapshot().unwrap();
        let mut types = Types::new();
        types.register::<TestLock>(&["tests.TestLock"]);
        t.machine = Machine::restore(types, &bytes).unwrap();
        t.machine.take_ended();
        let first = t.machine.sessions.keys().next().copied().unwrap();
        t.time += 60_000_000;
        t.step(Request::OpenSession { nonce: 8, lease_ms: 5_000 });
        let ended: Vec<SessionId> = t.machine.take_ended().into_iter().map(|(s, _)| s).collect();
        assert_eq!(ended, vec![first, long, middle], "expired sessions end in session order");
    }

    #[test]
    fn a_snapshot_keeps_parked_calls_and_cached_replies() {
        let mut t = Log::new();
        let (a, b) = (t.open(), t.open());
        t.call(a, 1, "acquire");
        t.call(b, 1, "acquire");
        let bytes = t.machine.snapshot().unwrap();
        let mut types = Types::new();
        types.register::<TestLock>(&[]);
        t.machine = Machine::restore(types, &bytes).unwrap();
        assert_eq!(t.machine.snapshot().unwrap(), bytes);
        assert_eq!(t.call(a, 1, "acquire"), Execution::Duplicate);
        t.call(a, 2, "release");
        assert!(matches!(t.reply_to(b, 1), Some(Reply::Value(_))));
        assert!(Machine::restore(Types::new(), &bytes).is_err(), "unknown type must be an error");
        assert!(Machine::restore(Types::new(), &[0xc1, 0x00]).is_err());
    }

    #[test]
    fn bad_requests_get_clear_errors_and_change_nothing() {
        let mut t = Log::new();
        let a = t.open();
        t.out.clear();
        assert_eq!(
            t.machine.apply(Slot(99), Time(t.time), b"\x00garbage", &mut t.out),
            Execution::Refused
        );
        assert!(t.out.is_empty());
        t.step(Request::Call {
            session: a,
            request: RequestNumber(1),
            acked: RequestNumber(1),
            object: "nope".into(),
            method: "acquire".into(),
            args: vec![],
        });
        assert!(matches!(t.reply_to(a, 1), Some(Reply::Error(e)) if e.kind == "AttributeError"));
        t.call(a, 2, "release");
        assert!(matches!(t.reply_to(a, 2), Some(Reply::Error(e)) if e.kind == "RuntimeError"));
        assert!(t.machine.query("lock", "acquire", &[]).is_err());
        let create_again = Request::Create {
            session: a,
            request: RequestNumber(3),
            name: "lock".into(),
            type_name: "tests.TestLock".into(),
            args: vec![],
            acked: RequestNumber(3),
        };
        t.step(create_again);
        assert_eq!(t.reply_to(a, 3), Some(&Reply::Value(Value::Nil)), "same type by alias: no-op");
    }

    #[test]
    fn acknowledged_replies_are_forgotten_and_the_table_stays_bounded() {
        let mut t = Log::new();
        let a = t.open();
        for n in 1..=2_000u64 {
            t.step(Request::Call {
                session: a,
                request: RequestNumber(n),
                acked: RequestNumber(n),
                object: "lock".into(),
                method: "grants".into(),
                args: vec![],
            });
            assert!(matches!(t.reply_to(a, n), Some(Reply::Value(_))));
        }
        let s = &t.machine.sessions[&a];
        assert!(s.replies.len() <= 1, "acked replies kept: {}", s.replies.len());
        // Without acknowledgements the cache refuses to grow past its limit.
        for n in 2_001..=2_001 + REPLIES_PER_SESSION_MAX as u64 {
            t.step(Request::Call {
                session: a,
                request: RequestNumber(n),
                acked: RequestNumber(2_000),
                object: "lock".into(),
                method: "grants".into(),
                args: vec![],
            });
        }
        assert!(matches!(t.out.last(), Some(Response { reply: Reply::Error(_), .. })));
    }

    #[test]
    fn a_full_session_table_evicts_the_least_recently_active_session() {
        let mut t = Log::new();
        let first = t.open_with(3_600_000);
        for _ in 0..SESSIONS_MAX {
            t.open_with(3_600_000);
        }
        assert_eq!(t.machine.session_count(), SESSIONS_MAX);
        assert!(!t.machine.has_session(first));
    }

    /// A lock whose grants are fencing tokens, run either call by call or through
    /// `submit`/`collect` (`PIPELINED`), to show the two give the same history.
    #[derive(Debug, Default, Serialize, Deserialize)]
    struct TokenLock<const PIPELINED: bool> {
        holder: Option<SessionId>,
        waiters: VecDeque<CallId>,
        #[serde(skip)]
        queue: Vec<(CallId, Time, u64, String)>,
    }

    /// Calls that went through `submit` (only the equivalence test uses it).
    static SUBMITTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    const TOKEN_METHODS: &[MethodInfo] = &[
        MethodInfo { name: "acquire", kind: MethodKind::Command, args: &[] },
        MethodInfo { name: "release", kind: MethodKind::Command, args: &[] },
        MethodInfo { name: "fail", kind: MethodKind::Command, args: &[] },
    ];

    impl<const PIPELINED: bool> Object for TokenLock<PIPELINED> {
        fn type_name(&self) -> &'static str {
            "TokenLock"
        }

        fn methods(&self) -> &'static [MethodInfo] {
            TOKEN_METHODS
        }

        fn call(&mut self, ctx: &mut Ctx<'_>, method: &str, _args: &[Value]) -> Outcome {
            assert!(self.queue.is_empty(), "call with submitted calls not collected");
            match method {
                "acquire" if self.holder.is_none() => {
                    self.holder = Some(ctx.session());
                    Outcome::Return(Value::Int(ctx.fencing_token() as i64))
                }
                "acquire" => {
                    self.waiters.push_back(ctx.call());
                    Outcome::Park
                }
                "release" if self.holder == Some(ctx.session()) => {
                    self.hand_over(ctx);
                    Outcome::Return(Value::Nil)
                }
                "release" => Outcome::Raise(ObjectError::runtime_error("not held")),
                _ => Outcome::Raise(ObjectError::value_error(format!("{method} failed"))),
            }
        }

        fn query(&self, _method: &str, _args: &[Value]) -> Option<Result<Value, ObjectError>> {
            None
        }

        fn session_closed(&mut self, ctx: &mut Ctx<'_>, session: SessionId) {
            self.waiters.retain(|c| c.session != session);
            if self.holder == Some(session) {
                self.hand_over(ctx);
            }
        }

        fn cancel(&mut self, _ctx: &mut Ctx<'_>, call: CallId) -> bool {
            let before = self.waiters.len();
            self.waiters.retain(|c| *c != call);
            self.waiters.len() < before
        }

        fn snapshot(&self) -> Result<Vec<u8>, ObjectError> {
            crate::object::encode_state(self)
        }

        fn pipelined(&self) -> bool {
            PIPELINED
        }

        fn submit(
            &mut self,
            call: CallId,
            timestamp: Time,
            position: u64,
            method: &str,
            _: &[Value],
        ) {
            SUBMITTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.queue.push((call, timestamp, position, method.to_string()));
        }

        fn collect(&mut self) -> Vec<(Outcome, Vec<Wake>)> {
            let queue = std::mem::take(&mut self.queue);
            let mut out = Vec::with_capacity(queue.len());
            for (call, timestamp, position, method) in queue {
                let mut wakes = Vec::new();
                let mut ctx = Ctx::at(call, timestamp, Slot(0), position, &mut wakes);
                let outcome = self.call(&mut ctx, &method, &[]);
                out.push((outcome, wakes));
            }
            out
        }
    }

    impl<const PIPELINED: bool> TokenLock<PIPELINED> {
        fn hand_over(&mut self, ctx: &mut Ctx<'_>) {
            self.holder = None;
            if let Some(next) = self.waiters.pop_front() {
                self.holder = Some(next.session);
                ctx.wake(next, ctx.fencing_token() as i64);
            }
        }
    }

    impl<const PIPELINED: bool> ObjectType for TokenLock<PIPELINED> {
        const TYPE_NAME: &'static str = "TokenLock";

        fn construct(_args: &[Value]) -> Result<Self, ObjectError> {
            Ok(TokenLock::default())
        }

        fn restore(bytes: &[u8]) -> Result<Self, ObjectError> {
            crate::object::decode_state(bytes)
        }
    }

    #[test]
    fn pipelined_calls_give_the_same_replies_order_and_state_as_calls_one_by_one() {
        let machine_of = |pipelined: bool| {
            let mut types = Types::new();
            if pipelined {
                types.register::<TokenLock<true>>(&[]);
            } else {
                types.register::<TokenLock<false>>(&[]);
            }
            types.register::<TestLock>(&[]);
            let mut m = Machine::new(types);
            m.create_default("lock", "TokenLock").unwrap();
            m.create_default("other", "TestLock").unwrap();
            m
        };
        let (mut one_by_one, mut pipelined) = (machine_of(false), machine_of(true));
        // A small deterministic generator (xorshift), so the script is the same
        // on every run.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut sessions: Vec<(SessionId, u64)> = Vec::new();
        let mut time = 1_000_000u64;
        let before = SUBMITTED.load(std::sync::atomic::Ordering::Relaxed);
        for slot in 1..=3_000u64 {
            // Now and then a long pause, so that sessions expire (their leases are
            // 1 to 3 s).
            time += if next(40) == 0 { 2_500_000 } else { 1_000 };
            let mut commands = Vec::new();
            for _ in 0..1 + next(8) {
                let pick = next(100);
                if sessions.is_empty() || pick < 6 {
                    let lease_ms = 1_000 + next(2_000);
                    commands.push(Request::OpenSession { nonce: slot, lease_ms });
                    continue;
                }
                let i = next(sessions.len() as u64) as usize;
                let (session, last) = sessions[i];
                let request = match next(10) {
                    0 => last.saturating_sub(next(3)).max(1), // a retry
                    _ => last + 1,
                };
                sessions[i].1 = sessions[i].1.max(request);
                let acked = RequestNumber(match next(4) {
                    0 => request,
                    1 => request.saturating_sub(5),
                    _ => 1,
                });
                let (object, method) = match next(20) {
                    0 => ("other", "acquire"),
                    1 => ("other", "release"),
                    2..=7 => ("lock", "release"),
                    8 => ("lock", "fail"),
                    9 => ("lock", "__init__"),
                    _ => ("lock", "acquire"),
                };
                commands.push(match pick {
                    6..=8 => Request::KeepAlive { session },
                    9 => Request::CloseSession { session },
                    10..=11 => Request::Cancel {
                        session,
                        request: RequestNumber(request),
                        target: RequestNumber(last.saturating_sub(next(3))),
                    },
                    _ => Request::Call {
                        session,
                        request: RequestNumber(request),
                        acked,
                        object: object.into(),
                        method: method.into(),
                        args: vec![],
                    },
                });
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for command in &commands {
                let bytes = command.encode();
                let x = one_by_one.apply(Slot(slot), Time(time), &bytes, &mut a);
                let y = pipelined.apply(Slot(slot), Time(time), &bytes, &mut b);
                assert_eq!(x, y, "slot {slot}: {command:?}");
            }
            one_by_one.settle(&mut a);
            pipelined.settle(&mut b);
            assert_eq!(a, b, "slot {slot}: {commands:?}");
            for response in &a {
                if let Reply::SessionOpened { session, .. } = response.reply {
                    sessions.push((session, 0));
                }
            }
            sessions.retain(|(s, _)| one_by_one.has_session(*s));
            pipelined.check_invariants();
            if slot % 100 == 0 {
                assert_eq!(one_by_one.snapshot().unwrap(), pipelined.snapshot().unwrap());
            }
        }
        let submitted = SUBMITTED.load(std::sync::atomic::Ordering::Relaxed) - before;
        assert!(submitted > 1_000, "only {submitted} calls were pipelined");
    }
}
