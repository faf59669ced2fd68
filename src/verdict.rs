//! Verdicts: what operators say about incidents, and the suppressions a false alarm leaves.
//!
//! A verdict comes over MQTT (`{prefix}/{node}/{camera}/verdict/{incident_id}`, see
//! [`listen`]) or from the node's page. `confirmed` is journaled and counted. `false_positive`
//! ends the incident if it is still open (its `end` says `reason: "false_positive"`) and creates
//! a [`Suppression`]: on that camera, the same algorithm and object class at the same place
//! (IoU ≥ 0.5 with the incident objects' boxes) raise no new incident until it expires,
//! `verdicts.suppress_days` later.
//!
//! Everything lives in `node.data_dir`, so it outlasts restarts:
//! - `suppressions.json`: the suppressions in force, rewritten whole (temporary file, then
//!   rename) at each change. The node reads it again when it changes on disk, so
//!   `cityeye suppressions remove` works on a running node;
//! - `suppressions/{id}.jpg`: each suppression's snapshot (the incident's, as published);
//! - `verdicts.jsonl`: the journal, one JSON object a line: who, when, which incident, what.
//!
//! The camera threads feed the [`Store`] every incident message (it remembers the last
//! [`RECENT`]) and, when its generation changes, take their camera's suppressions and the
//! incidents to end. A verdict for an unknown incident, or a malformed one, is logged and
//! ignored.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::geometry::BBox;
use crate::incident::{Evidence, Incident, evidence_jpeg};
use crate::publish::link;
use crate::rules::Suppressed;
use crate::stats::NodeStats;
use crate::wire::{IncidentState, Topics, Verdict, VerdictPayload, rfc3339_millis};

pub const SUPPRESSIONS_FILE: &str = "suppressions.json";
pub const SNAPSHOTS_DIR: &str = "suppressions";
pub const JOURNAL_FILE: &str = "verdicts.jsonl";
/// Incidents a verdict can be given on: the last ones since the node started.
pub const RECENT: usize = 1000;
/// Of those, the newest keep their snapshot's frame, for the suppression's snapshot.
const RECENT_EVIDENCE: usize = 16;

/// A place on a camera where an algorithm raises nothing for a while: an operator said its
/// incident there was a false alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    pub id: String,
    pub camera: String,
    pub algorithm: String,
    /// The incident the verdict was on.
    pub incident_id: String,
    /// Its objects as last seen.
    pub objects: Vec<SuppressedObject>,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    /// Whether `suppressions/{id}.jpg` was written.
    pub snapshot: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressedObject {
    pub class: String,
    /// `[x, y, w, h]`, fractions of the frame, as in the incident message.
    pub bbox: [f32; 4],
}

impl Suppression {
    /// When it stops holding; an unreadable time (an edited file) counts as expired.
    pub fn expires(&self) -> SystemTime {
        chrono::DateTime::parse_from_rfc3339(&self.expires_at)
            .map_or(SystemTime::UNIX_EPOCH, SystemTime::from)
    }

    /// What the camera's rules hold back for it.
    pub fn place(&self) -> Suppressed {
        let objects = self.objects.iter().map(|o| {
            let [x, y, w, h] = o.bbox;
            (Arc::from(o.class.as_str()), BBox { x, y, w, h })
        });
        Suppressed { objects: objects.collect(), until: self.expires() }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct SuppressionsFile {
    suppressions: Vec<Suppression>,
}

/// The suppressions in `data_dir`; none when the file is not there.
pub fn load(data_dir: &Path) -> Result<Vec<Suppression>, String> {
    let path = data_dir.join(SUPPRESSIONS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<SuppressionsFile>(&bytes)
            .map(|f| f.suppressions)
            .map_err(|e| format!("{}: not a suppressions file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the suppressions file whole: a crash leaves the old one or the new one.
fn save(data_dir: &Path, suppressions: &[Suppression]) -> Result<(), String> {
    let path = data_dir.join(SUPPRESSIONS_FILE);
    let temporary = data_dir.join(format!("{SUPPRESSIONS_FILE}.tmp"));
    let file = SuppressionsFile { suppressions: suppressions.to_vec() };
    let text = serde_json::to_vec_pretty(&file).expect("plain data serializes");
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::File::create(&temporary)?;
        out.write_all(&text)?;
        out.sync_all()?;
        std::fs::rename(&temporary, &path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The snapshot of suppression `id`.
pub fn snapshot_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join(SNAPSHOTS_DIR).join(format!("{id}.jpg"))
}

/// One line of the journal.
#[derive(Debug, Serialize)]
struct JournalEntry<'a> {
    at: String,
    /// `verdict`, `suppression_removed` or `suppression_expired`.
    event: &'a str,
    by: &'a str,
    /// Where it came from: `mqtt`, `web` or `cli`.
    via: &'a str,
    camera: &'a str,
    incident_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppression: Option<&'a str>,
}

fn journal(data_dir: &Path, entry: &JournalEntry<'_>) {
    let path = data_dir.join(JOURNAL_FILE);
    let mut line = serde_json::to_vec(entry).expect("plain data serializes");
    line.push(b'\n');
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&line));
    // The verdict still applies: losing its journal line must not lose the suppression.
    if let Err(e) = appended {
        tracing::error!("cannot write the verdict journal {}: {e}", path.display());
    }
}

/// Removes suppression `id` from `data_dir` (the running node, if any, follows the file),
/// journaling who did it; the removed suppression.
pub fn remove(data_dir: &Path, id: &str, by: &str, via: &str) -> Result<Suppression, String> {
    let mut suppressions = load(data_dir)?;
    let i = suppressions
        .iter()
        .position(|s| s.id == id)
        .ok_or_else(|| format!("no suppression {id} in {}", data_dir.display()))?;
    let removed = suppressions.remove(i);
    save(data_dir, &suppressions)?;
    let _ = std::fs::remove_file(snapshot_path(data_dir, id));
    journal(data_dir, &ended(&removed, "suppression_removed", by, via));
    Ok(removed)
}

fn ended<'a>(s: &'a Suppression, event: &'a str, by: &'a str, via: &'a str) -> JournalEntry<'a> {
    JournalEntry {
        at: rfc3339_millis(SystemTime::now()),
        event,
        by,
        via,
        camera: &s.camera,
        incident_id: &s.incident_id,
        algorithm: Some(&s.algorithm),
        verdict: None,
        note: None,
        suppression: Some(&s.id),
    }
}

/// An incident a verdict can be given on.
struct Recent {
    id: String,
    camera: String,
    algorithm: String,
    open: bool,
    objects: Vec<SuppressedObject>,
    evidence: Option<Evidence>,
    verdict: Option<Verdict>,
}

struct State {
    suppressions: Vec<Suppression>,
    /// The file's modification time when last read or written: a change on disk is someone
    /// else's (`cityeye suppressions remove`).
    stamp: Option<SystemTime>,
    /// Newest last.
    recent: VecDeque<Recent>,
    /// Open incidents to end as false positives: camera and incident id.
    ends: Vec<(String, String)>,
}

/// What a verdict did.
#[derive(Debug)]
pub struct Given {
    pub suppression: Option<Suppression>,
    /// Whether the incident was open, and ends now.
    pub ends: bool,
}

/// The node's verdicts and suppressions, shared by the camera threads, the MQTT listener and
/// the page.
pub struct Store {
    data_dir: PathBuf,
    suppress_for: Duration,
    stats: Arc<NodeStats>,
    state: Mutex<State>,
    /// Moves on at every change the camera threads must act on.
    generation: AtomicU64,
}

impl Store {
    /// The store of `data_dir`. A suppressions file that cannot be read is set aside (named
    /// in the log) rather than stopping the node: the cameras must run.
    pub fn open(data_dir: &Path, suppress_days: f64, stats: Arc<NodeStats>) -> Store {
        let suppressions = load(data_dir).unwrap_or_else(|e| {
            let aside = data_dir.join(format!("{SUPPRESSIONS_FILE}.unreadable"));
            let _ = std::fs::rename(data_dir.join(SUPPRESSIONS_FILE), &aside);
            tracing::error!("{e}; set aside as {}, starting without suppressions", aside.display());
            Vec::new()
        });
        stats.set_suppressions(suppressions.len());
        let state = State {
            suppressions,
            stamp: modified(data_dir),
            recent: VecDeque::new(),
            ends: Vec::new(),
        };
        Store {
            data_dir: data_dir.to_path_buf(),
            suppress_for: Duration::from_secs_f64(suppress_days * 86_400.0),
            stats,
            state: Mutex::new(state),
            generation: AtomicU64::new(1),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Changes whenever a camera's suppressions change or an incident is to end.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// An incident message from a camera: the latest objects of the incident a verdict may
    /// come for.
    pub fn seen(&self, incident: &Incident) {
        let p = &incident.payload;
        let objects = p
            .objects
            .iter()
            .map(|o| SuppressedObject { class: o.class.clone(), bbox: o.bbox })
            .collect();
        let mut state = lock(&self.state);
        let open = p.state != IncidentState::End;
        if let Some(known) = state.recent.iter_mut().rev().find(|r| r.id == p.id) {
            (known.objects, known.open) = (objects, open);
            return;
        }
        if p.state != IncidentState::Start {
            return;
        }
        if state.recent.len() == RECENT {
            state.recent.pop_front();
        }
        state.recent.push_back(Recent {
            id: p.id.clone(),
            camera: p.camera.clone(),
            algorithm: p.algorithm.clone(),
            open,
            objects,
            evidence: incident.evidence.clone(),
            verdict: None,
        });
        // Only the newest keep their frame: older ones are rarely judged, and frames are large.
        if let Some(older) = state.recent.len().checked_sub(RECENT_EVIDENCE + 1) {
            state.recent[older].evidence = None;
        }
    }

    /// Applies a verdict on incident `incident_id` of `camera`; `via` says where it came from.
    /// An error says why it was ignored.
    pub fn give(
        &self,
        camera: &str,
        incident_id: &str,
        verdict: &VerdictPayload,
        via: &str,
    ) -> Result<Given, String> {
        let mut state = lock(&self.state);
        let known = state.recent.iter_mut().rev().find(|r| r.id == incident_id);
        let Some(recent) = known.filter(|r| r.camera == camera) else {
            return Err(format!(
                "no incident {incident_id} on camera {camera} among the last {RECENT} since the node started"
            ));
        };
        if recent.verdict == Some(verdict.verdict) {
            return Err(format!("incident {incident_id} is already {}", verdict.verdict.name()));
        }
        recent.verdict = Some(verdict.verdict);
        let now = SystemTime::now();
        let ends = verdict.verdict == Verdict::FalsePositive && recent.open;
        let suppression = (verdict.verdict == Verdict::FalsePositive).then(|| Suppression {
            id: Uuid::now_v7().to_string(),
            camera: camera.to_string(),
            algorithm: recent.algorithm.clone(),
            incident_id: incident_id.to_string(),
            objects: recent.objects.clone(),
            by: verdict.by.clone(),
            note: verdict.note.clone(),
            created_at: rfc3339_millis(now),
            expires_at: rfc3339_millis(now + self.suppress_for),
            snapshot: recent.evidence.is_some(),
        });
        let evidence = recent.evidence.clone();
        let algorithm = recent.algorithm.clone();
        if ends {
            recent.open = false;
            state.ends.push((camera.to_string(), incident_id.to_string()));
        }
        journal(
            &self.data_dir,
            &JournalEntry {
                at: rfc3339_millis(now),
                event: "verdict",
                by: &verdict.by,
                via,
                camera,
                incident_id,
                algorithm: Some(&algorithm),
                verdict: Some(verdict.verdict.name()),
                note: verdict.note.as_deref(),
                suppression: suppression.as_ref().map(|s| s.id.as_str()),
            },
        );
        self.stats.count_verdict(verdict.verdict.name());
        let Some(mut suppression) = suppression else {
            return Ok(Given { suppression: None, ends });
        };
        if let Some(evidence) = evidence {
            suppression.snapshot = self.write_snapshot(&suppression.id, &evidence);
        }
        state.suppressions.push(suppression.clone());
        if let Err(e) = save(&self.data_dir, &state.suppressions) {
            tracing::error!("the suppression holds until the node stops: {e}");
        }
        state.stamp = modified(&self.data_dir);
        self.stats.set_suppressions(state.suppressions.len());
        drop(state);
        self.changed();
        Ok(Given { suppression: Some(suppression), ends })
    }

    fn write_snapshot(&self, id: &str, evidence: &Evidence) -> bool {
        let path = snapshot_path(&self.data_dir, id);
        let written = evidence_jpeg(evidence).and_then(|jpeg| {
            std::fs::create_dir_all(self.data_dir.join(SNAPSHOTS_DIR))
                .and_then(|()| std::fs::write(&path, jpeg))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = &written {
            tracing::warn!("cannot keep the suppression's snapshot {}: {e}", path.display());
        }
        written.is_ok()
    }

    /// Camera `camera`'s part of the current generation: its suppressions in force, each with
    /// its algorithm, and the open incidents to end now.
    pub fn for_camera(&self, camera: &str) -> (Vec<(String, Suppressed)>, Vec<String>) {
        let mut state = lock(&self.state);
        let places = state
            .suppressions
            .iter()
            .filter(|s| s.camera == camera)
            .map(|s| (s.algorithm.clone(), s.place()))
            .collect();
        let (mine, others) =
            std::mem::take(&mut state.ends).into_iter().partition(|(c, _)| c == camera);
        state.ends = others;
        (places, mine.into_iter().map(|(_, id)| id).collect())
    }

    /// The suppressions in force, oldest first.
    pub fn list(&self) -> Vec<Suppression> {
        lock(&self.state).suppressions.clone()
    }

    /// Removes suppression `id` (from the page), journaled as `by`'s.
    pub fn remove(&self, id: &str, by: &str) -> Result<Suppression, String> {
        let mut state = lock(&self.state);
        let removed = remove(&self.data_dir, id, by, "web")?;
        state.suppressions.retain(|s| s.id != id);
        state.stamp = modified(&self.data_dir);
        self.stats.set_suppressions(state.suppressions.len());
        drop(state);
        self.changed();
        Ok(removed)
    }

    /// Follows the file when someone else changed it, and lets expired suppressions go. The
    /// node calls it every few seconds.
    pub fn refresh(&self) {
        let mut state = lock(&self.state);
        let stamp = modified(&self.data_dir);
        let mut changed = false;
        if stamp != state.stamp {
            match load(&self.data_dir) {
                Ok(suppressions) => {
                    tracing::info!(
                        before = state.suppressions.len(),
                        now = suppressions.len(),
                        "the suppressions file changed: following it"
                    );
                    state.suppressions = suppressions;
                    changed = true;
                }
                Err(e) => tracing::error!("{e}; keeping the suppressions as they were"),
            }
            state.stamp = stamp;
        }
        let now = SystemTime::now();
        let (expired, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut state.suppressions).into_iter().partition(|s| s.expires() <= now);
        state.suppressions = kept;
        if !expired.is_empty() {
            for s in &expired {
                let _ = std::fs::remove_file(snapshot_path(&self.data_dir, &s.id));
                journal(&self.data_dir, &ended(s, "suppression_expired", "node", "node"));
            }
            if let Err(e) = save(&self.data_dir, &state.suppressions) {
                tracing::error!("{e}");
            }
            state.stamp = modified(&self.data_dir);
            changed = true;
        }
        self.stats.set_suppressions(state.suppressions.len());
        drop(state);
        if changed {
            self.changed();
        }
    }
}

fn modified(data_dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(data_dir.join(SUPPRESSIONS_FILE)).and_then(|m| m.modified()).ok()
}

/// A poisoned lock only means a thread panicked while it held it; what it guards stays usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Subscribes to the node's verdict topics on its broker, on a thread of its own, until `stop`:
/// a client of its own beside the publishing link (which keeps no session and subscribes to
/// nothing), with the same broker, credentials and TLS.
pub fn listen(
    store: Arc<Store>,
    settings: &link::Settings,
    topics: Topics,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let client_id = format!("{}-verdicts", settings.client_id());
    let (client, mut connection) =
        rumqttc::Client::new(settings.subscriber_options(&client_id), 16);
    let filter = topics.verdicts();
    std::thread::Builder::new()
        .name("verdicts".into())
        .spawn(move || {
            let mut connected = false;
            for event in connection.iter() {
                if stop.load(Ordering::Relaxed) {
                    let _ = client.try_disconnect();
                    break;
                }
                match event {
                    // Also after a reconnect: a clean session forgets subscriptions.
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        connected = true;
                        let _ = client.try_subscribe(&filter, rumqttc::QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        on_message(&store, &topics, &p.topic, &p.payload);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if connected {
                            tracing::warn!("verdicts: broker connection lost: {e}; reconnecting");
                            connected = false;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the verdict thread: {e}"))
}

/// One message on a verdict topic: applied, or logged and ignored.
fn on_message(store: &Store, topics: &Topics, topic: &str, payload: &[u8]) {
    let Some((camera, id)) = topics.parse_verdict(topic) else {
        tracing::warn!(topic, "verdict ignored: not a verdict topic of this node");
        return;
    };
    let given = VerdictPayload::parse(payload)
        .and_then(|verdict| store.give(camera, id, &verdict, "mqtt").map(|g| (verdict, g)));
    match given {
        Ok((verdict, given)) => tracing::info!(
            camera,
            incident = id,
            by = %verdict.by,
            verdict = verdict.verdict.name(),
            ends = given.ends,
            suppression = given.suppression.as_ref().map(|s| s.id.as_str()),
            "verdict"
        ),
        Err(e) => tracing::warn!(camera, incident = id, "verdict ignored: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IncidentPayload;

    fn payload(id: &str, state: &str, x: f32) -> IncidentPayload {
        serde_json::from_value(serde_json::json!({
            "schema": "cityeye.incident.v1", "id": id, "node": "edge-1", "camera": "kerb",
            "algorithm": "illegal_parking", "category": "street_order", "name_zh": "机动车违停",
            "name_en": "Illegal parking", "severity": "warning", "state": state,
            "detected_at": "2026-11-18T11:06:40.120Z", "stream_time_s": 20.0,
            "objects": [{"track_id": 3, "class": "car", "confidence": 0.8,
                         "bbox": [x, 0.1, 0.1, 0.1], "dwell_s": 5.0}],
            "model": {"name": "coco", "sha256": "00"}
        }))
        .unwrap()
    }

    fn seen(store: &Store, id: &str, state: &str) {
        let incident = Incident {
            payload: payload(id, state, 0.85),
            evidence: None,
            plate_pictures: Vec::new(),
            seen_at: None,
        };
        store.seen(&incident);
    }

    fn verdict(text: &str) -> VerdictPayload {
        VerdictPayload::parse(text.as_bytes()).unwrap()
    }

    const A: &str = "01a1ffae-a177-7f4d-85bd-000000000001";
    const B: &str = "01a1ffae-a177-7f4d-85bd-000000000002";

    #[test]
    fn a_false_positive_suppresses_ends_the_open_incident_and_is_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(NodeStats::new("edge-1", ["kerb"]));
        let store = Store::open(dir.path(), 30.0, stats.clone());
        seen(&store, A, "start");
        seen(&store, B, "start");
        seen(&store, B, "end");
        let before = store.generation();

        let fp = verdict(r#"{"verdict":"false_positive","by":"ops-7","note":"a shadow"}"#);
        let given = store.give("kerb", A, &fp, "mqtt").unwrap();
        assert!(given.ends);
        let s = given.suppression.unwrap();
        assert_eq!((s.algorithm.as_str(), s.objects[0].class.as_str()), ("illegal_parking", "car"));
        let days = s.expires().duration_since(SystemTime::now()).unwrap().as_secs_f64() / 86_400.0;
        assert!((29.9..=30.0).contains(&days), "{days}");
        assert!(store.generation() > before);
        let (places, ends) = store.for_camera("kerb");
        assert_eq!((places.len(), ends), (1, vec![A.to_string()]));
        assert!(store.for_camera("kerb").1.is_empty(), "taken once");
        assert!(store.for_camera("gate").0.is_empty());
        // The same verdict again, an unknown incident, the wrong camera: ignored, with why.
        assert!(store.give("kerb", A, &fp, "mqtt").unwrap_err().contains("already"));
        let unknown = store.give("kerb", "01a1ffae-a177-7f4d-85bd-000000000009", &fp, "mqtt");
        assert!(unknown.unwrap_err().contains("no incident"));
        assert!(store.give("gate", B, &fp, "mqtt").unwrap_err().contains("no incident"));
        // An ended incident: suppressed, nothing to end.
        let given =
            store.give("kerb", B, &verdict(r#"{"verdict":"false_positive","by":"x"}"#), "web");
        assert!(!given.unwrap().ends);
        let confirmed =
            store.give("kerb", A, &verdict(r#"{"verdict":"confirmed","by":"y"}"#), "mqtt");
        assert!(confirmed.unwrap().suppression.is_none());

        // On disk: both suppressions, and the journal of all three verdicts.
        let on_disk = load(dir.path()).unwrap();
        assert_eq!(on_disk.len(), 2);
        let journal = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        let lines: Vec<serde_json::Value> =
            journal.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["by"], "ops-7");
        assert_eq!(lines[0]["incident_id"], A);
        assert_eq!(lines[0]["verdict"], "false_positive");
        assert_eq!(lines[0]["note"], "a shadow");
        assert_eq!(lines[0]["suppression"], s.id.as_str());
        assert_eq!(lines[2]["verdict"], "confirmed");
        let report: serde_json::Value = serde_json::from_slice(&stats.report()).unwrap();
        assert_eq!(report["verdicts"]["false_positive"], 2);
        assert_eq!(report["verdicts"]["confirmed"], 1);
        assert_eq!(report["suppressions"], 2);

        // Another process removes one (`cityeye suppressions remove`): the store follows.
        remove(dir.path(), &s.id, "cli-user", "cli").unwrap();
        assert!(
            remove(dir.path(), &s.id, "cli-user", "cli").unwrap_err().contains("no suppression")
        );
        std::thread::sleep(Duration::from_millis(20));
        let before = store.generation();
        store.refresh();
        assert_eq!(store.list().len(), 1);
        assert!(store.generation() > before);
        // A restart reads them back.
        let again = Store::open(dir.path(), 30.0, stats);
        assert_eq!(again.list(), store.list());
    }

    #[test]
    fn an_unreadable_suppressions_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SUPPRESSIONS_FILE), "{ not json").unwrap();
        let store = Store::open(dir.path(), 30.0, Arc::new(NodeStats::new("n", ["kerb"])));
        assert!(store.list().is_empty());
        assert!(dir.path().join("suppressions.json.unreadable").exists());
    }
}
