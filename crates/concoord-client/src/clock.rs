//! The one place the client reads the clock and the OS's randomness. Everything
//! else takes `now` (and the nonce seed) as arguments, so the client's decisions
//! (`core`) are a function of their inputs and are tested with made-up times.

use tokio::time::Instant;

/// Now, on tokio's monotonic clock (the one `sleep_until` measures against).
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// A seed for session nonces that differs between clients, also between two
/// clients of one process: `RandomState` keys are random per process and distinct
/// per instance. Nonces only need to be unlikely to collide, not unpredictable.
pub(crate) fn nonce_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}
