//! The write-ahead file: one fsync a round makes the acks=all appends of every partition a log
//! writer owns durable.
//!
//! Why: without it, a writer fsyncs each partition's segment once a round. Each fsync pays a
//! device flush and the file's metadata (its length changed) whatever it carries, so a round over
//! three partitions paid three. With it, a durable append is written to its segment without an
//! fsync and, as a record, to this file; one write and one fsync of this file then cover the
//! round, and the segments reach the disk behind it (writeback, and an fsync of each at a
//! checkpoint). The writer uses it only for rounds that wrote two or more partitions: for one,
//! its segment's fsync costs the same without writing the bytes twice.
//!
//! Measured with ProducerPerformance (1M × 1 KiB, acks=all, 24 partitions, 2 cores), records/s
//! and the gateway's CPU seconds: segment fsyncs on 8 writers 81k, 81k (6.3, 6.6 s); this file on
//! 8 writers 95k, 87k (5.3, 6.0 s), on 2 writers 101k, 119k (4.4, 3.4 s), on 1 writer 112k, 130k
//! (3.3, 2.9 s). With 3 partitions on 8 writers (one each) it is not used; putting the 3 on one
//! writer with it measured 53k–77k (seven runs) against 67k–75k for 8 writers' separate fsyncs
//! in parallel, in the same runs.
//!
//! Format: records back to back, each `len: u32` (of the body), `crc: u32` (CRC-32C of the body)
//! and a body of `topic length: u16`, the topic, `partition: i32`, then the append's v2 batches
//! exactly as written to the segment (base offsets in place). The file is only appended to and is
//! cut to empty at a checkpoint, so a scan stops at the first torn or damaged record and finds
//! nothing stale after it.
//!
//! A record is replayed after a crash ([`replay`]) when its batches continue the recovered
//! partition's log; batches the log already holds are skipped. That is only sound when
//! everything before the record in the segment was durable when it was written, so the writer
//! logs an append only then ([`super::file_log::Staged::follows_durable`]) and fsyncs the segment
//! otherwise. Start-up replays every file in `DATA/wal/` and removes them before a writer opens
//! its own, so records never outlive the partition they name (a writer also checkpoints before it
//! deletes a partition).

use super::AppendBatch;
use super::StorageError;
use super::disk::{Disk, DiskFile};
use super::file_log::{PartitionLog, partition_dir};
use super::log::scan_segment;
use crate::codec::KStr;
use crate::types::TopicPartition;
use bytes::{BufMut, Bytes, BytesMut};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory of the write-ahead files, under the data directory (a partition directory's name
/// always ends in `-<partition>`, so no topic can take it).
pub const WAL_DIR: &str = "wal";

/// Record header: body length and CRC-32C.
const HEADER_LEN: usize = 8;

/// The write-ahead file of writer `index`.
pub fn wal_path(data_dir: &Path, index: usize) -> PathBuf {
    data_dir.join(WAL_DIR).join(format!("{index}.wal"))
}

fn io_err(e: io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// The body length of the record of an append of `batches` to `tp`, if a record can hold it (the
/// topic's length must fit 16 bits and the body's 32).
pub fn record_body_len(tp: &TopicPartition, batches: &[AppendBatch]) -> Option<u32> {
    let topic = tp.topic.as_bytes().len();
    u16::try_from(topic).ok()?;
    let batches: usize = batches
        .iter()
        .map(|b| 8 + b.bytes.len().saturating_sub(8))
        .sum();
    u32::try_from(2 + topic + 4 + batches).ok()
}

/// Appends the record of an append of `batches` to `tp` to `out`; nothing if
/// [`record_body_len`] says no record can hold it.
pub fn encode_record(out: &mut BytesMut, tp: &TopicPartition, batches: &[AppendBatch]) {
    let Some(body_len) = record_body_len(tp, batches) else {
        return;
    };
    let topic = tp.topic.as_bytes();
    let start = out.len();
    out.reserve(HEADER_LEN + body_len as usize);
    out.put_u32(body_len);
    out.put_u32(0); // the CRC, once the body is in
    out.put_u16(topic.len() as u16);
    out.put_slice(topic);
    out.put_i32(tp.partition);
    for b in batches {
        out.put_i64(b.base_offset.0);
        out.put_slice(b.bytes.get(8..).unwrap_or_default());
    }
    let crc = crc32c::crc32c(&out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// The records of a write-ahead file, in order: each partition with its batches. Also why the scan
/// stopped before the end, if it did (a torn tail after a crash is expected).
pub fn scan_records(file: &Bytes) -> (Vec<(TopicPartition, Bytes)>, Option<String>) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < file.len() {
        let Some(record) = parse_record(file, at) else {
            return (
                records,
                Some(format!("torn or damaged record at byte {at}")),
            );
        };
        let (tp, batches, next) = record;
        records.push((tp, batches));
        at = next;
    }
    (records, None)
}

/// The record at byte `at`: its partition, its batches and where the next record starts.
fn parse_record(file: &Bytes, at: usize) -> Option<(TopicPartition, Bytes, usize)> {
    let header = file.get(at..at.checked_add(HEADER_LEN)?)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[4..].try_into().ok()?);
    let body_at = at + HEADER_LEN;
    let body = file.get(body_at..body_at.checked_add(len)?)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let topic_len = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
    let topic = std::str::from_utf8(body.get(2..2 + topic_len)?).ok()?;
    let partition = i32::from_be_bytes(body.get(2 + topic_len..6 + topic_len)?.try_into().ok()?);
    let tp = TopicPartition {
        topic: KStr::from(topic),
        partition,
    };
    let batches = file.slice(body_at + 6 + topic_len..body_at + len);
    Some((tp, batches, body_at + len))
}

/// A log writer's write-ahead file.
pub struct Wal {
    file: Box<dyn DiskFile>,
    /// Bytes of whole records in the file.
    len: u64,
    /// Records of the round, not yet written.
    pending: BytesMut,
    /// The size past which the writer checkpoints (fsyncs its segments and empties this file).
    limit: u64,
}

impl Wal {
    /// Opens (creating it and its directory durably) the write-ahead file at `path`; records go
    /// after any it holds (start-up replays and removes them first, see [`replay`]).
    pub fn open(disk: &dyn Disk, path: &Path, limit: u64) -> Result<Wal, StorageError> {
        let dir = path
            .parent()
            .ok_or_else(|| StorageError::Io(format!("{} has no directory", path.display())))?;
        disk.create_dir_all(dir).map_err(io_err)?;
        let file = disk.open(path, true).map_err(io_err)?;
        disk.sync_dir(dir).map_err(io_err)?;
        if let Some(data_dir) = dir.parent() {
            disk.sync_dir(data_dir).map_err(io_err)?;
        }
        let len = file.size().map_err(io_err)?;
        Ok(Wal {
            file,
            len,
            pending: BytesMut::new(),
            limit,
        })
    }

    /// Adds the record of a staged append to the round.
    pub fn log(&mut self, tp: &TopicPartition, batches: &[AppendBatch]) {
        encode_record(&mut self.pending, tp, batches);
    }

    /// Writes and fsyncs the round's records. On error they are cut off again (if that fails
    /// too, the error says the file can no longer be trusted and the writer stops using it).
    pub fn commit(&mut self) -> Result<(), WalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self
            .file
            .write_all_at(&self.pending, self.len)
            .and_then(|()| self.file.sync());
        let written = self.pending.len() as u64;
        self.pending.clear();
        match result {
            Ok(()) => {
                self.len += written;
                Ok(())
            }
            Err(e) => match self.file.set_len(self.len) {
                Ok(()) => Err(WalError::Failed(io_err(e))),
                Err(cut) => Err(WalError::Broken(StorageError::Io(format!(
                    "{e}; cutting the write-ahead file back failed too: {cut}"
                )))),
            },
        }
    }

    /// Whether the file has grown past its limit (time to checkpoint).
    pub fn is_full(&self) -> bool {
        self.len >= self.limit
    }

    /// Empties the file, durably; call only once every segment it covers is fsynced.
    pub fn reset(&mut self) -> Result<(), StorageError> {
        self.pending.clear();
        if self.len == 0 {
            return Ok(());
        }
        self.file.set_len(0).map_err(io_err)?;
        self.file.sync().map_err(io_err)?;
        self.len = 0;
        Ok(())
    }
}

/// Why a [`Wal::commit`] failed.
#[derive(Debug)]
pub enum WalError {
    /// The round's records are not durable; the file is as before.
    Failed(StorageError),
    /// As `Failed`, and the file could not be cut back: later records would follow damage that a
    /// scan stops at, so the file must not be used again.
    Broken(StorageError),
}

impl WalError {
    /// The error to fail the round's appends with.
    pub fn storage_error(&self) -> StorageError {
        match self {
            WalError::Failed(e) | WalError::Broken(e) => e.clone(),
        }
    }
}

/// Replays every write-ahead file under `data_dir` into the partition logs and removes the files:
/// each record's batches that continue its partition's recovered log are appended, and every log
/// a file names is fsynced before any file goes. Run at start-up, before the partitions are
/// recovered for the gateway and before any writer opens its file. Returns what it did, a line
/// per partition, for the log.
pub fn replay(
    disk: Arc<dyn Disk>,
    data_dir: &Path,
    segment_bytes: u64,
) -> Result<Vec<String>, StorageError> {
    let dir = data_dir.join(WAL_DIR);
    let mut names: Vec<String> = match disk.list(&dir) {
        Ok(entries) => entries
            .into_iter()
            .filter(|(name, is_dir)| !is_dir && name.ends_with(".wal"))
            .map(|(name, _)| name)
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(e)),
    };
    names.sort();
    let mut notes = Vec::new();
    for name in &names {
        let bytes = Bytes::from(disk.read(&dir.join(name)).map_err(io_err)?);
        let (records, stopped) = scan_records(&bytes);
        if let Some(why) = stopped {
            notes.push(format!(
                "{WAL_DIR}/{name}: {why}; the records after it are ignored"
            ));
        }
        // A partition's records are all in one file (a partition has one writer while the gateway
        // runs), in the order they were written.
        let mut partitions: Vec<(TopicPartition, Vec<Bytes>)> = Vec::new();
        for (tp, batches) in records {
            match partitions.iter_mut().find(|(p, _)| *p == tp) {
                Some((_, list)) => list.push(batches),
                None => partitions.push((tp, vec![batches])),
            }
        }
        for (tp, records) in partitions {
            if let Some(note) = replay_partition(&disk, data_dir, &tp, &records, segment_bytes)? {
                notes.push(note);
            }
        }
    }
    for name in &names {
        disk.remove_file(&dir.join(name)).map_err(io_err)?;
    }
    if !names.is_empty() {
        disk.sync_dir(&dir).map_err(io_err)?;
    }
    Ok(notes)
}

/// Appends what `records` hold beyond the end of `tp`'s log; a note if it appended or had to stop.
fn replay_partition(
    disk: &Arc<dyn Disk>,
    data_dir: &Path,
    tp: &TopicPartition,
    records: &[Bytes],
    segment_bytes: u64,
) -> Result<Option<String>, StorageError> {
    let dir = partition_dir(data_dir, tp);
    match disk.list(&dir) {
        Ok(_) => {}
        // deleted since (a writer checkpoints before a delete, so this is a crash in between)
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    }
    let Some(recovery) = PartitionLog::recover(disk.clone(), &dir, tp, segment_bytes)? else {
        return Ok(None);
    };
    let mut log = recovery.log;
    let mut appended = 0u64;
    let mut gap = None;
    'records: for record in records {
        let scan = scan_segment(record, None);
        let mut batches = Vec::new();
        for b in &scan.batches {
            let next = log.next_offset();
            if b.last_offset < next {
                continue;
            }
            if b.base_offset != next {
                gap = Some(format!(
                    "batch at offset {} does not follow the log's end {}",
                    b.base_offset.0, next.0
                ));
                break;
            }
            batches.push(AppendBatch {
                base_offset: b.base_offset,
                bytes: record.slice(b.byte as usize..(b.byte + b.len) as usize),
            });
            appended += b.records;
        }
        if !batches.is_empty() {
            log.append(&batches, false)?;
        }
        if gap.is_some() || scan.stopped.is_some() {
            gap = gap.or(scan.stopped);
            break 'records;
        }
    }
    // Also when nothing was appended: after a kill (not a power cut) the segments hold every
    // record, but maybe only in the page cache, and the file that made them durable goes next.
    log.flush()?;
    Ok(match (appended, gap) {
        (0, None) => None,
        (n, None) => Some(format!(
            "{tp}: replayed {n} records from the write-ahead file"
        )),
        (n, Some(why)) => Some(format!(
            "{tp}: replayed {n} records from the write-ahead file, then stopped: {why}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tests::batch;
    use crate::types::Offset;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: KStr::from(topic),
            partition,
        }
    }

    /// Records round-trip with their offsets in place, and a scan stops at a torn or damaged one.
    #[test]
    fn records_round_trip_and_damage_stops_the_scan() {
        let a = vec![
            AppendBatch {
                base_offset: Offset(7),
                bytes: batch(3, 1),
            },
            AppendBatch {
                base_offset: Offset(10),
                bytes: batch(2, 2),
            },
        ];
        let b = vec![AppendBatch {
            base_offset: Offset(0),
            bytes: batch(1, 3),
        }];
        let mut file = BytesMut::new();
        encode_record(&mut file, &tp("orders", 2), &a);
        let first_len = file.len();
        encode_record(&mut file, &tp("x", 0), &b);
        let file = file.freeze();
        let (records, stopped) = scan_records(&file);
        assert_eq!(stopped, None);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0, tp("orders", 2));
        let scan = scan_segment(&records[0].1, None);
        assert_eq!(scan.stopped, None);
        let bases: Vec<i64> = scan.batches.iter().map(|b| b.base_offset.0).collect();
        assert_eq!(bases, vec![7, 10]);
        assert_eq!(records[1].0, tp("x", 0));

        for cut in [file.len() - 1, first_len + 5, first_len + 3] {
            let (records, stopped) = scan_records(&file.slice(..cut));
            assert_eq!(records.len(), 1, "cut at {cut}");
            assert!(stopped.is_some());
        }
        let mut bad = BytesMut::from(&file[..]);
        bad[40] ^= 1;
        let (records, stopped) = scan_records(&bad.freeze());
        assert!(records.is_empty() && stopped.is_some());
    }
}
