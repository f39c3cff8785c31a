//! `concoord status`: asks every replica it can find (the ones given, and the
//! members they report) to describe itself, and prints one table (or `--json`).

use anyhow::{bail, Result};
use concoord_client::status_of;
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
}

pub fn run(args: Args) -> Result<()> {
    let boot = crate::replica::parse_boot(&args.boot)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (reports, unreachable) = runtime.block_on(collect(boot, args.token.as_deref()));
    if reports.is_empty() {
        bail!("no replica answered: {}", unreachable.join(", "));
    }
    if args.json {
        let out = serde_json::json!({
            "replicas": reports.values().collect::<Vec<_>>(),
            "unreachable": unreachable,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&reports, &unreachable));
    }
    Ok(())
}

async fn collect(
    boot: Vec<String>,
    token: Option<&str>,
) -> (BTreeMap<String, StatusReport>, Vec<String>) {
    let mut todo = boot;
    let mut reports = BTreeMap::new();
    let mut unreachable = Vec::new();
    while let Some(addr) = todo.pop() {
        if reports.contains_key(&addr) || unreachable.contains(&addr) {
            continue;
        }
        match status_of(&addr, token, Duration::from_secs(2)).await {
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
    let leader = reports.values().find(|r| r.role == "leader");
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
