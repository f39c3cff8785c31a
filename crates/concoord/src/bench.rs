//! `concoord bench`: a closed-loop load generator against a running cluster. C
//! clients, each with its own connection and session, run one workload for a fixed
//! time; the report gives throughput and latency percentiles.
//!
//! Workloads: `increment` (Counter.increment, through the log), `read`
//! (Counter.getvalue, a linearizable query without a log write), `lock` (acquire then
//! release of one Lock shared by every client: contended hand-offs), `put` (Map.put of
//! a distinct key per operation). `--instance NAME` points `increment` and `read` at an
//! existing instance with those methods instead (the cluster's `default` hosted Python
//! class, for instance), so hosted and built-in objects meet the same load.
//!
//! This file is only the ConCoord backend; the timing, percentiles and report live in
//! `concoord-bench`, which `yardstick` shares for etcd and ZooKeeper.

use anyhow::{bail, Result};
use concoord_bench::{Plan, Workload};
use concoord_client::{Client, ClientError, ClientOptions};
use concoord_object::Value;
use std::time::Duration;

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
    /// Call this existing instance (increment and read: its `increment` and
    /// `getvalue`, e.g. `default` of replicas hosting a Python class) instead of the
    /// Counter the bench creates.
    #[arg(long = "instance")]
    instance: Option<String>,
    #[command(flatten)]
    tls: crate::tls_args::TlsArgs,
}

const COUNTER: &str = "bench-counter";
const LOCK: &str = "bench-lock";
const MAP: &str = "bench-map";

pub fn run(args: Args) -> Result<()> {
    let workload = match args.workload.parse::<Workload>() {
        Ok(Workload::ReadLocal) => {
            bail!("workload \"read-local\" is not offered: every ConCoord read is linearizable (use read)")
        }
        Ok(workload) => workload,
        Err(_) => bail!("unknown workload {:?}: use increment, read, lock or put", args.workload),
    };
    if args.clients == 0 || args.duration <= 0.0 {
        bail!("--clients and --duration must be positive");
    }
    if args.instance.is_some() && !matches!(workload, Workload::Increment | Workload::Read) {
        bail!("--instance works with the increment and read workloads only");
    }
    let plan = Plan {
        system: "concoord".to_owned(),
        workload,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(async {
        let clients = connect(&args, workload).await?;
        anyhow::Ok(concoord_bench::run(&plan, clients).await)
    })?;
    report.print(args.json);
    Ok(())
}

/// Creates the objects the workloads use, then opens one session per client.
async fn connect(args: &Args, workload: Workload) -> Result<Vec<BenchClient>> {
    let options = ClientOptions {
        token: args.token.clone(),
        tls: args.tls.load()?,
        ..ClientOptions::default()
    };
    let setup = Client::connect(&args.boot, options.clone()).await?;
    if args.instance.is_none() {
        setup.create(COUNTER, "Counter", vec![]).await?;
        setup.create(LOCK, "Lock", vec![]).await?;
        setup.create(MAP, "Map", vec![]).await?;
    }
    setup.close().await;

    let counter = args.instance.clone().unwrap_or_else(|| COUNTER.to_owned());
    let mut clients = Vec::with_capacity(args.clients);
    for index in 0..args.clients {
        let client = Client::connect(&args.boot, options.clone()).await?;
        clients.push(BenchClient { client, index, workload, counter: counter.clone() });
    }
    Ok(clients)
}

/// One ConCoord session running one workload.
struct BenchClient {
    client: Client,
    index: usize,
    workload: Workload,
    /// The instance `increment` and `read` call.
    counter: String,
}

impl concoord_bench::Client for BenchClient {
    type Error = ClientError;

    async fn run(&mut self, n: u64) -> Result<(), ClientError> {
        let client = &self.client;
        match self.workload {
            Workload::Increment => client.call(&self.counter, "increment", vec![]).await.map(drop),
            Workload::Read => client.call(&self.counter, "getvalue", vec![]).await.map(drop),
            Workload::Lock => {
                client.call(LOCK, "acquire", vec![]).await?;
                client.call(LOCK, "release", vec![]).await.map(drop)
            }
            Workload::Put => {
                let key = format!("c{}-{n}", self.index);
                client.call(MAP, "put", vec![Value::Str(key), Value::Int(n as i64)]).await.map(drop)
            }
            Workload::ReadLocal => unreachable!("run() refuses read-local"),
        }
    }

    async fn close(self) {
        self.client.close().await;
    }
}
