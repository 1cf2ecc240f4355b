//! dwsync on a secured Kafka: the broker of `dev/kafka-secure`, whose only listener is SASL_SSL
//! (a certificate from a test CA; PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 users), as Amazon MSK,
//! Confluent Cloud or Strimzi serve. Every client is configured by the `[kafka]` section
//! (`KafkaConfig::client_config`), the services' password coming from the environment.
//!
//! - each mechanism connects (and a client certificate is accepted);
//! - mutual TLS without SASL (the broker's second listener, security protocol SSL, a client
//!   certificate required): control, ingest and the uploader deliver every row exactly once, and
//!   a client without a certificate is refused, saying so;
//! - the exactly-once path: control, ingest, the uploader and the archiver as processes over
//!   SASL_SSL with SCRAM-SHA-512, records produced over SASL_SSL reach the buckets exactly once,
//!   and the archive;
//! - a wrong password and an untrusted broker certificate fail clearly: the services say
//!   why (the mechanism and the user, or the certificate), stay unready, and never log the
//!   password;
//! - the CLI and the load generator read the same `[kafka]` section (a service's config file,
//!   the password in `DWSYNC_KAFKA__SASL_PASSWORD`): each mechanism works, a wrong password
//!   fails with the mechanism and the user, never the password;
//! - so does the benchmark harness: `dwsync-bench --smoke` runs a scenario end to end over
//!   SASL_SSL, its own clients and the ingest and uploader it starts.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use dwsync_config::{KafkaConfig, SaslMechanism, Secret, SecurityProtocol};
use dwsync_contract::Table;
use dwsync_handoff::dead_letter as header;
use dwsync_loadgen::Generator;
use dwsync_tests::secure::{SecureKafka, kafka_toml};
use dwsync_tests::services::{ServiceProcess, service_binary};
use dwsync_tests::{create_topic_with, s3_access_key, s3_client, s3_endpoint, s3_secret_key, unique};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const MECHANISMS: [SaslMechanism; 3] = [SaslMechanism::Plain, SaslMechanism::ScramSha256, SaslMechanism::ScramSha512];

/// Creates a topic, produces one record and reads it back, all with clients of `cfg`.
async fn round_trip(cfg: &KafkaConfig, what: &str) {
    let topic = unique("secure-round-trip");
    create_topic_with(&cfg.client_config("test-admin"), &topic, 1).await;
    let producer: FutureProducer = cfg.client_config("test-producer").create().unwrap();
    let payload = format!("over SASL_SSL as {what}");
    let _ = producer
        .send(FutureRecord::to(&topic).key("k").payload(&payload), Duration::from_secs(15))
        .await
        .unwrap_or_else(|(e, _)| panic!("{what}: produce: {e}"));
    let consumer: BaseConsumer = cfg
        .client_config("test-consumer")
        .set("group.id", unique("secure-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "{what}: the record was not read back within 30 s");
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                assert_eq!(m.payload(), Some(payload.as_bytes()), "{what}");
                return;
            }
            Some(Err(e)) => panic!("{what}: consume: {e}"),
            None => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mechanism_produces_and_consumes_over_sasl_ssl() {
    let kafka = SecureKafka::from_env();
    for mechanism in MECHANISMS {
        round_trip(&kafka.config(mechanism), &format!("{mechanism:?}")).await;
    }
    // A client certificate (mutual TLS besides SASL) is accepted too.
    let (certificate, key) = kafka.client_certificate();
    let with_certificate = KafkaConfig {
        ssl_certificate_location: Some(certificate),
        ssl_key_location: Some(key),
        ..kafka.config(SaslMechanism::ScramSha512)
    };
    round_trip(&with_certificate, "ScramSha512 with a client certificate").await;
}

/// The log of `process` once it holds every one of `wanted` (or after `within`), without colours.
async fn log_with(process: &mut ServiceProcess, wanted: &[&str], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let log = without_ansi(&std::fs::read_to_string(&process.log).unwrap_or_default());
        if wanted.iter().all(|w| log.contains(w)) || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `/readyz` of `process`: the status and the body.
async fn readyz(process: &ServiceProcess) -> (u16, String) {
    let resp = reqwest::get(format!("http://{}/readyz", http_addr(process))).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_an_untrusted_certificate_fails_clearly_without_the_password() {
    let kafka = SecureKafka::from_env();
    let right = kafka.config(SaslMechanism::ScramSha512);
    let stack = Stack::with_control_secured(&right, &[5101], &[Table::Metrics]).await;

    // A wrong password: the authentication error names the mechanism and the user.
    let wrong = unique("wrong-password");
    let env = [("DWSYNC_KAFKA__SASL_PASSWORD", wrong.clone())];
    let mut ingest = stack.ingest_with("ingest-wrong-password", &env);
    let wanted = ["SCRAM-SHA-512", right.sasl_username.as_str(), "uthentication"];
    let log = log_with(&mut ingest, &wanted, Duration::from_secs(20)).await;
    for w in wanted {
        assert!(log.contains(w), "the log does not say {w:?}:\n{log}");
    }
    assert!(!log.contains(&wrong), "the password is in the log:\n{log}");
    let (status, body) = readyz(&ingest).await;
    assert_eq!(status, 503, "unready while Kafka refuses it: {body}");
    assert!(body.contains("SCRAM-SHA-512") && !body.contains(&wrong), "{body}");
    ingest.stop();

    // The broker's CA not trusted (no `ssl_ca_location`: the system's CAs): a TLS error.
    let untrusted = stack.dir.join("untrusted-ca.toml");
    let toml = std::fs::read_to_string(&stack.ingest_config)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("ssl_ca_location"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&untrusted, toml).unwrap();
    let mut ingest = ServiceProcess::start(
        "dwsync-ingest",
        "ingest-untrusted-ca",
        &untrusted,
        &[("DWSYNC_KAFKA__SASL_PASSWORD", right.sasl_password.expose().to_owned())],
        &stack.dir,
    );
    let wanted = ["certificate verify failed"];
    let log = log_with(&mut ingest, &wanted, Duration::from_secs(20)).await;
    assert!(log.contains(wanted[0]), "no TLS error in the log:\n{log}");
    assert!(!log.contains(right.sasl_password.expose()), "the password is in the log:\n{log}");
    let (status, body) = readyz(&ingest).await;
    assert_eq!(status, 503, "unready while the TLS handshake fails: {body}");
    assert!(body.contains("certificate verify failed"), "{body}");
    ingest.stop();
}

/// What [`deliver_exactly_once`] leaves running: the stack, what was produced, and control,
/// ingest and the uploader.
struct Delivered {
    stack: Stack,
    produced: Produced,
    services: [ServiceProcess; 3],
}

/// Control, ingest and the uploader as processes over `cfg`: syncs created through control's API
/// for `workspaces` (its store on the configuration topic over `cfg`), records of `tables`
/// produced over `cfg` in two rounds (the transactions go on after the first windows closed):
/// every row in the buckets exactly once, in order.
async fn deliver_exactly_once(cfg: &KafkaConfig, workspaces: &[i64], tables: &[Table], seed: u64) -> Delivered {
    let stack = Stack::with_control_secured(cfg, workspaces, tables).await;
    let mut control = stack.control_with("control", &[]);
    let api = Api::new(stack.control.as_ref().unwrap());
    api.wait_ready(&mut control).await;
    for &ws in workspaces {
        let body = Api::sync_body(ws, &stack.buckets[&ws], &s3_secret_key());
        let (status, resp) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{ws}/sync"), Some(body)).await;
        assert_eq!(status, 201, "{resp}");
    }
    let mut ingest = stack.ingest("ingest");
    let mut uploader = stack.uploader("uploader");
    let producer = producer_of(&stack);
    let mut generator = Generator::new(seed);
    let mut produced = Produced::default();
    produce(&stack, &producer, &mut generator, (workspaces, tables), 0..20, &mut produced).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    produce(&stack, &producer, &mut generator, (workspaces, tables), 20..40, &mut produced).await;
    assert_eq!(produced.total(), 40 * workspaces.len() * tables.len());
    verify(&stack, &produced, Duration::from_secs(90), &mut [&mut control, &mut ingest, &mut uploader]).await;
    Delivered { stack, produced, services: [control, ingest, uploader] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_over_sasl_ssl_with_scram_sha_512() {
    let kafka = SecureKafka::from_env();
    let cfg = kafka.config(SaslMechanism::ScramSha512);
    let password: Secret = cfg.sasl_password.clone();
    let tables = [Table::Metrics, Table::Deliveries, Table::People];
    let Delivered { stack, produced, services: [mut control, mut ingest, mut uploader] } =
        deliver_exactly_once(&cfg, &[5001, 5002], &tables, 26).await;
    // The archiver, another consumer group on the handoff topic over SASL_SSL (from its start):
    // every row too.
    let archive = stack.archive(1_000).await;
    let mut archiver = stack.archiver(&archive, "archiver");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut archived = archived_rows(&archive.bucket).await;
    while archived < produced.total() && Instant::now() < deadline {
        assert!(archiver.is_running(), "archiver exited:\n{}", archiver.log_tail(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
        archived = archived_rows(&archive.bucket).await;
    }
    assert_eq!(archived, produced.total(), "rows in the archive");
    for p in [&mut control, &mut ingest, &mut uploader, &mut archiver] {
        p.stop();
        let log = std::fs::read_to_string(&p.log).unwrap();
        assert!(!log.contains(password.expose()), "{}: the Kafka password is in the log", p.name());
    }
}

/// The mutual-TLS listener of `dev/kafka-secure` (`DWSYNC_TEST_KAFKA_MTLS`, default
/// `127.0.0.1:9096`): security protocol SSL, no SASL, the client certificate signed by the
/// test CA.
fn mutual_tls(kafka: &SecureKafka) -> KafkaConfig {
    let (certificate, key) = kafka.client_certificate();
    KafkaConfig {
        bootstrap_servers: std::env::var("DWSYNC_TEST_KAFKA_MTLS").unwrap_or_else(|_| "127.0.0.1:9096".into()),
        security_protocol: SecurityProtocol::Ssl,
        ssl_ca_location: Some(kafka.ca()),
        ssl_certificate_location: Some(certificate),
        ssl_key_location: Some(key),
        ..KafkaConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_over_mutual_tls_and_a_client_without_a_certificate_refused() {
    let kafka = SecureKafka::from_env();
    let cfg = mutual_tls(&kafka);
    let Delivered { stack, services, .. } =
        deliver_exactly_once(&cfg, &[5201, 5202], &[Table::Metrics, Table::People], 27).await;
    for mut p in services {
        p.stop();
    }

    // Ingest without a client certificate: the broker ends the TLS handshake with an alert
    // (`sslv3 alert bad certificate` from this broker; TLS 1.3 stacks may say `certificate
    // required`); ingest says so in its log and on /readyz, and stays unready.
    let toml = std::fs::read_to_string(&stack.ingest_config).unwrap();
    let without: Vec<&str> = toml
        .lines()
        .filter(|l| !l.starts_with("ssl_certificate_location") && !l.starts_with("ssl_key_location"))
        .collect();
    assert_eq!(without.len() + 2, toml.lines().count(), "the certificate and its key in the config:\n{toml}");
    let config = stack.dir.join("no-client-certificate.toml");
    std::fs::write(&config, without.join("\n")).unwrap();
    let mut ingest = ServiceProcess::start("dwsync-ingest", "ingest-no-certificate", &config, &[], &stack.dir);
    let wanted = ["alert", "certificate", "(ssl)"];
    let log = log_with(&mut ingest, &wanted, Duration::from_secs(20)).await;
    for w in wanted {
        assert!(log.contains(w), "the log does not say {w:?}:\n{log}");
    }
    let (status, body) = readyz(&ingest).await;
    assert_eq!(status, 503, "unready while the broker refuses it: {body}");
    assert!(body.contains("alert") && body.contains("certificate"), "{body}");
    ingest.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_sync_over_sasl_ssl() {
    const W: i64 = 5101;
    let kafka = SecureKafka::from_env();
    let cfg = kafka.config(SaslMechanism::ScramSha256);
    let password: Secret = cfg.sasl_password.clone();
    let stack = Stack::with_control_secured(&cfg, &[W], &[Table::Metrics]).await;
    // control, ingest, archiver, uploader and the backfill, all over SASL_SSL.
    let (api, mut services) = initial::Services::start(&stack, &[]).await;
    let producer = producer_of(&stack);
    let generator = Generator::new(51);
    let mut sent = initial::SentFields::default();
    let rows = initial::records(&generator, W, &[Table::Metrics], 0..60, initial::now_ms());
    initial::send(&stack, &producer, &mut sent, W, &[Table::Metrics], rows).await;
    initial::archived_at_least(&mut services, 60, Duration::from_secs(60)).await;
    api.create_sync(W, &stack.buckets[&W]).await;
    let _ = initial::initial_syncs_done(&api, W, &[Table::Metrics], &mut services).await;
    let files = initial::files_with_metrics(&stack, W, 60, Duration::from_secs(60), &mut services).await;
    initial::assert_every_metric_once(&files, &sent, W, "after an initial sync over SASL_SSL");
    let initial::Services { mut control, mut ingest, mut archiver, mut uploader, mut backfill, .. } = services;
    for p in [&mut control, &mut ingest, &mut archiver, &mut uploader, &mut backfill] {
        p.stop();
        let log = std::fs::read_to_string(&p.log).unwrap();
        assert!(!log.contains(password.expose()), "{}: the Kafka password is in the log", p.name());
    }
}

/// The rows of every Parquet object in `bucket`, from their footers.
async fn archived_rows(bucket: &str) -> usize {
    let s3 = s3_client();
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut rows = 0;
    for o in listed.contents() {
        let body = s3.get_object().bucket(bucket).key(o.key().unwrap()).send().await.unwrap();
        let bytes = body.body.collect().await.unwrap().into_bytes();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        rows += usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap();
    }
    rows
}

/// Runs a tool (`dwsync`, `dwsync-loadgen`) with `--config <config>` after `args`, the Kafka
/// password in the environment.
fn tool(binary: &str, args: &[&str], config: &Path, password: &str) -> Output {
    Command::new(service_binary(binary))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("DWSYNC_KAFKA__SASL_PASSWORD", password)
        // A refused login fails the first metadata request: no need to wait the default 5 s.
        .env("DWSYNC_KAFKA__METADATA_TIMEOUT_MS", "2000")
        .output()
        .unwrap_or_else(|e| panic!("run {binary}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_load_generator_use_the_kafka_section_of_a_config_file() {
    let kafka = SecureKafka::from_env();
    let dir = std::env::temp_dir().join(unique("dwsync-secure-tools"));
    std::fs::create_dir_all(&dir).unwrap();
    for mechanism in MECHANISMS {
        let cfg = kafka.config(mechanism);
        // A service's config file: the tools use its `[kafka]` section and ignore the rest.
        let config = dir.join(format!("{mechanism:?}.toml"));
        std::fs::write(&config, format!("{}[ingest]\ngroup_id = \"dwsync-ingest\"\n", kafka_toml(&cfg))).unwrap();
        let password = cfg.sasl_password.expose();

        // The CLI: one dead letter, counted by a dry-run replay.
        let dlq = unique("secure-dlq");
        create_topic_with(&cfg.client_config("test-admin"), &dlq, 1).await;
        let producer: FutureProducer = cfg.client_config("test-producer").create().unwrap();
        let headers = OwnedHeaders::new()
            .insert(Header { key: header::TOPIC, value: Some("dwsync.source.metrics") })
            .insert(Header { key: header::ERROR_CLASS, value: Some("not_json") });
        let _ = producer
            .send(FutureRecord::to(&dlq).key("1").payload("{").headers(headers), Duration::from_secs(15))
            .await
            .unwrap_or_else(|(e, _)| panic!("{mechanism:?}: produce: {e}"));
        let out = tool("dwsync", &["dead-letters", "replay", "--dry-run", "--topic", &dlq], &config, password);
        let said = text(&out);
        assert!(out.status.success() && said.contains("would replay 1 record(s)"), "{mechanism:?}: {said}");

        // The password from a file named in the config (a mounted Secret), none in the environment.
        let password_file = dir.join(format!("{mechanism:?}.password"));
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        let with_file = dir.join(format!("{mechanism:?}-file.toml"));
        let section = kafka_toml(&cfg).replace(
            "[kafka]\n",
            &format!("[kafka]\nsasl_password_file = {:?}\n", password_file.display().to_string()),
        );
        std::fs::write(&with_file, section).unwrap();
        let out = tool("dwsync", &["dead-letters", "replay", "--dry-run", "--topic", &dlq], &with_file, "");
        let said = text(&out);
        assert!(
            out.status.success() && said.contains("would replay 1 record(s)"),
            "{mechanism:?}, password file: {said}"
        );

        // The CLI with a wrong password: the mechanism and the user, never the password.
        let wrong = unique("wrong-password");
        let out = tool("dwsync", &["dead-letters", "replay", "--dry-run", "--topic", &dlq], &config, &wrong);
        let said = text(&out);
        assert!(!out.status.success(), "{mechanism:?}: a wrong password succeeded: {said}");
        assert!(
            said.contains(mechanism.as_librdkafka())
                && said.contains(&cfg.sasl_username)
                && said.contains("uthentication"),
            "{mechanism:?}: {said}"
        );
        assert!(!said.contains(&wrong) && !said.contains(password), "{mechanism:?}: a password is shown: {said}");
    }

    // The load generator (as Confluent Cloud is reached: PLAIN over TLS).
    let cfg = kafka.config(SaslMechanism::Plain);
    let config = dir.join("Plain.toml");
    let prefix = format!("{}.", unique("secure-loadgen"));
    let args = ["--topic-prefix", &prefix, "--tables", "metrics", "--records", "30", "--workspaces", "2"];
    let out = tool("dwsync-loadgen", &args, &config, cfg.sasl_password.expose());
    assert!(out.status.success(), "loadgen: {}", text(&out));
    let consumer: BaseConsumer = cfg.client_config("test-watermarks").create().unwrap();
    let topic = format!("{prefix}metrics");
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
    let records: i64 = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10)).unwrap();
            high - low
        })
        .sum();
    assert_eq!(records, 30, "the load generator's records over SASL_SSL");
    let _ = std::fs::remove_dir_all(dir);
}

/// `dwsync-bench --smoke --scenario metrics-json` with a service's config file whose `[kafka]`
/// section is SASL_SSL with SCRAM-SHA-512, the password in the environment: the pre-load, the
/// harness's consumers, ingest and the uploader all reach the secured broker, every record
/// arrives in S3 (the harness fails otherwise), and the password is in no output or log.
#[test]
fn the_benchmark_runs_a_scenario_over_sasl_ssl() {
    let kafka = SecureKafka::from_env();
    let cfg = kafka.config(SaslMechanism::ScramSha512);
    let dir = std::env::temp_dir().join(unique("dwsync-secure-bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bench.toml");
    std::fs::write(&config, kafka_toml(&cfg)).unwrap();
    let json = dir.join("report.json");
    let bench = service_binary("dwsync-bench");
    let bin_dir = bench.parent().unwrap().display().to_string();
    let work_dir = dir.join("work").display().to_string();
    let args = [
        "--smoke",
        "--scenario",
        "metrics-json",
        "--bin-dir",
        &bin_dir,
        "--work-dir",
        &work_dir,
        "--s3-endpoint",
        &s3_endpoint(),
        "--json",
        json.to_str().unwrap(),
    ];
    let out = Command::new(&bench)
        .args(args)
        .arg("--config")
        .arg(&config)
        .env("DWSYNC_KAFKA__SASL_PASSWORD", cfg.sasl_password.expose())
        .env("S3_ACCESS_KEY", s3_access_key())
        .env("S3_SECRET_KEY", s3_secret_key())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "dwsync-bench over SASL_SSL failed:\n{said}");
    assert!(said.contains(&format!("Kafka at {} (sasl_ssl, SCRAM-SHA-512", kafka.bootstrap)), "{said}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let scenario = &report["scenarios"][0];
    let records = scenario["raw_consume"]["records"].as_f64().unwrap();
    assert_eq!(records, 3_000.0, "the pre-load's records read back over SASL_SSL");
    assert_eq!(scenario["end_to_end"]["rows"].as_f64(), Some(records), "every record in a file in S3");
    assert!(!said.contains(cfg.sasl_password.expose()), "the password is in the harness's output");
    for service in ["ingest", "uploader"] {
        let log =
            std::fs::read_to_string(dir.join("work").join("metrics-json").join(format!("{service}.log"))).unwrap();
        // The broker's only listener is SASL_SSL: reachable means the [kafka] section was used.
        let log = without_ansi(&log);
        assert!(
            log.contains("Kafka is reachable") && log.contains(&kafka.bootstrap),
            "{service} did not reach the secured broker:\n{log}"
        );
        assert!(!log.contains(cfg.sasl_password.expose()), "{service}: the password is in its log");
    }
    let _ = std::fs::remove_dir_all(dir);
}
