//! Faults operators cause every day, on real processes: a replica restarted on an
//! old member's address without its data and without -b, a removed founder coming
//! back, and a durable replica restarted while a healthy leader runs.

use crate::harness::*;
use concoord_client::{status_of, Client, ClientOptions};
use concoord_object::Value;
use std::time::Duration;

async fn counter_value(client: &Client) -> i64 {
    match client.call("default", "getvalue", vec![]).await.unwrap() {
        Value::Int(v) => v,
        other => panic!("getvalue returned {other:?}"),
    }
}

/// The leader's (index, ballot), from the replicas that say they lead.
async fn leaders(cluster: &Cluster, among: &[usize]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for i in among {
        if let Some(s) = cluster.status(*i).await {
            if s.role == "leader" {
                out.push((*i, s.ballot));
            }
        }
    }
    out
}

/// Samples the leadership of `among` for `span`; panics if it ever changes.
async fn expect_stable_leader(cluster: &Cluster, among: &[usize], span: Duration, what: &str) {
    let first = leaders(cluster, among).await;
    assert_eq!(first.len(), 1, "{what}: expected one leader, got {first:?}\n{}", cluster.logs());
    let mut waited = Duration::ZERO;
    while waited < span {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
        let now = leaders(cluster, among).await;
        assert_eq!(
            now,
            first,
            "{what}: the leadership changed after {waited:?}\n{}",
            cluster.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_founded_on_a_dead_members_address_never_disturbs_the_cluster() {
    let _serial = serial();
    let setup = Setup { extra: vec!["--remove-dead-after".into(), "2".into()], ..Setup::default() };
    let mut cluster = Cluster::start(4, setup).await;
    let client = cluster.client().await;
    for _ in 0..10 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    let leader = cluster.leader().await;
    let victim = (1..4).find(|i| *i != leader).unwrap();
    let old_id = cluster.status(victim).await.unwrap().replica;
    let real_cluster = cluster.status(leader).await.unwrap().cluster;
    assert!(real_cluster.is_some(), "replicas report their cluster");

    // A supervisor restarts it with the same command line, minus -b: it founds a
    // cluster of its own on the old member's address.
    cluster.kill(victim);
    let mut args = cluster.stopped_args(victim);
    if let Some(i) = args.iter().position(|a| a == "-b") {
        args.drain(i..i + 2);
    }
    cluster.restart_with(victim, args);
    let stranger = cluster.status(victim).await.unwrap();
    assert_ne!(stranger.cluster, real_cluster, "a new founder draws a new cluster identity");

    // The dead identity is removed; the stranger never becomes a member.
    cluster
        .wait_leader_status("the dead identity removed", |s| {
            s.members.iter().all(|m| m.replica != old_id)
                && s.members.iter().filter(|m| m.role == "voter").count() == 3
        })
        .await;
    let real: Vec<usize> = (0..4).filter(|i| *i != victim).collect();
    expect_stable_leader(&cluster, &real, Duration::from_secs(4), "with a stranger about").await;
    for i in &real {
        let s = cluster.status(*i).await.unwrap();
        assert!(
            s.members.iter().all(|m| m.replica != stranger.replica),
            "replica {i} counts the stranger as a member: {s:?}"
        );
        assert_eq!(s.cluster, real_cluster);
    }
    let s = cluster.status(victim).await.unwrap();
    assert_eq!(s.members.len(), 1, "the stranger's cluster is itself alone: {s:?}");

    // The real cluster still works, and lost nothing.
    let boot: Vec<String> = real.iter().map(|i| cluster.addrs[*i].clone()).collect();
    let client = Client::connect(&boot.join(","), cluster.options()).await.unwrap();
    client.call("default", "increment", vec![]).await.unwrap();
    assert_eq!(counter_value(&client).await, 11);
    let log = std::fs::read_to_string(&cluster.replicas[victim].as_ref().unwrap().log).unwrap();
    // The old cluster's messages name the dead identity: the stranger ignores them,
    // and says so.
    assert!(log.contains("meant for replica"), "the stranger says why it ignores them\n{log}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_founder_comes_back_through_the_members_it_knew() {
    let _serial = serial();
    let extra = vec!["--remove-dead-after".into(), "2".into()];
    let mut cluster = Cluster::start(4, Setup { durable: true, extra, ..Setup::default() }).await;
    let client = cluster.client().await;
    client.call("default", "increment", vec![]).await.unwrap();
    let founder_id = cluster.status(0).await.unwrap().replica;

    // The founder (started without -b) is down long enough to be removed, then a
    // supervisor restarts it with its own command line, on its data.
    cluster.kill(0);
    cluster
        .wait_leader_status("the founder removed", |s| {
            s.members.iter().all(|m| m.replica != founder_id)
        })
        .await;
    cluster.restart(0);

    // It finds on its disk that it was removed, and rejoins under a fresh identity
    // through the members it knew (it has no -b list): four voters again.
    cluster.wait_voters(4).await;
    let back = cluster.status(0).await.unwrap();
    assert_ne!(back.replica, founder_id, "it came back under a fresh identity");
    cluster
        .wait_applied(0, cluster.status(cluster.leader().await).await.unwrap().commit_slot.0)
        .await;
    assert_eq!(counter_value(&client).await, 1);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_replica_restarted_does_not_depose_a_healthy_leader() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, Setup { durable: true, ..Setup::default() }).await;
    let client = cluster.client().await;
    for _ in 0..5 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    let leader = cluster.leader().await;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    for round in 0..5 {
        cluster.kill(follower);
        // Long enough for the leader's link to back off to its slowest retry: the
        // restarted replica then hears nothing for a while.
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        cluster.restart(follower);
        let all: Vec<usize> = (0..3).collect();
        expect_stable_leader(&cluster, &all, Duration::from_secs(2), &format!("restart {round}"))
            .await;
    }
    assert_eq!(counter_value(&client).await, 5);
    client.close().await;
}

/// Waits until `log` contains `what` (up to 15 s); the log's text.
async fn wait_log(log: &std::path::Path, what: &str) -> String {
    for _ in 0..300 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} never said {what:?}:\n{}",
        log.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_is_not_admitted_says_why_on_its_own_side() {
    let _serial = serial();
    let setup = Setup { token: Some("secret".into()), ..Setup::default() };
    let cluster = Cluster::start(1, setup).await;
    let member = cluster.addrs[0].clone();
    let scratch = Scratch::new("joiners");
    let base = |boot: &str, object: &str, token: &str| -> Vec<String> {
        ["-a", "127.0.0.1", "-p", "0", "-o", object, "-b", boot, "--token", token]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    // A port nothing listens on: bind one, note it, close it.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let cases = [
        ("wrong-token", base(&member, "Counter", "guess"), "wrong token"),
        ("wrong-object", base(&member, "Lock", "secret"), "same -o"),
        ("unreachable", base(&dead, "Counter", "secret"), "cannot connect"),
    ];
    let mut joiners = Vec::new();
    for (name, args, reason) in cases {
        let log = scratch.0.join(format!("{name}.log"));
        let joiner = spawn_replica(&args, &log);
        joiners.push((joiner, log, reason, args));
    }
    for (joiner, log, reason, args) in &joiners {
        let text = wait_log(log, "not admitted to the cluster yet").await;
        assert!(text.contains(reason), "{args:?}: the joiner does not say {reason:?}:\n{text}");
        let token = args[args.len() - 1].clone();
        let status = concoord_client::status_of(&joiner.addr, Some(&token), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(status.role, "joining");
        let problem = status.join_problem.unwrap_or_default();
        assert!(problem.contains(reason), "status does not say {reason:?}: {problem}");
    }
    // The member said it once per reason, not once per retry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let member_log =
        std::fs::read_to_string(&cluster.replicas[0].as_ref().unwrap().log).unwrap_or_default();
    let refusals = member_log.lines().filter(|l| l.contains("refusing peer")).count();
    assert!(refusals <= 2, "the member repeats its refusals ({refusals} lines):\n{member_log}");
    for (mut joiner, ..) in joiners {
        joiner.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_replica_whose_only_boot_address_is_gone_rejoins_through_the_members_it_knew() {
    let _serial = serial();
    let setup = Setup { extra: vec!["--remove-dead-after".into(), "2".into()], ..Setup::default() };
    let mut cluster = Cluster::start(5, setup).await;
    // Replica 1 joined through the founder alone.
    let boot = cluster.replicas[1].as_ref().unwrap().args.clone();
    let i = boot.iter().position(|a| a == "-b").unwrap();
    assert_eq!(boot[i + 1], cluster.addrs[0], "replica 1's only boot address is the founder");
    let client = cluster.client().await;
    client.call("default", "increment", vec![]).await.unwrap();
    let founder_id = cluster.status(0).await.unwrap().replica;
    let second_id = cluster.status(1).await.unwrap().replica;

    // The founder dies for good and is removed; replica 1 is paused until it is
    // removed too.
    cluster.kill(0);
    cluster
        .wait_leader_status("the founder removed", |s| {
            s.members.iter().all(|m| m.replica != founder_id)
        })
        .await;
    cluster.signal(1, "STOP");
    cluster
        .wait_leader_status("replica 1 removed", |s| {
            s.members.iter().all(|m| m.replica != second_id)
        })
        .await;
    cluster.signal(1, "CONT");

    // It learns it was removed and rejoins under a fresh identity; its -b names only
    // the dead founder, so it must ask the members it knew.
    cluster
        .wait_leader_status("replica 1 back as a voter", |s| {
            s.members.iter().filter(|m| m.role == "voter").count() == 4
                && s.members.iter().any(|m| m.addr == cluster.addrs[1] && m.replica != second_id)
        })
        .await;
    let value = client.call("default", "getvalue", vec![]).await.unwrap();
    assert_eq!(value, Value::Int(1));
    client.close().await;
}

/// Kills a replica started outside a `Cluster` when the test ends, failed or not.
struct Lone(Replica);

impl Drop for Lone {
    fn drop(&mut self) {
        self.0.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_on_a_dead_members_address_joins_the_cluster_it_was_sent_to() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, Setup::default()).await;
    let client = cluster.client().await;
    client.call("default", "increment", vec![]).await.unwrap();
    let leader = cluster.leader().await;
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let old_cluster = cluster.status(leader).await.unwrap().cluster;

    // The operator moves the machine to another cluster: a new in-memory replica on
    // the dead member's address, with -b naming the other cluster's founder (which
    // is not up yet). The old cluster still counts the dead identity and keeps
    // sending it heartbeats and entries, to that address.
    let other_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let other_addr = format!("127.0.0.1:{other_port}");
    cluster.kill(victim);
    let mut args = cluster.stopped_args(victim);
    match args.iter().position(|a| a == "-b") {
        Some(i) => args[i + 1] = other_addr.clone(),
        None => args.extend(["-b".to_string(), other_addr.clone()]),
    }
    cluster.restart_with(victim, args);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = cluster.status(victim).await.unwrap();
    assert_eq!(waiting.role, "joining", "{waiting:?}");
    assert_eq!(
        waiting.cluster, None,
        "messages meant for the dead identity must not make the joiner adopt its cluster"
    );

    // The other cluster's founder comes up: the joiner joins it, not the old one.
    let log = cluster.scratch.0.join("other-founder.log");
    let founder_args: Vec<String> =
        ["-a", "127.0.0.1", "-p", &other_port.to_string(), "-o", "Counter"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let founder = Lone(spawn_replica(&founder_args, &log));
    let other_cluster =
        status_of(&founder.0.addr, None, Duration::from_secs(2)).await.unwrap().cluster;
    assert!(other_cluster.is_some() && other_cluster != old_cluster);
    let mut joined = None;
    for _ in 0..200 {
        let s = cluster.status(victim).await.unwrap();
        if s.role == "follower" && s.members.len() == 2 {
            joined = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let joined =
        joined.unwrap_or_else(|| panic!("never joined the other cluster\n{}", cluster.logs()));
    assert_eq!(joined.cluster, other_cluster);

    // The old cluster is undisturbed and lost nothing.
    let real: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    expect_stable_leader(&cluster, &real, Duration::from_secs(2), "after the move").await;
    let boot: Vec<String> = real.iter().map(|i| cluster.addrs[*i].clone()).collect();
    let old = Client::connect(&boot.join(","), cluster.options()).await.unwrap();
    old.call("default", "increment", vec![]).await.unwrap();
    assert_eq!(counter_value(&old).await, 2);
    old.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_forwarded_to_a_leader_that_stops_is_redirected_to_the_next_one() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    // A client of the follower alone, waiting as long as it takes: only the cluster
    // can end the call (no attempt timeout to fall back on).
    let options = ClientOptions {
        attempt_timeout: Duration::from_secs(600),
        give_up_after: Duration::from_secs(600),
        ..cluster.options()
    };
    let client = Client::connect(&cluster.addrs[follower], options).await.unwrap();
    client.call("default", "increment", vec![]).await.unwrap();

    // The leader stops: the follower still forwards the next call to it (it heard
    // from it within an election timeout), and the call is lost there.
    cluster.signal(leader, "STOP");
    let call = client.call("default", "increment", vec![]);
    let result = tokio::time::timeout(Duration::from_secs(30), call).await;
    cluster.signal(leader, "CONT");
    let result = result.unwrap_or_else(|_| {
        panic!("the forwarded call was never answered or redirected\n{}", cluster.logs())
    });
    assert_eq!(result, Ok(Value::Nil));
    assert_eq!(counter_value(&client).await, 2, "ran exactly once");
    client.close().await;
}
