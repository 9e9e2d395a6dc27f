//! The write-ahead file: one fsync a round makes the acks=all appends of every partition a log
//! writer owns durable.
//!
//! Why: without it, a writer fsyncs each partition's segment once a round. Each fsync pays a
//! device flush and the file's metadata (its length changed, new blocks) whatever it carries, so
//! a round over three partitions paid three. With it, a durable append is written to its segment
//! without an fsync and, as a record, to this file; one write and one fsync of this file then
//! cover the round, and the segments reach the disk behind it (writeback, and an fsync of each at
//! a checkpoint).
//!
//! Why it is reused in place rather than cut to empty: once the file has been through one
//! checkpoint, records overwrite blocks the file already has, so its fsync writes data and
//! flushes the device, and no metadata (no length, no block allocation, no inode). Measured on
//! this project's 2-core VM (ext4), 48 KiB pwrite + fdatasync a round: 7,100-7,400 a second in
//! place against 5,000-5,400 appending, and 3 threads, each also writing its segment unsynced,
//! 10,700-11,000 against 7,300-7,800 fsyncing the segments. In the gateway (ProducerPerformance,
//! 1M × 1 KiB, acks=all, 3 partitions, `bench/ab.py`) one writer and this file measured 120k-128k
//! records/s at 2.8-2.9 s of gateway CPU, against 111k-114k at 3.4-3.5 s for one writer whose file
//! was cut to empty at each checkpoint, and 108k-118k at 4.1-4.5 s for a writer a partition, each
//! fsyncing its segment (the defaults before).
//!
//! Format. Two generation slots, each at the start of a 4 KiB block of its own ([`SLOT_SPAN`]):
//! `"KELPWAL2"`, `generation: u64`, `salt: u64`, CRC-32C of those 24 bytes. The slot with the
//! highest valid generation is current. Records start at [`DATA_START`], back to back, each
//! `len: u32` (of the body), `crc: u32` (CRC-32C of the salt and the body), `salt: u64` and a
//! body of `topic length: u16`, the topic, `partition: i32`, then the append's v2 batches exactly
//! as written to the segment (base offsets in place). A round's records end with a padding record
//! (topic length [`PAD_MARK`], then zeros) up to the next multiple of [`BLOCK`], so the next round
//! starts on a block boundary too.
//!
//! Why whole blocks: a write whose offset, length and memory address are multiples of the block
//! can bypass the page cache ([`Disk::open_direct`], `O_DIRECT` on Linux). Its fsync then has no
//! dirty pages to find and write out, and the bytes are never copied into the page cache.
//! Measured on this project's 2-core VM (ext4, the file's blocks already allocated), pwrite +
//! fdatasync in a loop, a second and CPU each: 48 KiB 8,800-8,900 at 42-45 µs through the page
//! cache against 10,200 at 33 µs direct; 240 KiB 5,700-6,100 at 61-64 µs against 6,900-7,000 at
//! 35-37 µs. The padding costs at most a block a round. In the gateway (`bench/ab.py`, 1M × 1 KiB,
//! acks=all, 3 partitions, alternating with the build before): ProducerPerformance 134k-144k
//! records/s at 2.4-2.5 s of gateway CPU against 131k-133k at 2.6 s; the librdkafka generator
//! 559k-591k against 549k-561k.
//!
//! A checkpoint starts a new generation: its slot (the other one, never the current) is written
//! and fsynced, and records start again at [`DATA_START`]. Past the last record of the current
//! generation the file holds older records, or parts of them, or zeros. A scan takes only records
//! with the current generation's salt and stops at the first that is not one. The salt is drawn
//! from a seed the runtime draws at random, so no producer can place bytes in its values that a
//! later scan would take for a record.
//!
//! A record is replayed after a crash ([`replay`]) when its batches continue the recovered
//! partition's log; batches the log already holds are skipped. That is only sound when
//! everything before the record in the segment was durable when it was written, so the writer
//! logs an append only then ([`super::file_log::Staged::follows_durable`]) and fsyncs the segment
//! otherwise. Start-up replays every file in `DATA/wal/` and then starts a new generation in each
//! before a writer opens its own, so records never outlive the partition they name (a writer also
//! checkpoints before it deletes a partition).
//!
//! Files of the first format (records from byte 0 with an 8-byte header, cut to empty at a
//! checkpoint; a file with no valid slot) are still replayed, and then removed.

use super::AppendBatch;
use super::StorageError;
use super::disk::{Disk, DiskFile};
use super::file_log::{PartitionLog, partition_dir};
use super::log::scan_segment;
use crate::codec::KStr;
use crate::types::TopicPartition;
use bytes::{BufMut, Bytes};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory of the write-ahead files, under the data directory (a partition directory's name
/// always ends in `-<partition>`, so no topic can take it).
pub const WAL_DIR: &str = "wal";

/// Bytes from one generation slot to the next: a block each, so a torn write of one cannot touch
/// the other.
pub const SLOT_SPAN: u64 = 4096;

/// Where records start.
pub const DATA_START: u64 = 2 * SLOT_SPAN;

const SLOT_MAGIC: &[u8; 8] = b"KELPWAL2";

/// Slot: magic, generation, salt, CRC-32C.
const SLOT_LEN: usize = 8 + 8 + 8 + 4;

/// Record header: body length, CRC-32C, salt.
const HEADER_LEN: usize = 16;

/// Record header of the first format: body length and CRC-32C.
const LEGACY_HEADER_LEN: usize = 8;

/// Fewest bytes of a body: an empty topic and the partition.
const MIN_BODY: usize = 2 + 4;

/// What a round's records are padded to, and aligned to in memory: 4 KiB, the page size and the
/// largest logical block size of common devices, so direct writes suit every one of them.
pub const BLOCK: usize = 4096;

/// The topic length that marks a padding record: no record names a topic this long.
pub const PAD_MARK: u16 = u16::MAX;

/// The write-ahead file of writer `index`.
pub fn wal_path(data_dir: &Path, index: usize) -> PathBuf {
    data_dir.join(WAL_DIR).join(format!("{index}.wal"))
}

fn io_err(e: io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// The body length of the record of an append of `batches` to `tp`, if a record can hold it (the
/// topic's length must fit 16 bits, short of [`PAD_MARK`], and the body's 32).
pub fn record_body_len(tp: &TopicPartition, batches: &[AppendBatch]) -> Option<u32> {
    let topic = tp.topic.as_bytes().len();
    u16::try_from(topic).ok().filter(|&n| n != PAD_MARK)?;
    let batches: usize = batches
        .iter()
        .map(|b| 8 + b.bytes.len().saturating_sub(8))
        .sum();
    u32::try_from(2 + topic + 4 + batches).ok()
}

fn record_crc(salt: u64, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&salt.to_be_bytes()), body)
}

/// Appends the record of an append of `batches` to `tp`, for the generation of `salt`, to `out`;
/// nothing if [`record_body_len`] says no record can hold it.
pub fn encode_record<B: BufMut + AsMut<[u8]>>(
    out: &mut B,
    salt: u64,
    tp: &TopicPartition,
    batches: &[AppendBatch],
) {
    let Some(body_len) = record_body_len(tp, batches) else {
        return;
    };
    let topic = tp.topic.as_bytes();
    let start = out.as_mut().len();
    out.put_u32(body_len);
    out.put_u32(0); // the CRC, once the body is in
    out.put_u64(salt);
    out.put_u16(topic.len() as u16);
    out.put_slice(topic);
    out.put_i32(tp.partition);
    for b in batches {
        out.put_i64(b.base_offset.0);
        out.put_slice(b.bytes.get(8..).unwrap_or_default());
    }
    let out = out.as_mut();
    let crc = record_crc(salt, &out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// The bytes of the padding record that takes `len` bytes of records to a multiple of [`BLOCK`]
/// (0: none needed); a gap too small for a record takes a block more.
fn pad_len(len: usize) -> usize {
    match len % BLOCK {
        0 => 0,
        r if BLOCK - r < HEADER_LEN + MIN_BODY => 2 * BLOCK - r,
        r => BLOCK - r,
    }
}

/// Appends a padding record of `total` bytes (at least a header and [`MIN_BODY`]), for the
/// generation of `salt`, to `out`.
fn encode_pad(out: &mut Vec<u8>, salt: u64, total: usize) {
    let start = out.len();
    let body = total.saturating_sub(HEADER_LEN).max(MIN_BODY);
    out.put_u32(body as u32);
    out.put_u32(0);
    out.put_u64(salt);
    out.put_u16(PAD_MARK);
    out.resize(start + HEADER_LEN + body, 0);
    let crc = record_crc(salt, &out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// The bytes of a generation slot.
pub fn encode_slot(generation: u64, salt: u64) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..8].copy_from_slice(SLOT_MAGIC);
    slot[8..16].copy_from_slice(&generation.to_be_bytes());
    slot[16..24].copy_from_slice(&salt.to_be_bytes());
    let crc = crc32c::crc32c(&slot[..24]);
    slot[24..].copy_from_slice(&crc.to_be_bytes());
    slot
}

/// The generation and salt of the slot at the start of `bytes`, if it is a valid one.
fn decode_slot(bytes: &[u8]) -> Option<(u64, u64)> {
    let slot = bytes.get(..SLOT_LEN)?;
    if &slot[..8] != SLOT_MAGIC || crc32c::crc32c(&slot[..24]).to_be_bytes() != slot[24..] {
        return None;
    }
    let generation = u64::from_be_bytes(slot[8..16].try_into().ok()?);
    let salt = u64::from_be_bytes(slot[16..24].try_into().ok()?);
    Some((generation, salt))
}

/// The current generation and its salt, from the first [`DATA_START`] bytes of a file; `None`
/// for a file of the first format (or one whose first slot write never reached the disk).
pub fn current_generation(head: &[u8]) -> Option<(u64, u64)> {
    let first = decode_slot(head);
    let second = head.get(SLOT_SPAN as usize..).and_then(decode_slot);
    match (first, second) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The salt of generation `generation` of a file whose writer drew `seed`: a mix of the two
/// (SplitMix64's finaliser), unpredictable without the seed.
fn salt_of(seed: u64, generation: u64) -> u64 {
    let mut z = seed ^ generation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The records of a write-ahead file, in order: each partition with its batches. Also why the scan
/// stopped before the end, if it did (a torn tail after a crash is expected; a file reused in
/// place always stops at the first record of an older generation or at zeros, which is not
/// reported).
pub fn scan_records(file: &Bytes) -> (Vec<(TopicPartition, Bytes)>, Option<String>) {
    let (mut at, salt) = match current_generation(file) {
        Some((_, salt)) => (DATA_START as usize, Some(salt)),
        None => (0, None),
    };
    let mut records = Vec::new();
    while at < file.len() {
        let Some((record, next)) = parse_record(file, at, salt) else {
            let why = salt
                .is_none()
                .then(|| format!("torn or damaged record at byte {at}"));
            return (records, why);
        };
        records.extend(record);
        at = next;
    }
    (records, None)
}

/// The record at byte `at`: its partition and its batches (`None` for padding) and where the next
/// record starts. `salt`: the current generation's, or `None` for the first format.
fn parse_record(
    file: &Bytes,
    at: usize,
    salt: Option<u64>,
) -> Option<(Option<(TopicPartition, Bytes)>, usize)> {
    let header_len = if salt.is_some() {
        HEADER_LEN
    } else {
        LEGACY_HEADER_LEN
    };
    let header = file.get(at..at.checked_add(header_len)?)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[4..8].try_into().ok()?);
    let body_at = at + header_len;
    let body = file.get(body_at..body_at.checked_add(len)?)?;
    match salt {
        Some(salt) => {
            let stored = u64::from_be_bytes(header[8..16].try_into().ok()?);
            if stored != salt || len < MIN_BODY || record_crc(salt, body) != crc {
                return None;
            }
        }
        None => {
            if crc32c::crc32c(body) != crc {
                return None;
            }
        }
    }
    let topic_len = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    if topic_len == PAD_MARK && salt.is_some() {
        return Some((None, body_at + len));
    }
    let topic_len = usize::from(topic_len);
    let topic = std::str::from_utf8(body.get(2..2 + topic_len)?).ok()?;
    let partition = i32::from_be_bytes(body.get(2 + topic_len..6 + topic_len)?.try_into().ok()?);
    let tp = TopicPartition {
        topic: KStr::from(topic),
        partition,
    };
    let batches = file.slice(body_at + 6 + topic_len..body_at + len);
    Some((Some((tp, batches)), body_at + len))
}

/// Writes and fsyncs the slot of `generation` (in the slot the current one is not in).
fn write_slot(file: &dyn DiskFile, generation: u64, salt: u64) -> io::Result<()> {
    let at = (generation % 2) * SLOT_SPAN;
    file.write_all_at(&encode_slot(generation, salt), at)?;
    file.sync()
}

/// A log writer's write-ahead file.
pub struct Wal {
    file: Box<dyn DiskFile>,
    /// What the salts of this writer's generations are drawn from.
    seed: u64,
    /// The current generation and its salt.
    generation: u64,
    salt: u64,
    /// Where the next record goes.
    at: u64,
    /// Records of the round, not yet written.
    pending: RoundBuf,
    /// The record bytes past which the writer checkpoints (fsyncs its segments and starts a new
    /// generation).
    limit: u64,
    /// A new generation's slot failed to write or fsync, so which generation the disk holds is
    /// unknown: nothing may be logged until a [`Wal::reset`] holds.
    unsure: bool,
    /// A commit of this generation failed: what it wrote may still reach the disk, even at
    /// [`DATA_START`], so a reset must start a new generation whatever `at` says.
    failed: bool,
}

impl Wal {
    /// Opens (creating it and its directory durably) the write-ahead file at `path` and starts a
    /// new generation in it, so whatever records it held are stale: call after [`replay`].
    /// `seed` should be random (the runtime draws it); the salts of the generations come from it.
    pub fn open(disk: &dyn Disk, path: &Path, limit: u64, seed: u64) -> Result<Wal, StorageError> {
        let dir = path
            .parent()
            .ok_or_else(|| StorageError::Io(format!("{} has no directory", path.display())))?;
        disk.create_dir_all(dir).map_err(io_err)?;
        let file = disk.open_direct(path).map_err(io_err)?;
        disk.sync_dir(dir).map_err(io_err)?;
        if let Some(data_dir) = dir.parent() {
            disk.sync_dir(data_dir).map_err(io_err)?;
        }
        let head = file.read_bytes_at(0, DATA_START as usize).map_err(io_err)?;
        let current = current_generation(&head).map_or(0, |(g, _)| g);
        let generation = current + 1;
        let salt = salt_of(seed, generation);
        write_slot(&*file, generation, salt).map_err(io_err)?;
        Ok(Wal {
            file,
            seed,
            generation,
            salt,
            at: DATA_START,
            pending: RoundBuf::default(),
            limit,
            unsure: false,
            failed: false,
        })
    }

    /// Whether appends can be logged here (not while a new generation's slot is in doubt).
    pub fn usable(&self) -> bool {
        !self.unsure
    }

    /// Adds the record of a staged append to the round.
    pub fn log(&mut self, tp: &TopicPartition, batches: &[AppendBatch]) {
        if let Some(body) = record_body_len(tp, batches) {
            self.pending.reserve(HEADER_LEN + body as usize);
            encode_record(self.pending.vec(), self.salt, tp, batches);
        }
    }

    /// Writes and fsyncs the round's records, padded to whole blocks. On error the first of them
    /// is overwritten with zeros, so no scan takes them (if that fails too, the error says the
    /// file can no longer be trusted and the writer stops using it).
    pub fn commit(&mut self) -> Result<(), WalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pad = pad_len(self.pending.len());
        if pad > 0 {
            self.pending.reserve(pad);
            encode_pad(self.pending.vec(), self.salt, pad);
        }
        let result = if self.unsure {
            Err(io::Error::other(
                "the write-ahead file's generation is in doubt",
            ))
        } else {
            self.file
                .write_all_at(self.pending.bytes(), self.at)
                .and_then(|()| self.file.sync())
        };
        let written = self.pending.len() as u64;
        self.pending.clear();
        match result {
            Ok(()) => {
                self.at += written;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                match self.file.write_all_at(&[0; HEADER_LEN], self.at) {
                    Ok(()) => Err(WalError::Failed(io_err(e))),
                    Err(cut) => Err(WalError::Broken(StorageError::Io(format!(
                        "{e}; cutting the write-ahead file back failed too: {cut}"
                    )))),
                }
            }
        }
    }

    /// Whether it is time to checkpoint: the records have passed the limit, or a new generation
    /// is still to be made sure of.
    pub fn is_full(&self) -> bool {
        self.unsure || self.at - DATA_START >= self.limit
    }

    /// Starts a new generation (durably), so every record in the file is stale; call only once
    /// every segment they cover is fsynced. If it fails, the file takes no records until a reset
    /// holds.
    pub fn reset(&mut self) -> Result<(), StorageError> {
        self.pending.clear();
        if self.at == DATA_START && !self.unsure && !self.failed {
            return Ok(());
        }
        // (a retry after a failure writes the same generation again, in the same slot: the
        // current one stays whole whatever happened to the failed write)
        let generation = self.generation + 1;
        let salt = salt_of(self.seed, generation);
        match write_slot(&*self.file, generation, salt) {
            Ok(()) => {
                self.generation = generation;
                self.salt = salt;
                self.at = DATA_START;
                self.unsure = false;
                self.failed = false;
                Ok(())
            }
            Err(e) => {
                self.unsure = true;
                Err(io_err(e))
            }
        }
    }
}

/// A round's record bytes, kept starting at a multiple of [`BLOCK`] in memory, so that the write
/// of a padded round can go straight to the device (see [`Disk::open_direct`]). It grows only
/// through [`RoundBuf::reserve`], which keeps that start; if an estimate falls short and the
/// vector moves, the write is merely misaligned and takes the page cache.
#[derive(Default)]
struct RoundBuf {
    buf: Vec<u8>,
    /// Where the bytes start in `buf`.
    start: usize,
}

impl RoundBuf {
    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Where records are appended.
    fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn clear(&mut self) {
        self.buf.truncate(self.start);
    }

    /// Makes room for `more` bytes, moving what is held to a new block-aligned start if the
    /// vector must grow.
    fn reserve(&mut self, more: usize) {
        if self.buf.capacity() - self.buf.len() >= more {
            return;
        }
        let want = (self.len() + more).max(64 * 1024).next_power_of_two();
        let mut buf = Vec::<u8>::with_capacity(want + BLOCK);
        let start = match buf.as_ptr().align_offset(BLOCK) {
            n if n < BLOCK => n,
            _ => 0, // (alignment unknown: the writes will take the page cache)
        };
        buf.resize(start, 0);
        buf.extend_from_slice(self.bytes());
        *self = RoundBuf { buf, start };
    }
}

/// Why a [`Wal::commit`] failed.
#[derive(Debug)]
pub enum WalError {
    /// The round's records are not durable, and no scan will take them.
    Failed(StorageError),
    /// As `Failed`, but they could not be overwritten: later records would follow damage that a
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

/// Replays every write-ahead file under `data_dir` into the partition logs, then retires the
/// files: each record's batches that continue its partition's recovered log are appended, and
/// every log a file names is fsynced before any file is retired. A file is retired by starting a
/// new generation in it, so none of its records is read again; a file of the first format is
/// removed. Run at start-up, before the partitions are recovered for the gateway and before any
/// writer opens its file. Returns what it did, a line per partition, for the log.
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
    let mut retire = Vec::new();
    let mut remove = Vec::new();
    for name in &names {
        let bytes = Bytes::from(disk.read(&dir.join(name)).map_err(io_err)?);
        match current_generation(&bytes) {
            Some((generation, _)) => retire.push((name, generation)),
            None => remove.push(name),
        }
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
    for (name, generation) in retire {
        // (no record is ever written under this salt: the writer that opens the file starts a
        // generation of its own)
        let next = generation + 1;
        let file = disk.open(&dir.join(name), false).map_err(io_err)?;
        write_slot(&*file, next, salt_of(0, next)).map_err(io_err)?;
    }
    for name in &remove {
        disk.remove_file(&dir.join(name)).map_err(io_err)?;
    }
    if !remove.is_empty() {
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
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: KStr::from(topic),
            partition,
        }
    }

    fn appends(base: i64, records: usize, tag: u64) -> Vec<AppendBatch> {
        vec![AppendBatch {
            base_offset: Offset(base),
            bytes: batch(records, tag),
        }]
    }

    /// A file of generation `generation` (salt `salt`) holding `records`, in slot `generation % 2`.
    fn file_of(generation: u64, salt: u64, records: &[u8]) -> BytesMut {
        let mut file = BytesMut::zeroed(DATA_START as usize);
        let at = ((generation % 2) * SLOT_SPAN) as usize;
        file[at..at + SLOT_LEN].copy_from_slice(&encode_slot(generation, salt));
        file.extend_from_slice(records);
        file
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
        let mut records = BytesMut::new();
        encode_record(&mut records, 99, &tp("orders", 2), &a);
        let first_end = DATA_START as usize + records.len();
        encode_record(&mut records, 99, &tp("x", 0), &appends(0, 1, 3));
        let file = file_of(1, 99, &records).freeze();
        let (records, stopped) = scan_records(&file);
        assert_eq!(stopped, None);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0, tp("orders", 2));
        let scan = scan_segment(&records[0].1, None);
        assert_eq!(scan.stopped, None);
        let bases: Vec<i64> = scan.batches.iter().map(|b| b.base_offset.0).collect();
        assert_eq!(bases, vec![7, 10]);
        assert_eq!(records[1].0, tp("x", 0));

        for cut in [file.len() - 1, first_end + 5, first_end + 12] {
            let (records, _) = scan_records(&file.slice(..cut));
            assert_eq!(records.len(), 1, "cut at {cut}");
        }
        for flip in [first_end - 1, first_end - 30, DATA_START as usize + 9] {
            let mut bad = BytesMut::from(&file[..]);
            bad[flip] ^= 1;
            let (records, _) = scan_records(&bad.freeze());
            assert!(records.len() < 2, "a flipped bit at {flip} is caught");
        }
    }

    /// After a new generation only its records are read, though the older ones are still in the
    /// file past them: their salt is not the current one. That holds for a record a producer
    /// forged inside its own values too, which cannot know the salt.
    #[test]
    fn a_new_generation_leaves_the_older_records_stale() {
        let mut old = BytesMut::new();
        for i in 0..4 {
            encode_record(&mut old, 11, &tp("t", 0), &appends(i * 3, 3, i as u64));
        }
        let mut file = file_of(1, 11, &old);
        assert_eq!(scan_records(&file.clone().freeze()).0.len(), 4);

        // generation 2 in the other slot, one shorter record over the first old one
        let mut new = BytesMut::new();
        encode_record(&mut new, 22, &tp("t", 1), &appends(0, 1, 9));
        let slot = SLOT_SPAN as usize;
        file[slot..slot + SLOT_LEN].copy_from_slice(&encode_slot(2, 22));
        let at = DATA_START as usize;
        file[at..at + new.len()].copy_from_slice(&new);
        let (records, stopped) = scan_records(&file.clone().freeze());
        assert_eq!(stopped, None);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].0, tp("t", 1));

        // a record with the right layout right after, under another salt, is not taken
        let mut forged = BytesMut::new();
        encode_record(&mut forged, 23, &tp("t", 0), &appends(1, 1, 5));
        let after = at + new.len();
        file[after..after + forged.len()].copy_from_slice(&forged);
        assert_eq!(scan_records(&file.clone().freeze()).0.len(), 1);

        // a torn slot of generation 3 leaves generation 2 current
        file[..SLOT_LEN].copy_from_slice(&encode_slot(3, 33));
        file[5] ^= 1;
        assert_eq!(current_generation(&file), Some((2, 22)));
        // and a whole one makes every record stale
        file[5] ^= 1;
        assert_eq!(current_generation(&file), Some((3, 33)));
        assert!(scan_records(&file.freeze()).0.is_empty());
    }

    /// A failed commit at the start of a generation may have left valid records there (the write
    /// can reach the disk after a failed fsync, and zeroing it can fail too): the next reset
    /// starts a new generation although no record was committed, so they can never be replayed.
    #[test]
    fn a_reset_after_a_failed_commit_starts_a_new_generation() {
        use crate::storage::tests::MemDisk;
        let disk = MemDisk::default();
        let path = wal_path(Path::new("/data"), 0);
        let mut wal = Wal::open(&disk, &path, 1 << 20, 5).expect("opens");
        let generation = || {
            let bytes = disk.read(&path).expect("reads");
            current_generation(&bytes).map(|(g, _)| g)
        };
        assert_eq!(generation(), Some(1));
        assert!(wal.reset().is_ok());
        assert_eq!(
            generation(),
            Some(1),
            "nothing written: the generation stays"
        );

        let file = disk.files().get(&path).cloned().expect("exists");
        file.state().failing = true;
        wal.log(&tp("t", 0), &appends(0, 2, 1));
        assert!(matches!(wal.commit(), Err(WalError::Failed(_))));
        file.state().failing = false;
        assert!(wal.reset().is_ok());
        assert_eq!(generation(), Some(2));
        wal.log(&tp("t", 0), &appends(0, 1, 2));
        assert!(wal.commit().is_ok());
        let (records, _) = scan_records(&Bytes::from(disk.read(&path).expect("reads")));
        assert_eq!(records.len(), 1);
    }

    proptest! {
        /// A padding record takes any length of records to a whole number of blocks, and is
        /// always big enough to be a record.
        #[test]
        fn padding_ends_on_a_block(len in 0usize..100_000) {
            let pad = pad_len(len);
            prop_assert_eq!((len + pad) % BLOCK, 0);
            prop_assert!(pad == 0 || (HEADER_LEN + MIN_BODY..2 * BLOCK).contains(&pad));
            let mut out = Vec::new();
            if pad > 0 {
                encode_pad(&mut out, 5, pad);
            }
            prop_assert_eq!(out.len(), pad);
        }
    }

    /// Every commit writes whole blocks, at a block boundary, from block-aligned memory, so a disk
    /// can take it direct; the padding between rounds is skipped by a scan, and a padding record
    /// under another salt (an older generation's) stops it like any other record.
    #[test]
    fn rounds_are_written_in_whole_blocks_and_padding_is_skipped() {
        use crate::storage::tests::MemDisk;
        let disk = MemDisk::default();
        let path = wal_path(Path::new("/data"), 0);
        let mut wal = Wal::open(&disk, &path, 1 << 30, 5).expect("opens");
        let file = disk.files().get(&path).cloned().expect("exists");
        assert!(file.state().direct, "opened for direct writes");
        file.state().writes.clear();
        let mut next = [0i64; 3];
        // rounds of one small record, of several, one ending a few bytes short of a block, one
        // of many blocks
        for (round, sizes) in [vec![1], vec![2, 1, 3], vec![40], vec![300, 200]]
            .into_iter()
            .enumerate()
        {
            for (i, records) in sizes.into_iter().enumerate() {
                let p = i % 3;
                wal.log(&tp("t", p as i32), &appends(next[p], records, round as u64));
                next[p] += records as i64;
            }
            wal.commit().expect("commits");
        }
        let writes = file.state().writes.clone();
        assert_eq!(writes.len(), 4);
        for (at, len, aligned_memory) in writes {
            assert_eq!(
                (at % BLOCK as u64, len % BLOCK),
                (0, 0),
                "write at {at} of {len}"
            );
            assert!(aligned_memory, "write at {at} from aligned memory");
        }
        let bytes = Bytes::from(disk.read(&path).expect("reads"));
        let (records, stopped) = scan_records(&bytes);
        assert_eq!(stopped, None);
        assert_eq!(records.len(), 7);
        let mut count = [0i64; 3];
        for (tp, batches) in &records {
            for b in scan_segment(batches, None).batches {
                assert_eq!(b.base_offset.0, count[tp.partition as usize]);
                count[tp.partition as usize] += b.records as i64;
            }
        }
        assert_eq!(count, next);

        // the first round's padding re-salted: the scan stops there
        let first = DATA_START as usize;
        let (_, pad_at) = parse_record(&bytes, first, Some(wal.salt)).expect("a record");
        let mut bad = BytesMut::from(&bytes[..]);
        let len = u32::from_be_bytes(bad[pad_at..pad_at + 4].try_into().unwrap()) as usize;
        let mut pad = Vec::new();
        encode_pad(&mut pad, wal.salt ^ 1, HEADER_LEN + len);
        bad[pad_at..pad_at + pad.len()].copy_from_slice(&pad);
        assert_eq!(scan_records(&bad.freeze()).0.len(), 1);
    }

    /// A file of the first format (records from byte 0, 8-byte headers, no slot) is still read.
    #[test]
    fn a_file_of_the_first_format_is_still_read() {
        let mut file = BytesMut::new();
        for (p, base) in [(0, 0), (1, 0), (0, 2)] {
            let mut record = BytesMut::new();
            encode_record(&mut record, 0, &tp("t", p), &appends(base, 2, base as u64));
            let body = record.split_off(HEADER_LEN);
            file.put_u32(body.len() as u32);
            file.put_u32(crc32c::crc32c(&body));
            file.extend_from_slice(&body);
        }
        let file = file.freeze();
        let (records, stopped) = scan_records(&file);
        assert_eq!(stopped, None);
        let names: Vec<_> = records.iter().map(|(tp, _)| tp.partition).collect();
        assert_eq!(names, vec![0, 1, 0]);
        let (records, stopped) = scan_records(&file.slice(..file.len() - 3));
        assert_eq!(records.len(), 2);
        assert!(stopped.is_some(), "a torn tail is reported");
    }
}
