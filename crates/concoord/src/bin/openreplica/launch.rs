//! Starting, listing and stopping replicas on nodes. A replica runs detached from
//! the SSH session (`nohup setsid`, standard streams on a log file in the node's
//! `logs/` directory, working directory the node's directory so `-w` data lands
//! there). openreplica waits until the replica announces its address in the log,
//! and reports the log's tail if it exits first. Every replica started is recorded
//! with its pid and the process's start time, so `stop` never signals a stranger
//! that reused the pid.

use crate::config::{Locked, Started};
use crate::nodes::{find_concoord, target, ROUTE53_FILE};
use crate::ssh::{nonce, quote, Session};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// Exit status of `status` when a recorded replica is not running.
pub const EXIT_NOT_RUNNING: i32 = 2;
/// Lines of a failed replica's log shown in the error.
const LOG_TAIL_LINES: usize = 30;
/// What a replica prints once it listens (its first line of standard output).
const LISTENING: &str = "concoord replica listening on ";

#[derive(clap::Args, Debug)]
pub struct Start {
    /// The node to start on (default: the configured node with the lowest load
    /// average; ties broken at random).
    #[arg(long = "node")]
    node: Option<String>,
    /// Seconds to wait for the replica to listen before stopping it and failing.
    #[arg(long = "wait", default_value_t = 30)]
    wait: u64,
    /// Options for `concoord replica` (-o is required; -a defaults to the node's host).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct Status {
    /// Token, if the replicas require one (to ask them their role).
    #[arg(long = "token", env = "CONCOORD_TOKEN")]
    token: Option<String>,
    /// TLS, for replicas started with --tls-cert (to ask them their role).
    #[command(flatten)]
    tls: crate::tls_args::TlsArgs,
}

#[derive(clap::Args, Debug)]
pub struct Stop {
    /// Addresses (host:port) of replicas to stop.
    addrs: Vec<String>,
    /// Stop every replica started on this node.
    #[arg(long = "node")]
    node: Option<String>,
    /// Stop every replica openreplica started.
    #[arg(long = "all", conflicts_with_all = ["addrs", "node"])]
    all: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Replica,
    Nameserver,
}

/// `status` found a recorded replica that is not running.
#[derive(Debug)]
pub struct NotRunning(pub String);

impl std::fmt::Display for NotRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for NotRunning {}

/// The value of option `-x`/`--long` in a `concoord replica` command line, in any
/// of the forms clap accepts (`-a V`, `-aV`, `-a=V`, `--addr V`, `--addr=V`).
pub fn option_value(args: &[String], short: char, long: &str) -> Option<String> {
    let short = format!("-{short}");
    let long = format!("--{long}");
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if *a == short || *a == long {
            found = args.get(i + 1).cloned();
            i += 2;
            continue;
        }
        if let Some(v) = a.strip_prefix(&format!("{long}=")) {
            found = Some(v.to_string());
        } else if let Some(v) = a.strip_prefix(&short).filter(|_| !a.starts_with("--")) {
            found = Some(v.strip_prefix('=').unwrap_or(v).to_string());
        }
        i += 1;
    }
    found
}

/// Whether flag `-x`/`--long` is present (also inside a bundle like `-wd`).
pub fn has_flag(args: &[String], short: char, long: &str) -> bool {
    args.iter().any(|a| {
        *a == format!("--{long}")
            || (a.starts_with('-')
                && !a.starts_with("--")
                && a.len() > 1
                && a[1..].chars().all(|c| c.is_ascii_alphabetic())
                && a[1..].contains(short))
    })
}

/// Removes `--token V`/`--token=V` from `args`; the token, if there was one.
fn take_token(args: &mut Vec<String>) -> Option<String> {
    let mut token = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--token" {
            args.remove(i);
            if i < args.len() {
                token = Some(args.remove(i));
            }
        } else if let Some(v) = args[i].strip_prefix("--token=") {
            token = Some(v.to_string());
            args.remove(i);
        } else {
            i += 1;
        }
    }
    token
}

pub fn start(locked: &mut Locked, args: Start, kind: Kind) -> Result<()> {
    let mut replica_args = args.args;
    if option_value(&replica_args, 'o', "objectname").is_none()
        && !has_flag(&replica_args, 'h', "help")
    {
        bail!("give the replica's object type with -o (e.g. `openreplica replica -o Counter`)");
    }
    let route53 = has_flag(&replica_args, 'r', "route53");
    if let Kind::Nameserver = kind {
        if option_value(&replica_args, 'n', "domainname").is_none() {
            bail!("a name server needs -n DOMAIN (and -r to publish to Route53)");
        }
    }
    if locked.config.nodes.is_empty() {
        bail!("no nodes configured: run `openreplica addnode HOST` and `openreplica setup HOST`");
    }
    // The token reaches the replica through its environment, fed on standard
    // input: neither the local nor the remote command line shows it.
    let token = take_token(&mut replica_args);
    let (node_name, session) = match &args.node {
        Some(name) => {
            let node = locked.config.require_node(name)?;
            let session = Session::connect(&target(&locked.config, &node.name, false)?)?;
            (node.name.clone(), session)
        }
        None => least_loaded(locked)?,
    };
    let node = locked.config.require_node(&node_name)?.clone();
    if option_value(&replica_args, 'a', "addr").is_none() {
        let (host, _) = crate::ssh::split_node(&node.name)?;
        replica_args.splice(0..0, ["-a".to_string(), host]);
    }
    if route53 {
        let check = format!("[ -s \"{ROUTE53_FILE}\" ]");
        if !session.run(&check, None)?.status.success() {
            bail!(
                "node {} has no Route53 credentials: run `openreplica route53 {} ID KEY` first",
                node.name,
                node.name
            );
        }
    }
    let words: Vec<String> = replica_args.iter().map(|a| quote(a)).collect();
    let log_name = format!(
        "{}-{}-{}.log",
        match kind {
            Kind::Replica => "replica",
            Kind::Nameserver => "nameserver",
        },
        crate::clock::unix_secs(),
        nonce()
    );
    let script = format!(
        "{find}IFS= read -r T || T=\nif [ -n \"$T\" ]; then CONCOORD_TOKEN=$T; export CONCOORD_TOKEN; fi\n\
         mkdir -p \"$D/logs\" && cd \"$D\" || exit 1\n\
         L=\"$D/logs/{log_name}\"\n\
         nohup setsid \"$C\" replica {args} > \"$L\" 2>&1 < /dev/null &\n\
         P=$!\n\
         S=$(sed 's/.*) //' /proc/$P/stat 2>/dev/null | cut -d' ' -f20)\n\
         echo \"$P $S $L\"\n",
        find = find_concoord(&node.dir),
        args = words.join(" "),
    );
    let input = format!("{}\n", token.as_deref().unwrap_or(""));
    let out = session.run_ok(&script, Some(input.as_bytes()), "starting the replica")?;
    let mut fields = out.trim().splitn(3, ' ');
    let (Some(pid), Some(start_time), Some(log)) = (fields.next(), fields.next(), fields.next())
    else {
        bail!("node {} did not report the started replica: {out:?}", node.name);
    };
    let pid: u32 = pid.parse().with_context(|| format!("bad pid from node: {out:?}"))?;
    let wait_tenths = args.wait.max(1) * 10;
    let watch = format!(
        "P={pid}; S={start}; L={log}\n{alive}\
         i=0\n\
         while [ $i -lt {wait_tenths} ]; do\n\
           line=$(grep -m1 '^{LISTENING}' \"$L\" 2>/dev/null)\n\
           if [ -n \"$line\" ]; then echo \"listening $line\"; exit 0; fi\n\
           alive || {{ echo exited; tail -n {LOG_TAIL_LINES} \"$L\"; exit 0; }}\n\
           sleep 0.1; i=$((i+1))\n\
         done\n\
         kill -KILL $P 2>/dev/null\n\
         echo timeout; tail -n {LOG_TAIL_LINES} \"$L\"\n",
        start = quote(start_time),
        log = quote(log),
        alive = ALIVE_FN,
    );
    let report = session.run_ok(&watch, None, "waiting for the replica")?;
    let (first, rest) = report.split_once('\n').unwrap_or((report.as_str(), ""));
    let Some(line) = first.strip_prefix("listening ") else {
        let why = if first == "timeout" {
            format!("did not listen within {}s and was stopped", args.wait)
        } else {
            "exited before it listened".to_string()
        };
        bail!(
            "the replica on node {} {why}; the end of its log ({log}):\n{}",
            node.name,
            rest.trim_end()
        );
    };
    let addr = line.trim().strip_prefix(LISTENING).unwrap_or(line).trim().to_string();
    locked.config.replicas.retain(|r| r.addr != addr);
    locked.config.replicas.push(Started {
        addr: addr.clone(),
        node: node.name.clone(),
        pid,
        start_time: start_time.to_string(),
        log: log.to_string(),
        kind: match kind {
            Kind::Replica => "replica".into(),
            Kind::Nameserver => "nameserver".into(),
        },
        args: replica_args,
    });
    locked.save()?;
    println!("replica listening on {addr} (node {}, pid {pid}, log {log})", node.name);
    Ok(())
}

/// sh function `alive`: is `$P` still the process started at `$S` (and no zombie)?
const ALIVE_FN: &str = "alive() { s=$(sed 's/.*) //' /proc/$P/stat 2>/dev/null) || return 1; \
                        set -- $s; [ \"$1\" != Z ] && [ \"${20}\" = \"$S\" ]; }\n";

/// Connects to every node, reads its load average and keeps the least loaded one
/// (at random among equals). Nodes that do not answer are skipped with a warning.
fn least_loaded(locked: &Locked) -> Result<(String, Session)> {
    let mut candidates: Vec<(f64, String, Session)> = Vec::new();
    let mut failures = Vec::new();
    for node in &locked.config.nodes {
        let session = match Session::connect(&target(&locked.config, &node.name, false)?) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("warning: skipping node {}: {e:#}", node.name);
                failures.push(node.name.clone());
                continue;
            }
        };
        let load = session
            .run_ok("cat /proc/loadavg", None, "reading the load average")
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse::<f64>().ok()))
            .filter(|l| l.is_finite())
            .unwrap_or(f64::MAX);
        candidates.push((load, node.name.clone(), session));
    }
    if candidates.is_empty() {
        bail!("no configured node answered ({})", failures.join(", "));
    }
    let lowest = candidates.iter().map(|c| c.0).fold(f64::MAX, f64::min);
    candidates.retain(|c| c.0 <= lowest);
    let pick = random_index(candidates.len());
    let (_, name, session) = candidates.swap_remove(pick);
    Ok((name, session))
}

fn random_index(n: usize) -> usize {
    let hex = nonce();
    let r = u32::from_str_radix(&hex, 16).unwrap_or(0) as usize;
    r % n.max(1)
}

/// The recorded replicas grouped by node, in a stable order.
fn by_node(replicas: &[Started]) -> BTreeMap<String, Vec<Started>> {
    let mut out: BTreeMap<String, Vec<Started>> = BTreeMap::new();
    for r in replicas {
        out.entry(r.node.clone()).or_default().push(r.clone());
    }
    out
}

/// Per recorded replica: `Some(true)` running, `Some(false)` gone, `None` node
/// unreachable (with the reason).
fn liveness(locked: &Locked, replicas: &[Started]) -> BTreeMap<String, Result<bool, String>> {
    let mut out = BTreeMap::new();
    for (node, list) in by_node(replicas) {
        let session = target(&locked.config, &node, false).and_then(|t| Session::connect(&t));
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                for r in list {
                    out.insert(r.addr, Err(format!("{e:#}")));
                }
                continue;
            }
        };
        let mut script = String::from(ALIVE_FN);
        for r in &list {
            script.push_str(&format!(
                "P={}; S={}; if alive; then echo up; else echo down; fi\n",
                r.pid,
                quote(&r.start_time)
            ));
        }
        match session.run_ok(&script, None, "checking the replicas") {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                for (i, r) in list.into_iter().enumerate() {
                    out.insert(r.addr, Ok(lines.get(i) == Some(&"up")));
                }
            }
            Err(e) => {
                for r in list {
                    out.insert(r.addr, Err(format!("{e:#}")));
                }
            }
        }
    }
    out
}

pub fn status(locked: &Locked, args: Status) -> Result<()> {
    let replicas = &locked.config.replicas;
    if replicas.is_empty() {
        println!("no replicas started through openreplica");
        return Ok(());
    }
    let tls = args.tls.load()?;
    let alive = liveness(locked, replicas);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!("{:<22} {:<22} {:>8}  {:<9} ROLE", "ADDRESS", "NODE", "PID", "PROCESS");
    let mut not_running = Vec::new();
    for r in replicas {
        let (process, role) = match alive.get(&r.addr) {
            Some(Ok(true)) => {
                let report = runtime.block_on(concoord_client::status_of_with_tls(
                    &r.addr,
                    args.token.as_deref(),
                    tls.as_ref(),
                    Duration::from_secs(2),
                ));
                let role = match report {
                    Ok(s) => s.role,
                    Err(e) => format!("no answer ({e})"),
                };
                ("running", role)
            }
            Some(Ok(false)) => {
                not_running.push(r.addr.clone());
                ("exited", format!("see its log {}", r.log))
            }
            Some(Err(e)) => {
                not_running.push(r.addr.clone());
                ("unknown", e.clone())
            }
            None => ("unknown", String::new()),
        };
        println!("{:<22} {:<22} {:>8}  {:<9} {role}", r.addr, r.node, r.pid, process);
    }
    if !not_running.is_empty() {
        return Err(NotRunning(format!("not running: {}", not_running.join(", "))).into());
    }
    Ok(())
}

pub fn stop(locked: &mut Locked, args: Stop) -> Result<()> {
    if !args.all && args.addrs.is_empty() && args.node.is_none() {
        bail!("say which replicas to stop: addresses, --node HOST, or --all");
    }
    for addr in &args.addrs {
        if !locked.config.replicas.iter().any(|r| &r.addr == addr) {
            bail!(
                "no replica at {addr} was started through openreplica (see `openreplica status`)"
            );
        }
    }
    if let Some(node) = &args.node {
        locked.config.require_node(node)?;
    }
    let chosen: Vec<Started> = locked
        .config
        .replicas
        .iter()
        .filter(|r| {
            args.all || args.addrs.contains(&r.addr) || args.node.as_deref() == Some(&r.node)
        })
        .cloned()
        .collect();
    let mut failed = Vec::new();
    for (node, list) in by_node(&chosen) {
        let session = match target(&locked.config, &node, false).and_then(|t| Session::connect(&t))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot stop the replicas on node {node}: {e:#}");
                failed.extend(list.into_iter().map(|r| r.addr));
                continue;
            }
        };
        for r in list {
            // SIGTERM stops a replica cleanly; after 10 s it gets SIGKILL.
            let script = format!(
                "P={}; S={}\n{ALIVE_FN}\
                 alive || {{ echo gone; exit 0; }}\n\
                 kill -TERM $P; i=0\n\
                 while [ $i -lt 100 ] && alive; do sleep 0.1; i=$((i+1)); done\n\
                 if alive; then kill -KILL $P; echo killed; else echo stopped; fi\n",
                r.pid,
                quote(&r.start_time)
            );
            match session.run_ok(&script, None, "stopping the replica") {
                Ok(out) => {
                    let how = match out.trim() {
                        "gone" => "had already exited",
                        "killed" => "did not stop on SIGTERM and was killed",
                        _ => "stopped",
                    };
                    println!("replica {} on node {node} {how}", r.addr);
                    locked.config.replicas.retain(|x| x.addr != r.addr);
                }
                Err(e) => {
                    eprintln!("error: cannot stop replica {}: {e:#}", r.addr);
                    failed.push(r.addr);
                }
            }
        }
    }
    locked.save()?;
    if !failed.is_empty() {
        bail!("could not stop: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn option_values_are_found_in_every_form() {
        assert_eq!(
            option_value(&v(&["-o", "Counter"]), 'o', "objectname").as_deref(),
            Some("Counter")
        );
        assert_eq!(option_value(&v(&["-oCounter"]), 'o', "objectname").as_deref(), Some("Counter"));
        assert_eq!(
            option_value(&v(&["-o=Counter"]), 'o', "objectname").as_deref(),
            Some("Counter")
        );
        assert_eq!(
            option_value(&v(&["--objectname=Lock"]), 'o', "objectname").as_deref(),
            Some("Lock")
        );
        assert_eq!(
            option_value(&v(&["--addr", "h", "-p", "1"]), 'a', "addr").as_deref(),
            Some("h")
        );
        assert_eq!(option_value(&v(&["-p", "1"]), 'a', "addr"), None);
        assert_eq!(option_value(&v(&["--boot", "x"]), 'b', "boot").as_deref(), Some("x"));
    }

    #[test]
    fn flags_are_found_alone_and_bundled() {
        assert!(has_flag(&v(&["-o", "C", "-r"]), 'r', "route53"));
        assert!(has_flag(&v(&["-wr"]), 'r', "route53"));
        assert!(has_flag(&v(&["--route53"]), 'r', "route53"));
        assert!(!has_flag(&v(&["-o", "C"]), 'r', "route53"));
        assert!(!has_flag(&v(&["--remove-dead-after", "3"]), 'r', "route53"));
    }

    #[test]
    fn the_token_is_taken_out_of_the_arguments() {
        let mut args = v(&["-o", "C", "--token", "s3cret", "-p", "1"]);
        assert_eq!(take_token(&mut args).as_deref(), Some("s3cret"));
        assert_eq!(args, v(&["-o", "C", "-p", "1"]));
        let mut args = v(&["--token=x"]);
        assert_eq!(take_token(&mut args).as_deref(), Some("x"));
        assert!(args.is_empty());
    }
}
