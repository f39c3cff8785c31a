//! The durable log of one replica (`-w` / `--data-dir DIR`): where the core's
//! `Effect::Persist` operations go, and what `Replica::recover` gets back after a
//! restart.
//!
//! It is an append-only log with group commit (`append` any number of operations,
//! then one `sync`), a snapshot file, an identity file, compaction, and crash
//! recovery that tells a torn tail (expected after a crash: dropped) from damage to
//! acknowledged data (refused). It is not a general key-value store, it is not
//! async (the event loop calls it synchronously between batches), and it does not
//! interpret what it stores beyond folding it the way `DurableState::apply` does.
//!
//! # Files in the data directory (format version 1)
//!
//! - `LOCK`: empty; held with an exclusive `flock` while a `Storage` is open, so two
//!   replicas never share a directory. The lock dies with the process.
//! - `log`: a 12-byte header (the magic `ConCoLog`, then the format version as
//!   `u32` LE), then records: `u32 LE body length | u32 LE crc32 of the body | body`, where the
//!   body is a postcard-encoded `Record` (the log's subset of `PersistOp`: promise,
//!   accept, commit, genesis, cluster). A body is 1 to `RECORD_MAX` bytes. An empty file is
//!   an empty log: the header goes in with the first record.
//! - `snapshot` and `identity`: whole files replaced atomically (write a `.tmp`,
//!   fsync it, rename it, fsync the directory): an 8-byte magic (`ConCoSnp`,
//!   `ConCoIdn`), `u32 LE` format version, `u64 LE` body length, `u32 LE` crc32 of
//!   the body, then the body (postcard `Snapshot`; postcard `IdentityFile`).
//!
//! # Crash safety
//!
//! The log and the snapshot are only ever replaced by renames of fully synced files,
//! and recovery folds the snapshot before the log, dropping log entries the snapshot
//! covers, so a crash between writing the snapshot and compacting the log recovers
//! the same state. `wipe` first replaces the identity with a tombstone, so a crash in
//! the middle of a wipe can never leave an identity next to a partly erased state
//! (that would be acceptor amnesia): `open` finishes an interrupted wipe.

use concoord_paxos::{AcceptedEntry, Ballot, DurableState, Membership, PersistOp, Snapshot};
use concoord_wire::{ClusterId, ReplicaId, Slot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest log record body. A longer length field on disk is corruption.
pub const RECORD_MAX: u32 = 256 << 20;
/// Largest snapshot file body.
pub const SNAPSHOT_MAX: u64 = 4 << 30;
/// Largest identity file body.
pub const IDENTITY_MAX: u64 = 64 << 10;
/// Appended bytes held in memory before `append` hands them to the OS (without a
/// sync); normally `sync` writes them first.
pub const PENDING_MAX: usize = 4 << 20;
/// A log never grows past this size before it is compacted...
pub const COMPACT_LOG_MIN: u64 = 64 << 20;
/// ...unless it is at most this many times the size of the live data it holds.
pub const COMPACT_RATIO: u64 = 4;
/// The log file grows in zero-filled steps of this size, ahead of the records: a
/// sync of a record written over zeros that are already allocated and on disk need
/// not write the file's size or block map too (measured here: about 130 µs per
/// fdatasync instead of 190-230 µs when every sync grew the file). Recovery reads a
/// zero tail as the end of the log.
pub const PREALLOC_CHUNK: u64 = 8 << 20;
/// Compaction writes accepted entries in records of about this size.
const COMPACT_CHUNK_BYTES: u64 = 1 << 20;

const FORMAT_VERSION: u32 = 1;
const LOG_MAGIC: [u8; 8] = *b"ConCoLog";
const SNAPSHOT_MAGIC: [u8; 8] = *b"ConCoSnp";
const IDENTITY_MAGIC: [u8; 8] = *b"ConCoIdn";
const LOG_HEADER_LEN: usize = 12;
const RECORD_HEADER_LEN: usize = 8;
const CHECKED_HEADER_LEN: usize = 24;

const LOCK_FILE: &str = "LOCK";
const LOG_FILE: &str = "log";
const SNAPSHOT_FILE: &str = "snapshot";
const IDENTITY_FILE: &str = "identity";
const TMP_SUFFIX: &str = ".tmp";

/// Who this replica is. Written once when it gets an identity (before its first
/// `append`), and forgotten only by `wipe`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Identity {
    pub replica: ReplicaId,
    pub addr: String,
    pub object_type: String,
}

/// What `Storage::open` found in the data directory.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Recovered {
    /// `None` for a new or wiped directory.
    pub identity: Option<Identity>,
    /// For `Replica::recover`. Entries are in slot order; none is at or below the
    /// snapshot's slot (the snapshot covers them).
    pub durable: DurableState,
    /// Bytes of a torn last write (a crash mid-append) that were cut off the log.
    pub tail_bytes_dropped: u64,
}

/// Counters for tests and status.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StorageStats {
    /// Operations accepted by `append` since `open`.
    pub records_appended: u64,
    /// fdatasyncs done by `sync` (compactions sync on their own and are not counted).
    pub syncs: u64,
    /// Bytes of records in the log, including those appended but not yet written
    /// out (not the preallocated zeros after them).
    pub log_bytes: u64,
    /// Log rewrites, after a snapshot or because the log outgrew its live data.
    pub compactions: u64,
    /// Times the log file was grown by `PREALLOC_CHUNK` zeros.
    pub preallocations: u64,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "data directory {} is in use by another replica (it holds {}); stop that replica or pass another --data-dir",
        .dir.display(),
        .dir.join(LOCK_FILE).display()
    )]
    InUse { dir: PathBuf },
    #[error(
        "disk full while writing {}: the replica stopped so that it never acknowledges what it could not store; free space on that disk and restart the replica",
        .path.display()
    )]
    DiskFull { path: PathBuf },
    #[error(
        "could not {action} {}; the replica stopped so that it never acknowledges what it could not store: check that disk and its permissions, then restart the replica",
        .path.display()
    )]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: Arc<io::Error>,
    },
    #[error(
        "{} is corrupt at byte {offset}: {why}; this replica's acknowledged state is damaged and must not be used: wipe the data directory and let the replica rejoin under a fresh identity",
        .path.display()
    )]
    Corrupt { path: PathBuf, offset: u64, why: String },
    #[error(
        "{} is not a file this build can read: {why}; run the concoord version that wrote it, or wipe the data directory and let the replica rejoin under a fresh identity",
        .path.display()
    )]
    Format { path: PathBuf, why: String },
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes; nothing was written and the replica stopped (this is a bug: report it)")]
    TooLarge { what: &'static str, len: u64, max: u64 },
}

/// Maps an IO error, telling a full disk (or exhausted quota) from other failures.
fn io_error(path: &Path, action: &'static str, error: io::Error) -> StorageError {
    match error.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => StorageError::DiskFull { path: path.to_owned() },
        _ => StorageError::Io { path: path.to_owned(), action, source: Arc::new(error) },
    }
}

/// A log record: the `PersistOp`s that go to the log (a snapshot has its own file).
/// Generic over the entry type so that compaction can write borrowed entries; every
/// `E` encodes exactly like `Record`, which decodes it. Keep the variants in step.
#[derive(Serialize)]
enum RecordOut<'a, E: Serialize> {
    Promise(Ballot),
    Accept(&'a [E]),
    Commit(Slot),
    Genesis(&'a Membership),
    Cluster(ClusterId),
}

#[derive(Debug, Deserialize)]
enum Record {
    Promise(Ballot),
    Accept(Vec<AcceptedEntry>),
    Commit(Slot),
    Genesis(Membership),
    Cluster(ClusterId),
}

/// The body of the identity file. `Wiped` is the tombstone of a wipe in progress.
#[derive(Serialize, Deserialize)]
enum IdentityFile {
    Live(Identity),
    Wiped,
}

/// Postcard size of a value, without encoding it anywhere.
fn encoded_len<T: Serialize>(value: &T) -> u64 {
    // Counting cannot fail for the persisted types (no sequence of unknown length);
    // the count only steers compaction, so 0 would merely be imprecise.
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_or(0, |n: usize| n as u64)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encodes every persisted type into a Vec")
}

fn log_header() -> [u8; LOG_HEADER_LEN] {
    let mut header = [0; LOG_HEADER_LEN];
    header[..8].copy_from_slice(&LOG_MAGIC);
    header[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header
}

/// Appends one framed record to `out`; on error `out` is unchanged.
fn encode_record<E: Serialize>(
    record: &RecordOut<'_, E>,
    out: &mut Vec<u8>,
) -> Result<(), StorageError> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    *out = postcard::to_extend(record, std::mem::take(out))
        .expect("postcard encodes every persisted type into a Vec");
    let body_len = out.len() - start - RECORD_HEADER_LEN;
    if body_len > RECORD_MAX as usize {
        out.truncate(start);
        return Err(StorageError::TooLarge {
            what: "a log record",
            len: body_len as u64,
            max: u64::from(RECORD_MAX),
        });
    }
    assert!(body_len >= 1, "a record body holds at least its variant tag");
    let crc = crc32fast::hash(&out[start + RECORD_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + RECORD_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What starts at one position of a log file.
#[derive(Debug)]
enum RecordAt {
    /// The end of the file: a clean end.
    End,
    Valid {
        record: Record,
        next: usize,
    },
    /// Not a well-formed record: incomplete, implausible length, or bad checksum.
    Bad(String),
    /// The checksum matches but the body does not decode: written wrong, not torn.
    Undecodable(String),
}

fn read_record(bytes: &[u8], pos: usize) -> RecordAt {
    let Some(rest) = bytes.get(pos..) else {
        return RecordAt::Bad(format!("position {pos} is past the end of the file"));
    };
    if rest.is_empty() {
        return RecordAt::End;
    }
    let Some(&[l0, l1, l2, l3, c0, c1, c2, c3]) = rest.get(..RECORD_HEADER_LEN) else {
        return RecordAt::Bad(format!(
            "incomplete record header ({} of {RECORD_HEADER_LEN} bytes)",
            rest.len()
        ));
    };
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if len == 0 {
        return RecordAt::Bad("record with an empty body".to_owned());
    }
    if len > RECORD_MAX {
        return RecordAt::Bad(format!("record length {len} exceeds RECORD_MAX ({RECORD_MAX})"));
    }
    let Some(body) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len as usize) else {
        return RecordAt::Bad(format!("record of {len} bytes runs past the end of the file"));
    };
    if crc32fast::hash(body) != crc {
        return RecordAt::Bad("record checksum mismatch".to_owned());
    }
    match postcard::take_from_bytes::<Record>(body) {
        Ok((record, [])) => RecordAt::Valid { record, next: pos + RECORD_HEADER_LEN + body.len() },
        Ok((_, extra)) => RecordAt::Undecodable(format!("{} bytes after the record", extra.len())),
        Err(e) => RecordAt::Undecodable(e.to_string()),
    }
}

/// Why a log could not be read (the caller adds the path).
#[derive(Debug, PartialEq, Eq)]
enum ScanFailure {
    Format(String),
    Corrupt { offset: u64, why: String },
}

/// Replays a whole log file into `mirror`. Returns the length of the good prefix:
/// `bytes.len()` for a clean log, less if the tail is torn (the caller truncates).
fn scan_log(bytes: &[u8], mirror: &mut Mirror) -> Result<usize, ScanFailure> {
    let header = log_header();
    if bytes.iter().all(|b| *b == 0) {
        // Empty, or preallocated by a process that crashed before its first record.
        return Ok(0);
    }
    if bytes.len() < LOG_HEADER_LEN {
        // A crash during the very first write can leave part of the header.
        return if header.starts_with(bytes) {
            Ok(0)
        } else {
            Err(ScanFailure::Format("too short for a log header and not the start of one".into()))
        };
    }
    if bytes[..8] != LOG_MAGIC {
        return Err(ScanFailure::Format("it does not start with the concoord log magic".into()));
    }
    if bytes[..LOG_HEADER_LEN] != header {
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        return Err(ScanFailure::Format(format!(
            "log format version {version}; this build reads version {FORMAT_VERSION}"
        )));
    }
    let mut pos = LOG_HEADER_LEN;
    loop {
        match read_record(bytes, pos) {
            RecordAt::End => return Ok(pos),
            RecordAt::Valid { record, next } => {
                mirror.apply(record);
                pos = next;
            }
            RecordAt::Undecodable(why) => {
                return Err(ScanFailure::Corrupt {
                    offset: pos as u64,
                    why: format!("a record with a valid checksum does not decode ({why})"),
                });
            }
            RecordAt::Bad(_) if bytes[pos..].iter().all(|b| *b == 0) => return Ok(pos),
            RecordAt::Bad(why) => {
                // A torn tail has nothing valid after it. A valid record after a bad
                // one means acknowledged data was damaged: never drop it silently.
                let next_valid = (pos + 1..bytes.len())
                    .find(|&q| matches!(read_record(bytes, q), RecordAt::Valid { .. }));
                return match next_valid {
                    None => Ok(pos),
                    Some(q) => Err(ScanFailure::Corrupt {
                        offset: pos as u64,
                        why: format!("{why}, yet a valid record starts at byte {q}"),
                    }),
                };
            }
        }
    }
}

/// What the log and snapshot hold, kept in memory so compaction needs no re-read.
/// It folds like `DurableState::apply`, except that an entry at or below the
/// snapshot's slot is never kept (the snapshot covers it; the core ignores it too).
#[derive(Debug, Default)]
struct Mirror {
    promised: Ballot,
    entries: BTreeMap<Slot, AcceptedEntry>,
    commit_max: Slot,
    genesis: Option<Membership>,
    cluster: Option<ClusterId>,
    snapshot_slot: Option<Slot>,
    /// Encoded size of `entries` and `genesis`: about what a compacted log holds.
    live_bytes: u64,
}

impl Mirror {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Promise(ballot) => self.promise(ballot),
            Record::Accept(entries) => entries.into_iter().for_each(|e| self.accept(e)),
            Record::Commit(slot) => self.commit(slot),
            Record::Genesis(membership) => self.set_genesis(membership),
            Record::Cluster(cluster) => self.cluster = Some(cluster),
        }
    }

    fn apply_op(&mut self, op: &PersistOp) {
        match op {
            PersistOp::Promise(ballot) => self.promise(*ballot),
            PersistOp::Accept(entries) => entries.iter().for_each(|e| self.accept(e.clone())),
            PersistOp::Commit(slot) => self.commit(*slot),
            PersistOp::Genesis(membership) => self.set_genesis(membership.clone()),
            PersistOp::Cluster(cluster) => self.cluster = Some(*cluster),
            PersistOp::Snapshot(snapshot) => {
                self.snapshot(snapshot.slot);
            }
        }
    }

    fn promise(&mut self, ballot: Ballot) {
        self.promised = self.promised.max(ballot);
    }

    fn accept(&mut self, entry: AcceptedEntry) {
        // The entry doubles as a promise even when the snapshot covers its slot.
        self.promised = self.promised.max(entry.ballot);
        if self.snapshot_slot.is_some_and(|s| entry.slot <= s) {
            return;
        }
        self.live_bytes += encoded_len(&entry);
        if let Some(old) = self.entries.insert(entry.slot, entry) {
            self.live_bytes = self.live_bytes.saturating_sub(encoded_len(&old));
        }
    }

    fn commit(&mut self, slot: Slot) {
        self.commit_max = self.commit_max.max(slot);
    }

    fn set_genesis(&mut self, membership: Membership) {
        if let Some(old) = &self.genesis {
            self.live_bytes = self.live_bytes.saturating_sub(encoded_len(old));
        }
        self.live_bytes += encoded_len(&membership);
        self.genesis = Some(membership);
    }

    /// Returns false, changing nothing, for a snapshot no newer than the current one.
    fn snapshot(&mut self, slot: Slot) -> bool {
        if self.snapshot_slot.is_some_and(|s| s >= slot) {
            return false;
        }
        let covered: Vec<Slot> = self.entries.range(..=slot).map(|(s, _)| *s).collect();
        for s in covered {
            if let Some(old) = self.entries.remove(&s) {
                self.live_bytes = self.live_bytes.saturating_sub(encoded_len(&old));
            }
        }
        self.commit_max = self.commit_max.max(slot);
        self.snapshot_slot = Some(slot);
        true
    }

    fn to_durable(&self, snapshot: Option<Snapshot>) -> DurableState {
        assert_eq!(snapshot.as_ref().map(|s| s.slot), self.snapshot_slot);
        DurableState {
            promised: self.promised,
            entries: self.entries.values().cloned().collect(),
            commit_max: self.commit_max,
            snapshot,
            genesis: self.genesis.clone(),
            cluster: self.cluster,
        }
    }
}

/// The open data directory of one replica. See the module documentation.
pub struct Storage {
    dir: PathBuf,
    log_path: PathBuf,
    /// Held (locked) for as long as the storage is open.
    _lock: File,
    /// The log, opened for reading and appending.
    log: File,
    /// Bytes of records in the log file (written to the OS), not counting `pending`.
    file_len: u64,
    /// The file's size: records, then zeros up to here (preallocated).
    alloc_len: u64,
    /// `PREALLOC_CHUNK`; tests change it.
    prealloc_chunk: u64,
    /// Appended records not yet handed to the OS.
    pending: Vec<u8>,
    /// Something was appended since the last sync.
    dirty: bool,
    mirror: Mirror,
    stats: StorageStats,
    /// The first write error: once set, every write returns it again. After a failed
    /// fsync the kernel may have dropped the dirty pages, so a retry could "succeed"
    /// without the data ever reaching the disk.
    poisoned: Option<StorageError>,
    /// `COMPACT_LOG_MIN`; tests lower it.
    compact_log_min: u64,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .field("poisoned", &self.poisoned.is_some())
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens (creating if needed) the data directory and recovers what it holds.
    pub fn open(dir: &Path) -> Result<(Storage, Recovered), StorageError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the data directory", e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsync_dir(parent)?;
            }
        }
        let lock = lock_dir(dir)?;
        for name in [LOG_FILE, SNAPSHOT_FILE, IDENTITY_FILE] {
            // Leftovers of a crash in the middle of an atomic replace.
            remove_if_exists(&dir.join(format!("{name}{TMP_SUFFIX}")))?;
        }

        let log_path = dir.join(LOG_FILE);
        let log_existed = log_path.exists();
        // Not O_APPEND: records are written at their offset, over the zeros of the
        // preallocated tail.
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(|e| io_error(&log_path, "open", e))?;
        if !log_existed {
            fsync_dir(dir)?;
        }

        let identity_path = dir.join(IDENTITY_FILE);
        let identity = match read_checked(&identity_path, IDENTITY_MAGIC, IDENTITY_MAX)? {
            None => None,
            Some((body, offset)) => match decode_whole::<IdentityFile>(&body) {
                Ok(IdentityFile::Live(identity)) => Some(identity),
                Ok(IdentityFile::Wiped) => {
                    tracing::warn!(dir = %dir.display(), "finishing an interrupted wipe");
                    finish_wipe(dir, &log)?;
                    None
                }
                Err(why) => {
                    return Err(StorageError::Corrupt { path: identity_path, offset, why });
                }
            },
        };

        let mut mirror = Mirror::default();
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let snapshot = match read_checked(&snapshot_path, SNAPSHOT_MAGIC, SNAPSHOT_MAX)? {
            None => None,
            Some((body, offset)) => match decode_whole::<Snapshot>(&body) {
                Ok(snapshot) => Some(snapshot),
                Err(why) => return Err(StorageError::Corrupt { path: snapshot_path, offset, why }),
            },
        };
        if let Some(snapshot) = &snapshot {
            mirror.snapshot(snapshot.slot);
        }

        let mut bytes = Vec::new();
        let len = log.metadata().map_err(|e| io_error(&log_path, "read", e))?.len();
        (&log).take(len).read_to_end(&mut bytes).map_err(|e| io_error(&log_path, "read", e))?;
        let good_len = scan_log(&bytes, &mut mirror).map_err(|failure| match failure {
            ScanFailure::Format(why) => StorageError::Format { path: log_path.clone(), why },
            ScanFailure::Corrupt { offset, why } => {
                StorageError::Corrupt { path: log_path.clone(), offset, why }
            }
        })?;
        // Zeros after the last record are the preallocated tail, not a torn write.
        let zero_tail = bytes[good_len..].iter().all(|b| *b == 0);
        let tail_bytes_dropped = if zero_tail { 0 } else { (bytes.len() - good_len) as u64 };
        if tail_bytes_dropped > 0 {
            // Expected after a crash; the caller reports it.
            log.set_len(good_len as u64).map_err(|e| io_error(&log_path, "truncate", e))?;
            log.sync_all().map_err(|e| io_error(&log_path, "sync", e))?;
        }

        let recovered =
            Recovered { identity, durable: mirror.to_durable(snapshot), tail_bytes_dropped };
        let mut storage = Storage {
            dir: dir.to_owned(),
            log_path,
            _lock: lock,
            log,
            file_len: good_len as u64,
            alloc_len: if zero_tail { bytes.len() as u64 } else { good_len as u64 },
            // The unit tests read and cut log files byte by byte: there, only the
            // tests of preallocation turn it on.
            prealloc_chunk: if cfg!(test) { 0 } else { PREALLOC_CHUNK },
            pending: Vec::new(),
            dirty: false,
            mirror,
            stats: StorageStats::default(),
            poisoned: None,
            compact_log_min: COMPACT_LOG_MIN,
        };
        let result = storage.maybe_compact();
        storage.fail(result)?;
        Ok((storage, recovered))
    }

    /// Records this replica's identity (written atomically: temp file, fsync, rename,
    /// fsync dir). Call it before the first `append`.
    pub fn write_identity(&mut self, identity: &Identity) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let body = encode(&IdentityFile::Live(identity.clone()));
        let result = write_checked(&self.dir, IDENTITY_FILE, IDENTITY_MAGIC, &body, IDENTITY_MAX);
        self.fail(result)
    }

    /// Appends one operation to the log: held in memory (handed to the OS once
    /// `PENDING_MAX` bytes accumulate) until `sync`. A `Snapshot` is the exception:
    /// it is written and synced at once, and the log is compacted behind it. A
    /// snapshot no newer than the current one is ignored.
    pub fn append(&mut self, op: &PersistOp) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let result = self.append_inner(op);
        self.fail(result)
    }

    fn append_inner(&mut self, op: &PersistOp) -> Result<(), StorageError> {
        let record = match op {
            PersistOp::Snapshot(snapshot) => return self.append_snapshot(snapshot),
            PersistOp::Promise(ballot) => RecordOut::Promise(*ballot),
            PersistOp::Accept(entries) => RecordOut::Accept(entries.as_slice()),
            PersistOp::Commit(slot) => RecordOut::Commit(*slot),
            PersistOp::Genesis(membership) => RecordOut::Genesis(membership),
            PersistOp::Cluster(cluster) => RecordOut::Cluster(*cluster),
        };
        if self.file_len == 0 && self.pending.is_empty() {
            self.pending.extend_from_slice(&log_header());
        }
        encode_record(&record, &mut self.pending)?;
        self.mirror.apply_op(op);
        self.stats.records_appended += 1;
        self.dirty = true;
        if self.pending.len() >= PENDING_MAX {
            self.write_pending()?;
        }
        Ok(())
    }

    fn append_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        if self.mirror.snapshot_slot.is_some_and(|s| s >= snapshot.slot) {
            return Ok(());
        }
        let body = encode(snapshot);
        write_checked(&self.dir, SNAPSHOT_FILE, SNAPSHOT_MAGIC, &body, SNAPSHOT_MAX)?;
        self.mirror.snapshot(snapshot.slot);
        self.stats.records_appended += 1;
        // The compacted log holds everything appended so far, synced.
        self.compact()
    }

    /// One fdatasync for everything appended since the last sync (group commit).
    /// No-op if nothing was appended.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        if !self.dirty {
            return Ok(());
        }
        let result = self.sync_inner();
        self.fail(result)
    }

    fn sync_inner(&mut self) -> Result<(), StorageError> {
        self.write_pending()?;
        self.log.sync_data().map_err(|e| io_error(&self.log_path, "sync", e))?;
        self.stats.syncs += 1;
        self.dirty = false;
        self.maybe_compact()
    }

    /// Forgets everything (identity, log, snapshot): used when the replica must
    /// rejoin under a fresh identity. Crash-safe: see the module documentation.
    pub fn wipe(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let result = self.wipe_inner();
        self.fail(result)
    }

    fn wipe_inner(&mut self) -> Result<(), StorageError> {
        // From here on the directory holds no identity: `open` would finish the wipe.
        let tombstone = encode(&IdentityFile::Wiped);
        write_checked(&self.dir, IDENTITY_FILE, IDENTITY_MAGIC, &tombstone, IDENTITY_MAX)?;
        finish_wipe(&self.dir, &self.log)?;
        self.file_len = 0;
        self.alloc_len = 0;
        self.pending.clear();
        self.dirty = false;
        self.mirror = Mirror::default();
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters for tests and status: records appended, syncs done, bytes in the log.
    pub fn stats(&self) -> StorageStats {
        StorageStats { log_bytes: self.file_len + self.pending.len() as u64, ..self.stats }
    }

    fn check_poisoned(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Poisons the storage with the first error it sees.
    fn fail<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(error) = &result {
            self.poisoned.get_or_insert_with(|| error.clone());
        }
        result
    }

    fn write_pending(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let end = self.file_len + self.pending.len() as u64;
        if end > self.alloc_len && self.prealloc_chunk > 0 {
            self.preallocate(end)?;
        }
        self.log
            .write_all_at(&self.pending, self.file_len)
            .map_err(|e| io_error(&self.log_path, "write", e))?;
        self.file_len = end;
        self.alloc_len = self.alloc_len.max(end);
        self.pending.clear();
        Ok(())
    }

    /// Grows the file with zeros past `end`, to the next multiple of the chunk, and
    /// makes the new size durable, so the syncs of the records written over those
    /// zeros carry data only.
    fn preallocate(&mut self, end: u64) -> Result<(), StorageError> {
        let chunk = self.prealloc_chunk;
        let target = end.div_ceil(chunk).saturating_add(1).saturating_mul(chunk);
        let zeros = vec![0u8; (1 << 20).min(chunk) as usize];
        let mut at = self.alloc_len.max(self.file_len);
        while at < target {
            let n = zeros.len().min((target - at) as usize);
            self.log
                .write_all_at(&zeros[..n], at)
                .map_err(|e| io_error(&self.log_path, "preallocate", e))?;
            at += n as u64;
        }
        self.log.sync_all().map_err(|e| io_error(&self.log_path, "sync", e))?;
        self.alloc_len = target;
        self.stats.preallocations += 1;
        Ok(())
    }

    #[cfg(test)]
    fn set_prealloc_chunk(&mut self, chunk: u64) {
        self.prealloc_chunk = chunk;
    }

    fn maybe_compact(&mut self) -> Result<(), StorageError> {
        let live = LOG_HEADER_LEN as u64 + self.mirror.live_bytes;
        let log_bytes = self.stats().log_bytes;
        if log_bytes > self.compact_log_min && log_bytes > COMPACT_RATIO.saturating_mul(live) {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the log to hold only the mirror (promise, genesis, commit point,
    /// entries above the snapshot), synced, and renames it over the old log. What
    /// was appended but not synced is in the mirror, so it is durable afterwards.
    fn compact(&mut self) -> Result<(), StorageError> {
        let tmp_path = self.dir.join(format!("{LOG_FILE}{TMP_SUFFIX}"));
        remove_if_exists(&tmp_path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| io_error(&tmp_path, "create", e))?;
        let mut written = 0u64;
        let mut flush = |file: &mut File, out: &mut Vec<u8>| -> Result<(), StorageError> {
            file.write_all(out).map_err(|e| io_error(&tmp_path, "write", e))?;
            written += out.len() as u64;
            out.clear();
            Ok(())
        };

        let mirror = &self.mirror;
        let mut out = log_header().to_vec();
        if mirror.promised != Ballot::ZERO {
            encode_record(&RecordOut::<AcceptedEntry>::Promise(mirror.promised), &mut out)?;
        }
        if let Some(cluster) = mirror.cluster {
            encode_record(&RecordOut::<AcceptedEntry>::Cluster(cluster), &mut out)?;
        }
        if let Some(genesis) = &mirror.genesis {
            encode_record(&RecordOut::<AcceptedEntry>::Genesis(genesis), &mut out)?;
        }
        if mirror.commit_max != Slot::ZERO {
            encode_record(&RecordOut::<AcceptedEntry>::Commit(mirror.commit_max), &mut out)?;
        }
        let mut chunk: Vec<&AcceptedEntry> = Vec::new();
        let mut chunk_bytes = 0;
        for entry in mirror.entries.values() {
            let len = encoded_len(entry);
            if !chunk.is_empty() && chunk_bytes + len > COMPACT_CHUNK_BYTES {
                encode_record(&RecordOut::Accept(chunk.as_slice()), &mut out)?;
                chunk.clear();
                chunk_bytes = 0;
                flush(&mut file, &mut out)?;
            }
            chunk.push(entry);
            chunk_bytes += len;
        }
        if !chunk.is_empty() {
            encode_record(&RecordOut::Accept(chunk.as_slice()), &mut out)?;
        }
        flush(&mut file, &mut out)?;
        file.sync_all().map_err(|e| io_error(&tmp_path, "sync", e))?;
        fs::rename(&tmp_path, &self.log_path).map_err(|e| io_error(&tmp_path, "rename", e))?;
        fsync_dir(&self.dir)?;

        self.log = file;
        self.file_len = written;
        self.alloc_len = written;
        self.pending.clear();
        self.dirty = false;
        self.stats.compactions += 1;
        Ok(())
    }
}

/// Takes the directory's lock, or says who holds it. (`File::try_lock`, stable since
/// Rust 1.89, the workspace's MSRV; `flock` through `libc` would need `unsafe`.)
fn lock_dir(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error(&path, "open", e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StorageError::InUse { dir: dir.to_owned() }),
        Err(TryLockError::Error(e)) => Err(io_error(&path, "lock", e)),
    }
}

fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, "sync the directory", e))
}

fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(path, "remove", e)),
        _ => Ok(()),
    }
}

/// The second half of a wipe, once the identity file is a tombstone (or gone).
fn finish_wipe(dir: &Path, log: &File) -> Result<(), StorageError> {
    let log_path = dir.join(LOG_FILE);
    log.set_len(0).map_err(|e| io_error(&log_path, "truncate", e))?;
    log.sync_all().map_err(|e| io_error(&log_path, "sync", e))?;
    remove_if_exists(&dir.join(SNAPSHOT_FILE))?;
    fsync_dir(dir)?;
    // Only now may the tombstone go: the state it guards is gone.
    remove_if_exists(&dir.join(IDENTITY_FILE))?;
    fsync_dir(dir)
}

/// Replaces `dir/name` atomically with a checked file holding `body`.
fn write_checked(
    dir: &Path,
    name: &str,
    magic: [u8; 8],
    body: &[u8],
    max: u64,
) -> Result<(), StorageError> {
    if body.len() as u64 > max {
        return Err(StorageError::TooLarge { what: "a file body", len: body.len() as u64, max });
    }
    let mut bytes = Vec::with_capacity(CHECKED_HEADER_LEN + body.len());
    bytes.extend_from_slice(&magic);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    bytes.extend_from_slice(body);

    let path = dir.join(name);
    let tmp_path = dir.join(format!("{name}{TMP_SUFFIX}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp_path)
        .map_err(|e| io_error(&tmp_path, "create", e))?;
    file.write_all(&bytes).map_err(|e| io_error(&tmp_path, "write", e))?;
    file.sync_all().map_err(|e| io_error(&tmp_path, "sync", e))?;
    drop(file);
    fs::rename(&tmp_path, &path).map_err(|e| io_error(&tmp_path, "rename", e))?;
    fsync_dir(dir)
}

/// Reads a checked file: `None` if it does not exist, else its verified body and
/// the body's offset in the file (for error messages).
fn read_checked(
    path: &Path,
    magic: [u8; 8],
    max: u64,
) -> Result<Option<(Vec<u8>, u64)>, StorageError> {
    let corrupt = |offset: u64, why: String| StorageError::Corrupt {
        path: path.to_owned(),
        offset,
        why: format!("{why} (the file is replaced atomically, so it cannot be torn)"),
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "open", e)),
    };
    let len = file.metadata().map_err(|e| io_error(path, "read", e))?.len();
    if len > CHECKED_HEADER_LEN as u64 + max {
        return Err(corrupt(0, format!("{len} bytes is more than the limit of {max}")));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| io_error(path, "read", e))?;
    let Some((header, body)) = bytes.split_at_checked(CHECKED_HEADER_LEN) else {
        return Err(corrupt(0, format!("{} bytes is shorter than the header", bytes.len())));
    };
    if header[..8] != magic {
        return Err(StorageError::Format {
            path: path.to_owned(),
            why: "it does not start with the expected concoord magic".to_owned(),
        });
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(StorageError::Format {
            path: path.to_owned(),
            why: format!("format version {version}; this build reads version {FORMAT_VERSION}"),
        });
    }
    let mut len_bytes = [0; 8];
    len_bytes.copy_from_slice(&header[12..20]);
    let body_len = u64::from_le_bytes(len_bytes);
    let crc = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);
    if body_len != body.len() as u64 {
        return Err(corrupt(
            12,
            format!("the header says {body_len} body bytes but {} follow", body.len()),
        ));
    }
    if crc32fast::hash(body) != crc {
        return Err(corrupt(CHECKED_HEADER_LEN as u64, "checksum mismatch".to_owned()));
    }
    Ok(Some((body.to_vec(), CHECKED_HEADER_LEN as u64)))
}

/// Decodes a body that must hold exactly one value.
fn decode_whole<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, extra)) => Err(format!("{} bytes follow the encoded value", extra.len())),
        Err(e) => Err(format!("a body with a valid checksum does not decode ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_paxos::{Command, Member, Schedule, Value};
    use concoord_wire::Time;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("concoord-storage-{}-{n}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        fn log(&self) -> PathBuf {
            self.0.join(LOG_FILE)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ballot(round: u64) -> Ballot {
        Ballot { round, leader: ReplicaId(2) }
    }

    fn entry(slot: u64, round: u64) -> AcceptedEntry {
        let payload = format!("command at slot {slot}, round {round}").into_bytes();
        AcceptedEntry {
            slot: Slot(slot),
            ballot: ballot(round),
            value: Value { timestamp: Time(1_000 + slot), commands: vec![Command::App(payload)] },
        }
    }

    fn membership() -> Membership {
        Membership::voters((1..=3).map(|i| Member::new(ReplicaId(i), format!("h{i}:14000"))))
    }

    fn snapshot(slot: u64) -> Snapshot {
        Snapshot {
            slot: Slot(slot),
            data: vec![7; 100],
            schedule: Schedule::starting_with(membership()),
            timestamp: Time(1_000 + slot),
        }
    }

    fn identity() -> Identity {
        Identity { replica: ReplicaId(2), addr: "h2:14000".into(), object_type: "Counter".into() }
    }

    /// A mix of every log operation, with an overwritten slot and a raised promise.
    fn ops() -> Vec<PersistOp> {
        vec![
            PersistOp::Genesis(membership()),
            PersistOp::Promise(ballot(1)),
            PersistOp::Accept(vec![entry(1, 1), entry(2, 1)]),
            PersistOp::Commit(Slot(1)),
            PersistOp::Accept(vec![entry(3, 1)]),
            PersistOp::Promise(ballot(3)),
            PersistOp::Accept(vec![entry(2, 4), entry(4, 4)]),
            PersistOp::Commit(Slot(3)),
        ]
    }

    /// What `DurableState::apply` makes of `ops`, entries in slot order as `open`
    /// returns them.
    fn folded(ops: &[PersistOp]) -> DurableState {
        let mut state = DurableState::default();
        ops.iter().for_each(|op| state.apply(op));
        state.entries.sort_by_key(|e| e.slot);
        state
    }

    /// Appends every op and syncs; returns the log length before each op.
    fn write_ops(storage: &mut Storage, ops: &[PersistOp]) -> Vec<u64> {
        let mut starts = Vec::new();
        for op in ops {
            storage.sync().unwrap();
            starts.push(storage.stats().log_bytes);
            storage.append(op).unwrap();
        }
        storage.sync().unwrap();
        starts
    }

    /// A new directory whose log holds exactly `bytes`.
    fn dir_with_log(name: &str, bytes: &[u8]) -> TempDir {
        let dir = TempDir::new(name);
        fs::write(dir.log(), bytes).unwrap();
        dir
    }

    #[test]
    fn round_trip_matches_durable_state_apply() {
        let dir = TempDir::new("round-trip");
        let (mut storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.durable, DurableState::default());
        assert_eq!(recovered.identity, None);
        write_ops(&mut storage, &ops());
        drop(storage);

        let (_storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.durable, folded(&ops()));
        assert_eq!(recovered.durable.promised, ballot(4));
        assert_eq!(recovered.durable.entries[1], entry(2, 4));
        assert_eq!(recovered.tail_bytes_dropped, 0);
    }

    #[test]
    fn unsynced_appends_reach_the_file_only_at_sync() {
        let dir = TempDir::new("unsynced");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        storage.set_prealloc_chunk(4096);
        storage.append(&PersistOp::Promise(ballot(1))).unwrap();
        assert_eq!(fs::metadata(dir.log()).unwrap().len(), 0);
        storage.sync().unwrap();
        assert_eq!(fs::metadata(dir.log()).unwrap().len(), 8192);
        let on_disk = fs::read(dir.log()).unwrap();
        let records = storage.stats().log_bytes as usize;
        assert!(on_disk[..records].starts_with(b"ConCoLog"));
        assert!(on_disk[records..].iter().all(|b| *b == 0), "zeros after the records");
    }

    #[test]
    fn the_log_grows_in_zeroed_chunks_and_a_zero_tail_is_its_end() {
        let dir = TempDir::new("prealloc");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        storage.set_prealloc_chunk(1024);
        let mut all = vec![PersistOp::Promise(ballot(1))];
        all.extend((1..=100).map(|s| PersistOp::Accept(vec![entry(s, 1)])));
        all.push(PersistOp::Commit(Slot(90)));
        write_ops(&mut storage, &all);
        let stats = storage.stats();
        assert!(stats.preallocations >= 2, "{stats:?}");
        let file = fs::metadata(dir.log()).unwrap().len();
        assert!(file > stats.log_bytes && file.is_multiple_of(1024), "{file} {stats:?}");
        drop(storage);
        let (mut storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.durable, folded(&all));
        assert_eq!(recovered.tail_bytes_dropped, 0, "zeros are no torn tail");
        assert_eq!(fs::metadata(dir.log()).unwrap().len(), file, "the zero tail is kept");
        // Appends go after the last record, over the zeros, not after them.
        storage.append(&PersistOp::Commit(Slot(95))).unwrap();
        storage.sync().unwrap();
        drop(storage);
        let (_storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.durable.commit_max, Slot(95));
        assert_eq!(recovered.durable.entries.len(), 100);
    }

    #[test]
    fn a_torn_record_before_a_zero_tail_is_dropped_and_an_all_zero_log_is_empty() {
        let dir = TempDir::new("prealloc-torn-source");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        storage.set_prealloc_chunk(0);
        let all = ops();
        let starts = write_ops(&mut storage, &all);
        drop(storage);
        let full = fs::read(dir.log()).unwrap();
        let last_start = *starts.last().unwrap() as usize;
        let expected = folded(&all[..all.len() - 1]);
        for cut in last_start + 1..full.len() {
            let mut bytes = full[..cut].to_vec();
            bytes.resize(full.len() + 4096, 0);
            let torn = dir_with_log("prealloc-torn", &bytes);
            let (_storage, recovered) = Storage::open(torn.path()).unwrap();
            assert_eq!(recovered.durable, expected, "cut at {cut}");
            // A cut that kept only zero bytes of the record is a zero tail.
            let dropped = if bytes[last_start..].iter().all(|b| *b == 0) {
                0
            } else {
                (bytes.len() - last_start) as u64
            };
            assert_eq!(recovered.tail_bytes_dropped, dropped, "cut at {cut}");
        }
        // A crash after the first preallocation, before the first record.
        let zeros = dir_with_log("prealloc-zeros", &[0u8; 8192]);
        let (mut storage, recovered) = Storage::open(zeros.path()).unwrap();
        assert_eq!(recovered.durable, DurableState::default());
        assert_eq!(recovered.tail_bytes_dropped, 0);
        storage.append(&PersistOp::Promise(ballot(3))).unwrap();
        storage.sync().unwrap();
        drop(storage);
        let (_storage, recovered) = Storage::open(zeros.path()).unwrap();
        assert_eq!(recovered.durable.promised, ballot(3));
    }

    #[test]
    fn borrowed_and_owned_records_encode_alike() {
        // Compaction writes `RecordOut<&AcceptedEntry>`, `append` writes
        // `RecordOut<AcceptedEntry>`, recovery reads `Record`: one format.
        let entries = vec![entry(5, 2), entry(6, 2)];
        let refs: Vec<&AcceptedEntry> = entries.iter().collect();
        let owned = encode(&RecordOut::Accept(entries.as_slice()));
        assert_eq!(owned, encode(&RecordOut::Accept(refs.as_slice())));
        let Ok(Record::Accept(decoded)) = postcard::from_bytes::<Record>(&owned) else {
            panic!("an accept record decodes as an accept");
        };
        assert_eq!(decoded, entries);
        let genesis = encode(&RecordOut::<AcceptedEntry>::Genesis(&membership()));
        assert!(
            matches!(postcard::from_bytes(&genesis), Ok(Record::Genesis(m)) if m == membership())
        );
    }

    #[test]
    fn snapshot_drops_covered_entries_and_shrinks_the_log() {
        let dir = TempDir::new("snapshot");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        let mut all = vec![PersistOp::Promise(ballot(1))];
        all.extend((1..=20).map(|s| PersistOp::Accept(vec![entry(s, 1)])));
        all.push(PersistOp::Commit(Slot(15)));
        write_ops(&mut storage, &all);
        let before = fs::metadata(dir.log()).unwrap().len();

        let snap = [PersistOp::Snapshot(snapshot(10)), PersistOp::Snapshot(snapshot(5))];
        write_ops(&mut storage, &snap);
        all.extend(snap);
        assert_eq!(storage.stats().compactions, 1, "the older snapshot is ignored");
        let after = fs::metadata(dir.log()).unwrap().len();
        assert!(after < before, "log shrank from {before} to {after} bytes");
        assert_eq!(after, storage.stats().log_bytes);
        drop(storage);

        let (_storage, recovered) = Storage::open(dir.path()).unwrap();
        let durable = recovered.durable;
        assert_eq!(durable, folded(&all));
        assert_eq!(durable.snapshot, Some(snapshot(10)));
        let slots: Vec<u64> = durable.entries.iter().map(|e| e.slot.0).collect();
        assert_eq!(slots, (11..=20).collect::<Vec<_>>());
        assert_eq!(durable.commit_max, Slot(15));
        assert_eq!(durable.promised, ballot(1));
    }

    #[test]
    fn snapshot_makes_earlier_unsynced_appends_durable() {
        let dir = TempDir::new("snapshot-unsynced");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        let all = [
            PersistOp::Accept(vec![entry(10, 1), entry(11, 1)]),
            PersistOp::Commit(Slot(10)),
            PersistOp::Snapshot(snapshot(10)),
        ];
        all.iter().for_each(|op| storage.append(op).unwrap());
        assert_eq!(storage.stats().syncs, 0);
        drop(storage);
        let (_storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.durable, folded(&all));
        assert_eq!(recovered.durable.entries, vec![entry(11, 1)]);
    }

    #[test]
    fn crash_between_snapshot_and_compaction_recovers_the_same_state() {
        let dir = TempDir::new("snapshot-crash");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        let mut all: Vec<PersistOp> =
            (1..=12).map(|s| PersistOp::Accept(vec![entry(s, 1)])).collect();
        write_ops(&mut storage, &all);
        let old_log = fs::read(dir.log()).unwrap();
        write_ops(&mut storage, &[PersistOp::Snapshot(snapshot(10))]);
        all.push(PersistOp::Snapshot(snapshot(10)));
        drop(storage);
        // The snapshot file is renamed into place before the log is: put the
        // uncompacted log back, as a crash between the two renames would leave it.
        fs::write(dir.log(), old_log).unwrap();

        let (_storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.durable, folded(&all));
        assert_eq!(recovered.durable.entries.len(), 2);
    }

    #[test]
    fn a_log_that_outgrows_its_live_data_is_compacted() {
        let dir = TempDir::new("size-compaction");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        storage.compact_log_min = 4096;
        let mut all = Vec::new();
        for round in 1..=400 {
            // The same two slots, over and over: the live data stays tiny.
            let op = PersistOp::Accept(vec![entry(1, round), entry(2, round)]);
            storage.append(&op).unwrap();
            storage.sync().unwrap();
            all.push(op);
            assert!(storage.stats().log_bytes <= 4096 + 300, "{:?}", storage.stats());
        }
        // About 110 bytes a round, so a compaction every 37 rounds or so.
        assert!(storage.stats().compactions >= 8, "{:?}", storage.stats());
        drop(storage);
        let (_storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.durable, folded(&all));
    }

    #[test]
    fn torn_tail_is_truncated_at_every_offset() {
        let dir = TempDir::new("torn-source");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        let all = ops();
        let starts = write_ops(&mut storage, &all);
        drop(storage);
        let full = fs::read(dir.log()).unwrap();
        let last_start = *starts.last().unwrap() as usize;
        let expected = folded(&all[..all.len() - 1]);

        for cut in last_start + 1..full.len() {
            let torn = dir_with_log("torn", &full[..cut]);
            let (mut storage, recovered) = Storage::open(torn.path()).unwrap();
            assert_eq!(recovered.durable, expected, "cut at {cut}");
            assert_eq!(recovered.tail_bytes_dropped, (cut - last_start) as u64);
            assert_eq!(fs::metadata(torn.log()).unwrap().len(), last_start as u64);
            // Later appends land right after the good prefix.
            storage.append(&PersistOp::Commit(Slot(4))).unwrap();
            storage.sync().unwrap();
            drop(storage);
            let (_storage, recovered) = Storage::open(torn.path()).unwrap();
            assert_eq!(recovered.tail_bytes_dropped, 0, "cut at {cut}");
            assert_eq!(recovered.durable.commit_max, Slot(4));
            assert_eq!(recovered.durable.entries, expected.entries);
        }
    }

    #[test]
    fn torn_header_is_an_empty_log_and_a_foreign_file_is_refused() {
        for cut in 1..LOG_HEADER_LEN {
            let torn = dir_with_log("torn-header", &log_header()[..cut]);
            let (mut storage, recovered) = Storage::open(torn.path()).unwrap();
            assert_eq!(recovered.tail_bytes_dropped, cut as u64);
            assert_eq!(recovered.durable, DurableState::default());
            storage.append(&PersistOp::Promise(ballot(9))).unwrap();
            storage.sync().unwrap();
            drop(storage);
            let (_storage, recovered) = Storage::open(torn.path()).unwrap();
            assert_eq!(recovered.durable.promised, ballot(9));
        }
        let foreign = dir_with_log("foreign", b"# not a log at all\n");
        let error = Storage::open(foreign.path()).unwrap_err();
        assert!(matches!(error, StorageError::Format { .. }), "{error}");
        let mut newer = log_header().to_vec();
        newer[8] = 2;
        let newer = dir_with_log("newer", &newer);
        let error = Storage::open(newer.path()).unwrap_err();
        assert!(error.to_string().contains("version 2"), "{error}");
    }

    #[test]
    fn corrupt_tail_is_torn_but_corrupt_middle_is_refused() {
        let dir = TempDir::new("corrupt-source");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        let all = ops();
        let starts = write_ops(&mut storage, &all);
        drop(storage);
        let full = fs::read(dir.log()).unwrap();
        let last_start = *starts.last().unwrap() as usize;

        // Any byte of the last record, header or body: a torn tail.
        for at in last_start..full.len() {
            let mut bytes = full.clone();
            bytes[at] ^= 0x40;
            let d = dir_with_log("corrupt-tail", &bytes);
            let (_storage, recovered) = Storage::open(d.path()).unwrap();
            assert_eq!(recovered.durable, folded(&all[..all.len() - 1]), "flip at {at}");
            assert_eq!(recovered.tail_bytes_dropped, (full.len() - last_start) as u64);
        }

        // Any byte of a middle record, with valid records after it: refused.
        let (middle, middle_end) = (starts[3] as usize, starts[4] as usize);
        for at in middle..middle_end {
            let mut bytes = full.clone();
            bytes[at] ^= 0x40;
            let d = dir_with_log("corrupt-middle", &bytes);
            match Storage::open(d.path()) {
                Err(StorageError::Corrupt { path, offset, why }) => {
                    assert_eq!(path, d.log());
                    assert_eq!(offset, middle as u64, "flip at {at}: {why}");
                }
                other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
            }
            // Nothing was cut off: the operator still has the evidence.
            assert_eq!(fs::read(d.log()).unwrap(), bytes);
        }
    }

    #[test]
    fn a_zero_filled_tail_is_the_end_of_the_log() {
        // The preallocated tail, or a filesystem that extended the file with zeros
        // when a crash beat the data: either way no record was there.
        let dir = TempDir::new("zeros-source");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        write_ops(&mut storage, &ops());
        drop(storage);
        let mut bytes = fs::read(dir.log()).unwrap();
        let good = bytes.len();
        bytes.resize(good + 4096, 0);
        let d = dir_with_log("zeros", &bytes);
        let (_storage, recovered) = Storage::open(d.path()).unwrap();
        assert_eq!(recovered.tail_bytes_dropped, 0);
        assert_eq!(recovered.durable, folded(&ops()));
    }

    #[test]
    fn corrupt_snapshot_is_refused_with_recovery_advice() {
        let dir = TempDir::new("corrupt-snapshot");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        write_ops(&mut storage, &[PersistOp::Snapshot(snapshot(3))]);
        drop(storage);
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let error = Storage::open(dir.path()).unwrap_err();
        assert!(matches!(error, StorageError::Corrupt { .. }), "{error:?}");
        assert!(error.to_string().contains("wipe the data directory"), "{error}");
    }

    /// `DIR/log` is a symlink to `/dev/full`, whose writes fail with ENOSPC. It
    /// works because an empty log file (and `/dev/full` reports a length of 0, so
    /// `open` reads nothing from it) is an empty log whose header is written with
    /// the first record, and `append` only buffers: the first write is in `sync`.
    #[test]
    fn disk_full_is_reported_and_poisons() {
        let dir = TempDir::new("disk-full");
        std::os::unix::fs::symlink("/dev/full", dir.log()).unwrap();
        let (mut storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.durable, DurableState::default());
        storage.append(&PersistOp::Promise(ballot(1))).unwrap();
        let error = storage.sync().unwrap_err();
        let StorageError::DiskFull { path } = &error else { panic!("got {error:?}") };
        assert_eq!(path, &dir.log());
        assert!(error.to_string().contains("disk full"), "{error}");
        assert!(error.to_string().contains("free space"), "{error}");
        // Poisoned: nothing more is accepted, and no retry can look like success.
        let again = storage.append(&PersistOp::Commit(Slot(1))).unwrap_err();
        assert!(matches!(again, StorageError::DiskFull { .. }), "{again:?}");
        assert!(matches!(storage.sync(), Err(StorageError::DiskFull { .. })));
        assert!(matches!(storage.write_identity(&identity()), Err(StorageError::DiskFull { .. })));
        assert!(matches!(storage.wipe(), Err(StorageError::DiskFull { .. })));
        assert_eq!(storage.stats().syncs, 0);
    }

    #[test]
    fn a_second_open_of_the_directory_is_refused() {
        let dir = TempDir::new("lock");
        let (first, _) = Storage::open(dir.path()).unwrap();
        let error = Storage::open(dir.path()).unwrap_err();
        assert!(matches!(error, StorageError::InUse { .. }), "{error:?}");
        assert!(error.to_string().contains("is in use by another replica"), "{error}");
        drop(first);
        Storage::open(dir.path()).unwrap();
    }

    #[test]
    fn identity_round_trip_and_wipe() {
        let dir = TempDir::new("identity");
        let data = dir.path().join("data");
        let (mut storage, recovered) = Storage::open(&data).unwrap();
        assert_eq!(recovered.identity, None);
        storage.write_identity(&identity()).unwrap();
        write_ops(&mut storage, &ops());
        write_ops(&mut storage, &[PersistOp::Snapshot(snapshot(2))]);
        drop(storage);

        let (mut storage, recovered) = Storage::open(&data).unwrap();
        assert_eq!(recovered.identity, Some(identity()));
        assert_ne!(recovered.durable, DurableState::default());
        storage.wipe().unwrap();
        assert_eq!(storage.stats().log_bytes, 0);
        assert!(!data.join(SNAPSHOT_FILE).exists());
        assert!(!data.join(IDENTITY_FILE).exists());
        drop(storage);

        let (mut storage, recovered) = Storage::open(&data).unwrap();
        assert_eq!(recovered.identity, None);
        assert_eq!(recovered.durable, DurableState::default());
        // A wiped storage is usable under a fresh identity.
        let fresh = Identity { replica: ReplicaId(7), ..identity() };
        storage.write_identity(&fresh).unwrap();
        write_ops(&mut storage, &[PersistOp::Promise(ballot(1))]);
        drop(storage);
        let (_storage, recovered) = Storage::open(&data).unwrap();
        assert_eq!(recovered.identity, Some(fresh));
        assert_eq!(recovered.durable.promised, ballot(1));
    }

    #[test]
    fn an_interrupted_wipe_is_finished_at_open() {
        let dir = TempDir::new("interrupted-wipe");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        storage.write_identity(&identity()).unwrap();
        write_ops(&mut storage, &ops());
        write_ops(&mut storage, &[PersistOp::Snapshot(snapshot(2))]);
        drop(storage);
        // The first step of a wipe, then a crash.
        let tombstone = encode(&IdentityFile::Wiped);
        write_checked(dir.path(), IDENTITY_FILE, IDENTITY_MAGIC, &tombstone, IDENTITY_MAX).unwrap();

        let (_storage, recovered) = Storage::open(dir.path()).unwrap();
        assert_eq!(recovered.identity, None);
        assert_eq!(recovered.durable, DurableState::default());
        assert!(!dir.path().join(IDENTITY_FILE).exists());
    }

    #[test]
    fn many_appends_share_one_sync() {
        let dir = TempDir::new("group-commit");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        storage.sync().unwrap();
        assert_eq!(storage.stats().syncs, 0, "nothing appended, nothing synced");
        for slot in 1..=100 {
            storage.append(&PersistOp::Accept(vec![entry(slot, 1)])).unwrap();
        }
        storage.sync().unwrap();
        storage.sync().unwrap();
        let stats = storage.stats();
        assert_eq!(stats.records_appended, 100);
        assert_eq!(stats.syncs, 1);
        assert_eq!(stats.log_bytes, fs::metadata(dir.log()).unwrap().len());
    }

    #[test]
    fn oversized_record_is_refused_and_poisons() {
        let dir = TempDir::new("too-large");
        let (mut storage, _) = Storage::open(dir.path()).unwrap();
        let mut huge = entry(1, 1);
        huge.value.commands = vec![Command::App(vec![0; RECORD_MAX as usize + 1])];
        let error = storage.append(&PersistOp::Accept(vec![huge])).unwrap_err();
        assert!(matches!(error, StorageError::TooLarge { .. }), "{error:?}");
        assert!(storage.append(&PersistOp::Commit(Slot(1))).is_err());
    }
}
