//! `Lock`: the original ConCoord lock (`concoord/object/lock.py`, wrapping
//! `threadingobject/dlock.py`), written with `#[object]`, with Python's
//! `threading.Lock` semantics. Ownership is per *session*: the session whose call was
//! granted the lock holds it, and only that session may release it. Waiters are served
//! in FIFO order, and a session that ends (closed or expired) releases the lock to the
//! next waiter and forgets its own parked calls.
//!
//! Differences from the original, on purpose: `acquire` returns `True` (Python's
//! result; the original returned None), `acquire_token` hands out a fencing token,
//! and a dead session no longer holds the lock forever. What it deliberately is not:
//! re-entrant (a session acquiring a lock it already holds parks, as Python's `Lock`
//! deadlocks the thread; use `RLock`), and there is no `timeout` argument (a method
//! cannot read a clock; a parked call waits until it is woken or its session ends).

use super::grant::{self, Reply, Waiter};
use crate::{Blocking, CallId, Ctx, ObjectError, Types};
use concoord_wire::SessionId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The session holding the lock and the fencing token of its grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    session: SessionId,
    token: u64,
}

/// A replicated mutual-exclusion lock: `Lock()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    holder: Option<Holder>,
    waiters: VecDeque<Waiter>,
}

#[concoord_object::object]
impl Lock {
    /// `acquire(blocking=True)`: `True` when the lock is granted (now, or later to a
    /// parked caller); `False` when it is held and `blocking` is false. A session that
    /// already holds the lock parks like everyone else (no re-entry).
    pub fn acquire(&mut self, ctx: &mut Ctx, blocking: Option<bool>) -> Blocking<bool> {
        grant::flag(self.try_acquire(ctx, blocking, Reply::Flag), blocking)
    }

    /// `acquire_token(blocking=True)`: like `acquire`, but returns the grant's fencing
    /// token (`Ctx::fencing_token`, the log position of the command that granted the
    /// lock: the caller's own, or for a parked caller the release or session end that
    /// handed it the lock).
    /// Tokens grow strictly from grant to grant. `None` when not granted and
    /// `blocking` is false.
    pub fn acquire_token(
        &mut self,
        ctx: &mut Ctx,
        blocking: Option<bool>,
    ) -> Blocking<Option<u64>> {
        grant::token(self.try_acquire(ctx, blocking, Reply::Token), blocking)
    }

    /// `release()`: hands the lock to the first waiter, or frees it. Returns None.
    /// `RuntimeError` when the caller's session does not hold the lock.
    pub fn release(&mut self, ctx: &mut Ctx) -> Result<(), ObjectError> {
        if self.holder.map(|h| h.session) != Some(ctx.session()) {
            return Err(ObjectError::runtime_error("cannot release un-acquired lock"));
        }
        self.hand_over(ctx);
        Ok(())
    }

    /// `locked()`: whether some session holds the lock.
    pub fn locked(&self) -> bool {
        self.holder.is_some()
    }

    /// The current holder's fencing token, or None when the lock is free.
    pub fn token(&self) -> Option<u64> {
        self.holder.map(|h| h.token)
    }

    /// Python's `repr(lock)`: `<DLock owner=SESSION>` or `<DLock owner=None>`.
    #[concoord(name = "__repr__")]
    pub fn repr(&self) -> String {
        match self.holder {
            Some(h) => format!("<DLock owner={}>", h.session.0),
            None => "<DLock owner=None>".to_string(),
        }
    }

    /// Python's `str(lock)`, as in the original.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        "<DLock object>".to_string()
    }

    /// The caller of a parked call gave up: forget it.
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        grant::cancel(&mut self.waiters, call)
    }

    /// A session ended: its parked calls are forgotten, and if it held the lock, the
    /// lock passes to the next waiter.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, ctx: &mut Ctx, session: SessionId) {
        self.waiters.retain(|w| w.call.session != session);
        if self.holder.map(|h| h.session) == Some(session) {
            self.hand_over(ctx);
        }
    }

    /// Grants the lock to the caller if it is free (returning the token), or parks
    /// the caller when blocking. Returns None when not granted.
    fn try_acquire(&mut self, ctx: &mut Ctx, blocking: Option<bool>, reply: Reply) -> Option<u64> {
        if self.holder.is_none() {
            let token = ctx.fencing_token();
            self.holder = Some(Holder { session: ctx.session(), token });
            return Some(token);
        }
        if blocking.unwrap_or(true) {
            self.waiters.push_back(Waiter { call: ctx.call(), reply });
        }
        None
    }

    /// Frees the lock and grants it to the first waiter, if any.
    fn hand_over(&mut self, ctx: &mut Ctx) {
        self.holder = None;
        if let Some(next) = self.waiters.pop_front() {
            let token = ctx.fencing_token();
            self.holder = Some(Holder { session: next.call.session, token });
            next.grant(ctx, token);
        }
    }
}

/// Registers `Lock` under its name and the original's dotted path.
pub fn register(types: &mut Types) {
    types.register::<Lock>(&["concoord.object.lock.Lock"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::test_support::{call, close, ret, woke};
    use crate::{Object, ObjectType, Outcome, Value};

    #[test]
    fn grants_parks_and_hands_over_in_fifo_order() {
        let mut lock = Lock::construct(&[]).unwrap();
        assert_eq!(call(&mut lock, (1, 1), 10, "acquire", &[]), ret(Value::Bool(true)));
        assert_eq!(lock.query("locked", &[]), Some(Ok(Value::Bool(true))));
        assert_eq!(lock.query("token", &[]), Some(Ok(Value::Int(10))));
        assert_eq!(call(&mut lock, (2, 1), 11, "acquire", &[]), (Outcome::Park, vec![]));
        assert_eq!(call(&mut lock, (3, 1), 12, "acquire_token", &[]), (Outcome::Park, vec![]));
        assert_eq!(call(&mut lock, (4, 1), 13, "acquire", &[Value::Nil]), (Outcome::Park, vec![]));
        // The holder releases: session 2 (first in line) gets True.
        let (outcome, wakes) = call(&mut lock, (1, 2), 20, "release", &[]);
        assert_eq!(outcome, Outcome::Return(Value::Nil));
        assert_eq!(wakes, [woke(2, 1, Value::Bool(true))]);
        assert_eq!(lock.repr(), "<DLock owner=2>");
        assert_eq!(lock.token(), Some(20), "the token of a parked caller is its waking slot");
        // Session 3 asked for a token: it gets the slot of the release that woke it.
        let (_, wakes) = call(&mut lock, (2, 2), 21, "release", &[]);
        assert_eq!(wakes, [woke(3, 1, Value::Int(21))]);
        let (_, wakes) = call(&mut lock, (3, 2), 22, "release", &[]);
        assert_eq!(wakes, [woke(4, 1, Value::Bool(true))]);
        let (_, wakes) = call(&mut lock, (4, 2), 23, "release", &[]);
        assert_eq!(wakes, []);
        assert!(!lock.locked());
        assert_eq!(lock.token(), None);
        assert_eq!(lock.repr(), "<DLock owner=None>");
    }

    #[test]
    fn acquire_token_returns_the_granting_slot() {
        let mut lock = Lock::default();
        assert_eq!(call(&mut lock, (1, 1), 7, "acquire_token", &[]), ret(Value::Int(7)));
        let busy = call(&mut lock, (2, 1), 8, "acquire_token", &[Value::Bool(false)]);
        assert_eq!(busy, ret(Value::Nil));
        call(&mut lock, (1, 2), 9, "release", &[]);
        assert_eq!(call(&mut lock, (2, 2), 10, "acquire_token", &[]), ret(Value::Int(10)));
    }

    #[test]
    fn non_blocking_acquire_of_a_held_lock_returns_false_without_queueing() {
        let mut lock = Lock::default();
        call(&mut lock, (1, 1), 1, "acquire", &[Value::Bool(false)]);
        assert_eq!(
            call(&mut lock, (2, 1), 2, "acquire", &[Value::Bool(false)]),
            ret(Value::Bool(false))
        );
        assert!(lock.waiters.is_empty());
        let (_, wakes) = call(&mut lock, (1, 2), 3, "release", &[]);
        assert_eq!(wakes, [], "a non-blocking caller is never woken");
        assert!(!lock.locked());
    }

    #[test]
    fn the_holder_re_acquiring_parks_like_python_lock() {
        let mut lock = Lock::default();
        call(&mut lock, (1, 1), 1, "acquire", &[]);
        assert_eq!(
            call(&mut lock, (1, 2), 2, "acquire", &[Value::Bool(false)]),
            ret(Value::Bool(false))
        );
        assert_eq!(call(&mut lock, (1, 3), 3, "acquire", &[]), (Outcome::Park, vec![]));
        // Another call of the same session may still release, handing the lock to it.
        let (_, wakes) = call(&mut lock, (1, 4), 4, "release", &[]);
        assert_eq!(wakes, [woke(1, 3, Value::Bool(true))]);
        assert_eq!(lock.repr(), "<DLock owner=1>");
    }

    #[test]
    fn releasing_a_lock_the_session_does_not_hold_raises() {
        let mut lock = Lock::default();
        let error = ObjectError::runtime_error("cannot release un-acquired lock");
        assert_eq!(
            call(&mut lock, (1, 1), 1, "release", &[]),
            (Outcome::Raise(error.clone()), vec![])
        );
        call(&mut lock, (1, 2), 2, "acquire", &[]);
        assert_eq!(call(&mut lock, (2, 1), 3, "release", &[]), (Outcome::Raise(error), vec![]));
        assert_eq!(lock.repr(), "<DLock owner=1>", "a raising release changes nothing");
        let (Outcome::Raise(e), _) = call(&mut lock, (1, 3), 4, "acquire", &[Value::Int(1)]) else {
            panic!("blocking must be a bool");
        };
        assert_eq!(e.kind, "TypeError");
    }

    #[test]
    fn a_closed_session_releases_the_lock_and_drops_its_waiters() {
        let mut lock = Lock::default();
        call(&mut lock, (1, 1), 1, "acquire", &[]);
        call(&mut lock, (2, 1), 2, "acquire", &[]);
        call(&mut lock, (3, 1), 3, "acquire_token", &[]);
        call(&mut lock, (2, 2), 4, "acquire", &[]);
        // Session 2's parked calls are dropped, and nobody is woken by that.
        assert_eq!(close(&mut lock, 2, 5), []);
        assert_eq!(lock.repr(), "<DLock owner=1>");
        // The holder's session ends: the lock passes to session 3 with token 6.
        assert_eq!(close(&mut lock, 1, 6), [woke(3, 1, Value::Int(6))]);
        assert_eq!(lock.token(), Some(6));
        assert_eq!(close(&mut lock, 3, 7), []);
        assert!(!lock.locked());
    }

    #[test]
    fn snapshot_and_restore_keep_holder_and_waiters() {
        let mut lock = Lock::default();
        call(&mut lock, (1, 1), 1, "acquire", &[]);
        call(&mut lock, (2, 1), 2, "acquire_token", &[]);
        let mut restored = Lock::restore(&lock.snapshot().unwrap()).unwrap();
        assert_eq!(restored, lock);
        let (_, wakes) = call(&mut restored, (1, 2), 3, "release", &[]);
        assert_eq!(wakes, [woke(2, 1, Value::Int(3))]);
        assert!(Lock::restore(b"not a snapshot").is_err());
    }

    #[test]
    fn repr_str_and_registration() {
        let lock = Lock::default();
        assert_eq!(lock.query("__repr__", &[]), Some(Ok(Value::Str("<DLock owner=None>".into()))));
        assert_eq!(lock.query("__str__", &[]), Some(Ok(Value::Str("<DLock object>".into()))));
        assert_eq!(lock.query("acquire", &[]), None, "a command is not a query");
        let mut types = Types::new();
        register(&mut types);
        assert_eq!(types.canonical("concoord.object.lock.Lock"), Some("Lock"));
        assert_eq!(types.canonical("Lock"), Some("Lock"));
    }
}
