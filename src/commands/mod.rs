//! The `cityeye` commands: each one's work, with what it prints and the exit code it returns.
//! `src/main.rs` parses the command line and calls these; the engine and the stages know none
//! of them.
//!
//! Exit codes: 0 done, 1 failed while running, [`EXIT_CONFIG`] a mistake in the config or the
//! command line (fix the input, not the box).

pub mod algorithms;
pub mod annotate;
pub mod check;
pub mod models;
pub mod probe;
pub mod progress;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod suppressions;
pub mod tail;
pub mod user;

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigErrors};
use crate::engine::{Models, load_models};
use crate::publish::link;

/// Exit code for a config (or usage) mistake, as opposed to a failure at run time.
pub const EXIT_CONFIG: u8 = 2;

/// Prints every mistake and gives the config-mistake exit code.
fn report(errors: ConfigErrors) -> ExitCode {
    for e in &errors.0 {
        eprintln!("error: {e}");
    }
    ExitCode::from(EXIT_CONFIG)
}

/// Loads the config, printing every mistake.
fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(report)
}

/// Loads the config and its models, printing every mistake.
fn load(path: &Path) -> Result<(Config, Models), ExitCode> {
    let config = load_config(path)?;
    let models = load_models(&config).map_err(report)?;
    Ok((config, models))
}

/// Reads the MQTT password, CA, certificate and key files the config names, as the node does:
/// a mistake there is the config's. The error is the line to print after `error: `.
fn load_link(config: &Config) -> Result<link::Settings, String> {
    link::Settings::load(&config.mqtt, &config.node.id)
        .map_err(|e| format!("{}: {e}", config.path.display()))
}
