//! The ZooKeeper backend: each workload as a ZooKeeper user writes it, with the async
//! `zookeeper-client` crate. Each client has its own session, on a server the client
//! picks at random from the list (as the Java client does).
//!
//! - increment: getData then setData with the version read, retried on BadVersion (a
//!   conflict is not an error, the operation is the successful increment).
//! - read: sync then getData, ZooKeeper's strongest read (sync brings the server up to
//!   the leader's commits; it is not quorum-acknowledged, see ZOOKEEPER-2136).
//!   read-local: plain getData from the client's server, possibly stale.
//! - lock: the recipe from ZooKeeper's "Recipes and Solutions": create an ephemeral
//!   sequential node under the lock node, wait for the deletion of the node just before
//!   it, delete its own node to release.
//! - put: create of a distinct persistent znode per operation, under a parent created
//!   fresh for each run (so runs never collide on a name).
//!
//! Not a general ZooKeeper library: it knows only these workloads.

use anyhow::{anyhow, bail, Context, Result};
use concoord_bench::Workload;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zookeeper_client::{Acls, Client, CreateMode, Error, SessionState};

const ROOT: &str = "/yardstick";
const COUNTER: &str = "/yardstick/counter";
const LOCK: &str = "/yardstick/lock";
/// The ephemeral sequential nodes of the lock recipe: `/yardstick/lock/n-0000000042`.
const LOCK_PREFIX: &str = "/yardstick/lock/n-";

/// How long closing a session may take before the client gives up waiting.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One ZooKeeper session.
#[derive(Debug)]
pub struct ZkClient {
    zk: Client,
    index: usize,
    workload: Workload,
    /// This run's parent for the put workload's znodes.
    put_parent: Arc<str>,
    conflicts: Arc<AtomicU64>,
}

async fn session(endpoints: &[String]) -> Result<Client> {
    let connect_string = endpoints.join(",");
    Client::connector()
        .with_server_version(3, 8, 0)
        .connect(&connect_string)
        .await
        .with_context(|| format!("cannot open a ZooKeeper session at {connect_string}"))
}

/// Creates a persistent node; one that already exists is fine.
async fn ensure(zk: &Client, path: &str, data: &[u8]) -> Result<()> {
    match zk.create(path, data, &CreateMode::Persistent.with_acls(Acls::anyone_all())).await {
        Ok(_) | Err(Error::NodeExists) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {path}")),
    }
}

/// Opens `count` sessions for `workload` after creating the nodes the workloads use.
/// The returned counter counts increment conflicts that were retried.
pub async fn connect(
    endpoints: &[String],
    workload: Workload,
    count: usize,
) -> Result<(Vec<ZkClient>, Arc<AtomicU64>)> {
    let setup = session(endpoints).await?;
    ensure(&setup, ROOT, b"").await?;
    ensure(&setup, COUNTER, b"0").await?;
    ensure(&setup, LOCK, b"").await?;
    let put_parent = fresh_put_parent(&setup).await?;
    drop(setup);

    let conflicts = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::with_capacity(count);
    for index in 0..count {
        clients.push(ZkClient {
            zk: session(endpoints).await?,
            index,
            workload,
            put_parent: put_parent.clone(),
            conflicts: conflicts.clone(),
        });
    }
    Ok((clients, conflicts))
}

/// A parent no earlier run used: `/yardstick/put-<pid>-<k>`, the first k that is free.
async fn fresh_put_parent(zk: &Client) -> Result<Arc<str>> {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    for k in 0..1000 {
        let path = format!("{ROOT}/put-{}-{k}", std::process::id());
        match zk.create(&path, b"", &options).await {
            Ok(_) => return Ok(path.into()),
            Err(Error::NodeExists) => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {path}")),
        }
    }
    bail!("no free put parent under {ROOT}: delete old ones")
}

fn parse_counter(data: &[u8]) -> Result<i64> {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| anyhow!("{COUNTER} holds {data:?}, not a number"))
}

impl ZkClient {
    async fn increment(&self) -> Result<()> {
        loop {
            let (data, stat) = self.zk.get_data(COUNTER).await?;
            let next = (parse_counter(&data)? + 1).to_string();
            match self.zk.set_data(COUNTER, next.as_bytes(), Some(stat.version)).await {
                Ok(_) => return Ok(()),
                Err(Error::BadVersion) => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn lock_then_unlock(&self) -> Result<()> {
        let options = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
        let (_, sequence) = self.zk.create(LOCK_PREFIX, b"", &options).await?;
        let own = format!("n-{sequence}");
        loop {
            let mut children = self.zk.list_children(LOCK).await?;
            // Sequence numbers are zero-padded to ten digits, so names sort by them.
            children.sort_unstable();
            let position = children
                .iter()
                .position(|child| *child == own)
                .ok_or_else(|| anyhow!("lock node {LOCK}/{own} vanished: session lost?"))?;
            if position == 0 {
                break;
            }
            let predecessor = format!("{LOCK}/{}", children[position - 1]);
            match self.zk.check_and_watch_stat(&predecessor).await? {
                (None, _) => continue,
                (Some(_), watcher) => {
                    watcher.changed().await;
                }
            }
        }
        self.zk.delete(&format!("{LOCK}/{own}"), None).await?;
        Ok(())
    }
}

impl concoord_bench::Client for ZkClient {
    type Error = anyhow::Error;

    async fn run(&mut self, n: u64) -> Result<()> {
        match self.workload {
            Workload::Increment => self.increment().await,
            Workload::Read => {
                self.zk.sync(COUNTER).await?;
                self.zk.get_data(COUNTER).await.map(drop).map_err(Into::into)
            }
            Workload::ReadLocal => self.zk.get_data(COUNTER).await.map(drop).map_err(Into::into),
            Workload::Lock => self.lock_then_unlock().await,
            Workload::Put => {
                let path = format!("{}/c{}-{n}", self.put_parent, self.index);
                let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
                self.zk
                    .create(&path, n.to_string().as_bytes(), &options)
                    .await
                    .map(drop)
                    .map_err(Into::into)
            }
        }
    }

    /// Dropping the last handle closes the session in the background; wait (briefly)
    /// for the close, so the next run does not share the servers with expiring sessions.
    async fn close(self) {
        let mut state = self.zk.state_watcher();
        drop(self.zk);
        let closed = async {
            while !matches!(
                state.changed().await,
                SessionState::Closed | SessionState::Expired | SessionState::AuthFailed
            ) {}
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, closed).await;
    }
}
