//! Codec throughput against a memcpy of the same bytes, measured in the same run.
//!
//! Run with `cargo bench -p kelp-core --bench codec`. Prints MB/s for each case and its ratio to
//! memcpy: the targets are >= 1 GB/s and within 3x of memcpy for batch decode + CRC. Absolute numbers
//! drift on shared machines; the ratio is what to compare across runs.

use bytes::{Bytes, BytesMut};
use kelp_core::api::produce::request::{PartitionProduceData, TopicProduceData};
use kelp_core::api::{ApiKey, RequestBody, produce::ProduceRequest};
use kelp_core::codec::header::{Request, RequestHeader};
use kelp_core::codec::record_batch::RecordBatch;
use std::hint::black_box;

mod common;
use common::measure;

const RECORD_SIZE: usize = 1024;
const RECORDS_PER_BATCH: usize = 64;
const PARTITIONS: usize = 3;

fn batch(seed: u8) -> Bytes {
    let values: Vec<Bytes> = (0..RECORDS_PER_BATCH)
        .map(|i| Bytes::from(vec![seed.wrapping_add(i as u8); RECORD_SIZE]))
        .collect();
    common::producer_batch(&values)
}

fn report(name: &str, bytes: usize, ns: f64, memcpy_ns: f64) {
    let mb_s = bytes as f64 / ns * 1e9 / 1e6;
    println!(
        "{name:<40} {mb_s:>10.0} MB/s   {:>5.2}x memcpy time",
        ns / memcpy_ns
    );
}

fn main() {
    let batches: Vec<Bytes> = (0..PARTITIONS).map(|p| batch(p as u8)).collect();
    let batch_bytes: usize = batches.iter().map(Bytes::len).sum();

    let request = Request {
        header: RequestHeader {
            api_key: ApiKey::Produce.code(),
            api_version: 11,
            correlation_id: 1,
            client_id: Some("bench".into()),
            unknown_tagged_fields: vec![],
        },
        body: RequestBody::Produce(ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topic_data: vec![TopicProduceData {
                name: "bench".into(),
                partition_data: batches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| PartitionProduceData {
                        index: i as i32,
                        records: Some(b.clone()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let mut buf = BytesMut::new();
    request.encode(&mut buf).expect("encode request");
    let frame = buf.freeze();

    let mut dst = vec![0u8; frame.len()];
    let memcpy_batches = measure(|| {
        for b in &batches {
            dst[..b.len()].copy_from_slice(black_box(b));
        }
        black_box(&dst);
    });
    let memcpy_frame = measure(|| {
        dst.copy_from_slice(black_box(&frame));
        black_box(&dst);
    });

    let decode_batches = measure(|| {
        let mut total = 0usize;
        for b in &batches {
            let batch = RecordBatch::parse(black_box(b.clone())).expect("valid batch");
            for r in batch.records(usize::MAX).expect("records").iter() {
                total += r.expect("record").value.map_or(0, <[u8]>::len);
            }
        }
        assert_eq!(total, PARTITIONS * RECORDS_PER_BATCH * RECORD_SIZE);
    });
    let crc_only = measure(|| {
        for b in &batches {
            black_box(RecordBatch::parse(black_box(b.clone())).expect("valid batch"));
        }
    });
    let decode_request = measure(|| {
        black_box(Request::decode(black_box(&frame)).expect("valid request"));
    });
    let decode_request_and_batches = measure(|| {
        let req = Request::decode(black_box(&frame)).expect("valid request");
        let RequestBody::Produce(p) = req.body else {
            unreachable!("a produce request")
        };
        for t in p.topic_data {
            for part in t.partition_data {
                let batch =
                    RecordBatch::parse(part.records.expect("records")).expect("valid batch");
                for r in batch.records(usize::MAX).expect("records").iter() {
                    black_box(r.expect("record"));
                }
            }
        }
    });

    println!(
        "kelp codec bench: {PARTITIONS} batches x {RECORDS_PER_BATCH} records x {RECORD_SIZE} B \
         ({batch_bytes} B of batches, produce frame {} B)",
        frame.len()
    );
    report(
        "memcpy (batches)",
        batch_bytes,
        memcpy_batches,
        memcpy_batches,
    );
    report(
        "batch validate (header + CRC-32C)",
        batch_bytes,
        crc_only,
        memcpy_batches,
    );
    report(
        "batch decode + CRC + every record",
        batch_bytes,
        decode_batches,
        memcpy_batches,
    );
    report(
        "memcpy (produce frame)",
        frame.len(),
        memcpy_frame,
        memcpy_frame,
    );
    report(
        "produce request decode",
        frame.len(),
        decode_request,
        memcpy_frame,
    );
    report(
        "produce decode + batches + records",
        frame.len(),
        decode_request_and_batches,
        memcpy_frame,
    );
}
