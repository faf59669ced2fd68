//! Rules: the city-event algorithms, evaluated on one camera's tracks on stream time.
//!
//! An algorithm is a catalog entry ([`crate::config::catalog`]: id, names, category, a
//! *primitive*, default classes and parameters) plus the camera's settings (zone, classes,
//! thresholds, schedule, cooldown, severity), merged by the config ([`crate::config::Algorithm`])
//! and made runnable by [`specs`]. A primitive ([`primitives`]) says which conditions hold right now
//! (a vehicle has dwelt long enough, a crowd is there, a line was crossed); this module turns
//! what holds into incidents the same way for every algorithm:
//!
//! - a condition that starts holding starts an incident (`start`), unless the schedule is
//!   closed or the same condition (same key, or for stationary things the same place) ended
//!   less than `cooldown_s` ago;
//! - while it holds, an `update` at most every `update_s` with the current objects and facts;
//! - when it stops holding, or the schedule closes, the incident ends (`end`);
//! - an operator's `false_positive` verdict ends it at once ([`Rules::end_now`]) and makes its
//!   place a [`Suppressed`] one: the same classes at the same boxes start nothing there until
//!   the suppression expires.
//!
//! Plain Rust over [`Track`]s: no video or model inside, so tests drive it with synthetic tracks.

pub mod primitives;
mod spec;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Schedule, plate_matches};
use crate::geometry::{BBox, Polygon};
use crate::track::{Plate, Track, TrackState, TrackUpdate};

pub use spec::specs;

/// Two incident boxes overlapping at least this much are the same place.
const SAME_PLACE_IOU: f32 = 0.3;
/// A box overlapping a suppressed one at least this much is the thing an operator called a
/// false alarm.
pub const SUPPRESS_IOU: f32 = 0.5;

/// Why an incident ended other than by its condition ceasing.
pub const FALSE_POSITIVE: &str = "false_positive";

/// Where an operator said an algorithm's incident was a false alarm: until `until` (wall
/// clock), a condition whose every object is one of `objects` (same class, boxes at IoU ≥
/// [`SUPPRESS_IOU`]) starts no incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppressed {
    pub objects: Vec<(Arc<str>, BBox)>,
    pub until: SystemTime,
}

impl Suppressed {
    fn covers(&self, hold: &Hold, at: SystemTime) -> bool {
        let known = |o: &ObjectFact| {
            self.objects
                .iter()
                .any(|(class, b)| *class == o.class && b.iou(&o.bbox) >= SUPPRESS_IOU)
        };
        at < self.until && !hold.objects.is_empty() && hold.objects.iter().all(known)
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Start,
    Update,
    End,
}

/// What one object contributed to an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectFact {
    pub track_id: u64,
    pub class: Arc<str>,
    pub confidence: f32,
    pub bbox: BBox,
    /// Seconds the object has been part of the condition (dwelling, loitering, paired…).
    pub dwell_s: f64,
    /// A vehicle's plate, when read.
    pub plate: Option<Plate>,
}

impl ObjectFact {
    pub fn of(track: &Track, dwell_s: f64) -> Self {
        ObjectFact {
            track_id: track.id,
            class: track.class.clone(),
            confidence: track.confidence,
            bbox: track.bbox,
            dwell_s,
            plate: track.plate.clone(),
        }
    }
}

/// Per-primitive facts an incident reports beside its objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// `count`: objects in the zone.
    pub count: Option<usize>,
    /// `area_ratio`: the fraction of the zone covered.
    pub ratio: Option<f32>,
    /// `line_cross`: the line crossed, `[[x1, y1], [x2, y2]]`.
    pub line: Option<[[f32; 2]; 2]>,
    /// `line_cross`: `a_to_b` or `b_to_a`.
    pub direction: Option<&'static str>,
    /// `direction`: the object's heading, degrees clockwise from image-up.
    pub heading_deg: Option<f32>,
    /// `cascade`: the classifier's label and score.
    pub label: Option<Arc<str>>,
    pub score: Option<f32>,
}

/// A condition a primitive finds holding now.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// Identifies the condition from frame to frame: a track id for per-object primitives, 0
    /// for the zone-wide ones.
    pub key: u64,
    pub objects: Vec<ObjectFact>,
    pub facts: Facts,
}

/// A second-stage classifier's verdict on one track in this frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub label: Arc<str>,
    pub score: f32,
}

/// Every classifier's verdicts this frame: by classifier model name, then by track id.
pub type Verdicts = HashMap<String, HashMap<u64, Label>>;

/// What a primitive looks at in one frame.
pub struct View<'a> {
    /// Stream time, seconds.
    pub t: f64,
    pub zone: Option<&'a Polygon>,
    /// Tracks of the algorithm's `classes` that pass its `min_confidence` and `min_box_area`,
    /// matched in this frame (`Confirmed`) or briefly unseen (`Lost`).
    pub subjects: Vec<&'a Track>,
    /// Tracks of `partner_classes` (`pair`, `absence`), filtered the same way.
    pub partners: Vec<&'a Track>,
    /// Tracks that ended for good in this frame.
    pub removed: &'a [u64],
    /// Second-stage classifier verdicts by track id (`cascade`).
    pub labels: &'a HashMap<u64, Label>,
}

impl<'a> View<'a> {
    /// Subjects matched in this frame.
    pub fn seen(&self) -> impl Iterator<Item = &'a Track> + '_ {
        self.subjects.iter().copied().filter(|t| t.state == TrackState::Confirmed)
    }

    /// Partners matched in this frame.
    pub fn partners_seen(&self) -> impl Iterator<Item = &'a Track> + '_ {
        self.partners.iter().copied().filter(|t| t.state == TrackState::Confirmed)
    }

    /// Whether a track stands in the zone (its ground point, the bottom-centre of its box);
    /// everywhere counts when there is no zone.
    pub fn in_zone(&self, track: &Track) -> bool {
        self.zone.is_none_or(|z| z.contains(track.bbox.bottom_centre()))
    }
}

/// One primitive's state for one algorithm of one camera.
pub trait Primitive: Send {
    /// The conditions that hold at `view.t`. Timing that belongs to the primitive (`persist_s`,
    /// `dwell_s`, `clear_s`) is applied here: a condition is reported once it truly holds and
    /// for as long as it does.
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold>;

    /// Whether a new condition on the place of a recently ended one (overlapping boxes) is
    /// the same thing again and waits for the cooldown: true for stationary things.
    fn cools_down_by_place(&self) -> bool {
        false
    }
}

/// An incident starting, updating or ending in one algorithm.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvent {
    /// Index of the algorithm in the camera's `algorithms`.
    pub rule: usize,
    /// Identifies the incident within the algorithm: its events share the key.
    pub key: u64,
    pub phase: Phase,
    pub objects: Vec<ObjectFact>,
    pub facts: Facts,
    /// On an end that is not the condition ceasing: [`FALSE_POSITIVE`].
    pub reason: Option<&'static str>,
}

/// One algorithm as configured on a camera, ready to run.
pub struct AlgorithmSpec {
    pub zone: Option<Polygon>,
    pub classes: Vec<Arc<str>>,
    pub partner_classes: Vec<Arc<str>>,
    pub min_confidence: f32,
    pub min_box_area: f32,
    pub schedule: Schedule,
    pub cooldown_s: f64,
    pub update_s: f64,
    /// The classifier whose verdicts a cascade algorithm reads.
    pub classifier: Option<String>,
    /// Vehicles whose plate matches one of these are not its subjects.
    pub plate_allow: Vec<String>,
    pub primitive: Box<dyn Primitive>,
}

struct Open {
    last_update: f64,
    objects: Vec<ObjectFact>,
    facts: Facts,
}

/// One algorithm with its incident bookkeeping.
struct Algorithm {
    spec: AlgorithmSpec,
    open: HashMap<u64, Open>,
    /// Ended incidents still cooling down: their key, last boxes and end time.
    ended: Vec<(u64, Vec<BBox>, f64)>,
    /// Whether a place in the image is a place in the world (the camera does not move).
    image_places: bool,
    suppressed: Vec<Suppressed>,
    /// Conditions held back by a suppression, by key: each is counted once.
    held_back: HashSet<u64>,
}

/// All algorithms of one camera.
pub struct Rules {
    algorithms: Vec<Algorithm>,
    /// Conditions a suppression kept from starting an incident, since last taken.
    held_back: u64,
}

impl Rules {
    pub fn new(specs: Vec<AlgorithmSpec>) -> Self {
        let algorithms = specs
            .into_iter()
            .map(|spec| Algorithm {
                spec,
                open: HashMap::new(),
                ended: Vec::new(),
                image_places: true,
                suppressed: Vec::new(),
                held_back: HashSet::new(),
            })
            .collect();
        Rules { algorithms, held_back: 0 }
    }

    /// One analysed frame: its tracks at stream time `t` (wall-clock `at`, for schedules) and
    /// the classifiers' verdicts; returns the incidents that start, update or end.
    pub fn update(
        &mut self,
        tracks: &TrackUpdate<'_>,
        verdicts: &Verdicts,
        t: f64,
        at: SystemTime,
    ) -> Vec<RuleEvent> {
        let none = HashMap::new();
        let mut events = Vec::new();
        for (i, algorithm) in self.algorithms.iter_mut().enumerate() {
            let labels = algorithm.spec.classifier.as_ref().and_then(|c| verdicts.get(c));
            let labels = labels.unwrap_or(&none);
            self.held_back += algorithm.update(i, tracks, labels, t, at, &mut events);
        }
        events
    }

    /// Replaces algorithm `rule`'s suppressed places.
    pub fn suppress(&mut self, rule: usize, places: Vec<Suppressed>) {
        if let Some(algorithm) = self.algorithms.get_mut(rule) {
            algorithm.suppressed = places;
        }
    }

    /// Ends algorithm `rule`'s open incident `key` now, at stream time `t`, for `reason`; its
    /// place then cools down as after any end. `None` when no such incident is open.
    pub fn end_now(
        &mut self,
        rule: usize,
        key: u64,
        t: f64,
        reason: &'static str,
    ) -> Option<RuleEvent> {
        let algorithm = self.algorithms.get_mut(rule)?;
        let open = algorithm.open.remove(&key)?;
        algorithm.ended.push((key, open.objects.iter().map(|o| o.bbox).collect(), t));
        let (objects, facts, reason) = (open.objects, open.facts, Some(reason));
        Some(RuleEvent { rule, key, phase: Phase::End, objects, facts, reason })
    }

    /// Updates, now, the open incidents with one of `plates`' vehicles among their objects,
    /// which carry the plate from then on: a plate read after the start, or read differently,
    /// reaches the hub without waiting for the next `update_s`.
    pub fn plates_read(&mut self, plates: &[(u64, Plate)], t: f64) -> Vec<RuleEvent> {
        let mut events = Vec::new();
        for (rule, algorithm) in self.algorithms.iter_mut().enumerate() {
            for (key, open) in &mut algorithm.open {
                let mut changed = false;
                for object in &mut open.objects {
                    if let Some((_, plate)) = plates.iter().find(|(id, _)| *id == object.track_id) {
                        // A new text is news; another read of the same one only counts.
                        changed |= object.plate.as_ref().is_none_or(|p| p.text != plate.text);
                        object.plate = Some(plate.clone());
                    }
                }
                if changed {
                    open.last_update = t;
                    events.push(RuleEvent {
                        rule,
                        key: *key,
                        phase: Phase::Update,
                        objects: open.objects.clone(),
                        facts: open.facts.clone(),
                        reason: None,
                    });
                }
            }
        }
        events
    }

    /// The tracks among the objects of open incidents.
    pub fn incident_tracks(&self) -> HashSet<u64> {
        let open = self.algorithms.iter().flat_map(|a| a.open.values());
        open.flat_map(|o| o.objects.iter().map(|object| object.track_id)).collect()
    }

    /// How many conditions a suppression kept from starting an incident since the last call.
    pub fn take_held_back(&mut self) -> u64 {
        std::mem::take(&mut self.held_back)
    }

    /// After a config reload: these algorithms take over the running state (open incidents,
    /// cooldowns, the primitive's timers) of the `old` ones that `kept` maps them to, by index
    /// (`kept[new] = Some(old)`). The open incidents of old algorithms not kept end: their end
    /// events are returned, numbered as in `old`.
    pub fn take_over(&mut self, old: Rules, kept: &[Option<usize>]) -> Vec<RuleEvent> {
        let mut old: Vec<Option<Algorithm>> = old.algorithms.into_iter().map(Some).collect();
        for (algorithm, from) in self.algorithms.iter_mut().zip(kept) {
            if let Some(previous) = from.and_then(|i| old.get_mut(i)).and_then(Option::take) {
                *algorithm = previous;
            }
        }
        let mut ends = Vec::new();
        for (rule, algorithm) in old.into_iter().enumerate() {
            for (key, open) in algorithm.map(|a| a.open).unwrap_or_default() {
                let (objects, facts) = (open.objects, open.facts);
                let reason = None;
                ends.push(RuleEvent { rule, key, phase: Phase::End, objects, facts, reason });
            }
        }
        ends
    }

    /// For a camera that moves, where the same spot of the image is not the same place: a
    /// condition cools down by its key only, not by where its boxes were (a drone deduplicates
    /// by ground position instead).
    pub fn camera_moves(&mut self) {
        for algorithm in &mut self.algorithms {
            algorithm.image_places = false;
        }
    }

    /// Replaces algorithm `rule`'s zone: a drone's geo-fence as this frame's image shows it.
    pub fn set_zone(&mut self, rule: usize, zone: Polygon) {
        if let Some(algorithm) = self.algorithms.get_mut(rule) {
            algorithm.spec.zone = Some(zone);
        }
    }

    /// The classes each classifier must see crops of: the cascade algorithms' classes.
    pub fn classified_classes(&self) -> Vec<(String, Vec<Arc<str>>)> {
        let mut wanted: Vec<(String, Vec<Arc<str>>)> = Vec::new();
        for spec in self.algorithms.iter().map(|a| &a.spec) {
            let Some(classifier) = &spec.classifier else { continue };
            match wanted.iter_mut().find(|(name, _)| name == classifier) {
                Some((_, classes)) => classes.extend(spec.classes.iter().cloned()),
                None => wanted.push((classifier.clone(), spec.classes.clone())),
            }
        }
        wanted
    }
}

impl Algorithm {
    /// Adds this frame's events to `events`; returns how many new conditions a suppression
    /// held back.
    fn update(
        &mut self,
        rule: usize,
        tracks: &TrackUpdate<'_>,
        labels: &HashMap<u64, Label>,
        t: f64,
        at: SystemTime,
        events: &mut Vec<RuleEvent>,
    ) -> u64 {
        let cooldown_s = self.spec.cooldown_s;
        self.ended.retain(|(_, _, ended)| t - ended < cooldown_s);
        let view = View {
            t,
            zone: self.spec.zone.as_ref(),
            subjects: self.filtered(tracks.tracks, &self.spec.classes),
            partners: self.filtered(tracks.tracks, &self.spec.partner_classes),
            removed: &tracks.removed,
            labels,
        };
        let holds = self.spec.primitive.evaluate(&view);
        let open_hours = self.spec.schedule.is_open(at);
        let event = |key, phase, objects: &[ObjectFact], facts: &Facts| RuleEvent {
            rule,
            key,
            phase,
            objects: objects.to_vec(),
            facts: facts.clone(),
            reason: None,
        };

        // Incidents whose condition no longer holds, or whose hours are over, end.
        let still: Vec<u64> = holds.iter().map(|h| h.key).collect();
        self.held_back.retain(|k| still.contains(k));
        let mut held_back = 0;
        let ending: Vec<u64> =
            self.open.keys().copied().filter(|k| !open_hours || !still.contains(k)).collect();
        for key in ending {
            let open = self.open.remove(&key).expect("listed above");
            let boxes = open.objects.iter().map(|o| o.bbox).collect();
            self.ended.push((key, boxes, t));
            // The end reports the objects and facts as last seen.
            events.push(event(key, Phase::End, &open.objects, &open.facts));
        }
        if !open_hours {
            return held_back;
        }
        for hold in holds {
            if !self.open.contains_key(&hold.key) {
                // On a moving camera a place in the image is no place in the world.
                if self.image_places && self.suppressed.iter().any(|s| s.covers(&hold, at)) {
                    held_back += u64::from(self.held_back.insert(hold.key));
                } else if !self.cooling_down(&hold) {
                    events.push(event(hold.key, Phase::Start, &hold.objects, &hold.facts));
                    let open = Open { last_update: t, objects: hold.objects, facts: hold.facts };
                    self.open.insert(hold.key, open);
                }
                continue;
            }
            let open = self.open.get_mut(&hold.key).expect("checked above");
            if t - open.last_update >= self.spec.update_s {
                open.last_update = t;
                events.push(event(hold.key, Phase::Update, &hold.objects, &hold.facts));
            }
            open.objects = hold.objects;
            open.facts = hold.facts;
        }
        held_back
    }

    /// Whether the track's plate is on the algorithm's allow list.
    fn allowed(&self, track: &Track) -> bool {
        track.plate.as_ref().is_some_and(|plate| {
            self.spec.plate_allow.iter().any(|pattern| plate_matches(pattern, &plate.text))
        })
    }

    /// Tracks of `classes` that pass the algorithm's confidence and size filters, and are not
    /// allowed by their plate.
    fn filtered<'t>(&self, tracks: &'t [Track], classes: &[Arc<str>]) -> Vec<&'t Track> {
        tracks
            .iter()
            .filter(|t| {
                classes.contains(&t.class)
                    && t.confidence >= self.spec.min_confidence
                    && t.bbox.area() >= self.spec.min_box_area
                    && !self.allowed(t)
            })
            .collect()
    }

    /// Whether this condition is one that ended less than `cooldown_s` ago: the same key, or
    /// (for stationary things) the same place, also while another incident is open there.
    fn cooling_down(&self, hold: &Hold) -> bool {
        if self.ended.iter().any(|(key, _, _)| *key == hold.key) {
            return true;
        }
        if !(self.image_places && self.spec.primitive.cools_down_by_place()) {
            return false;
        }
        let overlaps = |b: &BBox| hold.objects.iter().any(|o| o.bbox.iou(b) >= SAME_PLACE_IOU);
        self.ended.iter().any(|(_, boxes, _)| boxes.iter().any(overlaps))
            || self.open.values().any(|o| o.objects.iter().any(|f| overlaps(&f.bbox)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::primitives::testing::{rect, track};
    use super::primitives::{Dwell, Presence};
    use super::*;

    /// Thursday 2026-11-26 11:00 UTC: Wednesday to Friday in every time zone (UTC-12..+14).
    fn thursday() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_690_800)
    }

    /// Monday 2026-11-30 11:00 UTC: Sunday to Tuesday in every time zone.
    fn monday() -> SystemTime {
        thursday() + Duration::from_secs(4 * 86_400)
    }

    fn spec(primitive: Box<dyn Primitive>) -> AlgorithmSpec {
        AlgorithmSpec {
            zone: None,
            classes: vec![Arc::from("person")],
            partner_classes: vec![],
            min_confidence: 0.5,
            min_box_area: 0.001,
            schedule: Schedule::default(),
            cooldown_s: 30.0,
            update_s: 10.0,
            classifier: None,
            plate_allow: vec![],
            primitive,
        }
    }

    /// Frames at 1 frame/s from `from`, the tracks of each given by `tracks(t)`; the phases
    /// with their times and keys.
    fn run(
        rules: &mut Rules,
        from: u32,
        to: u32,
        at: SystemTime,
        tracks: impl Fn(u32) -> Vec<Track>,
    ) -> Vec<(u32, Phase, u64)> {
        let mut out = Vec::new();
        for second in from..to {
            let tracks = tracks(second);
            let update = TrackUpdate { tracks: &tracks, removed: vec![] };
            for e in rules.update(&update, &Verdicts::new(), f64::from(second), at) {
                out.push((second, e.phase, e.key));
            }
        }
        out
    }

    fn person(id: u64) -> Track {
        track(id, "person", 0.4, 0.4, 0.1, 0.2)
    }

    #[test]
    fn an_incident_starts_updates_every_update_s_and_ends() {
        let mut rules = Rules::new(vec![spec(Box::new(Presence::new(0.0, 0.0)))]);
        let mut events = run(&mut rules, 0, 25, thursday(), |_| vec![person(1)]);
        events.extend(run(&mut rules, 25, 27, thursday(), |_| vec![]));
        let phases: Vec<(u32, Phase)> = events.iter().map(|(t, p, _)| (*t, *p)).collect();
        assert_eq!(
            phases,
            [(0, Phase::Start), (10, Phase::Update), (20, Phase::Update), (25, Phase::End)]
        );
    }

    #[test]
    fn the_filters_keep_out_weak_small_and_other_objects() {
        let mut rules = Rules::new(vec![spec(Box::new(Presence::new(0.0, 0.0)))]);
        let mut weak = person(1);
        weak.confidence = 0.4;
        let tiny = track(2, "person", 0.4, 0.4, 0.01, 0.05);
        let car = track(3, "car", 0.4, 0.4, 0.2, 0.2);
        let events =
            run(&mut rules, 0, 5, thursday(), |_| vec![weak.clone(), tiny.clone(), car.clone()]);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn outside_the_schedule_nothing_starts_and_open_incidents_end() {
        let mut on_duty = spec(Box::new(Presence::new(0.0, 0.0)));
        on_duty.schedule = Schedule::parse(&["Wed-Fri 00:00-24:00".into()]).unwrap();
        let mut rules = Rules::new(vec![on_duty]);
        let open = run(&mut rules, 0, 3, thursday(), |_| vec![person(1)]);
        assert_eq!(open, [(0, Phase::Start, 0)]);
        let closed = run(&mut rules, 3, 20, monday(), |_| vec![person(1)]);
        assert_eq!(closed, [(3, Phase::End, 0)], "closing ends it, and nothing starts after");
    }

    #[test]
    fn the_same_condition_waits_for_its_cooldown() {
        let mut rules = Rules::new(vec![spec(Box::new(Presence::new(0.0, 0.0)))]);
        let there = |s: u32| if s % 20 < 5 { vec![person(s as u64 / 20 + 1)] } else { vec![] };
        let events = run(&mut rules, 0, 61, thursday(), there);
        let starts: Vec<u32> = events.iter().filter(|e| e.1 == Phase::Start).map(|e| e.0).collect();
        // Ends at 5; back at 20 (within 30 s: quiet) and 40 (35 s later: a new incident).
        assert_eq!(starts, [0, 40]);
    }

    #[test]
    fn a_reload_keeps_the_state_of_kept_algorithms_and_ends_the_others() {
        let presence = || spec(Box::new(Presence::new(0.0, 0.0)));
        let mut old = Rules::new(vec![presence(), presence()]);
        let started = run(&mut old, 0, 3, thursday(), |_| vec![person(1)]);
        assert_eq!(started, [(0, Phase::Start, 0), (0, Phase::Start, 0)]);
        // The new config drops the first algorithm and puts a new one before the second.
        let mut new = Rules::new(vec![presence(), presence()]);
        let ends = new.take_over(old, &[None, Some(1)]);
        let ended: Vec<(usize, Phase)> = ends.iter().map(|e| (e.rule, e.phase)).collect();
        assert_eq!(ended, [(0, Phase::End)], "the dropped algorithm's incident ends");
        let tracks = [person(1)];
        let update = TrackUpdate { tracks: &tracks, removed: vec![] };
        let next = new.update(&update, &Verdicts::new(), 3.0, thursday());
        let events: Vec<(usize, Phase)> = next.iter().map(|e| (e.rule, e.phase)).collect();
        assert_eq!(events, [(0, Phase::Start)], "the kept algorithm's incident stays open");
    }

    #[test]
    fn a_stationary_thing_in_the_same_place_under_a_new_track_waits_too() {
        let mut parked = spec(Box::new(Dwell::new(2.0, 0.15)));
        parked.zone = Some(rect(0.0, 0.0, 1.0, 1.0));
        let mut rules = Rules::new(vec![parked]);
        let mut events = run(&mut rules, 0, 5, thursday(), |_| vec![person(1)]);
        // Track 1 is lost for good and the same object comes back as track 2 (an id switch).
        let removed = [person(2)];
        let update = TrackUpdate { tracks: &removed, removed: vec![1] };
        for e in rules.update(&update, &Verdicts::new(), 5.0, thursday()) {
            events.push((5, e.phase, e.key));
        }
        events.extend(run(&mut rules, 6, 30, thursday(), |_| vec![person(2)]));
        assert_eq!(events, [(2, Phase::Start, 1), (5, Phase::End, 1)], "no second incident");
        let later = run(&mut rules, 36, 40, thursday(), |_| vec![person(2)]);
        assert_eq!(later, [(36, Phase::Start, 2)], "after the cooldown it is a new incident");
    }

    #[test]
    fn on_a_moving_camera_the_same_spot_of_the_image_is_not_the_same_place() {
        let mut parked = spec(Box::new(Dwell::new(2.0, 0.15)));
        parked.zone = Some(rect(0.0, 0.0, 1.0, 1.0));
        let mut rules = Rules::new(vec![parked]);
        rules.camera_moves();
        let mut events = run(&mut rules, 0, 5, thursday(), |_| vec![person(1)]);
        events.extend(run(&mut rules, 5, 6, thursday(), |_| vec![]));
        // Another thing, seen where the first one was in the image: a new incident.
        events.extend(run(&mut rules, 6, 10, thursday(), |_| vec![person(2)]));
        let starts: Vec<_> = events.iter().filter(|e| e.1 == Phase::Start).collect();
        assert_eq!(starts, [&(2, Phase::Start, 1), &(8, Phase::Start, 2)]);
    }

    #[test]
    fn a_false_positive_ends_now_and_its_place_raises_nothing_until_it_expires() {
        let parked = || {
            let mut parked = spec(Box::new(Dwell::new(2.0, 0.15)));
            parked.zone = Some(rect(0.0, 0.0, 1.0, 1.0));
            parked.cooldown_s = 0.0;
            parked
        };
        let mut rules = Rules::new(vec![parked()]);
        let started = run(&mut rules, 0, 5, thursday(), |_| vec![person(1)]);
        assert_eq!(started, [(2, Phase::Start, 1)]);
        let end = rules.end_now(0, 1, 5.0, FALSE_POSITIVE).expect("open");
        assert_eq!((end.phase, end.reason), (Phase::End, Some(FALSE_POSITIVE)));
        assert_eq!(rules.end_now(0, 1, 5.0, FALSE_POSITIVE), None, "ended once");
        let bbox = person(1).bbox;
        let until = thursday() + Duration::from_secs(86_400);
        rules.suppress(0, vec![Suppressed { objects: vec![(Arc::from("person"), bbox)], until }]);

        // After a restart (new rules, same suppression): the same person at a slightly moved
        // box raises nothing; another one elsewhere does.
        let mut restarted = Rules::new(vec![parked()]);
        restarted
            .suppress(0, vec![Suppressed { objects: vec![(Arc::from("person"), bbox)], until }]);
        let moved = track(7, "person", 0.41, 0.41, 0.1, 0.2);
        let elsewhere = track(8, "person", 0.7, 0.1, 0.1, 0.2);
        let events =
            run(&mut restarted, 0, 10, thursday(), |_| vec![moved.clone(), elsewhere.clone()]);
        assert_eq!(events, [(2, Phase::Start, 8)]);
        assert_eq!(restarted.take_held_back(), 1, "counted once, not at every frame");
        assert_eq!(restarted.take_held_back(), 0);
        // Another class at the same place is not what was suppressed.
        let car = track(9, "person", 0.4, 0.4, 0.1, 0.2);
        let mut other = Rules::new(vec![parked()]);
        other.suppress(0, vec![Suppressed { objects: vec![(Arc::from("car"), bbox)], until }]);
        assert_eq!(
            run(&mut other, 0, 5, thursday(), |_| vec![car.clone()]),
            [(2, Phase::Start, 9)]
        );
        // Expired: the place raises incidents again.
        let late = until + Duration::from_secs(1);
        let mut expired = Rules::new(vec![parked()]);
        expired.suppress(0, vec![Suppressed { objects: vec![(Arc::from("person"), bbox)], until }]);
        assert_eq!(run(&mut expired, 0, 5, late, |_| vec![person(1)]), [(2, Phase::Start, 1)]);
    }
}
