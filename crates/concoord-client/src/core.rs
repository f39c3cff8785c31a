//! The client's decisions, without IO: which replica to talk to, what to (re)send,
//! when a request, a connection or the whole cluster counts as lost, and what each
//! answer means for the caller and for the session.
//!
//! `Core` takes events stamped with `now` (a command from a `Client` handle, a
//! connection made or lost, a decoded frame, a timer) and leaves bytes to write in
//! `outgoing()` and `Effect`s for the shell (`driver`) to run: connect somewhere,
//! drop the connection, exit. It never touches a socket or reads the clock; it does
//! hold the callers' oneshot senders, and answering one is its only side effect.

use crate::options::parse_addr;
use crate::{ClientError, ClientOptions};
use concoord_object::machine::{Reply, Request};
use concoord_object::protocol::{
    self, ClientFrame, ErrorKind, ServerFrame, StatusReport, CLIENT_FRAME_MAX, REQUEST_BYTES_MAX,
};
use concoord_object::Value;
use concoord_wire::frame::{self, FRAME_HEADER_LEN};
use concoord_wire::{ReplicaId, RequestNumber, SessionId};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Most requests one client has outstanding (sent or waiting for a session); more
/// wait in the command channel. It stays below the replicas' limit of unacknowledged
/// replies per session (`machine::REPLIES_PER_SESSION_MAX`, 1024).
pub(crate) const PENDING_MAX: usize = 1_000;
/// Most request numbers between the oldest call still waiting in a session and the
/// next one: the replicas keep the reply of every request from the oldest
/// unanswered one on (`acked`), at most `machine::REPLIES_PER_SESSION_MAX` (1024),
/// and refuse more. One call parked for long would otherwise let the calls after it
/// use up that room and fail. Calls beyond it wait in the queue until the oldest
/// is answered.
const SPAN_MAX: u64 = 1_000;
/// A request refused with `Busy` is resent after this delay, doubling per refusal.
const BUSY_DELAY_MIN: Duration = Duration::from_millis(10);
const BUSY_DELAY_MAX: Duration = Duration::from_millis(500);
/// After a full round of addresses without an answer, reconnecting backs off from
/// this delay, doubling per failed attempt.
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(10);
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);
/// `close` waits at most this long (and at most `attempt_timeout`) for the cluster
/// to confirm that the session ended.
const CLOSE_WAIT_MAX: Duration = Duration::from_secs(1);
/// The longest wait the core schedules (about 30 years); longer options are
/// clamped to it.
const FOREVER: Duration = Duration::from_secs(1 << 30);
/// Most replica addresses learned from the cluster that the client keeps (besides
/// the ones it was given).
const LEARNED_ADDRS_MAX: usize = 64;
/// A call still unanswered this long before its `call_timeout` ends is cancelled
/// (a fifth of the timeout, at most this much), so that the cluster can say in
/// time whether it took the call back. If the cancel finds it not parked yet (it
/// has not been applied), another cancel follows after `CANCEL_RETRY`.
const CANCEL_RESERVE_MAX: Duration = Duration::from_millis(500);
/// A replica that has sent nothing at all for this long since a call went to it,
/// when the call reaches its cancel point, is left for another (see
/// `on_cancel_point`); a live one answers within a round trip, if only the
/// members request every connection starts with.
const SILENCE_MIN: Duration = Duration::from_millis(200);
const CANCEL_RETRY: Duration = Duration::from_millis(500);

pub(crate) type ValueWaiter = oneshot::Sender<Result<Value, ClientError>>;
pub(crate) type StatusWaiter = oneshot::Sender<Result<StatusReport, ClientError>>;
pub(crate) type SessionWaiter = oneshot::Sender<Result<SessionId, ClientError>>;

/// What a `Client` handle asks the driver to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// `timeout`, when given, replaces `call_timeout` for this call.
    Call {
        object: String,
        method: String,
        args: Vec<Value>,
        timeout: Option<Duration>,
        waiter: ValueWaiter,
    },
    Create {
        name: String,
        type_name: String,
        args: Vec<Value>,
        timeout: Option<Duration>,
        waiter: ValueWaiter,
    },
    Status {
        waiter: StatusWaiter,
    },
    /// End the session, then stop; `done` is answered (or dropped) when stopped.
    Close {
        done: oneshot::Sender<()>,
    },
}

/// What the shell must do, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Drop any connection (or attempt) and connect to this `host:port`.
    Connect(String),
    /// Drop any connection (or attempt).
    Disconnect,
    /// Write what is left in `outgoing()` if it can, then stop.
    Exit,
}

/// Why connecting (TCP connect, `Hello`, `Welcome`) failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The replica answered `Hello` with an error (and closed the connection).
    Refused { kind: ErrorKind, message: String },
    /// No connection, no answer in time, or an answer that was not `Welcome`.
    Failed(String),
    /// TLS failed: the replica's certificate, or ours, was refused, or one side
    /// speaks TLS and the other does not. Retrying elsewhere will not help.
    Tls(String),
}

/// A call waiting for a session before it can be numbered.
#[derive(Debug)]
struct Queued {
    op: Op,
    waiter: ValueWaiter,
    bound: Option<Bound>,
}

/// The time limits of one call, from its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bound {
    /// The caller has its answer by then, whatever happens.
    deadline: Instant,
    /// From then on the call is taken back (cancelled), or, never sent, not sent.
    cancel_at: Instant,
}

impl Bound {
    /// `None` for a timeout too long to reach (past what `Instant` can hold).
    fn new(now: Instant, timeout: Duration) -> Option<Bound> {
        let deadline = now.checked_add(timeout)?;
        Some(Bound { deadline, cancel_at: deadline - (timeout / 5).min(CANCEL_RESERVE_MAX) })
    }
}

#[derive(Debug)]
enum Op {
    Call { object: String, method: String, args: Vec<Value> },
    Create { name: String, type_name: String, args: Vec<Value> },
}

/// A request that has been given an id and is not answered yet.
#[derive(Debug)]
struct Pending {
    kind: Kind,
    /// The whole frame, length prefix included: a resend is these bytes, unchanged.
    frame: Vec<u8>,
    waiter: Waiter,
    attempt: Attempt,
    /// The backoff before the next resend after `Busy`.
    busy_delay: Duration,
    /// When its caller must have an answer (the end of its timeout), while it
    /// has one.
    deadline: Option<Instant>,
    /// When to send the next `Cancel` of this call (first the bound's `cancel_at`,
    /// then, while the cluster finds nothing to take back yet, `CANCEL_RETRY`s).
    cancel_at: Option<Instant>,
    /// The call is being cancelled: it ends with `Timeout` if the cancel takes it
    /// back, with its own result if it completed first, and with `MaybeExecuted`
    /// if neither is known by its deadline (then the cancel goes on without a
    /// caller, so that a parked call is not granted later to one who left).
    cancelling: bool,
    /// Its bytes were queued for a connection at least once, so a replica may have
    /// ordered it. A call that never was certainly had no effect.
    maybe_sent: bool,
}

impl Pending {
    /// Queues the frame (again) on the current connection.
    fn send(&mut self, out: &mut Vec<u8>, now: Instant) {
        out.extend_from_slice(&self.frame);
        self.attempt = Attempt::Sent { at: now };
        self.maybe_sent = true;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    OpenSession {
        nonce: u64,
    },
    KeepAlive {
        session: SessionId,
    },
    CloseSession,
    /// The client's own `Status` request, to learn the cluster's members.
    Members,
    /// A `Call` or a `Create`: both are numbered in a session and exactly-once.
    Call {
        session: SessionId,
        request: RequestNumber,
    },
    /// A `Cancel` of the call numbered `target`, itself numbered `request`.
    Cancel {
        session: SessionId,
        request: RequestNumber,
        target: RequestNumber,
    },
    Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// Not on the current connection (there is none yet): sent when it is up.
    Unsent,
    /// Sent on the current connection at `at`, no answer yet.
    Sent { at: Instant },
    /// The replica answered `Parked`: the result comes when the call is woken.
    Parked,
    /// The replica was busy: resend at `until`.
    Busy { until: Instant },
}

#[derive(Debug)]
enum Waiter {
    Value(ValueWaiter),
    Status(StatusWaiter),
    /// `Client::connect` waits for the first session; later sessions have no waiter.
    Session(Option<SessionWaiter>),
    Close(oneshot::Sender<()>),
    None,
}

impl Waiter {
    fn fail(self, error: ClientError) {
        // A caller that stopped waiting (dropped its future) is no one's concern.
        match self {
            Waiter::Value(w) => drop(w.send(Err(error))),
            Waiter::Status(w) => drop(w.send(Err(error))),
            Waiter::Session(Some(w)) => drop(w.send(Err(error))),
            Waiter::Close(w) => drop(w.send(())),
            Waiter::Session(None) | Waiter::None => {}
        }
    }

    fn is_abandoned(&self) -> bool {
        match self {
            Waiter::Value(w) => w.is_closed(),
            Waiter::Status(w) => w.is_closed(),
            Waiter::Session(_) | Waiter::Close(_) | Waiter::None => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Session {
    None,
    Opening,
    Open { id: SessionId, next: RequestNumber },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Link {
    /// No connection, and none needed (nothing outstanding).
    Idle,
    /// No connection; the next attempt goes to `target` at `at`.
    Waiting {
        target: String,
        at: Instant,
    },
    /// The shell is connecting to `target`.
    Connecting {
        target: String,
    },
    Up {
        target: String,
        replica: ReplicaId,
    },
}

/// The timing options the core uses.
#[derive(Clone, Copy, Debug)]
struct Timing {
    lease_ms: u64,
    keepalive_every: Duration,
    attempt_timeout: Duration,
    /// A request unanswered, on a connection silent for this long, makes the
    /// client probe the replica (`liveness_timeout / 4`).
    probe_after: Duration,
    /// A probe unanswered (and the connection silent) this long: leave the replica.
    liveness_timeout: Duration,
    call_timeout: Option<Duration>,
    give_up_after: Duration,
    close_wait: Duration,
}

impl Timing {
    /// The limits of something asked at `now`, with `timeout` instead of
    /// `call_timeout` when given.
    fn bound(&self, now: Instant, timeout: Option<Duration>) -> Option<Bound> {
        timeout.or(self.call_timeout).and_then(|t| Bound::new(now, t))
    }
}

#[derive(Debug)]
pub(crate) struct Core {
    /// The addresses the client was given, then those of the cluster's members as
    /// a replica last described them (`learn_members`), and leaders named in
    /// redirects: where to fail over to.
    addrs: Vec<String>,
    /// The addresses the client was given; always kept in `addrs`.
    given: Vec<String>,
    /// The cluster this client talks to: pinned from the first `Status` that names
    /// one, then named in every `Hello`.
    cluster: Option<String>,
    timing: Timing,
    link: Link,
    /// The index (modulo the list) of the address tried after the next failure.
    next_addr: usize,
    /// Connection attempts since a replica last answered a request.
    failures: u32,
    /// When the current run of failures began; `None` while replicas answer.
    outage_since: Option<Instant>,
    /// When the current connection last brought anything (its `Welcome`, then
    /// any frame).
    heard_at: Option<Instant>,
    /// When the current connection last brought anything but the answer to a
    /// members request or probe: a replica that answers those and nothing else
    /// (it cannot order requests) is as good as silent to a call near its end.
    replied_at: Option<Instant>,
    last_error: String,
    session: Session,
    /// `Client::connect`'s waiter, until the first session opens.
    ready: Option<SessionWaiter>,
    nonce_seed: u64,
    pending: BTreeMap<u64, Pending>,
    queued: VecDeque<Queued>,
    next_id: u64,
    keepalive_at: Option<Instant>,
    /// Set for good by an error no retry can fix (bad token, protocol version).
    fatal: Option<ClientError>,
    /// `close` was asked for; it completes by this time at the latest.
    closing: Option<Instant>,
    exited: bool,
    out: Vec<u8>,
    effects: Vec<Effect>,
}

impl Core {
    /// A core that starts opening its session at once (through `addrs[0]` first);
    /// `ready` learns the session, or why there is none.
    pub(crate) fn new(
        addrs: Vec<String>,
        opts: &ClientOptions,
        now: Instant,
        nonce_seed: u64,
        ready: SessionWaiter,
    ) -> Core {
        assert!(!addrs.is_empty(), "parse_addrs never returns an empty list");
        let lease_ms = u64::try_from(opts.lease.as_millis()).unwrap_or(u64::MAX);
        // Durations are added to instants: anything longer than `FOREVER` is as good
        // as forever, and must not overflow.
        let timing = Timing {
            lease_ms,
            keepalive_every: (opts.lease.min(FOREVER) / 3).max(Duration::from_millis(1)),
            attempt_timeout: opts.attempt_timeout.min(FOREVER),
            probe_after: (opts.liveness_timeout.min(FOREVER) / 4).max(Duration::from_millis(1)),
            liveness_timeout: opts.liveness_timeout.min(FOREVER).max(Duration::from_millis(1)),
            call_timeout: opts.call_timeout,
            give_up_after: opts.give_up_after.min(FOREVER),
            close_wait: opts.attempt_timeout.min(CLOSE_WAIT_MAX),
        };
        let mut core = Core {
            given: addrs.clone(),
            cluster: opts.cluster.clone(),
            addrs,
            timing,
            link: Link::Idle,
            next_addr: 0,
            failures: 0,
            outage_since: None,
            heard_at: None,
            replied_at: None,
            last_error: "no attempt yet".to_string(),
            session: Session::None,
            ready: Some(ready),
            nonce_seed,
            pending: BTreeMap::new(),
            queued: VecDeque::new(),
            next_id: 1,
            keepalive_at: None,
            fatal: None,
            closing: None,
            exited: false,
            out: Vec::new(),
            effects: Vec::new(),
        };
        // Opening the first session is bounded like a call: `connect` fails with
        // `Timeout` when no session opened in time.
        let bound = core.timing.bound(now, None);
        core.start_session(now, bound.map(|b| b.deadline));
        core
    }

    /// The session calls run in, once one is open.
    pub(crate) fn session(&self) -> Option<SessionId> {
        match self.session {
            Session::Open { id, .. } => Some(id),
            Session::None | Session::Opening => None,
        }
    }

    /// Whether the shell may hand over another command now (a bounded pipeline).
    pub(crate) fn accepts_commands(&self) -> bool {
        !self.exited && self.pending.len() + self.queued.len() < PENDING_MAX
    }

    /// Bytes to write on the current connection; the shell removes what it wrote.
    pub(crate) fn outgoing(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    pub(crate) fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Whether effects are waiting: once the core dropped a connection, the shell
    /// stops feeding it that connection's frames.
    pub(crate) fn has_effects(&self) -> bool {
        !self.effects.is_empty()
    }

    /// The earliest time `on_tick` has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut deadline: Option<Instant> = None;
        let mut consider = |t: Instant| deadline = Some(deadline.map_or(t, |d| d.min(t)));
        if self.exited {
            return None;
        }
        if let Some(at) = self.closing {
            consider(at);
        }
        if let Some(since) = self.outage_since.filter(|_| self.has_work()) {
            consider(since + self.timing.give_up_after);
        }
        let up = matches!(self.link, Link::Up { .. });
        for p in self.pending.values() {
            for at in [p.deadline, p.cancel_at].into_iter().flatten() {
                consider(at);
            }
            match p.attempt {
                Attempt::Busy { until } => consider(until),
                Attempt::Sent { at } if up => consider(at + self.timing.attempt_timeout),
                Attempt::Sent { .. } | Attempt::Unsent | Attempt::Parked => {}
            }
        }
        for q in &self.queued {
            if let Some(bound) = q.bound {
                consider(bound.cancel_at);
            }
        }
        if let Link::Waiting { at, .. } = self.link {
            consider(at);
        }
        if let Some(at) = self.liveness_check_at() {
            consider(at);
        }
        if let (Some(at), Session::Open { .. }) = (self.keepalive_at, self.session) {
            consider(at);
        }
        deadline
    }

    pub(crate) fn on_command(&mut self, now: Instant, command: Command) {
        let refusal = if let Some(fatal) = &self.fatal {
            Some(fatal.clone())
        } else if self.closing.is_some() || self.exited {
            Some(ClientError::Unavailable("the client is closing".to_string()))
        } else {
            None
        };
        if let Some(error) = refusal {
            match command {
                Command::Call { waiter, .. } | Command::Create { waiter, .. } => {
                    Waiter::Value(waiter).fail(error)
                }
                Command::Status { waiter } => Waiter::Status(waiter).fail(error),
                Command::Close { done } => {
                    Waiter::Close(done).fail(error);
                    self.finish_close();
                }
            }
            return;
        }
        let (op, waiter, timeout) = match command {
            Command::Call { object, method, args, timeout, waiter } => {
                (Op::Call { object, method, args }, waiter, timeout)
            }
            Command::Create { name, type_name, args, timeout, waiter } => {
                (Op::Create { name, type_name, args }, waiter, timeout)
            }
            Command::Status { waiter } => return self.on_status(now, waiter),
            Command::Close { done } => return self.on_close(now, done),
        };
        let queued = Queued { op, waiter, bound: self.timing.bound(now, timeout) };
        match self.session {
            Session::Open { .. } if self.queued.is_empty() => match self.room() {
                Some(acked) => self.issue(now, queued, acked),
                None => self.queued.push_back(queued),
            },
            Session::Open { .. } | Session::Opening => self.queued.push_back(queued),
            Session::None => {
                self.queued.push_back(queued);
                self.start_session(now, None);
            }
        }
    }

    fn on_status(&mut self, now: Instant, waiter: StatusWaiter) {
        let id = self.take_id();
        match framed(&ClientFrame::Status { id }) {
            Ok(frame) => {
                let deadline = self.timing.bound(now, None).map(|b| b.deadline);
                self.add_pending(now, id, Kind::Status, frame, Waiter::Status(waiter), deadline)
            }
            Err(e) => Waiter::Status(waiter).fail(e),
        }
    }

    fn on_close(&mut self, now: Instant, done: oneshot::Sender<()>) {
        self.closing = Some(now + self.timing.close_wait);
        let Session::Open { id: session, .. } = self.session else {
            Waiter::Close(done).fail(closed());
            return self.finish_close();
        };
        let id = self.take_id();
        let request = Request::CloseSession { session };
        match framed(&ClientFrame::Request { id, request }) {
            Ok(frame) => {
                self.add_pending(now, id, Kind::CloseSession, frame, Waiter::Close(done), None)
            }
            Err(_) => {
                Waiter::Close(done).fail(closed());
                self.finish_close();
            }
        }
    }

    /// Every `Client` handle is gone: end the session without waiting (its lease
    /// would end it anyway) and stop.
    pub(crate) fn on_handles_dropped(&mut self, _now: Instant) {
        if let (Session::Open { id: session, .. }, Link::Up { .. }) = (self.session, &self.link) {
            let id = self.take_id();
            if let Ok(frame) =
                framed(&ClientFrame::Request { id, request: Request::CloseSession { session } })
            {
                self.out.extend_from_slice(&frame);
            }
        }
        self.fail_all(&closed());
        self.exited = true;
        self.effects.push(Effect::Exit);
    }

    pub(crate) fn on_connected(
        &mut self,
        now: Instant,
        replica: ReplicaId,
        leader: Option<String>,
    ) {
        let Link::Connecting { target } = &self.link else { return };
        tracing::debug!(%target, %replica, ?leader, resend = self.pending.len(), "connected");
        self.link = Link::Up { target: target.clone(), replica };
        self.heard_at = Some(now);
        self.replied_at = Some(now);
        if let Some(leader) = leader {
            self.learn_addr(&leader);
        }
        // First, ask who the members are, so that a client given one address can
        // fail over to the others.
        self.ask_members(now);
        // Unfinished requests go again, unchanged and in order: the replicas answer
        // a retried call from their session table instead of running it twice.
        for p in self.pending.values_mut().filter(|p| p.kind != Kind::Members) {
            p.send(&mut self.out, now);
        }
    }

    pub(crate) fn on_connect_failed(&mut self, now: Instant, error: ConnectError) {
        let Link::Connecting { target } = &self.link else { return };
        let target = target.clone();
        match error {
            ConnectError::Refused { kind: ErrorKind::BadToken, .. } => {
                self.fatal_error(ClientError::BadToken)
            }
            ConnectError::Refused { kind: ErrorKind::TlsRequired, message } => {
                self.fatal_error(ClientError::Tls(format!("{target}: {message}")))
            }
            ConnectError::Refused { kind: ErrorKind::BadVersion, message } => {
                self.fatal_error(ClientError::Protocol(format!(
                    "{target} speaks another protocol version ({message}): use a client of \
                     the replicas' version"
                )))
            }
            ConnectError::Refused { kind, message } => self.fail_over(
                now,
                None,
                format!("{target} refused the connection: {kind}: {message}"),
            ),
            ConnectError::Tls(why) => self.fatal_error(ClientError::Tls(why)),
            ConnectError::Failed(why) => self.fail_over(now, None, why),
        }
    }

    /// The connection broke (closed, reset, a write failed, or it carried bytes
    /// that are not a frame of ours).
    pub(crate) fn on_disconnected(&mut self, now: Instant, why: String) {
        if matches!(self.link, Link::Up { .. }) {
            self.fail_over(now, None, why);
        }
    }

    pub(crate) fn on_frame(&mut self, now: Instant, frame: ServerFrame) {
        self.on_frame_inner(now, frame);
        if !self.queued.is_empty() {
            self.drain_queued(now);
        }
    }

    fn on_frame_inner(&mut self, now: Instant, frame: ServerFrame) {
        let Link::Up { target, .. } = &self.link else { return };
        self.heard_at = Some(now);
        let probe_answer = matches!(frame, ServerFrame::Status { id, .. }
            if self.pending.get(&id).is_some_and(|p| p.kind == Kind::Members));
        if !probe_answer {
            self.replied_at = Some(now);
        }
        match frame {
            ServerFrame::Reply { id, reply, .. } => {
                self.progress();
                self.on_reply(now, id, reply);
            }
            ServerFrame::Status { id, status } => {
                let target = target.clone();
                self.progress();
                if self.pending.get(&id).is_some_and(|p| p.kind == Kind::Members) {
                    self.pending.remove(&id);
                    if let Some(why) = self.check_cluster(&target, &status) {
                        return self.fail_over(now, None, why);
                    }
                    self.learn_members(&status);
                } else if self.pending.get(&id).is_some_and(|p| p.kind == Kind::Status) {
                    if let Some(Pending { waiter: Waiter::Status(w), .. }) =
                        self.pending.remove(&id)
                    {
                        let _ = w.send(Ok(*status));
                    }
                }
            }
            ServerFrame::Redirect { leader, .. } => {
                // The first redirect moves the whole pipeline; the rest of this
                // connection's frames are not read.
                let why = format!(
                    "{target} does not lead (leader: {})",
                    leader.as_deref().unwrap_or("unknown")
                );
                let leader = leader.filter(|l| l != target);
                if let Some(leader) = &leader {
                    self.learn_addr(leader);
                }
                self.fail_over(now, leader, why);
            }
            ServerFrame::Error { id, kind, message } => {
                let target = target.clone();
                self.on_error(now, &target, id, kind, message)
            }
            ServerFrame::Welcome { .. } => {
                tracing::debug!(%target, "ignoring a second Welcome");
            }
        }
    }

    fn on_error(
        &mut self,
        now: Instant,
        target: &str,
        id: Option<u64>,
        kind: ErrorKind,
        message: String,
    ) {
        let outstanding = id.filter(|id| self.pending.contains_key(id));
        match (kind, outstanding) {
            (ErrorKind::BadToken, _) => self.fatal_error(ClientError::BadToken),
            (ErrorKind::TlsRequired, _) => {
                self.fatal_error(ClientError::Tls(format!("{target}: {message}")))
            }
            (ErrorKind::BadVersion, _) => self.fatal_error(ClientError::Protocol(format!(
                "{target} speaks another protocol version ({message})"
            ))),
            (ErrorKind::Busy, Some(id)) => {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.attempt = Attempt::Busy { until: now + p.busy_delay };
                    p.busy_delay = (p.busy_delay * 2).min(BUSY_DELAY_MAX);
                }
            }
            (ErrorKind::RequestTooLarge | ErrorKind::BadFrame, Some(id)) => {
                let why = format!("{target} refused a request: {kind}: {message}");
                self.drop_pending(id, ClientError::Protocol(why));
            }
            // About a request that is finished already: nothing to do.
            (ErrorKind::Busy | ErrorKind::RequestTooLarge | ErrorKind::BadFrame, None)
                if id.is_some() => {}
            // Not ready, or the connection is unusable: try another replica.
            _ => self.fail_over(now, None, format!("{target}: {kind}: {message}")),
        }
    }

    fn on_reply(&mut self, now: Instant, id: u64, reply: Reply) {
        let Some(p) = self.pending.get_mut(&id) else {
            // A call that timed out, or a duplicate answer: nobody waits for it.
            return;
        };
        if let (Kind::Call { .. }, Reply::Parked) = (p.kind, &reply) {
            p.attempt = Attempt::Parked;
            return;
        }
        let Some(p) = self.pending.remove(&id) else { return };
        let reply = match reply {
            // The cancel took the call back: to its caller, that is its timeout.
            Reply::Error(e) if p.cancelling && e.kind == "CancelledError" => {
                p.waiter.fail(ClientError::Timeout);
                return;
            }
            reply => reply,
        };
        match (p.kind, p.waiter, reply) {
            (Kind::OpenSession { nonce }, waiter, Reply::SessionOpened { nonce: n, session })
                if n == nonce =>
            {
                self.on_session_opened(now, session, waiter)
            }
            (
                Kind::KeepAlive { session },
                _,
                Reply::Value(Value::Bool(false)) | Reply::SessionUnknown,
            ) => self.on_session_lost(now, session),
            (Kind::KeepAlive { .. }, _, Reply::Value(_)) => {}
            (Kind::CloseSession, waiter, _) => {
                waiter.fail(closed());
                self.finish_close();
            }
            (Kind::Call { .. }, Waiter::Value(w), Reply::Value(v)) => drop(w.send(Ok(v))),
            // Its caller was told `MaybeExecuted`; the cancel came too late.
            (Kind::Call { session, request }, Waiter::None, Reply::Value(_) | Reply::Error(_)) => {
                tracing::warn!(
                    ?session,
                    ?request,
                    "a call that timed out (maybe executed) completed after all: its effect \
                     stands, and whatever it acquired is held by this session"
                )
            }
            // The cluster says this request was acknowledged: a bug of this client
            // (it numbered or acknowledged wrongly), not the method's error.
            (Kind::Call { .. }, Waiter::Value(w), Reply::Error(e))
                if e.kind == concoord_object::machine::ACKNOWLEDGED_ERROR =>
            {
                drop(w.send(Err(ClientError::Protocol(e.message))))
            }
            (Kind::Call { .. }, Waiter::Value(w), Reply::Error(e)) => {
                drop(w.send(Err(ClientError::Raised(e))))
            }
            (
                Kind::Call { session, .. } | Kind::Cancel { session, .. },
                waiter,
                Reply::SessionUnknown,
            ) => {
                waiter.fail(ClientError::SessionExpired);
                self.on_session_lost(now, session);
            }
            (Kind::Cancel { session, target, .. }, _, Reply::Value(Value::Bool(taken))) => {
                if !taken {
                    // Not parked (yet): if the call still waits, cancel again soon.
                    let retry = now + CANCEL_RETRY;
                    if let Some(p) = self
                        .pending
                        .values_mut()
                        .find(|p| p.cancelling && p.kind == Kind::Call { session, request: target })
                    {
                        p.cancel_at = Some(retry);
                    }
                }
            }
            (kind, waiter, reply) => {
                let error =
                    ClientError::Protocol(format!("unexpected answer {reply:?} to {kind:?}"));
                waiter.fail(error);
                if matches!(kind, Kind::OpenSession { .. }) {
                    self.session = Session::None;
                }
            }
        }
    }

    fn on_session_opened(&mut self, now: Instant, session: SessionId, waiter: Waiter) {
        assert_eq!(self.session, Session::Opening, "one OpenSession at a time");
        tracing::debug!(?session, "session opened");
        self.session = Session::Open { id: session, next: RequestNumber(1) };
        self.keepalive_at = Some(now + self.timing.keepalive_every);
        if let Waiter::Session(Some(w)) = waiter {
            let _ = w.send(Ok(session));
        }
        self.drain_queued(now);
    }

    /// The acknowledgement watermark of `session`: the oldest call (or cancel) still
    /// waiting, or `next` when none is.
    fn acked(&self, session: SessionId, next: RequestNumber) -> RequestNumber {
        self.pending
            .values()
            .filter_map(|p| match p.kind {
                Kind::Call { session: s, request } | Kind::Cancel { session: s, request, .. }
                    if s == session =>
                {
                    Some(request)
                }
                _ => None,
            })
            .min()
            .unwrap_or(next)
    }

    /// The `acked` of the next call, if the session is open and that call would
    /// stand less than `SPAN_MAX` numbers past the oldest one still waiting.
    fn room(&self) -> Option<RequestNumber> {
        let Session::Open { id, next } = self.session else { return None };
        let acked = self.acked(id, next);
        (next.0 - acked.0 < SPAN_MAX).then_some(acked)
    }

    /// Issues queued calls, in order, while the session is open and has room.
    fn drain_queued(&mut self, now: Instant) {
        while let Some(acked) = self.room() {
            let Some(queued) = self.queued.pop_front() else { break };
            if !queued.waiter.is_closed() {
                self.issue(now, queued, acked);
            }
        }
    }

    /// The cluster no longer knows `session`: every call still outstanding in it is
    /// lost (a parked one would never be woken), and later calls need a new session.
    fn on_session_lost(&mut self, now: Instant, session: SessionId) {
        if !matches!(self.session, Session::Open { id, .. } if id == session) {
            return;
        }
        tracing::warn!(?session, "session expired; opening a new one");
        self.session = Session::None;
        self.keepalive_at = None;
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| match p.kind {
                Kind::Call { session: s, .. }
                | Kind::Cancel { session: s, .. }
                | Kind::KeepAlive { session: s } => s == session,
                Kind::OpenSession { .. } | Kind::CloseSession | Kind::Status | Kind::Members => {
                    false
                }
            })
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.drop_pending(id, ClientError::SessionExpired);
        }
        if self.closing.is_some() {
            return self.finish_close();
        }
        self.start_session(now, None);
    }

    pub(crate) fn on_tick(&mut self, now: Instant) {
        self.on_tick_inner(now);
        if !self.queued.is_empty() && !self.exited {
            self.drain_queued(now);
        }
    }

    fn on_tick_inner(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        if self.closing.is_some_and(|at| now >= at) {
            return self.finish_close();
        }
        if self.outage_since.is_some_and(|since| now >= since + self.timing.give_up_after)
            && self.has_work()
        {
            self.give_up();
        }
        let due = |at: Option<Instant>| at.is_some_and(|at| now >= at);
        let cancel: Vec<u64> =
            self.pending.iter().filter(|(_, p)| due(p.cancel_at)).map(|(id, _)| *id).collect();
        for id in cancel {
            self.on_cancel_point(now, id);
        }
        let expired: Vec<u64> =
            self.pending.iter().filter(|(_, p)| due(p.deadline)).map(|(id, _)| *id).collect();
        for id in expired {
            self.on_deadline(now, id);
        }
        // Never sent, and too late to be taken back if it were: it had no effect.
        for q in extract(&mut self.queued, |q| due(q.bound.map(|b| b.cancel_at))) {
            let _ = q.waiter.send(Err(ClientError::Timeout));
        }
        let up = matches!(self.link, Link::Up { .. });
        for p in self.pending.values_mut() {
            if matches!(p.attempt, Attempt::Busy { until } if now >= until) {
                p.attempt = Attempt::Unsent;
                if up {
                    p.send(&mut self.out, now);
                }
            }
        }
        if let Link::Up { target, .. } = &self.link {
            let attempt_timeout = self.timing.attempt_timeout;
            let late = self
                .pending
                .values()
                .any(|p| matches!(p.attempt, Attempt::Sent { at } if now >= at + attempt_timeout));
            if late {
                let why = format!("{target} did not answer within {attempt_timeout:?}");
                self.fail_over(now, None, why);
            }
        }
        self.check_liveness(now);
        if let Link::Waiting { target, at } = &self.link {
            if now >= *at {
                let target = target.clone();
                if self.pending.is_empty() {
                    self.link = Link::Idle;
                } else {
                    self.connect(target);
                }
            }
        }
        if let (Some(at), Session::Open { id: session, .. }) = (self.keepalive_at, self.session) {
            if now >= at {
                self.keepalive_at = Some(now + self.timing.keepalive_every);
                self.on_keepalive(now, session);
            }
        }
    }

    fn on_keepalive(&mut self, now: Instant, session: SessionId) {
        // Callers that stopped waiting (dropped futures) would hold `acked` back
        // forever: forget them. Their requests may still run.
        let abandoned: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.waiter.is_abandoned())
            .map(|(id, _)| *id)
            .collect();
        for id in abandoned {
            self.pending.remove(&id);
        }
        // Members come and go: refresh the list of where to fail over to.
        self.ask_members(now);
        if self.pending.values().any(|p| matches!(p.kind, Kind::KeepAlive { .. })) {
            return;
        }
        let id = self.take_id();
        if let Ok(frame) =
            framed(&ClientFrame::Request { id, request: Request::KeepAlive { session } })
        {
            self.add_pending(now, id, Kind::KeepAlive { session }, frame, Waiter::None, None);
        }
    }

    /// Numbers a call in the open session and sends it.
    /// Numbers and sends a call; `acked` is `room()`'s answer for it.
    fn issue(&mut self, now: Instant, queued: Queued, acked: RequestNumber) {
        let Session::Open { id: session, next } = self.session else {
            unreachable!("calls are issued only in an open session");
        };
        let Queued { op, waiter, bound } = queued;
        if bound.is_some_and(|b| now >= b.cancel_at) {
            // Too late to send it and still be able to take it back in time.
            let _ = waiter.send(Err(ClientError::Timeout));
            return;
        }
        let request = match op {
            Op::Call { object, method, args } => {
                Request::Call { session, request: next, acked, object, method, args }
            }
            Op::Create { name, type_name, args } => {
                Request::Create { session, request: next, name, type_name, args, acked }
            }
        };
        let id = self.take_id();
        let frame = match framed_request(id, request) {
            Ok(frame) => frame,
            Err(e) => {
                let _ = waiter.send(Err(e));
                return;
            }
        };
        self.session = Session::Open { id: session, next: RequestNumber(next.0 + 1) };
        let kind = Kind::Call { session, request: next };
        self.add_pending(now, id, kind, frame, Waiter::Value(waiter), bound.map(|b| b.deadline));
        if let (Some(bound), Some(p)) = (bound, self.pending.get_mut(&id)) {
            p.cancel_at = Some(bound.cancel_at);
        }
    }

    /// Opens a session, unless one is open or opening; `deadline` bounds the
    /// attempt (for `connect`; later sessions are reopened for as long as it takes).
    fn start_session(&mut self, now: Instant, deadline: Option<Instant>) {
        if self.session != Session::None {
            return;
        }
        let id = self.take_id();
        let nonce = self.nonce_seed.wrapping_add(id);
        let request = Request::OpenSession { nonce, lease_ms: self.timing.lease_ms };
        let waiter = Waiter::Session(self.ready.take());
        match framed(&ClientFrame::Request { id, request }) {
            Ok(frame) => {
                self.session = Session::Opening;
                self.add_pending(now, id, Kind::OpenSession { nonce }, frame, waiter, deadline);
            }
            Err(e) => waiter.fail(e),
        }
    }

    fn add_pending(
        &mut self,
        now: Instant,
        id: u64,
        kind: Kind,
        frame: Vec<u8>,
        waiter: Waiter,
        deadline: Option<Instant>,
    ) {
        let mut pending = Pending {
            kind,
            frame,
            waiter,
            attempt: Attempt::Unsent,
            busy_delay: BUSY_DELAY_MIN,
            deadline,
            cancel_at: None,
            cancelling: false,
            maybe_sent: false,
        };
        if matches!(self.link, Link::Up { .. }) {
            pending.send(&mut self.out, now);
        }
        let previous = self.pending.insert(id, pending);
        assert!(previous.is_none(), "request ids are never reused");
        self.ensure_link(now);
    }

    /// A call is near the end of its timeout (or a cancel found nothing to take
    /// back yet): ask the cluster to take it back, through the log, so the cancel
    /// is ordered against whatever would wake it; the cluster's answers say which
    /// came first. A call never sent needs no cancel: it ends now, with no effect.
    fn on_cancel_point(&mut self, now: Instant, id: u64) {
        let Some(p) = self.pending.get_mut(&id) else { return };
        p.cancel_at = None;
        let Kind::Call { session, request: target } = p.kind else { return };
        if !p.maybe_sent {
            return self.drop_pending(id, ClientError::Timeout);
        }
        // Nothing at all came back on this connection since the call went out (a
        // paused or cut-off replica): the call and its cancel go to another replica
        // now, not after `attempt_timeout`, which may be longer than the call has.
        let silent = match p.attempt {
            Attempt::Sent { at } => {
                now >= at + SILENCE_MIN && self.replied_at.is_none_or(|heard| heard <= at)
            }
            Attempt::Unsent | Attempt::Parked | Attempt::Busy { .. } => false,
        };
        let Session::Open { id: open, next } = self.session else { return };
        if open != session {
            return;
        }
        p.cancelling = true;
        let cancel_id = self.take_id();
        let request = Request::Cancel { session, request: next, target };
        match framed(&ClientFrame::Request { id: cancel_id, request }) {
            Ok(frame) => {
                self.session = Session::Open { id: session, next: RequestNumber(next.0 + 1) };
                let kind = Kind::Cancel { session, request: next, target };
                self.add_pending(now, cancel_id, kind, frame, Waiter::None, None);
            }
            Err(e) => return self.drop_pending(id, e),
        }
        if let (true, Link::Up { target, .. }) = (silent, &self.link) {
            let why = format!("{target} answered nothing since a call that is near its timeout");
            self.fail_over(now, None, why);
        }
    }

    /// The end of a call's timeout (or of `connect`'s, or a status request's):
    /// its caller gets an answer now. A call that may have reached a replica, and
    /// that the cluster neither answered nor took back, is `MaybeExecuted`, and is
    /// still cancelled in the background.
    fn on_deadline(&mut self, now: Instant, id: u64) {
        let Some(p) = self.pending.get_mut(&id) else { return };
        p.deadline = None;
        if !matches!(p.kind, Kind::Call { .. }) || !p.maybe_sent {
            return self.drop_pending(id, ClientError::Timeout);
        }
        tracing::info!(
            kind = ?p.kind,
            "a call timed out with its outcome unknown; cancelling it in the background"
        );
        std::mem::replace(&mut p.waiter, Waiter::None).fail(ClientError::MaybeExecuted);
        if !p.cancelling && p.cancel_at.is_none() {
            self.on_cancel_point(now, id);
        }
    }

    /// Removes a request and tells its caller why it failed.
    fn drop_pending(&mut self, id: u64, error: ClientError) {
        let Some(p) = self.pending.remove(&id) else { return };
        if matches!(p.kind, Kind::OpenSession { .. }) && self.session == Session::Opening {
            self.session = Session::None;
        }
        p.waiter.fail(error);
    }

    fn ensure_link(&mut self, now: Instant) {
        if self.link == Link::Idle && !self.pending.is_empty() && self.fatal.is_none() {
            self.outage_since.get_or_insert(now);
            let target = self.next_target();
            self.connect(target);
        }
    }

    fn connect(&mut self, target: String) {
        self.link = Link::Connecting { target: target.clone() };
        self.effects.push(Effect::Connect(target));
    }

    fn next_target(&mut self) -> String {
        let target = self.addrs[self.next_addr % self.addrs.len()].clone();
        self.next_addr = self.next_addr.wrapping_add(1);
        target
    }

    /// Leaves the current replica (broken, silent, not the leader, not ready) for
    /// `redirect`, or the next address; everything unfinished is resent there.
    fn fail_over(&mut self, now: Instant, redirect: Option<String>, why: String) {
        tracing::info!(%why, ?redirect, "failing over");
        self.last_error = why;
        self.out.clear();
        self.effects.push(Effect::Disconnect);
        // The next connection asks again.
        self.pending.retain(|_, p| p.kind != Kind::Members);
        for p in self.pending.values_mut() {
            if matches!(p.attempt, Attempt::Sent { .. }) {
                p.attempt = Attempt::Unsent;
            }
        }
        self.failures = self.failures.saturating_add(1);
        if self.pending.is_empty() {
            // Nobody waits: reconnect when someone does, and measure any outage
            // from then.
            self.link = Link::Idle;
            self.outage_since = None;
            return;
        }
        let since = *self.outage_since.get_or_insert(now);
        if now >= since + self.timing.give_up_after {
            return self.give_up();
        }
        let target = match redirect {
            Some(leader) => leader,
            None => self.next_target(),
        };
        let delay = reconnect_delay(self.failures, self.addrs.len());
        if delay.is_zero() {
            self.connect(target);
        } else {
            self.link = Link::Waiting { target, at: now + delay };
        }
    }

    /// When `check_liveness` next has something to do, if ever: the probe's
    /// deadline while one is out, else the moment a request that has had no answer
    /// on a silent connection calls for a probe.
    fn liveness_check_at(&self) -> Option<Instant> {
        if !matches!(self.link, Link::Up { .. }) {
            return None;
        }
        let heard = self.heard_at?;
        let probe = self.pending.values().find(|p| p.kind == Kind::Members);
        if let Some(probe) = probe {
            return match probe.attempt {
                Attempt::Sent { at } => Some(at.max(heard) + self.timing.liveness_timeout),
                Attempt::Unsent | Attempt::Parked | Attempt::Busy { .. } => None,
            };
        }
        let oldest = self
            .pending
            .values()
            .filter_map(|p| match p.attempt {
                Attempt::Sent { at } => Some(at),
                Attempt::Unsent | Attempt::Parked | Attempt::Busy { .. } => None,
            })
            .min()?;
        Some(oldest.max(heard) + self.timing.probe_after)
    }

    /// Leaves a replica that has gone quiet (paused, cut off, dead without a
    /// reset) well before `attempt_timeout`: a request unanswered on a connection
    /// that carried nothing for `probe_after` is followed by a `Status` probe,
    /// which any live replica answers at once; no answer to it (and nothing else)
    /// within `liveness_timeout`, and the client fails over.
    fn check_liveness(&mut self, now: Instant) {
        let Some(at) = self.liveness_check_at() else { return };
        if now < at {
            return;
        }
        let Link::Up { target, .. } = &self.link else { return };
        if self.pending.values().any(|p| p.kind == Kind::Members) {
            let why = format!(
                "{target} answered neither a request nor a probe for {:?}",
                self.timing.liveness_timeout
            );
            self.fail_over(now, None, why);
        } else {
            self.ask_members(now);
        }
    }

    /// Asks the connected replica for its status (members and leader), unless a
    /// request for it is outstanding already. Any replica answers `Status`, in
    /// every version of the protocol.
    fn ask_members(&mut self, now: Instant) {
        if !matches!(self.link, Link::Up { .. })
            || self.pending.values().any(|p| p.kind == Kind::Members)
        {
            return;
        }
        let id = self.take_id();
        if let Ok(frame) = framed(&ClientFrame::Status { id }) {
            self.add_pending(now, id, Kind::Members, frame, Waiter::None, None);
        }
    }

    /// Takes the members a replica described as the addresses to fail over to,
    /// after the given ones. Addresses that do not parse are skipped: they come
    /// from the network. A replica that knows no members (it is joining) changes
    /// nothing.
    /// Pins the cluster the first replica that reports one belongs to; from then on
    /// every `Hello` names it (a replica of another cluster refuses the connection),
    /// and a replica that reports another cluster is left for the next. A process
    /// founded on an old member's address must never answer this client's calls.
    fn check_cluster(&mut self, target: &str, status: &StatusReport) -> Option<String> {
        let theirs = status.cluster.as_ref()?;
        match &self.cluster {
            None => {
                self.cluster = Some(theirs.clone());
                None
            }
            Some(mine) if mine != theirs => {
                Some(format!("{target} belongs to cluster {theirs}, not {mine}"))
            }
            Some(_) => None,
        }
    }

    /// The cluster this client talks to, once a replica has reported it.
    pub(crate) fn cluster(&self) -> Option<String> {
        self.cluster.clone()
    }

    fn learn_members(&mut self, status: &StatusReport) {
        let mut learned: Vec<String> = Vec::new();
        let described = status.members.iter().map(|m| &m.addr).chain(status.leader.as_ref());
        for addr in described {
            match parse_addr(addr) {
                Ok(addr) if !learned.contains(&addr) && !self.given.contains(&addr) => {
                    learned.push(addr)
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(%e, "ignoring a member address"),
            }
            if learned.len() >= LEARNED_ADDRS_MAX {
                break;
            }
        }
        if status.members.is_empty() {
            return;
        }
        let addrs: Vec<String> = self.given.iter().cloned().chain(learned).collect();
        if addrs != self.addrs {
            tracing::debug!(?addrs, "replica addresses learned from the cluster");
            self.addrs = addrs;
        }
    }

    /// Adds one address the cluster named (a leader), if it is new and valid.
    fn learn_addr(&mut self, addr: &str) {
        let Ok(addr) = parse_addr(addr) else { return };
        if !self.addrs.contains(&addr) && self.addrs.len() < self.given.len() + LEARNED_ADDRS_MAX {
            self.addrs.push(addr);
        }
    }

    /// A replica answered a request: the cluster is reachable again.
    fn progress(&mut self) {
        self.failures = 0;
        self.outage_since = None;
    }

    fn give_up(&mut self) {
        let why = format!(
            "no replica answered for {:?} (tried {}); last error: {}",
            self.timing.give_up_after,
            self.addrs.join(", "),
            self.last_error
        );
        tracing::warn!(%why, "giving up on outstanding requests");
        self.fail_all(&ClientError::Unavailable(why));
        self.link = Link::Idle;
        self.effects.push(Effect::Disconnect);
        self.out.clear();
        self.failures = 0;
        self.outage_since = None;
        if self.closing.is_some() {
            self.finish_close();
        }
    }

    fn fatal_error(&mut self, error: ClientError) {
        tracing::error!(%error, "the cluster refuses this client");
        self.fatal = Some(error.clone());
        self.fail_all(&error);
        self.link = Link::Idle;
        self.effects.push(Effect::Disconnect);
        self.out.clear();
        if self.closing.is_some() {
            self.finish_close();
        }
    }

    fn finish_close(&mut self) {
        if self.exited {
            return;
        }
        self.fail_all(&closed());
        self.exited = true;
        self.link = Link::Idle;
        self.effects.push(Effect::Exit);
    }

    fn fail_all(&mut self, error: &ClientError) {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            self.drop_pending(id, error.clone());
        }
        for q in std::mem::take(&mut self.queued) {
            let _ = q.waiter.send(Err(error.clone()));
        }
    }

    fn has_work(&self) -> bool {
        !self.pending.is_empty() || !self.queued.is_empty()
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

fn closed() -> ClientError {
    ClientError::Unavailable("the client was closed".to_string())
}

/// No delay while there are untried addresses; then a doubling backoff.
fn reconnect_delay(failures: u32, addr_count: usize) -> Duration {
    let round = u32::try_from(addr_count).unwrap_or(u32::MAX);
    if failures <= round {
        return Duration::ZERO;
    }
    let doublings = (failures - round - 1).min(16);
    (RECONNECT_DELAY_MIN * 2u32.pow(doublings)).min(RECONNECT_DELAY_MAX)
}

/// Removes and returns the elements of `queue` that match `pred`, keeping order.
fn extract<T>(queue: &mut VecDeque<T>, pred: impl Fn(&T) -> bool) -> Vec<T> {
    let mut taken = Vec::new();
    let mut kept = VecDeque::with_capacity(queue.len());
    for item in queue.drain(..) {
        if pred(&item) {
            taken.push(item);
        } else {
            kept.push_back(item);
        }
    }
    *queue = kept;
    taken
}

/// A whole frame (length prefix and body) for `message`, ready for one write.
pub(crate) fn framed(message: &ClientFrame) -> Result<Vec<u8>, ClientError> {
    let body = protocol::encode(message).map_err(|e| ClientError::Protocol(e.message))?;
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    frame::put_frame(&mut out, &body, CLIENT_FRAME_MAX)
        .map_err(|e| ClientError::Protocol(format!("cannot send the request: {e}")))?;
    Ok(out)
}

/// Frames a request, refusing one the replicas would refuse as too large.
fn framed_request(id: u64, request: Request) -> Result<Vec<u8>, ClientError> {
    let message = ClientFrame::Request { id, request };
    let frame = framed(&message)?;
    // The frame (named fields) is never smaller than the request as the log stores
    // it (`Request::encode`), so only a large frame needs the exact check.
    if frame.len() > REQUEST_BYTES_MAX {
        if let ClientFrame::Request { request, .. } = &message {
            let len = request.encode().len();
            if len > REQUEST_BYTES_MAX {
                return Err(ClientError::Protocol(format!(
                    "the request is {len} bytes, more than the limit of {REQUEST_BYTES_MAX}: \
                     send smaller arguments"
                )));
            }
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_wire::Slot;

    const NONCE_SEED: u64 = 1_000;

    struct Fixture {
        core: Core,
        now: Instant,
        ready: oneshot::Receiver<Result<SessionId, ClientError>>,
    }

    fn started(opts: ClientOptions) -> Fixture {
        let now = crate::clock::now();
        let (ready_tx, ready) = oneshot::channel();
        let addrs = vec!["a:1".to_string(), "b:2".to_string()];
        let core = Core::new(addrs, &opts, now, NONCE_SEED, ready_tx);
        Fixture { core, now, ready }
    }

    fn decode_all(bytes: &[u8]) -> Vec<ClientFrame> {
        let mut frames = Vec::new();
        let mut rest = bytes;
        while let Some(range) = frame::next_frame(rest, CLIENT_FRAME_MAX).unwrap() {
            frames.push(protocol::decode(&rest[range.clone()]).unwrap());
            rest = &rest[range.end..];
        }
        assert!(rest.is_empty(), "only whole frames are queued");
        frames
    }

    /// The frames the core queued for the connection, decoded (and taken), without
    /// the core's own `Status` requests for the members (see `members_asked`).
    fn sent(core: &mut Core) -> Vec<ClientFrame> {
        let frames = decode_all(&std::mem::take(core.outgoing()));
        frames.into_iter().filter(|f| !matches!(f, ClientFrame::Status { .. })).collect()
    }

    fn reply(id: u64, reply: Reply) -> ServerFrame {
        ServerFrame::Reply { id, slot: Slot(1), position: 1, reply }
    }

    /// Connects to the first address, answers the members request (with the two
    /// addresses the client was given) and opens session 5.
    fn open(f: &mut Fixture) {
        assert_eq!(f.core.take_effects(), [Effect::Connect("a:1".to_string())]);
        f.core.on_connected(f.now, ReplicaId(0), None);
        let [ClientFrame::Status { id: asked }, ClientFrame::Request { id, request: Request::OpenSession { nonce, lease_ms } }] =
            decode_all(&std::mem::take(f.core.outgoing()))[..]
        else {
            panic!("the client asks for the members, then opens the session");
        };
        let status = status_with(&["a:1", "b:2"]);
        f.core.on_frame(f.now, ServerFrame::Status { id: asked, status });
        assert_eq!((nonce, lease_ms), (NONCE_SEED + id, 10_000));
        f.core.on_frame(f.now, reply(id, Reply::SessionOpened { nonce, session: SessionId(5) }));
        assert_eq!(f.ready.try_recv().unwrap(), Ok(SessionId(5)));
    }

    fn call(f: &mut Fixture, method: &str) -> oneshot::Receiver<Result<Value, ClientError>> {
        let (waiter, answer) = oneshot::channel();
        let command = Command::Call {
            object: "o".into(),
            method: method.into(),
            args: vec![],
            timeout: None,
            waiter,
        };
        f.core.on_command(f.now, command);
        answer
    }

    /// [frame id, request number, acked] of each call (or creation) frame.
    fn numbers(frames: &[ClientFrame]) -> Vec<[u64; 3]> {
        frames
            .iter()
            .map(|f| match f {
                ClientFrame::Request { id, request: Request::Call { request, acked, .. } }
                | ClientFrame::Request { id, request: Request::Create { request, acked, .. } } => {
                    [*id, request.0, acked.0]
                }
                other => panic!("expected a call, got {other:?}"),
            })
            .collect()
    }

    /// A request below `acked` (`AcknowledgedError`) and one the replica cannot
    /// read (`BadFrame` with its id) each fail their own call as a protocol error,
    /// not as the method's exception; the other calls wait on.
    #[test]
    fn answers_by_id_about_a_bad_request_fail_that_call_alone() {
        let mut f = started(ClientOptions::default());
        open(&mut f);
        let mut below = call(&mut f, "a");
        let mut unreadable = call(&mut f, "b");
        let mut other = call(&mut f, "c");
        let ids: Vec<u64> = numbers(&sent(&mut f.core)).iter().map(|n| n[0]).collect();
        let e = concoord_object::ObjectError::new(
            concoord_object::machine::ACKNOWLEDGED_ERROR,
            "request 1 is below acked 3",
        );
        f.core.on_frame(f.now, reply(ids[0], Reply::Error(e)));
        let message = format!("request {}: integer exceeds i64", ids[1]);
        let error = ServerFrame::Error { id: Some(ids[1]), kind: ErrorKind::BadFrame, message };
        f.core.on_frame(f.now, error);
        assert!(
            matches!(below.try_recv(), Ok(Err(ClientError::Protocol(m))) if m.contains("below acked"))
        );
        assert!(
            matches!(unreadable.try_recv(), Ok(Err(ClientError::Protocol(m))) if m.contains("i64"))
        );
        assert!(other.try_recv().is_err(), "still waiting");
        assert!(f.core.take_effects().is_empty(), "no failover");
    }

    #[test]
    fn acked_is_the_oldest_call_still_waiting_parked_ones_included() {
        let mut f = started(ClientOptions::default());
        open(&mut f);
        let _a = call(&mut f, "a");
        let _b = call(&mut f, "b");
        let _c = call(&mut f, "c");
        let frames = numbers(&sent(&mut f.core));
        let sent_numbers: Vec<[u64; 2]> = frames.iter().map(|n| [n[1], n[2]]).collect();
        assert_eq!(sent_numbers, [[1, 1], [2, 1], [3, 1]]);
        let ids: Vec<u64> = frames.iter().map(|n| n[0]).collect();

        f.core.on_frame(f.now, reply(ids[1], Reply::Value(Value::Nil)));
        let _d = call(&mut f, "d");
        assert_eq!(numbers(&sent(&mut f.core))[0][1..], [4, 1], "1 and 3 are still waiting");
        f.core.on_frame(f.now, reply(ids[0], Reply::Parked));
        f.core.on_frame(f.now, reply(ids[2], Reply::Value(Value::Nil)));
        let _e = call(&mut f, "e");
        assert_eq!(numbers(&sent(&mut f.core))[0][1..], [5, 1], "1 is parked, so unfinished");
        f.core.on_frame(f.now, reply(ids[0], Reply::Value(Value::Bool(true))));
        let _g = call(&mut f, "g");
        assert_eq!(numbers(&sent(&mut f.core))[0][1..], [6, 4], "4 and 5 are still waiting");
    }

    /// A creation pipelined behind unanswered calls acknowledges only what the
    /// client has, like a call (issue 13: it used to acknowledge everything below it).
    #[test]
    fn a_create_acknowledges_only_the_replies_the_client_has() {
        let mut f = started(ClientOptions::default());
        open(&mut f);
        let _a = call(&mut f, "a");
        let (waiter, _created) = oneshot::channel();
        let create = Command::Create {
            name: "n".into(),
            type_name: "Lock".into(),
            args: vec![],
            timeout: None,
            waiter,
        };
        f.core.on_command(f.now, create);
        let frames = numbers(&sent(&mut f.core));
        assert_eq!(frames[1][1..], [2, 1], "call 1 is unanswered, so nothing is acknowledged");
        f.core.on_frame(f.now, reply(frames[0][0], Reply::Value(Value::Nil)));
        f.core.on_frame(f.now, reply(frames[1][0], Reply::Value(Value::Nil)));
        let (waiter, _created) = oneshot::channel();
        let create = Command::Create {
            name: "m".into(),
            type_name: "Lock".into(),
            args: vec![],
            timeout: None,
            waiter,
        };
        f.core.on_command(f.now, create);
        assert_eq!(numbers(&sent(&mut f.core))[0][1..], [3, 3]);
    }

    /// The one `Cancel` among `frames`: [frame id, request number, target].
    fn cancel_of(frames: &[ClientFrame]) -> [u64; 3] {
        match frames {
            [ClientFrame::Request { id, request: Request::Cancel { request, target, .. } }] => {
                [*id, request.0, target.0]
            }
            other => panic!("expected one cancel, got {other:?}"),
        }
    }

    fn timed_out_call(f: &mut Fixture) -> (oneshot::Receiver<Result<Value, ClientError>>, u64) {
        let mut answer = call(f, "acquire");
        let id = numbers(&sent(&mut f.core))[0][0];
        f.core.on_frame(f.now, reply(id, Reply::Parked));
        // A fifth of the 1 s timeout is kept for the cancel round.
        let cancel_at = f.now + Duration::from_millis(800);
        assert_eq!(f.core.next_deadline(), Some(cancel_at));
        f.core.on_tick(cancel_at);
        assert!(answer.try_recv().is_err(), "no answer until the cluster says which came first");
        (answer, id)
    }

    fn with_call_timeout() -> Fixture {
        let opts = ClientOptions {
            call_timeout: Some(Duration::from_secs(1)),
            // These tests are about cancelling; probing is tested on its own.
            liveness_timeout: Duration::from_secs(60),
            ..ClientOptions::default()
        };
        let mut f = started(opts);
        open(&mut f);
        f
    }

    #[test]
    fn a_timed_out_call_is_cancelled_and_fails_with_timeout_once_taken_back() {
        let mut f = with_call_timeout();
        let (mut answer, id) = timed_out_call(&mut f);
        let [cancel_id, number, target] = cancel_of(&sent(&mut f.core));
        assert_eq!((number, target), (2, 1), "the cancel is numbered after the call it names");
        f.core.on_frame(f.now, reply(cancel_id, Reply::Value(Value::Bool(true))));
        let cancelled = concoord_object::ObjectError::new("CancelledError", "gone");
        f.core.on_frame(f.now, reply(id, Reply::Error(cancelled)));
        assert_eq!(answer.try_recv().unwrap(), Err(ClientError::Timeout));
    }

    #[test]
    fn a_timed_out_call_that_completed_first_returns_its_result() {
        let mut f = with_call_timeout();
        let (mut answer, id) = timed_out_call(&mut f);
        let [cancel_id, ..] = cancel_of(&sent(&mut f.core));
        // The release that woke it was ordered before the cancel: the grant stands,
        // and the caller must know it holds the lock.
        f.core.on_frame(f.now, reply(id, Reply::Value(Value::Bool(true))));
        assert_eq!(answer.try_recv().unwrap(), Ok(Value::Bool(true)));
        f.core.on_frame(f.now, reply(cancel_id, Reply::Value(Value::Bool(false))));
        assert!(sent(&mut f.core).is_empty());
    }

    #[test]
    fn a_cancel_that_finds_nothing_parked_yet_is_repeated() {
        let mut f = with_call_timeout();
        let (_answer, _id) = timed_out_call(&mut f);
        let [cancel_id, ..] = cancel_of(&sent(&mut f.core));
        f.core.on_frame(f.now, reply(cancel_id, Reply::Value(Value::Bool(false))));
        let retry = f.now + CANCEL_RETRY;
        assert_eq!(f.core.next_deadline(), Some(retry));
        f.core.on_tick(retry);
        let [_, number, target] = cancel_of(&sent(&mut f.core));
        assert_eq!((number, target), (3, 1));
    }

    #[test]
    fn at_its_deadline_an_unconfirmed_call_is_maybe_executed_and_still_cancelled() {
        let mut f = with_call_timeout();
        let (mut answer, id) = timed_out_call(&mut f);
        let [cancel_id, ..] = cancel_of(&sent(&mut f.core));
        let deadline = f.now + Duration::from_secs(1);
        assert_eq!(f.core.next_deadline(), Some(deadline));
        f.core.on_tick(deadline);
        assert_eq!(answer.try_recv().unwrap(), Err(ClientError::MaybeExecuted));
        // The cluster had not applied the call yet: the cancel is repeated, with
        // no caller waiting any more, until the call is taken back.
        f.core.on_frame(deadline, reply(cancel_id, Reply::Value(Value::Bool(false))));
        f.core.on_tick(deadline + CANCEL_RETRY);
        let [again, _, target] = cancel_of(&sent(&mut f.core));
        assert_eq!(target, 1);
        f.core.on_frame(deadline, reply(again, Reply::Value(Value::Bool(true))));
        let cancelled = concoord_object::ObjectError::new("CancelledError", "gone");
        f.core.on_frame(deadline, reply(id, Reply::Error(cancelled)));
        assert!(f.core.pending.is_empty(), "nothing left to do");
    }

    #[test]
    fn a_replica_silent_since_a_call_went_out_is_left_at_the_calls_cancel_point() {
        let mut f = with_call_timeout();
        let _answer = call(&mut f, "increment");
        let before = std::mem::take(f.core.outgoing());
        f.core.on_tick(f.now + Duration::from_millis(800));
        assert_eq!(
            f.core.take_effects(),
            [Effect::Disconnect, Effect::Connect("b:2".to_string())],
            "not after the 5 s attempt timeout: the call has 1 s"
        );
        f.core.on_connected(f.now + Duration::from_millis(801), ReplicaId(1), None);
        let resent = sent(&mut f.core);
        assert_eq!(resent[0], decode_all(&before)[0], "the call, unchanged, then its cancel");
        assert_eq!(cancel_of(&resent[1..])[2], 1, "the cancel of call 1");

        // A replica that answers something (here, another call) is not left.
        let mut f = with_call_timeout();
        let _slow = call(&mut f, "slow");
        let _quick = call(&mut f, "quick");
        let ids: Vec<u64> = numbers(&sent(&mut f.core)).iter().map(|n| n[0]).collect();
        f.core.on_frame(f.now + Duration::from_millis(10), reply(ids[1], Reply::Value(Value::Nil)));
        f.core.on_tick(f.now + Duration::from_millis(800));
        assert!(f.core.take_effects().is_empty());
    }

    #[test]
    fn a_call_never_sent_ends_with_timeout_when_it_could_no_longer_be_taken_back() {
        let mut f = with_call_timeout();
        // The connection breaks; reconnecting fails, so nothing goes out.
        f.core.on_disconnected(f.now, "reset".into());
        f.core.take_effects();
        let mut answer = call(&mut f, "increment");
        let cancel_at = f.now + Duration::from_millis(800);
        assert_eq!(f.core.next_deadline(), Some(cancel_at));
        f.core.on_tick(cancel_at);
        assert_eq!(answer.try_recv().unwrap(), Err(ClientError::Timeout));
        assert!(sent(&mut f.core).is_empty(), "no cancel for a call never sent");
    }

    #[test]
    fn a_timeout_too_long_to_reach_means_no_bound() {
        let mut f = started(ClientOptions {
            call_timeout: Some(Duration::MAX),
            attempt_timeout: Duration::MAX,
            give_up_after: Duration::MAX,
            ..ClientOptions::default()
        });
        open(&mut f);
        let (waiter, _answer) = oneshot::channel();
        let timeout = Some(Duration::MAX);
        let command =
            Command::Call { object: "o".into(), method: "m".into(), args: vec![], timeout, waiter };
        f.core.on_command(f.now, command);
        assert_eq!(numbers(&sent(&mut f.core)).len(), 1, "sent, with no deadline");
        assert!(f.core.pending.values().all(|p| p.deadline.is_none() && p.cancel_at.is_none()));
        f.core.on_tick(f.now + Duration::from_secs(3_600));
        // An endless lease, too.
        let (ready, _ready) = oneshot::channel();
        let opts = ClientOptions { lease: Duration::MAX, ..ClientOptions::default() };
        let mut core = Core::new(vec!["a:1".into()], &opts, f.now, NONCE_SEED, ready);
        core.on_connected(f.now, ReplicaId(0), None);
        let opened =
            decode_all(&std::mem::take(core.outgoing())).into_iter().find_map(|f| match f {
                ClientFrame::Request { id, request: Request::OpenSession { nonce, .. } } => {
                    Some((id, nonce))
                }
                _ => None,
            });
        let (id, nonce) = opened.expect("the session is opened");
        core.on_frame(f.now, reply(id, Reply::SessionOpened { nonce, session: SessionId(5) }));
        core.on_tick(f.now + Duration::from_secs(3_600));
        assert_eq!(core.session(), Some(SessionId(5)));
    }

    #[test]
    fn connecting_is_bounded_by_the_call_timeout() {
        let opts = ClientOptions {
            call_timeout: Some(Duration::from_secs(1)),
            liveness_timeout: Duration::from_secs(60),
            ..ClientOptions::default()
        };
        let mut f = started(opts);
        assert_eq!(f.core.take_effects(), [Effect::Connect("a:1".to_string())]);
        f.core.on_connected(f.now, ReplicaId(0), None);
        sent(&mut f.core);
        let deadline = f.now + Duration::from_secs(1);
        assert_eq!(f.core.next_deadline(), Some(deadline));
        f.core.on_tick(deadline);
        assert_eq!(f.ready.try_recv().unwrap(), Err(ClientError::Timeout));
    }

    #[test]
    fn a_redirect_moves_every_unfinished_request_to_the_leader_byte_for_byte() {
        let mut f = started(ClientOptions::default());
        open(&mut f);
        let mut answer = call(&mut f, "a");
        let _b = call(&mut f, "b");
        let before = std::mem::take(f.core.outgoing());
        let id = numbers(&decode_all(&before))[0][0];
        f.core.on_frame(f.now, ServerFrame::Redirect { id, leader: Some("c:3".to_string()) });
        assert_eq!(
            f.core.take_effects(),
            [Effect::Disconnect, Effect::Connect("c:3".to_string())],
            "to the leader named, though it is not listed"
        );
        assert!(f.core.outgoing().is_empty());
        f.core.on_connected(f.now, ReplicaId(2), None);
        let out = std::mem::take(f.core.outgoing());
        assert!(out.ends_with(&before), "resent unchanged, in order");
        let asked = decode_all(&out[..out.len() - before.len()]);
        assert!(matches!(asked[..], [ClientFrame::Status { .. }]), "after asking for the members");
        assert!(answer.try_recv().is_err(), "still waiting");
    }

    fn member(addr: &str) -> concoord_object::protocol::MemberStatus {
        concoord_object::protocol::MemberStatus {
            replica: ReplicaId(0),
            addr: addr.to_string(),
            role: "voter".into(),
            commit_slot: None,
            lag: None,
            last_heard_ms: None,
        }
    }

    fn status_with(members: &[&str]) -> Box<StatusReport> {
        Box::new(StatusReport {
            replica: ReplicaId(0),
            addr: "a:1".into(),
            role: "leader".into(),
            leader: None,
            ballot: "1.0".into(),
            commit_slot: Slot(1),
            applied_slot: Slot(1),
            snapshot_slot: Slot(0),
            durable: false,
            object_type: "Counter".into(),
            objects: vec![],
            sessions: 0,
            members: members.iter().map(|a| member(a)).collect(),
            cluster: Some("00000000000000c1".into()),
            join_problem: None,
        })
    }

    /// The id of the core's own `Status` request among the queued frames (taken).
    fn members_asked(core: &mut Core) -> u64 {
        let frames = decode_all(&std::mem::take(core.outgoing()));
        let ids: Vec<u64> = frames
            .iter()
            .filter_map(|f| match f {
                ClientFrame::Status { id } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 1, "one request for the members: {frames:?}");
        ids[0]
    }

    #[test]
    fn a_client_given_one_address_fails_over_to_the_members_it_learned() {
        let now = crate::clock::now();
        let (ready, _ready) = oneshot::channel();
        let mut core =
            Core::new(vec!["a:1".into()], &ClientOptions::default(), now, NONCE_SEED, ready);
        assert_eq!(core.take_effects(), [Effect::Connect("a:1".to_string())]);
        core.on_connected(now, ReplicaId(0), None);
        let id = members_asked(&mut core);
        // Addresses from the network are checked: the bad ones are skipped.
        let status = status_with(&["a:1", "m:7", "no port", "n:8", "m:7"]);
        core.on_frame(now, ServerFrame::Status { id, status });
        assert_eq!(core.addrs, ["a:1", "m:7", "n:8"]);
        // A replica that knows no members yet changes nothing.
        core.ask_members(now);
        let id = members_asked(&mut core);
        core.on_frame(now, ServerFrame::Status { id, status: status_with(&[]) });
        assert_eq!(core.addrs, ["a:1", "m:7", "n:8"]);

        core.on_disconnected(now, "a:1 died".into());
        assert_eq!(core.take_effects(), [Effect::Disconnect, Effect::Connect("m:7".into())]);
        core.on_connect_failed(now, ConnectError::Failed("refused".into()));
        assert_eq!(core.take_effects(), [Effect::Disconnect, Effect::Connect("n:8".into())]);
        // A leader named in a redirect is kept too.
        core.on_connected(now, ReplicaId(2), None);
        members_asked(&mut core);
        core.on_frame(now, ServerFrame::Redirect { id: 1, leader: Some("z:9".into()) });
        assert_eq!(core.take_effects(), [Effect::Disconnect, Effect::Connect("z:9".into())]);
        assert_eq!(core.addrs, ["a:1", "m:7", "n:8", "z:9"]);
    }

    #[test]
    fn the_client_pins_its_cluster_and_leaves_a_replica_of_another() {
        let now = crate::clock::now();
        let (ready, _ready) = oneshot::channel();
        let addrs = vec!["a:1".to_string(), "b:2".to_string()];
        let mut core = Core::new(addrs, &ClientOptions::default(), now, NONCE_SEED, ready);
        assert_eq!(core.take_effects(), [Effect::Connect("a:1".to_string())]);
        assert_eq!(core.cluster(), None);
        core.on_connected(now, ReplicaId(0), None);
        let id = members_asked(&mut core);
        core.on_frame(now, ServerFrame::Status { id, status: status_with(&["a:1", "b:2"]) });
        assert_eq!(core.cluster().as_deref(), Some("00000000000000c1"), "pinned");
        // Another replica reports another cluster: the client moves on.
        core.on_disconnected(now, "a:1 died".into());
        assert_eq!(core.take_effects(), [Effect::Disconnect, Effect::Connect("b:2".into())]);
        core.on_connected(now, ReplicaId(1), None);
        let id = members_asked(&mut core);
        let mut stranger = status_with(&["b:2"]);
        stranger.cluster = Some("00000000000000ff".into());
        core.on_frame(now, ServerFrame::Status { id, status: stranger });
        assert_eq!(core.take_effects(), [Effect::Disconnect, Effect::Connect("a:1".into())]);
        assert_eq!(core.cluster().as_deref(), Some("00000000000000c1"), "still pinned");
    }

    #[test]
    fn a_cluster_given_in_the_options_is_pinned_before_the_first_answer() {
        let now = crate::clock::now();
        let (ready, _ready) = oneshot::channel();
        let addrs = vec!["a:1".to_string(), "b:2".to_string()];
        let opts =
            ClientOptions { cluster: Some("00000000000000c1".into()), ..ClientOptions::default() };
        let mut core = Core::new(addrs, &opts, now, NONCE_SEED, ready);
        assert_eq!(core.cluster().as_deref(), Some("00000000000000c1"), "named in every Hello");
        assert_eq!(core.take_effects(), [Effect::Connect("a:1".to_string())]);
        // The first address reached is a stranger (a process that founded its own
        // cluster there): it is left, and its cluster is never pinned.
        core.on_connected(now, ReplicaId(0), None);
        let id = members_asked(&mut core);
        let mut stranger = status_with(&["a:1"]);
        stranger.cluster = Some("00000000000000ff".into());
        core.on_frame(now, ServerFrame::Status { id, status: stranger });
        assert_eq!(core.take_effects(), [Effect::Disconnect, Effect::Connect("b:2".into())]);
        assert_eq!(core.cluster().as_deref(), Some("00000000000000c1"));
    }

    #[test]
    fn calls_wait_while_the_oldest_one_would_stand_too_far_behind() {
        let mut f = started(ClientOptions::default());
        open(&mut f);
        let _parked = call(&mut f, "acquire");
        let first = numbers(&sent(&mut f.core))[0][0];
        f.core.on_frame(f.now, reply(first, Reply::Parked));
        // Calls after the parked one run and are answered, but the replicas keep
        // every reply from the parked call's number on: at most SPAN_MAX numbers.
        let mut answers = Vec::new();
        for _ in 1..SPAN_MAX + 5 {
            answers.push(call(&mut f, "m"));
            for [id, ..] in numbers(&sent(&mut f.core)) {
                f.core.on_frame(f.now, reply(id, Reply::Value(Value::Nil)));
            }
        }
        let issued = SPAN_MAX as usize - 1;
        let done = answers.iter_mut().map(|a| a.try_recv().is_ok()).filter(|ok| *ok).count();
        assert_eq!(done, issued);
        assert_eq!(f.core.queued.len(), answers.len() - issued, "the rest wait");
        // The parked call is answered: the waiting calls go, in order.
        f.core.on_frame(f.now, reply(first, Reply::Value(Value::Bool(true))));
        let next = numbers(&sent(&mut f.core));
        assert_eq!(next.len(), answers.len() - issued);
        assert_eq!(
            next[0][1],
            SPAN_MAX + 1,
            "numbered after the last one issued (#1 parked, #2..=#1000)"
        );
        assert!(next.windows(2).all(|w| w[1][1] == w[0][1] + 1), "in order");
        assert!(f.core.queued.is_empty());
    }

    #[test]
    fn a_bad_token_is_final_and_never_retried() {
        let mut f = started(ClientOptions::default());
        assert_eq!(f.core.take_effects(), [Effect::Connect("a:1".to_string())]);
        let refusal = ConnectError::Refused { kind: ErrorKind::BadToken, message: "no".into() };
        f.core.on_connect_failed(f.now, refusal);
        assert_eq!(f.ready.try_recv().unwrap(), Err(ClientError::BadToken));
        assert_eq!(f.core.take_effects(), [Effect::Disconnect]);
        let mut answer = call(&mut f, "a");
        assert_eq!(answer.try_recv().unwrap(), Err(ClientError::BadToken));
        assert!(f.core.take_effects().is_empty(), "no new connection");
        assert_eq!(f.core.next_deadline(), None, "no timer to retry with");
    }

    #[test]
    fn busy_requests_are_resent_after_a_doubling_backoff() {
        let mut f = started(ClientOptions::default());
        open(&mut f);
        let _a = call(&mut f, "a");
        let first = std::mem::take(f.core.outgoing());
        let id = numbers(&decode_all(&first))[0][0];
        let mut now = f.now;
        for delay_ms in [10, 20, 40, 80, 160, 320, 500, 500] {
            let busy =
                ServerFrame::Error { id: Some(id), kind: ErrorKind::Busy, message: String::new() };
            f.core.on_frame(now, busy);
            let resend_at = now + Duration::from_millis(delay_ms);
            assert_eq!(f.core.next_deadline(), Some(resend_at));
            f.core.on_tick(resend_at - Duration::from_millis(1));
            assert!(f.core.outgoing().is_empty(), "not before the backoff");
            f.core.on_tick(resend_at);
            assert_eq!(std::mem::take(f.core.outgoing()), first, "the same bytes again");
            now = resend_at;
        }
        assert!(f.core.take_effects().is_empty(), "busy never costs the connection");
    }

    #[test]
    fn an_unanswered_request_fails_over_after_the_attempt_timeout_but_a_parked_one_does_not() {
        let opts = ClientOptions {
            attempt_timeout: Duration::from_secs(1),
            liveness_timeout: Duration::from_secs(60),
            ..ClientOptions::default()
        };
        let mut f = started(opts);
        open(&mut f);
        let _a = call(&mut f, "a");
        let id = numbers(&sent(&mut f.core))[0][0];
        f.core.on_frame(f.now, reply(id, Reply::Parked));
        let later = f.now + Duration::from_secs(3);
        f.core.on_tick(later);
        assert!(f.core.take_effects().is_empty(), "a parked call waits as long as it takes");

        f.now = later;
        let _b = call(&mut f, "b");
        sent(&mut f.core);
        f.core.on_tick(later + Duration::from_millis(999));
        assert!(f.core.take_effects().is_empty());
        f.core.on_tick(later + Duration::from_secs(1));
        assert_eq!(f.core.take_effects(), [Effect::Disconnect, Effect::Connect("b:2".to_string())]);
    }

    /// The statuses the core asked for since the last look (taken with the rest).
    fn probes(core: &mut Core) -> usize {
        let frames = decode_all(&std::mem::take(core.outgoing()));
        frames.iter().filter(|f| matches!(f, ClientFrame::Status { .. })).count()
    }

    #[test]
    fn a_quiet_replica_is_probed_and_left_when_the_probe_brings_nothing() {
        let liveness_timeout = Duration::from_millis(600);
        let opts = ClientOptions { liveness_timeout, ..ClientOptions::default() };
        let mut f = started(opts);
        open(&mut f);
        let start = f.now;
        let _a = call(&mut f, "a");
        assert_eq!(probes(&mut f.core), 0);
        f.core.on_tick(start + Duration::from_millis(149));
        assert_eq!(probes(&mut f.core), 0, "not before a quarter of the liveness timeout");
        assert_eq!(f.core.next_deadline(), Some(start + Duration::from_millis(150)));
        f.core.on_tick(start + Duration::from_millis(150));
        assert_eq!(probes(&mut f.core), 1, "a silent connection is probed");
        f.core.on_tick(start + Duration::from_millis(700));
        assert_eq!(probes(&mut f.core), 0, "one probe at a time");
        assert!(f.core.take_effects().is_empty());
        assert_eq!(f.core.next_deadline(), Some(start + Duration::from_millis(750)));
        f.core.on_tick(start + Duration::from_millis(750));
        assert_eq!(
            f.core.take_effects(),
            [Effect::Disconnect, Effect::Connect("b:2".to_string())],
            "no answer to the probe: the replica is left long before the attempt timeout"
        );
        assert!(f.core.last_error.contains("probe"), "{}", f.core.last_error);
    }

    #[test]
    fn a_replica_that_answers_the_probe_keeps_the_call_until_the_attempt_timeout() {
        let opts = ClientOptions {
            liveness_timeout: Duration::from_millis(600),
            attempt_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        };
        let mut f = started(opts);
        open(&mut f);
        let start = f.now;
        let _a = call(&mut f, "a");
        sent(&mut f.core);
        f.core.on_tick(start + Duration::from_millis(150));
        let asked = members_asked(&mut f.core);
        let answered = start + Duration::from_millis(160);
        f.core.on_frame(answered, ServerFrame::Status { id: asked, status: status_with(&[]) });
        // A slow request on a live replica: probed again after each quiet spell,
        // and answered each time, it is not left before the attempt timeout.
        let mut t = answered;
        while t + Duration::from_millis(50) < start + Duration::from_secs(2) {
            t += Duration::from_millis(50);
            f.core.on_tick(t);
            if let Some(id) = decode_all(&std::mem::take(f.core.outgoing())).iter().find_map(|fr| {
                if let ClientFrame::Status { id } = fr {
                    Some(*id)
                } else {
                    None
                }
            }) {
                f.core.on_frame(t, ServerFrame::Status { id, status: status_with(&[]) });
            }
            assert!(f.core.take_effects().is_empty(), "left a live replica at {:?}", t - start);
        }
        f.core.on_tick(start + Duration::from_secs(2));
        assert_eq!(f.core.take_effects(), [Effect::Disconnect, Effect::Connect("b:2".to_string())]);
    }

    #[test]
    fn reconnecting_backs_off_only_after_a_full_round_of_addresses() {
        let delays: Vec<u128> = (1..=12).map(|n| reconnect_delay(n, 3).as_millis()).collect();
        assert_eq!(delays, [0, 0, 0, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(reconnect_delay(u32::MAX, 1), RECONNECT_DELAY_MAX);
    }
}
