//! For the services' tests: a config loaded as a service loads it, in an environment holding
//! only the given variables (figment's `Jail`: no test sees another's variables or files).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ConfigError;

/// Loads `T` as a service does ([`crate::load`]) with only `vars` in the environment and, when
/// given, `file` as the TOML config file.
#[expect(clippy::result_large_err, reason = "figment::Jail's closures return figment::Result")]
pub fn load_with<T>(file: Option<&str>, vars: &[(&str, &str)]) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut loaded = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (name, value) in vars {
            jail.set_env(name, value);
        }
        let path = match file {
            Some(text) => {
                let _ = jail.create_file("dwsync.toml", text)?;
                Some(jail.directory().join("dwsync.toml"))
            }
            None => None,
        };
        loaded = Some(crate::load::<T>(path.as_deref(), crate::ENV_PREFIX));
        Ok(())
    });
    loaded.unwrap_or_else(|| Err(ConfigError::Other("the test environment did not run".into())))
}
