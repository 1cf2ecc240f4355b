//! A service account's JSON key, as Google Cloud's console downloads it. Only what token signing
//! needs is checked; the key is never shown (its `Debug` names the account only).

use std::fmt;

/// The fields a key must carry (as non-empty strings) to sign tokens.
pub const REQUIRED_FIELDS: [&str; 4] = ["client_email", "private_key", "private_key_id", "project_id"];

/// A service account key that parses and carries every [`REQUIRED_FIELDS`] entry.
#[derive(Clone)]
pub struct ServiceAccountKey {
    json: serde_json::Value,
    client_email: String,
}

/// Why a key is refused; never includes the key's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadKey {
    /// Not JSON at all (or not a JSON object).
    #[error("is not a JSON object (paste the whole key file Google Cloud downloads)")]
    NotJson,
    /// A required field is missing, empty or not a string.
    #[error("lacks the field `{0}` (paste the whole key file Google Cloud downloads)")]
    Missing(&'static str),
    /// `private_key` is not a PEM private key.
    #[error("has a `private_key` that is not a PEM private key")]
    NotPem,
}

impl ServiceAccountKey {
    /// The key in `json`, if it is one.
    pub fn parse(json: &str) -> Result<Self, BadKey> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|_| BadKey::NotJson)?;
        let object = value.as_object().ok_or(BadKey::NotJson)?;
        for field in REQUIRED_FIELDS {
            if object.get(field).and_then(serde_json::Value::as_str).is_none_or(|v| v.trim().is_empty()) {
                return Err(BadKey::Missing(field));
            }
        }
        let pem = object.get("private_key").and_then(serde_json::Value::as_str).unwrap_or_default();
        if !pem.contains("-----BEGIN") || !pem.contains("PRIVATE KEY-----") {
            return Err(BadKey::NotPem);
        }
        let client_email =
            object.get("client_email").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        Ok(Self { json: value, client_email })
    }

    /// The service account's email (not a secret).
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The key as JSON, for the token signer.
    pub(crate) fn json(&self) -> serde_json::Value {
        self.json.clone()
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey").field("client_email", &self.client_email).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n";

    fn key_without(field: &str) -> String {
        let mut fields = vec![
            ("client_email", "sa@p.iam.gserviceaccount.com"),
            ("private_key", PEM),
            ("private_key_id", "abc"),
            ("project_id", "p"),
            ("type", "service_account"),
        ];
        fields.retain(|(name, _)| *name != field);
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": \"{v}\"")).collect();
        format!("{{{}}}", body.join(","))
    }

    #[test]
    fn a_key_needs_every_field_signing_uses_and_never_shows_it() {
        let key = ServiceAccountKey::parse(&key_without("")).expect("whole key");
        assert_eq!(key.client_email(), "sa@p.iam.gserviceaccount.com");
        assert!(!format!("{key:?}").contains("PRIVATE"), "{key:?}");
        for field in REQUIRED_FIELDS {
            assert_eq!(ServiceAccountKey::parse(&key_without(field)).err(), Some(BadKey::Missing(field)));
        }
        assert_eq!(ServiceAccountKey::parse("secret-ish text").err(), Some(BadKey::NotJson));
        assert_eq!(ServiceAccountKey::parse("[1]").err(), Some(BadKey::NotJson));
        let not_pem = key_without("").replace(PEM, "hunter2");
        let err = ServiceAccountKey::parse(&not_pem).expect_err("not PEM");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
