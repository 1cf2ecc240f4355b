//! control's API over HTTPS, against the real broker (`dev/kafka start`): certificates made with
//! the `openssl` command for the test; the API answers over TLS only, a client that trusts
//! another CA is refused, and a renewed certificate written over the files is served without a
//! restart (a half-written renewal — a new certificate with the old key — is not).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dwsync_config::{HttpConfig, KafkaConfig, Secret};
use dwsync_control::seal::Sealer;
use dwsync_control::{ApiConfig, Config, InitialSyncConfig, StoreConfig};
use dwsync_tests::tls::ca_and_server;
use dwsync_tests::{kafka_bootstrap, unique};

/// A fresh client (no pooled connection) trusting only `ca`.
fn client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("ca");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn list(ca: &Path, api: &str) -> Result<reqwest::StatusCode, reqwest::Error> {
    Ok(client(ca).get(format!("{api}/v1/workspaces")).bearer_auth("admin-t").send().await?.status())
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy");
}

#[tokio::test]
async fn the_api_serves_https_and_picks_up_a_renewed_certificate() {
    dwsync_telemetry::testing::init_once();
    let dir: PathBuf = std::env::temp_dir().join(unique("dwsync-https"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (one, two) = (ca_and_server(&dir, "one"), ca_and_server(&dir, "two"));
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    copy(&one.cert, &cert);
    copy(&one.key, &key);

    let handoff = unique("dwsync-handoff");
    dwsync_tests::create_topic(&handoff, 1).await;
    let cfg = Config {
        kafka: KafkaConfig { bootstrap_servers: kafka_bootstrap(), ..KafkaConfig::default() },
        http: HttpConfig::localhost(0),
        api: ApiConfig {
            listen: HttpConfig::localhost(0).listen,
            admin_token: Secret::new("admin-t"),
            tls_cert_file: Some(cert.clone()),
            tls_key_file: Some(key.clone()),
            tls_reload_ms: 100,
            ..ApiConfig::default()
        },
        store: StoreConfig { topic: unique("dwsync-sync-config"), ..StoreConfig::default() },
        initial_sync: InitialSyncConfig { enabled: true, handoff_topic: handoff },
        ..Config::default()
    };
    let started = dwsync_control::start(cfg, Some(Sealer::new(&[5; 32]))).await.expect("start (is Kafka running?)");
    let (https, plain) = (format!("https://{}", started.api_addr), format!("http://{}", started.api_addr));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(started.service.run_until(async {
        let _ = stop_rx.await;
    }));
    let (ca_one, ca_two) = (&one.ca, &two.ca);

    assert_eq!(list(ca_one, &https).await.expect("HTTPS with the right CA"), 200);
    let refused = reqwest::Client::new().get(format!("{plain}/v1/workspaces")).bearer_auth("admin-t").send().await;
    assert!(refused.is_err(), "plain HTTP is not served: {refused:?}");
    assert!(list(ca_two, &https).await.is_err(), "a client trusting another CA is refused");

    // Half a renewal (the new certificate, the old key): not served, the old pair stays.
    copy(&two.cert, &cert);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(list(ca_one, &https).await.expect("the previous certificate"), 200);

    // The whole renewal: the new pair is served to new connections without a restart.
    copy(&two.key, &key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while list(ca_two, &https).await.is_err() {
        assert!(Instant::now() < deadline, "the renewed certificate is not served after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(list(ca_one, &https).await.is_err(), "the old certificate is no longer served");

    let _ = stop_tx.send(());
    running.await.expect("join").expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
