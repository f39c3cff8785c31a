//! The smallest objects the macro accepts: nothing exposed, only a constructor, only
//! a `session_closed` hook. They check that the generated code's edge cases compile
//! without warnings and still behave; they are not examples of useful objects.

use concoord_object::{CallId, Ctx, Object, ObjectError, ObjectType, Outcome, Value};
use concoord_wire::{RequestNumber, SessionId, Slot, Time};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Nothing;

#[concoord_object::object]
impl Nothing {}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Fixed {
    seed: u8,
}

#[concoord_object::object(name = "concoord.test.Fixed")]
impl Fixed {
    #[concoord(constructor)]
    pub fn new(seed: u8) -> Self {
        Fixed { seed }
    }
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Watcher {
    closed: Vec<u64>,
}

#[concoord_object::object]
impl Watcher {
    #[concoord(session_closed)]
    pub fn on_session_closed(&mut self, _ctx: &mut Ctx<'_>, session: SessionId) {
        self.closed.push(session.0);
    }
}

fn call(object: &mut dyn Object, method: &str) -> Outcome {
    let mut wakes = Vec::new();
    let id = CallId { session: SessionId(1), request: RequestNumber(1) };
    object.call(&mut Ctx::new(id, Time(1), Slot(1), &mut wakes), method, &[])
}

#[test]
fn an_object_with_nothing_exposed_answers_every_name_with_attribute_error() {
    let mut nothing = Nothing::construct(&[]).unwrap();
    assert!(nothing.methods().is_empty());
    let error = ObjectError::attribute_error("'Nothing' object has no attribute 'anything'");
    assert_eq!(call(&mut nothing, "anything"), Outcome::Raise(error));
    assert_eq!(nothing.query("anything", &[]), None);
    assert_eq!(Nothing::restore(&nothing.snapshot().unwrap()), Ok(Nothing));
    let _proxy: NothingClient<crate::host::Canned> = NothingClient::new(Default::default(), "n");
}

#[test]
fn a_custom_type_name_is_used_on_the_wire_and_in_errors() {
    let mut fixed = Fixed::construct(&[Value::Int(7)]).unwrap();
    assert_eq!(fixed, Fixed { seed: 7 });
    assert_eq!(<Fixed as ObjectType>::TYPE_NAME, "concoord.test.Fixed");
    let error = ObjectError::attribute_error("'concoord.test.Fixed' object has no attribute 'x'");
    assert_eq!(call(&mut fixed, "x"), Outcome::Raise(error));
    let error = Fixed::construct(&[Value::Int(256)]).unwrap_err();
    assert_eq!(error.kind, "ValueError");
    assert!(error.message.starts_with("concoord.test.Fixed() argument 'seed': "), "{error}");
}

#[test]
fn a_pub_session_closed_hook_runs_on_session_end_and_is_not_exposed() {
    let mut watcher = Watcher::construct(&[]).unwrap();
    assert!(watcher.methods().is_empty());
    let mut wakes = Vec::new();
    let id = CallId { session: SessionId(0), request: RequestNumber(0) };
    watcher.session_closed(&mut Ctx::new(id, Time(1), Slot(1), &mut wakes), SessionId(9));
    assert_eq!(watcher.closed, [9]);
    assert!(matches!(call(&mut watcher, "on_session_closed"), Outcome::Raise(_)));
}
