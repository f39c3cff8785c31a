//! ConCoord's object layer: the object contract, dynamic values, and (in
//! `machine`) the replicated state machine that hosts named object instances with
//! sessions, exactly-once execution and parked calls.
//!
//! Architecture Invariant: pure. No IO, no clock, no randomness, no tokio; it never
//! sees ballots or slots except the slot handed in with each applied entry (for
//! fencing tokens). Cluster time is the leader's timestamp from the log entry.

// Generated code names this crate `::concoord_object`, also inside the crate itself.
extern crate self as concoord_object;

pub mod builtins;
mod call;
mod error;
pub mod machine;
mod object;
pub mod protocol;
mod value;

pub use call::{Call, CallError};
pub use concoord_macros::object;
pub use error::ObjectError;
pub use object::{
    arg, arity, decode_state, encode_state, Blocking, CallId, Ctx, IntoOutcome, MethodInfo,
    MethodKind, Object, ObjectType, Outcome, Types, Wake,
};
pub use value::{FromValue, IntoValue, Value};

/// Paths the `#[object]` macro's generated code needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use concoord_wire::SessionId;
}
