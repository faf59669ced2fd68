//! `cityeye check`: the config validated, every model loaded, every camera's pipeline built
//! (not started), the outbox read, and each camera's pipeline and algorithms shown as they will
//! run; with `--probe`, every camera, the broker and the data dir tried for real
//! ([`super::probe`]).

use std::path::Path;
use std::process::ExitCode;

use super::{EXIT_CONFIG, load, load_link, probe};
use crate::config::{CameraConfig, Config, Decode, pipeline_description, record_description};
use crate::ingest::{self, IngestError};
use crate::publish;

pub fn check(path: &Path, with_probe: bool) -> ExitCode {
    let (config, models) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut errors = Vec::new();
    let link = load_link(&config).map_err(|e| errors.push(e)).ok();
    errors.extend(unbuildable_pipelines(&config));
    // What `run` would find in the data dir. It sets a corrupt outbox aside, but an installer
    // should hear of it before: its undelivered incidents are lost to the broker.
    if let Err(e) = publish::Outbox::inspect(&config.node.data_dir) {
        let message = format!("{e}; `cityeye run` sets it aside and starts a fresh one");
        errors.push(config.error("node.data_dir", message).to_string());
    }
    let Some(link) = link.filter(|_| errors.is_empty()) else {
        for e in errors {
            eprintln!("error: {e}");
        }
        return ExitCode::from(EXIT_CONFIG);
    };
    println!("config {}: valid", config.path.display());
    let embedded = if config.mqtt.embedded_broker { " (embedded broker)" } else { "" };
    println!(
        "mqtt {}{embedded}, topics under {}/{}/",
        link.describe(),
        config.mqtt.topic_prefix,
        config.node.id
    );
    if config.http.enabled {
        println!("http http://{} (web page, /metrics, /healthz)", config.http.listen);
    }
    for model in &config.models {
        let summary = match (models.detectors.get(&model.name), models.classifiers.get(&model.name))
        {
            (Some(d), _) => &d.summary,
            (_, Some(c)) => &c.summary,
            (None, None) => continue,
        };
        println!("model {} ({}, {})", model.name, model.format.name(), model.path.display());
        println!("  sha256  {}", summary.sha256);
        for input in &summary.inputs {
            println!("  input   {input}");
        }
        for output in &summary.outputs {
            println!("  output  {output}");
        }
        println!("  classes {}", summary.classes);
        println!("  device  {}", model.describe_device());
        let placement: Vec<String> = summary
            .placement
            .iter()
            .map(|(provider, nodes)| {
                format!("{provider} {nodes} node{}", if *nodes == 1 { "" } else { "s" })
            })
            .collect();
        let placement =
            if placement.is_empty() { "unknown".to_string() } else { placement.join(", ") };
        println!("  runs on {placement}");
    }
    for camera in &config.cameras {
        println!(
            "camera {} (models {}, {} fps)",
            camera.id,
            camera.models.join(", "),
            camera.analysis_fps
        );
        match &camera.record_url {
            None => println!("  url      {}", camera.url.masked()),
            Some(record) => {
                println!("  detect   {}: analysed, snapshots", camera.url.masked());
                let clips = if config.evidence.clips {
                    "clips, never decoded"
                } else {
                    "unused: evidence.clips is off"
                };
                println!("  record   {}: {clips}", record.masked());
            }
        }
        println!("  decode   {}", decode_reason(camera));
        if let Some(patrol) = config.patrol_of(&camera.id) {
            let clips = match camera.record_url {
                Some(_) => "clips from its record stream, which stays open",
                None => "no clips (a record_url would give them)",
            };
            println!("  patrol   {}: open only during its visits; {clips}", patrol.id);
        }
        match pipeline_description(camera, true) {
            Ok(p) => println!("  pipeline {p}"),
            Err(e) => println!("  pipeline error: {e}"),
        }
        if let Some(Ok(p)) = record_description(camera, true) {
            println!("  record pipeline {p}");
        }
        if let Some(telemetry) = &camera.telemetry {
            println!("  telemetry {}", telemetry.describe(&config.mqtt.url));
        }
        for a in &camera.resolved {
            let (entry, params) = (a.entry, &a.params);
            let zone = a.zone.as_deref().unwrap_or("the whole frame");
            let classes = a.classes.join(", ");
            let schedule =
                if a.schedule.is_empty() { "always".into() } else { a.schedule.join(", ") };
            println!(
                "  algorithm {} ({}, {}) in {zone}: {} on {classes}; {}",
                entry.id,
                entry.name_en,
                entry.name_zh,
                entry.primitive.name(),
                params.describe()
            );
            println!(
                "    severity {}, cooldown_s {}, update_s {}, on duty {schedule}",
                a.severity.name(),
                a.cooldown_s,
                a.update_s,
            );
        }
    }
    for patrol in &config.patrols {
        let members = patrol.members(config.cameras.iter().map(|c| c.id.as_str()));
        // Each round opens `slots` cameras for a visit; opening a stream adds a second or so.
        let rounds = members.len().div_ceil(patrol.slots);
        println!(
            "patrol {}: {} cameras ({}), {} at a time for {} s each; each revisited about every \
             {} s or more",
            patrol.id,
            members.len(),
            members.join(", "),
            patrol.slots,
            patrol.visit_s,
            rounds as f64 * patrol.visit_s
        );
    }
    if with_probe {
        println!();
        if !probe::run(&config, &link) {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// The camera's decode mode and why: what it was set to, and what its algorithms need.
fn decode_reason(camera: &CameraConfig) -> String {
    let needs = match camera.needed_fps() {
        Some((fps, algorithm)) => format!("{algorithm} needs {fps} frames/s"),
        None => "no algorithm needs any frame rate".into(),
    };
    match camera.decode {
        Decode::All => {
            format!("all: every frame, sampled at {} fps ({needs})", camera.analysis_fps)
        }
        Decode::Keyframes => {
            format!(
                "keyframes: delta frames dropped before the decoder, key frames of H.264 and \
                 H.265 decoded by a decoder shared with the key-frame cameras of the same codec \
                 and size; {needs}, which key frames serve"
            )
        }
        Decode::Auto => format!(
            "auto: key frames only once the stream's key-frame rate is measured and serves every \
             algorithm ({needs}), else every frame"
        ),
    }
}

/// The cameras whose pipeline GStreamer cannot build, one error each. GStreamer's words only:
/// a `pipeline` naming a file that is no template (`/etc/passwd`) must not be shown.
fn unbuildable_pipelines(config: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, camera) in config.cameras.iter().enumerate() {
        let parsed = [
            ("pipeline", Some(ingest::parse_pipeline(camera))),
            ("record_url", ingest::parse_record_pipeline(camera)),
        ];
        for (key, outcome) in parsed {
            let message = match outcome {
                None | Some(Ok(())) => continue,
                Some(Err(IngestError::Build(gst))) => format!("not a GStreamer pipeline: {gst}"),
                Some(Err(e)) => e.to_string(),
            };
            errors.push(config.error(format!("cameras[{i}].{key}"), message).to_string());
        }
    }
    errors
}
