//! `call_timeout` bounds every call: connecting, failing over, redirects and the
//! cancel round included. A call that certainly had no effect ends with `Timeout`;
//! one that reached a replica and was neither answered nor taken back in time
//! ends with `MaybeExecuted`. Elapsed times are printed, not asserted.

use crate::fake::{Behaviour, Cluster};
use crate::{connect, options, within};
use concoord_client::{BlockingClient, Client, ClientError, ClientOptions, Value};
use concoord_object::machine::{Execution, Request};
use std::time::Duration;
use tokio::time::Instant;

fn bounded(call_timeout: Duration) -> ClientOptions {
    ClientOptions { call_timeout: Some(call_timeout), ..options() }
}

#[tokio::test]
async fn a_call_no_replica_answers_ends_in_time_as_maybe_executed() {
    let cluster = Cluster::start(2, None).await;
    within(10, async {
        let client =
            Client::connect(&cluster.addrs(), bounded(Duration::from_millis(800))).await.unwrap();
        cluster.set(0, Behaviour::Silent);
        cluster.set(1, Behaviour::Silent);
        let start = Instant::now();
        let result = client.call("default", "increment", vec![]).await;
        println!("a call no replica answers ended after {:?}: {result:?}", start.elapsed());
        assert_eq!(result, Err(ClientError::MaybeExecuted));
    })
    .await;
}

#[tokio::test]
async fn a_call_never_sent_ends_in_time_as_timeout() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let client =
            Client::connect(&cluster.addrs(), bounded(Duration::from_millis(800))).await.unwrap();
        cluster.kill(0);
        // A status request (bounded too) makes sure the client has seen its
        // connection close; from then on no replica accepts one.
        assert!(client.status().await.is_err());
        let start = Instant::now();
        let result = client.call("default", "increment", vec![]).await;
        println!("a call that found no replica ended after {:?}: {result:?}", start.elapsed());
        assert_eq!(result, Err(ClientError::Timeout));
    })
    .await;
}

#[tokio::test]
async fn connecting_to_a_replica_that_never_welcomes_ends_in_time() {
    // A listener that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mute = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    within(10, async {
        let start = Instant::now();
        let result = Client::connect(&addr, bounded(Duration::from_millis(800))).await;
        println!("connecting to a mute replica ended after {:?}: {result:?}", start.elapsed());
        assert_eq!(result.err(), Some(ClientError::Timeout));
    })
    .await;
    mute.abort();
}

#[tokio::test]
async fn a_parked_call_whose_cancel_goes_unanswered_ends_as_maybe_executed_and_is_cancelled_later()
{
    let cluster = Cluster::start(2, None).await;
    within(15, async {
        let holder = connect(&cluster.addrs()).await;
        let waiter =
            Client::connect(&cluster.addrs(), bounded(Duration::from_millis(1_000))).await.unwrap();
        holder.create("mutex", "Lock", vec![]).await.unwrap();
        assert_eq!(holder.call("mutex", "acquire", vec![]).await, Ok(Value::Bool(true)));
        let parked = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.call("mutex", "acquire", vec![]).await })
        };
        cluster.until("the waiter is parked", |c| c.parked().len() == 1).await;
        // From now on no replica answers: the cancel is sent, and never confirmed.
        cluster.set(0, Behaviour::Silent);
        cluster.set(1, Behaviour::Silent);
        let start = Instant::now();
        let result = parked.await.unwrap();
        println!("the parked call ended after {:?} more: {result:?}", start.elapsed());
        assert_eq!(result, Err(ClientError::MaybeExecuted));

        // The replicas answer again: the client still takes the call back, so the
        // lock is never granted to a caller who left.
        cluster.set(0, Behaviour::Leader);
        cluster.set(1, Behaviour::Leader);
        let session = waiter.session();
        cluster
            .until("the cancel is applied", |c| {
                c.applied().iter().any(|a| {
                    matches!(a.request, Request::Cancel { session: s, .. } if s == session)
                        && a.execution == Execution::Executed
                })
            })
            .await;
        assert_eq!(holder.call("mutex", "release", vec![]).await, Ok(Value::Nil));
        assert_eq!(holder.call("mutex", "locked", vec![]).await, Ok(Value::Bool(false)));
        holder.close().await;
        waiter.close().await;
    })
    .await;
}

#[test]
fn the_blocking_client_is_bounded_too() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let cluster = runtime.block_on(Cluster::start(1, None));
    let client = BlockingClient::connect(&cluster.addrs(), bounded(Duration::from_millis(800)))
        .expect("connects");
    cluster.set(0, Behaviour::Silent);
    let start = Instant::now();
    let result = client.call("default", "increment", vec![]);
    println!("a blocking call no replica answers ended after {:?}: {result:?}", start.elapsed());
    assert_eq!(result, Err(ClientError::MaybeExecuted));
    drop(client);
    drop(cluster);
}

#[tokio::test]
async fn a_call_to_a_replica_gone_silent_is_moved_to_another_within_its_timeout() {
    let cluster = Cluster::start(2, None).await;
    within(10, async {
        // The attempt timeout is longer than the call has.
        let opts = ClientOptions {
            attempt_timeout: Duration::from_secs(5),
            ..bounded(Duration::from_secs(1))
        };
        let client = Client::connect(&cluster.addrs(), opts).await.unwrap();
        cluster.set(0, Behaviour::Silent);
        let start = Instant::now();
        let result = client.call("default", "increment", vec![]).await;
        println!("a call to a silent replica ended after {:?}: {result:?}", start.elapsed());
        assert_eq!(result, Ok(Value::Nil), "run by replica 1 before its cancel");
        assert_eq!(cluster.executions_of("increment"), (1, 0));
        client.close().await;
    })
    .await;
}
