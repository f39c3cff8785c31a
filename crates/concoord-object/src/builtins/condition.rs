//! `Condition`: the original ConCoord condition variable (`concoord/object/condition.py`,
//! wrapping `threadingobject/dcondition.py`), written with `#[object]`, with Python's
//! `threading.Condition` semantics over its own re-entrant lock (owned per *session*,
//! with a recursion count, as `RLock`).
//!
//! `wait()` releases the lock *fully*, remembering the recursion count, and parks;
//! `notify(n)` / `notify_all()` move waiters to the lock's acquire queue, and a notified
//! waiter returns `True` only once it owns the lock again, with its count restored. Both
//! are fixes of the original, which released only one level of a re-entrant lock and
//! could return from `wait` before re-acquiring it. A session that ends releases the
//! lock and forgets its parked calls (waiting or acquiring).
//!
//! What it deliberately is not: there is no `timeout` (a method cannot read a clock),
//! no `wait_for(predicate)` (a predicate cannot travel to the replicas), and no
//! external lock argument (the original ignored it too).

use crate::machine::MachineBug;
use crate::{Blocking, CallId, Ctx, ObjectError, Types};
use concoord_wire::SessionId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A parked call that will own the lock with `count` once granted: an acquirer
/// (count 1) or a notified waiter (the count it held when it called `wait`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Parked {
    call: CallId,
    count: u64,
}

/// The owning session and its recursion count (at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    session: SessionId,
    count: u64,
}

/// A replicated condition variable with its own re-entrant lock: `Condition()` in the
/// original.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    owner: Option<Owner>,
    /// Calls waiting for the lock, in FIFO order (acquirers and notified waiters).
    acquirers: VecDeque<Parked>,
    /// Calls in `wait()` that were not notified yet, in FIFO order.
    waiters: VecDeque<Parked>,
}

#[concoord_object::object]
impl Condition {
    /// `acquire(blocking=True)`: `True` when the lock is granted, also when the owning
    /// session re-enters; parks when another session owns it, or returns `False` when
    /// `blocking` is false.
    pub fn acquire(&mut self, ctx: &mut Ctx, blocking: Option<bool>) -> Blocking<bool> {
        match &mut self.owner {
            None => {
                self.owner = Some(Owner { session: ctx.session(), count: 1 });
                Blocking::Ready(true)
            }
            Some(owner) if owner.session == ctx.session() => {
                owner.count += 1;
                Blocking::Ready(true)
            }
            Some(_) if blocking.unwrap_or(true) => {
                self.acquirers.push_back(Parked { call: ctx.call(), count: 1 });
                Blocking::Park
            }
            Some(_) => Blocking::Ready(false),
        }
    }

    /// `release()`: count − 1; at 0 the lock passes to the first parked acquirer or
    /// notified waiter. Returns None. `RuntimeError` when the caller's session does not
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

    /// `wait()`: releases the lock fully and parks until notified *and* owning the
    /// lock again (with the same count); then returns `True`. `RuntimeError` when the
    /// caller's session does not own the lock.
    pub fn wait(&mut self, ctx: &mut Ctx) -> Result<Blocking<bool>, ObjectError> {
        let owner = self.owned_by(ctx, "cannot wait on un-acquired lock")?;
        self.waiters.push_back(Parked { call: ctx.call(), count: owner.count });
        self.hand_over(ctx);
        Ok(Blocking::Park)
    }

    /// `notify(n=1)`: moves up to `n` waiters (the longest waiting first) to the lock's
    /// acquire queue; `n <= 0` moves none. Returns None. `RuntimeError` when the
    /// caller's session does not own the lock.
    pub fn notify(&mut self, ctx: &mut Ctx, n: Option<i64>) -> Result<(), ObjectError> {
        self.owned_by(ctx, "cannot notify on un-acquired lock")?;
        let n = usize::try_from(n.unwrap_or(1).max(0)).unwrap_or(usize::MAX);
        let moved = n.min(self.waiters.len());
        self.move_waiters(ctx, moved);
        Ok(())
    }

    /// `notify_all()`: moves every waiter to the lock's acquire queue.
    pub fn notify_all(&mut self, ctx: &mut Ctx) -> Result<(), ObjectError> {
        self.notify_everyone(ctx)
    }

    /// `notifyAll()`: the original's (and Python 2's) name for `notify_all()`.
    #[concoord(name = "notifyAll")]
    pub fn notify_all_camel(&mut self, ctx: &mut Ctx) -> Result<(), ObjectError> {
        self.notify_everyone(ctx)
    }

    /// Python's `repr`: `<Condition(<DRLock owner=S count=N>, W)>` with W the number of
    /// calls waiting to be notified.
    #[concoord(name = "__repr__")]
    pub fn repr(&self) -> String {
        let lock = match self.owner {
            Some(o) => format!("<DRLock owner={} count={}>", o.session.0, o.count),
            None => "<DRLock owner=None count=0>".to_string(),
        };
        format!("<Condition({lock}, {})>", self.waiters.len())
    }

    /// The caller of a parked call gave up: forget it.
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        let before = self.waiters.len() + self.acquirers.len();
        self.waiters.retain(|p| p.call != call);
        self.acquirers.retain(|p| p.call != call);
        self.waiters.len() + self.acquirers.len() != before
    }

    /// A session ended: its waiting and acquiring calls are forgotten, and if it owned
    /// the lock, the lock passes to the next in line.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, ctx: &mut Ctx, session: SessionId) {
        self.waiters.retain(|p| p.call.session != session);
        self.acquirers.retain(|p| p.call.session != session);
        if self.owner.map(|o| o.session) == Some(session) {
            self.hand_over(ctx);
        }
    }

    /// The owner, if it is the caller's session; otherwise a `RuntimeError`.
    fn owned_by(&self, ctx: &Ctx, message: &str) -> Result<Owner, ObjectError> {
        self.owner
            .filter(|o| o.session == ctx.session())
            .ok_or_else(|| ObjectError::runtime_error(message))
    }

    fn notify_everyone(&mut self, ctx: &mut Ctx) -> Result<(), ObjectError> {
        self.owned_by(ctx, "cannot notify on un-acquired lock")?;
        self.move_waiters(ctx, self.waiters.len());
        Ok(())
    }

    /// Moves the `count` longest waiting waiters, in order, to the back of the lock's
    /// acquire queue: calls already waiting for the lock keep their turn.
    fn move_waiters(&mut self, ctx: &Ctx, count: usize) {
        let moved = self.waiters.drain(..count);
        if ctx.injected(MachineBug::NotifyJumpsQueue) {
            for (i, parked) in moved.enumerate() {
                self.acquirers.insert(i, parked);
            }
        } else {
            self.acquirers.extend(moved);
        }
    }

    /// Frees the lock and grants it to the first in line, with its count; further
    /// parked calls of the same session re-enter at once (ownership is per session).
    fn hand_over(&mut self, ctx: &mut Ctx) {
        self.owner = None;
        let Some(next) = self.acquirers.pop_front() else { return };
        let session = next.call.session;
        let mut count = next.count;
        ctx.wake(next.call, true);
        while let Some(pos) = self.acquirers.iter().position(|p| p.call.session == session) {
            let same = self.acquirers.remove(pos).expect("position is in range");
            count += same.count;
            ctx.wake(same.call, true);
        }
        self.owner = Some(Owner { session, count });
    }
}

/// Registers `Condition` under its name and the original's dotted path.
pub fn register(types: &mut Types) {
    types.register::<Condition>(&["concoord.object.condition.Condition"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Object, ObjectType, Outcome, Value, Wake};
    use concoord_wire::{RequestNumber, Slot, Time};

    fn id(session: u64, request: u64) -> CallId {
        CallId { session: SessionId(session), request: RequestNumber(request) }
    }

    /// Runs `method` as call `(session, request)`.
    fn call(
        cond: &mut Condition,
        (session, request): (u64, u64),
        method: &str,
        args: &[Value],
    ) -> (Outcome, Vec<Wake>) {
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(id(session, request), Time(0), Slot(request), &mut wakes);
        let outcome = cond.call(&mut ctx, method, args);
        (outcome, wakes)
    }

    fn close(cond: &mut Condition, session: u64) -> Vec<Wake> {
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(id(0, 0), Time(0), Slot(1), &mut wakes);
        cond.session_closed(&mut ctx, SessionId(session));
        wakes
    }

    fn woke(session: u64, request: u64) -> Wake {
        Wake { call: id(session, request), result: Ok(Value::Bool(true)) }
    }

    fn ret(value: Value) -> (Outcome, Vec<Wake>) {
        (Outcome::Return(value), vec![])
    }

    fn parked() -> (Outcome, Vec<Wake>) {
        (Outcome::Park, vec![])
    }

    fn raised(message: &str) -> (Outcome, Vec<Wake>) {
        (Outcome::Raise(ObjectError::runtime_error(message)), vec![])
    }

    #[test]
    fn wait_releases_fully_and_returns_only_after_re_acquiring_with_its_count() {
        let mut cond = Condition::construct(&[]).unwrap();
        assert_eq!(call(&mut cond, (1, 1), "acquire", &[]), ret(Value::Bool(true)));
        assert_eq!(call(&mut cond, (1, 2), "acquire", &[]), ret(Value::Bool(true)));
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=1 count=2>, 0)>");
        assert_eq!(call(&mut cond, (2, 1), "acquire", &[]), parked());
        // Session 1 waits: the lock is released fully and handed to session 2.
        let (outcome, wakes) = call(&mut cond, (1, 3), "wait", &[]);
        assert_eq!(outcome, Outcome::Park, "wait parks even when it hands the lock over");
        assert_eq!(wakes, [woke(2, 1)]);
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=2 count=1>, 1)>");
        // Session 2 notifies: the waiter is not woken before it owns the lock.
        assert_eq!(call(&mut cond, (2, 2), "notify", &[]), ret(Value::Nil));
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=2 count=1>, 0)>");
        let (outcome, wakes) = call(&mut cond, (2, 3), "release", &[]);
        assert_eq!(outcome, Outcome::Return(Value::Nil));
        assert_eq!(wakes, [woke(1, 3)]);
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=1 count=2>, 0)>", "count restored");
        call(&mut cond, (1, 4), "release", &[]);
        let (_, wakes) = call(&mut cond, (1, 5), "release", &[]);
        assert_eq!(wakes, []);
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=None count=0>, 0)>");
    }

    #[test]
    fn notify_n_and_notify_all_wake_waiters_in_fifo_order_through_the_lock() {
        let mut cond = Condition::default();
        for session in 1..=4 {
            assert_eq!(call(&mut cond, (session, 1), "acquire", &[]), ret(Value::Bool(true)));
            assert_eq!(call(&mut cond, (session, 2), "wait", &[]), parked());
        }
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=None count=0>, 4)>");
        call(&mut cond, (9, 1), "acquire", &[]);
        assert_eq!(call(&mut cond, (8, 1), "acquire", &[]), parked());
        assert_eq!(call(&mut cond, (9, 2), "notify", &[Value::Int(0)]), ret(Value::Nil));
        assert_eq!(call(&mut cond, (9, 3), "notify", &[Value::Int(2)]), ret(Value::Nil));
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=9 count=1>, 2)>");
        assert_eq!(call(&mut cond, (9, 4), "notifyAll", &[]), ret(Value::Nil));
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=9 count=1>, 0)>");
        // The lock then goes, one release at a time: the earlier acquirer 8, then the
        // notified waiters 1, 2 (notify(2)), 3 and 4 (notifyAll).
        let mut order = Vec::new();
        let mut holder = (9, 5);
        for _ in 0..5 {
            let (_, wakes) = call(&mut cond, holder, "release", &[]);
            assert_eq!(wakes.len(), 1);
            let next = wakes[0].call;
            order.push(next.session.0);
            holder = (next.session.0, next.request.0 + 10);
        }
        assert_eq!(order, [8, 1, 2, 3, 4]);
        let (_, wakes) = call(&mut cond, holder, "release", &[]);
        assert_eq!(wakes, []);
    }

    #[test]
    fn notify_all_snake_case_and_an_empty_notify() {
        let mut cond = Condition::default();
        call(&mut cond, (1, 1), "acquire", &[]);
        call(&mut cond, (1, 2), "wait", &[]);
        call(&mut cond, (2, 1), "acquire", &[]);
        call(&mut cond, (2, 2), "wait", &[]);
        call(&mut cond, (3, 1), "acquire", &[]);
        assert_eq!(call(&mut cond, (3, 2), "notify_all", &[]), ret(Value::Nil));
        assert_eq!(call(&mut cond, (3, 3), "notify", &[Value::Int(5)]), ret(Value::Nil));
        let (_, wakes) = call(&mut cond, (3, 4), "release", &[]);
        assert_eq!(wakes, [woke(1, 2)]);
    }

    #[test]
    fn wait_notify_and_release_need_the_lock() {
        let mut cond = Condition::default();
        assert_eq!(call(&mut cond, (1, 1), "wait", &[]), raised("cannot wait on un-acquired lock"));
        assert_eq!(
            call(&mut cond, (1, 2), "notify", &[]),
            raised("cannot notify on un-acquired lock")
        );
        assert_eq!(
            call(&mut cond, (1, 3), "notify_all", &[]),
            raised("cannot notify on un-acquired lock")
        );
        assert_eq!(
            call(&mut cond, (1, 4), "notifyAll", &[]),
            raised("cannot notify on un-acquired lock")
        );
        assert_eq!(
            call(&mut cond, (1, 5), "release", &[]),
            raised("cannot release un-acquired lock")
        );
        call(&mut cond, (2, 1), "acquire", &[]);
        assert_eq!(call(&mut cond, (1, 6), "wait", &[]), raised("cannot wait on un-acquired lock"));
        assert_eq!(
            call(&mut cond, (1, 7), "acquire", &[Value::Bool(false)]),
            ret(Value::Bool(false))
        );
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=2 count=1>, 0)>");
        assert!(cond.acquirers.is_empty());
    }

    #[test]
    fn a_closed_session_releases_the_lock_and_drops_its_calls() {
        let mut cond = Condition::default();
        call(&mut cond, (1, 1), "acquire", &[]);
        call(&mut cond, (1, 2), "wait", &[]);
        call(&mut cond, (2, 1), "acquire", &[]);
        call(&mut cond, (2, 2), "wait", &[]);
        call(&mut cond, (3, 1), "acquire", &[]);
        call(&mut cond, (3, 2), "acquire", &[]);
        call(&mut cond, (4, 1), "acquire", &[]);
        call(&mut cond, (3, 3), "notify_all", &[]);
        // Session 1 (notified, queued for the lock) and session 4 (acquiring) end.
        assert_eq!(close(&mut cond, 1), []);
        assert_eq!(close(&mut cond, 4), []);
        // The owner (count 2) ends: the lock goes to session 2's notified wait.
        assert_eq!(close(&mut cond, 3), [woke(2, 2)]);
        assert_eq!(cond.repr(), "<Condition(<DRLock owner=2 count=1>, 0)>");
        call(&mut cond, (2, 3), "wait", &[]);
        assert_eq!(close(&mut cond, 2), []);
        assert_eq!(cond, Condition::default());
    }

    #[test]
    fn snapshot_restore_and_registration() {
        let mut cond = Condition::default();
        call(&mut cond, (1, 1), "acquire", &[]);
        call(&mut cond, (1, 2), "wait", &[]);
        call(&mut cond, (2, 1), "acquire", &[]);
        call(&mut cond, (2, 2), "notify", &[]);
        let mut restored = Condition::restore(&cond.snapshot().unwrap()).unwrap();
        assert_eq!(restored, cond);
        let repr = Value::Str("<Condition(<DRLock owner=2 count=1>, 0)>".into());
        assert_eq!(restored.query("__repr__", &[]), Some(Ok(repr)));
        let (_, wakes) = call(&mut restored, (2, 3), "release", &[]);
        assert_eq!(wakes, [woke(1, 2)]);
        assert!(Condition::restore(b"junk").is_err());
        let mut types = Types::new();
        register(&mut types);
        assert_eq!(types.canonical("concoord.object.condition.Condition"), Some("Condition"));
    }
}
