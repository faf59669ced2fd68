//! cityeye: an edge video-analytics appliance. Camera streams in, city-event incidents out over
//! MQTT.
//!
//! Read it as a data pipeline, one module per stage, driven by the [`engine`]:
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
//! One rule holds the layout, in layers from the bottom:
//!
//! - **leaves**: [`geometry`] and [`frame`], plain data and maths;
//! - **contracts**: [`config`] (every type the TOML file names, loaded and validated before
//!   anything starts) and [`wire`] (every payload the node publishes). They import nothing
//!   above them;
//! - **stages**: the pipeline's stages above, and beside them [`clip`] (an MP4 clip per
//!   incident), [`drone`] (incidents placed on the ground), [`motion`] (the motion gate),
//!   [`draw`] (pictures), [`stats`] (the counters every stage adds to), [`verdict`] (operators'
//!   verdicts and the suppressions they leave), [`engine`] (the stages
//!   joined for one camera), [`node`] (the running node), [`http`] (metrics, health and the web
//!   page) and [`systemd`];
//! - **commands**: [`commands`], what the `cityeye` command line runs.
//!
//! A module imports only its own layer or those below, and no module imports one that imports
//! it back: `tests/layout.rs` checks both.

pub mod clip;
pub mod commands;
pub mod config;
pub mod draw;
pub mod drone;
pub mod engine;
pub mod frame;
pub mod geometry;
pub mod http;
pub mod incident;
pub mod infer;
pub mod ingest;
pub mod motion;
pub mod node;
pub mod plates;
pub mod publish;
pub mod rules;
pub mod stats;
pub mod systemd;
pub mod track;
pub mod verdict;
pub mod wire;
