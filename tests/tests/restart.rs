//! Crash recovery with static group membership, on the real broker and S3 server, services as
//! processes: while records flow, ingest is killed with `kill -9` and restarted with the same
//! instance id, then the uploader likewise. Each restarted instance rejoins its group as the
//! same static member (`group.instance.id`) and takes its partitions back at once, without
//! waiting for the session timeout (10 s) of the member it replaces: the test measures how long
//! after the restart the first record produced after it is in a bucket (2-s windows), asserts a
//! bound, and then checks every record exactly once.
//!
//! Then a second ingest with the same identity while the first runs (the older one, fenced
//! twice, stops), and a static uploader told to leave on shutdown is stopped: its partitions move at
//! once.
//!
//! `DWSYNC_RESTART_DYNAMIC=1` runs the same schedule with dynamic membership (ingest's
//! `static_membership = false`, the uploader without an instance id), for comparison: the
//! figures are printed and only a loose bound is asserted.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use dwsync_contract::Table;
use dwsync_loadgen::Generator;
use dwsync_tests::services::ServiceProcess;
use dwsync_tests::unique;
use rdkafka::producer::FutureProducer;

/// Time between rounds of records (one record per workspace and table each).
const ROUND: Duration = Duration::from_millis(250);

/// The records flowing through the test and what is known to be in the buckets.
struct Flow<'a> {
    stack: &'a Stack,
    producer: FutureProducer,
    generator: Generator,
    scope: (&'a [i64], &'a [Table]),
    produced: Produced,
    /// The next round's record number.
    next: u64,
    cache: BTreeMap<(i64, String), Object>,
    /// Objects already looked at.
    seen: BTreeSet<(i64, String)>,
}

impl Flow<'_> {
    async fn round(&mut self) {
        let n = self.next;
        produce(self.stack, &self.producer, &mut self.generator, self.scope, n..n + 1, &mut self.produced).await;
        self.next += 1;
    }

    /// Produces a round every [`ROUND`] for `time`.
    async fn flow_for(&mut self, time: Duration) {
        let end = Instant::now() + time;
        while Instant::now() < end {
            self.round().await;
            tokio::time::sleep(ROUND).await;
        }
    }

    /// Whether a new object holds a record numbered `from` or later.
    async fn holds_from(&mut self, from: u64) -> bool {
        let _ = read_objects(self.stack, &mut self.cache).await;
        let mut found = false;
        for (key, object) in &self.cache {
            if !self.seen.insert(key.clone()) {
                continue;
            }
            let sent = &self.produced.records[&(object.workspace, object.table)];
            found |= id_strings(&object.batch, object.table).iter().any(|id| sent.get(id).is_some_and(|s| s.n >= from));
        }
        found
    }

    /// Whether every record numbered `from..to` is in a bucket.
    async fn holds_all(&mut self, from: u64, to: u64) -> bool {
        let _ = read_objects(self.stack, &mut self.cache).await;
        let mut visible = BTreeSet::new();
        for ((ws, _), object) in &self.cache {
            for id in id_strings(&object.batch, object.table) {
                let _ = visible.insert((*ws, object.table, id));
            }
        }
        self.produced.records.iter().all(|((ws, table), sent)| {
            sent.iter()
                .filter(|(_, s)| (from..to).contains(&s.n))
                .all(|(id, _)| visible.contains(&(*ws, *table, id.clone())))
        })
    }

    /// Produces rounds until `process` exits (`None` if it still runs after `within`): how long
    /// it ran on.
    async fn until_exit(&mut self, process: &mut ServiceProcess, within: Duration) -> Option<Duration> {
        let since = Instant::now();
        while since.elapsed() < within {
            if !process.is_running() {
                return Some(since.elapsed());
            }
            self.round().await;
            tokio::time::sleep(ROUND).await;
        }
        None
    }

    /// Produces rounds until a record of the first round from now is in a bucket: the time from
    /// `since` until then.
    async fn until_visible(&mut self, since: Instant, within: Duration) -> Duration {
        let from = self.next;
        loop {
            self.round().await;
            if self.holds_from(from).await {
                return since.elapsed();
            }
            assert!(since.elapsed() < within, "no record produced after the restart visible within {within:?}");
            tokio::time::sleep(ROUND).await;
        }
    }
}

/// Whether an uploader's log shows a non-empty assignment.
fn has_partitions(process: &ServiceProcess) -> bool {
    without_ansi(&process.log_tail(usize::MAX))
        .lines()
        .any(|l| l.contains("Handoff partitions assigned.") && !l.contains("partitions=[]"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_restarted_with_its_identity_resumes_at_once() {
    let dynamic = std::env::var_os("DWSYNC_RESTART_DYNAMIC").is_some_and(|v| v == "1");
    let started = Instant::now();
    let workspaces = [6001, 6002, 6003];
    let tables = [Table::Metrics, Table::Deliveries];
    let stack = Stack::new(&workspaces, &tables).await;
    let (ingest_id, uploader_id) = (unique("restart-ingest"), unique("restart-uploader"));
    let ingest_env: Vec<(&str, String)> =
        if dynamic { vec![("DWSYNC_INGEST__STATIC_MEMBERSHIP", "false".into())] } else { vec![] };
    let uploader_env: Vec<(&str, String)> =
        if dynamic { vec![] } else { vec![("DWSYNC_HANDOFF__INSTANCE_ID", uploader_id.clone())] };
    let start_ingest = || stack.ingest_as("ingest", &ingest_id, &ingest_env);
    let start_uploader = || stack.uploader_with("uploader", &uploader_env);
    let mut ingest: ServiceProcess = start_ingest();
    let mut uploader: ServiceProcess = start_uploader();
    let mut flow = Flow {
        stack: &stack,
        producer: producer(),
        generator: Generator::new(23),
        scope: (&workspaces, &tables),
        produced: Produced::default(),
        next: 0,
        cache: BTreeMap::new(),
        seen: BTreeSet::new(),
    };
    // Both groups formed and records flowing end to end.
    let warm = flow.until_visible(Instant::now(), Duration::from_secs(40)).await;
    flow.flow_for(Duration::from_secs(2)).await;
    // Within the session timeout (10 s) a static member's restart takes its partitions back; a
    // bound above one window + the session timeout tells the two memberships apart.
    let bound = if dynamic { Duration::from_secs(60) } else { Duration::from_secs(15) };

    ingest.kill9();
    flow.flow_for(Duration::from_millis(500)).await;
    ingest = start_ingest();
    let ingest_restart = flow.until_visible(Instant::now(), bound).await;
    flow.flow_for(Duration::from_secs(2)).await;

    uploader.kill9();
    flow.flow_for(Duration::from_millis(500)).await;
    uploader = start_uploader();
    let uploader_restart = flow.until_visible(Instant::now(), bound).await;
    flow.flow_for(Duration::from_secs(1)).await;

    // A second ingest with the same identity, as a zombie would meet its replacement: the group
    // fences the older member (FENCED_INSTANCE_ID). Fenced once, an ingest rejoins (a broker
    // outage longer than the session timeout fences a member by its own rejoin); fenced again
    // within a minute, it is a twin and stops. The newer one's `init_transactions` fences the
    // older ingest's producer too, so nothing the older one still holds can commit. Every record
    // still arrives exactly once.
    let mut twins = String::new();
    if !dynamic {
        let twin = stack.ingest_as("ingest-twin", &ingest_id, &ingest_env);
        let ran_on = flow.until_exit(&mut ingest, Duration::from_secs(20)).await;
        let ran_on = ran_on.unwrap_or_else(|| panic!("the older ingest still runs: {}", ingest.log_tail(30)));
        assert!(ingest.log_tail(200).contains("Another ingest runs with this instance id"), "{}", ingest.log_tail(30));
        ingest = twin;
        flow.flow_for(Duration::from_secs(1)).await;
        twins = format!("; a second ingest with the same id stopped the older one in {:.1} s", ran_on.as_secs_f64());

        // A scale-down: a second uploader, static and told to leave on shutdown, takes half of
        // the partitions, then stops (SIGTERM). It leaves the group, so its partitions move to
        // the first at once: the records produced right after the stop arrive well within the
        // session timeout (10 s) its partitions would otherwise wait (with
        // `leave_group_on_shutdown = false` this fails).
        let leave = [
            ("DWSYNC_HANDOFF__INSTANCE_ID", unique("restart-uploader-2")),
            ("DWSYNC_HANDOFF__LEAVE_GROUP_ON_SHUTDOWN", "true".to_owned()),
        ];
        let mut second = stack.uploader_with("uploader-2", &leave);
        let joined = Instant::now();
        while !has_partitions(&second) {
            assert!(
                joined.elapsed() < Duration::from_secs(20),
                "uploader-2 got no partitions: {}",
                second.log_tail(20)
            );
            flow.round().await;
            tokio::time::sleep(ROUND).await;
        }
        flow.flow_for(Duration::from_secs(2)).await;
        second.stop();
        let stopped = Instant::now();
        let from = flow.next;
        flow.round().await;
        let to = flow.next;
        while !flow.holds_all(from, to).await {
            assert!(
                stopped.elapsed() < Duration::from_secs(9),
                "records after a leaving uploader's stop not all visible"
            );
            flow.round().await;
            tokio::time::sleep(ROUND).await;
        }
        twins.push_str(&format!(
            "; a static uploader leaving on SIGTERM: the records produced after its stop all visible in {:.1} s",
            stopped.elapsed().as_secs_f64()
        ));
    }

    verify(&stack, &flow.produced, Duration::from_secs(40), &mut [&mut ingest, &mut uploader]).await;
    let membership = if dynamic { "dynamic" } else { "static" };
    println!(
        "restart test ({membership} membership, 2-s windows): first records visible {:.1} s after start; \
         after kill -9 and restart, the first record produced after the restart visible in {:.1} s (ingest), \
         {:.1} s (uploader){twins}; {} records, 0 lost, 0 duplicated; took {:.0} s",
        warm.as_secs_f64(),
        ingest_restart.as_secs_f64(),
        uploader_restart.as_secs_f64(),
        flow.produced.total(),
        started.elapsed().as_secs_f64()
    );
    ingest.stop();
    uploader.stop();
}
