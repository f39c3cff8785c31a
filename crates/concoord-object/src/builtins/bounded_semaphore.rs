//! `BoundedSemaphore`: the original ConCoord bounded semaphore
//! (`concoord/object/boundedsemaphore.py`, wrapping
//! `threadingobject/dboundedsemaphore.py`), written with `#[object]`, with Python's
//! `threading.BoundedSemaphore` semantics. It is a `Semaphore` (same permit
//! bookkeeping, FIFO waiters, permits per session returned when a session ends) whose
//! value may never exceed its initial value.
//!
//! Fixed on purpose: a release that would exceed the initial value *raises*
//! `ValueError("Semaphore released too many times")` and changes nothing; the original
//! returned an unencodable exception instance, which killed the leader and hung the
//! client. A session that ends returns its permits only up to the bound (a permit it
//! took may already have been given back by another session's release). What it
//! deliberately is not: a lock (anyone may release, as in Python), and there is no
//! `timeout` argument (a method cannot read a clock).

use super::semaphore::Permits;
use crate::{Blocking, CallId, Ctx, ObjectError, Types};
use concoord_wire::SessionId;
use serde::{Deserialize, Serialize};

/// A replicated bounded semaphore: `BoundedSemaphore(count=1)` in the original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundedSemaphore {
    permits: Permits,
    /// The initial value, which the value may never exceed.
    init: i64,
}

impl Default for BoundedSemaphore {
    /// `BoundedSemaphore()`: one permit.
    fn default() -> BoundedSemaphore {
        BoundedSemaphore { permits: Permits::new(1), init: 1 }
    }
}

#[concoord_object::object]
impl BoundedSemaphore {
    /// `__init__(value=1)`; a negative value is a `ValueError`.
    #[concoord(constructor)]
    pub fn new(value: Option<i64>) -> Result<BoundedSemaphore, ObjectError> {
        let value = value.unwrap_or(1);
        if value < 0 {
            return Err(ObjectError::value_error("semaphore initial value must be >= 0"));
        }
        Ok(BoundedSemaphore { permits: Permits::new(value), init: value })
    }

    /// `acquire(blocking=True)`: takes a permit and returns `True`; with no free permit
    /// parks the caller (woken with `True` once it gets one), or returns `False` when
    /// `blocking` is false.
    pub fn acquire(&mut self, ctx: &mut Ctx, blocking: Option<bool>) -> Blocking<bool> {
        self.permits.acquire_flag(ctx, blocking)
    }

    /// `acquire_token(blocking=True)`: like `acquire`, but returns the log position of the
    /// command that granted the permit. `None` when not granted and `blocking` is
    /// false.
    pub fn acquire_token(
        &mut self,
        ctx: &mut Ctx,
        blocking: Option<bool>,
    ) -> Blocking<Option<u64>> {
        self.permits.acquire_token(ctx, blocking)
    }

    /// `release(n=1)`: adds `n` permits and wakes up to `n` waiters. Returns None.
    /// `ValueError` when `n < 1`, or when the value would exceed the initial value
    /// (then nothing changes).
    pub fn release(&mut self, ctx: &mut Ctx, n: Option<i64>) -> Result<(), ObjectError> {
        let n = Permits::release_count(n)?;
        if n > self.init - self.permits.value() {
            return Err(ObjectError::value_error("Semaphore released too many times"));
        }
        self.permits.release(ctx, n);
        Ok(())
    }

    /// The number of free permits (Python's `_value`).
    pub fn value(&self) -> i64 {
        self.permits.value()
    }

    /// Python's `repr`: `<DBoundedSemaphore count=N init=M>`.
    #[concoord(name = "__repr__")]
    pub fn repr(&self) -> String {
        format!("<DBoundedSemaphore count={} init={}>", self.permits.value(), self.init)
    }

    /// The caller of a parked call gave up: forget it.
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        self.permits.cancel(call)
    }

    /// A session ended: its parked calls are forgotten and its permits return, up to
    /// the initial value.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, ctx: &mut Ctx, session: SessionId) {
        let room = self.init - self.permits.value();
        self.permits.session_closed(ctx, session, room);
    }
}

/// Registers `BoundedSemaphore` under its name and the original's dotted path.
pub fn register(types: &mut Types) {
    types.register::<BoundedSemaphore>(&["concoord.object.boundedsemaphore.BoundedSemaphore"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::test_support::{call, close, ret, woke};
    use crate::{Object, ObjectType, Outcome, Value, Wake};

    fn too_many() -> (Outcome, Vec<Wake>) {
        let e = ObjectError::value_error("Semaphore released too many times");
        (Outcome::Raise(e), vec![])
    }

    #[test]
    fn constructor_defaults_to_one_and_rejects_negative_values() {
        let sem = BoundedSemaphore::construct(&[]).unwrap();
        assert_eq!(sem, BoundedSemaphore::default());
        assert_eq!(sem.repr(), "<DBoundedSemaphore count=1 init=1>");
        let e = BoundedSemaphore::construct(&[Value::Int(-3)]).unwrap_err();
        assert_eq!(e, ObjectError::value_error("semaphore initial value must be >= 0"));
    }

    #[test]
    fn over_release_raises_and_changes_nothing() {
        let mut sem = BoundedSemaphore::new(Some(2)).unwrap();
        assert_eq!(call(&mut sem, (1, 1), 1, "release", &[]), too_many());
        assert_eq!(call(&mut sem, (1, 2), 2, "acquire", &[]), ret(Value::Bool(true)));
        assert_eq!(call(&mut sem, (1, 3), 3, "release", &[Value::Int(2)]), too_many());
        assert_eq!(sem.value(), 1, "a raising release changes nothing");
        assert_eq!(call(&mut sem, (1, 4), 4, "release", &[]), ret(Value::Nil));
        assert_eq!(sem.query("value", &[]), Some(Ok(Value::Int(2))));
        let e = ObjectError::value_error("n must be one or more");
        assert_eq!(
            call(&mut sem, (1, 5), 5, "release", &[Value::Int(-1)]),
            (Outcome::Raise(e), vec![])
        );
        // i64::MAX permits: the bound check cannot overflow.
        assert_eq!(call(&mut sem, (1, 6), 6, "release", &[Value::Int(i64::MAX)]), too_many());
    }

    #[test]
    fn parks_and_wakes_in_fifo_order() {
        let mut sem = BoundedSemaphore::new(Some(1)).unwrap();
        call(&mut sem, (1, 1), 1, "acquire", &[]);
        assert_eq!(call(&mut sem, (2, 1), 2, "acquire_token", &[]), (Outcome::Park, vec![]));
        assert_eq!(call(&mut sem, (3, 1), 3, "acquire", &[]), (Outcome::Park, vec![]));
        assert_eq!(
            call(&mut sem, (4, 1), 4, "acquire", &[Value::Bool(false)]),
            ret(Value::Bool(false))
        );
        let (_, wakes) = call(&mut sem, (1, 2), 5, "release", &[]);
        assert_eq!(wakes, [woke(2, 1, Value::Int(5))]);
        let (_, wakes) = call(&mut sem, (2, 2), 6, "release", &[]);
        assert_eq!(wakes, [woke(3, 1, Value::Bool(true))]);
        assert_eq!(sem.repr(), "<DBoundedSemaphore count=0 init=1>");
    }

    #[test]
    fn a_closed_session_returns_its_permits_but_never_above_the_bound() {
        let mut sem = BoundedSemaphore::new(Some(2)).unwrap();
        call(&mut sem, (1, 1), 1, "acquire", &[]);
        call(&mut sem, (1, 2), 2, "acquire", &[]);
        call(&mut sem, (2, 1), 3, "acquire", &[]);
        call(&mut sem, (3, 1), 4, "acquire", &[]);
        assert_eq!(close(&mut sem, 2, 5), []);
        assert_eq!(close(&mut sem, 1, 6), [woke(3, 1, Value::Bool(true))]);
        assert_eq!(sem.value(), 1);
        // Session 3 holds a permit, but session 4 gave one back on its behalf: the
        // closing session's permit would exceed the bound and is not returned.
        assert_eq!(call(&mut sem, (4, 1), 7, "release", &[]), ret(Value::Nil));
        assert_eq!(sem.value(), 2);
        assert_eq!(close(&mut sem, 3, 8), []);
        assert_eq!(sem.value(), 2);
    }

    #[test]
    fn snapshot_restore_and_registration() {
        let mut sem = BoundedSemaphore::new(Some(3)).unwrap();
        call(&mut sem, (1, 1), 1, "acquire", &[]);
        let restored = BoundedSemaphore::restore(&sem.snapshot().unwrap()).unwrap();
        assert_eq!(restored, sem);
        let repr = Value::Str("<DBoundedSemaphore count=2 init=3>".into());
        assert_eq!(restored.query("__repr__", &[]), Some(Ok(repr)));
        assert!(BoundedSemaphore::restore(b"junk").is_err());
        let mut types = Types::new();
        register(&mut types);
        let alias = "concoord.object.boundedsemaphore.BoundedSemaphore";
        assert_eq!(types.canonical(alias), Some("BoundedSemaphore"));
    }
}
