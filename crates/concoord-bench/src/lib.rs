//! The system-independent half of a closed-loop load generator: the workloads, the timed
//! driver (C clients, warmup, measurement window, one latency per operation, errors
//! counted with the first one kept), percentiles, and the report with its text and JSON
//! forms. `concoord bench` (ConCoord) and `yardstick` (etcd, ZooKeeper) share every line
//! of timing code through it, so their numbers are comparable.
//!
//! It deliberately knows no system: a backend implements [`Client`], which performs one
//! operation of the run's workload over the client's own connection and session.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;
use tokio::time::Instant;

/// What each operation of a run does; every backend maps it onto its system's idiom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Add one to a single counter shared by every client.
    Increment,
    /// A linearizable read of that counter.
    Read,
    /// A read served by whichever server the client talks to, possibly stale
    /// (ZooKeeper's plain getData, etcd's serializable Range). Not linearizable, so not
    /// comparable with `Read`; ConCoord offers no such read.
    ReadLocal,
    /// Acquire then release one lock shared by every client: contended hand-offs.
    Lock,
    /// Write a distinct key per operation.
    Put,
}

impl Workload {
    /// Every workload, in the order reports list them.
    pub const ALL: [Workload; 5] =
        [Workload::Increment, Workload::Read, Workload::ReadLocal, Workload::Lock, Workload::Put];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Increment => "increment",
            Workload::Read => "read",
            Workload::ReadLocal => "read-local",
            Workload::Lock => "lock",
            Workload::Put => "put",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A workload name that [`Workload::from_str`] does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown workload {name:?}: use increment, read, read-local, lock or put")]
pub struct UnknownWorkload {
    pub name: String,
}

impl FromStr for Workload {
    type Err = UnknownWorkload;

    fn from_str(name: &str) -> Result<Workload, UnknownWorkload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .ok_or_else(|| UnknownWorkload { name: name.to_owned() })
    }
}

/// One client of the system under test, with its own connection and session. The
/// backend fixes the workload when it builds the client.
pub trait Client: Send + Sized + 'static {
    /// Why an operation failed; the report keeps the first one's text.
    type Error: fmt::Display + Send;

    /// Performs this client's operation number `n` (1, 2, ... from the start of the
    /// warmup) and returns once the system has answered it. A domain outcome the
    /// workload expects (a conflict retried, a lock that must be waited for) is part of
    /// the operation, not an error.
    fn run(&mut self, n: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Ends the client's session once the run is over.
    fn close(self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What to run: the labels for the report and the two phases.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The system under test, as the report names it ("concoord", "etcd", "zookeeper").
    pub system: String,
    pub workload: Workload,
    /// Load before measuring: connections warm, leaders settled, caches filled.
    pub warmup: Duration,
    /// The measurement window.
    pub duration: Duration,
}

/// The outcome of one run. Its JSON keys are a contract with scripts that read it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    pub system: String,
    pub workload: String,
    pub clients: usize,
    pub seconds: f64,
    /// Operations that began and were answered inside the measurement window.
    pub ops: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Operations that began inside the window and failed.
    pub errors: u64,
    /// The text of one error, printed on stderr; not part of the JSON.
    #[serde(skip)]
    pub first_error: Option<String>,
}

impl Report {
    /// One line for people (the format `concoord bench` has always printed).
    pub fn text(&self) -> String {
        format!(
            "{} clients, {}: {:.0} ops/s over {:.1} s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} errors",
            self.clients,
            self.workload,
            self.ops_per_sec,
            self.seconds,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.errors
        )
    }

    /// One JSON object on one line, for scripts.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a report of numbers and strings always serializes")
    }

    /// Prints the first error (if any) on stderr, then the report on stdout.
    pub fn print(&self, json: bool) {
        if let Some(e) = &self.first_error {
            eprintln!("first error: {e}");
        }
        println!("{}", if json { self.json() } else { self.text() });
    }
}

/// The nearest-rank percentile `p` (0 < p <= 1) of latencies sorted ascending, in
/// microseconds, returned in milliseconds; 0 when there are none.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    assert!(p > 0.0 && p <= 1.0, "a percentile is in (0, 1]: {p}");
    debug_assert!(sorted_us.is_sorted());
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

/// Runs `plan` with one task per client (each a closed loop: the next operation starts
/// when the previous one is answered) and reports. Call it inside a tokio runtime.
pub async fn run<C: Client>(plan: &Plan, clients: Vec<C>) -> Report {
    assert!(!clients.is_empty(), "a run needs at least one client");
    assert!(!plan.duration.is_zero(), "a run needs a measurement window");
    let client_count = clients.len();
    let start = Instant::now() + plan.warmup;
    let end = start + plan.duration;
    let tasks: Vec<_> =
        clients.into_iter().map(|client| tokio::spawn(drive(client, start, end))).collect();
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let tally = match task.await {
            Ok(tally) => tally,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        latencies_us.extend(tally.latencies_us);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    latencies_us.sort_unstable();
    let ops = latencies_us.len() as u64;
    let seconds = plan.duration.as_secs_f64();
    Report {
        system: plan.system.clone(),
        workload: plan.workload.name().to_owned(),
        clients: client_count,
        seconds,
        ops,
        ops_per_sec: ops as f64 / seconds,
        p50_ms: percentile_ms(&latencies_us, 0.50),
        p99_ms: percentile_ms(&latencies_us, 0.99),
        max_ms: latencies_us.last().map_or(0.0, |l| f64::from(*l) / 1000.0),
        errors,
        first_error,
    }
}

/// What one client saw inside the measurement window.
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

async fn drive<C: Client>(mut client: C, start: Instant, end: Instant) -> Tally {
    let mut tally = Tally { latencies_us: Vec::new(), errors: 0, first_error: None };
    let mut n: u64 = 0;
    loop {
        let began = Instant::now();
        if began >= end {
            break;
        }
        n += 1;
        let result = client.run(n).await;
        let done = Instant::now();
        // Warmup operations and one answered after the window are not measured.
        if began < start {
            continue;
        }
        match result {
            Ok(()) if done <= end => {
                let us = done.duration_since(began).as_micros().min(u128::from(u32::MAX)) as u32;
                tally.latencies_us.push(us);
            }
            Ok(()) => {}
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(e.to_string());
                }
            }
        }
    }
    client.close().await;
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An operation that takes `op_time` of (paused, so exact) tokio time and fails on
    /// every `fail_every`-th call (never when it is 0).
    struct Fake {
        op_time: Duration,
        fail_every: u64,
        closed: Arc<AtomicUsize>,
    }

    impl Client for Fake {
        type Error = String;

        async fn run(&mut self, n: u64) -> Result<(), String> {
            tokio::time::sleep(self.op_time).await;
            // `is_multiple_of(0)` holds only for 0, and n starts at 1: 0 means never fail.
            if n.is_multiple_of(self.fail_every) {
                return Err(format!("fake failure at operation {n}"));
            }
            Ok(())
        }

        async fn close(self) {
            self.closed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn fakes(count: usize, op_time_ms: u64, fail_every: u64) -> (Vec<Fake>, Arc<AtomicUsize>) {
        let closed = Arc::new(AtomicUsize::new(0));
        let fakes = (0..count)
            .map(|_| Fake {
                op_time: Duration::from_millis(op_time_ms),
                fail_every,
                closed: closed.clone(),
            })
            .collect();
        (fakes, closed)
    }

    fn plan(warmup_ms: u64, duration_ms: u64) -> Plan {
        Plan {
            system: "fake".to_owned(),
            workload: Workload::Increment,
            warmup: Duration::from_millis(warmup_ms),
            duration: Duration::from_millis(duration_ms),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let us: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&us, 0.50), 50.0);
        assert_eq!(percentile_ms(&us, 0.99), 99.0);
        assert_eq!(percentile_ms(&us, 1.0), 100.0);
        assert_eq!(percentile_ms(&us, 0.001), 1.0);
        assert_eq!(percentile_ms(&[7500], 0.50), 7.5);
        assert_eq!(percentile_ms(&[7500], 0.99), 7.5);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
        // Ten samples: p99 is the largest, p50 the fifth.
        let ten: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile_ms(&ten, 0.50), 0.005);
        assert_eq!(percentile_ms(&ten, 0.99), 0.010);
    }

    #[test]
    fn workload_names_round_trip() {
        for workload in Workload::ALL {
            assert_eq!(workload.name().parse::<Workload>().unwrap(), workload);
        }
        let e = "scan".parse::<Workload>().unwrap_err();
        assert!(e.to_string().contains("\"scan\""), "{e}");
    }

    // The clock is tokio's paused test clock: it jumps straight to the next timer, so
    // each fake operation takes exactly its time and the counts below are exact, not
    // timing-dependent.
    #[tokio::test(start_paused = true)]
    async fn driver_counts_operations_in_the_window_and_errors() {
        let (clients, closed) = fakes(3, 10, 5);
        let report = run(&plan(100, 1000), clients).await;
        // Per client, operations n = 11..=110 begin in [100 ms, 1100 ms) and end by
        // 1100 ms; the 20 multiples of 5 among them fail, warmup failures (n = 5, 10)
        // are not counted.
        assert_eq!(report.ops, 3 * 80);
        assert_eq!(report.errors, 3 * 20);
        assert_eq!(report.clients, 3);
        assert_eq!(report.ops_per_sec, 240.0);
        assert_eq!(report.p50_ms, 10.0);
        assert_eq!(report.max_ms, 10.0);
        let first = report.first_error.as_deref().unwrap();
        assert!(first.starts_with("fake failure at operation "), "{first}");
        assert_eq!(closed.load(Ordering::SeqCst), 3, "every client is closed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_answered_after_the_window_is_not_counted() {
        let (clients, closed) = fakes(2, 1500, 0);
        let report = run(&plan(0, 1000), clients).await;
        assert_eq!((report.ops, report.errors), (0, 0));
        assert_eq!((report.p50_ms, report.p99_ms, report.max_ms), (0.0, 0.0, 0.0));
        assert_eq!(report.first_error, None);
        assert_eq!(closed.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_always_failing_system_reports_errors_and_no_operations() {
        let (clients, _) = fakes(4, 10, 1);
        let report = run(&plan(0, 100), clients).await;
        assert_eq!(report.ops, 0);
        assert_eq!(report.errors, 4 * 10);
        assert_eq!(report.first_error.as_deref(), Some("fake failure at operation 1"));
    }

    #[test]
    fn json_has_the_documented_keys_and_text_the_old_format() {
        let report = Report {
            system: "etcd".to_owned(),
            workload: "read".to_owned(),
            clients: 8,
            seconds: 10.0,
            ops: 1000,
            ops_per_sec: 100.0,
            p50_ms: 1.5,
            p99_ms: 2.25,
            max_ms: 3.0,
            errors: 0,
            first_error: Some("not in the JSON".to_owned()),
        };
        let value: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = [
            "system",
            "workload",
            "clients",
            "seconds",
            "ops",
            "ops_per_sec",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "errors",
        ];
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(value["ops_per_sec"], 100.0);
        assert_eq!(
            report.text(),
            "8 clients, read: 100 ops/s over 10.0 s; latency p50 1.50 ms, p99 2.25 ms, max 3.00 ms; 0 errors"
        );
    }
}
