//! Evidence clips: the camera's own encoded video around each incident, kept as MP4.
//!
//! Ingest hands on the camera's stream before decoding ([`Encoded`]). A ring keeps it from
//! `clip_pre_s` seconds before the latest analysed frame (no later frame's incident needs more),
//! always from a key frame; see [`Ring::trim`] for the bounds. An incident that starts
//! at stream time `t` asks for `[t − pre, t + post]`; once the stream has reached `t + post`, or
//! breaks off or loses buffers first (then with what there is), a thread of its own muxes those
//! buffers with `appsrc ! parser ! mp4mux ! filesink` into
//! `data_dir/clips/{camera}/{incident_id}.mp4`: the camera's bytes, never re-encoded. Incidents
//! whose windows overlap share the ring's buffers. Clips need a codec MP4 holds as it is: H.264
//! or H.265.
//!
//! A reconnect ends the clips being collected (with what there is) and empties the ring: a clip
//! never reaches back into another session. Until the new session has run `clip_pre_s`, a clip
//! starts at its first key frame, and `incident_at_s` says how much came before the incident.
//!
//! An incident's `start` never waits for its clip. The first message after the clip is written
//! carries `evidence.clip`: an `update` sent at once if the incident is still open, or its `end`,
//! held back until then if it ended first. A clip that cannot be written is logged and the held
//! `end` goes without it.
//!
//! Retention, when the node starts and after each clip: clips older than `evidence.retain_days`
//! are deleted, then the oldest while together they exceed `evidence.max_bytes`.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::incident::Incident;
use crate::ingest::{Encoded, IngestError};
use crate::publish::Outbound;
use crate::wire::{ClipRef, EvidenceRef, IncidentPayload, IncidentState, Topics, round};

/// How far the encoded stream may run ahead of the frame being analysed: it skips the decoder
/// and the decode branch's queue (a second of video at most). Until a frame has been analysed,
/// the ring keeps this much beyond `clip_pre_s`, so an incident found on a frame still finds its
/// `pre` seconds.
const AHEAD_S: f64 = 3.0;
/// The most the ring waits for an analysis that lags behind the stream: beyond this its memory
/// is bounded, and a late incident's clip has less before it.
const MAX_LAG_S: f64 = 10.0;
/// A clip that takes longer than this to mux has failed.
const MUX_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(30);
/// A clip's file name while it is being written.
const PARTIAL_SUFFIX: &str = ".mp4.part";

/// Why a clip was not written. Only logged ("clip not written: …"): the incident's message goes
/// on without its clip.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The cut holds no buffers.
    #[error("no video")]
    NoVideo,
    /// The camera's codec is not one MP4 holds as it is (see [`parser_for`]).
    #[error("MP4 cannot hold {caps} without re-encoding")]
    Codec { caps: Arc<str> },
    /// GStreamer would not initialise.
    #[error(transparent)]
    GStreamer(#[from] IngestError),
    /// An element of the muxing pipeline cannot be made: its plugin is not installed.
    #[error("{element}: {error}")]
    Element { element: String, error: gst::glib::BoolError },
    /// The muxing pipeline's elements cannot be put together or linked.
    #[error("{0}")]
    Pipeline(gst::glib::BoolError),
    /// The stream's caps, as ingest gave them, do not parse back.
    #[error("{caps}: {error}")]
    Caps { caps: Arc<str>, error: gst::glib::BoolError },
    #[error("the muxer would not start")]
    NotStarted,
    #[error("the muxer took no more video: {0:?}")]
    Push(gst::FlowError),
    #[error("the muxer did not end: {0:?}")]
    NotEnded(gst::FlowError),
    #[error("the muxer has no bus")]
    NoBus,
    /// An element of the muxing pipeline posted an error (a full disk, a stream it rejects).
    #[error("{0}")]
    Muxer(gst::glib::Error),
    #[error("not written within {} s", MUX_TIMEOUT.seconds())]
    Timeout,
    /// The clips folder cannot be created.
    #[error("cannot create {}: {error}", dir.display())]
    CreateDir { dir: PathBuf, error: std::io::Error },
    /// The finished clip cannot be renamed to its final name.
    #[error("cannot keep {}: {error}", path.display())]
    Keep { path: PathBuf, error: std::io::Error },
    /// The clip was written but is gone before it could be measured.
    #[error("{} vanished: {error}", path.display())]
    Vanished { path: PathBuf, error: std::io::Error },
    /// The writer panicked.
    #[error("the clip writer failed")]
    Panicked,
}

/// One camera's clip settings.
#[derive(Debug)]
pub struct Settings {
    camera: String,
    pre_s: f64,
    post_s: f64,
    /// Where this camera's clips go.
    dir: PathBuf,
    /// The node's topics, when clips are published.
    topics: Option<Topics>,
    /// The limits on the node's clips, for a running node.
    retention: Option<Retention>,
}

impl Settings {
    /// A running node's camera: clips in `data_dir/clips/{camera}`, within the evidence limits.
    /// None when clips are off.
    pub fn live(config: &Config, camera: &str) -> Option<Settings> {
        let evidence = &config.evidence;
        let root = config.node.data_dir.join("clips");
        let max_age =
            Duration::try_from_secs_f64(evidence.retain_days * 86_400.0).unwrap_or(Duration::MAX);
        let retention = Retention { root: root.clone(), max_age, max_bytes: evidence.max_bytes };
        Settings::new(config, camera, root.join(camera), Some(retention))
    }

    /// A replay's: clips beside its snapshots in `evidence_dir`, all of them kept.
    pub fn replay(config: &Config, camera: &str, evidence_dir: &Path) -> Option<Settings> {
        Settings::new(config, camera, evidence_dir.to_path_buf(), None)
    }

    fn new(
        config: &Config,
        camera: &str,
        dir: PathBuf,
        retention: Option<Retention>,
    ) -> Option<Settings> {
        let evidence = &config.evidence;
        evidence.clips.then(|| Settings {
            camera: camera.to_string(),
            pre_s: evidence.clip_pre_s,
            post_s: evidence.clip_post_s,
            dir,
            topics: evidence
                .publish_clips
                .then(|| Topics::new(&config.mqtt.topic_prefix, &config.node.id)),
            retention,
        })
    }
}

/// One camera's clips: the ring of its encoded stream and its messages waiting for a clip. Lives
/// on the camera's thread, which never waits for a clip to be written.
pub struct Recorder {
    settings: Arc<Settings>,
    ring: Ring,
    messages: Arc<Messages>,
    /// The caps last seen, and whether MP4 can hold their codec.
    codec: Option<(Arc<str>, bool)>,
}

impl Recorder {
    /// Clips for a camera whose incident messages go to `tx`; applies retention first.
    pub fn start(settings: Settings, tx: mpsc::Sender<Outbound>) -> Recorder {
        if let Some(retention) = &settings.retention {
            retention.apply();
        }
        Recorder {
            ring: Ring::new(settings.pre_s, settings.post_s),
            settings: Arc::new(settings),
            messages: Arc::new(Messages { tx, waiting: Mutex::default() }),
            codec: None,
        }
    }

    /// The next buffer of the camera's encoded stream.
    pub fn push(&mut self, buffer: Encoded) {
        if self.can_mux(&buffer.caps) {
            let cuts = self.ring.push(buffer);
            self.write(cuts);
        }
    }

    /// The camera's frame at stream time `stream_time_s` has been analysed: no later incident
    /// needs the stream from before `clip_pre_s` ahead of it.
    pub fn analysed(&mut self, stream_time_s: f64) {
        self.ring.analysed(stream_time_s);
    }

    /// Sends an incident message on, unless it is the `end` of an incident whose clip is still
    /// to come. A `start` asks for a clip.
    pub fn route(&mut self, incident: Incident) {
        let payload = &incident.payload;
        match payload.state {
            IncidentState::Start => {
                if self.ring.request(&payload.id, payload.stream_time_s) {
                    self.messages.expect_clip(payload);
                }
                self.messages.send(incident);
            }
            IncidentState::Update => self.messages.update(incident),
            IncidentState::End => self.messages.end(incident),
        }
    }

    /// The stream broke off or ended: the clips being collected are written with what there is.
    pub fn flush(&mut self) {
        let cuts = self.ring.flush();
        self.write(cuts);
    }

    fn can_mux(&mut self, caps: &Arc<str>) -> bool {
        if let Some((known, ok)) = &self.codec
            && Arc::ptr_eq(known, caps)
        {
            return *ok;
        }
        let ok = parser_for(caps).is_some();
        if !ok && self.codec.as_ref().is_none_or(|(_, was_ok)| *was_ok) {
            tracing::info!(
                camera = %self.settings.camera,
                "no clips: MP4 cannot hold this stream without re-encoding it ({caps})"
            );
        }
        self.codec = Some((caps.clone(), ok));
        ok
    }

    /// Writes each clip on a thread of its own; its message goes on from there.
    fn write(&self, cuts: Vec<Cut>) {
        for cut in cuts {
            let (settings, messages) = (self.settings.clone(), self.messages.clone());
            let id = cut.id.clone();
            let spawned = std::thread::Builder::new()
                .name("clip-writer".into())
                .spawn(move || write_and_release(&cut, &settings, &messages));
            if let Err(e) = spawned {
                tracing::warn!(camera = %self.settings.camera, id, "clip not written: {e}");
                self.messages.clip_done(&id, None);
            }
        }
    }
}

/// Writes a clip and lets the message waiting for it go, with it or, when it failed, without;
/// then applies retention.
fn write_and_release(cut: &Cut, settings: &Settings, messages: &Messages) {
    // Whatever happens to the clip, the message must go.
    let written = panic::catch_unwind(AssertUnwindSafe(|| write_clip(cut, settings)))
        .unwrap_or(Err(ClipError::Panicked));
    if let Err(e) = &written {
        tracing::warn!(camera = %settings.camera, id = %cut.id, "clip not written: {e}");
    }
    messages.clip_done(&cut.id, written.ok());
    if let Some(retention) = &settings.retention {
        retention.apply();
    }
}

/// A camera's incident messages on their way to the sink, some waiting for their clip. Shared
/// by the camera's thread and its clip writers.
struct Messages {
    tx: mpsc::Sender<Outbound>,
    /// Incidents whose clip is on its way, by id.
    waiting: Mutex<HashMap<String, Waiting>>,
}

struct Waiting {
    /// The incident's latest message, with its start's snapshot reference.
    latest: IncidentPayload,
    /// Its `end`, once it came.
    end: Option<Incident>,
}

impl Messages {
    fn send(&self, incident: Incident) {
        // The sink only goes away when the node is shutting down.
        let _ = self.tx.blocking_send(Outbound::Incident(Box::new(incident)));
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expect_clip(&self, start: &IncidentPayload) {
        self.waiting().insert(start.id.clone(), Waiting { latest: start.clone(), end: None });
    }

    /// Updates go on at once; the message that brings the clip repeats the latest.
    fn update(&self, update: Incident) {
        if let Some(w) = self.waiting().get_mut(&update.payload.id) {
            w.latest =
                IncidentPayload { evidence: w.latest.evidence.take(), ..update.payload.clone() };
        }
        self.send(update);
    }

    /// An `end` waits while its incident's clip is on its way.
    fn end(&self, end: Incident) {
        let mut waiting = self.waiting();
        match waiting.get_mut(&end.payload.id) {
            Some(w) => w.end = Some(end),
            None => {
                drop(waiting);
                self.send(end);
            }
        }
    }

    /// The incident's clip is written (or failed): its held `end` goes, or an `update` that
    /// brings the clip.
    fn clip_done(&self, id: &str, clip: Option<ClipRef>) {
        // Sent under the lock: an `end` routed meanwhile waits, so it cannot overtake.
        let mut waiting = self.waiting();
        let Some(mut w) = waiting.remove(id) else { return };
        let Some(clip) = clip else {
            if let Some(end) = w.end {
                self.send(Incident { seen_at: None, ..end });
            }
            return;
        };
        let evidence = w.latest.evidence.take().map(|e| EvidenceRef { clip: Some(clip), ..e });
        let payload = match w.end {
            Some(end) => IncidentPayload { evidence, ..end.payload },
            None => {
                let mut repeat =
                    IncidentPayload { state: IncidentState::Update, evidence, ..w.latest };
                // Its plates' pictures went out with the message that first named them.
                let plates = repeat.objects.iter_mut().filter_map(|o| o.plate.as_mut());
                plates.for_each(|plate| plate.evidence = None);
                repeat
            }
        };
        self.send(Incident { payload, evidence: None, plate_pictures: Vec::new(), seen_at: None });
    }
}

/// The camera's recent encoded stream, from a key frame, and the clips waiting for more of it.
struct Ring {
    pre_s: f64,
    post_s: f64,
    buffers: VecDeque<Arc<Encoded>>,
    requests: Vec<Request>,
    /// The stream time of the latest analysed frame.
    analysed_s: Option<f64>,
}

/// A clip asked for: the incident, and the stream time of the frame it started on.
struct Request {
    id: String,
    at_s: f64,
}

/// The buffers of one incident's clip.
struct Cut {
    id: String,
    at_s: f64,
    buffers: Vec<Arc<Encoded>>,
}

impl Ring {
    fn new(pre_s: f64, post_s: f64) -> Ring {
        Ring { pre_s, post_s, buffers: VecDeque::new(), requests: Vec::new(), analysed_s: None }
    }

    fn analysed(&mut self, stream_time_s: f64) {
        self.analysed_s = Some(self.analysed_s.map_or(stream_time_s, |t| t.max(stream_time_s)));
        self.trim();
    }

    /// Adds the stream's next buffer; returns the clips the stream has now reached the end of.
    fn push(&mut self, buffer: Encoded) -> Vec<Cut> {
        // What came before a gap cannot be continued.
        let mut cuts = if buffer.follows_gap { self.flush() } else { Vec::new() };
        // Nothing before a key frame can be decoded.
        if self.buffers.is_empty() && !buffer.keyframe {
            return cuts;
        }
        let (pts_s, post_s) = (buffer.pts_s, self.post_s);
        self.buffers.push_back(Arc::new(buffer));
        let (done, pending): (Vec<_>, _) =
            self.requests.drain(..).partition(|r| pts_s >= r.at_s + post_s);
        self.requests = pending;
        cuts.extend(done.into_iter().map(|r| self.cut(r)));
        self.trim();
        cuts
    }

    /// Asks for the clip of an incident that started at stream time `at_s`; false when there
    /// is no stream to cut it from.
    fn request(&mut self, id: &str, at_s: f64) -> bool {
        if self.buffers.is_empty() {
            return false;
        }
        self.requests.push(Request { id: id.to_string(), at_s });
        true
    }

    /// Every clip asked for, with what there is; the stream starts afresh.
    fn flush(&mut self) -> Vec<Cut> {
        let requests = std::mem::take(&mut self.requests);
        let cuts = requests.into_iter().map(|r| self.cut(r)).collect();
        self.buffers.clear();
        cuts
    }

    /// From the last key frame at least `pre_s` before the incident to the first frame at least
    /// `post_s` after it (timestamps jitter: the frame due at `post_s` may come a little late).
    fn cut(&self, request: Request) -> Cut {
        let start = self.last_keyframe_by(request.at_s - self.pre_s).unwrap_or(0);
        let end_s = request.at_s + self.post_s;
        let after_end = self.buffers.iter().skip(start).position(|b| b.pts_s >= end_s);
        let end = after_end.map_or(self.buffers.len(), |i| start + i + 1);
        Cut {
            id: request.id,
            at_s: request.at_s,
            buffers: self.buffers.range(start..end).cloned().collect(),
        }
    }

    /// Drops what neither a future incident nor a waiting clip can need. A future incident
    /// starts on a frame at or after the latest analysed one; until one is analysed, at most
    /// [`AHEAD_S`] before the newest buffer; and the ring waits at most [`MAX_LAG_S`] for an
    /// analysis that lags.
    fn trim(&mut self) {
        let Some(newest) = self.buffers.back().map(|b| b.pts_s) else { return };
        let next_incident = self.analysed_s.map_or(newest - AHEAD_S, |t| t.max(newest - MAX_LAG_S));
        let earliest_incident = self.requests.iter().map(|r| r.at_s).fold(next_incident, f64::min);
        if let Some(keep) = self.last_keyframe_by(earliest_incident - self.pre_s) {
            self.buffers.drain(..keep);
        }
    }

    fn last_keyframe_by(&self, time_s: f64) -> Option<usize> {
        self.buffers.iter().rposition(|b| b.keyframe && b.pts_s <= time_s)
    }
}

/// The parser that makes of a codec's stream what mp4mux takes (length-prefixed units with
/// codec data), for the codecs MP4 holds as they come from cameras.
fn parser_for(caps: &str) -> Option<&'static str> {
    const PARSERS: [(&str, &str); 2] =
        [("video/x-h264", "h264parse"), ("video/x-h265", "h265parse")];
    let media = caps.split(',').next()?.trim();
    PARSERS.iter().find(|(m, _)| *m == media).map(|(_, parser)| *parser)
}

/// Writes a cut to `{dir}/{id}.mp4`, under a temporary name until it is complete.
fn write_clip(cut: &Cut, settings: &Settings) -> Result<ClipRef, ClipError> {
    let start_s = cut.buffers.iter().map(|b| b.pts_s).reduce(f64::min).ok_or(ClipError::NoVideo)?;
    fs::create_dir_all(&settings.dir)
        .map_err(|error| ClipError::CreateDir { dir: settings.dir.clone(), error })?;
    let path = settings.dir.join(format!("{}.mp4", cut.id));
    let partial = settings.dir.join(format!("{}{PARTIAL_SUFFIX}", cut.id));
    let written = mux(&cut.buffers, &partial).and_then(|()| {
        fs::rename(&partial, &path).map_err(|error| ClipError::Keep { path: path.clone(), error })
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    let size_bytes = fs::metadata(&path)
        .map_err(|error| ClipError::Vanished { path: path.clone(), error })?
        .len();
    Ok(ClipRef {
        path: path.to_string_lossy().into_owned(),
        duration_s: round(duration_s(&cut.buffers), 3),
        size_bytes,
        incident_at_s: round(cut.at_s - start_s, 3),
        topic: settings.topics.as_ref().map(|t| t.clip(&settings.camera, &cut.id)),
    })
}

/// First to last presentation time, plus one frame of the average length.
fn duration_s(buffers: &[Arc<Encoded>]) -> f64 {
    let times = || buffers.iter().map(|b| b.pts_s);
    let (Some(first), Some(last)) = (times().reduce(f64::min), times().reduce(f64::max)) else {
        return 0.0;
    };
    match buffers.len() {
        0 | 1 => 0.0,
        n => (last - first) * n as f64 / (n - 1) as f64,
    }
}

/// `appsrc ! parser ! mp4mux ! filesink` over the buffers, timestamps counted from the clip's
/// start.
fn mux(buffers: &[Arc<Encoded>], path: &Path) -> Result<(), ClipError> {
    crate::ingest::init_gstreamer()?;
    let first = buffers.first().ok_or(ClipError::NoVideo)?;
    let parser =
        parser_for(&first.caps).ok_or_else(|| ClipError::Codec { caps: first.caps.clone() })?;
    let make = |name: &str| {
        gst::ElementFactory::make(name)
            .build()
            .map_err(|error| ClipError::Element { element: name.to_string(), error })
    };
    let src = gst_app::AppSrc::builder().format(gst::Format::Time).build();
    let sink = make("filesink")?;
    sink.set_property("location", path.to_string_lossy().as_ref());
    let pipeline = gst::Pipeline::new();
    let elements = [src.upcast_ref(), &make(parser)?, &make("mp4mux")?, &sink];
    pipeline.add_many(elements).map_err(ClipError::Pipeline)?;
    gst::Element::link_many(elements).map_err(ClipError::Pipeline)?;
    let muxed = pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| ClipError::NotStarted)
        .and_then(|_| feed(&src, buffers))
        .and_then(|()| wait_for_end(&pipeline));
    let _ = pipeline.set_state(gst::State::Null);
    muxed
}

fn feed(src: &gst_app::AppSrc, buffers: &[Arc<Encoded>]) -> Result<(), ClipError> {
    let first = buffers.first().ok_or(ClipError::NoVideo)?;
    let times = buffers.iter().flat_map(|b| [Some(b.pts_s), b.dts_s]).flatten();
    let origin_s = times.fold(f64::INFINITY, f64::min);
    let clock_time = |s: f64| gst::ClockTime::from_nseconds(((s - origin_s) * 1e9).round() as u64);
    let parse_caps = |text: &Arc<str>| {
        gst::Caps::from_str(text).map_err(|error| ClipError::Caps { caps: text.clone(), error })
    };
    let (mut caps_text, mut caps) = (&first.caps, parse_caps(&first.caps)?);
    for encoded in buffers {
        if !Arc::ptr_eq(caps_text, &encoded.caps) {
            (caps_text, caps) = (&encoded.caps, parse_caps(&encoded.caps)?);
        }
        let mut buffer = gst::Buffer::from_mut_slice(encoded.data.clone());
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(clock_time(encoded.pts_s));
        b.set_dts(encoded.dts_s.map(clock_time));
        if !encoded.keyframe {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
        src.push_sample(&sample).map_err(ClipError::Push)?;
    }
    src.end_of_stream().map(|_| ()).map_err(ClipError::NotEnded)
}

fn wait_for_end(pipeline: &gst::Pipeline) -> Result<(), ClipError> {
    let bus = pipeline.bus().ok_or(ClipError::NoBus)?;
    let types = [gst::MessageType::Eos, gst::MessageType::Error];
    match bus.timed_pop_filtered(MUX_TIMEOUT, &types).as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => Err(ClipError::Muxer(e.error())),
        Some(_) => Ok(()),
        None => Err(ClipError::Timeout),
    }
}

/// Limits on a running node's clips.
#[derive(Debug)]
struct Retention {
    /// `data_dir/clips`, a folder per camera.
    root: PathBuf,
    max_age: Duration,
    max_bytes: u64,
}

/// A clip file on disk.
struct Stored {
    path: PathBuf,
    modified: SystemTime,
    size: u64,
    /// Still under its temporary name: being written, or left by a node that died writing it.
    partial: bool,
}

/// A partial clip this old has no writer any more: writers give up after [`MUX_TIMEOUT`].
const ABANDONED_AFTER: Duration = Duration::from_secs(2 * MUX_TIMEOUT.seconds());

impl Retention {
    /// Deletes the clips older than `max_age`, then the oldest while together they take more
    /// than `max_bytes`; and partial clips nobody writes any more.
    fn apply(&self) {
        let older_than = |c: &Stored, age: Duration| c.modified.elapsed().is_ok_and(|a| a > age);
        let (partial, mut clips): (Vec<_>, Vec<_>) =
            self.stored().into_iter().partition(|c| c.partial);
        let mut deleted = 0;
        for part in partial.iter().filter(|p| older_than(p, ABANDONED_AFTER)) {
            deleted += usize::from(delete(part));
        }
        clips.sort_by_key(|c| c.modified);
        let mut total: u64 = clips.iter().map(|c| c.size).sum();
        for clip in clips {
            if !older_than(&clip, self.max_age) && total <= self.max_bytes {
                break; // the rest are newer
            }
            deleted += usize::from(delete(&clip));
            total -= clip.size;
        }
        if deleted > 0 {
            tracing::info!(deleted, "old clips deleted (evidence.retain_days, evidence.max_bytes)");
        }
    }

    fn stored(&self) -> Vec<Stored> {
        let entries = |dir: &Path| fs::read_dir(dir).into_iter().flatten().flatten();
        let mut clips = Vec::new();
        for camera in entries(&self.root) {
            for file in entries(&camera.path()) {
                let path = file.path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let partial = name.ends_with(PARTIAL_SUFFIX);
                if !(partial || name.ends_with(".mp4")) {
                    continue;
                }
                if let Ok(meta) = file.metadata()
                    && let Ok(modified) = meta.modified()
                {
                    clips.push(Stored { path, modified, size: meta.len(), partial });
                }
            }
        }
        clips
    }
}

/// Deletes a clip file; false when it was not there (another camera's writer got there first)
/// or cannot be deleted.
fn delete(clip: &Stored) -> bool {
    match fs::remove_file(&clip.path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!("cannot delete the clip {}: {e}", clip.path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPS: f64 = 10.0;

    /// Frame `i` of a 10 frames/s stream with a key frame every second.
    fn frame(i: u32) -> Encoded {
        Encoded {
            data: vec![i as u8; 4],
            pts_s: f64::from(i) / FPS,
            dts_s: Some(f64::from(i) / FPS),
            keyframe: i.is_multiple_of(10),
            caps: "video/x-h264, stream-format=(string)avc".into(),
            follows_gap: false,
        }
    }

    fn times(cut: &Cut) -> (f64, f64) {
        (cut.buffers[0].pts_s, cut.buffers.last().unwrap().pts_s)
    }

    #[test]
    fn the_ring_starts_at_a_key_frame_and_keeps_pre_s_and_the_lead() {
        let mut ring = Ring::new(2.0, 1.0);
        for i in 3..300 {
            ring.push(frame(i));
            match ring.buffers.front() {
                None => assert!(i < 10, "frame {i}: the ring is empty"),
                Some(first) => assert!(first.keyframe, "frame {i}: starts at {}", first.pts_s),
            }
        }
        // Newest 29.9 s: the last key frame at or before 29.9 − AHEAD_S − 2 s is 24 s.
        assert_eq!(ring.buffers[0].pts_s, 24.0);
        assert_eq!(ring.buffers.len(), 60);
    }

    #[test]
    fn once_frames_are_analysed_the_ring_keeps_pre_s_before_the_latest_within_a_bounded_lag() {
        let mut ring = Ring::new(2.0, 1.0);
        for i in 0..300 {
            ring.push(frame(i));
            // Analysis half a second behind the stream.
            if i >= 5 {
                ring.analysed(f64::from(i - 5) / FPS);
            }
        }
        // Latest analysed 29.4 s: the last key frame at or before 27.4 s is 27 s.
        assert_eq!(ring.buffers[0].pts_s, 27.0);
        // Analysis stalls: the ring keeps at most MAX_LAG_S and pre_s behind the newest buffer.
        for i in 300..600 {
            ring.push(frame(i));
        }
        assert_eq!(ring.buffers[0].pts_s, 47.0);
    }

    #[test]
    fn a_clip_runs_from_the_key_frame_before_pre_s_to_post_s_after_the_incident() {
        let mut ring = Ring::new(2.0, 1.0);
        for i in 0..=105 {
            assert!(ring.push(frame(i)).is_empty());
        }
        assert!(ring.request("a", 10.25));
        // The stream must reach 11.25 s first.
        for i in 106..=112 {
            assert!(ring.push(frame(i)).is_empty(), "frame {i}");
        }
        let cuts = ring.push(frame(113));
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].id, "a");
        assert_eq!(times(&cuts[0]), (8.0, 11.3));
        assert!(cuts[0].buffers[0].keyframe);
        assert_eq!(cuts[0].buffers.len(), 34);
    }

    #[test]
    fn a_waiting_clip_keeps_its_start_in_the_ring() {
        let mut ring = Ring::new(1.0, 10.0);
        for i in 0..=50 {
            ring.push(frame(i));
        }
        assert!(ring.request("long", 5.0));
        let mut cuts = Vec::new();
        for i in 51..=151 {
            cuts.extend(ring.push(frame(i)));
        }
        assert_eq!(cuts.len(), 1);
        assert_eq!(times(&cuts[0]), (4.0, 15.0));
        // Done with it, the ring lets go: 15.1 s − AHEAD_S − 1 s is after the key frame at 11 s.
        assert_eq!(ring.buffers[0].pts_s, 11.0);
    }

    #[test]
    fn overlapping_clips_share_their_buffers() {
        let mut ring = Ring::new(2.0, 1.0);
        for i in 0..=60 {
            ring.push(frame(i));
        }
        ring.request("a", 5.0);
        ring.request("b", 5.5);
        let mut cuts = Vec::new();
        for i in 61..=80 {
            cuts.extend(ring.push(frame(i)));
        }
        assert_eq!(cuts.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(times(&cuts[0]), (3.0, 6.0));
        assert_eq!(times(&cuts[1]), (3.0, 6.5));
        for (a, b) in cuts[0].buffers.iter().zip(&cuts[1].buffers) {
            assert!(Arc::ptr_eq(a, b));
        }
    }

    #[test]
    fn a_stream_that_breaks_off_gives_what_there_is_and_starts_afresh() {
        let mut ring = Ring::new(2.0, 5.0);
        for i in 0..=40 {
            ring.push(frame(i));
        }
        ring.request("a", 4.0);
        let cuts = ring.flush();
        assert_eq!(times(&cuts[0]), (2.0, 4.0));
        assert!(ring.buffers.is_empty() && ring.requests.is_empty());
        // The next stream is used from its first key frame on.
        assert!(ring.push(frame(43)).is_empty() && ring.buffers.is_empty());
        ring.push(frame(50));
        assert_eq!(ring.buffers[0].pts_s, 5.0);
    }

    #[test]
    fn after_a_reconnect_clips_start_at_its_first_key_frame_until_pre_s_has_run_again() {
        let mut ring = Ring::new(3.0, 1.0);
        for i in 0..=100 {
            ring.push(frame(i));
        }
        ring.flush();
        // The new session (from 20 s on) is found 0.4 s in: its clip cannot reach back before
        // the session's first key frame, and says where the incident is.
        for i in 195..=204 {
            ring.push(frame(i));
        }
        assert!(ring.request("soon", 20.4));
        let mut cuts = Vec::new();
        for i in 205..=300 {
            cuts.extend(ring.push(frame(i)));
            if i == 250 {
                assert!(ring.request("later", 25.0));
            }
        }
        assert_eq!(cuts.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["soon", "later"]);
        assert_eq!(times(&cuts[0]), (20.0, 21.4));
        assert_eq!(cuts[0].at_s - cuts[0].buffers[0].pts_s, 20.4 - 20.0);
        // Once the stream has run `pre_s` again, the full pre-roll.
        assert_eq!(times(&cuts[1]), (22.0, 26.0));
    }

    #[test]
    fn a_gap_in_the_stream_ends_the_clips_before_it() {
        let mut ring = Ring::new(2.0, 5.0);
        for i in 0..=40 {
            ring.push(frame(i));
        }
        ring.request("a", 4.0);
        let cuts = ring.push(Encoded { follows_gap: true, ..frame(45) });
        assert_eq!(times(&cuts[0]), (2.0, 4.0));
        assert!(ring.buffers.is_empty(), "a delta frame after the gap is no start");
        ring.push(frame(50));
        assert_eq!(ring.buffers[0].pts_s, 5.0);
    }

    #[test]
    fn no_clip_without_a_stream() {
        let mut ring = Ring::new(2.0, 1.0);
        assert!(!ring.request("a", 1.0));
        ring.push(frame(5)); // not a key frame
        assert!(!ring.request("a", 1.0));
    }

    #[test]
    fn clips_of_h264_and_h265_can_be_muxed_and_others_not() {
        assert_eq!(parser_for("video/x-h264, stream-format=(string)avc"), Some("h264parse"));
        assert_eq!(parser_for("video/x-h265"), Some("h265parse"));
        assert_eq!(parser_for("video/x-divx, divxversion=(int)3"), None);
    }

    #[test]
    fn duration_counts_the_last_frame_too() {
        let buffers: Vec<Arc<Encoded>> = (0..50).map(|i| Arc::new(frame(i))).collect();
        assert!((duration_s(&buffers) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn errors_read_as_they_always_have() {
        assert_eq!(ClipError::Timeout.to_string(), "not written within 30 s");
        assert_eq!(ClipError::NoVideo.to_string(), "no video");
        let divx = ClipError::Codec { caps: "video/x-divx, divxversion=(int)3".into() };
        let expected = "MP4 cannot hold video/x-divx, divxversion=(int)3 without re-encoding";
        assert_eq!(divx.to_string(), expected);
        let full = ClipError::Push(gst::FlowError::Error);
        assert_eq!(full.to_string(), "the muxer took no more video: Error");
        let denied = std::io::Error::from_raw_os_error(13);
        let error =
            ClipError::CreateDir { dir: "/var/lib/cityeye/clips/kerb".into(), error: denied };
        let expected = "cannot create /var/lib/cityeye/clips/kerb: Permission denied (os error 13)";
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn a_clip_with_nowhere_to_go_says_where() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("clips"), "a file, not a folder").unwrap();
        let dir = root.path().join("clips/kerb");
        let settings = Settings {
            camera: "kerb".into(),
            pre_s: 2.0,
            post_s: 1.0,
            dir: dir.clone(),
            topics: None,
            retention: None,
        };
        let cut = Cut { id: "a".into(), at_s: 1.0, buffers: vec![Arc::new(frame(10))] };
        let error = write_clip(&cut, &settings).unwrap_err();
        assert!(matches!(error, ClipError::CreateDir { .. }), "{error:?}");
        let expected = format!("cannot create {}: Not a directory (os error 20)", dir.display());
        assert_eq!(error.to_string(), expected);
        let empty = Cut { id: "b".into(), at_s: 1.0, buffers: Vec::new() };
        assert_eq!(write_clip(&empty, &settings).unwrap_err().to_string(), "no video");
    }

    const ID: &str = "01a1ffae-a177-7f4d-85bd-2f1842cdae6a";

    fn incident(state: &str, stream_time_s: f64) -> Incident {
        let mut payload = serde_json::json!({
            "schema": "cityeye.incident.v1", "id": ID, "node": "edge", "camera": "kerb",
            "algorithm": "illegal_parking", "category": "street_order", "name_zh": "机动车违停",
            "name_en": "Illegal parking", "severity": "warning", "state": state,
            "detected_at": "2026-11-21T19:56:37.111Z", "stream_time_s": stream_time_s,
            "objects": [{"track_id": 3, "class": "car", "confidence": 0.78,
                         "bbox": [0.95, 0.09, 0.04, 0.07], "dwell_s": stream_time_s}],
            "model": {"name": "coco", "sha256": "d".repeat(64)},
        });
        if state == "start" {
            payload["evidence"] =
                serde_json::json!({"topic": "e/kerb/evidence", "width": 768, "height": 576});
        }
        let payload = serde_json::from_value(payload).unwrap();
        Incident { payload, evidence: None, plate_pictures: Vec::new(), seen_at: None }
    }

    fn clip() -> ClipRef {
        ClipRef {
            path: format!("/var/lib/cityeye/clips/kerb/{ID}.mp4"),
            duration_s: 15.2,
            size_bytes: 1_300_000,
            incident_at_s: 5.2,
            topic: None,
        }
    }

    fn messages() -> (Messages, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(8);
        (Messages { tx, waiting: Mutex::default() }, rx)
    }

    fn next(rx: &mut mpsc::Receiver<Outbound>) -> Option<IncidentPayload> {
        match rx.try_recv().ok()? {
            Outbound::Incident(incident) => Some(incident.payload),
            other => panic!("not an incident: {other:?}"),
        }
    }

    fn assert_matches_schema(payload: &IncidentPayload) {
        let schema = serde_json::from_str(include_str!("../schemas/incident.v1.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let payload = serde_json::to_value(payload).unwrap();
        let errors: Vec<String> = validator.iter_errors(&payload).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{payload}: {errors:?}");
    }

    #[test]
    fn an_end_before_the_clip_waits_for_it_and_brings_it() {
        let (messages, mut rx) = messages();
        let start = incident("start", 20.0);
        messages.expect_clip(&start.payload);
        messages.send(start);
        messages.end(incident("end", 24.0));
        assert_eq!(next(&mut rx).unwrap().state, IncidentState::Start);
        assert!(next(&mut rx).is_none(), "the end waits for the clip");

        messages.clip_done(ID, Some(clip()));
        let end = next(&mut rx).unwrap();
        assert_eq!((end.state, end.stream_time_s), (IncidentState::End, 24.0));
        let evidence = end.evidence.as_ref().unwrap();
        assert_eq!(evidence.topic, "e/kerb/evidence");
        assert_eq!(evidence.clip, Some(clip()));
        assert_matches_schema(&end);
    }

    #[test]
    fn a_clip_of_an_open_incident_comes_at_once_in_an_update_repeating_the_latest() {
        let (messages, mut rx) = messages();
        let start = incident("start", 20.0);
        messages.expect_clip(&start.payload);
        messages.send(start);
        messages.update(incident("update", 30.0));
        messages.clip_done(ID, Some(clip()));
        let [_, update, with_clip] = [(); 3].map(|()| next(&mut rx).unwrap());
        assert!(update.evidence.is_none());
        assert_eq!((with_clip.state, with_clip.stream_time_s), (IncidentState::Update, 30.0));
        assert_eq!(with_clip.evidence.as_ref().unwrap().clip, Some(clip()));
        assert_matches_schema(&with_clip);

        messages.end(incident("end", 40.0));
        let end = next(&mut rx).expect("with its clip sent, the end goes at once");
        assert!(end.evidence.is_none());
    }

    #[test]
    fn a_failed_clip_lets_the_end_go_without_it() {
        let (messages, mut rx) = messages();
        messages.expect_clip(&incident("start", 20.0).payload);
        messages.end(incident("end", 24.0));
        assert!(next(&mut rx).is_none());
        messages.clip_done(ID, None);
        let end = next(&mut rx).unwrap();
        assert_eq!(end.state, IncidentState::End);
        assert!(end.evidence.is_none());
        assert_matches_schema(&end);
    }

    #[test]
    fn retention_deletes_the_expired_the_oldest_beyond_the_cap_and_the_abandoned() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let clips = [
            ("gate", "expired", now - 3 * day, 10),
            ("gate", "old", now - 2 * day / 3, 40),
            ("kerb", "middle", now - day / 3, 40),
            ("kerb", "new", now, 40),
        ];
        for (camera, name, modified, size) in clips {
            fs::create_dir_all(root.path().join(camera)).unwrap();
            let file =
                fs::File::create(root.path().join(camera).join(format!("{name}.mp4"))).unwrap();
            file.set_len(size).unwrap();
            file.set_modified(modified).unwrap();
        }
        fs::write(root.path().join("kerb/writing.mp4.part"), [0; 100]).unwrap();
        let abandoned = fs::File::create(root.path().join("gate/abandoned.mp4.part")).unwrap();
        abandoned.set_modified(now - ABANDONED_AFTER - Duration::from_secs(1)).unwrap();
        let retention = Retention { root: root.path().into(), max_age: 2 * day, max_bytes: 80 };
        retention.apply();
        let mut left: Vec<String> = retention
            .stored()
            .iter()
            .map(|c| c.path.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["middle", "new", "writing.mp4"], "a clip being written stays");
    }
}
