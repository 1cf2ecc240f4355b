//! [`Secret`]: a credential that never shows up in logs, `Debug` output or config dumps.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// What a secret prints and serializes as.
const MASK: &str = "***";

/// What a secret serializes as, on one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exposure {
    /// `***`: the default, everywhere.
    Masked,
    /// Its value: only while [`load`](crate::load) serializes a config's defaults.
    Revealed,
    /// `set` or `unset`: only while `--check-config` prints the effective config.
    Presence,
}

thread_local! {
    static EXPOSURE: Cell<Exposure> = const { Cell::new(Exposure::Masked) };
}

/// Runs `f` with secrets serializing as `exposure` (on this thread only), then restores the
/// previous mode, even if `f` panics.
fn with_exposure<R>(exposure: Exposure, f: impl FnOnce() -> R) -> R {
    struct Restore(Exposure);
    impl Drop for Restore {
        fn drop(&mut self) {
            EXPOSURE.set(self.0);
        }
    }
    let _restore = Restore(EXPOSURE.replace(exposure));
    f()
}

/// Runs `f` with secrets serializing as their value (on this thread only).
pub(crate) fn revealed<R>(f: impl FnOnce() -> R) -> R {
    with_exposure(Exposure::Revealed, f)
}

/// Runs `f` with secrets serializing as `"set"` or `"unset"` (on this thread only): what
/// `--check-config` prints.
pub(crate) fn as_presence<R>(f: impl FnOnce() -> R) -> R {
    with_exposure(Exposure::Presence, f)
}

/// A credential (an S3 secret key, a password): `Debug`, `Display` and `Serialize` all give `***`.
///
/// Deserializes from a plain string; any other value is refused with an error that does not
/// show it (`sasl_password = 1234` in a file must not print `1234`). Read the value with
/// [`Secret::expose`], only where it is used.
#[derive(Clone, Default, PartialEq, Eq)]
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
        match EXPOSURE.get() {
            Exposure::Masked => serializer.serialize_str(MASK),
            Exposure::Revealed => serializer.serialize_str(&self.0),
            Exposure::Presence if self.0.is_empty() => serializer.serialize_str("unset"),
            Exposure::Presence => serializer.serialize_str("set"),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// Accepts strings only; every other value is refused without being echoed.
struct SecretVisitor;

/// The message for a secret given as something other than a string.
const NOT_A_STRING: &str = "a secret must be a string (quote it); the value given is not shown";

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(de::Error::custom(NOT_A_STRING))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(de::Error::custom(NOT_A_STRING))
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
    fn presence_shows_set_or_unset_only() {
        let set = as_presence(|| Value::serialize(Secret::new("hunter2")).ok()).expect("serialize");
        assert_eq!(set.as_str(), Some("set"));
        let unset = as_presence(|| Value::serialize(Secret::default()).ok()).expect("serialize");
        assert_eq!(unset.as_str(), Some("unset"));
        assert_eq!(Value::serialize(Secret::new("hunter2")).expect("serialize").as_str(), Some("***"));
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let secret: Secret = Value::from("s3cr3t".to_owned()).deserialize().expect("deserialize");
        assert_eq!(secret, Secret::from("s3cr3t"));
        assert!(!secret.is_empty());
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn a_value_that_is_not_a_string_is_refused_without_being_shown() {
        for value in [Value::from(918_273_645_u64), Value::from(918_273_645.5_f64), Value::from(vec![918_273_645_u64])]
        {
            let err = value.deserialize::<Secret>().expect_err("not a string");
            let msg = err.to_string();
            assert!(msg.contains("must be a string") && !msg.contains("918273645"), "{msg}");
        }
    }
}
