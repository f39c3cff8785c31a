//! `concoord status`: asks every replica it can find (the ones given, and the
//! members they report) to describe itself, and prints one table (or `--json`).
//! Its exit code makes it a health check: 0 healthy, 2 degraded (a voter down or
//! lagging), 3 no leader or no quorum (or no replica answered), 1 bad usage.

use anyhow::Result;
use concoord_client::{status_of_with_tls, ClientTls};
use concoord_object::protocol::StatusReport;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replicas of the cluster: host:port[,host:port...].
    #[arg(short = 'b', long = "boot", env = "CONCOORD_BOOT")]
    boot: String,
    /// Token, if the replicas require one.
    #[arg(long = "token", env = "CONCOORD_TOKEN")]
    token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long = "json")]
    json: bool,
    #[command(flatten)]
    tls: crate::tls_args::TlsArgs,
}

/// The cluster is not healthy: the exit code says how badly.
#[derive(Debug)]
pub struct Unhealthy {
    pub code: i32,
    pub summary: String,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.summary)
    }
}

impl std::error::Error for Unhealthy {}

/// Exit code of a cluster with a voter down or lagging.
pub const DEGRADED: i32 = 2;
/// Exit code of a cluster with no leader, no quorum, or no replica answering.
pub const DOWN: i32 = 3;
/// A voter this many slots behind the leader counts as lagging.
const LAG_MAX: u64 = 1_000;
/// A voter the leader has not heard from for this long counts as down.
const SILENT_MAX_MS: u64 = 3_000;

pub fn run(args: Args) -> Result<()> {
    let boot = crate::replica::parse_boot(&args.boot)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let tls = args.tls.load()?;
    let (reports, unreachable) =
        runtime.block_on(collect(boot, args.token.as_deref(), tls.as_ref()));
    if reports.is_empty() {
        let summary = format!("no replica answered: {}", unreachable.join(", "));
        return Err(Unhealthy { code: DOWN, summary }.into());
    }
    let (code, problems) = health(&reports);
    let state = match code {
        0 => "healthy",
        DEGRADED => "degraded",
        _ => "down",
    };
    let text = if args.json {
        let out = serde_json::json!({
            "health": { "state": state, "problems": problems },
            "replicas": reports.values().collect::<Vec<_>>(),
            "unreachable": unreachable,
        });
        format!("{}\n", serde_json::to_string_pretty(&out)?)
    } else {
        let mut text = format!("health: {state}");
        if !problems.is_empty() {
            text.push_str(&format!(" ({})", problems.join("; ")));
        }
        text.push('\n');
        text.push_str(&table(&reports, &unreachable));
        text
    };
    // A closed pipe (`concoord status | head`) is not an error worth a panic.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if code != 0 {
        return Err(Unhealthy { code, summary: format!("cluster {state}") }.into());
    }
    Ok(())
}

/// The leader among the replicas that answered: the one that says it leads with the
/// highest ballot (a deposed leader may not know it yet).
fn leader_of(reports: &BTreeMap<String, StatusReport>) -> Option<&StatusReport> {
    let round = |r: &StatusReport| -> u64 {
        r.ballot.split('.').next().and_then(|x| x.parse().ok()).unwrap_or(0)
    };
    reports.values().filter(|r| r.role == "leader").max_by_key(|r| round(r))
}

/// 0 and no problems when every voter answers and keeps up; otherwise the exit
/// code and what is wrong.
fn health(reports: &BTreeMap<String, StatusReport>) -> (i32, Vec<String>) {
    let Some(leader) = leader_of(reports) else {
        return (DOWN, vec!["no leader among the replicas that answered".into()]);
    };
    let mut problems = Vec::new();
    let voters: Vec<_> = leader.members.iter().filter(|m| m.role == "voter").collect();
    let mut up = 0;
    for m in &voters {
        let answered = reports.get(&m.addr);
        let down = match answered {
            None => Some("does not answer".to_string()),
            Some(r) if r.replica != m.replica => {
                Some(format!("its address is answered by another replica ({})", r.replica))
            }
            Some(_) if m.last_heard_ms.is_some_and(|ms| ms > SILENT_MAX_MS) => Some(format!(
                "the leader has not heard from it for {} ms",
                m.last_heard_ms.unwrap_or(0)
            )),
            Some(_) => None,
        };
        match down {
            Some(why) => problems.push(format!("voter {} at {} {why}", m.replica, m.addr)),
            None => {
                up += 1;
                if let Some(lag) = m.lag.filter(|l| *l > LAG_MAX) {
                    problems.push(format!("voter {} at {} lags {lag} slots", m.replica, m.addr));
                }
            }
        }
    }
    if up * 2 <= voters.len() {
        problems.insert(0, format!("no quorum: {up} of {} voters up", voters.len()));
        return (DOWN, problems);
    }
    if problems.is_empty() {
        (0, problems)
    } else {
        (DEGRADED, problems)
    }
}

async fn collect(
    boot: Vec<String>,
    token: Option<&str>,
    tls: Option<&ClientTls>,
) -> (BTreeMap<String, StatusReport>, Vec<String>) {
    let mut todo = boot;
    let mut reports = BTreeMap::new();
    let mut unreachable = Vec::new();
    let mut tried = std::collections::BTreeSet::new();
    while let Some(addr) = todo.pop() {
        // Each address once, however many replicas list it.
        if !tried.insert(addr.clone()) {
            continue;
        }
        // A dns:// entry stands for the replicas its name lists.
        if let Some(dns) = concoord_naming::parse_dns_url(&addr) {
            let found = match dns {
                Ok(target) => concoord_naming::resolve(&target).await,
                Err(e) => Err(e),
            };
            match found {
                Ok(addrs) => todo.extend(addrs),
                Err(e) => unreachable.push(format!("{addr} ({e})")),
            }
            continue;
        }
        match status_of_with_tls(&addr, token, tls, Duration::from_secs(2)).await {
            Ok(report) => {
                for m in &report.members {
                    todo.push(m.addr.clone());
                }
                reports.insert(addr, report);
            }
            Err(e) => unreachable.push(format!("{addr} ({e})")),
        }
    }
    (reports, unreachable)
}

fn table(reports: &BTreeMap<String, StatusReport>, unreachable: &[String]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let leader = leader_of(reports);
    match leader {
        Some(l) => {
            let _ = writeln!(
                out,
                "leader {} ({}), ballot {}, commit slot {}, {} sessions, objects: {}",
                l.addr,
                l.replica,
                l.ballot,
                l.commit_slot.0,
                l.sessions,
                l.objects.join(", ")
            );
        }
        None => {
            let _ = writeln!(out, "no leader among the replicas that answered");
        }
    }
    let _ = writeln!(
        out,
        "{:<22} {:<16} {:<9} {:<8} {:>8} {:>8} {:>8} {:>6} {:>10}",
        "ADDRESS", "REPLICA", "ROLE", "MEMBER", "COMMIT", "APPLIED", "SNAPSHOT", "LAG", "HEARD(ms)"
    );
    for (addr, r) in reports {
        let seen = leader.and_then(|l| l.members.iter().find(|m| m.replica == r.replica));
        let _ = writeln!(
            out,
            "{:<22} {:<16} {:<9} {:<8} {:>8} {:>8} {:>8} {:>6} {:>10}",
            addr,
            r.replica.to_string(),
            r.role,
            seen.map_or("-", |m| m.role.as_str()),
            r.commit_slot.0,
            r.applied_slot.0,
            r.snapshot_slot.0,
            seen.and_then(|m| m.lag).map_or("-".into(), |l| l.to_string()),
            seen.and_then(|m| m.last_heard_ms).map_or("-".into(), |l| l.to_string()),
        );
    }
    for addr in unreachable {
        let _ = writeln!(out, "{addr:<22} unreachable");
    }
    for (addr, r) in reports {
        if let Some(problem) = &r.join_problem {
            let _ = writeln!(out, "{addr:<22} {problem}");
        }
    }
    // A member whose address answered as another replica (a process restarted
    // without its data, which is a new identity or even another cluster) is down
    // all the same: say so instead of hiding it behind whoever answered.
    if let Some(l) = leader {
        for m in &l.members {
            let answered = reports.get(&m.addr);
            if answered.is_some_and(|r| r.replica != m.replica) {
                let by = answered.map(|r| {
                    let other = r.cluster.is_some() && r.cluster != l.cluster;
                    let cluster = if other { " of another cluster" } else { "" };
                    format!("{}{cluster}", r.replica)
                });
                let _ = writeln!(
                    out,
                    "{:<22} {:<16} down      {:<8} (its address is answered by {})",
                    m.addr,
                    m.replica.to_string(),
                    m.role,
                    by.unwrap_or_default()
                );
            }
        }
    }
    out
}
