//! [`ConfigError`], the one error of loading a config, and [`invalid`], how every check words a
//! fault: `<field path>: <problem>`, one line.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded. Its `Display` is one line, naming the field at fault.
#[derive(Debug)]
pub enum ConfigError {
    /// The config file could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not well-formed JSON (the message carries the line and column).
    Json(serde_json::Error),
    /// A value is wrong. `field` is its path, such as `backends[1].url` or `ssl.enabled`; it is
    /// empty when the problem is the document as a whole.
    Invalid { field: String, problem: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read config file {path:?}: {source}")
            }
            ConfigError::Json(error) => write!(f, "config is not valid JSON: {error}"),
            ConfigError::Invalid { field, problem } if field.is_empty() => f.write_str(problem),
            ConfigError::Invalid { field, problem } => write!(f, "{field}: {problem}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Json(error) => Some(error),
            ConfigError::Invalid { .. } => None,
        }
    }
}

pub(super) fn invalid(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        problem: problem.into(),
    }
}
