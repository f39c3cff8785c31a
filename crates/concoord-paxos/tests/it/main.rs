//! Scenario tests for the Multi-Paxos replica, run on a deterministic in-memory
//! cluster (`harness.rs`). Each test reads like the rule it checks; the harness
//! also checks agreement, in-order apply, the persist barrier and read freshness
//! on every step of every test.

mod harness;

mod election;
mod hostile;
mod load;
mod membership;
mod operator;
mod partition;
mod recovery;
