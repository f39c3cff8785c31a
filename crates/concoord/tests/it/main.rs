//! End-to-end tests: real `concoord` processes on 127.0.0.1, driven by the Rust
//! client and by raw sockets. See `harness.rs` for how clusters are started.

// Each test holds `harness::serial()` for its whole run, across awaits, on purpose:
// the guard serializes tests that each run on their own runtime, so no deadlock is
// possible, and clusters must not compete for the machine's two cores.
#![allow(clippy::await_holding_lock)]

mod bounds;
mod cluster;
mod docs;
mod faults;
mod harness;
mod metrics;
mod naming;
mod netfault;
mod openreplica;
mod operator;
mod sessions;
mod tls;
mod tools;
mod wire;
