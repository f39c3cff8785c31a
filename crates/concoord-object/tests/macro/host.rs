//! `Host`: object instances called directly, one slot per call, and `Session`, the
//! small in-test `Call` that drives generated proxies into them. It stands in for the
//! replicated machine only as far as the proxies need; it has no log, no sessions
//! table and no exactly-once (that is `concoord_object::machine`, tested there).

use concoord_object::builtins;
use concoord_object::{
    Call, CallError, CallId, Ctx, MethodKind, Object, ObjectError, ObjectType, Outcome, Types,
    Value, Wake,
};
use concoord_wire::{RequestNumber, SessionId, Slot, Time};
use std::collections::BTreeMap;

/// Named object instances and everything their calls did.
#[derive(Debug)]
pub struct Host {
    pub types: Types,
    objects: BTreeMap<String, Box<dyn Object>>,
    slot: u64,
    request: u64,
    /// Every wake, in the order commands produced them.
    pub wakes: Vec<Wake>,
    /// The id of every call that parked, in order.
    pub parked: Vec<CallId>,
}

impl Host {
    /// A host whose registry has the built-ins and `T` (under its name and `aliases`).
    pub fn with_type<T: ObjectType>(aliases: &[&str]) -> Host {
        let mut types = Types::new();
        builtins::register_all(&mut types);
        types.register::<T>(aliases);
        Host {
            types,
            objects: BTreeMap::new(),
            slot: 0,
            request: 0,
            wakes: Vec::new(),
            parked: Vec::new(),
        }
    }

    /// Creates instance `name` of the type registered as `type_name`.
    pub fn create(
        &mut self,
        name: &str,
        type_name: &str,
        args: &[Value],
    ) -> Result<(), ObjectError> {
        let object = self.types.construct(type_name, args)?;
        self.objects.insert(name.to_string(), object);
        Ok(())
    }

    pub fn object(&self, name: &str) -> &dyn Object {
        self.objects[name].as_ref()
    }

    /// Ends `session` on every instance, as lease expiry does.
    pub fn close(&mut self, session: u64) {
        for object in self.objects.values_mut() {
            self.slot += 1;
            self.request += 1;
            let id = CallId { session: SessionId(0), request: RequestNumber(self.request) };
            let mut ctx = Ctx::new(id, Time(self.slot), Slot(self.slot), &mut self.wakes);
            object.session_closed(&mut ctx, SessionId(session));
        }
    }

    /// A `Call` for proxies, calling as `session`.
    pub fn session(&mut self, session: u64) -> Session<'_> {
        Session { host: self, session: SessionId(session) }
    }

    /// The next call's id and slot.
    fn next(&mut self, session: SessionId) -> (CallId, Slot) {
        self.slot += 1;
        self.request += 1;
        (CallId { session, request: RequestNumber(self.request) }, Slot(self.slot))
    }
}

/// One client's view of a `Host`: what the generated `TypeClient<C: Call>` drives.
#[derive(Debug)]
pub struct Session<'a> {
    host: &'a mut Host,
    session: SessionId,
}

impl Session<'_> {
    pub fn id(&self) -> SessionId {
        self.session
    }
}

impl Call for Session<'_> {
    /// Queries go through `Object::query` (as a client's linearizable read would),
    /// commands through `Object::call` with a fresh slot. A parked call is reported
    /// as unavailable: the real client would wait for its wake.
    fn invoke(&mut self, object: &str, method: &str, args: Vec<Value>) -> Result<Value, CallError> {
        let host = &mut *self.host;
        let Some(instance) = host.objects.get(object) else {
            return Err(CallError::Unavailable(format!("no object named {object:?}")));
        };
        let is_query =
            instance.methods().iter().any(|m| m.name == method && m.kind == MethodKind::Query);
        if is_query {
            let result = instance.query(method, &args).expect("a listed query answers `query`");
            return result.map_err(CallError::Raised);
        }
        let (id, slot) = host.next(self.session);
        let instance = host.objects.get_mut(object).expect("looked up above");
        let mut ctx = Ctx::new(id, Time(slot.0 * 1_000), slot, &mut host.wakes);
        match instance.call(&mut ctx, method, &args) {
            Outcome::Return(value) => Ok(value),
            Outcome::Raise(error) => Err(CallError::Raised(error)),
            Outcome::Park => {
                host.parked.push(id);
                Err(CallError::Unavailable(format!("parked as request {}", id.request.0)))
            }
        }
    }
}

/// A `Call` that records what it was asked and answers with a canned value, for
/// checking what a proxy sends and how it decodes what comes back.
#[derive(Debug, Default)]
pub struct Canned {
    pub answer: Value,
    pub sent: Vec<(String, String, Vec<Value>)>,
}

impl Call for Canned {
    fn invoke(&mut self, object: &str, method: &str, args: Vec<Value>) -> Result<Value, CallError> {
        self.sent.push((object.to_string(), method.to_string(), args));
        Ok(self.answer.clone())
    }
}
