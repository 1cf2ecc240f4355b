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
    /// The values load but the service's own checks refuse them (`--check-config`).
    #[error("config: {0}")]
    Check(String),
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

/// The valid key nearest to `found`, if one is near enough to be what was meant: at most a
/// third of its length in edits (and at least 2), the fewest edits first; else the longest
/// valid key that `found` begins with or that begins with `found` (`listen_addr`, `listen`).
fn nearest<'a>(found: &str, valid: &[&'a str]) -> Option<&'a str> {
    let allowed = (found.chars().count() / 3).max(2);
    let close = valid
        .iter()
        .map(|key| (strsim::damerau_levenshtein(found, key), *key))
        .filter(|(edits, _)| *edits <= allowed)
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, key)| key);
    close.or_else(|| {
        valid
            .iter()
            .filter(|key| key.len() >= 4 && (found.starts_with(**key) || key.starts_with(found)))
            .max_by_key(|key| key.len())
            .copied()
    })
}

/// figment's message for `kind`, with the nearest valid key when it is an unknown one.
fn describe(kind: &figment::error::Kind) -> String {
    let message = kind.to_string();
    match kind {
        figment::error::Kind::UnknownField(found, valid) => match nearest(found, valid) {
            Some(key) => format!("{message}; did you mean `{key}`?"),
            None => message,
        },
        _ => message,
    }
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        let message = describe(&err.kind);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_key_is_named_when_one_is_close() {
        let valid = ["flush_bytes", "flush_interval_ms", "max_buffered_bytes", "concurrency"];
        assert_eq!(nearest("flush_byte", &valid), Some("flush_bytes"));
        assert_eq!(nearest("concurrenc", &valid), Some("concurrency"));
        assert_eq!(nearest("flsuh_bytes", &valid), Some("flush_bytes"), "a transposition is one edit");
        assert_eq!(nearest("retention", &valid), None, "nothing close: no guess");
        assert_eq!(nearest("concurrency_limit", &valid), Some("concurrency"), "a key with more after it");
        let unknown = figment::error::Kind::UnknownField("concurenncy".into(), &["flush_bytes", "concurrency"]);
        assert!(describe(&unknown).ends_with("did you mean `concurrency`?"), "{}", describe(&unknown));
    }
}
