//! `dwsync-bench --smoke` against the real Kafka broker and S3 server (`DWSYNC_KAFKA__BOOTSTRAP_SERVERS`,
//! `DWSYNC_BENCH_S3_ENDPOINT` to reach others than the defaults): every scenario runs end to
//! end, the report has its four rows with non-zero figures and every record arrived. No timing
//! thresholds: a slow machine prints slow figures, it does not fail.
//!
//! Needs the service binaries built next to the harness (`cargo test --workspace`
//! and `dev/test` build them; alone: `cargo build --workspace --bins`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("{pointer} missing in {v}"))
}

/// Runs the harness with `args`, its JSON report to `json`, the services next to it.
fn bench(args: &[&str], json: &Path) -> std::process::Output {
    let exe = Path::new(env!("CARGO_BIN_EXE_dwsync-bench"));
    Command::new(exe)
        .args(args)
        .arg("--json")
        .arg(json)
        .arg("--bin-dir")
        .arg(exe.parent().unwrap())
        .output()
        .expect("run dwsync-bench")
}

#[test]
fn smoke_mode_reports_every_row_of_every_scenario() {
    let json = std::env::temp_dir().join(format!("dwsync-bench-smoke-{}.json", std::process::id()));
    let output = bench(&["--smoke", "--stream-secs", "2", "--raw-reads", "2"], &json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "dwsync-bench --smoke failed (Kafka and S3 up? `dev/kafka start`, `dev/s3 start`):\n{stdout}\n{stderr}"
    );
    for row in [
        "1  raw consume",
        "2  Parquet encode",
        "1+2 consume",
        "3  dwsync end to end",
        "4  ratio 3 / 1",
        "5  S3 write ceiling",
        "6  CPU bound",
        "3s dwsync on a steady stream",
        "| scenario |",
    ] {
        assert!(stdout.contains(row), "no {row:?} in the report:\n{stdout}");
    }

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["smoke"], true);
    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s["scenario"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["metrics-json", "metrics-protobuf", "mixed-all-tables", "workspaces-10k"]);
    for s in scenarios {
        let name = s["scenario"]["name"].as_str().unwrap();
        let records = num(s, "/raw_consume/records");
        assert!(records > 0.0, "{name}");
        for rate in [
            "/raw_consume/records_per_sec",
            "/encode/throughput/records_per_sec",
            "/consume_encode/throughput/records_per_sec",
            "/end_to_end/throughput/records_per_sec",
        ] {
            assert!(num(s, rate) > 0.0, "{name}: {rate}");
        }
        assert!(num(s, "/ratio") > 0.0, "{name}");
        // The steady stream: every record produced during the run, in an object, each file visible.
        assert_eq!(num(s, "/stream/secs"), 2.0, "{name}");
        assert_eq!(num(s, "/stream/run/rows"), records, "{name}: every streamed record in a file");
        let streamed = num(s, "/stream/run/files");
        assert!(streamed > 0.0, "{name}");
        assert_eq!(num(s, "/stream/run/visible/files"), streamed, "{name}: a visible time for every streamed file");
        // Row 1 is the fastest of its reads (two asked for), each of every record.
        let reads: Vec<f64> = s["raw_consume_reads"].as_array().unwrap().iter().map(|r| r.as_f64().unwrap()).collect();
        assert_eq!(reads.len(), 2, "{name}");
        assert!(reads.iter().all(|&r| r > 0.0), "{name}");
        assert_eq!(num(s, "/raw_consume/records_per_sec"), reads.iter().copied().fold(0.0, f64::max), "{name}");
        // Row 1 is timed first record → last; its group join is reported apart, never negative.
        assert!(num(s, "/raw_consume_join_secs") >= 0.0, "{name}");
        assert!(num(s, "/ratio_with_join") >= num(s, "/ratio"), "{name}");
        // Every record once in the ceilings and in the objects written.
        assert_eq!(num(s, "/encode/throughput/records"), records, "{name}");
        assert_eq!(num(s, "/encode/rejected"), 0.0, "{name}");
        assert_eq!(num(s, "/consume_encode/throughput/records"), records, "{name}");
        assert_eq!(num(s, "/consume_encode/rejected"), 0.0, "{name}");
        assert_eq!(num(s, "/end_to_end/rows"), records, "{name}");
        let files = num(s, "/end_to_end/files");
        assert!(files > 0.0 && num(s, "/end_to_end/validates") > 0.0, "{name}");
        assert_eq!(num(s, "/end_to_end/visible/files"), files, "{name}: a visible time for every file");
        // The same files, per close reason, as counted by reason.
        let by_reason = s["end_to_end"]["visible_by_reason"].as_object().unwrap();
        let reasons = s["end_to_end"]["close_reasons"].as_object().unwrap();
        assert_eq!(by_reason.keys().collect::<Vec<_>>(), reasons.keys().collect::<Vec<_>>(), "{name}");
        for (reason, latency) in by_reason {
            assert_eq!(latency["files"], reasons[reason], "{name}: {reason}");
        }
        assert!(reasons.contains_key("time"), "{name}: windows closed by the clock");
        // The same files again, per close instant.
        let by_close = s["end_to_end"]["visible_by_close"].as_array().unwrap();
        let grouped: f64 = by_close.iter().map(|g| g["visible"]["files"].as_f64().unwrap()).sum();
        assert_eq!(grouped, files, "{name}: every file in one close group");
        // Row 5 wrote as many objects as row 3 did, each with a PUT time.
        let objects = files + num(s, "/end_to_end/validates");
        assert_eq!(num(s, "/end_to_end/s3_ceiling/objects"), objects, "{name}");
        assert_eq!(num(s, "/end_to_end/s3_ceiling/put/files"), objects, "{name}");
        assert!(num(s, "/end_to_end/s3_ceiling/puts_per_sec") > 0.0, "{name}");
        // The whole machine's CPU while the services worked holds the broker's and the S3
        // server's (found by the harness: dev/kafka and dev/s3 run them here), within /proc/stat's
        // tick sampling. A smoke run may hold no 200-ms interval in which a service used a fifth
        // of a core: then all three are zero.
        let machine = num(s, "/end_to_end/machine_cpu/machine");
        let servers = num(s, "/end_to_end/machine_cpu/broker") + num(s, "/end_to_end/machine_cpu/s3_server");
        assert!(machine >= 0.0 && 1.1 * machine + 0.05 >= servers, "{name}: machine {machine} s, servers {servers} s");
        // Row 6, when row 1's read lasted long enough to show CPU time: its parts add up.
        if let Some(bound) = s["cpu_bound"].as_object() {
            let get = |k: &str| bound[k].as_f64().unwrap();
            let per_record = (get("read_cpu_secs_per_million") + get("encode_cpu_secs_per_million")) / 1e6;
            assert!(per_record > 0.0, "{name}");
            assert!((get("records_per_sec") * per_record - get("cpus")).abs() < 1e-6, "{name}: {bound:?}");
            assert!(get("ratio") > 0.0 && get("end_to_end_share") > 0.0, "{name}: {bound:?}");
        }
        for service in ["ingest", "uploader"] {
            assert!(num(s, &format!("/end_to_end/{service}/cpu_secs")) > 0.0, "{name}: {service} CPU");
            assert!(num(s, &format!("/end_to_end/{service}/peak_rss_mib")) > 0.0, "{name}: {service} RSS");
        }
    }
    let mixed = &scenarios[2];
    assert_eq!(mixed["input"].as_object().unwrap().len(), 15, "every table in the mixed scenario");
}

/// `--smoke --scenario backfill-large`: the backfill delivers the three baselines of the
/// generated workspace with the rows a user would count (people without the 2 % erased, the
/// others' two attributes each, every metric), with a 4 MiB smoke budget.
/// Needs `dwsync-backfill` built next to the harness.
#[test]
fn smoke_mode_backfills_a_generated_workspace() {
    let json = std::env::temp_dir().join(format!("dwsync-bench-backfill-{}.json", std::process::id()));
    let output = bench(&["--smoke", "--scenario", "backfill-large"], &json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dwsync-bench --smoke --scenario backfill-large failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let backfill = &report["backfill"];
    assert_eq!(num(backfill, "/baseline_rows/people"), 19_600.0, "20,000 people less the 400 erased");
    assert_eq!(num(backfill, "/baseline_rows/attributes"), 39_200.0, "19,600 people × 2 names");
    assert_eq!(num(backfill, "/baseline_rows/metrics"), 80_000.0);
    assert_eq!(num(backfill, "/files"), 3.0);
    assert_eq!(num(backfill, "/memory_budget_bytes"), f64::from(4u32 << 20));
    // The spill directory's size is sampled every few hundred ms, so a short run may spill between
    // two samples; the backfill's counter says what the folds wrote: 4 MiB is less than the
    // attributes fold holds, so it spills (with the same rows: above).
    assert!(num(backfill, "/peak_spill_bytes") >= 0.0);
    assert!(num(backfill, "/spilled_bytes") > 0.0, "the folds spilled within a 4 MiB budget");
    assert!(num(backfill, "/spills") >= 1.0, "a fold spilled");
    assert!(num(backfill, "/peak_rss_bytes") > 0.0 && num(backfill, "/rows_per_sec") > 0.0);
}

/// `--smoke --scenario syncs-1000`: 20 syncs created through control's API, every initial sync
/// done, the status exact throughout (only forward, never done before its file, the baseline's
/// rows and files), every baseline file in the bucket with its rows, no more jobs at once than
/// `backfill.concurrency`. Needs `dwsync-control` and `dwsync-backfill` built next to the harness.
#[test]
fn smoke_mode_creates_syncs_and_watches_every_initial_sync_to_done() {
    let json = std::env::temp_dir().join(format!("dwsync-bench-syncs-{}.json", std::process::id()));
    let output = bench(&["--smoke", "--scenario", "syncs-1000"], &json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dwsync-bench --smoke --scenario syncs-1000 failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let syncs = &report["syncs"];
    assert_eq!(num(syncs, "/workspaces"), 20.0);
    assert_eq!(num(syncs, "/created_to_done/files"), 20.0, "a latency for every workspace");
    assert_eq!(num(syncs, "/files"), 60.0, "people, attributes and metrics of each");
    assert!(num(syncs, "/max_running_jobs") <= num(syncs, "/concurrency"));
    for count in ["backward", "done_before_file", "wrong_counts", "failed_seen", "wrong_tables"] {
        assert_eq!(num(syncs, &format!("/accuracy/{count}")), 0.0, "{count}");
    }
    assert!(num(syncs, "/accuracy/polls") >= 20.0 && num(syncs, "/all_done_secs") > 0.0);
}

/// `--smoke --scenario backfill-live`: a generated workspace's initial sync runs through control's
/// API while 20 other workspaces stream; every streamed record is in the bucket (the harness fails
/// otherwise), close → visible is measured before and during the backfill, CPU per process.
/// Needs every service binary built next to the harness.
#[test]
fn smoke_mode_streams_other_workspaces_during_a_backfill() {
    let json = std::env::temp_dir().join(format!("dwsync-bench-live-{}.json", std::process::id()));
    let output = bench(&["--smoke", "--scenario", "backfill-live"], &json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dwsync-bench --smoke --scenario backfill-live failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let live = &report["backfill_live"];
    assert_eq!(num(live, "/plan/workspaces"), 20.0);
    // 19,600 people, 39,200 attributes, 80,000 metrics (as backfill-large's smoke).
    assert_eq!(num(live, "/baseline_rows"), 138_800.0, "the baselines' rows");
    assert!(num(live, "/live_records") > 0.0 && num(live, "/live_files") > 0.0);
    for stretch in ["before", "during"] {
        assert!(num(live, &format!("/{stretch}/visible/files")) > 0.0, "{stretch}: live files measured");
        assert!(num(live, &format!("/{stretch}/secs")) > 0.0, "{stretch}");
        for process in ["ingest", "uploader", "backfill", "control", "machine", "rest"] {
            assert!(num(live, &format!("/{stretch}/cpu_secs/{process}")) >= 0.0, "{stretch}: {process}");
        }
    }
    assert!(num(live, "/rows_per_sec") > 0.0 && num(live, "/backfill_secs") > 0.0);
}

/// `--smoke --scenario archiver-backlog`: ingest hands off 3,000 records of all 15 tables, the
/// archiver (256-KiB batches in a 512-KiB bound) archives every row, writing batches early for
/// memory, and control answers 20 syncs' creates and status polls; both peak RSS measured.
/// Needs `dwsync-ingest`, `dwsync-archiver` and `dwsync-control` built next to the harness.
#[test]
fn smoke_mode_drains_a_handoff_backlog_with_the_archiver() {
    let json = std::env::temp_dir().join(format!("dwsync-bench-archiver-{}.json", std::process::id()));
    let output = bench(&["--smoke", "--scenario", "archiver-backlog"], &json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dwsync-bench --smoke --scenario archiver-backlog failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let run = &report["archiver_backlog"];
    assert_eq!(num(run, "/records"), 3_000.0, "200 records of each of the 15 tables");
    assert_eq!(num(run, "/archive_rows"), 3_000.0, "every handed-off row in the archive");
    assert!(num(run, "/handoff_files") > 0.0 && num(run, "/archive_objects") > 0.0);
    assert!(num(run, "/archiver/batches/memory") >= 1.0, "batches written early for memory: {run}");
    assert!(num(run, "/archiver/peak_rss_bytes") > 0.0 && num(run, "/archiver/rows_per_sec") > 0.0);
    assert!(num(run, "/archiver/busy_secs") <= num(run, "/archiver/secs"));
    assert_eq!(num(run, "/control/workspaces"), 20.0);
    assert_eq!(num(run, "/control/polls"), 40.0, "two rounds over 20 workspaces");
    assert!(num(run, "/control/peak_rss_bytes") > 0.0);
}

/// `--smoke --scenario soak`: 50 workspaces of all 15 tables streamed at 100 records/s for 20 s,
/// nothing pre-loaded: every record handed off once (per table) and in the bucket, an RSS sample
/// every second with a trend for both services, close → visible per 5-s interval adding up to
/// every file, CPU per million records for each service.
#[test]
fn smoke_mode_soaks_a_steady_stream() {
    let json = std::env::temp_dir().join(format!("dwsync-bench-soak-{}.json", std::process::id()));
    let output = bench(&["--smoke", "--scenario", "soak"], &json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dwsync-bench --smoke --scenario soak failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in ["== soak:", "RSS over the last", "CPU s per million records", "closed from", "exactly once:"] {
        assert!(stdout.contains(line), "no {line:?} in the report:\n{stdout}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let soak = &report["soak"];
    assert_eq!(num(soak, "/plan/secs"), 20.0);
    assert_eq!(num(soak, "/plan/scenario/workspaces"), 50.0);
    assert_eq!(soak["plan"]["scenario"]["tables"].as_array().unwrap().len(), 15, "every table");
    let records = num(soak, "/plan/scenario/records_per_table") * 15.0;
    let run = &soak["stream"]["run"];
    assert_eq!(num(run, "/rows"), records, "every streamed record handed off once");
    let files = num(run, "/files");
    assert!(files > 0.0);
    assert_eq!(num(run, "/visible/files"), files, "a visible time for every file");
    let intervals = run["over_time"]["visible_by_interval"].as_array().unwrap();
    assert!(intervals.len() >= 2, "a 20-s run closes windows in several 5-s intervals: {intervals:?}");
    let grouped: f64 = intervals.iter().map(|i| i["visible"]["files"].as_f64().unwrap()).sum();
    assert_eq!(grouped, files, "every file in one interval");
    let rss = run["over_time"]["rss"].as_array().unwrap();
    assert!(rss.len() >= 10, "an RSS sample every second: {}", rss.len());
    for service in ["ingest", "uploader"] {
        assert!(num(soak, &format!("/{service}_rss/samples")) >= 3.0, "{service}: a trend");
        assert!(num(soak, &format!("/{service}_rss/mean_mib")) > 0.0, "{service}");
        let verdict = soak[format!("{service}_rss")]["verdict"].as_str().unwrap();
        assert!(["flat", "rising"].contains(&verdict), "{service}: {verdict}");
        assert!(num(soak, &format!("/cpu_per_million/{service}")) > 0.0, "{service} CPU");
    }
}
