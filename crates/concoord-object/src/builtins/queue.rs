//! `Queue`: the original ConCoord FIFO queue (`concoord/object/queue.py`), written with
//! `#[object]`. The original could not even be instantiated (its class shadowed the
//! stdlib module it used); this one works, with the method names and exceptions of
//! Python's `queue.Queue`: `put` and `get` block by default, `block=False` raises
//! `Full` / `Empty`.
//!
//! Blocking is replicated data: a blocked `get` parks its caller in a FIFO of getters,
//! a blocked `put` parks its caller *together with its item* in a FIFO of putters.
//! A `put` hands its item straight to the first parked getter; a `get` that frees room
//! completes the first parked put (its item enters the queue, its caller gets None).
//! There is no timeout argument (no clock inside an object): a client that stops
//! waiting closes its session, and `session_closed` drops that session's parked
//! getters and parked putters; **the items of dropped putters are discarded**, they
//! never enter the queue. It is not a priority or LIFO queue, and it has no
//! `task_done`/`join`.

use crate::{Blocking, CallId, Ctx, ObjectError, Types, Value};
use concoord_wire::SessionId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A replicated FIFO queue: `Queue(maxsize=0)` in the original; `maxsize` 0 or
/// negative means unbounded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// 0 when unbounded.
    maxsize: u64,
    items: VecDeque<Value>,
    /// Parked `get` calls, oldest first. Non-empty only while `items` is empty.
    getters: VecDeque<CallId>,
    /// Parked `put` calls with their items, oldest first. Non-empty only while full.
    putters: VecDeque<(CallId, Value)>,
}

#[concoord_object::object]
impl Queue {
    /// `__init__(maxsize=0)`.
    #[concoord(constructor)]
    pub fn new(maxsize: Option<i64>) -> Queue {
        let maxsize = u64::try_from(maxsize.unwrap_or(0)).unwrap_or(0);
        Queue { maxsize, ..Queue::default() }
    }

    /// `put(item, block=True)`: appends `item` (or hands it to the first parked
    /// getter) and returns None; when the queue is full, parks the caller until a
    /// `get` makes room, or raises `Full` if `block` is false.
    pub fn put(
        &mut self,
        ctx: &mut Ctx,
        item: Value,
        block: Option<bool>,
    ) -> Result<Blocking<()>, ObjectError> {
        match self.offer(ctx, item) {
            Ok(()) => Ok(Blocking::Ready(())),
            Err(item) if block.unwrap_or(true) => {
                self.putters.push_back((ctx.call(), item));
                Ok(Blocking::Park)
            }
            Err(_) => Err(full_error()),
        }
    }

    /// `get(block=True)`: removes and returns the oldest item; when the queue is
    /// empty, parks the caller until a `put`, or raises `Empty` if `block` is false.
    pub fn get(
        &mut self,
        ctx: &mut Ctx,
        block: Option<bool>,
    ) -> Result<Blocking<Value>, ObjectError> {
        if let Some(item) = self.take(ctx) {
            return Ok(Blocking::Ready(item));
        }
        if block.unwrap_or(true) {
            self.getters.push_back(ctx.call());
            return Ok(Blocking::Park);
        }
        Err(empty_error())
    }

    /// `put_nowait(item)`: `put(item, block=False)`.
    pub fn put_nowait(&mut self, ctx: &mut Ctx, item: Value) -> Result<(), ObjectError> {
        self.offer(ctx, item).map_err(|_| full_error())
    }

    /// `get_nowait()`: `get(block=False)`.
    pub fn get_nowait(&mut self, ctx: &mut Ctx) -> Result<Value, ObjectError> {
        self.take(ctx).ok_or_else(empty_error)
    }

    /// The number of items in the queue (parked putters' items not included).
    pub fn qsize(&self) -> usize {
        self.items.len()
    }

    pub fn empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when the queue is bounded and holds `maxsize` items.
    pub fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() as u64 >= self.maxsize
    }

    /// Python's `str(queue)`: `<Queue qsize=N>`.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        format!("<Queue qsize={}>", self.items.len())
    }

    /// The caller of a parked call gave up: forget it.
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        let before = self.getters.len() + self.putters.len();
        self.getters.retain(|c| *c != call);
        // A parked put's item goes with it: it was never in the queue.
        self.putters.retain(|(c, _)| *c != call);
        self.getters.len() + self.putters.len() != before
    }

    /// Forgets the session's parked getters and parked putters; the items of its
    /// parked putters are discarded.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, _ctx: &mut Ctx, session: SessionId) {
        self.getters.retain(|call| call.session != session);
        self.putters.retain(|(call, _)| call.session != session);
    }

    /// Hands `item` to the first parked getter or appends it; gives it back when
    /// the queue is full.
    fn offer(&mut self, ctx: &mut Ctx, item: Value) -> Result<(), Value> {
        if let Some(getter) = self.getters.pop_front() {
            ctx.wake(getter, item);
        } else if self.full() {
            return Err(item);
        } else {
            self.items.push_back(item);
        }
        Ok(())
    }

    /// Removes the oldest item, letting the first parked put (if any) take the room.
    fn take(&mut self, ctx: &mut Ctx) -> Option<Value> {
        let item = self.items.pop_front()?;
        if let Some((putter, parked)) = self.putters.pop_front() {
            self.items.push_back(parked);
            ctx.wake(putter, ());
        }
        Some(item)
    }
}

fn full_error() -> ObjectError {
    ObjectError::new("Full", "queue is full")
}

fn empty_error() -> ObjectError {
    ObjectError::new("Empty", "queue is empty")
}

/// Registers `Queue` and the original's `concoord.object.queue.Queue`.
pub fn register(types: &mut Types) {
    types.register::<Queue>(&["concoord.object.queue.Queue"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Object, ObjectType, Outcome, Wake};
    use concoord_wire::{RequestNumber, Slot, Time};

    fn id(session: u64, request: u64) -> CallId {
        CallId { session: SessionId(session), request: RequestNumber(request) }
    }

    /// Calls `method` as `caller`; returns the outcome and the calls it woke.
    fn call(q: &mut Queue, caller: CallId, method: &str, args: &[Value]) -> (Outcome, Vec<Wake>) {
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(caller, Time(0), Slot(1), &mut wakes);
        let outcome = q.call(&mut ctx, method, args);
        (outcome, wakes)
    }

    fn int(i: i64) -> Value {
        Value::Int(i)
    }

    fn woke(call: CallId, result: Value) -> Wake {
        Wake { call, result: Ok(result) }
    }

    #[test]
    fn puts_and_gets_in_fifo_order() {
        let mut q = Queue::construct(&[]).unwrap();
        assert!(q.empty() && !q.full());
        for i in 1..=3 {
            assert_eq!(
                call(&mut q, id(1, 1), "put", &[int(i)]),
                (Outcome::Return(Value::Nil), vec![])
            );
        }
        assert_eq!(q.query("qsize", &[]), Some(Ok(int(3))));
        assert_eq!(q.query("empty", &[]), Some(Ok(Value::Bool(false))));
        assert_eq!(q.query("full", &[]), Some(Ok(Value::Bool(false))), "unbounded by default");
        assert_eq!(q.query("__str__", &[]), Some(Ok(Value::Str("<Queue qsize=3>".into()))));
        assert_eq!(call(&mut q, id(1, 2), "get", &[]).0, Outcome::Return(int(1)));
        assert_eq!(call(&mut q, id(1, 3), "get_nowait", &[]).0, Outcome::Return(int(2)));
        assert_eq!(call(&mut q, id(1, 4), "get", &[Value::Bool(false)]).0, Outcome::Return(int(3)));
        assert_eq!(q.query("get", &[]), None, "get is a command");
    }

    #[test]
    fn non_blocking_calls_raise_full_and_empty() {
        let mut q = Queue::new(Some(1));
        let empty = Outcome::Raise(ObjectError::new("Empty", "queue is empty"));
        assert_eq!(call(&mut q, id(1, 1), "get", &[Value::Bool(false)]).0, empty);
        assert_eq!(call(&mut q, id(1, 2), "get_nowait", &[]).0, empty);
        call(&mut q, id(1, 3), "put_nowait", &[int(7)]);
        assert!(q.full());
        let full = Outcome::Raise(ObjectError::new("Full", "queue is full"));
        assert_eq!(call(&mut q, id(1, 4), "put", &[int(8), Value::Bool(false)]).0, full);
        assert_eq!(call(&mut q, id(1, 5), "put_nowait", &[int(8)]).0, full);
        assert_eq!(q.qsize(), 1, "a raising put changes nothing");
        assert!(q.putters.is_empty() && q.getters.is_empty());
    }

    #[test]
    fn zero_or_negative_maxsize_is_unbounded() {
        for maxsize in [Value::Nil, int(0), int(-5)] {
            let mut q = Queue::construct(&[maxsize]).unwrap();
            for i in 0..100 {
                call(&mut q, id(1, 1), "put_nowait", &[int(i)]);
            }
            assert!(!q.full());
            assert_eq!(q.qsize(), 100);
        }
    }

    #[test]
    fn a_blocked_get_is_woken_by_the_next_put_in_fifo_order() {
        let mut q = Queue::default();
        assert_eq!(call(&mut q, id(1, 1), "get", &[]).0, Outcome::Park);
        assert_eq!(call(&mut q, id(2, 1), "get", &[Value::Bool(true)]).0, Outcome::Park);
        let (outcome, wakes) = call(&mut q, id(3, 1), "put", &[Value::Str("a".into())]);
        assert_eq!(outcome, Outcome::Return(Value::Nil));
        assert_eq!(wakes, [woke(id(1, 1), Value::Str("a".into()))]);
        assert_eq!(q.qsize(), 0, "the item went to the getter, not into the queue");
        let (_, wakes) = call(&mut q, id(3, 2), "put_nowait", &[int(2)]);
        assert_eq!(wakes, [woke(id(2, 1), int(2))]);
        let (_, wakes) = call(&mut q, id(3, 3), "put", &[int(3)]);
        assert!(wakes.is_empty());
        assert_eq!(q.qsize(), 1);
    }

    #[test]
    fn a_blocked_put_completes_when_a_get_makes_room() {
        let mut q = Queue::new(Some(2));
        call(&mut q, id(1, 1), "put", &[int(1)]);
        call(&mut q, id(1, 2), "put", &[int(2)]);
        assert_eq!(call(&mut q, id(2, 1), "put", &[int(3)]).0, Outcome::Park);
        assert_eq!(call(&mut q, id(3, 1), "put", &[int(4)]).0, Outcome::Park);
        assert_eq!(q.qsize(), 2, "parked items are not in the queue yet");
        let (outcome, wakes) = call(&mut q, id(4, 1), "get", &[]);
        assert_eq!(outcome, Outcome::Return(int(1)));
        assert_eq!(wakes, [woke(id(2, 1), Value::Nil)]);
        assert!(q.full());
        let (outcome, wakes) = call(&mut q, id(4, 2), "get_nowait", &[]);
        assert_eq!(outcome, Outcome::Return(int(2)));
        assert_eq!(wakes, [woke(id(3, 1), Value::Nil)]);
        let rest: Vec<_> = (3..5).map(|r| call(&mut q, id(4, r), "get", &[]).0).collect();
        assert_eq!(rest, [Outcome::Return(int(3)), Outcome::Return(int(4))]);
        assert!(q.putters.is_empty() && q.empty());
    }

    #[test]
    fn a_closed_session_gives_up_its_parked_calls_and_their_items() {
        let mut q = Queue::new(Some(1));
        call(&mut q, id(1, 1), "put", &[int(1)]);
        call(&mut q, id(2, 1), "put", &[int(2)]);
        call(&mut q, id(3, 1), "put", &[int(3)]);
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(id(9, 1), Time(0), Slot(2), &mut wakes);
        q.session_closed(&mut ctx, SessionId(2));
        assert!(wakes.is_empty());
        let (outcome, wakes) = call(&mut q, id(4, 1), "get", &[]);
        assert_eq!(outcome, Outcome::Return(int(1)));
        assert_eq!(wakes, [woke(id(3, 1), Value::Nil)], "session 2's item 2 was discarded");
        assert_eq!(call(&mut q, id(4, 2), "get", &[]).0, Outcome::Return(int(3)));

        // Parked getters of the closed session are skipped by later puts.
        assert_eq!(call(&mut q, id(5, 1), "get", &[]).0, Outcome::Park);
        assert_eq!(call(&mut q, id(6, 1), "get", &[]).0, Outcome::Park);
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(id(9, 2), Time(0), Slot(3), &mut wakes);
        q.session_closed(&mut ctx, SessionId(5));
        let (_, wakes) = call(&mut q, id(4, 3), "put", &[int(4)]);
        assert_eq!(wakes, [woke(id(6, 1), int(4))]);
        assert!(q.getters.is_empty() && q.putters.is_empty() && q.empty());
    }

    #[test]
    fn snapshot_and_restore_keep_items_and_parked_calls() {
        let mut q = Queue::new(Some(1));
        call(&mut q, id(1, 1), "put", &[Value::List(vec![int(1), Value::Str("x".into())])]);
        call(&mut q, id(2, 1), "put", &[Value::Map(vec![(int(1), Value::Nil)])]);
        let mut restored = Queue::restore(&q.snapshot().unwrap()).unwrap();
        assert_eq!(restored, q);
        let (outcome, wakes) = call(&mut restored, id(3, 1), "get", &[]);
        assert_eq!(outcome, Outcome::Return(Value::List(vec![int(1), Value::Str("x".into())])));
        assert_eq!(wakes, [woke(id(2, 1), Value::Nil)]);
        assert!(Queue::restore(b"not a snapshot").is_err());
    }

    #[test]
    fn wrong_arguments_are_type_errors() {
        let mut q = Queue::default();
        let Outcome::Raise(e) = call(&mut q, id(1, 1), "put", &[]).0 else { panic!() };
        assert_eq!(e, ObjectError::type_error("put() missing required argument 'item'"));
        let Outcome::Raise(e) = call(&mut q, id(1, 2), "get", &[int(1)]).0 else { panic!() };
        assert_eq!(e.kind, "TypeError");
        assert!(q.getters.is_empty());
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["Queue", "concoord.object.queue.Queue"] {
            let q = types.construct(name, &[int(3)]).unwrap();
            assert_eq!(q.type_name(), "Queue");
        }
    }
}
