//! The `concoord` command: `replica`, `object`, `route53id`, `route53key`, `logdaemon`,
//! and our own `call`, `shell`, `status`, `bench` and `dev`. Each subcommand lives in its
//! own module; this file only parses
//! arguments and sets up logging.

mod bench;
mod call;
mod dev;
mod json;
mod logdaemon;
mod netlog;
mod object;
mod replica;
mod route53;
mod shell;
mod status;
mod tls_args;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "concoord",
    version,
    about = "ConCoord: replicated objects ordered by Multi-Paxos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a replica (found a cluster, or join one with -b).
    Replica(replica::Args),
    /// Store the AWS access key id that replicas started with -r use.
    Route53id(route53::IdArgs),
    /// Store the AWS secret access key that replicas started with -r use.
    Route53key(route53::KeyArgs),
    /// Write a client proxy module for a Python class (module.Class).
    Object(object::Args),
    /// Receive log lines from replicas started with -l and print them.
    Logdaemon(logdaemon::Args),
    /// Call a method of an object on a running cluster (JSON arguments and result).
    #[command(after_help = call::EXIT_HELP)]
    Call(call::Args),
    /// Call methods in one session, line by line from standard input: what a call
    /// acquires stays held for the next lines (acquire, then release).
    Shell(shell::Args),
    /// Show the members, leader, ballot, slots and lag of a running cluster.
    Status(status::Args),
    /// Start a local 3-replica cluster for trying things out.
    Dev(dev::Args),
    /// Load a running cluster with concurrent clients and report ops/s and latency.
    Bench(bench::Args),
}

fn main() {
    // The original matched its subcommand case-insensitively.
    let args: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| if i == 1 && !a.starts_with('-') { a.to_lowercase() } else { a })
        .collect();
    let cli = Cli::parse_from(args);
    let result = run(cli);
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        let code = e
            .downcast_ref::<call::Failed>()
            .map(|t| t.code)
            .or_else(|| e.downcast_ref::<status::Unhealthy>().map(|u| u.code))
            .unwrap_or(1);
        std::process::exit(code);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replica(args) => replica::run(args),
        Command::Route53id(args) => route53::run_id(args),
        Command::Route53key(args) => route53::run_key(args),
        Command::Object(args) => object::run(args),
        Command::Logdaemon(args) => logdaemon::run(args),
        Command::Call(args) => call::run(args),
        Command::Shell(args) => shell::run(args),
        Command::Status(args) => status::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Logging to stderr (`-d` for debug lines; `CONCOORD_LOG` takes a tracing filter such
/// as `debug` or `concoord_server=trace`; colour only on a terminal and without
/// `NO_COLOR`), and to a log daemon with `-l`.
pub fn init_logging(debug: bool, logger: Option<&str>, name: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    let level = if debug { "debug" } else { "info" };
    let filter =
        || EnvFilter::try_from_env("CONCOORD_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    // Colour only on a terminal, and never when NO_COLOR is set (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .with_filter(filter());
    // The log daemon stamps each line as it receives it: one timestamp per line.
    let net = logger.map(|addr| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_writer(netlog::NetLog::start(addr, name))
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry().with(stderr).with(net).try_init();
}

use tracing_subscriber::Layer;
