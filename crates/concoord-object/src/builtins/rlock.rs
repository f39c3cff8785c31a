//! `RLock`: the original ConCoord re-entrant lock (`concoord/object/rlock.py`,
//! wrapping `threadingobject/drlock.py`), written with `#[object]`, with Python's
//! `threading.RLock` semantics. Ownership is per *session*, with a recursion count: the
//! owning session may acquire again (count + 1) and must release as often; at count 0
//! the lock passes to the first waiter in FIFO order. A session that ends releases the
//! lock fully, whatever its count, and forgets its parked calls.
//!
//! Differences from the original, on purpose: re-entering returns `True` (the
//! original returned `1`), `acquire_token` hands out a fencing token, and a dead
//! session no longer holds the lock forever. What it deliberately is not: ownership by
//! thread (every call of a session counts as the owner), and there is no `timeout`
//! argument (a method cannot read a clock).

use super::grant::{self, Reply, Waiter};
use crate::{Blocking, CallId, Ctx, ObjectError, Types};
use concoord_wire::SessionId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The owning session, its recursion count (at least 1) and its grant's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    session: SessionId,
    count: u64,
    token: u64,
}

/// A replicated re-entrant lock: `RLock()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RLock {
    owner: Option<Owner>,
    waiters: VecDeque<Waiter>,
}

#[concoord_object::object]
impl RLock {
    /// `acquire(blocking=True)`: `True` when granted, including when the owning
    /// session re-enters (count + 1); parks the caller when another session owns the
    /// lock, or returns `False` if `blocking` is false.
    pub fn acquire(&mut self, ctx: &mut Ctx, blocking: Option<bool>) -> Blocking<bool> {
        grant::flag(self.try_acquire(ctx, blocking, Reply::Flag), blocking)
    }

    /// `acquire_token(blocking=True)`: like `acquire`, but returns the fencing token of
    /// the grant (the log position of the command that granted the lock at count 1; a
    /// re-entering owner gets its existing token). `None` when not granted and
    /// `blocking` is false.
    pub fn acquire_token(
        &mut self,
        ctx: &mut Ctx,
        blocking: Option<bool>,
    ) -> Blocking<Option<u64>> {
        grant::token(self.try_acquire(ctx, blocking, Reply::Token), blocking)
    }

    /// `release()`: count − 1; at 0 the lock passes to the first waiter (count 1) or
    /// becomes free. Returns None. `RuntimeError` when the caller's session does not
    /// own the lock.
    pub fn release(&mut self, ctx: &mut Ctx) -> Result<(), ObjectError> {
        let Some(owner) = self.owner.as_mut().filter(|o| o.session == ctx.session()) else {
            return Err(ObjectError::runtime_error("cannot release un-acquired lock"));
        };
        owner.count -= 1;
        if owner.count == 0 {
            self.hand_over(ctx);
        }
        Ok(())
    }

    /// `locked()`: whether some session owns the lock.
    pub fn locked(&self) -> bool {
        self.owner.is_some()
    }

    /// The owner's fencing token, or None when the lock is free.
    pub fn token(&self) -> Option<u64> {
        self.owner.map(|o| o.token)
    }

    /// Python's `repr(rlock)`: `<DRLock owner=SESSION count=N>`, `owner=None count=0`
    /// when free.
    #[concoord(name = "__repr__")]
    pub fn repr(&self) -> String {
        match self.owner {
            Some(o) => format!("<DRLock owner={} count={}>", o.session.0, o.count),
            None => "<DRLock owner=None count=0>".to_string(),
        }
    }

    /// Python's `str(rlock)`.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        "<DRLock object>".to_string()
    }

    /// The caller of a parked call gave up: forget it.
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        grant::cancel(&mut self.waiters, call)
    }

    /// A session ended: its parked calls are forgotten, and if it owned the lock, the
    /// lock is released fully and passes to the next waiter.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, ctx: &mut Ctx, session: SessionId) {
        self.waiters.retain(|w| w.call.session != session);
        if self.owner.map(|o| o.session) == Some(session) {
            self.hand_over(ctx);
        }
    }

    /// Grants or re-enters the lock (returning the token), or queues the caller when
    /// blocking. Returns None when not granted.
    fn try_acquire(&mut self, ctx: &mut Ctx, blocking: Option<bool>, reply: Reply) -> Option<u64> {
        match &mut self.owner {
            None => {
                let token = ctx.fencing_token();
                self.owner = Some(Owner { session: ctx.session(), count: 1, token });
                Some(token)
            }
            Some(owner) if owner.session == ctx.session() => {
                // A count beyond u64 would need more acquires than there are log slots.
                owner.count += 1;
                Some(owner.token)
            }
            Some(_) => {
                if blocking.unwrap_or(true) {
                    self.waiters.push_back(Waiter { call: ctx.call(), reply });
                }
                None
            }
        }
    }

    /// Frees the lock and grants it (count 1) to the first waiter, if any.
    fn hand_over(&mut self, ctx: &mut Ctx) {
        self.owner = None;
        if let Some(next) = self.waiters.pop_front() {
            let token = ctx.fencing_token();
            self.owner = Some(Owner { session: next.call.session, count: 1, token });
            next.grant(ctx, token);
            // Further parked calls of the new owner's session re-enter at once, as
            // they would have had they arrived after the grant.
            let session = next.call.session;
            while let Some(pos) = self.waiters.iter().position(|w| w.call.session == session) {
                let w = self.waiters.remove(pos).expect("position is in range");
                if let Some(owner) = &mut self.owner {
                    owner.count += 1;
                }
                w.grant(ctx, token);
            }
        }
    }
}

/// Registers `RLock` under its name and the original's dotted path.
pub fn register(types: &mut Types) {
    types.register::<RLock>(&["concoord.object.rlock.RLock"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::test_support::{call, close, ret, woke};
    use crate::{Object, ObjectType, Outcome, Value};

    #[test]
    fn re_enters_counts_and_hands_over_at_zero_in_fifo_order() {
        let mut lock = RLock::construct(&[]).unwrap();
        assert_eq!(call(&mut lock, (1, 1), 5, "acquire", &[]), ret(Value::Bool(true)));
        assert_eq!(call(&mut lock, (1, 2), 6, "acquire", &[]), ret(Value::Bool(true)));
        assert_eq!(call(&mut lock, (1, 3), 7, "acquire_token", &[]), ret(Value::Int(5)));
        assert_eq!(lock.repr(), "<DRLock owner=1 count=3>");
        assert_eq!(call(&mut lock, (2, 1), 8, "acquire", &[]), (Outcome::Park, vec![]));
        assert_eq!(call(&mut lock, (3, 1), 9, "acquire_token", &[]), (Outcome::Park, vec![]));
        assert_eq!(call(&mut lock, (1, 4), 10, "release", &[]), ret(Value::Nil));
        assert_eq!(call(&mut lock, (1, 5), 11, "release", &[]), ret(Value::Nil));
        assert_eq!(lock.repr(), "<DRLock owner=1 count=1>");
        let (outcome, wakes) = call(&mut lock, (1, 6), 12, "release", &[]);
        assert_eq!(outcome, Outcome::Return(Value::Nil));
        assert_eq!(wakes, [woke(2, 1, Value::Bool(true))]);
        assert_eq!(lock.repr(), "<DRLock owner=2 count=1>");
        assert_eq!(lock.token(), Some(12));
        let (_, wakes) = call(&mut lock, (2, 2), 13, "release", &[]);
        assert_eq!(wakes, [woke(3, 1, Value::Int(13))]);
        let (_, wakes) = call(&mut lock, (3, 2), 14, "release", &[]);
        assert_eq!(wakes, []);
        assert_eq!(lock.query("locked", &[]), Some(Ok(Value::Bool(false))));
        assert_eq!(lock.query("token", &[]), Some(Ok(Value::Nil)));
        assert_eq!(lock.repr(), "<DRLock owner=None count=0>");
    }

    #[test]
    fn a_new_owner_s_other_parked_calls_re_enter_at_once() {
        let mut lock = RLock::default();
        call(&mut lock, (1, 1), 1, "acquire", &[]);
        call(&mut lock, (2, 1), 2, "acquire", &[]);
        call(&mut lock, (3, 1), 3, "acquire", &[]);
        call(&mut lock, (2, 2), 4, "acquire_token", &[]);
        let (_, wakes) = call(&mut lock, (1, 2), 5, "release", &[]);
        assert_eq!(wakes, [woke(2, 1, Value::Bool(true)), woke(2, 2, Value::Int(5))]);
        assert_eq!(lock.repr(), "<DRLock owner=2 count=2>");
        call(&mut lock, (2, 3), 6, "release", &[]);
        let (_, wakes) = call(&mut lock, (2, 4), 7, "release", &[]);
        assert_eq!(wakes, [woke(3, 1, Value::Bool(true))]);
    }

    #[test]
    fn non_blocking_and_errors() {
        let mut lock = RLock::default();
        let error = ObjectError::runtime_error("cannot release un-acquired lock");
        assert_eq!(
            call(&mut lock, (1, 1), 1, "release", &[]),
            (Outcome::Raise(error.clone()), vec![])
        );
        call(&mut lock, (1, 2), 2, "acquire", &[Value::Bool(false)]);
        assert_eq!(
            call(&mut lock, (2, 1), 3, "acquire", &[Value::Bool(false)]),
            ret(Value::Bool(false))
        );
        assert_eq!(
            call(&mut lock, (2, 2), 4, "acquire_token", &[Value::Bool(false)]),
            ret(Value::Nil)
        );
        assert_eq!(call(&mut lock, (2, 3), 5, "release", &[]), (Outcome::Raise(error), vec![]));
        assert!(lock.waiters.is_empty());
        assert_eq!(lock.repr(), "<DRLock owner=1 count=1>");
    }

    #[test]
    fn a_closed_session_releases_fully_and_drops_its_waiters() {
        let mut lock = RLock::default();
        call(&mut lock, (1, 1), 1, "acquire", &[]);
        call(&mut lock, (1, 2), 2, "acquire", &[]);
        call(&mut lock, (2, 1), 3, "acquire", &[]);
        call(&mut lock, (3, 1), 4, "acquire_token", &[]);
        assert_eq!(close(&mut lock, 2, 5), []);
        assert_eq!(close(&mut lock, 1, 6), [woke(3, 1, Value::Int(6))]);
        assert_eq!(lock.repr(), "<DRLock owner=3 count=1>");
        assert_eq!(close(&mut lock, 3, 7), []);
        assert!(!lock.locked());
    }

    #[test]
    fn snapshot_restore_repr_and_registration() {
        let mut lock = RLock::default();
        call(&mut lock, (1, 1), 1, "acquire", &[]);
        call(&mut lock, (1, 2), 2, "acquire", &[]);
        call(&mut lock, (2, 1), 3, "acquire", &[]);
        let restored = RLock::restore(&lock.snapshot().unwrap()).unwrap();
        assert_eq!(restored, lock);
        assert!(RLock::restore(b"junk").is_err());
        let repr = Value::Str("<DRLock owner=1 count=2>".into());
        assert_eq!(restored.query("__repr__", &[]), Some(Ok(repr)));
        assert_eq!(restored.query("__str__", &[]), Some(Ok(Value::Str("<DRLock object>".into()))));
        let mut types = Types::new();
        register(&mut types);
        assert_eq!(types.canonical("concoord.object.rlock.RLock"), Some("RLock"));
    }
}
