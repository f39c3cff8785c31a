//! Helpers the built-ins' unit tests share: drive an object through `Object::call`
//! as a given session, close a session, and spell expected results. Test code only.

use crate::{CallId, Ctx, Object, Outcome, Value, Wake};
use concoord_wire::{RequestNumber, SessionId, Slot, Time};

pub fn id(session: u64, request: u64) -> CallId {
    CallId { session: SessionId(session), request: RequestNumber(request) }
}

/// Runs `method` as call `(session, request)` in log slot `slot`.
pub fn call<O: Object>(
    object: &mut O,
    (session, request): (u64, u64),
    slot: u64,
    method: &str,
    args: &[Value],
) -> (Outcome, Vec<Wake>) {
    let mut wakes = Vec::new();
    let mut ctx = Ctx::new(id(session, request), Time(0), Slot(slot), &mut wakes);
    let outcome = object.call(&mut ctx, method, args);
    (outcome, wakes)
}

/// Ends `session` at slot `slot`; returns whom that woke.
pub fn close<O: Object>(object: &mut O, session: u64, slot: u64) -> Vec<Wake> {
    let mut wakes = Vec::new();
    let mut ctx = Ctx::new(id(0, 0), Time(0), Slot(slot), &mut wakes);
    object.session_closed(&mut ctx, SessionId(session));
    wakes
}

pub fn woke(session: u64, request: u64, value: Value) -> Wake {
    Wake { call: id(session, request), result: Ok(value) }
}

pub fn ret(value: Value) -> (Outcome, Vec<Wake>) {
    (Outcome::Return(value), vec![])
}
