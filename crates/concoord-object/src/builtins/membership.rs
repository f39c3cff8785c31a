//! `Membership`: the original ConCoord membership set (`concoord/object/membership.py`),
//! written with `#[object]`. Members are arbitrary `Value`s, kept in insertion order
//! without duplicates (equality is `Value` equality, so `1` and `1.0` are different
//! members, unlike in Python). It adds the getter the original lacked, `members()`.
//! It is not a failure detector and knows nothing about sessions: a member stays until
//! it is removed (see `MeshMembership` for epochs and strikes).

use super::log::join_str;
use crate::{ObjectError, Types, Value};
use serde::{Deserialize, Serialize};

/// A replicated set of members: `Membership()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    /// In insertion order, no duplicates.
    members: Vec<Value>,
}

#[concoord_object::object]
impl Membership {
    /// Adds `m` unless it is already a member; returns None either way.
    pub fn add(&mut self, m: Value) {
        if !self.members.contains(&m) {
            self.members.push(m);
        }
    }

    /// Removes `m`; returns None, or `KeyError(repr(m))` when it is not a member.
    pub fn remove(&mut self, m: Value) -> Result<(), ObjectError> {
        let index = self
            .members
            .iter()
            .position(|x| *x == m)
            .ok_or_else(|| ObjectError::key_error(m.to_string()))?;
        self.members.remove(index);
        Ok(())
    }

    /// The members, in the order they were added.
    pub fn members(&self) -> Vec<Value> {
        self.members.clone()
    }

    /// Python's `str(membership)`: the members' `str()`, space-joined.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        join_str(&self.members)
    }
}

/// Registers `Membership` and the original's `concoord.object.membership.Membership`.
pub fn register(types: &mut Types) {
    types.register::<Membership>(&["concoord.object.membership.Membership"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallId, Ctx, Object, ObjectType, Outcome};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    fn call(m: &mut Membership, method: &str, args: &[Value]) -> Outcome {
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(1), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(1), &mut wakes);
        let outcome = m.call(&mut ctx, method, args);
        assert!(wakes.is_empty(), "a membership never wakes anyone");
        outcome
    }

    fn text(s: &str) -> Value {
        Value::Str(s.into())
    }

    #[test]
    fn adds_idempotently_in_insertion_order_and_removes() {
        let mut m = Membership::construct(&[]).unwrap();
        assert_eq!(call(&mut m, "add", &[text("b")]), Outcome::Return(Value::Nil));
        assert_eq!(call(&mut m, "add", &[Value::Int(1)]), Outcome::Return(Value::Nil));
        assert_eq!(call(&mut m, "add", &[text("b")]), Outcome::Return(Value::Nil));
        call(&mut m, "add", &[text("a")]);
        let list = Value::List(vec![text("b"), Value::Int(1), text("a")]);
        assert_eq!(m.query("members", &[]), Some(Ok(list)));
        assert_eq!(m.query("__str__", &[]), Some(Ok(text("b 1 a"))));
        assert_eq!(call(&mut m, "remove", &[Value::Int(1)]), Outcome::Return(Value::Nil));
        assert_eq!(m.query("__str__", &[]), Some(Ok(text("b a"))));
        assert_eq!(m.query("add", &[]), None, "add is a command");
    }

    #[test]
    fn removing_a_non_member_is_a_key_error_with_its_repr() {
        let mut m = Membership::default();
        call(&mut m, "add", &[text("a")]);
        let error = ObjectError::key_error("'x'");
        assert_eq!(call(&mut m, "remove", &[text("x")]), Outcome::Raise(error));
        let error = ObjectError::key_error("1");
        assert_eq!(call(&mut m, "remove", &[Value::Int(1)]), Outcome::Raise(error));
        assert_eq!(m.members(), [text("a")]);
        let Outcome::Raise(e) = call(&mut m, "remove", &[]) else { panic!() };
        assert_eq!(e, ObjectError::type_error("remove() missing required argument 'm'"));
    }

    #[test]
    fn snapshot_restore_and_session_close() {
        let mut m = Membership::default();
        call(&mut m, "add", &[text("n1")]);
        call(&mut m, "add", &[Value::List(vec![text("10.0.0.1"), Value::Int(14000)])]);
        let restored = Membership::restore(&m.snapshot().unwrap()).unwrap();
        assert_eq!(restored, m);
        assert_eq!(restored.describe(), "n1 ['10.0.0.1', 14000]");
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(2), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(2), &mut wakes);
        m.session_closed(&mut ctx, SessionId(1));
        assert_eq!(m, restored, "members do not belong to sessions");
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["Membership", "concoord.object.membership.Membership"] {
            assert_eq!(types.construct(name, &[]).unwrap().type_name(), "Membership");
        }
    }
}
