//! The embedded log on disk: one directory per partition, segment files of record batches.
//!
//! Blocking `std::fs` code, runtime-neutral: the tokio driver runs it on blocking threads, and any
//! other driver can do the same. The format and the recovery decisions are `kelp_core::storage::log`;
//! this module only moves bytes between files and those functions.
//!
//! Layout: `DATA/<topic>-<partition>/<20-digit base offset>.log`, plus `log-start` (the log start
//! offset as decimal text, written by DeleteRecords and retention).

use bytes::{Bytes, BytesMut};
use kelp_core::codec::KStr;
use kelp_core::ledger::{IndexEntry, OffsetLedger};
use kelp_core::producer::ProducerHistory;
use kelp_core::storage::log::{
    decode_index, encode_index, find_by_time, index_file_name, index_segment,
    parse_segment_file_name, producer_snapshot_file_name, scan_segment, segment_file_name,
    select_batches,
};
use kelp_core::storage::{AppendBatch, RecoveredPartition, StorageError};
use kelp_core::types::{LogPosition, Offset, TimestampMs, TopicPartition};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes read per step when scanning forward for an offset or a time.
const SCAN_CHUNK: usize = 256 * 1024;

fn io_err(e: io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// The directory of a partition.
pub fn partition_dir(data_dir: &Path, tp: &TopicPartition) -> PathBuf {
    data_dir.join(format!("{}-{}", tp.topic, tp.partition))
}

/// One partition's log, owned by whoever performs its appends (one writer at a time).
pub struct PartitionLog {
    dir: PathBuf,
    /// Base offsets of the segments, ascending; the last is active.
    segments: Vec<Offset>,
    active: File,
    active_len: u64,
    next_offset: Offset,
    segment_bytes: u64,
    /// The active segment's sparse index, built by the same rule as the core's ledger; written to
    /// `<base>.index` when the segment is closed.
    active_index: OffsetLedger,
    /// Idempotent producers' last batches, written to `<base>.producers` when a segment is closed
    /// so that recovery need not read closed segments to rebuild it.
    producers: ProducerHistory,
}

impl PartitionLog {
    /// Creates the partition's directory and first segment (or opens what exists).
    pub fn create(
        data_dir: &Path,
        tp: &TopicPartition,
        segment_bytes: u64,
    ) -> Result<PartitionLog, StorageError> {
        let dir = partition_dir(data_dir, tp);
        fs::create_dir_all(&dir).map_err(io_err)?;
        match Self::recover(&dir, tp, segment_bytes)? {
            Some((log, _)) => Ok(log),
            None => {
                let active = open_segment(&dir, Offset(0))?;
                sync_dir(&dir)?;
                Ok(PartitionLog {
                    dir,
                    segments: vec![Offset(0)],
                    active,
                    active_len: 0,
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
        dir: &Path,
        tp: &TopicPartition,
        segment_bytes: u64,
    ) -> Result<Option<(PartitionLog, RecoveredPartition)>, StorageError> {
        let mut bases: Vec<Offset> = fs::read_dir(dir)
            .map_err(io_err)?
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()
                    .and_then(parse_segment_file_name)
            })
            .collect();
        bases.sort();
        if bases.is_empty() {
            return Ok(None);
        }
        let mut scans = Vec::new();
        let mut closed_index: Vec<IndexEntry> = Vec::new();
        let mut expected = None;
        let mut cut_from = None;
        for (i, base) in bases.iter().enumerate() {
            // A closed segment was fsynced before its index was written: the index is enough.
            if let Some(next_base) = bases.get(i + 1)
                && expected.is_none_or(|e| e == *base)
                && let Some(entries) = fs::read(dir.join(index_file_name(*base)))
                    .ok()
                    .and_then(|b| decode_index(&b, *base))
            {
                closed_index.extend(entries);
                expected = Some(*next_base);
                continue;
            }
            let path = dir.join(segment_file_name(*base));
            let bytes = Bytes::from(fs::read(&path).map_err(io_err)?);
            // Each segment must start where the previous one ended (the first, at its own name).
            let scan = scan_segment(&bytes, Some(expected.unwrap_or(*base)));
            if scan.valid_len < bytes.len() as u64 {
                tracing::warn!(dir = %dir.display(), segment = base.0, valid = scan.valid_len, len = bytes.len(),
                    reason = scan.stopped.as_deref().unwrap_or(""), "truncating torn or corrupt log tail");
                let f = OpenOptions::new().write(true).open(&path).map_err(io_err)?;
                f.set_len(scan.valid_len).map_err(io_err)?;
                f.sync_all().map_err(io_err)?;
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
                fs::remove_file(dir.join(segment_file_name(*base))).map_err(io_err)?;
                let _ = fs::remove_file(dir.join(index_file_name(*base)));
            }
            bases.truncate(from);
            sync_dir(dir)?;
        }
        let log_start = read_log_start(dir)?.unwrap_or(bases[0]);
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
            let bytes = fs::read(dir.join(producer_snapshot_file_name(*b))).ok()?;
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
        let active = open_segment(dir, active_base)?;
        let active_len = active.metadata().map_err(io_err)?.len();
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            segments: bases,
            active,
            active_len,
            next_offset: next,
            segment_bytes,
            active_index,
            producers: producers.clone(),
        };
        let recovered = RecoveredPartition {
            partition: tp.clone(),
            log_start_offset: log_start,
            next_offset: next,
            index,
            topic_config: read_topic_config(dir)?,
            producers,
        };
        Ok(Some((log, recovered)))
    }

    /// Appends batches with their assigned base offsets; fsyncs when `sync`. Returns where the first
    /// batch starts. On error nothing is acknowledged and the file is cut back to its old length.
    pub fn append(
        &mut self,
        batches: &[AppendBatch],
        sync: bool,
    ) -> Result<LogPosition, StorageError> {
        let Some(first) = batches.first() else {
            return Ok(LogPosition {
                segment: *self.segments.last().unwrap_or(&Offset(0)),
                byte: self.active_len,
            });
        };
        if self.active_len >= self.segment_bytes && self.active_len > 0 {
            self.roll(first.base_offset)?;
        }
        let position = LogPosition {
            segment: *self.segments.last().unwrap_or(&Offset(0)),
            byte: self.active_len,
        };
        let mut buf = BytesMut::with_capacity(batches.iter().map(|b| b.bytes.len()).sum());
        for b in batches {
            buf.extend_from_slice(&b.base_offset.0.to_be_bytes());
            buf.extend_from_slice(&b.bytes[8..]);
        }
        let result = self
            .active
            .write_all_at(&buf, self.active_len)
            .and_then(|()| {
                if sync {
                    self.active.sync_data()
                } else {
                    Ok(())
                }
            });
        if let Err(e) = result {
            let _ = self.active.set_len(self.active_len);
            return Err(io_err(e));
        }
        let records: i64 = batches
            .iter()
            .map(|b| i64::from(be_i32(&b.bytes, 57)))
            .sum();
        let max_ts = batches
            .iter()
            .map(|b| be_i64(&b.bytes, 35))
            .max()
            .unwrap_or(-1);
        if self
            .active_index
            .begin_append(records.max(1) as u64, buf.len() as u64, TimestampMs(max_ts))
            .is_ok()
        {
            let _ = self.active_index.complete_append(position);
        }
        for b in batches {
            let (pid, epoch, first) = (
                be_i64(&b.bytes, 43),
                be_i16(&b.bytes, 51),
                be_i32(&b.bytes, 53),
            );
            self.producers
                .record(pid, epoch, first, be_i32(&b.bytes, 57), b.base_offset);
        }
        self.active_len += buf.len() as u64;
        if let Some(last) = batches.last() {
            let count = i32::from_be_bytes(last.bytes[57..61].try_into().unwrap_or([0; 4]));
            self.next_offset = last.base_offset.plus(i64::from(count));
        }
        Ok(position)
    }

    fn roll(&mut self, base: Offset) -> Result<(), StorageError> {
        self.active.sync_data().map_err(io_err)?;
        let closing = *self.segments.last().unwrap_or(&Offset(0));
        let entries: Vec<IndexEntry> = self
            .active_index
            .index_entries()
            .iter()
            .filter(|e| e.position.segment == closing)
            .copied()
            .collect();
        let tmp = self.dir.join("index.tmp");
        fs::write(&tmp, encode_index(&entries)).map_err(io_err)?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
        fs::rename(&tmp, self.dir.join(index_file_name(closing))).map_err(io_err)?;
        let tmp = self.dir.join("producers.tmp");
        fs::write(&tmp, self.producers.encode()).map_err(io_err)?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
        fs::rename(&tmp, self.dir.join(producer_snapshot_file_name(closing))).map_err(io_err)?;
        self.active_index = OffsetLedger::restore(base, base, Vec::new());
        self.active = open_segment(&self.dir, base)?;
        self.active_len = 0;
        self.segments.push(base);
        sync_dir(&self.dir)
    }

    /// Makes everything written durable (interval flush, shutdown).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.active.sync_data().map_err(io_err)
    }

    /// Records a new log start and deletes segments wholly below it.
    pub fn truncate_before(&mut self, offset: Offset) -> Result<(), StorageError> {
        let tmp = self.dir.join("log-start.tmp");
        fs::write(&tmp, offset.0.to_string()).map_err(io_err)?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
        fs::rename(&tmp, self.dir.join("log-start")).map_err(io_err)?;
        // A segment can go when the next one starts at or below the new log start.
        while self.segments.len() > 1 && self.segments[1] <= offset {
            fs::remove_file(self.dir.join(segment_file_name(self.segments[0]))).map_err(io_err)?;
            let _ = fs::remove_file(self.dir.join(index_file_name(self.segments[0])));
            let _ = fs::remove_file(self.dir.join(producer_snapshot_file_name(self.segments[0])));
            self.segments.remove(0);
        }
        sync_dir(&self.dir)
    }

    /// The next offset after the last stored record.
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }
}

/// Reads whole batches for `offset` (see `StorageCommand::Read`), scanning forward from `from`.
pub fn read(
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
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Bytes::new()),
            Err(e) => return Err(io_err(e)),
        };
        let len = file.metadata().map_err(io_err)?.len();
        while at < len {
            let want = (max_bytes.max(SCAN_CHUNK) as u64).min(len - at) as usize;
            let chunk = read_at(&file, at, want)?;
            let (skip, take) = select_batches(&chunk, offset, end, max_bytes);
            if take > 0 {
                return Ok(chunk.slice(skip..skip + take));
            }
            if skip == 0 {
                // The batch at `at` is larger than the chunk: read exactly it.
                let batch_len = batch_len_at(&chunk).ok_or_else(|| {
                    StorageError::Corrupt(format!("bad batch at {}:{at}", path.display()))
                })?;
                if batch_len as u64 > len - at {
                    return Ok(Bytes::new());
                }
                let whole = read_at(&file, at, batch_len)?;
                let (s, t) = select_batches(&whole, offset, end, max_bytes);
                if t > 0 {
                    return Ok(whole.slice(s..s + t));
                }
                at += batch_len as u64;
            } else {
                at += skip as u64;
            }
            if first_base(&chunk[skip.min(chunk.len())..]).is_some_and(|b| b >= end) {
                return Ok(Bytes::new());
            }
        }
        // On to the next segment, if any.
        match next_segment(dir, segment)? {
            Some(next) => {
                segment = next;
                at = 0;
            }
            None => return Ok(Bytes::new()),
        }
    }
}

/// Finds the first record with a timestamp >= `ts` below `end`, scanning forward from `from`.
pub fn find_time(
    dir: &Path,
    ts: TimestampMs,
    from: LogPosition,
    end: Offset,
    max_decompressed: usize,
) -> Result<Option<(Offset, TimestampMs)>, StorageError> {
    let mut position = from;
    loop {
        let path = dir.join(segment_file_name(position.segment));
        let Ok(file) = File::open(&path) else {
            return Ok(None);
        };
        let len = file.metadata().map_err(io_err)?.len();
        let mut at = position.byte;
        while at < len {
            let chunk = read_at(&file, at, (SCAN_CHUNK as u64).min(len - at) as usize)?;
            let (skip, take) = select_batches(&chunk, Offset(0), end, usize::MAX);
            let whole = if take == 0 {
                let n = batch_len_at(&chunk[skip..]).unwrap_or(0);
                if n == 0 || at + skip as u64 + n as u64 > len {
                    return Ok(None);
                }
                read_at(&file, at + skip as u64, n)?
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
        match next_segment(dir, position.segment)? {
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

fn next_segment(dir: &Path, after: Offset) -> Result<Option<Offset>, StorageError> {
    let mut next: Option<Offset> = None;
    for e in fs::read_dir(dir).map_err(io_err)? {
        if let Some(base) = e
            .map_err(io_err)?
            .file_name()
            .to_str()
            .and_then(parse_segment_file_name)
            && base > after
            && next.is_none_or(|n| base < n)
        {
            next = Some(base);
        }
    }
    Ok(next)
}

fn read_at(file: &File, at: u64, len: usize) -> Result<Bytes, StorageError> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = file
            .read_at(&mut buf[done..], at + done as u64)
            .map_err(io_err)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(Bytes::from(buf))
}

fn open_segment(dir: &Path, base: Offset) -> Result<File, StorageError> {
    // Never truncate: an existing segment holds acknowledged data.
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join(segment_file_name(base)))
        .map_err(io_err)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)
}

fn read_log_start(dir: &Path) -> Result<Option<Offset>, StorageError> {
    match fs::read_to_string(dir.join("log-start")) {
        Ok(s) => Ok(s.trim().parse().ok().map(Offset)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// Every partition directory under `data_dir`, recovered.
pub fn recover_all(
    data_dir: &Path,
    segment_bytes: u64,
) -> Result<Vec<(TopicPartition, PartitionLog, RecoveredPartition)>, StorageError> {
    fs::create_dir_all(data_dir).map_err(io_err)?;
    let mut out = Vec::new();
    for entry in fs::read_dir(data_dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if !entry.file_type().map_err(io_err)?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
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
        match PartitionLog::recover(&entry.path(), &tp, segment_bytes)? {
            Some((log, recovered)) => out.push((tp, log, recovered)),
            None => {
                let log = PartitionLog::create(data_dir, &tp, segment_bytes)?;
                let recovered = RecoveredPartition {
                    partition: tp.clone(),
                    log_start_offset: Offset(0),
                    next_offset: Offset(0),
                    index: Vec::new(),
                    topic_config: Vec::new(),
                    producers: ProducerHistory::default(),
                };
                out.push((tp, log, recovered));
            }
        }
    }
    Ok(out)
}

/// Stores a topic's explicitly set configuration in its partition directory (atomically).
pub fn write_topic_config(
    data_dir: &Path,
    tp: &TopicPartition,
    entries: &[(String, String)],
) -> Result<(), StorageError> {
    let dir = partition_dir(data_dir, tp);
    let text: String = entries.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let tmp = dir.join("topic.conf.tmp");
    fs::write(&tmp, text).map_err(io_err)?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err)?;
    fs::rename(&tmp, dir.join("topic.conf")).map_err(io_err)?;
    sync_dir(&dir)
}

fn read_topic_config(dir: &Path) -> Result<Vec<(String, String)>, StorageError> {
    match fs::read_to_string(dir.join("topic.conf")) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(e)),
    }
}

/// Removes a partition's directory.
pub fn delete_partition(data_dir: &Path, tp: &TopicPartition) -> Result<(), StorageError> {
    match fs::remove_dir_all(partition_dir(data_dir, tp)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}
