//! A healthy cluster: calls, queries, objects, typed proxies, errors.

use crate::harness::{serial, Cluster, Setup};
use concoord_client::{BlockingClient, ClientError};
use concoord_object::builtins::lock::LockClient;
use concoord_object::builtins::CounterClient;
use concoord_object::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_order_calls_and_answer_queries() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    let client = cluster.client().await;
    for i in 1..=20 {
        client.call("default", "increment", vec![]).await.expect("increment");
        let v = client.call("default", "getvalue", vec![]).await.expect("getvalue");
        assert_eq!(v, Value::Int(i));
    }
    // Every replica applied the same increments.
    let leader = cluster.leader().await;
    let commit = cluster.status(leader).await.unwrap().commit_slot.0;
    for i in cluster.live() {
        cluster.wait_applied(i, commit).await;
    }
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_and_wrong_arguments_are_clear_errors() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let client = cluster.client().await;
    let err = client.call("default", "no_such_method", vec![]).await.unwrap_err();
    let ClientError::Raised(e) = err else { panic!("expected a raised error, got {err:?}") };
    assert_eq!(e.kind, "AttributeError", "{e:?}");
    let err = client.call("default", "increment", vec![Value::Int(1), Value::Int(2)]).await;
    let Err(ClientError::Raised(e)) = err else { panic!("expected TypeError, got {err:?}") };
    assert_eq!(e.kind, "TypeError", "{e:?}");
    let err = client.call("nothing-here", "increment", vec![]).await;
    let Err(ClientError::Raised(e)) = err else { panic!("expected AttributeError, got {err:?}") };
    assert_eq!(e.kind, "AttributeError", "{e:?}");
    let err = client.create("x", "NoSuchType", vec![]).await;
    assert!(matches!(err, Err(ClientError::Raised(_))), "{err:?}");
    // Nothing of that changed the counter, and the session still works.
    client.call("default", "increment", vec![]).await.unwrap();
    assert_eq!(client.call("default", "getvalue", vec![]).await.unwrap(), Value::Int(1));
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_proxies_drive_a_real_cluster() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    let boot = cluster.boot();
    let options = cluster.options();
    tokio::task::spawn_blocking(move || {
        let client = BlockingClient::connect(&boot, options).expect("connect");
        let mut counter = CounterClient::new(&client, "default");
        counter.increment().unwrap();
        counter.increment().unwrap();
        assert_eq!(counter.getvalue().unwrap(), 2);
        client.create("mutex", "concoord.object.lock.Lock", vec![]).unwrap();
        let mut lock = LockClient::new(&client, "mutex");
        assert!(lock.acquire(None).unwrap());
        lock.release().unwrap();
        let err = lock.release().unwrap_err();
        assert!(err.to_string().contains("un-acquired"), "{err}");
        client.close();
    })
    .await
    .unwrap();
}
