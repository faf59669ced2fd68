//! A camera's record stream (`record_url`): its main stream, received for evidence clips and
//! never decoded, beside the smaller detect stream that analysis decodes.
//!
//! Cameras and NVRs serve both: a sub-stream (640x360, say) cheap enough to decode and analyse,
//! and the main stream at full resolution, which is what a clip should show. The record
//! pipeline is the camera's template cut after its `encoded` element (see
//! [`crate::config::record_description`]); the buffers entering that element are tapped as the
//! detect stream's are, and handed on as [`Encoded`].
//!
//! The two streams have clocks of their own. Clips are asked for in the detect stream's time, so
//! each record buffer is stamped with the detect stream's time at the moment the buffer is due:
//! the first buffer of a session fixes when (on the monotonic clock) its timestamps count from,
//! and the camera's frames keep telling [`StreamAnchor`] which stream time "now" is. Both
//! streams come through the same jitter buffer latency, so they line up to within a frame or two
//! of network jitter, which a clip's seconds of `pre` and `post` cover. Between a patrolled
//! camera's visits the anchor runs on with the wall clock, as the detect stream's time does.
//!
//! The record stream runs on a thread of its own and keeps running when the detect stream breaks
//! or a patrol closes it: clips go on being cut. When it fails it is logged and reopened with
//! backoff; a clip being collected is written with what there is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{
    BACKOFF_FIRST_S, BACKOFF_MAX_S, CapsText, Encoded, IngestError, STALL_TIMEOUT, Tapped,
    bus_error, init_gstreamer, sleep_unless_stopped, tap_encoded, tear_down, transports,
};
use crate::config::pipeline::ENCODED_NAME;
use crate::config::{CameraConfig, Transport, record_description};

/// How often the record thread looks at its stop flag and its pipeline's bus.
const POLL: Duration = Duration::from_millis(100);

/// The detect stream's time against the monotonic clock, as the camera's latest frame set it.
#[derive(Debug, Default)]
pub struct StreamAnchor(Mutex<Option<(f64, Instant)>>);

impl StreamAnchor {
    /// The camera's frame at stream time `stream_time_s` has just arrived.
    pub fn frame_arrived(&self, stream_time_s: f64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((stream_time_s, Instant::now()));
    }

    /// The detect stream's time at `at`; `None` before the camera's first frame.
    fn stream_time_at(&self, at: Instant) -> Option<f64> {
        let (t, anchored) = (*self.0.lock().unwrap_or_else(|e| e.into_inner()))?;
        Some(t + seconds_between(anchored, at))
    }
}

/// `to − from` in seconds, negative when `to` came first.
fn seconds_between(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_secs_f64(),
        None => -from.duration_since(to).as_secs_f64(),
    }
}

/// Receives `camera`'s record stream until `stop`, handing on its buffers stamped in the detect
/// stream's time (see [`StreamAnchor`]). Failures are logged and the stream reopened with
/// backoff, 1 s doubling to 30 s. Nothing to do for a camera without `record_url`.
pub fn record(
    camera: &CameraConfig,
    stop: &AtomicBool,
    anchor: &StreamAnchor,
    encoded: &mut dyn FnMut(Encoded),
) {
    let Some(source) = &camera.record_url else { return };
    if let Err(e) = init_gstreamer() {
        tracing::error!(camera = %camera.id, "no record stream: {e}");
        return;
    }
    let mut backoff_s = BACKOFF_FIRST_S;
    while !stop.load(Ordering::Relaxed) {
        let (outcome, received) = match RecordSession::open_any(camera, stop) {
            Ok(mut session) => {
                let mut received = 0u64;
                let pumped = session.pump(stop, anchor, &mut |buffer| {
                    if received == 0 {
                        tracing::info!(camera = %camera.id, caps = %buffer.caps, "record stream online");
                    }
                    received += 1;
                    encoded(buffer);
                });
                (pumped, received)
            }
            Err(e) => (Err(e), 0),
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if received > 0 {
            backoff_s = BACKOFF_FIRST_S;
        }
        let reason = match outcome {
            Ok(()) => "end of stream".to_string(),
            Err(e) => e.redacted(source).to_string(),
        };
        tracing::warn!(
            camera = %camera.id,
            "record stream lost: {reason}; clips wait for it; reconnecting in {backoff_s} s"
        );
        sleep_unless_stopped(Duration::from_secs(backoff_s), stop, &|| {});
        backoff_s = (backoff_s * 2).min(BACKOFF_MAX_S);
    }
}

/// What a camera's record stream turned out to be when opened once, for `check --probe`.
pub struct RecordProbe {
    /// The media type (`video/x-h264`).
    pub codec: String,
    /// From the stream's caps, once its parser has read them.
    pub size: Option<(u32, u32)>,
    /// Frames a second, from the timestamps of about a second of buffers.
    pub fps: Option<f64>,
    /// From opening the stream to its first buffer.
    pub first_buffer_after: Duration,
}

/// Opens `camera`'s record stream once and watches it for about a second; `None` without one.
pub fn probe_record(camera: &CameraConfig) -> Option<Result<RecordProbe, IngestError>> {
    const WATCH_S: f64 = 1.0;
    let source = camera.record_url.as_ref()?;
    let started = Instant::now();
    let probed = init_gstreamer()
        .and_then(|()| RecordSession::open_any(camera, &AtomicBool::new(false)))
        .and_then(|mut s| {
            // Opening waited for the first buffer.
            let first_buffer_after = started.elapsed();
            let mut first = None::<gst::ClockTime>;
            let (mut buffers, mut last, mut caps) = (0u32, gst::ClockTime::ZERO, None);
            while let Some(tapped) = s.next(STALL_TIMEOUT)? {
                // Delta frames may carry only a decoding time.
                let Some(pts) = tapped.buffer.pts().or(tapped.buffer.dts()) else { continue };
                let first_pts = *first.get_or_insert(pts);
                (buffers, last, caps) = (buffers + 1, pts, Some(tapped.caps));
                if last.saturating_sub(first_pts).nseconds() as f64 / 1e9 >= WATCH_S {
                    break;
                }
            }
            let (Some(first_pts), Some(caps)) = (first, caps) else {
                return Err(IngestError::Stalled);
            };
            let structure = caps.structure(0);
            let dimension =
                |name: &str| structure?.get::<i32>(name).ok().and_then(|v| u32::try_from(v).ok());
            let span_s = last.saturating_sub(first_pts).nseconds() as f64 / 1e9;
            Ok(RecordProbe {
                codec: structure.map_or("?".into(), |s| s.name().to_string()),
                size: dimension("width").zip(dimension("height")),
                fps: (buffers > 1 && span_s > 0.0).then(|| f64::from(buffers - 1) / span_s),
                first_buffer_after,
            })
        });
    Some(probed.map_err(|e| e.redacted(source)))
}

/// One opened record pipeline.
struct RecordSession {
    pipeline: gst::Pipeline,
    tapped: mpsc::Receiver<Tapped>,
    transport: Option<Transport>,
    /// The first buffer, taken while opening.
    first: Option<Tapped>,
}

impl RecordSession {
    /// Opens the record stream and waits for its first buffer, with each transport `auto`
    /// allows in turn while the camera answers `461 Unsupported transport`.
    /// Gives up when `stop` is set.
    fn open_any(camera: &CameraConfig, stop: &AtomicBool) -> Result<RecordSession, IngestError> {
        // The record stream's transports are remembered apart from the detect stream's.
        let url = camera.record_url.clone().unwrap_or_else(|| camera.url.clone());
        let record = CameraConfig { url, record_url: None, ..camera.clone() };
        let mut outcome = Err(IngestError::NotStarted);
        for transport in transports(&record) {
            outcome = RecordSession::open(camera, transport).and_then(|s| s.started(stop));
            match &outcome {
                Err(IngestError::Rtsp { status: 461, .. }) => continue,
                Ok(_) => {
                    super::remember_transport(&record, transport);
                    break;
                }
                Err(_) => break,
            }
        }
        outcome
    }

    fn open(
        camera: &CameraConfig,
        transport: Option<Transport>,
    ) -> Result<RecordSession, IngestError> {
        let camera = CameraConfig { transport: transport.or(camera.transport), ..camera.clone() };
        let description = record_description(&camera, false)
            .unwrap_or_else(|| Err("no record_url".into()))
            .map_err(IngestError::Template)?;
        let pipeline = super::build(&description)?;
        let tapped = tap_encoded(&pipeline).ok_or(IngestError::MissingElement(ENCODED_NAME))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| bus_error(&pipeline, transport).unwrap_or(IngestError::NotStarted))?;
        Ok(RecordSession { pipeline, tapped, transport, first: None })
    }

    /// Waits for the first buffer, so that a refused transport shows before the session counts
    /// as open; gives up when `stop` is set.
    fn started(mut self, stop: &AtomicBool) -> Result<RecordSession, IngestError> {
        let opened = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if let Some(first) = self.next(POLL)? {
                self.first = Some(first);
                return Ok(self);
            }
            if opened.elapsed() > STALL_TIMEOUT {
                return Err(IngestError::Stalled);
            }
        }
        Err(IngestError::Stopped)
    }

    /// The next buffer, waiting at most `timeout`; fails when the pipeline posted an error.
    fn next(&mut self, timeout: Duration) -> Result<Option<Tapped>, IngestError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        let until = Instant::now() + timeout;
        loop {
            if let Some(error) = bus_error(&self.pipeline, self.transport) {
                return Err(error);
            }
            let wait = until.saturating_duration_since(Instant::now()).min(POLL);
            match self.tapped.recv_timeout(wait) {
                Ok(tapped) => return Ok(Some(tapped)),
                Err(_) if Instant::now() >= until => return Ok(None),
                Err(_) => {}
            }
        }
    }

    /// Hands on the stream's buffers until `stop` (`Ok`), its end (`Ok`) or a failure.
    fn pump(
        &mut self,
        stop: &AtomicBool,
        anchor: &StreamAnchor,
        encoded: &mut dyn FnMut(Encoded),
    ) -> Result<(), IngestError> {
        let mut caps = CapsText::default();
        // When, on the monotonic clock, this session's timestamps count from.
        let mut origin = None::<(gst::ClockTime, Instant)>;
        let mut last_buffer = Instant::now();
        // The first buffer handed on does not continue what an earlier session gave.
        let mut follows_gap = true;
        while !stop.load(Ordering::Relaxed) {
            if self.ended() {
                return Ok(());
            }
            let Some(tapped) = self.next(POLL)? else {
                if last_buffer.elapsed() > STALL_TIMEOUT {
                    return Err(IngestError::Stalled);
                }
                continue;
            };
            last_buffer = Instant::now();
            let buffer = &tapped.buffer;
            let Some(pts) = buffer.pts().or(buffer.dts()) else { continue };
            let (origin_pts, origin_at) = *origin.get_or_insert((pts, Instant::now()));
            // Before the camera's first frame there is no stream time to stamp buffers with.
            let Some(origin_s) = anchor.stream_time_at(origin_at) else { continue };
            let due = |ts: gst::ClockTime| {
                origin_s + (ts.nseconds() as f64 - origin_pts.nseconds() as f64) / 1e9
            };
            let Ok(data) = buffer.map_readable() else { continue };
            encoded(Encoded {
                data: data.to_vec(),
                pts_s: due(pts),
                dts_s: buffer.dts().map(due),
                keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                caps: caps.text(&tapped.caps),
                follows_gap: std::mem::take(&mut follows_gap) || tapped.follows_gap,
            });
        }
        Ok(())
    }

    /// The stream ended (a record file played to its end).
    fn ended(&self) -> bool {
        let bus = self.pipeline.bus();
        bus.and_then(|b| b.pop_filtered(&[gst::MessageType::Eos])).is_some()
    }
}

impl Drop for RecordSession {
    fn drop(&mut self) {
        tear_down(&self.pipeline, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_tells_stream_time_before_and_after_the_latest_frame() {
        let anchor = StreamAnchor::default();
        assert_eq!(anchor.stream_time_at(Instant::now()), None);
        anchor.frame_arrived(100.0);
        let now = Instant::now();
        let later = anchor.stream_time_at(now + Duration::from_millis(1500)).unwrap();
        assert!((101.5..101.6).contains(&later), "{later}");
        let earlier = anchor.stream_time_at(now - Duration::from_millis(500)).unwrap();
        assert!((99.5..99.6).contains(&earlier), "{earlier}");
    }
}
