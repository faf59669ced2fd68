//! `cityeye suppressions list|remove`: the suppressions operators' `false_positive` verdicts
//! left in the node's data dir (see [`crate::verdict`]). A running node follows the file, so
//! a removal takes effect within seconds without a restart.

use std::path::Path;
use std::process::ExitCode;

use super::load_config;
use crate::verdict::{self, Suppression};

/// Prints each suppression in force, one a line: id, camera, algorithm, classes, expiry, who
/// and why.
pub fn list(config: &Path) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let suppressions = match verdict::load(&config.node.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if suppressions.is_empty() {
        println!("no suppressions in {}", config.node.data_dir.display());
    }
    for s in &suppressions {
        println!("{}", line(s));
    }
    ExitCode::SUCCESS
}

fn line(s: &Suppression) -> String {
    let classes: Vec<&str> = s.objects.iter().map(|o| o.class.as_str()).collect();
    let note = s.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
    format!(
        "{}  {}  {}  {}  until {}  by {}{note}  (incident {})",
        s.id,
        s.camera,
        s.algorithm,
        classes.join(","),
        s.expires_at,
        s.by,
        s.incident_id
    )
}

/// Removes suppression `id`, journaled as the login user's.
pub fn remove(config: &Path, id: &str) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let by = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_default();
    let by = if by.is_empty() { "cli".to_string() } else { by };
    match verdict::remove(&config.node.data_dir, id, &by, "cli") {
        Ok(removed) => {
            println!("removed {}", line(&removed));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
