//! The `registers` workload: integer registers with a session table (`app.rs`).
//! Clients write, add and read (through the log, or through the read barrier),
//! one request at a time, retrying with the same sequence number; their histories
//! are checked for linearizability against the register's own sequential code.

use super::{ClientMsg, Driver, Reply};
use crate::app::{App, Op, Outcome, Request};
use crate::checkers::linearizability::{self, Model, Operation, Verdict};
use crate::checkers::timestamps::AppliedTimestamps;
use crate::world::{Phase, World, MS};
use concoord_paxos::{Command, Input, ReadId, Rejected};
use concoord_wire::{ReplicaId, Slot};
use std::collections::BTreeMap;

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
    /// The node that answered last.
    favourite: Option<usize>,
    current: Option<PendingOp>,
}

/// One node's application and the requests it must answer.
#[derive(Debug, Default)]
struct NodeApp {
    app: App,
    /// Requests this node proposed and must answer: (client, seq) -> client id.
    waiting: BTreeMap<(u64, u64), u64>,
    reads: BTreeMap<ReadId, (u64, u64, u8)>,
}

#[derive(Debug)]
pub(crate) struct Registers {
    clients: Vec<Client>,
    nodes: Vec<NodeApp>,
    history: Vec<(u8, Operation<Op, i64>)>,
    /// Each node's applied leader timestamps, checked as they are applied.
    timestamps: AppliedTimestamps,
}

impl Registers {
    pub(crate) fn new(clients: usize, alpha: u64) -> Registers {
        Registers {
            clients: (0..clients)
                .map(|i| Client { id: i as u64 + 1, next_seq: 1, favourite: None, current: None })
                .collect(),
            nodes: Vec::new(),
            timestamps: AppliedTimestamps::new(alpha),
            history: Vec::new(),
        }
    }

    fn resend(&mut self, w: &mut World, client: usize, target: usize, delay: u64) {
        let c = &mut self.clients[client];
        let Some(p) = c.current.as_mut() else { return };
        p.attempt += 1;
        p.target = target;
        let req = Request { client: c.id, seq: p.seq, op: p.op };
        let (seq, attempt) = (p.seq, p.attempt);
        w.request(target, req.client, ClientMsg::Register(req), delay);
        let timeout = w.now + delay + w.params.client_timeout;
        w.schedule(timeout, crate::world::Event::ClientTimeout { client, seq, attempt });
    }
}

impl Driver for Registers {
    fn add_node(&mut self) {
        self.nodes.push(NodeApp::default());
    }

    fn crash(&mut self, node: usize) {
        self.nodes[node] = NodeApp::default();
        self.timestamps.reset(node);
    }

    fn apply(
        &mut self,
        w: &mut World,
        node: usize,
        slot: Slot,
        value: &concoord_paxos::Value,
        _extended: bool,
    ) {
        w.record(self.timestamps.on_apply(node, slot, value.timestamp));
        let n = &mut self.nodes[node];
        let outcomes = n.app.apply(value);
        w.nodes[node].app_applied = slot;
        let hash = n.app.state_hash();
        let mut replies = Vec::new();
        for (req, outcome) in outcomes {
            let result = match outcome {
                Outcome::Executed(r) => {
                    w.on_executed(node, req.client, req.seq, slot);
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
        w.on_state(node, slot, hash);
        for (client, reply) in replies {
            w.reply(node, client, reply);
        }
    }

    fn snapshot(&self, node: usize) -> Option<Vec<u8>> {
        Some(self.nodes[node].app.encode())
    }

    fn restore(&mut self, node: usize, data: &[u8]) -> Result<u64, String> {
        let app = App::decode(data).ok_or("an undecodable snapshot")?;
        let hash = app.state_hash();
        self.nodes[node].app = app;
        self.timestamps.reset(node);
        Ok(hash)
    }

    fn read_ready(&mut self, w: &mut World, node: usize, id: ReadId) {
        let n = &mut self.nodes[node];
        if let Some((client, seq, key)) = n.reads.remove(&id) {
            let result = n.app.get(key);
            w.reply(node, client, Reply::Done { seq, result });
        }
    }

    fn read_aborted(&mut self, w: &mut World, node: usize, id: ReadId, hint: Option<ReplicaId>) {
        if let Some((client, seq, _)) = self.nodes[node].reads.remove(&id) {
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
            let Some(req) = Request::decode(&bytes) else { continue };
            if self.nodes[node].waiting.remove(&(req.client, req.seq)).is_some() {
                let reply = Reply::Redirect { seq: req.seq, hint };
                w.reply(node, req.client, reply);
            }
        }
    }

    fn start_op(&mut self, w: &mut World, client: usize) {
        if w.phase != Phase::Faults || self.clients[client].current.is_some() {
            return;
        }
        let key = w.rng.range(0, u64::from(w.params.keys)) as u8;
        let c = &mut self.clients[client];
        let seq = c.next_seq;
        c.next_seq += 1;
        let op = match w.rng.range(0, 10) {
            0..=2 => Op::Write { key, value: (c.id as i64) * 1_000_000 + seq as i64 },
            3..=5 => Op::Add { key, delta: w.rng.range(1, 100) as i64 },
            _ => {
                if w.rng.chance(w.params.barrier_reads) {
                    Op::Read { key }
                } else {
                    Op::LogRead { key }
                }
            }
        };
        let target = w.rng.index(w.nodes.len());
        self.clients[client].current =
            Some(PendingOp { seq, op, invoke: w.now, attempt: 0, target });
        self.resend(w, client, target, 0);
    }

    fn on_request(&mut self, w: &mut World, node: usize, _client: u64, msg: ClientMsg) {
        let ClientMsg::Register(req) = msg else { return };
        if !w.nodes[node].is_up() {
            return;
        }
        let result = match req.op {
            Op::Read { key } => {
                let n = &mut w.nodes[node];
                let id = ReadId(n.next_read);
                n.next_read += 1;
                self.nodes[node].reads.insert(id, (req.client, req.seq, key));
                let result = w.step(self, node, Input::Read(id));
                if result.is_err() {
                    self.nodes[node].reads.remove(&id);
                }
                result
            }
            _ => {
                let command = Command::App(req.encode());
                let result = w.step(self, node, Input::Propose(vec![command]));
                if result.is_ok() {
                    self.nodes[node].waiting.insert((req.client, req.seq), req.client);
                }
                result
            }
        };
        match result {
            Ok(()) => {}
            Err(Rejected::NotLeader { leader_hint }) => {
                w.reply(node, req.client, Reply::Redirect { seq: req.seq, hint: leader_hint })
            }
            Err(Rejected::Busy) => {
                let hint = Some(w.nodes[node].id);
                w.reply(node, req.client, Reply::Redirect { seq: req.seq, hint });
            }
        }
    }

    fn on_reply(&mut self, w: &mut World, client: usize, reply: Reply) {
        let Some(p) = &self.clients[client].current else { return };
        match reply {
            Reply::Done { seq, result } => {
                if seq != p.seq {
                    return;
                }
                let op = Operation {
                    client: self.clients[client].id,
                    invoke: p.invoke,
                    complete: Some((w.now, result)),
                    op: p.op,
                };
                let favourite = p.target;
                self.history.push((p.op.key(), op));
                w.stats.client_ops += 1;
                self.clients[client].favourite = Some(favourite);
                self.clients[client].current = None;
                let think = w.rng.range(0, 20 * MS);
                w.schedule(w.now + think, crate::world::Event::ClientNext { client });
            }
            Reply::Redirect { seq, hint } => {
                if seq != p.seq {
                    return;
                }
                let target = match hint.and_then(|h| w.id_to_node.get(&h).copied()) {
                    Some(t) if t != p.target => t,
                    _ => w.rng.index(w.nodes.len()),
                };
                let backoff = w.rng.range(MS, 30 * MS);
                self.resend(w, client, target, backoff);
            }
            Reply::Object { .. } => {}
        }
    }

    fn on_timeout(&mut self, w: &mut World, client: usize, seq: u64, attempt: u32) {
        let c = &self.clients[client];
        let Some(p) = &c.current else { return };
        if p.seq != seq || p.attempt != attempt {
            return;
        }
        let target = w.rng.index(w.nodes.len());
        self.resend(w, client, target, 0);
    }

    fn unanswered(&self) -> usize {
        self.clients.iter().filter(|c| c.current.is_some()).count()
    }

    fn finish(&mut self, w: &mut World) {
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
                    w.fail("linearizability", format!("key {key}: {explanation}"));
                    return;
                }
                Verdict::Unknown { reason } => {
                    w.fail("linearizability", format!("key {key}: checker gave up: {reason}"));
                    return;
                }
            }
        }
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
