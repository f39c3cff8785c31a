//! What the lock-like built-ins (Lock, RLock, Semaphore, BoundedSemaphore) share: a
//! parked acquirer remembers which method it called, so it is woken with `True` or
//! with its grant's fencing token; and a grant (or its absence) becomes the method's
//! result. Not an object itself.

use crate::{Blocking, CallId, Ctx};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Which acquire method a parked caller used, so it is woken with the right result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// `acquire`: woken with `True`.
    Flag,
    /// `acquire_token`: woken with the fencing token of its grant.
    Token,
}

/// A parked acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiter {
    pub(crate) call: CallId,
    pub(crate) reply: Reply,
}

impl Waiter {
    /// Wakes the parked caller, granted with fencing token `token`.
    pub(crate) fn grant(self, ctx: &mut Ctx, token: u64) {
        match self.reply {
            Reply::Flag => ctx.wake(self.call, true),
            Reply::Token => ctx.wake(self.call, token),
        }
    }
}

/// `acquire(blocking)`'s result for a grant's token, or `None` when not granted now.
pub(crate) fn flag(granted: Option<u64>, blocking: Option<bool>) -> Blocking<bool> {
    match granted {
        Some(_) => Blocking::Ready(true),
        None if blocking.unwrap_or(true) => Blocking::Park,
        None => Blocking::Ready(false),
    }
}

/// `acquire_token(blocking)`'s result for a grant's token, or `None` when not granted.
pub(crate) fn token(granted: Option<u64>, blocking: Option<bool>) -> Blocking<Option<u64>> {
    match granted {
        Some(token) => Blocking::Ready(Some(token)),
        None if blocking.unwrap_or(true) => Blocking::Park,
        None => Blocking::Ready(None),
    }
}

/// Forgets the parked acquire `call`, if it waits here (`#[concoord(cancel)]`).
pub(crate) fn cancel(waiters: &mut VecDeque<Waiter>, call: CallId) -> bool {
    let before = waiters.len();
    waiters.retain(|w| w.call != call);
    waiters.len() != before
}
