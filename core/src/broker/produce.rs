//! Produce: validate each partition's batches, queue them on the partition, append, answer.
//!
//! Batches are checked (magic 2, length, CRC-32C, record count) and kept as the producer's bytes; the
//! storage writes each with the base offset the ledger assigns. A partition whose batches fail a
//! check gets an error code and nothing of it is written; the other partitions of the request go on.

use super::partition::{QueuedAppend, Waiter};
use super::{Gateway, Pending, PendingState, RequestKey, Slot, TokenUse};
use crate::ErrorCode;
use crate::api::ResponseBody;
use crate::api::produce::response::{PartitionProduceResponse, TopicProduceResponse};
use crate::api::produce::{ProduceRequest, ProduceResponse};
use crate::codec::KStr;
use crate::codec::record_batch::Batches;
use crate::producer::SequenceCheck;
use crate::storage::{AppendBatch, StorageCommand, StorageCompletion};
use crate::types::{Offset, TimestampMs, TopicPartition};
use bytes::Bytes;

/// A produce request waiting for its partitions' appends.
pub(crate) struct ProduceState {
    response: ProduceResponse,
    remaining: usize,
}

/// What the idempotence rules make of a partition's batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sequenced {
    /// New: append.
    Append,
    /// Stored already at this offset.
    Duplicate(Offset),
    /// A retry of a batch still on its way: (in flight?, index in that list, batch index).
    Pending((bool, usize, usize)),
    /// Refused with this code.
    Refused(ErrorCode),
}

/// Validated batches of one partition.
pub(super) struct Checked {
    batches: Vec<Bytes>,
    counts: Vec<u64>,
    /// Per batch: (producer id, epoch, first sequence) when it is idempotent.
    producers: Vec<Option<(i64, i16, i32)>>,
    bytes: u64,
    max_timestamp: TimestampMs,
}

/// Checks every batch; `max_batch_bytes` is the topic's `max.message.bytes`.
impl Checked {
    /// One batch Kelp made itself (already known to be valid).
    pub(super) fn single(batch: Bytes, records: u64, max_timestamp: TimestampMs) -> Checked {
        Checked {
            bytes: batch.len() as u64,
            batches: vec![batch],
            counts: vec![records],
            producers: vec![None],
            max_timestamp,
        }
    }
}

fn check_batches(
    records: Option<Bytes>,
    now: TimestampMs,
    max_batch_bytes: usize,
) -> Result<Checked, ErrorCode> {
    let records = records.ok_or(ErrorCode::INVALID_RECORD)?;
    let mut checked = Checked {
        batches: Vec::new(),
        counts: Vec::new(),
        producers: Vec::new(),
        bytes: 0,
        max_timestamp: TimestampMs(-1),
    };
    for batch in Batches::new(records) {
        let batch = batch.map_err(|e| e.error_code())?;
        if batch.bytes().len() > max_batch_bytes {
            return Err(ErrorCode::MESSAGE_TOO_LARGE);
        }
        let h = batch.header();
        // Kafka requires the count and the last offset delta to agree, and at least one record.
        if h.record_count < 1 || i64::from(h.record_count) != i64::from(h.last_offset_delta) + 1 {
            return Err(ErrorCode::CORRUPT_MESSAGE);
        }
        if h.attributes.control() {
            return Err(ErrorCode::INVALID_RECORD);
        }
        let ts = if h.attributes.log_append_time() {
            now
        } else {
            TimestampMs(h.max_timestamp)
        };
        checked.max_timestamp = checked.max_timestamp.max(ts);
        checked.counts.push(h.record_count as u64);
        let idempotent = h.producer_id >= 0 && h.base_sequence >= 0;
        checked.producers.push(idempotent.then_some((
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
        )));
        checked.bytes += batch.bytes().len() as u64;
        checked.batches.push(batch.bytes().clone());
    }
    if checked.batches.is_empty() {
        return Err(ErrorCode::INVALID_RECORD);
    }
    Ok(checked)
}

impl Gateway {
    pub(super) fn produce(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: ProduceRequest,
    ) -> Option<ResponseBody> {
        let acks = request.acks;
        let sync = acks == -1 && self.config.sync_on_acks_all;
        let mut response = ProduceResponse::default();
        let mut waiting = 0usize;
        let mut touched = Vec::new();
        for (ti, topic) in request.topic_data.into_iter().enumerate() {
            let name = if version >= 13 {
                self.topic_name_by_id(topic.topic_id)
            } else {
                Some(topic.name.clone())
            };
            if let Some(name) = &name
                && version < 13
            {
                self.ensure_topic_for_produce(name);
            }
            let mut tr = TopicProduceResponse {
                name: topic.name,
                topic_id: topic.topic_id,
                ..Default::default()
            };
            for (pi, part) in topic.partition_data.into_iter().enumerate() {
                let mut pr = PartitionProduceResponse {
                    index: part.index,
                    base_offset: -1,
                    ..Default::default()
                };
                let exists = name
                    .as_ref()
                    .is_some_and(|n| self.partition_exists(n, part.index));
                let result = if !matches!(acks, -1..=1) {
                    Err(ErrorCode::INVALID_REQUIRED_ACKS)
                } else if !exists {
                    Err(if version >= 13 {
                        ErrorCode::UNKNOWN_TOPIC_ID
                    } else {
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                    })
                } else {
                    let max = name
                        .as_ref()
                        .and_then(|n| self.topics.get(n))
                        .map_or(usize::MAX, |t| t.config.max_message_bytes());
                    check_batches(part.records, self.now.wall, max)
                };
                match (result, &name) {
                    (Ok(checked), Some(name)) => {
                        let tp = TopicPartition {
                            topic: name.clone(),
                            partition: part.index,
                        };
                        match self.sequence_check(&tp, &checked) {
                            Sequenced::Append => {
                                let waiter = (acks != 0).then_some(Waiter::Produce(key, (ti, pi)));
                                self.queue_append(&tp, waiter, checked, sync);
                                touched.push(tp);
                                waiting += usize::from(acks != 0);
                            }
                            // Stored before (a retry): the original offset, nothing appended.
                            Sequenced::Duplicate(offset) => {
                                pr.base_offset = offset.0;
                                pr.log_start_offset = self
                                    .partition(&tp)
                                    .map_or(-1, |p| p.ledger.log_start_offset().0);
                            }
                            // A retry of a batch still on its way to storage: answered with it.
                            Sequenced::Pending(at) => {
                                if acks != 0
                                    && let Some(p) = self.partition_mut(&tp)
                                {
                                    let q = if at.0 {
                                        &mut p.in_flight[at.1]
                                    } else {
                                        &mut p.queued[at.1]
                                    };
                                    q.duplicates.push((key, (ti, pi), at.2));
                                    waiting += 1;
                                }
                            }
                            Sequenced::Refused(code) => pr.error_code = code.0,
                        }
                    }
                    (Err(code), _) => pr.error_code = code.0,
                    // `exists` implies a name; kept total for the compiler.
                    (Ok(_), None) => pr.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                }
                tr.partition_responses.push(pr);
            }
            response.responses.push(tr);
        }
        for tp in touched {
            self.pump(&tp);
        }
        if acks == 0 {
            // acks=0: Kafka sends no response at all.
            self.finish(key, frame_len, None);
            return None;
        }
        if waiting == 0 {
            return Some(ResponseBody::Produce(response));
        }
        let state = ProduceState {
            response,
            remaining: waiting,
        };
        self.pending.insert(
            key,
            Pending {
                correlation_id,
                version,
                frame_len,
                state: PendingState::Produce(state),
            },
        );
        None
    }

    fn ensure_topic_for_produce(&mut self, name: &KStr) {
        if !self.topics.contains_key(name)
            && self.config.auto_create_topics
            && super::admin::valid_topic_name(name)
        {
            self.auto_create_topic(name, self.config.default_partitions.max(1));
        }
    }

    pub(super) fn queue_append(
        &mut self,
        tp: &TopicPartition,
        waiter: Option<Waiter>,
        checked: Checked,
        sync: bool,
    ) {
        if let Some(p) = self.partition_mut(tp) {
            p.queued.push(QueuedAppend {
                waiter,
                batches: checked.batches,
                counts: checked.counts,
                bytes: checked.bytes,
                max_timestamp: checked.max_timestamp,
                sync,
                base_offset: None,
                producers: checked.producers,
                duplicates: Vec::new(),
            });
        }
    }

    /// Applies the idempotent producer's sequence rules (see [`crate::producer`]) to a partition's
    /// batches against what is stored and what is on its way to storage.
    fn sequence_check(&self, tp: &TopicPartition, checked: &Checked) -> Sequenced {
        let Some(p) = self.partition(tp) else {
            return Sequenced::Append;
        };
        if checked.producers.iter().all(Option::is_none) {
            return Sequenced::Append;
        }
        let mut verdicts = Vec::new();
        let mut accepted: Vec<(i64, i16, i32, i32)> = Vec::new();
        for (b, producer) in checked.producers.iter().enumerate() {
            let Some((pid, epoch, first)) = *producer else {
                verdicts.push(Sequenced::Append);
                continue;
            };
            let count = checked.counts[b] as i32;
            let last = crate::producer::last_sequence(first, count);
            // Batches of this producer already accepted, oldest first: stored-but-unanswered
            // (in flight), then queued, then earlier batches of this very request.
            let mut pending: Vec<(i16, i32, i32)> = Vec::new();
            let mut pending_at = None;
            for (in_flight, list) in [(true, &p.in_flight), (false, &p.queued)] {
                for (qi, q) in list.iter().enumerate() {
                    for (bi, info) in q.producers.iter().enumerate() {
                        if let Some((qpid, qepoch, qfirst)) = *info
                            && qpid == pid
                        {
                            let qlast = crate::producer::last_sequence(qfirst, q.counts[bi] as i32);
                            if qepoch == epoch && qfirst == first && qlast == last {
                                pending_at = Some((in_flight, qi, bi));
                            }
                            pending.push((qepoch, qfirst, qlast));
                        }
                    }
                }
            }
            pending.extend(
                accepted
                    .iter()
                    .filter(|a| a.0 == pid)
                    .map(|a| (a.1, a.2, a.3)),
            );
            if let Some(at) = pending_at {
                verdicts.push(Sequenced::Pending(at));
                continue;
            }
            let verdict = match p.producers.check(pid, epoch, first, count, &pending) {
                SequenceCheck::Accept => {
                    accepted.push((pid, epoch, first, last));
                    Sequenced::Append
                }
                SequenceCheck::Duplicate(offset) => Sequenced::Duplicate(offset),
                SequenceCheck::OutOfOrder => {
                    Sequenced::Refused(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
                }
                SequenceCheck::Fenced => Sequenced::Refused(ErrorCode::INVALID_PRODUCER_EPOCH),
            };
            verdicts.push(verdict);
        }
        match verdicts.as_slice() {
            [one] => *one,
            many if many.iter().all(|v| *v == Sequenced::Append) => Sequenced::Append,
            // Several batches of one partition in one request, not all new: Kafka producers never
            // send that; refuse rather than half-append.
            many => many
                .iter()
                .copied()
                .find(|v| matches!(v, Sequenced::Refused(_)))
                .unwrap_or(Sequenced::Refused(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)),
        }
    }

    /// Sends everything queued on the partition as one append, unless an append is in flight.
    pub(super) fn pump(&mut self, tp: &TopicPartition) {
        let Some(p) = self.partition_mut(tp) else {
            return;
        };
        if p.ledger.append_in_flight() || p.queued.is_empty() {
            return;
        }
        let mut group = std::mem::take(&mut p.queued);
        let records: u64 = group.iter().map(QueuedAppend::records).sum();
        let bytes: u64 = group.iter().map(|q| q.bytes).sum();
        let max_ts = group
            .iter()
            .map(|q| q.max_timestamp)
            .max()
            .unwrap_or(TimestampMs(-1));
        let sync = group.iter().any(|q| q.sync);
        let Ok(mut next) = p.ledger.begin_append(records, bytes, max_ts) else {
            return;
        };
        let mut batches = Vec::new();
        for q in &mut group {
            q.base_offset = Some(next);
            for (b, n) in q.batches.iter().zip(&q.counts) {
                batches.push(AppendBatch {
                    base_offset: next,
                    bytes: b.clone(),
                });
                next = next.plus(*n as i64);
            }
        }
        p.in_flight = group;
        let token = self.token(TokenUse::Append(tp.clone()));
        self.storage(StorageCommand::Append {
            token,
            partition: tp.clone(),
            batches,
            sync,
        });
    }

    pub(super) fn append_done(&mut self, tp: TopicPartition, done: StorageCompletion) {
        let Some(p) = self.partition_mut(&tp) else {
            return;
        };
        let group = std::mem::take(&mut p.in_flight);
        // Offsets below `stored_end` are stored: a produce part is answered with success when all
        // of it is below.
        let hw_before = p.ledger.high_watermark();
        let (result, stored_end) = match done {
            StorageCompletion::Appended { position } => match p.ledger.complete_append(position) {
                Ok(_) => (Ok(p.ledger.log_start_offset()), p.ledger.high_watermark()),
                Err(_) => (Err(ErrorCode::UNKNOWN_SERVER_ERROR), Offset(-1)),
            },
            StorageCompletion::PartlyAppended { position, records } => {
                // The stored prefix stays (readers may see it); the rest fails, retriably.
                let _ = p.ledger.complete_partial(records, position);
                (
                    Err(ErrorCode::KAFKA_STORAGE_ERROR),
                    p.ledger.high_watermark(),
                )
            }
            StorageCompletion::Diverged {
                position,
                end,
                producers,
            } => {
                // Nothing of this append is stored, but the log is longer than the ledger knew.
                let _ = p.ledger.abort_and_adopt(end, position);
                for (pid, epoch, first, count, base) in producers {
                    p.producers.record(pid, epoch, first, count, base);
                }
                (Err(ErrorCode::KAFKA_STORAGE_ERROR), Offset(-1))
            }
            _ => {
                // The write failed: no offset is kept, and the producer may retry.
                let _ = p.ledger.abort_append();
                (Err(ErrorCode::KAFKA_STORAGE_ERROR), Offset(-1))
            }
        };
        let watchers = if p.ledger.high_watermark() > hw_before {
            std::mem::take(&mut p.watchers)
        } else {
            Vec::new()
        };
        let log_start = self
            .partition(&tp)
            .map_or(Offset(-1), |p| p.ledger.log_start_offset());
        for q in group {
            // Each batch's base offset, in order.
            let bases: Vec<Offset> = q
                .counts
                .iter()
                .scan(q.base_offset.unwrap_or_default(), |next, n| {
                    let base = *next;
                    *next = next.plus(*n as i64);
                    Some(base)
                })
                .collect();
            let end = q.base_offset.unwrap_or_default().plus(q.records() as i64);
            let result = match result {
                Err(_) if end <= stored_end => Ok(log_start),
                r => r,
            };
            if let Some(p) = self.partition_mut(&tp) {
                for ((info, count), base) in q.producers.iter().zip(&q.counts).zip(&bases) {
                    if let Some((pid, epoch, first)) = *info
                        && base.plus(*count as i64) <= stored_end
                    {
                        p.producers.record(pid, epoch, first, *count as i32, *base);
                    }
                }
            }
            for (key, slot, batch) in &q.duplicates {
                let base = bases.get(*batch).copied().unwrap_or_default();
                let stored = q
                    .counts
                    .get(*batch)
                    .is_some_and(|n| base.plus(*n as i64) <= stored_end);
                let outcome = if stored {
                    Ok((base, log_start))
                } else {
                    result.map(|_| (base, log_start))
                };
                self.produce_part_done(*key, *slot, outcome);
            }
            match q.waiter {
                Some(Waiter::Produce(key, slot)) => {
                    let outcome =
                        result.map(|log_start| (q.base_offset.unwrap_or_default(), log_start));
                    self.produce_part_done(key, slot, outcome);
                }
                Some(Waiter::GroupWrite(key)) => self.group_write_done(key, result.is_ok()),
                None => {}
            }
        }
        for key in watchers {
            self.rerun_fetch(key);
        }
        self.pump(&tp);
    }

    /// Fills one partition's answer; answers the request when it was the last.
    pub(super) fn produce_part_done(
        &mut self,
        key: RequestKey,
        slot: Slot,
        outcome: Result<(Offset, Offset), ErrorCode>,
    ) {
        let Some(mut pending) = self.pending.remove(&key) else {
            return;
        };
        let PendingState::Produce(state) = &mut pending.state else {
            self.pending.insert(key, pending);
            return;
        };
        if let Some(pr) = state
            .response
            .responses
            .get_mut(slot.0)
            .and_then(|t| t.partition_responses.get_mut(slot.1))
        {
            match outcome {
                Ok((base, log_start)) => {
                    pr.base_offset = base.0;
                    pr.log_start_offset = log_start.0;
                }
                Err(code) => pr.error_code = code.0,
            }
        }
        state.remaining = state.remaining.saturating_sub(1);
        if state.remaining > 0 {
            self.pending.insert(key, pending);
            return;
        }
        let PendingState::Produce(state) = pending.state else {
            return;
        };
        self.respond(
            key,
            pending.correlation_id,
            pending.version,
            pending.frame_len,
            ResponseBody::Produce(state.response),
        );
    }
}
