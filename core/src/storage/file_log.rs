//! The embedded log on disk: one directory per partition, segment files of record batches.
//!
//! Written against [`Disk`], so that every runtime shares it (each supplies a `Disk` over its
//! files and calls these blocking functions from threads that may block). The format and the
//! recovery decisions are [`super::log`]; this module moves bytes between files and those
//! functions, and keeps the ordering that makes them crash-safe (a segment is synced before its
//! index is written, a rename before the directory is synced).
//!
//! Layout: `DATA/<topic>-<partition>/<20-digit base offset>.log`, plus `log-start` (the log start
//! offset as decimal text, written by DeleteRecords and retention).

use super::disk::{Disk, DiskFile};
use super::log::{
    decode_index, encode_index, find_by_time, index_file_name, index_segment,
    parse_segment_file_name, peek_header, pick_batches, producer_snapshot_file_name, scan_segment,
    segment_file_name, select_batches,
};
use super::page_cache::Span;
use super::{AppendBatch, RecoveredPartition, StorageError, StoredProducerBatch};
use crate::codec::KStr;
use crate::codec::record_batch::BATCH_HEADER_LEN;
use crate::ledger::{IndexEntry, OffsetLedger};
use crate::producer::ProducerHistory;
use crate::types::{LogPosition, Offset, TimestampMs, TopicPartition};
use bytes::{Bytes, BytesMut};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes read per step when scanning forward for an offset or a time.
const SCAN_CHUNK: usize = 256 * 1024;

/// The most an append copies at a time to put its batches' offsets in (see [`write_batches`]).
const STAGE_BYTES: usize = 1024 * 1024;

/// Unsynced bytes an active segment gathers before their writeback is started (see
/// [`DiskFile::start_writeback`]): the kernel then writes unsynced data (acks=0/1, and
/// acks=all without its fsync) out as it comes, not in
/// bursts of gigabytes that stall the fsyncs of acks=all appends on the same device.
const WRITEBACK_BYTES: u64 = 1024 * 1024;

fn io_err(e: io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// The directory of a partition.
pub fn partition_dir(data_dir: &Path, tp: &TopicPartition) -> PathBuf {
    data_dir.join(format!("{}-{}", tp.topic, tp.partition))
}

/// One partition's log, owned by whoever performs its appends (one writer at a time).
pub struct PartitionLog {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    /// Base offsets of the segments, ascending; the last is active.
    segments: Vec<Offset>,
    active: Box<dyn DiskFile>,
    active_len: u64,
    /// Where in the active segment writeback was last started or synced up to.
    written_back: u64,
    /// Bytes of the active segment known durable: fsynced, or covered by write-ahead records
    /// that follow durable bytes (see [`Staged::follows_durable`]).
    durable_len: u64,
    /// Bytes of the active segment known fsynced (what a write-ahead checkpoint waits for).
    synced_len: u64,
    next_offset: Offset,
    segment_bytes: u64,
    /// The active segment's sparse index, built by the same rule as the core's ledger; written to
    /// `<base>.index` when the segment is closed.
    active_index: OffsetLedger,
    /// Idempotent producers' last batches, written to `<base>.producers` when a segment is closed
    /// so that recovery need not read closed segments to rebuild it.
    producers: ProducerHistory,
}

/// An append written to the active segment but not yet part of the log (see
/// [`PartitionLog::stage`]): what its commit records, read from the batches' headers.
#[must_use = "a staged append is committed or abandoned"]
#[derive(Debug)]
pub struct Staged {
    position: LogPosition,
    bytes: u64,
    records: i64,
    max_timestamp: i64,
    next_offset: Offset,
    producers: Vec<StoredProducerBatch>,
    follows_durable: bool,
}

/// How a committed append was made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Not yet (acks=0/1, or acks=all without its fsync).
    None,
    /// Its segment was fsynced.
    Synced,
    /// Its record is in an fsynced write-ahead file.
    Logged,
}

impl Staged {
    /// Bytes the append wrote.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether everything before the append in its segment is durable. A write-ahead record can
    /// make the append durable only then: replay after a power cut appends it where the log
    /// ends, and the bytes before it must be there for that to be its place.
    pub fn follows_durable(&self) -> bool {
        self.follows_durable
    }
}

/// A partition log found on disk, with what the core needs of it.
pub struct Recovery {
    /// The log, ready for appends.
    pub log: PartitionLog,
    /// Its state for the gateway.
    pub partition: RecoveredPartition,
    /// What recovery had to cut (a torn or corrupt tail), for the log.
    pub repaired: Option<String>,
}

impl PartitionLog {
    /// Creates the partition's directory and first segment (or opens what exists).
    pub fn create(
        disk: Arc<dyn Disk>,
        data_dir: &Path,
        tp: &TopicPartition,
        segment_bytes: u64,
    ) -> Result<PartitionLog, StorageError> {
        let dir = partition_dir(data_dir, tp);
        disk.create_dir_all(&dir).map_err(io_err)?;
        match Self::recover(disk.clone(), &dir, tp, segment_bytes)? {
            Some(r) => Ok(r.log),
            None => {
                let active = open_segment(&*disk, &dir, Offset(0))?;
                disk.sync_dir(&dir).map_err(io_err)?;
                Ok(PartitionLog {
                    disk,
                    dir,
                    segments: vec![Offset(0)],
                    active,
                    active_len: 0,
                    written_back: 0,
                    durable_len: 0,
                    synced_len: 0,
                    next_offset: Offset(0),
                    segment_bytes,
                    active_index: OffsetLedger::default(),
                    producers: ProducerHistory::default(),
                })
            }
        }
    }

    /// Opens a partition directory after a restart or crash: checks every batch's CRC, cuts a torn
    /// tail (and anything after it), and rebuilds the ledger's view. `None` if it holds no segment.
    pub fn recover(
        disk: Arc<dyn Disk>,
        dir: &Path,
        tp: &TopicPartition,
        segment_bytes: u64,
    ) -> Result<Option<Recovery>, StorageError> {
        let mut bases: Vec<Offset> = disk
            .list(dir)
            .map_err(io_err)?
            .iter()
            .filter_map(|(name, _)| parse_segment_file_name(name))
            .collect();
        bases.sort();
        if bases.is_empty() {
            return Ok(None);
        }
        let mut scans = Vec::new();
        let mut closed_index: Vec<IndexEntry> = Vec::new();
        let mut expected = None;
        let mut cut_from = None;
        let mut repaired = None;
        for (i, base) in bases.iter().enumerate() {
            // A closed segment was fsynced before its index was written: the index is enough.
            if let Some(next_base) = bases.get(i + 1)
                && expected.is_none_or(|e| e == *base)
                && let Some(entries) = disk
                    .read(&dir.join(index_file_name(*base)))
                    .ok()
                    .and_then(|b| decode_index(&b, *base))
            {
                closed_index.extend(entries);
                expected = Some(*next_base);
                continue;
            }
            let path = dir.join(segment_file_name(*base));
            let bytes = Bytes::from(disk.read(&path).map_err(io_err)?);
            // Each segment must start where the previous one ended (the first, at its own name).
            let scan = scan_segment(&bytes, Some(expected.unwrap_or(*base)));
            if scan.valid_len < bytes.len() as u64 {
                repaired = Some(format!(
                    "segment {} cut from {} to {} bytes: {}",
                    base.0,
                    bytes.len(),
                    scan.valid_len,
                    scan.stopped.as_deref().unwrap_or("torn tail")
                ));
                let f = disk.open(&path, false).map_err(io_err)?;
                f.set_len(scan.valid_len).map_err(io_err)?;
                f.sync().map_err(io_err)?;
                cut_from = Some(i + 1);
            }
            expected = Some(
                scan.batches
                    .last()
                    .map_or(expected.unwrap_or(*base), |b| b.last_offset.plus(1)),
            );
            scans.push((*base, scan));
            if cut_from.is_some() {
                break;
            }
        }
        // Segments after a cut hold data that no longer follows on: they go.
        if let Some(from) = cut_from {
            for base in &bases[from..] {
                disk.remove_file(&dir.join(segment_file_name(*base)))
                    .map_err(io_err)?;
                let _ = disk.remove_file(&dir.join(index_file_name(*base)));
            }
            bases.truncate(from);
            disk.sync_dir(dir).map_err(io_err)?;
        }
        let log_start = read_log_start(&*disk, dir)?.unwrap_or(bases[0]);
        // `expected` now holds the offset after the last stored record (or the last segment's base).
        let next = expected.unwrap_or(log_start);
        let scanned_index: Vec<IndexEntry> = scans
            .iter()
            .flat_map(|(base, scan)| index_segment(*base, scan))
            .collect();
        let active_base = *bases.last().unwrap_or(&Offset(0));
        let active_index = OffsetLedger::restore(
            active_base,
            next,
            scanned_index
                .iter()
                .filter(|e| e.position.segment == active_base)
                .copied()
                .collect(),
        );
        let mut index = closed_index;
        index.extend(scanned_index);
        // Producer state: the snapshot taken when the newest closed segment was closed, then every
        // batch scanned after it.
        let snapshot = bases.iter().rev().skip(1).find_map(|b| {
            let bytes = disk.read(&dir.join(producer_snapshot_file_name(*b))).ok()?;
            Some((*b, ProducerHistory::decode(&bytes)?))
        });
        let (mut producers, after) = match snapshot {
            Some((b, h)) => (
                h,
                bases
                    .iter()
                    .find(|x| **x > b)
                    .copied()
                    .unwrap_or(Offset(i64::MAX)),
            ),
            None => (ProducerHistory::default(), Offset(0)),
        };
        for (_, scan) in &scans {
            for b in scan.batches.iter().filter(|b| b.base_offset >= after) {
                let (pid, epoch, first) = b.producer;
                let count = (b.last_offset.0 - b.base_offset.0 + 1) as i32;
                producers.record(pid, epoch, first, count, b.base_offset);
            }
        }
        let next = next.max(*bases.last().unwrap_or(&Offset(0)));
        let log_start = log_start.min(next);
        let active = open_segment(&*disk, dir, active_base)?;
        let active_len = active.size().map_err(io_err)?;
        let topic_config = read_topic_config(&*disk, dir)?;
        let log = PartitionLog {
            disk,
            dir: dir.to_path_buf(),
            segments: bases,
            active,
            active_len,
            written_back: active_len,
            // what a crash left may still be only in the page cache (after a kill): the first
            // durable append fsyncs the segment rather than trust it
            durable_len: 0,
            synced_len: 0,
            next_offset: next,
            segment_bytes,
            active_index,
            producers: producers.clone(),
        };
        let partition = RecoveredPartition {
            partition: tp.clone(),
            log_start_offset: log_start,
            next_offset: next,
            index,
            topic_config,
            producers,
        };
        Ok(Some(Recovery {
            log,
            partition,
            repaired,
        }))
    }

    /// Appends batches with their assigned base offsets; fsyncs when `sync`. Returns where the first
    /// batch starts. On error nothing is acknowledged and the file is cut back to its old length.
    pub fn append(
        &mut self,
        batches: &[AppendBatch],
        sync: bool,
    ) -> Result<LogPosition, StorageError> {
        let staged = self.stage(batches)?;
        if sync && let Err(e) = self.flush() {
            self.abandon(staged);
            return Err(e);
        }
        let durability = if sync {
            Durability::Synced
        } else {
            Durability::None
        };
        Ok(self.commit(staged, durability))
    }

    /// Writes batches after the log's end without making them part of the log: [`Self::commit`]
    /// does that (after the caller's [`Self::flush`], for a durable append) and
    /// [`Self::abandon`] cuts them off. Splitting the two lets one writer stage the appends of many
    /// partitions and fsync each once for all of them. Nothing else may change this log between
    /// the stage and its commit or abandon. On error the file is already cut back.
    pub fn stage(&mut self, batches: &[AppendBatch]) -> Result<Staged, StorageError> {
        let Some(first) = batches.first() else {
            return Ok(Staged {
                position: self.end_position(),
                bytes: 0,
                records: 0,
                max_timestamp: -1,
                next_offset: self.next_offset,
                producers: Vec::new(),
                follows_durable: self.durable_len == self.active_len,
            });
        };
        if self.active_len >= self.segment_bytes && self.active_len > 0 {
            self.roll(first.base_offset)?;
        }
        let position = self.end_position();
        let bytes = match write_batches(&*self.active, self.active_len, batches) {
            Ok(n) => n,
            Err(e) => {
                let _ = self.active.set_len(self.active_len);
                return Err(io_err(e));
            }
        };
        let last = batches.last().unwrap_or(first);
        Ok(Staged {
            follows_durable: self.durable_len == position.byte,
            position,
            bytes,
            records: batches
                .iter()
                .map(|b| i64::from(be_i32(&b.bytes, 57)))
                .sum(),
            max_timestamp: batches
                .iter()
                .map(|b| be_i64(&b.bytes, 35))
                .max()
                .unwrap_or(-1),
            next_offset: last.base_offset.plus(i64::from(be_i32(&last.bytes, 57))),
            producers: batches
                .iter()
                .map(|b| {
                    (
                        be_i64(&b.bytes, 43),
                        be_i16(&b.bytes, 51),
                        be_i32(&b.bytes, 53),
                        be_i32(&b.bytes, 57),
                        b.base_offset,
                    )
                })
                .collect(),
        })
    }

    /// Makes a staged append part of the log, made durable as `durability` says; returns where
    /// its first batch starts.
    pub fn commit(&mut self, staged: Staged, durability: Durability) -> LogPosition {
        if staged.bytes == 0 {
            return staged.position;
        }
        if self
            .active_index
            .begin_append(
                staged.records.max(1) as u64,
                staged.bytes,
                TimestampMs(staged.max_timestamp),
            )
            .is_ok()
        {
            let _ = self.active_index.complete_append(staged.position);
        }
        for (pid, epoch, first, count, base) in staged.producers {
            self.producers.record(pid, epoch, first, count, base);
        }
        self.active_len += staged.bytes;
        if durability == Durability::Synced
            || (durability == Durability::Logged && staged.follows_durable)
        {
            self.durable_len = self.active_len;
        }
        if durability == Durability::Synced {
            self.written_back = self.active_len;
            self.synced_len = self.active_len;
        } else if self.active_len - self.written_back >= WRITEBACK_BYTES {
            // a hint: if it fails, the kernel's own writeback still comes
            let _ = self
                .active
                .start_writeback(self.written_back, self.active_len - self.written_back);
            self.written_back = self.active_len;
        }
        self.next_offset = staged.next_offset;
        staged.position
    }

    /// Cuts a staged append off the file (its fsync failed): the log is as before the stage.
    pub fn abandon(&mut self, staged: Staged) {
        if staged.bytes > 0 {
            let _ = self.active.set_len(self.active_len);
        }
    }

    fn end_position(&self) -> LogPosition {
        LogPosition {
            segment: *self.segments.last().unwrap_or(&Offset(0)),
            byte: self.active_len,
        }
    }

    fn roll(&mut self, base: Offset) -> Result<(), StorageError> {
        self.active.sync().map_err(io_err)?;
        let closing = *self.segments.last().unwrap_or(&Offset(0));
        let entries: Vec<IndexEntry> = self
            .active_index
            .index_entries()
            .iter()
            .filter(|e| e.position.segment == closing)
            .copied()
            .collect();
        let disk = &*self.disk;
        disk.replace(
            &self.dir.join(index_file_name(closing)),
            &encode_index(&entries),
        )
        .map_err(io_err)?;
        disk.replace(
            &self.dir.join(producer_snapshot_file_name(closing)),
            &self.producers.encode(),
        )
        .map_err(io_err)?;
        self.active_index = OffsetLedger::restore(base, base, Vec::new());
        self.active = open_segment(disk, &self.dir, base)?;
        self.active_len = 0;
        self.written_back = 0;
        self.durable_len = 0;
        self.synced_len = 0;
        self.segments.push(base);
        disk.sync_dir(&self.dir).map_err(io_err)
    }

    /// Makes everything written durable (interval flush, shutdown, checkpoint).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.active.sync().map_err(io_err)?;
        self.durable_len = self.active_len;
        self.synced_len = self.active_len;
        Ok(())
    }

    /// Whether bytes of the active segment are durable only through write-ahead records, which a
    /// checkpoint is about to make stale: those a checkpoint must fsync first. Bytes past them
    /// (acks=1 appends) were never promised durable, so they are left to writeback: fsyncing
    /// them could make a checkpoint write gigabytes while every acks=all producer waits.
    pub fn relies_on_wal(&self) -> bool {
        self.synced_len < self.durable_len
    }

    /// Records a new log start and deletes segments wholly below it.
    pub fn truncate_before(&mut self, offset: Offset) -> Result<(), StorageError> {
        let disk = &*self.disk;
        disk.replace(&self.dir.join("log-start"), offset.0.to_string().as_bytes())
            .map_err(io_err)?;
        // A segment can go when the next one starts at or below the new log start.
        while self.segments.len() > 1 && self.segments[1] <= offset {
            let base = self.segments[0];
            disk.remove_file(&self.dir.join(segment_file_name(base)))
                .map_err(io_err)?;
            let _ = disk.remove_file(&self.dir.join(index_file_name(base)));
            let _ = disk.remove_file(&self.dir.join(producer_snapshot_file_name(base)));
            self.segments.remove(0);
        }
        disk.sync_dir(&self.dir).map_err(io_err)
    }

    /// Lets the page cache drop the bytes of `span` (see [`super::page_cache`]); a segment that
    /// is gone needs nothing.
    pub fn drop_cached(&self, span: &Span) {
        let len = span.bytes();
        if self.segments.last() == Some(&span.segment) {
            let _ = self.active.drop_cache(span.from, len);
        } else if self.segments.contains(&span.segment)
            && let Ok(file) = self
                .disk
                .open(&self.dir.join(segment_file_name(span.segment)), false)
        {
            let _ = file.drop_cache(span.from, len);
        }
    }

    /// The next offset after the last stored record.
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }
}

/// Reads whole batches for `offset` (see `StorageCommand::Read`), scanning forward from `from`.
///
/// Why it walks the batch headers instead of reading a chunk and picking batches out of it: a
/// fetch passes its batches on as they are, and copying them out of the page cache was the
/// largest cost of serving consumers (45% of the gateway's CPU samples in a librdkafka read, where
/// Kafka's `sendfile` copies nothing). The walk reads only headers (see [`Headers`]) and asks the
/// file for the chosen bytes as a region ([`DiskFile::read_region`]), which a runtime may send
/// from the file without copying them at all.
pub fn read(
    disk: &dyn Disk,
    dir: &Path,
    offset: Offset,
    from: LogPosition,
    max_bytes: usize,
    end: Offset,
) -> Result<Bytes, StorageError> {
    let mut segment = from.segment;
    let mut at = from.byte;
    loop {
        let path = dir.join(segment_file_name(segment));
        let file = match disk.open(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Bytes::new()),
            Err(e) => return Err(io_err(e)),
        };
        let len = file.size().map_err(io_err)?;
        let mut headers = Headers::new(&*file, &path, len);
        let (from, taken) =
            pick_batches(at, offset, end, max_bytes as u64, |at| headers.batch_at(at))?;
        if taken > 0 {
            return headers.bytes(from, taken as usize);
        }
        at = from;
        if at < len {
            // stopped short of the segment's end: at a batch from `end` on, or at bytes still
            // being written
            return Ok(Bytes::new());
        }
        match next_segment(disk, dir, segment)? {
            Some(next) => {
                segment = next;
                at = 0;
            }
            None => return Ok(Bytes::new()),
        }
    }
}

/// Bytes a header walk reads at once where batches are small, so that a segment of small batches
/// costs a read per this many bytes rather than one per batch.
const HEADER_WINDOW: usize = 64 * 1024;

/// What the first read of a walk takes: a fetch at the end of the log often wants a few small
/// batches, which this covers in one read.
const FIRST_HEADER_WINDOW: usize = 4096;

/// A batch at least this long is followed by a read of the next header only: copying a window
/// past it would copy much of the next batch, which the walk means not to read. Why this low: a
/// header read costs a system call, about what copying a few KiB out of the page cache costs, and
/// the Java producer's batches (`batch.size` 16 KiB: about 15.5 KiB of 1 KiB records) must count
/// as large.
const LARGE_BATCH: u64 = 4 * 1024;

/// A segment's batch headers, read a window at a time (see [`read`]).
struct Headers<'a> {
    file: &'a dyn DiskFile,
    path: &'a Path,
    /// The file's length when the walk started: bytes past it are being written.
    len: u64,
    window: Bytes,
    window_at: u64,
    next_window: usize,
}

impl<'a> Headers<'a> {
    fn new(file: &'a dyn DiskFile, path: &'a Path, len: u64) -> Headers<'a> {
        Headers {
            file,
            path,
            len,
            window: Bytes::new(),
            window_at: 0,
            next_window: FIRST_HEADER_WINDOW,
        }
    }

    /// Whether the window holds bytes `at..at + n`.
    fn holds(&self, at: u64, n: u64) -> bool {
        self.window_at <= at && at + n <= self.window_at + self.window.len() as u64
    }

    /// The batch at byte `at`: (base, last, length). `None` where no whole batch is there (the
    /// end of the file, or a batch still being written); an error where its header is not one.
    fn batch_at(&mut self, at: u64) -> Result<Option<(Offset, Offset, u64)>, StorageError> {
        let header = BATCH_HEADER_LEN as u64;
        if at.saturating_add(header) > self.len {
            return Ok(None);
        }
        if !self.holds(at, header) {
            // (at least a header, which the file holds past `at`: checked above)
            let want = (self.next_window as u64).max(header).min(self.len - at) as usize;
            self.window = read_at(self.file, at, want)?;
            self.window_at = at;
            if !self.holds(at, header) {
                return Ok(None); // (the file was cut meanwhile)
            }
        }
        let from = (at - self.window_at) as usize;
        let (base, last, len, _, _) = peek_header(&self.window[from..]).ok_or_else(|| {
            StorageError::Corrupt(format!("bad batch at {}:{at}", self.path.display()))
        })?;
        let len = len as u64;
        if at + len > self.len {
            return Ok(None);
        }
        self.next_window = if len >= LARGE_BATCH {
            BATCH_HEADER_LEN
        } else {
            HEADER_WINDOW
        };
        Ok(Some((base, last, len)))
    }

    /// Bytes `at..at + n`: from the window when it holds them, else as a region of the file.
    fn bytes(&self, at: u64, n: usize) -> Result<Bytes, StorageError> {
        if self.holds(at, n as u64) {
            let from = (at - self.window_at) as usize;
            Ok(detach(&self.window, from..from + n))
        } else {
            self.file.read_region(at, n).map_err(io_err)
        }
    }
}

/// Finds the first record with a timestamp >= `ts` below `end`, scanning forward from `from`.
pub fn find_time(
    disk: &dyn Disk,
    dir: &Path,
    ts: TimestampMs,
    from: LogPosition,
    end: Offset,
    max_decompressed: usize,
) -> Result<Option<(Offset, TimestampMs)>, StorageError> {
    let mut position = from;
    loop {
        let path = dir.join(segment_file_name(position.segment));
        let Ok(file) = disk.open(&path, false) else {
            return Ok(None);
        };
        let file = &*file;
        let len = file.size().map_err(io_err)?;
        let mut at = position.byte;
        while at < len {
            let chunk = read_at(file, at, (SCAN_CHUNK as u64).min(len - at) as usize)?;
            let (skip, take) = select_batches(&chunk, Offset(0), end, usize::MAX);
            let whole = if take == 0 {
                let n = batch_len_at(&chunk[skip..]).unwrap_or(0);
                if n == 0 || at + skip as u64 + n as u64 > len {
                    return Ok(None);
                }
                read_at(file, at + skip as u64, n)?
            } else {
                chunk.slice(skip..skip + take)
            };
            if let Some(hit) = find_by_time(&whole, ts, end, max_decompressed) {
                return Ok(Some(hit));
            }
            if first_base(&whole).is_none() {
                return Ok(None);
            }
            at += (skip + whole.len()) as u64;
        }
        match next_segment(disk, dir, position.segment)? {
            Some(next) => {
                position = LogPosition {
                    segment: next,
                    byte: 0,
                }
            }
            None => return Ok(None),
        }
    }
}

/// Writes `batches` at byte `at` with their base offsets in place of the producer's; returns the
/// bytes written. The batches stay the request's bytes (`Bytes` slices): small ones are gathered
/// into writes of up to [`STAGE_BYTES`], a larger one is written as its offset and the rest, so an
/// append of any size copies at most that much (a whole-group copy doubled the memory of a large
/// group in flight).
fn write_batches(file: &dyn DiskFile, at: u64, batches: &[AppendBatch]) -> io::Result<u64> {
    let total: usize = batches.iter().map(|b| b.bytes.len()).sum();
    let mut staged = BytesMut::with_capacity(total.min(STAGE_BYTES));
    let mut end = at;
    for b in batches {
        if staged.len() + b.bytes.len() > STAGE_BYTES && !staged.is_empty() {
            file.write_all_at(&staged, end)?;
            end += staged.len() as u64;
            staged.clear();
        }
        let offset = b.base_offset.0.to_be_bytes();
        // (the core appends whole parsed batches: 61 bytes at least)
        let rest = b.bytes.get(8..).unwrap_or_default();
        if b.bytes.len() > STAGE_BYTES {
            file.write_all_at(&offset, end)?;
            file.write_all_at(rest, end + 8)?;
            end += 8 + rest.len() as u64;
        } else {
            staged.extend_from_slice(&offset);
            staged.extend_from_slice(rest);
        }
    }
    if !staged.is_empty() {
        file.write_all_at(&staged, end)?;
        end += staged.len() as u64;
    }
    Ok(end - at)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, i32::from_be_bytes)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, i16::from_be_bytes)
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, i64::from_be_bytes)
}

fn batch_len_at(chunk: &[u8]) -> Option<usize> {
    let len = i32::from_be_bytes(chunk.get(8..12)?.try_into().ok()?);
    usize::try_from(len).ok()?.checked_add(12)
}

fn first_base(chunk: &[u8]) -> Option<Offset> {
    Some(Offset(i64::from_be_bytes(chunk.get(..8)?.try_into().ok()?)))
}

fn next_segment(
    disk: &dyn Disk,
    dir: &Path,
    after: Offset,
) -> Result<Option<Offset>, StorageError> {
    let mut next: Option<Offset> = None;
    for (name, _) in disk.list(dir).map_err(io_err)? {
        if let Some(base) = parse_segment_file_name(&name)
            && base > after
            && next.is_none_or(|n| base < n)
        {
            next = Some(base);
        }
    }
    Ok(next)
}

/// `chunk[range]`, as a slice of `chunk` when it is most of it and as a copy when it is not. A
/// fetch response keeps what it sends until the socket took it, and a slice keeps its whole chunk:
/// a 1 KiB answer out of a 256 KiB scan would otherwise hold the 256 KiB.
fn detach(chunk: &Bytes, range: std::ops::Range<usize>) -> Bytes {
    if range.len() * 2 >= chunk.len() {
        chunk.slice(range)
    } else {
        Bytes::copy_from_slice(&chunk[range])
    }
}

fn read_at(file: &dyn DiskFile, at: u64, len: usize) -> Result<Bytes, StorageError> {
    file.read_bytes_at(at, len).map_err(io_err)
}

fn open_segment(
    disk: &dyn Disk,
    dir: &Path,
    base: Offset,
) -> Result<Box<dyn DiskFile>, StorageError> {
    disk.open(&dir.join(segment_file_name(base)), true)
        .map_err(io_err)
}

fn read_log_start(disk: &dyn Disk, dir: &Path) -> Result<Option<Offset>, StorageError> {
    match disk.read(&dir.join("log-start")) {
        Ok(s) => Ok(String::from_utf8_lossy(&s).trim().parse().ok().map(Offset)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// Every partition directory under `data_dir`, recovered, after the write-ahead files are
/// replayed into them (and retired: see [`super::wal::replay`]).
pub fn recover_all(
    disk: Arc<dyn Disk>,
    data_dir: &Path,
    segment_bytes: u64,
) -> Result<Vec<Recovery>, StorageError> {
    disk.create_dir_all(data_dir).map_err(io_err)?;
    for note in super::wal::replay(disk.clone(), data_dir, segment_bytes)? {
        tracing::warn!(%note, "write-ahead replay");
    }
    let mut out = Vec::new();
    for (name, is_dir) in disk.list(data_dir).map_err(io_err)? {
        if !is_dir {
            continue;
        }
        let Some((topic, partition)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(partition) = partition.parse::<i32>() else {
            continue;
        };
        let tp = TopicPartition {
            topic: KStr::from(topic),
            partition,
        };
        match PartitionLog::recover(disk.clone(), &data_dir.join(&name), &tp, segment_bytes)? {
            Some(r) => out.push(r),
            None => {
                let log = PartitionLog::create(disk.clone(), data_dir, &tp, segment_bytes)?;
                let partition = RecoveredPartition {
                    partition: tp,
                    log_start_offset: Offset(0),
                    next_offset: Offset(0),
                    index: Vec::new(),
                    topic_config: Vec::new(),
                    producers: ProducerHistory::default(),
                };
                out.push(Recovery {
                    log,
                    partition,
                    repaired: None,
                });
            }
        }
    }
    Ok(out)
}

/// Stores a topic's explicitly set configuration in its partition directory (atomically).
pub fn write_topic_config(
    disk: &dyn Disk,
    data_dir: &Path,
    tp: &TopicPartition,
    entries: &[(String, String)],
) -> Result<(), StorageError> {
    let dir = partition_dir(data_dir, tp);
    let text: String = entries.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    disk.replace(&dir.join("topic.conf"), text.as_bytes())
        .map_err(io_err)?;
    disk.sync_dir(&dir).map_err(io_err)
}

fn read_topic_config(disk: &dyn Disk, dir: &Path) -> Result<Vec<(String, String)>, StorageError> {
    match disk.read(&dir.join("topic.conf")) {
        Ok(text) => Ok(String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(e)),
    }
}

/// Removes a partition's directory.
pub fn delete_partition(
    disk: &dyn Disk,
    data_dir: &Path,
    tp: &TopicPartition,
) -> Result<(), StorageError> {
    match disk.remove_dir_all(&partition_dir(data_dir, tp)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    //! The log on a disk double that keeps written bytes apart from synced ones and can "lose
    //! power" (see [`crate::storage::tests`]).
    use super::*;
    use crate::codec::compression::Compression;
    use crate::codec::record_batch::{BatchHeader, NewRecord, encode_batch};
    use crate::storage::tests::{MemDisk, batch, big_batch, read_bases, seeded};

    /// A read keeps its chunk only when it sends most of it.
    #[test]
    fn a_small_read_out_of_a_large_chunk_is_copied_out_of_it() {
        let chunk = Bytes::from(vec![1u8; 1000]);
        let most = detach(&chunk, 100..700);
        assert_eq!(most.as_ptr(), chunk[100..].as_ptr(), "a slice");
        let little = detach(&chunk, 100..200);
        assert_eq!(little, chunk[100..200]);
        assert_ne!(little.as_ptr(), chunk[100..].as_ptr(), "a copy");
    }

    /// A log of `batches` (each with offsets from the last one's end) in one segment on a fresh
    /// disk double: the disk, the partition directory, and each batch's offsets.
    fn log_of(batches: Vec<Bytes>) -> (Arc<MemDisk>, PathBuf, Vec<(i64, i64)>) {
        let tp = TopicPartition {
            topic: KStr::from("t"),
            partition: 0,
        };
        let data = Path::new("/data");
        let disk = Arc::new(MemDisk::default());
        let mut log = PartitionLog::create(disk.clone(), data, &tp, 1 << 40).expect("creates");
        let appends = from_zero(batches);
        let offsets = appends
            .iter()
            .map(|b| {
                let base = b.base_offset.0;
                (base, base + i64::from(be_i32(&b.bytes, 57)) - 1)
            })
            .collect();
        log.append(&appends, false).expect("appends");
        (disk, partition_dir(data, &tp), offsets)
    }

    /// `batches` as appends with offsets from 0 on, each after the one before.
    fn from_zero(batches: impl IntoIterator<Item = Bytes>) -> Vec<AppendBatch> {
        batches
            .into_iter()
            .scan(0i64, |next, bytes| {
                let base = Offset(*next);
                *next += i64::from(be_i32(&bytes, 57));
                Some(AppendBatch {
                    base_offset: base,
                    bytes,
                })
            })
            .collect()
    }

    fn segment_file(disk: &MemDisk, dir: &Path) -> crate::storage::tests::MemFile {
        disk.files()
            .get(&dir.join(segment_file_name(Offset(0))))
            .expect("the segment")
            .clone()
    }

    const START: LogPosition = LogPosition {
        segment: Offset(0),
        byte: 0,
    };

    /// A fetch of large batches reads their headers and nothing more, and asks for the batches
    /// it picked as one region of the file, which a runtime may send without copying.
    #[test]
    fn a_read_of_large_batches_reads_only_their_headers() {
        let batches: Vec<Bytes> = (0..10).map(|i| big_batch(4, 16 * 1024, i)).collect();
        let lens: Vec<usize> = batches.iter().map(Bytes::len).collect();
        let (disk, dir, _) = log_of(batches);
        let file = segment_file(&disk, &dir);
        let whole = Bytes::from(file.state().written.clone());

        let got = read(&*disk, &dir, Offset(0), START, 1 << 20, Offset(40)).expect("reads");
        assert_eq!(got, whole, "all ten batches");
        let copied: usize = file.state().reads.iter().map(|r| r.1).sum();
        assert!(
            copied <= FIRST_HEADER_WINDOW + 10 * BATCH_HEADER_LEN,
            "{copied} bytes read for the headers of 10 batches"
        );
        assert_eq!(file.state().regions, vec![(0, whole.len())]);

        // offset 9 is in the third batch; 100 KiB takes it and not the next
        let got = read(&*disk, &dir, Offset(9), START, 100 * 1024, Offset(40)).expect("reads");
        let third = lens[0] + lens[1];
        assert_eq!(got, whole.slice(third..third + lens[2]));
        // a limit below the first batch still gets it whole
        let got = read(&*disk, &dir, Offset(0), START, 10, Offset(40)).expect("reads");
        assert_eq!(got, whole.slice(..lens[0]));
        // nothing from `end` on
        let got = read(&*disk, &dir, Offset(8), START, 1 << 20, Offset(8)).expect("reads");
        assert!(got.is_empty());
    }

    /// The Java producer's batches (`batch.size` 16 KiB: 15 values of 1 KiB) count as large: a
    /// read of 20 of them copies their headers only.
    #[test]
    fn a_read_of_java_sized_batches_reads_only_their_headers() {
        let (disk, dir, _) = log_of((0..20).map(|i| big_batch(15, 1024, i)).collect());
        let file = segment_file(&disk, &dir);
        let whole = Bytes::from(file.state().written.clone());
        let got = read(&*disk, &dir, Offset(0), START, 1 << 20, Offset(300)).expect("reads");
        assert_eq!(got, whole);
        let copied: usize = file.state().reads.iter().map(|r| r.1).sum();
        assert!(
            copied <= FIRST_HEADER_WINDOW + 20 * BATCH_HEADER_LEN,
            "{copied} bytes read for the headers of 20 batches of {} bytes",
            whole.len() / 20
        );
    }

    /// Whatever the batch sizes, a read returns what picking batches out of the whole segment
    /// does (`select_batches`, the rule before headers were walked), also with half a batch at
    /// the end of the file (a write in progress).
    #[test]
    fn reads_pick_the_batches_that_picking_from_the_whole_segment_does() {
        for seed in 0..8 {
            let mut rng = seeded(seed);
            let batches: Vec<Bytes> = (0..60)
                .map(|i| match rng() % 4 {
                    0 => big_batch(
                        1 + (rng() % 3) as usize,
                        8 * 1024 + (rng() % 30_000) as usize,
                        i,
                    ),
                    1 => big_batch(1, 1 + (rng() % 3000) as usize, i),
                    _ => batch(1 + (rng() % 20) as usize, i),
                })
                .collect();
            let torn = batch(5, 99);
            let (disk, dir, offsets) = log_of(batches);
            let file = segment_file(&disk, &dir);
            if seed % 2 == 1 {
                let at = file.state().written.len() as u64;
                file.write_all_at(&torn[..torn.len() / 2], at)
                    .expect("writes");
            }
            let whole = Bytes::from(file.state().written.clone());
            let last = offsets.last().expect("batches").1;
            for _ in 0..200 {
                let offset = Offset((rng() % (last as u64 + 3)) as i64);
                let end = Offset((rng() % (last as u64 + 3)) as i64);
                let max = [1, 1000, 20_000, 100_000, 1 << 20][(rng() % 5) as usize];
                let (skip, take) = select_batches(&whole, offset, end, max);
                let got = read(&*disk, &dir, offset, START, max, end).expect("reads");
                assert_eq!(
                    got,
                    whole.slice(skip..skip + take),
                    "seed {seed}: offset {offset:?}, end {end:?}, max {max}"
                );
            }
        }
    }

    /// A header whose length cannot be a batch's is an error, not the end of the log.
    #[test]
    fn a_read_that_meets_a_bad_header_fails() {
        let (disk, dir, _) = log_of(vec![batch(2, 1), batch(2, 2)]);
        let file = segment_file(&disk, &dir);
        let second = batch(2, 1).len() as u64;
        file.write_all_at(&0i32.to_be_bytes(), second + 8)
            .expect("writes");
        let got = read(&*disk, &dir, Offset(2), START, 1 << 20, Offset(4));
        assert!(matches!(got, Err(StorageError::Corrupt(_))), "{got:?}");
    }

    /// One append of batches below and above the staging size: each lands with its own offset,
    /// back to back, and recovery finds them all.
    #[test]
    fn an_append_mixing_small_and_large_batches_writes_each_with_its_offset() {
        let tp = TopicPartition {
            topic: KStr::from("t"),
            partition: 0,
        };
        let data = Path::new("/data");
        let disk = Arc::new(MemDisk::default());
        let mut log = PartitionLog::create(disk.clone(), data, &tp, 1 << 30).expect("creates");
        let big = {
            let records = [NewRecord {
                value: Some(Bytes::from(vec![7u8; STAGE_BYTES + 1000])),
                ..Default::default()
            }];
            let header = BatchHeader {
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                ..Default::default()
            };
            encode_batch(&header, Compression::None, &records).expect("encodes")
        };
        let batches = from_zero([batch(3, 1), big.clone(), batch(2, 2), big, batch(1, 3)]);
        let size: usize = batches.iter().map(|b| b.bytes.len()).sum();
        log.append(&batches, true).expect("appends");
        assert_eq!(log.next_offset(), Offset(8));
        drop(log);
        let dir = partition_dir(data, &tp);
        let r = PartitionLog::recover(disk.clone(), &dir, &tp, 1 << 30)
            .expect("recovers")
            .expect("finds the log");
        assert_eq!(r.repaired, None);
        assert_eq!(r.partition.next_offset, Offset(8));
        let segment = disk
            .read(&dir.join(segment_file_name(Offset(0))))
            .expect("segment");
        assert_eq!(segment.len(), size);
        assert_eq!(read_bases(&*disk, &dir, Offset(8)), vec![0, 3, 4, 6, 7]);
    }

    /// Unsynced appends start the writeback of what they wrote once a segment holds a
    /// [`WRITEBACK_BYTES`] of it, in back-to-back ranges; a synced append leaves nothing to start.
    #[test]
    fn unsynced_appends_start_their_writeback_every_megabyte() {
        let tp = TopicPartition {
            topic: KStr::from("t"),
            partition: 0,
        };
        let data = Path::new("/data");
        let disk = Arc::new(MemDisk::default());
        let mut log = PartitionLog::create(disk.clone(), data, &tp, 1 << 30).expect("creates");
        let one = batch(400, 1);
        let mut next = 0i64;
        let mut append = |log: &mut PartitionLog, sync: bool| {
            let b = AppendBatch {
                base_offset: Offset(next),
                bytes: one.clone(),
            };
            next += 400;
            log.append(&[b], sync).expect("appends");
        };
        let per_range = (WRITEBACK_BYTES as usize).div_ceil(one.len());
        for _ in 0..per_range * 3 {
            append(&mut log, false);
        }
        let file =
            disk.files()[&partition_dir(data, &tp).join(segment_file_name(Offset(0)))].clone();
        let ranges = file.state().written_back.clone();
        assert_eq!(ranges.len(), 3, "{ranges:?}");
        let mut end = 0;
        for &(at, len) in &ranges {
            assert_eq!(at, end, "ranges are back to back: {ranges:?}");
            assert!(len >= WRITEBACK_BYTES, "{ranges:?}");
            end = at + len;
        }
        // a synced append covers what was pending: the next range starts after it
        append(&mut log, false);
        append(&mut log, true);
        let synced_to = file.state().synced.len() as u64;
        for _ in 0..per_range {
            append(&mut log, false);
        }
        let ranges = file.state().written_back.clone();
        assert_eq!(ranges.len(), 4, "{ranges:?}");
        assert_eq!(ranges[3].0, synced_to);
    }

    /// Many runs, each with its own seed: appends (some synced, some not, segments rolling),
    /// a power cut that tears the unsynced part anywhere, recovery. Every synced append must come
    /// back whole, the log must end on a batch boundary and read densely up to its end, and new
    /// appends must go on from there.
    #[test]
    fn synced_appends_survive_a_power_cut_at_any_point() {
        let tp = TopicPartition {
            topic: KStr::from("t"),
            partition: 0,
        };
        let data = Path::new("/data");
        for seed in 0..300u64 {
            let mut next = seeded(seed);
            let disk = Arc::new(MemDisk::default());
            let mut log = PartitionLog::create(disk.clone(), data, &tp, 600).expect("creates");
            let mut synced_end = Offset(0);
            let mut bases = Vec::new();
            for k in 0..(next() % 12) {
                let records = 1 + (next() % 5) as usize;
                let base = log.next_offset();
                let sync = next().is_multiple_of(2);
                log.append(
                    &[AppendBatch {
                        base_offset: base,
                        bytes: batch(records, seed * 100 + k),
                    }],
                    sync,
                )
                .expect("appends");
                bases.push(base.0);
                if sync {
                    synced_end = log.next_offset();
                }
            }
            let written_end = log.next_offset();
            drop(log);
            disk.crash(|unsynced| (next() as usize) % (unsynced + 1));
            let dir = partition_dir(data, &tp);
            let r = PartitionLog::recover(disk.clone(), &dir, &tp, 600)
                .expect("recovers")
                .expect("finds the log");
            let end = r.partition.next_offset;
            assert!(
                end >= synced_end && end <= written_end,
                "seed {seed}: recovered end {} outside {}..={}",
                end.0,
                synced_end.0,
                written_end.0
            );
            let read = read_bases(&*disk, &dir, end);
            assert_eq!(
                read,
                bases.iter().copied().take(read.len()).collect::<Vec<_>>(),
                "seed {seed}: batches read back"
            );
            assert!(
                bases.iter().filter(|b| **b < end.0).count() == read.len(),
                "seed {seed}: every batch below the end is readable"
            );
            let mut log = r.log;
            let base = log.next_offset();
            assert_eq!(base, end);
            log.append(
                &[AppendBatch {
                    base_offset: base,
                    bytes: batch(2, 9_999),
                }],
                true,
            )
            .expect("appends after recovery");
            assert_eq!(log.next_offset(), base.plus(2));
        }
    }
}
