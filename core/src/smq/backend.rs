//! The SMQ storage backend: the core's [`StorageCommand`]s carried out on SeaweedMQ, as a state
//! machine that a runtime drives with gRPC replies and the time.
//!
//! What it decides, sans-IO like the rest of the core:
//! - one writer task per Kafka partition performs its mutating commands in the core's order. An
//!   append is published on the partition's publish stream (`publisher`), every ack checked
//!   against the offsets the ledger assigned; then its ledger entries go to
//!   `kafka-system/offset-mappings` (its own publisher), and only then does the append complete.
//!   Offsets SMQ lost are filled, records it stored without acking them are adopted, except the
//!   first records of an idempotent batch cut short (a crash, a broken stream): the batch's retry
//!   completes it at the same offsets (`settle`), so acknowledged offsets stay dense;
//! - reads and time lookups run at once as their own tasks, through a partition's subscription
//!   (`cursor`) or `FetchMessage`;
//! - at start-up, `restore` rebuilds the partitions from the ledger topic.
//!
//! These procedures are long sequences of calls with retries and backoffs, so they are written as
//! `async` code: the compiler turns each into a state machine, and a small executor polls them
//! only from [`SmqBackend`]'s methods. A call is an output ([`SmqOutput::Call`]) whose reply the
//! runtime feeds back; a sleep ends when the time fed in reaches it. Nothing here blocks, reads a
//! clock or touches a socket, so the same inputs always give the same outputs.
//!
//! Driving it: after [`SmqBackend::new`] and after every `submit`/`handle_*` call, drain
//! [`SmqBackend::poll_output`] (make the calls, hand the completions to the gateway), then sleep no
//! later than [`SmqBackend::poll_timeout`] and call [`SmqBackend::handle_timeout`].

use super::client::Smq;
use super::cursor::Cursors;
use super::io::{CallId, Executor, Io, Reply, SmqOutput, StreamId, StreamItem};
use super::mapping::Namespaces;
use super::mappings::{LedgerEntry, batch_entry, cut_batch_tail, position, tail_entries};
use super::messaging_pb::{DataMessage, FetchMessageResponse};
use super::publish::{PublishError, PublishEvent};
use super::publisher::{self, Jobs};
use super::record::{
    KafkaRecord, ValueFormat, batch_messages, encode_gap, encode_slots, filler_message,
    hide_cut_batches, read_slots,
};
use super::schema_pb;
use crate::broker::Now;
use crate::codec::record_batch::{BatchHeader, RecordBatch};
use crate::storage::{AppendBatch, StorageCommand, StorageCompletion, StorageError};
use crate::types::{Millis, Offset, TimestampMs, TopicPartition};
use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::StreamExt;
use futures_util::lock::Mutex as AsyncMutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Most messages asked of one `FetchMessage`.
pub(crate) const FETCH_MESSAGES: usize = 10_000;
/// Most bytes asked of one `FetchMessage`.
const FETCH_BYTES: usize = 32 << 20;
/// Attempts at writing an append's ledger entries before giving up on them.
const LEDGER_ATTEMPTS: u32 = 8;

/// The SMQ backend's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmqConfig {
    /// Where Kafka topics and Kelp's own go.
    pub namespaces: Namespaces,
    /// How record values are written.
    pub format: ValueFormat,
    /// Records in flight per publish stream.
    pub window: usize,
    /// How long to wait for the broker at start-up.
    pub ready_timeout: Duration,
    /// How long to wait before the first publish, so that the broker has unloaded the partitions
    /// of a crashed predecessor (see [`SmqBackend::new`]).
    pub startup_grace: Duration,
    /// Largest batch decompressed when records are converted (the gateway's limit).
    pub max_decompressed: usize,
    /// This gateway's name towards SMQ: its publishers' name, its subscriptions' group prefix
    /// (unique per process, e.g. `kelp-<pid>`, so no other subscriber moves their positions).
    pub name: String,
}

impl Default for SmqConfig {
    fn default() -> SmqConfig {
        SmqConfig {
            namespaces: Namespaces::default(),
            format: ValueFormat::Enriched,
            window: 4096,
            ready_timeout: Duration::from_secs(120),
            startup_grace: Duration::from_secs(1),
            max_decompressed: 64 << 20,
            name: "kelp".into(),
        }
    }
}

/// What the backend's tasks share.
pub(crate) struct Shared {
    pub(crate) smq: Arc<Smq>,
    pub(crate) namespaces: Namespaces,
    config: SmqConfig,
    /// The ledger topic's publisher.
    ledger: Jobs,
    /// Per partition, the subscription sequential reads go through.
    cursors: Cursors,
    /// Serialises `ConfigureTopic` calls (a topic's partitions are created together).
    configure: AsyncMutex<()>,
    /// The largest append time handed out.
    last_append_ns: AtomicI64,
    /// Partitions where SMQ may hold records beyond the ledger's end, found by the restore: their
    /// writers look before their first append ([`settle`]).
    unsettled: std::sync::Mutex<HashSet<TopicPartition>>,
}

impl Shared {
    pub(crate) fn io(&self) -> &Io {
        &self.smq.io
    }

    /// This gateway's name towards SMQ ([`SmqConfig::name`]).
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// The wall clock in ns, never below a value it returned before: SMQ orders files by it.
    fn append_time(&self) -> i64 {
        let now = self.io().now().wall.0.saturating_mul(1_000_000);
        let last = self.last_append_ns.fetch_max(now, Ordering::Relaxed);
        now.max(last)
    }

    /// Marks `tp` as possibly holding records beyond the ledger's end.
    pub(crate) fn unsettle(&self, tp: &TopicPartition) {
        if let Ok(mut set) = self.unsettled.lock() {
            set.insert(tp.clone());
        }
    }

    /// Whether `tp` was marked by [`Shared::unsettle`] (the mark is taken).
    fn take_unsettled(&self, tp: &TopicPartition) -> bool {
        self.unsettled.lock().is_ok_and(|mut set| set.remove(tp))
    }

    /// Writes ledger entries, retrying with backoff: they are idempotent at restore.
    pub(crate) async fn write_ledger(&self, entries: &[LedgerEntry]) -> Result<(), String> {
        let now = self.append_time();
        let mut wait = Duration::from_millis(50);
        let mut last = String::new();
        for _ in 0..LEDGER_ATTEMPTS {
            let messages: Vec<DataMessage> = entries.iter().map(|e| e.to_message(now)).collect();
            match publisher::publish(&self.ledger, None, messages).await {
                PublishEvent::Stored { .. } => return Ok(()),
                PublishEvent::Failed { error, .. } => last = error.to_string(),
            }
            self.io().sleep(wait).await;
            wait = (wait * 2).min(publisher::MAX_BACKOFF);
        }
        Err(last)
    }

    fn publisher(&self, tp: &TopicPartition) -> Jobs {
        publisher::spawn(
            self.smq.clone(),
            self.namespaces.smq_topic(tp.topic.as_str()),
            tp.partition,
            self.config.window,
            self.config.name.clone(),
        )
    }

    /// A fetch that waits out a partition the broker is reloading: right after a publisher leaves
    /// (a restart), weed unloads and flushes the partition, and reads in between find nothing.
    pub(crate) async fn fetch_patiently(
        &self,
        topic: &schema_pb::Topic,
        partition: i32,
        at: Offset,
        wanted: usize,
    ) -> Result<FetchMessageResponse, StorageError> {
        let mut wait = Duration::from_millis(50);
        let deadline = self.io().now().mono.plus(5_000);
        loop {
            let response = self
                .smq
                .fetch(topic, partition, at.0, FETCH_BYTES, wanted)
                .await
                .map_err(io)?;
            if !response.messages.is_empty() || self.io().now().mono >= deadline {
                return Ok(response);
            }
            self.io().sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(800));
        }
    }

    /// Records `from..to` to adopt: those that can be read, none when the read fails (the offsets
    /// are adopted all the same, only without their producers).
    async fn records_to_adopt(
        &self,
        tp: &TopicPartition,
        from: Offset,
        to: Offset,
    ) -> Vec<KafkaRecord> {
        self.read_records(tp, from, to).await.unwrap_or_else(|e| {
            tracing::warn!(partition = %tp, error = %e, "records beyond the ledger unreadable");
            Vec::new()
        })
    }

    /// Records `from..to`, read whole (for adoption: few, right behind the ledger's end).
    pub(crate) async fn read_records(
        &self,
        tp: &TopicPartition,
        from: Offset,
        to: Offset,
    ) -> Result<Vec<KafkaRecord>, StorageError> {
        let topic = self.namespaces.smq_topic(tp.topic.as_str());
        let mut records = Vec::new();
        let mut at = from;
        while at < to {
            let wanted = ((to.0 - at.0) as usize).min(FETCH_MESSAGES);
            let response = self
                .fetch_patiently(&topic, tp.partition, at, wanted)
                .await?;
            if response.messages.is_empty() {
                return Err(StorageError::Io(format!(
                    "{tp}: SMQ serves nothing at {} (its end is {})",
                    at.0, to.0
                )));
            }
            let got = &response.messages[..wanted.min(response.messages.len())];
            records.extend(slots(tp, at, got).into_iter().flatten());
            at = at.plus(got.len() as i64);
        }
        Ok(records)
    }
}

/// The SMQ storage backend (see the module's documentation).
pub struct SmqBackend {
    shared: Arc<Shared>,
    executor: Executor,
    writers: HashMap<TopicPartition, mpsc::UnboundedSender<StorageCommand>>,
}

impl SmqBackend {
    /// A backend that starts up at once: it waits for the broker, lets a crashed predecessor's
    /// partitions unload (after a crash, weed takes about 0.1 s to notice that the old process's
    /// publish streams are gone; a stream opened meanwhile lands on the partition being unloaded
    /// and its first record's offset is burned: a hole), prepares the ledger topic and restores
    /// the partitions from it, then reports [`SmqOutput::Restored`]. Commands may be submitted
    /// only after that.
    pub fn new(config: SmqConfig, now: Now) -> SmqBackend {
        let io = Io::new(now);
        let smq = Arc::new(Smq::new(io.clone()));
        let ledger = publisher::spawn(
            smq.clone(),
            config.namespaces.mappings_topic(),
            0,
            config.window,
            config.name.clone(),
        );
        let shared = Arc::new(Shared {
            smq,
            namespaces: config.namespaces.clone(),
            config,
            ledger,
            cursors: Cursors::default(),
            configure: AsyncMutex::new(()),
            last_append_ns: AtomicI64::new(0),
            unsettled: std::sync::Mutex::new(HashSet::new()),
        });
        let starting = shared.clone();
        io.spawn(async move {
            let restored = start(&starting).await;
            starting.io().output(SmqOutput::Restored(restored));
        });
        let mut backend = SmqBackend {
            shared,
            executor: Executor::new(io),
            writers: HashMap::new(),
        };
        backend.executor.run();
        backend
    }

    /// Starts `command`; its [`SmqOutput::Completed`] comes out of [`SmqBackend::poll_output`].
    pub fn submit(&mut self, command: StorageCommand, now: Now) {
        self.advance(now);
        let io = self.shared.io().clone();
        let shared = self.shared.clone();
        if let Some(tp) = command.changes_log_of().cloned() {
            let tx = self.writers.entry(tp.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded();
                io.spawn(writer(tp, shared, rx));
                tx
            });
            let _ = tx.unbounded_send(command);
        } else {
            match command {
                StorageCommand::Read {
                    token,
                    partition,
                    offset,
                    max_bytes,
                    end,
                    ..
                } => io.spawn(async move {
                    let result = read(&shared, &partition, offset, max_bytes, end).await;
                    if let Err(e) = &result {
                        tracing::warn!(%partition, offset = offset.0, error = %e, "SMQ read failed");
                    }
                    let completion = StorageCompletion::of_read(result);
                    shared.io().output(SmqOutput::Completed(token, completion));
                }),
                StorageCommand::FindByTime {
                    token,
                    partition,
                    timestamp,
                    from,
                    end,
                } => io.spawn(async move {
                    let start = Offset(from.byte as i64);
                    let result = find_time(&shared, &partition, timestamp, start, end).await;
                    let completion = StorageCompletion::of_lookup(result);
                    shared.io().output(SmqOutput::Completed(token, completion));
                }),
                // (log changes went to the partition's writer above)
                _ => {}
            }
        }
        self.executor.run();
    }

    /// The reply to call `call`.
    pub fn handle_reply(&mut self, call: CallId, reply: Reply, now: Now) {
        self.advance(now);
        if let Some(waker) = self.shared.io().reply(call, reply) {
            waker.wake();
        }
        self.executor.run();
    }

    /// Something that arrived on publish stream `stream`.
    pub fn handle_stream(&mut self, stream: StreamId, item: StreamItem, now: Now) {
        self.advance(now);
        if let Some(waker) = self.shared.io().stream_item(stream, item) {
            waker.wake();
        }
        self.executor.run();
    }

    /// The time passed [`SmqBackend::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Now) {
        self.advance(now);
        self.executor.run();
    }

    /// The next thing to do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<SmqOutput> {
        self.shared.io().poll_output()
    }

    /// When to call [`SmqBackend::handle_timeout`] at the latest.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.shared.io().poll_timeout()
    }

    fn advance(&mut self, now: Now) {
        for waker in self.shared.io().advance(now) {
            waker.wake();
        }
    }
}

/// Start-up (see [`SmqBackend::new`]).
async fn start(shared: &Shared) -> Result<Vec<crate::storage::RecoveredPartition>, String> {
    let smq = &shared.smq;
    smq.wait_ready(shared.config.ready_timeout)
        .await
        .map_err(|e| e.to_string())?;
    shared.io().sleep(shared.config.startup_grace).await;
    let mappings = shared.namespaces.mappings_topic();
    smq.configure(&mappings, 1)
        .await
        .map_err(|e| e.to_string())?;
    let end = smq
        .end_offset(&mappings, 0)
        .await
        .map_err(|e| e.to_string())?;
    if end.is_none() {
        publisher::start_partition(smq, &mappings, 0, shared.config.name.clone()).await?;
    }
    super::restore::restore(shared).await
}

/// One partition's writer: performs its mutating commands in order.
async fn writer(
    tp: TopicPartition,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<StorageCommand>,
) {
    let mut publisher: Option<Jobs> = None;
    // SMQ may hold records beyond the ledger's end: after a restart that found some, and after
    // any append that did not complete (a broken stream, acks lost)
    let mut unsettled = shared.take_unsettled(&tp);
    while let Some(command) = commands.next().await {
        let token = command.token();
        let completion = match command {
            StorageCommand::CreatePartition {
                topic_partitions, ..
            } => create(&shared, &tp, topic_partitions).await,
            StorageCommand::DeletePartition { .. } => {
                publisher = None;
                let entry = LedgerEntry::Deleted {
                    partition: tp.clone(),
                };
                ledger_only(&shared, entry).await
            }
            StorageCommand::TruncateBefore { offset, .. } => {
                let entry = LedgerEntry::LogStart {
                    partition: tp.clone(),
                    offset,
                };
                ledger_only(&shared, entry).await
            }
            StorageCommand::WriteTopicConfig { entries, .. } => {
                let entry = LedgerEntry::TopicConfig {
                    topic: tp.topic.clone(),
                    entries,
                };
                ledger_only(&shared, entry).await
            }
            StorageCommand::Append { batches, .. } => {
                let p = publisher.get_or_insert_with(|| shared.publisher(&tp));
                let settled = if unsettled {
                    settle(&shared, &tp, &batches).await
                } else {
                    Ok(0)
                };
                let completion = match settled {
                    Ok(held) => append(&shared, &tp, p, batches, held).await,
                    Err(adopted) => adopted,
                };
                unsettled = !matches!(completion, StorageCompletion::Appended { .. });
                completion
            }
            StorageCommand::Read { .. } | StorageCommand::FindByTime { .. } => {
                StorageCompletion::Failed(io("reads do not go through writers"))
            }
        };
        shared.io().output(SmqOutput::Completed(token, completion));
    }
}

async fn ledger_only(shared: &Shared, entry: LedgerEntry) -> StorageCompletion {
    match shared.write_ledger(&[entry]).await {
        Ok(()) => StorageCompletion::Done,
        Err(e) => StorageCompletion::Failed(io(format!("SMQ ledger: {e}"))),
    }
}

async fn create(shared: &Shared, tp: &TopicPartition, count: i32) -> StorageCompletion {
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    let configured = {
        let _one_at_a_time = shared.configure.lock().await;
        shared.smq.configure(&topic, count).await
    };
    if let Err(e) = configured {
        return StorageCompletion::Failed(io(e));
    }
    // SMQ cannot delete data: a topic deleted in Kelp and created again would find its old records
    let mut end = shared.smq.end_offset(&topic, tp.partition).await;
    if let Ok(None) = end {
        let name = shared.config.name.clone();
        if let Err(e) = publisher::start_partition(&shared.smq, &topic, tp.partition, name).await {
            return StorageCompletion::Failed(io(e));
        }
        end = shared.smq.end_offset(&topic, tp.partition).await;
    }
    let where_ = || {
        format!(
            "SMQ topic {}/{} partition {}",
            topic.namespace, topic.name, tp.partition
        )
    };
    match end {
        Ok(Some(0)) => {}
        Ok(None) => {
            return StorageCompletion::Failed(io(format!(
                "{}: its marker record is missing",
                where_()
            )));
        }
        Ok(Some(n)) => {
            return StorageCompletion::Failed(io(format!(
                "{} already holds {n} records (SMQ cannot delete data): choose another topic name",
                where_()
            )));
        }
        Err(e) => return StorageCompletion::Failed(io(e)),
    }
    let entry = LedgerEntry::Created {
        partition: tp.clone(),
        offset: Offset(0),
    };
    ledger_only(shared, entry).await
}

/// A batch as the ledger describes it: header, base offset, size.
type BatchInfo = (BatchHeader, Offset, u64);

/// The SMQ messages of an append's batches, and what the ledger needs of each batch.
fn messages_of(
    shared: &Shared,
    tp: &TopicPartition,
    batches: &[AppendBatch],
) -> Result<(Vec<DataMessage>, Vec<BatchInfo>), crate::codec::CodecError> {
    let mut messages = Vec::new();
    let mut parsed = Vec::with_capacity(batches.len());
    let append_ts_ns = shared.append_time();
    for b in batches {
        let batch = RecordBatch::parse(b.bytes.clone())?;
        batch_messages(
            &batch,
            b.base_offset,
            tp.partition,
            append_ts_ns,
            shared.config.format,
            shared.config.max_decompressed,
            &mut messages,
        )?;
        parsed.push((batch.header().clone(), b.base_offset, b.bytes.len() as u64));
    }
    Ok((messages, parsed))
}

/// Before an append to a partition where SMQ may hold records beyond the ledger's end (see
/// `writer`), finds out without publishing anything (a publish would land behind them). Returns
/// how many first records of the append's first batch SMQ already holds (the batch is the retry
/// of one stored in part, and the append publishes only its rest), or the completion that adopts
/// whatever else SMQ holds there.
async fn settle(
    shared: &Shared,
    tp: &TopicPartition,
    batches: &[AppendBatch],
) -> Result<u64, StorageCompletion> {
    let Some(batch) = batches.first() else {
        return Ok(0);
    };
    let base = batch.base_offset;
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    let end = match shared.smq.end_offset(&topic, tp.partition).await {
        Ok(Some(end)) if end > base.0 => Offset(end),
        // nothing beyond the ledger (without an answer, the publish finds out)
        _ => return Ok(0),
    };
    let records = shared.records_to_adopt(tp, base, end).await;
    let held = cut_batch_tail(&records);
    let header = RecordBatch::parse(batch.bytes.clone())
        .ok()
        .map(|b| b.header().clone());
    let retried = records.first().and_then(|r| r.batch).is_some_and(|b| {
        header.is_some_and(|h| {
            h.producer_id >= 0
                && (
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.record_count,
                ) == (b.producer_id, b.epoch, b.base_sequence, b.records)
                && b.base_offset == base.0
        })
    });
    if retried && held == records.len() && held as i64 == end.0 - base.0 {
        tracing::info!(partition = %tp, offset = base.0, stored = held, "completing an idempotent batch SMQ holds in part with its retry");
        return Ok(held as u64);
    }
    tracing::warn!(partition = %tp, from = base.0, to = end.0, "adopting records SMQ stored without acknowledging them");
    Err(adopt(shared, tp, base, end, records).await)
}

/// Publishes an append's records and writes their ledger entries. The first `held` records are
/// in SMQ already (see [`settle`]): only the rest is published.
async fn append(
    shared: &Shared,
    tp: &TopicPartition,
    publisher: &Jobs,
    batches: Vec<AppendBatch>,
    held: u64,
) -> StorageCompletion {
    let Some(first) = batches.first().map(|b| b.base_offset) else {
        return StorageCompletion::Failed(io("empty append"));
    };
    let (mut messages, parsed) = match messages_of(shared, tp, &batches) {
        Ok(m) => m,
        Err(e) => return StorageCompletion::Failed(StorageError::Corrupt(e.to_string())),
    };
    let total = messages.len() as u64;
    let held = held.min(total);
    let start = first.plus(held as i64);
    let rest = messages.split_off(held as usize);
    let mut event = publisher::publish(publisher, Some(start.0), rest).await;
    if let PublishEvent::Failed {
        stored: 0,
        error: PublishError::OffsetMismatch { expected, assigned },
        ..
    } = event
        && expected == first.0
        && assigned < expected
    {
        // SMQ lost acknowledged records and would hand their offsets out again: fill them
        // (never with `held` records on their way: those are not acknowledged, and were they lost,
        // the batch could not be completed; `expected` is then above `first`, and the append fails)
        tracing::error!(
            partition = %tp,
            from = assigned,
            to = expected,
            "SMQ lost acknowledged records (a broker crash within its flush interval); their \
             offsets become a gap"
        );
        let ts = shared.append_time();
        let fillers = (assigned..expected).map(|_| filler_message(ts)).collect();
        if let PublishEvent::Stored { .. } =
            publisher::publish(publisher, Some(assigned), fillers).await
            && let Ok((messages, _)) = messages_of(shared, tp, &batches)
        {
            event = publisher::publish(publisher, Some(first.0), messages).await;
        }
    }
    // `published`: of the records this call sent
    let (published, ack_ts, error) = match event {
        PublishEvent::Stored { last_ack_ts_ns, .. } => (total - held, last_ack_ts_ns, None),
        PublishEvent::Failed { stored, error, .. } => (stored, 0, Some(error)),
    };
    // ledger entries for the batches stored whole (a partly stored batch is left beyond the
    // ledger's end, for its retry to complete or the next append to adopt)
    let end = start.plus(published as i64);
    let whole = parsed
        .iter()
        .take_while(|(h, base, _)| base.plus(i64::from(h.record_count)) <= end);
    let entries: Vec<LedgerEntry> = whole
        .map(|(h, base, bytes)| batch_entry(tp, h, *base, *bytes, ack_ts))
        .collect();
    if !entries.is_empty()
        && let Err(e) = shared.write_ledger(&entries).await
    {
        tracing::error!(partition = %tp, error = %e, "SMQ ledger entries not written; a restart restores these offsets without their timestamps");
    }
    // where the whole batches end (the batches are consecutive)
    let whole_end = entries.last().and_then(|e| match e {
        LedgerEntry::Batch {
            base_offset, count, ..
        } => Some(base_offset.plus(i64::from(*count))),
        _ => None,
    });
    match error {
        None => StorageCompletion::Appended {
            position: position(first),
        },
        Some(PublishError::OffsetMismatch { expected, assigned })
            if published == 0 && expected == start.0 && assigned > expected =>
        {
            // SMQ holds records beyond the ledger (stored, their acks lost): adopt them
            tracing::warn!(partition = %tp, from = first.0, to = assigned, "adopting records SMQ stored without acknowledging them");
            let records = shared.records_to_adopt(tp, first, Offset(assigned)).await;
            adopt(shared, tp, first, Offset(assigned), records).await
        }
        Some(e) => match whole_end {
            Some(whole_end) => StorageCompletion::PartlyAppended {
                position: position(first),
                records: (whole_end.0 - first.0) as u64,
            },
            None => StorageCompletion::Failed(io(e)),
        },
    }
}

/// The completion that makes records `from..end`, found in SMQ beyond the ledger, part of the log
/// (`records`: those of them that could be read).
async fn adopt(
    shared: &Shared,
    tp: &TopicPartition,
    from: Offset,
    end: Offset,
    records: Vec<KafkaRecord>,
) -> StorageCompletion {
    // The offsets are facts (SMQ assigned them): they are adopted even when the records cannot
    // be read (SMQ may burn an offset it never stores), only without their producers then.
    let entries = tail_entries(tp, &records);
    if let Err(e) = shared.write_ledger(&entries).await {
        tracing::error!(partition = %tp, error = %e, "SMQ ledger entries of adopted records not written");
    }
    let producers = entries
        .iter()
        .filter_map(|e| match e {
            LedgerEntry::Batch {
                base_offset,
                count,
                producer: Some((id, epoch, seq)),
                ..
            } => Some((*id, *epoch, *seq, *count as i32, *base_offset)),
            _ => None,
        })
        .collect();
    StorageCompletion::Diverged {
        position: position(from),
        end,
        producers,
    }
}

fn io(e: impl std::fmt::Display) -> StorageError {
    StorageError::Io(e.to_string())
}

/// Reads records `offset..end` (about `max_bytes` of them, at least one) as Kafka batches.
async fn read(
    shared: &Arc<Shared>,
    tp: &TopicPartition,
    offset: Offset,
    max_bytes: usize,
    end: Offset,
) -> Result<Bytes, StorageError> {
    if offset >= end {
        return Ok(Bytes::new());
    }
    // (raw values carry no offset to check a subscription's numbering against: FetchMessage only)
    let enriched = shared.config.format == ValueFormat::Enriched;
    if enriched
        && let Some(slots) = shared
            .cursors
            .read(shared, tp, offset, max_bytes, end)
            .await
    {
        return encode_slots(offset, &slots).map_err(io);
    }
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    let wanted = ((end.0 - offset.0) as usize).min(FETCH_MESSAGES);
    // a batch larger than `max_bytes` is read whole with a second, larger fetch
    for limit in [max_bytes.max(1), FETCH_BYTES] {
        let response = shared
            .smq
            .fetch(&topic, tp.partition, offset.0, limit, wanted)
            .await
            .map_err(io)?;
        if response.messages.is_empty() {
            return unreadable(shared, tp, offset, end).await;
        }
        let got = &response.messages[..wanted.min(response.messages.len())];
        let mut slots = slots(tp, offset, got);
        let settled = hide_cut_batches(offset, &mut slots, end);
        if settled > 0 || limit == FETCH_BYTES {
            if settled > 0 {
                slots.truncate(settled);
            } // else a batch beyond even the larger fetch: served as stored
            return encode_slots(offset, &slots).map_err(io);
        }
    }
    Ok(Bytes::new())
}

/// SMQ serves nothing at `offset`, below the end: after a broker crash weed 4.53 can hold offsets
/// it cannot read back (records lost, or re-assigned over flushed ones). Once a patient retry finds
/// nothing either, the offsets up to the next readable one are answered as a gap (an empty batch),
/// so that consumers do not ask for the same offset forever; the error log names the range.
async fn unreadable(
    shared: &Shared,
    tp: &TopicPartition,
    offset: Offset,
    end: Offset,
) -> Result<Bytes, StorageError> {
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    if !shared
        .fetch_patiently(&topic, tp.partition, offset, 1)
        .await?
        .messages
        .is_empty()
    {
        // readable after all (a partition being reloaded): the consumer asks again
        return Ok(Bytes::new());
    }
    // the next readable offset, probing 1, 2, 4, ... ahead (at most the end)
    let mut step = 1;
    let mut next = end;
    while offset.0 + step < end.0 {
        let at = offset.plus(step);
        let r = shared
            .smq
            .fetch(&topic, tp.partition, at.0, 1 << 20, 1)
            .await
            .map_err(io)?;
        if !r.messages.is_empty() {
            next = at;
            break;
        }
        step *= 2;
    }
    tracing::error!(partition = %tp, from = offset.0, to = next.0, "SMQ cannot serve these offsets below the end of the log; answered as a gap");
    encode_gap(offset, (next.0 - offset.0) as usize).map_err(io)
}

/// The records SMQ holds from `start` (see [`read_slots`]), logging misplaced ones.
fn slots(tp: &TopicPartition, start: Offset, messages: &[DataMessage]) -> Vec<Option<KafkaRecord>> {
    let (slots, misplaced) = read_slots(start, messages);
    if let Some(first) = misplaced.first() {
        tracing::warn!(partition = %tp, count = misplaced.len(), first = %first, "SMQ holds records at offsets other than theirs (from failed appends); read as gaps");
    }
    slots
}

/// The first record at or after `start` (and before `end`) with a timestamp >= `timestamp`.
async fn find_time(
    shared: &Shared,
    tp: &TopicPartition,
    timestamp: TimestampMs,
    start: Offset,
    end: Offset,
) -> Result<Option<(Offset, TimestampMs)>, StorageError> {
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    let mut at = start;
    while at < end {
        let wanted = ((end.0 - at.0) as usize).min(FETCH_MESSAGES);
        let response = shared
            .smq
            .fetch(&topic, tp.partition, at.0, 16 << 20, wanted)
            .await
            .map_err(io)?;
        if response.messages.is_empty() {
            break;
        }
        let got = &response.messages[..wanted.min(response.messages.len())];
        let mut found = slots(tp, at, got);
        hide_cut_batches(at, &mut found, end);
        if let Some(r) = found
            .into_iter()
            .flatten()
            .find(|r| r.timestamp >= timestamp)
        {
            return Ok(Some((r.offset, r.timestamp)));
        }
        at = at.plus(got.len() as i64);
    }
    Ok(None)
}
