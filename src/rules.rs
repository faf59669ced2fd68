//! Rules: the event algorithms, evaluated on one camera's tracks on stream time.
//!
//! Plain Rust over [`Track`]s, no video or model inside, so tests drive it with synthetic
//! tracks. A rule turns what it watches into [`RuleEvent`]s: an incident starts, an incident
//! ends. The incident stage gives them ids and payloads.
//!
//! `illegal_parking` is a *dwell* rule: a vehicle whose ground point (bottom-centre of its box)
//! stays inside the zone and whose centre stays within `max_motion` × its box size of where it
//! settled, for `dwell_s` seconds, starts an incident. The incident ends when the vehicle leaves
//! the zone or its track is lost for good. One incident per vehicle; no new one for the same
//! place (overlapping an open or recently ended incident's box) within `cooldown_s`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{AlgorithmConfig, ZoneConfig};
use crate::geometry::{BBox, Point, Polygon};
use crate::track::{Track, TrackState, TrackUpdate};

/// Two incident boxes overlapping at least this much are the same place.
const SAME_PLACE_IOU: f32 = 0.3;

/// Whether an incident begins or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Start,
    End,
}

/// What one object contributed to an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectFact {
    pub track_id: u64,
    pub class: Arc<str>,
    pub confidence: f32,
    pub bbox: BBox,
    pub dwell_s: f64,
}

/// An incident starting or ending in one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvent {
    /// Index of the rule in the camera's `algorithms`.
    pub rule: usize,
    /// Identifies the incident within the rule: start and end carry the same key.
    pub key: u64,
    pub phase: Phase,
    pub objects: Vec<ObjectFact>,
}

/// All rules of one camera.
pub struct Rules {
    rules: Vec<Dwell>,
}

impl Rules {
    /// Builds the camera's rules; `default_confidence` applies where a rule sets no
    /// `min_confidence`. Zones are looked up by name (the config has checked they exist).
    pub fn new(
        algorithms: &[AlgorithmConfig],
        zones: &[ZoneConfig],
        default_confidence: f32,
    ) -> Self {
        let rules = algorithms
            .iter()
            .map(|a| Dwell {
                zone: a
                    .zone
                    .as_ref()
                    .and_then(|z| zones.iter().find(|zc| &zc.name == z))
                    .map(|z| z.polygon.clone()),
                classes: a.classes.iter().map(|c| Arc::from(c.as_str())).collect(),
                min_confidence: a.min_confidence.unwrap_or(default_confidence),
                dwell_s: a.dwell_s,
                cooldown_s: a.cooldown_s,
                max_motion: a.max_motion,
                watches: HashMap::new(),
                recent_places: Vec::new(),
            })
            .collect();
        Rules { rules }
    }

    /// One analysed frame's tracks at stream time `t`; returns the incidents that start or end.
    pub fn update(&mut self, tracks: &TrackUpdate<'_>, t: f64) -> Vec<RuleEvent> {
        let mut events = Vec::new();
        for (i, rule) in self.rules.iter_mut().enumerate() {
            rule.update(tracks, t, &mut |key, phase, fact| {
                events.push(RuleEvent { rule: i, key, phase, objects: vec![fact] })
            });
        }
        events
    }
}

/// One object being watched: where and since when it has been still.
struct Watch {
    still_since: f64,
    settled_at: Point,
    incident: bool,
    last: ObjectFact,
}

struct Dwell {
    zone: Option<Polygon>,
    classes: Vec<Arc<str>>,
    min_confidence: f32,
    dwell_s: f64,
    cooldown_s: f64,
    max_motion: f32,
    watches: HashMap<u64, Watch>,
    /// Boxes of ended incidents and when they ended, for the cooldown.
    recent_places: Vec<(BBox, f64)>,
}

impl Dwell {
    fn update(
        &mut self,
        tracks: &TrackUpdate<'_>,
        t: f64,
        emit: &mut dyn FnMut(u64, Phase, ObjectFact),
    ) {
        let cooldown_s = self.cooldown_s;
        self.recent_places.retain(|(_, ended)| t - ended < cooldown_s);
        for id in &tracks.removed {
            self.forget(*id, t, emit);
        }
        // Lost tracks keep their watch untouched: a vehicle hidden behind a passer-by for a
        // moment is still parked. So does a frame where its class or confidence dips: only
        // leaving the zone (or the track ending) ends an incident.
        for track in tracks.tracks.iter().filter(|tr| tr.state == TrackState::Confirmed) {
            if !self.in_zone(track) {
                self.forget(track.id, t, emit);
                continue;
            }
            if !self.concerns(track) {
                continue;
            }
            let centre = track.bbox.centre();
            let size = track.bbox.w.max(track.bbox.h);
            let watch = self.watches.entry(track.id).or_insert_with(|| Watch {
                still_since: t,
                settled_at: centre,
                incident: false,
                last: fact(track, 0.0),
            });
            if distance(centre, watch.settled_at) > self.max_motion * size {
                watch.still_since = t;
                watch.settled_at = centre;
            }
            watch.last = fact(track, t - watch.still_since);
            if !watch.incident && t - watch.still_since >= self.dwell_s {
                let place = track.bbox;
                let taken = self.recent_places.iter().any(|(b, _)| b.iou(&place) >= SAME_PLACE_IOU)
                    || self
                        .watches
                        .values()
                        .any(|w| w.incident && w.last.bbox.iou(&place) >= SAME_PLACE_IOU);
                if !taken {
                    let watch = self.watches.get_mut(&track.id).expect("inserted above");
                    watch.incident = true;
                    emit(track.id, Phase::Start, watch.last.clone());
                }
            }
        }
    }

    fn in_zone(&self, track: &Track) -> bool {
        self.zone.as_ref().is_none_or(|z| z.contains(track.bbox.bottom_centre()))
    }

    /// Whether this detection of the track counts: the rule's classes, confident enough.
    fn concerns(&self, track: &Track) -> bool {
        self.classes.contains(&track.class) && track.confidence >= self.min_confidence
    }

    fn forget(&mut self, id: u64, t: f64, emit: &mut dyn FnMut(u64, Phase, ObjectFact)) {
        if let Some(watch) = self.watches.remove(&id)
            && watch.incident
        {
            self.recent_places.push((watch.last.bbox, t));
            emit(id, Phase::End, watch.last);
        }
    }
}

fn fact(track: &Track, dwell_s: f64) -> ObjectFact {
    ObjectFact {
        track_id: track.id,
        class: track.class.clone(),
        confidence: track.confidence,
        bbox: track.bbox,
        dwell_s,
    }
}

fn distance(a: Point, b: Point) -> f32 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlgorithmType;

    const FPS: f64 = 5.0;

    fn parking(dwell_s: f64, cooldown_s: f64) -> Rules {
        let zone = ZoneConfig {
            name: "kerb".into(),
            polygon: Polygon::new(vec![
                Point { x: 0.5, y: 0.0 },
                Point { x: 1.0, y: 0.0 },
                Point { x: 1.0, y: 0.5 },
                Point { x: 0.5, y: 0.5 },
            ]),
        };
        let algorithm = AlgorithmConfig {
            kind: AlgorithmType::IllegalParking,
            zone: Some("kerb".into()),
            dwell_s,
            cooldown_s,
            classes: vec!["car".into(), "truck".into()],
            min_confidence: None,
            max_motion: 0.15,
        };
        Rules::new(&[algorithm], &[zone], 0.35)
    }

    fn track(id: u64, class: &str, x: f32, y: f32, state: TrackState) -> Track {
        Track {
            id,
            class: Arc::from(class),
            confidence: 0.8,
            bbox: BBox { x, y, w: 0.1, h: 0.1 },
            state,
            first_seen_s: 0.0,
            last_seen_s: 0.0,
        }
    }

    /// Feeds `frames` frames of the same tracks, from time `from`; returns (time, event) pairs.
    fn run(
        rules: &mut Rules,
        from: f64,
        frames: usize,
        tracks: &[Track],
        removed: &[u64],
    ) -> Vec<(f64, RuleEvent)> {
        let mut out = Vec::new();
        for i in 0..frames {
            let t = from + i as f64 / FPS;
            let update =
                TrackUpdate { tracks, removed: if i == 0 { removed.to_vec() } else { vec![] } };
            out.extend(rules.update(&update, t).into_iter().map(|e| (t, e)));
        }
        out
    }

    #[test]
    fn parked_car_starts_once_after_dwell_not_a_frame_early() {
        let mut rules = parking(10.0, 600.0);
        let car = [track(1, "car", 0.7, 0.2, TrackState::Confirmed)];
        let events = run(&mut rules, 0.0, 100, &car, &[]);
        assert_eq!(events.len(), 1, "{events:?}");
        let (t, e) = &events[0];
        assert_eq!(*t, 10.0);
        assert_eq!(e.phase, Phase::Start);
        assert_eq!(e.objects[0].track_id, 1);
        assert!((e.objects[0].dwell_s - 10.0).abs() < 1e-9);
    }

    #[test]
    fn moving_car_or_pedestrian_or_car_outside_zone_never_starts() {
        let mut rules = parking(5.0, 600.0);
        let mut events = Vec::new();
        for i in 0..100 {
            let t = i as f64 / FPS;
            let moving = track(1, "car", 0.5 + (i % 40) as f32 * 0.01, 0.2, TrackState::Confirmed);
            let person = track(2, "person", 0.7, 0.2, TrackState::Confirmed);
            let outside = track(3, "car", 0.1, 0.7, TrackState::Confirmed);
            let tracks = [moving, person, outside];
            events.extend(rules.update(&TrackUpdate { tracks: &tracks, removed: vec![] }, t));
        }
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn jitter_within_max_motion_still_counts_as_parked() {
        let mut rules = parking(5.0, 600.0);
        let mut started = None;
        for i in 0..50 {
            let t = i as f64 / FPS;
            // Peak to peak 0.01, under max_motion (0.15) × box size (0.1).
            let jitter = if i % 2 == 0 { 0.005 } else { -0.005 };
            let car = [track(1, "truck", 0.7 + jitter, 0.2, TrackState::Confirmed)];
            if !rules.update(&TrackUpdate { tracks: &car, removed: vec![] }, t).is_empty() {
                started.get_or_insert(t);
            }
        }
        assert_eq!(started, Some(5.0));
    }

    #[test]
    fn incident_ends_when_the_car_leaves_the_zone_with_the_same_key() {
        let mut rules = parking(2.0, 600.0);
        let mut events =
            run(&mut rules, 0.0, 20, &[track(4, "car", 0.7, 0.2, TrackState::Confirmed)], &[]);
        events.extend(run(
            &mut rules,
            4.0,
            2,
            &[track(4, "car", 0.1, 0.8, TrackState::Confirmed)],
            &[],
        ));
        let phases: Vec<(Phase, u64)> = events.iter().map(|(_, e)| (e.phase, e.key)).collect();
        assert_eq!(phases, vec![(Phase::Start, 4), (Phase::End, 4)]);
    }

    #[test]
    fn lost_track_keeps_the_incident_until_removed_for_good() {
        let mut rules = parking(2.0, 600.0);
        run(&mut rules, 0.0, 20, &[track(4, "car", 0.7, 0.2, TrackState::Confirmed)], &[]);
        let lost = run(&mut rules, 4.0, 10, &[track(4, "car", 0.7, 0.2, TrackState::Lost)], &[]);
        assert!(lost.is_empty(), "{lost:?}");
        let removed = run(&mut rules, 6.0, 1, &[], &[4]);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].1.phase, Phase::End);
    }

    #[test]
    fn a_weak_frame_neither_ends_the_incident_nor_restarts_the_dwell() {
        let mut rules = parking(2.0, 600.0);
        let car = track(4, "car", 0.7, 0.2, TrackState::Confirmed);
        let mut weak = car.clone();
        weak.confidence = 0.2;
        let mut events = run(&mut rules, 0.0, 5, std::slice::from_ref(&car), &[]);
        events.extend(run(&mut rules, 1.0, 1, std::slice::from_ref(&weak), &[]));
        events.extend(run(&mut rules, 1.2, 5, std::slice::from_ref(&car), &[]));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].0, 2.0, "the dwell ran on through the weak frame");
        let later = run(&mut rules, 2.2, 3, std::slice::from_ref(&weak), &[]);
        assert!(later.is_empty(), "a weak frame does not end it: {later:?}");
    }

    #[test]
    fn same_place_is_quiet_during_cooldown_and_fires_after_it() {
        let mut rules = parking(2.0, 30.0);
        let mut events =
            run(&mut rules, 0.0, 20, &[track(1, "car", 0.7, 0.2, TrackState::Confirmed)], &[]);
        events.extend(run(&mut rules, 4.0, 1, &[], &[1]));
        // A new track id in the same place (an id switch, or the next car) within the cooldown.
        events.extend(run(
            &mut rules,
            4.2,
            100,
            &[track(2, "car", 0.71, 0.2, TrackState::Confirmed)],
            &[],
        ));
        assert_eq!(events.len(), 2, "{events:?}");
        // Past the cooldown (ended at 4.0 + 30 s), the same track fires.
        let later =
            run(&mut rules, 34.2, 10, &[track(2, "car", 0.71, 0.2, TrackState::Confirmed)], &[]);
        assert_eq!(later.len(), 1, "{later:?}");
        assert_eq!(later[0].1.phase, Phase::Start);
        assert_eq!(later[0].1.key, 2);
    }

    #[test]
    fn a_second_car_elsewhere_in_the_zone_gets_its_own_incident() {
        let mut rules = parking(2.0, 600.0);
        let cars = [
            track(1, "car", 0.55, 0.1, TrackState::Confirmed),
            track(2, "car", 0.85, 0.3, TrackState::Confirmed),
        ];
        let events = run(&mut rules, 0.0, 20, &cars, &[]);
        let keys: Vec<u64> = events.iter().map(|(_, e)| e.key).collect();
        assert_eq!(keys, vec![1, 2]);
    }
}
