//! Mesh membership waits: a `wait` that returns an epoch was woken by the membership
//! change that produced that epoch, in the same command.
//!
//! Source: the original ConCoord's MeshMembership (`approve_join` wakes the group's
//! waiters with the new epoch); a rendezvous has no sequential model, so this checker
//! matches each wake-up to the change that caused it, by log position.

use super::linearizability::Operation;
use super::object_spec::{ObjectCall, ObjectResult};
use super::{Check, Violation};
use concoord_object::Value;
use std::collections::BTreeMap;

pub fn check(history: &[Operation<ObjectCall, ObjectResult>]) -> Check {
    let mut changes: BTreeMap<u64, i64> = BTreeMap::new();
    let mut unanswered_changes = false;
    for op in history {
        let changing = op.op.method == "approve_join" || op.op.method == "notify_failure";
        if !changing {
            continue;
        }
        match &op.complete {
            None => unanswered_changes = true,
            Some((_, result)) => {
                if let Ok(Value::List(items)) = &result.result {
                    if let (Some(Value::Bool(true)), Some(Value::Int(epoch))) =
                        (items.first(), items.get(1))
                    {
                        changes.insert(result.position, *epoch);
                    }
                }
            }
        }
    }
    for op in history.iter().filter(|o| o.op.method == "wait") {
        let Some((_, result)) = &op.complete else { continue };
        let Ok(Value::Int(epoch)) = &result.result else { continue };
        match changes.get(&result.position) {
            Some(e) if e == epoch => {}
            // The change's own caller may never have seen its answer.
            None if unanswered_changes => {}
            other => {
                return Err(Violation {
                    checker: "mesh",
                    detail: format!(
                        "a wait returned epoch {epoch} at position {}, but the change there \
                         produced {other:?}",
                        result.position
                    ),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_wire::{SessionId, Slot};

    fn op(method: &str, position: u64, result: Value) -> Operation<ObjectCall, ObjectResult> {
        let r = ObjectResult { slot: Slot(position), position, result: Ok(result) };
        Operation {
            client: 1,
            invoke: position,
            complete: Some((position, r)),
            op: ObjectCall { session: SessionId(1), method: method.into(), args: vec![] },
        }
    }

    #[test]
    fn a_wake_up_must_carry_the_epoch_of_the_change_that_caused_it() {
        let joined = Value::List(vec![Value::Bool(true), Value::Int(3)]);
        assert_eq!(
            check(&[op("approve_join", 7, joined.clone()), op("wait", 7, Value::Int(3))]),
            Ok(())
        );
        assert!(
            check(&[op("approve_join", 7, joined.clone()), op("wait", 7, Value::Int(2))]).is_err()
        );
        assert!(check(&[op("approve_join", 7, joined), op("wait", 8, Value::Int(3))]).is_err());
    }
}
