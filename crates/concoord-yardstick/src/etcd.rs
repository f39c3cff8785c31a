//! The etcd v3 backend: each workload as an etcd user writes it, over the gRPC calls
//! etcd's own clients make. Each client has its own tonic channel balanced over every
//! endpoint, as `etcd_client::Client::connect` builds one.
//!
//! - increment: Range the counter key, then a Txn that puts value + 1 if the key's
//!   mod_revision is unchanged and otherwise returns the current key; retried on
//!   conflict (a conflict is not an error, the operation is the successful increment).
//! - read: a linearizable Range of that key (etcd's default); read-local: a
//!   serializable Range, served by whichever member answers, possibly stale.
//! - lock: the v3 lock service, Lock then Unlock of one shared name, under a lease per
//!   client (granted once, for longer than the run, and revoked at the end).
//! - put: Put of a distinct key per operation.
//!
//! Not a general etcd client: it knows only these calls.

use crate::etcd_pb as pb;
use anyhow::{anyhow, bail, Context, Result};
use concoord_bench::Workload;
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

const COUNTER_KEY: &[u8] = b"yardstick/counter";
const LOCK_NAME: &[u8] = b"yardstick/lock";
const PUT_PREFIX: &str = "yardstick/put/";

/// One etcd client: its own channel (HTTP/2 connections to every member).
#[derive(Debug)]
pub struct EtcdClient {
    grpc: Grpc<Channel>,
    index: usize,
    workload: Workload,
    /// The lease the lock workload's ownership keys live under (0: none).
    lease: i64,
    conflicts: Arc<AtomicU64>,
}

/// Opens `count` clients for `workload`, after making sure the counter key exists.
/// `lease_ttl` must outlast the run (the lease is not kept alive). The returned
/// counter counts increment conflicts that were retried.
pub async fn connect(
    endpoints: &[String],
    workload: Workload,
    count: usize,
    lease_ttl: Duration,
) -> Result<(Vec<EtcdClient>, Arc<AtomicU64>)> {
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut setup = EtcdClient::open(endpoints, 0, workload, conflicts.clone())?;
    let counter = setup
        .call::<_, pb::RangeResponse>(pb::RANGE, range(false))
        .await
        .with_context(|| format!("cannot reach etcd at {}", endpoints.join(",")))?;
    if counter.kvs.is_empty() {
        let put = pb::PutRequest { key: COUNTER_KEY.to_vec(), value: b"0".to_vec() };
        setup.call::<_, pb::PutResponse>(pb::PUT, put).await?;
    }
    let mut clients = Vec::with_capacity(count);
    for index in 0..count {
        let mut client = EtcdClient::open(endpoints, index, workload, conflicts.clone())?;
        if workload == Workload::Lock {
            let ttl = lease_ttl.as_secs() as i64;
            let grant: pb::LeaseGrantResponse =
                client.call(pb::LEASE_GRANT, pb::LeaseGrantRequest { ttl }).await?;
            if !grant.error.is_empty() {
                bail!("etcd refused a lease: {}", grant.error);
            }
            client.lease = grant.id;
        }
        clients.push(client);
    }
    Ok((clients, conflicts))
}

fn range(serializable: bool) -> pb::RangeRequest {
    pb::RangeRequest { key: COUNTER_KEY.to_vec(), serializable }
}

/// The counter's value and mod_revision in a Range answer.
fn counter_of(response: &pb::RangeResponse) -> Result<(i64, i64)> {
    let kv = response.kvs.first().ok_or_else(|| anyhow!("the counter key is missing"))?;
    let value = std::str::from_utf8(&kv.value)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| anyhow!("the counter key holds {:?}, not a number", kv.value))?;
    Ok((value, kv.mod_revision))
}

impl EtcdClient {
    fn open(
        endpoints: &[String],
        index: usize,
        workload: Workload,
        conflicts: Arc<AtomicU64>,
    ) -> Result<EtcdClient> {
        let mut list = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let uri = format!("http://{endpoint}");
            list.push(
                Endpoint::from_shared(uri).with_context(|| format!("bad endpoint {endpoint:?}"))?,
            );
        }
        let channel = Channel::balance_list(list.into_iter());
        Ok(EtcdClient { grpc: Grpc::new(channel), index, workload, lease: 0, conflicts })
    }

    /// One unary gRPC call.
    async fn call<Req, Resp>(&mut self, path: &'static str, request: Req) -> Result<Resp>
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        self.grpc.ready().await.map_err(|e| anyhow!("etcd connection not ready: {e}"))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let response = self
            .grpc
            .unary(tonic::Request::new(request), PathAndQuery::from_static(path), codec)
            .await
            .map_err(|status| anyhow!("{path}: {} ({:?})", status.message(), status.code()))?;
        Ok(response.into_inner())
    }

    async fn increment(&mut self) -> Result<()> {
        let mut current = counter_of(&self.call(pb::RANGE, range(false)).await?)?;
        loop {
            let (value, mod_revision) = current;
            let txn = pb::TxnRequest {
                compare: vec![pb::Compare {
                    result: pb::CompareResult::Equal as i32,
                    target: pb::CompareTarget::Mod as i32,
                    key: COUNTER_KEY.to_vec(),
                    target_union: Some(pb::TargetUnion::ModRevision(mod_revision)),
                }],
                success: vec![pb::RequestOp {
                    request: Some(pb::Request::Put(pb::PutRequest {
                        key: COUNTER_KEY.to_vec(),
                        value: (value + 1).to_string().into_bytes(),
                    })),
                }],
                failure: vec![pb::RequestOp { request: Some(pb::Request::Range(range(false))) }],
            };
            let mut response: pb::TxnResponse = self.call(pb::TXN, txn).await?;
            if response.succeeded {
                return Ok(());
            }
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            current = match response.responses.pop().and_then(|r| r.response) {
                Some(pb::Response::Range(range)) => counter_of(&range)?,
                other => bail!("a failed Txn answered {other:?} instead of the counter"),
            };
        }
    }

    async fn lock_then_unlock(&mut self) -> Result<()> {
        let lock = pb::LockRequest { name: LOCK_NAME.to_vec(), lease: self.lease };
        let locked: pb::LockResponse = self.call(pb::LOCK, lock).await?;
        self.call::<_, pb::UnlockResponse>(pb::UNLOCK, pb::UnlockRequest { key: locked.key })
            .await?;
        Ok(())
    }
}

impl concoord_bench::Client for EtcdClient {
    type Error = anyhow::Error;

    async fn run(&mut self, n: u64) -> Result<()> {
        match self.workload {
            Workload::Increment => self.increment().await,
            Workload::Read => {
                self.call::<_, pb::RangeResponse>(pb::RANGE, range(false)).await.map(drop)
            }
            Workload::ReadLocal => {
                self.call::<_, pb::RangeResponse>(pb::RANGE, range(true)).await.map(drop)
            }
            Workload::Lock => self.lock_then_unlock().await,
            Workload::Put => {
                let put = pb::PutRequest {
                    key: format!("{PUT_PREFIX}c{}-{n}", self.index).into_bytes(),
                    value: n.to_string().into_bytes(),
                };
                self.call::<_, pb::PutResponse>(pb::PUT, put).await.map(drop)
            }
        }
    }

    async fn close(mut self) {
        if self.lease != 0 {
            let revoke = pb::LeaseRevokeRequest { id: self.lease };
            if let Err(e) = self.call::<_, pb::LeaseRevokeResponse>(pb::LEASE_REVOKE, revoke).await
            {
                eprintln!("revoking lease {:x}: {e}", self.lease);
            }
        }
    }
}
