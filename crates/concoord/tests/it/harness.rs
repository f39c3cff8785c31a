//! Real replica processes on 127.0.0.1 for end-to-end tests.
//!
//! Every replica is a `concoord replica` child process listening on a port the OS
//! picked (`-p 0`, announced on its stdout); a restart reuses that port. Every
//! process is killed when the `Cluster` is dropped. Tests take `serial()` so that
//! only one cluster runs at a time on this 2-core machine: timing-sensitive things
//! like elections should not compete with another test's cluster.

use concoord_client::{status_of_with_tls, Client, ClientOptions, ClientTls};
use concoord_object::protocol::StatusReport;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_concoord");

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs tests that start clusters one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch directory removed on drop (kept if the test failed, for its logs).
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("concoord-e2e-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub durable: bool,
    pub token: Option<String>,
    pub object: Option<String>,
    pub extra: Vec<String>,
    /// Replica `i` listens on 127.0.0.(11 + i) instead of 127.0.0.1, so firewall
    /// rules can tell replicas apart.
    pub distinct_hosts: bool,
    /// How the test's clients speak TLS to replicas started with `--tls-cert` (in
    /// `extra`).
    pub tls: Option<ClientTls>,
    /// More arguments for replica `i` only, after `extra`.
    pub extra_for: std::collections::BTreeMap<usize, Vec<String>>,
}

#[derive(Debug)]
pub struct Replica {
    child: Child,
    pub addr: String,
    pub args: Vec<String>,
    pub log: PathBuf,
}

impl Replica {
    /// Waits up to `limit` for the process to exit on its own; its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut waited = Duration::ZERO;
        while waited < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        }
        None
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub replicas: Vec<Option<Replica>>,
    /// Every address ever used (replicas keep their port across restarts).
    pub addrs: Vec<String>,
    pub setup: Setup,
    pub scratch: Scratch,
    /// Arguments and log file of replicas that were stopped, for restarts.
    stopped: std::collections::BTreeMap<usize, (Vec<String>, PathBuf)>,
}

/// Spawns `concoord replica` with `args` and waits for its "listening on" line.
pub fn spawn_replica(args: &[String], log: &PathBuf) -> Replica {
    let stderr =
        std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open replica log");
    let mut child = Command::new(BIN)
        .arg("replica")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn concoord replica");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("replica did not start: {args:?}\n{log_text}");
        }
    };
    let addr = line
        .strip_prefix("concoord replica listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let mut args = args.to_vec();
    // A restart must come back on the same port.
    if let Some(i) = args.iter().position(|a| a == "-p") {
        args[i + 1] = addr.rsplit_once(':').map(|(_, p)| p.to_string()).unwrap_or_default();
    }
    Replica { child, addr, args, log: log.clone() }
}

impl Cluster {
    /// Founds a cluster and grows it to `n` voters.
    pub async fn start(n: usize, setup: Setup) -> Cluster {
        let mut cluster = Cluster {
            replicas: Vec::new(),
            addrs: Vec::new(),
            setup,
            scratch: Scratch::new("cluster"),
            stopped: std::collections::BTreeMap::new(),
        };
        for _ in 0..n {
            cluster.add_replica();
            cluster.wait_voters(cluster.replicas.len()).await;
        }
        cluster
    }

    fn replica_args(&self, index: usize, boot: Option<String>) -> Vec<String> {
        let host = if self.setup.distinct_hosts {
            format!("127.0.0.{}", 11 + index)
        } else {
            "127.0.0.1".into()
        };
        let mut args: Vec<String> = vec!["-a".into(), host, "-p".into(), "0".into()];
        args.push("-o".into());
        args.push(self.setup.object.clone().unwrap_or_else(|| "Counter".into()));
        if let Some(boot) = boot {
            args.push("-b".into());
            args.push(boot);
        }
        if self.setup.durable {
            args.push("--data-dir".into());
            args.push(self.scratch.0.join(format!("data-{index}")).display().to_string());
        }
        if let Some(token) = &self.setup.token {
            args.push("--token".into());
            args.push(token.clone());
        }
        args.extend(self.setup.extra.iter().cloned());
        args.extend(self.setup.extra_for.get(&index).into_iter().flatten().cloned());
        args
    }

    /// Starts one more replica (joining through the live ones); returns its index.
    pub fn add_replica(&mut self) -> usize {
        let index = self.replicas.len();
        let boot = (!self.live().is_empty()).then(|| self.boot());
        let args = self.replica_args(index, boot);
        let log = self.scratch.0.join(format!("replica-{index}.log"));
        let replica = spawn_replica(&args, &log);
        self.addrs.push(replica.addr.clone());
        self.replicas.push(Some(replica));
        index
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.replicas.len()).filter(|i| self.replicas[*i].is_some()).collect()
    }

    /// The live replicas' addresses, comma separated.
    pub fn boot(&self) -> String {
        self.live()
            .iter()
            .map(|i| self.replicas[*i].as_ref().map(|r| r.addr.clone()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            token: self.setup.token.clone(),
            tls: self.setup.tls.clone(),
            ..ClientOptions::default()
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.boot(), self.options()).await.expect("client connects")
    }

    pub async fn status(&self, index: usize) -> Option<StatusReport> {
        let addr = &self.replicas[index].as_ref()?.addr;
        let (token, tls) = (self.setup.token.as_deref(), self.setup.tls.as_ref());
        status_of_with_tls(addr, token, tls, Duration::from_secs(2)).await.ok()
    }

    /// The index of the live replica that says it leads (waits for one).
    pub async fn leader(&self) -> usize {
        for _ in 0..300 {
            for i in self.live() {
                if let Some(s) = self.status(i).await {
                    if s.role == "leader" {
                        return i;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader within 15 s\n{}", self.logs());
    }

    /// Waits until a leader reports exactly `n` voters, all of them caught up.
    pub async fn wait_voters(&self, n: usize) {
        for _ in 0..600 {
            for i in self.live() {
                if let Some(s) = self.status(i).await {
                    let voters: Vec<_> = s.members.iter().filter(|m| m.role == "voter").collect();
                    if s.role == "leader"
                        && voters.len() == n
                        && voters.iter().all(|m| m.lag.is_some_and(|l| l < 64))
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the cluster did not reach {n} caught-up voters within 30 s\n{}", self.logs());
    }

    /// Waits until the leader's status satisfies `done` (up to 30 s).
    pub async fn wait_leader_status(&self, what: &str, done: impl Fn(&StatusReport) -> bool) {
        for _ in 0..600 {
            for i in self.live() {
                if let Some(s) = self.status(i).await {
                    if s.role == "leader" && done(&s) {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the leader never reported {what} within 30 s\n{}", self.logs());
    }

    /// Waits until replica `index` has applied at least through `slot`.
    pub async fn wait_applied(&self, index: usize, slot: u64) {
        for _ in 0..600 {
            if let Some(s) = self.status(index).await {
                if s.applied_slot.0 >= slot {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica {index} did not apply slot {slot} within 30 s\n{}", self.logs());
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut r) = self.replicas[index].take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
            // Keep the arguments for a restart.
            self.stopped.insert(index, (r.args, r.log));
        }
    }

    /// Starts a killed replica again with the same arguments (same port, same data).
    pub fn restart(&mut self, index: usize) {
        let (args, log) = self.stopped.remove(&index).expect("replica was stopped");
        let replica = spawn_replica(&args, &log);
        self.replicas[index] = Some(replica);
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`, ...) to a live replica.
    pub fn signal(&self, index: usize, signal: &str) {
        let r = self.replicas[index].as_ref().expect("replica is live");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(r.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The arguments a stopped replica ran with.
    pub fn stopped_args(&self, index: usize) -> Vec<String> {
        self.stopped.get(&index).map(|s| s.0.clone()).expect("replica was stopped")
    }

    /// Starts a stopped replica again with other arguments.
    pub fn restart_with(&mut self, index: usize, args: Vec<String>) {
        let (_, log) = self.stopped.remove(&index).expect("replica was stopped");
        let replica = spawn_replica(&args, &log);
        self.replicas[index] = Some(replica);
    }

    /// SIGTERM, then wait for a clean exit; returns the exit code.
    pub fn terminate(&mut self, index: usize) -> Option<i32> {
        let mut r = self.replicas[index].take()?;
        let _ = Command::new("kill").arg("-TERM").arg(r.child.id().to_string()).status();
        let status = r.child.wait().ok()?;
        self.stopped.insert(index, (r.args, r.log));
        status.code()
    }

    /// The tail of every replica's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.replicas.len() {
            let path = self.scratch.0.join(format!("replica-{i}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!("--- replica {i} ---\n{}\n", tail.join("\n")));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for r in self.replicas.iter_mut().flatten() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}
