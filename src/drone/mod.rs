//! Drone cameras: incidents placed on the ground.
//!
//! A drone's camera moves, so what matters is where on the ground an incident is. For a camera
//! with `kind = "drone"` this module, between ingest and the incidents:
//!
//! - takes the camera's telemetry ([`telemetry`]): MISB ST 0601 KLV from the stream
//!   ([`klv`]), or JSON from an MQTT topic, and matches each frame with the nearest sample;
//! - projects image points to the ground from the pose ([`geo`]: method and error bounds);
//! - turns the camera's geo-fences into this frame's image zones, so every algorithm's "in the
//!   zone" means "standing inside the fence on the ground";
//! - gives each incident message a `geo` block: the telemetry's state, the platform's position,
//!   and each object's ground position with its uncertainty. Without usable telemetry the
//!   incidents still go out, their `geo` saying why there is no position;
//! - with `dedup_radius_m`, holds back each geo-tagged incident's end for its algorithm's
//!   `cooldown_s`: the same thing seen again within the radius (the next pass over the same
//!   debris) continues that incident as an `update` instead of starting another.

pub mod geo;
pub mod klv;
pub mod telemetry;

use std::collections::HashMap;

use crate::config::{CameraConfig, CameraKind, Config, TelemetryConfig, TelemetrySource};
use crate::frame::Frame;
use crate::geometry::Polygon;
use crate::incident::Incident;
use crate::rules::Rules;
use crate::wire::{GeoPayload, GroundPayload, IncidentState, PlatformPayload, round};
use geo::{GeoPolygon, LatLon, Pose};
use telemetry::{MqttFeed, Samples};

/// What a frame's telemetry is.
#[derive(Debug, Clone)]
pub struct Fix {
    status: &'static str,
    age_s: Option<f64>,
    pose: Option<Pose>,
    frame_centre: Option<LatLon>,
}

/// Where the samples come from.
enum Feed {
    Klv { samples: Samples, errors: u64 },
    Mqtt(MqttFeed),
}

/// An incident whose end is held back while the same place may be seen again.
struct Held {
    end: Incident,
    algorithm: String,
    at: LatLon,
    until_s: f64,
}

/// A geo-fenced algorithm's fence, on the ground and as the latest frame shows it.
struct Fence {
    rule: usize,
    zone: String,
    ground: GeoPolygon,
    image: Polygon,
}

/// One drone camera's telemetry, geo-fences and places.
pub struct Drone {
    camera: String,
    config: TelemetryConfig,
    feed: Feed,
    fences: Vec<Fence>,
    last_status: &'static str,
    dedup_radius_m: Option<f64>,
    cooldowns: HashMap<String, f64>,
    /// Open incidents by id: algorithm and place.
    open: HashMap<String, (String, LatLon)>,
    held: Vec<Held>,
    /// Incident ids continued under another's id, and how many ids an incident stands for.
    alias: HashMap<String, String>,
    members: HashMap<String, usize>,
}

impl Drone {
    /// After a config reload that kept the camera's stream and telemetry settings: the
    /// telemetry received so far and the incidents under way (open, or ended and held for
    /// dedup) carry over from `old`; fences and cooldowns are the new config's.
    pub fn take_over(&mut self, old: Drone) {
        self.feed = old.feed;
        self.last_status = old.last_status;
        self.open = old.open;
        self.held = old.held;
        self.alias = old.alias;
        self.members = old.members;
    }

    /// The drone side of a camera, `None` for a fixed camera. Fails when an MQTT feed cannot
    /// start.
    pub fn for_camera(node: &Config, camera: &CameraConfig) -> Result<Option<Drone>, String> {
        let (CameraKind::Drone, Some(config)) = (camera.kind, &camera.telemetry) else {
            return Ok(None);
        };
        let feed = match config.source {
            TelemetrySource::Klv => Feed::Klv { samples: Samples::default(), errors: 0 },
            TelemetrySource::Mqtt => {
                let broker = config.broker.as_ref().unwrap_or(&node.mqtt.url);
                let topic = config.topic.as_deref().unwrap_or_default();
                let fields = config.fields.clone().into_iter().collect();
                Feed::Mqtt(MqttFeed::start(&camera.id, broker, topic, fields)?)
            }
        };
        let fences = camera
            .algorithms
            .iter()
            .enumerate()
            .filter_map(|(rule, a)| {
                let zone = camera.zones.iter().find(|z| Some(&z.name) == a.zone.as_ref())?;
                let ground = zone.geo_polygon.clone()?;
                Some(Fence { rule, zone: zone.name.clone(), ground, image: Polygon::default() })
            })
            .collect();
        let cooldowns =
            camera.resolved.iter().map(|a| (a.entry.id.clone(), a.cooldown_s)).collect();
        Ok(Some(Drone {
            camera: camera.id.clone(),
            config: config.clone(),
            feed,
            fences,
            last_status: "missing",
            dedup_radius_m: camera.dedup_radius_m,
            cooldowns,
            open: HashMap::new(),
            held: Vec::new(),
            alias: HashMap::new(),
            members: HashMap::new(),
        }))
    }

    /// The telemetry's state at the latest frame: `ok`, `missing`, `stale` or `incomplete`.
    pub fn telemetry(&self) -> &'static str {
        self.last_status
    }

    /// Takes in the frame's telemetry, finds the frame's pose and sets the geo-fenced
    /// algorithms' zones to what the image shows of their fences (nothing, without a pose).
    pub fn locate(&mut self, frame: &Frame, rules: &mut Rules) -> Fix {
        // The sample nearest the frame, and why the newest one offered was turned away.
        let (nearest, rejected) = match &mut self.feed {
            Feed::Klv { samples, errors } => {
                let parsed = frame.metadata.iter().flat_map(|m| {
                    klv::parse_buffer(&m.data).into_iter().map(move |p| (m.pts_s, p))
                });
                for (t, sample) in parsed {
                    match sample {
                        Ok(sample) => {
                            if let Err(why) = samples.push(t, sample) {
                                telemetry::log_rejected(&self.camera, samples.rejected(), &why);
                            }
                        }
                        // The first and then one in a hundred: a broken link must not flood
                        // the log.
                        Err(e) if *errors % 100 == 0 => {
                            *errors += 1;
                            let camera = &self.camera;
                            tracing::warn!(camera, errors = *errors, "KLV rejected: {e}");
                        }
                        Err(_) => *errors += 1,
                    }
                }
                let nearest = samples.nearest(frame.stream_time_s).map(|(a, s)| (a, s.clone()));
                (nearest, samples.newest_rejected().map(String::from))
            }
            Feed::Mqtt(feed) => {
                let t = telemetry::epoch_s(frame.captured_at);
                let samples = feed.samples.lock().unwrap_or_else(|e| e.into_inner());
                let nearest = samples.nearest(t).map(|(a, s)| (a, s.clone()));
                (nearest, samples.newest_rejected().map(String::from))
            }
        };
        let aspect = frame.height as f64 / frame.width.max(1) as f64;
        let fix = match nearest {
            // Samples arrive, but none a position can be made from: say why, not "missing".
            None if rejected.is_some() => {
                Fix { status: "invalid", age_s: None, pose: None, frame_centre: None }
            }
            None => Fix { status: "missing", age_s: None, pose: None, frame_centre: None },
            Some((age, _)) if age.abs() > self.config.max_age_s => {
                let status = if rejected.is_some() { "invalid" } else { "stale" };
                Fix { status, age_s: Some(age), pose: None, frame_centre: None }
            }
            Some((age, sample)) => {
                let frame_centre = sample
                    .frame_centre_latitude_deg
                    .zip(sample.frame_centre_longitude_deg)
                    .map(|(lat, lon)| LatLon { lat, lon });
                match telemetry::pose(&sample, &self.config, aspect) {
                    Ok(pose) => {
                        Fix { status: "ok", age_s: Some(age), pose: Some(pose), frame_centre }
                    }
                    Err(missing) => {
                        if self.last_status != "incomplete" {
                            tracing::warn!(camera = %self.camera, "telemetry lacks the {missing}");
                        }
                        Fix { status: "incomplete", age_s: Some(age), pose: None, frame_centre }
                    }
                }
            }
        };
        if fix.status != self.last_status {
            match fix.status {
                "ok" => tracing::info!(camera = %self.camera, "telemetry: ok"),
                status => tracing::warn!(
                    camera = %self.camera,
                    "telemetry: {status}; incidents go out without positions"
                ),
            }
            self.last_status = fix.status;
        }
        for fence in &mut self.fences {
            fence.image = fix
                .pose
                .as_ref()
                .map_or_else(Polygon::default, |p| p.fence_in_image(&fence.ground));
            rules.set_zone(fence.rule, fence.image.clone());
        }
        fix
    }

    /// Gives each message its `geo` block and its snapshot the fence as the frame shows it,
    /// merges messages about a place already reported (with `dedup_radius_m`), and adds the
    /// held ends whose time is up at stream time `t`.
    pub fn tag(&mut self, incidents: Vec<Incident>, fix: &Fix, t: f64) -> Vec<Incident> {
        let mut out = Vec::new();
        for mut incident in incidents {
            incident.payload.geo = Some(self.geo(&incident, fix));
            let zone = incident.payload.zone.as_ref();
            let fence = self.fences.iter().find(|f| Some(&f.zone) == zone);
            if let (Some(evidence), Some(fence)) = (&mut incident.evidence, fence) {
                evidence.zones = vec![fence.image.clone()];
            }
            match self.dedup_radius_m {
                Some(radius) => self.dedup(incident, radius, t, &mut out),
                None => out.push(incident),
            }
        }
        let (due, kept): (Vec<Held>, Vec<Held>) =
            std::mem::take(&mut self.held).into_iter().partition(|h| h.until_s <= t);
        self.held = kept;
        // Held on purpose: their wait is not latency.
        out.extend(due.into_iter().map(|h| Incident { seen_at: None, ..h.end }));
        out
    }

    fn geo(&self, incident: &Incident, fix: &Fix) -> GeoPayload {
        let sigmas = geo::Sigmas::of(&self.config);
        let objects = match &fix.pose {
            Some(pose) => incident
                .payload
                .objects
                .iter()
                .filter_map(|o| {
                    let [x, y, w, h] = o.bbox;
                    let foot = crate::geometry::Point { x: x + w / 2.0, y: y + h };
                    let g = pose.ground(foot, &sigmas)?;
                    Some(GroundPayload {
                        track_id: o.track_id,
                        lat: round(g.at.lat, 7),
                        lon: round(g.at.lon, 7),
                        uncertainty_m: round(g.uncertainty_m, 1),
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        GeoPayload {
            telemetry: fix.status.into(),
            source: match self.config.source {
                TelemetrySource::Klv => "klv",
                TelemetrySource::Mqtt => "mqtt",
            }
            .into(),
            age_s: fix.age_s.map(|a| round(a, 3)),
            platform: fix.pose.as_ref().map(|p| PlatformPayload {
                lat: round(p.sensor.lat, 7),
                lon: round(p.sensor.lon, 7),
                altitude_m: round(p.altitude_m, 1),
                heading_deg: round(p.heading_deg.rem_euclid(360.0), 1),
            }),
            ground_altitude_m: fix.pose.as_ref().map(|p| round(p.ground_altitude_m, 1)),
            frame_centre: fix
                .frame_centre
                .map(|c| LatLon { lat: round(c.lat, 7), lon: round(c.lon, 7) }),
            objects,
        }
    }

    /// Dedup by place: see the module's documentation.
    fn dedup(&mut self, mut incident: Incident, radius: f64, t: f64, out: &mut Vec<Incident>) {
        let p = &mut incident.payload;
        if let Some(earlier) = self.alias.get(&p.id).cloned() {
            if p.state == IncidentState::End {
                self.alias.remove(&p.id);
            }
            p.id = earlier;
            p.evidence = None;
        }
        let place = p
            .geo
            .as_ref()
            .and_then(|g| g.objects.first())
            .map(|o| LatLon { lat: o.lat, lon: o.lon });
        match p.state {
            IncidentState::Start => {
                let same = |algorithm: &str, at: LatLon| {
                    algorithm == p.algorithm
                        && place.is_some_and(|q| geo::distance_m(at, q) <= radius)
                };
                // An open incident there gains a sighting; one whose end is held back is
                // revived, its end forgotten.
                let open = self.open.iter().find(|(_, (a, at))| same(a, *at));
                let earlier = match open {
                    Some((id, _)) => {
                        *self.members.entry(id.clone()).or_insert(1) += 1;
                        Some(id.clone())
                    }
                    None => self.held.iter().position(|h| same(&h.algorithm, h.at)).map(|i| {
                        let held = self.held.remove(i);
                        let id = held.end.payload.id;
                        self.open.insert(id.clone(), (held.algorithm, held.at));
                        self.members.insert(id.clone(), 1);
                        id
                    }),
                };
                match earlier {
                    Some(earlier) => {
                        self.alias.insert(std::mem::replace(&mut p.id, earlier.clone()), earlier);
                        p.state = IncidentState::Update;
                        p.evidence = None;
                        incident.evidence = None;
                    }
                    None => {
                        if let Some(at) = place {
                            self.open.insert(p.id.clone(), (p.algorithm.clone(), at));
                        }
                    }
                }
                out.push(incident);
            }
            IncidentState::Update => {
                if let (Some(at), Some(open)) = (place, self.open.get_mut(&p.id)) {
                    open.1 = at;
                }
                out.push(incident);
            }
            IncidentState::End => {
                let members = self.members.entry(p.id.clone()).or_insert(1);
                if *members > 1 {
                    // Another sighting still continues this incident.
                    *members -= 1;
                    return;
                }
                self.members.remove(&p.id);
                match self.open.remove(&p.id) {
                    Some((algorithm, at)) => {
                        let cooldown = self.cooldowns.get(&algorithm).copied().unwrap_or(0.0);
                        self.held.push(Held {
                            end: incident,
                            algorithm,
                            at,
                            until_s: t + cooldown,
                        });
                    }
                    None => out.push(incident),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: LatLon = LatLon { lat: 30.0, lon: 120.0 };

    /// A KLV drone 50 m above the ground looking straight down, whose `illegal_dumping`
    /// cools down for 60 s, deduplicating within 15 m.
    fn drone() -> Drone {
        let config: TelemetryConfig = toml::from_str("source = \"klv\"").unwrap();
        Drone {
            camera: "d".into(),
            config,
            feed: Feed::Klv { samples: Samples::default(), errors: 0 },
            fences: Vec::new(),
            last_status: "",
            dedup_radius_m: Some(15.0),
            cooldowns: HashMap::from([("illegal_dumping".to_string(), 60.0)]),
            open: HashMap::new(),
            held: Vec::new(),
            alias: HashMap::new(),
            members: HashMap::new(),
        }
    }

    fn fix() -> Fix {
        let pose = Pose {
            sensor: ORIGIN,
            altitude_m: 50.0,
            ground_altitude_m: 0.0,
            heading_deg: 0.0,
            pitch_deg: 0.0,
            roll_deg: 0.0,
            sensor_azimuth_deg: 0.0,
            sensor_elevation_deg: -90.0,
            sensor_roll_deg: 0.0,
            hfov_deg: 90.0,
            vfov_deg: 90.0,
        };
        Fix { status: "ok", age_s: Some(0.0), pose: Some(pose), frame_centre: None }
    }

    /// A message about one object whose box stands on image point (`x`, `y`): 100 m of ground
    /// across the image, so 0.1 is 10 m.
    fn message(id: &str, state: &str, x: f32, y: f32) -> Incident {
        let payload = serde_json::json!({
            "schema": "cityeye.incident.v1", "id": id, "node": "n", "camera": "d",
            "algorithm": "illegal_dumping", "category": "appearance", "name_zh": "z",
            "name_en": "e", "severity": "warning", "state": state,
            "detected_at": "2026-11-22T00:00:00.000Z", "stream_time_s": 0.0,
            "objects": [{"track_id": 1, "class": "garbage", "confidence": 0.9,
                         "bbox": [x - 0.01, y - 0.02, 0.02, 0.02], "dwell_s": 0.0}],
            "evidence": {"topic": format!("e/{id}"), "width": 10, "height": 10},
            "model": {"name": "m", "sha256": "0"}
        });
        let payload = serde_json::from_value(payload).unwrap();
        Incident { payload, evidence: None, plate_pictures: Vec::new(), seen_at: None }
    }

    fn summary(out: &[Incident]) -> Vec<(String, IncidentState, bool)> {
        out.iter()
            .map(|i| (i.payload.id.clone(), i.payload.state, i.payload.evidence.is_some()))
            .collect()
    }

    #[test]
    fn incidents_carry_the_platform_and_each_objects_ground_position() {
        let out = drone().tag(vec![message("a", "start", 0.6, 0.5)], &fix(), 0.0);
        let geo = out[0].payload.geo.clone().unwrap();
        assert_eq!((geo.telemetry.as_str(), geo.source.as_str()), ("ok", "klv"));
        let platform = geo.platform.unwrap();
        assert_eq!((platform.lat, platform.lon, platform.altitude_m), (30.0, 120.0, 50.0));
        let ground = &geo.objects[0];
        let (north, east) = geo::metres(ORIGIN, LatLon { lat: ground.lat, lon: ground.lon });
        assert!(north.abs() < 0.02 && (east - 10.0).abs() < 0.02, "{north} {east}");
        let missing = Fix { status: "missing", age_s: None, pose: None, frame_centre: None };
        let out = drone().tag(vec![message("b", "start", 0.6, 0.5)], &missing, 0.0);
        let geo = out[0].payload.geo.clone().unwrap();
        assert!(geo.platform.is_none() && geo.objects.is_empty() && geo.telemetry == "missing");
    }

    /// A frame that came with a KLV packet of a nadir view from 50 m at `ORIGIN`.
    fn frame_with_klv() -> Frame {
        let sample = klv::UasSample {
            sensor_latitude_deg: Some(ORIGIN.lat),
            sensor_longitude_deg: Some(ORIGIN.lon),
            sensor_altitude_m: Some(50.0),
            platform_heading_deg: Some(0.0),
            sensor_relative_elevation_deg: Some(-90.0),
            sensor_hfov_deg: Some(90.0),
            sensor_vfov_deg: Some(90.0),
            ..klv::UasSample::default()
        };
        let metadata = vec![crate::frame::Metadata { pts_s: 1.0, data: klv::encode(&sample) }];
        Frame {
            width: 8,
            height: 8,
            data: vec![0; 8 * 8 * 3].into(),
            stream_time_s: 1.02,
            captured_at: std::time::SystemTime::UNIX_EPOCH,
            metadata,
        }
    }

    #[test]
    fn klv_with_the_frame_places_it_and_the_snapshot_shows_the_fence() {
        let mut d = drone();
        // A fence over the east half of the view: 0 to 60 m east, 60 m either side north.
        let ground = GeoPolygon(vec![
            geo::offset(ORIGIN, -60.0, 0.0),
            geo::offset(ORIGIN, -60.0, 60.0),
            geo::offset(ORIGIN, 60.0, 60.0),
            geo::offset(ORIGIN, 60.0, 0.0),
        ]);
        d.fences.push(Fence { rule: 0, zone: "z".into(), ground, image: Polygon::default() });
        let frame = frame_with_klv();
        let mut rules = Rules::new(Vec::new());
        let fix = d.locate(&frame, &mut rules);
        assert_eq!((fix.status, fix.age_s.map(|a| (a * 100.0).round())), ("ok", Some(2.0)));
        assert_eq!(d.telemetry(), "ok");
        let mut incident = message("a", "start", 0.75, 0.5);
        incident.payload.zone = Some("z".into());
        incident.evidence = Some(crate::incident::Evidence {
            frame: std::sync::Arc::new(frame),
            zones: Vec::new(),
            lines: Vec::new(),
            subjects: Vec::new(),
            others: Vec::new(),
            labels: Vec::new(),
        });
        let out = d.tag(vec![incident], &fix, 1.02);
        let drawn = &out[0].evidence.as_ref().unwrap().zones[0];
        // The image's right half: x from 0.5 to 1.
        let xs: Vec<f32> = drawn.points().iter().map(|p| p.x).collect();
        let (lo, hi) = xs.iter().fold((1f32, 0f32), |(l, h), x| (l.min(*x), h.max(*x)));
        assert!((lo - 0.5).abs() < 1e-4 && (hi - 1.0).abs() < 1e-4, "{drawn:?}");
        let far = Frame { stream_time_s: 3.0, metadata: Vec::new(), ..frame_with_klv() };
        let stale = d.locate(&far, &mut rules);
        assert_eq!((stale.status, d.fences[0].image.points().len()), ("stale", 0));
    }

    #[test]
    fn the_next_pass_over_the_same_place_continues_the_incident() {
        let mut d = drone();
        let f = fix();
        let s = IncidentState::Start;
        let (u, e) = (IncidentState::Update, IncidentState::End);
        assert_eq!(
            summary(&d.tag(vec![message("a", "start", 0.5, 0.5)], &f, 0.0)),
            [("a".into(), s, true)]
        );
        // The first pass ends; its end waits for the cooldown.
        assert!(d.tag(vec![message("a", "end", 0.5, 0.5)], &f, 10.0).is_empty());
        // The next pass, 5 m away: the same incident goes on, without a new snapshot.
        let next = d.tag(vec![message("b", "start", 0.55, 0.5)], &f, 30.0);
        assert_eq!(summary(&next), [("a".into(), u, false)]);
        let later = d.tag(vec![message("b", "update", 0.55, 0.5)], &f, 40.0);
        assert_eq!(summary(&later), [("a".into(), u, false)]);
        // Something 30 m away is another incident.
        let other = d.tag(vec![message("c", "start", 0.8, 0.5)], &f, 45.0);
        assert_eq!(summary(&other), [("c".into(), s, true)]);
        assert!(d.tag(vec![message("b", "end", 0.55, 0.5)], &f, 50.0).is_empty());
        assert!(d.tag(vec![], &f, 109.0).is_empty(), "still cooling down");
        assert_eq!(summary(&d.tag(vec![], &f, 110.0)), [("a".into(), e, false)]);
    }

    #[test]
    fn two_sightings_at_once_end_the_incident_once_both_have_ended() {
        let mut d = drone();
        let f = fix();
        d.tag(vec![message("a", "start", 0.5, 0.5)], &f, 0.0);
        let both = d.tag(vec![message("b", "start", 0.52, 0.5)], &f, 1.0);
        assert_eq!(summary(&both), [("a".into(), IncidentState::Update, false)]);
        assert!(d.tag(vec![message("a", "end", 0.5, 0.5)], &f, 2.0).is_empty());
        assert!(d.tag(vec![message("b", "end", 0.52, 0.5)], &f, 3.0).is_empty());
        let ended = d.tag(vec![], &f, 63.0);
        assert_eq!(summary(&ended), [("a".into(), IncidentState::End, false)]);
    }
}
