//! Timing helpers shared by the micro-benchmarks (`harness = false`): a median of samples, and one
//! report line per case with its ratio to a baseline measured in the
//! same run. Absolute numbers drift on shared machines; the ratio is what to compare across runs.

// each bench compiles this module on its own and uses part of it
#![allow(dead_code)]

use bytes::Bytes;
use kelp_core::codec::compression::Compression;
use kelp_core::codec::record_batch::{BatchHeader, NewRecord, encode_batch};
use std::time::{Duration, Instant};

/// Median time of `f` over enough repetitions to fill ~1 s, in nanoseconds per call.
pub fn measure(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_millis(200) {
        f();
        calls += 1;
    }
    let per_sample = (calls / 20).max(1);
    let mut samples: Vec<f64> = (0..60)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_sample {
                f();
            }
            t.elapsed().as_nanos() as f64 / per_sample as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Prints one case: `ns` per `unit` (one lookup, one record...), MB/s when `bytes` of payload are
/// handled per `unit`, and its time relative to `baseline_ns`, the baseline's time per `unit`.
pub fn report(name: &str, unit: &str, ns: f64, bytes: Option<usize>, baseline_ns: f64) {
    let throughput = bytes.map_or(String::new(), |b| {
        format!("{:.0} MB/s", b as f64 / ns * 1e9 / 1e6)
    });
    println!(
        "{name:<46} {ns:>10.1} ns/{unit:<7} {throughput:>11}   {:>7.2}x baseline time",
        ns / baseline_ns
    );
}

/// An uncompressed batch of an idempotent producer (id 1, epoch 0), one record per value, keyed
/// `key-000000`, `key-000001`...: what a Java producer sends.
pub fn producer_batch(values: &[Bytes]) -> Bytes {
    let records: Vec<NewRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord {
            timestamp_delta: i as i64,
            key: Some(Bytes::from(format!("key-{i:06}"))),
            value: Some(v.clone()),
            headers: vec![],
        })
        .collect();
    let header = BatchHeader {
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_000 + values.len() as i64 - 1,
        producer_id: 1,
        producer_epoch: 0,
        base_sequence: 0,
        ..Default::default()
    };
    encode_batch(&header, Compression::None, &records).expect("encode batch")
}
