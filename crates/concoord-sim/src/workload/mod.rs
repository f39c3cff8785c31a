//! Workloads: what the clients do and which state machine the replicas run.
//!
//! A workload is a `Driver`. The world hands it the effects addressed to the
//! application (`Apply`, `InstallSnapshot`, `ReadReady`, `Dropped`,
//! `ReadAborted`) and the client events; the driver keeps each node's copy of the
//! application, the requests each node must answer, the clients, and their
//! histories, which it checks at the end.
//!
//! - `registers.rs`: integer registers with a session table (`app.rs`), the
//!   consensus core's own test application.
//! - `objects.rs`: `concoord-object`'s `Machine` with every built-in object.
//! - `pipelined.rs`: the same machine, loaded by clients with many requests in
//!   flight, in bursts, creating objects mid-stream.

pub(crate) mod objects;
pub(crate) mod pipelined;
pub(crate) mod registers;

use crate::world::World;
use concoord_object::machine as om;
use concoord_paxos::{Command, ReadId};
use concoord_wire::{ReplicaId, Slot};

/// A client's message to a replica.
#[derive(Clone, Debug)]
pub(crate) enum ClientMsg {
    Register(crate::app::Request),
    Object(objects::ObjectMsg),
}

/// A replica's answer to a client.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
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

/// One workload, driven by the world. Node and client arguments are indexes.
pub(crate) trait Driver: std::fmt::Debug {
    /// A node joined the world (its index is the next one): give it an application.
    fn add_node(&mut self);
    /// A node's process died: its application's memory and its waiting requests go.
    fn crash(&mut self, node: usize);
    /// Applies one chosen slot (`extended`: the first apply of `slot` anywhere) and
    /// answers the requests the node waits on.
    fn apply(
        &mut self,
        w: &mut World,
        node: usize,
        slot: Slot,
        value: &concoord_paxos::Value,
        extended: bool,
    );
    /// The node's application state, if the replica should snapshot it now.
    fn snapshot(&self, node: usize) -> Option<Vec<u8>>;
    /// Replaces the node's application with a snapshot; returns its state hash.
    fn restore(&mut self, node: usize, data: &[u8]) -> Result<u64, String>;
    fn read_ready(&mut self, w: &mut World, node: usize, id: ReadId);
    fn read_aborted(&mut self, w: &mut World, node: usize, id: ReadId, hint: Option<ReplicaId>);
    fn dropped(
        &mut self,
        w: &mut World,
        node: usize,
        commands: Vec<Command>,
        hint: Option<ReplicaId>,
    );

    /// A client starts its next operation (if it has none in flight).
    fn start_op(&mut self, w: &mut World, client: usize);
    fn on_request(&mut self, w: &mut World, node: usize, client: u64, msg: ClientMsg);
    fn on_reply(&mut self, w: &mut World, client: usize, reply: Reply);
    fn on_timeout(&mut self, w: &mut World, client: usize, seq: u64, attempt: u32);
    fn on_cancel(&mut self, _w: &mut World, _client: usize, _seq: u64) {}
    /// A fault event: the workload may take it for a fault of its own (a client
    /// crash). Returns whether it did.
    fn fault(&mut self, _w: &mut World) -> bool {
        false
    }
    /// Client requests still unanswered (liveness requires none after healing).
    fn unanswered(&self) -> usize;
    /// Called at each convergence check after healing, before judging it.
    fn on_check(&mut self, _w: &mut World) {}
    /// The end-of-run checks of client histories.
    fn finish(&mut self, w: &mut World);
}
