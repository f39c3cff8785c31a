//! `concoord call`: calls one method of one object on a running cluster, with JSON
//! arguments, and prints the result as JSON. Its exit status tells apart the method's
//! own error (1, printed as `ValueError: ...`), a usage error (2), a timeout (3: the
//! call had no effect; 4: it may or may not have) and a cluster that could not be used
//! (5). With `--timeout`, the whole command (connecting, `--create`, the call) ends
//! within it.

use crate::json;
use anyhow::{bail, Result};
use concoord_client::{Client, ClientError, ClientOptions};
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// Exit status of a method (or constructor) that raised: the object's own answer.
pub const EXIT_RAISED: i32 = 1;
/// Exit status of a usage error: a bad option, argument or address.
pub const EXIT_USAGE: i32 = 2;
/// Exit status of a command that timed out and certainly had no effect.
pub const EXIT_TIMEOUT: i32 = 3;
/// Exit status of a command whose call may or may not have taken effect: it timed
/// out after reaching a replica, or its session expired meanwhile.
pub const EXIT_MAYBE_EXECUTED: i32 = 4;
/// Exit status when the cluster could not be used: no replica answered, the token
/// was refused, or a replica broke the protocol.
pub const EXIT_UNAVAILABLE: i32 = 5;

/// The exit statuses, for `--help`.
pub const EXIT_HELP: &str = "Exit status: 0 the call returned (its result is printed as JSON); \
    1 the method raised (the exception is printed); 2 usage error (bad option, argument or \
    address); 3 timed out, and the call had no effect; 4 the call may or may not have taken \
    effect (timed out after reaching a replica, or its session expired); 5 the cluster could \
    not be used (no replica answered, the token was refused, TLS failed, a protocol error).";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replicas of the cluster: host:port[,host:port...]. One is enough: the
    /// client learns the other members from it.
    #[arg(short = 'b', long = "boot", env = "CONCOORD_BOOT")]
    boot: String,
    /// The object instance to call (the cluster's `-o` instance is `default`).
    #[arg(long = "object", default_value = "default")]
    object: String,
    /// Create the object with this type first if it does not exist yet.
    #[arg(long = "create")]
    create: Option<String>,
    /// A constructor argument for --create, by the same rule as the method's
    /// arguments; repeat for several (`--create Semaphore --init 3`).
    #[arg(long = "init", requires = "create", allow_negative_numbers = true)]
    init: Vec<String>,
    /// Token, if the replicas require one.
    #[arg(long = "token", env = "CONCOORD_TOKEN")]
    token: Option<String>,
    /// Talk only to replicas of this cluster (its id, 16 hex digits, as `concoord
    /// status` prints it). Without it, the first replica that answers decides.
    #[arg(long = "cluster", env = "CONCOORD_CLUSTER")]
    cluster: Option<String>,
    #[command(flatten)]
    tls: crate::tls_args::TlsArgs,
    /// Give up after this many seconds in all: connecting, --create and the call.
    /// A parked call still waiting shortly before then is cancelled. Exit status 3:
    /// timed out, and the call had no effect; 4: timed out, and it may or may not
    /// have taken effect (no replica confirmed either way in time). Without it, a
    /// blocking call waits until it is woken, and the command fails (status 1)
    /// once no replica has answered for 15 s.
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
    /// Arguments, each JSON; text that does not start like JSON (a digit, - + . " [ {)
    /// and is not true, false or null is taken as a string. Integers must fit in 64
    /// signed bits; numbers must be finite. Negative numbers need no `--`.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
}

/// A failed call: what to tell the user, and the exit status.
#[derive(Debug)]
pub struct Failed {
    pub code: i32,
    message: String,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

fn usage(message: String) -> anyhow::Error {
    Failed { code: EXIT_USAGE, message }.into()
}

fn seconds(what: &str, value: f64) -> Result<Duration> {
    match Duration::try_from_secs_f64(value) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => bail!("{what} must be a number of seconds above 0 (and below 2^64), not {value}"),
    }
}

/// `--create TYPE [--init ARG]... METHOD [ARG]...` creates the object (if it does
/// not exist yet) and then calls the method: two requests, and the creation stands
/// whatever the call does. It cannot be undone, because creation is create-if-absent
/// and the instance may be another client's by the time the call fails; and the
/// protocol has no request that removes an object. So what can be known before
/// anything reaches the cluster is checked here, for a built-in TYPE: its
/// constructor must accept the `--init` arguments, and METHOD must be one of its
/// methods, taking at least that many arguments. The method's own refusal of the
/// call (a release of a lock not held) still comes after the creation, and the
/// error says the instance was created. A hosted Python class is checked by the
/// cluster only.
fn check_create(
    object: &str,
    type_name: &str,
    init: &[concoord_object::Value],
    method: &str,
    arg_count: usize,
) -> Result<()> {
    let types = concoord_server::object_types();
    if !types.contains(type_name) {
        return Ok(());
    }
    let refused = |kind: &str, message: String| -> anyhow::Error {
        let message = format!("creating {object}: {kind}: {message} (nothing was created)");
        Failed { code: EXIT_RAISED, message }.into()
    };
    let instance = types.construct(type_name, init).map_err(|e| refused(&e.kind, e.message))?;
    if ["__init__", "__concoordinit__"].contains(&method) {
        return Ok(());
    }
    let Some(info) = instance.methods().iter().find(|m| m.name == method) else {
        let known: Vec<&str> = instance.methods().iter().map(|m| m.name).collect();
        return Err(refused(
            "AttributeError",
            format!(
                "'{}' object has no attribute '{method}'; its methods: {}",
                instance.type_name(),
                known.join(", ")
            ),
        ));
    };
    if arg_count > info.args.len() {
        return Err(refused(
            "TypeError",
            format!("{method}() takes {} arguments but {arg_count} were given", info.args.len()),
        ));
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    // Checked before anything reaches the cluster: a bad argument creates nothing.
    let call_args = args
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| json::parse_arg(a).map_err(|e| usage(format!("argument {}: {e}", i + 1))))
        .collect::<Result<Vec<_>>>()?;
    let init_args = args
        .init
        .iter()
        .map(|a| json::parse_arg(a).map_err(|e| usage(format!("--init {a}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    if let Some(type_name) = &args.create {
        check_create(&args.object, type_name, &init_args, &args.method, call_args.len())?;
    }
    let budget = args
        .timeout
        .map(|t| seconds("--timeout", t))
        .transpose()
        .map_err(|e| usage(format!("{e:#}")))?;
    let lease = seconds("--lease", args.lease)
        .map_err(|e| usage(format!("{e:#}")))?
        .max(Duration::from_secs(1));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let start = Instant::now();
        let remaining = || budget.map(|b| b.saturating_sub(start.elapsed()));
        let tls =
            args.tls.load().map_err(|e| Failed { code: EXIT_USAGE, message: e.to_string() })?;
        let mut options = ClientOptions {
            token: args.token.clone(),
            cluster: args.cluster.clone(),
            tls,
            ..ClientOptions::default()
        };
        // Bounds opening the session; each call below gets what is left.
        options.call_timeout = budget;
        options.lease = lease;
        // From a shell, say so soon when no replica answers at all.
        options.give_up_after = Duration::from_secs(15);
        let failed = |e: ClientError, doing: &str| -> anyhow::Error {
            let (code, message) = match (e, budget) {
                (ClientError::Raised(e), _) => (EXIT_RAISED, format!("{}: {}", e.kind, e.message)),
                (ClientError::Timeout, Some(budget)) => {
                    (EXIT_TIMEOUT, format!("timed out after {budget:?} {doing}: it had no effect"))
                }
                (ClientError::MaybeExecuted, Some(budget)) => (
                    EXIT_MAYBE_EXECUTED,
                    format!(
                        "timed out after {budget:?} {doing}: it may or may not have taken effect \
                         (no replica confirmed either way in time)"
                    ),
                ),
                (e @ ClientError::Timeout, None) => (EXIT_TIMEOUT, format!("{doing}: {e}")),
                (e @ (ClientError::MaybeExecuted | ClientError::SessionExpired), _) => {
                    (EXIT_MAYBE_EXECUTED, format!("{doing}: {e}"))
                }
                (e @ ClientError::BadAddress(_), _) => (EXIT_USAGE, format!("{doing}: {e}")),
                (
                    e @ (ClientError::BadToken
                    | ClientError::Tls(_)
                    | ClientError::Unavailable(_)
                    | ClientError::Protocol(_)),
                    _,
                ) => (EXIT_UNAVAILABLE, format!("{doing}: {e}")),
            };
            Failed { code, message }.into()
        };
        let client = Client::connect(&args.boot, options).await.map_err(|e| {
            failed(e, &format!("connecting to {} (no replica opened a session)", args.boot))
        })?;
        if let Some(type_name) = &args.create {
            let created = match remaining() {
                Some(left) => {
                    client.create_with_timeout(&args.object, type_name, init_args, left).await
                }
                None => client.create(&args.object, type_name, init_args).await,
            };
            if let Err(e) = created {
                return Err(failed(e, &format!("creating {}", args.object)));
            }
        }
        let result = match remaining() {
            Some(left) => {
                client.call_with_timeout(&args.object, &args.method, call_args, left).await
            }
            None => client.call(&args.object, &args.method, call_args).await,
        };

        if args.hold {
            if let Ok(value) = &result {
                println!("{}", json::to_json(value));
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // Held until interrupted; the client keeps the session alive meanwhile.
            let _ = tokio::signal::ctrl_c().await;
        }
        match remaining() {
            // Closing waits for the cluster only as long as the command may still take.
            Some(left) if !args.hold => drop(tokio::time::timeout(left, client.close()).await),
            _ => client.close().await,
        }
        match result {
            Ok(_) if args.hold => Ok(()),
            Ok(value) => {
                println!("{}", json::to_json(&value));
                Ok(())
            }
            Err(e) => {
                let error = failed(e, &format!("calling {}.{}", args.object, args.method));
                match (&args.create, error.downcast::<Failed>()) {
                    // The creation stands whatever the call did (see `check_create`).
                    (Some(type_name), Ok(mut f)) => {
                        f.message = format!(
                            "{} ({} was created by --create {type_name} and stays)",
                            f.message, args.object
                        );
                        Err(f.into())
                    }
                    (_, Ok(f)) => Err(f.into()),
                    (_, Err(e)) => Err(e),
                }
            }
        }
    })
}
