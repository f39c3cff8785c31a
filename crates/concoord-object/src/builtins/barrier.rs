//! `Barrier`: the original ConCoord barrier (`concoord/object/barrier.py`), written
//! with `#[object]`, with Python's `threading.Barrier` result: `wait()` parks until
//! `parties` calls are waiting, then all of them proceed, each returning its arrival
//! index `0..parties` (the last arrival returns at once, the others are woken). The
//! barrier then starts over for the next round.
//!
//! Fixed on purpose: the original woke only one waiter through a lock hand-off, so it
//! was correct only for `count <= 2`, and returned None. A session that ends (closed or
//! expired) leaves the barrier: its waiting calls give up their places and the other
//! waiters keep theirs. What it deliberately is not: there is no `timeout`, `abort()`,
//! `reset()` or broken state (a method cannot read a clock, and a departed session
//! simply no longer counts), and no `action` callable.

use crate::{Blocking, CallId, Ctx, ObjectError, Types};
use concoord_wire::SessionId;
use serde::{Deserialize, Serialize};

/// A replicated barrier: `Barrier(count=1)` in the original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barrier {
    /// How many calls must wait before all proceed (at least 1).
    parties: u64,
    /// The waiting calls of the current round, in arrival order.
    waiting: Vec<CallId>,
}

impl Default for Barrier {
    /// `Barrier()`: one party, so `wait()` never parks.
    fn default() -> Barrier {
        Barrier { parties: 1, waiting: Vec::new() }
    }
}

#[concoord_object::object]
impl Barrier {
    /// `__init__(parties=1)`; fewer than one party is a `ValueError`.
    #[concoord(constructor)]
    pub fn new(parties: Option<i64>) -> Result<Barrier, ObjectError> {
        let parties = parties.unwrap_or(1);
        if parties < 1 {
            return Err(ObjectError::value_error("parties must be >= 1"));
        }
        Ok(Barrier { parties: parties.unsigned_abs(), waiting: Vec::new() })
    }

    /// `wait()`: the caller's arrival index in this round, `0..parties`. Parks until
    /// the last party arrives; the last arrival wakes every waiter (each with its own
    /// index) and returns `parties - 1` at once.
    pub fn wait(&mut self, ctx: &mut Ctx) -> Blocking<u64> {
        let index = self.waiting.len() as u64;
        if index + 1 < self.parties {
            self.waiting.push(ctx.call());
            return Blocking::Park;
        }
        for (i, call) in self.waiting.drain(..).enumerate() {
            ctx.wake(call, i as u64);
        }
        Blocking::Ready(index)
    }

    /// The number of calls required to pass the barrier.
    pub fn parties(&self) -> u64 {
        self.parties
    }

    /// The number of calls currently waiting.
    pub fn n_waiting(&self) -> u64 {
        self.waiting.len() as u64
    }

    /// Python's `repr`: `<Barrier parties=N waiting=W>`.
    #[concoord(name = "__repr__")]
    pub fn repr(&self) -> String {
        format!("<Barrier parties={} waiting={}>", self.parties, self.waiting.len())
    }

    /// Python's `str(barrier)`, as in the original.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        "<Barrier object>".to_string()
    }

    /// The caller of a parked call gave up: forget it.
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|c| *c != call);
        self.waiting.len() != before
    }

    /// A session ended: its waiting calls leave the barrier (they no longer count);
    /// nobody is woken, since fewer calls are waiting than before.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, _ctx: &mut Ctx, session: SessionId) {
        self.waiting.retain(|c| c.session != session);
    }
}

/// Registers `Barrier` under its name and the original's dotted path.
pub fn register(types: &mut Types) {
    types.register::<Barrier>(&["concoord.object.barrier.Barrier"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Object, ObjectType, Outcome, Value, Wake};
    use concoord_wire::{RequestNumber, Slot, Time};

    fn id(session: u64, request: u64) -> CallId {
        CallId { session: SessionId(session), request: RequestNumber(request) }
    }

    fn wait(barrier: &mut Barrier, (session, request): (u64, u64)) -> (Outcome, Vec<Wake>) {
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(id(session, request), Time(0), Slot(request), &mut wakes);
        let outcome = barrier.call(&mut ctx, "wait", &[]);
        (outcome, wakes)
    }

    fn close(barrier: &mut Barrier, session: u64) -> Vec<Wake> {
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(id(0, 0), Time(0), Slot(1), &mut wakes);
        barrier.session_closed(&mut ctx, SessionId(session));
        wakes
    }

    fn woke(session: u64, request: u64, index: i64) -> Wake {
        Wake { call: id(session, request), result: Ok(Value::Int(index)) }
    }

    #[test]
    fn constructor_defaults_to_one_party_and_rejects_fewer() {
        let mut barrier = Barrier::construct(&[]).unwrap();
        assert_eq!(barrier, Barrier::default());
        assert_eq!(wait(&mut barrier, (1, 1)), (Outcome::Return(Value::Int(0)), vec![]));
        assert_eq!(wait(&mut barrier, (1, 2)), (Outcome::Return(Value::Int(0)), vec![]));
        for bad in [0, -2] {
            let e = Barrier::construct(&[Value::Int(bad)]).unwrap_err();
            assert_eq!(e, ObjectError::value_error("parties must be >= 1"));
        }
    }

    #[test]
    fn releases_every_waiter_with_its_arrival_index_for_any_count() {
        for parties in 2..=6u64 {
            let mut barrier = Barrier::new(Some(parties as i64)).unwrap();
            for round in 1..=2u64 {
                for session in 1..parties {
                    assert_eq!(wait(&mut barrier, (session, round)), (Outcome::Park, vec![]));
                    assert_eq!(barrier.n_waiting(), session);
                }
                let (outcome, wakes) = wait(&mut barrier, (parties, round));
                assert_eq!(outcome, Outcome::Return(Value::Int(parties as i64 - 1)));
                let expected: Vec<Wake> =
                    (1..parties).map(|s| woke(s, round, s as i64 - 1)).collect();
                assert_eq!(wakes, expected, "parties={parties} round={round}");
                assert_eq!(barrier.n_waiting(), 0);
            }
        }
    }

    #[test]
    fn a_closed_session_gives_up_its_place() {
        let mut barrier = Barrier::new(Some(3)).unwrap();
        wait(&mut barrier, (1, 1));
        wait(&mut barrier, (2, 1));
        assert_eq!(close(&mut barrier, 1), []);
        assert_eq!(barrier.n_waiting(), 1);
        assert_eq!(wait(&mut barrier, (3, 1)), (Outcome::Park, vec![]));
        let (outcome, wakes) = wait(&mut barrier, (4, 1));
        assert_eq!(outcome, Outcome::Return(Value::Int(2)));
        assert_eq!(wakes, [woke(2, 1, 0), woke(3, 1, 1)]);
    }

    #[test]
    fn queries_strings_snapshot_and_registration() {
        let mut barrier = Barrier::new(Some(3)).unwrap();
        wait(&mut barrier, (1, 1));
        assert_eq!(barrier.query("parties", &[]), Some(Ok(Value::Int(3))));
        assert_eq!(barrier.query("n_waiting", &[]), Some(Ok(Value::Int(1))));
        assert_eq!(barrier.query("__str__", &[]), Some(Ok(Value::Str("<Barrier object>".into()))));
        let repr = Value::Str("<Barrier parties=3 waiting=1>".into());
        assert_eq!(barrier.query("__repr__", &[]), Some(Ok(repr)));
        assert_eq!(barrier.query("wait", &[]), None);
        let mut restored = Barrier::restore(&barrier.snapshot().unwrap()).unwrap();
        assert_eq!(restored, barrier);
        wait(&mut restored, (2, 1));
        let (_, wakes) = wait(&mut restored, (3, 1));
        assert_eq!(wakes, [woke(1, 1, 0), woke(2, 1, 1)]);
        assert!(Barrier::restore(b"junk").is_err());
        let mut types = Types::new();
        register(&mut types);
        assert_eq!(types.canonical("concoord.object.barrier.Barrier"), Some("Barrier"));
    }
}
