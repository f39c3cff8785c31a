//! `Call`: the one small trait typed proxies (`CounterClient`, ...) are generic over,
//! so the simulator and the real client drive the same generated code.

use crate::error::ObjectError;
use crate::value::Value;
use std::fmt;

/// Why a call did not return a value.
#[derive(Clone, Debug, PartialEq)]
pub enum CallError {
    /// The method raised an exception (re-raise it as the matching exception).
    Raised(ObjectError),
    /// The service could not run the call (no replica reachable, bad token, ...).
    Unavailable(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Raised(e) => write!(f, "{e}"),
            CallError::Unavailable(why) => write!(f, "service unavailable: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<ObjectError> for CallError {
    fn from(e: ObjectError) -> CallError {
        CallError::Raised(e)
    }
}

/// Invokes `method` on the object instance named `object` with `args`, waiting for
/// its result (through a parked call if the method blocks).
pub trait Call {
    fn invoke(&mut self, object: &str, method: &str, args: Vec<Value>) -> Result<Value, CallError>;
}
