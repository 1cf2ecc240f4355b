//! Create-only writes against the real GCS-protocol server (fake-gcs-server, `dev/gcs`): created,
//! a replay found already delivered, a conflict kept under its conflict key with the first object
//! untouched, the same through the resumable path; tokens signed by the key; the egress policy.
//!
//! fake-gcs-server accepts any bearer token: it checks no signature. That a request carries a
//! token signed by the key's private key is tested on a one-request listener instead
//! ([`every_request_carries_a_token_signed_by_the_key`]).

use std::time::Duration;

use bytes::Bytes;
use dwsync_gcs::bucket::Timeouts;
use dwsync_gcs::create_only::CreateOnly;
use dwsync_gcs::{Bucket, ServiceAccountKey};
use dwsync_s3::create_only::{Create, FileObject, Object, PartSizes};
use dwsync_s3::written::{Written, conflict_key, write_once};
use dwsync_tests::gcs::{create_gcs_bucket, gcs_endpoint, read_gcs_object, service_account_key};
use sha2::{Digest as _, Sha256};

const TIMEOUTS: Timeouts = Timeouts { attempt: Duration::from_secs(30) };

fn object(key: &str, body: Vec<u8>) -> Object {
    let sha256_hex = hex::encode(Sha256::digest(&body));
    Object { key: key.to_owned(), body: Bytes::from(body), sha256_hex, rows: 7 }
}

/// Bytes that differ per `seed` (not compressible, so sizes are what they say).
fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn bucket_at(endpoint: &str, name: &str, http: reqwest::Client) -> Bucket {
    let key = ServiceAccountKey::parse(&service_account_key()).expect("the test key parses");
    Bucket::new(http, Some(endpoint), name, &key, TIMEOUTS).expect("bucket")
}

async fn exactly_once_through(parts: PartSizes, len: usize) {
    let name = create_gcs_bucket().await;
    let bucket = bucket_at(&gcs_endpoint(), &name, dwsync_gcs::http::http_client().expect("client"));
    let writer = CreateOnly::new(&bucket, parts);
    let first = object("p/metrics_v5_1_000000000007.parquet", noise(len, 1));

    assert_eq!(write_once(&writer, &first).await.expect("create"), Written::Created);
    assert_eq!(read_gcs_object(&name, &first.key).await.as_deref(), Some(&first.body[..]));
    let meta = bucket.metadata(&first.key).await.expect("get").expect("exists");
    assert_eq!(meta.metadata.get("dwsync-sha256"), Some(&first.sha256_hex));
    assert_eq!(meta.metadata.get("dwsync-rows").map(String::as_str), Some("7"));
    assert_eq!(meta.size, len.to_string());

    assert_eq!(write_once(&writer, &first).await.expect("replay"), Written::AlreadyDelivered);

    let other = object(&first.key, noise(len, 2));
    let expected_key = conflict_key(&first.key, &other.sha256_hex);
    assert_eq!(
        write_once(&writer, &other).await.expect("conflict"),
        Written::Conflict {
            existing_sha256: Some(first.sha256_hex.clone()),
            conflict_key: expected_key.clone(),
            preserved: true
        }
    );
    assert_eq!(read_gcs_object(&name, &first.key).await.as_deref(), Some(&first.body[..]), "never overwritten");
    assert_eq!(read_gcs_object(&name, &expected_key).await.as_deref(), Some(&other.body[..]), "kept aside");
    // The same conflicting file again: its conflict copy is found, nothing changes.
    let again = write_once(&writer, &other).await.expect("conflict again");
    assert!(matches!(again, Written::Conflict { preserved: true, .. }), "{again:?}");
    assert_eq!(read_gcs_object(&name, &first.key).await.as_deref(), Some(&first.body[..]));
}

#[tokio::test]
async fn a_small_file_is_created_once_and_a_conflict_kept_aside() {
    exactly_once_through(PartSizes { threshold: 1 << 20, part_bytes: 1 << 20 }, 10_000).await;
}

#[tokio::test]
async fn a_large_file_goes_through_the_resumable_path_with_the_same_guarantees() {
    // 1.3 MiB in 256 KiB chunks: six chunks, the last one short.
    exactly_once_through(PartSizes { threshold: 512 * 1024, part_bytes: 1 }, 1_300_000).await;
}

#[tokio::test]
async fn a_large_local_file_is_sent_chunk_by_chunk_and_never_overwritten() {
    let name = create_gcs_bucket().await;
    let bucket = bucket_at(&gcs_endpoint(), &name, dwsync_gcs::http::http_client().expect("client"));
    let writer = CreateOnly::new(&bucket, PartSizes { threshold: 512 * 1024, part_bytes: 256 * 1024 });
    let dir = tempfile::tempdir().expect("dir");
    let body = noise(1_000_000, 4);
    let path = dir.path().join("baseline.parquet");
    std::fs::write(&path, &body).expect("write");
    let file = FileObject {
        key: "p/people_v5_1_000000000009.parquet".into(),
        path: path.clone(),
        len: body.len() as u64,
        sha256_hex: hex::encode(Sha256::digest(&body)),
        rows: 3,
    };
    assert_eq!(writer.create_file(&file).await.expect("create"), Create::Created);
    assert_eq!(read_gcs_object(&name, &file.key).await.as_deref(), Some(&body[..]));
    std::fs::write(&path, noise(1_000_000, 5)).expect("other bytes, same key");
    assert_eq!(writer.create_file(&file).await.expect("again"), Create::Exists);
    assert_eq!(read_gcs_object(&name, &file.key).await.as_deref(), Some(&body[..]), "never overwritten");
}

#[tokio::test]
async fn an_object_placed_without_dwsync_metadata_is_a_conflict_not_a_replay() {
    let name = create_gcs_bucket().await;
    let bucket = bucket_at(&gcs_endpoint(), &name, dwsync_gcs::http::http_client().expect("client"));
    let file = object("f.parquet", noise(100, 3));
    bucket.put(&file.key, file.body.clone()).await.expect("someone else's object, same bytes, no metadata");
    let writer = CreateOnly::new(&bucket, PartSizes { threshold: 1 << 20, part_bytes: 1 << 20 });
    match write_once(&writer, &file).await.expect("write") {
        Written::Conflict { existing_sha256: None, preserved: true, .. } => {}
        other => panic!("no recorded SHA-256 proves nothing: {other:?}"),
    }
}

#[tokio::test]
async fn a_customer_endpoint_resolving_to_loopback_is_refused_without_a_request() {
    let endpoint = gcs_endpoint().replace("127.0.0.1", "localhost");
    let customer = dwsync_gcs::http::customer_http_client(dwsync_s3::egress::EgressPolicy::default()).expect("client");
    let bucket = bucket_at(&endpoint, "any", customer);
    let err = bucket.put("cio-validate", Bytes::new()).await.expect_err("refused");
    assert!(err.is_egress_refused() && !err.is_transient(), "{err:?}");
    assert_eq!(
        err.summary(),
        "objects.insert gs://any/cio-validate: refused: endpoint host \"localhost\" points to a loopback address; \
         customer endpoints must be public"
    );
    // The allow-list admits it, as the local stack's does.
    let admitted = dwsync_s3::egress::EgressPolicy::new(&dwsync_tests::local_egress());
    let name = create_gcs_bucket().await;
    let bucket = bucket_at(&endpoint, &name, dwsync_gcs::http::customer_http_client(admitted).expect("client"));
    bucket.put("cio-validate", Bytes::new()).await.expect("admitted");
    assert_eq!(read_gcs_object(&name, "cio-validate").await, Some(Vec::new()));
}

#[tokio::test]
async fn every_request_carries_a_token_signed_by_the_key() {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = vec![0u8; 64 * 1024];
        let mut len = 0;
        while !request[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            len += socket.read(&mut request[len..]).await.expect("read");
        }
        socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await.expect("answer");
        String::from_utf8_lossy(&request[..len]).into_owned()
    });
    let bucket = bucket_at(&endpoint, "b", dwsync_gcs::http::http_client().expect("client"));
    assert_eq!(bucket.metadata("k").await.expect("answered"), None, "404: no object");
    let request = server.await.expect("server");
    let token = request
        .lines()
        .find_map(|l| l.strip_prefix("authorization: Bearer ").or_else(|| l.strip_prefix("Authorization: Bearer ")))
        .unwrap_or_else(|| panic!("a bearer token: {request}"));
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS: {token}");
    let decode = |p: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).expect("base64url");
    let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).expect("header");
    let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).expect("claims");
    assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("RS256"), Some("0123456789abcdef")));
    assert_eq!(claims["iss"].as_str(), Some(dwsync_tests::gcs::CLIENT_EMAIL));
    assert_eq!(claims["scope"].as_str(), Some("https://www.googleapis.com/auth/devstorage.read_write"));
    // The signature verifies with the key's public half (openssl, outside this code).
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).expect("write");
    write("key.pem", dwsync_tests::gcs::private_key_pem().as_bytes());
    write("signed", format!("{}.{}", parts[0], parts[1]).as_bytes());
    write("signature", &decode(parts[2]));
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").current_dir(dir.path()).args(args).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
    openssl(&["dgst", "-sha256", "-verify", "pub.pem", "-signature", "signature", "signed"]);
}
