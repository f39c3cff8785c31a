//! Metrics in the Prometheus text format, served over HTTP at `/metrics` when the
//! replica is started with `--metrics-addr`.
//!
//! The event loop updates the metrics as it goes (gauges after each turn, counters
//! and histograms where things happen: atomic operations, no locks on the hot
//! path); a separate task answers scrapes. `docs/operations.md` lists every metric.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A replica's role, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Joining,
    Removed,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Leader, Role::Follower, Role::Joining, Role::Removed];

    /// As `concoord status` says it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Joining => "joining",
            Role::Removed => "removed",
        }
    }
}

impl EncodeLabelValue for Role {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.name(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    pub role: Role,
}

/// What a client asked for, as a label of the request latency.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RequestKind {
    /// A call ordered through the log (a command, or a query on a follower).
    Command,
    /// A query the leader served after its read barrier, without the log.
    Query,
    Create,
    Cancel,
    /// Opening, keeping alive or closing a session.
    Session,
    Status,
}

impl RequestKind {
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Command => "command",
            RequestKind::Query => "query",
            RequestKind::Create => "create",
            RequestKind::Cancel => "cancel",
            RequestKind::Session => "session",
            RequestKind::Status => "status",
        }
    }
}

impl EncodeLabelValue for RequestKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.name(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: RequestKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// The error kind sent to the client (`Busy`, `NotReady`, `BadFrame`, ...), or
    /// `Redirect`.
    pub kind: String,
}

/// Every metric a replica exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub role: Family<RoleLabel, Gauge>,
    pub ballot_round: Gauge,
    pub commit_slot: Gauge,
    pub applied_slot: Gauge,
    pub snapshot_slot: Gauge,
    pub log_entries: Gauge,
    pub log_bytes: Gauge,
    pub snapshot_bytes: Gauge,
    pub members: Gauge,
    pub proposed_commands: Counter,
    pub applied_slots: Counter,
    pub applied_commands: Counter,
    pub commands_per_slot: Histogram,
    pub fsync_seconds: Histogram,
    pub request_seconds: Family<KindLabel, Histogram>,
    pub parked_calls: Gauge,
    pub sessions: Gauge,
    pub client_connections: Gauge,
    pub ballot_changes: Counter,
    pub leaderships: Counter,
    pub client_errors: Family<ErrorLabel, Counter>,
    pub snapshots: Counter,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. about 6.5 s, doubling.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("concoord");
        let m = Metrics {
            role: Family::default(),
            ballot_round: Gauge::default(),
            commit_slot: Gauge::default(),
            applied_slot: Gauge::default(),
            snapshot_slot: Gauge::default(),
            log_entries: Gauge::default(),
            log_bytes: Gauge::default(),
            snapshot_bytes: Gauge::default(),
            members: Gauge::default(),
            proposed_commands: Counter::default(),
            applied_slots: Counter::default(),
            applied_commands: Counter::default(),
            commands_per_slot: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            fsync_seconds: latency_histogram(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            parked_calls: Gauge::default(),
            sessions: Gauge::default(),
            client_connections: Gauge::default(),
            ballot_changes: Counter::default(),
            leaderships: Counter::default(),
            client_errors: Family::default(),
            snapshots: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "role",
            "1 for the replica's current role, 0 for the others",
            m.role.clone(),
        );
        registry.register(
            "ballot_round",
            "Round of the highest ballot this replica promised",
            m.ballot_round.clone(),
        );
        registry.register(
            "commit_slot",
            "Every slot up to this one is known chosen",
            m.commit_slot.clone(),
        );
        registry.register(
            "applied_slot",
            "The object machine has applied every slot up to this one",
            m.applied_slot.clone(),
        );
        registry.register("snapshot_slot", "Slot of the latest snapshot", m.snapshot_slot.clone());
        registry.register(
            "log_entries",
            "Log entries held in memory (accepted, not yet truncated by a snapshot)",
            m.log_entries.clone(),
        );
        registry.register_with_unit(
            "log",
            "Size of the durable log file (0 in memory)",
            Unit::Bytes,
            m.log_bytes.clone(),
        );
        registry.register_with_unit(
            "snapshot",
            "Size of the latest snapshot",
            Unit::Bytes,
            m.snapshot_bytes.clone(),
        );
        registry.register(
            "members",
            "Members (voters and learners) of the membership this replica knows",
            m.members.clone(),
        );
        registry.register(
            "proposed_commands",
            "Client requests this replica handed to consensus",
            m.proposed_commands.clone(),
        );
        registry.register(
            "applied_slots",
            "Slots applied to the object machine",
            m.applied_slots.clone(),
        );
        registry.register(
            "applied_commands",
            "Commands applied to the object machine",
            m.applied_commands.clone(),
        );
        registry.register(
            "commands_per_slot",
            "Commands in each applied slot (batching)",
            m.commands_per_slot.clone(),
        );
        registry.register_with_unit(
            "fsync",
            "Latency of each group commit (write and fdatasync) of the log",
            Unit::Seconds,
            m.fsync_seconds.clone(),
        );
        registry.register_with_unit("request", "From a client request's arrival to its first answer (a parked call's Parked counts), by kind", Unit::Seconds, m.request_seconds.clone());
        registry.register(
            "parked_calls",
            "Calls parked in the replicated state that clients of this replica wait on",
            m.parked_calls.clone(),
        );
        registry.register(
            "sessions",
            "Open client sessions (replicated: the same on every replica)",
            m.sessions.clone(),
        );
        registry.register(
            "client_connections",
            "Client connections open to this replica",
            m.client_connections.clone(),
        );
        registry.register(
            "ballot_changes",
            "Times this replica promised a higher ballot (each is an election somewhere)",
            m.ballot_changes.clone(),
        );
        registry.register(
            "leaderships",
            "Times this replica became the leader",
            m.leaderships.clone(),
        );
        registry.register(
            "client_errors",
            "Errors and redirects sent to clients, by kind",
            m.client_errors.clone(),
        );
        registry.register("snapshots", "Snapshots taken or installed", m.snapshots.clone());
        Metrics { registry, ..m }
    }

    pub fn set_role(&self, role: Role) {
        for r in Role::ALL {
            self.role.get_or_create(&RoleLabel { role: r }).set(i64::from(r == role));
        }
    }

    pub fn observe_request(&self, kind: RequestKind, took: Duration) {
        self.request_seconds.get_or_create(&KindLabel { kind }).observe(took.as_secs_f64());
    }

    pub fn count_error(&self, kind: &str) {
        self.client_errors.get_or_create(&ErrorLabel { kind: kind.to_string() }).inc();
    }

    /// The whole exposition, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Sets a gauge from an unsigned count (saturating at `i64::MAX`).
pub fn set(gauge: &Gauge, value: u64) {
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
}

/// Largest request head a scrape may send.
const HEAD_MAX: usize = 8 * 1024;
/// How long a scraper may take to send its request.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until the process ends. Anything else gets
/// 404 (another path), 405 (another method) or 400 (not HTTP), and a slow or
/// oversized request is dropped: nothing a scraper sends can disturb the replica.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!("metrics listener: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &metrics).await {
                tracing::debug!("metrics scrape: {e}");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() > HEAD_MAX {
                return Err(std::io::Error::other("request head too large"));
            }
        }
        Ok(())
    };
    match tokio::time::timeout(HEAD_TIMEOUT, read).await {
        Ok(result) => result?,
        Err(_) => return Err(std::io::Error::other("no request within 5 s")),
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    let (status, content_type, body) = match (method, path, parts.next()) {
        (Some("GET" | "HEAD"), Some("/metrics"), Some(v)) if v.starts_with("HTTP/") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        (Some("GET" | "HEAD"), Some(_), Some(v)) if v.starts_with("HTTP/") => {
            ("404 Not Found", "text/plain", "the metrics are at /metrics\n".to_string())
        }
        (Some(_), Some(_), Some(v)) if v.starts_with("HTTP/") => {
            ("405 Method Not Allowed", "text/plain", "use GET /metrics\n".to_string())
        }
        _ => ("400 Bad Request", "text/plain", "not an HTTP request\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if method != Some("HEAD") {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
