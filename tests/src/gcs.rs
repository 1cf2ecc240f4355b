//! The test GCS server (fake-gcs-server, `dev/gcs`): where it listens, fresh buckets, and a
//! service account key with a real RSA key (made with the `openssl` command), so tokens are
//! really signed — the server itself checks no signature.

use std::process::Command;
use std::sync::OnceLock;

/// GCS endpoint URL (`DWSYNC_TEST_GCS_ENDPOINT`, default `http://127.0.0.1:4443`, as `dev/gcs`
/// starts the server).
pub fn gcs_endpoint() -> String {
    std::env::var("DWSYNC_TEST_GCS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4443".into())
}

/// The client email of [`service_account_key`].
pub const CLIENT_EMAIL: &str = "dwsync-test@dwsync-test.iam.gserviceaccount.com";

/// A PKCS#8 PEM RSA private key (2048 bits), made once per test process.
pub fn private_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let out = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .expect("openssl (is it installed?)");
        assert!(out.status.success(), "openssl genpkey: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("PEM is text")
    })
}

/// A service account key file's JSON, as Google Cloud's console downloads it, with
/// [`private_key_pem`].
pub fn service_account_key() -> String {
    format!(
        r#"{{"type": "service_account", "project_id": "dwsync-test", "private_key_id": "0123456789abcdef",
  "private_key": {pem:?}, "client_email": "{CLIENT_EMAIL}", "client_id": "1",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token"}}"#,
        pem = private_key_pem()
    )
}

/// Creates a fresh bucket on the test GCS server and returns its name.
pub async fn create_gcs_bucket() -> String {
    let bucket = crate::unique("dwsync-test");
    let url = format!("{}/storage/v1/b", gcs_endpoint());
    let answer = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({ "name": bucket }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the GCS server at {url} does not answer (dev/gcs start): {e}"));
    assert!(answer.status().is_success(), "creating bucket {bucket}: HTTP {}", answer.status());
    bucket
}

/// The bytes of `key` in `bucket`, `None` when there is no such object.
pub async fn read_gcs_object(bucket: &str, key: &str) -> Option<Vec<u8>> {
    let mut url = reqwest::Url::parse(&gcs_endpoint()).expect("endpoint URL");
    url.path_segments_mut().expect("base").extend(["storage", "v1", "b", bucket, "o", key]);
    url.query_pairs_mut().append_pair("alt", "media");
    let answer = reqwest::get(url).await.expect("GET object");
    match answer.status().as_u16() {
        200 => Some(answer.bytes().await.expect("body").to_vec()),
        404 => None,
        other => panic!("GET gs://{bucket}/{key}: HTTP {other}"),
    }
}

/// The names of the objects in `bucket` under `prefix`, sorted.
pub async fn list_gcs_objects(bucket: &str, prefix: &str) -> Vec<String> {
    let mut url = reqwest::Url::parse(&gcs_endpoint()).expect("endpoint URL");
    url.path_segments_mut().expect("base").extend(["storage", "v1", "b", bucket, "o"]);
    url.query_pairs_mut().append_pair("prefix", prefix);
    let listing: serde_json::Value = reqwest::get(url).await.expect("list").json().await.expect("JSON listing");
    let items = listing.get("items").and_then(|i| i.as_array()).cloned().unwrap_or_default();
    let mut names: Vec<String> =
        items.iter().filter_map(|i| i.get("name").and_then(|n| n.as_str()).map(str::to_owned)).collect();
    names.sort();
    names
}
