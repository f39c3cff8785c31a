//! The command line: `dev`, `call`, `status`, `bench`, `logdaemon`, and the
//! replica's own option checks.

use crate::harness::{serial, spawn_replica, Cluster, Scratch, Setup, BIN};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn concoord(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run concoord");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dev_starts_a_local_cluster_and_calls_it() {
    let _serial = serial();
    let (ok, out, err) = concoord(&["dev", "--port", "0", "--exit"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("a 3-replica cluster of Counter is running"), "{out}");
    assert!(out.contains("getvalue() -> 3"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_status_from_the_shell() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    let boot = cluster.boot();
    let (ok, out, err) = concoord(&["call", "-b", &boot, "increment"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "null");
    let (_, out, _) = concoord(&["call", "-b", &boot, "getvalue"]);
    assert_eq!(out.trim(), "1");
    // Other objects, JSON arguments and results, and errors.
    let (ok, _, err) = concoord(&[
        "call",
        "-b",
        &boot,
        "--object",
        "cfg",
        "--create",
        "Map",
        "put",
        "db",
        r#"{"port":5432}"#,
    ]);
    assert!(ok, "{err}");
    let (_, out, _) = concoord(&["call", "-b", &boot, "--object", "cfg", "get", "db"]);
    assert_eq!(out.trim(), r#"{"port":5432}"#);
    let (ok, _, err) = concoord(&["call", "-b", &boot, "--object", "cfg", "put"]);
    assert!(!ok);
    assert!(err.contains("TypeError"), "{err}");

    let (ok, out, err) = concoord(&["status", "-b", &boot]);
    assert!(ok, "{err}");
    assert!(out.contains("leader"), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("voter")).count(), 3, "{out}");
    let (ok, out, err) = concoord(&["status", "-b", &boot, "--json"]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    let replicas = json["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3);
    assert_eq!(replicas.iter().filter(|r| r["role"] == "leader").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_throughput_and_latency_as_json() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    for workload in ["increment", "read", "lock", "put"] {
        let (ok, out, err) = concoord(&[
            "bench",
            "-b",
            &cluster.boot(),
            "--workload",
            workload,
            "--clients",
            "4",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--json",
        ]);
        assert!(ok, "{workload}: {err}");
        let json: serde_json::Value =
            serde_json::from_str(out.trim()).expect("bench --json is JSON");
        for key in ["ops_per_sec", "p50_ms", "p99_ms", "max_ms", "errors"] {
            assert!(json[key].is_number(), "{workload}: {key} missing in {out}");
        }
        assert!(json["ops_per_sec"].as_f64().unwrap() > 0.0, "{workload}: {out}");
        assert_eq!(json["errors"], 0, "{workload}: {out}");
    }
}

#[test]
fn replicas_stream_log_lines_to_the_log_daemon() {
    let _serial = serial();
    let mut daemon = Command::new(BIN)
        .args(["logdaemon", "-a", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("concoord logdaemon listening on ").expect(&first).to_string();
    let scratch = Scratch::new("logd");
    let args: Vec<String> = ["-a", "127.0.0.1", "-p", "0", "-o", "Counter", "-l", &addr]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut replica = spawn_replica(&args, &scratch.0.join("replica.log"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).expect("the daemon prints a line");
    assert!(line.contains("listening on"), "{line}");
    assert!(line.contains(&replica.addr), "{line}");
    replica.kill();
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[test]
fn replica_options_are_checked() {
    let (ok, _, err) = concoord(&["replica", "-a", "127.0.0.1", "-p", "0", "-o", "NoSuchThing"]);
    assert!(!ok);
    assert!(err.contains("unknown object type"), "{err}");
    let (ok, _, err) = concoord(&["replica", "-o", "Counter", "-r"]);
    assert!(!ok);
    assert!(err.contains("--domainname"), "-r needs -n: {err}");
    let (ok, _, err) = concoord(&["replica", "-o", "Counter", "-n", "bad..name"]);
    assert!(!ok);
    assert!(err.contains("not a valid domain name"), "{err}");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (ok, _, err) = concoord(&[
        "replica",
        "-a",
        "127.0.0.1",
        "-p",
        "0",
        "-o",
        "Counter",
        "-n",
        "example.org",
        "--dns-port",
        &port,
    ]);
    assert!(!ok, "the DNS port is taken");
    assert!(err.contains("cannot bind the DNS port") && err.contains("--dns-port"), "{err}");
    let (ok, _, err) = concoord(&["replica", "-o", "Counter", "-b", "nohost"]);
    assert!(!ok);
    assert!(err.contains("no port"), "{err}");
    let (ok, _, err) = concoord(&["replica", "-o", "Counter", "-w"]);
    assert!(!ok);
    assert!(err.contains("-w needs a fixed -p"), "{err}");
    let (ok, _, _) = concoord(&["replica"]);
    assert!(!ok, "-o is required");
    let (ok, out, _) = concoord(&["replica", "--list-objects"]);
    assert!(ok);
    assert!(out.contains("concoord.object.counter.Counter") && out.contains("Lock"), "{out}");
    // The original's dotted name works as -o.
    let scratch = Scratch::new("dotted");
    let args: Vec<String> = ["-a", "127.0.0.1", "-p", "0", "-o", "concoord.object.lock.Lock"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut replica = spawn_replica(&args, &scratch.0.join("replica.log"));
    replica.kill();
}

/// `concoord status` as a health check: its exit code.
fn status_code(boot: &str) -> (Option<i32>, String) {
    let out = Command::new(BIN).args(["status", "-b", boot]).output().expect("run status");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exit_codes_tell_healthy_degraded_and_down_apart() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, Setup::default()).await;
    let boot = cluster.boot();
    let (code, out) = status_code(&boot);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("health: healthy"), "{out}");

    // `status --json | head -c 1`: the closed pipe is no panic.
    let mut child = Command::new(BIN)
        .args(["status", "-b", &boot, "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.code().is_some(), "status died on a closed pipe: {status:?}");
    assert_ne!(status.code(), Some(101), "status panicked on a closed pipe");

    let leader = cluster.leader().await;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    cluster.kill(follower);
    let (code, out) = status_code(&boot);
    assert_eq!(code, Some(2), "one voter of three down is degraded:\n{out}");
    assert!(out.contains("does not answer"), "{out}");
    // Each member once, however many replicas list the dead one.
    let dead = &cluster.addrs[follower];
    assert_eq!(out.lines().filter(|l| l.starts_with(dead.as_str())).count(), 1, "{out}");

    let other = (0..3).find(|i| *i != leader && *i != follower).unwrap();
    cluster.kill(other);
    let mut last = String::new();
    for _ in 0..40 {
        let (code, out) = status_code(&boot);
        if code == Some(3) {
            return;
        }
        last = out;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("two voters of three down never reported as down (exit 3):\n{last}");
}

/// `concoord route53id/route53key` write an owner-only file in the user's
/// configuration directory, never print the secret, and `-r` finds the credentials
/// there (and says where to put them when there are none).
#[test]
fn route53_credentials_are_stored_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let home = Scratch::new("route53-home");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("HOME", &home.0)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .output()
            .expect("run concoord");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let replica = ["replica", "-a", "127.0.0.1", "-p", "0", "-o", "Counter", "-n", "a.test", "-r"];
    let (ok, _, err) = run(&replica);
    assert!(!ok && err.contains("concoord route53id"), "no credentials anywhere: {err}");
    let (ok, out, _) = run(&["route53id", "AKIDTEST"]);
    assert!(ok && out.contains("AWS_ACCESS_KEY_ID"), "{out}");
    let (ok, out, err) = run(&["route53key", "s3cr3t-value"]);
    assert!(ok, "{err}");
    assert!(!out.contains("s3cr3t") && !err.contains("s3cr3t"), "the secret is never printed");
    let path = home.0.join(".config/concoord/route53.cfg");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("AWS_ACCESS_KEY_ID = AKIDTEST"), "{text}");
    assert!(text.contains("AWS_SECRET_ACCESS_KEY = s3cr3t-value"), "{text}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only");
    // With credentials, -r starts (against an endpoint where nothing listens, it logs
    // the failure and keeps serving).
    let mut child = Command::new(BIN)
        .args(replica)
        .args(["--route53-endpoint", "http://127.0.0.1:9"])
        .env("HOME", &home.0)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(line.contains("listening on"), "{line}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cr3t"), "the secret is never logged");
}
