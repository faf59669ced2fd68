//! Ingest: a camera's video, decoded by GStreamer, handed on as [`Frame`]s.
//!
//! Each camera gets a pipeline built from its template (see [`crate::config::pipeline`]), which
//! ends in the analysis tail `videoconvert ! video/x-raw,format=I420 ! appsink`. Decoders
//! already produce I420, so the converter passes their buffers through, and a frame is read in
//! place (see [`crate::frame`] for why not BGR). Frames are thinned to the camera's `analysis_fps` by a probe before the
//! converter, so skipped frames cost only decoding.
//!
//! The appsink is the bounded channel between ingest and analysis. Live, it holds one frame and
//! the newest wins (`drop=true`): a slow analysis never builds a backlog or a growing delay.
//! Replaying a file, it blocks instead (`drop=false`), so every sampled frame is analysed.
//!
//! A live stream that fails, stalls or ends is reopened with exponential backoff (1 s doubling to
//! 30 s); each change is reported through [`CameraState`], and so is a change of frame size.
//! Stream time keeps counting across reconnects so rules that time things (dwell, cooldown) stay
//! consistent.
//!
//! An RTSP camera with `transport = "auto"` is asked for RTP over TCP first and, when it answers
//! `461 Unsupported transport`, over UDP at once; what worked is asked for first at the next
//! connection, for the life of the process. A server's error status (401, 404, 461, …) is
//! reported in an installer's words ([`IngestError::Rtsp`]); so is a stream that has no video
//! ([`IngestError::NoVideoTrack`]).
//!
//! For evidence clips a template may also name its still-encoded stream: a `tee name=encoded`
//! before the decoder, as the built-in `rtsp` and `file` templates have. When asked for it,
//! ingest taps the buffers entering that tee and hands each on as [`Encoded`], stamped with the
//! same stream time as the frames. The tap (a pad probe) only passes a reference into a bounded
//! channel the camera thread empties between frames, and drops rather than wait when it is full:
//! it never holds up decoding. Unlike a sink branch it sees every buffer, from the first, also
//! while the pipeline prerolls.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

mod record;
mod shared;
pub use record::{RecordProbe, StreamAnchor, probe_record, record};

use crate::config::pipeline::{CONVERT_NAME, ENCODED_NAME, METADATA_NAME, SINK_NAME};
use crate::config::{
    CameraConfig, Decode, Source, Transport, pipeline_description, record_description,
};
use crate::frame::{Colour, Frame, Metadata, Pixels, Plane};
use crate::stats::CameraStats;
use crate::wire::CameraState;

/// One buffer of a camera's encoded stream, as it came before the decoder: what clips are cut
/// from, without re-encoding.
#[derive(Debug)]
pub struct Encoded {
    pub data: Vec<u8>,
    /// Presentation and decoding time, in the stream time of [`Frame::stream_time_s`]; buffers
    /// that arrive before the session's first frame have times before it, possibly negative.
    pub pts_s: f64,
    pub dts_s: Option<f64>,
    /// Decodable on its own: a clip can start here.
    pub keyframe: bool,
    /// The stream's GStreamer caps, as text; buffers with the same caps share it.
    pub caps: Arc<str>,
    /// Buffers before this one were dropped (the camera thread fell behind): it does not
    /// continue what came before.
    pub follows_gap: bool,
}

/// How a stream is consumed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// A running camera: newest frame wins, reconnect on failure, file sources play in real
    /// time.
    Live,
    /// A file analysed once, as fast as the machine allows, every sampled frame kept; wall-clock
    /// times count from `start`.
    Replay { start: SystemTime },
}

/// Metadata buffers waiting for the next frame: many seconds of KLV at drones' 10-30 a second.
const METADATA_BACKLOG: usize = 256;
/// Encoded buffers waiting for the camera thread, which takes them between frames: seconds of
/// video even at 30 frames/s. Beyond that the camera thread is held up (its sink is full), and
/// newer buffers are dropped.
const ENCODED_BACKLOG: usize = 512;
/// A live stream that delivers nothing for this long is treated as failed.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_FIRST_S: u64 = 1;
const BACKOFF_MAX_S: u64 = 30;

/// Why a camera's stream could not be opened or stopped giving frames: what a replay, a probe
/// and a camera's thread report, and what a live camera's offline status says. Each message is
/// the text users have always seen; `check --probe` finds its installer's words in GStreamer's.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// GStreamer itself would not initialise (no plugin registry, typically).
    #[error("GStreamer failed to start: {0}")]
    Init(gst::glib::Error),
    /// The camera's pipeline template cannot be read or filled in; the config's own words.
    #[error("{0}")]
    Template(String),
    /// GStreamer made no pipeline of the description: it does not parse, or it names an
    /// element no installed plugin provides. GStreamer's message, kept as text: it may quote the
    /// URL, and is redacted like one.
    #[error("cannot build the pipeline: {0}")]
    Build(String),
    /// The description made an element, not a pipeline.
    #[error("the pipeline template did not make a pipeline")]
    NotAPipeline,
    /// An element of the analysis tail is not where ingest looks for it.
    #[error("the pipeline has no {0}")]
    MissingElement(&'static str),
    /// An element of the analysis tail lacks the pad ingest samples frames on.
    #[error("{element} has no {pad} pad")]
    MissingPad { element: &'static str, pad: &'static str },
    /// The pipeline refused to play without saying why on its bus.
    #[error("the pipeline would not start")]
    NotStarted,
    /// An element posted an error: the camera refused, a decoder is missing, the file is no
    /// video. `message` may quote the URL (redacted like one); `debug` is GStreamer's detail,
    /// logged at debug level and not part of the message.
    #[error("{element}: {message}")]
    Stream { element: String, message: String, debug: Option<String> },
    /// A live stream delivered nothing for [`STALL_TIMEOUT`].
    #[error("no frames for {} s", STALL_TIMEOUT.as_secs())]
    Stalled,
    /// A decoded frame could not be read.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A replay was stopped before the end of its file.
    #[error("stopped")]
    Stopped,
    /// A probe's stream ended without a single frame.
    #[error("the stream ended before its first frame")]
    EndedBeforeFirstFrame,
    /// The RTSP server answered with an error status (401, 404, 461, …): said in an installer's
    /// words, then GStreamer's own message. `transport` is what was asked for.
    #[error("{} ({element}: {message})", rtsp_words(*status, *transport))]
    Rtsp {
        status: u16,
        transport: Option<Transport>,
        element: String,
        message: String,
        debug: Option<String>,
    },
    /// The stream's demuxer or server found tracks, none of them video: `found` names them.
    #[error("no video track: the stream holds only {found}")]
    NoVideoTrack { found: String },
}

/// What an RTSP error status means to the installer, and what to do about it.
fn rtsp_words(status: u16, transport: Option<Transport>) -> String {
    let (other, other_key) = match transport {
        Some(Transport::Udp) => ("UDP", "tcp"),
        _ => ("TCP", "udp"),
    };
    match status {
        400 => "400 bad request: the camera does not understand the request; check the URL's \
                path and query against the camera's manual"
            .into(),
        401 => "401 unauthorized: check the user and password in the camera's URL".into(),
        403 => "403 forbidden: this user may not watch the stream; check its rights on the camera"
            .into(),
        404 => "404 not found: the camera has no stream at this path; check the URL's path \
                (the stream's name)"
            .into(),
        454 => "454 session not found: the camera dropped the session (it restarted, or serves \
                too many clients)"
            .into(),
        461 => format!(
            "461 unsupported transport: the camera does not send RTP over {other}; set \
             transport = \"{other_key}\" or \"auto\""
        ),
        503 => "503 service unavailable: the camera is busy (too many clients?)".into(),
        other => format!("RTSP {other}: the camera refused the request"),
    }
}

/// The RTSP status a GStreamer text quotes, as rtspsrc writes them: `Error (461): Unsupported
/// transport`, `Not Found (404)`. Only error statuses count.
fn quoted_rtsp_status(text: &str) -> Option<u16> {
    text.match_indices('(').find_map(|(i, _)| {
        let code = text.get(i + 1..i + 4)?;
        let status: u16 = code.parse().ok()?;
        (text.get(i + 4..i + 5) == Some(")") && (400..600).contains(&status)).then_some(status)
    })
}

impl IngestError {
    /// The error with the camera's secret taken out of the texts that may quote its URL.
    fn redacted(self, url: &Source) -> IngestError {
        match self {
            IngestError::Template(text) => IngestError::Template(url.redact(&text)),
            IngestError::Build(text) => IngestError::Build(url.redact(&text)),
            IngestError::Stream { element, message, debug } => IngestError::Stream {
                element: url.redact(&element),
                message: url.redact(&message),
                debug: debug.map(|d| url.redact(&d)),
            },
            IngestError::Rtsp { status, transport, element, message, debug } => IngestError::Rtsp {
                status,
                transport,
                element: url.redact(&element),
                message: url.redact(&message),
                debug: debug.map(|d| url.redact(&d)),
            },
            other => other,
        }
    }
}

/// Why a decoded sample is not a frame: the analysis tail asks for I420, and this is not what
/// came.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame without caps")]
    NoCaps,
    #[error("unusable frame caps: {0}")]
    Caps(gst::glib::BoolError),
    #[error("a sample without a buffer")]
    NoBuffer,
    #[error("a frame without three planes")]
    NotThreePlanes,
    #[error("a frame of {size} bytes is too short for {width}x{height} I420")]
    TooShort { size: usize, width: usize, height: usize },
    #[error("cannot map a frame")]
    Unmappable,
}

/// Runs a camera's stream until `stop` is set (live) or the file ends (replay), calling `frame`
/// for every sampled frame and `state` for every change of connection state; `stats` counts
/// the frames decoded and sampled. With `encoded`, every buffer of the stream before
/// decoding goes there too, when the camera's template exposes it. Live streams are reopened
/// forever; a replay returns its failure as an error.
pub fn run(
    camera: &CameraConfig,
    mode: Mode,
    stop: &AtomicBool,
    stats: &Arc<CameraStats>,
    state: &mut dyn FnMut(CameraState),
    frame: &mut dyn FnMut(Frame),
    mut encoded: Option<&mut dyn FnMut(Encoded)>,
) -> Result<(), IngestError> {
    init_gstreamer()?;
    let alive = || stats.mark_alive();
    let mut clock = StreamClock::new(mode);
    let mut backoff_s = BACKOFF_FIRST_S;
    let mut told_no_encoded = false;
    while !stop.load(Ordering::Relaxed) {
        state(CameraState::Connecting);
        let attempts = transports(camera);
        let mut outcome = Ok(false);
        for (i, &transport) in attempts.iter().enumerate() {
            clock.frames_since_open = 0;
            outcome =
                Session::open(camera, transport, mode, stats, encoded.is_some()).and_then(|s| {
                    if encoded.is_some() && s.encoded.is_none() && !told_no_encoded {
                        told_no_encoded = true;
                        tracing::info!(
                            camera = %camera.id,
                            "no clips: the pipeline template exposes no `{ENCODED_NAME}` stream"
                        );
                    }
                    s.pump(stop, &mut clock, &alive, state, frame, &mut encoded)
                });
            if clock.frames_since_open > 0 {
                remember_transport(camera, transport);
            }
            match (&outcome, attempts.get(i + 1)) {
                (Err(IngestError::Rtsp { status: 461, .. }), Some(Some(next)))
                    if clock.frames_since_open == 0 =>
                {
                    tracing::info!(
                        camera = %camera.id,
                        "the camera refuses RTP over {}: asking for {}",
                        transport.map_or("", Transport::protocols),
                        next.protocols()
                    );
                }
                _ => break,
            }
        }
        let reason = match (outcome, mode) {
            (Ok(ended), Mode::Replay { .. }) => {
                return if ended { Ok(()) } else { Err(IngestError::Stopped) };
            }
            (Err(error), Mode::Replay { .. }) => return Err(error.redacted(&camera.url)),
            (Ok(_), Mode::Live) if stop.load(Ordering::Relaxed) => break,
            (Ok(_), Mode::Live) => "end of stream".to_string(),
            (Err(error), Mode::Live) => error.redacted(&camera.url).to_string(),
        };
        if clock.frames_since_open > 0 {
            backoff_s = BACKOFF_FIRST_S;
        }
        state(CameraState::Offline { reason, retry_in_s: backoff_s });
        sleep_unless_stopped(Duration::from_secs(backoff_s), stop, &alive);
        backoff_s = (backoff_s * 2).min(BACKOFF_MAX_S);
    }
    Ok(())
}

/// A patrolled camera's stream, opened for one visit at a time. Stream time keeps counting
/// across visits, the wall-clock time between them included, so a parked car's dwell spans them.
pub struct Visits {
    clock: StreamClock,
}

impl Default for Visits {
    fn default() -> Self {
        Visits { clock: StreamClock::new(Mode::Live) }
    }
}

impl Visits {
    /// Opens the stream, hands on `visit_s` seconds of its frames (from the first) as [`run`]
    /// does, and closes it; stops early when `stop` is set. Returns how many frames came. Fails
    /// at once, without retrying, when the stream cannot be opened or fails: the patrol tries
    /// again at the camera's next turn.
    #[allow(clippy::too_many_arguments)]
    pub fn visit(
        &mut self,
        camera: &CameraConfig,
        visit_s: f64,
        stop: &AtomicBool,
        stats: &Arc<CameraStats>,
        state: &mut dyn FnMut(CameraState),
        frame: &mut dyn FnMut(Frame),
        encoded: &mut Option<&mut dyn FnMut(Encoded)>,
    ) -> Result<u64, IngestError> {
        init_gstreamer()?;
        let over = AtomicBool::new(false);
        let alive = || {
            stats.mark_alive();
            if stop.load(Ordering::Relaxed) {
                over.store(true, Ordering::Relaxed);
            }
        };
        let mut first = None;
        let mut on_frame = |f: Frame| {
            let t0 = *first.get_or_insert(f.stream_time_s);
            if f.stream_time_s - t0 >= visit_s {
                over.store(true, Ordering::Relaxed);
            }
            frame(f);
        };
        state(CameraState::Connecting);
        self.clock.frames_since_open = 0;
        let transport = transports(camera)[0];
        let session = Session::open(camera, transport, Mode::Live, stats, encoded.is_some());
        let pumped = session
            .and_then(|s| s.pump(&over, &mut self.clock, &alive, state, &mut on_frame, encoded));
        let frames = self.clock.frames_since_open;
        match pumped {
            Ok(_) if frames > 0 || stop.load(Ordering::Relaxed) => Ok(frames),
            Ok(_) => Err(IngestError::EndedBeforeFirstFrame),
            Err(error) => Err(error.redacted(&camera.url)),
        }
    }
}

/// What worked for each RTSP camera with `transport = "auto"`, by camera id and URL (without
/// its password), for the life of the process: the next connection asks for it first, also
/// when a reloaded config restarts the camera.
static WORKED: Mutex<BTreeMap<(String, String), Transport>> = Mutex::new(BTreeMap::new());

/// The transports to ask for, in order: one for a fixed `transport`, both for `auto` (what
/// worked last first), none to choose for a camera that is not RTSP (`[None]`).
fn transports(camera: &CameraConfig) -> Vec<Option<Transport>> {
    if !matches!(camera.url, Source::Rtsp { .. }) {
        return vec![None];
    }
    let key = (camera.id.clone(), camera.url.masked());
    let worked = WORKED.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied();
    camera.transport.unwrap_or_default().attempts(worked).into_iter().map(Some).collect()
}

fn remember_transport(camera: &CameraConfig, transport: Option<Transport>) {
    if let (Some(transport), None | Some(Transport::Auto)) = (transport, camera.transport) {
        let key = (camera.id.clone(), camera.url.masked());
        WORKED.lock().unwrap_or_else(|e| e.into_inner()).insert(key, transport);
    }
}

/// Opens a camera's stream once and returns its first frame: for probing a camera and for
/// benchmarks. Fails like a replay does: at once, without retrying.
pub fn first_frame(camera: &CameraConfig) -> Result<Frame, IngestError> {
    probe(camera).map(|p| p.frame)
}

/// What a camera's stream turned out to be when opened once.
pub struct Probe {
    pub frame: Frame,
    /// The encoded stream's media type (`video/x-h264`), when the template exposes it.
    pub codec: Option<String>,
    /// Frames a second, from the timestamps of the first second of frames.
    pub fps: Option<f64>,
    /// From opening the stream to its first decoded frame.
    pub first_frame_after: Duration,
}

/// Opens a camera's stream once, like a replay (at once, without retrying), and watches it for
/// about a second.
pub fn probe(camera: &CameraConfig) -> Result<Probe, IngestError> {
    const WATCH_S: f64 = 1.0;
    // Every frame up to 60 a second, so that their timestamps tell the stream's rate.
    let camera = CameraConfig { analysis_fps: 60.0, ..camera.clone() };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut first = None::<(Frame, Duration)>;
    let (mut last_s, mut frames) = (0.0, 0u32);
    let mut codec = None;
    let outcome = run(
        &camera,
        Mode::Replay { start: SystemTime::now() },
        &stop,
        &Arc::default(),
        &mut |_| {},
        &mut |frame| {
            let t = frame.stream_time_s;
            let (first_frame, _) = first.get_or_insert_with(|| (frame, started.elapsed()));
            (last_s, frames) = (t, frames + 1);
            if t - first_frame.stream_time_s >= WATCH_S {
                stop.store(true, Ordering::Relaxed);
            }
        },
        Some(&mut |buffer: Encoded| {
            let media = buffer.caps.split(',').next().unwrap_or_default().to_string();
            codec.get_or_insert(media);
        }),
    );
    let Some((frame, first_frame_after)) = first else {
        return Err(match outcome {
            Err(e) => e,
            Ok(()) => IngestError::EndedBeforeFirstFrame,
        });
    };
    let span = last_s - frame.stream_time_s;
    let fps = (frames > 1 && span > 0.0).then(|| f64::from(frames - 1) / span);
    Ok(Probe { frame, codec, fps, first_frame_after })
}

/// Builds a camera's pipeline without starting it (nothing is opened or connected): for
/// `check`, which reports a template that is not a GStreamer pipeline. The camera's secret is
/// taken out of GStreamer's words.
pub fn parse_pipeline(camera: &CameraConfig) -> Result<(), IngestError> {
    init_gstreamer()?;
    let description = pipeline_description(camera, false).map_err(IngestError::Template);
    description.and_then(|d| build(&d)).map(drop).map_err(|e| e.redacted(&camera.url))
}

/// As [`parse_pipeline`], for the camera's record stream; `None` without one.
pub fn parse_record_pipeline(camera: &CameraConfig) -> Option<Result<(), IngestError>> {
    let source = camera.record_url.as_ref()?;
    let description = record_description(camera, false)?.map_err(IngestError::Template);
    let built = init_gstreamer().and_then(|()| description.and_then(|d| build(&d)));
    Some(built.map(drop).map_err(|e| e.redacted(source)))
}

pub(crate) fn init_gstreamer() -> Result<(), IngestError> {
    // The first outcome is kept: GStreamer is initialised once per process.
    static INIT: Mutex<Option<Result<(), gst::glib::Error>>> = Mutex::new(None);
    let mut done = INIT.lock().unwrap_or_else(|e| e.into_inner());
    done.get_or_insert_with(gst::init).clone().map_err(IngestError::Init)
}

fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool, alive: &dyn Fn()) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        alive();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stream time that keeps counting across reconnects: a new connection starts where the last
/// frame left off, plus the wall-clock time the camera was away.
struct StreamClock {
    mode: Mode,
    session_first_pts: Option<gst::ClockTime>,
    session_offset_s: f64,
    last: Option<(f64, Instant)>,
    frames_since_open: u64,
}

impl StreamClock {
    fn new(mode: Mode) -> Self {
        StreamClock {
            mode,
            session_first_pts: None,
            session_offset_s: 0.0,
            last: None,
            frames_since_open: 0,
        }
    }

    fn new_session(&mut self) {
        self.session_first_pts = None;
        self.frames_since_open = 0;
        self.session_offset_s = self.last.map_or(0.0, |(t, at)| t + at.elapsed().as_secs_f64());
    }

    /// Stream time of a timestamp of this session, once its first frame has fixed the origin.
    fn time_of(&self, ts: gst::ClockTime) -> Option<f64> {
        let first = self.session_first_pts?;
        Some(self.session_offset_s + (ts.nseconds() as f64 - first.nseconds() as f64) / 1e9)
    }

    /// Stream time and wall-clock time of a frame with this timestamp.
    fn stamp(&mut self, pts: Option<gst::ClockTime>) -> (f64, SystemTime) {
        let pts = pts.unwrap_or(gst::ClockTime::ZERO);
        let first = *self.session_first_pts.get_or_insert(pts);
        let t = self.session_offset_s + pts.saturating_sub(first).nseconds() as f64 / 1e9;
        self.last = Some((t, Instant::now()));
        self.frames_since_open += 1;
        let at = match self.mode {
            Mode::Live => SystemTime::now(),
            Mode::Replay { start } => start + Duration::from_secs_f64(t),
        };
        (t, at)
    }
}

/// One opened pipeline.
struct Session {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    live: bool,
    /// Shared with the probe that samples frames: tells which of them never reached analysis.
    sampler: Arc<Mutex<Sampler>>,
    stats: Arc<CameraStats>,
    /// The encoded stream's buffers, when asked for and the template exposes it.
    encoded: Option<mpsc::Receiver<Tapped>>,
    /// The metadata buffers, when the template has an element named `klv`.
    metadata: Option<mpsc::Receiver<gst::Buffer>>,
    /// The RTSP transport asked for, when chosen.
    transport: Option<Transport>,
    /// The kinds of track the pipeline's sources and demuxers found.
    tracks: Arc<Mutex<Tracks>>,
    /// Where the camera's key frames arrive decoded, when a shared decoder decodes them
    /// ([`shared`]); else the appsink has the frames.
    shared: Option<shared::SharedFrames>,
}

impl Session {
    fn open(
        camera: &CameraConfig,
        transport: Option<Transport>,
        mode: Mode,
        stats: &Arc<CameraStats>,
        want_encoded: bool,
    ) -> Result<Session, IngestError> {
        let camera = &CameraConfig { transport: transport.or(camera.transport), ..camera.clone() };
        let live = mode == Mode::Live;
        // A live key-frame camera's key frames go to a decoder shared with other cameras, when
        // its template shows the stream before decoding; else the camera decodes them itself.
        let keyframes = (live && camera.decode == Decode::Keyframes)
            .then(|| shared::description(camera))
            .flatten();
        let sharing = keyframes.is_some();
        let description = match keyframes {
            Some(description) => description,
            None => pipeline_description(camera, false).map_err(IngestError::Template)?,
        };
        let pipeline = build(&description)?;
        single_threaded_decoders(&pipeline);
        let gate = KeyframeGate::new(camera, stats);
        let tracks = watch_tracks(&pipeline);
        let sink = pipeline
            .by_name(SINK_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or(IngestError::MissingElement("appsink"))?;
        sink.set_max_buffers(1);
        sink.set_drop(live);
        // A file camera plays in real time, like the camera it stands in for.
        sink.set_sync(live && !camera.url.is_live());
        let sampler = Arc::new(Mutex::new(Sampler::new(camera.analysis_fps)));
        let shared = if sharing {
            let pad = sink
                .static_pad("sink")
                .ok_or(IngestError::MissingPad { element: "appsink", pad: "sink" })?;
            sample_before_decoding(&pad, gate, &sampler, stats);
            Some(shared::SharedFrames::start(&sink, camera))
        } else {
            if let Some(gate) = gate {
                KeyframeGate::before_decoders(&pipeline, gate);
            }
            let pad = pipeline
                .by_name(CONVERT_NAME)
                .ok_or(IngestError::MissingElement("videoconvert"))?
                .static_pad("sink")
                .ok_or(IngestError::MissingPad { element: "videoconvert", pad: "sink" })?;
            sample_decoded(&pad, &sampler, stats);
            None
        };
        let encoded = if want_encoded { tap_encoded(&pipeline) } else { None };
        let metadata = tap_metadata(&pipeline);
        let stats = stats.clone();
        let session = Session {
            pipeline,
            sink,
            live,
            sampler,
            stats,
            encoded,
            metadata,
            transport,
            tracks,
            shared,
        };
        session
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| session.bus_error().unwrap_or(IngestError::NotStarted))?;
        Ok(session)
    }

    /// Pulls frames until the stream ends (`Ok(true)`), `stop` is set (`Ok(false)`) or it
    /// fails.
    fn pump(
        &self,
        stop: &AtomicBool,
        clock: &mut StreamClock,
        alive: &dyn Fn(),
        state: &mut dyn FnMut(CameraState),
        frame: &mut dyn FnMut(Frame),
        encoded: &mut Option<&mut dyn FnMut(Encoded)>,
    ) -> Result<bool, IngestError> {
        clock.new_session();
        let mut last_frame = Instant::now();
        let mut caps = CapsText::default();
        // The frame size last reported online: a change is reported again.
        let mut size = None;
        while !stop.load(Ordering::Relaxed) {
            alive();
            if let (Some(receiver), Some(encoded)) = (&self.encoded, encoded.as_deref_mut()) {
                drain_encoded(receiver, clock, &mut caps, encoded);
            }
            if let Some(error) = self.bus_error() {
                if let (Some(shared), 0) = (&self.shared, clock.frames_since_open) {
                    shared.failed_before_first_frame(&error);
                }
                return Err(self.without_video(clock).unwrap_or(error));
            }
            let next = match &self.shared {
                Some(shared) => shared.take(Duration::from_millis(100)),
                None => self.sink.try_pull_sample(gst::ClockTime::from_mseconds(100)),
            };
            match next {
                Some(sample) => {
                    last_frame = Instant::now();
                    if self.shared.is_some() {
                        self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
                    }
                    let pts = sample.buffer().and_then(|b| b.pts());
                    let dropped =
                        self.sampler.lock().unwrap_or_else(|e| e.into_inner()).pulled(pts);
                    self.stats.frames_dropped.fetch_add(dropped, Ordering::Relaxed);
                    let mut f = to_frame(&sample, clock)?;
                    if let Some(receiver) = &self.metadata {
                        f.metadata =
                            receiver.try_iter().map(|b| to_metadata(&b, clock, &f)).collect();
                    }
                    if size != Some((f.width, f.height)) {
                        size = Some((f.width, f.height));
                        state(CameraState::Online { width: f.width, height: f.height });
                    }
                    // The encoded stream up to this frame goes first, so that an incident
                    // found on it (the first after a reconnect too) finds its video there.
                    if let (Some(receiver), Some(encoded)) = (&self.encoded, encoded.as_deref_mut())
                    {
                        drain_encoded(receiver, clock, &mut caps, encoded);
                    }
                    frame(f);
                }
                None if self.sink.is_eos() => {
                    return match self.without_video(clock) {
                        Some(error) => Err(error),
                        None => Ok(true),
                    };
                }
                None if last_frame.elapsed() > STALL_TIMEOUT => return Err(IngestError::Stalled),
                None => {}
            }
        }
        Ok(false)
    }

    /// The pipeline's error, if one was posted; an RTSP server's error status is told as such
    /// ([`IngestError::Rtsp`]).
    fn bus_error(&self) -> Option<IngestError> {
        bus_error(&self.pipeline, self.transport)
    }

    /// [`IngestError::NoVideoTrack`] when the stream gave no frame and its tracks, found,
    /// hold no video.
    fn without_video(&self, clock: &StreamClock) -> Option<IngestError> {
        if clock.frames_since_open > 0 {
            return None;
        }
        let tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        (!tracks.video && !tracks.other.is_empty()).then(|| IngestError::NoVideoTrack {
            found: tracks.other.iter().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

/// The pipeline's error, if one was posted; an RTSP server's error status is told as such
/// ([`IngestError::Rtsp`]). `transport` is the RTSP transport asked for, when chosen.
fn bus_error(pipeline: &gst::Pipeline, transport: Option<Transport>) -> Option<IngestError> {
    let bus = pipeline.bus()?;
    let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
    let gst::MessageView::Error(e) = msg.view() else { return None };
    let element = e.src().map(|s| s.name().to_string()).unwrap_or_default();
    let detail = e.debug().map(|d| d.to_string());
    tracing::debug!(element = %element, debug = ?detail, "GStreamer error");
    let message = e.error().to_string();
    if !e.src().is_some_and(is_rtspsrc) {
        return Some(IngestError::Stream { element, message, debug: detail });
    }
    // DESCRIBE's statuses come in the error's details, SETUP's and PLAY's in its debug
    // text. A SETUP answered 461 is not posted at all: rtspsrc 1.22 skips the stream, and
    // with every stream skipped says only that it found no supported stream (a "codec not
    // found" error), which, with one transport asked for, means the server refused it.
    let status = e
        .details()
        .and_then(|d| d.get::<u32>("rtsp-status-code").ok())
        .and_then(|code| u16::try_from(code).ok())
        .or_else(|| detail.as_deref().and_then(quoted_rtsp_status))
        .or_else(|| {
            let refused = transport.is_some() && e.error().matches(gst::StreamError::CodecNotFound);
            refused.then_some(461)
        });
    Some(match status {
        Some(status) => IngestError::Rtsp { status, transport, element, message, debug: detail },
        None => IngestError::Stream { element, message, debug: detail },
    })
}

fn is_rtspsrc(object: &gst::Object) -> bool {
    object
        .downcast_ref::<gst::Element>()
        .and_then(|e| e.factory())
        .is_some_and(|f| f.name() == "rtspsrc")
}

/// The kinds of track a pipeline's sources and demuxers offered, as their new pads' caps tell.
#[derive(Default)]
struct Tracks {
    video: bool,
    /// The media types of the others (`audio/mpeg`; `audio` for an RTP stream).
    other: BTreeSet<String>,
}

/// Watches every pad the pipeline's elements add (demuxers, parsebin, rtspsrc) for the kind of
/// track it carries.
fn watch_tracks(pipeline: &gst::Pipeline) -> Arc<Mutex<Tracks>> {
    let tracks = Arc::new(Mutex::new(Tracks::default()));
    let watch = {
        let tracks = tracks.clone();
        move |element: &gst::Element| {
            let tracks = tracks.clone();
            element.connect_pad_added(move |_, pad| {
                let Some(media) = media_of(pad) else { return };
                let mut tracks = tracks.lock().unwrap_or_else(|e| e.into_inner());
                match media.as_str() {
                    m if m == "video" || m.starts_with("video/") || m.starts_with("image/") => {
                        tracks.video = true
                    }
                    // A decoder's output: the same track again.
                    m if m.ends_with("/x-raw") => {}
                    _ => {
                        tracks.other.insert(media);
                    }
                }
            });
        }
    };
    // Those made with the pipeline, then those made inside bins as the stream is found.
    for element in pipeline.iterate_recurse().into_iter().flatten() {
        watch(&element);
    }
    pipeline.connect_deep_element_added(move |_, _, element| watch(element));
    tracks
}

/// The media type a pad's fixed caps name; for RTP, its `media` (`video`, `audio`).
fn media_of(pad: &gst::Pad) -> Option<String> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let structure = caps.structure(0).filter(|_| caps.is_fixed())?;
    match structure.name().as_str() {
        "application/x-rtp" => structure.get::<&str>("media").ok().map(str::to_string),
        name => Some(name.to_string()),
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        tear_down(&self.pipeline, self.live);
    }
}

/// Stops a pipeline; a live one on a thread of its own. Tearing down a stream whose connection
/// died can block inside rtspsrc (it waits for a TEARDOWN reply that never comes): the camera
/// must not wait for it to report and retry.
fn tear_down(pipeline: &gst::Pipeline, live: bool) {
    if live {
        let pipeline = pipeline.clone();
        let spawned = std::thread::Builder::new()
            .name("pipeline-teardown".into())
            .spawn(move || pipeline.set_state(gst::State::Null));
        if spawned.is_ok() {
            return;
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
}

/// The pipeline a description makes.
fn build(description: &str) -> Result<gst::Pipeline, IngestError> {
    gst::parse::launch(description)
        .map_err(|e| IngestError::Build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| IngestError::NotAPipeline)
}

/// A buffer of the encoded stream on its way to the camera thread.
struct Tapped {
    buffer: gst::Buffer,
    caps: gst::Caps,
    follows_gap: bool,
}

/// Taps the buffers entering the template's `encoded` element; returns where they arrive.
fn tap_encoded(pipeline: &gst::Pipeline) -> Option<mpsc::Receiver<Tapped>> {
    let pad = pipeline.by_name(ENCODED_NAME)?.static_pad("sink")?;
    let (tx, rx) = mpsc::sync_channel(ENCODED_BACKLOG);
    let gap = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let (Some(buffer), Some(caps)) = (info.buffer(), pad.current_caps()) {
            let follows_gap = gap.swap(false, Ordering::Relaxed);
            let tapped = Tapped { buffer: buffer.clone(), caps, follows_gap };
            // Full: the camera thread is held up; drop rather than wait or pile up.
            if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(tapped) {
                gap.store(true, Ordering::Relaxed);
            }
        }
        gst::PadProbeReturn::Ok
    });
    Some(rx)
}

/// Thins the decoded frames reaching `pad` (the converter's, after the camera's decoder) to the
/// camera's analysis rate; counts them decoded.
fn sample_decoded(pad: &gst::Pad, sampler: &Arc<Mutex<Sampler>>, stats: &Arc<CameraStats>) {
    let (sampler, stats) = (sampler.clone(), stats.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
        stats.frames_in.fetch_add(1, Ordering::Relaxed);
        // `Handled` lets gst-rs release the skipped buffer; `Drop` would make GStreamer
        // release it a second time.
        match lock(&sampler).keep(buffer.pts()) {
            true => gst::PadProbeReturn::Ok,
            false => gst::PadProbeReturn::Handled,
        }
    });
}

/// Gates and thins the still-encoded frames reaching `pad` (the appsink that hands key frames to
/// a shared decoder): what neither keeps is never decoded, and counts as skipped. Decoded
/// frames are counted as they come back.
fn sample_before_decoding(
    pad: &gst::Pad,
    gate: Option<Arc<Mutex<KeyframeGate>>>,
    sampler: &Arc<Mutex<Sampler>>,
    stats: &Arc<CameraStats>,
) {
    let (sampler, stats) = (sampler.clone(), stats.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
        if gate.as_ref().is_some_and(|gate| !lock(gate).passes(buffer)) {
            return gst::PadProbeReturn::Handled;
        }
        if lock(&sampler).keep(buffer.pts()) {
            return gst::PadProbeReturn::Ok;
        }
        stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Handled
    });
}

/// The value behind a mutex a panicking thread may have left locked: what it holds is still
/// whole here (counters and timestamps).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One decoding thread per camera. A box serves many cameras, which keep its cores busy between
/// them; FFmpeg's frame threads would only add a frame pool and a frame of delay to each (at
/// 720p: 10 MB less and 15 % less decoding CPU per camera, measured).
pub fn single_threaded_decoders(pipeline: &gst::Pipeline) {
    pipeline.connect_deep_element_added(|_, _, element| {
        let ffmpeg = element.factory().is_some_and(|f| f.name().starts_with("avdec_"));
        if ffmpeg && element.has_property("max-threads") {
            element.set_property("max-threads", 1i32);
        }
    });
}

/// Drops a camera's delta frames before its decoder when it decodes key frames only (`decode =
/// "keyframes"`, or `auto` once the key-frame rate it measures serves every algorithm of the
/// camera); counts what it drops. One per session: `auto` measures each stream it opens.
struct KeyframeGate {
    camera: String,
    mode: Decode,
    /// The most frames a second an algorithm of the camera needs, and which one.
    needed: Option<(f64, &'static str)>,
    stats: Arc<CameraStats>,
    /// Timestamps of the first key frames, until the rate is known.
    keys: Vec<gst::ClockTime>,
    measured: bool,
}

/// Key frames whose timestamps tell the key-frame rate: two intervals, so that a stream's
/// first, often early, key frame alone does not decide.
const KEYFRAMES_MEASURED: usize = 3;

impl KeyframeGate {
    /// The camera's gate; `None` for a camera that decodes every frame.
    fn new(camera: &CameraConfig, stats: &Arc<CameraStats>) -> Option<Arc<Mutex<KeyframeGate>>> {
        stats.keyframes_only.store(camera.decode == Decode::Keyframes, Ordering::Relaxed);
        (camera.decode != Decode::All).then(|| {
            Arc::new(Mutex::new(KeyframeGate {
                camera: camera.id.clone(),
                mode: camera.decode,
                needed: camera.needed_fps(),
                stats: stats.clone(),
                keys: Vec::with_capacity(KEYFRAMES_MEASURED),
                measured: false,
            }))
        })
    }

    /// Puts the gate in front of every video decoder the pipeline makes (decodebin makes them
    /// as it finds the stream).
    fn before_decoders(pipeline: &gst::Pipeline, gate: Arc<Mutex<KeyframeGate>>) {
        pipeline.connect_deep_element_added(move |_, _, element| {
            let decoder = element.factory().is_some_and(|f| {
                let klass = f.klass();
                klass.contains("Decoder") && klass.contains("Video")
            });
            let Some(pad) = element.static_pad("sink").filter(|_| decoder) else { return };
            let gate = gate.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
                // `Handled`, as for the sampler's skipped frames: gst-rs releases the buffer.
                match lock(&gate).passes(buffer) {
                    true => gst::PadProbeReturn::Ok,
                    false => gst::PadProbeReturn::Handled,
                }
            });
        });
    }

    /// Whether the buffer goes on to the decoder.
    fn passes(&mut self, buffer: &gst::BufferRef) -> bool {
        self.pass(buffer.flags().contains(gst::BufferFlags::DELTA_UNIT), buffer.pts())
    }

    /// Whether a buffer, a delta frame or not, goes on to the decoder.
    fn pass(&mut self, delta: bool, pts: Option<gst::ClockTime>) -> bool {
        if !delta {
            if let Some(pts) = pts.filter(|_| !self.measured) {
                self.keys.push(pts);
                if self.keys.len() == KEYFRAMES_MEASURED {
                    self.decide();
                }
            }
            return true;
        }
        let dropping = self.stats.keyframes_only.load(Ordering::Relaxed);
        if dropping {
            self.stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
        }
        !dropping
    }

    /// The key-frame rate is measured: `auto` settles on key frames only if it serves every
    /// algorithm, `keyframes` warns if it does not.
    fn decide(&mut self) {
        self.measured = true;
        let (first, last) = (self.keys[0], self.keys[KEYFRAMES_MEASURED - 1]);
        let span_s = last.saturating_sub(first).nseconds() as f64 / 1e9;
        if span_s <= 0.0 {
            return;
        }
        let rate = (KEYFRAMES_MEASURED - 1) as f64 / span_s;
        let serves = self.needed.is_none_or(|(fps, _)| rate >= fps);
        let (needs, algorithm) = self.needed.unwrap_or((0.0, "no algorithm"));
        let camera = &self.camera;
        match (self.mode, serves) {
            (Decode::Auto, true) => {
                self.stats.keyframes_only.store(true, Ordering::Relaxed);
                tracing::info!(
                    camera,
                    "decode auto: key frames every {:.1} s serve every algorithm ({algorithm} \
                     needs {needs} frames/s): decoding key frames only",
                    1.0 / rate
                );
            }
            (Decode::Auto, false) => tracing::info!(
                camera,
                "decode auto: key frames every {:.1} s are too few for {algorithm} ({needs} \
                 frames/s): decoding every frame",
                1.0 / rate
            ),
            (_, false) => tracing::warn!(
                camera,
                "decode keyframes: key frames come every {:.1} s, but {algorithm} needs {needs} \
                 frames/s; set decode = \"all\" or \"auto\", or a shorter key-frame interval on \
                 the camera",
                1.0 / rate
            ),
            _ => {}
        }
    }
}

/// Taps the buffers entering the template's `klv` element; returns where they arrive.
fn tap_metadata(pipeline: &gst::Pipeline) -> Option<mpsc::Receiver<gst::Buffer>> {
    let pad = pipeline.by_name(METADATA_NAME)?.static_pad("sink")?;
    let (tx, rx) = mpsc::sync_channel(METADATA_BACKLOG);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            // Full: no frame has come for a long while; drop rather than hold up the demuxer.
            let _ = tx.try_send(buffer.clone());
        }
        gst::PadProbeReturn::Ok
    });
    Some(rx)
}

fn to_metadata(buffer: &gst::Buffer, clock: &StreamClock, frame: &Frame) -> Metadata {
    let pts_s = buffer.pts().and_then(|pts| clock.time_of(pts)).unwrap_or(frame.stream_time_s);
    let data = buffer.map_readable().map(|m| m.to_vec()).unwrap_or_default();
    Metadata { pts_s, data }
}

/// Hands on the encoded buffers that arrived so far. They wait until the session's first frame
/// has fixed its stream time.
fn drain_encoded(
    receiver: &mpsc::Receiver<Tapped>,
    clock: &StreamClock,
    caps: &mut CapsText,
    encoded: &mut dyn FnMut(Encoded),
) {
    if clock.session_first_pts.is_none() {
        return;
    }
    for tapped in receiver.try_iter() {
        if let Some(buffer) = to_encoded(&tapped, clock, caps) {
            encoded(buffer);
        }
    }
}

fn to_encoded(tapped: &Tapped, clock: &StreamClock, caps: &mut CapsText) -> Option<Encoded> {
    let buffer = &tapped.buffer;
    let pts = buffer.pts().or(buffer.dts())?;
    Some(Encoded {
        data: buffer.map_readable().ok()?.to_vec(),
        pts_s: clock.time_of(pts)?,
        dts_s: buffer.dts().and_then(|dts| clock.time_of(dts)),
        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        caps: caps.text(&tapped.caps),
        follows_gap: tapped.follows_gap,
    })
}

/// The text of the stream's caps, made once per change rather than once per buffer.
#[derive(Default)]
struct CapsText(Option<(gst::Caps, Arc<str>)>);

impl CapsText {
    fn text(&mut self, caps: &gst::Caps) -> Arc<str> {
        match &self.0 {
            Some((known, text)) if known == caps => text.clone(),
            _ => {
                let text: Arc<str> = caps.to_string().into();
                self.0 = Some((caps.clone(), text.clone()));
                text
            }
        }
    }
}

fn to_frame(sample: &gst::Sample, clock: &mut StreamClock) -> Result<Frame, FrameError> {
    let caps = sample.caps().ok_or(FrameError::NoCaps)?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(FrameError::Caps)?;
    let buffer = sample.buffer_owned().ok_or(FrameError::NoBuffer)?;
    let (width, height) = (info.width() as usize, info.height() as usize);
    let (stream_time_s, captured_at) = clock.stamp(buffer.pts());
    let data = i420_pixels(buffer, &info)?;
    Ok(Frame { width, height, data, stream_time_s, captured_at, metadata: Vec::new() })
}

/// The decoder's buffer itself, read in place: its planes where its video meta (or else the
/// caps) put them.
fn i420_pixels(buffer: gst::Buffer, info: &gst_video::VideoInfo) -> Result<Pixels, FrameError> {
    let (offsets, strides) = match buffer.meta::<gst_video::VideoMeta>() {
        Some(meta) => (meta.offset().to_vec(), meta.stride().to_vec()),
        None => (info.offset().to_vec(), info.stride().to_vec()),
    };
    let plane = |i: usize| -> Option<Plane> {
        Some(Plane { offset: *offsets.get(i)?, stride: usize::try_from(*strides.get(i)?).ok()? })
    };
    let (Some(y), Some(u), Some(v)) = (plane(0), plane(1), plane(2)) else {
        return Err(FrameError::NotThreePlanes);
    };
    let (w, h) = (info.width() as usize, info.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let needed = [y.offset + y.len(w, h), u.offset + u.len(cw, ch), v.offset + v.len(cw, ch)];
    if needed.into_iter().any(|end| end > buffer.size()) {
        return Err(FrameError::TooShort { size: buffer.size(), width: w, height: h });
    }
    let buffer = buffer.into_mapped_buffer_readable().map_err(|_| FrameError::Unmappable)?;
    Ok(Pixels::i420(Arc::new(Mapped(buffer)), [y, u, v], colour(info.colorimetry())))
}

/// A mapped GStreamer buffer as the bytes of a frame; unmapped and back to its pool on drop.
struct Mapped(gst::MappedBuffer<gst::buffer::Readable>);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// The YUV encoding the caps declare; BT.601 when they do not say.
fn colour(colorimetry: gst_video::VideoColorimetry) -> Colour {
    let matrix = match colorimetry.matrix() {
        gst_video::VideoColorMatrix::Bt709 => Colour::BT709,
        gst_video::VideoColorMatrix::Bt2020 => Colour::BT2020,
        _ => Colour::BT601,
    };
    match colorimetry.range() {
        gst_video::VideoColorRange::Range0_255 => matrix.full_range(),
        _ => matrix,
    }
}

/// Keeps frames at `fps` by their timestamps, so sampling follows stream time, not arrival,
/// and counts the kept frames that never reach analysis: the appsink's newest-wins drops them
/// without a word.
struct Sampler {
    interval: u64,
    next_due: Option<u64>,
    /// Timestamps of the kept frames not pulled yet, oldest first.
    waiting: VecDeque<Option<gst::ClockTime>>,
    /// Kept frames known to be lost since the last pull.
    lost: u64,
}

/// Kept frames tracked on their way to analysis; more than the pipeline holds, so an overflow
/// only happens when the camera thread is stuck, and counts as loss.
const WAITING_CAPACITY: usize = 64;

impl Sampler {
    fn new(fps: f64) -> Self {
        let waiting = VecDeque::with_capacity(WAITING_CAPACITY);
        Sampler { interval: (1e9 / fps) as u64, next_due: None, waiting, lost: 0 }
    }

    /// Whether the frame at `pts` goes to analysis.
    fn keep(&mut self, pts: Option<gst::ClockTime>) -> bool {
        let keep = self.due(pts);
        if keep {
            if self.waiting.len() == WAITING_CAPACITY {
                self.waiting.pop_front();
                self.lost += 1;
            }
            self.waiting.push_back(pts);
        }
        keep
    }

    /// The frame at `pts` reached analysis: the kept frames before it were dropped. Returns how
    /// many kept frames were lost since the last pull.
    fn pulled(&mut self, pts: Option<gst::ClockTime>) -> u64 {
        if let Some(i) = self.waiting.iter().position(|&waiting| waiting == pts) {
            self.lost += i as u64;
            self.waiting.drain(..=i);
        }
        std::mem::take(&mut self.lost)
    }

    fn due(&mut self, pts: Option<gst::ClockTime>) -> bool {
        let Some(pts) = pts.map(|p| p.nseconds()) else { return true };
        // A millisecond of slack absorbs timestamp rounding in containers.
        const SLACK_NS: u64 = 1_000_000;
        match self.next_due {
            Some(due) if pts + SLACK_NS < due => false,
            Some(due) => {
                let next = due + self.interval;
                // After a gap, restart the schedule from this frame rather than catching up.
                self.next_due = Some(if next <= pts { pts + self.interval } else { next });
                true
            }
            None => {
                self.next_due = Some(pts + self.interval);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<gst::ClockTime> {
        Some(gst::ClockTime::from_mseconds(v))
    }

    #[test]
    fn errors_read_as_they_always_have() {
        assert_eq!(IngestError::Stalled.to_string(), "no frames for 10 s");
        assert_eq!(IngestError::Stopped.to_string(), "stopped");
        let refused = IngestError::Stream {
            element: "rtspsrc0".into(),
            message: "Could not open resource for reading and writing.".into(),
            debug: Some("Failed to connect. (Generic error)".into()),
        };
        let expected = "rtspsrc0: Could not open resource for reading and writing.";
        assert_eq!(refused.to_string(), expected);
        assert_eq!(
            IngestError::MissingElement("appsink").to_string(),
            "the pipeline has no appsink"
        );
        let no_pad = IngestError::MissingPad { element: "videoconvert", pad: "sink" };
        assert_eq!(no_pad.to_string(), "videoconvert has no sink pad");
        let short = IngestError::from(FrameError::TooShort { size: 100, width: 322, height: 240 });
        assert_eq!(short.to_string(), "a frame of 100 bytes is too short for 322x240 I420");
        let ended = IngestError::EndedBeforeFirstFrame;
        assert_eq!(ended.to_string(), "the stream ended before its first frame");
    }

    #[test]
    fn a_missing_element_is_told_in_gstreamers_words() {
        init_gstreamer().unwrap();
        let error = build("nosuchelement name=x ! fakesink").unwrap_err();
        assert!(matches!(error, IngestError::Build(_)), "{error:?}");
        assert_eq!(error.to_string(), "cannot build the pipeline: no element \"nosuchelement\"");
    }

    #[test]
    fn the_cameras_password_is_taken_out_of_gstreamers_texts() {
        let url = Source::Rtsp {
            url: url::Url::parse("rtsp://cam.local/stream").unwrap(),
            user: Some("admin".into()),
            password: Some("s3cret".into()),
        };
        let error = IngestError::Stream {
            element: "rtspsrc0".into(),
            message: "Unauthorized: rtsp://admin:s3cret@cam.local/stream".into(),
            debug: Some("s3cret".into()),
        }
        .redacted(&url);
        assert_eq!(error.to_string(), "rtspsrc0: Unauthorized: rtsp://admin:***@cam.local/stream");
        assert!(matches!(error, IngestError::Stream { debug: Some(d), .. } if d == "***"));
        let build = IngestError::Build("syntax error near s3cret".into()).redacted(&url);
        assert_eq!(build.to_string(), "cannot build the pipeline: syntax error near ***");
    }

    #[test]
    fn auto_asks_first_for_the_transport_that_worked_for_that_camera() {
        let camera = |id: &str, transport: &str| -> CameraConfig {
            let text =
                format!("id = '{id}'\nurl = 'rtsp://u:pw@192.0.2.7/s'\nmodel = 'm'\n{transport}");
            toml::from_str(&text).unwrap()
        };
        use Transport::{Tcp, Udp};
        let auto = camera("remembers", "");
        assert_eq!(transports(&auto), [Some(Tcp), Some(Udp)]);
        remember_transport(&auto, Some(Udp));
        assert_eq!(transports(&auto), [Some(Udp), Some(Tcp)]);
        assert_eq!(transports(&camera("other", "")), [Some(Tcp), Some(Udp)], "per camera");
        // A fixed transport is asked for as it is, and teaches auto nothing.
        let fixed = camera("fixed", "transport = 'udp'");
        remember_transport(&fixed, Some(Udp));
        assert_eq!(transports(&fixed), [Some(Udp)]);
        assert_eq!(transports(&camera("fixed", "")), [Some(Tcp), Some(Udp)]);
        let file: CameraConfig =
            toml::from_str("id = 'f'\nurl = 'file:///v.mp4'\nmodel = 'm'").unwrap();
        assert_eq!(transports(&file), [None]);
    }

    #[test]
    fn rtsp_statuses_are_read_from_rtspsrcs_texts_and_told_in_an_installers_words() {
        assert_eq!(quoted_rtsp_status("Error (461): Unsupported transport"), Some(461));
        assert_eq!(quoted_rtsp_status("Not Found (404)"), Some(404));
        assert_eq!(quoted_rtsp_status("Could not connect (port 5540) (200)"), None);
        let refused = IngestError::Rtsp {
            status: 461,
            transport: Some(Transport::Udp),
            element: "rtspsrc0".into(),
            message: "Error (461): Unsupported transport".into(),
            debug: None,
        };
        assert_eq!(
            refused.to_string(),
            "461 unsupported transport: the camera does not send RTP over UDP; set transport = \
             \"tcp\" or \"auto\" (rtspsrc0: Error (461): Unsupported transport)"
        );
        for (status, words) in [
            (400, "400 bad request"),
            (401, "401 unauthorized: check the user and password"),
            (404, "404 not found: the camera has no stream at this path"),
            (454, "454 session not found"),
        ] {
            assert!(rtsp_words(status, None).starts_with(words), "{status}");
        }
    }

    fn gate(mode: Decode, needed: Option<(f64, &'static str)>) -> KeyframeGate {
        let stats = Arc::new(CameraStats::default());
        stats.keyframes_only.store(mode == Decode::Keyframes, Ordering::Relaxed);
        KeyframeGate {
            camera: "kerb".into(),
            mode,
            needed,
            stats,
            keys: Vec::new(),
            measured: false,
        }
    }

    /// A stream of 10 frames/s with a key frame every 2 s, for `seconds`: what passes.
    fn feed(gate: &mut KeyframeGate, seconds: u64) -> Vec<u64> {
        (0..seconds * 10)
            .map(|i| (i, i % 20 != 0))
            .filter(|&(i, delta)| gate.pass(delta, ms(i * 100)))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn keyframes_drops_every_delta_frame_and_counts_it() {
        let mut g = gate(Decode::Keyframes, Some((0.2, "illegal_parking")));
        assert_eq!(feed(&mut g, 6), [0, 20, 40]);
        assert_eq!(g.stats.frames_skipped.load(Ordering::Relaxed), 57);
    }

    #[test]
    fn auto_decodes_key_frames_only_once_their_rate_serves_every_algorithm() {
        let mut slow = gate(Decode::Auto, Some((0.2, "illegal_parking")));
        let passed = feed(&mut slow, 8);
        // Every frame until the third key frame (4 s) measures 0.5 a second; then key frames.
        assert_eq!(passed.len(), 41 + 1, "{passed:?}");
        assert!(slow.stats.keyframes_only.load(Ordering::Relaxed));
        let mut fast = gate(Decode::Auto, Some((5.0, "tripwire")));
        assert_eq!(feed(&mut fast, 8).len(), 80);
        assert!(!fast.stats.keyframes_only.load(Ordering::Relaxed));
    }

    #[test]
    fn sampler_thins_10_fps_to_5() {
        let mut s = Sampler::new(5.0);
        let kept: Vec<u64> = (0..10).map(|i| i * 100).filter(|t| s.keep(ms(*t))).collect();
        assert_eq!(kept, vec![0, 200, 400, 600, 800]);
    }

    #[test]
    fn sampler_thins_25_fps_to_5_and_restarts_after_a_gap() {
        let mut s = Sampler::new(5.0);
        let kept: Vec<u64> = (0..25).map(|i| i * 40).filter(|t| s.keep(ms(*t))).collect();
        assert_eq!(kept, vec![0, 200, 400, 600, 800]);
        assert!(s.keep(ms(5000)));
        assert!(!s.keep(ms(5040)));
        assert!(s.keep(ms(5200)));
    }

    #[test]
    fn sampled_frames_displaced_before_analysis_are_counted_as_dropped() {
        let mut s = Sampler::new(5.0);
        let kept: Vec<u64> = (0..10).map(|i| i * 200).filter(|t| s.keep(ms(*t))).collect();
        assert_eq!(kept.len(), 10);
        assert_eq!(s.pulled(ms(0)), 0);
        // The sink kept only the newest of 200..=800.
        assert_eq!(s.pulled(ms(800)), 3);
        assert_eq!(s.pulled(ms(1000)), 0);
        // A frame pulled twice, or never kept, counts nothing.
        assert_eq!(s.pulled(ms(1000)), 0);
        // A stuck camera thread: 1200..=1800 wait, then more than the capacity come; the
        // oldest beyond it are lost at once, the rest when the newest is pulled.
        let more = WAITING_CAPACITY as u64 + 5;
        (0..more).for_each(|i| assert!(s.keep(ms(2000 + i * 200))));
        let overflowed = 4 + more - WAITING_CAPACITY as u64;
        let skipped = WAITING_CAPACITY as u64 - 1;
        assert_eq!(s.pulled(ms(2000 + (more - 1) * 200)), overflowed + skipped);
    }
}
