//! `cityeye algorithms`: the algorithm catalog, for people or (`--json`) for machines.

use std::io::Write;
use std::process::ExitCode;

use crate::config::catalog;

pub fn algorithms(json: bool) -> ExitCode {
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
                "min_fps": e.min_fps,
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
                "{:<26} {:<13} {:<11} {} ({})\n{:<26} classes: {classes}; min_fps {}",
                e.id,
                e.category.name(),
                e.primitive.name(),
                e.name_en,
                e.name_zh,
                "",
                e.min_fps
            )
        };
        if written.is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
