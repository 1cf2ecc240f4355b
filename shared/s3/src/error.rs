//! A failed request to a bucket, whatever kind of store holds it (S3 or GCS): one type, classed
//! one way — transient or not, refused by the egress policy — with a one-line summary for
//! operators that never carries a server's body beyond its error code.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The kind of store a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// S3 or an S3-compatible store.
    S3,
    /// Google Cloud Storage (its JSON API).
    Gcs,
}

impl Store {
    /// Its name in messages: `S3`, `GCS`.
    pub fn name(self) -> &'static str {
        match self {
            Self::S3 => "S3",
            Self::Gcs => "GCS",
        }
    }

    /// The scheme of an object's URL: `s3`, `gs`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gs",
        }
    }
}

/// A failed request to a bucket.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} {operation} {}://{bucket}/{key} failed (HTTP {}): {message}",
    store.name(),
    store.scheme(),
    status.map_or("-".to_owned(), |s| s.to_string())
)]
pub struct StoreError {
    /// The kind of store.
    pub store: Store,
    /// The operation (`PutObject`, `objects.insert`, ...).
    pub operation: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The key (GCS: the object name).
    pub key: String,
    /// The HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// The store's error code (S3's `AccessDenied`, `NoSuchBucket`; GCS's reason `forbidden`,
    /// `notFound`), or without an answer `Timeout`, [`TLS_FAILURE`], `ConnectionFailed`,
    /// [`crate::egress::EGRESS_REFUSED`], or [`CREDENTIALS`] when no token could be signed.
    pub code: Option<String>,
    /// What went wrong (the client's error with its sources, or the server's message, bounded).
    pub message: String,
}

/// The [`StoreError::code`] of a request whose TLS handshake failed.
pub const TLS_FAILURE: &str = "TlsFailure";

/// The [`StoreError::code`] of a key that signs no token (GCS service account keys).
pub const CREDENTIALS: &str = "Credentials";

impl StoreError {
    /// An error of `operation` on `bucket`/`key` with no HTTP answer: `code` and `message`.
    pub fn local(
        store: Store,
        operation: &'static str,
        (bucket, key): (&str, &str),
        code: &str,
        message: String,
    ) -> Self {
        Self {
            store,
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            status: None,
            code: Some(code.to_owned()),
            message,
        }
    }

    /// The error of the S3 `operation` on `bucket`/`key` from the SDK's `err`.
    pub fn from_sdk<E>(operation: &'static str, bucket: &str, key: &str, err: SdkError<E>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        if let Some(refused) = crate::egress::refusal_in(&err) {
            let code = crate::egress::EGRESS_REFUSED;
            return Self::local(Store::S3, operation, (bucket, key), code, refused.to_string());
        }
        let code = match &err {
            SdkError::ServiceError(e) => e.err().code().map(str::to_owned),
            SdkError::TimeoutError(_) => Some("Timeout".to_owned()),
            SdkError::DispatchFailure(e) => Some(dispatch_code(&err, e.is_timeout()).to_owned()),
            _ => None,
        };
        Self {
            store: Store::S3,
            code,
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            status: status(&err),
            message: DisplayErrorContext(&err).to_string(),
        }
    }

    /// A one-line summary for operators (the status endpoint): operation, object, status, code;
    /// for a request the egress policy refused, the refusal.
    pub fn summary(&self) -> String {
        let (op, scheme, bucket, key) = (self.operation, self.store.scheme(), &self.bucket, &self.key);
        if self.is_egress_refused() {
            return format!("{op} {scheme}://{bucket}/{key}: refused: {}", self.message);
        }
        let status = self.status.map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}"));
        format!("{op} {scheme}://{bucket}/{key}: {status} {}", self.code.as_deref().unwrap_or("error"))
    }

    /// Whether another attempt may succeed: no response, a server error or throttling. Denied
    /// (403), missing bucket (404), bad requests, redirects, a key that signs no token and
    /// endpoints the egress policy refuses need a configuration change.
    pub fn is_transient(&self) -> bool {
        !self.is_egress_refused()
            && self.code.as_deref() != Some(CREDENTIALS)
            && self.status.is_none_or(|s| s >= 500 || s == 429 || s == 408)
    }

    /// Whether the egress policy refused the endpoint ([`crate::egress`]): nothing was sent.
    pub fn is_egress_refused(&self) -> bool {
        self.code.as_deref() == Some(crate::egress::EGRESS_REFUSED)
    }
}

/// The HTTP status of a failed S3 request, if a response arrived.
pub fn status<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// The code of a request that got no answer: `Timeout`, [`TLS_FAILURE`] or `ConnectionFailed`
/// (any HTTP client's error chain: rustls errors are looked for in it).
pub fn dispatch_code(err: &(dyn std::error::Error + 'static), timed_out: bool) -> &'static str {
    if timed_out {
        return "Timeout";
    }
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<rustls::Error>() || wraps_rustls(e) {
            return TLS_FAILURE;
        }
        next = e.source();
    }
    "ConnectionFailed"
}

/// Whether `e` is an `io::Error` wrapping, through any number of `io::Error`s, a rustls error: an
/// io::Error's `source` skips the error it wraps, and a TLS connector wraps a rustls certificate
/// error in two of them (`Other` around `InvalidData`).
fn wraps_rustls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut inner = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
    while let Some(w) = inner {
        if w.is::<rustls::Error>() {
            return true;
        }
        inner = w.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(store: Store, status: Option<u16>, code: Option<&str>) -> StoreError {
        StoreError {
            store,
            operation: "PutObject",
            bucket: "b".into(),
            key: "k".into(),
            status,
            code: code.map(str::to_owned),
            message: "long SDK text".into(),
        }
    }

    #[test]
    fn only_errors_that_can_pass_are_retried_in_place() {
        for store in [Store::S3, Store::Gcs] {
            for (status, transient) in [(None, true), (Some(500), true), (Some(503), true), (Some(429), true)] {
                assert_eq!(failure(store, status, None).is_transient(), transient, "{status:?}");
            }
            for status in [403, 404, 400, 301] {
                assert!(!failure(store, Some(status), None).is_transient(), "{status}");
            }
            assert!(!failure(store, None, Some(CREDENTIALS)).is_transient());
            assert!(!failure(store, None, Some(crate::egress::EGRESS_REFUSED)).is_transient());
        }
        assert_eq!(
            failure(Store::S3, Some(403), Some("AccessDenied")).summary(),
            "PutObject s3://b/k: HTTP 403 AccessDenied"
        );
        assert_eq!(failure(Store::S3, None, Some("Timeout")).summary(), "PutObject s3://b/k: no response Timeout");
        assert_eq!(
            failure(Store::Gcs, Some(403), Some("forbidden")).summary(),
            "PutObject gs://b/k: HTTP 403 forbidden"
        );
        let shown = failure(Store::Gcs, Some(404), None).to_string();
        assert_eq!(shown, "GCS PutObject gs://b/k failed (HTTP 404): long SDK text");
    }
}
