//! The sequential specification of a replicated object is the object's own code:
//! `ObjectSpec<T>` turns any `ObjectType` into a linearizability `Model` by
//! restoring the object from a snapshot, running the method, and comparing.
//!
//! Source: "the struct is the spec" (ARCHITECTURE.md, concoord-sim): linearizability (Herlihy & Wing
//! 1990) is checked against the very code every replica runs, so a divergence
//! between object and model is impossible by construction. It deliberately does not
//! model parking: a call that would park is not enabled in the sequential model, so
//! it suits objects whose blocking calls complete at a single point (a lock's
//! acquire); rendezvous objects such as barriers need their own checker.

use super::linearizability::Model;
use concoord_object::{CallId, Ctx, ObjectError, ObjectType, Outcome, Value};
use concoord_wire::{RequestNumber, SessionId, Slot, Time};
use std::marker::PhantomData;

/// The method name of the pseudo-call that records a session's end (closed or
/// expired): the object releases what the session held, as `session_closed` does.
pub const SESSION_CLOSED: &str = "<session closed>";

/// One call as the history records it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectCall {
    pub session: SessionId,
    pub method: String,
    pub args: Vec<Value>,
}

/// What the caller saw, and where the call took effect: its slot and its command
/// position (fencing tokens and other position-derived results depend on it).
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectResult {
    pub slot: Slot,
    pub position: u64,
    pub result: Result<Value, ObjectError>,
}

/// The model of `T`, starting from the instance `initial` (a snapshot).
#[derive(Debug)]
pub struct ObjectSpec<T> {
    initial: Vec<u8>,
    _type: PhantomData<fn() -> T>,
}

impl<T: ObjectType> ObjectSpec<T> {
    pub fn new(initial: &T) -> Result<ObjectSpec<T>, ObjectError> {
        Ok(ObjectSpec { initial: initial.snapshot()?, _type: PhantomData })
    }

    /// Runs `call` on the state; `None` when the call would park (not enabled now)
    /// or the state does not restore.
    fn run(
        &self,
        state: &[u8],
        call: &ObjectCall,
        slot: Slot,
        position: u64,
    ) -> Option<(Vec<u8>, Outcome)> {
        let mut object = T::restore(state).ok()?;
        let mut wakes = Vec::new();
        let id = CallId { session: call.session, request: RequestNumber(1) };
        let mut ctx = Ctx::at(id, Time(0), slot, position, &mut wakes);
        let outcome = if call.method == SESSION_CLOSED {
            object.session_closed(&mut ctx, call.session);
            Outcome::Return(Value::Nil)
        } else {
            object.call(&mut ctx, &call.method, &call.args)
        };
        if outcome == Outcome::Park {
            return None;
        }
        Some((object.snapshot().ok()?, outcome))
    }
}

impl<T: ObjectType> Model for ObjectSpec<T> {
    type State = Vec<u8>;
    type Op = ObjectCall;
    type Ret = ObjectResult;

    fn init(&self) -> Vec<u8> {
        self.initial.clone()
    }

    fn step(&self, state: &Vec<u8>, op: &ObjectCall, ret: &ObjectResult) -> Option<Vec<u8>> {
        let (next, outcome) = self.run(state, op, ret.slot, ret.position)?;
        let matches = match (&outcome, &ret.result) {
            (Outcome::Return(v), Ok(seen)) => v == seen,
            (Outcome::Raise(e), Err(seen)) => e == seen,
            _ => false,
        };
        matches.then_some(next)
    }

    fn step_pending(&self, state: &Vec<u8>, op: &ObjectCall) -> Option<Vec<u8>> {
        // The slot of a call nobody saw answered is unknown; results derived from it
        // are not compared, and state derived from it is an approximation.
        self.run(state, op, Slot::ZERO, 0).map(|(next, _)| next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::linearizability::{check, Operation, Verdict};
    use concoord_object::{decode_state, encode_state, MethodInfo, Object};
    use serde::{Deserialize, Serialize};

    /// A tiny register written by hand (the built-ins have their own tests).
    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Reg {
        value: i64,
    }

    impl Object for Reg {
        fn type_name(&self) -> &'static str {
            "Reg"
        }
        fn methods(&self) -> &'static [MethodInfo] {
            &[]
        }
        fn call(&mut self, _ctx: &mut Ctx<'_>, method: &str, args: &[Value]) -> Outcome {
            match (method, args) {
                ("set", [Value::Int(v)]) => {
                    self.value = *v;
                    Outcome::Return(Value::Nil)
                }
                ("get", []) => Outcome::Return(Value::Int(self.value)),
                _ => Outcome::Raise(ObjectError::attribute_error(method)),
            }
        }
        fn query(&self, _method: &str, _args: &[Value]) -> Option<Result<Value, ObjectError>> {
            None
        }
        fn session_closed(&mut self, _ctx: &mut Ctx<'_>, _session: SessionId) {}
        fn snapshot(&self) -> Result<Vec<u8>, ObjectError> {
            encode_state(self)
        }
    }

    impl ObjectType for Reg {
        const TYPE_NAME: &'static str = "Reg";
        fn construct(_args: &[Value]) -> Result<Self, ObjectError> {
            Ok(Reg::default())
        }
        fn restore(bytes: &[u8]) -> Result<Self, ObjectError> {
            decode_state(bytes)
        }
    }

    fn op(
        client: u64,
        invoke: u64,
        done: u64,
        method: &str,
        args: Vec<Value>,
        ret: Value,
    ) -> Operation<ObjectCall, ObjectResult> {
        Operation {
            client,
            invoke,
            complete: Some((
                done,
                ObjectResult { slot: Slot(done), position: done, result: Ok(ret) },
            )),
            op: ObjectCall { session: SessionId(client), method: method.into(), args },
        }
    }

    #[test]
    fn the_objects_own_code_accepts_linearizable_histories_and_rejects_stale_reads() {
        let spec = ObjectSpec::new(&Reg::default()).unwrap();
        let good = vec![
            op(1, 0, 10, "set", vec![Value::Int(5)], Value::Nil),
            op(2, 5, 15, "get", vec![], Value::Int(5)),
            op(2, 20, 30, "get", vec![], Value::Int(5)),
        ];
        assert_eq!(check(&spec, &good, 10_000), Verdict::Linearizable);
        let stale = vec![
            op(1, 0, 10, "set", vec![Value::Int(5)], Value::Nil),
            op(2, 20, 30, "get", vec![], Value::Int(0)),
        ];
        assert!(matches!(check(&spec, &stale, 10_000), Verdict::NotLinearizable { .. }));
    }
}
