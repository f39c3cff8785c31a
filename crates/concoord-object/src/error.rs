//! `ObjectError`: an exception raised by an object method, as it travels to the
//! client: the exception type's name and its message.
//!
//! Clients re-raise it as the matching exception (Python: `ValueError`,
//! `RuntimeError`, `KeyError`...). It is a domain outcome of a call, not a failure
//! of the service.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectError {
    /// The exception type name, e.g. `"ValueError"`.
    pub kind: String,
    pub message: String,
}

impl ObjectError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> ObjectError {
        ObjectError { kind: kind.into(), message: message.into() }
    }

    pub fn value_error(message: impl Into<String>) -> ObjectError {
        ObjectError::new("ValueError", message)
    }

    pub fn runtime_error(message: impl Into<String>) -> ObjectError {
        ObjectError::new("RuntimeError", message)
    }

    pub fn key_error(message: impl Into<String>) -> ObjectError {
        ObjectError::new("KeyError", message)
    }

    pub fn type_error(message: impl Into<String>) -> ObjectError {
        ObjectError::new("TypeError", message)
    }

    pub fn index_error(message: impl Into<String>) -> ObjectError {
        ObjectError::new("IndexError", message)
    }

    /// An unknown method or object: Python's `AttributeError`.
    pub fn attribute_error(message: impl Into<String>) -> ObjectError {
        ObjectError::new("AttributeError", message)
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for ObjectError {}
