//! cityeye: an edge video-analytics appliance. Camera streams in, city-event incidents out over
//! MQTT.
//!
//! Read it as a data pipeline, one module per stage, wired together in [`pipeline`]:
//!
//! | stage | module | in → out |
//! |---|---|---|
//! | ingest | [`ingest`] | camera URL → decoded, sampled [`frame::Frame`]s (GStreamer) |
//! | infer | [`infer`] | frame → [`geometry::Detection`]s (ONNX Runtime) |
//! | track | [`track`] | detections → tracks with stable ids |
//! | rules | [`rules`] | tracks → incident start/end events |
//! | incidents | [`incident`] | events → `cityeye.incident.v1` payloads and evidence |
//! | publish | [`publish`] | payloads → MQTT (or a replay folder) |
//!
//! A drone camera's frames also pass through [`drone`], which places its incidents on the
//! ground from the drone's telemetry. Beside them, [`clip`] keeps each camera's encoded stream
//! and cuts an MP4 clip per incident; [`draw`] makes the pictures (evidence, previews,
//! [`annotate`]d replays). For operators, [`progress`] shows a replay's progress and
//! [`simulate`] serves video files as RTSP cameras.
//! [`config`] loads and validates the node's TOML file before any of it starts; [`stats`] holds
//! the counters every stage adds to, published on the stats topic; [`http`] serves them and
//! the [`http::web`] page.

pub mod annotate;
pub mod clip;
pub mod config;
pub mod draw;
pub mod drone;
pub mod frame;
pub mod geometry;
pub mod http;
pub mod incident;
pub mod infer;
pub mod ingest;
pub mod motion;
pub mod node;
pub mod pipeline;
pub mod probe;
pub mod progress;
pub mod publish;
pub mod rules;
pub mod simulate;
pub mod stats;
pub mod systemd;
pub mod tail;
pub mod track;
