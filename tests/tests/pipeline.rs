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
    let workspaces = [2001, 2002, 2003];
    let tables = [Table::Metrics, Table::Deliveries, Table::People, Table::Events, Table::DeliveryContent];
    let stack = Stack::new(&workspaces, &tables).await;
    let mut ingest = stack.ingest("ingest");
    let mut uploader = stack.uploader("uploader");
    let producer = producer();
    let mut generator = Generator::new(11);
    let mut produced = Produced::default();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut rng = seed;
    let mut next = move |max: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % max
    };
    println!("crash schedule seed {seed}");
    let (mut kills, batch) = (0, 40);
    for round in 0..6u64 {
        let numbers = round * batch..(round + 1) * batch;
        produce(&stack, &producer, &mut generator, (&workspaces, &tables), numbers, &mut produced).await;
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
    verify(&stack, &produced, Duration::from_secs(180), &mut [&mut ingest, &mut uploader]).await;
    println!("crash test: {} records, {kills} kills (3 ingest, 3 uploader), 0 lost, 0 duplicated", produced.total());
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
    tokio::time::sleep(Duration::from_secs(4)).await;
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
    let workspaces = [4001, 4002, 4003, 4004, 4005, 4006];
    let tables = [Table::Metrics, Table::Deliveries, Table::Events];
    let stack = Stack::new(&workspaces, &tables).await;
    let mut ingest_a = stack.ingest("ingest-a");
    let mut uploader = stack.uploader("uploader");
    let producer = producer();
    let mut generator = Generator::new(17);
    let mut produced = Produced::default();
    let mut joined = None;
    // Rounds of ~250 ms: ingest-b runs from ~1 s to ~7 s, ingest-c from ~13 s to ~20 s. Between
    // them ingest-a takes all partitions back (within a heartbeat, 3 s), so each join revokes
    // some of its partitions.
    for round in 0..88u64 {
        produce(&stack, &producer, &mut generator, (&workspaces, &tables), round * 4..(round + 1) * 4, &mut produced)
            .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        match round {
            4 => joined = Some(stack.ingest("ingest-b")),
            52 => joined = Some(stack.ingest("ingest-c")),
            28 | 80 => {
                if let Some(mut instance) = joined.take() {
                    instance.stop();
                }
            }
            _ => {}
        }
    }
    verify(&stack, &produced, Duration::from_secs(180), &mut [&mut ingest_a, &mut uploader]).await;
    let log = ingest_a.log_tail(usize::MAX);
    let revocations = log.matches("Partitions revoked").count();
    let waited = log.matches("A revocation waited for the handoff transaction").count();
    println!("ingest-a: {revocations} revocations, {waited} of them waited for a transaction committing");
    assert!(revocations >= 2, "two joins revoked {revocations} times from ingest-a:\n{}", ingest_a.log_tail(60));
    ingest_a.stop();
    uploader.stop();
}
