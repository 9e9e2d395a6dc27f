//! The offset ledger's entries in `kafka-system/offset-mappings`, and the restore from them.
//!
//! SMQ keeps records and their offsets; Kelp keeps, in one single-partition SMQ topic of its own,
//! what a Kafka broker also knows about them: per produced batch its base offset, record count,
//! first and largest timestamps, size and idempotent producer, written (and acknowledged by the
//! broker) before the produce is answered; and the partition-level facts: created (at which
//! offset), deleted, log start moved, topic config set. Every entry is a `schema_pb.RecordValue`
//! (field `kind` names it), so SMQ's own tools can read the ledger too.
//!
//! At start-up the runtime reads the topic from the beginning into a [`Restore`], asks the broker for
//! each partition's high watermark (`GetPartitionRangeInfo`) and lets [`Restore::reconcile`] compare:
//! equal is the normal case; SMQ ahead means records were published whose produce was never
//! answered (a crash in between): the runtime reads just those records and adds an entry for them
//! ([`tail_entries`]), since they are in SMQ at those offsets and a reader would see them; SMQ behind
//! means the broker lost acknowledged records (it checkpoints offsets apart from data), which Kelp
//! reports and refuses to paper over, since the next appends would be given offsets already used.

use super::messaging_pb::DataMessage;
use super::record::{KafkaRecord, ms_to_ns};
use super::schema_pb::{ListValue, RecordValue, Value, value::Kind};
use crate::codec::KStr;
use crate::codec::record_batch::BatchHeader;
use crate::ledger::OffsetLedger;
use crate::producer::ProducerHistory;
use crate::storage::RecoveredPartition;
use crate::types::{LogPosition, Offset, TimestampMs, TopicPartition};
use bytes::Bytes;
use prost::Message;
use std::collections::{BTreeMap, HashMap};

/// An idempotent producer's part in a batch: (producer id, epoch, first sequence).
pub type ProducerBatch = (i64, i16, i32);

/// One entry of the ledger topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerEntry {
    /// The partition exists; its first offset is `offset` (0 unless SMQ held older data).
    Created {
        /// The partition.
        partition: TopicPartition,
        /// Its first offset.
        offset: Offset,
    },
    /// A produced batch, stored in SMQ at `base_offset..base_offset + count`.
    Batch {
        /// The partition.
        partition: TopicPartition,
        /// Its first record's offset.
        base_offset: Offset,
        /// Records in it.
        count: u32,
        /// Its first record's timestamp (ns).
        first_ts_ns: i64,
        /// Its largest record timestamp (ns).
        last_ts_ns: i64,
        /// The broker's ack timestamp of its last record.
        smq_ts_ns: i64,
        /// Its size as a Kafka batch (for retention by size).
        bytes: u64,
        /// Its idempotent producer, if any.
        producer: Option<ProducerBatch>,
    },
    /// Records before `offset` are gone (DeleteRecords, retention).
    LogStart {
        /// The partition.
        partition: TopicPartition,
        /// The new log start offset.
        offset: Offset,
    },
    /// The partition was deleted (its data stays in SMQ, which cannot delete it).
    Deleted {
        /// The partition.
        partition: TopicPartition,
    },
    /// A topic's explicitly set configuration, replacing what was set before.
    TopicConfig {
        /// The topic.
        topic: KStr,
        /// (name, value) pairs.
        entries: Vec<(String, String)>,
    },
}

/// A ledger message that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreadable offset-mappings entry: {0}")]
pub struct EntryError(pub String);

fn v(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

fn s(text: &str) -> Value {
    v(Kind::StringValue(text.to_string()))
}

struct Fields(HashMap<String, Value>);

impl Fields {
    fn new(kind: &str) -> Fields {
        let mut f = HashMap::new();
        f.insert("kind".to_string(), s(kind));
        Fields(f)
    }

    fn put(mut self, name: &str, value: Value) -> Fields {
        self.0.insert(name.to_string(), value);
        self
    }

    fn partition(self, tp: &TopicPartition) -> Fields {
        self.put("topic", s(tp.topic.as_str()))
            .put("partition", v(Kind::Int32Value(tp.partition)))
    }

    fn str(&self, name: &str) -> Result<&str, EntryError> {
        match self.0.get(name).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(s)) => Ok(s),
            _ => Err(EntryError(format!("no string field {name}"))),
        }
    }

    fn i64(&self, name: &str) -> Result<i64, EntryError> {
        match self.0.get(name).and_then(|v| v.kind.as_ref()) {
            Some(Kind::Int64Value(n)) => Ok(*n),
            Some(Kind::Int32Value(n)) => Ok(i64::from(*n)),
            _ => Err(EntryError(format!("no integer field {name}"))),
        }
    }

    fn tp(&self) -> Result<TopicPartition, EntryError> {
        Ok(TopicPartition {
            topic: KStr::from(self.str("topic")?.to_string()),
            partition: i32::try_from(self.i64("partition")?)
                .map_err(|_| EntryError("partition out of range".into()))?,
        })
    }
}

impl LedgerEntry {
    /// The entry as an SMQ message (key: the topic, so SMQ tools can tell entries apart).
    pub fn to_message(&self, ts_ns: i64) -> DataMessage {
        let (key, fields) = match self {
            LedgerEntry::Created { partition, offset } => (
                &partition.topic,
                Fields::new("created")
                    .partition(partition)
                    .put("offset", v(Kind::Int64Value(offset.0))),
            ),
            LedgerEntry::Batch {
                partition,
                base_offset,
                count,
                first_ts_ns,
                last_ts_ns,
                smq_ts_ns,
                bytes,
                producer,
            } => {
                let mut f = Fields::new("batch")
                    .partition(partition)
                    .put("base_offset", v(Kind::Int64Value(base_offset.0)))
                    .put("count", v(Kind::Int64Value(i64::from(*count))))
                    .put("first_ts_ns", v(Kind::Int64Value(*first_ts_ns)))
                    .put("last_ts_ns", v(Kind::Int64Value(*last_ts_ns)))
                    .put("smq_ts_ns", v(Kind::Int64Value(*smq_ts_ns)))
                    .put("bytes", v(Kind::Int64Value(*bytes as i64)));
                if let Some((id, epoch, seq)) = producer {
                    f = f
                        .put("producer_id", v(Kind::Int64Value(*id)))
                        .put("producer_epoch", v(Kind::Int32Value(i32::from(*epoch))))
                        .put("base_sequence", v(Kind::Int32Value(*seq)));
                }
                (&partition.topic, f)
            }
            LedgerEntry::LogStart { partition, offset } => (
                &partition.topic,
                Fields::new("log_start")
                    .partition(partition)
                    .put("offset", v(Kind::Int64Value(offset.0))),
            ),
            LedgerEntry::Deleted { partition } => (
                &partition.topic,
                Fields::new("deleted").partition(partition),
            ),
            LedgerEntry::TopicConfig { topic, entries } => {
                let values = entries
                    .iter()
                    .map(|(name, value)| {
                        let mut f = HashMap::new();
                        f.insert("name".to_string(), s(name));
                        f.insert("value".to_string(), s(value));
                        v(Kind::RecordValue(RecordValue { fields: f }))
                    })
                    .collect();
                (
                    topic,
                    Fields::new("topic_config")
                        .put("topic", s(topic.as_str()))
                        .put("configs", v(Kind::ListValue(ListValue { values }))),
                )
            }
        };
        DataMessage {
            key: Bytes::from(key.as_str().to_string()),
            value: Bytes::from(RecordValue { fields: fields.0 }.encode_to_vec()),
            ts_ns,
            ctrl: None,
        }
    }

    /// Reads an entry back.
    pub fn from_message(message: &DataMessage) -> Result<LedgerEntry, EntryError> {
        let rv = RecordValue::decode(message.value.clone())
            .map_err(|e| EntryError(format!("not a RecordValue: {e}")))?;
        let f = Fields(rv.fields);
        Ok(match f.str("kind")? {
            "created" => LedgerEntry::Created {
                partition: f.tp()?,
                offset: Offset(f.i64("offset")?),
            },
            "batch" => LedgerEntry::Batch {
                partition: f.tp()?,
                base_offset: Offset(f.i64("base_offset")?),
                count: u32::try_from(f.i64("count")?)
                    .map_err(|_| EntryError("count out of range".into()))?,
                first_ts_ns: f.i64("first_ts_ns")?,
                last_ts_ns: f.i64("last_ts_ns")?,
                smq_ts_ns: f.i64("smq_ts_ns")?,
                bytes: f.i64("bytes")?.max(0) as u64,
                producer: match f.i64("producer_id") {
                    Ok(id) => Some((
                        id,
                        f.i64("producer_epoch")? as i16,
                        f.i64("base_sequence")? as i32,
                    )),
                    Err(_) => None,
                },
            },
            "log_start" => LedgerEntry::LogStart {
                partition: f.tp()?,
                offset: Offset(f.i64("offset")?),
            },
            "deleted" => LedgerEntry::Deleted { partition: f.tp()? },
            "topic_config" => {
                let entries = match f.0.get("configs").and_then(|v| v.kind.as_ref()) {
                    Some(Kind::ListValue(list)) => list
                        .values
                        .iter()
                        .filter_map(|v| match &v.kind {
                            Some(Kind::RecordValue(r)) => {
                                let r = Fields(r.fields.clone());
                                Some((
                                    r.str("name").ok()?.to_string(),
                                    r.str("value").ok()?.to_string(),
                                ))
                            }
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                LedgerEntry::TopicConfig {
                    topic: KStr::from(f.str("topic")?.to_string()),
                    entries,
                }
            }
            other => return Err(EntryError(format!("unknown kind {other}"))),
        })
    }
}

/// The ledger entry of one appended Kafka batch.
pub fn batch_entry(
    partition: &TopicPartition,
    header: &BatchHeader,
    base_offset: Offset,
    bytes: u64,
    smq_ts_ns: i64,
) -> LedgerEntry {
    LedgerEntry::Batch {
        partition: partition.clone(),
        base_offset,
        count: header.record_count.max(0) as u32,
        first_ts_ns: ms_to_ns(header.base_timestamp),
        last_ts_ns: ms_to_ns(header.max_timestamp),
        smq_ts_ns,
        bytes,
        producer: (header.producer_id >= 0).then_some((
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        )),
    }
}

/// The entries for records found in SMQ beyond the ledger's end (`records` consecutive from it):
/// one per idempotent batch that is there whole (so that its producer's retry is answered as a
/// duplicate), one per run of other records (plain producers, batches cut short).
pub fn tail_entries(partition: &TopicPartition, records: &[KafkaRecord]) -> Vec<LedgerEntry> {
    let mut entries = Vec::new();
    let mut rest = records;
    while let Some(first) = rest.first() {
        let whole = first.batch.filter(|b| {
            b.base_offset == first.offset.0
                && b.records > 0
                && rest.len() >= b.records as usize
                && rest[..b.records as usize]
                    .iter()
                    .all(|r| r.batch == Some(*b))
        });
        let n = match whole {
            Some(b) => b.records as usize,
            None => {
                1 + rest[1..]
                    .iter()
                    .take_while(|r| r.batch.is_none_or(|b| b.base_offset != r.offset.0))
                    .count()
            }
        };
        let (run, tail) = rest.split_at(n);
        rest = tail;
        let bytes = run
            .iter()
            .map(|r| {
                let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
                (len(&r.key) + len(&r.value) + 16) as u64
            })
            .sum();
        entries.push(LedgerEntry::Batch {
            partition: partition.clone(),
            base_offset: first.offset,
            count: run.len() as u32,
            first_ts_ns: ms_to_ns(first.timestamp.0),
            last_ts_ns: ms_to_ns(run.iter().map(|r| r.timestamp.0).max().unwrap_or(0)),
            smq_ts_ns: 0,
            bytes,
            producer: whole.map(|b| (b.producer_id, b.epoch, b.base_sequence)),
        });
    }
    entries
}

/// How many of `records` (consecutive, found beyond the ledger's end) at their end are the first
/// records of an idempotent batch whose rest SMQ does not hold: a publish cut short inside it (a
/// crash, a broken stream). Their produce was never answered, so the producer retries the whole
/// batch; held back from the log, the retry can complete the batch at the same offsets instead of
/// leaving them as a gap and writing the batch again after it.
pub fn cut_batch_tail(records: &[KafkaRecord]) -> usize {
    let Some(batch) = records.last().and_then(|r| r.batch) else {
        return 0;
    };
    let run = records
        .iter()
        .rev()
        .take_while(|r| r.batch == Some(batch))
        .count();
    let first = &records[records.len() - run];
    let consecutive = records[records.len() - run..]
        .iter()
        .enumerate()
        .all(|(k, r)| r.offset.0 == batch.base_offset + k as i64);
    if first.offset.0 == batch.base_offset && consecutive && (run as i64) < i64::from(batch.records)
    {
        run
    } else {
        0
    }
}

/// The position the SMQ backend gives an offset: SMQ reads by offset, so the offset itself.
pub fn position(offset: Offset) -> LogPosition {
    LogPosition {
        segment: Offset(0),
        byte: offset.0.max(0) as u64,
    }
}

#[derive(Default)]
struct PartitionRestore {
    ledger: OffsetLedger,
    producers: ProducerHistory,
}

/// How a partition's ledger compares with what SMQ holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reconcile {
    /// The ledger ends where SMQ does.
    Consistent,
    /// SMQ holds `from..to` that no entry maps: read them and add their [`tail_entries`].
    UnmappedTail {
        /// The ledger's end.
        from: Offset,
        /// SMQ's high watermark.
        to: Offset,
    },
    /// SMQ ends before the ledger: the broker lost acknowledged records.
    Rewound {
        /// The ledger's end.
        ledger_end: Offset,
        /// SMQ's high watermark.
        smq_end: Offset,
    },
}

/// The state rebuilt from the ledger topic.
#[derive(Default)]
pub struct Restore {
    partitions: BTreeMap<TopicPartition, PartitionRestore>,
    configs: BTreeMap<KStr, Vec<(String, String)>>,
    /// Entries applied.
    pub entries: u64,
    /// Batch entries that overlapped what was already mapped (written twice) and were skipped.
    pub skipped: u64,
}

impl Restore {
    /// Applies the next entry of the ledger topic.
    pub fn apply(&mut self, entry: LedgerEntry) {
        self.entries += 1;
        match entry {
            LedgerEntry::Created { partition, offset } => {
                let p = PartitionRestore {
                    ledger: OffsetLedger::restore(offset, offset, Vec::new()),
                    ..Default::default()
                };
                self.partitions.insert(partition, p);
            }
            LedgerEntry::Batch {
                partition,
                base_offset,
                count,
                last_ts_ns,
                bytes,
                producer,
                ..
            } => {
                let p = self.partitions.entry(partition).or_default();
                let end = p.ledger.high_watermark();
                if base_offset < end {
                    self.skipped += 1;
                    return;
                }
                if base_offset > end {
                    // records no entry maps (an entry lost with its writer): keep offsets dense
                    let gap = (base_offset.0 - end.0) as u64;
                    let _ = p.ledger.begin_append(gap, 0, TimestampMs(-1));
                    let _ = p.ledger.complete_append(position(end));
                }
                let max_ts = TimestampMs(last_ts_ns / 1_000_000);
                let _ = p.ledger.begin_append(u64::from(count), bytes, max_ts);
                let _ = p.ledger.complete_append(position(base_offset));
                if let Some((id, epoch, seq)) = producer {
                    p.producers
                        .record(id, epoch, seq, count as i32, base_offset);
                }
            }
            LedgerEntry::LogStart { partition, offset } => {
                if let Some(p) = self.partitions.get_mut(&partition) {
                    p.ledger.advance_log_start(offset);
                }
            }
            LedgerEntry::Deleted { partition } => {
                self.partitions.remove(&partition);
                if partition.partition == 0 {
                    self.configs.remove(&partition.topic);
                }
            }
            LedgerEntry::TopicConfig { topic, entries } => {
                self.configs.insert(topic, entries);
            }
        }
    }

    /// The partitions restored.
    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.partitions.keys()
    }

    /// Where the ledger of `partition` ends.
    pub fn end(&self, partition: &TopicPartition) -> Option<Offset> {
        self.partitions
            .get(partition)
            .map(|p| p.ledger.high_watermark())
    }

    /// Compares the ledger of `partition` with SMQ's high watermark.
    pub fn reconcile(&self, partition: &TopicPartition, smq_high_watermark: i64) -> Reconcile {
        let end = self.end(partition).unwrap_or_default();
        let smq = Offset(smq_high_watermark);
        match smq.cmp(&end) {
            std::cmp::Ordering::Equal => Reconcile::Consistent,
            std::cmp::Ordering::Greater => Reconcile::UnmappedTail { from: end, to: smq },
            std::cmp::Ordering::Less => Reconcile::Rewound {
                ledger_end: end,
                smq_end: smq,
            },
        }
    }

    /// The partitions as the gateway takes them.
    pub fn finish(self) -> Vec<RecoveredPartition> {
        let mut configs = self.configs;
        self.partitions
            .into_iter()
            .map(|(tp, p)| RecoveredPartition {
                topic_config: if tp.partition == 0 {
                    configs.remove(&tp.topic).unwrap_or_default()
                } else {
                    Vec::new()
                },
                log_start_offset: p.ledger.log_start_offset(),
                next_offset: p.ledger.high_watermark(),
                index: p.ledger.index_entries().to_vec(),
                producers: p.producers,
                partition: tp,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: KStr::from("orders"),
            partition: p,
        }
    }

    fn batch(p: i32, base: i64, count: u32, ts_ms: i64) -> LedgerEntry {
        LedgerEntry::Batch {
            partition: tp(p),
            base_offset: Offset(base),
            count,
            first_ts_ns: ts_ms * 1_000_000,
            last_ts_ns: (ts_ms + 5) * 1_000_000,
            smq_ts_ns: 1,
            bytes: 100,
            producer: Some((7, 0, base as i32)),
        }
    }

    #[test]
    fn every_entry_kind_survives_its_message() {
        let entries = vec![
            LedgerEntry::Created {
                partition: tp(0),
                offset: Offset(0),
            },
            batch(0, 0, 3, 1000),
            match batch(1, 4, 1, 2) {
                LedgerEntry::Batch {
                    partition,
                    base_offset,
                    count,
                    first_ts_ns,
                    last_ts_ns,
                    smq_ts_ns,
                    bytes,
                    ..
                } => LedgerEntry::Batch {
                    partition,
                    base_offset,
                    count,
                    first_ts_ns,
                    last_ts_ns,
                    smq_ts_ns,
                    bytes,
                    producer: None,
                },
                other => other,
            },
            LedgerEntry::LogStart {
                partition: tp(0),
                offset: Offset(2),
            },
            LedgerEntry::Deleted { partition: tp(1) },
            LedgerEntry::TopicConfig {
                topic: KStr::from("orders"),
                entries: vec![("retention.ms".into(), "1000".into())],
            },
        ];
        for e in entries {
            let m = e.to_message(5);
            assert_eq!(m.key, Bytes::from_static(b"orders"));
            assert_eq!(LedgerEntry::from_message(&m), Ok(e));
        }
        let junk = DataMessage {
            value: Bytes::from_static(b"\x0a\x02zz"),
            ..Default::default()
        };
        assert!(LedgerEntry::from_message(&junk).is_err());
    }

    #[test]
    fn restore_rebuilds_ledger_index_producers_and_configs() {
        let mut r = Restore::default();
        r.apply(LedgerEntry::Created {
            partition: tp(0),
            offset: Offset(0),
        });
        r.apply(LedgerEntry::Created {
            partition: tp(1),
            offset: Offset(0),
        });
        for k in 0..100 {
            r.apply(batch(0, k * 10, 10, 1000 + k));
        }
        r.apply(batch(0, 990, 10, 5000)); // written twice (a retried ledger write)
        r.apply(LedgerEntry::LogStart {
            partition: tp(0),
            offset: Offset(500),
        });
        r.apply(LedgerEntry::TopicConfig {
            topic: KStr::from("orders"),
            entries: vec![("retention.ms".into(), "5".into())],
        });
        assert_eq!(r.skipped, 1);
        assert_eq!(r.reconcile(&tp(0), 1000), Reconcile::Consistent);
        assert_eq!(
            r.reconcile(&tp(0), 1003),
            Reconcile::UnmappedTail {
                from: Offset(1000),
                to: Offset(1003)
            }
        );
        assert_eq!(
            r.reconcile(&tp(1), -0),
            Reconcile::Consistent,
            "an empty partition"
        );
        assert_eq!(
            r.reconcile(&tp(0), 990),
            Reconcile::Rewound {
                ledger_end: Offset(1000),
                smq_end: Offset(990)
            }
        );
        let parts = r.finish();
        assert_eq!(parts.len(), 2);
        let p0 = &parts[0];
        assert_eq!(
            (p0.log_start_offset, p0.next_offset),
            (Offset(500), Offset(1000))
        );
        assert_eq!(
            p0.topic_config,
            vec![("retention.ms".to_string(), "5".to_string())]
        );
        assert!(
            !p0.index.is_empty() && p0.index.len() < 100,
            "a sparse index"
        );
        assert_eq!(p0.producers.len(), 1);
        // the ledger built from the entries answers time lookups
        let ledger = OffsetLedger::restore(p0.log_start_offset, p0.next_offset, p0.index.clone());
        assert!(ledger.position_for_time(TimestampMs(1090)).is_some());
        assert!(ledger.position_for_time(TimestampMs(6000)).is_none());
        assert!(parts[1].topic_config.is_empty());
    }

    #[test]
    fn deletion_forgets_and_recreation_starts_where_smq_is() {
        let mut r = Restore::default();
        r.apply(LedgerEntry::Created {
            partition: tp(0),
            offset: Offset(0),
        });
        r.apply(batch(0, 0, 5, 1));
        r.apply(LedgerEntry::Deleted { partition: tp(0) });
        assert_eq!(r.partitions().count(), 0);
        r.apply(LedgerEntry::Created {
            partition: tp(0),
            offset: Offset(5),
        });
        r.apply(batch(0, 5, 2, 1));
        let parts = r.finish();
        assert_eq!(
            (parts[0].log_start_offset, parts[0].next_offset),
            (Offset(5), Offset(7))
        );
    }

    #[test]
    fn a_gap_between_entries_keeps_offsets_dense() {
        let mut r = Restore::default();
        r.apply(LedgerEntry::Created {
            partition: tp(0),
            offset: Offset(0),
        });
        r.apply(batch(0, 0, 2, 1));
        r.apply(batch(0, 5, 2, 1));
        assert_eq!(r.end(&tp(0)), Some(Offset(7)));
    }

    /// Producer 9's batch at `base_offset` of `records` records (its sequence is the offset).
    fn produced(base_offset: i64, records: i32) -> crate::smq::record::ProducedBatch {
        crate::smq::record::ProducedBatch {
            producer_id: 9,
            epoch: 0,
            base_sequence: base_offset as i32,
            base_offset,
            records,
        }
    }

    #[test]
    fn tail_entries_cover_the_records_found_with_whole_idempotent_batches() {
        let batch = produced;
        // 3: plain, 4..6: a whole batch, 6..8: a batch of 3 cut short
        let recs: Vec<KafkaRecord> = (3..8)
            .map(|o| KafkaRecord {
                offset: Offset(o),
                timestamp: TimestampMs(o * 10),
                key: None,
                value: Some(Bytes::from_static(b"abc")),
                headers: Vec::new(),
                batch: match o {
                    3 => None,
                    4 | 5 => Some(batch(4, 2)),
                    _ => Some(batch(6, 3)),
                },
            })
            .collect();
        let e = tail_entries(&tp(2), &recs);
        let summary: Vec<(i64, u32, Option<ProducerBatch>)> = e
            .iter()
            .map(|e| match e {
                LedgerEntry::Batch {
                    base_offset,
                    count,
                    producer,
                    ..
                } => (base_offset.0, *count, *producer),
                _ => panic!("not a batch"),
            })
            .collect();
        assert_eq!(
            summary,
            vec![(3, 1, None), (4, 2, Some((9, 0, 4))), (6, 2, None)]
        );
        assert!(tail_entries(&tp(2), &[]).is_empty());
    }

    #[test]
    fn a_cut_idempotent_batch_at_the_tails_end_is_held_back() {
        use crate::smq::record::ProducedBatch;
        let batch = produced;
        let rec = |o: i64, b: Option<ProducedBatch>| KafkaRecord {
            offset: Offset(o),
            timestamp: TimestampMs(0),
            key: None,
            value: None,
            headers: Vec::new(),
            batch: b,
        };
        // 3: plain, 4..6: a whole batch, 6..8: a batch of 3 cut short
        let recs = vec![
            rec(3, None),
            rec(4, Some(batch(4, 2))),
            rec(5, Some(batch(4, 2))),
            rec(6, Some(batch(6, 3))),
            rec(7, Some(batch(6, 3))),
        ];
        assert_eq!(cut_batch_tail(&recs), 2);
        assert_eq!(cut_batch_tail(&recs[..3]), 0, "a whole batch at the end");
        assert_eq!(cut_batch_tail(&recs[..1]), 0, "a plain record at the end");
        assert_eq!(cut_batch_tail(&[]), 0);
        // a record whose batch starts elsewhere (misplaced, or its start missing) is not held
        assert_eq!(cut_batch_tail(&recs[4..]), 0);
        assert_eq!(cut_batch_tail(&[rec(7, Some(batch(6, 3)))]), 0);
        // a hole inside the run
        assert_eq!(
            cut_batch_tail(&[rec(6, Some(batch(6, 4))), rec(8, Some(batch(6, 4)))]),
            0
        );
    }
}
