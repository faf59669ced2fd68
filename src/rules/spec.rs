//! An algorithm as the config resolved it becomes one the rules run: its zone's polygon, its
//! classes as shared names, its schedule parsed and its primitive built.

use std::sync::Arc;

use super::AlgorithmSpec;
use super::primitives;
use crate::config::{Algorithm, CameraConfig, Schedule, ZoneConfig};

/// A camera's algorithms, ready to run; `default_confidence` applies where neither the camera
/// nor the catalog sets `min_confidence`.
pub fn specs(camera: &CameraConfig, default_confidence: f32) -> Result<Vec<AlgorithmSpec>, String> {
    camera
        .resolved
        .iter()
        .map(|algorithm| AlgorithmSpec::new(algorithm, &camera.zones, default_confidence))
        .collect()
}

impl AlgorithmSpec {
    /// The config has been validated, so a schedule that does not parse is reported rather
    /// than expected.
    pub fn new(
        algorithm: &Algorithm,
        zones: &[ZoneConfig],
        default_confidence: f32,
    ) -> Result<AlgorithmSpec, String> {
        let names = |list: &[String]| list.iter().map(|c| Arc::from(c.as_str())).collect();
        let params = &algorithm.params;
        Ok(AlgorithmSpec {
            zone: algorithm
                .zone
                .as_ref()
                .and_then(|z| zones.iter().find(|zc| &zc.name == z))
                .map(|z| z.polygon.clone()),
            classes: names(&algorithm.classes),
            partner_classes: names(params.partner_classes.as_deref().unwrap_or_default()),
            min_confidence: algorithm.min_confidence.unwrap_or(default_confidence),
            min_box_area: algorithm.min_box_area,
            schedule: Schedule::parse(&algorithm.schedule)?,
            cooldown_s: algorithm.cooldown_s,
            update_s: algorithm.update_s,
            classifier: algorithm.classifier().map(String::from),
            plate_allow: algorithm.plate_allow.clone(),
            primitive: primitives::build(params, algorithm.entry.primitive),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::config::catalog::{Entry, entries, find};
    use crate::config::{AlgorithmConfig, Params, PrimitiveKind};
    use crate::geometry::BBox;
    use crate::rules::{Label, Phase, Rules, Verdicts};
    use crate::track::{Track, TrackState, TrackUpdate};

    /// The scene each primitive must fire on, built from the entry's own classes, `frames`
    /// frames at `FPS`: what a camera would show when the event happens.
    fn scene(entry: &Entry, frame: usize) -> Vec<Track> {
        let class = entry.classes[0].as_str();
        let partner = entry.params.partner_classes.as_ref().map(|p| p[0].as_str());
        let step = frame as f32 * 0.005;
        let count = entry.params.min_count.unwrap_or(1);
        match entry.primitive {
            PrimitiveKind::Presence
            | PrimitiveKind::Dwell
            | PrimitiveKind::Loiter
            | PrimitiveKind::Cascade => {
                vec![track(1, class, 0.4, 0.4, 0.1, 0.1)]
            }
            PrimitiveKind::Count => (0..count)
                .map(|i| track(i as u64 + 1, class, 0.05 * (i % 18) as f32, 0.4, 0.04, 0.1))
                .collect(),
            // Walking down through the catalog's default line (y = 0.5) and on, against the
            // default allowed heading (up).
            PrimitiveKind::LineCross | PrimitiveKind::Direction => {
                vec![track(1, class, 0.45, (0.1 + step).min(0.8), 0.05, 0.1)]
            }
            PrimitiveKind::Absence => vec![track(9, partner.unwrap(), 0.4, 0.4, 0.1, 0.1)],
            PrimitiveKind::Pair => {
                vec![
                    track(1, class, 0.4, 0.4, 0.1, 0.3),
                    track(9, partner.unwrap(), 0.42, 0.45, 0.03, 0.05),
                ]
            }
            PrimitiveKind::AreaRatio => vec![track(1, class, 0.0, 0.0, 1.0, 0.98)],
            PrimitiveKind::PlateWatch => {
                let mut car = track(1, class, 0.4, 0.4, 0.2, 0.2);
                let text = Arc::from("皖ACJ218");
                car.plate =
                    Some(crate::track::Plate { text, confidence: 0.9, reads: 2, picture: None });
                vec![car]
            }
        }
    }

    fn track(id: u64, class: &str, x: f32, y: f32, w: f32, h: f32) -> Track {
        Track {
            id,
            class: Arc::from(class),
            confidence: 0.9,
            bbox: BBox { x, y, w, h },
            state: TrackState::Confirmed,
            first_seen_s: 0.0,
            last_seen_s: 0.0,
            plate: None,
        }
    }

    /// Builds `id` from the catalog with its defaults (no zone: the whole frame) and feeds it
    /// the scene of its own classes; it must start an incident whose objects are of its
    /// classes.
    fn fires_on_its_own_classes(id: &str) {
        const FPS: f64 = 2.0;
        let entry = find(id).unwrap_or_else(|| panic!("{id} is not in the catalog"));
        let config = AlgorithmConfig {
            kind: id.into(),
            zone: None,
            classes: None,
            min_confidence: None,
            min_box_area: None,
            schedule: None,
            cooldown_s: None,
            severity: None,
            update_s: None,
            plates: false,
            plate_allow: vec![],
            // What a site always sets: the test's line across the middle, traffic going up.
            params: Params {
                line: (entry.primitive == PrimitiveKind::LineCross)
                    .then_some([[0.0, 0.5], [1.0, 0.5]]),
                heading_deg: (entry.primitive == PrimitiveKind::Direction).then_some(0.0),
                watch: (entry.primitive == PrimitiveKind::PlateWatch).then(|| vec!["皖A*".into()]),
                ..Params::default()
            },
        };
        let algorithm = config.resolve(None, &[]).expect("a catalog entry");
        let spec = AlgorithmSpec::new(&algorithm, &[], 0.35).unwrap();
        let classifier = spec.classifier.clone();
        let mut rules = Rules::new(vec![spec]);
        let p = &entry.params;
        let longest = [p.persist_s, p.dwell_s].iter().flatten().fold(5.0_f64, |a, b| a.max(*b));
        let frames = ((longest + 30.0) * FPS) as usize;
        let mut started = None;
        for frame in 0..frames {
            let tracks = scene(entry, frame);
            let mut verdicts = Verdicts::new();
            if let (Some(name), Some(labels)) = (&classifier, &p.labels) {
                let label = Label { label: Arc::from(labels[0].as_str()), score: 0.99 };
                verdicts
                    .insert(name.clone(), tracks.iter().map(|t| (t.id, label.clone())).collect());
            }
            let update = TrackUpdate { tracks: &tracks, removed: vec![] };
            let t = frame as f64 / FPS;
            let events = rules.update(&update, &verdicts, t, SystemTime::UNIX_EPOCH);
            if let Some(start) = events.into_iter().find(|e| e.phase == Phase::Start) {
                started = Some((t, start));
                break;
            }
        }
        let (t, start) = started.unwrap_or_else(|| panic!("{id} never fired on its own classes"));
        let own: Vec<&str> = entry
            .classes
            .iter()
            .chain(p.partner_classes.iter().flatten())
            .map(String::as_str)
            .collect();
        assert!(!start.objects.is_empty(), "{id}: an incident without objects");
        for o in &start.objects {
            assert!(own.contains(&&*o.class), "{id}: fired on a {}", o.class);
        }
        // Not before its own timing allows.
        let earliest = p.persist_s.or(p.dwell_s).unwrap_or(0.0);
        assert!(t + 1e-9 >= earliest, "{id} fired at {t} s, before {earliest} s");
    }

    macro_rules! each_entry_fires {
        ($($id:ident),* $(,)?) => {
            $(#[test] fn $id() { fires_on_its_own_classes(stringify!($id)); })*

            #[test]
            fn every_entry_has_its_firing_test() {
                let tested = [$(stringify!($id)),*];
                for e in entries() {
                    assert!(tested.contains(&e.id.as_str()), "{} has no firing test", e.id);
                }
            }
        };
    }

    mod fires {
        use super::{entries, fires_on_its_own_classes};

        each_entry_fires!(
            exposed_garbage,
            bin_overflow,
            littered_road,
            muck_pile,
            street_hanging,
            material_piling,
            illegal_banner,
            small_ads,
            construction_occupation,
            construction_dust,
            bare_soil,
            muck_truck_uncovered,
            muck_truck_banned_hours,
            illegal_structure,
            illegal_parking,
            bike_disorder,
            road_vending,
            out_of_store,
            mobile_vendor,
            fire_lane_blocked,
            tactile_lane_blocked,
            damaged_facility,
            pothole,
            road_spill,
            fire_smoke,
            open_burning,
            crowd_gathering,
            intrusion,
            tripwire,
            loitering,
            person_fallen,
            wrong_way,
            no_helmet,
            plate_watch,
            waterlogging,
            river_debris,
            water_pollution,
            illegal_fishing,
            water_intrusion,
            kitchen_no_mask,
            kitchen_no_hat,
            kitchen_no_uniform,
            kitchen_smoking,
            phone_use,
            kitchen_rat,
            stove_unattended,
            kitchen_bin_open
        );
    }
}
