//! The `Mutex` of `docs/objects.md` §5, copied verbatim so the documented example keeps
//! compiling, with a few tests of what it shows: no constructor (so `Default`), a
//! fencing token from `ctx.fencing_token()`, parking, and release on session end. It is not the
//! built-in `Lock`.

use crate::host::Host;
use concoord_object::{CallError, Object, ObjectError, ObjectType, Value, Wake};

mod example {
    // From here to the end of the module: docs/objects.md §5, unchanged.
    use concoord_object::{Blocking, CallId, Ctx, ObjectError};
    use concoord_wire::SessionId;
    use serde::{Deserialize, Serialize};
    use std::collections::VecDeque;

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Mutex {
        holder: Option<SessionId>,
        waiters: VecDeque<CallId>,
    }

    #[concoord_object::object]
    impl Mutex {
        /// Grants the lock (returning a fencing token) or parks the caller.
        pub fn acquire(&mut self, ctx: &mut Ctx) -> Blocking<u64> {
            if self.holder.is_none() {
                self.holder = Some(ctx.session());
                return Blocking::Ready(ctx.fencing_token());
            }
            self.waiters.push_back(ctx.call());
            Blocking::Park
        }

        pub fn release(&mut self, ctx: &mut Ctx) -> Result<(), ObjectError> {
            if self.holder != Some(ctx.session()) {
                return Err(ObjectError::runtime_error("cannot release un-acquired lock"));
            }
            self.hand_over(ctx);
            Ok(())
        }

        pub fn locked(&self) -> bool {
            self.holder.is_some()
        }

        #[concoord(session_closed)]
        fn on_session_closed(&mut self, ctx: &mut Ctx, session: SessionId) {
            self.waiters.retain(|c| c.session != session);
            if self.holder == Some(session) {
                self.hand_over(ctx);
            }
        }

        fn hand_over(&mut self, ctx: &mut Ctx) {
            self.holder = None;
            if let Some(next) = self.waiters.pop_front() {
                self.holder = Some(next.session);
                ctx.wake(next, ctx.fencing_token());
            }
        }
    }
}

use example::{Mutex, MutexClient};

#[test]
fn without_a_constructor_the_object_starts_from_default_and_takes_no_arguments() {
    let mutex = Mutex::construct(&[]).unwrap();
    assert_eq!(mutex.query("locked", &[]), Some(Ok(Value::Bool(false))));
    let error = Mutex::construct(&[Value::Int(1)]).unwrap_err();
    assert_eq!(error, ObjectError::type_error("Mutex() takes 0 arguments but 1 were given"));
}

#[test]
fn the_documented_mutex_grants_parks_and_hands_over_on_session_end() {
    let mut host = Host::with_type::<Mutex>(&[]);
    host.create("m", "Mutex", &[]).unwrap();
    assert_eq!(MutexClient::new(host.session(1), "m").acquire(), Ok(1));
    assert!(matches!(
        MutexClient::new(host.session(2), "m").acquire(),
        Err(CallError::Unavailable(_))
    ));
    let error = ObjectError::runtime_error("cannot release un-acquired lock");
    assert_eq!(MutexClient::new(host.session(3), "m").release(), Err(CallError::Raised(error)));
    host.close(1);
    let parked = host.parked[0];
    assert_eq!(host.wakes, [Wake { call: parked, result: Ok(Value::Int(4)) }]);
    assert_eq!(MutexClient::new(host.session(2), "m").locked(), Ok(true));
    MutexClient::new(host.session(2), "m").release().unwrap();
    assert_eq!(host.object("m").query("locked", &[]), Some(Ok(Value::Bool(false))));
}
