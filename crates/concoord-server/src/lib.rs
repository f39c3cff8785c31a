//! The replica process: a tokio shell around the pure consensus core
//! (`concoord-paxos`) and the object layer (`concoord-object`).
//!
//! One event loop per replica reads sockets and timers, feeds the core through
//! `Replica::step`, and carries out the effects through the barrier gate; a disk
//! writer thread makes the writes durable, one fdatasync for everything that came
//! while the previous one ran (group commit).

pub mod clock;
pub mod disk;
pub mod host;
pub mod metrics;
pub mod net;
pub mod server;
pub mod storage;
pub mod tls;

pub use server::{object_types, start, Config, Running, ServerError, DEFAULT_OBJECT};
