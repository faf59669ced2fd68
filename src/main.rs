//! The `cityeye` command: run a node, check its config, replay a video through a camera's
//! analysis, or serve videos as a site's cameras.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use clap::{Parser, Subcommand};

use cityeye::config::{Config, ConfigErrors};
use cityeye::progress::{self, Progress};
use cityeye::rules::catalog;
use cityeye::simulate::{self, Codec};
use cityeye::stats::CameraStats;
use cityeye::{ingest, node, pipeline, publish};

#[derive(Parser)]
#[command(
    name = "cityeye",
    version,
    about = "Edge video analytics: camera streams in, city-event incidents out over MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Logs on stderr: `text` for people, `json` (one object a line) for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
        /// Also open every camera, publish to the broker and write to the data dir, and print
        /// what works; exit code 1 when anything does not.
        #[arg(long)]
        probe: bool,
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
        /// Wall-clock time of the video's first frame (RFC 3339), for schedules and timestamps;
        /// now when absent.
        #[arg(long, value_parser = parse_time)]
        start_time: Option<SystemTime>,
        /// Also write the analysed frames as a video (H.264 in MP4) with the zones, lines,
        /// tracks and incidents drawn.
        #[arg(long, value_name = "OUT.mp4")]
        annotate: Option<PathBuf>,
    },
    /// Serve video files as the config's RTSP cameras on this machine (127.0.0.1, ::1 or
    /// localhost URLs only), looped, until stopped: a site rehearsed without its cameras.
    #[command(group = clap::ArgGroup::new("sources").required(true).multiple(true))]
    Simulate {
        #[arg(long, short)]
        config: PathBuf,
        /// The video one camera shows; repeat for each camera.
        #[arg(long = "video", value_name = "CAMERA=FILE", value_parser = parse_video, group = "sources")]
        videos: Vec<(String, PathBuf)>,
        /// The video every other rtsp:// camera of the config shows.
        #[arg(long, value_name = "FILE", group = "sources")]
        default_video: Option<PathBuf>,
        /// What the streams are encoded with.
        #[arg(long, value_enum, default_value_t = StreamCodec::H264)]
        codec: StreamCodec,
    },
    /// Draw a camera's zones, lines and detections on one of its frames, to check a site.
    Preview {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        camera: String,
        /// A video file to take the frame from instead of the camera.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Where to write the JPEG.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the node's incidents and status from its broker, one line each, as they come.
    Tail {
        #[arg(long, short)]
        config: PathBuf,
        /// Also print the stats reports.
        #[arg(long)]
        stats: bool,
    },
    /// Look at model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// List the algorithm catalog: id, names, category, primitive, classes.
    Algorithms {
        /// One JSON object a line, for machines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StreamCodec {
    H264,
    H265,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Print an ONNX file's inputs, outputs, opsets and metadata, and the `format` it fits.
    Inspect { model: PathBuf },
}

fn parse_time(text: &str) -> Result<SystemTime, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(SystemTime::from)
        .map_err(|e| format!("not an RFC 3339 time such as 2026-11-21T08:00:00+08:00: {e}"))
}

fn parse_video(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((camera, file)) if !camera.is_empty() && !file.is_empty() => {
            Ok((camera.to_string(), PathBuf::from(file)))
        }
        _ => Err("expected CAMERA=FILE, such as kerb=videos/kerb.mp4".into()),
    }
}

/// Exit code for a config (or usage) mistake, as opposed to a failure at run time.
const EXIT_CONFIG: u8 = 2;

/// glibc gives threads up to 8 malloc arenas per core, and each camera runs several threads:
/// freed memory stays spread over the arenas. One arena per core, and blocks of 1 MiB and more
/// (frames, tensors) mapped and returned on their own, took 3 MB a camera off 13 live 720p
/// cameras' resident memory. Must run before any thread starts.
fn bound_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only sets allocator parameters; no thread is running yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores.try_into().unwrap_or(8));
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}

fn main() -> ExitCode {
    bound_malloc_arenas();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=off".into()),
        )
        .with_writer(progress::LogWriter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config, probe } => check(&config, probe),
        Command::Replay { config, camera, input, out, start_time, annotate } => {
            let request = pipeline::ReplayRequest {
                camera: &camera,
                input: &input,
                out_dir: &out,
                start: start_time.unwrap_or_else(SystemTime::now),
                annotate: annotate.as_deref(),
            };
            let json_logs = cli.log_format == LogFormat::Json;
            replay(&config, &request, progress::wanted(std::io::stderr().is_terminal(), json_logs))
        }
        Command::Simulate { config, videos, default_video, codec } => {
            let codec = match codec {
                StreamCodec::H264 => Codec::H264,
                StreamCodec::H265 => Codec::H265,
            };
            simulate(&config, &videos, default_video.as_deref(), codec)
        }
        Command::Algorithms { json } => algorithms(json),
        Command::Tail { config, stats } => tail(&config, stats),
        Command::Models { command: ModelsCommand::Inspect { model } } => inspect_model(&model),
        Command::Preview { config, camera, input, out } => {
            preview(&config, &camera, input.as_deref(), &out)
        }
    }
}

fn tail(path: &std::path::Path, with_stats: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            errors.0.iter().for_each(|e| eprintln!("error: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cityeye::tail::run(&config, with_stats) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inspect_model(path: &std::path::Path) -> ExitCode {
    match cityeye::infer::inspect::inspect(path) {
        Ok(inspection) => {
            print!("{inspection}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Loads the config and its models, printing every mistake.
fn load(path: &std::path::Path) -> Result<(Config, pipeline::Models), ExitCode> {
    let report = |errors: ConfigErrors| {
        for e in &errors.0 {
            eprintln!("error: {e}");
        }
        ExitCode::from(EXIT_CONFIG)
    };
    let config = Config::load(path).map_err(report)?;
    let models = pipeline::load_models(&config).map_err(report)?;
    Ok((config, models))
}

fn run(path: &std::path::Path) -> ExitCode {
    let (config, models) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match node::run_node(config, models) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path, probe: bool) -> ExitCode {
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
        match ingest::pipeline_description(camera, true) {
            Ok(p) => println!("  pipeline {p}"),
            Err(e) => println!("  pipeline error: {e}"),
        }
        if let Some(telemetry) = &camera.telemetry {
            println!("  telemetry {}", telemetry.describe(&config.mqtt.url));
        }
        for a in &camera.algorithms {
            let zone = a.zone.as_deref().unwrap_or("the whole frame");
            let entry = catalog::find(&a.kind).expect("checked by the config");
            let classes = a.classes.as_ref().unwrap_or(&entry.classes).join(", ");
            let params = a.params.or(&entry.params);
            let schedule = a.schedule.as_ref().map_or("always".into(), |s| s.join(", "));
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
                a.severity.unwrap_or(entry.severity).name(),
                a.cooldown_s.unwrap_or(entry.cooldown_s),
                a.update_s.unwrap_or(entry.update_s),
            );
        }
    }
    if probe {
        println!();
        if !cityeye::probe::run(&config, &link) {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn preview(
    path: &std::path::Path,
    camera: &str,
    input: Option<&std::path::Path>,
    out: &std::path::Path,
) -> ExitCode {
    let (config, models) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let written = pipeline::preview(&config, &models, camera, input).and_then(|jpeg| {
        std::fs::write(out, jpeg).map_err(|e| {
            pipeline::ReplayError::Failed(format!("cannot write {}: {e}", out.display()))
        })
    });
    match written {
        Ok(()) => {
            println!("{} written: zones and lines in yellow, detections in green", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// A usage mistake (unknown camera, missing file) exits like a config mistake.
fn failed(error: pipeline::ReplayError) -> ExitCode {
    match error {
        pipeline::ReplayError::Usage(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        pipeline::ReplayError::Failed(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn algorithms(json: bool) -> ExitCode {
    // A reader that stops early (`| head`) is not an error.
    let mut out = std::io::stdout().lock();
    for e in catalog::entries() {
        let partners = e.params.partner_classes.clone().unwrap_or_default();
        let written = if json {
            let line = serde_json::json!({
                "id": e.id,
                "name_zh": e.name_zh,
                "name_en": e.name_en,
                "category": e.category.name(),
                "primitive": e.primitive.name(),
                "classes": e.classes,
                "partner_classes": partners,
                "severity": e.severity.name(),
                "description": e.description,
            });
            writeln!(out, "{line}")
        } else {
            let mut classes = e.classes.join(", ");
            if !partners.is_empty() {
                classes = format!("{classes} + {}", partners.join(", "));
            }
            writeln!(
                out,
                "{:<26} {:<13} {:<11} {} ({})\n{:<26} classes: {classes}",
                e.id,
                e.category.name(),
                e.primitive.name(),
                e.name_en,
                e.name_zh,
                ""
            )
        };
        if written.is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn replay(
    path: &std::path::Path,
    request: &pipeline::ReplayRequest<'_>,
    progress: bool,
) -> ExitCode {
    let (config, models) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let stats = Arc::new(CameraStats::default());
    let bar = progress.then(|| Progress::start(progress::frames_in(request.input), stats.clone()));
    let replayed = pipeline::replay(&config, &models, request, &stats);
    drop(bar);
    match replayed {
        Ok(s) => {
            println!(
                "frames decoded {}, frames analysed {}, analysed frames/s {:.1}, incidents {}",
                s.frames_decoded,
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

fn simulate(
    path: &std::path::Path,
    videos: &[(String, PathBuf)],
    default_video: Option<&std::path::Path>,
    codec: Codec,
) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            errors.0.iter().for_each(|e| eprintln!("error: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let cameras = config.cameras.iter().map(|c| (c.id.as_str(), &c.url));
    let served = match simulate::plan(cameras, videos, default_video) {
        Ok(served) => served,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("error: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut servers = Vec::new();
    for ((address, port), mounts) in simulate::servers(&served) {
        match simulate::Server::start(address, port, &mounts, codec) {
            Ok(server) => servers.push(server),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rows: Vec<[String; 3]> = served
        .iter()
        .map(|s| {
            let server = servers.iter().find(|v| v.port() == s.port);
            let url = server.map_or_else(String::new, |v| v.url(&s.mount.path));
            [s.camera.clone(), url, s.mount.video.display().to_string()]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(6);
    let (w0, w1) = (width(0), width(1));
    println!("{:<w0$}  {:<w1$}  video", "camera", "url");
    for [camera, url, video] in &rows {
        println!("{camera:<w0$}  {url:<w1$}  {video}");
    }
    let codec = match codec {
        Codec::H264 => "H.264",
        Codec::H265 => "H.265",
    };
    let cameras =
        if rows.len() == 1 { "1 camera".into() } else { format!("{} cameras", rows.len()) };
    println!("serving {cameras} as {codec}, each video looped, until Ctrl-C");
    let _ = std::io::stdout().flush();
    match wait_for_signal() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
