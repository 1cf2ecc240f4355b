//! The configuration's rules, loaded as the service loads them.

use dwsync_config::{ConfigError, Secret};
use dwsync_contract::Table;

use super::destination::default_region;
use super::*;

fn with_file(toml: &str, check: impl FnOnce(Result<Config, ConfigError>)) {
    check(dwsync_config::testing::load_with(Some(toml), &[]));
}

#[test]
fn defaults() {
    let cfg = Config::default();
    assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8082");
    assert_eq!(cfg.handoff, HandoffConfig::default());
    assert_eq!((cfg.handoff.topic.as_str(), cfg.handoff.group_id.as_str()), ("dwsync.handoff", "dwsync-uploader"));
    assert_eq!(cfg.upload.multipart_threshold_bytes, 64 << 20);
    assert_eq!(cfg.upload.part_bytes, 16 << 20);
    assert_eq!((cfg.upload.retry_initial_ms, cfg.upload.retry_max_ms), (200, 30_000));
    assert_eq!((cfg.upload.concurrency, cfg.upload.flight_bytes, cfg.upload.queued_bytes), (48, 64 << 20, 64 << 20));
    assert!(cfg.destinations.is_empty());
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn destinations_from_the_file_with_their_defaults() {
    let toml = r#"
        [handoff]
        topic = "h"
        [upload]
        part_bytes = 5242880
        concurrency = 4
        [[destinations]]
        workspace_id = 42
        bucket = "acme-exports"
        access_key_id = "AKIA42"
        secret_access_key = "0123-secret"

        [[destinations]]
        workspace_id = 7
        bucket = "globex"
        prefix = "cio/exports"
        region = "eu-west-1"
        endpoint = "http://minio:9000"
        force_path_style = true
        access_key_id = "minio"
        secret_access_key = "minio-secret"
        tables = ["deliveries", "people"]
        conditional_writes = false
    "#;
    with_file(toml, |cfg| {
        let cfg = cfg.expect("loads");
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.handoff.topic, "h");
        assert_eq!(cfg.handoff.group_id, "dwsync-uploader", "keys absent from the file keep defaults");
        assert_eq!(cfg.upload.part_bytes, 5 << 20);
        assert_eq!(cfg.upload.multipart_threshold_bytes, 64 << 20);
        assert_eq!((cfg.upload.concurrency, cfg.upload.queued_bytes), (4, 64 << 20));
        let [a, b] = cfg.destinations.as_slice() else { panic!("two destinations: {:?}", cfg.destinations) };
        assert_eq!((a.workspace_id, a.bucket.as_str(), a.prefix.as_str()), (42, "acme-exports", ""));
        assert_eq!((a.region.as_str(), a.endpoint.as_deref(), a.force_path_style), ("us-east-1", None, false));
        assert!(a.conditional_writes && a.tables.is_empty());
        assert_eq!(a.table_filter(), Ok(None));
        assert_eq!(a.secret_access_key.expose(), "0123-secret");
        assert_eq!((b.prefix.as_str(), b.region.as_str()), ("cio/exports", "eu-west-1"));
        assert_eq!(b.endpoint.as_deref(), Some("http://minio:9000"));
        assert!(b.force_path_style && !b.conditional_writes);
        assert_eq!(b.table_filter(), Ok(Some([Table::Deliveries, Table::People].into_iter().collect())));
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("0123-secret") && !debug.contains("minio-secret"), "{debug}");
    });
}

#[test]
fn the_deploy_example_loads_and_is_valid() {
    let example = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/uploader.toml"));
    with_file(example, |cfg| {
        let cfg = cfg.expect("deploy/uploader.toml loads");
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!((cfg.handoff, cfg.upload), (HandoffConfig::default(), UploadConfig::default()));
        let workspaces: Vec<_> = cfg.destinations.iter().map(|d| d.workspace_id).collect();
        assert_eq!(workspaces, [1001, 1002]);
    });
}

#[test]
fn an_unknown_table_is_an_error_naming_it() {
    let toml = r#"
        [[destinations]]
        workspace_id = 42
        bucket = "b"
        access_key_id = "k"
        secret_access_key = "s"
        tables = ["deliveries", "deliverys"]
    "#;
    with_file(toml, |cfg| {
        let err = cfg.expect("loads").validate().expect_err("unknown table");
        assert_eq!(err, InvalidConfig::UnknownTable { workspace_id: 42, table: "deliverys".into() });
        let msg = err.to_string();
        assert!(msg.contains("\"deliverys\"") && msg.contains("workspace 42"), "{msg}");
    });
}

#[test]
fn a_destination_without_a_required_key_does_not_load() {
    with_file("[[destinations]]\nworkspace_id = 1\nbucket = \"b\"\n", |cfg| {
        let err = cfg.expect("loads").validate().expect_err("access_key_id missing");
        assert_eq!(err, InvalidConfig::Missing { workspace_id: 1, field: "access_key_id" });
    });
}

#[test]
fn a_gcs_destination_takes_a_service_account_key_and_no_s3_setting() {
    let key = dwsync_tests::gcs::service_account_key();
    let toml = format!(
        "[[destinations]]\nworkspace_id = 7\nkind = \"gcs\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:4443\"\n\
         service_account_key = '''{key}'''\n"
    );
    with_file(&toml, |cfg| {
        let cfg = cfg.expect("loads");
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.destinations[0].kind, DestinationKind::Gcs);
        let shown = format!("{:?}", cfg.destinations[0]);
        assert!(!shown.contains("PRIVATE KEY"), "the key is never shown: {shown}");
    });
    let with = |extra: &str| format!("{toml}{extra}\n");
    with_file(&with("access_key_id = \"k\""), |cfg| {
        let err = cfg.expect("loads").validate().expect_err("an S3 setting");
        assert_eq!(err, InvalidConfig::NotForKind { workspace_id: 7, field: "access_key_id", kind: "gcs" });
        assert_eq!(err.to_string(), "destination of workspace 7: `access_key_id` is not a setting of kind = \"gcs\"");
    });
    with_file(&with("region = \"eu-west-3\""), |cfg| {
        let err = cfg.expect("loads").validate().expect_err("an S3 setting");
        assert_eq!(err, InvalidConfig::NotForKind { workspace_id: 7, field: "region", kind: "gcs" });
    });
    let broken = "[[destinations]]\nworkspace_id = 7\nkind = \"gcs\"\nbucket = \"b\"\n\
                  service_account_key = '{\"private_key\": \"secret-material\"}'\n";
    with_file(broken, |cfg| {
        let err = cfg.expect("loads").validate().expect_err("not a key");
        assert!(matches!(err, InvalidConfig::BadServiceAccountKey { workspace_id: 7, .. }), "{err:?}");
        assert!(!err.to_string().contains("secret-material"), "{err}");
    });
    with_file("[[destinations]]\nworkspace_id = 7\nkind = \"gcs\"\nbucket = \"b\"\n", |cfg| {
        let err = cfg.expect("loads").validate().expect_err("no key");
        assert_eq!(err, InvalidConfig::Missing { workspace_id: 7, field: "service_account_key" });
    });
    with_file("[[destinations]]\nworkspace_id = 7\nkind = \"azure\"\nbucket = \"b\"\n", |cfg| {
        assert!(cfg.expect_err("no such kind").to_string().contains("azure"));
    });
    let key = Secret::new(dwsync_tests::gcs::service_account_key());
    let s3_with_key = Destination { service_account_key: key, ..sample_s3() };
    assert_eq!(
        s3_with_key.check_fields(),
        Err(InvalidConfig::NotForKind { workspace_id: 1, field: "service_account_key", kind: "s3" })
    );
}

fn sample_s3() -> Destination {
    Destination {
        workspace_id: 1,
        kind: DestinationKind::S3,
        bucket: "b".into(),
        prefix: String::new(),
        region: default_region(),
        endpoint: None,
        force_path_style: false,
        access_key_id: "k".into(),
        secret_access_key: Secret::new("s"),
        service_account_key: Secret::default(),
        tables: Vec::new(),
        conditional_writes: true,
    }
}

#[test]
fn invalid_values_are_rejected() {
    let dest = |workspace_id| Destination { workspace_id, ..sample_s3() };
    let check = |change: &dyn Fn(&mut Config)| {
        let mut cfg = Config { destinations: vec![dest(1)], ..Config::default() };
        change(&mut cfg);
        cfg.validate()
    };
    assert_eq!(check(&|_| ()), Ok(()));
    assert_eq!(check(&|c| c.destinations.push(dest(1))), Err(InvalidConfig::DuplicateWorkspace(1)));
    assert_eq!(check(&|c| c.destinations[0].workspace_id = 0), Err(InvalidConfig::InvalidWorkspace(0)));
    assert_eq!(
        check(&|c| c.destinations[0].secret_access_key = Secret::default()),
        Err(InvalidConfig::Missing { workspace_id: 1, field: "secret_access_key" })
    );
    assert_eq!(
        check(&|c| c.destinations[0].bucket.clear()),
        Err(InvalidConfig::Missing { workspace_id: 1, field: "bucket" })
    );
    let key = |r: Result<(), InvalidConfig>| match r {
        Err(InvalidConfig::Value { key, .. }) => key,
        other => panic!("{other:?}"),
    };
    assert_eq!(key(check(&|c| c.upload.part_bytes = MIN_PART_BYTES - 1)), "upload.part_bytes");
    assert_eq!(key(check(&|c| c.upload.retry_initial_ms = 60_000)), "upload.retry_initial_ms");
    assert_eq!(key(check(&|c| c.upload.multipart_threshold_bytes = 0)), "upload.multipart_threshold_bytes");
    assert_eq!(key(check(&|c| c.upload.concurrency = 0)), "upload.concurrency");
    assert_eq!(key(check(&|c| c.handoff.topic.clear())), "handoff.topic");
    assert_eq!(key(check(&|c| c.handoff.stall_after_ms = 0)), "handoff.stall_after_ms");
}
