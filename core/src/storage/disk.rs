//! The file operations the embedded log needs, as a trait the runtime implements.
//!
//! The embedded log's logic ([`super::file_log`]: segments, rolling, recovery, reads) is written
//! against [`Disk`], so it lives here once for every runtime, and a test can run it on a disk double
//! that keeps written bytes apart from durable ones. Every call blocks: runtimes call the log from
//! threads that may block (log writer threads, tokio's and smol's blocking pools).

use bytes::Bytes;
use std::io;
use std::path::Path;

/// An open file.
pub trait DiskFile: Send + Sync {
    /// Its length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reads into `buf` from byte `at`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize>;
    /// Reads `len` bytes from byte `at`, fewer only where the file ends. Fetches read megabytes
    /// through this: the default zeroes a buffer that `read_at` then overwrites, and that zeroing
    /// was a tenth of the gateway's CPU while serving consumers, so a disk that can read into
    /// uninitialised memory should.
    fn read_bytes_at(&self, at: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match self.read_at(&mut buf[done..], at + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(done);
        Ok(Bytes::from(buf))
    }
    /// Reads `len` bytes from byte `at` that the caller only passes on (a fetch's batches, sent
    /// as they are). The default is [`DiskFile::read_bytes_at`]; a runtime may instead hand out
    /// bytes that refer to the file, so that a socket can send them from the page cache without
    /// their passing through user space (see `kelp_tokio::disk`). The caller asks only for bytes
    /// that are never rewritten or cut while the result lives (batches below the log's end), and
    /// that the file holds (`at + len` is within its size).
    fn read_region(&self, at: u64, len: usize) -> io::Result<Bytes> {
        self.read_bytes_at(at, len)
    }
    /// Writes all of `bytes` at byte `at`.
    fn write_all_at(&self, bytes: &[u8], at: u64) -> io::Result<()>;
    /// Cuts (or extends) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes what was written durable (data and the length: `fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Starts writing bytes `at..at + len` out to the device without waiting for it (Linux's
    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)`); a hint, not a durability point. Without it the
    /// kernel lets unsynced appends pile up (gigabytes on a large machine) and writes them out in
    /// one burst, and every fsync that lands in that burst waits behind it. The default does
    /// nothing.
    fn start_writeback(&self, at: u64, len: u64) -> io::Result<()> {
        let _ = (at, len);
        Ok(())
    }
    /// Advises that bytes `at..at + len` will not be read soon: the page cache may drop them
    /// (Linux's `posix_fadvise(POSIX_FADV_DONTNEED)`, which drops clean pages only). A hint, with
    /// no effect on what reads return (see [`super::page_cache`] for why the log gives it). The
    /// default does nothing.
    fn drop_cache(&self, at: u64, len: u64) -> io::Result<()> {
        let _ = (at, len);
        Ok(())
    }
}

/// A directory tree of files. `NotFound` errors pass through as such: callers rely on them.
pub trait Disk: Send + Sync {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names in `dir`, each with whether it is a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<(String, bool)>>;
    /// The whole content of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Replaces `path` with `bytes` atomically and durably (a temporary file, synced, renamed; the
    /// directory is not synced).
    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Opens `path` for reading and writing, creating it empty if `create` and it does not exist
    /// (an existing file is never truncated: it holds acknowledged data).
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>>;
    /// As [`Disk::open`] with `create`, for a file whose writes may bypass the page cache: a
    /// write whose offset, length and memory address are multiples of
    /// [`super::wal::BLOCK`] may go straight to the device (`O_DIRECT`), others take the page
    /// cache as usual. Durability is the same either way: nothing written is durable before
    /// [`DiskFile::sync`]. The write-ahead file uses it (see [`super::wal`] for why); the default
    /// is a plain open.
    fn open_direct(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        self.open(path, true)
    }
    /// Makes `dir`'s entries (created, renamed, removed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
}
