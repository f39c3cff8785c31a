//! The Prometheus endpoint (`--metrics-addr`): scraped while a durable cluster
//! serves calls, parsed with a Prometheus text parser, and hardened against
//! requests that are not scrapes.

use crate::harness::{serial, Cluster, Setup};
use concoord_object::Value;
use prometheus_parse::{Sample, Scrape};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The metrics address replica `index` logged at start.
async fn metrics_addr(cluster: &Cluster, index: usize) -> String {
    let log = &cluster.replicas[index].as_ref().unwrap().log;
    for _ in 0..200 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("metrics at http://").nth(1) {
            return rest.split('/').next().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("replica {index} never said where its metrics are\n{}", cluster.logs());
}

/// Sends `request` as is and returns the whole response.
fn http(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn scrape(addr: &str) -> Vec<Sample> {
    let response = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    Scrape::parse(lines).expect("a valid Prometheus exposition").samples
}

/// The value of the sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match &sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        prometheus_parse::Value::Histogram(buckets) => {
            buckets.last().map(|b| b.count).unwrap_or_default()
        }
        other => panic!("{name}: unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_parsed_while_the_cluster_serves() {
    let _serial = serial();
    let extra = vec!["--metrics-addr".to_string(), "127.0.0.1:0".to_string()];
    let cluster = Cluster::start(3, Setup { durable: true, extra, ..Setup::default() }).await;
    let client = cluster.client().await;
    for _ in 0..20 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    assert_eq!(client.call("default", "getvalue", vec![]).await, Ok(Value::Int(20)));
    let leader = cluster.leader().await;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let status = cluster.status(leader).await.unwrap();

    let samples = scrape(&metrics_addr(&cluster, leader).await);
    assert_eq!(value(&samples, "concoord_role", &[("role", "leader")]), 1.0);
    assert_eq!(value(&samples, "concoord_role", &[("role", "follower")]), 0.0);
    assert!(value(&samples, "concoord_commit_slot", &[]) >= status.commit_slot.0 as f64);
    assert!(value(&samples, "concoord_applied_slot", &[]) >= 20.0);
    assert!(value(&samples, "concoord_ballot_round", &[]) >= 1.0);
    assert_eq!(value(&samples, "concoord_members", &[]), 3.0);
    assert!(value(&samples, "concoord_proposed_commands_total", &[]) >= 20.0);
    assert!(value(&samples, "concoord_applied_commands_total", &[]) >= 20.0);
    assert!(value(&samples, "concoord_commands_per_slot_count", &[]) >= 1.0);
    assert!(value(&samples, "concoord_fsync_seconds_count", &[]) >= 20.0, "durable: synced");
    assert!(value(&samples, "concoord_log_bytes", &[]) > 0.0);
    assert!(value(&samples, "concoord_request_seconds_count", &[("kind", "command")]) >= 20.0);
    assert!(value(&samples, "concoord_request_seconds_count", &[("kind", "query")]) >= 1.0);
    assert!(value(&samples, "concoord_request_seconds_count", &[("kind", "session")]) >= 1.0);
    assert!(value(&samples, "concoord_sessions", &[]) >= 1.0);
    assert!(value(&samples, "concoord_client_connections", &[]) >= 1.0);
    assert!(value(&samples, "concoord_leaderships_total", &[]) >= 1.0);

    let samples = scrape(&metrics_addr(&cluster, follower).await);
    assert_eq!(value(&samples, "concoord_role", &[("role", "follower")]), 1.0);
    assert!(value(&samples, "concoord_applied_commands_total", &[]) >= 20.0);

    // Anything but a scrape gets an HTTP error, and the replica keeps serving.
    let addr = metrics_addr(&cluster, leader).await;
    assert!(http(&addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(&addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(http(&addr, b"\x00\xff garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert_eq!(http(&addr, &vec![b'A'; 64 * 1024]), "", "an oversized head is dropped");
    let head = http(&addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"), "{head}");
    client.call("default", "increment", vec![]).await.unwrap();
    assert!(!scrape(&addr).is_empty());
    client.close().await;
}
