//! ConCoord's Rust client: connects to any replica of a cluster, follows the
//! leader, keeps a session alive, and calls methods of replicated objects with
//! exactly-once retries across failovers. It speaks the client protocol of
//! `concoord_object::protocol` (`docs/protocol.md`); it is not a replica and orders
//! nothing itself.
//!
//! ```no_run
//! use concoord_client::{Client, ClientOptions, Value};
//!
//! # async fn example() -> Result<(), concoord_client::ClientError> {
//! let client = Client::connect("127.0.0.1:14000, 127.0.0.1:14001", ClientOptions::default()).await?;
//! client.call("default", "increment", vec![]).await?;
//! assert_eq!(client.call("default", "getvalue", vec![]).await?, Value::Int(1));
//! client.create("jobs", "Lock", vec![]).await?;
//! client.call("jobs", "acquire", vec![]).await?; // waits while another session holds it
//! client.call("jobs", "release", vec![]).await?;
//! client.close().await;
//! # Ok(())
//! # }
//!
//! // Without an async runtime, and through a typed proxy:
//! use concoord_client::BlockingClient;
//! use concoord_object::builtins::CounterClient;
//!
//! # fn blocking() -> Result<(), Box<dyn std::error::Error>> {
//! let client = BlockingClient::connect("127.0.0.1:14000", ClientOptions::default())?;
//! let mut counter = CounterClient::new(&client, "default");
//! counter.increment()?;
//! println!("{}", counter.getvalue()?);
//! # Ok(())
//! # }
//! ```
//!
//! How it works: one driver task per client owns the connection and a table of
//! outstanding requests, each kept as the exact bytes sent. On a broken connection,
//! a request unanswered for `attempt_timeout`, a quiet replica that does not answer a
//! `Status` probe within `liveness_timeout`, a redirect or a replica that is not
//! ready, it connects elsewhere (the redirect's leader, else the next address) and
//! resends every unfinished request unchanged, parked calls included; the replicas
//! answer a retried call from their replicated session table, so it never runs
//! twice. `Busy` is retried after a short backoff. A call whose session the cluster
//! ended fails with `SessionExpired`, and later calls run in a new session.
//!
//! Bounded calls: with `ClientOptions::call_timeout` (or `Client::call_with_timeout`)
//! a call returns within its timeout, whatever the cluster does. A call that did not
//! finish ends with `ClientError::Timeout` when it certainly had no effect (it was
//! never sent, or the cluster confirmed that it took it back) and with
//! `ClientError::MaybeExecuted` when it reached a replica and no replica confirmed
//! its outcome in time.

mod blocking;
mod client;
mod clock;
mod conn;
mod core;
mod driver;
mod error;
mod options;
mod tls;

pub use blocking::BlockingClient;
pub use client::{status_of, status_of_with_tls, Client};
pub use concoord_object::protocol::StatusReport;
pub use concoord_object::{ObjectError, Value};
pub use concoord_wire::SessionId;
pub use error::ClientError;
pub use options::{parse_addrs, ClientOptions};
pub use tls::ClientTls;
