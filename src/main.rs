//! The `cityeye` command line: parses it and hands each command to [`cityeye::commands`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{CommandFactory, Parser, Subcommand};

use cityeye::commands::replay::{self, ReplayRequest};
use cityeye::commands::simulate::{self, Codec};
use cityeye::commands::{algorithms, check, models, progress, run, suppressions, tail, user};
use cityeye::http::auth::Role;

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
        /// A video file, or a JPEG or PNG still, to take the frame from instead of the camera.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Where to write the JPEG.
        #[arg(long)]
        out: PathBuf,
        /// Print what was detected (classes, boxes, plates) as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the node's incidents and status from its broker, one line each, as they come.
    Tail {
        #[arg(long, short)]
        config: PathBuf,
        /// Also print the stats reports.
        #[arg(long)]
        stats: bool,
    },
    /// List or remove the suppressions operators' false_positive verdicts left (a running node
    /// follows within seconds).
    Suppressions {
        #[command(subcommand)]
        command: SuppressionsCommand,
    },
    /// Add a user of the node's web page to http.users_file (asks for the password).
    User {
        #[command(subcommand)]
        command: UserCommand,
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
    /// Write the manual pages (roff: cityeye.1 and one per command) into a folder.
    /// `scripts/package` ships them; hidden because operators read them, not make them.
    #[command(hide = true)]
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StreamCodec {
    H264,
    H265,
}

#[derive(Subcommand)]
enum SuppressionsCommand {
    /// One line per suppression in force: id, camera, algorithm, classes, expiry, who, why.
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Remove one: that place raises incidents again.
    Remove {
        #[arg(long, short)]
        config: PathBuf,
        /// The suppression's id, as `list` prints it.
        id: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or give one a new role and password. The password is read from the
    /// terminal (twice, not shown), or as the first line of stdin when that is no terminal.
    Add {
        #[arg(long, short)]
        config: PathBuf,
        name: String,
        #[arg(long, value_enum)]
        role: UserRole,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum UserRole {
    /// Sees cameras, incidents and suppressions; gives verdicts.
    Viewer,
    /// Also edits zones, lines and algorithms, and removes suppressions.
    Installer,
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

/// The pages come from the same definitions as `--help`, so they cannot drift from it. A build
/// script could not see `Cli` (it lives in this binary, not the library), hence a command.
fn write_man_pages(dir: &Path) -> ExitCode {
    let written =
        std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(Cli::command(), dir));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cityeye man: cannot write the manual pages into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

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
        Command::Run { config } => run::run(&config),
        Command::Check { config, probe } => check::check(&config, probe),
        Command::Replay { config, camera, input, out, start_time, annotate } => {
            let request = ReplayRequest {
                camera: &camera,
                input: &input,
                out_dir: &out,
                start: start_time.unwrap_or_else(SystemTime::now),
                annotate: annotate.as_deref(),
            };
            let json_logs = cli.log_format == LogFormat::Json;
            let progress = progress::wanted(std::io::stderr().is_terminal(), json_logs);
            replay::replay_command(&config, &request, progress)
        }
        Command::Simulate { config, videos, default_video, codec } => {
            let codec = match codec {
                StreamCodec::H264 => Codec::H264,
                StreamCodec::H265 => Codec::H265,
            };
            simulate::simulate(&config, &videos, default_video.as_deref(), codec)
        }
        Command::Algorithms { json } => algorithms::algorithms(json),
        Command::Man { out_dir } => write_man_pages(&out_dir),
        Command::Tail { config, stats } => tail::tail(&config, stats),
        Command::Suppressions { command } => match command {
            SuppressionsCommand::List { config } => suppressions::list(&config),
            SuppressionsCommand::Remove { config, id } => suppressions::remove(&config, &id),
        },
        Command::User { command: UserCommand::Add { config, name, role } } => {
            let role = match role {
                UserRole::Viewer => Role::Viewer,
                UserRole::Installer => Role::Installer,
            };
            user::add(&config, &name, role)
        }
        Command::Models { command: ModelsCommand::Inspect { model } } => {
            models::inspect_model(&model)
        }
        Command::Preview { config, camera, input, out, json } => {
            replay::preview_command(&config, &camera, input.as_deref(), &out, json)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::ExitCode;

    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn man_writes_a_page_per_command_but_not_for_itself() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("man");
        assert_eq!(super::write_man_pages(&out), ExitCode::SUCCESS);
        let main = std::fs::read_to_string(out.join("cityeye.1")).unwrap();
        assert!(main.starts_with(".ie \\n(.g .ds Aq"), "roff: {main}");
        assert!(main.contains("cityeye\\-run(1)"), "the commands are listed: {main}");
        assert!(!main.contains("cityeye\\-man"), "the hidden command is not: {main}");
        let check = std::fs::read_to_string(out.join("cityeye-check.1")).unwrap();
        assert!(check.contains("\\-\\-probe"), "{check}");
        assert!(out.join("cityeye-models-inspect.1").is_file());
        assert!(!out.join("cityeye-man.1").exists());
    }

    #[test]
    fn man_says_why_it_cannot_write() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // A folder inside a plain file cannot be made: an error on stderr, not a panic.
        assert_eq!(super::write_man_pages(&file.path().join("man")), ExitCode::FAILURE);
    }
}
