//! Decoders shared by key-frame cameras.
//!
//! A live camera that decodes key frames only (`decode = "keyframes"`) needs a decoder for one
//! frame every few seconds, yet a decoder of its own keeps its context and reference frames all
//! the time: about 9 MB of a 720p camera's 12 (BENCHMARKS.md). H.264 and H.265 key frames are
//! IDR frames, decodable on their own, so one decoder serves every key-frame camera whose stream
//! has the same codec and frame size.
//!
//! Such a camera's pipeline is its template cut after the `encoded` element (see
//! [`crate::config::encoded_description`]), then a parser that puts the stream in byte-stream
//! access units and repeats the parameter sets before every key frame, so that each key frame
//! carries what decodes it, then an appsink. The appsink's callback hands each key frame to the
//! shared [`Decoder`], its timestamp swapped for a ticket; the decoded frame gets its timestamp
//! back and waits for the camera thread, the newest replacing one not yet taken.
//!
//! The codec is known only once the stream runs: a camera is taken for H.264 first, and when
//! the parser refuses its stream, for H.265; when that parser refuses it too, the camera decodes
//! its key frames itself (for the life of the process).
//!
//! A decoder that falls behind drops the oldest key frames waiting for it, never holding up the
//! cameras. One that fails is left to its frames in flight and a new one is made for the next key
//! frame; a corrupt key frame is dropped without failing it, since other cameras share it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::{IngestError, build, single_threaded_decoders};
use crate::config::pipeline::SINK_NAME;
use crate::config::{CameraConfig, encoded_description};

/// The codecs a shared decoder takes, in the order a camera's stream is tried as them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Codec {
    H264,
    H265,
}

impl Codec {
    fn parser(self) -> &'static str {
        match self {
            Codec::H264 => "h264parse",
            Codec::H265 => "h265parse",
        }
    }

    fn media(self) -> &'static str {
        match self {
            Codec::H264 => "video/x-h264",
            Codec::H265 => "video/x-h265",
        }
    }
}

/// What each camera's stream was found not to be, by camera id and URL without its password:
/// `Some(H265)` once it was refused as H.264, `None` once it was refused as H.265 too.
static REFUSED: Mutex<BTreeMap<(String, String), Option<Codec>>> = Mutex::new(BTreeMap::new());

fn refused_key(camera: &CameraConfig) -> (String, String) {
    (camera.id.clone(), camera.url.masked())
}

/// The codec to take the camera's stream for next: H.264 unless it was refused as such.
fn codec_to_try(camera: &CameraConfig) -> Option<Codec> {
    let refused = REFUSED.lock().unwrap_or_else(|e| e.into_inner());
    refused.get(&refused_key(camera)).copied().unwrap_or(Some(Codec::H264))
}

/// The pipeline of a key-frame camera whose key frames a shared decoder takes; `None` when its
/// template shows no stream before decoding, or its codec is one no shared decoder takes.
pub(super) fn description(camera: &CameraConfig) -> Option<String> {
    let codec = codec_to_try(camera)?;
    let head = encoded_description(camera, false).ok()?;
    Some(format!(
        "{head} ! {} config-interval=-1 ! {},stream-format=byte-stream,alignment=au \
         ! appsink name={SINK_NAME}",
        codec.parser(),
        codec.media()
    ))
}

/// Key frames waiting for a decoder that is behind; beyond them the oldest is dropped. About two
/// seconds of key frames from 60 cameras sending one every two seconds.
const DECODER_BACKLOG: u64 = 64;

/// Where a camera's decoded key frames arrive: the newest waits for the camera thread, and an
/// older one not taken yet is replaced (and counted lost by the camera's sampler).
#[derive(Default)]
struct Slot {
    frame: Mutex<Option<gst::Sample>>,
    ready: Condvar,
}

impl Slot {
    fn put(&self, sample: gst::Sample) {
        *self.frame.lock().unwrap_or_else(|e| e.into_inner()) = Some(sample);
        self.ready.notify_one();
    }
}

/// A key-frame camera's frames, decoded by a shared decoder.
pub(super) struct SharedFrames {
    slot: Arc<Slot>,
    camera: (String, String),
}

impl SharedFrames {
    /// Makes `sink`, the appsink ending a key-frame camera's pipeline, hand its key frames to the
    /// decoder shared by cameras of the same codec and size.
    pub(super) fn start(sink: &gst_app::AppSink, camera: &CameraConfig) -> SharedFrames {
        sink.set_property("enable-last-sample", false);
        let slot = Arc::new(Slot::default());
        let (id, to) = (camera.id.clone(), Arc::downgrade(&slot));
        let mut decoder: Option<Arc<Decoder>> = None;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let kind = sample.caps().map(stream_kind);
                    let (Some(buffer), Some(kind)) = (sample.buffer_owned(), kind) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    // The sample's reference goes first, so that the buffer is not copied to be
                    // restamped.
                    drop(sample);
                    let current = decoder.take().filter(|d| d.kind == kind && d.works());
                    match current.map_or_else(|| Decoder::for_kind(&kind, &id), Ok) {
                        Ok(shared) => {
                            shared.decode(buffer, &to);
                            decoder = Some(shared);
                        }
                        Err(error) => tracing::warn!(camera = id, "no decoder for {kind}: {error}"),
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        SharedFrames { slot, camera: refused_key(camera) }
    }

    /// The decoded frame waiting, or the next to come within `timeout`.
    pub(super) fn take(&self, timeout: Duration) -> Option<gst::Sample> {
        let waiting = self.slot.frame.lock().unwrap_or_else(|e| e.into_inner());
        let (mut waiting, _) = self
            .slot
            .ready
            .wait_timeout_while(waiting, timeout, |frame| frame.is_none())
            .unwrap_or_else(|e| e.into_inner());
        waiting.take()
    }

    /// The stream failed before its first frame. When the cause is its codec, which the parser
    /// refuses, the camera's next connection takes it for the next codec, or has the camera
    /// decode its key frames itself.
    pub(super) fn failed_before_first_frame(&self, error: &IngestError) {
        let IngestError::Stream { debug: Some(debug), .. } = error else { return };
        // The parser refuses the caps (not-negotiated), or the tee finds nothing to take them.
        if !(debug.contains("not-negotiated") || debug.contains("not-linked")) {
            return;
        }
        let mut refused = REFUSED.lock().unwrap_or_else(|e| e.into_inner());
        let next = match refused.get(&self.camera) {
            None => Some(Codec::H265),
            Some(_) => None,
        };
        let camera = &self.camera.0;
        match next {
            Some(_) => {
                tracing::info!(camera, "decode keyframes: the stream is not H.264; trying H.265")
            }
            None => tracing::info!(
                camera,
                "decode keyframes: the stream is neither H.264 nor H.265, whose key frames a \
                 shared decoder takes; the camera decodes its key frames itself"
            ),
        }
        refused.insert(self.camera.clone(), next);
    }
}

/// What a decoder is shared by: the media type and frame size the stream's caps give
/// (`video/x-h264 1280x720`).
fn stream_kind(caps: &gst::CapsRef) -> String {
    let Some(s) = caps.structure(0) else { return "unknown".into() };
    let size = |field| s.get::<i32>(field).map_or("?".to_string(), |v| v.to_string());
    format!("{} {}x{}", s.name(), size("width"), size("height"))
}

/// The shared decoders, by [`stream_kind`]; a decoder closes once no camera holds it.
static DECODERS: Mutex<BTreeMap<String, Weak<Decoder>>> = Mutex::new(BTreeMap::new());

/// One decoding pipeline, `appsrc ! decodebin ! videoconvert ! appsink`, and the key frames in
/// it.
struct Decoder {
    kind: String,
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    tickets: Arc<Mutex<Tickets>>,
    failed: Arc<AtomicBool>,
}

/// The key frames in a decoder: by ticket (the timestamp they carry through it), the camera
/// they go back to and their own timestamp.
#[derive(Default)]
struct Tickets {
    next: u64,
    in_flight: BTreeMap<u64, (Weak<Slot>, Option<gst::ClockTime>)>,
}

/// Tickets kept for frames the decoder never returned (dropped while it was behind); beyond
/// them the oldest is forgotten.
const TICKETS_KEPT: usize = 1024;

impl Tickets {
    fn issue(&mut self, to: &Weak<Slot>, pts: Option<gst::ClockTime>) -> gst::ClockTime {
        self.next += 1;
        if self.in_flight.len() == TICKETS_KEPT {
            self.in_flight.pop_first();
        }
        self.in_flight.insert(self.next, (to.clone(), pts));
        gst::ClockTime::from_mseconds(self.next)
    }

    /// Whose frame came out with this ticket, and its own timestamp. Key frames go through in
    /// order, so those before it that are still here were dropped: they are forgotten.
    fn redeem(&mut self, ticket: gst::ClockTime) -> Option<(Weak<Slot>, Option<gst::ClockTime>)> {
        let ticket = ticket.mseconds();
        let later = self.in_flight.split_off(&ticket);
        self.in_flight = later;
        self.in_flight.remove(&ticket)
    }
}

impl Decoder {
    /// The decoder of streams of this kind, made if none works.
    fn for_kind(kind: &str, camera: &str) -> Result<Arc<Decoder>, IngestError> {
        let mut decoders = DECODERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(decoder) = decoders.get(kind).and_then(Weak::upgrade).filter(|d| d.works()) {
            return Ok(decoder);
        }
        let decoder = Arc::new(Decoder::start(kind)?);
        tracing::info!(camera, "key frames of {kind} decoded by a shared decoder");
        decoders.retain(|_, d| d.strong_count() > 0);
        decoders.insert(kind.to_string(), Arc::downgrade(&decoder));
        Ok(decoder)
    }

    fn start(kind: &str) -> Result<Decoder, IngestError> {
        let media = kind.split(' ').next().unwrap_or_default();
        let pipeline = build(
            "appsrc name=keys ! decodebin ! videoconvert ! video/x-raw,format=I420 \
             ! appsink name=frames sync=false",
        )?;
        single_threaded_decoders(&pipeline);
        tolerate_corrupt_frames(&pipeline);
        let src = pipeline
            .by_name("keys")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or(IngestError::MissingElement("appsrc"))?;
        let caps = format!("{media}, stream-format=byte-stream, alignment=au");
        src.set_caps(Some(&caps.parse().map_err(|_| IngestError::Template(caps.clone()))?));
        src.set_format(gst::Format::Time);
        src.set_max_buffers(DECODER_BACKLOG);
        src.set_leaky_type(gst_app::AppLeakyType::Downstream);
        let sink = pipeline
            .by_name("frames")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or(IngestError::MissingElement("appsink"))?;
        sink.set_property("enable-last-sample", false);
        let tickets = Arc::new(Mutex::new(Tickets::default()));
        let returns = tickets.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let back = sample.buffer().and_then(|b| b.pts()).and_then(|ticket| {
                        returns.lock().unwrap_or_else(|e| e.into_inner()).redeem(ticket)
                    });
                    if let Some((slot, pts)) = back
                        && let Some(slot) = slot.upgrade()
                    {
                        slot.put(restamped(sample, pts));
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let failed = Arc::new(AtomicBool::new(false));
        watch_for_failure(&pipeline, kind, &failed);
        pipeline.set_state(gst::State::Playing).map_err(|_| IngestError::NotStarted)?;
        Ok(Decoder { kind: kind.to_string(), pipeline, src, tickets, failed })
    }

    fn works(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }

    /// Hands a camera's key frame to the decoder; its frame goes to `to` once decoded.
    fn decode(&self, mut buffer: gst::Buffer, to: &Weak<Slot>) {
        {
            let ticket =
                self.tickets.lock().unwrap_or_else(|e| e.into_inner()).issue(to, buffer.pts());
            let buffer = buffer.make_mut();
            buffer.set_pts(ticket);
            buffer.set_dts(ticket);
            buffer.set_duration(gst::ClockTime::NONE);
        }
        if self.src.push_buffer(buffer).is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The decoded frame with its camera's timestamp in place of its ticket.
fn restamped(sample: gst::Sample, pts: Option<gst::ClockTime>) -> gst::Sample {
    let caps = sample.caps_owned();
    let Some(mut buffer) = sample.buffer_owned() else { return sample };
    // The sample's reference goes first, so that the buffer is not copied to be changed.
    drop(sample);
    buffer.make_mut().set_pts(pts);
    let mut restamped = gst::Sample::builder().buffer(&buffer);
    if let Some(caps) = &caps {
        restamped = restamped.caps(caps);
    }
    restamped.build()
}

/// A corrupt key frame is dropped, not counted towards failing the decoder: other cameras share
/// it.
fn tolerate_corrupt_frames(pipeline: &gst::Pipeline) {
    pipeline.connect_deep_element_added(|_, _, element| {
        if element.is::<gstreamer_video::VideoDecoder>() && element.has_property("max-errors") {
            element.set_property("max-errors", -1i32);
        }
    });
}

/// Marks the decoder failed when its pipeline posts an error; cameras then make a new one.
fn watch_for_failure(pipeline: &gst::Pipeline, kind: &str, failed: &Arc<AtomicBool>) {
    let Some(bus) = pipeline.bus() else { return };
    let (kind, failed) = (kind.to_string(), failed.clone());
    bus.set_sync_handler(move |_, message| {
        if let gst::MessageView::Error(e) = message.view()
            && !failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("the shared decoder of {kind} failed: {}", e.error());
        }
        gst::BusSyncReply::Drop
    });
}
