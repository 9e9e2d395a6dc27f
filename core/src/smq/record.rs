//! Kafka records ⇄ SMQ `DataMessage`s.
//!
//! A Kafka record becomes one `DataMessage`: its key is the Kafka key and its `ts_ns` the time
//! Kelp appends it, not the producer's timestamp: weed names its flushed files after the first
//! record's `ts_ns` and reads a partition's files in name order as if that were offset order, so
//! `ts_ns` must grow with the offset (a producer may stamp records with any time). Its value
//! depends on the [`ValueFormat`]:
//! - [`ValueFormat::Enriched`] (Kelp's default): a `schema_pb.RecordValue` whose fields are
//!   `_kafka_offset` (int64), `_kafka_partition` (int32), `_kafka_timestamp` (int64, ms),
//!   `_kafka_value` (bytes; absent for a null value), `_kafka_headers` (a list of records
//!   `{key: bytes, value: bytes}`, `value` absent for null; absent when there are none) and
//!   `_kafka_key_empty` (true only for an empty, non-null key, which the message key alone cannot
//!   tell from a null one). SMQ-native readers see every Kafka detail, and Kelp can check on every
//!   read that a record sits at the offset it was given.
//! - [`ValueFormat::Raw`]: the Kafka value as is, like SeaweedFS's Go gateway writes it (headers,
//!   the null/empty distinction and the producer's timestamp are lost: a record read back raw has
//!   its append time).
//!
//! Reading accepts both, whatever Kelp writes: a value that decodes as a `RecordValue` with an
//! int64 `_kafka_offset` is enriched, anything else raw.

use super::messaging_pb::DataMessage;
use super::schema_pb::{ListValue, RecordValue, Value, value::Kind};
use crate::codec::CodecError;
use crate::codec::compression::Compression;
use crate::codec::record_batch::{BatchHeader, NewRecord, RecordBatch, encode_batch};
use crate::types::{Offset, TimestampMs};
use bytes::Bytes;
use prost::Message;
use std::collections::HashMap;

/// Field holding the record's Kafka offset.
pub const OFFSET: &str = "_kafka_offset";
/// Field holding the Kafka partition.
pub const PARTITION: &str = "_kafka_partition";
/// Field holding the Kafka timestamp in milliseconds.
pub const TIMESTAMP: &str = "_kafka_timestamp";
/// Field holding the Kafka value (absent for null).
pub const VALUE: &str = "_kafka_value";
/// Field holding the headers (absent when there are none).
pub const HEADERS: &str = "_kafka_headers";
/// Field set to true when the key is empty rather than null.
pub const KEY_EMPTY: &str = "_kafka_key_empty";
/// Field holding an idempotent producer's id (the next four only for idempotent batches).
pub const PRODUCER_ID: &str = "_kafka_producer_id";
/// Field holding the producer's epoch.
pub const PRODUCER_EPOCH: &str = "_kafka_producer_epoch";
/// Field holding the first sequence of the record's batch.
pub const BASE_SEQUENCE: &str = "_kafka_base_sequence";
/// Field holding the offset of the first record of the record's batch.
pub const BATCH_OFFSET: &str = "_kafka_batch_offset";
/// Field holding the number of records in the record's batch.
pub const BATCH_RECORDS: &str = "_kafka_batch_records";
/// A header record's key field.
pub const HEADER_KEY: &str = "key";
/// A header record's value field (absent for null).
pub const HEADER_VALUE: &str = "value";

/// How record values are written to SMQ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValueFormat {
    /// A `RecordValue` with the `_kafka_*` fields.
    #[default]
    Enriched,
    /// The Kafka value bytes only.
    Raw,
}

/// A Kafka record read back from SMQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaRecord {
    /// Its offset.
    pub offset: Offset,
    /// Its timestamp.
    pub timestamp: TimestampMs,
    /// The key, `None` for null.
    pub key: Option<Bytes>,
    /// The value, `None` for null.
    pub value: Option<Bytes>,
    /// Headers as (key, value).
    pub headers: Vec<(Bytes, Option<Bytes>)>,
    /// The idempotent batch it was produced in.
    pub batch: Option<ProducedBatch>,
}

/// The idempotent batch a record came in: with it, a restart finds out which batches SMQ holds
/// whose produce was never answered, and answers their retries as duplicates, as Kafka does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducedBatch {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// The batch's first sequence.
    pub base_sequence: i32,
    /// The batch's first offset.
    pub base_offset: i64,
    /// Records in the batch.
    pub records: i32,
}

/// A message read from SMQ that is not the record Kelp expects there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// An enriched record names another offset than the one it was read at: the broker gave it
    /// another offset than the ledger had, so its append failed and it was never acknowledged
    /// there (or the broker served the wrong data).
    #[error("SMQ served the record of offset {found} at offset {expected}")]
    OffsetMismatch {
        /// Where it was read.
        expected: i64,
        /// What the record says.
        found: i64,
    },
}

fn value(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

/// Nanoseconds of a millisecond timestamp (saturating: Kafka allows any i64).
pub fn ms_to_ns(ms: i64) -> i64 {
    ms.saturating_mul(1_000_000)
}

/// Appends to `out` the SMQ messages of every record of `batch`, whose first record has Kafka
/// offset `base_offset`, stamped `append_ts_ns` (never less than the partition's last stamp).
/// Compressed batches are decompressed (up to `max_decompressed` bytes); keys and values stay
/// zero-copy slices of the batch.
pub fn batch_messages(
    batch: &RecordBatch,
    base_offset: Offset,
    partition: i32,
    append_ts_ns: i64,
    format: ValueFormat,
    max_decompressed: usize,
    out: &mut Vec<DataMessage>,
) -> Result<(), CodecError> {
    let header = batch.header();
    let records = batch.records(max_decompressed)?;
    out.reserve(records.len());
    for r in records.iter() {
        let r = r?;
        let offset = base_offset.0.saturating_add(i64::from(r.offset_delta));
        let timestamp = header.base_timestamp.saturating_add(r.timestamp_delta);
        let key = r.key.map(|k| records.slice(k));
        let record_value = r.value.map(|v| records.slice(v));
        let value = match format {
            ValueFormat::Raw => record_value.unwrap_or_default(),
            ValueFormat::Enriched => {
                let mut fields = HashMap::with_capacity(6);
                fields.insert(OFFSET.to_string(), value(Kind::Int64Value(offset)));
                fields.insert(PARTITION.to_string(), value(Kind::Int32Value(partition)));
                fields.insert(TIMESTAMP.to_string(), value(Kind::Int64Value(timestamp)));
                if let Some(v) = record_value {
                    fields.insert(VALUE.to_string(), value(Kind::BytesValue(v)));
                }
                if header.producer_id >= 0 {
                    let int32 = |n: i32| value(Kind::Int32Value(n));
                    let int64 = |n: i64| value(Kind::Int64Value(n));
                    fields.insert(PRODUCER_ID.to_string(), int64(header.producer_id));
                    fields.insert(
                        PRODUCER_EPOCH.to_string(),
                        int32(i32::from(header.producer_epoch)),
                    );
                    fields.insert(BASE_SEQUENCE.to_string(), int32(header.base_sequence));
                    fields.insert(BATCH_OFFSET.to_string(), int64(base_offset.0));
                    fields.insert(BATCH_RECORDS.to_string(), int32(header.record_count));
                }
                if key.as_ref().is_some_and(Bytes::is_empty) {
                    fields.insert(KEY_EMPTY.to_string(), value(Kind::BoolValue(true)));
                }
                if !r.headers.is_empty() {
                    let values = r
                        .headers
                        .iter()
                        .map(|h| {
                            let mut f = HashMap::with_capacity(2);
                            f.insert(
                                HEADER_KEY.to_string(),
                                value(Kind::BytesValue(records.slice(h.key))),
                            );
                            if let Some(v) = h.value {
                                f.insert(
                                    HEADER_VALUE.to_string(),
                                    value(Kind::BytesValue(records.slice(v))),
                                );
                            }
                            value(Kind::RecordValue(RecordValue { fields: f }))
                        })
                        .collect();
                    fields.insert(
                        HEADERS.to_string(),
                        value(Kind::ListValue(ListValue { values })),
                    );
                }
                Bytes::from(RecordValue { fields }.encode_to_vec())
            }
        };
        out.push(DataMessage {
            key: key.unwrap_or_default(),
            value,
            ts_ns: append_ts_ns,
            ctrl: None,
        });
    }
    Ok(())
}

fn int64(fields: &HashMap<String, Value>, name: &str) -> Option<i64> {
    match fields.get(name)?.kind {
        Some(Kind::Int64Value(v)) => Some(v),
        _ => None,
    }
}

fn int32(fields: &HashMap<String, Value>, name: &str) -> Option<i32> {
    match fields.get(name)?.kind {
        Some(Kind::Int32Value(v)) => Some(v),
        _ => None,
    }
}

fn bytes(fields: &HashMap<String, Value>, name: &str) -> Option<Bytes> {
    match &fields.get(name)?.kind {
        Some(Kind::BytesValue(v)) => Some(v.clone()),
        Some(Kind::StringValue(s)) => Some(Bytes::from(s.clone())),
        _ => None,
    }
}

/// Field set in a filler record.
pub const FILLER: &str = "_kelp_filler";
const FILLER_KEY: &[u8] = b"kelp-offset-filler";

/// A record that only takes up an offset: what Kelp writes over offsets SMQ lost (a broker crash
/// within its flush interval can lose acknowledged records *and* hand their offsets out again).
/// Readers skip it, so a Kafka consumer sees a gap there, never another record at an offset it
/// may already have read.
pub fn filler_message(ts_ns: i64) -> DataMessage {
    let mut fields = HashMap::with_capacity(1);
    fields.insert(FILLER.to_string(), value(Kind::BoolValue(true)));
    DataMessage {
        key: Bytes::from_static(FILLER_KEY),
        value: Bytes::from(RecordValue { fields }.encode_to_vec()),
        ts_ns,
        ctrl: None,
    }
}

/// The Kafka record in `message`, read at `offset`; `None` for a filler or Kelp's partition marker.
pub fn message_record(
    message: &DataMessage,
    offset: Offset,
) -> Result<Option<KafkaRecord>, RecordError> {
    if message.key == FILLER_KEY || message.key == super::mapping::marker_message().key {
        let rv = RecordValue::decode(message.value.clone()).unwrap_or_default();
        if message.value.is_empty() || rv.fields.contains_key(FILLER) {
            return Ok(None);
        }
    }
    let enriched = RecordValue::decode(message.value.clone())
        .ok()
        .filter(|rv| int64(&rv.fields, OFFSET).is_some());
    let Some(rv) = enriched else {
        return Ok(Some(KafkaRecord {
            offset,
            timestamp: TimestampMs(message.ts_ns / 1_000_000),
            key: (!message.key.is_empty()).then(|| message.key.clone()),
            value: Some(message.value.clone()),
            headers: Vec::new(),
            batch: None,
        }));
    };
    let f = &rv.fields;
    let found = int64(f, OFFSET).unwrap_or(offset.0);
    if found != offset.0 {
        return Err(RecordError::OffsetMismatch {
            expected: offset.0,
            found,
        });
    }
    let key_empty = matches!(
        f.get(KEY_EMPTY).and_then(|v| v.kind.as_ref()),
        Some(Kind::BoolValue(true))
    );
    let headers = match f.get(HEADERS).and_then(|v| v.kind.as_ref()) {
        Some(Kind::ListValue(list)) => list
            .values
            .iter()
            .filter_map(|v| match &v.kind {
                Some(Kind::RecordValue(h)) => Some((
                    bytes(&h.fields, HEADER_KEY).unwrap_or_default(),
                    bytes(&h.fields, HEADER_VALUE),
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Some(KafkaRecord {
        offset,
        timestamp: TimestampMs(int64(f, TIMESTAMP).unwrap_or(message.ts_ns / 1_000_000)),
        key: (key_empty || !message.key.is_empty()).then(|| message.key.clone()),
        value: bytes(f, VALUE),
        headers,
        batch: int64(f, PRODUCER_ID).map(|producer_id| ProducedBatch {
            producer_id,
            epoch: int32(f, PRODUCER_EPOCH).unwrap_or(-1) as i16,
            base_sequence: int32(f, BASE_SEQUENCE).unwrap_or(-1),
            base_offset: int64(f, BATCH_OFFSET).unwrap_or(-1),
            records: int32(f, BATCH_RECORDS).unwrap_or(0),
        }),
    }))
}

/// What SMQ holds from Kafka offset `start` on, one slot per message (message k is offset
/// `start + k`): the records, and nothing for fillers, Kelp's partition marker and misplaced records.
/// A misplaced record (one naming another offset than where it sits) belongs to an append that
/// failed when the broker assigned it another offset than the ledger had; it was never
/// acknowledged there, so it is left out like a filler, and reported for the log.
pub fn read_slots(
    start: Offset,
    messages: &[DataMessage],
) -> (Vec<Option<KafkaRecord>>, Vec<RecordError>) {
    let mut misplaced = Vec::new();
    let slots = messages
        .iter()
        .enumerate()
        .map(|(k, m)| {
            message_record(m, start.plus(k as i64)).unwrap_or_else(|e| {
                misplaced.push(e);
                None
            })
        })
        .collect();
    (slots, misplaced)
}

/// Hides the records of idempotent batches that SMQ holds only in part, and says how many of
/// `slots` (slot k is offset `start + k`, read below the log's `end`) are settled.
///
/// A publish stream that breaks inside a batch leaves the batch's first records stored and the
/// rest not; the produce fails and the producer retries the whole batch. The retry normally
/// completes the batch at the same offsets (the backend's `settle`), but when another append
/// reaches the partition first, the stored prefix is adopted and the retry is stored again at the
/// next offsets. Were that prefix readable, a consumer would see those records twice, so it
/// reads as a gap (its offsets stay used: offsets are never given twice). A batch is whole when
/// every offset from its base to its last holds one of its records: the enriched records carry
/// their batch, and a batch's records are stored in order, so only a missing suffix can make it
/// partial. A batch that runs past the last slot but not past `end` cannot be judged yet: the
/// returned count stops before it, and the caller reads on or answers only the settled slots.
/// (Records without a batch, from plain producers, are at-least-once as in Kafka: a cut prefix
/// of theirs stays readable.)
pub fn hide_cut_batches(start: Offset, slots: &mut [Option<KafkaRecord>], end: Offset) -> usize {
    let stop = start.0 + slots.len() as i64;
    let mut k = 0;
    while k < slots.len() {
        let Some(batch) = slots[k].as_ref().and_then(|r| r.batch) else {
            k += 1;
            continue;
        };
        let run = slots[k..]
            .iter()
            .take_while(|s| s.as_ref().is_some_and(|r| r.batch == Some(batch)))
            .count();
        let run_end = start.0 + (k + run) as i64;
        let batch_end = batch.base_offset.saturating_add(i64::from(batch.records));
        if run_end < batch_end {
            if run_end == stop && batch_end <= end.0 {
                return k;
            }
            slots[k..k + run].iter_mut().for_each(|s| *s = None);
        }
        k += run;
    }
    slots.len()
}

/// Kafka record batches (v2, uncompressed, CreateTime) of what SMQ holds from offset `start` on:
/// slot k is offset `start + k`, a record or nothing (a filler, a hole). Each run of records becomes
/// one batch; each run of nothing an empty batch spanning it (as Kafka's compaction leaves them),
/// so that consumers move past it instead of asking for the same offset again.
pub fn encode_slots(start: Offset, slots: &[Option<KafkaRecord>]) -> Result<Bytes, CodecError> {
    let mut out = bytes::BytesMut::new();
    let mut k = 0;
    while k < slots.len() {
        let base = start.0 + k as i64;
        let filled = slots[k].is_some();
        let run = slots[k..]
            .iter()
            .take_while(|s| s.is_some() == filled)
            .count();
        let records: Vec<&KafkaRecord> = slots[k..k + run].iter().flatten().collect();
        k += run;
        let first_ts = records.first().map_or(-1, |r| r.timestamp.0);
        let header = BatchHeader {
            base_offset: base,
            base_timestamp: first_ts,
            max_timestamp: records
                .iter()
                .map(|r| r.timestamp.0)
                .max()
                .unwrap_or(first_ts),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            ..BatchHeader::default()
        };
        let news: Vec<NewRecord> = records
            .iter()
            .map(|r| NewRecord {
                timestamp_delta: r.timestamp.0.wrapping_sub(first_ts),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            })
            .collect();
        let batch = if filled {
            encode_batch(&header, Compression::None, &news)?
        } else {
            encode_empty_batch(&header, run)?
        };
        out.extend_from_slice(&batch);
    }
    Ok(out.freeze())
}

/// A batch of no records spanning offsets `base..base + span`: a gap a consumer moves past.
pub fn encode_gap(base: Offset, span: usize) -> Result<Bytes, CodecError> {
    let header = BatchHeader {
        base_offset: base.0,
        base_timestamp: -1,
        max_timestamp: -1,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        ..BatchHeader::default()
    };
    encode_empty_batch(&header, span)
}

/// A batch of no records spanning `span` offsets from `header.base_offset`.
fn encode_empty_batch(header: &BatchHeader, span: usize) -> Result<Bytes, CodecError> {
    let batch = encode_batch(header, Compression::None, &[])?;
    let mut b = bytes::BytesMut::from(&batch[..]);
    // last offset delta (bytes 23..27), then the CRC (17..21) over everything from the attributes
    let delta = i32::try_from(span.saturating_sub(1)).unwrap_or(i32::MAX);
    b[23..27].copy_from_slice(&delta.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(b.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::record_batch::Attributes;

    /// An append time distinct from the producer's timestamps.
    const NOW_NS: i64 = 1_800_000_000_123_000_000;

    fn batch(compression: Compression) -> RecordBatch {
        let header = BatchHeader {
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_002,
            producer_id: 7,
            producer_epoch: 1,
            base_sequence: 0,
            attributes: Attributes(0),
            ..BatchHeader::default()
        };
        let records = vec![
            NewRecord {
                timestamp_delta: 0,
                key: Some(Bytes::from_static(b"k1")),
                value: Some(Bytes::from_static(b"v1")),
                headers: vec![
                    (Bytes::from_static(b"h"), Some(Bytes::from_static(b"x"))),
                    (Bytes::from_static(b"n"), None),
                ],
            },
            NewRecord {
                timestamp_delta: 2,
                key: None,
                value: None,
                headers: vec![],
            },
            NewRecord {
                timestamp_delta: 1,
                key: Some(Bytes::new()),
                value: Some(Bytes::new()),
                headers: vec![],
            },
        ];
        RecordBatch::parse(encode_batch(&header, compression, &records).expect("encodes"))
            .expect("parses")
    }

    fn read_back(messages: &[DataMessage], base: i64) -> Vec<KafkaRecord> {
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                message_record(m, Offset(base + i as i64))
                    .expect("reads")
                    .expect("a record")
            })
            .collect()
    }

    #[test]
    fn enriched_records_round_trip_every_detail() {
        for compression in [Compression::None, Compression::Zstd] {
            let mut out = Vec::new();
            batch_messages(
                &batch(compression),
                Offset(40),
                2,
                NOW_NS,
                ValueFormat::Enriched,
                1 << 20,
                &mut out,
            )
            .expect("converts");
            assert_eq!(out.len(), 3);
            assert_eq!(out[0].key, Bytes::from_static(b"k1"));
            assert!(
                out.iter().all(|m| m.ts_ns == NOW_NS),
                "append time, not producer time"
            );
            let got = read_back(&out, 40);
            assert_eq!(got[0].offset, Offset(40));
            assert_eq!(got[0].timestamp, TimestampMs(1_700_000_000_000));
            assert_eq!(got[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(got[0].value.as_deref(), Some(&b"v1"[..]));
            assert_eq!(
                got[0].headers,
                vec![
                    (Bytes::from_static(b"h"), Some(Bytes::from_static(b"x"))),
                    (Bytes::from_static(b"n"), None)
                ]
            );
            assert_eq!((got[1].key.clone(), got[1].value.clone()), (None, None));
            assert_eq!(got[1].timestamp, TimestampMs(1_700_000_000_002));
            assert_eq!(got[2].key, Some(Bytes::new()), "empty key is not null");
            assert_eq!(got[2].value, Some(Bytes::new()), "empty value is not null");
            let batch = ProducedBatch {
                producer_id: 7,
                epoch: 1,
                base_sequence: 0,
                base_offset: 40,
                records: 3,
            };
            assert!(got.iter().all(|r| r.batch == Some(batch)));
            // the fields SMQ-native readers see
            let rv = RecordValue::decode(out[0].value.clone()).expect("a RecordValue");
            assert_eq!(int64(&rv.fields, OFFSET), Some(40));
            assert!(matches!(
                rv.fields[PARTITION].kind,
                Some(Kind::Int32Value(2))
            ));
        }
    }

    #[test]
    fn a_record_at_the_wrong_offset_is_no_record_there() {
        let mut out = Vec::new();
        batch_messages(
            &batch(Compression::None),
            Offset(10),
            0,
            NOW_NS,
            ValueFormat::Enriched,
            1 << 20,
            &mut out,
        )
        .expect("converts");
        assert_eq!(
            message_record(&out[0], Offset(0)),
            Err(RecordError::OffsetMismatch {
                expected: 0,
                found: 10
            })
        );
        // read as slots: a gap where a misplaced record sits, the others in place
        let held = [out[0].clone(), out[2].clone(), out[2].clone()];
        let (slots, misplaced) = read_slots(Offset(10), &held);
        assert_eq!(misplaced.len(), 1);
        assert_eq!(slots[0].as_ref().map(|r| r.offset), Some(Offset(10)));
        assert!(
            slots[1].is_none(),
            "offset 11 holds the record meant for 12"
        );
        assert_eq!(slots[2].as_ref().map(|r| r.offset), Some(Offset(12)));
    }

    #[test]
    fn raw_values_are_read_like_the_go_gateway_writes_them() {
        let mut out = Vec::new();
        batch_messages(
            &batch(Compression::None),
            Offset(0),
            0,
            NOW_NS,
            ValueFormat::Raw,
            1 << 20,
            &mut out,
        )
        .expect("converts");
        assert_eq!(out[0].value, Bytes::from_static(b"v1"));
        let got = read_back(&out, 5);
        assert_eq!(got[0].offset, Offset(5));
        assert_eq!(
            got[0].timestamp,
            TimestampMs(NOW_NS / 1_000_000),
            "append time"
        );
        assert_eq!(got[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(got[0].value.as_deref(), Some(&b"v1"[..]));
        assert!(got[0].headers.is_empty());
        // a plain value that is not a RecordValue at all
        let m = DataMessage {
            key: Bytes::new(),
            value: Bytes::from_static(&[0xff, 0xff, 0xff]),
            ts_ns: 3_000_000,
            ctrl: None,
        };
        let r = message_record(&m, Offset(9))
            .expect("raw")
            .expect("a record");
        assert_eq!((r.key, r.timestamp), (None, TimestampMs(3)));
    }

    #[test]
    fn fillers_and_markers_are_no_records_but_look_alikes_are() {
        assert_eq!(message_record(&filler_message(5), Offset(3)), Ok(None));
        assert_eq!(
            message_record(&super::super::mapping::marker_message(), Offset(0)),
            Ok(None)
        );
        // a raw record that merely has the filler's key is a record
        let m = DataMessage {
            key: Bytes::from_static(FILLER_KEY),
            value: Bytes::from_static(b"payload"),
            ts_ns: 1,
            ctrl: None,
        };
        assert!(matches!(message_record(&m, Offset(1)), Ok(Some(_))));
    }

    #[test]
    fn fetched_records_become_valid_batches_split_at_gaps() {
        let mut out = Vec::new();
        batch_messages(
            &batch(Compression::None),
            Offset(0),
            0,
            NOW_NS,
            ValueFormat::Enriched,
            1 << 20,
            &mut out,
        )
        .expect("converts");
        let records = read_back(&out, 0);
        // offsets 0, 1: records; 2..5: nothing (fillers); 5: a record
        let mut slots: Vec<Option<KafkaRecord>> =
            records.iter().take(2).cloned().map(Some).collect();
        slots.extend([None, None, None]);
        slots.push(Some(KafkaRecord {
            offset: Offset(5),
            ..records[2].clone()
        }));
        let bytes = encode_slots(Offset(0), &slots).expect("encodes");
        let batches: Vec<RecordBatch> = crate::codec::record_batch::Batches::new(bytes)
            .map(|b| b.expect("valid batch"))
            .collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[0].header().base_offset, 0);
        assert_eq!(batches[0].header().record_count, 2);
        assert_eq!(batches[0].header().max_timestamp, 1_700_000_000_002);
        let gap = batches[1].header();
        assert_eq!(
            (gap.base_offset, gap.record_count, gap.last_offset()),
            (2, 0, 4)
        );
        assert_eq!(batches[2].header().base_offset, 5);
        let recs = batches[0].records(1 << 20).expect("records");
        let first = recs.iter().next().expect("one").expect("valid");
        assert_eq!(first.key, Some(&b"k1"[..]));
        assert_eq!(first.headers.len(), 2);
    }

    /// Slots from offset `start`: `Some((base, records))` for a record of that idempotent batch,
    /// `Some((-1, 0))` for a plain record, `None` for nothing.
    fn slots_of(start: i64, spec: &[Option<(i64, i32)>]) -> Vec<Option<KafkaRecord>> {
        spec.iter()
            .enumerate()
            .map(|(k, s)| {
                s.map(|(base, records)| KafkaRecord {
                    offset: Offset(start + k as i64),
                    timestamp: TimestampMs(0),
                    key: None,
                    value: Some(Bytes::from_static(b"v")),
                    headers: Vec::new(),
                    batch: (records > 0).then_some(ProducedBatch {
                        producer_id: 9,
                        epoch: 0,
                        base_sequence: base as i32,
                        base_offset: base,
                        records,
                    }),
                })
            })
            .collect()
    }

    fn shown(slots: &[Option<KafkaRecord>]) -> Vec<bool> {
        slots.iter().map(Option::is_some).collect()
    }

    #[test]
    fn a_batch_stored_in_part_reads_as_a_gap() {
        // batch 10..13 stored whole; batch 13..16 cut after two records, retried whole at 15..18
        let b1 = Some((10, 3));
        let cut = Some((13, 3));
        let retry = Some((15, 3));
        let mut slots = slots_of(10, &[b1, b1, b1, cut, cut, retry, retry, retry]);
        assert_eq!(hide_cut_batches(Offset(10), &mut slots, Offset(18)), 8);
        assert_eq!(
            shown(&slots),
            [true, true, true, false, false, true, true, true]
        );
    }

    #[test]
    fn a_cut_batch_at_the_end_of_the_log_is_hidden_and_an_unfinished_read_is_not_judged() {
        let cut = Some((13, 3));
        // the log ends inside the batch: its rest will never come
        let mut slots = slots_of(12, &[None, cut, cut]);
        assert_eq!(hide_cut_batches(Offset(12), &mut slots, Offset(15)), 3);
        assert_eq!(shown(&slots), [false, false, false]);
        // the read stopped inside a batch that may be whole: settled up to its base only
        let mut slots = slots_of(12, &[Some((-1, 0)), cut, cut]);
        assert_eq!(hide_cut_batches(Offset(12), &mut slots, Offset(40)), 1);
        assert_eq!(shown(&slots), [true, true, true]);
        // nothing settled when the read starts inside such a batch
        let mut slots = slots_of(14, &[cut]);
        assert_eq!(hide_cut_batches(Offset(14), &mut slots, Offset(40)), 0);
    }

    #[test]
    fn reads_starting_inside_a_whole_batch_and_plain_records_are_untouched() {
        let b = Some((20, 4));
        let plain = Some((-1, 0));
        let mut slots = slots_of(22, &[b, b, plain, None, plain]);
        assert_eq!(hide_cut_batches(Offset(22), &mut slots, Offset(27)), 5);
        assert_eq!(shown(&slots), [true, true, true, false, true]);
    }
}
