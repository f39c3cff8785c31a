//! `openreplica` against real SSH servers: the test starts one Debian `sshd` per
//! fake node (127.0.0.21-23, one port, each with its own host key and its own
//! `$HOME` in the scratch directory through sshd's `SetEnv`), logs in as the current
//! user with a generated key, and drives the whole flow: addnode, setup, three
//! replicas (the first founds, the others join with -b), a call through the
//! cluster, status, stop; and the failures: an unreachable node, a refused key, an
//! unknown or changed host key, a missing binary, a replica that exits at once.
//!
//! Runs wherever `/usr/sbin/sshd` exists (`.ci/run` and `scripts/test-all` install
//! it, and `scripts/test-all` sets `CONCOORD_SSH=1` so that a missing sshd fails). Every sshd, and every process running a binary from the scratch directory,
//! is killed when the test ends, even when it fails.

use crate::harness::{serial, Scratch, BIN};
use concoord_client::status_of;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const OPENREPLICA: &str = env!("CARGO_BIN_EXE_openreplica");
const SSHD: &str = "/usr/sbin/sshd";

// This test drives blocking processes from a plain thread: it reads the clock and
// sleeps between polls here, and only here.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d)
}

/// Whether the test can run: `CONCOORD_SSH=0` skips it, `CONCOORD_SSH=1` (set by
/// `scripts/test-all`) makes a missing sshd a failure rather than a skip.
fn sshd_available() -> bool {
    let wanted = std::env::var("CONCOORD_SSH").unwrap_or_default();
    if wanted == "0" {
        return false;
    }
    let ok = Path::new(SSHD).exists()
        && Command::new("ssh-keygen").arg("-?").output().is_ok()
        && Command::new("ssh").arg("-V").output().is_ok();
    assert!(ok || wanted != "1", "CONCOORD_SSH=1 but {SSHD}, ssh or ssh-keygen is missing");
    if !ok {
        eprintln!("openreplica tests skipped: install openssh-server and openssh-client");
    }
    ok
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Fake nodes behind real sshd processes, and openreplica's own config directory.
struct Lab {
    scratch: Scratch,
    port: u16,
    sshds: Vec<Child>,
    config_home: PathBuf,
}

impl Lab {
    /// One sshd per address 127.0.0.`n` for `n` in `nodes`, all on one free port.
    fn start(nodes: &[u8]) -> Lab {
        let scratch = Scratch::new("openreplica");
        let dir = scratch.0.clone();
        if !Path::new("/run/sshd").exists() {
            // sshd refuses to start without its privilege separation directory.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        keygen(&dir.join("user_key"));
        keygen(&dir.join("other_key"));
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).expect("copy key");
        for n in nodes {
            keygen(&dir.join(format!("host_key_{n}")));
            std::fs::create_dir_all(dir.join(format!("home{n}"))).expect("node home");
        }
        let config_home = dir.join("config");
        let mut lab = Lab { scratch, port: 0, sshds: Vec::new(), config_home };
        // The port was free on the first address a moment ago; another process may
        // take it on one of them meanwhile. Then that sshd exits, and we try another.
        for _attempt in 0..5 {
            lab.port = {
                let l = TcpListener::bind(format!("127.0.0.{}:0", nodes[0])).expect("free port");
                l.local_addr().expect("port").port()
            };
            if lab.start_sshds(nodes) {
                return lab;
            }
            for child in &mut lab.sshds {
                let _ = child.kill();
                let _ = child.wait();
            }
            lab.sshds.clear();
        }
        panic!("no sshd could listen on the nodes' addresses (see the sshd logs)");
    }

    /// Starts one sshd per node on `self.port`; whether all of them listen.
    fn start_sshds(&mut self, nodes: &[u8]) -> bool {
        let dir = self.scratch.0.clone();
        let port = self.port;
        for n in nodes {
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.{n}\nHostKey {hk}\nPidFile none\n\
                 AuthorizedKeysFile {ak}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n\
                 SetEnv HOME={home}\nLogLevel VERBOSE\n",
                hk = dir.join(format!("host_key_{n}")).display(),
                ak = dir.join("authorized_keys").display(),
                home = dir.join(format!("home{n}")).display(),
            );
            let config_path = dir.join(format!("sshd_config_{n}"));
            std::fs::write(&config_path, config).expect("sshd config");
            let log = std::fs::File::create(dir.join(format!("sshd_{n}.log"))).expect("sshd log");
            let child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            self.sshds.push(child);
        }
        // sshd logs "Server listening on ADDR port PORT." once it is bound.
        for (i, n) in nodes.iter().enumerate() {
            let ready = format!("Server listening on 127.0.0.{n} port {port}.");
            let deadline = now() + Duration::from_secs(10);
            loop {
                let log =
                    std::fs::read_to_string(dir.join(format!("sshd_{n}.log"))).unwrap_or_default();
                if log.contains(&ready) {
                    break;
                }
                if matches!(self.sshds[i].try_wait(), Ok(Some(_))) {
                    eprintln!("sshd on 127.0.0.{n}:{port} exited: {log}");
                    return false;
                }
                assert!(now() < deadline, "sshd on 127.0.0.{n}:{port} did not start: {log}");
                pause(Duration::from_millis(50));
            }
        }
        true
    }

    fn node(&self, n: u8) -> String {
        format!("127.0.0.{n}:{}", self.port)
    }

    fn home(&self, n: u8) -> PathBuf {
        self.scratch.0.join(format!("home{n}"))
    }

    /// A known_hosts file that knows the host keys of `nodes`.
    fn known_hosts(&self, nodes: &[u8]) -> PathBuf {
        let mut text = String::new();
        for n in nodes {
            let public = std::fs::read_to_string(self.scratch.0.join(format!("host_key_{n}.pub")))
                .expect("host key");
            let key: Vec<&str> = public.split_whitespace().take(2).collect();
            text.push_str(&format!("[127.0.0.{n}]:{} {}\n", self.port, key.join(" ")));
        }
        let path = self.scratch.0.join("known_hosts");
        std::fs::write(&path, text).expect("known_hosts");
        path
    }

    /// Runs openreplica with this lab's config directory; fails the test after 120 s.
    fn openreplica(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(OPENREPLICA);
        cmd.args(args).env("XDG_CONFIG_HOME", &self.config_home);
        run_limited(cmd, Duration::from_secs(120))
    }

    /// Runs openreplica and requires success; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.openreplica(args);
        assert!(out.status.success(), "openreplica {args:?} failed:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs openreplica and requires failure with exit status 1; its error output.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.openreplica(args);
        assert_eq!(out.status.code(), Some(1), "openreplica {args:?} should fail:\n{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn config(&self) -> serde_json::Value {
        let path = self.config_home.join("concoord/openreplica.json");
        serde_json::from_slice(&std::fs::read(path).expect("config file")).expect("config json")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.sshds {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Replicas run detached from everything: find them by their binary, which
        // setup installed inside the scratch directory.
        for pid in processes_running_from(&self.scratch.0) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        if std::thread::panicking() {
            for entry in std::fs::read_dir(&self.scratch.0).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("sshd_") && name.ends_with(".log") {
                    let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    eprintln!("--- {name} ---\n{log}");
                }
            }
        }
    }
}

fn processes_running_from(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(exe) = std::fs::read_link(entry.path().join("exe")) {
            if exe.starts_with(dir) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn is_running(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn run_limited(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The address in openreplica's "replica listening on ADDR (...)" line.
fn started_addr(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("replica listening on "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {stdout:?}"))
        .to_string()
}

fn concoord_call(boot: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["call", "-b", boot, "--timeout", "20"]).args(args);
    let out = run_limited(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "concoord call {args:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn voters_of(runtime: &tokio::runtime::Runtime, addr: &str, token: &str) -> usize {
    runtime
        .block_on(status_of(addr, Some(token), Duration::from_secs(2)))
        .map(|s| {
            if s.role == "leader" {
                s.members.iter().filter(|m| m.role == "voter").count()
            } else {
                0
            }
        })
        .unwrap_or(0)
}

#[test]
fn openreplica_sets_up_nodes_and_runs_a_cluster_on_them() {
    let _serial = serial();
    if !sshd_available() {
        return;
    }
    let lab = Lab::start(&[21, 22, 23]);
    let (n21, n22, n23) = (lab.node(21), lab.node(22), lab.node(23));
    let user = current_user();
    let key = lab.scratch.0.join("user_key").display().to_string();
    let known = lab.known_hosts(&[21, 22]).display().to_string();

    lab.ok(&["addusername", &user]);
    lab.ok(&["addsshkey", &key]);
    lab.ok(&["addknownhosts", &known]);
    let out = lab.ok(&["addnode", &n21]);
    assert!(out.contains("answers: Linux"), "{out}");
    lab.ok(&["addnode", &n22]);
    // Node 23's host key is not in known_hosts: refused until trusted explicitly.
    let err = lab.fails(&["addnode", &n23]);
    assert!(err.contains("host key of node") && err.contains("not known"), "{err}");
    assert!(err.contains("--accept-new-host-key"), "{err}");
    lab.ok(&["addnode", &n23, "--accept-new-host-key"]);
    let known_text = std::fs::read_to_string(&known).unwrap();
    // ssh may hash the name it adds (HashKnownHosts), so count the entries.
    assert_eq!(known_text.lines().count(), 3, "{known_text}");
    let config = lab.ok(&["config"]);
    for node in [&n21, &n22, &n23] {
        assert!(config.contains(node.as_str()), "{config}");
    }
    assert!(config.contains(&user) && config.contains(&key), "{config}");

    // Before setup the node has no concoord.
    let err = lab.fails(&["replica", "--node", &n22, "-o", "Counter", "-p", "0"]);
    assert!(err.contains("concoord is not installed on node"), "{err}");
    for node in [&n21, &n22, &n23] {
        let out = lab.ok(&["setup", node]);
        assert!(out.contains("installed"), "{out}");
    }
    for n in [21, 22, 23] {
        assert!(lab.home(n).join("concoord/bin/concoord").is_file());
    }

    // A replica that exits at once is reported with its log.
    let err = lab.fails(&["replica", "--node", &n21, "-o", "NoSuchType", "-p", "0"]);
    assert!(err.contains("exited before it listened"), "{err}");
    assert!(err.contains("unknown object type \"NoSuchType\""), "{err}");

    // The token reaches the replicas through their environment, not a command line.
    let token = ["--token", "s3cret-token"];
    let start = |node: &str, boot: Option<&str>| {
        let mut args = vec!["replica", "--node", node, "-o", "Counter", "-p", "0"];
        args.extend(token);
        if let Some(boot) = boot {
            args.extend(["-b", boot]);
        }
        started_addr(&lab.ok(&args))
    };
    let a1 = start(&n21, None);
    assert!(a1.starts_with("127.0.0.21:"), "{a1}");
    let a2 = start(&n22, Some(&a1));
    let a3 = start(&n23, Some(&a1));
    assert!(a2.starts_with("127.0.0.22:") && a3.starts_with("127.0.0.23:"), "{a2} {a3}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = now() + Duration::from_secs(30);
    while voters_of(&runtime, &a1, "s3cret-token") != 3 {
        assert!(now() < deadline, "the three replicas did not form a cluster");
        pause(Duration::from_millis(100));
    }
    let boot = format!("{a1},{a2},{a3}");
    concoord_call(&boot, &[&token[..], &["increment"]].concat());
    concoord_call(&boot, &[&token[..], &["increment"]].concat());
    assert_eq!(concoord_call(&a3, &[&token[..], &["getvalue"]].concat()), "2");
    let config_text =
        std::fs::read_to_string(lab.config_home.join("concoord/openreplica.json")).unwrap();
    assert!(!config_text.contains("s3cret"), "{config_text}");
    for r in lab.config()["replicas"].as_array().unwrap() {
        let pid = r["pid"].as_u64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains("s3cret"));
    }

    // Without --node, a node is chosen (the least loaded); the replica is recorded there.
    let mut args = vec!["replica", "-o", "Counter", "-p", "0", "-b", &a1];
    args.extend(token);
    let a4 = started_addr(&lab.ok(&args));
    assert!(
        ["127.0.0.21:", "127.0.0.22:", "127.0.0.23:"].iter().any(|p| a4.starts_with(p)),
        "{a4}"
    );
    assert_eq!(lab.config()["replicas"].as_array().unwrap().len(), 4);
    lab.ok(&["stop", &a4]);

    let out = lab.ok(&["status", "--token", "s3cret-token"]);
    assert_eq!(out.matches("running").count(), 3, "{out}");
    assert_eq!(out.matches("leader").count(), 1, "{out}");
    // Each replica's log is in its node's directory, and says where it listens.
    for r in lab.config()["replicas"].as_array().unwrap() {
        let addr = r["addr"].as_str().unwrap();
        let n: u8 = addr.split(['.', ':']).nth(3).unwrap().parse().unwrap();
        let log = PathBuf::from(r["log"].as_str().unwrap());
        assert!(log.starts_with(lab.home(n).join("concoord/logs")), "{log:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(&format!("listening on {addr}")), "{text}");
    }

    // Route53 credentials land on the node, owner-only.
    lab.ok(&["route53", &n21, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG"]);
    let creds = lab.home(21).join(".config/concoord/route53.cfg");
    let body = std::fs::read_to_string(&creds).unwrap();
    assert!(body.contains("AWS_ACCESS_KEY_ID = AKIDEXAMPLE"), "{body}");
    assert!(body.contains("AWS_SECRET_ACCESS_KEY = wJalrXUtnFEMI/K7MDENG"), "{body}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!lab.ok(&["config"]).contains("wJalrXUtnFEMI"));

    let pids: Vec<u64> = lab.config()["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    let out = lab.ok(&["stop", &a2]);
    assert!(out.contains("stopped"), "{out}");
    assert!(!is_running(pids[1]), "replica 2 still runs");
    assert_eq!(lab.config()["replicas"].as_array().unwrap().len(), 2);
    // A replica that died is reported, with exit status 2.
    let _ = Command::new("kill").args(["-KILL", &pids[2].to_string()]).status();
    let deadline = now() + Duration::from_secs(10);
    while is_running(pids[2]) {
        assert!(now() < deadline, "replica 3 survived SIGKILL");
        pause(Duration::from_millis(50));
    }
    let out = lab.openreplica(&["status", "--token", "s3cret-token"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("exited"), "{}", text(&out));
    let out = lab.ok(&["stop", "--all"]);
    assert!(out.contains("had already exited") && out.contains(&a1), "{out}");
    assert!(!is_running(pids[0]), "replica 1 still runs");
    assert!(lab.ok(&["status"]).contains("no replicas started"));
}

#[test]
fn openreplica_says_why_it_cannot_reach_a_node() {
    let _serial = serial();
    if !sshd_available() {
        return;
    }
    let lab = Lab::start(&[21, 22]);
    let (n21, n22) = (lab.node(21), lab.node(22));
    let key = lab.scratch.0.join("user_key").display().to_string();
    let other = lab.scratch.0.join("other_key").display().to_string();
    let known = lab.known_hosts(&[21]);
    lab.ok(&["addusername", &current_user()]);
    lab.ok(&["addknownhosts", &known.display().to_string()]);

    // Nothing listens on 127.0.0.24.
    lab.ok(&["addsshkey", &key]);
    let err = lab.fails(&["addnode", &format!("127.0.0.24:{}", lab.port)]);
    assert!(err.contains("unreachable") && err.contains("Connection refused"), "{err}");

    // A key the node does not accept.
    lab.ok(&["addsshkey", &other]);
    let err = lab.fails(&["addnode", &n21]);
    assert!(err.contains("refused the login") && err.contains("Permission denied"), "{err}");
    lab.ok(&["addsshkey", &key]);
    lab.ok(&["addnode", &n21]);

    // A host key that changed: refused even with --accept-new-host-key.
    let wrong = std::fs::read_to_string(lab.scratch.0.join("host_key_21.pub")).unwrap();
    let wrong: Vec<&str> = wrong.split_whitespace().take(2).collect();
    let mut text_kh = std::fs::read_to_string(&known).unwrap();
    text_kh.push_str(&format!("[127.0.0.22]:{} {}\n", lab.port, wrong.join(" ")));
    std::fs::write(&known, text_kh).unwrap();
    let err = lab.fails(&["addnode", &n22, "--accept-new-host-key"]);
    assert!(err.contains("does not match"), "{err}");
    assert!(lab.config()["nodes"].as_array().unwrap().len() == 1);

    // setup checks that what it installs is concoord.
    let err = lab.fails(&["setup", &n21, "--binary", "/bin/sh"]);
    assert!(err.contains("is not a concoord binary"), "{err}");
    assert!(!lab.home(21).join("concoord/bin/concoord").exists());

    // Usage errors need no node.
    let err = lab.fails(&["nameserver", "--node", &n21, "-o", "Counter"]);
    assert!(err.contains("needs -n DOMAIN"), "{err}");
    let err = lab.fails(&["replica", "--node", &n21, "-p", "0"]);
    assert!(err.contains("-o"), "{err}");
    let err = lab.fails(&["replica", "--node", &n22, "-o", "Counter"]);
    assert!(err.contains("not configured"), "{err}");
    let err = lab.fails(&["stop", "127.0.0.21:1"]);
    assert!(err.contains("no replica at"), "{err}");
    let err = lab.fails(&["addsshkey", "/nonexistent/key"]);
    assert!(err.contains("no key file"), "{err}");
}
