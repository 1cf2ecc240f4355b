//! Creating the syncs through control's API and watching their status until every initial sync
//! is done: latency, order and the status's accuracy.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use dwsync_contract::Table;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::Expected;
use crate::services::{S3Target, Service};

/// Status requests in flight at once.
const POLLS_IN_FLIGHT: usize = 8;

/// Examples of inaccuracies kept for the report.
const EXAMPLES: usize = 10;

/// Control's API and the destination bucket, for the run's requests.
#[derive(Clone)]
pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
    s3: aws_sdk_s3::Client,
    target: S3Target,
    bucket: String,
}

impl Api {
    /// Control's API at `base` with the admin `token`; syncs write into `bucket` on `target`.
    pub(crate) fn new(base: String, token: &str, target: &S3Target, bucket: &str) -> Self {
        Self {
            base,
            token: token.to_owned(),
            http: reqwest::Client::new(),
            s3: crate::s3::client(target),
            target: target.clone(),
            bucket: bucket.to_owned(),
        }
    }

    /// Creates `ws`'s sync (every table on) under `ws<id>/` of the bucket.
    pub(crate) async fn create(&self, ws: i64) -> anyhow::Result<()> {
        let body = json!({"destination": {
            "bucket": self.bucket,
            "prefix": crate::services::workspace_prefix(ws),
            "region": "us-east-1",
            "endpoint": self.target.endpoint,
            "force_path_style": true,
            "access_key_id": self.target.access_key,
            "secret_access_key": self.target.secret_key,
        }});
        let url = format!("{}/v1/workspaces/{ws}/sync", self.base);
        let resp = self.http.post(url).bearer_auth(&self.token).json(&body).send().await?;
        let status = resp.status();
        if status.as_u16() != 201 {
            bail!("creating the sync of {ws}: {status}: {}", resp.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// `ws`'s initial syncs as the status shows them.
    async fn status(&self, ws: i64) -> anyhow::Result<Vec<View>> {
        let url = format!("{}/v1/workspaces/{ws}/status", self.base);
        let resp = self.http.get(url).bearer_auth(&self.token).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.with_context(|| format!("the status of {ws}: {status}"))?;
        let Some(syncs) = body["initial_syncs"].as_array() else {
            bail!("the status of {ws} has no initial_syncs: {body}");
        };
        syncs
            .iter()
            .map(|s| {
                let table = s["table"].as_str().and_then(|t| t.parse::<Table>().ok());
                let state = s["state"].as_str().and_then(State::parse);
                match (table, state) {
                    (Some(table), Some(state)) => Ok(View {
                        table,
                        state,
                        rows: s["rows"].as_u64().unwrap_or(0),
                        files: s["files"].as_u64().unwrap_or(0),
                    }),
                    _ => bail!("an initial sync of {ws} the bench does not know: {s}"),
                }
            })
            .collect()
    }

    /// How far `ws`'s initial syncs are, as its status shows them.
    pub(crate) async fn progress(&self, ws: i64) -> anyhow::Result<Progress> {
        let views = self.status(ws).await?;
        Ok(Progress {
            tables: views.len() as u64,
            done: views.iter().filter(|v| v.state == State::Done).count() as u64,
            failed: views.iter().filter(|v| v.state == State::Failed).count() as u64,
            rows: views.iter().map(|v| v.rows).sum(),
            files: views.iter().map(|v| v.files).sum(),
        })
    }

    /// Whether `key` is in the bucket.
    async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        match self.s3.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e).context(format!("HEAD {key}"))),
        }
    }

    /// Checks that the bucket holds exactly each workspace's `cio-validate` and expected files,
    /// each with its rows; returns (files, rows).
    pub(crate) async fn check_bucket(&self, expected: &Expected) -> anyhow::Result<(u64, u64)> {
        let mut want: Vec<String> = Vec::new();
        for ws in expected.keys() {
            want.push(dwsync_handoff::validate_key(&crate::services::workspace_prefix(*ws)));
        }
        let files: Vec<(&String, u64)> =
            expected.values().flat_map(|t| t.values()).filter_map(|(key, rows)| Some((key.as_ref()?, *rows))).collect();
        want.extend(files.iter().map(|(k, _)| (*k).clone()));
        want.sort();
        let listed: Vec<String> = crate::s3::list_keys(&self.s3, &self.bucket).await?.into_iter().collect();
        if listed != want {
            let missing: Vec<&String> = want.iter().filter(|k| !listed.contains(k)).take(5).collect();
            let extra: Vec<&String> = listed.iter().filter(|k| !want.contains(k)).take(5).collect();
            bail!(
                "the bucket holds {} objects, {} expected; missing (first 5): {missing:?}; unexpected: {extra:?}",
                listed.len(),
                want.len()
            );
        }
        let mut rows = 0;
        for (key, expected_rows) in &files {
            let object = self.s3.get_object().bucket(&self.bucket).key(*key).send().await?;
            let body = object.body.collect().await.with_context(|| format!("reading {key}"))?.into_bytes();
            let reader = parquet::file::reader::SerializedFileReader::new(body)
                .with_context(|| format!("{key} is not Parquet"))?;
            let got = parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows() as u64;
            if got != *expected_rows {
                bail!("{key} holds {got} rows, {expected_rows} expected");
            }
            rows += got;
        }
        Ok((files.len() as u64, rows))
    }
}

/// One workspace's initial syncs in one status ([`Api::progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Initial syncs listed (one per table on).
    pub(crate) tables: u64,
    /// Of them done.
    pub(crate) done: u64,
    /// Of them failed (the backfill tries again).
    pub(crate) failed: u64,
    /// Rows the status reports (of the done ones, and those under way).
    pub(crate) rows: u64,
    /// Files the status reports, likewise.
    pub(crate) files: u64,
}

impl Progress {
    /// Every initial sync listed is done.
    pub(crate) fn all_done(&self) -> bool {
        self.tables > 0 && self.done == self.tables
    }
}

/// An initial sync's state as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Queued,
    Running,
    Failed,
    Done,
}

impl State {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "failed" => Self::Failed,
            "done" => Self::Done,
            _ => return None,
        })
    }

    /// Its place in queued → running → done (a failed attempt is tried again: as running).
    fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Running | Self::Failed => 1,
            Self::Done => 2,
        }
    }
}

/// One table's initial sync in a status.
#[derive(Debug, Clone, Copy)]
struct View {
    table: Table,
    state: State,
    rows: u64,
    files: u64,
}

/// How accurate the status was.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Accuracy {
    /// Status requests answered.
    pub(crate) polls: u64,
    /// Table states seen: (workspace, table) × polls.
    pub(crate) states_seen: u64,
    /// A table's state seen going back (done → running, running → queued).
    pub(crate) backward: u64,
    /// A table seen done while its file was not in the bucket.
    pub(crate) done_before_file: u64,
    /// A table seen done with rows or files other than its baseline's.
    pub(crate) wrong_counts: u64,
    /// Tables seen failed (tried again by the backfill).
    pub(crate) failed_seen: u64,
    /// A workspace whose status listed other tables than a sync with every table on asks for.
    pub(crate) wrong_tables: u64,
    /// The first few inaccuracies.
    pub(crate) examples: Vec<String>,
}

impl Accuracy {
    /// Nothing inaccurate seen.
    pub(crate) fn is_exact(&self) -> bool {
        self.backward + self.done_before_file + self.wrong_counts + self.failed_seen + self.wrong_tables == 0
    }

    fn note(&mut self, example: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }

    /// Its lines of the report.
    pub(crate) fn render(&self) -> String {
        let mut out = format!(
            "status accuracy: {} polls, {} table states seen; going back {}, done before its file {}, done with other rows/files {}, failed {}, other tables {}{}\n",
            self.polls,
            self.states_seen,
            self.backward,
            self.done_before_file,
            self.wrong_counts,
            self.failed_seen,
            self.wrong_tables,
            if self.is_exact() { " — exact" } else { " — NOT EXACT" }
        );
        for example in &self.examples {
            out += &format!("  {example}\n");
        }
        out
    }
}

/// Completion order against creation order.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Order {
    /// Pairs (a created before b) with b seen done strictly before a, over all pairs.
    pub(crate) inverted_pairs: f64,
    /// The largest |completion rank − creation rank| (ties in done time ranked by creation).
    pub(crate) max_displacement: u64,
    /// The mean of the same.
    pub(crate) mean_displacement: f64,
}

impl Order {
    /// The order of `done` (creation rank → done time, in creation order).
    fn of(done: &[Instant]) -> Self {
        let n = done.len();
        if n < 2 {
            return Self::default();
        }
        let mut inverted = 0u64;
        for a in 0..n {
            for b in a + 1..n {
                if done[b] < done[a] {
                    inverted += 1;
                }
            }
        }
        let mut by_done: Vec<usize> = (0..n).collect();
        by_done.sort_by_key(|&i| (done[i], i));
        let displacement: Vec<u64> = by_done.iter().enumerate().map(|(rank, &i)| rank.abs_diff(i) as u64).collect();
        Self {
            inverted_pairs: inverted as f64 / (n * (n - 1) / 2) as f64,
            max_displacement: displacement.iter().copied().max().unwrap_or(0),
            mean_displacement: displacement.iter().sum::<u64>() as f64 / n as f64,
        }
    }

    /// Its line of the report.
    pub(crate) fn render(&self) -> String {
        format!(
            "completion order vs creation order: {:.2} % of pairs inverted; displacement max {} places, mean {:.1}\n",
            self.inverted_pairs * 100.0,
            self.max_displacement,
            self.mean_displacement
        )
    }
}

/// The services the run watches.
pub(crate) struct Services<'a> {
    /// Control.
    pub(crate) control: &'a mut Service,
    /// The backfill.
    pub(crate) backfill: &'a mut Service,
}

/// What watching measured.
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) create_secs: f64,
    pub(crate) all_done_secs: f64,
    pub(crate) max_running_jobs: u64,
    pub(crate) max_running_seen: u64,
    pub(crate) created_to_done_ms: Vec<i64>,
    pub(crate) max_poll_round_ms: i64,
    pub(crate) order: Order,
    pub(crate) accuracy: Accuracy,
}

/// One workspace being watched.
#[derive(Debug, Default)]
struct Watch {
    /// Each table's highest state seen.
    seen: HashMap<Table, State>,
    done_at: Option<Instant>,
}

/// Creates the syncs of `expected`'s workspaces (`in_flight` at once) and polls their status until
/// every initial sync is done; fails after `stall` without a table newly done.
pub(crate) async fn run(
    api: &Api,
    services: Services<'_>,
    expected: &Expected,
    in_flight: usize,
    stall: Duration,
) -> anyhow::Result<Watched> {
    let ids: Vec<i64> = expected.keys().copied().collect();
    let created: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let started = Instant::now();
    let creating = tokio::spawn(create_all(api.clone(), ids.clone(), in_flight, Arc::clone(&created)));
    let jobs = services.backfill.gauge_sampler("dwsync_backfill_jobs_running");
    let mut watches: BTreeMap<i64, Watch> = ids.iter().map(|ws| (*ws, Watch::default())).collect();
    let mut accuracy = Accuracy::default();
    let (mut max_running_seen, mut max_round) = (0u64, Duration::ZERO);
    let mut progress = Instant::now();
    let mut create_secs = None;
    loop {
        services.control.check_running()?;
        services.backfill.check_running()?;
        if creating.is_finished() && create_secs.is_none() {
            create_secs = Some(started.elapsed().as_secs_f64());
        }
        let round: Vec<i64> = lock(&created).iter().map(|(ws, _)| *ws).collect();
        let round_started = Instant::now();
        let mut running = 0u64;
        let mut polls: JoinSet<(i64, anyhow::Result<Vec<View>>)> = JoinSet::new();
        let mut next = round.iter();
        loop {
            while polls.len() < POLLS_IN_FLIGHT {
                let Some(&ws) = next.next() else { break };
                let api = api.clone();
                let _ = polls.spawn(async move { (ws, api.status(ws).await) });
            }
            let Some(joined) = polls.join_next().await else { break };
            let (ws, views) = joined?;
            let views = views?;
            let watch = watches.get_mut(&ws).context("a workspace polled")?;
            let newly_done = observe(api, ws, watch, &views, &expected[&ws], &mut accuracy).await?;
            if newly_done {
                progress = Instant::now();
            }
            if views.iter().any(|v| v.state == State::Running) {
                running += 1;
            }
        }
        max_running_seen = max_running_seen.max(running);
        max_round = max_round.max(round_started.elapsed());
        if creating.is_finished() && watches.values().all(|w| w.done_at.is_some()) {
            break;
        }
        if progress.elapsed() > stall {
            let waiting = watches.values().filter(|w| w.done_at.is_none()).count();
            bail!(
                "no initial sync done for {stall:?}; {waiting} workspaces waiting:\n{}",
                services.backfill.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    creating.await??;
    let max_running_jobs = jobs.stop() as u64;
    let created = lock(&created).clone();
    let last_done = watches.values().filter_map(|w| w.done_at).max().unwrap_or(started);
    let done_in_creation_order: Vec<Instant> =
        created.iter().map(|(ws, _)| watches[ws].done_at.unwrap_or(last_done)).collect();
    let created_to_done_ms = created
        .iter()
        .map(|(ws, at)| watches[ws].done_at.unwrap_or(last_done).saturating_duration_since(*at).as_millis() as i64)
        .collect();
    Ok(Watched {
        create_secs: create_secs.unwrap_or_else(|| started.elapsed().as_secs_f64()),
        all_done_secs: last_done.duration_since(started).as_secs_f64(),
        max_running_jobs,
        max_running_seen,
        created_to_done_ms,
        max_poll_round_ms: max_round.as_millis() as i64,
        order: Order::of(&done_in_creation_order),
        accuracy,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Creates every sync of `ids`, `in_flight` at once, noting each when control answered 201.
async fn create_all(
    api: Api,
    ids: Vec<i64>,
    in_flight: usize,
    created: Arc<Mutex<Vec<(i64, Instant)>>>,
) -> anyhow::Result<()> {
    let mut requests = JoinSet::new();
    let mut next = ids.into_iter();
    loop {
        while requests.len() < in_flight {
            let Some(ws) = next.next() else { break };
            let (api, created) = (api.clone(), Arc::clone(&created));
            let _ = requests.spawn(async move {
                api.create(ws).await?;
                lock(&created).push((ws, Instant::now()));
                Ok::<_, anyhow::Error>(())
            });
        }
        match requests.join_next().await {
            Some(joined) => joined??,
            None => return Ok(()),
        }
    }
}

/// Takes in one status of `ws`; returns whether it is newly all done.
async fn observe(
    api: &Api,
    ws: i64,
    watch: &mut Watch,
    views: &[View],
    expected: &BTreeMap<Table, (Option<String>, u64)>,
    accuracy: &mut Accuracy,
) -> anyhow::Result<bool> {
    accuracy.polls += 1;
    accuracy.states_seen += views.len() as u64;
    if views.len() != Table::ALL.len() {
        accuracy.wrong_tables += 1;
        accuracy.note(format!("{ws}: {} initial syncs listed, {} tables on", views.len(), Table::ALL.len()));
    }
    for view in views {
        let before = watch.seen.get(&view.table).copied();
        if before.is_some_and(|b| b.rank() > view.state.rank()) {
            accuracy.backward += 1;
            accuracy.note(format!("{ws} {}: {before:?} then {:?}", view.table, view.state));
        }
        if view.state == State::Failed {
            accuracy.failed_seen += 1;
            accuracy.note(format!("{ws} {}: failed", view.table));
        }
        if view.state != State::Done || before == Some(State::Done) {
            if before.is_none_or(|b| b.rank() < view.state.rank()) {
                let _ = watch.seen.insert(view.table, view.state);
            }
            continue;
        }
        let _ = watch.seen.insert(view.table, State::Done);
        let (key, rows) = expected.get(&view.table).cloned().unwrap_or((None, 0));
        if let Some(key) = &key
            && !api.exists(key).await?
        {
            accuracy.done_before_file += 1;
            accuracy.note(format!("{ws} {}: done, {key} not in the bucket", view.table));
        }
        let files = u64::from(key.is_some());
        if (view.rows, view.files) != (rows, files) {
            accuracy.wrong_counts += 1;
            accuracy.note(format!(
                "{ws} {}: done with {} rows in {} files, the baseline is {rows} in {files}",
                view.table, view.rows, view.files
            ));
        }
    }
    let all_done = views.len() == Table::ALL.len() && views.iter().all(|v| v.state == State::Done);
    if all_done && watch.done_at.is_none() {
        watch.done_at = Some(Instant::now());
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_counts_inversions_and_displacement() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let in_order = Order::of(&[at(1), at(2), at(3), at(4)]);
        assert_eq!((in_order.inverted_pairs, in_order.max_displacement), (0.0, 0));
        // The last created done first: 3 of 6 pairs inverted, it moved 3 places.
        let last_first = Order::of(&[at(2), at(3), at(4), at(1)]);
        assert_eq!((last_first.inverted_pairs, last_first.max_displacement), (0.5, 3));
        assert_eq!(last_first.mean_displacement, 1.5);
        // Done together: no inversion.
        assert_eq!(Order::of(&[at(1), at(1)]).inverted_pairs, 0.0);
    }

    #[test]
    fn states_move_forward_only() {
        assert!(State::Queued.rank() < State::Running.rank() && State::Running.rank() < State::Done.rank());
        assert_eq!(State::Failed.rank(), State::Running.rank());
        assert_eq!(State::parse("done"), Some(State::Done));
        assert_eq!(State::parse("paused"), None);
    }
}
