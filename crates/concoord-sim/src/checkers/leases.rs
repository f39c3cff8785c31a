//! Session leases never expire early: a session ends by expiry only once cluster
//! time (the highest leader timestamp applied) is more than its lease past the last
//! command it sent, by the applied timestamps alone.
//!
//! Source: the lease contract of Chubby (Burrows, OSDI 2006, §2.8: a session lease is
//! a promise not to end the session before it runs out) and Gray & Cheriton, "Leases"
//! (SOSP 1989). Evidence: the commands in log order and the sessions the machine
//! reports ended, as the first replica to apply each slot saw them.

use super::{Check, Violation};
use concoord_wire::{Span, Time};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Leases {
    clock: Time,
    /// Live session -> (lease, time of its last command).
    sessions: BTreeMap<u64, (Span, Time)>,
}

impl Leases {
    /// A command stamped `timestamp` is applied: cluster time moves on.
    pub fn tick(&mut self, timestamp: Time) {
        self.clock = self.clock.max(timestamp);
    }

    /// A session opened, or sent a command, at the current cluster time.
    pub fn active(&mut self, session: u64, lease: Span) {
        let clock = self.clock;
        self.sessions.entry(session).or_insert((lease, clock)).1 = clock;
    }

    /// A session sent a command; unknown (ended) sessions are ignored.
    pub fn touch(&mut self, session: u64) {
        let clock = self.clock;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.1 = clock;
        }
    }

    /// A session expired at the current cluster time.
    pub fn expired(&mut self, session: u64) -> Check {
        let Some((lease, last)) = self.sessions.remove(&session) else { return Ok(()) };
        if self.clock.since(last) > lease {
            return Ok(());
        }
        Err(Violation {
            checker: "leases",
            detail: format!(
                "session {session} expired at cluster time {:?}, {:?} after its last command \
                 at {last:?}, within its lease {lease:?}",
                self.clock,
                self.clock.since(last)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_early_expiry_is_caught() {
        let mut l = Leases::default();
        l.tick(Time(1_000));
        l.active(1, Span(500));
        l.active(2, Span(500));
        l.tick(Time(1_400));
        l.touch(2);
        assert!(l.expired(1).is_err());
        l.tick(Time(1_901));
        assert_eq!(l.expired(2), Ok(()));
    }
}
