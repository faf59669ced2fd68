//! `cityeye check`: the config validated, every model loaded, and each camera's pipeline and
//! algorithms shown as they will run; with `--probe`, every camera, the broker and the data dir
//! tried for real ([`super::probe`]).

use std::path::Path;
use std::process::ExitCode;

use super::{EXIT_CONFIG, load, probe};
use crate::config::pipeline_description;
use crate::publish;

pub fn check(path: &Path, with_probe: bool) -> ExitCode {
    let (config, models) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // Reads the CA, certificate, key and password files as `run` would.
    let link = match publish::link::Settings::load(&config.mqtt, &config.node.id) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("error: {}: {e}", config.path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
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
    }
    for camera in &config.cameras {
        println!(
            "camera {} (models {}, {} fps)",
            camera.id,
            camera.models.join(", "),
            camera.analysis_fps
        );
        println!("  url      {}", camera.url.masked());
        match pipeline_description(camera, true) {
            Ok(p) => println!("  pipeline {p}"),
            Err(e) => println!("  pipeline error: {e}"),
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
    if with_probe {
        println!();
        if !probe::run(&config, &link) {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
