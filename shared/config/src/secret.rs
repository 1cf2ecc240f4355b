//! [`Secret`]: a credential that never shows up in logs, `Debug` output or config dumps.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// What a secret prints and serializes as.
const MASK: &str = "***";

thread_local! {
    /// Set only while [`load`](crate::load) serializes a config's defaults.
    static REVEAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with secrets serializing as their value (on this thread only).
pub(crate) fn revealed<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            REVEAL.set(self.0);
        }
    }
    let _restore = Restore(REVEAL.replace(true));
    f()
}

/// A credential (an S3 secret key, a password): `Debug`, `Display` and `Serialize` all give `***`.
///
/// Deserializes from a plain string. Read the value with [`Secret::expose`], only where it is used.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for handing to the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no credential is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REVEAL.get() { serializer.serialize_str(&self.0) } else { serializer.serialize_str(MASK) }
    }
}

#[cfg(test)]
mod tests {
    use figment::value::Value;

    use super::*;

    #[derive(Debug, Serialize)]
    struct Creds {
        key_id: String,
        secret: Secret,
    }

    #[test]
    fn never_prints_or_serializes_its_value() {
        let creds = Creds { key_id: "AKIA".into(), secret: Secret::new("hunter2") };
        assert_eq!(format!("{}", creds.secret), "***");
        assert_eq!(format!("{:?}", creds.secret), "***");
        let debug = format!("{creds:?} {creds:#?}");
        assert!(!debug.contains("hunter2") && debug.contains("***"), "{debug}");
        let dumped = Value::serialize(&creds).expect("serialize");
        assert_eq!(dumped.find_ref("secret").and_then(Value::as_str), Some("***"));
        assert_eq!(creds.secret.expose(), "hunter2");
    }

    #[test]
    fn reveals_only_inside_revealed() {
        let secret = Secret::new("hunter2");
        let inside = revealed(|| Value::serialize(&secret).ok()).expect("serialize");
        assert_eq!(inside.as_str(), Some("hunter2"));
        let after = Value::serialize(&secret).expect("serialize");
        assert_eq!(after.as_str(), Some("***"));
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let secret: Secret = Value::from("s3cr3t".to_owned()).deserialize().expect("deserialize");
        assert_eq!(secret, Secret::from("s3cr3t"));
        assert!(!secret.is_empty());
        assert!(Secret::default().is_empty());
    }
}
