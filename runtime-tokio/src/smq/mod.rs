//! Performs the core's storage commands on SeaweedMQ.
//!
//! The decisions live in `kelp_core::smq` (record conversion, the publish session, the ledger
//! entries and their restore); this module moves their messages over gRPC:
//! - one writer task per Kafka partition performs its mutating commands in the core's order. An
//!   append is published on the partition's publish stream ([`publisher`]), every ack checked
//!   against the offsets the ledger assigned; then its ledger entries go to
//!   `kafka-system/offset-mappings` (its own publisher), and only then does the append complete;
//! - reads and time lookups run at once as their own tasks (`FetchMessage` is stateless);
//! - [`restore`] rebuilds the partitions at start-up from the ledger topic.

pub mod client;
pub mod cursor;
pub mod publisher;
pub mod restore;

use crate::config::SmqSettings;
use crate::runtime::Rt;
use crate::storage::Completion;
use client::Smq;
use kelp_core::codec::record_batch::{BatchHeader, RecordBatch};
use kelp_core::smq::mapping::Namespaces;
use kelp_core::smq::mappings::{LedgerEntry, batch_entry, position, tail_entries};
use kelp_core::smq::messaging_pb::DataMessage;
use kelp_core::smq::publish::{PublishError, PublishEvent};
use kelp_core::smq::record::{
    KafkaRecord, ValueFormat, batch_messages, encode_gap, encode_slots, filler_message,
    hide_cut_batches, read_slots,
};
use kelp_core::storage::{
    AppendBatch, StorageCommand, StorageCompletion, StorageError, StorageToken,
};
use kelp_core::types::{Offset, TimestampMs, TopicPartition};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most messages asked of one `FetchMessage`.
const FETCH_MESSAGES: usize = 10_000;
/// Most bytes asked of one `FetchMessage`.
const FETCH_BYTES: usize = 32 << 20;
/// Attempts at writing an append's ledger entries before giving up on them.
const LEDGER_ATTEMPTS: u32 = 8;

/// What the writers share.
pub(crate) struct Shared {
    pub(crate) smq: Arc<Smq>,
    pub(crate) namespaces: Namespaces,
    pub(crate) format: ValueFormat,
    pub(crate) window: usize,
    pub(crate) max_decompressed: usize,
    /// The ledger topic's publisher.
    pub(crate) ledger: mpsc::UnboundedSender<publisher::Job>,
    /// Per partition, the subscription sequential reads go through.
    cursors: cursor::Cursors,
    /// Serialises `ConfigureTopic` calls (a topic's partitions are created together).
    configure: tokio::sync::Mutex<()>,
    /// The largest append time handed out.
    last_append_ns: std::sync::atomic::AtomicI64,
}

impl Shared {
    /// The wall clock in ns, never below a value it returned before: SMQ orders files by it.
    pub(crate) fn append_time(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let last = self
            .last_append_ns
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        now.max(last)
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
            self.smq.rt.sleep(wait).await;
            wait = (wait * 2).min(publisher::MAX_BACKOFF);
        }
        Err(last)
    }
}

/// The SMQ storage driver.
pub struct SmqStorage {
    shared: Arc<Shared>,
    writers: HashMap<TopicPartition, mpsc::UnboundedSender<StorageCommand>>,
    done: mpsc::UnboundedSender<Completion>,
}

impl SmqStorage {
    /// Connects to the broker, waits for it, restores the partitions from the ledger topic and
    /// returns the driver with what it restored.
    pub async fn start(
        rt: Rt,
        settings: &SmqSettings,
        max_decompressed: usize,
        done: mpsc::UnboundedSender<Completion>,
    ) -> Result<(SmqStorage, Vec<kelp_core::storage::RecoveredPartition>), String> {
        let smq = Arc::new(Smq::new(rt.clone(), settings.broker.clone()));
        smq.wait_ready(settings.ready_timeout)
            .await
            .map_err(|e| e.to_string())?;
        // After a crash, weed takes about 0.1 s to notice that the old process's publish streams
        // are gone and to unload their partitions. A stream opened meanwhile lands on the
        // partition being unloaded, and its first record's offset is burned (assigned, never
        // stored): a hole. So Kelp lets the broker finish before it publishes anything.
        rt.sleep(settings.startup_grace).await;
        let mappings = settings.namespaces.mappings_topic();
        smq.configure(&mappings, 1)
            .await
            .map_err(|e| e.to_string())?;
        if smq
            .end_offset(&mappings, 0)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            publisher::start_partition(&smq, &mappings, 0).await?;
        }
        let ledger = publisher::spawn(smq.clone(), mappings, 0, settings.window);
        let shared = Arc::new(Shared {
            smq,
            namespaces: settings.namespaces.clone(),
            format: settings.format,
            window: settings.window,
            max_decompressed,
            ledger,
            cursors: cursor::Cursors::default(),
            configure: tokio::sync::Mutex::new(()),
            last_append_ns: std::sync::atomic::AtomicI64::new(0),
        });
        let partitions = restore::restore(&shared).await?;
        Ok((
            SmqStorage {
                shared,
                writers: HashMap::new(),
                done,
            },
            partitions,
        ))
    }

    /// Starts `command`; its completion arrives on the channel given to [`SmqStorage::start`].
    pub fn submit(&mut self, command: StorageCommand) {
        match command {
            StorageCommand::Read {
                token,
                partition,
                offset,
                max_bytes,
                end,
                ..
            } => {
                let shared = self.shared.clone();
                let done = self.done.clone();
                self.shared.smq.rt.spawn(async move {
                    let result = read(&shared, &partition, offset, max_bytes, end).await;
                    if let Err(e) = &result {
                        tracing::warn!(%partition, offset = offset.0, error = %e, "SMQ read failed");
                    }
                    let _ = done.send((
                        token,
                        result.map_or_else(StorageCompletion::Failed, |batches| {
                            StorageCompletion::Read { batches }
                        }),
                    ));
                });
            }
            StorageCommand::FindByTime {
                token,
                partition,
                timestamp,
                from,
                end,
            } => {
                let shared = self.shared.clone();
                let done = self.done.clone();
                self.shared.smq.rt.spawn(async move {
                    let start = Offset(from.byte as i64);
                    let result = find_time(&shared, &partition, timestamp, start, end).await;
                    let _ = done.send((
                        token,
                        result.map_or_else(StorageCompletion::Failed, |hit| {
                            StorageCompletion::Found { hit }
                        }),
                    ));
                });
            }
            StorageCommand::CreatePartition { ref partition, .. }
            | StorageCommand::DeletePartition { ref partition, .. }
            | StorageCommand::Append { ref partition, .. }
            | StorageCommand::TruncateBefore { ref partition, .. }
            | StorageCommand::WriteTopicConfig { ref partition, .. } => {
                let tp = partition.clone();
                let tx = self.writers.entry(tp.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let shared = self.shared.clone();
                    shared
                        .smq
                        .rt
                        .spawn(writer(tp, shared.clone(), rx, self.done.clone()));
                    tx
                });
                let _ = tx.send(command);
            }
        }
    }
}

/// One partition's writer: performs its mutating commands in order.
async fn writer(
    tp: TopicPartition,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<StorageCommand>,
    done: mpsc::UnboundedSender<Completion>,
) {
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    let mut publisher: Option<mpsc::UnboundedSender<publisher::Job>> = None;
    while let Some(command) = commands.recv().await {
        let token: StorageToken = command.token();
        let completion = match command {
            StorageCommand::CreatePartition {
                topic_partitions, ..
            } => create(&shared, &tp, topic_partitions).await,
            StorageCommand::DeletePartition { .. } => {
                publisher = None;
                ledger_only(
                    &shared,
                    LedgerEntry::Deleted {
                        partition: tp.clone(),
                    },
                )
                .await
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
                let p = publisher.get_or_insert_with(|| {
                    publisher::spawn(
                        shared.smq.clone(),
                        topic.clone(),
                        tp.partition,
                        shared.window,
                    )
                });
                append(&shared, &tp, p, batches).await
            }
            StorageCommand::Read { .. } | StorageCommand::FindByTime { .. } => {
                StorageCompletion::Failed(StorageError::Io(
                    "reads do not go through writers".into(),
                ))
            }
        };
        let _ = done.send((token, completion));
    }
}

async fn ledger_only(shared: &Shared, entry: LedgerEntry) -> StorageCompletion {
    match shared.write_ledger(&[entry]).await {
        Ok(()) => StorageCompletion::Done,
        Err(e) => StorageCompletion::Failed(StorageError::Io(format!("SMQ ledger: {e}"))),
    }
}

async fn create(shared: &Shared, tp: &TopicPartition, count: i32) -> StorageCompletion {
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    let configured = {
        let _one_at_a_time = shared.configure.lock().await;
        shared.smq.configure(&topic, count).await
    };
    if let Err(e) = configured {
        return StorageCompletion::Failed(StorageError::Io(e.to_string()));
    }
    // SMQ cannot delete data: a topic deleted in Kelp and created again would find its old records
    let mut end = shared.smq.end_offset(&topic, tp.partition).await;
    if let Ok(None) = end {
        if let Err(e) = publisher::start_partition(&shared.smq, &topic, tp.partition).await {
            return StorageCompletion::Failed(StorageError::Io(e));
        }
        end = shared.smq.end_offset(&topic, tp.partition).await;
    }
    match end {
        Ok(Some(0)) => {}
        Ok(None) => {
            return StorageCompletion::Failed(StorageError::Io(format!(
                "SMQ topic {}/{} partition {}: its marker record is missing",
                topic.namespace, topic.name, tp.partition
            )));
        }
        Ok(Some(n)) => {
            return StorageCompletion::Failed(StorageError::Io(format!(
                "SMQ topic {}/{} partition {} already holds {n} records (SMQ cannot delete data): \
                 choose another topic name",
                topic.namespace, topic.name, tp.partition
            )));
        }
        Err(e) => return StorageCompletion::Failed(StorageError::Io(e.to_string())),
    }
    ledger_only(
        shared,
        LedgerEntry::Created {
            partition: tp.clone(),
            offset: Offset(0),
        },
    )
    .await
}

/// A batch as the ledger describes it: header, base offset, size.
type BatchInfo = (BatchHeader, Offset, u64);

/// The SMQ messages of an append's batches, and what the ledger needs of each batch.
fn messages_of(
    shared: &Shared,
    tp: &TopicPartition,
    batches: &[AppendBatch],
) -> Result<(Vec<DataMessage>, Vec<BatchInfo>), kelp_core::codec::CodecError> {
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
            shared.format,
            shared.max_decompressed,
            &mut messages,
        )?;
        parsed.push((batch.header().clone(), b.base_offset, b.bytes.len() as u64));
    }
    Ok((messages, parsed))
}

async fn append(
    shared: &Shared,
    tp: &TopicPartition,
    publisher: &mpsc::UnboundedSender<publisher::Job>,
    batches: Vec<AppendBatch>,
) -> StorageCompletion {
    let Some(first) = batches.first().map(|b| b.base_offset) else {
        return StorageCompletion::Failed(StorageError::Io("empty append".into()));
    };
    let (messages, parsed) = match messages_of(shared, tp, &batches) {
        Ok(m) => m,
        Err(e) => return StorageCompletion::Failed(StorageError::Corrupt(e.to_string())),
    };
    let total = messages.len() as u64;
    let mut event = publisher::publish(publisher, Some(first.0), messages).await;
    if let PublishEvent::Failed {
        stored: 0,
        error: PublishError::OffsetMismatch { expected, assigned },
        ..
    } = event
        && expected == first.0
        && assigned < expected
    {
        // SMQ lost acknowledged records and would hand their offsets out again: fill them
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
    let (stored, ack_ts, error) = match event {
        PublishEvent::Stored { last_ack_ts_ns, .. } => (total, last_ack_ts_ns, None),
        PublishEvent::Failed { stored, error, .. } => (stored, 0, Some(error)),
    };
    // ledger entries for the batches stored whole (a partly stored batch is left to the restore,
    // which finds its records beyond the ledger's end)
    let end = first.plus(stored as i64);
    let entries: Vec<LedgerEntry> = parsed
        .iter()
        .filter(|(h, base, _)| base.plus(i64::from(h.record_count)) <= end)
        .map(|(h, base, bytes)| batch_entry(tp, h, *base, *bytes, ack_ts))
        .collect();
    let ledger = if entries.is_empty() {
        Ok(())
    } else {
        shared.write_ledger(&entries).await
    };
    if let Err(e) = &ledger {
        tracing::error!(partition = %tp, error = %e, "SMQ ledger entries not written; a restart restores these offsets without their timestamps");
    }
    match error {
        None => StorageCompletion::Appended {
            position: position(first),
        },
        Some(PublishError::OffsetMismatch { expected, assigned })
            if stored == 0 && expected == first.0 && assigned > expected =>
        {
            // SMQ holds records beyond the ledger (stored, their acks lost): adopt them
            tracing::warn!(partition = %tp, from = expected, to = assigned, "adopting records SMQ stored without acknowledging them");
            adopt(shared, tp, first, Offset(assigned)).await
        }
        Some(e) if stored == 0 => StorageCompletion::Failed(StorageError::Io(e.to_string())),
        Some(_) => StorageCompletion::PartlyAppended {
            position: position(first),
            records: stored,
        },
    }
}

/// The completion that makes records `from..end`, found in SMQ beyond the ledger, part of the log.
async fn adopt(
    shared: &Shared,
    tp: &TopicPartition,
    from: Offset,
    end: Offset,
) -> StorageCompletion {
    // The offsets are facts (SMQ assigned them): they are adopted even when the records cannot
    // be read (SMQ may burn an offset it never stores), only without their producers then.
    let records = match read_records(shared, tp, from, end).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(partition = %tp, error = %e, "adopted records unreadable");
            Vec::new()
        }
    };
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

/// Records `from..to`, read whole (for adoption: few, right behind the ledger's end).
pub(crate) async fn read_records(
    shared: &Shared,
    tp: &TopicPartition,
    from: Offset,
    to: Offset,
) -> Result<Vec<KafkaRecord>, StorageError> {
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    let mut records = Vec::new();
    let mut at = from;
    while at < to {
        let wanted = ((to.0 - at.0) as usize).min(FETCH_MESSAGES);
        let response = fetch_patiently(shared, &topic, tp.partition, at, wanted).await?;
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

/// A fetch that waits out a partition the broker is reloading: right after a publisher leaves
/// (a restart), weed unloads and flushes the partition, and reads in between find nothing.
async fn fetch_patiently(
    shared: &Shared,
    topic: &kelp_core::smq::schema_pb::Topic,
    partition: i32,
    at: Offset,
    wanted: usize,
) -> Result<kelp_core::smq::messaging_pb::FetchMessageResponse, StorageError> {
    let mut wait = Duration::from_millis(50);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = shared
            .smq
            .fetch(topic, partition, at.0, FETCH_BYTES, wanted)
            .await
            .map_err(io)?;
        if !response.messages.is_empty() || std::time::Instant::now() >= deadline {
            return Ok(response);
        }
        shared.smq.rt.sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(800));
    }
}

fn io(e: impl std::fmt::Display) -> StorageError {
    StorageError::Io(e.to_string())
}

/// Reads records `offset..end` (about `max_bytes` of them, at least one) as Kafka batches.
async fn read(
    shared: &Shared,
    tp: &TopicPartition,
    offset: Offset,
    max_bytes: usize,
    end: Offset,
) -> Result<bytes::Bytes, StorageError> {
    if offset >= end {
        return Ok(bytes::Bytes::new());
    }
    // (raw values carry no offset to check a subscription's numbering against: FetchMessage only)
    if shared.format == ValueFormat::Enriched
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
    Ok(bytes::Bytes::new())
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
) -> Result<bytes::Bytes, StorageError> {
    let topic = shared.namespaces.smq_topic(tp.topic.as_str());
    if !fetch_patiently(shared, &topic, tp.partition, offset, 1)
        .await?
        .messages
        .is_empty()
    {
        // readable after all (a partition being reloaded): the consumer asks again
        return Ok(bytes::Bytes::new());
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
