//! `Stack`: the original ConCoord stack (`concoord/object/stack.py`), written with
//! `#[object]`. Items are arbitrary `Value`s. Two of the original's bugs are fixed:
//! `pop()` returns the removed item (the original returned None), and `__str__`
//! returns a string (the original returned the list itself). It is not a deque: there
//! is no blocking pop, no peek and no size bound beyond the log's.

use crate::{ObjectError, Types, Value};
use serde::{Deserialize, Serialize};

/// A replicated LIFO stack: `Stack()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// Bottom first.
    items: Vec<Value>,
}

#[concoord_object::object]
impl Stack {
    /// Pushes `x`; returns None.
    pub fn append(&mut self, x: Value) {
        self.items.push(x);
    }

    /// Removes and returns the top item; `IndexError` when the stack is empty.
    pub fn pop(&mut self) -> Result<Value, ObjectError> {
        self.items.pop().ok_or_else(|| ObjectError::index_error("pop from empty list"))
    }

    pub fn get_size(&self) -> usize {
        self.items.len()
    }

    /// The items as a list, bottom first.
    pub fn get_stack(&self) -> Vec<Value> {
        self.items.clone()
    }

    /// Python's `str(stack)`: the `str` of the list, e.g. `[1, 'a']`.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        Value::List(self.items.clone()).to_string()
    }
}

/// Registers `Stack` and the original's `concoord.object.stack.Stack`.
pub fn register(types: &mut Types) {
    types.register::<Stack>(&["concoord.object.stack.Stack"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallId, Ctx, Object, ObjectType, Outcome};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    fn call(stack: &mut Stack, method: &str, args: &[Value]) -> Outcome {
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(1), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(1), &mut wakes);
        let outcome = stack.call(&mut ctx, method, args);
        assert!(wakes.is_empty(), "a stack never wakes anyone");
        outcome
    }

    #[test]
    fn pushes_and_pops_returning_the_item() {
        let mut stack = Stack::construct(&[]).unwrap();
        assert_eq!(call(&mut stack, "append", &[Value::Int(1)]), Outcome::Return(Value::Nil));
        call(&mut stack, "append", &[Value::Str("a".into())]);
        call(&mut stack, "append", &[Value::Nil]);
        assert_eq!(stack.query("get_size", &[]), Some(Ok(Value::Int(3))));
        let list = Value::List(vec![Value::Int(1), Value::Str("a".into()), Value::Nil]);
        assert_eq!(stack.query("get_stack", &[]), Some(Ok(list)));
        let text = Value::Str("[1, 'a', None]".into());
        assert_eq!(stack.query("__str__", &[]), Some(Ok(text)));
        assert_eq!(call(&mut stack, "pop", &[]), Outcome::Return(Value::Nil));
        assert_eq!(call(&mut stack, "pop", &[]), Outcome::Return(Value::Str("a".into())));
        assert_eq!(call(&mut stack, "pop", &[]), Outcome::Return(Value::Int(1)));
        assert_eq!(stack.query("__str__", &[]), Some(Ok(Value::Str("[]".into()))));
        assert_eq!(stack.query("pop", &[]), None, "pop is a command");
    }

    #[test]
    fn popping_an_empty_stack_is_an_index_error() {
        let mut stack = Stack::default();
        let error = ObjectError::index_error("pop from empty list");
        assert_eq!(call(&mut stack, "pop", &[]), Outcome::Raise(error));
        let Outcome::Raise(e) = call(&mut stack, "append", &[]) else { panic!() };
        assert_eq!(e, ObjectError::type_error("append() missing required argument 'x'"));
        assert_eq!(stack.get_size(), 0);
    }

    #[test]
    fn snapshot_restore_and_session_close() {
        let mut stack = Stack::default();
        call(&mut stack, "append", &[Value::Map(vec![(Value::Int(1), Value::Float(2.5))])]);
        call(&mut stack, "append", &[Value::Bytes(vec![0, 1])]);
        let restored = Stack::restore(&stack.snapshot().unwrap()).unwrap();
        assert_eq!(restored, stack);
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(2), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(2), &mut wakes);
        stack.session_closed(&mut ctx, SessionId(1));
        assert_eq!(stack, restored, "a stack holds nothing per session");
        assert!(wakes.is_empty());
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["Stack", "concoord.object.stack.Stack"] {
            assert_eq!(types.construct(name, &[]).unwrap().type_name(), "Stack");
        }
    }
}
