//! Calls, creations, status and close against one well-behaved replica, and many
//! calls pipelined on one connection.

use crate::fake::{Behaviour, Cluster};
use crate::{connect, within};
use concoord_client::{parse_addrs, status_of, ClientError, Value};
use concoord_object::machine::Request;
use concoord_wire::{ReplicaId, RequestNumber};
use std::time::Duration;
use tokio::task::JoinSet;

#[tokio::test]
async fn calls_return_values_and_raised_exceptions() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));
        assert_eq!(client.call("default", "getvalue", vec![]).await, Ok(Value::Int(2)));

        let Err(ClientError::Raised(e)) = client.call("default", "nosuch", vec![]).await else {
            panic!("an unknown method raises");
        };
        assert_eq!(e.kind, "AttributeError");
        let Err(ClientError::Raised(e)) = client.call("missing", "getvalue", vec![]).await else {
            panic!("an unknown object raises");
        };
        assert_eq!(e.kind, "AttributeError");

        client.create("c", "Counter", vec![Value::Int(5)]).await.unwrap();
        assert_eq!(client.call("c", "getvalue", vec![]).await, Ok(Value::Int(5)));
        client.create("c", "Counter", vec![]).await.expect("creating it again is a no-op");
        let Err(ClientError::Raised(e)) = client.create("c", "Lock", vec![]).await else {
            panic!("creating it with another type raises");
        };
        assert_eq!(e.kind, "ValueError");

        // One at a time: numbered 1, 2, 3... in the session, each acknowledging
        // every earlier reply.
        let session = client.session();
        let numbers: Vec<(u64, u64)> = cluster
            .received()
            .into_iter()
            .filter_map(|r| match r.request {
                Request::Call { session: s, request, acked, .. } if s == session => {
                    Some((request.0, acked.0))
                }
                Request::Create { session: s, request, acked, .. } if s == session => {
                    Some((request.0, acked.0))
                }
                _ => None,
            })
            .collect();
        let expected: Vec<(u64, u64)> = (1..=9).map(|n| (n, n)).collect();
        assert_eq!(numbers, expected);
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_hundred_concurrent_calls_are_pipelined_on_one_connection() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        // The replica answers nothing until 100 calls are outstanding at once.
        cluster.set(0, Behaviour::Gather(100));
        let mut calls = JoinSet::new();
        for _ in 0..100 {
            let client = client.clone();
            calls.spawn(async move { client.call("default", "increment", vec![]).await });
        }
        while let Some(result) = calls.join_next().await {
            assert_eq!(result.unwrap(), Ok(Value::Nil));
        }
        assert_eq!(client.call("default", "getvalue", vec![]).await, Ok(Value::Int(100)));
        let mut numbers: Vec<RequestNumber> =
            cluster.calls_of("increment").into_iter().map(|(_, _, _, n, _)| n).collect();
        numbers.sort();
        assert_eq!(numbers, (1..=100).map(RequestNumber).collect::<Vec<_>>());
        assert_eq!(cluster.executions_of("increment"), (100, 0));
        assert_eq!(cluster.hellos(), 1, "one connection carried them all");
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn status_describes_the_connected_replica() {
    let cluster = Cluster::start(2, None).await;
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        let status = client.status().await.unwrap();
        assert_eq!((status.replica, status.addr.clone()), (ReplicaId(0), cluster.addr(0)));
        assert_eq!(status.sessions, 1);

        let one_shot = status_of(&cluster.addr(1), None, Duration::from_secs(2)).await.unwrap();
        assert_eq!((one_shot.replica, one_shot.sessions), (ReplicaId(1), 1));
        assert!(matches!(
            status_of(&cluster.addrs(), None, Duration::from_secs(2)).await,
            Err(ClientError::BadAddress(_))
        ));
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn close_ends_the_session_and_stops_every_clone() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        let clone = client.clone();
        let session = client.session();
        assert_eq!(cluster.sessions(), 1);
        client.close().await;
        assert_eq!(cluster.sessions(), 0, "the session ended before close returned");
        assert!(cluster.received().iter().any(|r| r.request == Request::CloseSession { session }));
        let after = clone.call("default", "getvalue", vec![]).await;
        assert!(matches!(after, Err(ClientError::Unavailable(_))), "{after:?}");
    })
    .await;
}

#[tokio::test]
async fn dropping_every_handle_ends_the_session() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        assert_eq!(cluster.sessions(), 1);
        drop(client);
        cluster.until("the session is closed", |c| c.sessions() == 0).await;
    })
    .await;
}

#[tokio::test]
async fn bad_addresses_are_refused_before_connecting() {
    let err = concoord_client::Client::connect("127.0.0.1", crate::options()).await.unwrap_err();
    let ClientError::BadAddress(why) = err else { panic!("expected BadAddress") };
    assert!(why.contains("no port"), "{why}");
    assert_eq!(parse_addrs("a:1,a:1, b:2").unwrap(), ["a:1", "b:2"]);
}
