//! `Semaphore`: the original ConCoord counting semaphore (`concoord/object/semaphore.py`,
//! wrapping `threadingobject/dsemaphore.py`), written with `#[object]`, with Python's
//! `threading.Semaphore` semantics: `acquire` takes a permit or parks, `release(n)`
//! adds `n` permits, and parked callers are served in FIFO order. It also holds the
//! permit bookkeeping (`Permits`) that `BoundedSemaphore` shares.
//!
//! The permits each session holds are tracked, so a session that ends (closed or
//! expired) gives its permits back and its parked calls are forgotten: a dead client
//! cannot keep a permit forever. As in Python, anyone may release, also a session that
//! holds no permit; such a release is counted against nobody, and can push the value
//! above its initial value. What it deliberately is not: bounded (that is
//! `BoundedSemaphore`), and there is no `timeout` argument (a method cannot read a
//! clock). The value is an `i64`; a release past its range is an `OverflowError`.

use super::grant::{Reply, Waiter};
use crate::{Blocking, CallId, Ctx, ObjectError, Types};
use concoord_wire::SessionId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The state of a semaphore: free permits, the permits each session holds, and the
/// parked acquirers. Shared by `Semaphore` and `BoundedSemaphore`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Permits {
    /// Free permits (never negative: waiters are not counted in it).
    value: i64,
    /// Permits held by each session (sessions holding none are absent).
    held: BTreeMap<SessionId, i64>,
    waiters: VecDeque<Waiter>,
}

impl Permits {
    /// `value` must be `>= 0` (checked by the constructors).
    pub(crate) fn new(value: i64) -> Permits {
        Permits { value, held: BTreeMap::new(), waiters: VecDeque::new() }
    }

    pub(crate) fn value(&self) -> i64 {
        self.value
    }

    /// A blocking or non-blocking acquire: `Some(token)` when granted, `None` when not
    /// granted and `blocking` is false; `reply` is what a parked caller is woken with.
    fn acquire(
        &mut self,
        ctx: &mut Ctx,
        blocking: Option<bool>,
        reply: Reply,
    ) -> Blocking<Option<u64>> {
        if self.value > 0 {
            self.value -= 1;
            *self.held.entry(ctx.session()).or_insert(0) += 1;
            return Blocking::Ready(Some(ctx.fencing_token()));
        }
        if blocking.unwrap_or(true) {
            self.waiters.push_back(Waiter { call: ctx.call(), reply });
            return Blocking::Park;
        }
        Blocking::Ready(None)
    }

    pub(crate) fn acquire_flag(&mut self, ctx: &mut Ctx, blocking: Option<bool>) -> Blocking<bool> {
        match self.acquire(ctx, blocking, Reply::Flag) {
            Blocking::Ready(granted) => Blocking::Ready(granted.is_some()),
            Blocking::Park => Blocking::Park,
        }
    }

    pub(crate) fn acquire_token(
        &mut self,
        ctx: &mut Ctx,
        blocking: Option<bool>,
    ) -> Blocking<Option<u64>> {
        self.acquire(ctx, blocking, Reply::Token)
    }

    /// Checks `n` of `release(n)`: the number of permits to add (default 1).
    pub(crate) fn release_count(n: Option<i64>) -> Result<i64, ObjectError> {
        let n = n.unwrap_or(1);
        if n < 1 {
            return Err(ObjectError::value_error("n must be one or more"));
        }
        Ok(n)
    }

    /// Whether adding `n` permits stays within `i64`.
    pub(crate) fn check_room(&self, n: i64) -> Result<(), ObjectError> {
        self.value.checked_add(n).map(|_| ()).ok_or_else(|| {
            ObjectError::new("OverflowError", "the semaphore value left the 64-bit integer range")
        })
    }

    /// Adds `n` (checked) permits released by the caller's session, which stops holding
    /// up to `n` of them, and wakes waiters.
    pub(crate) fn release(&mut self, ctx: &mut Ctx, n: i64) {
        let session = ctx.session();
        if let Some(held) = self.held.get_mut(&session) {
            *held -= n.min(*held);
            if *held == 0 {
                self.held.remove(&session);
            }
        }
        self.value += n;
        self.grant_waiters(ctx);
    }

    /// Forgets `session`'s parked calls and returns its permits, at most `limit` of
    /// them (a bounded semaphore never goes above its initial value), waking waiters.
    pub(crate) fn session_closed(&mut self, ctx: &mut Ctx, session: SessionId, limit: i64) {
        self.waiters.retain(|w| w.call.session != session);
        if let Some(held) = self.held.remove(&session) {
            self.value = self.value.saturating_add(held.min(limit.max(0)));
            self.grant_waiters(ctx);
        }
    }

    /// Forgets the parked acquire `call`, if it waits here.
    pub(crate) fn cancel(&mut self, call: crate::CallId) -> bool {
        super::grant::cancel(&mut self.waiters, call)
    }

    /// Gives free permits to the first waiters, in FIFO order.
    fn grant_waiters(&mut self, ctx: &mut Ctx) {
        while self.value > 0 {
            let Some(next) = self.waiters.pop_front() else { break };
            self.value -= 1;
            *self.held.entry(next.call.session).or_insert(0) += 1;
            let token = ctx.fencing_token();
            next.grant(ctx, token);
        }
    }
}

/// A replicated counting semaphore: `Semaphore(count=1)` in the original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Semaphore {
    permits: Permits,
}

impl Default for Semaphore {
    /// `Semaphore()`: one permit.
    fn default() -> Semaphore {
        Semaphore { permits: Permits::new(1) }
    }
}

#[concoord_object::object]
impl Semaphore {
    /// `__init__(value=1)`; a negative value is a `ValueError`.
    #[concoord(constructor)]
    pub fn new(value: Option<i64>) -> Result<Semaphore, ObjectError> {
        let value = value.unwrap_or(1);
        if value < 0 {
            return Err(ObjectError::value_error("semaphore initial value must be >= 0"));
        }
        Ok(Semaphore { permits: Permits::new(value) })
    }

    /// `acquire(blocking=True)`: takes a permit and returns `True`; with no free permit
    /// parks the caller (woken with `True` once it gets one), or returns `False` when
    /// `blocking` is false.
    pub fn acquire(&mut self, ctx: &mut Ctx, blocking: Option<bool>) -> Blocking<bool> {
        self.permits.acquire_flag(ctx, blocking)
    }

    /// `acquire_token(blocking=True)`: like `acquire`, but returns the log position of the
    /// command that granted the permit (strictly increasing from grant to grant).
    /// `None` when not granted and `blocking` is false.
    pub fn acquire_token(
        &mut self,
        ctx: &mut Ctx,
        blocking: Option<bool>,
    ) -> Blocking<Option<u64>> {
        self.permits.acquire_token(ctx, blocking)
    }

    /// `release(n=1)`: adds `n` permits and wakes up to `n` waiters. Returns None.
    /// `ValueError` when `n < 1`.
    pub fn release(&mut self, ctx: &mut Ctx, n: Option<i64>) -> Result<(), ObjectError> {
        let n = Permits::release_count(n)?;
        self.permits.check_room(n)?;
        self.permits.release(ctx, n);
        Ok(())
    }

    /// The number of free permits (Python's `_value`).
    pub fn value(&self) -> i64 {
        self.permits.value()
    }

    /// Python's `repr(semaphore)`: `<DSemaphore count=N>`.
    #[concoord(name = "__repr__")]
    pub fn repr(&self) -> String {
        format!("<DSemaphore count={}>", self.permits.value())
    }

    /// The caller of a parked call gave up: forget it.
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        self.permits.cancel(call)
    }

    /// A session ended: its parked calls are forgotten and its permits return.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, ctx: &mut Ctx, session: SessionId) {
        self.permits.session_closed(ctx, session, i64::MAX);
    }
}

/// Registers `Semaphore` under its name and the original's dotted path.
pub fn register(types: &mut Types) {
    types.register::<Semaphore>(&["concoord.object.semaphore.Semaphore"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::test_support::{call, close, ret, woke};
    use crate::{Object, ObjectType, Outcome, Value};

    #[test]
    fn constructor_defaults_to_one_and_rejects_negative_values() {
        assert_eq!(Semaphore::construct(&[]).unwrap().value(), 1);
        assert_eq!(Semaphore::default().value(), 1);
        assert_eq!(Semaphore::construct(&[Value::Int(0)]).unwrap().value(), 0);
        let e = Semaphore::construct(&[Value::Int(-1)]).unwrap_err();
        assert_eq!(e, ObjectError::value_error("semaphore initial value must be >= 0"));
    }

    #[test]
    fn acquires_parks_and_release_wakes_fifo() {
        let mut sem = Semaphore::new(Some(2)).unwrap();
        assert_eq!(call(&mut sem, (1, 1), 1, "acquire", &[]), ret(Value::Bool(true)));
        assert_eq!(call(&mut sem, (2, 1), 2, "acquire_token", &[]), ret(Value::Int(2)));
        assert_eq!(sem.query("value", &[]), Some(Ok(Value::Int(0))));
        assert_eq!(call(&mut sem, (3, 1), 3, "acquire", &[]), (Outcome::Park, vec![]));
        assert_eq!(call(&mut sem, (4, 1), 4, "acquire_token", &[]), (Outcome::Park, vec![]));
        assert_eq!(call(&mut sem, (5, 1), 5, "acquire", &[]), (Outcome::Park, vec![]));
        assert_eq!(
            call(&mut sem, (6, 1), 6, "acquire", &[Value::Bool(false)]),
            ret(Value::Bool(false))
        );
        assert_eq!(
            call(&mut sem, (6, 2), 7, "acquire_token", &[Value::Bool(false)]),
            ret(Value::Nil)
        );
        let (outcome, wakes) = call(&mut sem, (1, 2), 8, "release", &[]);
        assert_eq!(outcome, Outcome::Return(Value::Nil));
        assert_eq!(wakes, [woke(3, 1, Value::Bool(true))]);
        // release(3) wakes the two remaining waiters and leaves one permit free.
        let (_, wakes) = call(&mut sem, (2, 2), 9, "release", &[Value::Int(3)]);
        assert_eq!(wakes, [woke(4, 1, Value::Int(9)), woke(5, 1, Value::Bool(true))]);
        assert_eq!(sem.repr(), "<DSemaphore count=1>");
    }

    #[test]
    fn release_checks_n_and_anyone_may_release() {
        let mut sem = Semaphore::new(Some(0)).unwrap();
        let e = ObjectError::value_error("n must be one or more");
        assert_eq!(
            call(&mut sem, (1, 1), 1, "release", &[Value::Int(0)]),
            (Outcome::Raise(e), vec![])
        );
        assert_eq!(sem.value(), 0);
        // A session holding nothing may release (Python semantics), also above the start.
        assert_eq!(call(&mut sem, (1, 2), 2, "release", &[Value::Int(2)]), ret(Value::Nil));
        assert_eq!(sem.value(), 2);
        assert!(sem.permits.held.is_empty(), "counted against nobody");
        let mut sem = Semaphore::new(Some(i64::MAX)).unwrap();
        let (Outcome::Raise(e), _) = call(&mut sem, (1, 1), 1, "release", &[]) else {
            panic!("overflow must raise");
        };
        assert_eq!(e.kind, "OverflowError");
        assert_eq!(sem.value(), i64::MAX);
    }

    #[test]
    fn a_closed_session_returns_its_permits_and_drops_its_waiters() {
        let mut sem = Semaphore::new(Some(2)).unwrap();
        call(&mut sem, (1, 1), 1, "acquire", &[]);
        call(&mut sem, (1, 2), 2, "acquire", &[]);
        call(&mut sem, (2, 1), 3, "acquire", &[]);
        call(&mut sem, (3, 1), 4, "acquire_token", &[]);
        call(&mut sem, (2, 2), 5, "acquire", &[]);
        call(&mut sem, (4, 1), 6, "acquire", &[]);
        assert_eq!(close(&mut sem, 2, 7), [], "dropping waiters wakes nobody");
        // Session 1 held two permits: both go to the next waiters in line.
        let wakes = close(&mut sem, 1, 8);
        assert_eq!(wakes, [woke(3, 1, Value::Int(8)), woke(4, 1, Value::Bool(true))]);
        assert_eq!(sem.value(), 0);
        close(&mut sem, 3, 9);
        close(&mut sem, 4, 10);
        assert_eq!(sem.value(), 2);
        assert!(sem.permits.held.is_empty() && sem.permits.waiters.is_empty());
    }

    #[test]
    fn a_release_only_returns_what_the_session_held() {
        let mut sem = Semaphore::new(Some(1)).unwrap();
        call(&mut sem, (1, 1), 1, "acquire", &[]);
        call(&mut sem, (1, 2), 2, "release", &[Value::Int(3)]);
        assert_eq!(sem.value(), 3);
        assert_eq!(close(&mut sem, 1, 3), []);
        assert_eq!(sem.value(), 3, "session 1 holds nothing any more");
    }

    #[test]
    fn snapshot_restore_repr_and_registration() {
        let mut sem = Semaphore::new(Some(1)).unwrap();
        call(&mut sem, (1, 1), 1, "acquire", &[]);
        call(&mut sem, (2, 1), 2, "acquire", &[]);
        let mut restored = Semaphore::restore(&sem.snapshot().unwrap()).unwrap();
        assert_eq!(restored, sem);
        assert_eq!(close(&mut restored, 1, 3), [woke(2, 1, Value::Bool(true))]);
        assert!(Semaphore::restore(b"junk").is_err());
        assert_eq!(sem.query("__repr__", &[]), Some(Ok(Value::Str("<DSemaphore count=0>".into()))));
        let mut types = Types::new();
        register(&mut types);
        assert_eq!(types.canonical("concoord.object.semaphore.Semaphore"), Some("Semaphore"));
        let built = types.construct("Semaphore", &[Value::Int(4)]).unwrap();
        assert_eq!(built.query("value", &[]), Some(Ok(Value::Int(4))));
    }
}
