//! `yardstick`: the load generator of `concoord bench`, pointed at etcd or ZooKeeper, so
//! that ConCoord's numbers have a yardstick measured on the same machine with the same
//! timing code (`concoord-bench`). Each backend does each workload the way a user of
//! that system would; see `etcd.rs` and `zookeeper.rs`.
//!
//! It starts no servers: `scripts/yardstick` starts the clusters and runs it.

mod etcd;
mod etcd_pb;
mod zookeeper;

use anyhow::{bail, Context, Result};
use clap::Parser;
use concoord_bench::{Plan, Report, Workload};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Measure etcd or ZooKeeper with ConCoord's closed-loop load generator.
#[derive(Parser, Debug)]
#[command(name = "yardstick", version)]
struct Args {
    /// The system under test.
    #[arg(long = "system", value_enum)]
    system: System,
    /// Its members: host:port[,host:port...] (etcd's client URLs, ZooKeeper's client ports).
    #[arg(long = "endpoints")]
    endpoints: String,
    /// increment, read, read-local (stale reads allowed), lock or put.
    #[arg(short = 'w', long = "workload", default_value = "increment")]
    workload: Workload,
    /// Concurrent clients, each with its own connection and session.
    #[arg(short = 'c', long = "clients", default_value_t = 8)]
    clients: usize,
    /// Seconds of measurement.
    #[arg(short = 't', long = "duration", default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long = "warmup", default_value_t = 1.0)]
    warmup: f64,
    /// Print one JSON object instead of text.
    #[arg(long = "json")]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Etcd,
    Zookeeper,
}

/// How long the setup (first connection, creating the keys) may take before the
/// endpoints are declared unreachable.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.duration <= 0.0 || args.warmup < 0.0 {
        bail!("--clients and --duration must be positive, --warmup not negative");
    }
    let endpoints: Vec<String> = args
        .endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    if endpoints.is_empty() {
        bail!("--endpoints lists no host:port");
    }
    let plan = Plan {
        system: match args.system {
            System::Etcd => "etcd",
            System::Zookeeper => "zookeeper",
        }
        .to_owned(),
        workload: args.workload,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (report, conflicts) = runtime.block_on(run(&args, &endpoints, &plan))?;
    if conflicts > 0 {
        eprintln!("{conflicts} increment conflicts retried (not errors)");
    }
    report.print(args.json);
    Ok(())
}

async fn run(args: &Args, endpoints: &[String], plan: &Plan) -> Result<(Report, u64)> {
    let setup_failed = || {
        format!("{:?} at {} did not answer within {SETUP_TIMEOUT:?}", args.system, args.endpoints)
    };
    let (report, conflicts): (Report, Arc<AtomicU64>) = match args.system {
        System::Etcd => {
            // The lock workload's leases outlive the run by a margin; they are revoked
            // when it ends.
            let lease_ttl = plan.warmup + plan.duration + Duration::from_secs(60);
            let connecting = etcd::connect(endpoints, args.workload, args.clients, lease_ttl);
            let (clients, conflicts) = tokio::time::timeout(SETUP_TIMEOUT, connecting)
                .await
                .with_context(setup_failed)??;
            (concoord_bench::run(plan, clients).await, conflicts)
        }
        System::Zookeeper => {
            let connecting = zookeeper::connect(endpoints, args.workload, args.clients);
            let (clients, conflicts) = tokio::time::timeout(SETUP_TIMEOUT, connecting)
                .await
                .with_context(setup_failed)??;
            (concoord_bench::run(plan, clients).await, conflicts)
        }
    };
    Ok((report, conflicts.load(Ordering::Relaxed)))
}
