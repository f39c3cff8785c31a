//! ConCoord's consensus core: a Multi-Paxos replica as a pure state machine.
//!
//! Architecture Invariant: this crate does no IO, reads no clock, draws no OS
//! randomness and never depends on tokio. It orders opaque command bytes and knows
//! nothing of objects. `Replica::step(now, input, &mut effects)` is the whole API;
//! the shell (or the simulator) carries the effects out, in order.
//!
//! See `docs/consensus.md` for the protocol, its glossary and its safety argument.

mod ballot;
mod effect;
mod gate;
mod membership;
mod message;
mod options;
mod replica;
mod rng;
mod value;

pub use ballot::Ballot;
pub use effect::{DurableState, Effect, PersistOp, ReadId};
pub use gate::{EffectGate, Gated};
pub use membership::{effective_slot, Membership, Role, Schedule};
pub use message::{AcceptedEntry, Message, Snapshot};
pub use options::{Bug, Options};
pub use replica::{Input, Rejected, Replica, RoleKind};
pub use rng::Prng;
pub use value::{Command, ConfigChange, Fnv, Member, Value};
