//! `concoord call`: calls one method of one object on a running cluster, with JSON
//! arguments, and prints the result as JSON. A method that raises exits with status
//! 1 and prints the exception (`ValueError: ...`).

use crate::json;
use anyhow::{bail, Result};
use concoord_client::{Client, ClientError, ClientOptions};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replicas of the cluster: host:port[,host:port...].
    #[arg(short = 'b', long = "boot", env = "CONCOORD_BOOT")]
    boot: String,
    /// The object instance to call (the cluster's `-o` instance is `default`).
    #[arg(long = "object", default_value = "default")]
    object: String,
    /// Create the object with this type first if it does not exist yet.
    #[arg(long = "create")]
    create: Option<String>,
    /// Token, if the replicas require one.
    #[arg(long = "token", env = "CONCOORD_TOKEN")]
    token: Option<String>,
    /// Give up after this many seconds (default: wait, as for a blocking call).
    #[arg(long = "timeout")]
    timeout: Option<f64>,
    /// Session lease in seconds: what the call acquires is released this long after
    /// the client dies.
    #[arg(long = "lease", default_value_t = 10.0)]
    lease: f64,
    /// After the call, keep the session (and whatever the call acquired) until
    /// interrupted, instead of closing it.
    #[arg(long = "hold")]
    hold: bool,
    /// Method name, as the object exposes it (e.g. increment, getvalue, acquire).
    method: String,
    /// Arguments, each JSON (a bare word is taken as a string).
    args: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut options = ClientOptions { token: args.token.clone(), ..ClientOptions::default() };
        options.call_timeout = args.timeout.map(Duration::from_secs_f64);
        options.lease = Duration::from_secs_f64(args.lease.max(1.0));
        // From a shell, say so soon when no replica answers at all.
        options.give_up_after = Duration::from_secs(15);
        let client = Client::connect(&args.boot, options).await?;
        if let Some(type_name) = &args.create {
            client.create(&args.object, type_name, Vec::new()).await?;
        }
        let call_args = args.args.iter().map(|a| json::parse_arg(a)).collect();
        let result = client.call(&args.object, &args.method, call_args).await;
        if args.hold {
            if let Ok(value) = &result {
                println!("{}", json::to_json(value));
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // Held until interrupted; the client keeps the session alive meanwhile.
            let _ = tokio::signal::ctrl_c().await;
        }
        client.close().await;
        match result {
            Ok(_) if args.hold => Ok(()),
            Ok(value) => {
                println!("{}", json::to_json(&value));
                Ok(())
            }
            Err(ClientError::Raised(e)) => bail!("{}: {}", e.kind, e.message),
            Err(e) => Err(e.into()),
        }
    })
}
