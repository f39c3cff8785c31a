//! `Turnstile`, a test-only object that uses every feature of the macro (commands and
//! queries, `Ctx` and wakes, parking, raising, omitted `Option` arguments, custom wire
//! names, a raw identifier, `session_closed`, a fallible private constructor, a custom
//! type name), and the tests that drive it through `Object`, `ObjectType`, `Types` and
//! its generated proxy. It is not a built-in and models no original object.

use crate::host::{Canned, Host};
use concoord_object::{
    Blocking, CallError, CallId, Ctx, MethodInfo, MethodKind, Object, ObjectError, ObjectType,
    Outcome, Value, Wake,
};
use concoord_wire::{RequestNumber, SessionId, Slot, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A gate with `permits` places: `enter` takes one (returning a fencing token) or
/// parks the caller; `leave` gives it back, handing it to the oldest parked caller.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Turnstile {
    label: String,
    free: u32,
    /// Places held, per session.
    holders: BTreeMap<SessionId, u32>,
    waiters: VecDeque<CallId>,
    entries: u64,
}

#[concoord_object::object(name = "Gate")]
impl Turnstile {
    /// `Gate(permits, label=None)`; private on purpose (constructors need not be `pub`).
    #[concoord(constructor)]
    fn create(permits: u32, label: Option<String>) -> Result<Self, ObjectError> {
        if permits == 0 {
            return Err(ObjectError::value_error("a turnstile needs at least one permit"));
        }
        let label = label.unwrap_or_else(|| "gate".to_string());
        Ok(Turnstile {
            label,
            free: permits,
            holders: BTreeMap::new(),
            waiters: VecDeque::new(),
            entries: 0,
        })
    }

    /// Takes a place and returns the slot as a fencing token, or parks.
    pub fn enter(&mut self, ctx: &mut Ctx) -> Blocking<u64> {
        if self.free == 0 {
            self.waiters.push_back(ctx.call());
            return Blocking::Park;
        }
        self.admit(ctx.session());
        Blocking::Ready(ctx.slot().0)
    }

    /// Like `enter`, but raises instead of queueing behind `max_waiting` callers.
    pub fn enter_within(
        &mut self,
        max_waiting: usize,
        ctx: &mut Ctx<'_>,
    ) -> Result<Blocking<u64>, ObjectError> {
        if self.free == 0 && self.waiters.len() >= max_waiting {
            return Err(ObjectError::runtime_error(format!(
                "{} callers already wait",
                self.waiters.len()
            )));
        }
        Ok(self.enter(ctx))
    }

    /// Gives back one of the caller's places.
    pub fn leave(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ObjectError> {
        let session = ctx.session();
        let Some(held) = self.holders.get_mut(&session) else {
            return Err(ObjectError::runtime_error("cannot leave a turnstile not entered"));
        };
        *held -= 1;
        if *held == 0 {
            self.holders.remove(&session);
        }
        self.hand_over(ctx, 1);
        Ok(())
    }

    /// Wakes every waiter with an error, for example when the gate closes for good.
    pub fn turn_away(&mut self, ctx: &mut Ctx, reason: String) -> usize {
        let count = self.waiters.len();
        for call in self.waiters.drain(..) {
            ctx.wake_error(call, ObjectError::runtime_error(reason.clone()));
        }
        count
    }

    pub fn available(&self) -> u32 {
        self.free
    }

    pub fn label(&self) -> String {
        self.label.clone()
    }

    /// Renames the gate, returning the old label; `suffix` is optional.
    #[concoord(name = "set_label")]
    pub fn rename(&mut self, label: String, suffix: Option<String>) -> String {
        let label = label + suffix.as_deref().unwrap_or("");
        std::mem::replace(&mut self.label, label)
    }

    /// How many callers wait: Python's `len(gate)`.
    #[concoord(name = "__len__")]
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// A camelCase wire name: the proxy method keeps the Rust name.
    #[concoord(name = "getEntries")]
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// A Rust keyword as a method name: the wire name is `match`.
    pub fn r#match(&self, label: String) -> bool {
        self.label == label
    }

    /// The places held, per session number, in session order.
    pub fn holders(&self) -> Vec<(u64, u32)> {
        self.holders.iter().map(|(s, n)| (s.0, *n)).collect()
    }

    /// A query that raises: strict mode refuses when no place is free.
    pub fn check(&self, strict: bool) -> Result<u32, ObjectError> {
        if strict && self.free == 0 {
            return Err(ObjectError::new("LookupError", "no place is free"));
        }
        Ok(self.free)
    }

    /// Python-style defaults: `add(a, b=None, c=None)`.
    pub fn add(&self, a: i64, b: Option<i64>, c: Option<i64>) -> i64 {
        a + b.unwrap_or(0) + c.unwrap_or(0)
    }

    /// Nothing the client passes can be decoded as `()`... except `None`.
    pub fn nothing(&mut self, _unit: ()) {}

    /// Wire name `new`, which the proxy uses itself: the proxy method keeps the Rust name.
    #[concoord(name = "new")]
    pub fn is_new(&self) -> bool {
        self.entries == 0
    }

    /// A session ended: forget its waiters and pass its places on.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, ctx: &mut Ctx, session: SessionId) {
        self.waiters.retain(|call| call.session != session);
        if let Some(held) = self.holders.remove(&session) {
            self.hand_over(ctx, held);
        }
    }

    /// A private helper: not exposed.
    fn admit(&mut self, session: SessionId) {
        self.free -= 1;
        self.entries += 1;
        *self.holders.entry(session).or_insert(0) += 1;
    }

    /// Frees `count` places, admitting waiters in arrival order.
    fn hand_over(&mut self, ctx: &mut Ctx, count: u32) {
        self.free += count;
        while self.free > 0 {
            let Some(next) = self.waiters.pop_front() else {
                break;
            };
            self.admit(next.session);
            ctx.wake(next, ctx.slot().0);
        }
    }

    /// Crate-visible is not `pub`: not exposed.
    pub(crate) fn audit(&self) -> bool {
        let held: u32 = self.holders.values().sum();
        held + self.free > 0
    }

    /// An associated fn without `self`: not exposed.
    pub fn wire_type() -> &'static str {
        <Self as ObjectType>::TYPE_NAME
    }
}

fn gate(permits: i64) -> Turnstile {
    Turnstile::construct(&[Value::Int(permits)]).unwrap()
}

/// Runs a command as `session` at `slot`, returning its outcome and its wakes.
fn call(
    object: &mut dyn Object,
    session: u64,
    slot: u64,
    method: &str,
    args: &[Value],
) -> (Outcome, Vec<Wake>) {
    let mut wakes = Vec::new();
    let id = CallId { session: SessionId(session), request: RequestNumber(slot) };
    let mut ctx = Ctx::new(id, Time(slot), Slot(slot), &mut wakes);
    let outcome = object.call(&mut ctx, method, args);
    (outcome, wakes)
}

fn raised(outcome: Outcome) -> ObjectError {
    match outcome {
        Outcome::Raise(e) => e,
        other => panic!("expected an exception, got {other:?}"),
    }
}

fn id(session: u64, request: u64) -> CallId {
    CallId { session: SessionId(session), request: RequestNumber(request) }
}

#[test]
fn methods_lists_every_exposed_method_in_order_and_nothing_else() {
    let command = |name, args| MethodInfo { name, kind: MethodKind::Command, args };
    let query = |name, args| MethodInfo { name, kind: MethodKind::Query, args };
    let expected = [
        command("enter", &[][..]),
        command("enter_within", &["max_waiting"]),
        command("leave", &[]),
        command("turn_away", &["reason"]),
        query("available", &[]),
        query("label", &[]),
        command("set_label", &["label", "suffix"]),
        query("__len__", &[]),
        query("getEntries", &[]),
        query("match", &["label"]),
        query("holders", &[]),
        query("check", &["strict"]),
        query("add", &["a", "b", "c"]),
        command("nothing", &["_unit"]),
        query("new", &[]),
    ];
    let g = gate(1);
    assert_eq!(g.methods(), expected);
    assert_eq!(g.type_name(), "Gate");
    assert_eq!(Turnstile::wire_type(), "Gate");
    assert!(g.audit());
    assert_eq!(g.check(false), Ok(1), "the user's own methods stay callable");
}

#[test]
fn helpers_hooks_and_constructors_are_not_callable_by_name() {
    let mut g = gate(1);
    let not_wire_names = [
        "admit",
        "hand_over",
        "audit",
        "wire_type",
        "create",
        "on_session_closed",
        "waiting",
        "rename",
        "is_new",
    ];
    for name in not_wire_names {
        let error = raised(call(&mut g, 1, 1, name, &[]).0);
        assert_eq!(
            error,
            ObjectError::attribute_error(format!("'Gate' object has no attribute '{name}'"))
        );
        assert_eq!(g.query(name, &[]), None);
    }
}

#[test]
fn queries_answer_through_query_and_call_and_commands_only_through_call() {
    let mut g = gate(2);
    assert_eq!(g.query("available", &[]), Some(Ok(Value::Int(2))));
    assert_eq!(g.query("enter", &[]), None, "a command is not a query");
    assert_eq!(g.query("nope", &[]), None);
    assert_eq!(call(&mut g, 1, 1, "available", &[]).0, Outcome::Return(Value::Int(2)));
    assert_eq!(call(&mut g, 1, 2, "enter", &[]).0, Outcome::Return(Value::Int(2)));
    assert_eq!(g.query("available", &[]), Some(Ok(Value::Int(1))));
    let holders = Value::List(vec![Value::List(vec![Value::Int(1), Value::Int(1)])]);
    assert_eq!(g.query("holders", &[]), Some(Ok(holders)));
}

#[test]
fn a_full_gate_parks_callers_and_leave_wakes_the_oldest_with_its_own_token() {
    let mut g = gate(1);
    assert_eq!(call(&mut g, 1, 10, "enter", &[]), (Outcome::Return(Value::Int(10)), vec![]));
    assert_eq!(call(&mut g, 2, 11, "enter", &[]), (Outcome::Park, vec![]));
    assert_eq!(call(&mut g, 3, 12, "enter_within", &[Value::Int(5)]), (Outcome::Park, vec![]));
    assert_eq!(g.query("__len__", &[]), Some(Ok(Value::Int(2))));
    let (outcome, wakes) = call(&mut g, 1, 13, "leave", &[]);
    assert_eq!(outcome, Outcome::Return(Value::Nil));
    assert_eq!(wakes, [Wake { call: id(2, 11), result: Ok(Value::Int(13)) }]);
    let (outcome, wakes) = call(&mut g, 2, 14, "leave", &[]);
    assert_eq!(outcome, Outcome::Return(Value::Nil));
    assert_eq!(wakes, [Wake { call: id(3, 12), result: Ok(Value::Int(14)) }]);
    assert_eq!(g.query("getEntries", &[]), Some(Ok(Value::Int(3))));
}

#[test]
fn result_errors_are_raised_with_their_kind_and_message() {
    let mut g = gate(1);
    let error = raised(call(&mut g, 1, 1, "leave", &[]).0);
    assert_eq!(error, ObjectError::runtime_error("cannot leave a turnstile not entered"));
    call(&mut g, 1, 2, "enter", &[]);
    call(&mut g, 2, 3, "enter", &[]);
    let error = raised(call(&mut g, 3, 4, "enter_within", &[Value::Int(1)]).0);
    assert_eq!(error, ObjectError::runtime_error("1 callers already wait"));
    let lookup = ObjectError::new("LookupError", "no place is free");
    assert_eq!(g.query("check", &[Value::Bool(true)]), Some(Err(lookup.clone())));
    assert_eq!(raised(call(&mut g, 3, 5, "check", &[Value::Bool(true)]).0), lookup);
    assert_eq!(g.query("check", &[Value::Bool(false)]), Some(Ok(Value::Int(0))));
    let (outcome, wakes) = call(&mut g, 1, 6, "turn_away", &[Value::Str("closing".into())]);
    assert_eq!(outcome, Outcome::Return(Value::Int(1)));
    assert_eq!(
        wakes,
        [Wake { call: id(2, 3), result: Err(ObjectError::runtime_error("closing")) }]
    );
}

#[test]
fn option_arguments_may_be_omitted_and_required_ones_may_not() {
    let mut g = gate(1);
    let add = |args: &[Value]| g.query("add", args).unwrap();
    assert_eq!(add(&[Value::Int(1)]), Ok(Value::Int(1)));
    assert_eq!(add(&[Value::Int(1), Value::Int(2)]), Ok(Value::Int(3)));
    assert_eq!(add(&[Value::Int(1), Value::Nil, Value::Int(3)]), Ok(Value::Int(4)));
    assert_eq!(add(&[]), Err(ObjectError::type_error("add() missing required argument 'a'")));
    let four = [Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(4)];
    assert_eq!(
        add(&four),
        Err(ObjectError::type_error("add() takes 3 arguments but 4 were given"))
    );
    let (outcome, _) = call(&mut g, 1, 1, "set_label", &[Value::Str("east".into())]);
    assert_eq!(outcome, Outcome::Return(Value::Str("gate".into())));
    let args = [Value::Str("west".into()), Value::Str("-2".into())];
    assert_eq!(
        call(&mut g, 1, 2, "set_label", &args).0,
        Outcome::Return(Value::Str("east".into()))
    );
    assert_eq!(g.query("label", &[]), Some(Ok(Value::Str("west-2".into()))));
    assert_eq!(call(&mut g, 1, 3, "nothing", &[Value::Nil]).0, Outcome::Return(Value::Nil));
    let error = raised(call(&mut g, 1, 4, "nothing", &[]).0);
    assert_eq!(error, ObjectError::type_error("nothing() missing required argument '_unit'"));
}

#[test]
fn custom_wire_names_and_raw_identifiers_dispatch_by_the_wire_name() {
    let g = gate(1);
    assert_eq!(g.query("__len__", &[]), Some(Ok(Value::Int(0))));
    assert_eq!(g.query("getEntries", &[]), Some(Ok(Value::Int(0))));
    assert_eq!(g.query("match", &[Value::Str("gate".into())]), Some(Ok(Value::Bool(true))));
    assert_eq!(g.query("r#match", &[Value::Str("gate".into())]), None);
    assert_eq!(g.query("entries", &[]), None);
}

#[test]
fn wrong_argument_types_raise_type_errors_naming_method_and_argument() {
    let mut g = gate(1);
    let error = g.query("add", &[Value::Str("1".into())]).unwrap().unwrap_err();
    assert_eq!(error, ObjectError::type_error("add() argument 'a': expected int, got str"));
    let error = raised(call(&mut g, 1, 1, "add", &[Value::Int(1), Value::Float(2.0)]).0);
    assert_eq!(error, ObjectError::type_error("add() argument 'b': expected int, got float"));
    let error = raised(call(&mut g, 1, 2, "enter_within", &[Value::Int(-1)]).0);
    assert_eq!(error.kind, "ValueError", "out of range for usize: {error}");
    assert!(error.message.starts_with("enter_within() argument 'max_waiting': "), "{error}");
    let error = raised(call(&mut g, 1, 3, "turn_away", &[Value::List(vec![])]).0);
    assert_eq!(
        error,
        ObjectError::type_error("turn_away() argument 'reason': expected str, got list")
    );
    assert_eq!(g.query("available", &[]), Some(Ok(Value::Int(1))), "nothing ran");
}

#[test]
fn session_closed_forgets_the_sessions_waiters_and_passes_its_places_on() {
    let mut g = gate(1);
    call(&mut g, 1, 1, "enter", &[]);
    call(&mut g, 2, 2, "enter", &[]);
    call(&mut g, 3, 3, "enter", &[]);
    let mut wakes = Vec::new();
    let mut ctx = Ctx::new(id(0, 0), Time(4), Slot(4), &mut wakes);
    g.session_closed(&mut ctx, SessionId(2));
    assert!(wakes.is_empty(), "a parked session leaving wakes nobody");
    assert_eq!(g.query("__len__", &[]), Some(Ok(Value::Int(1))));
    let mut ctx = Ctx::new(id(0, 0), Time(5), Slot(5), &mut wakes);
    g.session_closed(&mut ctx, SessionId(1));
    assert_eq!(wakes, [Wake { call: id(3, 3), result: Ok(Value::Int(5)) }]);
    let holders = Value::List(vec![Value::List(vec![Value::Int(3), Value::Int(1)])]);
    assert_eq!(g.query("holders", &[]), Some(Ok(holders)));
}

#[test]
fn snapshot_and_restore_round_trip_every_field_including_parked_calls() {
    let mut g = Turnstile::construct(&[Value::Int(1), Value::Str("north".into())]).unwrap();
    call(&mut g, 1, 1, "enter", &[]);
    call(&mut g, 2, 2, "enter", &[]);
    let bytes = g.snapshot().unwrap();
    let restored = Turnstile::restore(&bytes).unwrap();
    assert_eq!(restored, g);
    assert_eq!(restored.snapshot().unwrap(), bytes, "snapshots are deterministic");
    let host = Host::with_type::<Turnstile>(&[]);
    let mut boxed = host.types.restore("Gate", &bytes).unwrap();
    assert_eq!(boxed.snapshot().unwrap(), bytes);
    let (_, wakes) = call(boxed.as_mut(), 1, 3, "leave", &[]);
    assert_eq!(
        wakes,
        [Wake { call: id(2, 2), result: Ok(Value::Int(3)) }],
        "the parked call survived"
    );
    let error = Turnstile::restore(&bytes[..bytes.len() / 2]).unwrap_err();
    assert_eq!(error.kind, "ValueError");
}

#[test]
fn types_construct_by_name_and_alias_through_the_constructor() {
    let mut host = Host::with_type::<Turnstile>(&["tests.turnstile.Turnstile"]);
    assert_eq!(host.types.canonical("tests.turnstile.Turnstile"), Some("Gate"));
    host.create("a", "Gate", &[Value::Int(2)]).unwrap();
    host.create("b", "tests.turnstile.Turnstile", &[Value::Int(3), Value::Str("b".into())])
        .unwrap();
    assert_eq!(host.object("a").query("label", &[]), Some(Ok(Value::Str("gate".into()))));
    assert_eq!(host.object("b").query("available", &[]), Some(Ok(Value::Int(3))));
    assert_eq!(host.object("b").type_name(), "Gate");
    let error = host.create("c", "Gate", &[Value::Int(0)]).unwrap_err();
    assert_eq!(error, ObjectError::value_error("a turnstile needs at least one permit"));
    let error = host.create("c", "Gate", &[]).unwrap_err();
    assert_eq!(error, ObjectError::type_error("Gate() missing required argument 'permits'"));
    let error = host.create("c", "Gate", &[Value::Str("1".into())]).unwrap_err();
    assert_eq!(error, ObjectError::type_error("Gate() argument 'permits': expected int, got str"));
    let error = host.create("c", "Gate", &[Value::Int(1), Value::Nil, Value::Nil]).unwrap_err();
    assert_eq!(error, ObjectError::type_error("Gate() takes 2 arguments but 3 were given"));
    assert_eq!(
        host.create("c", "Turnstile", &[]).unwrap_err().kind,
        "TypeError",
        "the Rust name is not registered"
    );
}

#[test]
fn the_typed_proxy_drives_the_object_through_call() {
    let mut host = Host::with_type::<Turnstile>(&[]);
    host.create("gate", "Gate", &[Value::Int(1)]).unwrap();

    let mut first = TurnstileClient::new(host.session(1), "gate");
    assert_eq!(first.is_new(), Ok(true));
    assert_eq!(first.enter(), Ok(1));
    assert_eq!(first.is_new(), Ok(false));
    assert_eq!(first.available(), Ok(0));
    assert_eq!(first.label(), Ok("gate".to_string()));
    assert_eq!(first.set_label("east".into(), None), Ok("gate".to_string()));
    assert_eq!(first.set_label("west".into(), Some("-2".into())), Ok("east".to_string()));
    assert_eq!(first.r#match("west-2".into()), Ok(true));
    assert_eq!(first.entries(), Ok(1));
    assert_eq!(first.add(1, None, Some(3)), Ok(4));
    assert_eq!(first.holders(), Ok(vec![(1, 1)]));
    assert_eq!(first.nothing(()), Ok(()));
    let lookup = ObjectError::new("LookupError", "no place is free");
    assert_eq!(first.check(true), Err(CallError::Raised(lookup)));
    assert_eq!(first.into_inner().id(), SessionId(1));

    let mut second = TurnstileClient::new(host.session(2), "gate");
    assert!(matches!(second.enter(), Err(CallError::Unavailable(_))), "parked");
    assert_eq!(second.waiting(), Ok(1));
    let error = ObjectError::runtime_error("1 callers already wait");
    assert_eq!(second.enter_within(1), Err(CallError::Raised(error)));
    let error = ObjectError::runtime_error("cannot leave a turnstile not entered");
    assert_eq!(second.leave(), Err(CallError::Raised(error)));

    TurnstileClient::new(host.session(1), "gate").leave().unwrap();
    let parked = host.parked[0];
    assert_eq!(parked.session, SessionId(2));
    assert_eq!(host.wakes, [Wake { call: parked, result: Ok(Value::Int(8)) }]);
    let mut missing = TurnstileClient::new(host.session(1), "nowhere");
    assert!(matches!(missing.available(), Err(CallError::Unavailable(_))));
}

#[test]
fn the_proxy_sends_wire_names_and_values_and_checks_what_comes_back() {
    let mut proxy = TurnstileClient::new(Canned::default(), String::from("g1"));
    let error =
        ObjectError::type_error("add() returned an unexpected value: expected int, got None");
    assert_eq!(proxy.add(1, None, Some(3)), Err(CallError::Raised(error)));
    let canned = proxy.into_inner();
    let sent =
        (String::from("g1"), String::from("add"), vec![Value::Int(1), Value::Nil, Value::Int(3)]);
    assert_eq!(canned.sent, [sent]);

    let mut proxy =
        TurnstileClient::new(Canned { answer: Value::Str("x".into()), sent: vec![] }, "g1");
    let error =
        ObjectError::type_error("getEntries() returned an unexpected value: expected int, got str");
    assert_eq!(proxy.entries(), Err(CallError::Raised(error)));
    assert_eq!(
        proxy.waiting().unwrap_err().to_string(),
        "TypeError: __len__() returned an unexpected value: expected int, got str"
    );
    assert!(proxy.enter().is_err());
    let methods: Vec<String> = proxy.into_inner().sent.into_iter().map(|(_, m, _)| m).collect();
    assert_eq!(methods, ["getEntries", "__len__", "enter"]);
}
