//! The analysis engine, top to bottom: **ingest → infer → track → rules → incidents → publish**.
//!
//! Each camera runs on a thread of its own: GStreamer decodes into the camera's appsink (one
//! frame, newest wins). The thread hands each sampled frame to the camera's detection stage,
//! where worker threads run its detectors (each model loaded once, shared by the cameras using
//! it, with a pool of sessions so several frames run side by side), and takes the frames back
//! in stream order through its tracker, the second-stage classifiers its cascade algorithms
//! name, its rules and its incident stage. Messages go to the sink through a bounded channel
//! that blocks when full. The sink is MQTT for a running node, or a folder for a replay, and
//! both receive exactly the same messages.
//!
//! The parts: `models.rs` (loaded once, shared), `analysis.rs` (one camera's stages after
//! detection), `detection.rs` (the worker pool), `camera.rs` (one camera's run), `patrol.rs`
//! (the turns of patrolled cameras) and `view.rs` (what watchers of the analysis see). The commands (`replay`, `preview`) and the running
//! node drive it; it knows neither.

mod analysis;
mod camera;
mod detection;
mod models;
mod patrol;
mod view;

pub use analysis::Analysis;
pub use camera::{Outputs, run_camera};
pub use models::{Models, load_models, reload_models};
pub use patrol::Patrol;
pub use view::{Analysed, Overlay, Watch};
