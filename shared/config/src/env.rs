//! The environment layer: `<PREFIX>A__B=v` sets key `a.b`, typed by the defaults.
//!
//! figment's own `Env` parses every value like TOML, so `DWSYNC_S3__SECRET_ACCESS_KEY=0123`
//! would become the integer 123 and fail (or lose its leading zero). This layer takes a value
//! verbatim when the key's default is a string, and parses it otherwise.

use figment::providers::Env;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// The metadata name of this layer, which error messages recognise.
pub(crate) const ENV_SOURCE_NAME: &str = "environment";

/// Environment variables with one prefix, as a figment provider.
pub(crate) struct EnvLayer {
    prefix: String,
    defaults: Value,
}

impl EnvLayer {
    /// Reads variables starting with `prefix`; `defaults` decides which keys are strings.
    pub(crate) fn new(prefix: &str, defaults: Value) -> Self {
        Self { prefix: prefix.to_owned(), defaults }
    }

    fn vars(&self) -> Env {
        // A variable is a config key when it names a key in a section (`<PREFIX>A__B`, an
        // unknown section then fails loudly where the config refuses it) or a top-level key the
        // config has. Other variables with the prefix are not keys — `<PREFIX>CONFIG` (the
        // file), the seal keys the sealing services read directly, the dev scripts' and the
        // CLI's variables (`DWSYNC_RUN`, `DWSYNC_TOKEN`) — so a service whose config refuses
        // unknown keys runs beside them in one environment.
        let top_level: Vec<String> = match &self.defaults {
            Value::Dict(_, dict) => dict.keys().cloned().collect(),
            _ => Vec::new(),
        };
        Env::prefixed(&self.prefix)
            .filter(move |key| key.as_str().contains("__") || top_level.iter().any(|k| key == k.as_str()))
            .split("__")
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        let prefix = self.prefix.clone();
        Metadata::named(ENV_SOURCE_NAME)
            .interpolater(move |_: &Profile, keys: &[&str]| format!("{prefix}{}", keys.join("__").to_ascii_uppercase()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in self.vars().iter() {
            let value = match self.defaults.find_ref(key.as_str()) {
                Some(Value::String(..)) => Value::from(raw),
                _ => {
                    let Ok(parsed) = raw.parse::<Value>();
                    parsed
                }
            };
            insert(&mut dict, key.as_str(), value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Inserts `value` at dotted `path`, creating (or replacing non-table values with) tables.
fn insert(dict: &mut Dict, path: &str, value: Value) {
    let Some((head, rest)) = path.split_once('.') else {
        dict.insert(path.to_owned(), value);
        return;
    };
    let entry = dict.entry(head.to_owned()).or_insert_with(|| Value::from(Dict::new()));
    if !matches!(entry, Value::Dict(..)) {
        *entry = Value::from(Dict::new());
    }
    if let Value::Dict(_, child) = entry {
        insert(child, rest, value);
    }
}
