//! Following redirects, failing over from a replica that breaks, stays silent or is
//! not ready, resending unfinished calls unchanged, and giving up when no replica
//! answers.

use crate::fake::{Behaviour, Cluster};
use crate::{connect, options, within};
use concoord_client::{Client, ClientError, ClientOptions, Value};
use concoord_object::machine::Request;
use concoord_object::protocol::StatusReport;
use concoord_wire::ReplicaId;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn a_redirect_leads_to_the_leader_even_when_it_is_not_listed() {
    let cluster = Cluster::start(2, None).await;
    cluster.set(0, Behaviour::Follower { leader: Some(cluster.addr(1)) });
    within(10, async {
        // Only the follower is listed.
        let client = connect(&cluster.addr(0)).await;
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));
        let on_follower: Vec<_> =
            cluster.received().into_iter().filter(|r| r.replica == 0).collect();
        assert_eq!(on_follower.len(), 1, "only the first request went to the follower");
        assert!(matches!(on_follower[0].request, Request::OpenSession { .. }));
        assert!(cluster.applied().iter().all(|a| a.replica == 1), "the leader ran everything");
        let StatusReport { replica, .. } = client.status().await.unwrap();
        assert_eq!(replica, ReplicaId(1));
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_call_cut_off_mid_way_is_resent_with_the_same_numbers_and_runs_once() {
    let cluster = Cluster::start(2, None).await;
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        // Replica 0 runs the next call, then drops the connection unanswered.
        cluster.set(0, Behaviour::DropOnCall);
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));

        let calls = cluster.calls_of("increment");
        assert_eq!(calls.len(), 2, "sent once, resent once: {calls:?}");
        let (first, resent) = (calls[0], calls[1]);
        assert_eq!((first.0, resent.0), (0, 1), "the resend went to the next replica");
        assert_eq!((first.1, first.2, first.3, first.4), (resent.1, resent.2, resent.3, resent.4));
        assert_eq!(
            cluster.executions_of("increment"),
            (1, 1),
            "run once, then answered as a duplicate"
        );
        assert_eq!(client.call("default", "getvalue", vec![]).await, Ok(Value::Int(1)));
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_silent_replica_is_left_after_the_attempt_timeout() {
    let cluster = Cluster::start(2, None).await;
    cluster.set(0, Behaviour::Silent);
    let attempt_timeout = Duration::from_millis(300);
    within(10, async {
        let start = Instant::now();
        let opts = ClientOptions { attempt_timeout, ..options() };
        let client =
            Client::connect(&cluster.addrs(), opts).await.expect("connects through replica 1");
        assert!(start.elapsed() >= attempt_timeout, "left replica 0 after {:?}", start.elapsed());
        let opened_on: Vec<usize> = cluster
            .received()
            .iter()
            .filter(|r| matches!(r.request, Request::OpenSession { .. }))
            .map(|r| r.replica)
            .collect();
        assert_eq!(opened_on, [0, 1]);
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_replica_that_is_not_ready_is_skipped() {
    let cluster = Cluster::start(2, None).await;
    cluster.set(0, Behaviour::NotReady);
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));
        assert!(cluster.applied().iter().all(|a| a.replica == 1));
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_parked_call_survives_failover_and_is_woken_on_the_new_replica() {
    let cluster = Cluster::start(2, None).await;
    within(10, async {
        let holder = connect(&cluster.addrs()).await;
        let waiter = connect(&cluster.addrs()).await;
        holder.create("mutex", "Lock", vec![]).await.unwrap();
        assert_eq!(holder.call("mutex", "acquire", vec![]).await, Ok(Value::Bool(true)));
        let parked = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.call("mutex", "acquire", vec![]).await })
        };
        cluster.until("the waiter is parked", |c| c.parked().len() == 1).await;

        cluster.kill(0);
        // The waiter resends its parked call to replica 1, which answers `Parked`
        // again from the session table.
        cluster
            .until("the parked call is resent to replica 1", |c| {
                c.calls_of("acquire").iter().any(|call| call.0 == 1)
            })
            .await;
        assert_eq!(holder.call("mutex", "release", vec![]).await, Ok(Value::Nil));
        assert_eq!(parked.await.unwrap(), Ok(Value::Bool(true)));
        let resends: Vec<_> =
            cluster.calls_of("acquire").into_iter().filter(|c| c.2 == waiter.session()).collect();
        assert_eq!(resends.len(), 2);
        assert_eq!((resends[0].1, resends[0].3), (resends[1].1, resends[1].3), "resent unchanged");
        assert_eq!(
            cluster.executions_of("acquire"),
            (2, 1),
            "two acquires ran; the resend did not"
        );
        holder.close().await;
        waiter.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_client_given_one_address_fails_over_to_the_members_it_learned() {
    let cluster = Cluster::start(3, None).await;
    within(10, async {
        let holder = connect(&cluster.addrs()).await;
        // The waiter knows one replica; the others it learns from it.
        let waiter = connect(&cluster.addr(0)).await;
        holder.create("mutex", "Lock", vec![]).await.unwrap();
        assert_eq!(holder.call("mutex", "acquire", vec![]).await, Ok(Value::Bool(true)));
        let parked = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.call("mutex", "acquire", vec![]).await })
        };
        cluster.until("the waiter is parked", |c| c.parked().len() == 1).await;
        cluster.kill(0);
        cluster
            .until("the parked call is resent to another replica", |c| {
                c.calls_of("acquire").iter().any(|call| call.0 != 0 && call.2 == waiter.session())
            })
            .await;
        assert_eq!(holder.call("mutex", "release", vec![]).await, Ok(Value::Nil));
        assert_eq!(parked.await.unwrap(), Ok(Value::Bool(true)));
        assert_eq!(waiter.call("default", "increment", vec![]).await, Ok(Value::Nil));
        holder.close().await;
        waiter.close().await;
    })
    .await;
}

#[tokio::test]
async fn with_no_replica_reachable_calls_fail_as_unavailable() {
    // Addresses nothing listens on.
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap().to_string());
    }
    let give_up_after = Duration::from_millis(300);
    let opts = ClientOptions { give_up_after, ..options() };
    within(10, async {
        let start = Instant::now();
        let err = Client::connect(&addrs.join(","), opts.clone()).await.unwrap_err();
        let ClientError::Unavailable(why) = err else {
            panic!("expected Unavailable, got {err:?}")
        };
        assert!(why.contains("no replica answered"), "{why}");
        assert!(start.elapsed() >= give_up_after);

        // A connected client whose cluster dies.
        let cluster = Cluster::start(1, None).await;
        let client = Client::connect(&cluster.addrs(), opts).await.unwrap();
        cluster.kill(0);
        let start = Instant::now();
        let err = client.call("default", "getvalue", vec![]).await.unwrap_err();
        assert!(matches!(err, ClientError::Unavailable(_)), "{err:?}");
        assert!(start.elapsed() >= give_up_after);
        client.close().await;
    })
    .await;
}
