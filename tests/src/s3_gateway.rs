//! The second test S3 server, the Versity S3 Gateway (`dev/s3-gateway`): unlike s3s-fs it checks
//! the region a request is signed for and each user's rights, as AWS S3 does.

use aws_sdk_s3::config::Credentials;

/// Its endpoint URL (`DWSYNC_TEST_S3_GATEWAY_ENDPOINT`, default `http://127.0.0.1:7070`, as
/// `dev/s3-gateway` starts it). Region `us-east-1`.
pub fn endpoint() -> String {
    std::env::var("DWSYNC_TEST_S3_GATEWAY_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:7070".into())
}

/// The root user's (access key id, secret): it owns the buckets.
pub const ROOT: (&str, &str) = ("dwsync-gw-root", "dwsync-gw-root-secret");

/// A user with no rights on root's buckets.
pub const USER: (&str, &str) = ("dwsync-gw-user", "dwsync-gw-user-secret");

/// Creates a fresh bucket owned by [`ROOT`] and returns its name.
pub async fn create_bucket() -> String {
    let endpoint = endpoint();
    let credentials = Credentials::new(ROOT.0, ROOT.1, None, None, "dwsync-tests");
    let location = dwsync_s3::Location { region: "us-east-1", endpoint: Some(&endpoint), force_path_style: true };
    let client = dwsync_s3::client(location, credentials);
    let bucket = crate::unique("dwsync-test");
    client.create_bucket().bucket(&bucket).send().await.unwrap_or_else(|e| {
        panic!("cannot create a bucket on the S3 gateway at {endpoint} ({e:?}); start it with `dev/s3-gateway start`")
    });
    bucket
}
