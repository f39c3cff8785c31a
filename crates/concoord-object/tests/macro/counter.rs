//! The built-in `Counter` through the macro's generated code: the registry (by name and
//! by the original's dotted alias), the typed `CounterClient`, and snapshots. The
//! counter's own unit tests sit beside it; this checks what a client sees.

use crate::host::Host;
use concoord_object::builtins::{Counter, CounterClient};
use concoord_object::{CallError, MethodKind, ObjectError, Value};

#[test]
fn a_counter_made_by_its_dotted_name_counts_through_its_proxy() {
    let mut host = Host::with_type::<Counter>(&[]);
    host.create("c", "concoord.object.counter.Counter", &[]).unwrap();
    let mut counter = CounterClient::new(host.session(1), "c");
    assert_eq!(counter.getvalue(), Ok(0));
    counter.increment().unwrap();
    counter.increment().unwrap();
    counter.decrement().unwrap();
    assert_eq!(counter.getvalue(), Ok(1));
    assert_eq!(counter.describe(), Ok("The counter value is 1".to_string()));
    assert!(host.wakes.is_empty() && host.parked.is_empty());
}

#[test]
fn a_counter_takes_its_initial_value_like_python_init() {
    let mut host = Host::with_type::<Counter>(&[]);
    host.create("ten", "Counter", &[Value::Int(10)]).unwrap();
    host.create("none", "Counter", &[Value::Nil]).unwrap();
    assert_eq!(CounterClient::new(host.session(1), "ten").getvalue(), Ok(10));
    assert_eq!(CounterClient::new(host.session(1), "none").getvalue(), Ok(0));
    let error = host.create("bad", "Counter", &[Value::Float(1.5)]).unwrap_err();
    assert_eq!(
        error,
        ObjectError::type_error("Counter() argument 'value': expected int, got float")
    );
}

#[test]
fn the_counter_lists_python_names_and_survives_a_snapshot() {
    let mut host = Host::with_type::<Counter>(&[]);
    host.create("c", "Counter", &[Value::Int(-3)]).unwrap();
    let names: Vec<(&str, MethodKind)> =
        host.object("c").methods().iter().map(|m| (m.name, m.kind)).collect();
    assert_eq!(
        names,
        [
            ("increment", MethodKind::Command),
            ("decrement", MethodKind::Command),
            ("getvalue", MethodKind::Query),
            ("__str__", MethodKind::Query),
        ]
    );
    let bytes = host.object("c").snapshot().unwrap();
    let restored = host.types.restore("concoord.object.counter.Counter", &bytes).unwrap();
    assert_eq!(
        restored.query("__str__", &[]),
        Some(Ok(Value::Str("The counter value is -3".into())))
    );
    let counter = CounterClient::new(host.session(1), "c");
    let error = ObjectError::attribute_error("'Counter' object has no attribute 'reset'");
    assert_eq!(
        concoord_object::Call::invoke(&mut counter.into_inner(), "c", "reset", vec![]),
        Err(CallError::Raised(error))
    );
}
