//! FIFO wake order: where an object promises first-come first-served hand-over
//! (`Lock`, `RLock`, `Semaphore` and `BoundedSemaphore` acquires, a `Queue`'s blocked
//! `get`s; `docs/objects.md` §6), a parked call is never woken while a call of the same
//! method that parked on the same object before it still waits.
//!
//! Source: the FIFO hand-over of the original ConCoord objects and of Python's
//! `threading` and `queue` waiters; fairness of locks as in Mellor-Crummey & Scott,
//! "Algorithms for scalable synchronization" (1991), where FIFO queueing rules out
//! starvation. The condition variable also wakes FIFO, but through its lock's queue,
//! where notified waiters and new acquirers meet; it is not checked here.
//!
//! Evidence: the object layer's answers, in log order, as the first replica to apply
//! each slot produced them: a `Parked` answer is the call's arrival (its position), a
//! later value its wake-up; an error (a cancel) or the end of the caller's session
//! takes it out of the line without a wake-up.

use super::{Check, Violation};
use std::collections::BTreeMap;

/// The methods whose parked calls wake in arrival order, per object.
pub const FIFO: [(&str, &str); 5] = [
    ("lock", "acquire_token"),
    ("rlock", "acquire_token"),
    ("semaphore", "acquire_token"),
    ("permits", "acquire_token"),
    ("queue", "get"),
];

/// The calls waiting in line: (session, request) -> (object, method, park position).
#[derive(Debug, Default)]
pub struct WakeOrder {
    parked: BTreeMap<(u64, u64), (String, String, u64)>,
}

impl WakeOrder {
    /// A call parked at `position` (a retry's cached answer keeps the first position).
    pub fn on_park(&mut self, call: (u64, u64), object: &str, method: &str, position: u64) {
        if FIFO.contains(&(object, method)) {
            self.parked.entry(call).or_insert((object.into(), method.into(), position));
        }
    }

    /// A parked call was answered at `position`: `woken` if with a value (a grant),
    /// not if taken back (a cancel's error).
    pub fn on_answer(&mut self, call: (u64, u64), position: u64, woken: bool) -> Check {
        let Some((object, method, parked_at)) = self.parked.remove(&call) else { return Ok(()) };
        if !woken {
            return Ok(());
        }
        let earlier = self
            .parked
            .iter()
            .find(|(_, (o, m, at))| *o == object && *m == method && *at < parked_at);
        match earlier {
            Some((other, (_, _, at))) => Err(Violation {
                checker: "fifo",
                detail: format!(
                    "{object}.{method} of session {} request {} (parked at position {parked_at}) \
                     was woken at position {position} while session {} request {} (parked at \
                     {at}) still waited",
                    call.0, call.1, other.0, other.1
                ),
            }),
            None => Ok(()),
        }
    }

    /// A session ended: its parked calls leave the line.
    pub fn on_session_end(&mut self, session: u64) {
        self.parked.retain(|(s, _), _| *s != session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_woken_ahead_of_an_earlier_one_is_caught() {
        let mut w = WakeOrder::default();
        w.on_park((1, 1), "lock", "acquire_token", 10);
        w.on_park((2, 1), "lock", "acquire_token", 11);
        w.on_park((3, 1), "queue", "get", 12);
        // A retry's cached answer keeps the first position.
        w.on_park((1, 1), "lock", "acquire_token", 13);
        assert_eq!(w.on_answer((3, 1), 14, true), Ok(()));
        assert!(w.on_answer((2, 1), 15, true).is_err());

        let mut w = WakeOrder::default();
        w.on_park((1, 1), "lock", "acquire_token", 10);
        w.on_park((2, 1), "lock", "acquire_token", 11);
        w.on_park((3, 1), "lock", "acquire_token", 12);
        // A cancelled call and an ended session leave the line.
        assert_eq!(w.on_answer((1, 1), 13, false), Ok(()));
        w.on_session_end(2);
        assert_eq!(w.on_answer((3, 1), 14, true), Ok(()));
        // Objects that promise no order are not checked.
        w.on_park((4, 1), "barrier", "wait", 15);
        w.on_park((5, 1), "barrier", "wait", 16);
        assert_eq!(w.on_answer((5, 1), 17, true), Ok(()));
    }
}
