//! Mutual exclusion with fencing tokens: a lock (`Lock`, `RLock`) is held by one
//! session at a time, and every grant's token is above the token of every grant
//! before it; a semaphore's permits, held by several at once, still get tokens that
//! increase with the position that granted them (`check_tokens`).
//!
//! Source: the fencing-token discipline of lock services (Burrows, "The Chubby lock
//! service", OSDI 2006, §2.4 sequencers; Kleppmann, "How to do distributed locking",
//! 2016). Linearizability against the lock's own code implies it; this checker says
//! it directly, from the history alone, with a message a person can act on.

use super::linearizability::Operation;
use super::object_spec::{ObjectCall, ObjectResult, SESSION_CLOSED};
use super::{Check, Violation};
use concoord_object::Value;
use concoord_wire::SessionId;
use std::collections::BTreeSet;

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
