//! The chaos suite: while a steady load of several tables for many workspaces (plus malformed
//! records at a steady rate) is produced, ingest and the uploader are killed with `kill -9` at
//! random moments (and stopped once each with SIGTERM), the S3 server is stopped and started again, and the Kafka broker is
//! restarted. A supervisor restarts any service that exits, as Kubernetes would. After the load
//! stops and everything drains, the buckets must hold every good record exactly once (no object
//! overwritten, every Parquet file readable, sequences increasing per workspace and table) and
//! the dead-letter topic every bad record.
//!
//! The reduced form runs in CI. The long form (≥ 20 kills, a 60-second S3 outage, a broker
//! restart) runs with `DWSYNC_CHAOS_LONG=1 cargo test -p dwsync-tests --test chaos -- --nocapture`
//! (see docs/RELIABILITY.md). Both print a summary line.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use dwsync_contract::Table;
use dwsync_loadgen::Generator;
use dwsync_tests::schedule::Schedule;
use dwsync_tests::services::ServiceProcess;
use dwsync_tests::{kafka_config, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Mutex;

const TABLES: [Table; 4] = [Table::Metrics, Table::Deliveries, Table::People, Table::Events];

/// One fault of the schedule.
#[derive(Debug, Clone, Copy)]
enum Fault {
    KillIngest,
    KillUploader,
    /// SIGTERM: a graceful stop within the shutdown grace, then a restart.
    TermIngest,
    TermUploader,
    S3Outage(Duration),
    BrokerRestart,
}

fn dev(script: &str, action: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(root.join("dev").join(script)).arg(action).current_dir(&root).status().unwrap();
    assert!(status.success(), "dev/{script} {action} failed");
}

/// The running services, restarted by the supervisor when one exits.
struct Services {
    ingest: ServiceProcess,
    uploader: ServiceProcess,
    restarts: u64,
}

impl Services {
    /// Restarts whichever service is not running (it crashed, or was killed).
    fn supervise(&mut self, stack: &Stack) {
        if !self.ingest.is_running() {
            println!("supervisor: ingest exited; restarting. Last lines:\n{}", self.ingest.log_tail(5));
            self.ingest = stack.ingest("ingest");
            self.restarts += 1;
        }
        if !self.uploader.is_running() {
            println!("supervisor: uploader exited; restarting. Last lines:\n{}", self.uploader.log_tail(5));
            self.uploader = stack.uploader("uploader");
            self.restarts += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_and_duplicates_nothing() {
    let long = std::env::var_os("DWSYNC_CHAOS_LONG").is_some();
    let workspaces: Vec<i64> = (0..if long { 12 } else { 8 }).map(|i| 6001 + i).collect();
    let stack = Stack::new(&workspaces, &TABLES).await;
    // `DWSYNC_TEST_SEED` replays a printed schedule (and load); the clock otherwise.
    let mut schedule = Schedule::from_env(if long { "chaos (long form)" } else { "chaos (reduced form)" });
    let seed = schedule.seed();
    let mut next = move |max: u64| schedule.next(max);

    let mut schedule = Vec::new();
    let cycles = if long { 11 } else { 2 };
    for cycle in 0..cycles {
        schedule.push(Fault::KillIngest);
        schedule.push(Fault::KillUploader);
        if cycle == 0 {
            schedule.push(Fault::TermIngest);
            schedule.push(Fault::TermUploader);
            schedule.push(Fault::S3Outage(Duration::from_secs(if long { 60 } else { 15 })));
        }
        if cycle == cycles / 2 {
            schedule.push(Fault::BrokerRestart);
        }
    }

    let services = Arc::new(Mutex::new(Services {
        ingest: stack.ingest("ingest"),
        uploader: stack.uploader("uploader"),
        restarts: 0,
    }));
    let stack = Arc::new(stack);

    // The steady load: a round every 500 ms, one malformed record per table every round.
    let producing = Arc::new(AtomicBool::new(true));
    let malformed = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let (stack, producing, malformed, workspaces) =
            (Arc::clone(&stack), Arc::clone(&producing), Arc::clone(&malformed), workspaces.clone());
        async move {
            let producer = producer();
            let mut generator = Generator::new(seed);
            let mut produced = Produced::default();
            let (mut round, batch) = (0u64, 3u64);
            while producing.load(Ordering::SeqCst) {
                let numbers = round * batch..(round + 1) * batch;
                produce(&stack, &producer, &mut generator, (&workspaces, &TABLES), numbers, &mut produced).await;
                for table in TABLES {
                    let topic = format!("{}{}", stack.prefix, table.name());
                    let bad = format!("{{\"workspace_id\": \"not-a-number\", \"round\": {round}");
                    // The broker may be restarting: a record the producer cannot deliver is retried.
                    loop {
                        let record = FutureRecord::<str, str>::to(&topic).key("6001").payload(&bad);
                        match producer.send(record, Duration::from_secs(30)).await {
                            Ok(_) => break,
                            Err((e, _)) => println!("load: a malformed record was not delivered ({e}); again"),
                        }
                    }
                    let _ = malformed.fetch_add(1, Ordering::SeqCst);
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            produced
        }
    });

    let started = Instant::now();
    let (mut kills, mut stops, mut s3_outages, mut broker_restarts) = (0, 0, 0, 0);
    for fault in &schedule {
        // A random moment: 1.5 to 5 s after the last fault, the services supervised meanwhile.
        let wait = Duration::from_millis(1_500 + next(3_500));
        let until = Instant::now() + wait;
        while Instant::now() < until {
            services.lock().await.supervise(&stack);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("chaos: {:>6.1} s {fault:?}", started.elapsed().as_secs_f64());
        match fault {
            Fault::KillIngest => {
                services.lock().await.ingest.kill9();
                kills += 1;
            }
            Fault::KillUploader => {
                services.lock().await.uploader.kill9();
                kills += 1;
            }
            Fault::TermIngest => {
                services.lock().await.ingest.stop();
                stops += 1;
            }
            Fault::TermUploader => {
                services.lock().await.uploader.stop();
                stops += 1;
            }
            Fault::S3Outage(length) => {
                dev("s3", "stop");
                let until = Instant::now() + *length;
                while Instant::now() < until {
                    services.lock().await.supervise(&stack);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                dev("s3", "start");
                s3_outages += 1;
            }
            Fault::BrokerRestart => {
                dev("kafka", "stop");
                tokio::time::sleep(Duration::from_secs(2)).await;
                dev("kafka", "start");
                broker_restarts += 1;
            }
        }
        services.lock().await.supervise(&stack);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    producing.store(false, Ordering::SeqCst);
    let produced = load.await.unwrap();
    let bad = malformed.load(Ordering::SeqCst);

    // Drain: supervised until every good record is in its bucket (verify waits), then check all.
    let supervisor = tokio::spawn({
        let (services, stack) = (Arc::clone(&services), Arc::clone(&stack));
        async move {
            loop {
                services.lock().await.supervise(&stack);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    verify(&stack, &produced, Duration::from_secs(if long { 600 } else { 300 }), &mut []).await;
    supervisor.abort();
    let dead_letters = dead_letter_count(&stack.dead_letter_topic);
    let mut services = services.lock().await;
    services.ingest.stop();
    services.uploader.stop();
    println!(
        "chaos summary: {} good records, {bad} malformed, {kills} kills, {stops} SIGTERM stops, {s3_outages} S3 outage(s), \
         {broker_restarts} broker restart(s), {} supervisor restarts, 0 lost, 0 duplicated, \
         {dead_letters} dead-lettered, 0 overwritten, {:.0} s",
        produced.total(),
        services.restarts,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(dead_letters, bad, "every malformed record dead-lettered once");
}

/// Records on the dead-letter topic (committed ones only).
fn dead_letter_count(topic: &str) -> u64 {
    let consumer: BaseConsumer =
        kafka_config().set("group.id", unique("dlq-reader")).set("isolation.level", "read_committed").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut count = 0;
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(5) {
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let _ = msg.unwrap();
            count += 1;
            last = Instant::now();
        }
    }
    count
}
