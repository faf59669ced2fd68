//! `cityeye run`: the node, until SIGINT or SIGTERM (see [`crate::node`]).

use std::path::Path;
use std::process::ExitCode;

use super::load;
use crate::node;

pub fn run(path: &Path) -> ExitCode {
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
