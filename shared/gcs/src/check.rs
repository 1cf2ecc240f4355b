//! A GCS destination tried as the export uses it: write `cio-validate`, read its metadata back.
//! The answer has the same shape and failure classes as an S3 check ([`dwsync_s3::check`]);
//! messages are built from the class, never from the server's body.

use bytes::Bytes;
use dwsync_s3::check::{Action, CheckFailure, CheckReport, FailureClass, connection_message};
use dwsync_s3::error::TLS_FAILURE;

use crate::bucket::Bucket;
use dwsync_s3::error::{CREDENTIALS, StoreError};

use crate::error;

/// The class of a failed GCS request.
pub fn class_of(err: &StoreError) -> FailureClass {
    if err.is_egress_refused() {
        return FailureClass::EgressRefused;
    }
    match (err.code.as_deref(), err.status) {
        (Some("Timeout"), _) => FailureClass::Timeout,
        (Some(TLS_FAILURE), _) => FailureClass::TlsFailure,
        (Some("ConnectionFailed"), _) => FailureClass::Unreachable,
        (Some(CREDENTIALS), _) | (_, Some(401)) => FailureClass::BadSignature,
        (_, Some(404)) => FailureClass::BucketMissing,
        (_, Some(403)) => FailureClass::AccessDenied,
        (_, Some(301 | 307 | 308)) => FailureClass::WrongRegion,
        _ => FailureClass::Other,
    }
}

fn failure(action: Action, err: &StoreError) -> CheckFailure {
    let class = class_of(err);
    let (op, bucket) = (err.operation, &err.bucket);
    let message = match class {
        FailureClass::BucketMissing => format!("bucket {bucket:?} does not exist ({op})"),
        FailureClass::AccessDenied => format!(
            "access denied on {action} ({op}): the service account needs storage.objects.create and \
             storage.objects.get on bucket {bucket:?}"
        ),
        FailureClass::BadSignature => {
            format!("the service account key was refused or signs no token ({op}); is the key current?")
        }
        _ => connection_message(class, op, err.status, &err.message),
    };
    CheckFailure { action, operation: op, class, status: err.status, message }
}

/// Writes `validate_key` (empty, as before every sync) and reads its metadata back.
pub async fn check(bucket: &Bucket, validate_key: &str) -> CheckReport {
    let mut passed = Vec::new();
    if let Err(err) = bucket.put(validate_key, Bytes::new()).await {
        return CheckReport { passed, failure: Some(failure(Action::Write, &err)) };
    }
    passed.push(Action::Write);
    match bucket.metadata(validate_key).await {
        Ok(Some(_)) => passed.push(Action::Read),
        Ok(None) => {
            let gone = StoreError {
                status: Some(404),
                ..error::local("objects.get", (bucket.name(), validate_key), "notFound", String::new())
            };
            return CheckReport { passed, failure: Some(failure(Action::Read, &gone)) };
        }
        Err(err) => return CheckReport { passed, failure: Some(failure(Action::Read, &err)) },
    }
    CheckReport { passed, failure: None }
}
