//! Record batches that a socket sends straight from the page cache (Linux `sendfile`).
//!
//! Why: serving a consumer used to copy every batch twice, out of the page cache into a buffer
//! (`pread`) and from that buffer into the socket (`writev`). In a librdkafka read of cached data
//! those copies were 45% and 11% of the gateway's CPU samples (`bench/consume_order.py --perf`),
//! and Kafka, which sends with `sendfile`, made neither: its reads cost 0.24-0.50 s of server CPU
//! per million records against Kelp's 0.60-0.66 s, on two cores the client shares.
//!
//! How, without the core knowing: the log asks for a fetch's batches as a region of the segment
//! ([`kelp_core::storage::disk::DiskFile::read_region`]). [`map`] answers with `Bytes` over a
//! read-only shared mapping of the file and notes the mapping here. The bytes are what the file
//! holds, so any code may read them (which faults the pages in), but the response's writer
//! ([`crate::runtime::write_all_parts`]) asks [`region_of`] first and, for a part that is such a
//! region, has the socket send it from the file, so no user-space code touches those pages.
//!
//! Why that is safe: the log asks only for batches below its end, which are never rewritten or
//! cut (a segment is only cut at bytes past its end, after a failed append, and deleting a file
//! leaves its open descriptors and mappings working). A read error while sending is an error of
//! the write, and the connection is closed. [`map`] reads the pages in before it returns (on the
//! blocking thread that reads the log), so a disk error meets the read, which then falls back to
//! copying the bytes and reports the error; and the event loop's `sendfile` finds the pages
//! cached rather than waiting for the disk.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Regions shorter than this are read into memory: a mapping costs two system calls and a
/// memory area of the process, while a copy of a few pages costs about as little.
pub const MAP_MIN: usize = 64 * 1024;

/// A live mapping: where it ends, and which file and byte it starts at.
struct Mapped {
    end: usize,
    file: Arc<File>,
    file_at: u64,
}

/// Live mappings by start address.
static MAPPINGS: Mutex<BTreeMap<usize, Mapped>> = Mutex::new(BTreeMap::new());

/// How many mappings are live: writes skip the lock while there are none.
static LIVE: AtomicUsize = AtomicUsize::new(0);

fn mappings() -> MutexGuard<'static, BTreeMap<usize, Mapped>> {
    MAPPINGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The file and byte that `bytes` start at, if they lie within a mapping made by [`map`].
pub fn region_of(bytes: &Bytes) -> Option<(Arc<File>, u64)> {
    if bytes.is_empty() || LIVE.load(Ordering::Acquire) == 0 {
        return None;
    }
    let at = bytes.as_ptr() as usize;
    let mappings = mappings();
    let (&start, m) = mappings.range(..=at).next_back()?;
    (at + bytes.len() <= m.end).then(|| (m.file.clone(), m.file_at + (at - start) as u64))
}

/// Owns one mapping; unmapping it forgets it first, so an address the kernel hands out again is
/// never taken for the old file.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only memory that no one writes through; any thread may read it,
// and unmapping happens once, in `drop`.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is mapped readable for as long as `self` lives, and the bytes
        // under it are not changed meanwhile (see the module's comment).
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if mappings().remove(&(self.ptr as usize)).is_some() {
            LIVE.fetch_sub(1, Ordering::AcqRel);
        }
        // SAFETY: `ptr` and `len` are the mapping `map` made, unmapped only here.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// Bytes `at..at + len` of `file` as a read-only shared mapping noted for [`region_of`]. The
/// caller guarantees that the file holds them and that they do not change while the result
/// lives (see [`kelp_core::storage::disk::DiskFile::read_region`]).
pub fn map(file: &Arc<File>, at: u64, len: usize) -> io::Result<Bytes> {
    use std::os::fd::AsRawFd;
    let from = at - at % page_size();
    let lead = (at - from) as usize;
    let map_len = lead
        .checked_add(len)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let offset = libc::off_t::try_from(from).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a new read-only mapping of an open descriptor; it aliases no Rust memory.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // Read the pages in now, on the caller's thread (a blocking one), so that neither a slow
    // disk nor a failing one reaches the socket's `sendfile` on the event loop: a page that
    // cannot be read fails here, as an error rather than a SIGBUS, and the caller reads the bytes
    // instead (and meets the error there). A kernel before 5.14 does not know the advice; the
    // pages are then read when sent.
    // SAFETY: `ptr..ptr + map_len` is the mapping just made.
    if unsafe { libc::madvise(ptr, map_len, libc::MADV_POPULATE_READ) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            // SAFETY: the mapping just made, not yet shared with anything.
            unsafe { libc::munmap(ptr, map_len) };
            return Err(e);
        }
    }
    mappings().insert(
        ptr as usize,
        Mapped {
            end: ptr as usize + map_len,
            file: file.clone(),
            file_at: from,
        },
    );
    LIVE.fetch_add(1, Ordering::AcqRel);
    Ok(Bytes::from_owner(Mapping { ptr, len: map_len }).slice(lead..))
}

/// One `sendfile` of up to `len` bytes of `file` from byte `at` to the socket `socket`: how many
/// went (`WouldBlock` when the socket's buffer is full).
pub fn send_file(
    socket: std::os::fd::RawFd,
    file: &File,
    at: u64,
    len: usize,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut offset = libc::off_t::try_from(at).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: both descriptors are open for the call, and `offset` is a local it may update.
    let n = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut offset, len) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(content: &[u8]) -> (std::path::PathBuf, Arc<File>) {
        let dir = std::env::temp_dir().join(format!(
            "kelp-region-test-{}-{}",
            std::process::id(),
            content.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        File::create(&path).unwrap().write_all(content).unwrap();
        (dir, Arc::new(File::open(&path).unwrap()))
    }

    /// A region reads as the file's bytes, and it and its slices are found with their place in
    /// the file, until the last of them is dropped.
    #[test]
    fn a_mapped_region_reads_as_the_file_and_is_found_until_dropped() {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (dir, file) = temp_file(&content);
        let region = map(&file, 10_000, 200_000).unwrap();
        assert_eq!(region, content[10_000..210_000]);
        let (found, at) = region_of(&region).expect("a region");
        assert!(Arc::ptr_eq(&found, &file));
        assert_eq!(at, 10_000);
        let slice = region.slice(5_000..6_000);
        assert_eq!(region_of(&slice).expect("a region").1, 15_000);
        assert!(region_of(&Bytes::copy_from_slice(&region[..100])).is_none());
        drop(region);
        assert!(region_of(&slice).is_some(), "the slice keeps the mapping");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
