//! The one error type of configuration loading, naming the key and where its value came from.

use std::path::PathBuf;

use figment::Source;

use crate::env::ENV_SOURCE_NAME;

/// Why a service's configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong type or format.
    #[error("config key `{key}` ({origin}): {message}")]
    Invalid {
        /// Dotted key path (`kafka.bootstrap_servers`).
        key: String,
        /// Where the value came from: a file or an environment variable.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// The config file could not be read or is not valid TOML.
    #[error("config file {}: {message}", path.display())]
    File {
        /// The file given with `--config` or `DWSYNC_CONFIG`.
        path: PathBuf,
        /// Why it could not be used.
        message: String,
    },
    /// Anything else figment reports (defaults that do not serialize to a table, ...).
    #[error("config: {0}")]
    Other(String),
    /// The command line is not understood.
    #[error("{0} (try --help)")]
    Usage(String),
}

impl ConfigError {
    /// The dotted key path the error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        let message = err.kind.to_string();
        let Some(md) = err.metadata.as_ref() else {
            return Self::Other(err.to_string());
        };
        let file = match &md.source {
            Some(Source::File(path)) => Some(path.clone()),
            _ => None,
        };
        if err.path.is_empty() {
            return match file {
                Some(path) => Self::File { path, message },
                None => Self::Other(format!("{} ({})", message, md.name)),
            };
        }
        let origin = if md.name == ENV_SOURCE_NAME {
            let profile = err.profile.clone().unwrap_or_default();
            format!("environment variable {}", md.interpolate(&profile, &err.path))
        } else if let Some(path) = file {
            format!("file {}", path.display())
        } else {
            md.name.to_string()
        };
        Self::Invalid { key: err.path.join("."), origin, message }
    }
}
