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

    // Pinning the cluster: its own id works, another's finds no replica, and a
    // malformed one is a usage error.
    let id = cluster.status(0).await.unwrap().cluster.expect("a cluster id");
    let (ok, out, err) = concoord(&["call", "-b", &boot, "--cluster", &id, "getvalue"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1");
    let other = "00000000000000ff";
    let (ok, _, err) =
        concoord(&["call", "-b", &boot, "--cluster", other, "--timeout", "2", "getvalue"]);
    assert!(!ok && err.contains("timed out"), "{err}");
    let (ok, _, err) = concoord(&["call", "-b", &boot, "--cluster", "c1", "getvalue"]);
    assert!(!ok && err.contains("16 hex digits"), "{err}");
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
    // By default the daemon listens on loopback only.
    let mut daemon =
        Command::new(BIN).args(["logdaemon", "-p", "0"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let _daemon = KillOnDrop(daemon);
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("concoord logdaemon listening on ").expect(&first).to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let scratch = Scratch::new("logd");
    let args: Vec<String> = ["-a", "127.0.0.1", "-p", "0", "-o", "Counter", "-l", &addr]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let replica = KillReplicaOnDrop(spawn_replica(&args, &scratch.0.join("replica.log")));
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
    assert!(line.contains(&replica.0.addr), "{line}");
    // One timestamp per line, the daemon's: `<seconds>.<millis>: <LEVEL> ...`.
    let (stamp, rest) = line.split_once(": ").expect("a stamped line");
    assert!(
        stamp.split_once('.').is_some_and(|(s, ms)| s.parse::<u64>().is_ok()
            && ms.len() == 3
            && ms.parse::<u32>().is_ok()),
        "{line}"
    );
    // After the replica's name, the level: no second timestamp.
    let rest = rest.split_once("] ").map_or(rest, |(_, r)| r);
    assert!(rest.trim_start().starts_with("INFO"), "a second timestamp in {line:?}");
}

/// A replica killed when the test ends, however it ends.
struct KillReplicaOnDrop(crate::harness::Replica);

impl Drop for KillReplicaOnDrop {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// A voter that died and whose address a new process took (started without its
/// data and without `-b`: it founded a cluster of its own there) is still shown
/// down and the cluster degraded, not hidden behind whoever answers (N-2.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_dead_voter_whose_address_a_stranger_took() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, Setup::default()).await;
    let leader = cluster.leader().await;
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let boot = cluster.boot();
    cluster.kill(victim);
    let mut args = cluster.stopped_args(victim);
    if let Some(at) = args.iter().position(|a| a == "-b") {
        args.drain(at..at + 2);
    }
    cluster.restart_with(victim, args);
    let dead = cluster.addrs[victim].clone();
    let (code, out) = status_code(&boot);
    assert_eq!(code, Some(2), "a voter of three down is degraded:\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(dead.as_str()) && l.contains(" down "))
        .unwrap_or_else(|| panic!("{dead} not shown down:\n{out}"));
    assert!(line.contains("of another cluster"), "{out}");
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

#[test]
fn dev_refuses_ports_past_65535_clearly() {
    let (ok, out, err) = concoord(&["dev", "-p", "65535", "--exit"]);
    assert!(!ok, "{out}");
    assert!(err.contains("65535") && err.contains("-p"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn dev_leaves_the_readme_clusters_ports_alone() {
    let _serial = serial();
    // Whoever holds 14000 (the README cluster's first port), dev must not need it.
    let _held = std::net::TcpListener::bind("127.0.0.1:14000");
    let (ok, out, err) = concoord(&["dev", "--exit"]);
    assert!(ok, "{out}\n{err}");
    for port in [14000, 14001, 14002] {
        assert!(!out.contains(&format!("127.0.0.1:{port}")), "{out}");
    }
}

/// Starts `concoord dev` with `args`, runs the `concoord call` it suggests, and stops
/// it; dev's output.
fn dev_suggestion_works(args: &[&str]) -> String {
    let mut dev = KillOnDrop(
        Command::new(BIN)
            .arg("dev")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dev"),
    );
    let mut out = String::new();
    let mut suggestion = None;
    for line in BufReader::new(dev.0.stdout.take().unwrap()).lines().map_while(Result::ok) {
        out.push_str(&line);
        out.push('\n');
        if let Some(rest) = line.strip_prefix("try:") {
            suggestion = Some(rest.trim().to_string());
        }
        if line.starts_with("serving until") {
            break;
        }
    }
    let suggestion = suggestion.unwrap_or_else(|| panic!("no suggestion:\n{out}"));
    let words: Vec<&str> = suggestion.split_whitespace().collect();
    assert_eq!(words[0], "concoord", "{suggestion}");
    let call = Command::new(BIN).args(&words[1..]).output().expect("run the suggestion");
    drop(dev);
    assert!(
        call.status.success(),
        "the suggested `{suggestion}` failed: {}",
        String::from_utf8_lossy(&call.stderr)
    );
    out
}

#[test]
fn dev_suggests_a_call_the_objects_type_has() {
    let _serial = serial();
    for object in ["Lock", "Queue"] {
        let out = dev_suggestion_works(&["-p", "0", "-o", object]);
        let suggestion = out.lines().find(|l| l.starts_with("try:")).unwrap();
        assert!(!suggestion.contains("increment"), "{out}");
    }
    dev_suggestion_works(&["-p", "0"]);
}

#[test]
fn replica_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let _serial = serial();
    let scratch = Scratch::new("colour");
    let args: Vec<String> =
        ["-a", "127.0.0.1", "-p", "0", "-o", "Counter"].iter().map(|s| s.to_string()).collect();
    let log = scratch.0.join("replica.log");
    let mut replica = spawn_replica(&args, &log);
    replica.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a log file: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_names_the_token_option() {
    let _serial = serial();
    let setup = Setup { token: Some("right".into()), ..Setup::default() };
    let cluster = Cluster::start(1, setup).await;
    let (ok, _, err) = concoord(&["call", "-b", &cluster.boot(), "--token", "wrong", "getvalue"]);
    assert!(!ok);
    assert!(err.contains("bad token") && err.contains("--token"), "{err}");
    assert!(!err.contains("(-t)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_arguments_are_json_or_plain_words_and_never_change_silently() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let boot = cluster.boot();
    let call = |args: &[&str]| {
        let mut all = vec!["call", "-b", boot.as_str()];
        all.extend(args);
        concoord(&all)
    };
    // Negative numbers need no `--`; a plain word is a string.
    let (ok, out, err) = call(&["--object", "m", "--create", "Map", "put", "k", "-5"]);
    assert!(ok, "{out}{err}");
    assert_eq!(call(&["--object", "m", "get", "k"]).1.trim(), "-5");
    let (ok, _, err) = call(&["--object", "m", "put", "w", "alice"]);
    assert!(ok, "{err}");
    assert_eq!(call(&["--object", "m", "get", "w"]).1.trim(), "\"alice\"");
    // Invalid JSON is an error, and nothing was created for the failed call.
    let (ok, _, err) = call(&["--object", "m2", "--create", "Map", "put", "k", "{bad"]);
    assert!(!ok);
    assert!(err.contains("argument 2") && err.contains("not valid JSON"), "{err}");
    let (ok, out, _) = call(&["--object", "m2", "get", "k"]);
    assert!(!ok, "the failed call created m2: {out}");
    // Integers beyond i64 and non-finite numbers are refused, not rounded or stringified.
    let (ok, _, err) = call(&["--object", "m", "put", "big", "9223372036854775808"]);
    assert!(!ok && err.contains("beyond the 64-bit integer range"), "{err}");
    for number in ["NaN", "Infinity", "1e400"] {
        let (ok, _, err) = call(&["--object", "m", "put", "x", number]);
        assert!(!ok && err.contains("not a finite number"), "{number}: {err}");
    }
    let (ok, out, _) = call(&["--object", "m", "get", "x"]);
    assert!(ok && out.trim() == "null", "a refused argument was stored: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_takes_constructor_arguments() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let boot = cluster.boot();
    let call = |args: &[&str]| {
        let mut all = vec!["call", "-b", boot.as_str()];
        all.extend(args);
        concoord(&all)
    };
    let (ok, out, err) = call(&["--object", "s", "--create", "Semaphore", "--init", "3", "value"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "3");
    let (ok, out, err) = call(&["--object", "b", "--create", "Barrier", "--init", "4", "parties"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "4");
    // A bounded Queue: maxsize 1 takes one item, then is full.
    let (ok, _, err) =
        call(&["--object", "bq", "--create", "Queue", "--init", "1", "put_nowait", "a"]);
    assert!(ok, "{err}");
    let (ok, _, err) = call(&["--object", "bq", "put_nowait", "b"]);
    assert!(!ok && err.contains("Full"), "a bounded queue of 1 took a second item: {err}");
    // The constructor's own checks apply, and a refused constructor creates nothing.
    let (ok, _, err) = call(&["--object", "bad", "--create", "Semaphore", "--init", "-1", "value"]);
    assert!(!ok && err.contains("must be >= 0"), "{err}");
    let (ok, out, _) = call(&["--object", "bad", "value"]);
    assert!(!ok, "a refused constructor left an instance: {out}");
    // A call that cannot work on a built-in type creates nothing (N-3.9): an
    // unknown method, too many arguments. Both created the object before.
    let (ok, _, err) = call(&["--object", "q", "--create", "Queue", "--init", "2", "pusj", "1"]);
    assert!(!ok && err.contains("AttributeError") && err.contains("nothing was created"), "{err}");
    assert!(err.contains("put"), "the error lists the methods: {err}");
    let (ok, _, err) = call(&["--object", "q", "--create", "Queue", "qsize", "1", "2"]);
    assert!(!ok && err.contains("TypeError") && err.contains("nothing was created"), "{err}");
    let (ok, out, _) = call(&["--object", "q", "qsize"]);
    assert!(!ok, "a call refused before reaching the cluster created q: {out}");
    // The method's own refusal comes after the creation, which stays, and says so.
    let (ok, _, err) = call(&["--object", "l", "--create", "Lock", "release"]);
    assert!(!ok && err.contains("l was created by --create Lock and stays"), "{err}");
    let (ok, out, _) = call(&["--object", "l", "locked"]);
    assert!(ok && out.trim() == "false", "{out}");
    // --init without --create is a usage error.
    let (ok, _, err) = call(&["--init", "3", "value"]);
    assert!(!ok && err.contains("--create"), "{err}");
}

/// `concoord call` with `args`: its exit status and error output.
fn call_status(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN).arg("call").args(args).output().expect("run concoord call");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_exit_codes_tell_the_methods_error_from_usage_and_an_unusable_cluster() {
    let _serial = serial();
    let setup = Setup { token: Some("right".into()), ..Setup::default() };
    let cluster = Cluster::start(1, setup).await;
    let boot = cluster.boot();
    let b = boot.as_str();
    // The method's own error: a refused release.
    let (code, err) =
        call_status(&["-b", b, "--token", "right", "--object", "l", "--create", "Lock", "release"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("RuntimeError: cannot release un-acquired lock"), "{err}");
    // Usage errors: an argument, an address, an option.
    let (code, err) = call_status(&["-b", b, "--token", "right", "getvalue", "[1,"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = call_status(&["-b", "nohost", "getvalue"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = call_status(&["-b", b, "--no-such-option", "getvalue"]);
    assert_eq!(code, Some(2), "{err}");
    // The cluster cannot be used: a refused token, no replica answering.
    let (code, err) = call_status(&["-b", b, "--token", "wrong", "getvalue"]);
    assert_eq!(code, Some(5), "{err}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, err) = call_status(&["-b", &dead.to_string(), "getvalue"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("unavailable"), "{err}");
    // And --help says so.
    let out = Command::new(BIN).args(["call", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit status") && help.contains("5 the cluster could not be used"),
        "{help}"
    );
}

/// Starts `concoord shell -b boot` with `script` on its standard input (then closed).
fn start_shell(boot: &str, script: &str) -> std::process::Child {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["shell", "-b", boot])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start concoord shell");
    child.stdin.take().unwrap().write_all(script.as_bytes()).expect("write the script");
    child
}

/// Runs a shell script to its end: success, the printed results, the errors.
fn shell(boot: &str, script: &str) -> (bool, Vec<String>, String) {
    let out = start_shell(boot, script).wait_with_output().expect("shell output");
    let lines = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    (out.status.success(), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_holds_one_session_across_lines() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let boot = cluster.boot();
    // A lock acquired on one line is still held on the next, and released by this session.
    let (ok, out, err) =
        shell(&boot, "use l\ncreate Lock\nacquire\nlocked\nrelease\nlocked\n# done\n");
    assert!(ok, "{err}");
    assert_eq!(out, ["null", "true", "true", "null", "false"], "{err}");
    // RLock re-entry: the same session acquires twice and must release twice.
    let script = "use r\ncreate RLock\nacquire\nacquire\nrelease\nlocked\nrelease\nlocked\n";
    let (ok, out, err) = shell(&boot, script);
    assert!(ok, "{err}");
    assert_eq!(out, ["null", "true", "true", "null", "true", "null", "false"], "{err}");

    // Condition: one shell waits, another notifies it.
    let mut waiter =
        KillOnDrop(start_shell(&boot, "use c\ncreate Condition\nacquire\nwait\nrelease\n"));
    let mut lines = BufReader::new(waiter.0.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "null");
    assert_eq!(lines.next().unwrap().unwrap(), "true");
    // The notifier's acquire waits until the waiter's wait releases the lock.
    let (ok, out, err) = shell(&boot, "use c\nacquire\nnotify\nrelease\n");
    assert!(ok, "{err}");
    assert_eq!(out, ["true", "null", "null"], "{err}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let _ = tx.send(rest);
    });
    let rest = rx.recv_timeout(Duration::from_secs(30)).expect("the waiter was never woken");
    assert_eq!(rest, ["true", "null"]);
    assert!(waiter.0.wait().unwrap().success());

    // A failing line is reported with the line, later lines still run, and the exit
    // status says something failed.
    let (ok, out, err) = shell(&boot, "use l\nrelease\nlocked\n");
    assert!(!ok);
    assert!(err.contains("release: RuntimeError: cannot release un-acquired lock"), "{err}");
    assert_eq!(out, ["false"]);
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
