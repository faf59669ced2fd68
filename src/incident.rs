//! Incidents: rule events become the messages the central platform receives.
//!
//! The payload (`cityeye.incident.v1`, written down in `schemas/incident.v1.json`) is a contract:
//! field names do not change. Each incident gets a UUIDv7 when it starts, the hub's idempotency
//! key; its `end` message repeats that id. A `start` carries an evidence snapshot: the frame with
//! the zone and the boxes drawn, encoded to JPEG later by the sink, off the analysis thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use uuid::Uuid;

use crate::config::{CameraConfig, Entry, Severity, plate_in_latin};
use crate::draw;
use crate::frame::Frame;
use crate::geometry::{BBox, Point, Polygon};
use crate::rules::{ObjectFact, Phase, RuleEvent};
use crate::track::{PlatePicture, Track};
use crate::wire::{
    EvidenceRef, FactsPayload, IncidentPayload, IncidentState, ModelRef, ObjectPayload,
    PlatePayload, SCHEMA, Topics, rfc3339_millis, round,
};

const JPEG_QUALITY: u8 = 85;

/// What the snapshot shows: the frame, the zone, the incident's objects and everything else
/// tracked.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub frame: Arc<Frame>,
    /// Zones and lines drawn in yellow: the incident's own, or for a preview all of a camera's.
    pub zones: Vec<Polygon>,
    pub lines: Vec<[[f32; 2]; 2]>,
    pub subjects: Vec<BBox>,
    pub others: Vec<BBox>,
    /// Text drawn under a box (a vehicle's plate, in a preview).
    pub labels: Vec<(BBox, String)>,
}

/// One incident message, with its snapshot when it has one.
#[derive(Debug, Clone)]
pub struct Incident {
    pub payload: IncidentPayload,
    pub evidence: Option<Evidence>,
    /// The pictures of plates this message names for the first time (the objects' index, the
    /// picture): each goes out on its `plate.evidence` topic before the message.
    pub plate_pictures: Vec<(usize, PlatePicture)>,
    /// When the frame that raised it arrived, for the frame-to-broker latency; none for a
    /// message that waited on purpose (for its clip).
    pub seen_at: Option<SystemTime>,
}

/// What the payload says about an algorithm, and what its snapshots draw.
struct RuleInfo {
    entry: &'static Entry,
    severity: Severity,
    zone_name: Option<String>,
    zone: Option<Polygon>,
}

/// Turns one camera's rule events into incident messages.
pub struct Incidents {
    node: String,
    camera: String,
    topics: Topics,
    models: Vec<ModelRef>,
    rules: Vec<RuleInfo>,
    open: HashMap<(usize, u64), Uuid>,
    /// Each open incident's plates whose picture went out: the track and the plate's text.
    pictured: HashMap<Uuid, Vec<(u64, Arc<str>)>>,
}

impl Incidents {
    /// `models` are the camera's models (at least one: the config requires it).
    pub fn new(node: &str, camera: &CameraConfig, topics: Topics, models: Vec<ModelRef>) -> Self {
        let rules = camera
            .resolved
            .iter()
            .map(|a| RuleInfo {
                entry: a.entry,
                severity: a.severity,
                zone_name: a.zone.clone(),
                zone: a.zone.as_ref().and_then(|z| camera.zone(z)).cloned(),
            })
            .collect();
        Incidents {
            node: node.to_string(),
            camera: camera.id.clone(),
            topics,
            models,
            rules,
            open: HashMap::new(),
            pictured: HashMap::new(),
        }
    }

    /// After a config reload, see [`crate::rules::Rules::take_over`]: the messages for the
    /// `ends` of `old`'s dropped algorithms, and the open incidents of the kept ones, renumbered.
    pub fn take_over(
        &mut self,
        mut old: Incidents,
        kept: &[Option<usize>],
        ends: Vec<RuleEvent>,
        frame: &Arc<Frame>,
    ) -> Vec<Incident> {
        let messages = old.messages(ends, frame, &[]);
        self.pictured = std::mem::take(&mut old.pictured);
        for (rule, from) in kept.iter().enumerate() {
            let Some(from) = *from else { continue };
            let moved: Vec<u64> =
                old.open.keys().filter(|(r, _)| *r == from).map(|(_, key)| *key).collect();
            for key in moved {
                let id = old.open.remove(&(from, key)).expect("listed above");
                self.open.insert((rule, key), id);
            }
        }
        messages
    }

    /// The algorithm and key of open incident `id`: where an operator's verdict ends it.
    pub fn slot_of(&self, id: &str) -> Option<(usize, u64)> {
        let id = Uuid::try_parse(id).ok()?;
        self.open.iter().find(|(_, open)| **open == id).map(|(slot, _)| *slot)
    }

    /// Messages for the events of one frame; `tracks` are drawn on the snapshot.
    pub fn messages(
        &mut self,
        events: Vec<RuleEvent>,
        frame: &Arc<Frame>,
        tracks: &[Track],
    ) -> Vec<Incident> {
        events.into_iter().filter_map(|event| self.message(event, frame, tracks)).collect()
    }

    fn message(
        &mut self,
        event: RuleEvent,
        frame: &Arc<Frame>,
        tracks: &[Track],
    ) -> Option<Incident> {
        let slot = (event.rule, event.key);
        let (id, state) = match event.phase {
            Phase::Start => {
                let id = Uuid::new_v7(uuid_timestamp(frame.captured_at));
                self.open.insert(slot, id);
                (id, IncidentState::Start)
            }
            // Updates and ends follow a start; without one there is nothing to refer to.
            Phase::Update => (*self.open.get(&slot)?, IncidentState::Update),
            Phase::End => (self.open.remove(&slot)?, IncidentState::End),
        };
        let plate_pictures = self.new_plate_pictures(id, &event.objects, state);
        let rule = &self.rules[event.rule];
        let evidence = (state == IncidentState::Start).then(|| Evidence {
            frame: frame.clone(),
            zones: rule.zone.iter().cloned().collect(),
            lines: event.facts.line.into_iter().collect(),
            subjects: event.objects.iter().map(|o| o.bbox).collect(),
            others: tracks
                .iter()
                .filter(|t| !event.objects.iter().any(|o| o.track_id == t.id))
                .map(|t| t.bbox)
                .collect(),
            // The plates already read, in Latin letters: the picture's font has no hanzi.
            labels: event
                .objects
                .iter()
                .filter_map(|o| Some((o.bbox, plate_in_latin(&o.plate.as_ref()?.text))))
                .collect(),
        });
        let f = &event.facts;
        let payload = IncidentPayload {
            schema: SCHEMA.into(),
            id: id.to_string(),
            node: self.node.clone(),
            camera: self.camera.clone(),
            algorithm: rule.entry.id.clone(),
            category: rule.entry.category.name().into(),
            name_zh: rule.entry.name_zh.clone(),
            name_en: rule.entry.name_en.clone(),
            severity: rule.severity.name().into(),
            state,
            reason: event.reason.map(String::from),
            zone: rule.zone_name.clone(),
            detected_at: rfc3339_millis(frame.captured_at),
            stream_time_s: round(frame.stream_time_s, 3),
            objects: event.objects.iter().map(object_payload).collect(),
            facts: FactsPayload {
                count: f.count,
                ratio: f.ratio.map(|r| round(f64::from(r), 3) as f32),
                line: f.line,
                direction: f.direction.map(String::from),
                heading_deg: f.heading_deg.map(|h| round(f64::from(h), 1) as f32),
                label: f.label.as_deref().map(String::from),
                score: f.score.map(|s| round(f64::from(s), 3) as f32),
            },
            evidence: evidence.as_ref().map(|_| EvidenceRef {
                topic: self.topics.evidence(&self.camera, &id.to_string()),
                width: frame.width,
                height: frame.height,
                clip: None,
                jpeg_base64: None,
            }),
            model: self.models[0].clone(),
            models: if self.models.len() > 1 { self.models.clone() } else { Vec::new() },
            geo: None,
        };
        let mut incident =
            Incident { payload, evidence, plate_pictures, seen_at: Some(frame.captured_at) };
        self.refer_to_plate_pictures(&mut incident);
        Some(incident)
    }

    /// The plates of `objects` whose picture has not gone out with incident `id` yet, by the
    /// objects' index. An `end` sends none: the incident is over.
    fn new_plate_pictures(
        &mut self,
        id: Uuid,
        objects: &[ObjectFact],
        state: IncidentState,
    ) -> Vec<(usize, PlatePicture)> {
        if state == IncidentState::End {
            self.pictured.remove(&id);
            return Vec::new();
        }
        let sent = self.pictured.entry(id).or_default();
        let mut pictures = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let Some(plate) = &object.plate else { continue };
            let Some(picture) = &plate.picture else { continue };
            let seen = (object.track_id, plate.text.clone());
            if !sent.contains(&seen) {
                sent.push(seen);
                pictures.push((i, picture.clone()));
            }
        }
        pictures
    }

    /// Points each object whose plate picture the message brings at the picture's topic.
    fn refer_to_plate_pictures(&self, incident: &mut Incident) {
        let payload = &mut incident.payload;
        for (i, picture) in &incident.plate_pictures {
            let object = &mut payload.objects[*i];
            let Some(plate) = &mut object.plate else { continue };
            plate.evidence = Some(EvidenceRef {
                topic: self.topics.plate(&payload.camera, &payload.id, object.track_id),
                width: picture.0.width,
                height: picture.0.height,
                clip: None,
                jpeg_base64: None,
            });
        }
    }
}

fn object_payload(o: &ObjectFact) -> ObjectPayload {
    let b = o.bbox;
    ObjectPayload {
        track_id: o.track_id,
        class: o.class.to_string(),
        confidence: round(f64::from(o.confidence), 3) as f32,
        bbox: [b.x, b.y, b.w, b.h].map(|v| round(f64::from(v), 4) as f32),
        dwell_s: round(o.dwell_s, 1),
        plate: o.plate.as_ref().map(|p| PlatePayload {
            text: p.text.to_string(),
            confidence: round(f64::from(p.confidence), 3) as f32,
            reads: p.reads,
            evidence: None,
        }),
    }
}

fn uuid_timestamp(at: SystemTime) -> uuid::Timestamp {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos())
}

/// A plate's picture as JPEG.
pub fn plate_jpeg(picture: &PlatePicture) -> Result<Vec<u8>, String> {
    let image = draw::picture(&picture.0)?;
    draw::jpeg(&image, JPEG_QUALITY).map_err(|e| format!("JPEG encoding failed: {e}"))
}

/// The snapshot as JPEG: the zone (or line) in yellow, the incident's objects in red, other
/// tracked objects in green.
pub fn evidence_jpeg(evidence: &Evidence) -> Result<Vec<u8>, String> {
    let mut image = draw::picture(&evidence.frame)?;
    let thick = draw::stroke(&image);
    for zone in &evidence.zones {
        draw::polygon(&mut image, zone, draw::YELLOW, thick);
    }
    let point = |[x, y]: [f32; 2]| Point { x, y };
    for [a, b] in &evidence.lines {
        draw::line(&mut image, point(*a), point(*b), draw::YELLOW, thick);
    }
    for b in &evidence.others {
        draw::rect(&mut image, b, draw::GREEN, thick - 1);
    }
    for b in &evidence.subjects {
        draw::rect(&mut image, b, draw::RED, thick + 1);
    }
    let scale = draw::text_scale(&image);
    for (b, text) in &evidence.labels {
        let (x, y) = draw::pixel(&image, Point { x: b.x, y: b.y + b.h });
        draw::label(&mut image, x, y + thick, text, draw::BLACK, draw::GREEN, scale);
    }
    draw::jpeg(&image, JPEG_QUALITY).map_err(|e| format!("JPEG encoding failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: usize, height: usize) -> Arc<Frame> {
        Arc::new(Frame {
            width,
            height,
            data: vec![40; width * height * 3].into(),
            stream_time_s: 31.2004,
            captured_at: SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(1_795_000_000_120),
            metadata: Vec::new(),
        })
    }

    #[test]
    fn evidence_is_a_jpeg_of_the_frame_with_the_subject_drawn_in_red() {
        let evidence = Evidence {
            frame: frame(64, 48),
            zones: vec![],
            lines: vec![],
            subjects: vec![BBox { x: 0.25, y: 0.25, w: 0.5, h: 0.5 }],
            others: vec![],
            labels: vec![],
        };
        let jpeg = evidence_jpeg(&evidence).unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
        let edge = decoded.get_pixel(32, 12); // top edge of the box
        let inside = decoded.get_pixel(32, 24);
        assert!(edge[0] > 150 && edge[1] < 100, "edge {edge:?}");
        assert!(inside[0] < 80 && inside[1] < 80, "inside {inside:?}");
    }

    /// A camera with one `illegal_parking` algorithm, and its incidents.
    fn parking_incidents() -> Incidents {
        let text = "id = 'kerb'\nurl = 'file:///v.mp4'\nmodel = 'm'\n\
                    [[algorithms]]\ntype = 'illegal_parking'\ndwell_s = 60";
        let mut camera: CameraConfig = toml::from_str(text).unwrap();
        camera.resolved = camera.algorithms.iter().filter_map(|a| a.resolve(None, &[])).collect();
        let model = ModelRef { name: "m".into(), sha256: "00".into() };
        Incidents::new("edge-1", &camera, Topics::new("cityeye", "edge-1"), vec![model])
    }

    fn car(plate: Option<(&str, &PlatePicture)>) -> ObjectFact {
        ObjectFact {
            track_id: 7,
            class: Arc::from("car"),
            confidence: 0.9,
            bbox: BBox { x: 0.2, y: 0.5, w: 0.3, h: 0.2 },
            dwell_s: 61.0,
            plate: plate.map(|(text, picture)| crate::track::Plate {
                text: Arc::from(text),
                confidence: 0.95,
                reads: 2,
                picture: Some(picture.clone()),
            }),
        }
    }

    fn event(phase: Phase, object: ObjectFact) -> RuleEvent {
        let facts = crate::rules::Facts::default();
        RuleEvent { rule: 0, key: 7, phase, objects: vec![object], facts, reason: None }
    }

    #[test]
    fn a_plate_picture_goes_out_with_the_first_message_that_names_the_plate() {
        let mut incidents = parking_incidents();
        let picture = PlatePicture(frame(40, 12));
        let frame = frame(64, 48);
        let start = incidents.messages(vec![event(Phase::Start, car(None))], &frame, &[]);
        assert!(start[0].plate_pictures.is_empty());
        assert_eq!(start[0].payload.objects[0].plate, None);
        let read = Phase::Update;
        let update =
            incidents.messages(vec![event(read, car(Some(("皖ACJ218", &picture))))], &frame, &[]);
        assert_eq!(update[0].plate_pictures, vec![(0, picture.clone())]);
        let plate = update[0].payload.objects[0].plate.as_ref().unwrap();
        let reference = plate.evidence.as_ref().unwrap();
        let id = &update[0].payload.id;
        assert_eq!(reference.topic, format!("cityeye/edge-1/kerb/evidence/{id}/plate/7"));
        assert_eq!((reference.width, reference.height), (40, 12));
        // Later messages name the plate without sending its picture again.
        let again =
            incidents.messages(vec![event(read, car(Some(("皖ACJ218", &picture))))], &frame, &[]);
        assert!(again[0].plate_pictures.is_empty());
        assert!(again[0].payload.objects[0].plate.as_ref().unwrap().evidence.is_none());
        let jpeg = plate_jpeg(&picture).unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (40, 12));
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds_in_utc() {
        assert_eq!(rfc3339_millis(frame(2, 2).captured_at), "2026-11-18T11:06:40.120Z");
    }

    #[test]
    fn uuids_are_version_7_and_ordered_by_time() {
        let a = Uuid::new_v7(uuid_timestamp(
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10),
        ));
        let b = Uuid::new_v7(uuid_timestamp(
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(11),
        ));
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }
}
