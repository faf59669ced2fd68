//! `cityeye replay` and `cityeye preview`: a camera's analysis run over a video file as fast as
//! the machine allows, with its results written to a folder; and one frame of a camera with its
//! zones, lines and detections drawn, for installers checking a site.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::annotate::{self, Annotator};
use super::progress::{self, Progress};
use super::{EXIT_CONFIG, load};
use crate::clip;
use crate::config::{CameraConfig, Config, PlateScope, Source, plate_in_latin};
use crate::engine::{Analysed, Analysis, Models, Outputs, Overlay, Watch, run_camera};
use crate::frame::Frame;
use crate::geometry::BBox;
use crate::incident::evidence_jpeg;
use crate::infer::Scratch;
use crate::ingest::{self, Mode};
use crate::plates::{PlateService, Reading, VEHICLES};
use crate::publish::{self, CHANNEL_CAPACITY};
use crate::stats::CameraStats;
use crate::wire::PlatePayload;

/// What `cityeye preview` saw on one frame of a camera: the picture, and each detection.
pub struct Preview {
    /// The frame with every zone and line of the camera's algorithms drawn in yellow, its
    /// models' detections in green and the plates read under their vehicles, as JPEG.
    pub jpeg: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub objects: Vec<PreviewObject>,
}

/// One detection of a preview, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct PreviewObject {
    pub class: String,
    pub confidence: f32,
    /// `[x, y, w, h]`, normalized, top-left origin.
    pub bbox: [f32; 4],
    /// A vehicle's plate, with `[plates]`, when it reads as one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate: Option<PlatePayload>,
}

/// A camera's analysis on one frame: from the camera, or from `input`, a video file or a JPEG
/// or PNG still standing in for it. For installers checking their zones and operators trying
/// a model (or the plate reader) on a picture.
pub fn preview(
    config: &Config,
    models: &Models,
    camera_id: &str,
    input: Option<&Path>,
) -> Result<Preview, ReplayError> {
    let camera = find_camera(config, camera_id)?;
    let frame = match input {
        Some(path) if is_still(path) => read_still(path)?,
        Some(path) => {
            let url = Source::File { path: path.to_path_buf() };
            first_frame(&CameraConfig { url, pipeline: None, ..camera.clone() })?
        }
        None => first_frame(camera)?,
    };
    let frame = Arc::new(frame);
    let mut scratch = Scratch::default();
    let mut objects = Vec::new();
    for name in &camera.models {
        let detector = models
            .detectors
            .get(name)
            .ok_or_else(|| ReplayError::Usage(format!("model {name} is not loaded")))?;
        let detections = detector
            .detect(&frame, &mut scratch)
            .map_err(|e| ReplayError::Failed(e.to_string()))?;
        for d in detections {
            let plate = match &models.plates {
                Some(plates) if VEHICLES.contains(&&*d.class) => {
                    read_plate(plates, &frame, d.bbox)?
                }
                _ => None,
            };
            objects.push(PreviewObject::new(&d.class, d.confidence, d.bbox, plate));
        }
    }
    // A plate camera's plate is an object of its own, read from the whole frame.
    if let Some(plates) = &models.plates
        && camera.plates == PlateScope::Frame
        && let Some(reading) = read_plate(plates, &frame, BBox { x: 0.0, y: 0.0, w: 1.0, h: 1.0 })?
    {
        let (confidence, region) = (reading.confidence, reading.region);
        objects.push(PreviewObject::new(
            PlateScope::PLATE_CLASS,
            confidence,
            region,
            Some(reading),
        ));
    }
    let labels = objects
        .iter()
        .filter_map(|o| Some((o.bbox(), plate_in_latin(&o.plate.as_ref()?.text))))
        .collect();
    let boxes = objects.iter().map(PreviewObject::bbox).collect();
    let mut evidence = Overlay::of(camera).evidence(frame.clone(), boxes);
    evidence.labels = labels;
    let jpeg = evidence_jpeg(&evidence).map_err(ReplayError::Failed)?;
    Ok(Preview { jpeg, width: frame.width, height: frame.height, objects })
}

impl PreviewObject {
    fn new(class: &str, confidence: f32, b: BBox, plate: Option<Reading>) -> PreviewObject {
        PreviewObject {
            class: class.to_string(),
            confidence,
            bbox: [b.x, b.y, b.w, b.h],
            plate: plate.map(|r| PlatePayload {
                text: r.text,
                confidence: r.confidence,
                reads: 1,
                evidence: None,
            }),
        }
    }

    fn bbox(&self) -> BBox {
        let [x, y, w, h] = self.bbox;
        BBox { x, y, w, h }
    }
}

/// The plate in `area` of `frame`, read at once.
fn read_plate(
    plates: &PlateService,
    frame: &Frame,
    area: BBox,
) -> Result<Option<Reading>, ReplayError> {
    let read = plates.reader().read_area(frame, area);
    read.map_err(|e| ReplayError::Failed(format!("plate reading failed: {e}")))
}

fn first_frame(camera: &CameraConfig) -> Result<Frame, ReplayError> {
    ingest::first_frame(camera)
        .map_err(|e| ReplayError::Failed(format!("no frame from {}: {e}", camera.url.masked())))
}

/// A JPEG or PNG, by its name.
fn is_still(path: &Path) -> bool {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(extension.as_deref(), Some("jpg" | "jpeg" | "png"))
}

/// A still as a frame (packed BGR, like every still).
fn read_still(path: &Path) -> Result<Frame, ReplayError> {
    let image = image::open(path)
        .map_err(|e| ReplayError::Failed(format!("cannot read {}: {e}", path.display())))?
        .to_rgb8();
    let (width, height) = (image.width() as usize, image.height() as usize);
    let bgr: Vec<u8> = image.pixels().flat_map(|p| [p[2], p[1], p[0]]).collect();
    Ok(Frame {
        width,
        height,
        data: bgr.into(),
        stream_time_s: 0.0,
        captured_at: SystemTime::now(),
        metadata: Vec::new(),
    })
}

fn find_camera<'c>(config: &'c Config, camera_id: &str) -> Result<&'c CameraConfig, ReplayError> {
    config.cameras.iter().find(|c| c.id == camera_id).ok_or_else(|| {
        let known: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
        ReplayError::Usage(format!(
            "{}: no camera `{camera_id}`; cameras: {}",
            config.path.display(),
            known.join(", ")
        ))
    })
}

/// What a replay did.
#[derive(Debug)]
pub struct ReplaySummary {
    pub frames_decoded: u64,
    /// Delta frames dropped before the decoder (`decode = "keyframes"` or `auto`).
    pub frames_skipped: u64,
    pub frames_analysed: u64,
    /// Analysed frames on which the motion gate spared the detectors.
    pub frames_gated: u64,
    pub seconds: f64,
    pub incidents: usize,
    /// Frames in the annotated video, when one was asked for.
    pub frames_annotated: Option<u64>,
}

impl ReplaySummary {
    pub fn analysed_fps(&self) -> f64 {
        self.frames_analysed as f64 / self.seconds.max(1e-9)
    }
}

/// Why a replay or a preview did not finish.
#[derive(Debug)]
pub enum ReplayError {
    /// The request itself is wrong: an unknown camera, a missing file.
    Usage(String),
    /// The video or the output folder failed along the way.
    Failed(String),
}

/// What to replay, and where its results go.
pub struct ReplayRequest<'a> {
    /// The camera whose models, zones and algorithms analyse the video.
    pub camera: &'a str,
    pub input: &'a Path,
    /// Where `incidents.jsonl` and `evidence/` go.
    pub out_dir: &'a Path,
    /// Wall-clock time of the video's first frame.
    pub start: SystemTime,
    /// Where the annotated video goes (`replay --annotate`), if anywhere.
    pub annotate: Option<&'a Path>,
}

/// Runs a camera's whole analysis over a video file as fast as the machine allows, writing
/// `out_dir/incidents.jsonl`, `out_dir/evidence/<id>.jpg` and, for video MP4 holds as it is,
/// `out_dir/evidence/<id>.mp4`; with `annotate`, also the annotated video. `stats` counts what
/// it does as it goes, for whoever watches (the progress bar).
pub fn replay(
    config: &Config,
    models: &Models,
    request: &ReplayRequest<'_>,
    stats: &Arc<CameraStats>,
) -> Result<ReplaySummary, ReplayError> {
    let ReplayRequest { camera: camera_id, input, out_dir, start, annotate } = *request;
    let camera = find_camera(config, camera_id)?;
    if !input.is_file() {
        return Err(ReplayError::Usage(format!("{}: video file not found", input.display())));
    }
    if let Some(path) = annotate {
        annotate::check_path(path).map_err(ReplayError::Usage)?;
    }
    let camera = CameraConfig {
        url: Source::File { path: input.to_path_buf() },
        pipeline: None,
        ..camera.clone()
    };
    let mut analysis = Analysis::new(config, &camera, models).map_err(ReplayError::Usage)?;
    analysis.read_plates_in_step();
    let mut annotator = annotate
        .map(|path| Annotator::create(path, camera.analysis_fps))
        .transpose()
        .map_err(ReplayError::Failed)?;
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    let out = out_dir.to_path_buf();
    let writer = std::thread::spawn(move || publish::replay_sink(&out, &mut rx));
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let clips = clip::Settings::replay(config, &camera.id, &out_dir.join("evidence"));
    let annotating = annotator.is_some();
    let annotation_failed = AtomicBool::new(false);
    let mut annotate_frame = |analysed: &Analysed<'_>| {
        // An encoder that failed (a full disk) ends the replay.
        if let Some(annotator) = annotator.as_mut()
            && !annotator.frame(analysed)
        {
            annotation_failed.store(true, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
        }
    };
    let watch: Option<&mut Watch<'_>> = annotating.then_some(&mut annotate_frame);
    let outputs = Outputs { tx: &tx, stats, clips, watch, patrol: None, verdicts: None };
    let ran = run_camera(&mut analysis, &camera, Mode::Replay { start }, &stop, outputs, None);
    drop(tx);
    let frames_annotated = annotator.map(Annotator::finish).transpose();
    let written =
        writer.join().map_err(|_| ReplayError::Failed("the replay writer failed".into()))?;
    let seconds = started.elapsed().as_secs_f64();
    let ran =
        ran.map_err(|e| ReplayError::Failed(format!("replay of {} failed: {e}", input.display())));
    // The first failure says why: the encoder's when it stopped the replay, else the replay's
    // (the encoder of a video that never decoded fails too, for want of frames).
    match (annotation_failed.load(Ordering::Relaxed), ran) {
        (false, Err(e)) => return Err(e),
        (true, Err(e)) => {
            frames_annotated.map_err(ReplayError::Failed)?;
            return Err(e);
        }
        (_, Ok(())) => {}
    }
    let frames_annotated = frames_annotated.map_err(ReplayError::Failed)?;
    let incidents = written.map_err(|e| ReplayError::Failed(e.to_string()))?;
    Ok(ReplaySummary {
        frames_decoded: stats.frames_in.load(Ordering::Relaxed),
        frames_skipped: stats.frames_skipped.load(Ordering::Relaxed),
        frames_analysed: stats.frames_analysed.load(Ordering::Relaxed),
        frames_gated: stats.frames_gated.load(Ordering::Relaxed),
        seconds,
        incidents,
        frames_annotated,
    })
}

/// `cityeye replay`: runs [`replay`] with a progress bar when `progress`, and prints what it did.
pub fn replay_command(
    path: &std::path::Path,
    request: &ReplayRequest<'_>,
    progress: bool,
) -> ExitCode {
    let (config, models) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let stats = Arc::new(CameraStats::default());
    let bar = progress.then(|| Progress::start(progress::frames_in(request.input), stats.clone()));
    let replayed = replay(&config, &models, request, &stats);
    drop(bar);
    match replayed {
        Ok(s) => {
            println!(
                "frames decoded {}, delta frames skipped {}, frames analysed {}, analysed \
                 frames/s {:.1}, incidents {}",
                s.frames_decoded,
                s.frames_skipped,
                s.frames_analysed,
                s.analysed_fps(),
                s.incidents
            );
            if config.analysis.motion_gate {
                let share = 100.0 * s.frames_gated as f64 / s.frames_analysed.max(1) as f64;
                println!(
                    "motion gate: detectors skipped on {} frames ({share:.0} %)",
                    s.frames_gated
                );
            }
            println!("results in {}", request.out_dir.display());
            if let (Some(frames), Some(video)) = (s.frames_annotated, request.annotate) {
                println!("annotated video {} ({frames} frames)", video.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// `cityeye preview`: writes the picture of [`preview`] to `out`.
/// `cityeye preview`: writes the picture to `out`; with `json`, prints what was detected as
/// one JSON object instead of a sentence.
pub fn preview_command(
    path: &std::path::Path,
    camera: &str,
    input: Option<&std::path::Path>,
    out: &std::path::Path,
    json: bool,
) -> ExitCode {
    let (config, models) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let written = preview(&config, &models, camera, input).and_then(|preview| {
        std::fs::write(out, &preview.jpeg)
            .map_err(|e| ReplayError::Failed(format!("cannot write {}: {e}", out.display())))?;
        Ok(preview)
    });
    match written {
        Ok(preview) if json => {
            let report = serde_json::json!({
                "camera": camera,
                "picture": out.display().to_string(),
                "width": preview.width,
                "height": preview.height,
                "objects": preview.objects,
            });
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(_) => {
            println!(
                "{} written: zones and lines in yellow, detections in green, plates under their \
                 vehicles",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// A usage mistake (unknown camera, missing file) exits like a config mistake.
fn failed(error: ReplayError) -> ExitCode {
    match error {
        ReplayError::Usage(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        ReplayError::Failed(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
