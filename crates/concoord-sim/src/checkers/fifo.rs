//! FIFO wake order: where an object promises first-come first-served hand-over
//! (`Lock`, `RLock`, `Semaphore` and `BoundedSemaphore` acquires, a `Queue`'s blocked
//! `get`s; `docs/objects.md` §6), a parked call is never woken while a call of the same
//! method that parked on the same object before it still waits.
//!
//! Source: the FIFO hand-over of the original ConCoord objects and of Python's
//! `threading` and `queue` waiters; fairness of locks as in Mellor-Crummey & Scott,
//! "Algorithms for scalable synchronization" (1991), where FIFO queueing rules out
//! starvation.
//!
//! A `Condition` (`docs/objects.md` §6) has one line, its lock's queue, which calls join
//! in two ways: a parked `acquire` when it parks, a `wait` when a `notify` moves it (up
//! to `n` of the waits, the longest waiting first; `notify_all` all of them), behind
//! every call already in the queue. The lock goes to the head of the queue; the lock is
//! re-entrant per session, so the head's session's other queued calls take it with it,
//! in the same command. A wait woken before a notify moved it is caught as well.
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

/// The objects of the workload that are condition variables.
pub const CONDITIONS: [&str; 1] = ["cond"];

/// A call: (session, request).
type Call = (u64, u64);

/// One condition's calls, with the position at which each joined its list.
#[derive(Debug, Default)]
struct ConditionLine {
    /// The lock's queue, in the order calls joined it.
    queue: Vec<(Call, u64)>,
    /// Waits no notify has moved yet, in the order they parked.
    waiting: Vec<(Call, u64)>,
    /// The last grant of the lock: (position, session).
    granted: Option<(u64, u64)>,
}

/// The calls waiting in line: (session, request) -> (object, method, park position).
#[derive(Debug, Default)]
pub struct WakeOrder {
    parked: BTreeMap<Call, (String, String, u64)>,
    conditions: BTreeMap<String, ConditionLine>,
}

impl WakeOrder {
    /// A call parked at `position` (a retry's cached answer keeps the first position).
    pub fn on_park(&mut self, call: Call, object: &str, method: &str, position: u64) {
        if FIFO.contains(&(object, method)) {
            self.parked.entry(call).or_insert((object.into(), method.into(), position));
        }
        if CONDITIONS.contains(&object) {
            let line = self.conditions.entry(object.into()).or_default();
            let known = line.queue.iter().chain(&line.waiting).any(|(c, _)| *c == call);
            match method {
                _ if known => {}
                "acquire" => line.queue.push((call, position)),
                "wait" => line.waiting.push((call, position)),
                _ => {}
            }
        }
    }

    /// A `notify` on a condition ran at `position`: it moved the `count` longest
    /// waiting waits (all of them for `None`) to the back of the lock's queue.
    pub fn on_notify(&mut self, object: &str, count: Option<u64>, position: u64) {
        let Some(line) = self.conditions.get_mut(object) else { return };
        let count = count.map_or(line.waiting.len(), |n| (n as usize).min(line.waiting.len()));
        let moved: Vec<(Call, u64)> = line.waiting.drain(..count).collect();
        line.queue.extend(moved.into_iter().map(|(call, _)| (call, position)));
    }

    /// A parked call was answered at `position`: `woken` if with a value (a grant),
    /// not if taken back (a cancel's error).
    pub fn on_answer(&mut self, call: Call, position: u64, woken: bool) -> Check {
        if let Some((object, line)) = self
            .conditions
            .iter_mut()
            .find(|(_, line)| line.queue.iter().chain(&line.waiting).any(|(c, _)| *c == call))
        {
            return line.on_answer(object, call, position, woken);
        }
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
        for line in self.conditions.values_mut() {
            line.queue.retain(|((s, _), _)| *s != session);
            line.waiting.retain(|((s, _), _)| *s != session);
        }
    }
}

impl ConditionLine {
    fn on_answer(&mut self, object: &str, call: Call, position: u64, woken: bool) -> Check {
        if let Some(i) = self.waiting.iter().position(|(c, _)| *c == call) {
            let (_, parked_at) = self.waiting.remove(i);
            if !woken {
                return Ok(());
            }
            return Err(Violation {
                checker: "fifo",
                detail: format!(
                    "{object}.wait of session {} request {} (parked at position {parked_at}) \
                     returned at position {position} before a notify moved it to the lock's queue",
                    call.0, call.1
                ),
            });
        }
        let Some(i) = self.queue.iter().position(|(c, _)| *c == call) else { return Ok(()) };
        let (_, joined) = self.queue.remove(i);
        if !woken {
            return Ok(());
        }
        let with_head = self.granted == Some((position, call.0));
        if i > 0 && !with_head {
            let ((session, request), head_joined) = self.queue[0];
            return Err(Violation {
                checker: "fifo",
                detail: format!(
                    "{object}: session {} request {} (in the lock's queue since position \
                     {joined}) got the lock at position {position} while session {session} \
                     request {request} (in the queue since position {head_joined}) still waited",
                    call.0, call.1
                ),
            });
        }
        self.granted = Some((position, call.0));
        Ok(())
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

    #[test]
    fn a_condition_hands_its_lock_to_the_head_of_its_queue() {
        // Session 1 owns the lock; 2 and 3 wait, 4 parks an acquire; 1 notifies one.
        let mut w = WakeOrder::default();
        w.on_park((2, 1), "cond", "wait", 10);
        w.on_park((3, 1), "cond", "wait", 11);
        w.on_park((4, 1), "cond", "acquire", 12);
        w.on_notify("cond", Some(1), 13);
        // A retry's cached answer changes nothing.
        w.on_park((2, 1), "cond", "wait", 14);
        // The acquire parked before the notify: it goes first, then the notified wait.
        assert_eq!(w.on_answer((4, 1), 15, true), Ok(()));
        assert_eq!(w.on_answer((2, 1), 16, true), Ok(()));
        // A wait nobody notified must not return.
        let v = w.on_answer((3, 1), 17, true).unwrap_err();
        assert!(v.detail.contains("before a notify"), "{v}");

        // The notified waits jump ahead of the parked acquire (notify-jumps-queue).
        let mut w = WakeOrder::default();
        w.on_park((2, 1), "cond", "wait", 10);
        w.on_park((4, 1), "cond", "acquire", 12);
        w.on_notify("cond", None, 13);
        let v = w.on_answer((2, 1), 15, true).unwrap_err();
        assert_eq!(v.checker, "fifo");
        assert!(v.detail.contains("session 4 request 1"), "{v}");

        // The head's session re-enters with its other queued calls in the same command;
        // an ended session and a cancelled call leave the queue.
        let mut w = WakeOrder::default();
        w.on_park((4, 1), "cond", "acquire", 10);
        w.on_park((5, 1), "cond", "acquire", 11);
        w.on_park((4, 2), "cond", "acquire", 12);
        w.on_park((6, 1), "cond", "acquire", 13);
        w.on_park((7, 1), "cond", "acquire", 14);
        assert_eq!(w.on_answer((4, 1), 20, true), Ok(()));
        assert_eq!(w.on_answer((4, 2), 20, true), Ok(()));
        w.on_session_end(5);
        assert_eq!(w.on_answer((6, 1), 21, false), Ok(()));
        assert_eq!(w.on_answer((7, 1), 22, true), Ok(()));
        // Not in the same command, the head's session gets no such pass.
        let mut w = WakeOrder::default();
        w.on_park((4, 1), "cond", "acquire", 10);
        w.on_park((5, 1), "cond", "acquire", 11);
        w.on_park((4, 2), "cond", "acquire", 12);
        assert_eq!(w.on_answer((4, 1), 20, true), Ok(()));
        assert!(w.on_answer((4, 2), 21, true).is_err());
    }
}
