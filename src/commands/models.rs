//! `cityeye models inspect`: what an ONNX file holds, and the `format` it fits.

use std::path::Path;
use std::process::ExitCode;

use super::EXIT_CONFIG;
use crate::infer::inspect;

pub fn inspect_model(path: &Path) -> ExitCode {
    match inspect::inspect(path) {
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
