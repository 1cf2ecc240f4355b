//! The connection-time egress check on the real S3 server (`dev/s3`): a customer client whose
//! endpoint is a name resolving to a loopback address (`localhost`, from /etc/hosts) fails
//! without a request reaching the server, with a refusal that is not worth retrying in place;
//! with the operator's allow-list, the same client reaches the server.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use dwsync_s3::egress::{EgressConfig, EgressPolicy, customer_https_client};
use dwsync_s3::error::StoreError;

mod common;

/// The test S3 server's endpoint with its host replaced by `localhost`.
fn localhost_endpoint() -> String {
    common::endpoint().replace("127.0.0.1", "localhost")
}

fn client(policy: EgressPolicy) -> aws_sdk_s3::Client {
    common::client_of(&localhost_endpoint(), customer_https_client(policy), None, Duration::from_secs(30))
}

async fn put(client: &aws_sdk_s3::Client, bucket: &str) -> Result<(), StoreError> {
    let put = client.put_object().bucket(bucket).key("cio-validate").body(Vec::new().into());
    put.send().await.map(drop).map_err(|e| StoreError::from_sdk("PutObject", bucket, "cio-validate", e))
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_connection_time_unless_allowed() {
    let bucket = format!("egress-{}", std::process::id());
    let refused = put(&client(EgressPolicy::default()), &bucket).await.expect_err("refused");
    assert!(refused.is_egress_refused(), "{refused:?}");
    assert!(!refused.is_transient(), "a refusal is not retried in place");
    assert_eq!(
        refused.summary(),
        format!(
            "PutObject s3://{bucket}/cio-validate: refused: endpoint host \"localhost\" points to a loopback address; \
             customer endpoints must be public"
        )
    );

    for allow in ["127.0.0.0/8", "localhost"] {
        let policy = EgressPolicy::new(&EgressConfig { allow: vec![allow.parse().unwrap()] });
        let allowed = client(policy);
        if let Err(e) = allowed.create_bucket().bucket(&bucket).send().await {
            // Created by the first round already.
            assert_eq!(dwsync_s3::error::status(&e), Some(409), "{e:?}");
        }
        put(&allowed, &bucket).await.unwrap_or_else(|e| panic!("allowed by {allow}: {e}"));
    }
}
