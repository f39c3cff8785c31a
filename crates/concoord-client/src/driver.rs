//! The driver: one task per client that owns the connection. Its loop is a
//! `select!` that turns the next thing to happen (a command from a `Client` handle,
//! a connection attempt finishing, the socket readable or writable, a deadline)
//! into a call on the `Core`, then runs the core's effects and writes what the core
//! queued, all queued frames in one write. It decides nothing itself.

use crate::clock;
use crate::conn::{self, Connection, Welcome};
use crate::core::{Command, ConnectError, Core, Effect};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the driver shares with the `Client` handles.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The current session's number (0 before the first one opens).
    pub(crate) session: AtomicU64,
}

type Connecting = Pin<Box<dyn Future<Output = Result<(Connection, Welcome), ConnectError>> + Send>>;

enum Event {
    Command(Option<Command>),
    Connected(Result<(Connection, Welcome), ConnectError>),
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    Tick,
}

/// How the driver connects.
#[derive(Debug)]
pub(crate) struct Dialer {
    pub(crate) token: Option<String>,
    pub(crate) tls: Option<crate::ClientTls>,
    pub(crate) connect_timeout: Duration,
}

/// Runs the client until it is closed or every handle is dropped.
pub(crate) async fn run(
    mut core: Core,
    mut commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    dialer: Dialer,
) {
    let mut conn: Option<Connection> = None;
    let mut connecting: Option<Connecting> = None;
    let mut commands_open = true;
    loop {
        for effect in core.take_effects() {
            match effect {
                Effect::Disconnect => {
                    conn = None;
                    connecting = None;
                }
                Effect::Connect(target) => {
                    conn = None;
                    let token = dialer.token.clone();
                    let cluster = core.cluster();
                    let timeout = dialer.connect_timeout;
                    let tls = dialer.tls.clone();
                    connecting =
                        Some(Box::pin(conn::connect(target, token, cluster, tls, timeout)));
                }
                Effect::Exit => {
                    if let Some(c) = &mut conn {
                        // Best effort: a CloseSession the core queued on the way out.
                        let _ = c.try_send(core.outgoing());
                    }
                    return;
                }
            }
        }
        if let Some(session) = core.session() {
            shared.session.store(session.0, Ordering::Relaxed);
        }
        if let Some(c) = &mut conn {
            if let Err(why) = c.try_send(core.outgoing()) {
                conn = None;
                core.on_disconnected(clock::now(), why);
                continue;
            }
        }

        let deadline = core.next_deadline();
        let accept = commands_open && core.accepts_commands();
        let wants_write =
            conn.as_ref().is_some_and(|c| !core.outgoing().is_empty() || c.wants_write());
        let event = tokio::select! {
            command = commands.recv(), if accept => Event::Command(command),
            result = finish(&mut connecting), if connecting.is_some() => Event::Connected(result),
            ready = readable(&conn), if conn.is_some() => Event::Readable(ready),
            ready = writable(&conn), if wants_write => Event::Writable(ready),
            () = sleep_until(deadline), if deadline.is_some() => Event::Tick,
        };

        let now = clock::now();
        match event {
            Event::Command(Some(command)) => {
                core.on_command(now, command);
                // Take whatever else is queued, so its frames share one write.
                while core.accepts_commands() {
                    match commands.try_recv() {
                        Ok(command) => core.on_command(now, command),
                        Err(_) => break,
                    }
                }
            }
            Event::Command(None) => {
                commands_open = false;
                core.on_handles_dropped(now);
            }
            Event::Connected(result) => {
                connecting = None;
                match result {
                    Ok((c, welcome)) => {
                        conn = Some(c);
                        core.on_connected(now, welcome.replica, welcome.leader);
                    }
                    Err(error) => core.on_connect_failed(now, error),
                }
            }
            Event::Readable(Ok(())) => {
                let Some(c) = &mut conn else { continue };
                let received = c.try_receive();
                for frame in received.frames {
                    core.on_frame(now, frame);
                    if core.has_effects() {
                        // The core left this connection; the rest is stale.
                        break;
                    }
                }
                if let Some(why) = received.broken {
                    conn = None;
                    core.on_disconnected(now, why);
                }
            }
            Event::Readable(Err(e)) | Event::Writable(Err(e)) => {
                let target = conn.take().map(|c| c.target).unwrap_or_default();
                core.on_disconnected(now, format!("connection to {target} failed: {e}"));
            }
            // The loop's top writes.
            Event::Writable(Ok(())) => {}
            Event::Tick => core.on_tick(now),
        }
    }
}

async fn finish(
    connecting: &mut Option<Connecting>,
) -> Result<(Connection, Welcome), ConnectError> {
    match connecting {
        Some(attempt) => attempt.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn readable(conn: &Option<Connection>) -> io::Result<()> {
    match conn {
        Some(c) => c.readable().await,
        None => std::future::pending().await,
    }
}

async fn writable(conn: &Option<Connection>) -> io::Result<()> {
    match conn {
        Some(c) => c.writable().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
