//! ConCoord's deterministic simulator: the real consensus core, N replicas and M
//! clients in one thread, with faults, driven by one seed, watched by checkers.
//!
//! Architecture Invariant: nothing here reads a clock or OS randomness; a seed
//! determines the whole run, so every failure replays exactly.

mod adversary;
pub mod app;
pub mod checkers;
mod faults;
pub mod sim;
mod workload;
mod world;

pub use sim::{Params, Report, Sim, SimOptions, Stats, Workload};

/// Runs one seed to completion. A panic inside the run (a failed assertion in a
/// replica's `check_invariants`, say) is reported as a violation of that seed.
pub fn run_seed(seed: u64, opts: &SimOptions) -> Report {
    let sim = Sim::new(seed, opts.clone());
    let params = sim.params().clone();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run())) {
        Ok(report) => report,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Report {
                seed,
                params,
                violation: Some(checkers::Violation { checker: "invariant", detail }),
                trace_hash: 0,
                stats: Stats::default(),
            }
        }
    }
}
