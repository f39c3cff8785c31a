//! The client against a fake cluster (`fake`): real sockets on 127.0.0.1, the real
//! object machine behind them, and replicas told to misbehave on cue.

mod basics;
mod blocking;
mod failover;
mod fake;
mod sessions;
mod timeouts;

use concoord_client::{Client, ClientOptions};
use std::future::Future;
use std::time::Duration;

/// Options with short timeouts, so a test that breaks fails in seconds.
pub fn options() -> ClientOptions {
    ClientOptions {
        attempt_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        give_up_after: Duration::from_secs(4),
        ..ClientOptions::default()
    }
}

pub async fn connect(addrs: &str) -> Client {
    Client::connect(addrs, options()).await.expect("the client connects")
}

/// Runs `test`, failing it if it takes longer than a test should.
pub async fn within<T>(seconds: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), test)
        .await
        .unwrap_or_else(|_| panic!("the test took longer than {seconds} s"))
}
