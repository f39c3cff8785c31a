//! SSH to one node through the system `ssh`: one multiplexing master connection
//! (ControlMaster) per node per command, over which every remote script runs. It is
//! not an SSH implementation: authentication, host keys and the user's
//! `~/.ssh/config` are ssh's own business; this module only chooses strict options
//! and turns ssh's failures into errors that say what to do.

use crate::clock;
use anyhow::{bail, Context, Result};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// How long a connection (TCP, key exchange and authentication) may take.
pub const CONNECT_TIMEOUT_SECS: u64 = 10;
/// A remote script that exits with this status could not find `concoord` on the node.
pub const EXIT_NO_CONCOORD: i32 = 127;
/// ssh's own exit status for its failures (a remote command's status is passed on).
const EXIT_SSH: i32 = 255;

/// Where and how to reach a node.
#[derive(Clone, Debug)]
pub struct Target {
    /// The node as configured: `host` or `host:port` (`[v6]:port`).
    pub name: String,
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// Trust a host key seen for the first time (StrictHostKeyChecking=accept-new).
    pub accept_new_host_key: bool,
}

/// Splits `host`, `host:port` or `[v6]:port`.
pub fn split_node(node: &str) -> Result<(String, Option<u16>)> {
    let node = node.trim();
    if node.is_empty() || node.contains(char::is_whitespace) || node.contains('@') {
        bail!(
            "{node:?} is not a node: give host or host:port (the user name is set by addusername)"
        );
    }
    if let Some(rest) = node.strip_prefix('[') {
        let Some((host, tail)) = rest.split_once(']') else {
            bail!("{node:?}: an IPv6 address in brackets needs its closing ]");
        };
        return match tail.strip_prefix(':') {
            Some(port) => Ok((host.to_string(), Some(parse_port(node, port)?))),
            None if tail.is_empty() => Ok((host.to_string(), None)),
            None => bail!("{node:?} is not host or [host]:port"),
        };
    }
    match node.split_once(':') {
        Some((host, port)) if !port.contains(':') => {
            if host.is_empty() {
                bail!("{node:?} has no host name");
            }
            Ok((host.to_string(), Some(parse_port(node, port)?)))
        }
        // A bare IPv6 address.
        Some(_) => Ok((node.to_string(), None)),
        None => Ok((node.to_string(), None)),
    }
}

fn parse_port(node: &str, port: &str) -> Result<u16> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bail!("{node:?}: the SSH port must be a number in 1-65535"),
    }
}

/// What went wrong reaching a node, each with the fix.
#[derive(Debug)]
pub enum SshError {
    Unreachable { node: String, detail: String },
    UnknownHostKey { node: String, detail: String },
    HostKeyChanged { node: String, detail: String },
    AuthRefused { node: String, detail: String },
    NoConcoord { node: String },
    Other { node: String, detail: String },
}

impl fmt::Display for SshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshError::Unreachable { node, detail } => write!(
                f,
                "node {node} is unreachable ({detail}): check that it is up, that its SSH \
                 server runs and that the host and port are right"
            ),
            SshError::UnknownHostKey { node, detail } => write!(
                f,
                "the host key of node {node} is not known ({detail}): add it to your \
                 known_hosts after checking it, or trust it on first use with \
                 `openreplica addnode {node} --accept-new-host-key`"
            ),
            SshError::HostKeyChanged { node, detail } => write!(
                f,
                "the host key of node {node} does not match the one in known_hosts ({detail}): \
                 this may be an attack; if the node was reinstalled, remove its old key with \
                 `ssh-keygen -R` and add it again"
            ),
            SshError::AuthRefused { node, detail } => write!(
                f,
                "node {node} refused the login ({detail}): check the user name \
                 (`openreplica addusername`) and the key (`openreplica addsshkey`; a key with \
                 a passphrase must be loaded in ssh-agent)"
            ),
            SshError::NoConcoord { node } => write!(
                f,
                "concoord is not installed on node {node}: run `openreplica setup {node}`"
            ),
            SshError::Other { node, detail } => write!(f, "ssh to node {node} failed: {detail}"),
        }
    }
}

impl std::error::Error for SshError {}

/// Classifies ssh's stderr after a failed connection.
pub fn classify(node: &str, stderr: &str) -> SshError {
    let node = node.to_string();
    let detail = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect::<Vec<_>>()
        .join("; ");
    let detail = if detail.is_empty() { "ssh gave no reason".to_string() } else { detail };
    let has = |s: &str| stderr.contains(s);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || has("Host key for") {
        SshError::HostKeyChanged { node, detail }
    } else if has("Host key verification failed") || has("host key is known") {
        SshError::UnknownHostKey { node, detail }
    } else if has("Permission denied") || has("Too many authentication failures") {
        SshError::AuthRefused { node, detail }
    } else if has("Connection refused")
        || has("timed out")
        || has("No route to host")
        || has("Network is unreachable")
        || has("Could not resolve hostname")
        || has("Name or service not known")
        || has("Connection closed by")
        || has("Connection reset")
    {
        SshError::Unreachable { node, detail }
    } else {
        SshError::Other { node, detail }
    }
}

/// An open master connection to one node; closed (and its process reaped) on drop.
#[derive(Debug)]
pub struct Session {
    target: Target,
    master: Child,
    dir: PathBuf,
}

impl Session {
    /// Opens the master connection: fails with an [`SshError`] that says why.
    pub fn connect(target: &Target) -> Result<Session> {
        let dir = control_dir()?;
        let log = dir.join("master.log");
        let stderr = std::fs::File::create(&log).context("cannot create the ssh log file")?;
        let mut cmd = Command::new("ssh");
        cmd.args(["-M", "-N", "-n", "-o", "ControlPersist=no"]);
        cmd.args(common_options(target, &dir));
        cmd.arg(&target.host);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        let master = cmd.spawn().context("cannot run ssh: is the OpenSSH client installed?")?;
        let mut session = Session { target: target.clone(), master, dir };
        let deadline = clock::now() + Duration::from_secs(CONNECT_TIMEOUT_SECS * 3);
        loop {
            if let Ok(Some(_)) = session.master.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(classify(&target.name, &text).into());
            }
            if session.socket().exists() && session.check() {
                return Ok(session);
            }
            if clock::now() > deadline {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let detail =
                    format!("no connection within {}s: {}", CONNECT_TIMEOUT_SECS * 3, text.trim());
                return Err(SshError::Unreachable { node: target.name.clone(), detail }.into());
            }
            clock::pause(Duration::from_millis(30));
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("s")
    }

    fn check(&self) -> bool {
        Command::new("ssh")
            .args(common_options(&self.target, &self.dir))
            .args(["-O", "check"])
            .arg(&self.target.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs `script` with `sh` on the node, `input` on its standard input; returns
    /// its output whatever its exit status, or an error if ssh itself failed.
    pub fn run(&self, script: &str, input: Option<&[u8]>) -> Result<Output> {
        let mut cmd = Command::new("ssh");
        cmd.args(common_options(&self.target, &self.dir));
        cmd.arg(&self.target.host);
        // The login shell may be anything (csh, fish): hand it one quoted word for sh.
        cmd.arg(format!("sh -c {}", quote(script)));
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().context("cannot run ssh")?;
        if let Some(input) = input {
            let mut stdin = child.stdin.take().context("ssh has no stdin")?;
            let data = input.to_vec();
            // Write from another thread so a large input cannot deadlock against
            // output the remote side produces meanwhile.
            let writer = std::thread::spawn(move || stdin.write_all(&data));
            let output = child.wait_with_output().context("ssh failed")?;
            let _ = writer.join();
            return self.checked(output);
        }
        let output = child.wait_with_output().context("ssh failed")?;
        self.checked(output)
    }

    fn checked(&self, output: Output) -> Result<Output> {
        match output.status.code() {
            Some(EXIT_SSH) | None => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                Err(classify(&self.target.name, &stderr).into())
            }
            Some(EXIT_NO_CONCOORD) => {
                Err(SshError::NoConcoord { node: self.target.name.clone() }.into())
            }
            Some(_) => Ok(output),
        }
    }

    /// Runs `script` and requires it to succeed; its standard output as text.
    pub fn run_ok(&self, script: &str, input: Option<&[u8]>, what: &str) -> Result<String> {
        let output = self.run(script, input)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "{what} failed on node {} (exit status {}): {}",
                self.target.name,
                output.status.code().unwrap_or(-1),
                stderr.trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .args(common_options(&self.target, &self.dir))
            .args(["-O", "exit"])
            .arg(&self.target.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.master.kill();
        let _ = self.master.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The options of every ssh invocation: the control socket, strict host keys, no
/// prompts, and the configured user, key, port and known_hosts file.
fn common_options(target: &Target, dir: &Path) -> Vec<String> {
    let checking = if target.accept_new_host_key { "accept-new" } else { "yes" };
    let mut args = vec![
        "-o".to_string(),
        format!("ControlPath={}", dir.join("s").display()),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!("StrictHostKeyChecking={checking}"),
        "-o".into(),
        format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}"),
        "-o".into(),
        "ServerAliveInterval=15".into(),
    ];
    if let Some(port) = target.port {
        args.push("-p".into());
        args.push(port.to_string());
    }
    if let Some(user) = &target.user {
        args.push("-l".into());
        args.push(user.clone());
    }
    if let Some(key) = &target.key {
        args.push("-i".into());
        args.push(key.display().to_string());
        args.push("-o".into());
        args.push("IdentitiesOnly=yes".into());
    }
    if let Some(known) = &target.known_hosts {
        args.push("-o".into());
        args.push(format!("UserKnownHostsFile={}", known.display()));
    }
    args
}

/// A fresh owner-only directory for one control socket. Socket paths are limited
/// to about 100 bytes, so it lives directly under the runtime or temp directory.
fn control_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir() && d.as_os_str().len() < 60)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    for attempt in 0..100u32 {
        let dir = base.join(format!("openreplica-{}-{}-{attempt}", std::process::id(), nonce()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create {}", dir.display()));
            }
        }
    }
    bail!("cannot create a control directory under {}", base.display())
}

/// A few random bytes from the OS, as hex.
pub fn nonce() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `s` as one word for sh: single-quoted, with embedded quotes escaped.
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A path on the node as a word for sh: a leading `~/` becomes `"$HOME"/`.
pub fn quote_path(p: &str) -> String {
    match p.strip_prefix("~/") {
        Some("") => "\"$HOME\"".to_string(),
        Some(rest) => format!("\"$HOME\"/{}", quote(rest)),
        None if p == "~" => "\"$HOME\"".to_string(),
        None => quote(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_split_into_host_and_port() {
        assert_eq!(split_node("node1").unwrap(), ("node1".to_string(), None));
        assert_eq!(split_node("10.0.0.1:2222").unwrap(), ("10.0.0.1".to_string(), Some(2222)));
        assert_eq!(split_node("[::1]:22").unwrap(), ("::1".to_string(), Some(22)));
        assert_eq!(split_node("::1").unwrap(), ("::1".to_string(), None));
        assert!(split_node("h:0").is_err());
        assert!(split_node("h:99999").is_err());
        assert!(split_node("root@h").is_err());
        assert!(split_node("").is_err());
        assert!(split_node(":22").is_err());
    }

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote("plain-word"), "plain-word");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote_path("~/concoord"), "\"$HOME\"/concoord");
        assert_eq!(quote_path("/srv/x y"), "'/srv/x y'");
    }

    #[test]
    fn ssh_failures_are_told_apart() {
        let refused = "ssh: connect to host 127.0.0.24 port 22: Connection refused";
        assert!(matches!(classify("n", refused), SshError::Unreachable { .. }));
        let unknown = "No ED25519 host key is known for [h]:2 and you have requested strict \
                       checking.\nHost key verification failed.";
        assert!(matches!(classify("n", unknown), SshError::UnknownHostKey { .. }));
        let denied = "root@h: Permission denied (publickey).";
        assert!(matches!(classify("n", denied), SshError::AuthRefused { .. }));
        let changed = "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key \
                       verification failed.";
        assert!(matches!(classify("n", changed), SshError::HostKeyChanged { .. }));
        assert!(matches!(classify("n", "something else"), SshError::Other { .. }));
    }
}
