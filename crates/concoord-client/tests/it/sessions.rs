//! Parked calls, call timeouts, session expiry, keep-alives, a bad token and a busy
//! leader.

use crate::fake::{Behaviour, Cluster};
use crate::{connect, options, within};
use concoord_client::{status_of, Client, ClientError, ClientOptions, Value};
use concoord_object::machine::Request;
use concoord_wire::RequestNumber;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn a_parked_call_returns_when_it_is_woken() {
    let cluster = Cluster::start(1, None).await;
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
        // Parked is not an answer: the call still waits.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!parked.is_finished());
        assert_eq!(holder.call("mutex", "release", vec![]).await, Ok(Value::Nil));
        assert_eq!(parked.await.unwrap(), Ok(Value::Bool(true)));
        assert_eq!(waiter.call("mutex", "release", vec![]).await, Ok(Value::Nil));
        holder.close().await;
        waiter.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_parked_call_times_out_after_the_call_timeout() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let holder = connect(&cluster.addrs()).await;
        let call_timeout = Duration::from_millis(200);
        let opts = ClientOptions { call_timeout: Some(call_timeout), ..options() };
        let waiter = Client::connect(&cluster.addrs(), opts).await.unwrap();
        holder.create("mutex", "Lock", vec![]).await.unwrap();
        assert_eq!(holder.call("mutex", "acquire", vec![]).await, Ok(Value::Bool(true)));
        let start = Instant::now();
        assert_eq!(waiter.call("mutex", "acquire", vec![]).await, Err(ClientError::Timeout));
        // It waited until the cancel point, a fifth of the timeout before its end.
        let waited = start.elapsed();
        assert!(waited >= call_timeout * 4 / 5, "timed out after {waited:?}");
        // It was cancelled through the log: the lock forgot it, and the release
        // leaves the lock free instead of granting it to a caller who left.
        assert_eq!(cluster.parked().len(), 1, "it was parked, not unanswered");
        holder.call("mutex", "release", vec![]).await.unwrap();
        assert_eq!(holder.call("mutex", "locked", vec![]).await, Ok(Value::Bool(false)));
        // The client goes on working, and acknowledges nothing it has not got.
        assert_eq!(waiter.call("default", "getvalue", vec![]).await, Ok(Value::Int(0)));
        holder.close().await;
        waiter.close().await;
    })
    .await;
}

#[tokio::test]
async fn an_ended_session_fails_the_call_and_later_calls_use_a_new_one() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));
        let old = client.session();
        cluster.end_session(old);
        assert_eq!(
            client.call("default", "increment", vec![]).await,
            Err(ClientError::SessionExpired)
        );
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));
        let new = client.session();
        assert_ne!(new, old);
        let last = cluster.calls_of("increment").pop().unwrap();
        assert_eq!(
            (last.2, last.3),
            (new, RequestNumber(1)),
            "numbering restarts in the new session"
        );
        assert_eq!(client.call("default", "getvalue", vec![]).await, Ok(Value::Int(2)));
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn keepalives_find_an_ended_session_and_fail_its_parked_calls() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let holder = connect(&cluster.addrs()).await;
        // The shortest lease the replicas accept: a keep-alive every 333 ms.
        let opts = ClientOptions { lease: Duration::from_secs(1), ..options() };
        let waiter = Client::connect(&cluster.addrs(), opts).await.unwrap();
        let session = waiter.session();
        let keepalives = |c: &Cluster| {
            c.received().iter().filter(|r| r.request == Request::KeepAlive { session }).count()
        };
        cluster.until("two keep-alives arrive", |c| keepalives(c) >= 2).await;

        holder.create("mutex", "Lock", vec![]).await.unwrap();
        assert_eq!(holder.call("mutex", "acquire", vec![]).await, Ok(Value::Bool(true)));
        let parked = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.call("mutex", "acquire", vec![]).await })
        };
        cluster.until("the waiter is parked", |c| c.parked().len() == 1).await;
        // The cluster ends the session, which drops its parked call without an
        // answer; the next keep-alive tells the client.
        cluster.end_session(session);
        assert_eq!(parked.await.unwrap(), Err(ClientError::SessionExpired));
        cluster.until("a new session is open", |_| waiter.session() != session).await;
        assert_eq!(waiter.call("default", "getvalue", vec![]).await, Ok(Value::Int(0)));
        holder.close().await;
        waiter.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_bad_token_fails_at_once_without_retrying() {
    let cluster = Cluster::start(2, Some("secret")).await;
    within(10, async {
        let wrong = ClientOptions { token: Some("wrong".to_string()), ..options() };
        let start = Instant::now();
        let err = Client::connect(&cluster.addrs(), wrong).await.unwrap_err();
        assert_eq!(err, ClientError::BadToken);
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(cluster.hellos(), 1, "no other replica was tried, nothing was retried");

        let none = Client::connect(&cluster.addrs(), options()).await.unwrap_err();
        assert_eq!(none, ClientError::BadToken);
        let right = ClientOptions { token: Some("secret".to_string()), ..options() };
        let client = Client::connect(&cluster.addrs(), right).await.unwrap();
        assert_eq!(client.call("default", "getvalue", vec![]).await, Ok(Value::Int(0)));
        client.close().await;

        let addr = cluster.addr(1);
        let status = status_of(&addr, Some("wrong"), Duration::from_secs(1)).await;
        assert_eq!(status.unwrap_err(), ClientError::BadToken);
        assert!(status_of(&addr, Some("secret"), Duration::from_secs(1)).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn a_busy_leader_is_retried_with_backoff_until_it_accepts() {
    let cluster = Cluster::start(1, None).await;
    within(10, async {
        let client = connect(&cluster.addrs()).await;
        cluster.set(0, Behaviour::Busy(3));
        let start = Instant::now();
        assert_eq!(client.call("default", "increment", vec![]).await, Ok(Value::Nil));
        // Backoffs of 10, 20 and 40 ms.
        assert!(start.elapsed() >= Duration::from_millis(70), "took {:?}", start.elapsed());
        let calls = cluster.calls_of("increment");
        assert_eq!(calls.len(), 4);
        assert!(calls.iter().all(|c| (c.1, c.2, c.3) == (calls[0].1, calls[0].2, calls[0].3)));
        assert_eq!(cluster.executions_of("increment"), (1, 0));
        assert_eq!(cluster.hellos(), 1, "busy is not a reason to reconnect");
        client.close().await;
    })
    .await;
}
