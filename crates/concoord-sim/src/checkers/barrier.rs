//! Barrier rounds: the waits released together form one round of exactly `parties`
//! arrivals, each with a distinct arrival index below `parties`.
//!
//! Source: the barrier's specification (Python's `threading.Barrier`; Mellor-Crummey &
//! Scott 1991). A barrier is a rendezvous: no sequential model can place a wait that
//! returns only when others arrive, so this checker reads the rounds from the history
//! instead. Waits released by one command share its position; that is a round.

use super::linearizability::Operation;
use super::object_spec::{ObjectCall, ObjectResult};
use super::{Check, Violation};
use concoord_object::Value;
use std::collections::BTreeMap;

/// Checks the completed `wait` calls of a barrier of `parties`.
pub fn check(history: &[Operation<ObjectCall, ObjectResult>], parties: i64) -> Check {
    let mut rounds: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for op in history.iter().filter(|o| o.op.method == "wait") {
        let Some((_, result)) = &op.complete else { continue };
        match &result.result {
            Ok(Value::Int(index)) => rounds.entry(result.position).or_default().push(*index),
            other => {
                return Err(Violation {
                    checker: "barrier",
                    detail: format!("a barrier wait returned {other:?}, not an arrival index"),
                })
            }
        }
    }
    for (position, mut indices) in rounds {
        indices.sort_unstable();
        let distinct = indices.windows(2).all(|w| w[0] != w[1]);
        let in_range = indices.iter().all(|i| (0..parties).contains(i));
        if !distinct || !in_range || indices.len() as i64 > parties {
            return Err(Violation {
                checker: "barrier",
                detail: format!(
                    "the round released at position {position} returned indices {indices:?} \
                     (parties {parties})"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_wire::{SessionId, Slot};

    fn wait(session: u64, position: u64, index: i64) -> Operation<ObjectCall, ObjectResult> {
        let result = ObjectResult { slot: Slot(position), position, result: Ok(Value::Int(index)) };
        Operation {
            client: session,
            invoke: 0,
            complete: Some((position, result)),
            op: ObjectCall { session: SessionId(session), method: "wait".into(), args: vec![] },
        }
    }

    #[test]
    fn rounds_must_have_distinct_indices_below_parties() {
        assert_eq!(check(&[wait(1, 5, 0), wait(2, 5, 1), wait(3, 9, 0)], 2), Ok(()));
        assert!(check(&[wait(1, 5, 0), wait(2, 5, 0)], 2).is_err());
        assert!(check(&[wait(1, 5, 0), wait(2, 5, 1), wait(3, 5, 1)], 2).is_err());
        assert!(check(&[wait(1, 5, 2)], 2).is_err());
    }
}
