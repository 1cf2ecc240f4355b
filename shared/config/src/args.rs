//! The command line every service shares (`clap`): `--config <path>`, `--check-config`,
//! `--version` and `--help`.

use std::error::Error;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CONFIG_ENV, ConfigError};

/// What follows `--help`'s options: where keys come from.
const OVERRIDES: &str = "Every key can be overridden by an environment variable: DWSYNC_ followed by the \
upper-cased key path, `__` between nested keys (DWSYNC_KAFKA__BOOTSTRAP_SERVERS). An unknown key, in \
the file or in such a variable, stops the service and names the nearest valid key.";

/// A service's parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Parser)]
#[command(version, after_help = OVERRIDES)]
pub struct Args {
    /// TOML config file (default: $DWSYNC_CONFIG, else none: defaults and environment only)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Load and check the config, print the effective config (secrets shown as "set" or
    /// "unset") and exit: 0 if the service would start with it, 1 with the reason if not
    #[arg(long)]
    pub check_config: bool,
}

/// What the command line asks of a service binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Load the config and run.
    Run(Args),
    /// Print this text to stdout and exit successfully (`--help`, `--version`).
    Print(String),
}

impl Args {
    /// Parses `args` (the program name first, as `std::env::args_os` gives it) for `program`,
    /// which `--help` describes with `about`; `config_env` is the value of `DWSYNC_CONFIG`, used
    /// when `--config` is not given (empty means none).
    pub fn parse_for(
        program: &str,
        about: &str,
        args: impl IntoIterator<Item = OsString>,
        config_env: Option<OsString>,
    ) -> Result<Invocation, ConfigError> {
        let command = Self::command().name(program.to_owned()).bin_name(program.to_owned()).about(about.to_owned());
        let matches = match command.try_get_matches_from(args) {
            Ok(matches) => matches,
            Err(err)
                if matches!(
                    err.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
            {
                return Ok(Invocation::Print(err.render().to_string()));
            }
            Err(err) => return Err(ConfigError::Usage(err.render().to_string().trim_end().to_owned())),
        };
        let mut parsed =
            Self::from_arg_matches(&matches).map_err(|err| ConfigError::Usage(err.render().to_string()))?;
        if parsed.config.is_none() {
            parsed.config = config_env.filter(|v| !v.is_empty()).map(PathBuf::from);
        }
        Ok(Invocation::Run(parsed))
    }
}

/// A service's configuration as its binary loads it: serde with a `Default`, plus the checks
/// serde cannot make (ranges, combinations), which the service also runs when it starts.
pub trait ServiceConfig: DeserializeOwned + Serialize + Default {
    /// Checks the values serde cannot.
    fn check(&self) -> Result<(), Box<dyn Error + Send + Sync>> {
        Ok(())
    }
}

/// Loads a service binary's config (`about` describes it in `--help`) from its command line (`--config`, `DWSYNC_CONFIG`) and
/// the environment: `None` when the binary has nothing more to do (`--help` and `--version`
/// printed, or `--check-config` printed a config that passes its checks).
pub fn load_for_binary<T: ServiceConfig>(program: &str, about: &str) -> Result<Option<T>, ConfigError> {
    let args = match Args::parse_for(program, about, std::env::args_os(), std::env::var_os(CONFIG_ENV))? {
        Invocation::Print(text) => {
            print!("{text}");
            return Ok(None);
        }
        Invocation::Run(args) => args,
    };
    let cfg: T = crate::load(args.config.as_deref(), crate::ENV_PREFIX)?;
    if !args.check_config {
        return Ok(Some(cfg));
    }
    cfg.check().map_err(|err| ConfigError::Check(err.to_string()))?;
    println!("{}", effective(program, &args, &cfg)?);
    Ok(None)
}

/// The effective config as TOML, secrets as `"set"` or `"unset"`, after a comment saying where
/// it came from.
pub fn effective<T: Serialize>(program: &str, args: &Args, cfg: &T) -> Result<String, ConfigError> {
    let body =
        crate::secret::as_presence(|| toml::to_string(cfg)).map_err(|err| ConfigError::Other(err.to_string()))?;
    let file = args.config.as_ref().map_or_else(|| "no file".to_owned(), |path| format!("file {}", path.display()));
    Ok(format!(
        "# {program}: the effective config (defaults, {file}, DWSYNC_* variables); it passes its checks.\n\
         # Secrets show as \"set\" or \"unset\".\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Secret;

    fn parse(args: &[&str], env: Option<&str>) -> Result<Invocation, ConfigError> {
        let args = std::iter::once("dwsync-ingest").chain(args.iter().copied()).map(OsString::from);
        Args::parse_for("dwsync-ingest", "Consumes the source topics.", args, env.map(OsString::from))
    }

    fn run(args: &[&str], env: Option<&str>) -> Args {
        match parse(args, env).expect("parse") {
            Invocation::Run(args) => args,
            Invocation::Print(text) => panic!("printed {text}"),
        }
    }

    #[test]
    fn config_from_flag_then_env() {
        assert_eq!(run(&[], None), Args::default());
        assert_eq!(run(&["--config", "a.toml"], Some("b.toml")).config, Some(PathBuf::from("a.toml")));
        assert_eq!(run(&["--config=c.toml"], None).config, Some(PathBuf::from("c.toml")));
        assert_eq!(run(&[], Some("b.toml")).config, Some(PathBuf::from("b.toml")));
        assert_eq!(run(&[], Some("")).config, None);
        let check = run(&["--check-config"], Some("b.toml"));
        assert!(check.check_config);
        assert_eq!(check.config.as_deref(), Some(Path::new("b.toml")));
    }

    #[test]
    fn help_version_and_bad_arguments() {
        let Invocation::Print(help) = parse(&["--help"], None).expect("help") else { panic!("help runs") };
        assert!(help.starts_with("Consumes the source topics.") && help.contains("Usage: dwsync-ingest"), "{help}");
        assert!(help.contains("--check-config") && help.contains("DWSYNC_KAFKA__BOOTSTRAP_SERVERS"), "{help}");
        let Invocation::Print(version) = parse(&["--version"], None).expect("version") else { panic!("version runs") };
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
        assert!(matches!(parse(&["--config"], None), Err(ConfigError::Usage(_))));
        let err = parse(&["--port", "1"], None).expect_err("unknown flag");
        assert!(err.to_string().contains("--port"), "{err}");
    }

    #[derive(Serialize)]
    struct Shown {
        retries: u32,
        password: Secret,
        token: Secret,
    }

    #[test]
    fn the_effective_config_shows_secrets_as_set_or_unset() {
        let cfg = Shown { retries: 3, password: Secret::new("hunter2"), token: Secret::default() };
        let args = Args { config: Some("a.toml".into()), check_config: true };
        let text = effective("dwsync-ingest", &args, &cfg).expect("toml");
        assert!(text.contains("retries = 3") && text.contains("password = \"set\""), "{text}");
        assert!(text.contains("token = \"unset\"") && text.contains("file a.toml"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
