//! Sessions with real processes: a dead client's lock passes on after its lease.

use crate::harness::{serial, Cluster, Setup, BIN};
use concoord_client::ClientOptions;
use concoord_object::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_clients_lock_passes_to_the_next_waiter_after_its_lease() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    // Another process acquires the lock and holds its session open.
    let mut holder = Command::new(BIN)
        .args(["call", "-b", &cluster.boot(), "--object", "mutex", "--create", "Lock"])
        .args(["--lease", "2", "--hold", "acquire_token"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the holder");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let holder_token: u64 = line.trim().parse().expect("the holder prints its fencing token");

    // A waiter asks for the same lock: it parks.
    let options = ClientOptions { lease: Duration::from_secs(5), ..cluster.options() };
    let waiter = concoord_client::Client::connect(&cluster.boot(), options).await.unwrap();
    let wait = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.call("mutex", "acquire_token", vec![]).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!wait.is_finished(), "the lock is held: the waiter must be parked");

    // The holder dies without releasing. Its session expires after its 2 s lease
    // (measured by the leader), and the lock goes to the waiter.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the waiter gets the lock after the dead holder's lease")
        .unwrap()
        .expect("acquire_token succeeds");
    let Value::Int(token) = got else { panic!("acquire_token returned {got:?}") };
    assert!(token as u64 > holder_token, "fencing tokens increase: {token} after {holder_token}");
    waiter.call("mutex", "release", vec![]).await.unwrap();
    waiter.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_call_survives_the_leader_crash() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, Setup::default()).await;
    let holder = cluster.client().await;
    holder.create("mutex", "Lock", vec![]).await.unwrap();
    assert_eq!(holder.call("mutex", "acquire", vec![]).await.unwrap(), Value::Bool(true));
    let waiter = cluster.client().await;
    let wait = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.call("mutex", "acquire", vec![]).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!wait.is_finished());
    let leader = cluster.leader().await;
    cluster.kill(leader);
    // Both clients fail over; the release wakes the parked call on whichever replica
    // the waiter is connected to by then.
    holder.call("mutex", "release", vec![]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), wait).await.expect("woken").unwrap();
    assert_eq!(got.unwrap(), Value::Bool(true));
    holder.close().await;
    waiter.close().await;
}

/// Issue 8, item 7: a client given one address (as in the README) learns the
/// other members from it, so a parked acquire survives that replica's death.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_given_only_the_leaders_address_fails_over_when_the_leader_dies() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, Setup::default()).await;
    let leader = cluster.leader().await;
    let leader_addr = cluster.addrs[leader].clone();
    let holder = cluster.client().await;
    holder.create("mutex", "Lock", vec![]).await.unwrap();
    assert_eq!(holder.call("mutex", "acquire", vec![]).await.unwrap(), Value::Bool(true));
    // Without the other members it would give up after 10 s of refused connections.
    let options = ClientOptions { give_up_after: Duration::from_secs(10), ..cluster.options() };
    let waiter = concoord_client::Client::connect(&leader_addr, options).await.unwrap();
    let wait = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.call("mutex", "acquire", vec![]).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!wait.is_finished(), "the lock is held: the waiter must be parked");
    let killed = tokio::time::Instant::now();
    cluster.kill(leader);
    holder.call("mutex", "release", vec![]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the waiter is answered")
        .unwrap();
    println!("the parked acquire completed {:?} after the leader was killed", killed.elapsed());
    assert_eq!(got, Ok(Value::Bool(true)), "granted through the new leader");
    let status = waiter.status().await.unwrap();
    assert_ne!(status.addr, leader_addr, "the waiter is connected elsewhere now");
    holder.close().await;
    waiter.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_acquire_is_cancelled_and_never_granted_later() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    let holder = cluster.client().await;
    holder.create("mutex", "Lock", vec![]).await.unwrap();
    assert_eq!(holder.call("mutex", "acquire", vec![]).await.unwrap(), Value::Bool(true));
    // From the shell, with a timeout: the call gives up, and says it had no effect.
    let boot = cluster.boot();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["call", "-b", &boot, "--object", "mutex", "--timeout", "1", "acquire"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out") && err.contains("no effect"), "{err}");
    // The cancel went through the log: the release finds nobody waiting.
    let options =
        ClientOptions { call_timeout: Some(Duration::from_millis(300)), ..cluster.options() };
    let impatient = concoord_client::Client::connect(&cluster.boot(), options).await.unwrap();
    let err = impatient.call("mutex", "acquire", vec![]).await.unwrap_err();
    assert!(matches!(err, concoord_client::ClientError::Timeout), "{err:?}");
    holder.call("mutex", "release", vec![]).await.unwrap();
    assert_eq!(holder.call("mutex", "locked", vec![]).await.unwrap(), Value::Bool(false));
    // And the impatient client's session holds nothing: another session gets the lock.
    assert_eq!(holder.call("mutex", "acquire", vec![]).await.unwrap(), Value::Bool(true));
    impatient.close().await;
    holder.close().await;
}
