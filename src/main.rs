//! The `cityeye` command: run a node, check its config, or replay a video through a camera's
//! analysis.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};

use cityeye::config::{Config, ConfigErrors};
use cityeye::{ingest, pipeline};

#[derive(Parser)]
#[command(
    name = "cityeye",
    version,
    about = "Edge video analytics: camera streams in, city-event incidents out over MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: analyse every camera and publish incidents until stopped.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate the config, load each model and show each camera's pipeline.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run one camera's analysis over a video file as fast as possible and write the results.
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// The camera whose zones, algorithms and model to use.
        #[arg(long)]
        camera: String,
        /// The video file to analyse.
        #[arg(long)]
        input: PathBuf,
        /// Where to write incidents.jsonl and evidence/.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Exit code for a config (or usage) mistake, as opposed to a failure at run time.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Replay { config, camera, input, out } => replay(&config, &camera, &input, &out),
    }
}

/// Loads the config and its models, printing every mistake.
fn load(path: &std::path::Path) -> Result<(Config, pipeline::Detectors), ExitCode> {
    let report = |errors: ConfigErrors| {
        for e in &errors.0 {
            eprintln!("error: {e}");
        }
        ExitCode::from(EXIT_CONFIG)
    };
    let config = Config::load(path).map_err(report)?;
    let detectors = pipeline::load_models(&config).map_err(report)?;
    Ok((config, detectors))
}

fn run(path: &std::path::Path) -> ExitCode {
    let (config, detectors) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match pipeline::run_node(config, detectors) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let (config, detectors) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    println!("config {}: valid", config.path.display());
    let broker = &config.mqtt.url;
    let scheme = if broker.tls { "mqtts" } else { "mqtt" };
    let embedded = if config.mqtt.embedded_broker { " (embedded broker)" } else { "" };
    println!(
        "mqtt {scheme}://{}:{}{embedded}, topics under {}/{}/",
        broker.host, broker.port, config.mqtt.topic_prefix, config.node.id
    );
    for model in &config.models {
        let d = &detectors[&model.name];
        println!("model {} ({}, {})", model.name, model.format.name(), model.path.display());
        println!("  sha256  {}", d.summary.sha256);
        for input in &d.summary.inputs {
            println!("  input   {input}");
        }
        for output in &d.summary.outputs {
            println!("  output  {output}");
        }
        println!("  classes {}", d.summary.classes);
    }
    for camera in &config.cameras {
        println!("camera {} (model {}, {} fps)", camera.id, camera.model, camera.analysis_fps);
        println!("  url      {}", camera.url.masked());
        match ingest::pipeline_description(camera, true) {
            Ok(p) => println!("  pipeline {p}"),
            Err(e) => println!("  pipeline error: {e}"),
        }
        for a in &camera.algorithms {
            let zone = a.zone.as_deref().unwrap_or("whole frame");
            println!(
                "  algorithm {} in {zone}: {} for {} s",
                a.kind.id(),
                a.classes.join("/"),
                a.dwell_s
            );
        }
    }
    ExitCode::SUCCESS
}

fn replay(
    path: &std::path::Path,
    camera: &str,
    input: &std::path::Path,
    out: &std::path::Path,
) -> ExitCode {
    let (config, detectors) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match pipeline::replay(&config, &detectors, camera, input, out, SystemTime::now()) {
        Ok(s) => {
            println!(
                "frames decoded {}, frames analysed {}, analysed frames/s {:.1}, incidents {}",
                s.frames_decoded,
                s.frames_analysed,
                s.analysed_fps(),
                s.incidents
            );
            println!("results in {}", out.display());
            ExitCode::SUCCESS
        }
        Err(pipeline::ReplayError::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(pipeline::ReplayError::Failed(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
