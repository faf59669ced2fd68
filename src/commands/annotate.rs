//! `replay --annotate`: a replay's analysed frames as a video an operator can watch, showing
//! exactly what the detector and the rules saw.
//!
//! Each analysed frame is drawn (with [`crate::draw`]) with the camera's zones and lines in
//! yellow with the zones' names, every track's box with its id and class (green while matched,
//! grey while briefly lost, red while it is an object of an open incident) and a banner per
//! incident message: its state, algorithm and zone, kept for [`BANNER_S`] of stream time so a
//! person can read it. GStreamer encodes the frames to H.264 in MP4 at the analysed rate
//! (`appsrc ! videoconvert ! x264enc ! mp4mux ! filesink`).
//!
//! The camera thread only hands each frame on (the frame itself is shared, not copied) through a
//! bounded channel to a thread that draws and encodes. The channel blocks when full: a replay is
//! offline, and every analysed frame must be in the video.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use image::{Rgb, RgbImage};

use crate::draw;
use crate::engine::{Analysed, Overlay};
use crate::frame::Frame;
use crate::geometry::Point;
use crate::ingest;
use crate::track::{Track, TrackState};
use crate::wire::IncidentState;

/// Seconds of stream time an incident's banner stays up after its latest message.
pub const BANNER_S: f64 = 2.0;
/// Frames waiting for the encoder thread before the camera thread waits for it.
const QUEUED_FRAMES: usize = 4;
/// How long finishing the file may take once the last frame is in.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);
/// The GStreamer elements encoding needs, and the Debian package that has each.
const ELEMENTS: [(&str, &str); 4] = [
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
];

const ORANGE: Rgb<u8> = Rgb([230, 130, 0]);
const BLUE: Rgb<u8> = Rgb([40, 80, 200]);
const GREY: Rgb<u8> = Rgb([150, 150, 150]);

/// Checks where the video is to go before anything runs: an `.mp4` file in a folder that exists.
pub fn check_path(path: &Path) -> Result<(), String> {
    let mp4 = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mp4"));
    if !mp4 {
        return Err(format!(
            "--annotate {}: the annotated video is MP4; give a file name ending in .mp4",
            path.display()
        ));
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return Err(format!(
            "--annotate {}: folder {} does not exist",
            path.display(),
            folder.display()
        ));
    }
    if path.is_dir() {
        return Err(format!("--annotate {}: is a folder, not a file name", path.display()));
    }
    Ok(())
}

/// One analysed frame on its way to the encoder thread.
struct Scene {
    frame: Arc<Frame>,
    tracks: Vec<Track>,
    notices: Vec<Notice>,
    /// The camera's zones and lines, with the first frame (they do not change).
    overlay: Option<Overlay>,
}

/// What a banner says about one incident message.
#[derive(Debug, Clone)]
struct Notice {
    id: String,
    state: IncidentState,
    text: String,
    /// The incident's objects, drawn in red while it is open.
    objects: Vec<u64>,
}

/// Draws a replay's analysed frames and encodes them to an MP4 file on a thread of its own.
pub struct Annotator {
    tx: Option<SyncSender<Scene>>,
    thread: Option<JoinHandle<Result<u64, String>>>,
    overlay_sent: bool,
}

impl Annotator {
    /// Starts writing `path` (checked with [`check_path`]) at `fps` frames a second. Fails when
    /// GStreamer lacks an element or the file cannot be created.
    pub fn create(path: &Path, fps: f64) -> Result<Annotator, String> {
        let encoder = Encoder::open(path, fps)?;
        let (tx, rx) = sync_channel(QUEUED_FRAMES);
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("annotate".into())
            .spawn(move || encode(rx, encoder).map_err(|e| format!("annotated video {shown}: {e}")))
            .map_err(|e| format!("cannot start the annotation thread: {e}"))?;
        Ok(Annotator { tx: Some(tx), thread: Some(thread), overlay_sent: false })
    }

    /// Hands one analysed frame on, waiting while the encoder is behind. False once the encoder
    /// has stopped on an error, which [`Annotator::finish`] returns.
    pub fn frame(&mut self, analysed: &Analysed<'_>) -> bool {
        let Some(tx) = &self.tx else { return false };
        let notices = analysed
            .incidents
            .iter()
            .map(|incident| {
                let p = &incident.payload;
                let state = match p.state {
                    IncidentState::Start => "START",
                    IncidentState::Update => "UPDATE",
                    IncidentState::End => "END",
                };
                let mut text = format!("{state} {}", p.name_en);
                if let Some(zone) = &p.zone {
                    text.push_str(&format!(" in {zone}"));
                }
                for o in &p.objects {
                    text.push_str(&format!(" #{}", o.track_id));
                }
                Notice {
                    id: p.id.clone(),
                    state: p.state,
                    text,
                    objects: p.objects.iter().map(|o| o.track_id).collect(),
                }
            })
            .collect();
        let scene = Scene {
            frame: analysed.frame.clone(),
            tracks: analysed.tracks.to_vec(),
            notices,
            overlay: (!self.overlay_sent).then(|| analysed.overlay.clone()),
        };
        self.overlay_sent = true;
        if tx.send(scene).is_err() {
            self.tx = None;
            return false;
        }
        true
    }

    /// Finishes the file; how many frames it holds.
    pub fn finish(mut self) -> Result<u64, String> {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(written)) => written,
            _ => Err("the annotation thread failed".into()),
        }
    }
}

impl Drop for Annotator {
    fn drop(&mut self) {
        // Unfinished (the replay failed first): let the thread close the file, for what it holds.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn encode(rx: Receiver<Scene>, mut encoder: Encoder) -> Result<u64, String> {
    let mut painter = Painter::default();
    for scene in rx {
        let t = scene.frame.stream_time_s;
        let image = painter.paint(scene)?;
        encoder.push(image, t)?;
    }
    encoder.finish()
}

/// The banner of one incident.
struct Banner {
    notice: Notice,
    /// Stream time until which it is shown.
    until_s: f64,
}

/// Draws scenes, remembering what spans frames: the overlay, the banners shown and the objects
/// of open incidents.
#[derive(Default)]
struct Painter {
    overlay: Overlay,
    banners: Vec<Banner>,
    open: HashMap<String, Vec<u64>>,
}

impl Painter {
    fn paint(&mut self, scene: Scene) -> Result<RgbImage, String> {
        let t = scene.frame.stream_time_s;
        if let Some(overlay) = scene.overlay {
            self.overlay = overlay;
        }
        for notice in scene.notices {
            match notice.state {
                IncidentState::End => self.open.remove(&notice.id),
                _ => self.open.insert(notice.id.clone(), notice.objects.clone()),
            };
            // One banner per incident, saying its latest message.
            self.banners.retain(|b| b.notice.id != notice.id);
            self.banners.push(Banner { notice, until_s: t + BANNER_S });
        }
        self.banners.retain(|b| b.until_s > t);

        let mut image = draw::picture(&scene.frame)?;
        let (thick, scale) = (draw::stroke(&image), draw::text_scale(&image));
        for (name, zone) in &self.overlay.zones {
            draw::polygon(&mut image, zone, draw::YELLOW, thick);
            // The name hangs below the zone's topmost corner.
            let top =
                zone.points().iter().min_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
            if let Some(top) = top {
                let (x, y) = draw::pixel(&image, *top);
                draw::label(&mut image, x, y, name, draw::BLACK, draw::YELLOW, scale);
            }
        }
        for [a, b] in &self.overlay.lines {
            let point = |[x, y]: [f32; 2]| Point { x, y };
            draw::line(&mut image, point(*a), point(*b), draw::YELLOW, thick);
        }
        let in_incident = |id: u64| self.open.values().any(|objects| objects.contains(&id));
        // Smaller than the banners: a busy scene has many.
        let small = scale.div_ceil(2);
        for track in &scene.tracks {
            let (colour, text) = match track.state {
                _ if in_incident(track.id) => (draw::RED, draw::WHITE),
                TrackState::Lost => (GREY, draw::BLACK),
                _ => (draw::GREEN, draw::BLACK),
            };
            draw::rect(&mut image, &track.bbox, colour, thick);
            let content = format!("#{} {}", track.id, track.class);
            let (x, y) = draw::pixel(&image, Point { x: track.bbox.x, y: track.bbox.y });
            let (_, h) = draw::text_size(&content, small);
            // Above the box, inside the picture (at the top edge, over the box's top).
            let above = y - h as i32 - 4 * small as i32;
            draw::label(&mut image, x, above, &content, text, colour, small);
        }
        let max_chars = (image.width() / (8 * scale)).saturating_sub(2) as usize;
        let mut y = 0;
        for banner in &self.banners {
            let colour = match banner.notice.state {
                IncidentState::Start => draw::RED,
                IncidentState::Update => ORANGE,
                IncidentState::End => BLUE,
            };
            let text = shortened(&banner.notice.text, max_chars);
            y += draw::label(&mut image, 0, y as i32, &text, draw::WHITE, colour, scale);
        }
        let clock = format!("{t:.1} s");
        let (w, h) = draw::text_size(&clock, scale);
        let (x, y) = (image.width() - w, image.height() - h);
        draw::label(&mut image, x as i32, y as i32, &clock, draw::WHITE, draw::BLACK, scale);
        Ok(image)
    }
}

/// `text` cut to `max` characters, with `..` when cut.
fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(2)).collect();
    cut.push_str("..");
    cut
}

/// The GStreamer pipeline writing the MP4 file.
struct Encoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    fps: gst::Fraction,
    /// The video's layout, fixed by its first frame.
    info: Option<gst_video::VideoInfo>,
    first_s: Option<f64>,
    frames: u64,
}

impl Encoder {
    fn open(path: &Path, fps: f64) -> Result<Encoder, String> {
        ingest::init_gstreamer().map_err(|e| e.to_string())?;
        for (element, package) in ELEMENTS {
            if gst::ElementFactory::find(element).is_none() {
                return Err(format!(
                    "GStreamer element {element} is missing (Debian package {package})"
                ));
            }
        }
        let pipeline = gst::parse::launch(
            "appsrc name=frames format=time block=true max-bytes=0 max-buffers=4 \
             ! videoconvert ! x264enc speed-preset=veryfast ! mp4mux ! filesink name=file",
        )
        .map_err(|e| format!("cannot build the encoder: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the encoder is not a pipeline".to_string())?;
        let src = pipeline
            .by_name("frames")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or("the encoder has no appsrc")?;
        let file = pipeline.by_name("file").ok_or("the encoder has no filesink")?;
        file.set_property("location", path.to_string_lossy().as_ref());
        let fps = gst::Fraction::approximate_f64(fps).unwrap_or(gst::Fraction::new(5, 1));
        let encoder = Encoder { pipeline, src, fps, info: None, first_s: None, frames: 0 };
        // The file is created here: a folder that cannot be written fails now, not at the end.
        encoder
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| encoder.error().unwrap_or_else(|| "the encoder would not start".into()))?;
        Ok(encoder)
    }

    fn push(&mut self, image: RgbImage, t: f64) -> Result<(), String> {
        let (width, height) = image.dimensions();
        let info = match &self.info {
            Some(info) if (info.width(), info.height()) == (width, height) => info,
            Some(info) => {
                return Err(format!(
                    "the video changes size at {t:.1} s, from {}x{} to {width}x{height}",
                    info.width(),
                    info.height()
                ));
            }
            None => {
                let info =
                    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
                        .fps(self.fps)
                        .build()
                        .map_err(|e| format!("unusable frame size {width}x{height}: {e}"))?;
                let caps = info.to_caps().map_err(|e| format!("no caps for the video: {e}"))?;
                self.src.set_caps(Some(&caps));
                self.info.insert(info)
            }
        };
        // GStreamer pads RGB rows to 4 bytes; the picture's rows are packed.
        let stride = info.stride()[0] as usize;
        let row = width as usize * 3;
        let data = if stride == row {
            image.into_raw()
        } else {
            let mut padded = vec![0; stride * height as usize];
            for (to, from) in padded.chunks_exact_mut(stride).zip(image.chunks_exact(row)) {
                to[..row].copy_from_slice(from);
            }
            padded
        };
        let first = *self.first_s.get_or_insert(t);
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let buffer = buffer.get_mut().ok_or("a new buffer is not writable")?;
            buffer.set_pts(gst::ClockTime::from_nseconds(((t - first).max(0.0) * 1e9) as u64));
            let frame_ns = 1e9 * f64::from(self.fps.denom()) / f64::from(self.fps.numer());
            buffer.set_duration(gst::ClockTime::from_nseconds(frame_ns as u64));
        }
        self.src
            .push_buffer(buffer)
            .map_err(|flow| self.error().unwrap_or_else(|| format!("encoding failed: {flow:?}")))?;
        self.frames += 1;
        Ok(())
    }

    /// Ends the stream and waits for the file to be complete; the frames it holds.
    fn finish(self) -> Result<u64, String> {
        let _ = self.src.end_of_stream();
        let bus = self.pipeline.bus().ok_or("the encoder has no bus")?;
        let done = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(FINISH_TIMEOUT.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let outcome = match done.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(self.frames),
            Some(gst::MessageView::Error(e)) => Err(error_text(e)),
            _ => Err(format!("not finished after {} s", FINISH_TIMEOUT.as_secs())),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        outcome
    }

    fn error(&self) -> Option<String> {
        let message = self.pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
        match message.view() {
            gst::MessageView::Error(e) => Some(error_text(e)),
            _ => None,
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn error_text(e: &gst::message::Error) -> String {
    let from = e.src().map(|s| s.name().to_string()).unwrap_or_default();
    format!("{from}: {}", e.error())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::geometry::{BBox, Polygon};

    fn scene(t: f64, notices: Vec<Notice>, overlay: Option<Overlay>) -> Scene {
        let frame = Frame {
            width: 200,
            height: 100,
            data: vec![0; 200 * 100 * 3].into(),
            stream_time_s: t,
            captured_at: SystemTime::UNIX_EPOCH,
            metadata: Vec::new(),
        };
        let track = Track {
            id: 7,
            class: "car".into(),
            confidence: 0.9,
            bbox: BBox { x: 0.5, y: 0.5, w: 0.2, h: 0.3 },
            state: TrackState::Confirmed,
            first_seen_s: 0.0,
            last_seen_s: t,
            plate: None,
        };
        Scene { frame: Arc::new(frame), tracks: vec![track], notices, overlay }
    }

    fn notice(state: IncidentState) -> Notice {
        Notice { id: "a".into(), state, text: "START Illegal parking #7".into(), objects: vec![7] }
    }

    fn overlay() -> Overlay {
        let square = [(0.1, 0.5), (0.3, 0.5), (0.3, 0.9), (0.1, 0.9)];
        let points = square.iter().map(|&(x, y)| Point { x, y }).collect();
        Overlay { zones: vec![("kerb".into(), Polygon::new(points))], lines: vec![] }
    }

    #[test]
    fn zones_are_yellow_and_tracks_red_while_their_incident_is_open() {
        let mut painter = Painter::default();
        let image = painter.paint(scene(0.0, vec![], Some(overlay()))).unwrap();
        // The zone's left edge, below its name label; the track's bottom edge.
        assert_eq!(image.get_pixel(20, 80), &draw::YELLOW);
        let bottom = draw::pixel(&image, Point { x: 0.6, y: 0.8 });
        assert_eq!(image.get_pixel(bottom.0 as u32, bottom.1 as u32), &draw::GREEN);

        let image = painter.paint(scene(1.0, vec![notice(IncidentState::Start)], None)).unwrap();
        assert_eq!(image.get_pixel(20, 80), &draw::YELLOW, "the overlay is kept");
        assert_eq!(image.get_pixel(bottom.0 as u32, bottom.1 as u32), &draw::RED);
        let image = painter.paint(scene(1.5, vec![notice(IncidentState::End)], None)).unwrap();
        assert_eq!(image.get_pixel(bottom.0 as u32, bottom.1 as u32), &draw::GREEN);
    }

    #[test]
    fn a_banner_stays_for_banner_s_of_stream_time() {
        let mut painter = Painter::default();
        let banner_at = |image: &RgbImage| *image.get_pixel(1, 1);
        let image = painter.paint(scene(10.0, vec![notice(IncidentState::Start)], None)).unwrap();
        assert_eq!(banner_at(&image), draw::RED);
        let image = painter.paint(scene(10.0 + BANNER_S - 0.2, vec![], None)).unwrap();
        assert_eq!(banner_at(&image), draw::RED, "still up");
        let image = painter.paint(scene(10.0 + BANNER_S, vec![], None)).unwrap();
        assert_eq!(banner_at(&image), Rgb([0, 0, 0]), "gone");
    }

    #[test]
    fn long_banners_are_shortened() {
        assert_eq!(shortened("START Illegal parking", 9), "START I..");
        assert_eq!(shortened("END", 9), "END");
    }

    #[test]
    fn the_video_must_be_an_mp4_in_a_folder_that_exists() {
        let e = check_path(Path::new("out.avi")).unwrap_err();
        assert!(e.contains("ending in .mp4"), "{e}");
        let e = check_path(Path::new("/nonexistent-folder/out.mp4")).unwrap_err();
        assert!(e.contains("folder /nonexistent-folder does not exist"), "{e}");
        assert!(check_path(Path::new("out.MP4")).is_ok());
    }
}
