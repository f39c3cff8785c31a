//! `BlockingClient` from plain threads, driving the generated typed proxies.

use crate::fake::Cluster;
use crate::options;
use concoord_client::{BlockingClient, ClientError};
use concoord_object::builtins::lock::LockClient;
use concoord_object::builtins::CounterClient;
use concoord_object::{CallError, Value};

#[test]
fn typed_proxies_run_on_the_blocking_client() {
    // The fake cluster runs on a runtime of its own; the test thread has none.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let cluster = runtime.block_on(Cluster::start(1, None));

    let client = BlockingClient::connect(&cluster.addrs(), options()).unwrap();
    let mut counter = CounterClient::new(&client, "default");
    counter.increment().unwrap();
    counter.increment().unwrap();
    assert_eq!(counter.getvalue().unwrap(), 2);

    client.create("mutex", "Lock", vec![]).unwrap();
    let mut lock = LockClient::new(&client, "mutex");
    let Err(CallError::Raised(e)) = lock.release() else { panic!("releasing a free lock raises") };
    assert_eq!(e.kind, "RuntimeError");
    assert!(lock.acquire(None).unwrap());
    assert!(lock.locked().unwrap());

    // Threads share one client.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| CounterClient::new(&client, "default").increment().unwrap());
        }
    });
    assert_eq!(client.call("default", "getvalue", vec![]), Ok(Value::Int(6)));

    // By value, too.
    let mut owned = CounterClient::new(client, "default");
    owned.decrement().unwrap();
    let client = owned.into_inner();
    assert_eq!(client.call("default", "getvalue", vec![]), Ok(Value::Int(5)));
    assert_eq!(client.status().map(|s| s.sessions), Ok(1));
    client.close();
    assert_eq!(runtime.block_on(async { cluster.sessions() }), 0);
    let err = BlockingClient::connect("nowhere", options()).unwrap_err();
    assert!(matches!(err, ClientError::BadAddress(_)));
    drop(cluster);
}
