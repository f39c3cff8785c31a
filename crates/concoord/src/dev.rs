//! `concoord dev`: a local 3-replica cluster in one process, for trying things out.
//! It founds the cluster, lets two more replicas join, calls the default object to
//! show it works, prints how to talk to it, and serves until Ctrl-C.

use anyhow::{bail, Context, Result};
use concoord_client::{status_of, Client, ClientOptions};
use concoord_server::Config;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// First port; the replicas use this one and the next two (default 0: any free
    /// ports, so dev never takes a port a real cluster on this machine uses).
    #[arg(short = 'p', long = "port", default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(short = 'a', long = "addr", default_value = "127.0.0.1")]
    addr: String,
    /// Type of the default object.
    #[arg(short = 'o', long = "objectname", default_value = "Counter")]
    objectname: String,
    /// Keep durable state under this directory (one subdirectory per replica).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Stop after the demonstration calls instead of serving until Ctrl-C.
    #[arg(long = "exit")]
    exit: bool,
    /// Debug logging.
    #[arg(short = 'd', long = "debug")]
    debug: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.port != 0 && args.port > u16::MAX - 2 {
        bail!(
            "-p {}: dev uses three consecutive ports, so the first must be at most {} (or 0 for \
             any free ports)",
            args.port,
            u16::MAX - 2
        );
    }
    crate::init_logging(args.debug, None, "dev");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let mut running = Vec::new();
    let mut addrs: Vec<String> = Vec::new();
    for i in 0..3u16 {
        let port = if args.port == 0 { 0 } else { args.port + i };
        let mut config = Config::new(format!("{}:{port}", args.addr), &args.objectname);
        config.boot = addrs.first().cloned().into_iter().collect();
        config.data_dir = args.data_dir.as_ref().map(|d| d.join(format!("replica-{i}")));
        let replica = concoord_server::start(config)
            .await
            .map_err(|e| anyhow::anyhow!("replica {i}: {e}"))?;
        addrs.push(replica.addr.clone());
        running.push(replica);
    }
    let boot = addrs.join(",");
    wait_for_voters(&addrs[0], 3).await?;
    println!("a 3-replica cluster of {} is running at {boot}", args.objectname);

    let client = Client::connect(&boot, ClientOptions::default()).await?;
    let status = status_of(&addrs[0], None, Duration::from_secs(2)).await?;
    println!("leader: {}", status.leader.unwrap_or_else(|| "-".into()));
    if concoord_server::object_types().canonical(&args.objectname) == Some("Counter") {
        for _ in 0..3 {
            let v = client.call("default", "increment", vec![]).await?;
            println!("increment() -> {}", crate::json::to_json(&v));
        }
        let v = client.call("default", "getvalue", vec![]).await?;
        println!("getvalue() -> {}", crate::json::to_json(&v));
    }
    client.close().await;
    let exe = "concoord";
    let types = concoord_server::object_types();
    match types.canonical(&args.objectname).and_then(example_call) {
        Some(call) => println!("try:  {exe} call -b {boot} {call}"),
        None => println!(
            "try:  {exe} call -b {boot} METHOD [ARG...]   (the methods of {} are in docs/objects.md)",
            args.objectname
        ),
    }
    println!("      {exe} status -b {boot}");
    println!("      {exe} bench -b {boot} --workload increment --clients 8 --duration 5");
    if args.exit {
        for r in running {
            let _ = r.stop().await;
        }
        return Ok(());
    }
    println!("serving until Ctrl-C");
    tokio::signal::ctrl_c().await.ok();
    for r in running {
        let _ = r.stop().await;
    }
    Ok(())
}

/// A call that any fresh instance of a built-in type answers, to show the way.
fn example_call(type_name: &str) -> Option<&'static str> {
    Some(match type_name {
        "Counter" => "increment",
        "Lock" | "RLock" => "locked",
        "Semaphore" | "BoundedSemaphore" => "value",
        "Barrier" => "parties",
        "Queue" => "qsize",
        "Stack" | "BinaryTree" => "get_size",
        "Log" => "read",
        "Membership" => "members",
        "JobManager" => "list_jobs",
        "NameserverCoord" => "getdomains",
        _ => return None,
    })
}

/// Waits until the replica at `addr` leads a membership with `count` voters.
async fn wait_for_voters(addr: &str, count: usize) -> Result<()> {
    for _ in 0..200 {
        if let Ok(status) = status_of(addr, None, Duration::from_secs(1)).await {
            let voters = status.members.iter().filter(|m| m.role == "voter").count();
            if status.role == "leader" && voters >= count {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the cluster did not form within 20 s")
}
