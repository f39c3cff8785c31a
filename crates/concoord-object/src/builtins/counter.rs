//! `Counter`: the original ConCoord counter (`concoord/object/counter.py`), written
//! with `#[object]`. It is the smallest built-in and the macro's reference example;
//! it is not a general number type: the value is an `i64`, and leaving its range is an
//! `OverflowError` where Python's unbounded int would grow.

use crate::ObjectError;
use serde::{Deserialize, Serialize};

/// A replicated integer: `Counter(value=0)` in the original.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    /// `__init__(value=0)`.
    #[concoord(constructor)]
    pub fn new(value: Option<i64>) -> Counter {
        Counter { value: value.unwrap_or(0) }
    }

    /// Adds one; returns None.
    pub fn increment(&mut self) -> Result<(), ObjectError> {
        self.value = self.value.checked_add(1).ok_or_else(overflow)?;
        Ok(())
    }

    /// Subtracts one; returns None.
    pub fn decrement(&mut self) -> Result<(), ObjectError> {
        self.value = self.value.checked_sub(1).ok_or_else(overflow)?;
        Ok(())
    }

    pub fn getvalue(&self) -> i64 {
        self.value
    }

    /// Python's `str(counter)`.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        format!("The counter value is {}", self.value)
    }
}

fn overflow() -> ObjectError {
    ObjectError::new("OverflowError", "the counter value left the 64-bit integer range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallId, Ctx, MethodInfo, MethodKind, Object, ObjectType, Outcome, Value};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    fn call(counter: &mut Counter, method: &str, args: &[Value]) -> Outcome {
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(1), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(1), &mut wakes);
        let outcome = counter.call(&mut ctx, method, args);
        assert!(wakes.is_empty(), "a counter never wakes anyone");
        outcome
    }

    #[test]
    fn counts_up_and_down_like_the_original() {
        let mut counter = Counter::construct(&[]).unwrap();
        assert_eq!(call(&mut counter, "increment", &[]), Outcome::Return(Value::Nil));
        assert_eq!(call(&mut counter, "increment", &[]), Outcome::Return(Value::Nil));
        assert_eq!(call(&mut counter, "decrement", &[]), Outcome::Return(Value::Nil));
        assert_eq!(call(&mut counter, "getvalue", &[]), Outcome::Return(Value::Int(1)));
        assert_eq!(counter.query("getvalue", &[]), Some(Ok(Value::Int(1))));
        let text = Value::Str("The counter value is 1".into());
        assert_eq!(counter.query("__str__", &[]), Some(Ok(text)));
        assert_eq!(counter.query("increment", &[]), None, "a command is not a query");
    }

    #[test]
    fn the_initial_value_defaults_to_zero() {
        assert_eq!(Counter::construct(&[]).unwrap().getvalue(), 0);
        assert_eq!(Counter::construct(&[Value::Nil]).unwrap().getvalue(), 0);
        assert_eq!(Counter::construct(&[Value::Int(-7)]).unwrap().getvalue(), -7);
        let e = Counter::construct(&[Value::Str("7".into())]).unwrap_err();
        assert_eq!(e, ObjectError::type_error("Counter() argument 'value': expected int, got str"));
        let e = Counter::construct(&[Value::Int(1), Value::Int(2)]).unwrap_err();
        assert_eq!(e, ObjectError::type_error("Counter() takes 1 arguments but 2 were given"));
    }

    #[test]
    fn leaving_the_i64_range_raises_instead_of_wrapping() {
        let mut counter = Counter::new(Some(i64::MAX));
        let Outcome::Raise(e) = call(&mut counter, "increment", &[]) else {
            panic!("incrementing i64::MAX must raise");
        };
        assert_eq!(e.kind, "OverflowError");
        assert_eq!(counter.getvalue(), i64::MAX, "a raising command changes nothing");
        let mut counter = Counter::new(Some(i64::MIN));
        assert!(matches!(call(&mut counter, "decrement", &[]), Outcome::Raise(_)));
    }

    #[test]
    fn describes_its_methods_and_rejects_unknown_ones() {
        let counter = Counter::default();
        assert_eq!(counter.type_name(), "Counter");
        let command = |name| MethodInfo { name, kind: MethodKind::Command, args: &[] };
        let query = |name| MethodInfo { name, kind: MethodKind::Query, args: &[] };
        assert_eq!(
            counter.methods(),
            [command("increment"), command("decrement"), query("getvalue"), query("__str__")]
        );
        let mut counter = counter;
        let Outcome::Raise(e) = call(&mut counter, "describe", &[]) else {
            panic!("the Rust name of `__str__` is not a wire name");
        };
        assert_eq!(e, ObjectError::attribute_error("'Counter' object has no attribute 'describe'"));
    }

    #[test]
    fn snapshot_and_restore_keep_the_value() {
        let mut counter = Counter::new(Some(41));
        call(&mut counter, "increment", &[]);
        let restored = Counter::restore(&counter.snapshot().unwrap()).unwrap();
        assert_eq!(restored, counter);
        assert_eq!(restored.getvalue(), 42);
        assert!(Counter::restore(b"not a snapshot").is_err());
    }
}
