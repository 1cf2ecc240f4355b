//! Trying a destination before trusting it: what an export needs — list the bucket, write the
//! `cio-validate` object, read it back, start (and abort) a multipart upload — one step after
//! another, stopping at the first failure, which is classed ([`FailureClass`]) and described
//! for the customer. Descriptions are built from the class, the action and the operation; they
//! never carry the remote server's body.

use std::fmt;

use aws_sdk_s3::primitives::ByteStream;

use crate::error::{Store, StoreError};

/// One thing an export does to its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List the objects under the prefix (`ListObjectsV2`, permission `s3:ListBucket`).
    List,
    /// Write `cio-validate` (`PutObject`, `s3:PutObject`).
    Write,
    /// Read it back (`GetObject`, `s3:GetObject`).
    Read,
    /// Start and abort a multipart upload, as large files need (`CreateMultipartUpload`,
    /// `AbortMultipartUpload`; `s3:PutObject`, `s3:AbortMultipartUpload`).
    Multipart,
}

impl Action {
    /// Every action, in the order they are tried.
    pub const ALL: [Action; 4] = [Self::List, Self::Write, Self::Read, Self::Multipart];

    /// The action's name (`list`, `write`, `read`, `multipart`).
    pub fn name(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Write => "write",
            Self::Read => "read",
            Self::Multipart => "multipart",
        }
    }

    /// The IAM permissions it needs.
    pub fn permissions(self) -> &'static str {
        match self {
            Self::List => "s3:ListBucket",
            Self::Write => "s3:PutObject",
            Self::Read => "s3:GetObject",
            Self::Multipart => "s3:PutObject and s3:AbortMultipartUpload",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The bucket does not exist (`NoSuchBucket`).
    BucketMissing,
    /// The key may not do the action (`AccessDenied`, HTTP 403).
    AccessDenied,
    /// The bucket is in another region, or not at this endpoint (a redirect,
    /// `AuthorizationHeaderMalformed`, `PermanentRedirect`, ...).
    WrongRegion,
    /// The signature does not match: a wrong secret access key (`SignatureDoesNotMatch`).
    BadSignature,
    /// The store does not know the access key id (`InvalidAccessKeyId`; `NotSignedUp` from
    /// s3s-based servers, and from AWS for an account without S3).
    UnknownAccessKey,
    /// The TLS handshake failed (certificate, name or protocol).
    TlsFailure,
    /// No answer in time.
    Timeout,
    /// No connection: refused, or the name does not resolve.
    Unreachable,
    /// The endpoint leads into the operator's network ([`crate::egress`]).
    EgressRefused,
    /// Anything else (the HTTP status is reported).
    Other,
}

impl FailureClass {
    /// The class's name in answers (`bucket_missing`, `access_denied`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::BucketMissing => "bucket_missing",
            Self::AccessDenied => "access_denied",
            Self::WrongRegion => "wrong_region",
            Self::BadSignature => "bad_signature",
            Self::UnknownAccessKey => "unknown_access_key",
            Self::TlsFailure => "tls_failure",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::EgressRefused => "egress_refused",
            Self::Other => "other",
        }
    }

    /// The class of a failed request.
    pub fn of(err: &StoreError) -> Self {
        if err.is_egress_refused() {
            return Self::EgressRefused;
        }
        match (err.code.as_deref(), err.status) {
            (Some("Timeout"), _) => Self::Timeout,
            (Some(crate::error::TLS_FAILURE), _) => Self::TlsFailure,
            (Some("ConnectionFailed"), _) => Self::Unreachable,
            (Some("NoSuchBucket"), _) => Self::BucketMissing,
            (Some("SignatureDoesNotMatch"), _) => Self::BadSignature,
            (Some("InvalidAccessKeyId" | "NotSignedUp"), _) => Self::UnknownAccessKey,
            (
                Some(
                    "PermanentRedirect"
                    | "AuthorizationHeaderMalformed"
                    | "IllegalLocationConstraintException"
                    | "InvalidRegion"
                    | "TemporaryRedirect",
                ),
                _,
            )
            | (_, Some(301 | 307)) => Self::WrongRegion,
            (Some("AccessDenied" | "AllAccessDisabled"), _) | (_, Some(403)) => Self::AccessDenied,
            _ => Self::Other,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The step that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    /// What was tried.
    pub action: Action,
    /// The S3 operation that failed.
    pub operation: &'static str,
    /// Why.
    pub class: FailureClass,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// What to do about it, for the customer: built from the class, never from the server's body.
    pub message: String,
}

impl CheckFailure {
    /// The failure of `action` with `err`, on `bucket` in `region`.
    fn new(action: Action, err: &StoreError, bucket: &str, region: &str) -> Self {
        let class = FailureClass::of(err);
        let op = err.operation;
        let message = match class {
            FailureClass::BucketMissing => format!("bucket {bucket:?} does not exist ({op})"),
            FailureClass::AccessDenied => {
                format!("access denied on {action} ({op}): the key needs {} on bucket {bucket:?}", action.permissions())
            }
            FailureClass::WrongRegion => {
                format!("bucket {bucket:?} is not in region {region:?} or not at this endpoint ({op})")
            }
            FailureClass::BadSignature => {
                format!("the secret access key does not match the access key id (signature refused on {op})")
            }
            FailureClass::UnknownAccessKey => format!("the store does not know the access key id ({op})"),
            _ => connection_message(class, op, err.status, &err.message),
        };
        Self { action, operation: op, class, status: err.status, message }
    }
}

/// The message of a failure any kind of store can have: no connection, TLS, a timeout, a
/// refused endpoint (`refusal`: the policy's words), or another status.
pub fn connection_message(class: FailureClass, op: &str, status: Option<u16>, refusal: &str) -> String {
    match class {
        FailureClass::TlsFailure => {
            format!("the TLS handshake with the endpoint failed: certificate, host name or protocol ({op})")
        }
        FailureClass::Timeout => format!("the endpoint did not answer in time ({op})"),
        FailureClass::Unreachable => {
            format!("the endpoint cannot be reached: connection refused or name not resolved ({op})")
        }
        FailureClass::EgressRefused => refusal.to_owned(),
        _ => match status {
            Some(status) => format!("{op} failed with HTTP {status}"),
            None => format!("{op} failed without an answer"),
        },
    }
}

/// What a check found: the actions that passed, in order, and the first failure, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The actions that passed.
    pub passed: Vec<Action>,
    /// The first action that failed (the later ones were not tried).
    pub failure: Option<CheckFailure>,
}

impl CheckReport {
    /// Whether every action passed.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Where to check: the bucket, its region (for messages) and the `cio-validate` key.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The key prefix listed.
    pub prefix: &'a str,
    /// The bucket's region.
    pub region: &'a str,
    /// The `cio-validate` key: written, read back, and used for the multipart upload.
    pub validate_key: &'a str,
}

/// Tries every [`Action`] on `target` through `client` (one attempt each; the client's
/// timeouts apply), stopping at the first failure.
pub async fn check(client: &aws_sdk_s3::Client, target: Target<'_>) -> CheckReport {
    let mut passed = Vec::new();
    for action in Action::ALL {
        if let Err(err) = step(client, target, action).await {
            let failure = CheckFailure::new(action, &err, target.bucket, target.region);
            tracing::debug!(error = %err, action = action.name(), "A destination check failed.");
            return CheckReport { passed, failure: Some(failure) };
        }
        passed.push(action);
    }
    CheckReport { passed, failure: None }
}

async fn step(client: &aws_sdk_s3::Client, t: Target<'_>, action: Action) -> Result<(), StoreError> {
    let (bucket, key) = (t.bucket, t.validate_key);
    match action {
        Action::List => {
            let list = client.list_objects_v2().bucket(bucket).prefix(t.prefix).max_keys(1);
            list.send().await.map_err(|e| StoreError::from_sdk("ListObjectsV2", bucket, t.prefix, e))?;
        }
        Action::Write => {
            let put = client.put_object().bucket(bucket).key(key).body(ByteStream::from_static(b""));
            put.send().await.map_err(|e| StoreError::from_sdk("PutObject", bucket, key, e))?;
        }
        Action::Read => {
            let got = client.get_object().bucket(bucket).key(key).send().await;
            let got = got.map_err(|e| StoreError::from_sdk("GetObject", bucket, key, e))?;
            // The body is the empty object just written; reading it finishes the request.
            let _ = got.body.collect().await.map_err(|e| {
                StoreError::local(Store::S3, "GetObject", (bucket, key), "ConnectionFailed", e.to_string())
            })?;
        }
        Action::Multipart => {
            let created = client.create_multipart_upload().bucket(bucket).key(key).send().await;
            let created = created.map_err(|e| StoreError::from_sdk("CreateMultipartUpload", bucket, key, e))?;
            if let Some(upload_id) = created.upload_id() {
                let abort = client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id);
                abort.send().await.map_err(|e| StoreError::from_sdk("AbortMultipartUpload", bucket, key, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: Option<u16>, code: &str) -> StoreError {
        StoreError {
            store: Store::S3,
            operation: "PutObject",
            bucket: "b".into(),
            key: "k".into(),
            status,
            code: Some(code.into()),
            message: "<Error><Message>the server's own words</Message></Error>".into(),
        }
    }

    #[test]
    fn failures_are_classed_and_described_without_the_servers_words() {
        use FailureClass::*;
        for (status, code, class) in [
            (Some(404), "NoSuchBucket", BucketMissing),
            (Some(403), "AccessDenied", AccessDenied),
            (Some(403), "Whatever", AccessDenied),
            (Some(301), "PermanentRedirect", WrongRegion),
            (Some(400), "AuthorizationHeaderMalformed", WrongRegion),
            (Some(403), "SignatureDoesNotMatch", BadSignature),
            (Some(403), "InvalidAccessKeyId", UnknownAccessKey),
            (Some(403), "NotSignedUp", UnknownAccessKey),
            (None, "Timeout", Timeout),
            (None, crate::error::TLS_FAILURE, TlsFailure),
            (None, "ConnectionFailed", Unreachable),
            (Some(500), "InternalError", Other),
        ] {
            let err = failed(status, code);
            assert_eq!(FailureClass::of(&err), class, "{code}");
            let failure = CheckFailure::new(Action::Write, &err, "acme", "eu-west-1");
            assert!(!failure.message.contains("own words"), "{}", failure.message);
        }
        let denied = CheckFailure::new(Action::Write, &failed(Some(403), "AccessDenied"), "acme", "eu-west-1");
        assert_eq!(denied.message, "access denied on write (PutObject): the key needs s3:PutObject on bucket \"acme\"");
    }
}
