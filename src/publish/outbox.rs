//! The outbox: every message waits here until the broker has acknowledged it.
//!
//! Incidents and their evidence are *durable*: committed to an SQLite file under
//! `node.data_dir` before they are handed to MQTT, and deleted only when the broker acknowledges
//! them (QoS 1 PUBACK). A node killed or powered off while the broker is away delivers them after
//! its restart, in the order they happened. Status messages are not kept: a restarted node
//! announces its state afresh.
//!
//! A publication that was sent but not acknowledged when the link dropped goes back to the head
//! of the queue and is sent again first after the reconnect. Duplicates are possible (the hub
//! drops them by incident id); silent loss is not.

use std::collections::VecDeque;
use std::path::Path;

use rusqlite::{Connection, params};

/// Publications the outbox holds in memory before it stops taking messages from the cameras.
pub const CAPACITY: usize = 256;
/// Publications in flight (sent, not yet acknowledged) at once.
pub const WINDOW: usize = 16;

const FILE: &str = "outbox.sqlite";

/// One MQTT message, ready to send (QoS 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// Kept on disk until acknowledged: incidents and evidence.
    durable: bool,
    /// Its row in the store, once stored.
    row: Option<i64>,
}

impl Publication {
    /// An incident or its evidence: stored until the broker has it.
    pub fn durable(topic: String, payload: Vec<u8>) -> Self {
        Publication { topic, payload, retain: false, durable: true, row: None }
    }

    /// A status: retained by the broker, not kept across a restart.
    pub fn status(topic: String, payload: Vec<u8>) -> Self {
        Publication { topic, payload, retain: true, durable: false, row: None }
    }
}

pub struct Outbox {
    store: Connection,
    queue: VecDeque<Publication>,
    /// Sent publications with the packet id MQTT gave them once it did.
    in_flight: VecDeque<(Option<u16>, Publication)>,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`; what an earlier run left undelivered comes first.
    pub fn open(dir: &Path) -> Result<Outbox, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(FILE);
        let fail = |e: rusqlite::Error| format!("outbox {}: {e}", path.display());
        let store = Connection::open(&path).map_err(fail)?;
        // WAL for concurrent reads; FULL so that a commit survives a power cut, not just a crash.
        store
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS outbox (
                     row INTEGER PRIMARY KEY AUTOINCREMENT,
                     topic TEXT NOT NULL,
                     payload BLOB NOT NULL
                 );",
            )
            .map_err(fail)?;
        let queue = load(&store).map_err(fail)?;
        if !queue.is_empty() {
            tracing::info!(undelivered = queue.len(), "resuming the outbox of an earlier run");
        }
        Ok(Outbox { store, queue, in_flight: VecDeque::new() })
    }

    /// Queues `publications` in order; durable ones are committed to disk first. A store that
    /// fails (a full disk) is reported loudly and the messages are kept in memory.
    pub fn push(&mut self, mut publications: Vec<Publication>) {
        if let Err(e) = self.store_durable(&mut publications) {
            tracing::error!(
                "the outbox cannot write to disk ({e}); keeping messages in memory only"
            );
        }
        self.queue.extend(publications);
    }

    pub fn push_front(&mut self, publication: Publication) {
        self.queue.push_front(publication);
    }

    pub fn has_room(&self) -> bool {
        self.len() < CAPACITY
    }

    pub fn len(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands queued publications to `publish` (QoS 1) while the window has room; `publish`
    /// returns false when the client takes no more for now.
    pub fn send(&mut self, mut publish: impl FnMut(&Publication) -> bool) {
        while self.in_flight.len() < WINDOW {
            let Some(p) = self.queue.pop_front() else { return };
            if publish(&p) {
                self.in_flight.push_back((None, p));
            } else {
                self.queue.push_front(p);
                return;
            }
        }
    }

    /// The client sent the oldest publication without an id under `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(slot) = self.in_flight.iter_mut().find(|(id, _)| id.is_none()) {
            slot.0 = Some(pkid);
        }
    }

    /// The broker has the publication sent under `pkid`: it leaves the outbox, and the disk.
    pub fn acknowledged(&mut self, pkid: u16) {
        let Some(at) = self.in_flight.iter().position(|(id, _)| *id == Some(pkid)) else { return };
        let (_, p) = self.in_flight.remove(at).expect("found above");
        if let Some(row) = p.row
            && let Err(e) = self.store.execute("DELETE FROM outbox WHERE row = ?1", params![row])
        {
            // Worst case it is delivered again after a restart: a duplicate, not a loss.
            tracing::error!("the outbox cannot forget a delivered message ({e})");
        }
    }

    /// The link dropped: in-flight publications go back to the head of the queue, in order.
    pub fn resend_unacknowledged(&mut self) {
        while let Some((_, p)) = self.in_flight.pop_back() {
            self.queue.push_front(p);
        }
    }

    fn store_durable(&mut self, publications: &mut [Publication]) -> rusqlite::Result<()> {
        if !publications.iter().any(|p| p.durable && p.row.is_none()) {
            return Ok(());
        }
        let transaction = self.store.transaction()?;
        for p in publications.iter_mut().filter(|p| p.durable && p.row.is_none()) {
            transaction.execute(
                "INSERT INTO outbox (topic, payload) VALUES (?1, ?2)",
                params![p.topic, p.payload],
            )?;
            p.row = Some(transaction.last_insert_rowid());
        }
        // All of one message or none: an incident never goes without its evidence row.
        transaction.commit()
    }
}

fn load(store: &Connection) -> rusqlite::Result<VecDeque<Publication>> {
    let mut rows = store.prepare("SELECT row, topic, payload FROM outbox ORDER BY row")?;
    let stored = rows.query_map([], |r| {
        Ok(Publication {
            topic: r.get(1)?,
            payload: r.get(2)?,
            retain: false,
            durable: true,
            row: Some(r.get(0)?),
        })
    })?;
    stored.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(n: u8) -> Publication {
        Publication::durable(format!("t/{n}"), vec![n])
    }

    fn topics_of(queue: &VecDeque<Publication>) -> Vec<&str> {
        queue.iter().map(|p| p.topic.as_str()).collect()
    }

    /// A client that takes every publication.
    fn client(_: &Publication) -> bool {
        true
    }

    #[tokio::test]
    async fn keeps_what_the_broker_did_not_acknowledge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        outbox.push((1..=3).map(publication).collect());
        outbox.send(client);
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
    }

    #[tokio::test]
    async fn sends_at_most_a_window_and_fills_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        outbox.push((0..40).map(publication).collect());
        outbox.send(client);
        assert_eq!((outbox.in_flight.len(), outbox.queue.len()), (WINDOW, 40 - WINDOW));
        outbox.push((0..CAPACITY - 41).map(|n| publication(n as u8)).collect());
        assert!(outbox.has_room());
        outbox.push(vec![publication(0)]);
        assert!(!outbox.has_room());
    }

    #[tokio::test]
    async fn a_restart_resumes_the_undelivered_in_order_and_forgets_status() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut outbox = Outbox::open(dir.path()).unwrap();
            outbox.push(vec![publication(1), Publication::status("s".into(), vec![0])]);
            outbox.push(vec![publication(2), publication(3)]);
            outbox.send(client);
            outbox.sent(1); // t/1
            outbox.sent(2); // the status
            outbox.sent(3); // t/2
            outbox.acknowledged(3);
            // Dropped here without a goodbye, as by kill -9.
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(topics_of(&outbox.queue), ["t/1", "t/3"]);
        assert_eq!(outbox.queue[0].payload, [1]);
    }

    #[test]
    fn an_unwritable_data_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let error = Outbox::open(&file).err().expect("a file is no data dir");
        assert!(error.contains("not-a-dir"), "{error}");
    }
}
