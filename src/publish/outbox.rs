//! The outbox: every message waits here until the broker has acknowledged it.
//!
//! Incidents and their evidence are *durable*: committed to an SQLite file under
//! `node.data_dir` before they are handed to MQTT, and deleted only when the broker acknowledges
//! them (QoS 1 PUBACK). A node killed or powered off while the broker is away delivers them after
//! its restart, in the order they happened. Only the queue's order and sizes live in memory; the
//! payloads stay on disk until they are sent, so a backlog of days costs little RAM.
//!
//! The store is bounded by `outbox.max_bytes` of payload. When a new message would not fit, the
//! evidence of the oldest undelivered incidents is dropped first, then the new message's own
//! evidence; an incident's JSON is never dropped (a node that keeps only incidents goes over the
//! cap and says so). Every drop is counted for the stats topic and logged.
//!
//! A store file SQLite cannot read (garbage, a damaged database) would stop the node at every
//! start. [`Outbox::open_recovering`], which `run` uses, sets it aside under a dated name
//! (`outbox.sqlite.corrupt-20261204T153000Z`, with its `-wal` and `-shm`), kept for recovery by
//! hand, starts a fresh one, and says so; [`Outbox::inspect`], which `check` uses, reads it without
//! changing anything.
//!
//! Status messages are not kept on disk: a restarted node announces its state afresh, and a
//! newer status replaces a queued older one on the same topic. When the disk fails (full,
//! read-only), messages are kept in memory, loudly, until it works again.
//!
//! A publication that was sent but not acknowledged when the link dropped goes back to the head
//! of the queue and is sent again first after the reconnect. Duplicates are possible (the hub
//! drops them by incident id); silent loss is not.
//!
//! Nothing is sent bigger than the broker's packet limit (see [`super::fit`]): evidence is
//! re-encoded smaller or dropped (counted like the drops for room), and an incident that does
//! not fit even without its snapshot is held back, kept on disk, until the next connection.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use super::fit::{Fit, fit, packet_bytes};
use crate::wire::OutboxStats;

/// Publications the outbox holds in memory only (statuses, or everything while the disk fails)
/// before it stops taking messages from the cameras.
pub const MEMORY_CAPACITY: usize = 256;
/// Publications in flight (sent, not yet acknowledged) at once.
pub const WINDOW: usize = 16;

const FILE: &str = "outbox.sqlite";

/// Why evidence is dropped, for the log.
const FULL: &str = "the outbox is full (outbox.max_bytes): evidence dropped to keep the incidents";
const TOO_LARGE: &str = "evidence dropped: larger than the broker takes (its Maximum Packet \
                         Size or mqtt.max_packet_bytes) even re-encoded smaller";

/// Why the outbox cannot be kept in the data dir; found at start, before any camera runs.
/// (Once open, a failing disk is logged and the messages wait in memory: no error leaves.)
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    /// A real write failed: a read-only or full disk, in the system's own words.
    #[error("cannot write to {}: {source}", path.display())]
    NotWritable { path: PathBuf, source: std::io::Error },
    /// SQLite cannot open, set up or read the store (a locked one, say).
    #[error("{}: {source}", path.display())]
    Store { path: PathBuf, source: rusqlite::Error },
    /// SQLite finds the store is not a database, or a damaged one; `why` in its words.
    #[error("{}: the outbox is corrupt: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
    /// A corrupt store could not be set aside.
    #[error("cannot set the corrupt outbox {} aside: {source}", path.display())]
    SetAside { path: PathBuf, source: std::io::Error },
}

impl OutboxError {
    /// A store error, told corrupt when SQLite says the file is not (or no longer) a database.
    fn store(path: &Path, source: rusqlite::Error) -> OutboxError {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                OutboxError::Corrupt { path, why: source.to_string() }
            }
            _ => OutboxError::Store { path, source },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Incident,
    Evidence,
    Status,
}

impl Kind {
    fn durable(self) -> bool {
        self != Kind::Status
    }

    /// How the kind is kept in the store's `evidence` column.
    fn from_column(evidence: bool) -> Kind {
        if evidence { Kind::Evidence } else { Kind::Incident }
    }
}

/// One MQTT message, ready to send (QoS 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    kind: Kind,
    /// When the frame behind it arrived: its acknowledgement gives the frame-to-broker latency.
    seen_at: Option<SystemTime>,
}

impl Publication {
    /// An incident message: stored until the broker has it, never dropped.
    pub fn incident(topic: String, payload: Vec<u8>) -> Self {
        Publication { topic, payload, retain: false, kind: Kind::Incident, seen_at: None }
    }

    /// The same, from a frame that arrived at `seen_at`.
    pub fn seen_at(self, seen_at: Option<SystemTime>) -> Self {
        Publication { seen_at, ..self }
    }

    /// Evidence of an incident: stored until the broker has it, dropped first when full.
    pub fn evidence(topic: String, payload: Vec<u8>) -> Self {
        Publication { topic, payload, retain: false, kind: Kind::Evidence, seen_at: None }
    }

    /// A status or the stats: retained by the broker, not kept across a restart.
    pub fn status(topic: String, payload: Vec<u8>) -> Self {
        Publication { topic, payload, retain: true, kind: Kind::Status, seen_at: None }
    }

    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    /// What the payload is, for MQTT 5's content type.
    pub fn content_type(&self) -> &'static str {
        match self.kind {
            Kind::Evidence if self.topic.ends_with("/clip") => "video/mp4",
            Kind::Evidence => "image/jpeg",
            Kind::Incident | Kind::Status => "application/json",
        }
    }

    /// The incident an incident message or its evidence belongs to: the evidence topic's
    /// `…/evidence/{id}[/clip]` level, or the JSON's `id`.
    pub fn incident_id(&self) -> Option<String> {
        match self.kind {
            Kind::Evidence => {
                let (_, after) = self.topic.rsplit_once("/evidence/")?;
                Some(after.trim_end_matches("/clip").to_string())
            }
            Kind::Incident => {
                #[derive(serde::Deserialize)]
                struct Id {
                    id: String,
                }
                serde_json::from_slice::<Id>(&self.payload).ok().map(|i| i.id)
            }
            Kind::Status => None,
        }
    }
}

/// A queued publication: its payload on disk under `row`, or in memory.
#[derive(Debug)]
struct Entry {
    topic: String,
    kind: Kind,
    size: u64,
    row: Option<i64>,
    payload: Option<Vec<u8>>,
    seen_at: Option<SystemTime>,
}

pub struct Outbox {
    store: Connection,
    queue: VecDeque<Entry>,
    /// Sent publications with the packet id MQTT gave them once it did, and the bytes each took
    /// on the wire as sent (after any shrinking).
    in_flight: VecDeque<(Option<u16>, Entry, usize)>,
    stats: OutboxStats,
    /// Set while the store holds more than its cap in incident messages alone.
    over_cap: bool,
    /// Rows the broker has acknowledged, deleted together (one disk sync for many).
    delivered: Vec<(i64, u64)>,
    /// Publications, queued or in flight, whose payload is held in memory (not on disk):
    /// counted as they come and go, since `has_room` is asked on every turn of the sink.
    in_memory: usize,
    /// Where a corrupt store found at the start was set aside.
    recovered_from: Option<PathBuf>,
    /// Publications too large for this connection's packet limit, even shrunk: tried again
    /// after the next reconnect, whose broker may take more.
    held: Vec<Entry>,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, holding at most `max_bytes` of payload; what an
    /// earlier run left undelivered comes first. A data dir that cannot be written (read-only,
    /// full) is an error here, before any camera starts.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Outbox, OutboxError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| OutboxError::CreateDir { path: dir.to_path_buf(), source })?;
        probe_writable(dir)?;
        let path = dir.join(FILE);
        let fail = |source| OutboxError::store(&path, source);
        let store = Connection::open(&path).map_err(fail)?;
        // WAL for concurrent reads; FULL so that a commit survives a power cut, not just a crash.
        // The write to `user_version` proves the disk takes writes now, not at the first incident.
        store
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS outbox (
                     row INTEGER PRIMARY KEY AUTOINCREMENT,
                     topic TEXT NOT NULL,
                     payload BLOB NOT NULL,
                     evidence INTEGER NOT NULL DEFAULT 0
                 );
                 PRAGMA user_version = 1;",
            )
            .map_err(fail)?;
        // The first outboxes did not tell evidence from incidents.
        if store.prepare("SELECT evidence FROM outbox LIMIT 0").is_err() {
            store
                .execute_batch("ALTER TABLE outbox ADD COLUMN evidence INTEGER NOT NULL DEFAULT 0")
                .map_err(fail)?;
        }
        let queue = load(&store).map_err(fail)?;
        let bytes = queue.iter().map(|e| e.size).sum();
        if !queue.is_empty() {
            tracing::info!(
                undelivered = queue.len(),
                bytes,
                "resuming the outbox of an earlier run"
            );
        }
        let stats = OutboxStats { bytes, max_bytes, ..OutboxStats::default() };
        Ok(Outbox {
            store,
            queue,
            in_flight: VecDeque::new(),
            stats,
            over_cap: false,
            delivered: Vec::new(),
            in_memory: 0,
            recovered_from: None,
            held: Vec::new(),
        })
    }

    /// Opens the outbox like [`Outbox::open`], but a corrupt store does not stop the node: it is
    /// set aside under a dated name, kept for recovery, and a fresh one started, loudly. Only
    /// for the node holding the data dir's lock: nobody else may have the store open.
    pub fn open_recovering(dir: &Path, max_bytes: u64) -> Result<Outbox, OutboxError> {
        let (path, why) = match Outbox::open(dir, max_bytes) {
            Err(OutboxError::Corrupt { path, why }) => (path, why),
            opened => return opened,
        };
        let aside = set_aside(&path, SystemTime::now())?;
        tracing::error!(
            "the outbox {} is corrupt ({why}): set it aside as {} and started a fresh one; \
             incidents it held that the broker had not acknowledged are only in that file",
            path.display(),
            aside.display()
        );
        let outbox = Outbox::open(dir, max_bytes)?;
        Ok(Outbox { recovered_from: Some(aside), ..outbox })
    }

    /// Reads the outbox in `dir` without changing anything, as `check` does: a corrupt store is an
    /// error naming the file. No store yet (a new node) is fine.
    pub fn inspect(dir: &Path) -> Result<(), OutboxError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(());
        }
        let fail = |source| OutboxError::store(&path, source);
        let store =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
        // Every page of the file, read and checked (no index is compared: the outbox has none).
        let verdict: String =
            store.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(fail)?;
        match verdict.as_str() {
            "ok" => Ok(()),
            _ => Err(OutboxError::Corrupt { path: path.clone(), why: verdict }),
        }
    }

    /// Where a corrupt store found at the start was set aside, if one was.
    pub fn recovered_from(&self) -> Option<&Path> {
        self.recovered_from.as_deref()
    }

    /// Queues `publications` in order; durable ones are committed to disk first, making room
    /// by dropping old evidence when the cap is reached. A store that fails (a full disk) is
    /// reported loudly and the messages are kept in memory.
    pub fn push(&mut self, publications: Vec<Publication>) {
        for p in publications.iter().filter(|p| p.kind == Kind::Status) {
            self.forget_queued_status(&p.topic);
        }
        let incoming: u64 =
            publications.iter().filter(|p| p.kind.durable()).map(|p| p.payload.len() as u64).sum();
        self.make_room(incoming);
        let publications = self.drop_evidence_that_does_not_fit(publications);
        match self.store_durable(&publications) {
            Ok(rows) => {
                for (p, row) in publications.into_iter().zip(rows) {
                    let size = p.payload.len() as u64;
                    // Stored payloads are read back from disk when sent.
                    let payload = if row.is_some() { None } else { Some(p.payload) };
                    self.in_memory += usize::from(payload.is_some());
                    self.queue.push_back(Entry {
                        topic: p.topic,
                        kind: p.kind,
                        size,
                        row,
                        payload,
                        seen_at: p.seen_at,
                    });
                }
                self.warn_when_over_cap();
            }
            Err(e) => {
                self.stats.store_errors += 1;
                tracing::error!(
                    "the outbox cannot write to disk ({e}); keeping messages in memory only \
                     until it can"
                );
                self.in_memory += publications.len();
                self.queue.extend(publications.into_iter().map(in_memory));
            }
        }
    }

    /// Queues `publication` first in line. A status replaces the queued one of its topic, as in
    /// [`Outbox::push`]: the broker must retain the newer one.
    pub fn push_front(&mut self, publication: Publication) {
        if publication.kind == Kind::Status {
            self.forget_queued_status(&publication.topic);
        }
        self.in_memory += 1;
        self.queue.push_front(in_memory(publication));
    }

    /// Retained: only the newest status of a topic matters.
    fn forget_queued_status(&mut self, topic: &str) {
        let before = self.queue.len();
        self.queue.retain(|e| !(e.kind == Kind::Status && e.topic == topic));
        self.in_memory -= before - self.queue.len();
    }

    /// Room for another message from the cameras: only messages held in memory are bounded
    /// here, those on disk by `max_bytes`.
    pub fn has_room(&self) -> bool {
        self.in_memory < MEMORY_CAPACITY
    }

    pub fn len(&self) -> usize {
        self.queue.len() + self.in_flight.len() + self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> OutboxStats {
        OutboxStats { depth: self.len(), ..self.stats }
    }

    /// Hands queued publications to `publish` (QoS 1) while the window has room; `publish`
    /// returns false when the client takes no more for now. None is bigger than `limit` bytes
    /// on the wire: see [`super::fit`].
    pub fn send(&mut self, limit: usize, mut publish: impl FnMut(&Publication) -> bool) {
        while self.in_flight.len() < WINDOW {
            let Some(entry) = self.queue.pop_front() else { return };
            let publication = match self.publication(&entry) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("the outbox cannot read a stored message ({e}); retrying");
                    self.queue.push_front(entry);
                    return;
                }
            };
            let size = packet_bytes(&publication);
            let publication = match fit(publication, limit) {
                Fit::Send(p) => p,
                Fit::SendWithoutSnapshot(p, bytes) => {
                    self.count_dropped(&entry.topic, bytes as u64, TOO_LARGE);
                    p
                }
                Fit::DropEvidence => {
                    self.drop_evidence(entry, TOO_LARGE);
                    continue;
                }
                Fit::TooLarge => {
                    tracing::error!(
                        topic = entry.topic,
                        bytes = size,
                        limit,
                        "a message is larger than the broker takes (its Maximum Packet Size or \
                         mqtt.max_packet_bytes), even without evidence: kept in the outbox, not \
                         sent, until a connection that takes it"
                    );
                    self.held.push(entry);
                    continue;
                }
            };
            if !publish(&publication) {
                self.queue.push_front(entry);
                return;
            }
            let sent = packet_bytes(&publication);
            self.in_flight.push_back((None, entry, sent));
        }
    }

    /// The client sent the oldest publication without an id under `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(slot) = self.in_flight.iter_mut().find(|(id, _, _)| id.is_none()) {
            slot.0 = Some(pkid);
        }
    }

    /// The broker has the publication sent under `pkid`: it leaves the outbox, and soon the
    /// disk (see [`Outbox::forget_delivered`]). Returns when the frame behind it arrived, if
    /// known.
    pub fn acknowledged(&mut self, pkid: u16) -> Option<SystemTime> {
        let at = self.in_flight.iter().position(|(id, _, _)| *id == Some(pkid))?;
        let (_, entry, _) = self.in_flight.remove(at)?;
        self.in_memory -= usize::from(entry.payload.is_some());
        if let Some(row) = entry.row {
            self.delivered.push((row, entry.size));
        }
        if self.delivered.len() >= WINDOW {
            self.forget_delivered();
        }
        entry.seen_at
    }

    /// Deletes the delivered rows from disk in one transaction. Called every window's worth of
    /// acknowledgements and by the sink's timer; a crash before it costs duplicates after the
    /// restart, never a loss.
    pub fn forget_delivered(&mut self) {
        if self.delivered.is_empty() {
            return;
        }
        let deleted = self.store.transaction().and_then(|t| {
            for (row, _) in &self.delivered {
                t.execute("DELETE FROM outbox WHERE row = ?1", params![row])?;
            }
            t.commit()
        });
        match deleted {
            Ok(()) => {
                self.stats.bytes -= self.delivered.iter().map(|(_, size)| size).sum::<u64>();
                self.delivered.clear();
            }
            // Kept for the next try; the messages are not sent again meanwhile.
            Err(e) => tracing::error!("the outbox cannot forget delivered messages ({e})"),
        }
    }

    /// The bytes of the largest publication in flight, as sent: when a broker that announced no
    /// limit refuses a message as too large, it is one of these.
    pub fn largest_in_flight(&self) -> Option<usize> {
        self.in_flight.iter().map(|(_, _, sent)| *sent).max()
    }

    /// The link dropped: in-flight publications go back to the head of the queue, in order,
    /// and before them those held back as too large, for the next broker to take perhaps.
    /// Returns how many were in flight: each may reach the hub twice.
    pub fn resend_unacknowledged(&mut self) -> usize {
        let resent = self.in_flight.len();
        while let Some((_, entry, _)) = self.in_flight.pop_back() {
            self.queue.push_front(entry);
        }
        while let Some(entry) = self.held.pop() {
            self.queue.push_front(entry);
        }
        resent
    }

    fn publication(&self, entry: &Entry) -> rusqlite::Result<Publication> {
        let payload = match (&entry.payload, entry.row) {
            (Some(payload), _) => payload.clone(),
            (None, Some(row)) => self
                .store
                .query_row("SELECT payload FROM outbox WHERE row = ?1", params![row], |r| r.get(0))
                .optional()?
                .ok_or(rusqlite::Error::QueryReturnedNoRows)?,
            (None, None) => unreachable!("an entry has its payload in memory or on disk"),
        };
        let retain = entry.kind == Kind::Status;
        let (topic, kind, seen_at) = (entry.topic.clone(), entry.kind, entry.seen_at);
        Ok(Publication { topic, payload, retain, kind, seen_at })
    }

    /// Drops the evidence of the oldest queued incidents until `incoming` more bytes fit.
    fn make_room(&mut self, incoming: u64) {
        let mut at = 0;
        while self.stats.bytes + incoming > self.stats.max_bytes && at < self.queue.len() {
            let entry = &self.queue[at];
            let Some(row) = entry.row.filter(|_| entry.kind == Kind::Evidence) else {
                at += 1;
                continue;
            };
            if let Err(e) = self.store.execute("DELETE FROM outbox WHERE row = ?1", params![row]) {
                tracing::error!("the outbox cannot drop old evidence ({e})");
                return;
            }
            let entry = self.queue.remove(at).expect("indexed above");
            self.stats.bytes -= entry.size;
            self.count_dropped(&entry.topic, entry.size, FULL);
        }
    }

    /// Evidence taken off the queue that will not be sent: off the disk too, and counted.
    fn drop_evidence(&mut self, entry: Entry, why: &str) {
        if let Some(row) = entry.row {
            // Left on disk, it would come back after a restart and be dropped again.
            match self.store.execute("DELETE FROM outbox WHERE row = ?1", params![row]) {
                Ok(_) => self.stats.bytes -= entry.size,
                Err(e) => tracing::error!("the outbox cannot drop evidence ({e})"),
            }
        }
        self.in_memory -= usize::from(entry.payload.is_some());
        self.count_dropped(&entry.topic, entry.size, why);
    }

    /// Evidence that still does not fit once older evidence is gone is not stored at all.
    fn drop_evidence_that_does_not_fit(
        &mut self,
        publications: Vec<Publication>,
    ) -> Vec<Publication> {
        let mut bytes = self.stats.bytes;
        let mut kept = Vec::with_capacity(publications.len());
        for p in publications {
            let size = p.payload.len() as u64;
            if p.kind == Kind::Evidence && bytes + size > self.stats.max_bytes {
                self.count_dropped(&p.topic, size, FULL);
                continue;
            }
            if p.kind.durable() {
                bytes += size;
            }
            kept.push(p);
        }
        kept
    }

    fn count_dropped(&mut self, topic: &str, size: u64, why: &str) {
        self.stats.evidence_dropped += 1;
        self.stats.evidence_dropped_bytes += size;
        tracing::warn!(topic, bytes = size, dropped = self.stats.evidence_dropped, "{why}");
    }

    fn warn_when_over_cap(&mut self) {
        let over = self.stats.bytes > self.stats.max_bytes;
        if over && !self.over_cap {
            tracing::error!(
                bytes = self.stats.bytes,
                max_bytes = self.stats.max_bytes,
                "the outbox holds more incidents than outbox.max_bytes allows; keeping them all"
            );
        }
        self.over_cap = over;
    }

    /// Commits the durable publications in one transaction; returns each one's row.
    fn store_durable(
        &mut self,
        publications: &[Publication],
    ) -> rusqlite::Result<Vec<Option<i64>>> {
        if !publications.iter().any(|p| p.kind.durable()) {
            return Ok(vec![None; publications.len()]);
        }
        let transaction = self.store.transaction()?;
        let mut rows = Vec::with_capacity(publications.len());
        let mut bytes = 0;
        for p in publications {
            if !p.kind.durable() {
                rows.push(None);
                continue;
            }
            transaction.execute(
                "INSERT INTO outbox (topic, payload, evidence) VALUES (?1, ?2, ?3)",
                params![p.topic, p.payload, p.kind == Kind::Evidence],
            )?;
            rows.push(Some(transaction.last_insert_rowid()));
            bytes += p.payload.len() as u64;
        }
        // All of one message or none: an incident never goes without its evidence row.
        transaction.commit()?;
        self.stats.bytes += bytes;
        Ok(rows)
    }
}

/// Writes and removes a file of a few evidence snapshots' size: a read-only or full disk fails
/// here with the system's own words, instead of in SQLite's at the first incident.
pub fn probe_writable(dir: &Path) -> Result<(), OutboxError> {
    use std::io::Write;
    let probe = dir.join(".cityeye-write-probe");
    let written = std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(&[0; 1 << 20]).and_then(|()| f.sync_all()));
    let _ = std::fs::remove_file(&probe);
    written.map_err(|source| OutboxError::NotWritable { path: dir.to_path_buf(), source })
}

/// Moves the store at `path` and its `-wal` and `-shm` files aside, under the same dated name:
/// a stale `-wal` must not be replayed into the fresh store, and the three belong together for
/// a recovery by hand. A name already taken gets a number.
fn set_aside(path: &Path, now: SystemTime) -> Result<PathBuf, OutboxError> {
    let stamp = chrono::DateTime::<chrono::Utc>::from(now).format("%Y%m%dT%H%M%SZ");
    let name = |n: u32| {
        let number = if n > 1 { format!("-{n}") } else { String::new() };
        PathBuf::from(format!("{}.corrupt-{stamp}{number}", path.display()))
    };
    let (mut n, mut aside) = (1, name(1));
    while aside.exists() {
        n += 1;
        aside = name(n);
    }
    let fail = |source| OutboxError::SetAside { path: path.to_path_buf(), source };
    for suffix in ["-wal", "-shm"] {
        let companion = PathBuf::from(format!("{}{suffix}", path.display()));
        if companion.exists() {
            std::fs::rename(&companion, format!("{}{suffix}", aside.display())).map_err(fail)?;
        }
    }
    std::fs::rename(path, &aside).map_err(fail)?;
    Ok(aside)
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a writable statvfs for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

fn in_memory(p: Publication) -> Entry {
    let size = p.payload.len() as u64;
    let (topic, kind, seen_at) = (p.topic, p.kind, p.seen_at);
    Entry { topic, kind, size, row: None, payload: Some(p.payload), seen_at }
}

/// The queue an earlier run left: topics and sizes, payloads stay on disk.
fn load(store: &Connection) -> rusqlite::Result<VecDeque<Entry>> {
    let mut rows =
        store.prepare("SELECT row, topic, length(payload), evidence FROM outbox ORDER BY row")?;
    let stored = rows.query_map([], |r| {
        Ok(Entry {
            row: Some(r.get(0)?),
            topic: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            kind: Kind::from_column(r.get(3)?),
            payload: None,
            // From an earlier run: its delay is not this run's latency.
            seen_at: None,
        })
    })?;
    stored.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LARGE: u64 = 1 << 30;

    fn publication(n: u8) -> Publication {
        Publication::incident(format!("t/{n}"), vec![n])
    }

    fn topics_of(queue: &VecDeque<Entry>) -> Vec<&str> {
        queue.iter().map(|e| e.topic.as_str()).collect()
    }

    /// A client that takes every publication.
    fn client(_: &Publication) -> bool {
        true
    }

    #[test]
    fn keeps_what_the_broker_did_not_acknowledge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), LARGE).unwrap();
        outbox.push((1..=3).map(publication).collect());
        outbox.send(usize::MAX, client);
        assert_eq!(outbox.in_flight.len(), 3);
        outbox.sent(11);
        outbox.sent(12);
        outbox.sent(13);
        outbox.acknowledged(12);
        outbox.acknowledged(99); // not ours: ignored
        assert_eq!(outbox.len(), 2);
        outbox.push(vec![publication(4)]);
        outbox.resend_unacknowledged();
        assert!(outbox.in_flight.is_empty());
        assert_eq!(topics_of(&outbox.queue), ["t/1", "t/3", "t/4"]);
        assert_eq!(outbox.stats().bytes, 4, "delivered rows leave the disk in batches");
        outbox.forget_delivered();
        assert_eq!(outbox.stats().bytes, 3);
    }

    #[test]
    fn sends_at_most_a_window_and_reads_payloads_back_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), LARGE).unwrap();
        outbox.push((0..40).map(publication).collect());
        assert!(outbox.queue.iter().all(|e| e.payload.is_none()), "payloads stay on disk");
        let mut sent = Vec::new();
        outbox.send(usize::MAX, |p| {
            sent.push(p.payload[0]);
            true
        });
        assert_eq!(sent, (0..WINDOW as u8).collect::<Vec<_>>());
        assert_eq!((outbox.in_flight.len(), outbox.queue.len()), (WINDOW, 40 - WINDOW));
    }

    #[test]
    fn memory_only_messages_are_bounded_and_newer_statuses_replace_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), LARGE).unwrap();
        outbox.push(vec![Publication::status("cam/a".into(), vec![1])]);
        outbox.push(vec![Publication::status("cam/a".into(), vec![2])]);
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox.queue[0].payload.as_deref(), Some(&[2u8][..]));
        for n in 1..MEMORY_CAPACITY {
            outbox.push(vec![Publication::status(format!("cam/{n}"), vec![0])]);
        }
        assert!(!outbox.has_room());
    }

    #[test]
    fn a_status_put_first_in_line_replaces_the_queued_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), LARGE).unwrap();
        outbox.push(vec![Publication::status("node".into(), vec![1]), publication(1)]);
        outbox.push_front(Publication::status("node".into(), vec![2]));
        assert_eq!(topics_of(&outbox.queue), ["node", "t/1"]);
        assert_eq!(outbox.queue[0].payload.as_deref(), Some(&[2u8][..]));
        assert_eq!(outbox.in_memory, 1);
    }

    #[test]
    fn what_the_broker_cannot_take_is_dropped_or_held_and_never_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), LARGE).unwrap();
        let clip = Publication::evidence("c/evidence/x/clip".into(), vec![0; 8000]);
        let huge = Publication::incident("i/huge".into(), vec![b' '; 8000]);
        outbox.push(vec![clip, huge, publication(1)]);
        let mut sent = Vec::new();
        outbox.send(4096, |p| {
            sent.push(p.topic.clone());
            true
        });
        assert_eq!(sent, ["t/1"], "neither the clip nor the huge incident goes out");
        let stats = outbox.stats();
        assert_eq!((stats.evidence_dropped, stats.evidence_dropped_bytes), (1, 8000));
        assert_eq!(stats.bytes, 8001, "the dropped clip left the disk; the incident did not");
        assert_eq!(outbox.len(), 2, "t/1 in flight, the incident held back");
        // Sending again on the same connection does not retry it: no loop.
        outbox.send(4096, |p| {
            sent.push(p.topic.clone());
            true
        });
        assert_eq!(sent, ["t/1"]);
        // A new connection, whose broker takes more, gets it first.
        outbox.resend_unacknowledged();
        sent.clear();
        outbox.send(usize::MAX, |p| {
            sent.push(p.topic.clone());
            true
        });
        assert_eq!(sent, ["i/huge", "t/1"]);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_evidence_first_and_never_an_incident() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), 250).unwrap();
        let incident = |n: u8| {
            vec![
                Publication::evidence(format!("e/{n}"), vec![n; 100]),
                Publication::incident(format!("i/{n}"), vec![n; 10]),
            ]
        };
        outbox.push(incident(1));
        outbox.push(incident(2));
        assert_eq!(outbox.stats().evidence_dropped, 0);
        outbox.push(incident(3)); // 330 bytes: e/1 goes
        assert_eq!(topics_of(&outbox.queue), ["i/1", "e/2", "i/2", "e/3", "i/3"]);
        assert_eq!(outbox.stats().bytes, 230);
        let big = vec![Publication::evidence("e/4".into(), vec![4; 300]), publication(4)];
        outbox.push(big); // older evidence goes, and the new one still does not fit
        assert_eq!(topics_of(&outbox.queue), ["i/1", "i/2", "i/3", "t/4"]);
        let stats = outbox.stats();
        assert_eq!((stats.evidence_dropped, stats.evidence_dropped_bytes), (4, 600));
        assert_eq!(stats.bytes, 31);
        // Only incidents left: they are kept over the cap.
        outbox
            .push((0..30).map(|n| Publication::incident(format!("x/{n}"), vec![0; 10])).collect());
        assert_eq!(outbox.len(), 34);
        assert!(outbox.stats().bytes > 250);
    }

    #[test]
    fn a_restart_resumes_the_undelivered_in_order_and_forgets_status() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut outbox = Outbox::open(dir.path(), LARGE).unwrap();
            outbox.push(vec![publication(1), Publication::status("s".into(), vec![0])]);
            outbox.push(vec![Publication::evidence("e/2".into(), vec![2]), publication(2)]);
            outbox.push(vec![publication(3)]);
            outbox.send(usize::MAX, client);
            outbox.sent(1); // t/1
            outbox.sent(2); // the status
            outbox.sent(3); // e/2
            outbox.acknowledged(3);
            outbox.forget_delivered();
            outbox.sent(4); // t/2
            outbox.acknowledged(4); // not yet forgotten on disk: sent again, a duplicate
            // Dropped here without a goodbye, as by kill -9.
        }
        let mut outbox = Outbox::open(dir.path(), LARGE).unwrap();
        assert_eq!(topics_of(&outbox.queue), ["t/1", "t/2", "t/3"]);
        assert_eq!(outbox.stats().bytes, 3);
        let mut payloads = Vec::new();
        outbox.send(usize::MAX, |p| {
            payloads.push(p.payload.clone());
            true
        });
        assert_eq!(payloads, [[1], [2], [3]]);
    }

    #[test]
    fn outbox_errors_read_as_before() {
        // Each text is the one these errors had as strings, built the way the old code built it.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let why = std::fs::create_dir_all(&file).err().unwrap();
        let error = Outbox::open(&file, LARGE).err().unwrap();
        assert!(matches!(error, OutboxError::CreateDir { .. }), "{error:?}");
        assert_eq!(error.to_string(), format!("cannot create {}: {why}", file.display()));
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let text = format!("cannot write to /var/lib/cityeye: {full}");
        let error = OutboxError::NotWritable { path: "/var/lib/cityeye".into(), source: full };
        assert_eq!(error.to_string(), text);
        let corrupt = rusqlite::Error::InvalidQuery;
        let text = format!("/var/lib/cityeye/outbox.sqlite: {corrupt}");
        let path = "/var/lib/cityeye/outbox.sqlite".into();
        assert_eq!(OutboxError::Store { path, source: corrupt }.to_string(), text);
    }

    #[test]
    fn a_corrupt_store_is_named_by_inspect_and_set_aside_by_open_recovering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, b"not an outbox, just garbage: ".repeat(200)).unwrap();
        let error = Outbox::inspect(dir.path()).expect_err("garbage is no outbox");
        assert!(matches!(error, OutboxError::Corrupt { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("{}: the outbox is corrupt: file is not a database", path.display())
        );
        assert!(matches!(Outbox::open(dir.path(), LARGE), Err(OutboxError::Corrupt { .. })));

        let mut outbox = Outbox::open_recovering(dir.path(), LARGE).expect("a fresh outbox");
        let aside = outbox.recovered_from().expect("set aside").to_path_buf();
        let name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("outbox.sqlite.corrupt-20") && name.ends_with('Z'), "{name}");
        assert!(std::fs::read(&aside).unwrap().starts_with(b"not an outbox"));
        outbox.push(vec![publication(1)]);
        drop(outbox);
        let outbox = Outbox::open(dir.path(), LARGE).unwrap();
        assert_eq!(topics_of(&outbox.queue), ["t/1"], "the fresh outbox keeps what it gets");
        assert!(outbox.recovered_from().is_none());
        Outbox::inspect(dir.path()).expect("a sound outbox, open");
        drop(outbox);
        Outbox::inspect(dir.path()).expect("a sound outbox, closed");
        assert!(Outbox::inspect(&dir.path().join("none-yet")).is_ok(), "no outbox yet is fine");

        // The -wal goes with its store; a second recovery in the same second keeps the first's.
        std::fs::write(&path, b"garbage again ".repeat(200)).unwrap();
        std::fs::write(dir.path().join("outbox.sqlite-wal"), b"stale").unwrap();
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let first = set_aside(&path, at).unwrap();
        let wal = std::fs::read(format!("{}-wal", first.display())).unwrap();
        assert_eq!(wal, b"stale");
        assert!(!dir.path().join("outbox.sqlite-wal").exists());
        std::fs::write(&path, b"and again ".repeat(200)).unwrap();
        let second = set_aside(&path, at).unwrap();
        assert!(first.to_string_lossy().ends_with(".corrupt-20010909T014640Z"), "{first:?}");
        assert!(second.to_string_lossy().ends_with(".corrupt-20010909T014640Z-2"), "{second:?}");
    }

    #[test]
    fn an_unwritable_data_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let error = Outbox::open(&file, LARGE).err().expect("a file is no data dir").to_string();
        assert!(error.contains("not-a-dir"), "{error}");
    }
}
