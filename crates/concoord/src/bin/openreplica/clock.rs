//! The only place openreplica reads the clock or sleeps: connection deadlines, the
//! pause between polls of a starting ssh master, and log file names.

use std::time::{Duration, Instant};

#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)]
pub fn pause(d: Duration) {
    std::thread::sleep(d)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
#[allow(clippy::disallowed_methods)]
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
