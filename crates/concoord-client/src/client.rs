//! `Client`, the async handle users call through, and `status_of`, a one-shot
//! status request. A handle only sends commands to the driver task and awaits the
//! answers; the driver (`driver`, deciding with `core`) does all the talking.

use crate::clock;
use crate::conn;
use crate::core::{framed, Command, ConnectError, Core};
use crate::driver::{self, Dialer, Shared};
use crate::options::parse_cluster;
use crate::{parse_addrs, ClientError, ClientOptions, ClientTls};
use concoord_object::protocol::{ClientFrame, ErrorKind, ServerFrame, StatusReport};
use concoord_object::Value;
use concoord_wire::SessionId;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the driver; a caller beyond this waits to hand its over.
const COMMANDS_MAX: usize = 1_024;

/// A connection to a ConCoord cluster, with one session. Cheap to clone: clones
/// share the session and the connection, and many calls may be outstanding at
/// once (they are pipelined on the connection). The connection and the session
/// end with `close`, or when the last clone is dropped.
///
/// Must be created and used inside a tokio runtime; `BlockingClient` is the same
/// API for code without one.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl Client {
    /// Connects to the first reachable replica of `addrs` (`"host:port, host:port"`),
    /// follows it to the leader, and opens a session through the log. With a
    /// `call_timeout`, it fails with `Timeout` when no session opened within it
    /// (a session opened too late holds nothing and ends after its lease).
    pub async fn connect(addrs: &str, mut opts: ClientOptions) -> Result<Client, ClientError> {
        let addrs = parse_addrs(addrs)?;
        opts.cluster = opts.cluster.as_deref().map(parse_cluster).transpose()?;
        let (ready, session) = oneshot::channel();
        let (commands, receiver) = mpsc::channel(COMMANDS_MAX);
        let shared = Arc::new(Shared::default());
        let core = Core::new(addrs, &opts, clock::now(), clock::nonce_seed(), ready);
        let dialer = Dialer {
            token: opts.token.clone(),
            tls: opts.tls.clone(),
            connect_timeout: opts.connect_timeout,
        };
        tokio::spawn(driver::run(core, receiver, shared.clone(), dialer));
        // On an error `commands` is dropped here, and the driver stops.
        let session = session.await.map_err(|_| stopped())??;
        shared.session.store(session.0, Ordering::Relaxed);
        Ok(Client { commands, shared })
    }

    /// Calls `method` of the object instance `object` with `args` and returns its
    /// result. A blocking method (a held lock's `acquire`) returns when the call is
    /// woken.
    ///
    /// With a `call_timeout`, the call returns within it, whatever the cluster
    /// does (connecting, failing over, redirects and cancelling all count). Shortly
    /// before the end (a fifth of the timeout, at most 500 ms) a call still
    /// unanswered is cancelled through the log, and the call ends with:
    /// - its result, if it completed before the cancel was ordered;
    /// - `Timeout` if it certainly had no effect: it was never sent, or the cluster
    ///   took it back (a parked `acquire` is then never granted);
    /// - `MaybeExecuted` if it reached a replica and neither its result nor the
    ///   cancel's confirmation arrived in time. The client keeps cancelling it in
    ///   the background; closing the client releases anything it may have acquired.
    pub async fn call(
        &self,
        object: &str,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, ClientError> {
        self.call_inner(object, method, args, None).await
    }

    /// `call` with its own timeout instead of the options' `call_timeout`.
    pub async fn call_with_timeout(
        &self,
        object: &str,
        method: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.call_inner(object, method, args, Some(timeout)).await
    }

    async fn call_inner(
        &self,
        object: &str,
        method: &str,
        args: Vec<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value, ClientError> {
        let (waiter, answer) = oneshot::channel();
        let (object, method) = (object.to_string(), method.to_string());
        self.command(Command::Call { object, method, args, timeout, waiter }).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Creates the object instance `name` of type `type_name` (`"Counter"`, or the
    /// original's `"concoord.object.counter.Counter"`) with constructor `args`. A
    /// no-op if it exists with that type; `Raised(ValueError)` if with another.
    /// Bounded by `call_timeout` like a call.
    pub async fn create(
        &self,
        name: &str,
        type_name: &str,
        args: Vec<Value>,
    ) -> Result<(), ClientError> {
        self.create_inner(name, type_name, args, None).await
    }

    /// `create` with its own timeout instead of the options' `call_timeout`.
    pub async fn create_with_timeout(
        &self,
        name: &str,
        type_name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.create_inner(name, type_name, args, Some(timeout)).await
    }

    async fn create_inner(
        &self,
        name: &str,
        type_name: &str,
        args: Vec<Value>,
        timeout: Option<Duration>,
    ) -> Result<(), ClientError> {
        let (waiter, answer) = oneshot::channel();
        let (name, type_name) = (name.to_string(), type_name.to_string());
        self.command(Command::Create { name, type_name, args, timeout, waiter }).await?;
        answer.await.map_err(|_| stopped())?.map(drop)
    }

    /// The status of the replica this client is connected to (bounded by
    /// `call_timeout`, then `Timeout`).
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        let (waiter, answer) = oneshot::channel();
        self.command(Command::Status { waiter }).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// The session calls currently run in. It changes when the cluster ended the
    /// previous one (a call then failed with `SessionExpired`).
    pub fn session(&self) -> SessionId {
        SessionId(self.shared.session.load(Ordering::Relaxed))
    }

    /// Ends the session (releasing what it holds), waiting briefly for the cluster
    /// to confirm, and stops the client: calls through other clones then fail with
    /// `Unavailable`.
    pub async fn close(self) {
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Close { done }).await.is_ok() {
            let _ = closed.await;
        }
    }

    async fn command(&self, command: Command) -> Result<(), ClientError> {
        self.commands.send(command).await.map_err(|_| stopped())
    }
}

fn stopped() -> ClientError {
    ClientError::Unavailable("the client was closed".to_string())
}

/// Asks the replica at `addr` (one `host:port`) to describe itself, without a
/// session: connect, `Hello`, `Status`. Any replica answers, leader or not.
pub async fn status_of(
    addr: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<StatusReport, ClientError> {
    status_of_with_tls(addr, token, None, timeout).await
}

/// As `status_of`, speaking TLS when `tls` is given (to replicas started with
/// `--tls-cert`).
pub async fn status_of_with_tls(
    addr: &str,
    token: Option<&str>,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<StatusReport, ClientError> {
    let addrs = parse_addrs(addr)?;
    let [addr] = addrs.as_slice() else {
        return Err(ClientError::BadAddress(format!("{addr:?}: give one replica's host:port")));
    };
    let (mut conn, _) =
        conn::connect(addr.clone(), token.map(str::to_string), None, tls.cloned(), timeout)
            .await
            .map_err(|e| match e {
            ConnectError::Refused { kind: ErrorKind::BadToken, .. } => ClientError::BadToken,
            ConnectError::Refused { kind: ErrorKind::TlsRequired, message } => {
                ClientError::Tls(format!("{addr}: {message}"))
            }
            ConnectError::Tls(why) => ClientError::Tls(why),
            ConnectError::Refused { kind, message } => ClientError::Unavailable(format!(
                "{addr} refused the connection: {kind}: {message}"
            )),
            ConnectError::Failed(why) => ClientError::Unavailable(why),
        })?;
    let exchange = async {
        let id = 1;
        conn.write_all(&framed(&ClientFrame::Status { id })?)
            .await
            .map_err(ClientError::Unavailable)?;
        loop {
            match conn.read_frame().await.map_err(ClientError::Unavailable)? {
                ServerFrame::Status { id: answered, status } if answered == id => {
                    return Ok(*status)
                }
                ServerFrame::Error { kind: ErrorKind::BadToken, .. } => {
                    return Err(ClientError::BadToken)
                }
                ServerFrame::Error { kind, message, .. } => {
                    return Err(ClientError::Unavailable(format!("{addr}: {kind}: {message}")))
                }
                other => tracing::debug!(?other, "ignoring a frame while waiting for Status"),
            }
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        ClientError::Unavailable(format!("{addr} did not answer Status within {timeout:?}"))
    })?
}
