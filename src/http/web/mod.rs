//! The node's web page, for installers and operators at the box: each camera's latest analysed
//! frame with its zones, lines and tracked objects, the last incidents with their snapshots, and
//! a zone editor that turns clicks on a frame into a `[[cameras.zones]]` block for the config.
//!
//! Each camera thread hands its analysed frames to the [`Web`] store through the pipeline's watch
//! hook ([`Web::watcher`]). The store keeps at most one frame per camera, taken at most once a
//! second, and the last [`KEPT_INCIDENTS`] incidents. Pictures are encoded to JPEG only when a
//! browser asks for them, on a blocking thread and one at a time, so the cameras never pay for
//! the page. The handlers here answer with axum responses; the router in [`crate::http`] maps
//! the paths to them. The page itself is static HTML, CSS and JavaScript built into the binary
//! (no build step, nothing fetched from elsewhere), which reads the JSON API.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::engine::{Analysed, Overlay};
use crate::frame::Frame;
use crate::geometry::BBox;
use crate::incident::{Evidence, evidence_jpeg};
use crate::stats::NodeStats;
use crate::track::TrackState;
use crate::wire::{IncidentPayload, IncidentState, rfc3339_millis};

/// How many incidents the page lists, newest first. Each holds its snapshot's frame until the
/// snapshot is first shown, then only the JPEG.
pub const KEPT_INCIDENTS: usize = 20;
/// The most the listed incidents' snapshot frames may take (ten 1080p frames): past it, the
/// oldest incidents are listed without their snapshot, so a box with large frames and nobody
/// looking does not hold 20 of them.
const MAX_SNAPSHOT_FRAME_BYTES: usize = 64 << 20;
/// A camera's frame is taken for the page at most this often.
const FRAME_EVERY: Duration = Duration::from_secs(1);

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");
const JSON: &str = "application/json";
const JPEG: &str = "image/jpeg";
const TEXT: &str = "text/plain; charset=utf-8";

/// What the page shows, fed by the camera threads and read by HTTP requests.
pub struct Web {
    stats: Arc<NodeStats>,
    frames: Mutex<HashMap<String, Latest>>,
    /// Newest first.
    incidents: Mutex<VecDeque<Kept>>,
    /// The page's JPEG encodes take turns: they never take more than one core from the cameras.
    encoder: Arc<Semaphore>,
}

/// A camera's latest frame for the page.
struct Latest {
    frame: Arc<Frame>,
    /// Taken from each frame's analysis, which a reload may have replaced.
    overlay: Overlay,
    /// Objects tracked in this frame.
    boxes: Vec<BBox>,
    /// Encoded on the first request for this frame, for the requests after it.
    jpeg: Option<Arc<[u8]>>,
}

/// An incident as the page lists it.
struct Kept {
    started_at: String,
    /// Its latest message: state, objects and facts as they are now.
    message: IncidentPayload,
    snapshot: Option<Snapshot>,
}

enum Snapshot {
    Frame(Evidence),
    /// Once encoded, the JPEG alone is kept: much smaller than the frame.
    Jpeg(Arc<[u8]>),
}

/// `/`: the page.
pub async fn page() -> Response {
    answer(StatusCode::OK, "text/html; charset=utf-8", PAGE)
}

/// `/page.js`
pub async fn script() -> Response {
    answer(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT)
}

/// `/page.css`
pub async fn style() -> Response {
    answer(StatusCode::OK, "text/css; charset=utf-8", STYLE)
}

/// `/api/cameras`: every camera of the node with its state, latest frame and overlay.
pub async fn cameras(State(web): State<Arc<Web>>) -> Response {
    answer(StatusCode::OK, JSON, web.cameras_json())
}

/// `/api/incidents`: the kept incidents, newest first.
pub async fn incidents(State(web): State<Arc<Web>>) -> Response {
    answer(StatusCode::OK, JSON, web.incidents_json())
}

/// The camera id in `/cameras/{id}/frame.jpg` as the request spelled it (not percent-decoded),
/// if it keeps to the config's alphabet: nothing else reaches a lookup.
pub fn camera_id(raw: &str) -> Option<&str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    (!raw.is_empty() && raw.len() <= 64 && raw.chars().all(plain)).then_some(raw)
}

/// The incident id in `/incidents/{id}/snapshot.jpg`, if it is a UUID.
pub fn incident_id(raw: &str) -> Option<Uuid> {
    Uuid::try_parse(raw).ok()
}

impl Web {
    pub fn new(stats: Arc<NodeStats>) -> Self {
        Web {
            stats,
            frames: Mutex::default(),
            incidents: Mutex::default(),
            encoder: Arc::new(Semaphore::new(1)),
        }
    }

    /// The watch hook for camera `camera`'s thread: it keeps the camera's frame at most once a
    /// second (a clone of an `Arc`, nothing encoded) and every incident message.
    /// Dropped with the camera's thread, it forgets the camera's frame.
    pub fn watcher(self: &Arc<Self>, camera: &str) -> impl FnMut(&Analysed<'_>) + Send + use<> {
        let watching = Watching { web: self.clone(), camera: camera.to_string() };
        let mut taken: Option<Instant> = None;
        move |analysed| {
            let Watching { web, camera } = &watching;
            if !analysed.incidents.is_empty() {
                web.keep_incidents(analysed);
            }
            if taken.is_none_or(|at| at.elapsed() >= FRAME_EVERY) {
                taken = Some(Instant::now());
                web.keep_frame(camera, analysed);
            }
        }
    }

    fn keep_frame(&self, camera: &str, analysed: &Analysed<'_>) {
        let seen = analysed.tracks.iter().filter(|t| t.state == TrackState::Confirmed);
        let latest = Latest {
            frame: analysed.frame.clone(),
            overlay: analysed.overlay.clone(),
            boxes: seen.map(|t| t.bbox).collect(),
            jpeg: None,
        };
        lock(&self.frames).insert(camera.to_string(), latest);
    }

    fn keep_incidents(&self, analysed: &Analysed<'_>) {
        let mut kept = lock(&self.incidents);
        for incident in analysed.incidents {
            let message = &incident.payload;
            if let Some(known) = kept.iter_mut().find(|k| k.message.id == message.id) {
                known.message = message.clone();
            } else if message.state == IncidentState::Start {
                kept.truncate(KEPT_INCIDENTS - 1);
                kept.push_front(Kept {
                    started_at: message.detected_at.clone(),
                    message: message.clone(),
                    snapshot: incident.evidence.clone().map(Snapshot::Frame),
                });
            }
            // Else an update or end of an incident no longer listed: nothing to show it with.
        }
        let mut held = 0;
        for known in kept.iter_mut() {
            if let Some(Snapshot::Frame(evidence)) = &known.snapshot {
                held += evidence.frame.held_bytes();
                if held > MAX_SNAPSHOT_FRAME_BYTES {
                    known.snapshot = None;
                }
            }
        }
    }

    fn cameras_json(&self) -> String {
        let frames = lock(&self.frames);
        let cameras: Vec<_> = self
            .stats
            .camera_states()
            .into_iter()
            .map(|(id, state)| {
                let latest = frames.get(&id);
                let overlay = latest.map(|l| &l.overlay);
                let frame = latest.map(|l| FrameJson {
                    url: format!("/cameras/{id}/frame.jpg"),
                    width: l.frame.width,
                    height: l.frame.height,
                    captured_at: rfc3339_millis(l.frame.captured_at),
                    stream_time_s: l.frame.stream_time_s,
                    objects: l.boxes.len(),
                });
                CameraJson {
                    id,
                    state,
                    frame,
                    zones: overlay.map_or_else(Vec::new, |o| {
                        o.zones
                            .iter()
                            .map(|(name, polygon)| ZoneJson {
                                name,
                                polygon: polygon.points().iter().map(|p| [p.x, p.y]).collect(),
                            })
                            .collect()
                    }),
                    lines: overlay.map_or(&[], |o| &o.lines),
                }
            })
            .collect();
        // Straight from the structs, not through `json!`: f32s keep their short form (0.9).
        let body = CamerasJson { node: self.stats.node(), cameras };
        serde_json::to_string(&body).expect("plain data serializes")
    }

    fn incidents_json(&self) -> String {
        let kept = lock(&self.incidents);
        let incidents: Vec<_> = kept
            .iter()
            .map(|k| IncidentJson {
                started_at: &k.started_at,
                snapshot: k
                    .snapshot
                    .as_ref()
                    .map(|_| format!("/incidents/{}/snapshot.jpg", k.message.id)),
                message: &k.message,
            })
            .collect();
        serde_json::to_string(&IncidentsJson { incidents }).expect("plain data serializes")
    }

    /// `/cameras/{id}/frame.jpg`: the camera's latest frame with its zones and lines in yellow
    /// and its objects in green.
    pub async fn frame_jpeg(&self, camera: &str) -> Response {
        let evidence = {
            let frames = lock(&self.frames);
            let Some(latest) = frames.get(camera) else {
                return not_found("no frame from this camera (yet)");
            };
            if let Some(jpeg) = &latest.jpeg {
                return jpeg_answer(jpeg.clone());
            }
            latest.overlay.evidence(latest.frame.clone(), latest.boxes.clone())
        };
        let frame = evidence.frame.clone();
        let jpeg = match self.encode(evidence).await {
            Ok(jpeg) => jpeg,
            Err(e) => return failed(&e),
        };
        // Unless a newer frame came in meanwhile, the next request gets this one as it is.
        if let Some(latest) = lock(&self.frames).get_mut(camera)
            && Arc::ptr_eq(&latest.frame, &frame)
        {
            latest.jpeg = Some(jpeg.clone());
        }
        jpeg_answer(jpeg)
    }

    /// `/incidents/{id}/snapshot.jpg`: an incident's snapshot, as MQTT carried it.
    pub async fn snapshot_jpeg(&self, id: Uuid) -> Response {
        // The messages carry it as text, in UUID's lowercase hyphenated form.
        let id = id.to_string();
        let evidence = {
            let kept = lock(&self.incidents);
            match kept.iter().find(|k| k.message.id == id).map(|k| &k.snapshot) {
                Some(Some(Snapshot::Jpeg(jpeg))) => return jpeg_answer(jpeg.clone()),
                Some(Some(Snapshot::Frame(evidence))) => evidence.clone(),
                Some(None) => return not_found("this incident has no snapshot"),
                None => return not_found("no such incident among the last ones"),
            }
        };
        let jpeg = match self.encode(evidence).await {
            Ok(jpeg) => jpeg,
            Err(e) => return failed(&e),
        };
        if let Some(known) = lock(&self.incidents).iter_mut().find(|k| k.message.id == id) {
            known.snapshot = Some(Snapshot::Jpeg(jpeg.clone()));
        }
        jpeg_answer(jpeg)
    }

    /// Encodes on a blocking thread, one picture at a time. The turn goes with the work, so a
    /// request that times out does not let another encode start beside it.
    async fn encode(&self, evidence: Evidence) -> Result<Arc<[u8]>, String> {
        let turn = self.encoder.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let encoded = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            evidence_jpeg(&evidence)
        });
        encoded.await.map_err(|e| format!("JPEG encoding stopped: {e}"))?.map(Arc::from)
    }
}

/// A camera's thread ends when a reload removes the camera or restarts its stream: the page
/// must not go on showing a picture from it.
struct Watching {
    web: Arc<Web>,
    camera: String,
}

impl Drop for Watching {
    fn drop(&mut self) {
        lock(&self.web.frames).remove(&self.camera);
    }
}

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

/// A kept JPEG, sent without copying it.
fn jpeg_answer(jpeg: Arc<[u8]>) -> Response {
    answer(StatusCode::OK, JPEG, Bytes::from_owner(jpeg))
}

fn not_found(why: &str) -> Response {
    answer(StatusCode::NOT_FOUND, TEXT, format!("{why}\n"))
}

fn failed(why: &str) -> Response {
    tracing::warn!("web page: {why}");
    answer(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{why}\n"))
}

/// A poisoned lock only means a thread panicked while it held it; what it guards stays usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Serialize)]
struct CamerasJson<'a> {
    node: &'a str,
    cameras: Vec<CameraJson<'a>>,
}

#[derive(Serialize)]
struct CameraJson<'a> {
    id: String,
    state: &'static str,
    frame: Option<FrameJson>,
    zones: Vec<ZoneJson<'a>>,
    lines: &'a [[[f32; 2]; 2]],
}

#[derive(Serialize)]
struct FrameJson {
    url: String,
    width: usize,
    height: usize,
    captured_at: String,
    stream_time_s: f64,
    objects: usize,
}

#[derive(Serialize)]
struct ZoneJson<'a> {
    name: &'a str,
    polygon: Vec<[f32; 2]>,
}

#[derive(Serialize)]
struct IncidentsJson<'a> {
    incidents: Vec<IncidentJson<'a>>,
}

#[derive(Serialize)]
struct IncidentJson<'a> {
    started_at: &'a str,
    snapshot: Option<String>,
    message: &'a IncidentPayload,
}

/// The store's handlers tested on their own; [`crate::http`]'s tests send requests for them
/// through the router, with these fixtures.
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::geometry::{Point, Polygon};
    use crate::incident::Incident;
    use crate::track::Track;
    use std::time::SystemTime;

    pub(crate) fn frame(second: u64) -> Arc<Frame> {
        Arc::new(Frame {
            width: 80,
            height: 60,
            data: vec![40; 80 * 60 * 3].into(),
            stream_time_s: second as f64,
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + second),
            metadata: Vec::new(),
        })
    }

    fn overlay() -> Overlay {
        let square = [(0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5)];
        let polygon = Polygon::new(square.iter().map(|&(x, y)| Point { x, y }).collect());
        Overlay {
            zones: vec![("no-parking".into(), polygon)],
            lines: vec![[[0.0, 0.9], [1.0, 0.9]]],
        }
    }

    fn track(state: TrackState) -> Track {
        Track {
            id: 1,
            class: "car".into(),
            confidence: 0.8,
            bbox: BBox { x: 0.1, y: 0.1, w: 0.2, h: 0.2 },
            state,
            first_seen_s: 0.0,
            last_seen_s: 0.0,
            plate: None,
        }
    }

    pub(crate) fn incident(id: &str, state: &str, frame: Option<&Arc<Frame>>) -> Incident {
        let payload = serde_json::json!({
            "schema": "cityeye.incident.v1", "id": id, "node": "edge-1", "camera": "kerb",
            "algorithm": "illegal_parking", "category": "street_order", "name_zh": "机动车违停",
            "name_en": "Illegal parking", "severity": "warning", "state": state,
            "zone": "no-parking", "detected_at": "2026-11-18T11:06:40.120Z",
            "stream_time_s": 20.0, "objects": [],
            "model": {"name": "coco", "sha256": "00"}
        });
        Incident {
            payload: serde_json::from_value(payload).unwrap(),
            evidence: frame.map(|f| overlay().evidence(f.clone(), vec![])),
            plate_pictures: Vec::new(),
            seen_at: None,
        }
    }

    fn web() -> Arc<Web> {
        Arc::new(Web::new(Arc::new(NodeStats::new("edge-1", ["kerb", "gate"]))))
    }

    pub(crate) fn see(
        watch: &mut impl FnMut(&Analysed<'_>),
        frame: &Arc<Frame>,
        incidents: &[Incident],
    ) {
        let tracks = [track(TrackState::Confirmed), track(TrackState::Lost)];
        let overlay = overlay();
        watch(&Analysed { frame, tracks: &tracks, incidents, overlay: &overlay });
    }

    /// Status, content type and body of a response.
    pub(crate) async fn read(response: Response) -> (StatusCode, String, Vec<u8>) {
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE);
        let content_type = content_type.map_or("", |v| v.to_str().unwrap()).to_string();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, content_type, body.to_vec())
    }

    async fn body(response: Response) -> serde_json::Value {
        let (status, content_type, body) = read(response).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, JSON));
        serde_json::from_slice(&body).unwrap()
    }

    pub(crate) fn uuid(n: u32) -> String {
        format!("01a1ffae-a177-7f4d-85bd-{n:012}")
    }

    #[test]
    fn ids_keep_to_the_config_alphabet_and_incident_ids_are_uuids() {
        assert_eq!(camera_id("kerb-2.a_b"), Some("kerb-2.a_b"));
        assert_eq!(camera_id(&"a".repeat(64)).map(str::len), Some(64));
        for raw in ["", "a/b", "%2e%2e", "<script>", "kerb cam", &"a".repeat(65)] {
            assert_eq!(camera_id(raw), None, "{raw}");
        }
        assert_eq!(incident_id(&uuid(7)), Some(Uuid::parse_str(&uuid(7)).unwrap()));
        for raw in ["not-a-uuid", "..", ""] {
            assert_eq!(incident_id(raw), None, "{raw}");
        }
    }

    #[tokio::test]
    async fn a_camera_shows_its_latest_frame_taken_at_most_once_a_second() {
        let web = web();
        let cameras_now = async || body(cameras(State(web.clone())).await).await;
        let cameras = cameras_now().await;
        assert_eq!(cameras["node"], "edge-1");
        assert_eq!(cameras["cameras"][1]["id"], "kerb");
        assert_eq!(cameras["cameras"][1]["state"], "connecting");
        assert!(cameras["cameras"][1]["frame"].is_null(), "{cameras}");
        assert_eq!(web.frame_jpeg("kerb").await.status(), StatusCode::NOT_FOUND);

        let mut watch = web.watcher("kerb");
        see(&mut watch, &frame(1), &[]);
        see(&mut watch, &frame(2), &[]); // within the second: not taken
        let cameras = cameras_now().await;
        let kerb = &cameras["cameras"][1];
        assert_eq!(kerb["frame"]["captured_at"], "2026-11-18T11:06:41.000Z", "{kerb}");
        assert_eq!(kerb["frame"]["url"], "/cameras/kerb/frame.jpg");
        assert_eq!(
            (kerb["frame"]["width"].as_u64(), kerb["frame"]["height"].as_u64()),
            (Some(80), Some(60))
        );
        assert_eq!(kerb["frame"]["objects"], 1, "confirmed tracks only: {kerb}");
        assert_eq!(kerb["zones"][0]["name"], "no-parking");
        assert_eq!(kerb["zones"][0]["polygon"][2], serde_json::json!([1.0, 0.5]));
        assert_eq!(kerb["lines"][0], serde_json::json!([[0.0, 0.9], [1.0, 0.9]]));
        assert!(cameras["cameras"][0]["frame"].is_null(), "gate has none: {cameras}");

        // The picture: the frame's size, the zone's edge yellow, the tracked box green.
        let (status, content_type, jpeg) = read(web.frame_jpeg("kerb").await).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, JPEG));
        let picture = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (80, 60));
        let zone_edge = picture.get_pixel(60, 0);
        assert!(zone_edge[0] > 180 && zone_edge[1] > 150 && zone_edge[2] < 100, "{zone_edge:?}");
        let box_edge = picture.get_pixel(12, 6);
        assert!(box_edge[1] > 120 && box_edge[0] < 100, "{box_edge:?}");
        // Asked again, the same encoding.
        assert_eq!(read(web.frame_jpeg("kerb").await).await.2, jpeg);
        // The camera's thread ends: its picture goes with it.
        drop(watch);
        assert_eq!(web.frame_jpeg("kerb").await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn incidents_are_listed_newest_first_with_their_latest_state_and_snapshot() {
        let web = web();
        let incidents_now = async || body(incidents(State(web.clone())).await).await;
        let mut watch = web.watcher("kerb");
        let f = frame(1);
        // An update or end of an incident the page never saw start is not listed.
        see(&mut watch, &f, &[incident(&uuid(0), "update", None)]);
        see(&mut watch, &f, &[incident(&uuid(1), "start", Some(&f))]);
        see(&mut watch, &f, &[incident(&uuid(2), "start", None), incident(&uuid(1), "end", None)]);
        let listed = incidents_now().await;
        let listed = listed["incidents"].as_array().unwrap().clone();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[0]["message"]["id"], uuid(2));
        assert!(listed[0]["snapshot"].is_null());
        assert_eq!(listed[1]["message"]["state"], "end");
        assert_eq!(listed[1]["started_at"], "2026-11-18T11:06:40.120Z");
        assert_eq!(listed[1]["snapshot"], format!("/incidents/{}/snapshot.jpg", uuid(1)));

        let id = |n| incident_id(&uuid(n)).unwrap();
        let (status, content_type, jpeg) = read(web.snapshot_jpeg(id(1)).await).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, JPEG));
        assert_eq!(image::load_from_memory(&jpeg).unwrap().width(), 80);
        // Once shown, only the JPEG is kept.
        let kept_jpeg =
            matches!(&lock(&web.incidents)[1].snapshot, Some(Snapshot::Jpeg(j)) if **j == *jpeg);
        assert!(kept_jpeg);
        assert_eq!(read(web.snapshot_jpeg(id(1)).await).await.2, jpeg, "shown again as kept");
        assert_eq!(web.snapshot_jpeg(id(2)).await.status(), StatusCode::NOT_FOUND);

        for n in 3..30 {
            see(&mut watch, &f, &[incident(&uuid(n), "start", Some(&f))]);
        }
        let listed = incidents_now().await;
        let ids: Vec<&str> = listed["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["message"]["id"].as_str().unwrap())
            .collect();
        let newest: Vec<String> = (10..30).rev().map(uuid).collect();
        assert_eq!(ids, newest);
        assert_eq!(web.snapshot_jpeg(id(1)).await.status(), StatusCode::NOT_FOUND, "forgotten");
    }

    #[test]
    fn the_oldest_snapshot_frames_are_let_go_past_the_memory_cap() {
        let web = web();
        let mut watch = web.watcher("kerb");
        // 4096×2560 frames, 31.5 MB each (never encoded here): two fit under the cap, three do not.
        let big = Arc::new(Frame {
            width: 4096,
            height: 2560,
            data: vec![0; 4096 * 2560 * 3].into(),
            ..Arc::unwrap_or_clone(frame(1))
        });
        for n in 1..=3 {
            see(&mut watch, &big, &[incident(&uuid(n), "start", Some(&big))]);
        }
        let kept = lock(&web.incidents);
        let held: Vec<bool> = kept.iter().map(|k| k.snapshot.is_some()).collect();
        assert_eq!(held, [true, true, false], "newest first");
        assert_eq!(kept.len(), 3, "the incident itself stays listed");
    }
}
