//! Commands that prepare nodes: `addnode` (reachable? which OS and architecture?),
//! `setup` (install this machine's `concoord` binary in the node's directory) and
//! `route53` (store Route53 credentials on the node, owner-only).

use crate::config::{Config, Locked, Node, NODE_DIR_DEFAULT};
use crate::ssh::{quote, quote_path, split_node, Session, Target, EXIT_NO_CONCOORD};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct AddNode {
    /// The node: host or host:port (the SSH port).
    host: String,
    /// The node's directory for the binary, logs and data (`~/` is the remote home).
    #[arg(long = "dir", default_value = NODE_DIR_DEFAULT)]
    dir: String,
    /// Trust the node's host key if known_hosts has none for it yet (trust on first
    /// use); a changed key is still refused.
    #[arg(long = "accept-new-host-key")]
    accept_new_host_key: bool,
}

#[derive(clap::Args, Debug)]
pub struct Setup {
    /// A configured node.
    host: String,
    /// The binary to install (default: the `concoord` beside this `openreplica`).
    #[arg(long = "binary")]
    binary: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct Route53 {
    /// A configured node.
    host: String,
    /// AWS access key id.
    id: String,
    /// AWS secret access key.
    key: String,
}

/// How to reach node `name` with the configured user, key and known_hosts.
pub fn target(config: &Config, name: &str, accept_new_host_key: bool) -> Result<Target> {
    let (host, port) = split_node(name)?;
    Ok(Target {
        name: name.to_string(),
        host,
        port,
        user: config.username.clone(),
        key: config.ssh_key.clone(),
        known_hosts: config.known_hosts.clone(),
        accept_new_host_key,
    })
}

/// sh that sets `D` to the node's directory and `C` to its `concoord` (the one
/// `setup` installed, else one on the PATH), or exits with [`EXIT_NO_CONCOORD`].
pub fn find_concoord(dir: &str) -> String {
    format!(
        "D={dir}\nC=\"$D/bin/concoord\"\n\
         if [ ! -x \"$C\" ]; then C=$(command -v concoord) || {{ echo 'concoord is not installed' >&2; exit {EXIT_NO_CONCOORD}; }}; fi\n",
        dir = quote_path(dir)
    )
}

pub fn add_node(locked: &mut Locked, args: AddNode) -> Result<()> {
    let target = target(&locked.config, &args.host, args.accept_new_host_key)?;
    if args.dir.trim().is_empty() {
        bail!("--dir must not be empty");
    }
    let session = Session::connect(&target)?;
    let out = session.run_ok("uname -s; uname -m", None, "uname")?;
    let mut lines = out.lines().map(str::trim);
    let (os, arch) = match (lines.next(), lines.next()) {
        (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => {
            (os.to_string(), arch.to_string())
        }
        _ => {
            bail!("node {} answered but did not report its OS and architecture: {out:?}", args.host)
        }
    };
    println!("node {} answers: {os} {arch}", args.host);
    if os != "Linux" {
        eprintln!(
            "warning: node {} runs {os}; openreplica starts replicas on Linux nodes only",
            args.host
        );
    }
    let node = Node { name: args.host.clone(), os, arch, dir: args.dir, installed: None };
    match locked.config.node_mut(&args.host) {
        Some(existing) => {
            let installed = existing.installed.take();
            *existing = Node { installed, ..node };
            println!("node {} was already configured; updated", args.host);
        }
        None => locked.config.nodes.push(node),
    }
    locked.save()
}

pub fn setup(locked: &mut Locked, args: Setup) -> Result<()> {
    let node = locked.config.require_node(&args.host)?.clone();
    let binary = match args.binary {
        Some(b) => b,
        None => std::env::current_exe()
            .context("cannot find this program's path")?
            .with_file_name("concoord"),
    };
    let local_version = version_of(&binary)?;
    let target = target(&locked.config, &node.name, false)?;
    let session = Session::connect(&target)?;
    let out = session.run_ok("uname -s; uname -m", None, "uname")?;
    let mut lines = out.lines().map(str::trim);
    let (os, arch) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let (local_os, local_arch) = (std::env::consts::OS, std::env::consts::ARCH);
    if !os.eq_ignore_ascii_case(local_os) || arch != local_arch {
        bail!(
            "node {} is {os} {arch} but {} was built for {local_os} {local_arch}: build concoord \
             for the node and pass it with --binary",
            node.name,
            binary.display()
        );
    }
    let bytes =
        std::fs::read(&binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let script = format!(
        "D={dir}\nmkdir -p \"$D/bin\" && cat > \"$D/bin/concoord.tmp\" && \
         chmod 755 \"$D/bin/concoord.tmp\" && mv -f \"$D/bin/concoord.tmp\" \"$D/bin/concoord\" || exit 1\n\
         \"$D/bin/concoord\" --version\n",
        dir = quote_path(&node.dir)
    );
    let output = session.run(&script, Some(&bytes))?;
    let remote_version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || remote_version != local_version {
        bail!(
            "concoord was copied to node {} but does not run there (exit status {}): {}",
            node.name,
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if let Some(n) = locked.config.node_mut(&node.name) {
        n.installed = Some(remote_version.clone());
    }
    locked.save()?;
    println!("node {}: {remote_version} installed in {}/bin/concoord", node.name, node.dir);
    Ok(())
}

/// `BINARY --version`, e.g. `concoord 0.1.0`.
fn version_of(binary: &std::path::Path) -> Result<String> {
    let out = std::process::Command::new(binary).arg("--version").output().with_context(|| {
        format!("cannot run {} (give the binary with --binary)", binary.display())
    })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !version.starts_with("concoord ") {
        bail!("{} is not a concoord binary (--version said {version:?})", binary.display());
    }
    Ok(version)
}

/// Where the credentials live on a node: owner-only, in the format of the
/// original's `route53.cfg`.
pub const ROUTE53_FILE: &str = "${XDG_CONFIG_HOME:-$HOME/.config}/concoord/route53.cfg";

pub fn route53(locked: &Locked, args: Route53) -> Result<()> {
    let node = locked.config.require_node(&args.host)?.clone();
    for (what, value) in [("id", &args.id), ("key", &args.key)] {
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_graphic()) {
            bail!("the Route53 {what} must be printable ASCII without spaces");
        }
    }
    // The credentials travel on standard input, never on a command line that `ps`
    // shows. A concoord that has `route53id`/`route53key` stores them itself;
    // otherwise the file is written here, in the same place and format.
    let script = format!(
        "{find}IFS= read -r ID && IFS= read -r KEY || exit 1\n\
         if \"$C\" route53id --help >/dev/null 2>&1; then\n\
           \"$C\" route53id \"$ID\" >/dev/null && \"$C\" route53key \"$KEY\" >/dev/null || exit 1\n\
           echo concoord\n\
         else\n\
           F=\"{file}\"\n\
           umask 077; mkdir -p \"$(dirname \"$F\")\" || exit 1\n\
           printf '[ENVIRONMENT]\\nAWS_ACCESS_KEY_ID = %s\\nAWS_SECRET_ACCESS_KEY = %s\\n' \"$ID\" \"$KEY\" > \"$F.tmp\" \
             && chmod 600 \"$F.tmp\" && mv -f \"$F.tmp\" \"$F\" || exit 1\n\
           echo \"$F\"\n\
         fi\n",
        find = find_concoord(&node.dir),
        file = ROUTE53_FILE,
    );
    let input = format!("{}\n{}\n", args.id, args.key);
    let target = target(&locked.config, &node.name, false)?;
    let session = Session::connect(&target)?;
    let out = session.run_ok(&script, Some(input.as_bytes()), "storing the Route53 credentials")?;
    let how = out.trim();
    if how == "concoord" {
        println!("node {}: Route53 credentials stored by concoord route53id/route53key", node.name);
    } else {
        println!("node {}: Route53 credentials stored in {} (mode 600)", node.name, quote(how));
    }
    Ok(())
}
