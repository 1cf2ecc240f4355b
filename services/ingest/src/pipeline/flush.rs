//! The flush: closed windows encoded a group at a time on the worker threads and sent with the
//! dead letters in one handoff transaction, whose commit — with the source offsets — is then
//! scheduled on the committing thread ([`crate::in_flight`]) while the loop reads on. One
//! transaction at a time: the next flush begins once the last one committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::error::KafkaError;
use tracing::Instrument as _;

use super::{PipelineError, now_ms};
use crate::blocking::block_in_place;
use crate::config::{Config, SourceTopic};
use crate::dead_letter::{DeadLetter, LetterForm};
use crate::encode::{EncodeError, EncodedFile, encode};
use crate::handoff::{Committed, Handoff, HandoffTopics, Transaction};
use crate::in_flight::{Carrying, CommitError, CommitGate, CommittingTransaction, GroupMetadata};
use crate::limits::Limits;
use crate::metrics;
use crate::parallel;
use crate::window::ClosedWindow;

/// Estimated bytes of the windows encoded together in a flush before their files are sent:
/// small enough that the broker takes a group's files while the next group encodes (16 MiB
/// left most flushes one group, then all of their deliveries were waited for at the end).
const ENCODE_GROUP_BYTES: usize = 4 << 20;
/// Most windows encoded together per worker thread: fewer would start the threads more often
/// for the tens of thousands of small windows of a 10,000-workspace flush.
const ENCODE_GROUP_WINDOWS_PER_THREAD: usize = 16;

/// What a flush hands off, and the offsets its transaction commits.
pub(super) struct Flushing {
    /// The closed windows.
    pub(super) windows: Vec<ClosedWindow>,
    /// The dead letters of its partitions.
    pub(super) dead: Vec<DeadLetter>,
    /// The next offset of each of its partitions.
    pub(super) offsets: TopicPartitionList,
    /// How many partitions it commits.
    pub(super) partitions: usize,
}

/// The handoff producer and its transactions.
pub(super) struct Flusher<'a> {
    cfg: &'a Config,
    topics: &'a [SourceTopic],
    handoff: Handoff,
    /// The handoff producer's transactional id (a new producer takes it over).
    transactional_id: String,
    /// Record size limits, read from the topics at start.
    limits: Limits,
    /// Where a revocation waits for the transaction committing (shared with the consumer).
    gate: Arc<CommitGate>,
    /// How dead letters are written (after the broker refused one, less of them).
    letter_form: LetterForm,
    /// Threads encoding, the loop's own included.
    threads: usize,
    /// The last transaction, while it commits.
    committing: Option<CommittingFlush>,
}

/// A flush whose transaction is committing.
struct CommittingFlush {
    transaction: CommittingTransaction,
    /// Why each of its windows closed.
    reasons: Vec<&'static str>,
    /// Table and Parquet bytes of each of its files.
    handed: Vec<(&'static str, usize)>,
    /// Its dead letters by table and error class.
    dead_lettered: BTreeMap<(&'static str, &'static str), u64>,
    /// When the flush began.
    started: Instant,
    /// How long the loop spent in it (encoding and sending).
    loop_time: Duration,
    /// How long it waited for the previous transaction to commit before it began.
    previous_wait: Duration,
}

/// What a flush sent in its transaction, for its metrics once it committed.
#[derive(Default)]
struct Sent {
    /// Table and Parquet bytes of each file.
    handed: Vec<(&'static str, usize)>,
    /// Dead letters by table and error class.
    dead_lettered: BTreeMap<(&'static str, &'static str), u64>,
}

impl<'a> Flusher<'a> {
    /// A handoff producer with `transactional_id` (fencing any older one with it), encoding on
    /// `threads` threads.
    pub(super) async fn start(
        cfg: &'a Config,
        topics: &'a [SourceTopic],
        transactional_id: String,
        limits: Limits,
        gate: Arc<CommitGate>,
        threads: usize,
    ) -> Result<Self, PipelineError> {
        let handoff = new_handoff(cfg, &transactional_id, &limits, &gate).await?;
        Ok(Self {
            cfg,
            topics,
            handoff,
            transactional_id,
            limits,
            gate,
            letter_form: LetterForm::Whole,
            threads,
            committing: None,
        })
    }

    /// Why the handoff producer was fenced, if a newer one with its transactional id did.
    pub(super) fn fenced(&self) -> Option<String> {
        self.handoff.fenced()
    }

    /// Replaces the handoff producer with a new one taking over its transactional id (which
    /// aborts whatever the old one left open).
    pub(super) async fn replace_producer(&mut self) -> Result<(), PipelineError> {
        self.handoff = new_handoff(self.cfg, &self.transactional_id, &self.limits, &self.gate).await?;
        Ok(())
    }

    /// After a transaction was aborted: if the broker refused a dead letter as such, the next
    /// ones are written in a smaller form.
    pub(super) fn aborted(&mut self, error: &KafkaError, refused: Option<Carrying>) {
        if refused == Some(Carrying::DeadLetter) && crate::dead_letter::refused_as_such(error) {
            self.letter_form = self.letter_form.after_refusal();
            tracing::warn!(%error, form = ?self.letter_form, "The broker refused a dead letter; the next try writes them in this form.");
        }
    }

    /// Whether a transaction is committing.
    pub(super) fn is_committing(&self) -> bool {
        self.committing.is_some()
    }

    /// Waits for the last transaction, if one is committing (never resolves otherwise).
    pub(super) async fn committed(&mut self) -> Result<Committed, CommitError> {
        match &mut self.committing {
            Some(p) => (&mut p.transaction).await,
            None => std::future::pending().await,
        }
    }

    /// Counts and logs the last transaction, [`committed`](Self::committed) with `outcome`;
    /// `measure` publishes the buffers' size.
    pub(super) fn finish(
        &mut self,
        outcome: Result<Committed, CommitError>,
        measure: impl FnOnce(),
    ) -> Result<(), PipelineError> {
        match self.committing.take() {
            Some(flush) => outcome.map(|committed| self.handed_off(flush, committed, measure)).map_err(Into::into),
            None => Ok(()),
        }
    }

    /// Waits for the last transaction to commit, if one is committing; `measure` publishes the
    /// buffers' size once it did.
    pub(super) async fn settle(&mut self, measure: impl FnOnce()) -> Result<(), PipelineError> {
        if let Some(mut flush) = self.committing.take() {
            let committed = (&mut flush.transaction).await?;
            self.handed_off(flush, committed, measure);
        }
        Ok(())
    }

    /// Once the last transaction committed ([`settle`](Self::settle), with `measure`), hands
    /// `flushing` off in a new one and schedules its commit for the consumer group (read from
    /// `group` then).
    pub(super) async fn flush(
        &mut self,
        flushing: Flushing,
        group: GroupMetadata,
        measure: impl FnOnce(),
    ) -> Result<(), PipelineError> {
        // One transaction at a time, each begun only once the previous one committed (if it did
        // not, the loop restarts from the group's committed offsets: nothing read since counts).
        let settling = Instant::now();
        self.settle(measure).await?;
        let (started, previous_wait, now) = (Instant::now(), settling.elapsed(), now_ms());
        let Flushing { windows, dead, offsets, partitions } = flushing;
        let reasons: Vec<&'static str> = windows.iter().map(|c| c.reason.as_str()).collect();
        let span = tracing::info_span!("flush", windows = windows.len(), dead_letters = dead.len(), partitions);
        let (transaction, sent) = async {
            let mut tx = self.handoff.begin().map_err(PipelineError::Handoff)?;
            let mut sent = Sent::default();
            self.send_windows(&mut tx, windows, now, &mut sent).await?;
            self.send_dead_letters(&mut tx, &dead, &mut sent).await;
            Ok::<_, PipelineError>((tx.commit_in_background(offsets, group), sent))
        }
        .instrument(span)
        .await?;
        let Sent { handed, dead_lettered } = sent;
        let loop_time = started.elapsed();
        self.committing =
            Some(CommittingFlush { transaction, reasons, handed, dead_lettered, started, loop_time, previous_wait });
        Ok(())
    }

    /// Encodes `windows` a group at a time and sends each group's files at once: a flush of many
    /// windows never holds all their files (the producer's queue is bounded too).
    async fn send_windows(
        &self,
        tx: &mut Transaction<'_>,
        windows: Vec<ClosedWindow>,
        now: i64,
        sent: &mut Sent,
    ) -> Result<(), PipelineError> {
        let mut windows = windows.into_iter().peekable();
        while windows.peek().is_some() {
            let group = self.encode_group(&mut windows);
            let parent = tracing::Span::current();
            for file in block_in_place(|| self.encode(group, now, &parent)) {
                let file: EncodedFile = file.map_err(PipelineError::Encode)?;
                tx.send_file(&file).await.map_err(PipelineError::Handoff)?;
                sent.handed.push((file.meta.table.name(), file.bytes.len()));
            }
        }
        Ok(())
    }

    /// The next windows encoded together: up to [`ENCODE_GROUP_BYTES`] and
    /// [`ENCODE_GROUP_WINDOWS_PER_THREAD`] per thread.
    fn encode_group(&self, windows: &mut std::iter::Peekable<impl Iterator<Item = ClosedWindow>>) -> Vec<ClosedWindow> {
        let mut group = Vec::new();
        let mut bytes = 0;
        while let Some(c) = windows
            .next_if(|_| bytes < ENCODE_GROUP_BYTES && group.len() < self.threads * ENCODE_GROUP_WINDOWS_PER_THREAD)
        {
            bytes += c.window.footprint();
            group.push(c);
        }
        group
    }

    /// Encodes `group` on the worker threads, each window in a span of its own under `parent`.
    fn encode(
        &self,
        group: Vec<ClosedWindow>,
        now: i64,
        parent: &tracing::Span,
    ) -> Vec<Result<EncodedFile, EncodeError>> {
        let (topics, options) = (self.topics, &self.cfg.parquet);
        parallel::map_owned(group, self.threads, |c| {
            let span = tracing::info_span!(
                parent: parent,
                "window",
                workspace_id = c.key.workspace_id,
                table = c.key.table.name(),
                kind = c.key.kind.as_str_name(),
                rows = c.window.builder.len(),
                reason = c.reason.as_str(),
                opened_at_ms = c.window.opened_at_ms,
            );
            let _enter = span.enter();
            let file = encode(c, topics, options, now)?;
            tracing::debug!(bytes = file.bytes.len(), file_id = %file.meta.file_id, "Window encoded.");
            Ok(file)
        })
    }

    /// Sends the dead letters in the current form. One the producer refuses is skipped: its
    /// offset is committed with the others.
    async fn send_dead_letters(&self, tx: &mut Transaction<'_>, dead: &[DeadLetter], sent: &mut Sent) {
        let letter_form = self.letter_form;
        for letter in dead {
            let result = match letter_form {
                LetterForm::Whole => tx.send_dead_letter(letter).await,
                LetterForm::Reference => tx.send_dead_letter(&letter.reference()).await,
                LetterForm::NotWritten => Err(KafkaError::Canceled),
            };
            match result {
                Ok(()) => *sent.dead_lettered.entry((letter.table, letter.class)).or_default() += 1,
                // This record only: its offset is committed with the others, so it is
                // logged with its place in the source topic, where it still is.
                Err(error) => {
                    tracing::error!(%error, source = %letter.source, table = letter.table, class = letter.class, bytes = letter.size(), form = ?letter_form, "The dead letter was not written; the record is skipped (it stays at this place in its source topic).");
                    metrics::dead_letter_failed(letter.table, letter.class);
                }
            }
        }
    }

    /// Counts and logs a committed flush.
    fn handed_off(&mut self, flush: CommittingFlush, committed: Committed, measure: impl FnOnce()) {
        if committed.dead_letters > 0 {
            self.letter_form = LetterForm::Whole;
        }
        let CommittingFlush { reasons, handed, dead_lettered, started, loop_time, previous_wait, .. } = flush;
        metrics::dead_lettered(&dead_lettered);
        for reason in reasons {
            metrics::window_closed(reason);
        }
        for (table, bytes) in handed {
            metrics::file_handed_off(table, bytes);
        }
        metrics::flushed(started.elapsed().as_secs_f64());
        measure();
        tracing::info!(
            files = committed.files,
            bytes = committed.bytes,
            chunks = committed.chunks,
            dead_letters = committed.dead_letters,
            ms = started.elapsed().as_millis() as u64,
            loop_ms = loop_time.as_millis() as u64,
            previous_wait_ms = previous_wait.as_millis() as u64,
            commit_wait_ms = committed.commit_wait.as_millis() as u64,
            delivery_wait_ms = committed.delivery_wait.as_millis() as u64,
            offsets_wait_ms = committed.offsets_wait.as_millis() as u64,
            "Handed off."
        );
    }
}

/// A handoff producer with `transactional_id` (fencing any older one with it), on a blocking
/// thread: initialising transactions waits for the broker.
async fn new_handoff(
    cfg: &Config,
    transactional_id: &str,
    limits: &Limits,
    gate: &Arc<CommitGate>,
) -> Result<Handoff, PipelineError> {
    let (config, id, ingest) =
        (cfg.kafka.client_config("ingest-handoff"), transactional_id.to_owned(), cfg.ingest.clone());
    let (limits, gate) = (*limits, Arc::clone(gate));
    let handoff = tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_millis(ingest.transaction_timeout_ms);
        let topics = HandoffTopics { handoff: &ingest.handoff_topic, dead_letter: &ingest.dead_letter_topic };
        Handoff::new(config, &id, topics, ingest.chunk_bytes, &limits, timeout, gate)
    })
    .await
    .map_err(|_| KafkaError::Canceled)
    .and_then(|made| made)
    .map_err(PipelineError::Handoff)?;
    Ok(handoff)
}
