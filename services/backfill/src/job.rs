//! One job: a workspace's pending tables for one baseline, from the archive to its bucket.
//!
//! 1. the tables still asked for (a new epoch, a table turned off or the sync disabled or
//!    deleted drop them, here and before each table);
//! 2. the archive must cover the cut ([`plan::coverage`]); if not, the tables stay queued with
//!    the reason and the job ends (the scheduler looks again at its next poll);
//! 3. a catch-up (a table whose baseline has `replay_from`) needs the archive to reach back to
//!    its pause ([`plan::replay_start`]); if not, it fails saying so (the job's other tables go
//!    on) — never a partial `Done`;
//! 4. running: the workspace's history up to the cut, the [`Context`] at the baseline's time
//!    for the initial syncs (people, and deliveries and subjects when someone is erased, objects
//!    for object attributes), then per table, after `cio-validate`: an initial sync's fold and
//!    its files streamed to local disk and created from there ([`crate::output`]); a catch-up's archived files of `[replay_from, cut)` one by
//!    one, as they were, under the keys the uploader writes them under
//!    (`dwsync_handoff::data_key`, their own first offset as `seq`, new or changes); each
//!    created without overwriting, then `Done`.
//!
//! Any failure (archive, fold, destination) is returned as a sentence naming what failed (never
//! a secret); the caller reports it and tries the job again later. A job run again after a crash
//! folds the same rows (the baseline's `at_ms` is its "now") into the same keys: files already
//! written answer `412` and are counted as written.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use dwsync_archive::fold::{Context, Erasing, Flagged, FoldError, Folder, Spill};
use dwsync_archive::{ArchiveReader, WorkspaceHistory};
use dwsync_config::Secret;
use dwsync_contract::Table;
use dwsync_s3::create_only::{Create, CreateOnly, FileObject, PartSizes};
use dwsync_s3::egress::EgressPolicy;
use dwsync_s3::error::StoreError;
use dwsync_s3::{Location, SharedHttpClient, StaticCredentials};
use dwsync_sync_config::{Baseline, InitialSyncs, KafkaStore, Sealer, Store, SyncConfig, WorkspaceId};

use crate::gap::{self, Gap};
use crate::metrics::Metrics;
use crate::output::{Files, LocalFile, OneFile};
use crate::plan::{self, Coverage, Work};
use crate::report::Reporter;

/// Longest wait for a connection to a destination's S3 endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest single S3 request.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Files larger than this go as multipart uploads, in parts of [`PART_BYTES`] (a baseline file
/// up to it is read whole into memory to be PUT).
const MULTIPART_THRESHOLD: u64 = 16 << 20;

/// Multipart part size.
const PART_BYTES: u64 = 16 << 20;

/// What every job shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The followed configurations.
    pub configs: KafkaStore<SyncConfig>,
    /// The initial syncs, followed and written.
    pub syncs: KafkaStore<InitialSyncs>,
    /// The archive.
    pub reader: ArchiveReader,
    /// Opens the destinations' secrets (or why it cannot).
    pub sealer: Result<Sealer, String>,
    /// Where destinations' endpoints (customers') may lead.
    pub egress: EgressPolicy,
    /// The HTTPS client of every destination's S3 client, checking each connection against
    /// `egress` ([`dwsync_s3::egress::customer_https_client`]).
    pub https: SharedHttpClient,
    /// The HTTP client of every GCS destination, checking each connection against `egress`
    /// ([`dwsync_gcs::http::customer_http_client`]).
    pub gcs_http: reqwest::Client,
    /// Rows per initial metrics file.
    pub metrics_rows_per_file: usize,
    /// Keys listed per table in the status.
    pub max_keys_reported: usize,
    /// Where the folds spill and the baseline files are written before upload, and the folds'
    /// memory budget (per job).
    pub spill: Spill,
    /// The instruments.
    pub metrics: Arc<Metrics>,
    /// The handoff topic, to read the partition between the archive's end and a cut ([`gap`]).
    pub handoff: gap::Handoff,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every table of the job is delivered.
    Done,
    /// The archive does not cover the cut yet.
    Waiting,
    /// Its baseline is no longer asked for.
    Dropped,
    /// It failed (reported); attempts so far.
    Failed(u32),
}

/// A failure: what failed, a sentence for the status (never a secret).
#[derive(Debug)]
struct Failure(String);

impl<E: std::fmt::Display> From<(&str, E)> for Failure {
    fn from((what, error): (&str, E)) -> Self {
        Self(format!("{what}: {error}"))
    }
}

/// Runs `work` once.
#[tracing::instrument(name = "job", skip_all, fields(workspace_id = %work.workspace, epoch = work.baseline.epoch, partition = work.baseline.partition, cut = work.baseline.cut))]
pub async fn run(shared: &Shared, work: &Work) -> Outcome {
    let mut reporter = Reporter::new(&shared.syncs, work.workspace, shared.max_keys_reported);
    let failure = match attempt(shared, work, &mut reporter).await {
        Ok(outcome) => {
            // A dropped job's tables done before it was dropped.
            if let Err(error) = reporter.flush().await {
                tracing::warn!(%error, "Reporting the tables done failed.");
            }
            return outcome;
        }
        Err(failure) => failure.0,
    };
    let b = &work.baseline;
    let left: Vec<Table> =
        work.tables.iter().copied().filter(|t| !reporter.get(*t).is_some_and(|s| s.is_done_for(b))).collect();
    match reporter.failed(&left, b, &failure).await {
        Ok(attempts) => {
            tracing::error!(reason = %failure, attempts, "An initial sync failed; it will be tried again.");
            Outcome::Failed(attempts)
        }
        Err(error) => {
            tracing::error!(reason = %failure, %error, "An initial sync failed, and reporting it failed too; it will be tried again.");
            Outcome::Failed(1)
        }
    }
}

/// The tables of `work` its configuration still asks for.
fn wanted(shared: &Shared, work: &Work) -> Vec<Table> {
    let cfg = shared.configs.cached(work.workspace);
    work.tables.iter().copied().filter(|t| plan::still_wanted(cfg.as_ref(), *t, &work.baseline_of(*t))).collect()
}

async fn attempt(shared: &Shared, work: &Work, reporter: &mut Reporter) -> Result<Outcome, Failure> {
    let (ws, b) = (work.workspace, &work.baseline);
    let tables = wanted(shared, work);
    if tables.is_empty() {
        tracing::info!("The baseline is no longer asked for; dropped.");
        return Ok(Outcome::Dropped);
    }
    let listing = format!("listing the archive of handoff partition {}", b.partition);
    let batches = shared.reader.batches(b.partition).await.map_err(|e| (listing.as_str(), e))?;
    let ranges: Vec<_> = batches.iter().map(|batch| batch.range).collect();
    let mut coverage = plan::coverage(&ranges, b.cut);
    if let Coverage::Behind(end) = coverage {
        let from = end.unwrap_or(0);
        let gap =
            shared.handoff.between(b.partition, from, b.cut).await.map_err(|e| ("reading the handoff topic", e))?;
        tracing::debug!(from, ?gap, "The archive ends before the cut; the partition between them read.");
        if gap == Gap::Empty {
            coverage = Coverage::Covered;
        }
    }
    if coverage != Coverage::Covered {
        let waiting = plan::waiting_for(b, &coverage);
        tracing::info!(waiting_for = waiting.as_deref().unwrap_or_default(), "Waiting for the archive.");
        reporter.queued(&tables, b, waiting).await.map_err(|e| ("reporting", e))?;
        return Ok(Outcome::Waiting);
    }
    // Catch-ups the archive does not reach back for fail; the others go on.
    let (mut ready, mut refused) = (Vec::new(), Vec::new());
    for table in tables {
        match work.replays.get(&table).and_then(|from| plan::replay_start(&ranges, b.partition, *from)) {
            Some(reason) => refused.push(format!("catching up {table}: {reason}")),
            None => ready.push(table),
        }
    }
    let (tables, refused) = (ready, (!refused.is_empty()).then(|| Failure(refused.join("; "))));
    if let (true, Some(refused)) = (tables.is_empty(), refused.as_ref()) {
        return Err(Failure(refused.0.clone()));
    }
    reporter.running(&tables, b).await.map_err(|e| ("reporting", e))?;
    let Some(cfg) = shared.configs.cached(ws) else { return Ok(Outcome::Dropped) };
    let dest = Destination::open(&cfg, &shared.sealer, (&shared.https, &shared.gcs_http, &shared.egress))?;

    let history = shared.reader.workspace(ws.get()).await.map_err(|e| (listing.as_str(), e))?;
    if history.partition() != b.partition {
        return Err(Failure(format!(
            "workspace {ws} is in handoff partition {} of the handoff topic, its baseline names partition {}",
            history.partition(),
            b.partition
        )));
    }
    // The job's own directory under the spill directory: spill and baseline files, all deleted
    // when the job ends (or at the next start's clean-up of the system's temporary directory).
    let spill_dir = &shared.spill.dir;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("dwsync-backfill-{ws}-"))
        .tempdir_in(spill_dir)
        .map_err(|e| Failure(format!("making a directory in the spill directory {}: {e}", spill_dir.display())))?;
    let spill = Spill { dir: scratch.path().to_owned(), ..shared.spill.clone() };
    let reading = Reading { history: history.before(b.cut), partition: b.partition, spill };
    let folded: Vec<Table> = tables.iter().copied().filter(|t| !work.replays.contains_key(t)).collect();
    let context = reading.context(&folded, b.at_ms).await?;

    dest.validate().await.map_err(|e| ("writing cio-validate to the destination", e.summary()))?;
    tracing::info!(tables = tables.len(), bucket = %dest.bucket, "Writing the baseline.");
    for table in tables {
        if !wanted(shared, work).contains(&table) {
            tracing::info!(table = table.name(), "The baseline is no longer asked for; dropped.");
            return Ok(Outcome::Dropped);
        }
        let mut delivery = Delivery { shared, dest: &dest, reporter: &mut *reporter, table, baseline: b };
        if let Some(&from) = work.replays.get(&table) {
            delivery.catch_up(&reading, ws.get(), from).await?;
        } else {
            delivery.initial_sync(&reading, ws, &context).await?;
        }
        reporter.done(table, b);
        let (rows, files) = reporter.get(table).map_or((0, 0), |s| (s.rows, s.files));
        let mode = if work.replays.contains_key(&table) { "catch-up" } else { "initial sync" };
        tracing::info!(table = table.name(), mode, rows, files, "A baseline is delivered.");
    }
    reporter.flush().await.map_err(|e| ("reporting", e))?;
    refused.map_or(Ok(Outcome::Done), Err)
}

/// Writing one table's files to the destination, counted and reported.
struct Delivery<'a> {
    shared: &'a Shared,
    dest: &'a Destination,
    reporter: &'a mut Reporter,
    table: Table,
    baseline: &'a Baseline,
}

impl Delivery<'_> {
    /// Creates `file` (a file on local disk, of a baseline or a catch-up) unless it exists (an
    /// earlier attempt wrote it: counted as written), then reports it.
    async fn write_file(&mut self, file: LocalFile, what: &str) -> Result<(), Failure> {
        let created = self.dest.create_file(&file.object).await;
        self.record(&file.object.key, file.object.rows, created, what).await
    }

    /// Counts and reports the object `key` of `rows` rows once `created` says it is there.
    async fn record(
        &mut self,
        key: &str,
        rows: u64,
        created: Result<Create, StoreError>,
        what: &str,
    ) -> Result<(), Failure> {
        let table = self.table.name();
        match created {
            Ok(Create::Created) => self.shared.metrics.written(table, rows),
            Ok(Create::Exists) => {
                tracing::info!(key = %key, "A {what} file was already written (an earlier attempt).");
                self.shared.metrics.existing(table);
            }
            Err(error) => return Err(Failure(format!("writing a {what} file failed: {}", error.summary()))),
        }
        self.reporter.file(self.table, self.baseline, key, rows).await.map_err(|e| ("reporting", e))?;
        Ok(())
    }

    /// An initial sync: the table's history up to the cut streamed through its fold into its
    /// files on local disk, each created in the bucket as soon as it is complete. Its `seq` (in
    /// every key) is read from the archive's footers first.
    #[tracing::instrument(name = "initial_sync", skip_all, fields(table = self.table.name()))]
    async fn initial_sync(&mut self, reading: &Reading, ws: WorkspaceId, context: &Context) -> Result<(), Failure> {
        let table = self.table;
        let what = reading.what(table);
        let Some(seq) = reading.history.last_seq(table).await.map_err(|e| (what.as_str(), e))? else {
            return Ok(());
        };
        // Files to write: the tables done before are reported first.
        self.reporter.flush().await.map_err(|e| ("reporting", e))?;
        let (shared, prefix) = (self.shared, self.dest.prefix.as_str());
        let fold = |e| Failure::from(("folding the baseline", e));
        let output = |e| Failure::from(("writing the baseline", e));
        let mut folder = Folder::new(table, context, Some(&reading.spill)).map_err(fold)?;
        let seq_out = u64::try_from(seq).unwrap_or_default();
        let mut files = Files::new(&reading.spill.dir, prefix, table, ws, seq_out, shared.metrics_rows_per_file);
        let mut stream = reading.history.stream(table);
        while let Some(rows) = stream.next().await.map_err(|e| (what.as_str(), e))? {
            for batch in rows {
                for out in folder.push(batch).map_err(fold)? {
                    for file in files.push(&out).map_err(output)? {
                        self.write_file(file, "baseline").await?;
                    }
                }
            }
        }
        if stream.last_seq != Some(seq) {
            return Err(Failure(format!(
                "{what}: the archive changed while it was read (its footers name files up to offset {seq}, its rows up to {:?})",
                stream.last_seq
            )));
        }
        for out in folder.finish().map_err(fold)? {
            for file in files.push(&out.map_err(fold)?).map_err(output)? {
                self.write_file(file, "baseline").await?;
            }
        }
        if let Some(file) = files.finish().map_err(output)? {
            self.write_file(file, "baseline").await?;
        }
        Ok(())
    }

    /// A catch-up: the table's archived files of `[from, cut)`, one by one in offset order, each
    /// as it was under the key the uploader writes it under. Read one file at a time and each
    /// file's rows a decoded batch at a time, written to local disk as baseline files are
    /// ([`OneFile`]) and created from there: at most one decoded batch per archive object and one
    /// Parquet row group being encoded are held, never a whole file.
    async fn catch_up(&mut self, reading: &Reading, ws: i64, from: i64) -> Result<(), Failure> {
        let (table, cut, prefix) = (self.table, self.baseline.cut, self.dest.prefix.as_str());
        let what = reading.what(table);
        let output = |e| Failure::from(("writing a catch-up file", e));
        self.reporter.flush().await.map_err(|e| ("reporting", e))?;
        let mut stream = reading.history.file_stream(table, from, cut);
        while let Some(file) = stream.next_file().await.map_err(|e| (what.as_str(), e))? {
            let seq = u64::try_from(file.first_offset).unwrap_or_default();
            let key = dwsync_handoff::data_key(prefix, table, file.kind, ws, seq);
            let mut out = OneFile::new(&reading.spill.dir, table, key).map_err(output)?;
            while let Some(rows) = stream.next_rows().map_err(|e| (what.as_str(), e))? {
                out.push(&rows).map_err(output)?;
            }
            self.write_file(out.finish().map_err(output)?, "catch-up").await?;
        }
        Ok(())
    }
}

/// The workspace's history up to the cut, read table by table as a stream.
struct Reading {
    history: WorkspaceHistory,
    partition: i32,
    /// The job's spill directory and memory budget.
    spill: Spill,
}

impl Reading {
    /// What reading `table` is, for a failure.
    fn what(&self, table: Table) -> String {
        format!("reading {} from the archive (handoff partition {})", table.name(), self.partition)
    }

    /// Streams `table`'s history into `push`, one batch at a time.
    async fn each(
        &self,
        table: Table,
        mut push: impl FnMut(&RecordBatch) -> Result<(), FoldError>,
    ) -> Result<(), Failure> {
        let what = self.what(table);
        let mut stream = self.history.stream(table);
        while let Some(rows) = stream.next().await.map_err(|e| (what.as_str(), e))? {
            for batch in &rows {
                push(batch).map_err(|e| Failure::from(("folding the baseline", e)))?;
            }
        }
        Ok(())
    }

    /// The context at `now_ms` for folding `tables`, streamed: the erased people when any of
    /// them is anonymized or leaves erased people out (people's ids and flags folded within the
    /// budget); their deliveries and subjects when someone is erased; the deleted objects for
    /// object attributes. What it holds is ids only.
    #[tracing::instrument(name = "context", skip_all)]
    async fn context(&self, tables: &[Table], now_ms: i64) -> Result<Context, Failure> {
        let fold = |e| Failure::from(("folding the baseline", e));
        let erasing = tables
            .iter()
            .any(|t| dwsync_archive::anonymize::rules(*t).is_some() || matches!(t, Table::People | Table::Attributes));
        let mut people = Flagged::people(Some(&self.spill)).map_err(fold)?;
        if erasing {
            self.each(Table::People, |batch| people.push(batch)).await?;
        }
        let mut erased = Erasing::new(people.finish().map_err(fold)?);
        if erased.anyone() {
            for table in [Table::Deliveries, Table::Subjects] {
                self.each(table, |batch| erased.push(table, batch)).await?;
            }
        }
        let mut objects = Flagged::objects(Some(&self.spill)).map_err(fold)?;
        if tables.contains(&Table::ObjectAttributes) {
            self.each(Table::Objects, |batch| objects.push(batch)).await?;
        }
        let erased = erased.finish();
        tracing::info!(
            erased_people = erased.people.len(),
            erased_deliveries = erased.deliveries.len(),
            erased_subjects = erased.subjects.len(),
            "The baseline's context is read."
        );
        Ok(Context { now_ms, erased, deleted_objects: objects.finish().map_err(fold)? })
    }
}

/// A workspace's bucket, with a client signing with its own (opened) credentials.
struct Destination {
    writer: Writer,
    bucket: String,
    prefix: String,
}

/// A destination's client, by kind.
enum Writer {
    /// S3: a client and whether the store supports `If-None-Match: *`.
    S3 { client: aws_sdk_s3::Client, conditional: bool },
    /// Google Cloud Storage.
    Gcs(dwsync_gcs::Bucket),
}

impl Destination {
    /// The destination of `cfg`, its secret opened with `sealer` (the workspace id as context),
    /// its client on `https` (S3) or `gcs_http` (GCS); an endpoint that is an address `egress`
    /// refuses fails here.
    fn open(
        cfg: &SyncConfig,
        sealer: &Result<Sealer, String>,
        (https, gcs_http, egress): (&SharedHttpClient, &reqwest::Client, &EgressPolicy),
    ) -> Result<Self, Failure> {
        let d = &cfg.destination;
        if cfg.schema_version != dwsync_contract::SCHEMA_VERSION {
            return Err(Failure(format!("schema version {} is not supported", cfg.schema_version)));
        }
        if let Some(endpoint) = d.endpoint() {
            egress.check_literal_endpoint(endpoint).map_err(|refused| Failure(refused.to_string()))?;
        }
        let sealer =
            sealer.as_ref().map_err(|e| Failure(format!("the destination's secret key cannot be opened: {e}")))?;
        let secret: Secret = sealer
            .open(d.sealed(), &cfg.workspace_id.to_string())
            .map_err(|e| Failure(format!("the destination's secret key does not open: {e}")))?;
        let writer = match &d.store {
            Store::S3(s3) => {
                let location = Location {
                    region: &s3.region,
                    endpoint: s3.endpoint.as_deref(),
                    force_path_style: s3.force_path_style,
                };
                let credentials = StaticCredentials::new(
                    s3.access_key_id.clone(),
                    secret.expose().to_owned(),
                    None,
                    None,
                    "dwsync-destination",
                );
                let timeouts = (CONNECT_TIMEOUT, ATTEMPT_TIMEOUT);
                let client = dwsync_s3::client_without_retries(location, credentials, https.clone(), timeouts);
                Writer::S3 { client, conditional: s3.conditional_writes }
            }
            Store::Gcs(gcs) => {
                let key = dwsync_gcs::ServiceAccountKey::parse(secret.expose())
                    .map_err(|e| Failure(format!("the destination's service account key {e}")))?;
                let timeouts = dwsync_gcs::bucket::Timeouts { attempt: ATTEMPT_TIMEOUT };
                let bucket =
                    dwsync_gcs::Bucket::new(gcs_http.clone(), gcs.endpoint.as_deref(), &d.bucket, &key, timeouts)
                        .map_err(|e| Failure(format!("the GCS destination: {e}")))?;
                Writer::Gcs(bucket)
            }
        };
        Ok(Self { writer, bucket: d.bucket.clone(), prefix: d.prefix.clone() })
    }

    /// Writes the empty `cio-validate` object (a plain write, as the uploader before every sync).
    async fn validate(&self) -> Result<(), StoreError> {
        let key = dwsync_handoff::validate_key(&self.prefix);
        match &self.writer {
            Writer::S3 { client, .. } => {
                let put = client.put_object().bucket(&self.bucket).key(&key).body(Vec::new().into());
                put.send().await.map_err(|e| StoreError::from_sdk("PutObject", &self.bucket, &key, e))?;
            }
            Writer::Gcs(bucket) => bucket.put(&key, bytes::Bytes::new()).await?,
        }
        Ok(())
    }

    /// Creates `file` from its local file unless its key exists.
    async fn create_file(&self, file: &FileObject) -> Result<Create, StoreError> {
        let parts = PartSizes { threshold: MULTIPART_THRESHOLD, part_bytes: PART_BYTES };
        Ok(match &self.writer {
            Writer::S3 { client, conditional } => {
                CreateOnly::new(client, &self.bucket, *conditional, parts).create_file(file).await?
            }
            Writer::Gcs(bucket) => dwsync_gcs::create_only::CreateOnly::new(bucket, parts).create_file(file).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sealed_by: &Sealer, workspace: &str) -> SyncConfig {
        let secret = sealed_by.seal(&Secret::new("0123-very-secret"), workspace).expect("sealed");
        SyncConfig {
            workspace_id: dwsync_sync_config::WorkspaceId::new(42).expect("id"),
            schema_version: dwsync_contract::SCHEMA_VERSION,
            destination: dwsync_sync_config::Destination {
                bucket: "b".into(),
                prefix: "p".into(),
                store: dwsync_sync_config::Store::S3(dwsync_sync_config::S3Store {
                    region: "us-east-1".into(),
                    endpoint: Some("http://127.0.0.1:1".into()),
                    force_path_style: true,
                    conditional_writes: true,
                    access_key_id: "AK".into(),
                    secret_access_key: secret,
                }),
            },
            tables: std::collections::BTreeMap::new(),
            disabled: false,
            updated_at_ms: 0,
            revision: 1,
        }
    }

    #[tokio::test]
    async fn a_secret_opens_only_with_the_key_and_workspace_it_was_sealed_for() {
        let (key, other) = (Sealer::new(&[1; 32]), Sealer::new(&[2; 32]));
        let allow = vec!["127.0.0.1".parse().expect("entry")];
        let egress = EgressPolicy::new(&dwsync_s3::egress::EgressConfig { allow });
        let gcs_http = dwsync_gcs::http::customer_http_client(egress.clone()).expect("client");
        let https = (&dwsync_s3::egress::customer_https_client(egress.clone()), &gcs_http, &egress);
        let opened = Destination::open(&config(&key, "42"), &Ok(key.clone()), https).expect("opens");
        assert_eq!((opened.bucket.as_str(), opened.prefix.as_str()), ("b", "p"));
        let failures = [
            Destination::open(&config(&other, "42"), &Ok(key.clone()), https),
            Destination::open(&config(&key, "43"), &Ok(key.clone()), https),
            Destination::open(&config(&key, "42"), &Err("no seal key (DWSYNC_SEAL_KEY)".into()), https),
        ];
        for failure in failures {
            let Err(Failure(reason)) = failure else { panic!("opened") };
            assert!(reason.starts_with("the destination's secret key"), "{reason}");
            assert!(!reason.contains("0123-very-secret"), "{reason}");
        }
    }

    #[test]
    fn an_endpoint_into_the_operators_network_is_refused() {
        let key = Sealer::new(&[1; 32]);
        let strict = EgressPolicy::default();
        let https = dwsync_s3::egress::customer_https_client(strict.clone());
        let gcs_http = dwsync_gcs::http::customer_http_client(strict.clone()).expect("client");
        let clients = (&https, &gcs_http, &strict);
        let Err(Failure(reason)) = Destination::open(&config(&key, "42"), &Ok(key.clone()), clients) else {
            panic!("opened");
        };
        assert_eq!(
            reason,
            "endpoint host \"127.0.0.1\" points to a loopback address; customer endpoints must be public"
        );
    }

    #[test]
    fn failures_name_what_failed() {
        let failure =
            Failure::from(("reading metrics from the archive (handoff partition 3)", "archive object k is missing"));
        assert_eq!(failure.0, "reading metrics from the archive (handoff partition 3): archive object k is missing");
    }
}
