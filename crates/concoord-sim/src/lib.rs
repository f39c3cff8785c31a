//! ConCoord's deterministic simulator: the real consensus core, N replicas and M
//! clients in one thread, with faults, driven by one seed, watched by checkers.
//!
//! Architecture Invariant: nothing here reads a clock or OS randomness; a seed
//! determines the whole run, so every failure replays exactly.

pub mod app;
pub mod checkers;
pub mod sim;

pub use sim::{Params, Report, Sim, SimOptions, Stats};

/// Runs one seed to completion.
pub fn run_seed(seed: u64, opts: &SimOptions) -> Report {
    Sim::new(seed, opts.clone()).run()
}
