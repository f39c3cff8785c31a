//! The object contract: what a replicated object is, what a method may do, and how
//! types are registered by name.
//!
//! An object is a deterministic struct. `&mut self` methods are commands (ordered
//! through the log), `&self` methods are queries (served without a log write).
//! A command may return a value, raise an `ObjectError`, or *park* its caller; any
//! command may *wake* parked calls, each with its own result. No clock, randomness,
//! IO or hash-order iteration inside a method: the leader's timestamp and the slot
//! come in through `Ctx`. The `#[concoord::object]` macro writes the `Object` impl.

use crate::error::ObjectError;
use crate::machine::MachineBug;
use crate::value::{IntoValue, Value};
use concoord_wire::{RequestNumber, SessionId, Slot, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// One call: the caller's session and its request number there.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct CallId {
    pub session: SessionId,
    pub request: RequestNumber,
}

/// What a command did with its caller.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Return(Value),
    Raise(ObjectError),
    /// The caller waits, in replicated state, until a later command wakes it.
    Park,
}

/// A method result that may park the caller instead of returning now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocking<T> {
    Ready(T),
    Park,
}

/// How a method's return type becomes an `Outcome`. Implemented for every
/// `IntoValue`, for `Result<T, ObjectError>`, `Blocking<T>` and
/// `Result<Blocking<T>, ObjectError>`.
pub trait IntoOutcome {
    fn into_outcome(self) -> Outcome;
}

impl<T: IntoValue> IntoOutcome for T {
    fn into_outcome(self) -> Outcome {
        Outcome::Return(self.into_value())
    }
}

impl<T: IntoValue> IntoOutcome for Result<T, ObjectError> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(v) => Outcome::Return(v.into_value()),
            Err(e) => Outcome::Raise(e),
        }
    }
}

impl<T: IntoValue> IntoOutcome for Blocking<T> {
    fn into_outcome(self) -> Outcome {
        match self {
            Blocking::Ready(v) => Outcome::Return(v.into_value()),
            Blocking::Park => Outcome::Park,
        }
    }
}

impl<T: IntoValue> IntoOutcome for Result<Blocking<T>, ObjectError> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(b) => b.into_outcome(),
            Err(e) => Outcome::Raise(e),
        }
    }
}

/// A parked call being woken, with the result its caller will receive.
#[derive(Clone, Debug, PartialEq)]
pub struct Wake {
    pub call: CallId,
    pub result: Result<Value, ObjectError>,
}

/// What a command method knows about its call, and how it wakes parked calls.
#[derive(Debug)]
pub struct Ctx<'a> {
    call: CallId,
    timestamp: Time,
    slot: Slot,
    position: u64,
    wakes: &'a mut Vec<Wake>,
    /// Injected object bugs that live in a built-in's own code (simulator only;
    /// empty in production).
    bugs: BTreeSet<MachineBug>,
}

impl<'a> Ctx<'a> {
    /// A context whose command position is its slot (one command per slot).
    pub fn new(call: CallId, timestamp: Time, slot: Slot, wakes: &'a mut Vec<Wake>) -> Ctx<'a> {
        Ctx { call, timestamp, slot, position: slot.0, wakes, bugs: BTreeSet::new() }
    }

    /// A context at command `position` of the log: a slot holds a batch of commands,
    /// so positions, not slots, number commands one by one.
    pub fn at(
        call: CallId,
        timestamp: Time,
        slot: Slot,
        position: u64,
        wakes: &'a mut Vec<Wake>,
    ) -> Ctx<'a> {
        Ctx { call, timestamp, slot, position, wakes, bugs: BTreeSet::new() }
    }

    /// The same context with injected bugs switched on (the machine passes its own,
    /// for the few that live in a built-in's code).
    pub fn with_bugs(mut self, bugs: BTreeSet<MachineBug>) -> Ctx<'a> {
        self.bugs = bugs;
        self
    }

    /// Whether an injected bug is on: a built-in takes its buggy branch only then.
    pub fn injected(&self, bug: MachineBug) -> bool {
        self.bugs.contains(&bug)
    }

    /// The call being executed (store it to park the caller).
    pub fn call(&self) -> CallId {
        self.call
    }

    pub fn session(&self) -> SessionId {
        self.call.session
    }

    /// Cluster time: the leader's timestamp stamped into the log entry. The same on
    /// every replica; never read a clock in a method.
    pub fn timestamp(&self) -> Time {
        self.timestamp
    }

    /// The log slot of this call. Several commands share a slot (batching), so use
    /// `fencing_token` to tell grants apart.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The position of this command in the log, counting commands one by one: the
    /// same on every replica and strictly increasing from command to command, so it
    /// serves as a fencing token for lock grants.
    pub fn fencing_token(&self) -> u64 {
        self.position
    }

    /// Wakes a parked call with `result`.
    pub fn wake(&mut self, call: CallId, result: impl IntoValue) {
        self.wakes.push(Wake { call, result: Ok(result.into_value()) });
    }

    /// Wakes a parked call with an exception.
    pub fn wake_error(&mut self, call: CallId, error: ObjectError) {
        self.wakes.push(Wake { call, result: Err(error) });
    }
}

/// Whether a method mutates (command) or only reads (query).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MethodKind {
    Command,
    Query,
}

/// One method of an object type, as the proxy generator and `concoord call` see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MethodInfo {
    pub name: &'static str,
    pub kind: MethodKind,
    /// Names of the arguments the client passes (the `Ctx` is not one of them).
    pub args: &'static [&'static str],
}

/// A replicated object instance, as the object layer drives it. Object-safe: the
/// registry holds `Box<dyn Object>`.
pub trait Object: fmt::Debug + Send {
    fn type_name(&self) -> &'static str;

    fn methods(&self) -> &'static [MethodInfo];

    /// Runs a method through the log: commands and queries alike.
    fn call(&mut self, ctx: &mut Ctx<'_>, method: &str, args: &[Value]) -> Outcome;

    /// Runs a query without the log. `None` when `method` is not a query.
    fn query(&self, method: &str, args: &[Value]) -> Option<Result<Value, ObjectError>>;

    /// A session ended (closed or expired): release everything it held and forget
    /// its parked calls, waking whoever may proceed now.
    fn session_closed(&mut self, ctx: &mut Ctx<'_>, session: SessionId);

    /// The caller of the parked call `call` gave up waiting: forget it, as if it had
    /// never been made, and return true. Return false when this object does not hold
    /// `call` parked, or cannot take it back (then the call stays parked). Objects
    /// that park calls implement it with `#[concoord(cancel)]`.
    fn cancel(&mut self, ctx: &mut Ctx<'_>, call: CallId) -> bool {
        let _ = (ctx, call);
        false
    }

    /// `__init__(*args)` through the log, for an object that re-initialises itself
    /// in place (a hosted Python object runs its own `__init__`). `None`, the
    /// default, lets the machine replace the instance with a fresh one of its type
    /// built from `args`, answering the calls parked in the old one.
    fn reinit(&mut self, ctx: &mut Ctx<'_>, args: &[Value]) -> Option<Outcome> {
        let _ = (ctx, args);
        None
    }

    /// The object's whole state, for snapshots.
    fn snapshot(&self) -> Result<Vec<u8>, ObjectError>;

    /// Whether this object takes commands ahead of their outcomes: the machine then
    /// hands it the commands of a slot one by one with `submit` and takes their
    /// outcomes together with `collect`, instead of calling `call` for each. An
    /// object whose code runs elsewhere (a hosted Python object, over a pipe) says
    /// yes, to pay one round trip per slot rather than one per command. The
    /// default, false, keeps `call`.
    fn pipelined(&self) -> bool {
        false
    }

    /// Queues the command `method(args)` of `call`, stamped `timestamp`, at command
    /// `position` of the log (its fencing token), to run after every command queued
    /// before it. Only called when `pipelined` is true; the machine calls `collect`
    /// before the object is used any other way.
    fn submit(
        &mut self,
        call: CallId,
        timestamp: Time,
        position: u64,
        method: &str,
        args: &[Value],
    ) {
        let _ = (call, timestamp, position, method, args);
    }

    /// Runs the commands queued by `submit` and returns, for each in order, its
    /// outcome and the parked calls it woke: exactly what `call` would have given,
    /// one command after the other. A list shorter than the queue answers the
    /// missing commands with `RuntimeError` (an object that failed).
    fn collect(&mut self) -> Vec<(Outcome, Vec<Wake>)> {
        Vec::new()
    }
}

/// A constructible, restorable object type.
pub trait ObjectType: Object + Sized + 'static {
    /// The type's name on the wire and for `-o` (the Python class name, e.g. `Counter`).
    const TYPE_NAME: &'static str;

    /// Builds a new instance from constructor arguments (`__init__`'s).
    fn construct(args: &[Value]) -> Result<Self, ObjectError>;

    /// Rebuilds an instance from `snapshot()` bytes.
    fn restore(bytes: &[u8]) -> Result<Self, ObjectError>;
}

type Construct = Arc<dyn Fn(&[Value]) -> Result<Box<dyn Object>, ObjectError> + Send + Sync>;
type Restore = Arc<dyn Fn(&[u8]) -> Result<Box<dyn Object>, ObjectError> + Send + Sync>;

#[derive(Clone)]
struct Entry {
    canonical: &'static str,
    construct: Construct,
    restore: Restore,
}

/// The object types a cluster can instantiate, by name.
#[derive(Clone, Default)]
pub struct Types {
    by_name: BTreeMap<String, Entry>,
}

impl fmt::Debug for Types {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Types {
    pub fn new() -> Types {
        Types::default()
    }

    /// Registers `T` under its `TYPE_NAME` and any extra `aliases` (for example the
    /// original's dotted name `concoord.object.counter.Counter`).
    pub fn register<T: ObjectType>(&mut self, aliases: &[&str]) {
        self.register_with(
            T::TYPE_NAME,
            aliases,
            |args| Ok(Box::new(T::construct(args)?)),
            |bytes| Ok(Box::new(T::restore(bytes)?)),
        );
    }

    /// Registers a type known only at run time under `canonical` and `aliases`, built
    /// and restored by closures: an object whose code lives outside this process (a
    /// Python class run by the replica's object host) has state the closures share.
    /// The closures must be as deterministic as `ObjectType::construct` and `restore`.
    pub fn register_with(
        &mut self,
        canonical: &'static str,
        aliases: &[&str],
        construct: impl Fn(&[Value]) -> Result<Box<dyn Object>, ObjectError> + Send + Sync + 'static,
        restore: impl Fn(&[u8]) -> Result<Box<dyn Object>, ObjectError> + Send + Sync + 'static,
    ) {
        let entry = Entry { canonical, construct: Arc::new(construct), restore: Arc::new(restore) };
        for alias in aliases {
            self.by_name.insert((*alias).to_string(), entry.clone());
        }
        self.by_name.insert(canonical.to_string(), entry);
    }

    /// The type's own name (`TYPE_NAME`) for a name or alias.
    pub fn canonical(&self, name: &str) -> Option<&'static str> {
        self.by_name.get(name).map(|e| e.canonical)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn construct(&self, name: &str, args: &[Value]) -> Result<Box<dyn Object>, ObjectError> {
        (self.lookup(name)?.construct)(args)
    }

    pub fn restore(&self, name: &str, bytes: &[u8]) -> Result<Box<dyn Object>, ObjectError> {
        (self.lookup(name)?.restore)(bytes)
    }

    fn lookup(&self, name: &str) -> Result<&Entry, ObjectError> {
        self.by_name
            .get(name)
            .ok_or_else(|| ObjectError::type_error(format!("unknown object type {name:?}")))
    }
}

/// Encodes an object's state for `Object::snapshot` (MessagePack, named fields).
pub fn encode_state<T: serde::Serialize>(state: &T) -> Result<Vec<u8>, ObjectError> {
    rmp_serde::to_vec_named(state)
        .map_err(|e| ObjectError::runtime_error(format!("cannot snapshot object: {e}")))
}

/// Decodes what `encode_state` wrote, for `ObjectType::restore`.
pub fn decode_state<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ObjectError> {
    rmp_serde::from_slice(bytes)
        .map_err(|e| ObjectError::value_error(format!("corrupt object snapshot: {e}")))
}

/// Decodes argument `index` of `method` for generated dispatch code: a missing
/// argument or a wrong type is a `TypeError` naming the method.
pub fn arg<T: crate::value::FromValue>(
    method: &str,
    args: &[Value],
    index: usize,
    name: &str,
) -> Result<T, ObjectError> {
    let value = args.get(index).ok_or_else(|| {
        ObjectError::type_error(format!("{method}() missing required argument '{name}'"))
    })?;
    T::from_value(value).map_err(|e| {
        ObjectError::new(e.kind, format!("{method}() argument '{name}': {}", e.message))
    })
}

/// Checks the argument count for generated dispatch code.
pub fn arity(method: &str, args: &[Value], expected: usize) -> Result<(), ObjectError> {
    if args.len() > expected {
        return Err(ObjectError::type_error(format!(
            "{method}() takes {expected} arguments but {} were given",
            args.len()
        )));
    }
    Ok(())
}
