//! The `openreplica` command: sets up nodes over SSH and starts, lists and stops
//! `concoord replica` processes on them (the original's remote launcher). This file
//! parses arguments and runs the configuration commands; `nodes.rs` talks to nodes
//! (addnode, setup, route53), `launch.rs` starts and stops replicas, `ssh.rs` is the
//! SSH transport and `config.rs` the configuration file.

mod clock;
mod config;
mod launch;
mod nodes;
mod ssh;
// The same TLS client options as `concoord status`.
#[path = "../../tls_args.rs"]
mod tls_args;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "openreplica",
    version,
    about = "Set up nodes over SSH and start ConCoord replicas on them",
    after_help = "Configuration: $XDG_CONFIG_HOME/concoord/openreplica.json (else \
                  ~/.config/concoord/openreplica.json). SSH runs with BatchMode and strict \
                  host-key checking; `addnode --accept-new-host-key` trusts a new node's key \
                  on first use. Exit status: 0 done, 1 failed, 2 (status) a replica is not \
                  running."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the configuration: SSH settings, nodes and the replicas started.
    Config,
    /// Log in with this private key file (a path, or a name under ~/.ssh).
    Addsshkey { file: PathBuf },
    /// Log in to the nodes as this user.
    Addusername { name: String },
    /// Check host keys against this known_hosts file instead of ssh's default.
    Addknownhosts { file: PathBuf },
    /// Check that a node answers over SSH, report its OS and architecture, add it.
    Addnode(nodes::AddNode),
    /// Install this machine's `concoord` binary on a node and check that it runs.
    Setup(nodes::Setup),
    /// Store Route53 credentials on a node (for name servers started with -r).
    Route53(nodes::Route53),
    /// Start `concoord replica` on a node: [--node HOST] [concoord replica options].
    Replica(launch::Start),
    /// Start a name server replica (-n DOMAIN required) on a node.
    Nameserver(launch::Start),
    /// List the replicas started through openreplica: process and role.
    Status(launch::Status),
    /// Stop replicas started through openreplica (by address, by node, or all).
    Stop(launch::Stop),
}

fn main() {
    // Like `concoord`, the subcommand is matched case-insensitively.
    let args: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| if i == 1 && !a.starts_with('-') { a.to_lowercase() } else { a })
        .collect();
    let cli = Cli::parse_from(args);
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        let code = e.downcast_ref::<launch::NotRunning>().map_or(1, |_| launch::EXIT_NOT_RUNNING);
        std::process::exit(code);
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut locked = config::Locked::open()?;
    match cli.command {
        Command::Config => {
            print_config(&locked);
            Ok(())
        }
        Command::Addsshkey { file } => {
            let path = resolve_key(&file)?;
            if locked.config.ssh_key.as_ref() == Some(&path) {
                println!("ssh key {} is already configured", path.display());
                return Ok(());
            }
            locked.config.ssh_key = Some(path.clone());
            locked.save()?;
            println!("ssh key: {}", path.display());
            Ok(())
        }
        Command::Addusername { name } => {
            if name.is_empty()
                || name.starts_with('-')
                || !name.chars().all(|c| c.is_alphanumeric() || "._-".contains(c))
            {
                bail!("{name:?} is not a user name (letters, digits, '.', '_' and '-')");
            }
            if locked.config.username.as_deref() == Some(name.as_str()) {
                println!("user name {name} is already configured");
                return Ok(());
            }
            locked.config.username = Some(name.clone());
            locked.save()?;
            println!("user name: {name}");
            Ok(())
        }
        Command::Addknownhosts { file } => {
            let path = absolute(&file)?;
            if !path.is_file() {
                bail!(
                    "{} is not a file: create it (ssh-keyscan, or copy the keys) first",
                    path.display()
                );
            }
            locked.config.known_hosts = Some(path.clone());
            locked.save()?;
            println!("known_hosts: {}", path.display());
            Ok(())
        }
        Command::Addnode(args) => nodes::add_node(&mut locked, args),
        Command::Setup(args) => nodes::setup(&mut locked, args),
        Command::Route53(args) => nodes::route53(&locked, args),
        Command::Replica(args) => launch::start(&mut locked, args, launch::Kind::Replica),
        Command::Nameserver(args) => launch::start(&mut locked, args, launch::Kind::Nameserver),
        Command::Status(args) => launch::status(&locked, args),
        Command::Stop(args) => launch::stop(&mut locked, args),
    }
}

fn print_config(locked: &config::Locked) {
    let c = &locked.config;
    let or_default = |v: Option<String>, d: &str| v.unwrap_or_else(|| format!("({d})"));
    println!("file:          {}", locked.path.display());
    println!("user name:     {}", or_default(c.username.clone(), "ssh's default"));
    println!(
        "ssh key:       {}",
        or_default(c.ssh_key.as_ref().map(|p| p.display().to_string()), "ssh's default keys")
    );
    println!(
        "known_hosts:   {}",
        or_default(c.known_hosts.as_ref().map(|p| p.display().to_string()), "ssh's default")
    );
    if c.nodes.is_empty() {
        println!("nodes:         (none: openreplica addnode HOST)");
    } else {
        println!("nodes:");
        for n in &c.nodes {
            let installed = n.installed.as_deref().unwrap_or("concoord not installed by setup");
            println!("  {}  {} {}  dir {}  {}", n.name, n.os, n.arch, n.dir, installed);
        }
    }
    if c.replicas.is_empty() {
        println!("replicas:      (none started)");
    } else {
        println!("replicas:");
        for r in &c.replicas {
            println!("  {} {}  node {}  pid {}  log {}", r.kind, r.addr, r.node, r.pid, r.log);
        }
    }
}

/// A key file by path, or (as the original took it) by name under `~/.ssh`.
fn resolve_key(file: &std::path::Path) -> Result<PathBuf> {
    if file.is_file() {
        return absolute(file);
    }
    if file.is_relative() {
        if let Some(home) = std::env::var_os("HOME") {
            let in_ssh = PathBuf::from(home).join(".ssh").join(file);
            if in_ssh.is_file() {
                return Ok(in_ssh);
            }
        }
    }
    bail!("no key file {} (give a path, or a file name under ~/.ssh)", file.display())
}

fn absolute(file: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))
}
