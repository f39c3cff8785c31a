//! Real-network faults: five durable replicas on distinct loopback addresses
//! (127.0.0.11-15; their peer sockets are bound to their own address), partitions
//! made of iptables DROP rules in a chain of the test's own (symmetric, one-way,
//! the leader isolated, a bridge replica that sees both sides), SIGSTOP/SIGCONT and
//! SIGKILL with restart, while concurrent clients (talking from 127.0.0.1, which
//! no rule touches) record every operation with its invocation and completion
//! times. Afterwards the cluster must regain its full membership, and the history
//! of every key must be linearizable: an acknowledged write that was lost, or a
//! read of a value that was never current, fails the test.
//!
//! Runs only when `CONCOORD_NETFAULT=1` (it needs root and iptables; `.ci/run`
//! installs them). `CONCOORD_NETFAULT_SECS` sets how long faults are injected
//! (default 40). Traffic goes only to loopback addresses, and the chain is removed
//! when the test ends, even when it fails.

use crate::harness::*;
use concoord_client::{Client, ClientOptions};
use concoord_object::Value;
use concoord_sim::checkers::linearizability::{check, Model, Operation, Verdict};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A register per key, the spec the history is checked against: `put` returns the
/// previous value, `get` the current one.
#[derive(Clone, Debug)]
enum RegisterOp {
    Put(i64),
    Get,
}

struct Register;

impl Model for Register {
    type State = Option<i64>;
    type Op = RegisterOp;
    type Ret = Option<i64>;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(&self, state: &Option<i64>, op: &RegisterOp, ret: &Option<i64>) -> Option<Option<i64>> {
        (ret == state).then_some(match op {
            RegisterOp::Put(v) => Some(*v),
            RegisterOp::Get => *state,
        })
    }

    fn step_pending(&self, state: &Option<i64>, op: &RegisterOp) -> Option<Option<i64>> {
        Some(match op {
            RegisterOp::Put(v) => Some(*v),
            RegisterOp::Get => *state,
        })
    }
}

type History = BTreeMap<String, Vec<Operation<RegisterOp, Option<i64>>>>;

fn as_register(value: &Value) -> Option<Option<i64>> {
    match value {
        Value::Nil => Some(None),
        Value::Int(v) => Some(Some(*v)),
        _ => None,
    }
}

/// A filter chain of this test's own, hooked into INPUT; removed on drop.
struct Firewall {
    chain: String,
}

fn iptables(args: &[&str]) -> bool {
    Command::new("iptables")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Firewall {
    fn new() -> Firewall {
        let chain = format!("CCNF{}", std::process::id());
        // A chain left by a crashed earlier run with the same pid goes first.
        let _ = iptables(&["-D", "INPUT", "-j", &chain]);
        let _ = iptables(&["-F", &chain]);
        let _ = iptables(&["-X", &chain]);
        assert!(
            iptables(&["-N", &chain]) && iptables(&["-I", "INPUT", "-j", &chain]),
            "cannot create an iptables chain: this test needs root and iptables"
        );
        Firewall { chain }
    }

    /// Drops every packet from `from` to `to` (one way).
    fn cut(&self, from: &str, to: &str) {
        assert!(iptables(&["-A", &self.chain, "-s", from, "-d", to, "-j", "DROP"]));
    }

    fn cut_both(&self, a: &str, b: &str) {
        self.cut(a, b);
        self.cut(b, a);
    }

    fn heal(&self) {
        assert!(iptables(&["-F", &self.chain]));
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let _ = iptables(&["-D", "INPUT", "-j", &self.chain]);
        let _ = iptables(&["-F", &self.chain]);
        let _ = iptables(&["-X", &self.chain]);
    }
}

fn host(addr: &str) -> String {
    addr.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default()
}

/// What the clients share: the history, and when each call succeeded last.
struct Recorder {
    start: Instant,
    history: Mutex<History>,
    /// (invoked, completed) of every successful call.
    successes: Mutex<Vec<(Instant, Instant)>>,
    ok_count: std::sync::atomic::AtomicU64,
    unknown_count: std::sync::atomic::AtomicU64,
}

impl Recorder {
    fn micros(&self, at: Instant) -> u64 {
        at.duration_since(self.start).as_micros() as u64
    }
}

async fn run_client(
    index: u64,
    boot: String,
    recorder: Arc<Recorder>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    // The default attempt and liveness timeouts: the unavailability measured is
    // what a user gets.
    let options =
        ClientOptions { give_up_after: Duration::from_secs(20), ..ClientOptions::default() };
    let client = match Client::connect(&boot, options).await {
        Ok(c) => c,
        Err(e) => panic!("client {index} cannot connect: {e}"),
    };
    let mut seq = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        seq += 1;
        let key = format!("k{}", (seq * 7 + index) % 4);
        let op = if seq.is_multiple_of(2) {
            RegisterOp::Put((index * 1_000_000 + seq) as i64)
        } else {
            RegisterOp::Get
        };
        let args = match &op {
            RegisterOp::Put(v) => vec![Value::Str(key.clone()), Value::Int(*v)],
            RegisterOp::Get => vec![Value::Str(key.clone())],
        };
        let method = if matches!(op, RegisterOp::Put(_)) { "put" } else { "get" };
        let invoked = Instant::now();
        let result = client.call("default", method, args).await;
        let done = Instant::now();
        let complete = match result {
            Ok(value) => {
                let ret = as_register(&value)
                    .unwrap_or_else(|| panic!("{method} returned {value:?}, not a register"));
                recorder.ok_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                recorder.successes.lock().unwrap().push((invoked, done));
                Some((recorder.micros(done), ret))
            }
            // It may or may not have taken effect: the checker may place it anywhere
            // after its invocation, or leave it out.
            Err(_) => {
                recorder.unknown_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            }
        };
        let operation = Operation { client: index, invoke: recorder.micros(invoked), complete, op };
        recorder.history.lock().unwrap().entry(key).or_default().push(operation);
    }
    client.close().await;
}

/// The live replica that leads with the highest ballot (a deposed leader may still
/// say it leads for a moment).
async fn leader_index(cluster: &Cluster) -> usize {
    for _ in 0..300 {
        let mut best: Option<(u64, usize)> = None;
        for i in cluster.live() {
            if let Some(s) = cluster.status(i).await {
                let round = s.ballot.split('.').next().and_then(|r| r.parse().ok()).unwrap_or(0);
                if s.role == "leader" && best.is_none_or(|(r, _)| round > r) {
                    best = Some((round, i));
                }
            }
        }
        if let Some((_, i)) = best {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader within 15 s\n{}", cluster.logs());
}

/// How long after `fault` the first call made after it succeeded (waits up to 20 s):
/// the unavailability a client saw.
async fn unavailability(recorder: &Recorder, fault: Instant) -> Duration {
    for _ in 0..400 {
        let first = recorder
            .successes
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take_while(|(_, done)| *done > fault)
            .filter(|(invoked, _)| *invoked >= fault)
            .map(|(_, done)| *done)
            .min();
        if let Some(at) = first {
            return at.duration_since(fault);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Duration::from_secs(20)
}

#[test]
fn the_register_checker_rejects_a_lost_acknowledged_write() {
    // put(1) is acknowledged, then a read that starts later sees nothing.
    let history = vec![
        Operation { client: 1, invoke: 0, complete: Some((10, None)), op: RegisterOp::Put(1) },
        Operation { client: 2, invoke: 20, complete: Some((30, None)), op: RegisterOp::Get },
    ];
    assert!(matches!(check(&Register, &history, 100_000), Verdict::NotLinearizable { .. }));
    // The same read overlapping the write is fine, and so is an unanswered put.
    let history = vec![
        Operation { client: 1, invoke: 0, complete: Some((10, None)), op: RegisterOp::Put(1) },
        Operation { client: 2, invoke: 5, complete: Some((30, None)), op: RegisterOp::Get },
        Operation { client: 3, invoke: 40, complete: None, op: RegisterOp::Put(2) },
        Operation { client: 2, invoke: 50, complete: Some((60, Some(2))), op: RegisterOp::Get },
    ];
    assert_eq!(check(&Register, &history, 100_000), Verdict::Linearizable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_a_real_network_lose_nothing_and_stay_linearizable() {
    if std::env::var("CONCOORD_NETFAULT").ok().as_deref() != Some("1") {
        eprintln!("set CONCOORD_NETFAULT=1 to run the real-network fault test (root, iptables)");
        return;
    }
    let seconds: u64 =
        std::env::var("CONCOORD_NETFAULT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let _serial = serial();
    let firewall = Firewall::new();
    let setup = Setup {
        durable: true,
        object: Some("Map".into()),
        distinct_hosts: true,
        extra: vec!["--remove-dead-after".into(), "60".into()],
        ..Setup::default()
    };
    let mut cluster = Cluster::start(5, setup).await;
    let hosts: Vec<String> = cluster.addrs.iter().map(|a| host(a)).collect();
    let boot = cluster.addrs.join(",");

    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        history: Mutex::new(BTreeMap::new()),
        successes: Mutex::new(Vec::new()),
        ok_count: Default::default(),
        unknown_count: Default::default(),
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (1..=6)
        .map(|i| tokio::spawn(run_client(i, boot.clone(), recorder.clone(), stop.clone())))
        .collect();

    let mut gaps: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut round = 0u64;
    while Instant::now() < end {
        round += 1;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let leader = leader_index(&cluster).await;
        let lh = hosts[leader].clone();
        let others: Vec<usize> = (0..5).filter(|i| *i != leader).collect();
        let fault = Instant::now();
        let kind = match round % 6 {
            0 => {
                // The leader cut off from every peer (clients still reach it).
                for o in &others {
                    firewall.cut_both(&lh, &hosts[*o]);
                }
                "leader isolated"
            }
            1 => {
                // One way: the leader hears its peers, but nothing it sends arrives.
                for o in &others {
                    firewall.cut(&lh, &hosts[*o]);
                }
                "leader mute (one-way)"
            }
            2 => {
                // Two sides that both see a bridge replica (`others[0]`, touched by no
                // rule) but not each other; the leader on the side of two.
                let small = [leader, others[1]];
                let big = [others[2], others[3]];
                for a in small {
                    for b in big {
                        firewall.cut_both(&hosts[a], &hosts[b]);
                    }
                }
                "bridge partition"
            }
            3 => {
                cluster.signal(leader, "STOP");
                "leader paused"
            }
            4 => {
                cluster.kill(others[0]);
                "follower killed"
            }
            _ => {
                cluster.kill(leader);
                "leader killed"
            }
        };
        let gap = unavailability(&recorder, fault).await;
        gaps.entry(kind).or_default().push(gap);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        firewall.heal();
        match round % 6 {
            3 => cluster.signal(leader, "CONT"),
            4 => cluster.restart(others[0]),
            5 => cluster.restart(leader),
            _ => {}
        }
    }
    firewall.heal();
    // Healed: the full membership again, every replica caught up.
    cluster.wait_voters(5).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.expect("a client task panicked");
    }
    // Final reads of every key, as part of the history.
    let reader = Client::connect(&boot, ClientOptions::default()).await.unwrap();
    for k in 0..4 {
        let key = format!("k{k}");
        let invoked = Instant::now();
        let value = reader.call("default", "get", vec![Value::Str(key.clone())]).await.unwrap();
        let done = Instant::now();
        let operation = Operation {
            client: 99,
            invoke: recorder.micros(invoked),
            complete: Some((recorder.micros(done), as_register(&value).unwrap())),
            op: RegisterOp::Get,
        };
        recorder.history.lock().unwrap().entry(key).or_default().push(operation);
    }
    reader.close().await;

    let history = recorder.history.lock().unwrap().clone();
    let ok = recorder.ok_count.load(std::sync::atomic::Ordering::Relaxed);
    let unknown = recorder.unknown_count.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "netfault: {seconds} s of faults, {round} faults, {ok} ok operations, {unknown} unanswered"
    );
    for (kind, list) in &gaps {
        let mut ms: Vec<u128> = list.iter().map(|d| d.as_millis()).collect();
        ms.sort_unstable();
        eprintln!(
            "netfault: {kind}: first success after {ms:?} ms (median {} ms)",
            ms[ms.len() / 2]
        );
    }
    assert!(ok > 100, "too few operations succeeded ({ok}) for the history to mean anything");
    for (key, ops) in &history {
        match check(&Register, ops, 5_000_000) {
            Verdict::Linearizable => {}
            other => panic!("key {key}: {other:?}\n{}", cluster.logs()),
        }
    }
    drop(firewall);
}
