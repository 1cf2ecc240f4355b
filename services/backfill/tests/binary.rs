//! The `dwsync-backfill` binary as an operator starts it: a typo in its config stops it at once
//! with the key named, while variables of the same prefix that are not config keys are left
//! alone; the archive's secret is never printed. (Its test with Kafka and S3 is
//! `tests/backfill.rs`.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

fn backfill(config: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("dwsync-backfill-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("backfill-{}.toml", config.len()));
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dwsync-backfill"))
        .arg("--config")
        .arg(&path)
        .env("DWSYNC_RUN", "/tmp/not-a-config-key")
        .env("DWSYNC_SEAL_KEY", "00".repeat(32))
        .env("DWSYNC_HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap()
}

#[test]
fn a_typo_in_the_config_stops_it_naming_the_key() {
    let credentials = "[archive]\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n";
    for (typo, key) in [
        ("[backfill]\nmetrics_rows_per_fil = 5\n", "metrics_rows_per_fil"),
        ("[sync_config.store]\ninitial_sync_topc = \"x\"\n", "initial_sync_topc"),
    ] {
        let out = backfill(&format!("{typo}{credentials}"));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{stderr}");
        assert!(!stderr.contains("`run`") && !stderr.contains("seal_key"), "other variables are not keys: {stderr}");
    }
}

#[test]
fn missing_credentials_stop_it_without_printing_the_secret() {
    let out = backfill("[archive]\nsecret_access_key = \"0123-very-secret\"\n");
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("access_key_id"), "{text}");
    assert!(!text.contains("0123-very-secret"), "{text}");
}
