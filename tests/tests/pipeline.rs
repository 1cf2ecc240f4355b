//! End to end on the real broker and the real S3 server, with ingest and the uploader running as
//! processes: records of all 15 tables for several workspaces (JSON and protobuf topics) become
//! Parquet objects in each workspace's own bucket, every record exactly once — also while the
//! services are killed with `kill -9` and restarted, with two instances of each, and while
//! instances join and leave the ingest group.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use dwsync_contract::Table;
use dwsync_loadgen::Generator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_tables_reach_each_workspace_bucket_exactly_once() {
    let workspaces = [1001, 1002, 1003];
    let stack = Stack::new(&workspaces, Table::ALL).await;
    let mut ingest = stack.ingest("ingest");
    let mut uploader = stack.uploader("uploader");
    let mut produced = Produced::default();
    let mut generator = Generator::new(7);
    produce(&stack, &producer(), &mut generator, (&workspaces, Table::ALL), 0..45, &mut produced).await;
    assert_eq!(produced.total(), 45 * 3 * 15);
    verify(&stack, &produced, Duration::from_secs(120), &mut [&mut ingest, &mut uploader]).await;
    ingest.stop();
    uploader.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_lose_and_duplicate_nothing() {
    kill_9_and_restart(&[2001, 2002, 2003], 11, Keys::Workspace).await;
}

/// The crash test with each workspace's records spread over every partition: every flush commits
/// several partitions together, and a restart reads them all again from their commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_with_records_spread_over_partitions_lose_and_duplicate_nothing() {
    kill_9_and_restart(&[2101, 2102, 2103], 29, Keys::Record).await;
}

/// Produces rounds of records while ingest and the uploader are killed with `kill -9` in turn
/// (3 each) at random moments and restarted; then every record exactly once.
async fn kill_9_and_restart(workspaces: &[i64], seed: u64, keys: Keys) {
    let tables = [Table::Metrics, Table::Deliveries, Table::People, Table::Events, Table::DeliveryContent];
    let stack = Stack::new(workspaces, &tables).await;
    let mut ingest = stack.ingest("ingest");
    let mut uploader = stack.uploader("uploader");
    let producer = producer();
    let mut generator = Generator::new(seed);
    let mut produced = Produced::default();
    let mut schedule = dwsync_tests::schedule::Schedule::from_env("crash test");
    let mut next = move |max: u64| schedule.next(max);
    let (mut kills, batch) = (0, 40);
    for round in 0..6u64 {
        let numbers = round * batch..(round + 1) * batch;
        produce_keyed(&stack, &producer, &mut generator, (workspaces, &tables), numbers, &mut produced, keys).await;
        tokio::time::sleep(Duration::from_millis(500 + next(3000))).await;
        if round % 2 == 0 {
            ingest.kill9();
            tokio::time::sleep(Duration::from_millis(next(1500))).await;
            ingest = stack.ingest("ingest");
        } else {
            uploader.kill9();
            tokio::time::sleep(Duration::from_millis(next(1500))).await;
            uploader = stack.uploader("uploader");
        }
        kills += 1;
    }
    verify_keyed(&stack, &produced, Duration::from_secs(180), &mut [&mut ingest, &mut uploader], keys).await;
    println!(
        "crash test ({keys:?} keys): {} records, {kills} kills (3 ingest, 3 uploader), 0 lost, 0 duplicated",
        produced.total()
    );
    ingest.stop();
    uploader.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_load_and_survive_losing_one() {
    let workspaces = [3001, 3002, 3003, 3004];
    let tables = [Table::Metrics, Table::Attributes, Table::Subjects, Table::Inbound];
    let stack = Stack::new(&workspaces, &tables).await;
    let mut ingest_a = stack.ingest("ingest-a");
    let mut ingest_b = stack.ingest("ingest-b");
    let mut uploader_a = stack.uploader("uploader-a");
    let mut uploader_b = stack.uploader("uploader-b");
    let producer = producer();
    let mut generator = Generator::new(13);
    let mut produced = Produced::default();
    produce(&stack, &producer, &mut generator, (&workspaces, &tables), 0..40, &mut produced).await;
    // Both instances of each service have joined and hold partitions: the kills take work away.
    let config = stack.client_config("test-groups");
    dwsync_tests::group::wait_stable(&config, &stack.ingest_group, 2, Duration::from_secs(60)).await;
    dwsync_tests::group::wait_stable(&config, &stack.uploader_group, 2, Duration::from_secs(60)).await;
    ingest_b.kill9();
    uploader_a.kill9();
    produce(&stack, &producer, &mut generator, (&workspaces, &tables), 40..80, &mut produced).await;
    verify(&stack, &produced, Duration::from_secs(180), &mut [&mut ingest_a, &mut uploader_b]).await;
    ingest_a.stop();
    uploader_b.stop();
}

/// Instances join and leave while records flow: each join makes the cooperative rebalance revoke
/// partitions from the running ingest, often while one of its transactions is still committing
/// (its loop reads on meanwhile, and the revocation waits for the commit). Every record still
/// arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_joining_and_leaving_mid_stream_lose_and_duplicate_nothing() {
    join_and_leave_mid_stream(&[4001, 4002, 4003, 4004, 4005, 4006], 17, Keys::Workspace).await;
}

/// The same with each workspace's records spread over every partition (keyed by record, not by
/// workspace): every window then holds records of several partitions, so a revocation also drops
/// windows of partitions the instance keeps, and those partitions are read again from their last
/// commit — including records that were already fetched behind the revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spread_over_partitions_survive_joins_and_leaves_exactly_once() {
    join_and_leave_mid_stream(&[5001, 5002, 5003, 5004, 5005, 5006], 19, Keys::Record).await;
}

/// Runs ingest-a throughout while records flow in rounds of ~250 ms; ingest-b joins at ~1 s and
/// leaves at ~7 s, ingest-c joins at ~13 s and leaves at ~20 s. Between them ingest-a takes all
/// partitions back (within a heartbeat, 3 s), so each join revokes some of its partitions. With records spread over the
/// partitions the windows last 6 s, so that revocations find windows open.
async fn join_and_leave_mid_stream(workspaces: &[i64], seed: u64, keys: Keys) {
    let tables = [Table::Metrics, Table::Deliveries, Table::Events];
    let stack = Stack::new(workspaces, &tables).await;
    let env: Vec<(&str, String)> = match keys {
        Keys::Workspace => vec![],
        Keys::Record => vec![("DWSYNC_WINDOW__DURATION_MS", "6000".to_owned())],
    };
    let mut ingest_a = stack.ingest_with("ingest-a", &env);
    let mut uploader = stack.uploader("uploader");
    let mut generator = Generator::new(seed);
    let mut produced = Produced::default();
    let scope = (workspaces, &tables[..]);
    produce_while_instances_come_and_go(&stack, &mut generator, scope, keys, &mut produced, |name| {
        stack.ingest_with(name, &env)
    })
    .await;
    verify_keyed(&stack, &produced, Duration::from_secs(180), &mut [&mut ingest_a, &mut uploader], keys).await;
    let log = ingest_a.log_tail(usize::MAX);
    let revocations = log.matches("Partitions revoked").count();
    let waited = log.matches("A revocation waited for the handoff transaction").count();
    let rewound: usize = without_ansi(&log)
        .lines()
        .filter(|l| l.contains("Dropped the windows of revoked partitions."))
        .filter_map(|l| l.split("rewound=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok())
        .sum();
    println!(
        "ingest-a ({keys:?} keys): {revocations} revocations, {waited} of them waited for a transaction committing, \
         {rewound} kept partitions rewound"
    );
    assert!(revocations >= 2, "two joins revoked {revocations} times from ingest-a:\n{}", ingest_a.log_tail(60));
    if matches!(keys, Keys::Record) {
        assert!(rewound > 0, "no kept partition was rewound:\n{}", ingest_a.log_tail(60));
    }
    ingest_a.stop();
    uploader.stop();
}

/// Produces records in 88 rounds of ~250 ms while a second instance (`start("…-b")`) joins at
/// ~1 s and leaves at ~7 s and a third (`start("…-c")`) joins at ~13 s and leaves at ~20 s.
async fn produce_while_instances_come_and_go(
    stack: &Stack,
    generator: &mut Generator,
    scope: (&[i64], &[Table]),
    keys: Keys,
    produced: &mut Produced,
    start: impl Fn(&str) -> dwsync_tests::services::ServiceProcess,
) {
    let producer = producer();
    let mut joined = None;
    for round in 0..88u64 {
        let numbers = round * 4..(round + 1) * 4;
        produce_keyed(stack, &producer, generator, scope, numbers, produced, keys).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        match round {
            4 => joined = Some(start("joining-b")),
            52 => joined = Some(start("joining-c")),
            28 | 80 => {
                if let Some(mut instance) = joined.take() {
                    instance.stop();
                }
            }
            _ => {}
        }
    }
}

/// An instance stopped while a rebalance is still giving it its first partitions (a rolling
/// deploy stops the new pod's predecessor about then) leaves the group at once: the running
/// instance gets the revoked partitions back within seconds, not after the group's session
/// timeout (45 s), and every record is exported soon after it is produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_mid_rebalance_hands_its_partitions_back_at_once() {
    let workspaces = [7001, 7002, 7003, 7004];
    let tables = [Table::Metrics, Table::Deliveries, Table::Events];
    let stack = Stack::new(&workspaces, &tables).await;
    let mut ingest_a = stack.ingest("ingest-a");
    let mut uploader = stack.uploader("uploader");
    let producer = producer();
    let mut generator = Generator::new(23);
    let mut produced = Produced::default();
    produce(&stack, &producer, &mut generator, (&workspaces, &tables), 0..20, &mut produced).await;
    // ingest-b joins; the cooperative rebalance first revokes half of ingest-a's partitions and
    // gives ingest-b none (its partitions come in a second round, after its next heartbeat).
    let mut ingest_b = stack.ingest("ingest-b");
    let joined = std::time::Instant::now();
    while !ingest_b.log_tail(usize::MAX).contains("Partitions assigned.") {
        assert!(joined.elapsed() < Duration::from_secs(30), "ingest-b never joined:\n{}", ingest_b.log_tail(30));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ingest_b.stop();
    let stopped = std::time::Instant::now();
    for round in 1..=8u64 {
        produce(&stack, &producer, &mut generator, (&workspaces, &tables), round * 20..(round + 1) * 20, &mut produced)
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Within the session timeout (45 s) of the stop: only an explicit leave lets this pass.
    let deadline = Duration::from_secs(25).saturating_sub(stopped.elapsed());
    verify(&stack, &produced, deadline, &mut [&mut ingest_a, &mut uploader]).await;
    let log = ingest_a.log_tail(usize::MAX);
    assert!(
        log.contains("Partitions revoked"),
        "ingest-b's join revoked nothing from ingest-a:\n{}",
        ingest_a.log_tail(40)
    );
    println!("every record exported {:?} after ingest-b stopped", stopped.elapsed());
    ingest_a.stop();
    uploader.stop();
}

/// Records not keyed by workspace put every window on all partitions of its topic; those
/// partitions close together, once per window (not at each partition's own point of the grid,
/// which made one file per partition per window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spread_over_partitions_close_once_per_window() {
    let workspaces = [8001, 8002, 8003];
    let tables = [Table::Metrics, Table::Events];
    let stack = Stack::new(&workspaces, &tables).await;
    let window_ms = 4_000;
    let mut ingest = stack.ingest_with("ingest", &[("DWSYNC_WINDOW__DURATION_MS", window_ms.to_string())]);
    let mut uploader = stack.uploader("uploader");
    let producer = producer();
    let mut generator = Generator::new(31);
    let mut produced = Produced::default();
    let started = std::time::Instant::now();
    for round in 0..40u64 {
        let numbers = round * 4..(round + 1) * 4;
        let scope = (&workspaces[..], &tables[..]);
        produce_keyed(&stack, &producer, &mut generator, scope, numbers, &mut produced, Keys::Record).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let producing = started.elapsed();
    verify_keyed(&stack, &produced, Duration::from_secs(60), &mut [&mut ingest, &mut uploader], Keys::Record).await;
    let mut objects = std::collections::BTreeMap::new();
    let _ = read_objects(&stack, &mut objects).await;
    // One window per `window_ms` while records flow, plus the one open when they stop and one
    // for a record read just past a close point.
    let most = producing.as_millis() as usize / window_ms + 2;
    for ws in workspaces {
        for table in tables {
            let files = objects.values().filter(|o| o.workspace == ws && o.table == table).count();
            println!("ws {ws} {table}: {files} files in {producing:?} of records (at most {most})");
            assert!(files <= most, "ws {ws} {table}: {files} files for {producing:?} of {window_ms}-ms windows");
        }
    }
    ingest.stop();
    uploader.stop();
}

/// Uploader instances joining and leaving while files flow: each join revokes handoff partitions
/// from the running uploader (eager assignment: all of them, then the new split), whose files
/// being written are then written by their next owner or answered "already delivered". Every
/// record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaders_joining_and_leaving_mid_stream_lose_and_duplicate_nothing() {
    let workspaces = [9001, 9002, 9003, 9004, 9005, 9006];
    let tables = [Table::Metrics, Table::Deliveries, Table::Events];
    let stack = Stack::new(&workspaces, &tables).await;
    let mut ingest = stack.ingest("ingest");
    let mut uploader_a = stack.uploader("uploader-a");
    let mut generator = Generator::new(37);
    let mut produced = Produced::default();
    let scope = (&workspaces[..], &tables[..]);
    produce_while_instances_come_and_go(&stack, &mut generator, scope, Keys::Workspace, &mut produced, |name| {
        stack.uploader(name)
    })
    .await;
    verify(&stack, &produced, Duration::from_secs(180), &mut [&mut ingest, &mut uploader_a]).await;
    let revocations = uploader_a.log_tail(usize::MAX).matches("Handoff partitions revoked.").count();
    println!("uploader-a: {revocations} revocations");
    assert!(revocations >= 2, "two joins revoked {revocations} times from uploader-a:\n{}", uploader_a.log_tail(60));
    ingest.stop();
    uploader_a.stop();
}
