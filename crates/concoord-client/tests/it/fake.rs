//! A fake cluster for the client's tests: replicas that speak the client protocol
//! over real sockets on 127.0.0.1 and share one real object `Machine` (so sessions,
//! exactly-once retries, parked calls and wake-ups behave as in a cluster), with no
//! consensus at all. Each replica can be told to misbehave (redirect, stay silent,
//! drop the connection mid-call, answer busy...). Everything it receives and every
//! execution is recorded for the tests to check.
//!
//! Dropping the `Cluster` stops every task it started.

use concoord_object::builtins::register_all;
use concoord_object::machine::{Execution, Machine, Reply, Request, Response};
use concoord_object::protocol::{
    self, ClientFrame, ErrorKind, MemberStatus, ServerFrame, StatusReport, CLIENT_FRAME_MAX,
    PROTOCOL_VERSION,
};
use concoord_object::{CallId, Types, Value};
use concoord_wire::frame;
use concoord_wire::{ReplicaId, RequestNumber, SessionId, Slot, Time};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// How a fake replica treats requests (`Hello` and `Status` are always answered).
#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// Orders and answers everything.
    Leader,
    /// Answers every request with `Redirect { leader }`.
    Follower { leader: Option<String> },
    /// Answers no request at all.
    Silent,
    /// Runs the next call, then closes the connection without answering it, and
    /// leads from then on.
    DropOnCall,
    /// Answers the next `n` calls `Busy`, then leads.
    Busy(u32),
    /// Answers every request `NotReady`.
    NotReady,
    /// Holds calls until `n` are outstanding on one connection, then runs them all
    /// and leads: only a client that pipelines ever gets an answer.
    Gather(usize),
}

/// One request a replica received.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub replica: usize,
    pub id: u64,
    pub request: Request,
}

/// One request the machine applied, and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub replica: usize,
    pub request: Request,
    pub execution: Execution,
}

struct State {
    machine: Machine,
    slot: u64,
    /// Where each outstanding call's answers go: (connection, frame id).
    routes: BTreeMap<CallId, (u64, u64)>,
    conns: BTreeMap<u64, mpsc::UnboundedSender<ServerFrame>>,
    next_conn: u64,
    received: Vec<Received>,
    applied: Vec<Applied>,
    hellos: usize,
    /// Calls answered `Parked`, in order.
    parked: Vec<CallId>,
    /// Every replica's address: the members each one's `Status` lists.
    members: Vec<String>,
}

struct Replica {
    addr: String,
    behaviour: Arc<Mutex<Behaviour>>,
    task: JoinHandle<()>,
}

pub struct Cluster {
    state: Arc<Mutex<State>>,
    replicas: Vec<Replica>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in &self.replicas {
            r.task.abort();
        }
    }
}

impl Cluster {
    /// `n` leading replicas sharing one machine (with the `default` Counter). With
    /// `token`, a `Hello` must carry it.
    pub async fn start(n: usize, token: Option<&str>) -> Cluster {
        let mut types = Types::new();
        register_all(&mut types);
        let mut machine = Machine::new(types);
        machine.create_default("default", "Counter").expect("a Counter can be created");
        let state = Arc::new(Mutex::new(State {
            machine,
            slot: 0,
            routes: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            received: Vec::new(),
            applied: Vec::new(),
            hellos: 0,
            parked: Vec::new(),
            members: Vec::new(),
        }));
        let mut replicas = Vec::new();
        for index in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("local address").to_string();
            let behaviour = Arc::new(Mutex::new(Behaviour::Leader));
            let replica = ReplicaTask {
                index,
                addr: addr.clone(),
                token: token.map(str::to_string),
                state: state.clone(),
                behaviour: behaviour.clone(),
            };
            let task = tokio::spawn(replica.accept(listener));
            replicas.push(Replica { addr, behaviour, task });
        }
        lock(&state).members = replicas.iter().map(|r| r.addr.clone()).collect();
        Cluster { state, replicas }
    }

    pub fn addr(&self, replica: usize) -> String {
        self.replicas[replica].addr.clone()
    }

    /// Every replica's address, comma-separated, in order.
    pub fn addrs(&self) -> String {
        self.replicas.iter().map(|r| r.addr.as_str()).collect::<Vec<_>>().join(", ")
    }

    pub fn set(&self, replica: usize, behaviour: Behaviour) {
        *lock(&self.replicas[replica].behaviour) = behaviour;
    }

    /// Stops a replica: its listener and its connections close.
    pub fn kill(&self, replica: usize) {
        self.replicas[replica].task.abort();
    }

    /// Ends `session` as the cluster does when its lease runs out.
    pub fn end_session(&self, session: SessionId) {
        let mut state = lock(&self.state);
        state.apply(usize::MAX, None, Request::CloseSession { session });
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    pub fn applied(&self) -> Vec<Applied> {
        lock(&self.state).applied.clone()
    }

    /// The calls of `method` received, as (replica, frame id, session, request, acked).
    pub fn calls_of(
        &self,
        method: &str,
    ) -> Vec<(usize, u64, SessionId, RequestNumber, RequestNumber)> {
        self.received()
            .into_iter()
            .filter_map(|r| match r.request {
                Request::Call { session, request, acked, method: m, .. } if m == method => {
                    Some((r.replica, r.id, session, request, acked))
                }
                _ => None,
            })
            .collect()
    }

    /// How the calls of `method` were applied: (executed, answered as duplicates).
    pub fn executions_of(&self, method: &str) -> (usize, usize) {
        let applied = self.applied();
        let of = |e: Execution| {
            applied
                .iter()
                .filter(|a| matches!(&a.request, Request::Call { method: m, .. } if m == method))
                .filter(|a| a.execution == e)
                .count()
        };
        (of(Execution::Executed), of(Execution::Duplicate))
    }

    pub fn hellos(&self) -> usize {
        lock(&self.state).hellos
    }

    pub fn sessions(&self) -> usize {
        lock(&self.state).machine.session_count()
    }

    pub fn parked(&self) -> Vec<CallId> {
        lock(&self.state).parked.clone()
    }

    /// Waits (polling) until `condition` holds; panics after a few seconds.
    pub async fn until(&self, what: &str, condition: impl Fn(&Cluster) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !condition(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    /// Applies `request` (received on `conn`, frame `id`) and sends the answers.
    fn apply(&mut self, replica: usize, from: Option<(u64, u64)>, request: Request) {
        if let Some(route) = from {
            let call = match &request {
                Request::OpenSession { nonce, .. } => {
                    Some(CallId { session: SessionId(0), request: RequestNumber(*nonce) })
                }
                Request::Call { session, request, .. }
                | Request::Create { session, request, .. }
                | Request::Cancel { session, request, .. } => {
                    Some(CallId { session: *session, request: *request })
                }
                Request::KeepAlive { .. } | Request::CloseSession { .. } => None,
            };
            if let Some(call) = call {
                // The latest connection a caller used gets its answers, wake-ups too.
                self.routes.insert(call, route);
            }
        }
        self.slot += 1;
        let mut responses = Vec::new();
        let execution =
            self.machine.apply(Slot(self.slot), Time(0), &request.encode(), &mut responses);
        self.applied.push(Applied { replica, request: request.clone(), execution });
        if let (
            Some((conn, id)),
            Request::KeepAlive { session } | Request::CloseSession { session },
        ) = (from, &request)
        {
            let exists = self.machine.has_session(*session);
            let reply = Reply::Value(Value::Bool(exists));
            self.send(conn, ServerFrame::Reply { id, slot: Slot(self.slot), position: 0, reply });
        }
        for response in responses {
            self.deliver(response);
        }
    }

    fn deliver(&mut self, response: Response) {
        let Some(&(conn, id)) = self.routes.get(&response.call) else { return };
        if response.reply == Reply::Parked {
            self.parked.push(response.call);
        } else {
            self.routes.remove(&response.call);
        }
        let frame = ServerFrame::Reply {
            id,
            slot: response.slot,
            position: response.position,
            reply: response.reply,
        };
        self.send(conn, frame);
    }

    fn send(&self, conn: u64, frame: ServerFrame) {
        if let Some(tx) = self.conns.get(&conn) {
            let _ = tx.send(frame);
        }
    }
}

struct ReplicaTask {
    index: usize,
    addr: String,
    token: Option<String>,
    state: Arc<Mutex<State>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl ReplicaTask {
    /// Accepts connections until aborted; aborting drops the listener and the
    /// `JoinSet`, which aborts every connection's task.
    async fn accept(self, listener: TcpListener) {
        let this = Arc::new(self);
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    conns.spawn(this.clone().serve(stream));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }

    async fn serve(self: Arc<Self>, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let conn = {
            let mut state = lock(&self.state);
            let conn = state.next_conn;
            state.next_conn += 1;
            state.conns.insert(conn, tx.clone());
            conn
        };
        let mut buf = Vec::new();
        let mut welcomed = false;
        let mut gathered: Vec<(u64, Request)> = Vec::new();
        loop {
            let frame = tokio::select! {
                frame = read_frame(&mut reader, &mut buf) => frame,
                Some(out) = rx.recv() => {
                    if write_frame(&mut writer, &out).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let Some(frame) = frame else { break };
            if !welcomed {
                let ClientFrame::Hello { version, token, .. } = frame else { break };
                lock(&self.state).hellos += 1;
                let (kind, message) = if version != PROTOCOL_VERSION {
                    (ErrorKind::BadVersion, "unknown version")
                } else if self.token.is_some() && token != self.token {
                    (ErrorKind::BadToken, "wrong token")
                } else {
                    welcomed = true;
                    let welcome = ServerFrame::Welcome {
                        version: PROTOCOL_VERSION,
                        replica: ReplicaId(self.index as u64),
                        leader: None,
                    };
                    let _ = tx.send(welcome);
                    continue;
                };
                let refusal = ServerFrame::Error { id: None, kind, message: message.to_string() };
                let _ = write_frame(&mut writer, &refusal).await;
                break;
            }
            match frame {
                ClientFrame::Hello { .. } => break,
                ClientFrame::Status { id } => {
                    let status = Box::new(self.status());
                    let _ = tx.send(ServerFrame::Status { id, status });
                }
                ClientFrame::Request { id, request } => {
                    if self.on_request(conn, id, request, &tx, &mut gathered) == Flow::Drop {
                        break;
                    }
                }
            }
        }
        lock(&self.state).conns.remove(&conn);
    }

    fn on_request(
        &self,
        conn: u64,
        id: u64,
        request: Request,
        tx: &mpsc::UnboundedSender<ServerFrame>,
        gathered: &mut Vec<(u64, Request)>,
    ) -> Flow {
        let mut state = lock(&self.state);
        state.received.push(Received { replica: self.index, id, request: request.clone() });
        let is_call = matches!(request, Request::Call { .. } | Request::Create { .. });
        let mut behaviour = lock(&self.behaviour);
        match behaviour.clone() {
            Behaviour::Leader => state.apply(self.index, Some((conn, id)), request),
            Behaviour::Follower { leader } => {
                let _ = tx.send(ServerFrame::Redirect { id, leader });
            }
            Behaviour::Silent => {}
            Behaviour::NotReady => {
                let message = "joining".to_string();
                let _ = tx.send(ServerFrame::Error {
                    id: Some(id),
                    kind: ErrorKind::NotReady,
                    message,
                });
            }
            Behaviour::Busy(n) if is_call && n > 0 => {
                *behaviour = Behaviour::Busy(n - 1);
                let message = "queue full".to_string();
                let _ =
                    tx.send(ServerFrame::Error { id: Some(id), kind: ErrorKind::Busy, message });
            }
            Behaviour::Busy(_) => state.apply(self.index, Some((conn, id)), request),
            Behaviour::DropOnCall if is_call => {
                *behaviour = Behaviour::Leader;
                state.apply(self.index, Some((conn, id)), request);
                return Flow::Drop;
            }
            Behaviour::DropOnCall => state.apply(self.index, Some((conn, id)), request),
            Behaviour::Gather(n) if is_call => {
                gathered.push((id, request));
                if gathered.len() >= n {
                    *behaviour = Behaviour::Leader;
                    for (id, request) in gathered.drain(..) {
                        state.apply(self.index, Some((conn, id)), request);
                    }
                }
            }
            Behaviour::Gather(_) => state.apply(self.index, Some((conn, id)), request),
        }
        Flow::Continue
    }

    fn status(&self) -> StatusReport {
        let state = lock(&self.state);
        let leading = *lock(&self.behaviour) == Behaviour::Leader;
        StatusReport {
            replica: ReplicaId(self.index as u64),
            addr: self.addr.clone(),
            role: if leading { "leader" } else { "follower" }.to_string(),
            leader: None,
            ballot: "1.0".to_string(),
            commit_slot: Slot(state.slot),
            applied_slot: Slot(state.slot),
            snapshot_slot: Slot(0),
            durable: false,
            object_type: "Counter".to_string(),
            objects: state.machine.object_names().map(str::to_string).collect(),
            sessions: state.machine.session_count() as u64,
            members: state
                .members
                .iter()
                .enumerate()
                .map(|(i, addr)| MemberStatus {
                    replica: ReplicaId(i as u64),
                    addr: addr.clone(),
                    role: "voter".to_string(),
                    commit_slot: None,
                    lag: None,
                    last_heard_ms: None,
                })
                .collect(),
            cluster: Some("00000000000000fa".to_string()),
            join_problem: None,
        }
    }
}

#[derive(PartialEq)]
enum Flow {
    Continue,
    Drop,
}

/// The next client frame, or `None` when the connection ends or breaks.
/// Cancel-safe: bytes read stay in `buf`.
async fn read_frame(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut Vec<u8>,
) -> Option<ClientFrame> {
    loop {
        if let Some(range) = frame::next_frame(buf, CLIENT_FRAME_MAX).ok()? {
            let decoded = protocol::decode(&buf[range.clone()]).ok();
            buf.drain(..range.end);
            return decoded;
        }
        buf.reserve(64 * 1024);
        if reader.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

async fn write_frame(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    message: &ServerFrame,
) -> std::io::Result<()> {
    let body = protocol::encode(message).expect("server frames encode");
    let mut out = Vec::new();
    frame::put_frame(&mut out, &body, CLIENT_FRAME_MAX).expect("server frames fit");
    writer.write_all(&out).await
}
