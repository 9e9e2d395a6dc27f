//! Offset ledger lookups and appends against plain-slice baselines measured in the same run.
//!
//! Run with `cargo bench -p kelp-core --bench ledger`. The ledger is built through its public API
//! as appends would build it (batches of 64 records of ~1 KiB, segments rolled every 1 GiB), then:
//! - offset -> position (`position_for`) over random offsets, against `slice::binary_search` over a
//!   `Vec<i64>` with as many entries as the ledger's index;
//! - time -> position (`position_for_time`) over random and recent timestamps, same baseline;
//! - the append path (`begin_append` + `complete_append`), against a push of an `IndexEntry` into a `Vec`.
//!
//! Absolute numbers drift on shared machines; the ratio is what to compare across runs.

mod common;

use common::{measure, report};
use kelp_core::ledger::{INDEX_INTERVAL_RECORDS, IndexEntry, OffsetLedger};
use kelp_core::types::{LogPosition, Offset, TimestampMs};
use std::hint::black_box;
use std::time::Instant;

const RECORDS_PER_BATCH: u64 = 64;
/// Bytes a 64-record batch of 1 KiB values takes in the log (roughly).
const BATCH_BYTES: u64 = RECORDS_PER_BATCH * 1100;
const SEGMENT_BYTES: u64 = 1 << 30;
const BASE_TS: i64 = 1_700_000_000_000;
/// Precomputed queries, cycled through.
const QUERIES: usize = 1 << 16;
/// Offset lookups per measured call.
const OFFSET_CHUNK: usize = 1024;
/// Time lookups per measured call (they scan the index).
const TIME_CHUNK: usize = 16;
/// Appends per measured call.
const APPEND_CHUNK: usize = 64;

/// A small deterministic generator (SplitMix64) for the precomputed queries.
struct SplitMix64(u64);

impl SplitMix64 {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Where the append path puts the next batch: the same byte layout the storage would give it.
struct Log {
    position: LogPosition,
}

impl Log {
    fn new() -> Log {
        Log {
            position: LogPosition::default(),
        }
    }

    /// Position of the next batch, starting at `base`, rolling the segment when it is full.
    fn next(&mut self, base: Offset) -> LogPosition {
        if self.position.byte + BATCH_BYTES > SEGMENT_BYTES {
            self.position = LogPosition {
                segment: base,
                byte: 0,
            };
        }
        let at = self.position;
        self.position.byte += BATCH_BYTES;
        at
    }
}

/// Max timestamp of batch `b`: one record per millisecond.
fn batch_max_ts(b: u64) -> TimestampMs {
    TimestampMs(BASE_TS + (b * RECORDS_PER_BATCH + RECORDS_PER_BATCH - 1) as i64)
}

fn append(ledger: &mut OffsetLedger, log: &mut Log, b: u64) {
    let base = ledger
        .begin_append(RECORDS_PER_BATCH, BATCH_BYTES, batch_max_ts(b))
        .expect("no append in flight");
    ledger
        .complete_append(log.next(base))
        .expect("the append in flight");
}

/// A source of the next `chunk` queries of `queries` on each call, cycling through them.
fn cycling<'a, T>(queries: &'a [T], chunk: usize) -> impl FnMut() -> &'a [T] {
    let mut at = 0;
    move || {
        let q = &queries[at..at + chunk];
        at = (at + chunk) % queries.len();
        q
    }
}

fn bench(records: u64) {
    let batches = records / RECORDS_PER_BATCH;
    let mut ledger = OffsetLedger::default();
    let mut log = Log::new();
    let t = Instant::now();
    for b in 0..batches {
        append(&mut ledger, &mut log, b);
    }
    let build_ns = t.elapsed().as_nanos() as f64 / batches as f64;
    let entries = ledger.index_len();
    assert!(entries as u64 >= records / INDEX_INTERVAL_RECORDS);
    println!(
        "\nkelp ledger bench: {records} records in {batches} appends of {RECORDS_PER_BATCH} \
         -> {entries} index entries ({} KiB); built at {build_ns:.1} ns/append",
        entries * std::mem::size_of::<IndexEntry>() / 1024,
    );

    let mut rng = SplitMix64(records);
    let offsets: Vec<Offset> = (0..QUERIES)
        .map(|_| Offset(rng.below(records) as i64))
        .collect();
    let times: Vec<TimestampMs> = (0..QUERIES)
        .map(|_| TimestampMs(BASE_TS + rng.below(records) as i64))
        .collect();
    // "From an hour ago": the last 1% of the log.
    let recent_from = records - records / 100;
    let recent: Vec<TimestampMs> = (0..QUERIES)
        .map(|_| TimestampMs(BASE_TS + (recent_from + rng.below(records / 100)) as i64))
        .collect();
    // The baseline's sorted keys: the entries' offsets, as plain i64s.
    let keys: Vec<i64> = ledger.index_entries().iter().map(|e| e.offset.0).collect();

    // The lookups land where they should (checked once, outside the timing).
    for &o in &offsets[..1000] {
        let i = keys.partition_point(|&k| k <= o.0) - 1;
        assert_eq!(ledger.position_for(o), ledger.index_entries()[i].position);
    }
    for &ts in &times[..100] {
        let b = (ts.0 - BASE_TS) as u64 / RECORDS_PER_BATCH;
        assert_eq!(
            ledger.position_for_time(ts),
            Some(ledger.index_entries()[b as usize].position)
        );
    }

    let mut next = cycling(&offsets, OFFSET_CHUNK);
    let bsearch = measure(|| {
        let mut sum = 0usize;
        for o in next() {
            sum += match black_box(&keys).binary_search(&o.0) {
                Ok(i) | Err(i) => i,
            };
        }
        black_box(sum);
    });
    let mut next = cycling(&offsets, OFFSET_CHUNK);
    let position_for = measure(|| {
        let mut sum = 0u64;
        for &o in next() {
            sum = sum.wrapping_add(black_box(&ledger).position_for(o).byte);
        }
        black_box(sum);
    });
    let mut next = cycling(&times, TIME_CHUNK);
    let time_random = measure(|| {
        for &ts in next() {
            black_box(black_box(&ledger).position_for_time(ts));
        }
    });
    let mut next = cycling(&recent, TIME_CHUNK);
    let time_recent = measure(|| {
        for &ts in next() {
            black_box(black_box(&ledger).position_for_time(ts));
        }
    });

    // Appends grow the index by an entry each (64 records per batch); to keep memory flat the
    // measured ledger drops its index (advance_log_start to the high watermark keeps one entry,
    // and the Vec its capacity) whenever it has doubled.
    let mut entries_buf: Vec<IndexEntry> = Vec::with_capacity(2 * entries);
    let push = measure(|| {
        for i in 0..APPEND_CHUNK as u64 {
            entries_buf.push(black_box(IndexEntry {
                offset: Offset(i as i64),
                position: LogPosition::default(),
                max_timestamp: TimestampMs(0),
                bytes: i,
            }));
        }
        if entries_buf.len() >= 2 * entries {
            entries_buf.clear();
        }
    });
    let mut appended = ledger.clone();
    let mut b = batches;
    let append_path = measure(|| {
        for _ in 0..APPEND_CHUNK {
            append(black_box(&mut appended), &mut log, b);
            b += 1;
        }
        if appended.index_len() >= 2 * entries {
            appended.advance_log_start(appended.high_watermark());
        }
    });

    let per = |ns: f64, chunk: usize| ns / chunk as f64;
    let bsearch = per(bsearch, OFFSET_CHUNK);
    let push = per(push, APPEND_CHUNK);
    let rows = [
        (
            "baseline: Vec<i64>::binary_search",
            "lookup",
            bsearch,
            bsearch,
        ),
        (
            "position_for (random offset)",
            "lookup",
            per(position_for, OFFSET_CHUNK),
            bsearch,
        ),
        (
            "position_for_time (random time)",
            "lookup",
            per(time_random, TIME_CHUNK),
            bsearch,
        ),
        (
            "position_for_time (last 1% of the log)",
            "lookup",
            per(time_recent, TIME_CHUNK),
            bsearch,
        ),
        ("baseline: Vec<IndexEntry>::push", "append", push, push),
        (
            "begin_append + complete_append",
            "append",
            per(append_path, APPEND_CHUNK),
            push,
        ),
    ];
    for (name, unit, ns, baseline) in rows {
        report(name, unit, ns, None, baseline);
    }
}

fn main() {
    for records in [1_000_000, 10_000_000] {
        bench(records);
    }
}
