//! `BlockingClient`: the `Client` API for code without an async runtime, and the
//! `Call` implementation typed proxies (`CounterClient`, ...) run on. It owns a
//! small tokio runtime (one worker thread) that runs the driver; each method blocks
//! the calling thread until its answer arrives. Not for use inside an async task
//! (blocking there would stall the task's runtime; use `Client`).

use crate::{Client, ClientError, ClientOptions};
use concoord_object::protocol::StatusReport;
use concoord_object::{Call, CallError, Value};
use concoord_wire::SessionId;
use std::time::Duration;
use tokio::runtime::{Builder, Runtime};

/// A synchronous ConCoord client. It is `Send + Sync`: threads may share one (by
/// reference or in an `Arc`) and call concurrently; their calls are pipelined.
#[derive(Debug)]
pub struct BlockingClient {
    client: Client,
    runtime: Runtime,
}

impl BlockingClient {
    /// Connects like `Client::connect`, blocking until the session is open.
    pub fn connect(addrs: &str, opts: ClientOptions) -> Result<BlockingClient, ClientError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("concoord-client")
            .enable_all()
            .build()
            .map_err(|e| {
                ClientError::Unavailable(format!("cannot start the client's runtime: {e}"))
            })?;
        let client = runtime.block_on(Client::connect(addrs, opts))?;
        Ok(BlockingClient { client, runtime })
    }

    /// `Client::call`, blocking, and bounded by `call_timeout` in the same way.
    pub fn call(&self, object: &str, method: &str, args: Vec<Value>) -> Result<Value, ClientError> {
        self.runtime.block_on(self.client.call(object, method, args))
    }

    /// `Client::call_with_timeout`, blocking.
    pub fn call_with_timeout(
        &self,
        object: &str,
        method: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.runtime.block_on(self.client.call_with_timeout(object, method, args, timeout))
    }

    /// `Client::create`, blocking.
    pub fn create(&self, name: &str, type_name: &str, args: Vec<Value>) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.create(name, type_name, args))
    }

    /// `Client::status`, blocking.
    pub fn status(&self) -> Result<StatusReport, ClientError> {
        self.runtime.block_on(self.client.status())
    }

    pub fn session(&self) -> SessionId {
        self.client.session()
    }

    /// The async client underneath, for code that has both kinds of callers.
    /// Its futures must be driven by a runtime of the caller's.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `Client::close`, blocking; then stops the runtime.
    pub fn close(self) {
        let BlockingClient { client, runtime } = self;
        runtime.block_on(client.close());
    }
}

impl Call for BlockingClient {
    fn invoke(&mut self, object: &str, method: &str, args: Vec<Value>) -> Result<Value, CallError> {
        Ok(BlockingClient::call(self, object, method, args)?)
    }
}

/// Lets several proxies share one client: `CounterClient::new(&client, "default")`.
impl Call for &BlockingClient {
    fn invoke(&mut self, object: &str, method: &str, args: Vec<Value>) -> Result<Value, CallError> {
        Ok(BlockingClient::call(self, object, method, args)?)
    }
}
