//! The replica's disk writer: a thread that owns the [`Storage`], so the event loop
//! never waits for a write or a sync.
//!
//! The loop hands it writes, numbered in effect order by the `EffectGate`; the
//! thread appends them in that order and syncs (one fdatasync for everything that
//! arrived while the previous one ran: group commit), then reports the highest
//! durable number back to the loop, which releases the effects that waited for it.
//! A write marked `sync: false` (a `Commit` record) asks for no sync of its own: the
//! loop keeps it until it hands over the next write that needs a sync (both go in
//! one message, so a commit point costs the thread no wake-up of its own), or until
//! it has kept it for `IDLE_FLUSH` (`Disk::flush_due`, from the loop's ticks); the
//! thread then writes it with its next sync, or with the idle flush it does when
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
use concoord_wire::Time;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc as async_mpsc;

/// After this long without a write, the thread syncs whatever is only written
/// (unsynced `Commit` records), so an idle replica's disk catches up; the loop hands
/// over the `Commit` records it kept after as long.
pub const IDLE_FLUSH: Duration = Duration::from_millis(50);

enum Job {
    /// Writes in `seq` order; the last may ask for a sync, the others do not.
    Write(Vec<Write>),
    /// Forget everything and take a new identity (a rejoin); answered when done.
    Wipe { identity: Identity, done: mpsc::Sender<Result<(), StorageError>> },
}

struct Write {
    seq: u64,
    op: PersistOp,
    sync: bool,
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
    /// `sync: false` writes not handed over yet, and when the first of them came.
    held: Vec<Write>,
    held_since: Option<Time>,
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
        let disk = Disk {
            jobs: Some(jobs_tx),
            held: Vec::new(),
            held_since: None,
            thread: Some(thread),
            log_bytes,
            dir,
        };
        Ok((disk, events_rx))
    }

    /// Takes write `seq` (at `now`). Writes must come in `seq` order. A write that
    /// needs no sync is kept (see the module documentation); one that does goes to
    /// the thread at once, with every kept write before it.
    pub fn write(&mut self, seq: u64, op: PersistOp, sync: bool, now: Time) {
        self.held.push(Write { seq, op, sync });
        if sync {
            self.hand_over();
        } else {
            self.held_since.get_or_insert(now);
        }
    }

    /// When the kept writes must be handed over (`flush_due`), if any are kept.
    pub fn flush_at(&self) -> Option<Time> {
        self.held_since.map(|at| at + concoord_wire::Span(IDLE_FLUSH.as_micros() as u64))
    }

    /// Hands over the kept writes if they have waited `IDLE_FLUSH`.
    pub fn flush_due(&mut self, now: Time) {
        if self.flush_at().is_some_and(|at| at <= now) {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        self.held_since = None;
        if self.held.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut self.held);
        if let Some(jobs) = &self.jobs {
            // A send fails only if the thread ended, which it reports itself.
            let _ = jobs.send(Job::Write(writes));
        }
    }

    /// Wipes the data directory and records a new identity, after every write
    /// handed over before it. Blocks until it is done (a rare operator event).
    pub fn wipe(&mut self, identity: Identity) -> Result<(), StorageError> {
        self.hand_over();
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
        self.hand_over();
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
                    Job::Write(writes) => {
                        for Write { seq, op, sync } in writes {
                            if let Err(e) = self.storage.append(&op) {
                                return self.fail(e);
                            }
                            last = Some(seq);
                            needs_sync |= sync;
                            unsynced = true;
                        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_paxos::{AcceptedEntry, Ballot, Command, Value};
    use concoord_wire::{ReplicaId, Slot, Span};

    fn accept(slot: u64) -> PersistOp {
        let ballot = Ballot { round: 1, leader: ReplicaId(1) };
        let value = Value { timestamp: Time(slot), commands: vec![Command::App(vec![slot as u8])] };
        PersistOp::Accept(vec![AcceptedEntry { slot: Slot(slot), ballot, value }])
    }

    fn durable(events: &mut async_mpsc::UnboundedReceiver<DiskEvent>) -> u64 {
        match events.blocking_recv() {
            Some(DiskEvent::Durable(seq)) => seq,
            other => panic!("expected a durable report, got {other:?}"),
        }
    }

    #[test]
    fn commit_records_wait_in_the_loop_for_a_sync_write_or_the_idle_flush_and_lose_nothing() {
        let dir = std::env::temp_dir().join(format!("concoord-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (storage, _) = Storage::open(&dir).unwrap();
        let (mut disk, mut events) =
            Disk::start(storage, Arc::new(Metrics::new()), Clock::new()).unwrap();
        let t0 = Time(1_000_000);
        disk.write(1, accept(1), true, t0);
        assert_eq!(durable(&mut events), 1);
        // A commit record stays with the loop: nothing for the thread to wake up for.
        disk.write(2, PersistOp::Commit(Slot(1)), false, t0);
        let due = t0 + Span(IDLE_FLUSH.as_micros() as u64);
        assert_eq!(disk.flush_at(), Some(due));
        disk.flush_due(Time(due.0 - 1));
        assert_eq!(disk.held.len(), 1, "handed over before the idle flush was due");
        // The next write that needs a sync takes it along, in order.
        disk.write(3, accept(2), true, Time(due.0 - 1));
        assert!(disk.held.is_empty() && disk.flush_at().is_none());
        assert_eq!(durable(&mut events), 3);
        // With no such write, the idle flush hands it over.
        disk.write(4, PersistOp::Commit(Slot(2)), false, due);
        disk.flush_due(due + Span(IDLE_FLUSH.as_micros() as u64));
        assert!(disk.held.is_empty());
        // And a kept record is handed over when the disk is dropped, too.
        disk.write(5, accept(3), true, due);
        disk.write(6, PersistOp::Commit(Slot(3)), false, due);
        drop(disk);
        let (_, recovered) = Storage::open(&dir).unwrap();
        assert_eq!(recovered.durable.commit_max, Slot(3));
        assert_eq!(recovered.durable.entries.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
