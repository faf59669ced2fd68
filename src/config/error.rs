//! Config mistakes: each names the file, the key and what is wrong, so an installer can fix
//! them all in one go.

use std::path::PathBuf;

/// One mistake in a config file: which file, which key, and what is wrong. Shown as
/// `file:line: key: message`, the line and key where known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), at_line(*line), at_key(key))]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

fn at_key(key: &str) -> String {
    if key.is_empty() { String::new() } else { format!(": {key}") }
}

/// All the mistakes found in one config file, one a line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn lines(errors: &[ConfigError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reads_file_line_key_message() {
        let error = |line, key: &str| ConfigError {
            file: PathBuf::from("/etc/cityeye/cityeye.toml"),
            key: key.into(),
            line,
            message: "must be above 0".into(),
        };
        let errors = ConfigErrors(vec![error(Some(12), "mqtt.keep_alive_s"), error(None, "")]);
        assert_eq!(
            errors.to_string(),
            "/etc/cityeye/cityeye.toml:12: mqtt.keep_alive_s: must be above 0\n\
             /etc/cityeye/cityeye.toml: must be above 0"
        );
    }
}
