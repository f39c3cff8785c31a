//! Crashes, restarts and joins with real processes: nothing acknowledged is lost.

use crate::harness::{serial, spawn_replica, Cluster, Setup};
use concoord_client::Client;
use concoord_object::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Clients that increment the default counter until told to stop, counting the
/// increments the cluster acknowledged. Each call is retried by the client until it
/// succeeds, so every increment started is acknowledged exactly once.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Load {
    async fn start(cluster: &Cluster, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let client = cluster.client().await;
            let (stop, acked) = (stop.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    client
                        .call("default", "increment", vec![])
                        .await
                        .map_err(|e| format!("increment failed: {e}"))?;
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                client.close().await;
                Ok(())
            }));
        }
        Load { stop, acked, tasks }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    async fn wait_for_progress(&self, more: u64) {
        let target = self.acked() + more;
        for _ in 0..600 {
            if self.acked() >= target {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("load made no progress: {} acknowledged, wanted {target}", self.acked());
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task").expect("every call eventually succeeds");
        }
        self.acked.load(Ordering::Relaxed)
    }
}

async fn counter_value(client: &Client) -> i64 {
    match client.call("default", "getvalue", vec![]).await.expect("getvalue") {
        Value::Int(v) => v,
        other => panic!("getvalue returned {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_under_load_loses_no_acknowledged_increment() {
    let _serial = serial();
    let setup = Setup { durable: true, ..Setup::default() };
    let mut cluster = Cluster::start(3, setup).await;
    let load = Load::start(&cluster, 8).await;
    load.wait_for_progress(200).await;
    let leader = cluster.leader().await;
    cluster.kill(leader);
    // The survivors elect a leader and the clients fail over to it.
    load.wait_for_progress(200).await;
    let acked = load.finish().await;
    let client = cluster.client().await;
    assert_eq!(
        counter_value(&client).await,
        acked as i64,
        "every acknowledged increment counts once"
    );
    // The killed leader comes back from its disk and catches up.
    cluster.restart(leader);
    let commit = cluster.status(cluster.leader().await).await.unwrap().commit_slot.0;
    cluster.wait_applied(leader, commit).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_replica_restarted_recovers_and_is_needed_for_quorum() {
    let _serial = serial();
    // Frequent snapshots: the restarted replica recovers from a snapshot plus the log,
    // and may be sent a snapshot to catch up.
    let extra = vec!["--snapshot-every".into(), "16".into()];
    let setup = Setup { durable: true, extra, ..Setup::default() };
    let mut cluster = Cluster::start(3, setup).await;
    let client = cluster.client().await;
    for _ in 0..50 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    let leader = cluster.leader().await;
    let follower = cluster.live().into_iter().find(|i| *i != leader).unwrap();
    cluster.kill(follower);
    for _ in 0..50 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    cluster.restart(follower);
    let status = cluster.status(follower).await.expect("restarted replica answers");
    assert!(status.durable);
    let commit = cluster.status(leader).await.unwrap().commit_slot.0;
    cluster.wait_applied(follower, commit).await;
    // Now the third replica goes away: the restarted one must carry the quorum,
    // with everything it promised and accepted before its crash.
    let third = cluster.live().into_iter().find(|i| *i != leader && *i != follower).unwrap();
    cluster.kill(third);
    for _ in 0..20 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    assert_eq!(counter_value(&client).await, 120);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_replica_restarted_rejoins_as_a_new_member() {
    let _serial = serial();
    let setup = Setup { extra: vec!["--remove-dead-after".into(), "2".into()], ..Setup::default() };
    let mut cluster = Cluster::start(3, setup).await;
    let client = cluster.client().await;
    for _ in 0..30 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    let leader = cluster.leader().await;
    let follower = cluster.live().into_iter().find(|i| *i != leader).unwrap();
    let old_id = cluster.status(follower).await.unwrap().replica;
    cluster.kill(follower);
    // The same address comes back without its state: it must join under a fresh
    // identity (it forgot its promises), through a bootstrap peer.
    let mut args = cluster.stopped_args(follower);
    if let Some(i) = args.iter().position(|a| a == "-b") {
        args.drain(i..i + 2);
    }
    args.push("-b".into());
    args.push(cluster.boot());
    cluster.restart_with(follower, args);
    let new_id = cluster.status(follower).await.unwrap().replica;
    assert_ne!(old_id, new_id, "an in-memory restart must not reuse its acceptor identity");
    // It becomes a voter, and the dead identity is removed: three voters again.
    cluster
        .wait_leader_status("the new identity voting and the old one removed", |s| {
            s.members.iter().any(|m| m.replica == new_id && m.role == "voter")
                && s.members.iter().all(|m| m.replica != old_id)
        })
        .await;
    cluster.wait_voters(3).await;
    let status = cluster.status(cluster.leader().await).await.unwrap();
    cluster.wait_applied(follower, status.commit_slot.0).await;
    assert_eq!(counter_value(&client).await, 30);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joins_under_load() {
    let _serial = serial();
    // Snapshots every 16 slots: by the time the joiner arrives the log's start is
    // truncated, so it must be sent a snapshot of the objects and sessions.
    let extra = vec!["--snapshot-every".into(), "16".into()];
    let mut cluster = Cluster::start(3, Setup { extra, ..Setup::default() }).await;
    let load = Load::start(&cluster, 4).await;
    // The leader keeps 256 slots behind its newest snapshot: go well past that.
    loop {
        load.wait_for_progress(200).await;
        let leader = cluster.status(cluster.leader().await).await.unwrap();
        if leader.snapshot_slot.0 > 400 {
            break;
        }
    }
    let joiner = cluster.add_replica();
    cluster.wait_voters(4).await;
    let log = std::fs::read_to_string(cluster.scratch.0.join(format!("replica-{joiner}.log")));
    assert!(log.unwrap().contains("installed a snapshot"), "the joiner must start from a snapshot");

    load.wait_for_progress(100).await;
    let acked = load.finish().await;
    let client = cluster.client().await;
    assert_eq!(counter_value(&client).await, acked as i64);
    let commit = cluster.status(cluster.leader().await).await.unwrap().commit_slot.0;
    cluster.wait_applied(joiner, commit).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_replica_cleanly() {
    let _serial = serial();
    let mut cluster = Cluster::start(1, Setup { durable: true, ..Setup::default() }).await;
    let client = cluster.client().await;
    client.call("default", "increment", vec![]).await.unwrap();
    client.close().await;
    assert_eq!(cluster.terminate(0), Some(0));
    cluster.restart(0);
    let client = cluster.client().await;
    assert_eq!(counter_value(&client).await, 1, "a durable single replica keeps its state");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_replica_with_a_clear_error_and_loses_nothing() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup { durable: true, ..Setup::default() }).await;
    let client = cluster.client().await;
    for _ in 0..20 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    // A fourth replica whose disk is full: every write to its log fails with ENOSPC
    // (the kernel's /dev/full). It must stop rather than acknowledge anything.
    let dir = cluster.scratch.0.join("full-disk");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join("log")).unwrap();
    let args: Vec<String> = ["-a", "127.0.0.1", "-p", "0", "-o", "Counter", "-b", &cluster.boot()]
        .iter()
        .map(|s| s.to_string())
        .chain(["--data-dir".to_string(), dir.display().to_string()])
        .collect();
    let log = cluster.scratch.0.join("full-disk.log");
    let mut replica = spawn_replica(&args, &log);
    let code = replica.wait_exit(Duration::from_secs(30)).await;
    assert!(matches!(code, Some(c) if c != 0), "the replica must stop, exit code {code:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("disk") && text.contains("full"), "unclear error: {text}");
    // The cluster lost nothing and keeps serving.
    client.call("default", "increment", vec![]).await.unwrap();
    assert_eq!(counter_value(&client).await, 21);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_rejoins_when_resumed() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup { durable: true, ..Setup::default() }).await;
    let load = Load::start(&cluster, 4).await;
    load.wait_for_progress(100).await;
    let leader = cluster.leader().await;
    // SIGSTOP: the leader's process is frozen mid-flight, sockets open, then thawed
    // after the others have elected a new leader; it must step down and catch up.
    cluster.signal(leader, "STOP");
    load.wait_for_progress(200).await;
    cluster.signal(leader, "CONT");
    load.wait_for_progress(100).await;
    let acked = load.finish().await;
    let client = cluster.client().await;
    assert_eq!(counter_value(&client).await, acked as i64);
    let now_leader = cluster.leader().await;
    let commit = cluster.status(now_leader).await.unwrap().commit_slot.0;
    cluster.wait_applied(leader, commit).await;
    let leaders = {
        let mut n = 0;
        for i in cluster.live() {
            if cluster.status(i).await.is_some_and(|s| s.role == "leader") {
                n += 1;
            }
        }
        n
    };
    assert_eq!(leaders, 1, "one leader after the old one resumed");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_killed_and_restarted_keeps_every_acknowledged_increment() {
    let _serial = serial();
    let extra = vec!["--snapshot-every".into(), "64".into()];
    let mut cluster = Cluster::start(3, Setup { durable: true, extra, ..Setup::default() }).await;
    let load = Load::start(&cluster, 8).await;
    load.wait_for_progress(300).await;
    // Every replica dies at once, mid-load, with no chance to flush anything.
    for i in cluster.live() {
        cluster.kill(i);
    }
    let acked_before = load.acked();
    for i in 0..3 {
        cluster.restart(i);
    }
    // The clients were retrying all along; they finish against the restarted cluster.
    load.wait_for_progress(100).await;
    let acked = load.finish().await;
    assert!(acked > acked_before);
    let client = cluster.client().await;
    assert_eq!(counter_value(&client).await, acked as i64);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_founder_restarted_without_boot_warns_that_it_is_a_stranger() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, Setup::default()).await;
    // The founder (no -b) comes back on its address without its state: it founds a
    // new cluster of its own, and says so when its old peers' traffic reaches it.
    cluster.kill(0);
    cluster.restart(0);
    let log = cluster.replicas[0].as_ref().unwrap().log.clone();
    for _ in 0..200 {
        if std::fs::read_to_string(&log).unwrap_or_default().contains("must be started with -b") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no warning in the restarted founder's log\n{}", cluster.logs());
}
