//! `Log`: the original ConCoord log (`concoord/object/log.py`), written with
//! `#[object]`. It keeps the original's documented behaviour, including that `write`
//! *replaces* the whole log with its one entry and that `read` returns the entries'
//! `str()` joined by spaces (a string, not a list). Unlike the original it is bounded:
//! at most `LOG_ENTRIES_MAX` entries, since every entry is replicated and snapshotted.
//! It is not an append-only audit log: `write` discards history.

use crate::{ObjectError, Types, Value};
use serde::{Deserialize, Serialize};

/// The most entries a `Log` holds; `append` beyond it raises `RuntimeError`.
pub const LOG_ENTRIES_MAX: usize = 100_000;

/// A replicated list of entries: `Log()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Log {
    entries: Vec<Value>,
}

#[concoord_object::object]
impl Log {
    /// Replaces the whole log with `[e]`; returns None.
    pub fn write(&mut self, e: Value) {
        self.entries.clear();
        self.entries.push(e);
    }

    /// Adds `e` at the end; returns None, or `RuntimeError("log is full")` when the
    /// log already holds `LOG_ENTRIES_MAX` entries.
    pub fn append(&mut self, e: Value) -> Result<(), ObjectError> {
        if self.entries.len() >= LOG_ENTRIES_MAX {
            return Err(ObjectError::runtime_error("log is full"));
        }
        self.entries.push(e);
        Ok(())
    }

    /// The entries' `str()`, space-joined.
    pub fn read(&self) -> String {
        join_str(&self.entries)
    }

    /// Python's `str(log)`: the same as `read()`.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        self.read()
    }
}

/// Python's `str(v)`: a string as itself, anything else as its `repr`.
pub(crate) fn py_str(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Python's `" ".join(str(v) for v in values)`.
pub(crate) fn join_str(values: &[Value]) -> String {
    values.iter().map(py_str).collect::<Vec<_>>().join(" ")
}

/// Registers `Log` and the original's `concoord.object.log.Log`.
pub fn register(types: &mut Types) {
    types.register::<Log>(&["concoord.object.log.Log"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallId, Ctx, Object, ObjectType, Outcome};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    fn call(log: &mut Log, method: &str, args: &[Value]) -> Outcome {
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(1), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(1), &mut wakes);
        let outcome = log.call(&mut ctx, method, args);
        assert!(wakes.is_empty(), "a log never wakes anyone");
        outcome
    }

    fn text(s: &str) -> Value {
        Value::Str(s.into())
    }

    #[test]
    fn append_adds_and_write_replaces_everything() {
        let mut log = Log::construct(&[]).unwrap();
        assert_eq!(log.query("read", &[]), Some(Ok(text(""))));
        assert_eq!(call(&mut log, "append", &[text("a b")]), Outcome::Return(Value::Nil));
        call(&mut log, "append", &[Value::Int(2)]);
        call(&mut log, "append", &[Value::List(vec![text("x"), Value::Nil])]);
        assert_eq!(log.query("read", &[]), Some(Ok(text("a b 2 ['x', None]"))));
        assert_eq!(call(&mut log, "write", &[text("fresh")]), Outcome::Return(Value::Nil));
        assert_eq!(log.query("read", &[]), Some(Ok(text("fresh"))));
        assert_eq!(log.query("__str__", &[]), Some(Ok(text("fresh"))));
        call(&mut log, "append", &[Value::Float(1.0)]);
        assert_eq!(call(&mut log, "read", &[]), Outcome::Return(text("fresh 1.0")));
        assert_eq!(log.query("write", &[]), None, "write is a command");
    }

    #[test]
    fn appending_to_a_full_log_is_a_runtime_error() {
        let mut log = Log { entries: vec![Value::Nil; LOG_ENTRIES_MAX] };
        let error = ObjectError::runtime_error("log is full");
        assert_eq!(call(&mut log, "append", &[Value::Int(1)]), Outcome::Raise(error));
        assert_eq!(log.entries.len(), LOG_ENTRIES_MAX);
        call(&mut log, "write", &[Value::Int(1)]);
        assert_eq!(log.entries, [Value::Int(1)], "write empties a full log");
        let Outcome::Raise(e) = call(&mut log, "write", &[]) else { panic!() };
        assert_eq!(e, ObjectError::type_error("write() missing required argument 'e'"));
    }

    #[test]
    fn snapshot_restore_and_session_close() {
        let mut log = Log::default();
        call(&mut log, "append", &[text("one")]);
        call(&mut log, "append", &[Value::Bool(true)]);
        let restored = Log::restore(&log.snapshot().unwrap()).unwrap();
        assert_eq!(restored, log);
        assert_eq!(restored.read(), "one True");
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(2), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(2), &mut wakes);
        log.session_closed(&mut ctx, SessionId(1));
        assert_eq!(log, restored, "a log holds nothing per session");
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["Log", "concoord.object.log.Log"] {
            assert_eq!(types.construct(name, &[]).unwrap().type_name(), "Log");
        }
    }
}
