//! The one place the replica process reads the clock.
//!
//! `Time` is microseconds since the Unix epoch, read once at start-up from the wall
//! clock and advanced from then on by the monotonic clock: so it never goes
//! backwards within a process, and replicas' readings are comparable (up to clock
//! skew). That matters because the leader stamps its time into log entries and
//! session leases are measured with it: after a failover, the new leader's time
//! continues roughly where the old one's stopped.

use concoord_wire::Time;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_micros: u64,
}

impl Clock {
    #[allow(clippy::disallowed_methods)]
    pub fn new() -> Clock {
        let start_micros =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        Clock { start: Instant::now(), start_micros }
    }

    /// Now, as a core `Time`.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> Time {
        Time(self.start_micros.saturating_add(self.start.elapsed().as_micros() as u64))
    }

    /// The tokio instant at which `Time` `at` is reached (for sleeping until a deadline).
    pub fn instant_at(&self, at: Time) -> tokio::time::Instant {
        let offset = at.0.saturating_sub(self.start_micros);
        // Deadlines of `Time(u64::MAX)` mean "never": cap them at a day away.
        let offset = offset.min(self.start.elapsed().as_micros() as u64 + 86_400_000_000);
        tokio::time::Instant::from_std(self.start + std::time::Duration::from_micros(offset))
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}
