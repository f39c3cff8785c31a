//! `concoord bench`: a closed-loop load generator against a running cluster. C
//! clients, each with its own connection and session, run one workload for a fixed
//! time; the report gives throughput and latency percentiles.
//!
//! Workloads: `increment` (Counter.increment, through the log), `read`
//! (Counter.getvalue, a linearizable query without a log write), `lock` (acquire then
//! release of one Lock shared by every client: contended hand-offs), `put` (Map.put of
//! a distinct key per operation).

use anyhow::{bail, Result};
use concoord_client::{Client, ClientOptions};
use concoord_object::Value;
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replicas of the cluster: host:port[,host:port...].
    #[arg(short = 'b', long = "boot", env = "CONCOORD_BOOT")]
    boot: String,
    /// increment, read, lock or put.
    #[arg(short = 'w', long = "workload", default_value = "increment")]
    workload: String,
    /// Concurrent clients.
    #[arg(short = 'c', long = "clients", default_value_t = 8)]
    clients: usize,
    /// Seconds of measurement.
    #[arg(short = 't', long = "duration", default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long = "warmup", default_value_t = 1.0)]
    warmup: f64,
    /// Token, if the replicas require one.
    #[arg(long = "token", env = "CONCOORD_TOKEN")]
    token: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long = "json")]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Increment,
    Read,
    Lock,
    Put,
}

impl Workload {
    fn parse(name: &str) -> Result<Workload> {
        Ok(match name {
            "increment" => Workload::Increment,
            "read" => Workload::Read,
            "lock" => Workload::Lock,
            "put" => Workload::Put,
            other => bail!("unknown workload {other:?}: use increment, read, lock or put"),
        })
    }
}

const COUNTER: &str = "bench-counter";
const LOCK: &str = "bench-lock";
const MAP: &str = "bench-map";

pub fn run(args: Args) -> Result<()> {
    let workload = Workload::parse(&args.workload)?;
    if args.clients == 0 || args.duration <= 0.0 {
        bail!("--clients and --duration must be positive");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(bench(&args, workload))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} clients, {}: {:.0} ops/s over {:.1} s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} errors",
            report.clients,
            report.workload,
            report.ops_per_sec,
            report.seconds,
            report.p50_ms,
            report.p99_ms,
            report.max_ms,
            report.errors
        );
    }
    Ok(())
}

#[derive(Debug, serde::Serialize)]
struct Report {
    workload: String,
    clients: usize,
    seconds: f64,
    ops: u64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
}

struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

async fn bench(args: &Args, workload: Workload) -> Result<Report> {
    let options = ClientOptions { token: args.token.clone(), ..ClientOptions::default() };
    let setup = Client::connect(&args.boot, options.clone()).await?;
    setup.create(COUNTER, "Counter", vec![]).await?;
    setup.create(LOCK, "Lock", vec![]).await?;
    setup.create(MAP, "Map", vec![]).await?;
    setup.close().await;

    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(Client::connect(&args.boot, options.clone()).await?);
    }
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(drive(client, i, workload, start, end)));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let tally = task.await?;
        latencies.extend(tally.latencies_us);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    if let Some(e) = &first_error {
        eprintln!("first error: {e}");
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[i]) / 1000.0
    };
    let ops = latencies.len() as u64;
    Ok(Report {
        workload: args.workload.clone(),
        clients: args.clients,
        seconds: args.duration,
        ops,
        ops_per_sec: ops as f64 / args.duration,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: latencies.last().map_or(0.0, |l| f64::from(*l) / 1000.0),
        errors,
    })
}

async fn drive(
    client: Client,
    index: usize,
    workload: Workload,
    start: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally { latencies_us: Vec::new(), errors: 0, first_error: None };
    let mut n: u64 = 0;
    loop {
        let began = Instant::now();
        if began >= end {
            break;
        }
        n += 1;
        let result = match workload {
            Workload::Increment => client.call(COUNTER, "increment", vec![]).await.map(|_| ()),
            Workload::Read => client.call(COUNTER, "getvalue", vec![]).await.map(|_| ()),
            Workload::Lock => match client.call(LOCK, "acquire", vec![]).await {
                Ok(_) => client.call(LOCK, "release", vec![]).await.map(|_| ()),
                Err(e) => Err(e),
            },
            Workload::Put => {
                let key = format!("c{index}-{n}");
                client
                    .call(MAP, "put", vec![Value::Str(key), Value::Int(n as i64)])
                    .await
                    .map(|_| ())
            }
        };
        let done = Instant::now();
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
