//! The object host: a replica whose `-o` names a Python class (`module.Class`) runs
//! `python3 -m concoord.host module.Class` as a child process and applies the log's
//! commands to the one instance living there, over a pipe.
//!
//! `HostedObject` is an ordinary `Object`: the machine, sessions, exactly-once,
//! parked calls and snapshots work unchanged. Messages are frames written to the
//! host's stdin and read from its stdout (little-endian u32 length + MessagePack,
//! as the client protocol), synchronously, because applying is synchronous; the
//! applying thread reads the answer itself (a thread hand-off per call cost more
//! CPU than the Python method), and a watchdog thread stops a host that does not
//! answer in time. The object is *pipelined* (`Object::pipelined`): the machine
//! submits the calls of a slot one by one, they are queued here, and one `batch`
//! frame carries them all to the host, which runs them in order and answers all
//! in one frame, so a slot of n calls costs one round trip (two context switches
//! per side) instead of n. Each answer is the method's result (or exception, or
//! "park") plus the parked calls it woke. Calls the machine cannot pipeline
//! (`__init__`, after a session ended) and session ends, cancels, queries and
//! snapshots are single exchanges. Snapshots are the host's pickle bytes, carried
//! opaque in the machine's snapshot.
//!
//! State that cannot be pickled fails only that snapshot (an error naming the
//! attribute and its type): the server keeps its log instead of compacting and tries
//! again at its next snapshot point.
//!
//! A host that crashes, stops answering for `timeout`, sends something this side
//! cannot read, or reports a fatal error (a snapshot it cannot unpickle) has *failed*: every
//! later use of the object does nothing, and the server, which checks `failure`
//! after each apply before any reply leaves, stops the replica with the reason.
//! A replica never answers from a host it no longer trusts, so it cannot diverge.
//!
//! What it deliberately is not: a sandbox. The Python code runs with the replica's
//! rights; determinism is the class author's contract (docs/python.md).

use concoord_object::{
    CallId, Ctx, MethodInfo, MethodKind, Object, ObjectError, Outcome, Types, Value, Wake,
};
use concoord_wire::{RequestNumber, SessionId, Time};
use serde::Serialize;
use std::io::{BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Version of the replica-host protocol, checked in the host's hello.
pub const HOST_PROTOCOL_VERSION: i64 = 2;
/// Largest frame either side sends (a snapshot's pickle travels in one frame).
pub const HOST_FRAME_MAX: usize = 256 * 1024 * 1024;
/// How long the host may take to import the class and say hello.
const HELLO_TIMEOUT_MIN: Duration = Duration::from_secs(30);
/// Most methods a hosted class may expose.
const METHODS_MAX: usize = 4_096;

/// How to start the object host.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The Python interpreter (`CONCOORD_PYTHON`, else `python3`).
    pub python: String,
    /// A call (or snapshot) that takes longer than this stops the replica.
    pub timeout: Duration,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            python: std::env::var("CONCOORD_PYTHON").unwrap_or_else(|_| "python3".into()),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A running object host, shared by the hosted type's registry entry and its
/// instance.
#[derive(Clone, Debug)]
pub struct Host {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// `module.Class@digest`: the type's name in the registry, snapshots and hellos.
    type_name: &'static str,
    /// `module.Class`, as `-o` gave it.
    class: String,
    methods: &'static [MethodInfo],
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    pipe: Option<Pipe>,
    /// Why the host is no longer trusted; set once, never cleared.
    failed: Option<String>,
    /// Live `HostedObject`s (0 or 1, briefly 2 while a snapshot is installed).
    instances: usize,
    timeout: Duration,
}

#[derive(Debug)]
struct Pipe {
    child: Arc<Mutex<Child>>,
    stdin: ChildStdin,
    /// Read by the applying thread itself: no hand-off between threads per call.
    stdout: BufReader<ChildStdout>,
    watch: Arc<Watch>,
    /// Dropped to stop the watchdog.
    _stop_watchdog: Sender<()>,
}

/// What the watchdog thread sees of the exchange in progress. It wakes every
/// `timeout / WATCH_TICKS` (no clock read on the call path) and kills the host when
/// the same exchange has been in progress for `ticks_allowed` ticks in a row, so a
/// hung call is stopped between its timeout and 1.25 times it; the blocked read then
/// ends, and `timed_out` says why.
#[derive(Debug, Default)]
struct Watch {
    /// Exchanges started so far (identifies the one in progress).
    started: AtomicU64,
    busy: AtomicBool,
    ticks_allowed: AtomicU64,
    timed_out: AtomicBool,
}

/// Watchdog ticks per timeout.
const WATCH_TICKS: u32 = 4;

impl Drop for State {
    fn drop(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            pipe.stop();
        }
    }
}

impl Pipe {
    /// Takes over a started host's pipes and starts its watchdog.
    fn new(
        child: Child,
        stdin: ChildStdin,
        stdout: ChildStdout,
        timeout: Duration,
    ) -> Result<Pipe, String> {
        let child = Arc::new(Mutex::new(child));
        let watch = Arc::new(Watch::default());
        watch.ticks_allowed.store(u64::from(WATCH_TICKS), Ordering::Relaxed);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let tick = (timeout / WATCH_TICKS).max(Duration::from_millis(1));
        let (watched, killable) = (watch.clone(), child.clone());
        let spawned =
            std::thread::Builder::new().name("concoord-host-watchdog".into()).spawn(move || {
                // (exchange, consecutive ticks it has been seen in progress)
                let mut seen = (u64::MAX, 0u64);
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    if !watched.busy.load(Ordering::Acquire) {
                        seen = (u64::MAX, 0);
                        continue;
                    }
                    let exchange = watched.started.load(Ordering::Acquire);
                    seen = if seen.0 == exchange { (exchange, seen.1 + 1) } else { (exchange, 0) };
                    if seen.1 >= watched.ticks_allowed.load(Ordering::Relaxed) {
                        watched.timed_out.store(true, Ordering::Release);
                        let mut child = killable.lock().unwrap_or_else(|e| e.into_inner());
                        let _ = child.kill();
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot start the object host's watchdog thread: {e}"));
        }
        let stdout = BufReader::with_capacity(64 * 1024, stdout);
        Ok(Pipe { child, stdin, stdout, watch, _stop_watchdog: stop })
    }

    /// Reads one frame, the watchdog armed for `ticks` ticks.
    fn read_frame_within(&mut self, ticks: u64) -> Result<Vec<u8>, Timeout> {
        self.watch.ticks_allowed.store(ticks, Ordering::Relaxed);
        self.watch.started.fetch_add(1, Ordering::AcqRel);
        self.watch.busy.store(true, Ordering::Release);
        let frame = read_frame(&mut self.stdout);
        self.watch.busy.store(false, Ordering::Release);
        match frame {
            Err(_) if self.watch.timed_out.load(Ordering::Acquire) => Err(Timeout::Expired),
            Err(e) => Err(Timeout::Failed(format!("{e}; {}", self.exit_status()))),
            Ok(frame) => Ok(frame),
        }
    }

    fn stop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// How the child ended, if it did.
    fn exit_status(&mut self) -> String {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match child.try_wait() {
            Ok(Some(status)) => format!("it exited ({status})"),
            Ok(None) => "it closed its output".into(),
            Err(e) => format!("its status is unknown ({e})"),
        }
    }
}

/// Why no frame came from the host.
enum Timeout {
    /// The watchdog stopped a host that did not answer in time.
    Expired,
    /// The host's output ended or broke the framing (with its exit status).
    Failed(String),
}

impl Host {
    /// Starts `python -m concoord.host class`, reads its hello, and returns the
    /// host. The type is named `class@digest`, the digest being the host's hash of
    /// the class's module source, so replicas of different code refuse each other.
    pub fn start(class: &str, config: &HostConfig) -> Result<Host, String> {
        let mut pythonpath = std::env::current_dir()
            .map(|d| d.display().to_string())
            .map_err(|e| format!("cannot read the current directory: {e}"))?;
        if let Some(existing) = std::env::var_os("PYTHONPATH") {
            pythonpath.push(':');
            pythonpath.push_str(&existing.to_string_lossy());
        }
        let mut child = Command::new(&config.python)
            .args(["-m", "concoord.host", class])
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONPATH", pythonpath)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the Python object host with {:?}: {e} (install Python 3 and the \
                     concoord package, or set CONCOORD_PYTHON to the interpreter)",
                    config.python
                )
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("the object host's pipes could not be opened".into());
        };
        let mut pipe = Pipe::new(child, stdin, stdout, config.timeout)?;
        let hello_ticks = HELLO_TIMEOUT_MIN.max(config.timeout).as_millis()
            / (config.timeout / WATCH_TICKS).max(Duration::from_millis(1)).as_millis();
        let hello = match pipe.read_frame_within(hello_ticks as u64) {
            Ok(body) => body,
            Err(Timeout::Failed(e)) => {
                pipe.stop();
                return Err(format!(
                    "the object host for {class} stopped before it was ready ({e}): its \
                     error is above; check that {:?} has the concoord package and that {class} \
                     can be imported from the current directory or PYTHONPATH",
                    config.python
                ));
            }
            Err(Timeout::Expired) => {
                pipe.stop();
                return Err(format!("the object host for {class} did not start in time"));
            }
        };
        let hello = match decode_hello(&hello) {
            Ok(h) => h,
            Err(e) => {
                pipe.stop();
                return Err(e);
            }
        };
        if hello.class != class {
            pipe.stop();
            return Err(format!("the object host loaded {}, not {class}", hello.class));
        }
        let type_name: &'static str =
            Box::leak(format!("{}@{}", hello.class, hello.digest).into_boxed_str());
        let methods: &'static [MethodInfo] = Box::leak(
            hello
                .methods
                .into_iter()
                .map(|(name, readonly, args)| MethodInfo {
                    name: Box::leak(name.into_boxed_str()),
                    kind: if readonly { MethodKind::Query } else { MethodKind::Command },
                    args: Box::leak(
                        args.into_iter()
                            .map(|a| &*Box::leak(a.into_boxed_str()))
                            .collect::<Vec<&'static str>>()
                            .into_boxed_slice(),
                    ),
                })
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let state = State { pipe: Some(pipe), failed: None, instances: 0, timeout: config.timeout };
        let shared =
            Shared { type_name, class: class.to_string(), methods, state: Mutex::new(state) };
        Ok(Host { shared: Arc::new(shared) })
    }

    /// `module.Class@digest`.
    pub fn type_name(&self) -> &'static str {
        self.shared.type_name
    }

    /// Registers the hosted type under its name and the `-o` class name.
    pub fn register(&self, types: &mut Types) {
        let (construct, restore) = (self.clone(), self.clone());
        types.register_with(
            self.shared.type_name,
            &[self.shared.class.as_str()],
            move |args| construct.construct(args),
            move |bytes| restore.restore(bytes),
        );
    }

    /// Why the host failed, once it has: the replica must stop.
    pub fn failure(&self) -> Option<String> {
        self.shared.lock().failed.clone()
    }

    fn construct(&self, args: &[Value]) -> Result<Box<dyn Object>, ObjectError> {
        if !args.is_empty() {
            return Err(ObjectError::type_error(format!(
                "{} is built once, with no arguments, by each replica",
                self.shared.class
            )));
        }
        let mut state = self.shared.lock();
        if state.instances > 0 {
            return Err(ObjectError::type_error(format!(
                "{} is a hosted Python class: a cluster has one instance of it, 'default'",
                self.shared.class
            )));
        }
        expect_ok(state.exchange(&("construct",))?)?;
        state.instances += 1;
        Ok(Box::new(HostedObject::new(self.clone())))
    }

    fn restore(&self, bytes: &[u8]) -> Result<Box<dyn Object>, ObjectError> {
        let mut state = self.shared.lock();
        expect_ok(state.exchange(&("restore", Bin(bytes)))?)?;
        state.instances += 1;
        Ok(Box::new(HostedObject::new(self.clone())))
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the pipe half-written in a way
        // that matters: the replica stops on any panic.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Sends one message and reads the host's answer. Any failure marks the host
    /// failed (and stops it) and comes back as a `RuntimeError` that no client will
    /// see: the server stops the replica before replying.
    fn exchange<M: Serialize>(&mut self, message: &M) -> Result<Vec<Value>, ObjectError> {
        let framed = rmp_serde::to_vec(message)
            .map_err(|e| format!("cannot encode a message for the object host: {e}"))
            .and_then(|body| frame(&body));
        match framed {
            Ok(framed) => self.exchange_frame(&framed),
            Err(reason) => Err(self.fail(reason)),
        }
    }

    /// Sends one framed message and reads the host's answer, as `exchange`.
    fn exchange_frame(&mut self, framed: &[u8]) -> Result<Vec<Value>, ObjectError> {
        if let Some(reason) = &self.failed {
            return Err(ObjectError::runtime_error(format!("the object host failed: {reason}")));
        }
        match self.try_exchange(framed) {
            Ok(Answer::Reply(fields)) => Ok(fields),
            Ok(Answer::Fatal(reason)) => Err(self.fail(reason)),
            Err(reason) => Err(self.fail(reason)),
        }
    }

    fn try_exchange(&mut self, framed: &[u8]) -> Result<Answer, String> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Err("the object host is not running".into());
        };
        if let Err(e) = pipe.stdin.write_all(framed).and_then(|()| pipe.stdin.flush()) {
            return Err(format!("cannot write to the object host ({e}); {}", pipe.exit_status()));
        }
        let reply = match pipe.read_frame_within(u64::from(WATCH_TICKS)) {
            Ok(reply) => reply,
            Err(Timeout::Failed(e)) => return Err(e),
            Err(Timeout::Expired) => {
                return Err(format!(
                    "the object host did not answer within {:?} (a method that never returns?)",
                    self.timeout
                ))
            }
        };
        decode_answer(&reply)
    }

    fn fail(&mut self, reason: String) -> ObjectError {
        tracing::error!("the Python object host failed: {reason}");
        if let Some(mut pipe) = self.pipe.take() {
            pipe.stop();
        }
        self.failed = Some(reason.clone());
        ObjectError::runtime_error(format!("the object host failed: {reason}"))
    }
}

/// The one instance of a hosted class on this replica.
#[derive(Debug)]
pub struct HostedObject {
    host: Host,
    /// The calls submitted since the last `collect`, each encoded as the `batch`
    /// message's item `[session, request, position, timestamp, method, args]`.
    queue: Vec<u8>,
    queued: usize,
}

impl Drop for HostedObject {
    fn drop(&mut self) {
        let mut state = self.host.shared.lock();
        state.instances = state.instances.saturating_sub(1);
    }
}

impl HostedObject {
    fn new(host: Host) -> HostedObject {
        HostedObject { host, queue: Vec::new(), queued: 0 }
    }

    /// Runs a command-like message whose answer may carry wake-ups, applying them.
    fn exchange_waking<M: Serialize>(
        &self,
        ctx: &mut Ctx<'_>,
        message: &M,
    ) -> Result<Vec<Value>, ObjectError> {
        let mut state = self.host.shared.lock();
        let fields = state.exchange(message)?;
        match parse_wakes(&fields) {
            Ok(wakes) => {
                for (call, result) in wakes {
                    match result {
                        Ok(v) => ctx.wake(call, v),
                        Err(e) => ctx.wake_error(call, e),
                    }
                }
                Ok(fields)
            }
            Err(reason) => Err(state.fail(reason)),
        }
    }

    fn failed(&self, e: ObjectError) -> Outcome {
        Outcome::Raise(e)
    }
}

impl Object for HostedObject {
    fn type_name(&self) -> &'static str {
        self.host.shared.type_name
    }

    fn methods(&self) -> &'static [MethodInfo] {
        self.host.shared.methods
    }

    fn call(&mut self, ctx: &mut Ctx<'_>, method: &str, args: &[Value]) -> Outcome {
        assert!(self.queued == 0, "a call while submitted calls wait for collect");
        let call = ctx.call();
        let message = (
            "call",
            call.session.0,
            call.request.0,
            ctx.fencing_token(),
            ctx.timestamp().0,
            method,
            args,
        );
        let fields = match self.exchange_waking(ctx, &message) {
            Ok(f) => f,
            Err(e) => return self.failed(e),
        };
        match parse_outcome(&fields) {
            Ok(outcome) => outcome,
            Err(reason) => self.failed(self.host.shared.lock().fail(reason)),
        }
    }

    fn reinit(&mut self, ctx: &mut Ctx<'_>, args: &[Value]) -> Option<Outcome> {
        // The host runs the class's own __init__ on the live instance and answers
        // the calls parked in the old state itself.
        Some(self.call(ctx, "__init__", args))
    }

    fn query(&self, method: &str, args: &[Value]) -> Option<Result<Value, ObjectError>> {
        let is_query =
            self.methods().iter().any(|m| m.name == method && m.kind == MethodKind::Query);
        if !is_query {
            return None;
        }
        let mut state = self.host.shared.lock();
        let fields = match state.exchange(&("query", method, args)) {
            Ok(f) => f,
            Err(e) => return Some(Err(e)),
        };
        Some(match parse_outcome(&fields) {
            Ok(Outcome::Return(v)) => Ok(v),
            Ok(Outcome::Raise(e)) => Err(e),
            Ok(Outcome::Park) => Err(state.fail(format!("the read-only method {method} parked"))),
            Err(reason) => Err(state.fail(reason)),
        })
    }

    fn session_closed(&mut self, ctx: &mut Ctx<'_>, session: SessionId) {
        let message = ("closed", session.0, ctx.fencing_token(), ctx.timestamp().0);
        if let Ok(fields) = self.exchange_waking(ctx, &message) {
            if tag(&fields) != Some("done") {
                self.host.shared.lock().fail(format!("unexpected answer to closed: {fields:?}"));
            }
        }
    }

    fn cancel(&mut self, ctx: &mut Ctx<'_>, call: CallId) -> bool {
        let message =
            ("cancel", call.session.0, call.request.0, ctx.fencing_token(), ctx.timestamp().0);
        let Ok(fields) = self.exchange_waking(ctx, &message) else { return false };
        match (tag(&fields), fields.get(1)) {
            (Some("cancelled"), Some(Value::Bool(b))) => *b,
            _ => {
                self.host.shared.lock().fail(format!("unexpected answer to cancel: {fields:?}"));
                false
            }
        }
    }

    fn pipelined(&self) -> bool {
        true
    }

    fn submit(
        &mut self,
        call: CallId,
        timestamp: Time,
        position: u64,
        method: &str,
        args: &[Value],
    ) {
        let item = (call.session.0, call.request.0, position, timestamp.0, method, args);
        // Encoding integers, strings and values into a Vec does not fail; if it
        // did, the host is failed (the replica stops) rather than skip a call.
        if let Err(e) = rmp_serde::encode::write(&mut self.queue, &item) {
            self.host.shared.lock().fail(format!("cannot encode a call for the object host: {e}"));
        }
        self.queued += 1;
    }

    fn collect(&mut self) -> Vec<(Outcome, Vec<Wake>)> {
        let items = std::mem::take(&mut self.queue);
        let count = std::mem::take(&mut self.queued);
        if count == 0 {
            return Vec::new();
        }
        let mut state = self.host.shared.lock();
        let answers = batch_frame(count, &items)
            .map_err(|reason| state.fail(reason))
            .and_then(|framed| state.exchange_frame(&framed))
            .and_then(|fields| parse_batch(&fields, count).map_err(|reason| state.fail(reason)));
        match answers {
            Ok(answers) => answers,
            // The host failed: the server stops the replica before any reply leaves.
            Err(e) => vec![(Outcome::Raise(e), Vec::new()); count],
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>, ObjectError> {
        let mut state = self.host.shared.lock();
        let fields = state.exchange(&("snapshot",))?;
        match (tag(&fields), fields.get(1), fields.get(2)) {
            (Some("state"), Some(Value::Bytes(b)), _) => Ok(b.clone()),
            // State that cannot be pickled is this snapshot's failure, not the host's:
            // the host is unchanged and keeps serving, and the server keeps its log
            // (nothing is compacted) and tries again at its next snapshot point.
            (Some("raise"), Some(Value::Str(kind)), Some(Value::Str(message))) => {
                Err(ObjectError::new(kind.clone(), message.clone()))
            }
            _ => Err(state.fail(format!("unexpected answer to snapshot: {fields:?}"))),
        }
    }
}

/// The registry for a replica of `-o object_type`: the built-ins, plus the Python
/// class `object_type` run by a new object host when it names no built-in.
pub fn types_for(
    object_type: &str,
    builtins: Types,
    config: &HostConfig,
) -> Result<(Types, Option<Host>), crate::ServerError> {
    if builtins.contains(object_type) {
        return Ok((builtins, None));
    }
    let is_dotted = object_type.split('.').count() >= 2
        && object_type.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
    if !is_dotted {
        return Err(crate::ServerError::UnknownObject(object_type.to_string()));
    }
    let host = Host::start(object_type, config).map_err(|e| {
        crate::ServerError::Config(format!("cannot host the Python class {object_type}: {e}"))
    })?;
    let mut types = builtins;
    host.register(&mut types);
    tracing::info!("hosting the Python class {} ({})", object_type, host.type_name());
    Ok((types, Some(host)))
}

/// Bytes serialized as MessagePack bin (serde's default for `&[u8]` is an array).
struct Bin<'a>(&'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// What the host answered: a reply's fields (tag first), or a fatal report.
#[derive(Debug, PartialEq)]
enum Answer {
    Reply(Vec<Value>),
    Fatal(String),
}

/// The frame of `["batch", [item, ...]]` for `count` items already encoded one
/// after the other in `items`.
fn batch_frame(count: usize, items: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::with_capacity(16 + items.len());
    body.extend_from_slice(b"\x92\xa5batch");
    match u32::try_from(count) {
        Ok(n) if n < 16 => body.push(0x90 | n as u8),
        Ok(n) if n <= u32::from(u16::MAX) => {
            body.push(0xdc);
            body.extend_from_slice(&(n as u16).to_be_bytes());
        }
        Ok(n) => {
            body.push(0xdd);
            body.extend_from_slice(&n.to_be_bytes());
        }
        Err(_) => return Err(format!("{count} calls in one batch")),
    }
    body.extend_from_slice(items);
    frame(&body)
}

/// The answers to a batch of `count` calls: `["batch", [answer, ...]]`, each answer
/// as for a single call (`parse_outcome`, `parse_wakes`).
fn parse_batch(fields: &[Value], count: usize) -> Result<Vec<(Outcome, Vec<Wake>)>, String> {
    let (Some("batch"), Some(Value::List(answers))) = (tag(fields), fields.get(1)) else {
        return Err(format!("the object host answered a batch with {fields:?}"));
    };
    if answers.len() != count {
        return Err(format!(
            "the object host answered {} of a batch of {count} calls",
            answers.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    for answer in answers {
        let Value::List(answer) = answer else {
            return Err(format!("the object host sent {answer:?} as an answer in a batch"));
        };
        let wakes =
            parse_wakes(answer)?.into_iter().map(|(call, result)| Wake { call, result }).collect();
        out.push((parse_outcome(answer)?, wakes));
    }
    Ok(out)
}

/// The frame for `body`: little-endian u32 length, then the body.
fn frame(body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() > HOST_FRAME_MAX {
        return Err(format!(
            "a message of {} bytes for the object host exceeds {HOST_FRAME_MAX} bytes",
            body.len()
        ));
    }
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(body);
    Ok(framed)
}

fn read_frame(reader: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the object host closed its output".to_string(),
        _ => format!("cannot read from the object host: {e}"),
    })?;
    let len = u32::from_le_bytes(header) as usize;
    if len == 0 || len > HOST_FRAME_MAX {
        return Err(format!(
            "the object host sent a frame of {len} bytes (allowed: 1 to {HOST_FRAME_MAX}); did \
             something write to its standard output?"
        ));
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("the object host's output ended inside a frame: {e}"))?;
    Ok(body)
}

/// Decodes one answer: a non-empty list whose first item is a string tag.
fn decode_answer(body: &[u8]) -> Result<Answer, String> {
    let value: Value = rmp_serde::from_slice(body)
        .map_err(|e| format!("the object host sent an unreadable frame: {e}"))?;
    let Value::List(fields) = value else {
        return Err(format!("the object host sent {} instead of a list", value.type_name()));
    };
    match (tag(&fields), fields.get(1)) {
        (Some("fatal"), Some(Value::Str(reason))) => Ok(Answer::Fatal(reason.clone())),
        (Some(_), _) => Ok(Answer::Reply(fields)),
        (None, _) => Err("the object host sent a message without a tag".into()),
    }
}

fn tag(fields: &[Value]) -> Option<&str> {
    match fields.first() {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn expect_ok(fields: Vec<Value>) -> Result<(), ObjectError> {
    match parse_outcome_tagged(&fields) {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(e),
        None => Err(ObjectError::runtime_error(format!("unexpected answer: {fields:?}"))),
    }
}

/// `["ok"]` / `["return", v, ...]` or `["raise", kind, message, ...]`.
fn parse_outcome_tagged(fields: &[Value]) -> Option<Result<Value, ObjectError>> {
    match (tag(fields), fields.get(1), fields.get(2)) {
        (Some("ok"), _, _) => Some(Ok(Value::Nil)),
        (Some("return"), Some(v), _) => Some(Ok(v.clone())),
        (Some("raise"), Some(Value::Str(kind)), Some(Value::Str(message))) => {
            Some(Err(ObjectError::new(kind.clone(), message.clone())))
        }
        _ => None,
    }
}

/// A call's outcome: `["return", value, wakes]`, `["raise", kind, message, wakes]`
/// or `["park", wakes]`.
fn parse_outcome(fields: &[Value]) -> Result<Outcome, String> {
    if tag(fields) == Some("park") {
        return Ok(Outcome::Park);
    }
    match parse_outcome_tagged(fields) {
        Some(Ok(v)) => Ok(Outcome::Return(v)),
        Some(Err(e)) => Ok(Outcome::Raise(e)),
        None => Err(format!("the object host sent an unexpected answer: {fields:?}")),
    }
}

/// A parked call the host woke, with its result.
type HostWake = (CallId, Result<Value, ObjectError>);

/// The wake-ups in an answer (its last field, a list): `[session, request, true,
/// value]` or `[session, request, false, kind, message]`.
fn parse_wakes(fields: &[Value]) -> Result<Vec<HostWake>, String> {
    let Some(Value::List(wakes)) = fields.last() else {
        return Err(format!("the object host's answer has no wake-up list: {fields:?}"));
    };
    let mut out = Vec::with_capacity(wakes.len());
    for wake in wakes {
        let parsed = match wake {
            Value::List(w) => match w.as_slice() {
                [Value::Int(s), Value::Int(r), Value::Bool(true), v] if *s >= 0 && *r >= 0 => {
                    Some((call_id(*s, *r), Ok(v.clone())))
                }
                [Value::Int(s), Value::Int(r), Value::Bool(false), Value::Str(k), Value::Str(m)]
                    if *s >= 0 && *r >= 0 =>
                {
                    Some((call_id(*s, *r), Err(ObjectError::new(k.clone(), m.clone()))))
                }
                _ => None,
            },
            _ => None,
        };
        out.push(parsed.ok_or_else(|| format!("the object host sent a bad wake-up: {wake:?}"))?);
    }
    Ok(out)
}

fn call_id(session: i64, request: i64) -> CallId {
    CallId { session: SessionId(session as u64), request: RequestNumber(request as u64) }
}

/// The host's hello: `["hello", version, class, digest, [[name, readonly, [arg,
/// ...]], ...]]`.
#[derive(Debug, PartialEq)]
struct Hello {
    class: String,
    digest: String,
    methods: Vec<(String, bool, Vec<String>)>,
}

fn decode_hello(body: &[u8]) -> Result<Hello, String> {
    let fields = match decode_answer(body)? {
        Answer::Fatal(reason) => return Err(reason),
        Answer::Reply(fields) => fields,
    };
    let [Value::Str(t), Value::Int(version), Value::Str(class), Value::Str(digest), Value::List(ms)] =
        fields.as_slice()
    else {
        return Err(format!("the object host's hello is malformed: {fields:?}"));
    };
    if t != "hello" {
        return Err(format!("the object host began with {t:?}, not a hello"));
    }
    if *version != HOST_PROTOCOL_VERSION {
        return Err(format!(
            "the object host speaks protocol {version}, this replica {HOST_PROTOCOL_VERSION}: \
             install the concoord Python package of the same release as the binary"
        ));
    }
    if ms.len() > METHODS_MAX {
        return Err(format!("the class has more than {METHODS_MAX} methods"));
    }
    let mut methods = Vec::with_capacity(ms.len());
    for m in ms {
        let Value::List(m) = m else { return Err(format!("bad method entry {m:?}")) };
        let [Value::Str(name), Value::Bool(readonly), Value::List(args)] = m.as_slice() else {
            return Err(format!("bad method entry {m:?}"));
        };
        let mut names = Vec::with_capacity(args.len());
        for a in args {
            let Value::Str(a) = a else { return Err(format!("bad argument name {a:?}")) };
            names.push(a.clone());
        }
        methods.push((name.clone(), *readonly, names));
    }
    Ok(Hello { class: class.clone(), digest: digest.clone(), methods })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: &Value) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn a_call_message_is_a_msgpack_array_with_bytes_as_bin() {
        let args = [Value::Int(5), s("x")];
        let body =
            rmp_serde::to_vec(&("call", 7u64, 3u64, 42u64, 1_000u64, "add", &args[..])).unwrap();
        // fixarray of 7, fixstr "call", then the integers and the args array.
        assert_eq!(body[0], 0x97);
        assert_eq!(&body[1..6], b"\xa4call");
        let back: Value = rmp_serde::from_slice(&body).unwrap();
        assert_eq!(
            back,
            Value::List(vec![
                s("call"),
                Value::Int(7),
                Value::Int(3),
                Value::Int(42),
                Value::Int(1_000),
                s("add"),
                Value::List(args.to_vec()),
            ])
        );
        let body = rmp_serde::to_vec(&("restore", Bin(b"\x80\x04."))).unwrap();
        assert_eq!(body, b"\x92\xa7restore\xc4\x03\x80\x04.");
    }

    #[test]
    fn a_batch_is_one_frame_of_items_and_its_answers_come_in_order() {
        for count in [0usize, 3, 15, 16, 70_000] {
            let mut items = Vec::new();
            for i in 0..count {
                let args = [Value::Int(i as i64)];
                let item = (7u64, i as u64, 100 + i as u64, 5u64, "add", &args[..]);
                rmp_serde::encode::write(&mut items, &item).unwrap();
            }
            let framed = batch_frame(count, &items).unwrap();
            let body = read_frame(&mut &framed[..]).unwrap();
            let Value::List(fields) = rmp_serde::from_slice::<Value>(&body).unwrap() else {
                panic!()
            };
            assert_eq!(fields[0], s("batch"));
            let Value::List(got) = &fields[1] else { panic!() };
            assert_eq!(got.len(), count);
            if let Some(Value::List(last)) = got.last() {
                assert_eq!(last[1], Value::Int(count as i64 - 1));
                assert_eq!(last[5], Value::List(vec![Value::Int(count as i64 - 1)]));
            }
        }
        let wake = Value::List(vec![Value::Int(2), Value::Int(9), Value::Bool(true), Value::Nil]);
        let answers = vec![
            s("batch"),
            Value::List(vec![
                Value::List(vec![s("park"), Value::List(vec![])]),
                Value::List(vec![s("return"), Value::Int(10), Value::List(vec![wake])]),
            ]),
        ];
        let got = parse_batch(&answers, 2).unwrap();
        assert_eq!(got[0], (Outcome::Park, vec![]));
        assert_eq!(
            got[1],
            (
                Outcome::Return(Value::Int(10)),
                vec![Wake { call: call_id(2, 9), result: Ok(Value::Nil) }]
            )
        );
        // Too few answers, another tag, or a bad answer is the host's failure.
        assert!(parse_batch(&answers, 3).unwrap_err().contains("2 of a batch of 3"));
        assert!(parse_batch(&[s("return"), Value::Nil], 1).is_err());
        let bad = [s("batch"), Value::List(vec![Value::Int(1)])];
        assert!(parse_batch(&bad, 1).is_err());
    }

    #[test]
    fn frames_are_length_prefixed_and_bounded() {
        assert_eq!(frame(b"\x91\xa2ok").unwrap(), b"\x04\x00\x00\x00\x91\xa2ok");
        let mut input: &[u8] = b"\x04\x00\x00\x00\x91\xa2ok\x02\x00\x00";
        assert_eq!(read_frame(&mut input).unwrap(), b"\x91\xa2ok");
        assert!(read_frame(&mut input).unwrap_err().contains("closed its output"));
        let mut zero: &[u8] = b"\x00\x00\x00\x00";
        assert!(read_frame(&mut zero).unwrap_err().contains("0 bytes"));
        let mut huge: &[u8] = b"\xff\xff\xff\xff";
        assert!(read_frame(&mut huge).unwrap_err().contains("standard output"));
        let mut cut: &[u8] = b"\x05\x00\x00\x00\x91";
        assert!(read_frame(&mut cut).unwrap_err().contains("inside a frame"));
    }

    #[test]
    fn outcomes_and_wakes_decode_and_garbage_is_an_error() {
        let ret = Value::List(vec![
            s("return"),
            Value::Int(10),
            Value::List(vec![
                Value::List(vec![Value::Int(2), Value::Int(9), Value::Bool(true), Value::Nil]),
                Value::List(vec![
                    Value::Int(3),
                    Value::Int(1),
                    Value::Bool(false),
                    s("RuntimeError"),
                    s("gone"),
                ]),
            ]),
        ]);
        let Answer::Reply(fields) = decode_answer(&encode(&ret)).unwrap() else { panic!() };
        assert_eq!(parse_outcome(&fields).unwrap(), Outcome::Return(Value::Int(10)));
        let wakes = parse_wakes(&fields).unwrap();
        assert_eq!(wakes[0], (call_id(2, 9), Ok(Value::Nil)));
        assert_eq!(wakes[1], (call_id(3, 1), Err(ObjectError::runtime_error("gone"))));

        let raise = Value::List(vec![s("raise"), s("KeyError"), s("'k'"), Value::List(vec![])]);
        let Answer::Reply(fields) = decode_answer(&encode(&raise)).unwrap() else { panic!() };
        assert_eq!(parse_outcome(&fields).unwrap(), Outcome::Raise(ObjectError::key_error("'k'")));
        let park = Value::List(vec![s("park"), Value::List(vec![])]);
        let Answer::Reply(fields) = decode_answer(&encode(&park)).unwrap() else { panic!() };
        assert_eq!(parse_outcome(&fields).unwrap(), Outcome::Park);

        let fatal = Value::List(vec![s("fatal"), s("getset() returned a set")]);
        assert_eq!(
            decode_answer(&encode(&fatal)).unwrap(),
            Answer::Fatal("getset() returned a set".into())
        );
        // Garbage never panics: not msgpack, not a list, no tag, bad wakes.
        assert!(decode_answer(b"\xc1").is_err());
        assert!(decode_answer(&encode(&Value::Int(1))).is_err());
        assert!(decode_answer(&encode(&Value::List(vec![Value::Int(1)]))).is_err());
        assert!(parse_outcome(&[s("return")]).is_err());
        let bad = [
            s("park"),
            Value::List(vec![Value::List(vec![
                Value::Int(-1),
                Value::Int(1),
                Value::Bool(true),
                Value::Nil,
            ])]),
        ];
        assert!(parse_wakes(&bad).is_err());
        assert!(parse_wakes(&[s("park"), Value::Int(3)]).is_err());
    }

    #[test]
    fn the_hello_names_the_class_digest_and_methods() {
        let hello = Value::List(vec![
            s("hello"),
            Value::Int(HOST_PROTOCOL_VERSION),
            s("tencounter.TenCounter"),
            s("0123abcd"),
            Value::List(vec![
                Value::List(vec![s("increment"), Value::Bool(false), Value::List(vec![])]),
                Value::List(vec![s("getvalue"), Value::Bool(true), Value::List(vec![s("x")])]),
            ]),
        ]);
        let h = decode_hello(&encode(&hello)).unwrap();
        assert_eq!(h.class, "tencounter.TenCounter");
        assert_eq!(h.digest, "0123abcd");
        assert_eq!(
            h.methods,
            vec![("increment".into(), false, vec![]), ("getvalue".into(), true, vec!["x".into()])]
        );
        let mut old = hello.clone();
        if let Value::List(f) = &mut old {
            f[1] = Value::Int(99);
        }
        assert!(decode_hello(&encode(&old)).unwrap_err().contains("protocol 99"));
        let fatal = Value::List(vec![s("fatal"), s("No module named 'nosuch'")]);
        assert_eq!(decode_hello(&encode(&fatal)).unwrap_err(), "No module named 'nosuch'");
        assert!(decode_hello(&encode(&Value::List(vec![s("hello")]))).is_err());
    }
}
