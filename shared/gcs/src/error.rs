//! A failed GCS request, classed as S3 failures are: transient or not, refused by the egress
//! policy, a one-line summary for operators (never a server's body beyond its reason code).

use dwsync_s3::create_only::{Failed, dispatch_code};
use dwsync_s3::egress::{EGRESS_REFUSED, refusal_in};

/// A failed GCS request.
#[derive(Debug, thiserror::Error)]
#[error("GCS {operation} gs://{bucket}/{key} failed (HTTP {}): {message}", status.map_or("-".to_owned(), |s| s.to_string()))]
pub struct GcsError {
    /// The JSON API operation (`objects.insert`, `objects.get`, ...).
    pub operation: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The object name.
    pub key: String,
    /// The HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// GCS's reason (`forbidden`, `notFound`, ...), or without an answer `Timeout`,
    /// [`dwsync_s3::create_only::TLS_FAILURE`], `ConnectionFailed`, [`EGRESS_REFUSED`]; `Credentials` when no token
    /// could be signed.
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl GcsError {
    /// An error of `operation` on `bucket`/`key` with no HTTP answer: `code` and `message`.
    pub fn local(operation: &'static str, (bucket, key): (&str, &str), code: &str, message: String) -> Self {
        Self {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            status: None,
            code: Some(code.to_owned()),
            message,
        }
    }

    /// The error of a request that got no answer (`err` from reqwest).
    pub fn from_transport(operation: &'static str, (bucket, key): (&str, &str), err: &reqwest::Error) -> Self {
        if let Some(refused) = refusal_in(err) {
            return Self::local(operation, (bucket, key), EGRESS_REFUSED, refused.to_string());
        }
        let code = dispatch_code(err, err.is_timeout());
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(e) = source {
            message.push_str(": ");
            message.push_str(&e.to_string());
            source = e.source();
        }
        Self::local(operation, (bucket, key), code, message)
    }

    /// The error of an answer with a failing `status` and its JSON error `body` (only its
    /// reason and message are kept, bounded).
    pub fn from_answer(operation: &'static str, (bucket, key): (&str, &str), status: u16, body: &[u8]) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let reason = error
            .and_then(|e| e.get("errors"))
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("reason"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let message = error.and_then(|e| e.get("message")).and_then(serde_json::Value::as_str).unwrap_or("");
        Self {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            status: Some(status),
            code: reason,
            message: message.chars().take(300).collect(),
        }
    }

    fn failed(&self) -> Failed<'_> {
        Failed {
            scheme: "gs",
            operation: self.operation,
            bucket: &self.bucket,
            key: &self.key,
            status: self.status,
            code: self.code.as_deref(),
            message: &self.message,
        }
    }

    /// A one-line summary for operators: operation, object, status, code; for a request the
    /// egress policy refused, the refusal.
    pub fn summary(&self) -> String {
        self.failed().summary()
    }

    /// Whether another attempt may succeed: no response, a server error or throttling. Denied,
    /// missing bucket, bad requests, a key that signs no token and refused endpoints need a
    /// configuration change.
    pub fn is_transient(&self) -> bool {
        self.code.as_deref() != Some(CREDENTIALS) && self.failed().is_transient()
    }

    /// Whether the egress policy refused the endpoint: nothing was sent.
    pub fn is_egress_refused(&self) -> bool {
        self.failed().is_egress_refused()
    }
}

/// The [`GcsError::code`] of a key that signs no token.
pub const CREDENTIALS: &str = "Credentials";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_their_reason_and_are_classed() {
        let body = br#"{"error":{"code":403,"message":"sa@p does not have storage.objects.create access","errors":[{"reason":"forbidden"}]}}"#;
        let err = GcsError::from_answer("objects.insert", ("b", "k"), 403, body);
        assert_eq!(err.summary(), "objects.insert gs://b/k: HTTP 403 forbidden");
        assert!(!err.is_transient());
        assert!(GcsError::from_answer("objects.insert", ("b", "k"), 503, b"<html>").is_transient());
        assert!(GcsError::local("objects.insert", ("b", "k"), "Timeout", String::new()).is_transient());
        assert!(!GcsError::local("objects.insert", ("b", "k"), CREDENTIALS, String::new()).is_transient());
    }
}
