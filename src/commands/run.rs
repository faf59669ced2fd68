//! `cityeye run`: the node, until SIGINT or SIGTERM (see [`crate::node`]).
//!
//! Everything the config names is loaded before the node starts, so a mistake in it exits with
//! [`EXIT_CONFIG`] (systemd does not restart the unit for it) whether the config file, a model
//! or an MQTT TLS or password file has it; failures of the box exit with 1.

use std::path::Path;
use std::process::ExitCode;

use super::{EXIT_CONFIG, load_config, load_link, report};
use crate::engine::load_models;
use crate::node::{self, DataDirLock};

pub fn run(path: &Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // Before the models, the slow part: a second node on this data dir stops at once.
    let data_dir = match DataDirLock::acquire(&config.node.data_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let models = match load_models(&config) {
        Ok(models) => models,
        Err(errors) => return report(errors),
    };
    let link = match load_link(&config) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match node::run_node(config, models, link, data_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
