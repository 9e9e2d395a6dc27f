//! The embedded log's format and recovery, as pure functions over bytes.
//!
//! A partition's log is a directory of segment files named by the offset of their first record
//! (`00000000000000000000.log`, 20 digits). A segment is nothing but v2 record batches back to back,
//! exactly as Kafka stores them, with their base offsets filled in. Every batch carries a CRC-32C, so
//! recovery can tell a whole batch from a torn one: [`scan_segment`] walks a segment, checks every
//! batch, and reports how many leading bytes are good; the driver truncates the file there. A batch
//! whose offsets do not follow on from the previous one is treated as corruption too.

use crate::codec::record_batch::{BATCH_HEADER_LEN, RecordBatch};
use crate::ledger::{IndexEntry, OffsetLedger};
use crate::types::{LogPosition, Offset, TimestampMs};
use bytes::Bytes;

/// File name of the segment starting at `base`.
pub fn segment_file_name(base: Offset) -> String {
    format!("{:020}.log", base.0)
}

/// The base offset of a segment file name, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Offset)
}

/// One batch found by a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedBatch {
    /// Base offset.
    pub base_offset: Offset,
    /// Last offset.
    pub last_offset: Offset,
    /// Records in the batch.
    pub records: u64,
    /// Byte position in the segment.
    pub byte: u64,
    /// Length in bytes.
    pub len: u64,
    /// Largest record timestamp.
    pub max_timestamp: TimestampMs,
    /// (producer id, epoch, first sequence), for the idempotent producer state.
    pub producer: (i64, i16, i32),
}

/// What a scan of one segment found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// The whole, valid batches, in order.
    pub batches: Vec<ScannedBatch>,
    /// Bytes from the start that hold whole valid batches; anything after is torn or corrupt.
    pub valid_len: u64,
    /// Why the scan stopped before the end, if it did.
    pub stopped: Option<String>,
}

/// Header of the batch at the start of `bytes`, if a whole batch is there: (base, last, len, max ts).
fn peek_batch(bytes: &[u8]) -> Option<(Offset, Offset, usize, TimestampMs, u64)> {
    peek_header(bytes).filter(|&(_, _, len, _, _)| len <= bytes.len())
}

/// Header of the batch at the start of `bytes` (which need hold only its first
/// [`BATCH_HEADER_LEN`] bytes): (base, last, len, max ts, records). `None` where `bytes` is too
/// short for a header, or the header does not make sense (a length shorter than a header, offsets
/// that overflow).
pub fn peek_header(bytes: &[u8]) -> Option<(Offset, Offset, usize, TimestampMs, u64)> {
    if bytes.len() < BATCH_HEADER_LEN {
        return None;
    }
    let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let i32_at = |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    let base = i64_at(0);
    let len = usize::try_from(i32_at(8)).ok()?.checked_add(12)?;
    if len < BATCH_HEADER_LEN {
        return None;
    }
    let last = base.checked_add(i64::from(i32_at(23)))?;
    let max_ts = i64_at(35);
    let records = u64::try_from(i32_at(57)).ok()?;
    Some((
        Offset(base),
        Offset(last),
        len,
        TimestampMs(max_ts),
        records,
    ))
}

/// Checks every batch of a segment whose first batch should start at `expected_base` (`None`: take
/// the first batch's offset as it is). Stops at the first batch that is torn, fails its CRC, or does
/// not continue the offsets.
pub fn scan_segment(segment: &Bytes, expected_base: Option<Offset>) -> SegmentScan {
    let mut batches = Vec::new();
    let mut at = 0usize;
    let mut next = expected_base;
    let mut stopped = None;
    while at < segment.len() {
        let Some((base, last, len, max_timestamp, records)) = peek_batch(&segment[at..]) else {
            stopped = Some(format!("torn batch at byte {at}"));
            break;
        };
        if let Err(e) = RecordBatch::parse(segment.slice(at..at + len)) {
            stopped = Some(format!("bad batch at byte {at}: {e}"));
            break;
        }
        if next.is_some_and(|n| n != base) || last < base {
            stopped = Some(format!(
                "offset {base} at byte {at} does not follow {:?}",
                next
            ));
            break;
        }
        let h = &segment[at..];
        let producer = (
            i64::from_be_bytes(h[43..51].try_into().unwrap_or([0xff; 8])),
            i16::from_be_bytes(h[51..53].try_into().unwrap_or([0xff; 2])),
            i32::from_be_bytes(h[53..57].try_into().unwrap_or([0xff; 4])),
        );
        batches.push(ScannedBatch {
            base_offset: base,
            last_offset: last,
            records,
            byte: at as u64,
            len: len as u64,
            max_timestamp,
            producer,
        });
        next = Some(last.plus(1));
        at += len;
    }
    SegmentScan {
        valid_len: batches.last().map_or(0, |b| b.byte + b.len),
        batches,
        stopped,
    }
}

/// The sparse index of one scanned segment, by the same rule the ledger applies to appends (so a
/// recovered partition indexes exactly as a running one). A segment's batches are contiguous, so
/// replaying them from its first offset lands every entry at the batch's real offset.
pub fn index_segment(segment: Offset, scan: &SegmentScan) -> Vec<IndexEntry> {
    let Some(first) = scan.batches.first() else {
        return Vec::new();
    };
    let mut ledger = OffsetLedger::restore(first.base_offset, first.base_offset, Vec::new());
    for b in &scan.batches {
        let records = (b.last_offset.0 - b.base_offset.0 + 1).max(1) as u64;
        if ledger.begin_append(records, b.len, b.max_timestamp).is_ok() {
            let _ = ledger.complete_append(LogPosition {
                segment,
                byte: b.byte,
            });
        }
    }
    ledger.index_entries().to_vec()
}

const INDEX_MAGIC: &[u8; 8] = b"KLPIDX1\n";
const INDEX_ENTRY_LEN: usize = 32;

/// File name of the producer-state snapshot taken when the segment starting at `base` was closed.
pub fn producer_snapshot_file_name(base: Offset) -> String {
    format!("{:020}.producers", base.0)
}

/// File name of the sparse index of the segment starting at `base`.
pub fn index_file_name(base: Offset) -> String {
    format!("{:020}.index", base.0)
}

/// Encodes a closed segment's sparse index entries: magic, entries (offset, byte, max timestamp,
/// bytes; 8 bytes each, big-endian), CRC-32C of all before it. Written once, when the segment is
/// closed and fsynced, so recovery can trust the segment without reading it.
pub fn encode_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_MAGIC.len() + entries.len() * INDEX_ENTRY_LEN + 4);
    out.extend_from_slice(INDEX_MAGIC);
    for e in entries {
        out.extend_from_slice(&e.offset.0.to_be_bytes());
        out.extend_from_slice(&e.position.byte.to_be_bytes());
        out.extend_from_slice(&e.max_timestamp.0.to_be_bytes());
        out.extend_from_slice(&e.bytes.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes an index written by [`encode_index`] for `segment`; `None` if it is damaged in any way.
pub fn decode_index(bytes: &[u8], segment: Offset) -> Option<Vec<IndexEntry>> {
    let (body, crc) = bytes.split_last_chunk::<4>()?;
    let entries = body.strip_prefix(INDEX_MAGIC)?;
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) || entries.len() % INDEX_ENTRY_LEN != 0 {
        return None;
    }
    let word = |c: &[u8], i: usize| -> [u8; 8] { c[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]) };
    Some(
        entries
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(|c| IndexEntry {
                offset: Offset(i64::from_be_bytes(word(c, 0))),
                position: LogPosition {
                    segment,
                    byte: u64::from_be_bytes(word(c, 1)),
                },
                max_timestamp: TimestampMs(i64::from_be_bytes(word(c, 2))),
                bytes: u64::from_be_bytes(word(c, 3)),
            })
            .collect(),
    )
}

/// The byte range of `chunk` (which starts at a batch boundary) to return for a read of `offset`
/// (see [`pick_batches`]). Returns `(skip, take)`: bytes to skip, then bytes to return.
pub fn select_batches(
    chunk: &[u8],
    offset: Offset,
    end: Offset,
    max_bytes: usize,
) -> (usize, usize) {
    let peek = |at: u64| {
        let rest = chunk.get(usize::try_from(at).ok()?..)?;
        peek_batch(rest).map(|(base, last, len, _, _)| (base, last, len as u64))
    };
    let Ok((skip, take)) = pick_batches(0, offset, end, max_bytes as u64, |at| {
        Ok::<_, std::convert::Infallible>(peek(at))
    });
    (skip as usize, take as usize)
}

/// The batches a read of `offset` returns, walking from byte `at` (a batch boundary) with
/// `batch_at`, which gives the batch at a byte, `(base, last, length)`, or `None` where no whole
/// batch is: whole batches whose last offset is >= `offset` and whose base is < `end`, up to
/// `max_bytes` but always at least one batch. Returns `(from, taken)`: where they start and how
/// many bytes they take; with none taken, `from` is where the walk stopped.
pub fn pick_batches<E>(
    mut at: u64,
    offset: Offset,
    end: Offset,
    max_bytes: u64,
    mut batch_at: impl FnMut(u64) -> Result<Option<(Offset, Offset, u64)>, E>,
) -> Result<(u64, u64), E> {
    let mut start = None;
    while let Some((base, last, len)) = batch_at(at)? {
        if base >= end {
            break;
        }
        if last < offset {
            at += len;
            continue;
        }
        let s = *start.get_or_insert(at);
        if at + len - s > max_bytes && at > s {
            break;
        }
        at += len;
    }
    Ok(match start {
        Some(s) => (s, at - s),
        None => (at, 0),
    })
}

/// The first record in `chunk` (whole batches) with a timestamp >= `ts` and an offset < `end`.
pub fn find_by_time(
    chunk: &Bytes,
    ts: TimestampMs,
    end: Offset,
    max_decompressed: usize,
) -> Option<(Offset, TimestampMs)> {
    let mut at = 0usize;
    while let Some((base, _, len, max_ts, _)) = peek_batch(&chunk[at..]) {
        if base >= end {
            return None;
        }
        if max_ts >= ts {
            let batch = RecordBatch::parse(chunk.slice(at..at + len)).ok()?;
            let h = batch.header().clone();
            let records = batch.records(max_decompressed).ok()?;
            for r in records.iter().flatten() {
                let rts = if h.attributes.log_append_time() {
                    h.max_timestamp
                } else {
                    h.base_timestamp + r.timestamp_delta
                };
                let o = Offset(h.base_offset + i64::from(r.offset_delta));
                if o >= end {
                    return None;
                }
                if rts >= ts.0 {
                    return Some((o, TimestampMs(rts)));
                }
            }
        }
        at += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::compression::Compression;
    use crate::codec::record_batch::{BatchHeader, NewRecord, encode_batch};
    use bytes::BytesMut;

    fn batch(base: i64, n: usize, ts0: i64) -> Bytes {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                timestamp_delta: i as i64,
                value: Some(Bytes::from(vec![7; 10])),
                ..Default::default()
            })
            .collect();
        let header = BatchHeader {
            base_offset: base,
            base_timestamp: ts0,
            max_timestamp: ts0 + n as i64 - 1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            ..Default::default()
        };
        encode_batch(&header, Compression::None, &records).unwrap()
    }

    fn segment(parts: &[Bytes]) -> Bytes {
        let mut b = BytesMut::new();
        for p in parts {
            b.extend_from_slice(p);
        }
        b.freeze()
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(Offset(42)), "00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.log"),
            Some(Offset(42))
        );
        assert_eq!(parse_segment_file_name("42.log"), None);
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_batch() {
        let seg = segment(&[batch(0, 3, 100), batch(3, 2, 200), batch(5, 4, 300)]);
        let full = scan_segment(&seg, Some(Offset(0)));
        assert_eq!(full.batches.len(), 3);
        assert_eq!(full.valid_len, seg.len() as u64);
        assert_eq!(full.stopped, None);
        for cut in [
            seg.len() - 1,
            seg.len() - 30,
            full.batches[2].byte as usize + 5,
        ] {
            let torn = scan_segment(&seg.slice(..cut), Some(Offset(0)));
            assert_eq!(torn.batches.len(), 2, "cut at {cut}");
            assert_eq!(torn.valid_len, full.batches[2].byte);
            assert!(torn.stopped.is_some());
        }
        // A flipped byte in the middle batch fails its CRC: only the first survives.
        let mut bad = BytesMut::from(&seg[..]);
        let at = full.batches[1].byte as usize + 70;
        bad[at] ^= 0xff;
        assert_eq!(
            scan_segment(&bad.freeze(), Some(Offset(0))).batches.len(),
            1
        );
        // A gap in offsets is corruption too.
        let gap = segment(&[batch(0, 3, 100), batch(4, 2, 200)]);
        assert_eq!(scan_segment(&gap, Some(Offset(0))).batches.len(), 1);
    }

    #[test]
    fn index_files_round_trip_and_damage_is_detected() {
        let entries = vec![
            IndexEntry {
                offset: Offset(100),
                position: LogPosition {
                    segment: Offset(100),
                    byte: 0,
                },
                max_timestamp: TimestampMs(7),
                bytes: 4096,
            },
            IndexEntry {
                offset: Offset(164),
                position: LogPosition {
                    segment: Offset(100),
                    byte: 4096,
                },
                max_timestamp: TimestampMs(9),
                bytes: 10,
            },
        ];
        let bytes = encode_index(&entries);
        assert_eq!(decode_index(&bytes, Offset(100)), Some(entries));
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert_eq!(decode_index(&bad, Offset(100)), None);
        assert_eq!(decode_index(&bytes[..bytes.len() - 1], Offset(100)), None);
    }

    #[test]
    fn rebuilt_ledger_matches_the_log() {
        let seg = segment(&[batch(0, 3, 100), batch(3, 2, 200)]);
        let scan = scan_segment(&seg, Some(Offset(0)));
        let index = index_segment(Offset(0), &scan);
        assert_eq!(index[0].offset, Offset(0));
        // A segment that starts later keeps its real offsets.
        let later = segment(&[batch(100, 3, 100), batch(103, 2, 200)]);
        let index = index_segment(Offset(100), &scan_segment(&later, Some(Offset(100))));
        assert_eq!(index[0].offset, Offset(100));
    }

    #[test]
    fn reads_select_whole_batches_holding_the_offset() {
        let parts = [batch(0, 3, 100), batch(3, 2, 200), batch(5, 4, 300)];
        let seg = segment(&parts);
        let (l0, l1) = (parts[0].len(), parts[1].len());
        assert_eq!(
            select_batches(&seg, Offset(0), Offset(9), usize::MAX),
            (0, seg.len())
        );
        assert_eq!(
            select_batches(&seg, Offset(4), Offset(9), usize::MAX),
            (l0, seg.len() - l0)
        );
        // max_bytes smaller than a batch still returns one whole batch.
        assert_eq!(select_batches(&seg, Offset(4), Offset(9), 1), (l0, l1));
        // Nothing at or above the high watermark.
        assert_eq!(
            select_batches(&seg, Offset(0), Offset(5), usize::MAX),
            (0, l0 + l1)
        );
        assert_eq!(select_batches(&seg, Offset(9), Offset(9), usize::MAX).1, 0);
    }

    #[test]
    fn time_lookup_finds_the_first_late_enough_record() {
        let seg = segment(&[batch(0, 3, 100), batch(3, 2, 200), batch(5, 4, 300)]);
        assert_eq!(
            find_by_time(&seg, TimestampMs(101), Offset(9), 1 << 20),
            Some((Offset(1), TimestampMs(101)))
        );
        assert_eq!(
            find_by_time(&seg, TimestampMs(150), Offset(9), 1 << 20),
            Some((Offset(3), TimestampMs(200)))
        );
        assert_eq!(
            find_by_time(&seg, TimestampMs(999), Offset(9), 1 << 20),
            None
        );
        assert_eq!(
            find_by_time(&seg, TimestampMs(300), Offset(5), 1 << 20),
            None
        );
    }
}
