//! The replica's disk writer: a thread that owns the [`Storage`], so the event loop
//! never waits for a write or a sync.
//!
//! The loop hands it writes, numbered in effect order by the `EffectGate`; the
//! thread appends them in that order and syncs (one fdatasync for everything that
//! arrived while the previous one ran: group commit), then reports the highest
//! durable number back to the loop, which releases the effects that waited for it.
//! A write marked `sync: false` (a `Commit` record) asks for no sync of its own: it
//! reaches the disk with the next sync, or with the idle flush the thread does when
//! nothing has come for `IDLE_FLUSH`. Snapshots are written (and the log compacted
//! behind them) on this thread too, so a large snapshot no longer stalls the loop.
//!
//! A storage error (a full disk, a failed fsync) is reported once and ends the
//! thread: the loop stops the replica with that error, as it did when it wrote
//! itself. Nothing written after a failed sync is ever reported durable.

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::storage::{Identity, Storage, StorageError};
use concoord_paxos::PersistOp;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc as async_mpsc;

/// After this long without a write, the thread syncs whatever is only written
/// (unsynced `Commit` records), so an idle replica's disk catches up.
const IDLE_FLUSH: Duration = Duration::from_millis(50);

enum Job {
    Write {
        seq: u64,
        op: PersistOp,
        sync: bool,
    },
    /// Forget everything and take a new identity (a rejoin); answered when done.
    Wipe {
        identity: Identity,
        done: mpsc::Sender<Result<(), StorageError>>,
    },
}

/// What the thread tells the loop.
#[derive(Debug)]
pub enum DiskEvent {
    /// Every write numbered up to this one is durable.
    Durable(u64),
    /// The storage failed; nothing more will be written.
    Failed(StorageError),
}

/// The loop's handle on the writer thread. Dropping it lets the thread finish the
/// writes it was given (syncing them) and waits for it, so the data directory's
/// lock is free when a stopped replica returns.
pub struct Disk {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    log_bytes: Arc<AtomicU64>,
    dir: PathBuf,
}

impl Disk {
    pub fn start(
        storage: Storage,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> std::io::Result<(Disk, async_mpsc::UnboundedReceiver<DiskEvent>)> {
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let (events_tx, events_rx) = async_mpsc::unbounded_channel();
        let log_bytes = Arc::new(AtomicU64::new(storage.stats().log_bytes));
        let bytes = log_bytes.clone();
        let dir = storage.dir().to_owned();
        let thread = std::thread::Builder::new().name("concoord-disk".into()).spawn(move || {
            Writer { storage, metrics, clock, events: events_tx, log_bytes: bytes }.run(jobs_rx)
        })?;
        Ok((Disk { jobs: Some(jobs_tx), thread: Some(thread), log_bytes, dir }, events_rx))
    }

    /// Hands write `seq` to the thread. Writes must come in `seq` order.
    pub fn write(&self, seq: u64, op: PersistOp, sync: bool) {
        if let Some(jobs) = &self.jobs {
            // A send fails only if the thread ended, which it reports itself.
            let _ = jobs.send(Job::Write { seq, op, sync });
        }
    }

    /// Wipes the data directory and records a new identity, after every write
    /// handed over before it. Blocks until it is done (a rare operator event).
    pub fn wipe(&self, identity: Identity) -> Result<(), StorageError> {
        let (done_tx, done_rx) = mpsc::channel();
        let stopped = || StorageError::Io {
            path: self.dir.clone(),
            action: "wipe",
            source: Arc::new(std::io::Error::other("the disk writer has stopped")),
        };
        let Some(jobs) = &self.jobs else { return Err(stopped()) };
        jobs.send(Job::Wipe { identity, done: done_tx }).map_err(|_| stopped())?;
        done_rx.recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// Bytes in the log (written or pending), as of the thread's last write.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Writer {
    storage: Storage,
    metrics: Arc<Metrics>,
    clock: Clock,
    events: async_mpsc::UnboundedSender<DiskEvent>,
    log_bytes: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        // Written but not yet synced (only `sync: false` writes can stay so).
        let mut unsynced = false;
        loop {
            let first = match jobs.recv_timeout(IDLE_FLUSH) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    if unsynced {
                        if let Err(e) = self.sync() {
                            return self.fail(e);
                        }
                        unsynced = false;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if unsynced {
                        let _ = self.sync();
                    }
                    return;
                }
            };
            // Everything that arrived meanwhile goes into the same sync.
            let mut last = None;
            let mut needs_sync = false;
            let mut job = Some(first);
            while let Some(next) = job.take() {
                match next {
                    Job::Write { seq, op, sync } => {
                        if let Err(e) = self.storage.append(&op) {
                            return self.fail(e);
                        }
                        last = Some(seq);
                        needs_sync |= sync;
                        unsynced = true;
                    }
                    Job::Wipe { identity, done } => {
                        // Whatever came before the wipe is durable first, so the
                        // loop's numbering stays true; then the directory is reset.
                        let result = self
                            .sync()
                            .and_then(|()| self.storage.wipe())
                            .and_then(|()| self.storage.write_identity(&identity));
                        unsynced = false;
                        if let Some(seq) = last.take() {
                            if result.is_ok() {
                                let _ = self.events.send(DiskEvent::Durable(seq));
                            }
                        }
                        needs_sync = false;
                        let failed = result.clone().err();
                        let _ = done.send(result);
                        if let Some(e) = failed {
                            return self.fail(e);
                        }
                    }
                }
                job = jobs.try_recv().ok();
            }
            if needs_sync {
                if let Err(e) = self.sync() {
                    return self.fail(e);
                }
                unsynced = false;
                if let Some(seq) = last {
                    let _ = self.events.send(DiskEvent::Durable(seq));
                }
            }
            self.log_bytes.store(self.storage.stats().log_bytes, Ordering::Relaxed);
        }
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let at = self.clock.now();
        self.storage.sync()?;
        let took = self.clock.now().since(at);
        self.metrics.fsync_seconds.observe(took.0 as f64 / 1e6);
        Ok(())
    }

    fn fail(self, e: StorageError) {
        let _ = self.events.send(DiskEvent::Failed(e));
    }
}
