//! The `pipelined` workload: the object layer loaded the way a busy real client
//! loads it. Each client keeps many requests in flight in one session (up to a
//! window drawn per seed), sends them in bursts that fill the leader's batches and
//! its pipeline window (a burst goes to one replica, which proposes it in one turn, as
//! the server proposes what it read in one turn), creates objects in the middle of the stream while earlier
//! calls are unanswered, and sends `acked` exactly as `concoord-client`'s core
//! does: the lowest request number still waiting for its reply, or the new
//! request's own number when none waits. Retries keep their request numbers.
//!
//! The replicas run the objects workload's machinery (`objects.rs`, with no
//! clients of its own). What is checked, besides every checker of the world
//! (agreement, prefix, state, exactly-once, durability): every request is
//! answered (liveness), and at the end each counter a client created holds exactly
//! the number of increments the client was told ran: none lost, none run twice,
//! none refused without a reply (a `Create` that acknowledged earlier requests of
//! its session lost their replies, issue 13).

use super::objects::{ObjectMsg, Objects};
use super::{ClientMsg, Driver, Reply};
use crate::world::{Event, Phase, World, MS};
use concoord_object::machine::{self as om, MachineBug};
use concoord_object::Value as ObjValue;
use concoord_paxos::{Command, ReadId};
use concoord_wire::{ReplicaId, RequestNumber, SessionId, Slot};
use std::collections::{BTreeMap, BTreeSet};

/// A lease no fault phase outlasts: sessions of this workload never expire.
const LEASE_MS: u64 = 600_000;

#[derive(Debug)]
enum What {
    Create { counter: usize },
    Increment { counter: usize },
}

#[derive(Debug)]
struct InFlight {
    what: What,
    msg: ObjectMsg,
    attempt: u32,
    target: usize,
}

#[derive(Debug, Default)]
struct Pipe {
    id: u64,
    session: Option<u64>,
    /// The nonce of the `OpenSession` in flight, its attempt and target.
    opening: Option<(u64, u32, usize)>,
    incarnation: u64,
    next: u64,
    in_flight: BTreeMap<u64, InFlight>,
    /// Counters this client created, by index: whether the creation was answered,
    /// and how many increments were answered as done.
    counters: Vec<(bool, u64)>,
    favourite: Option<usize>,
}

impl Pipe {
    fn name(&self, counter: usize) -> String {
        format!("p{}.{counter}", self.id)
    }
}

#[derive(Debug)]
pub(crate) struct Pipelined {
    inner: Objects,
    pipes: Vec<Pipe>,
    /// Most requests one client has in flight, and most it sends in one burst.
    window: usize,
    burst: u64,
}

impl Pipelined {
    pub(crate) fn new(
        w: &mut World,
        seed: u64,
        clients: usize,
        bugs: BTreeSet<MachineBug>,
    ) -> Pipelined {
        let window = [32, 128, 512][w.rng.index(3)];
        let burst = [16, 64, 128][w.rng.index(3)];
        Pipelined {
            inner: Objects::new(seed, 0, bugs, w.params.alpha),
            pipes: (0..clients).map(|i| Pipe { id: i as u64 + 1, ..Pipe::default() }).collect(),
            window,
            burst,
        }
    }

    fn send(&mut self, w: &mut World, client: usize, seq: u64, delay: u64) {
        let p = &mut self.pipes[client];
        let id = p.id;
        let Some(f) = p.in_flight.get_mut(&seq) else { return };
        f.attempt += 1;
        let (attempt, target, msg) = (f.attempt, f.target, f.msg.clone());
        w.request(target, id, ClientMsg::Object(msg), delay);
        let timeout = w.now + delay + w.params.client_timeout;
        w.schedule(timeout, Event::ClientTimeout { client, seq, attempt });
    }

    fn open(&mut self, w: &mut World, client: usize, target: usize, delay: u64) {
        let p = &mut self.pipes[client];
        let nonce = (p.id << 32) | (p.incarnation + 1);
        let attempt = p.opening.map_or(0, |(_, a, _)| a) + 1;
        p.opening = Some((nonce, attempt, target));
        let open = om::Request::OpenSession { nonce, lease_ms: LEASE_MS };
        w.request(target, p.id, ClientMsg::Object(ObjectMsg::Log(open)), delay);
        let timeout = w.now + delay + w.params.client_timeout;
        w.schedule(timeout, Event::ClientTimeout { client, seq: nonce, attempt });
    }

    /// Numbers one request for `target`, with `acked` as the real client computes
    /// it, and arms its timeout; the caller sends it (in a burst).
    fn issue(&mut self, w: &mut World, client: usize, what: What, target: usize) -> Option<u64> {
        let p = &mut self.pipes[client];
        let session = p.session?;
        let (session, request) = (SessionId(session), RequestNumber(p.next));
        let acked = RequestNumber(p.in_flight.keys().next().copied().unwrap_or(p.next));
        let req = match what {
            What::Create { counter } => om::Request::Create {
                session,
                request,
                name: p.name(counter),
                type_name: "Counter".into(),
                args: Vec::new(),
                acked,
            },
            What::Increment { counter } => om::Request::Call {
                session,
                request,
                acked,
                object: p.name(counter),
                method: "increment".into(),
                args: Vec::new(),
            },
        };
        let seq = p.next;
        p.next += 1;
        p.in_flight.insert(seq, InFlight { what, msg: ObjectMsg::Log(req), attempt: 1, target });
        let timeout = w.now + w.params.client_timeout;
        w.schedule(timeout, Event::ClientTimeout { client, seq, attempt: 1 });
        Some(seq)
    }

    fn burst(&mut self, w: &mut World, client: usize) {
        let p = &self.pipes[client];
        if p.session.is_none() {
            if p.opening.is_none() {
                let target = w.rng.index(w.nodes.len());
                self.open(w, client, target, 0);
            }
            return;
        }
        // A burst goes to one replica, written back to back on one connection: the
        // replica reads it in one turn and proposes it as one batch. Retries go
        // one by one.
        let target = match p.favourite {
            Some(f) if !w.rng.chance(0.05) => f,
            _ => w.rng.index(w.nodes.len()),
        };
        let n = w.rng.range(self.burst / 4, self.burst + 1);
        let mut batch = Vec::new();
        for _ in 0..n {
            let p = &mut self.pipes[client];
            // The window bounds the requests in flight, and, as the replicas keep
            // every reply from `acked` on (at most `REPLIES_PER_SESSION_MAX`), the span
            // of request numbers from the oldest one in flight.
            let oldest = p.in_flight.keys().next().copied().unwrap_or(p.next);
            if p.in_flight.len() >= self.window
                || p.next - oldest >= om::REPLIES_PER_SESSION_MAX as u64
            {
                break;
            }
            let ready: Vec<usize> = (0..p.counters.len()).filter(|c| p.counters[*c].0).collect();
            // Objects are created mid-stream, while earlier calls are in flight.
            if ready.is_empty() && p.counters.len() > ready.len() {
                break; // the first creation is still on its way
            }
            let what = if ready.is_empty() || (p.counters.len() < 6 && w.rng.chance(0.03)) {
                p.counters.push((false, 0));
                What::Create { counter: p.counters.len() - 1 }
            } else {
                What::Increment { counter: ready[w.rng.index(ready.len())] }
            };
            batch.extend(self.issue(w, client, what, target));
        }
        let p = &self.pipes[client];
        let reqs: Vec<om::Request> = batch
            .iter()
            .filter_map(|seq| match &p.in_flight.get(seq)?.msg {
                ObjectMsg::Log(req) => Some(req.clone()),
                _ => None,
            })
            .collect();
        if !reqs.is_empty() {
            w.request(target, p.id, ClientMsg::Object(ObjectMsg::Batch(reqs)), 0);
        }
    }
}

impl Driver for Pipelined {
    fn add_node(&mut self) {
        self.inner.add_node();
    }
    fn crash(&mut self, node: usize) {
        self.inner.crash(node);
    }
    fn apply(
        &mut self,
        w: &mut World,
        node: usize,
        slot: Slot,
        value: &concoord_paxos::Value,
        extended: bool,
    ) {
        self.inner.apply(w, node, slot, value, extended);
        // The client's `acked` never covers a request it still waits for, so the
        // machine must never refuse one as acknowledged (it would never answer it).
        let refused = std::mem::take(&mut self.inner.refused);
        if w.is_stranger(node) {
            return; // another cluster's log, with sessions of its own
        }
        for (session, request) in refused {
            let waiting = self
                .pipes
                .iter()
                .any(|p| p.session == Some(session) && p.in_flight.contains_key(&request));
            if waiting {
                w.fail(
                    "pipelined",
                    format!(
                        "request {request} of session {session} refused at {slot:?} while its client waits for it"
                    ),
                );
            }
        }
    }
    fn snapshot(&self, node: usize) -> Option<Vec<u8>> {
        self.inner.snapshot(node)
    }
    fn restore(&mut self, node: usize, data: &[u8]) -> Result<u64, String> {
        self.inner.restore(node, data)
    }
    fn read_ready(&mut self, w: &mut World, node: usize, id: ReadId) {
        self.inner.read_ready(w, node, id);
    }
    fn read_aborted(&mut self, w: &mut World, node: usize, id: ReadId, hint: Option<ReplicaId>) {
        self.inner.read_aborted(w, node, id, hint);
    }
    fn dropped(
        &mut self,
        w: &mut World,
        node: usize,
        commands: Vec<Command>,
        hint: Option<ReplicaId>,
    ) {
        self.inner.dropped(w, node, commands, hint);
    }
    fn on_request(&mut self, w: &mut World, node: usize, client: u64, msg: ClientMsg) {
        self.inner.on_request(w, node, client, msg);
    }

    fn start_op(&mut self, w: &mut World, client: usize) {
        if w.phase != Phase::Faults {
            return;
        }
        self.burst(w, client);
        let think = w.rng.range(20 * MS, 150 * MS);
        w.schedule(w.now + think, Event::ClientNext { client });
    }

    fn on_reply(&mut self, w: &mut World, client: usize, reply: Reply) {
        if let Reply::Redirect { seq, hint } = reply {
            let target = match hint.and_then(|h| w.id_to_node.get(&h).copied()) {
                Some(t) => t,
                None => w.rng.index(w.nodes.len()),
            };
            let backoff = w.rng.range(MS, 30 * MS);
            let p = &mut self.pipes[client];
            if p.opening.is_some_and(|(nonce, _, _)| nonce == seq) {
                self.open(w, client, target, backoff);
            } else if let Some(f) = p.in_flight.get_mut(&seq) {
                f.target = target;
                self.send(w, client, seq, backoff);
            }
            return;
        }
        let p = &mut self.pipes[client];
        match reply {
            Reply::Object {
                session: 0,
                seq,
                reply: om::Reply::SessionOpened { session, .. },
                ..
            } if p.opening.is_some_and(|(nonce, _, _)| nonce == seq) && p.session.is_none() => {
                p.opening = None;
                p.session = Some(session.0);
                p.incarnation += 1;
                p.next = 1;
            }
            Reply::Object { session, seq, reply, .. } if Some(session) == p.session => {
                let Some(f) = p.in_flight.remove(&seq) else { return };
                p.favourite = Some(f.target);
                let counter = match f.what {
                    What::Create { counter } | What::Increment { counter } => counter,
                };
                match (reply, f.what) {
                    (om::Reply::Value(_), What::Create { .. }) => p.counters[counter].0 = true,
                    (om::Reply::Value(_), What::Increment { .. }) => {
                        p.counters[counter].1 += 1;
                        w.stats.client_ops += 1;
                    }
                    (other, _) => {
                        let name = p.name(counter);
                        w.fail(
                            "pipelined",
                            format!("request {seq} of session {session} on {name} got {other:?}"),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn on_timeout(&mut self, w: &mut World, client: usize, seq: u64, attempt: u32) {
        if let Some((nonce, a, _)) = self.pipes[client].opening {
            if nonce == seq && a == attempt {
                let target = w.rng.index(w.nodes.len());
                self.open(w, client, target, 0);
            }
            return;
        }
        let Some(f) = self.pipes[client].in_flight.get_mut(&seq) else { return };
        if f.attempt != attempt {
            return;
        }
        f.target = w.rng.index(w.nodes.len());
        self.send(w, client, seq, 0);
    }

    fn unanswered(&self) -> usize {
        self.pipes.iter().map(|p| p.in_flight.len() + usize::from(p.opening.is_some())).sum()
    }

    fn finish(&mut self, w: &mut World) {
        // The counters as the most advanced running replica's machine holds them.
        let Some(node) = (0..w.nodes.len())
            .filter(|n| w.in_cluster(*n))
            .max_by_key(|n| (w.nodes[*n].app_applied, *n))
        else {
            return;
        };
        for p in &self.pipes {
            for (counter, (created, done)) in p.counters.iter().enumerate() {
                if !created {
                    continue;
                }
                let name = p.name(counter);
                let held = self.inner.query(node, &name, "getvalue");
                if held != Ok(ObjValue::Int(*done as i64)) {
                    w.fail(
                        "pipelined",
                        format!("{name} holds {held:?} after {done} increments were answered"),
                    );
                    return;
                }
            }
        }
        self.inner.finish(w);
    }
}
