//! Condition variables: a `wait` returns only once its caller owns the condition's
//! lock again, so the caller's next `release` succeeds; and every wait returns True.
//!
//! Source: Python's `threading.Condition.wait` ("re-acquires the lock and returns");
//! Lampson & Redell, "Experience with Processes and Monitors in Mesa" (1980), where a
//! notified waiter resumes inside the monitor. A condition is a rendezvous: no
//! sequential model can place its waits, so this checker reads ownership from what
//! each session did next. The workload's clients release only what they acquired.

use super::linearizability::Operation;
use super::object_spec::{ObjectCall, ObjectResult};
use super::{Check, Violation};
use concoord_object::Value;
use concoord_wire::SessionId;
use std::collections::BTreeMap;

/// Checks a condition's history: per session, in completion order, a release that
/// follows a successful acquire or wait must succeed, and waits return True.
pub fn check(history: &[Operation<ObjectCall, ObjectResult>]) -> Check {
    let mut by_session: BTreeMap<SessionId, Vec<&Operation<ObjectCall, ObjectResult>>> =
        BTreeMap::new();
    for op in history {
        if op.complete.is_some() {
            by_session.entry(op.op.session).or_default().push(op);
        }
    }
    for (session, mut ops) in by_session {
        ops.sort_by_key(|o| o.complete.as_ref().map(|(t, _)| *t));
        let mut owns = false;
        for op in ops {
            let Some((_, result)) = &op.complete else { continue };
            match (op.op.method.as_str(), &result.result) {
                ("acquire", Ok(Value::Bool(true))) => owns = true,
                ("wait", Ok(Value::Bool(true))) => owns = true,
                ("wait", other) => {
                    return Err(Violation {
                        checker: "condition",
                        detail: format!("{session:?}: a wait returned {other:?}, not True"),
                    })
                }
                ("release", Err(e)) if owns => {
                    return Err(Violation {
                        checker: "condition",
                        detail: format!(
                            "{session:?} released after its acquire or wait returned, and got {e}: \
                             the wait returned without the lock"
                        ),
                    })
                }
                ("release", _) => owns = false,
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_object::ObjectError;
    use concoord_wire::Slot;

    fn op(
        session: u64,
        t: u64,
        method: &str,
        result: Result<Value, ObjectError>,
    ) -> Operation<ObjectCall, ObjectResult> {
        Operation {
            client: session,
            invoke: t,
            complete: Some((t, ObjectResult { slot: Slot(t), position: t, result })),
            op: ObjectCall { session: SessionId(session), method: method.into(), args: vec![] },
        }
    }

    #[test]
    fn a_wait_that_returns_without_the_lock_is_caught() {
        let good = [
            op(1, 1, "acquire", Ok(Value::Bool(true))),
            op(1, 2, "wait", Ok(Value::Bool(true))),
            op(1, 3, "release", Ok(Value::Nil)),
        ];
        assert_eq!(check(&good), Ok(()));
        let bad = [
            op(1, 1, "acquire", Ok(Value::Bool(true))),
            op(1, 2, "wait", Ok(Value::Bool(true))),
            op(1, 3, "release", Err(ObjectError::runtime_error("cannot release un-acquired lock"))),
        ];
        assert!(check(&bad).is_err());
        assert!(check(&[op(1, 1, "wait", Ok(Value::Nil))]).is_err());
    }
}
