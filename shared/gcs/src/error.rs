//! A failed GCS request as a [`StoreError`] (the type S3 failures have, classed the same way):
//! from the HTTP client's error, or from an answer's status and JSON error body (only its reason
//! and message are kept, bounded — never the body itself).

use dwsync_s3::egress::{EGRESS_REFUSED, refusal_in};
use dwsync_s3::error::{Store, StoreError, dispatch_code};

/// An error of the JSON API `operation` on `bucket`/`key` with no HTTP answer: `code` and
/// `message`.
pub fn local(operation: &'static str, object: (&str, &str), code: &str, message: String) -> StoreError {
    StoreError::local(Store::Gcs, operation, object, code, message)
}

/// The error of a request that got no answer (`err` from reqwest).
pub fn from_transport(operation: &'static str, object: (&str, &str), err: &reqwest::Error) -> StoreError {
    if let Some(refused) = refusal_in(err) {
        return local(operation, object, EGRESS_REFUSED, refused.to_string());
    }
    let code = dispatch_code(err, err.is_timeout());
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    local(operation, object, code, message)
}

/// The error of an answer with a failing `status` and its JSON error `body`.
pub fn from_answer(operation: &'static str, (bucket, key): (&str, &str), status: u16, body: &[u8]) -> StoreError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let reason = error
        .and_then(|e| e.get("errors"))
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("reason"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let message = error.and_then(|e| e.get("message")).and_then(serde_json::Value::as_str).unwrap_or("");
    StoreError {
        store: Store::Gcs,
        operation,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        status: Some(status),
        code: reason,
        message: message.chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use dwsync_s3::error::CREDENTIALS;

    use super::*;

    #[test]
    fn answers_keep_their_reason_and_are_classed() {
        let body = br#"{"error":{"code":403,"message":"sa@p does not have storage.objects.create access","errors":[{"reason":"forbidden"}]}}"#;
        let err = from_answer("objects.insert", ("b", "k"), 403, body);
        assert_eq!(err.summary(), "objects.insert gs://b/k: HTTP 403 forbidden");
        assert!(!err.is_transient());
        assert!(from_answer("objects.insert", ("b", "k"), 503, b"<html>").is_transient());
        assert!(local("objects.insert", ("b", "k"), "Timeout", String::new()).is_transient());
        assert!(!local("objects.insert", ("b", "k"), CREDENTIALS, String::new()).is_transient());
    }
}
