//! The command line every service shares: `--config <path>` and `--help`, nothing else.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::{CONFIG_ENV, ConfigError};

/// A service's parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// The TOML config file: `--config <path>`, else `$DWSYNC_CONFIG`, else none (defaults and
    /// environment only).
    pub config: Option<PathBuf>,
    /// Whether `--help` (or `-h`) was given.
    pub help: bool,
}

impl Args {
    /// Parses the process's arguments and `DWSYNC_CONFIG`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(std::env::args_os().skip(1), std::env::var_os(CONFIG_ENV))
    }

    /// Parses `args` (without the program name); `config_env` is the value of `DWSYNC_CONFIG`.
    pub fn parse(args: impl IntoIterator<Item = OsString>, config_env: Option<OsString>) -> Result<Self, ConfigError> {
        let mut parsed = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let text = arg.to_string_lossy();
            if text == "--help" || text == "-h" {
                parsed.help = true;
            } else if text == "--config" {
                let path = args.next().ok_or_else(|| ConfigError::Usage("--config needs a path".into()))?;
                parsed.config = Some(path.into());
            } else if let Some(path) = text.strip_prefix("--config=") {
                parsed.config = Some(path.into());
            } else {
                return Err(ConfigError::Usage(format!("unexpected argument {text:?}")));
            }
        }
        if parsed.config.is_none() {
            parsed.config = config_env.filter(|v| !v.is_empty()).map(PathBuf::from);
        }
        Ok(parsed)
    }

    /// The `--help` text of `program`.
    pub fn usage(program: &str) -> String {
        format!(
            "Usage: {program} [--config <path>]\n\n\
             Options:\n  \
             --config <path>  TOML config file (default: ${CONFIG_ENV}, else none)\n  \
             -h, --help       Print this help\n\n\
             Every key can be overridden by an environment variable: DWSYNC_ followed by the\n\
             upper-cased key path, `__` between nested keys (DWSYNC_KAFKA__BOOTSTRAP_SERVERS).\n"
        )
    }
}

/// Loads a service binary's config from its command line (`--config`, `DWSYNC_CONFIG`) and
/// `DWSYNC_*` variables; prints the usage and returns `None` for `--help`.
pub fn load_for_binary<T>(program: &str) -> Result<Option<T>, ConfigError>
where
    T: serde::de::DeserializeOwned + serde::Serialize + Default,
{
    let args = Args::from_env()?;
    if args.help {
        println!("{}", Args::usage(program));
        return Ok(None);
    }
    crate::load(args.config.as_deref(), crate::ENV_PREFIX).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: Option<&str>) -> Result<Args, ConfigError> {
        Args::parse(args.iter().map(OsString::from), env.map(OsString::from))
    }

    #[test]
    fn config_from_flag_then_env() {
        assert_eq!(parse(&[], None).expect("parse"), Args::default());
        let flag = parse(&["--config", "a.toml"], Some("b.toml")).expect("parse");
        assert_eq!(flag.config, Some(PathBuf::from("a.toml")));
        let inline = parse(&["--config=c.toml"], None).expect("parse");
        assert_eq!(inline.config, Some(PathBuf::from("c.toml")));
        let env = parse(&[], Some("b.toml")).expect("parse");
        assert_eq!(env.config, Some(PathBuf::from("b.toml")));
        assert_eq!(parse(&[], Some("")).expect("parse").config, None);
    }

    #[test]
    fn help_and_bad_arguments() {
        assert!(parse(&["-h"], None).expect("parse").help);
        assert!(parse(&["--help"], None).expect("parse").help);
        assert!(matches!(parse(&["--config"], None), Err(ConfigError::Usage(_))));
        let err = parse(&["--port", "1"], None).expect_err("unknown flag");
        assert!(err.to_string().contains("--port"), "{err}");
        assert!(Args::usage("dwsync-ingest").starts_with("Usage: dwsync-ingest"));
    }
}
