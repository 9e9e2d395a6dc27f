//! Kafka record batch <-> SMQ `DataMessage` conversion against a memcpy of the same record payload,
//! measured in the same run.
//!
//! Run with `cargo bench -p kelp-core --bench smq_record`. One batch of 64 records of 1 KiB (an
//! idempotent producer's, as `codec.rs` builds it): the produce direction (`batch_messages`, enriched
//! and raw values) and the fetch direction (`read_slots`, `hide_cut_batches`, `encode_slots`: the
//! messages SMQ serves back to Kafka batch bytes). MB/s counts record values only; the ratio is
//! against a memcpy of those 64 KiB. Absolute numbers drift on shared machines; the ratio is what to
//! compare across runs.

mod common;

use bytes::Bytes;
use common::{measure, report};
use kelp_core::codec::record_batch::RecordBatch;
use kelp_core::smq::messaging_pb::DataMessage;
use kelp_core::smq::record::{
    KafkaRecord, ValueFormat, batch_messages, encode_slots, hide_cut_batches, read_slots,
};
use kelp_core::types::Offset;
use std::hint::black_box;

const RECORD_SIZE: usize = 1024;
const RECORDS_PER_BATCH: usize = 64;
const PAYLOAD: usize = RECORD_SIZE * RECORDS_PER_BATCH;
const BASE_OFFSET: Offset = Offset(1_000_000);
const PARTITION: i32 = 3;
const APPEND_TS_NS: i64 = 1_800_000_000_000_000_000;
const MAX_DECOMPRESSED: usize = 64 << 20;

fn batch() -> (RecordBatch, Vec<Bytes>) {
    let values: Vec<Bytes> = (0..RECORDS_PER_BATCH)
        .map(|i| Bytes::from(vec![i as u8; RECORD_SIZE]))
        .collect();
    let bytes = common::producer_batch(&values);
    (RecordBatch::parse(bytes).expect("valid batch"), values)
}

fn messages(batch: &RecordBatch, format: ValueFormat) -> Vec<DataMessage> {
    let mut out = Vec::new();
    batch_messages(
        batch,
        BASE_OFFSET,
        PARTITION,
        APPEND_TS_NS,
        format,
        MAX_DECOMPRESSED,
        &mut out,
    )
    .expect("converts");
    out
}

/// The fetch path of the runtime: messages -> slots -> settled slots -> Kafka batch bytes.
fn fetch(messages: &[DataMessage]) -> Bytes {
    let (mut slots, misplaced) = read_slots(BASE_OFFSET, messages);
    debug_assert!(misplaced.is_empty());
    let end = BASE_OFFSET.plus(messages.len() as i64);
    let settled = hide_cut_batches(BASE_OFFSET, &mut slots, end);
    slots.truncate(settled);
    encode_slots(BASE_OFFSET, &slots).expect("encodes")
}

/// Checks (once, outside the timing) that the fetch path gives back every value.
fn check_round_trip(messages: &[DataMessage], values: &[Bytes]) {
    let batch = RecordBatch::parse(fetch(messages)).expect("one valid batch");
    assert_eq!(batch.header().base_offset, BASE_OFFSET.0);
    let records = batch.records(MAX_DECOMPRESSED).expect("records");
    let got: Vec<&[u8]> = records
        .iter()
        .map(|r| r.expect("record").value.expect("a value"))
        .collect();
    assert_eq!(got.len(), values.len());
    assert!(got.iter().zip(values).all(|(g, v)| *g == &v[..]));
}

fn main() {
    let (batch, values) = batch();
    let enriched = messages(&batch, ValueFormat::Enriched);
    let raw = messages(&batch, ValueFormat::Raw);
    check_round_trip(&enriched, &values);
    check_round_trip(&raw, &values);
    let enriched_slots: Vec<Option<KafkaRecord>> = read_slots(BASE_OFFSET, &enriched).0;
    assert!(enriched_slots.iter().all(Option::is_some));

    let mut dst = vec![0u8; PAYLOAD];
    let memcpy = measure(|| {
        for (v, d) in values.iter().zip(dst.chunks_exact_mut(RECORD_SIZE)) {
            d.copy_from_slice(black_box(v));
        }
        black_box(&dst);
    });
    let mut out = Vec::with_capacity(RECORDS_PER_BATCH);
    let mut to_messages = |format: ValueFormat| {
        measure(|| {
            out.clear();
            batch_messages(
                black_box(&batch),
                BASE_OFFSET,
                PARTITION,
                APPEND_TS_NS,
                format,
                MAX_DECOMPRESSED,
                &mut out,
            )
            .expect("converts");
            black_box(&out);
        })
    };
    let produce_raw = to_messages(ValueFormat::Raw);
    let produce_enriched = to_messages(ValueFormat::Enriched);
    let slots_raw = measure(|| {
        black_box(read_slots(BASE_OFFSET, black_box(&raw)));
    });
    let slots_enriched = measure(|| {
        black_box(read_slots(BASE_OFFSET, black_box(&enriched)));
    });
    let encode = measure(|| {
        black_box(encode_slots(BASE_OFFSET, black_box(&enriched_slots)).expect("encodes"));
    });
    let fetch_raw = measure(|| {
        black_box(fetch(black_box(&raw)));
    });
    let fetch_enriched = measure(|| {
        black_box(fetch(black_box(&enriched)));
    });

    println!(
        "kelp smq_record bench: 1 batch x {RECORDS_PER_BATCH} records x {RECORD_SIZE} B \
         ({} B of batch, {PAYLOAD} B of values; enriched message value {} B)",
        batch.bytes().len(),
        enriched[0].value.len(),
    );
    let per_record = |ns: f64| ns / RECORDS_PER_BATCH as f64;
    let memcpy = per_record(memcpy);
    let rows = [
        ("memcpy (record values)", memcpy),
        ("batch_messages (Raw)", per_record(produce_raw)),
        ("batch_messages (Enriched)", per_record(produce_enriched)),
        ("read_slots (Raw)", per_record(slots_raw)),
        ("read_slots (Enriched)", per_record(slots_enriched)),
        ("encode_slots", per_record(encode)),
        (
            "read_slots + hide_cut + encode_slots (Raw)",
            per_record(fetch_raw),
        ),
        (
            "read_slots + hide_cut + encode_slots (Enr.)",
            per_record(fetch_enriched),
        ),
    ];
    for (name, ns) in rows {
        report(name, "record", ns, Some(RECORD_SIZE), memcpy);
    }
}
