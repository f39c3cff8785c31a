//! `call_timeout` and `concoord call --timeout` bound a call when no replica
//! answers: the outcome says whether the call may have taken effect. Elapsed times
//! are printed, not asserted.

use crate::harness::{serial, Cluster, Setup, BIN};
use concoord_client::{Client, ClientError, ClientOptions};
use std::process::{Command, Output};
use std::time::Duration;
use tokio::time::Instant;

async fn concoord_call(args: Vec<String>) -> (Output, Duration) {
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let out = Command::new(BIN).arg("call").args(&args).output().expect("run concoord call");
        (out, start.elapsed())
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concoord_call_with_a_timeout_gives_up_on_a_replica_that_never_answers() {
    // A listener that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mute = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let (out, elapsed) = concoord_call(strings(&["-b", &addr, "--timeout", "2", "getvalue"])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    println!("concoord call --timeout 2 against a mute listener: {elapsed:?}, {err}");
    assert_eq!(out.status.code(), Some(3), "timed out with no effect: {err}");
    assert!(err.contains("timed out") && err.contains("no effect"), "{err}");
    mute.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_stopped_cluster_end_within_their_timeout() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    let options = ClientOptions { call_timeout: Some(Duration::from_secs(2)), ..cluster.options() };
    let client = Client::connect(&cluster.boot(), options).await.expect("connects");
    client.call("default", "increment", vec![]).await.expect("the cluster works");
    for i in cluster.live() {
        cluster.signal(i, "STOP");
    }
    // The call reaches the stopped leader's socket: it may have taken effect.
    let start = Instant::now();
    let result = client.call("default", "increment", vec![]).await;
    println!("a call to a stopped cluster ended after {:?}: {result:?}", start.elapsed());
    assert_eq!(result, Err(ClientError::MaybeExecuted));
    // From the shell: no replica welcomes the client, so nothing was called.
    let (out, elapsed) =
        concoord_call(strings(&["-b", &cluster.boot(), "--timeout", "2", "increment"])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    println!("concoord call --timeout 2 against a stopped cluster: {elapsed:?}, {err}");
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("timed out") && err.contains("no effect"), "{err}");
    for i in cluster.live() {
        cluster.signal(i, "CONT");
    }
    drop(client);
}
