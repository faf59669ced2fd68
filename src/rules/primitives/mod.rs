//! The primitives algorithms are built from. Each is plain Rust over one frame's [`View`] of
//! tracks and reports the conditions that hold ([`Hold`]); timing that belongs to the condition
//! (`persist_s`, `dwell_s`, `clear_s`) lives here, the incident lifecycle in the parent module.
//!
//! Coordinates are normalized (0..1, origin top-left); times are stream seconds.
//!
//! [`View`]: super::View
//! [`Hold`]: super::Hold

mod absence;
mod area_ratio;
mod cascade;
mod count;
mod direction;
mod dwell;
mod line_cross;
mod pair;
mod plate_watch;
mod presence;

pub use absence::Absence;
pub use area_ratio::AreaRatio;
pub use cascade::Cascade;
pub use count::Count;
pub use direction::Direction;
pub use dwell::Dwell;
pub use line_cross::LineCross;
pub use pair::Pair;
pub use plate_watch::PlateWatch;
pub use presence::Presence;

use std::sync::Arc;

use super::Primitive;
use crate::config::{Anchor, CrossDirection, Params, PrimitiveKind};

/// A primitive's state, from an algorithm's (checked) parameters and the primitive's defaults.
pub fn build(params: &Params, kind: PrimitiveKind) -> Box<dyn Primitive> {
    let persist_s = params.persist_s.unwrap_or(2.0);
    let clear_s = params.clear_s.unwrap_or(5.0);
    match kind {
        PrimitiveKind::Presence => Box::new(Presence::new(persist_s, clear_s)),
        PrimitiveKind::Dwell => {
            Box::new(Dwell::new(params.dwell_s.unwrap_or(60.0), params.max_motion.unwrap_or(0.15)))
        }
        PrimitiveKind::Loiter => Box::new(Dwell::loiter(params.dwell_s.unwrap_or(60.0))),
        PrimitiveKind::Count => {
            Box::new(Count::new(params.min_count.unwrap_or(1), persist_s, clear_s))
        }
        PrimitiveKind::LineCross => Box::new(LineCross::new(
            params.line.unwrap_or([[0.0, 0.5], [1.0, 0.5]]),
            params.direction.unwrap_or(CrossDirection::Any),
            params.min_travel.unwrap_or(0.02),
            params.anchor.unwrap_or(Anchor::BottomCentre),
        )),
        PrimitiveKind::Direction => Box::new(Direction::new(
            params.heading_deg.unwrap_or(0.0),
            params.tolerance_deg.unwrap_or(45.0),
            params.min_travel.unwrap_or(0.05),
        )),
        PrimitiveKind::Absence => Box::new(Absence::new(params.persist_s.unwrap_or(30.0))),
        PrimitiveKind::Pair => {
            Box::new(Pair::new(params.max_gap.unwrap_or(0.02), persist_s, clear_s))
        }
        PrimitiveKind::AreaRatio => Box::new(AreaRatio::new(
            params.min_ratio.unwrap_or(0.2),
            params.persist_s.unwrap_or(5.0),
            clear_s,
        )),
        PrimitiveKind::Cascade => Box::new(Cascade::new(
            params.labels.iter().flatten().map(|l| Arc::from(l.as_str())).collect(),
            params.min_score.unwrap_or(0.5),
            params.min_frames.unwrap_or(3),
        )),
        PrimitiveKind::PlateWatch => {
            Box::new(PlateWatch::new(params.watch.clone().unwrap_or_default()))
        }
    }
}

/// Builders for the primitives' tests: synthetic tracks and views.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::geometry::{BBox, Point, Polygon};
    use crate::rules::{Hold, Label, Primitive, View};
    use crate::track::{Track, TrackState};

    /// A confirmed track with a `w` x `h` box whose top-left corner is at (`x`, `y`).
    pub fn track(id: u64, class: &str, x: f32, y: f32, w: f32, h: f32) -> Track {
        Track {
            id,
            class: Arc::from(class),
            confidence: 0.8,
            bbox: BBox { x, y, w, h },
            state: TrackState::Confirmed,
            first_seen_s: 0.0,
            last_seen_s: 0.0,
            plate: None,
        }
    }

    /// The same track, unseen in this frame.
    pub fn lost(mut track: Track) -> Track {
        track.state = TrackState::Lost;
        track
    }

    /// An axis-aligned rectangle zone.
    pub fn rect(x1: f32, y1: f32, x2: f32, y2: f32) -> Polygon {
        Polygon::new(vec![
            Point { x: x1, y: y1 },
            Point { x: x2, y: y1 },
            Point { x: x2, y: y2 },
            Point { x: x1, y: y2 },
        ])
    }

    /// One frame for a primitive: its subjects and partners (already filtered by class, as the
    /// engine does), tracks removed for good, and classifier labels.
    pub struct Frame<'a> {
        pub t: f64,
        pub subjects: &'a [Track],
        pub partners: &'a [Track],
        pub removed: &'a [u64],
        pub labels: HashMap<u64, Label>,
    }

    impl<'a> Frame<'a> {
        pub fn at(t: f64, subjects: &'a [Track]) -> Self {
            Frame { t, subjects, partners: &[], removed: &[], labels: HashMap::new() }
        }
    }

    /// Runs one frame through `primitive` with `zone`.
    pub fn evaluate(
        primitive: &mut dyn Primitive,
        zone: Option<&Polygon>,
        frame: &Frame,
    ) -> Vec<Hold> {
        let view = View {
            t: frame.t,
            zone,
            subjects: frame.subjects.iter().collect(),
            partners: frame.partners.iter().collect(),
            removed: frame.removed,
            labels: &frame.labels,
        };
        primitive.evaluate(&view)
    }

    /// Runs `frames` frames at `fps` from `from` seconds, the tracks of each given by
    /// `tracks(i)`; returns the times at which anything holds and the holds.
    pub fn run(
        primitive: &mut dyn Primitive,
        zone: Option<&Polygon>,
        from: f64,
        fps: f64,
        frames: usize,
        tracks: impl Fn(usize) -> Vec<Track>,
    ) -> Vec<(f64, Vec<Hold>)> {
        (0..frames)
            .map(|i| {
                let t = from + i as f64 / fps;
                let subjects = tracks(i);
                (t, evaluate(primitive, zone, &Frame::at(t, &subjects)))
            })
            .collect()
    }
}
