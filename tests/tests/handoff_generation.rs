//! A replaced handoff topic, on the real broker and S3 server, services as processes: records
//! flow, ingest is stopped mid-stream, `dwsync handoff status` waits until the uploader's group
//! has delivered everything on the topic, the uploader is stopped, the topic is deleted and
//! created again (its offsets restart at 0), `dwsync handoff advance` moves the generation on,
//! and the services start again while more records arrive. Every record is exported exactly
//! once, and each workspace's `seq` keep increasing across the switch: the files after it are at
//! positions of generation 1 (`10^12 + offset`), above every file before it.
//!
//! Then the archive across a switch: history archived in generation 0, the topic replaced, more
//! history in generation 1, and a sync created after both: its initial sync holds every metric
//! of both generations exactly once.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::initial::*;
use common::*;
use dwsync_contract::Table;
use dwsync_handoff::generation::SPAN as GENERATION_SPAN;
use dwsync_loadgen::Generator;
use dwsync_tests::services::service_binary;

/// Positions per generation, as the keys' `seq` carry them.
const SPAN: u64 = GENERATION_SPAN as u64;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// Runs the `dwsync` CLI against the stack's broker; its stdout, or a panic with its stderr.
fn cli(stack: &Stack, args: &[&str]) -> String {
    let out = Command::new(service_binary("dwsync"))
        .args(args)
        .env("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", &stack.bootstrap)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "dwsync {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// Waits until `dwsync handoff status` says every one of `groups` has delivered the topic.
async fn drained(stack: &Stack, groups: &[&str], running: &mut [&mut dwsync_tests::services::ServiceProcess]) {
    let topic = stack.handoff_topic.as_str();
    let mut args = vec!["handoff", "status", "--topic", topic];
    for group in groups {
        args.extend(["--group", group]);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = cli(stack, &args);
        if groups.iter().all(|g| status.contains(&format!("{g}: drained"))) {
            return;
        }
        assert!(Instant::now() < deadline, "the handoff topic was not drained:\n{status}");
        for p in running.iter_mut() {
            assert!(p.is_running(), "{} exited:\n{}", p.name(), p.log_tail(30));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The uploader's consumer group, from its config file.
fn uploader_group(stack: &Stack) -> String {
    let text = std::fs::read_to_string(&stack.uploader_config).unwrap();
    let handoff = &text[text.find("[handoff]").unwrap()..];
    let line = handoff.lines().find(|l| l.starts_with("group_id")).unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

/// Deletes `topic` and creates it again with `partitions` (retried while the deletion is
/// still under way).
async fn recreate(stack: &Stack, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = stack.client_config("test-admin").create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for deleted in admin.delete_topics(&[topic], &opts).await.unwrap() {
        deleted.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let created = admin.create_topics([&new], &opts).await.unwrap().remove(0);
        match created {
            Ok(_) => return,
            Err((_, code)) if Instant::now() < deadline => {
                eprintln!("recreating {topic}: {code:?}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err((_, code)) => panic!("recreating {topic}: {code:?}"),
        }
    }
}

/// The highest `seq` per (workspace, table) in the buckets.
async fn highest_seqs(stack: &Stack) -> BTreeMap<(i64, Table), u64> {
    let mut cache = BTreeMap::new();
    read_objects(stack, &mut cache).await;
    let mut highest = BTreeMap::new();
    for o in cache.values() {
        let seq = highest.entry((o.workspace, o.table)).or_insert(0);
        *seq = (*seq).max(o.seq);
    }
    highest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seqs_keep_increasing_across_a_recreated_handoff_topic() {
    let workspaces = [91_001, 91_002, 91_003];
    let tables = [Table::Metrics, Table::People, Table::Events];
    let stack = Stack::new(&workspaces, &tables).await;
    let topic = stack.handoff_topic.clone();
    let group = uploader_group(&stack);
    let producer = producer();
    let mut generator = Generator::new(29);
    let mut produced = Produced::default();

    assert!(cli(&stack, &["handoff", "status", "--topic", &topic, "--group", &group]).contains("generation 0"));
    let mut ingest = stack.ingest("ingest-a");
    let mut uploader = stack.uploader("uploader-a");
    produce(&stack, &producer, &mut generator, (&workspaces, &tables), 0..20, &mut produced).await;
    verify(&stack, &produced, Duration::from_secs(120), &mut [&mut ingest, &mut uploader]).await;

    // Mid-stream: more records, and ingest stopped while they are read.
    produce(&stack, &producer, &mut generator, (&workspaces, &tables), 20..40, &mut produced).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    ingest.stop();
    drained(&stack, &[&group], &mut [&mut uploader]).await;
    uploader.stop();
    let before = highest_seqs(&stack).await;
    assert!(before.values().all(|seq| *seq < SPAN), "generation 0: seqs are offsets {before:?}");

    // The topic replaced: its offsets start at 0 again.
    recreate(&stack, &topic, 4).await;
    let advanced = cli(&stack, &["handoff", "advance", "--topic", &topic]);
    assert!(advanced.contains("generation 0 -> 1"), "{advanced}");
    let refused = Command::new(service_binary("dwsync"))
        .args(["handoff", "advance", "--topic", &topic, "--to", "1"])
        .env("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", &stack.bootstrap)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a generation that is not ahead is refused");
    let refusal = String::from_utf8_lossy(&refused.stderr);
    assert!(refusal.contains("generation 1 is not after the current generation 1"), "{refusal}");

    let mut ingest = stack.ingest("ingest-b");
    let mut uploader = stack.uploader("uploader-b");
    produce(&stack, &producer, &mut generator, (&workspaces, &tables), 40..60, &mut produced).await;
    // Every record exactly once, values as produced, and per (workspace, table) seqs strictly
    // increasing with files in record order, across both generations.
    verify(&stack, &produced, Duration::from_secs(180), &mut [&mut ingest, &mut uploader]).await;
    ingest.stop();
    uploader.stop();

    let after = highest_seqs(&stack).await;
    for (key, last_before) in &before {
        let last = after[key];
        assert!(last >= SPAN, "{key:?}: files after the switch are in generation 1 (seq {last})");
        assert!(last > *last_before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_initial_sync_after_a_switch_holds_the_history_of_both_generations() {
    const W: i64 = 91_101;
    const TABLES: [Table; 2] = [Table::Metrics, Table::People];
    let stack = Stack::with_control(&[W], &TABLES).await;
    let (api, mut services) = Services::start(&stack, &[]).await;
    let (producer, generator, now) = (producer(), Generator::new(31), now_ms());
    let mut sent = SentFields::default();
    send(&stack, &producer, &mut sent, W, &TABLES, records(&generator, W, &TABLES, 0..60, now)).await;
    archived_at_least(&mut services, 2 * 60, Duration::from_secs(60)).await;

    // Switch: ingest stopped, the uploader and the archiver drained, everything stopped.
    services.ingest.stop();
    let (uploader_group, archiver_group) = (uploader_group(&stack), services.archive.group_id.clone());
    drained(&stack, &[&uploader_group, &archiver_group], &mut [&mut services.uploader, &mut services.archiver]).await;
    for p in [&mut services.control, &mut services.uploader, &mut services.archiver, &mut services.backfill] {
        p.stop();
    }
    recreate(&stack, &stack.handoff_topic, 4).await;
    assert!(cli(&stack, &["handoff", "advance", "--topic", &stack.handoff_topic]).contains("generation 0 -> 1"));

    services.control = stack.control_with("control-b", &[("DWSYNC_INITIAL_SYNC__ENABLED", "true".into())]);
    api.wait_ready(&mut services.control).await;
    services.ingest = stack.ingest("ingest-b");
    services.archiver = stack.archiver(&services.archive, "archiver-b");
    services.uploader = stack.uploader("uploader-b");
    services.restart_backfill(&stack);
    send(&stack, &producer, &mut sent, W, &TABLES, records(&generator, W, &TABLES, 60..100, now)).await;
    archived_at_least(&mut services, 2 * 40, Duration::from_secs(60)).await;

    api.create_sync(W, &stack.buckets[&W]).await;
    let _ = initial_syncs_done(&api, W, &TABLES, &mut services).await;
    let all = files_with_metrics(&stack, W, 100, Duration::from_secs(60), &mut services).await;
    assert_every_metric_once(&all, &sent, W, "after the switch");
    let people: Vec<&File> = all.values().filter(|f| f.table == Table::People).collect();
    assert!(!people.is_empty(), "a people baseline");
    assert!(
        all.values().all(|f| f.seq >= SPAN),
        "the cut, and so every file of the sync, is in generation 1: {:?}",
        all.keys().collect::<Vec<_>>()
    );
}
