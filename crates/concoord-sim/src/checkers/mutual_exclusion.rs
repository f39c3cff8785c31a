//! Mutual exclusion with fencing tokens: a lock (`Lock`, `RLock`) is held by one
//! session at a time, and every grant's token is above the token of every grant
//! before it; a semaphore's permits, held by several at once, still get tokens that
//! increase with the position that granted them (`check_tokens`).
//!
//! Source: the fencing-token discipline of lock services (Burrows, "The Chubby lock
//! service", OSDI 2006, §2.4 sequencers; Kleppmann, "How to do distributed locking",
//! 2016). Linearizability against the lock's own code implies it; this checker says
//! it directly, from the history alone, with a message a person can act on.
//!
//! A `Condition`'s lock (re-entrant per session, like `RLock`) has no sequential model
//! (its `wait` is a rendezvous) and its `acquire` and `wait` return True, not a token:
//! [`ConditionLock`] follows it in log order instead, from the machine's answers as the
//! first replica to apply each slot produced them, and takes a grant's position (the
//! fencing token `docs/protocol.md` defines) as its token: one session owns the lock
//! at a time, a `wait` gives it up whole and gets its count back, and every new owner's
//! token is above the last.

use super::linearizability::Operation;
use super::object_spec::{ObjectCall, ObjectResult, SESSION_CLOSED};
use super::{Check, Violation};
use concoord_object::Value;
use concoord_wire::SessionId;
use std::collections::{BTreeMap, BTreeSet};

/// Checks one lock's history: grants are the completed `acquire_token` calls that
/// returned a token, releases are completed `release` calls and session ends.
pub fn check(history: &[Operation<ObjectCall, ObjectResult>]) -> Check {
    // A release nobody saw answered may have taken effect at an unknown slot: its
    // session's hold ends at an unknown point, so it cannot be held against others.
    let unanswered_release: BTreeSet<SessionId> = history
        .iter()
        .filter(|op| op.complete.is_none() && op.op.method == "release")
        .map(|op| op.op.session)
        .collect();
    // (position, kind, session): grants and releases in the order they took effect.
    let mut events: Vec<(u64, bool, SessionId, i64)> = Vec::new();
    for op in history {
        let Some((_, result)) = &op.complete else { continue };
        match (op.op.method.as_str(), &result.result) {
            ("acquire_token", Ok(Value::Int(token))) => {
                events.push((result.position, true, op.op.session, *token));
            }
            ("release", Ok(_)) => events.push((result.position, false, op.op.session, 0)),
            (m, _) if m == SESSION_CLOSED => {
                events.push((result.position, false, op.op.session, 0))
            }
            _ => {}
        }
    }
    // At one position, a release (or a session's end) comes before the grant it enables.
    events.sort_by_key(|(position, grant, _, _)| (*position, *grant));
    let mut holder: Option<SessionId> = None;
    let mut last_token: Option<i64> = None;
    for (position, grant, session, token) in events {
        if !grant {
            if holder == Some(session) {
                holder = None;
            }
            continue;
        }
        if let Some(h) = holder.filter(|h| !unanswered_release.contains(h)) {
            return Err(Violation {
                checker: "mutual_exclusion",
                detail: format!(
                    "{session:?} was granted the lock at position {position} while {h:?} held it"
                ),
            });
        }
        if last_token.is_some_and(|t| token <= t) {
            return Err(Violation {
                checker: "mutual_exclusion",
                detail: format!(
                    "fencing token {token} granted at position {position} is not above the previous {last_token:?}"
                ),
            });
        }
        holder = Some(session);
        last_token = Some(token);
    }
    Ok(())
}

/// Checks the fencing tokens of a counting object (a semaphore's permits), which
/// several sessions hold at once: ordered by the position that granted them, tokens
/// increase strictly from one position to the next. Grants at one position (a release
/// that wakes several waiters) share that position's token.
pub fn check_tokens(history: &[Operation<ObjectCall, ObjectResult>]) -> Check {
    let mut grants: Vec<(u64, i64)> = history
        .iter()
        .filter(|op| op.op.method == "acquire_token")
        .filter_map(|op| match &op.complete {
            Some((_, ObjectResult { position, result: Ok(Value::Int(token)), .. })) => {
                Some((*position, *token))
            }
            _ => None,
        })
        .collect();
    grants.sort();
    for pair in grants.windows(2) {
        let ((p0, t0), (p1, t1)) = (pair[0], pair[1]);
        if (p1 > p0 && t1 <= t0) || (p1 == p0 && t1 != t0) {
            return Err(Violation {
                checker: "fencing_tokens",
                detail: format!(
                    "token {t1} granted at position {p1} after token {t0} at position {p0}:                      fencing tokens must increase with the grant's position"
                ),
            });
        }
    }
    Ok(())
}

/// A call: (session, request).
type Call = (u64, u64);

/// A condition's lock, followed in log order.
#[derive(Debug, Default)]
pub struct ConditionLock {
    /// The owning session, its recursion count, and the position that granted it.
    owner: Option<(u64, u64, u64)>,
    /// Parked calls and the count each will own once granted: 1 for an `acquire`, the
    /// count given up for a `wait`.
    parked: BTreeMap<Call, u64>,
    /// The token (position) of the last grant to a new owner.
    last_token: Option<u64>,
}

impl ConditionLock {
    /// Whether `call` is parked on the lock (its next answer is a wake-up or a drop).
    pub fn is_parked(&self, call: Call) -> bool {
        self.parked.contains_key(&call)
    }

    /// A command `method` by `call` ran at `position` and was answered `granted` (an
    /// `acquire` that returned True), `released` (a `release` that returned), or
    /// `parked`.
    pub fn on_call(&mut self, call: Call, method: &str, answer: Answer, position: u64) -> Check {
        match (method, answer) {
            ("acquire", Answer::Granted) => self.grant(call.0, 1, position),
            ("acquire", Answer::Parked) => {
                self.parked.insert(call, 1);
                Ok(())
            }
            ("release", Answer::Returned) => match self.owner {
                Some((session, count, at)) if session == call.0 => {
                    self.owner = (count > 1).then_some((session, count - 1, at));
                    Ok(())
                }
                other => Err(self.violation(format!(
                    "session {} released the lock at position {position}, owned by {other:?}",
                    call.0
                ))),
            },
            ("wait", Answer::Parked) => match self.owner.take() {
                Some((session, count, _)) if session == call.0 => {
                    self.parked.insert(call, count);
                    Ok(())
                }
                other => Err(self.violation(format!(
                    "session {} waited at position {position} on a lock owned by {other:?}",
                    call.0
                ))),
            },
            _ => Ok(()),
        }
    }

    /// A parked call was answered at `position`: with True (`woken`), or taken back.
    pub fn on_answer(&mut self, call: Call, woken: bool, position: u64) -> Check {
        let Some(count) = self.parked.remove(&call) else { return Ok(()) };
        if woken {
            self.grant(call.0, count, position)
        } else {
            Ok(())
        }
    }

    /// A session ended: its lock is free and its parked calls are gone.
    pub fn on_session_end(&mut self, session: u64) {
        if self.owner.is_some_and(|(s, _, _)| s == session) {
            self.owner = None;
        }
        self.parked.retain(|(s, _), _| *s != session);
    }

    fn grant(&mut self, session: u64, count: u64, position: u64) -> Check {
        match self.owner {
            // Re-entry: at once, or with the head of the queue in the same command.
            Some((s, c, at)) if s == session => {
                self.owner = Some((s, c + count, at));
                Ok(())
            }
            Some((s, _, at)) => Err(self.violation(format!(
                "session {session} got the lock at position {position} while session {s} \
                 owned it (since position {at})"
            ))),
            None if self.last_token.is_some_and(|t| position <= t) => Err(self.violation(format!(
                "session {session} got the lock with token {position}, not above the \
                     previous {:?}",
                self.last_token
            ))),
            None => {
                self.owner = Some((session, count, position));
                self.last_token = Some(position);
                Ok(())
            }
        }
    }

    fn violation(&self, detail: String) -> Violation {
        Violation { checker: "mutual_exclusion", detail: format!("object cond: {detail}") }
    }
}

/// How a condition's command was answered, for [`ConditionLock::on_call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `acquire` returned True.
    Granted,
    /// It returned a value other than True (a `release`, a `notify`, a refused
    /// non-blocking `acquire`).
    Returned,
    Parked,
    /// It raised.
    Raised,
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_wire::Slot;

    fn op(
        session: u64,
        method: &str,
        slot: u64,
        ret: Value,
    ) -> Operation<ObjectCall, ObjectResult> {
        Operation {
            client: session,
            invoke: slot,
            complete: Some((
                slot,
                ObjectResult { slot: Slot(slot), position: slot, result: Ok(ret) },
            )),
            op: ObjectCall { session: SessionId(session), method: method.into(), args: vec![] },
        }
    }

    #[test]
    fn overlapping_holders_and_stale_tokens_are_caught() {
        let good = vec![
            op(1, "acquire_token", 3, Value::Int(3)),
            op(1, "release", 5, Value::Nil),
            op(2, "acquire_token", 5, Value::Int(5)),
            op(2, SESSION_CLOSED, 9, Value::Nil),
            op(3, "acquire_token", 9, Value::Int(9)),
        ];
        assert_eq!(check(&good), Ok(()));
        let overlap = vec![
            op(1, "acquire_token", 3, Value::Int(3)),
            op(2, "acquire_token", 4, Value::Int(4)),
        ];
        assert!(check(&overlap).is_err());
        let stale = vec![
            op(1, "acquire_token", 3, Value::Int(3)),
            op(1, "release", 4, Value::Nil),
            op(2, "acquire_token", 5, Value::Int(2)),
        ];
        assert!(check(&stale).is_err());
    }

    #[test]
    fn a_condition_lock_has_one_owner_and_a_wait_gives_it_up_whole() {
        let mut c = ConditionLock::default();
        assert_eq!(c.on_call((1, 1), "acquire", Answer::Granted, 10), Ok(()));
        assert_eq!(c.on_call((1, 2), "acquire", Answer::Granted, 11), Ok(()));
        assert_eq!(c.on_call((2, 1), "acquire", Answer::Parked, 12), Ok(()));
        // Session 1 waits: the lock goes to session 2 whole (count 2 given up).
        assert_eq!(c.on_call((1, 3), "wait", Answer::Parked, 13), Ok(()));
        assert!(c.is_parked((2, 1)));
        assert_eq!(c.on_answer((2, 1), true, 13), Ok(()));
        // Session 2 releases; the notified wait gets the lock back with count 2.
        assert_eq!(c.on_call((2, 2), "release", Answer::Returned, 15), Ok(()));
        assert_eq!(c.on_answer((1, 3), true, 15), Ok(()));
        assert_eq!(c.on_call((1, 4), "release", Answer::Returned, 16), Ok(()));
        assert_eq!(c.on_call((1, 5), "release", Answer::Returned, 17), Ok(()));
        // A session's end frees the lock.
        assert_eq!(c.on_call((3, 1), "acquire", Answer::Granted, 18), Ok(()));
        c.on_session_end(3);
        assert_eq!(c.on_call((4, 1), "acquire", Answer::Granted, 19), Ok(()));

        // A waiter woken while another session owns the lock.
        let mut c = ConditionLock::default();
        c.on_call((1, 1), "acquire", Answer::Granted, 10).unwrap();
        c.on_call((1, 2), "wait", Answer::Parked, 11).unwrap();
        c.on_call((2, 1), "acquire", Answer::Granted, 12).unwrap();
        let v = c.on_answer((1, 2), true, 13).unwrap_err();
        assert_eq!(v.checker, "mutual_exclusion");
        assert!(v.detail.contains("while session 2 owned it"), "{v}");
        // A release of a lock the session does not own, and a stale token.
        let mut c = ConditionLock::default();
        assert!(c.on_call((1, 1), "release", Answer::Returned, 10).is_err());
        c.on_call((1, 2), "acquire", Answer::Granted, 11).unwrap();
        c.on_call((1, 3), "release", Answer::Returned, 12).unwrap();
        assert!(c.on_call((2, 1), "acquire", Answer::Granted, 11).is_err());
    }

    #[test]
    fn a_shared_or_stale_permit_token_is_caught() {
        let good = vec![
            op(1, "acquire_token", 3, Value::Int(3)),
            op(2, "acquire_token", 3, Value::Int(3)),
            op(3, "acquire_token", 5, Value::Int(5)),
        ];
        assert_eq!(check_tokens(&good), Ok(()));
        let shared = vec![
            op(1, "acquire_token", 3, Value::Int(3)),
            op(2, "acquire_token", 4, Value::Int(3)),
        ];
        assert!(check_tokens(&shared).is_err());
    }
}
