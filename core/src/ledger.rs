//! The offset ledger of one partition: dense offset assignment, the high watermark, the log start
//! offset, and a sparse index from offsets (and times) to positions in the backing log.
//!
//! Kafka offsets are dense: every record gets the next one, and a failed write must not leave a hole.
//! The ledger therefore hands out offsets only for the append being dispatched, and takes them back
//! ([`OffsetLedger::abort_append`]) if that append fails. Nothing at or above the high watermark is
//! ever exposed to a reader.
//!
//! The index is sparse: one [`IndexEntry`] per [`INDEX_INTERVAL_RECORDS`] records or
//! [`INDEX_INTERVAL_BYTES`] bytes, whichever comes first, so a 10M-record partition of small records
//! costs well under one byte of memory per record (an entry is 40 bytes, one per >= 64 records, plus an
//! 8-byte running maximum of timestamps), while a lookup by offset or by time is a binary search plus a
//! short forward scan by the storage.

use crate::types::{LogPosition, Offset, TimestampMs};

/// Records between index entries (at most).
pub const INDEX_INTERVAL_RECORDS: u64 = 64;
/// Bytes between index entries (at most).
pub const INDEX_INTERVAL_BYTES: u64 = 256 * 1024;

/// One sparse index entry: the batch starting at `offset` begins at `position`; `max_timestamp` is
/// the largest timestamp of all records before the next entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the batch the entry points at.
    pub offset: Offset,
    /// Where that batch starts.
    pub position: LogPosition,
    /// Largest record timestamp from this entry up to the next.
    pub max_timestamp: TimestampMs,
    /// Bytes of log from this entry up to the next (retention by size sums them per segment).
    pub bytes: u64,
}

/// One segment as the index sees it: enough for retention decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The segment's name (base offset of its file).
    pub segment: Offset,
    /// First offset indexed in it.
    pub first_offset: Offset,
    /// Bytes appended to it.
    pub bytes: u64,
    /// Largest record timestamp in it.
    pub max_timestamp: TimestampMs,
}

/// An append the ledger has assigned offsets to and not yet seen complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssignedAppend {
    /// First offset assigned.
    pub base_offset: Offset,
    /// Number of records.
    pub records: u64,
    /// Bytes appended.
    pub bytes: u64,
    /// Largest record timestamp.
    pub max_timestamp: TimestampMs,
}

/// The ledger of one partition.
#[derive(Clone, Debug, Default)]
pub struct OffsetLedger {
    log_start: Offset,
    /// Offset the next assigned record gets (the log end offset including an in-flight append).
    next: Offset,
    /// Everything below is written and may be read.
    high_watermark: Offset,
    in_flight: Option<AssignedAppend>,
    index: Vec<IndexEntry>,
    /// Per index entry, the largest `max_timestamp` up to and including it: ascending, so the first
    /// entry whose own maximum reaches a time is found by binary search.
    reach: Vec<TimestampMs>,
    records_since_entry: u64,
    bytes_since_entry: u64,
    /// Largest timestamp in the log and the offset of the first record that has it.
    max_timestamp: Option<(TimestampMs, Offset)>,
}

/// The ledger was asked for something out of order (a bug in the caller, not bad client input).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// An append was dispatched while another is in flight.
    #[error("an append is already in flight")]
    AppendInFlight,
    /// A completion arrived with no append in flight.
    #[error("no append in flight")]
    NoAppendInFlight,
}

impl OffsetLedger {
    /// A ledger restored from recovery: offsets `log_start..next` are stored.
    pub fn restore(log_start: Offset, next: Offset, index: Vec<IndexEntry>) -> OffsetLedger {
        let max_timestamp = index
            .iter()
            .max_by_key(|e| e.max_timestamp)
            .map(|e| (e.max_timestamp, e.offset));
        let mut ledger = OffsetLedger {
            log_start,
            next,
            high_watermark: next,
            index,
            max_timestamp,
            ..Default::default()
        };
        ledger.rebuild_reach();
        ledger
    }

    fn rebuild_reach(&mut self) {
        self.reach = self
            .index
            .iter()
            .scan(TimestampMs(i64::MIN), |reach, e| {
                *reach = (*reach).max(e.max_timestamp);
                Some(*reach)
            })
            .collect();
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start
    }

    /// Offset below which everything is written and readable.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// Whether an append is waiting for its completion.
    pub fn append_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The sparse index entries, ascending.
    pub fn index_entries(&self) -> &[IndexEntry] {
        &self.index
    }

    /// The segments the index spans, oldest first (the last is the one being appended to).
    pub fn segments(&self) -> Vec<SegmentSummary> {
        let mut out: Vec<SegmentSummary> = Vec::new();
        for e in &self.index {
            match out.last_mut() {
                Some(s) if s.segment == e.position.segment => {
                    s.bytes += e.bytes;
                    s.max_timestamp = s.max_timestamp.max(e.max_timestamp);
                }
                _ => out.push(SegmentSummary {
                    segment: e.position.segment,
                    first_offset: e.offset,
                    bytes: e.bytes,
                    max_timestamp: e.max_timestamp,
                }),
            }
        }
        out
    }

    /// Number of sparse index entries (for stats and the memory bound).
    pub fn index_len(&self) -> usize {
        self.index.len()
    }

    /// Largest timestamp stored and the first offset holding it.
    pub fn max_timestamp(&self) -> Option<(TimestampMs, Offset)> {
        self.max_timestamp
    }

    /// Assigns `records` offsets to an append about to be dispatched; returns the base offset.
    pub fn begin_append(
        &mut self,
        records: u64,
        bytes: u64,
        max_timestamp: TimestampMs,
    ) -> Result<Offset, LedgerError> {
        if self.in_flight.is_some() {
            return Err(LedgerError::AppendInFlight);
        }
        let base_offset = self.next;
        self.next = base_offset.plus(records as i64);
        self.in_flight = Some(AssignedAppend {
            base_offset,
            records,
            bytes,
            max_timestamp,
        });
        Ok(base_offset)
    }

    /// The append in flight is stored at `position`: its records become readable.
    pub fn complete_append(
        &mut self,
        position: LogPosition,
    ) -> Result<AssignedAppend, LedgerError> {
        let done = self.in_flight.take().ok_or(LedgerError::NoAppendInFlight)?;
        let start_new_entry = self.index.is_empty()
            || self.records_since_entry >= INDEX_INTERVAL_RECORDS
            || self.bytes_since_entry >= INDEX_INTERVAL_BYTES
            || self
                .index
                .last()
                .is_some_and(|e| e.position.segment != position.segment);
        let reach = self
            .reach
            .last()
            .map_or(done.max_timestamp, |r| (*r).max(done.max_timestamp));
        if start_new_entry {
            self.index.push(IndexEntry {
                offset: done.base_offset,
                position,
                max_timestamp: done.max_timestamp,
                bytes: done.bytes,
            });
            self.reach.push(reach);
            self.records_since_entry = 0;
            self.bytes_since_entry = 0;
        } else if let (Some(last), Some(last_reach)) =
            (self.index.last_mut(), self.reach.last_mut())
        {
            last.max_timestamp = last.max_timestamp.max(done.max_timestamp);
            last.bytes += done.bytes;
            *last_reach = reach;
        }
        self.records_since_entry += done.records;
        self.bytes_since_entry += done.bytes;
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| done.max_timestamp > ts)
        {
            self.max_timestamp = Some((done.max_timestamp, done.base_offset));
        }
        self.high_watermark = self.next;
        Ok(done)
    }

    /// The append in flight stored only its first `records` records (at most all of them): those
    /// become readable, the other offsets are handed out again.
    pub fn complete_partial(
        &mut self,
        records: u64,
        position: LogPosition,
    ) -> Result<AssignedAppend, LedgerError> {
        let a = self
            .in_flight
            .as_mut()
            .ok_or(LedgerError::NoAppendInFlight)?;
        if records < a.records {
            a.bytes = a.bytes * records / a.records.max(1);
            a.records = records;
            self.next = a.base_offset.plus(records as i64);
        }
        if records == 0 {
            return self.abort_append();
        }
        self.complete_append(position)
    }

    /// The append in flight failed, and the log holds records up to `end` that the ledger did not
    /// assign: they become readable (with no timestamps known), and appends continue after them.
    pub fn abort_and_adopt(
        &mut self,
        end: Offset,
        position: LogPosition,
    ) -> Result<AssignedAppend, LedgerError> {
        let failed = self.abort_append()?;
        if end > self.next {
            let n = (end.0 - self.next.0) as u64;
            self.begin_append(n, 0, TimestampMs(-1))?;
            self.complete_append(position)?;
        }
        Ok(failed)
    }

    /// The append in flight failed: its offsets are handed out again to the next append.
    pub fn abort_append(&mut self) -> Result<AssignedAppend, LedgerError> {
        let failed = self.in_flight.take().ok_or(LedgerError::NoAppendInFlight)?;
        self.next = failed.base_offset;
        Ok(failed)
    }

    /// Where to start scanning for `offset`: the last index entry at or before it.
    pub fn position_for(&self, offset: Offset) -> LogPosition {
        let i = self.index.partition_point(|e| e.offset <= offset);
        if i == 0 {
            self.index.first().map(|e| e.position).unwrap_or_default()
        } else {
            self.index[i - 1].position
        }
    }

    /// Where to start scanning for the first record with a timestamp >= `ts`: the first entry whose
    /// span holds such a record (Kafka's rule for unordered timestamps: the first batch whose max
    /// timestamp reaches `ts`, then the first record in it that does). `None` if none is that late.
    pub fn position_for_time(&self, ts: TimestampMs) -> Option<LogPosition> {
        let i = self.reach.partition_point(|r| *r < ts);
        self.index.get(i).map(|e| e.position)
    }

    /// Moves the log start forward (DeleteRecords, retention); never past the high watermark.
    /// Returns the new log start.
    pub fn advance_log_start(&mut self, offset: Offset) -> Offset {
        let offset = offset.min(self.high_watermark);
        if offset > self.log_start {
            self.log_start = offset;
            // Keep the last entry at or before the new start: it is where scans begin.
            let keep_from = self
                .index
                .partition_point(|e| e.offset <= offset)
                .saturating_sub(1);
            self.index.drain(..keep_from);
            self.rebuild_reach();
        }
        self.log_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(byte: u64) -> LogPosition {
        LogPosition {
            segment: Offset(0),
            byte,
        }
    }

    #[test]
    fn offsets_are_dense_and_failures_leave_no_hole() {
        let mut l = OffsetLedger::default();
        assert_eq!(l.begin_append(3, 300, TimestampMs(10)).unwrap(), Offset(0));
        assert_eq!(
            l.begin_append(1, 1, TimestampMs(1)),
            Err(LedgerError::AppendInFlight)
        );
        assert_eq!(
            l.high_watermark(),
            Offset(0),
            "nothing readable before completion"
        );
        l.complete_append(pos(0)).unwrap();
        assert_eq!(l.high_watermark(), Offset(3));
        assert_eq!(l.begin_append(2, 200, TimestampMs(20)).unwrap(), Offset(3));
        l.abort_append().unwrap();
        assert_eq!(l.high_watermark(), Offset(3));
        assert_eq!(
            l.begin_append(5, 500, TimestampMs(30)).unwrap(),
            Offset(3),
            "the failed offsets are reused"
        );
        l.complete_append(pos(300)).unwrap();
        assert_eq!(l.high_watermark(), Offset(8));
        assert_eq!(l.max_timestamp(), Some((TimestampMs(30), Offset(3))));
    }

    #[test]
    fn the_index_is_sparse_and_lookups_land_at_or_before() {
        let mut l = OffsetLedger::default();
        let mut byte = 0;
        for i in 0..10_000u64 {
            l.begin_append(1, 100, TimestampMs(i as i64)).unwrap();
            l.complete_append(pos(byte)).unwrap();
            byte += 100;
        }
        assert!(l.index_len() <= 10_000 / INDEX_INTERVAL_RECORDS as usize + 1);
        // The entry found for an offset starts at or before it and is the closest such entry.
        for o in [0i64, 1, 63, 64, 65, 5000, 9999] {
            let p = l.position_for(Offset(o));
            assert!(p.byte <= o as u64 * 100);
            assert!(o as u64 * 100 - p.byte < INDEX_INTERVAL_RECORDS * 100);
        }
        let t = l.position_for_time(TimestampMs(5000)).unwrap();
        assert!(t.byte <= 5000 * 100 && 5000 * 100 - t.byte < INDEX_INTERVAL_RECORDS * 100);
        assert_eq!(l.position_for_time(TimestampMs(10_000)), None);
    }

    #[test]
    fn memory_stays_under_a_byte_per_record() {
        let mut l = OffsetLedger::default();
        // 10M records in producer batches of 16.
        for b in 0..(10_000_000 / 16) {
            l.begin_append(16, 16 * 100, TimestampMs(b)).unwrap();
            l.complete_append(pos(b as u64 * 1600)).unwrap();
        }
        let bytes = l.index_len() * std::mem::size_of::<IndexEntry>();
        assert!(bytes < 10_000_000, "{bytes} bytes of index for 10M records");
    }

    #[test]
    fn log_start_moves_forward_only_and_not_past_the_high_watermark() {
        let mut l = OffsetLedger::restore(
            Offset(0),
            Offset(100),
            vec![IndexEntry {
                offset: Offset(0),
                position: pos(0),
                max_timestamp: TimestampMs(5),
                bytes: 100,
            }],
        );
        assert_eq!(l.advance_log_start(Offset(50)), Offset(50));
        assert_eq!(l.advance_log_start(Offset(10)), Offset(50));
        assert_eq!(l.advance_log_start(Offset(1000)), Offset(100));
        assert_eq!(l.position_for(Offset(100)), pos(0));
    }

    /// The binary search by time finds what a scan of the index for the first entry whose maximum
    /// reaches the time finds, with timestamps in any order and after the log start moves.
    #[test]
    fn time_lookups_find_the_first_entry_that_reaches_the_time() {
        let mut l = OffsetLedger::default();
        let mut seed = 7u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for b in 0..5_000u64 {
            let ts = TimestampMs((next() % 10_000) as i64);
            l.begin_append(1 + next() % 100, 1_000, ts).unwrap();
            l.complete_append(pos(b * 1_000)).unwrap();
            if b % 1_000 == 999 {
                l.advance_log_start(Offset((b * 20) as i64));
            }
            let probe = TimestampMs((next() % 10_500) as i64);
            let scanned = l
                .index_entries()
                .iter()
                .find(|e| e.max_timestamp >= probe)
                .map(|e| e.position);
            assert_eq!(
                l.position_for_time(probe),
                scanned,
                "after append {b}, time {}",
                probe.0
            );
        }
    }
}
