//! One camera's run: its stream (ingest) feeding its analysis through the detection stage, its
//! incidents and status changes going to the sink, and its clips cut beside them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::analysis::Analysis;
use super::detection::{Detected, DetectionStage};
use super::patrol::Patrol;
use super::view::Watch;
use crate::clip;
use crate::config::CameraConfig;
use crate::frame::Frame;
use crate::ingest::{self, IngestError, Mode};
use crate::publish::Outbound;
use crate::stats::CameraStats;
use crate::verdict;
use crate::wire::{CameraState, IncidentState};

/// Where one camera's run sends what it produces (and, for a patrolled camera, the patrol
/// whose turns open its stream).
pub struct Outputs<'a> {
    /// Incident and status messages, to the sink.
    pub tx: &'a mpsc::Sender<Outbound>,
    /// What the camera does, counted.
    pub stats: &'a Arc<CameraStats>,
    /// With settings, incidents get clips of the camera's encoded stream.
    pub clips: Option<clip::Settings>,
    pub watch: Option<&'a mut Watch<'a>>,
    /// A patrolled camera's patrol: its stream is open only during its visits.
    pub patrol: Option<&'a Patrol>,
    /// Operators' verdicts: the camera's suppressions, and incidents to end as false alarms.
    pub verdicts: Option<&'a verdict::Store>,
}

/// Runs one camera until `stop` (live) or the end of the file (replay), sending its incidents
/// and status changes to the sink and counting what it does. An analysis arriving on
/// `reconfigured` (a reloaded config) takes over at the next frame.
pub fn run_camera(
    analysis: &mut Analysis,
    camera: &CameraConfig,
    mode: Mode,
    stop: &AtomicBool,
    outputs: Outputs<'_>,
    reconfigured: Option<&std_mpsc::Receiver<Analysis>>,
) -> Result<(), IngestError> {
    let Outputs { tx, stats, clips, mut watch, patrol, verdicts } = outputs;
    // The verdict store's generation this camera's analysis has taken in.
    let mut verdicts_taken = 0;
    let send = |message: Outbound| {
        // The sink only goes away when the node is shutting down.
        let _ = tx.blocking_send(message);
    };
    // A drone camera's telemetry state, as its online status shows it.
    let telemetry = std::cell::Cell::new(None);
    // Ingest calls the state, frame and encoded-stream callbacks one at a time; a record
    // stream's thread pushes its buffers beside them.
    let clips = clips.map(|settings| Mutex::new(clip::Recorder::start(settings, tx.clone())));
    let recorder = || clips.as_ref().map(|c| c.lock().unwrap_or_else(|e| e.into_inner()));
    // A live camera with a record stream cuts its clips from it, whatever the detect stream does.
    let record = clips.is_some() && camera.record_url.is_some() && mode == Mode::Live;
    let anchor = ingest::StreamAnchor::default();
    let mut on_state = |state: CameraState| {
        log_state(&camera.id, &state);
        stats.set_state(&state);
        if let (Some(mut clips), CameraState::Offline { .. }, false) = (recorder(), &state, record)
        {
            clips.flush();
        }
        if mode == Mode::Live {
            send(Outbound::CameraStatus {
                camera: camera.id.clone(),
                state,
                telemetry: telemetry.get(),
                at: SystemTime::now(),
            });
        }
    };
    let mut inference_errors = 0u64;
    // In stream order: a reloaded config's analysis takes over, then the frame is tracked,
    // ruled and its incidents published.
    let mut finish = |analysis: &mut Analysis, done: Detected| {
        let frame = done.frame;
        let mut incidents = match reconfigured.and_then(|next| next.try_iter().last()) {
            Some(next) => {
                tracing::info!(camera = %camera.id, "analysis reconfigured");
                // The new analysis starts without the suppressions.
                verdicts_taken = 0;
                analysis.reconfigure(next, &frame)
            }
            None => Vec::new(),
        };
        if let Some(store) = verdicts.filter(|s| s.generation() != verdicts_taken) {
            verdicts_taken = store.generation();
            let (places, ends) = store.for_camera(&camera.id);
            analysis.suppress(&places);
            incidents.extend(analysis.end_false_positives(&ends, &frame));
        }
        if let Some(mut clips) = recorder() {
            clips.analysed(frame.stream_time_s);
        }
        let started = Instant::now();
        let (width, height) = (frame.width, frame.height);
        let gated = done.detections.is_none();
        let analysed = done
            .detections
            .transpose()
            .and_then(|detections| analysis.finish(frame, detections, watch.as_deref_mut()));
        let now = analysis.telemetry();
        if now != telemetry.get() && mode == Mode::Live {
            let state = CameraState::Online { width, height };
            let at = SystemTime::now();
            send(Outbound::CameraStatus { camera: camera.id.clone(), state, telemetry: now, at });
        }
        telemetry.set(now);
        stats.add_inference(done.took + started.elapsed());
        stats.frames_analysed.fetch_add(1, Ordering::Relaxed);
        stats.incidents_suppressed.fetch_add(analysis.take_suppressed(), Ordering::Relaxed);
        if gated {
            stats.frames_gated.fetch_add(1, Ordering::Relaxed);
        }
        match analysed {
            Ok(more) => incidents.extend(more),
            Err(e) => {
                inference_errors += 1;
                // The first error and then one in a thousand: a broken model must not flood the log.
                if inference_errors % 1000 == 1 {
                    tracing::error!(camera = %camera.id, errors = inference_errors, "{e}");
                }
            }
        }
        for incident in incidents {
            if let Some(store) = verdicts {
                store.seen(&incident);
            }
            if incident.payload.state == IncidentState::Start {
                stats.count_incident(&incident.payload.algorithm);
            }
            tracing::info!(
                camera = %camera.id,
                id = %incident.payload.id,
                algorithm = %incident.payload.algorithm,
                state = ?incident.payload.state,
                stream_time_s = incident.payload.stream_time_s,
                "incident"
            );
            match recorder() {
                Some(mut clips) => clips.route(incident),
                None => send(Outbound::Incident(Box::new(incident))),
            }
        }
    };
    let push_encoded = |buffer: ingest::Encoded| {
        if let Some(mut clips) = recorder() {
            clips.push(buffer);
        }
    };
    let mut on_encoded = push_encoded;
    // Set when the camera's stream has stopped: the record stream stops with it.
    let record_stop = AtomicBool::new(false);
    // A replay wants throughput: consecutive frames in detection side by side. A live camera
    // wants each frame's incidents out at once, so it waits for every frame (its frames are
    // seconds' fifths apart; the cameras together keep the sessions busy).
    let depth = match mode {
        Mode::Replay { .. } => analysis.parallelism(),
        Mode::Live => 1,
    };
    let ran = std::thread::scope(|scope| {
        if record {
            let record_thread =
                || ingest::record(camera, &record_stop, &anchor, &mut { push_encoded });
            let name = format!("record-{}", camera.id);
            if let Err(e) =
                std::thread::Builder::new().name(name).spawn_scoped(scope, record_thread)
            {
                tracing::error!(camera = %camera.id, "no record stream, so no clips: {e}");
            }
        }
        let mut stage = DetectionStage::start(scope, depth);
        let mut on_frame = |frame: Frame| {
            anchor.frame_arrived(frame.stream_time_s);
            let frame = Arc::new(frame);
            let detectors = analysis.gate(&frame);
            stage.submit(frame, detectors);
            while let Some(done) = stage.next(false) {
                finish(analysis, done);
            }
        };
        let encoded: Option<&mut dyn FnMut(ingest::Encoded)> =
            (clips.is_some() && !record).then_some(&mut on_encoded);
        let ran = match patrol {
            Some(patrol) => patrol.run(camera, stop, stats, &mut on_state, &mut on_frame, encoded),
            None => ingest::run(camera, mode, stop, stats, &mut on_state, &mut on_frame, encoded),
        };
        record_stop.store(true, Ordering::Relaxed);
        while let Some(done) = stage.next(true) {
            finish(analysis, done);
        }
        stage.finish();
        ran
    });
    if let Some(clips) = clips {
        clips.into_inner().unwrap_or_else(|e| e.into_inner()).flush();
    }
    ran
}

fn log_state(camera: &str, state: &CameraState) {
    match state {
        CameraState::Connecting => tracing::info!(camera, "connecting"),
        CameraState::Online { width, height } => tracing::info!(camera, width, height, "online"),
        CameraState::Offline { reason, retry_in_s } => {
            tracing::warn!(camera, "stream lost: {reason}; reconnecting in {retry_in_s} s")
        }
        CameraState::Standby { next_visit_at } => {
            let next_visit_at = crate::wire::rfc3339_millis(*next_visit_at);
            tracing::info!(camera, next_visit_at, "standby")
        }
    }
}
