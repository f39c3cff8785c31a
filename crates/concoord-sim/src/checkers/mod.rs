//! Checkers: one invariant per file, each citing where the invariant comes from.
//!
//! The simulator feeds them what happened (messages sent, slots applied, client
//! histories); they never look at a replica's private state, so a replica bug
//! cannot hide from them by corrupting what they read.

pub mod agreement;
pub mod barrier;
pub mod cluster_identity;
pub mod condition;
pub mod durability;
pub mod exactly_once;
pub mod fifo;
pub mod leases;
pub mod linearizability;
pub mod liveness;
pub mod mesh;
pub mod mutual_exclusion;
pub mod object_spec;
pub mod oracle;
pub mod prefix;
pub mod stable_leader;
pub mod state;
pub mod step_down;
pub mod timestamps;

use std::fmt;

/// A broken invariant: which checker found it and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub checker: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.checker, self.detail)
    }
}

pub type Check = Result<(), Violation>;
