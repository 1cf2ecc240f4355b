//! The `dwsync-archiver` binary as an operator starts it: a typo in its config stops it at once
//! with the key named, while variables of the same prefix that are not config keys (the dev
//! scripts', the seal keys other services read) are left alone. (Its integration test with
//! Kafka and S3 is `tests/tests/archive.rs`, which runs this binary: having a test here makes
//! `cargo test --workspace` build it.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

fn archiver(config: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("dwsync-archiver-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("archiver-{}.toml", config.len()));
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dwsync-archiver"))
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
    let out = archiver("[archive]\nflush_byte = 1\n[store]\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flush_byte"), "{stderr}");
    assert!(!stderr.contains("`run`") && !stderr.contains("seal_key"), "other variables are not keys: {stderr}");
}

#[test]
fn missing_credentials_stop_it_without_printing_the_secret() {
    let out = archiver("[store]\nsecret_access_key = \"0123-very-secret\"\n");
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("access_key_id"), "{text}");
    assert!(!text.contains("0123-very-secret"), "{text}");
}

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let dir = std::env::temp_dir().join(format!("dwsync-archiver-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("archiver.toml");
    std::fs::write(
        &path,
        "[archive]\nflush_bytes = 1048576\n[store]\naccess_key_id = \"a\"\nsecret_access_key = \"0123-very-secret\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dwsync-archiver"))
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .env("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("flush_bytes = 1048576"), "the file's value: {stdout}");
    assert!(stdout.contains("bootstrap_servers = \"kafka-1:9092\""), "the variable's value: {stdout}");
    assert!(stdout.contains("secret_access_key = \"set\""), "{stdout}");
    assert!(!stdout.contains("0123-very-secret"), "{stdout}");

    // A config that loads but fails the service's checks: exit 1 with the reason.
    std::fs::write(&path, "[archive]\nflush_bytes = 1048576\n[store]\naccess_key_id = \"a\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dwsync-archiver"))
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("access_key_id"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_typo_names_the_nearest_key_and_version_prints() {
    let out = archiver("[archive]\nflush_byts = 1\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("did you mean `flush_bytes`?"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_dwsync-archiver")).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("dwsync-archiver "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
