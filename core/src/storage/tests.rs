//! What the storage tests share: a disk double that keeps written bytes apart from synced ones,
//! can "lose power" (every file falls back to what was synced, plus a torn part of what was not)
//! and can fail syncs; batches to append; reading the log back.

use super::disk::{Disk, DiskFile};
use super::file_log::read;
use crate::codec::compression::Compression;
use crate::codec::record_batch::{BatchHeader, NewRecord, encode_batch};
use crate::types::{LogPosition, Offset};
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct FileState {
    pub written: Vec<u8>,
    pub synced: Vec<u8>,
    /// The ranges whose writeback was started, in order.
    pub written_back: Vec<(u64, u64)>,
    /// Syncs fail (a dying disk) while set.
    pub failing: bool,
    /// Syncs that succeeded.
    pub syncs: usize,
    /// Each write: where, how long, and whether its memory started on a
    /// [`super::wal::BLOCK`] boundary.
    pub writes: Vec<(u64, usize, bool)>,
    /// Opened through [`Disk::open_direct`].
    pub direct: bool,
    /// The ranges the page cache was told it may drop, in order.
    pub dropped: Vec<(u64, u64)>,
    /// Each `read_at`: where, and how many bytes it returned.
    pub reads: Vec<(u64, usize)>,
    /// Each `read_region`: where, and how many bytes it asked for.
    pub regions: Vec<(u64, usize)>,
}

#[derive(Clone)]
pub struct MemFile(Arc<Mutex<FileState>>);

impl MemFile {
    pub fn state(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DiskFile for MemFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.state().written.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        let mut s = self.state();
        let from = (at as usize).min(s.written.len());
        let n = buf.len().min(s.written.len() - from);
        buf[..n].copy_from_slice(&s.written[from..from + n]);
        s.reads.push((at, n));
        Ok(n)
    }

    fn read_region(&self, at: u64, len: usize) -> io::Result<Bytes> {
        let mut s = self.state();
        s.regions.push((at, len));
        let from = (at as usize).min(s.written.len());
        let to = from.saturating_add(len).min(s.written.len());
        Ok(Bytes::copy_from_slice(&s.written[from..to]))
    }

    fn write_all_at(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        let mut s = self.state();
        let aligned = (bytes.as_ptr() as usize).is_multiple_of(super::wal::BLOCK);
        s.writes.push((at, bytes.len(), aligned));
        let end = at as usize + bytes.len();
        if s.written.len() < end {
            s.written.resize(end, 0);
        }
        s.written[at as usize..end].copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.state().written.resize(len as usize, 0);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut s = self.state();
        if s.failing {
            return Err(io::Error::other("injected sync failure"));
        }
        s.synced = s.written.clone();
        s.syncs += 1;
        Ok(())
    }

    fn start_writeback(&self, at: u64, len: u64) -> io::Result<()> {
        self.state().written_back.push((at, len));
        Ok(())
    }

    fn drop_cache(&self, at: u64, len: u64) -> io::Result<()> {
        self.state().dropped.push((at, len));
        Ok(())
    }
}

/// Files by path; directories are implied by their files (directory entries count as durable
/// at once: the double tests the data, not the names).
#[derive(Default)]
pub struct MemDisk(Mutex<HashMap<PathBuf, MemFile>>);

impl MemDisk {
    pub fn files(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, MemFile>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A power cut: each file keeps what was synced, and of what was written after, from the first
    /// byte that differs (appended or overwritten), a prefix whose length `torn` picks (0: none
    /// of it). An unsynced cut to a shorter length is lost.
    pub fn crash(&self, mut torn: impl FnMut(usize) -> usize) {
        for f in self.files().values() {
            let mut s = f.state();
            let FileState {
                written, synced, ..
            } = &mut *s;
            let same = written
                .iter()
                .zip(synced.iter())
                .take_while(|(a, b)| a == b)
                .count();
            let mut kept = synced.clone();
            let extra = torn(written.len() - same);
            if kept.len() < same + extra {
                kept.resize(same + extra, 0);
            }
            kept[same..same + extra].copy_from_slice(&written[same..same + extra]);
            *written = kept;
        }
    }
}

impl Disk for MemDisk {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut names: Vec<(String, bool)> = Vec::new();
        for path in self.files().keys() {
            if let Ok(rest) = path.strip_prefix(dir)
                && let Some(first) = rest.components().next()
            {
                let name = first.as_os_str().to_string_lossy().into_owned();
                let is_dir = rest.components().count() > 1;
                if !names.iter().any(|(n, _)| *n == name) {
                    names.push((name, is_dir));
                }
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.files().get(path) {
            Some(f) => Ok(f.state().written.clone()),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let f = MemFile(Arc::default());
        f.write_all_at(bytes, 0)?;
        f.sync()?;
        self.files().insert(path.to_path_buf(), f);
        Ok(())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>> {
        let mut files = self.files();
        match files.get(path) {
            Some(f) => Ok(Box::new(f.clone())),
            None if create => {
                let f = MemFile(Arc::default());
                files.insert(path.to_path_buf(), f.clone());
                Ok(Box::new(f))
            }
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn open_direct(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let file = self.open(path, true)?;
        if let Some(f) = self.files().get(path) {
            f.state().direct = true;
        }
        Ok(file)
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self.files().remove(path) {
            Some(_) => Ok(()),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.files().retain(|p, _| !p.starts_with(dir));
        Ok(())
    }
}

pub fn batch(records: usize, tag: u64) -> Bytes {
    batch_with(records, tag, |i| Bytes::from(format!("{tag}-{i}")))
}

/// A batch of `records` whose values are `value_len` bytes each.
pub fn big_batch(records: usize, value_len: usize, tag: u64) -> Bytes {
    batch_with(records, tag, |i| {
        Bytes::from(vec![(i % 251) as u8; value_len])
    })
}

fn batch_with(records: usize, tag: u64, value: impl Fn(usize) -> Bytes) -> Bytes {
    let records: Vec<NewRecord> = (0..records)
        .map(|i| NewRecord {
            timestamp_delta: i as i64,
            value: Some(value(i)),
            ..Default::default()
        })
        .collect();
    let header = BatchHeader {
        base_timestamp: 1_000 + tag as i64,
        max_timestamp: 1_000 + tag as i64,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        ..Default::default()
    };
    encode_batch(&header, Compression::None, &records).expect("encodes")
}

/// The base offsets of the batches read from offset 0 on.
pub fn read_bases(disk: &dyn Disk, dir: &Path, end: Offset) -> Vec<i64> {
    let mut bases = Vec::new();
    let mut at = Offset(0);
    let from = LogPosition {
        segment: Offset(0),
        byte: 0,
    };
    while at < end {
        let bytes = read(disk, dir, at, from, 1 << 20, end).expect("reads");
        let before = bases.len();
        for b in crate::codec::record_batch::Batches::new(bytes) {
            let h = b.expect("a whole batch").header().clone();
            if h.base_offset >= at.0 {
                bases.push(h.base_offset);
                at = Offset(h.base_offset + i64::from(h.last_offset_delta) + 1);
            }
        }
        if bases.len() == before {
            break;
        }
    }
    bases
}

/// A small deterministic random source (xorshift) for the seeded crash tests.
pub fn seeded(seed: u64) -> impl FnMut() -> u64 {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    }
}
