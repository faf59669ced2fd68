//! What watchers of a camera's analysis see: the overlay its algorithms look at (zones and
//! lines) and each analysed frame with its tracks and incidents. The web page, previews and
//! `replay --annotate` draw from these.

use std::sync::Arc;

use crate::config::CameraConfig;
use crate::frame::Frame;
use crate::geometry::{BBox, Polygon};
use crate::incident::{Evidence, Incident};
use crate::track::Track;

/// What a camera's algorithms look at, drawn on pictures of it: its named zones and the lines
/// of its line-crossing algorithms.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub zones: Vec<(String, Polygon)>,
    pub lines: Vec<[[f32; 2]; 2]>,
}

impl Overlay {
    pub fn of(camera: &CameraConfig) -> Self {
        let lines = camera.resolved.iter().filter_map(|a| a.params.line).collect();
        let zones = camera.zones.iter().map(|z| (z.name.clone(), z.polygon.clone())).collect();
        Overlay { zones, lines }
    }

    /// A snapshot of `frame` with this overlay in yellow and `boxes` in green.
    pub fn evidence(&self, frame: Arc<Frame>, boxes: Vec<BBox>) -> Evidence {
        Evidence {
            frame,
            zones: self.zones.iter().map(|(_, polygon)| polygon.clone()).collect(),
            lines: self.lines.clone(),
            subjects: Vec::new(),
            others: boxes,
            labels: Vec::new(),
        }
    }
}

/// One analysed frame as its watchers see it (the web page, `replay --annotate`).
pub struct Analysed<'a> {
    pub frame: &'a Arc<Frame>,
    /// The camera's tracks after this frame, confirmed and briefly lost.
    pub tracks: &'a [Track],
    /// The incident messages this frame produced.
    pub incidents: &'a [Incident],
    pub overlay: &'a Overlay,
}

/// A watcher of every analysed frame.
pub type Watch<'a> = dyn FnMut(&Analysed<'_>) + 'a;
