//! The embedded log's [`Disk`] on the local file system (blocking `std::fs`, for the blocking pool).

use bytes::{Bytes, BytesMut};
use kelp_core::storage::disk::{Disk, DiskFile};
use kelp_core::storage::wal::BLOCK;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The local file system.
pub struct LocalDisk;

/// An open local file.
struct LocalFile {
    /// Shared with the fetch regions mapped from it (see [`crate::file_region`]), which send from
    /// it after the log has closed its own handle.
    file: std::sync::Arc<File>,
    /// The same file opened with `O_DIRECT`, for block-aligned writes (see [`Disk::open_direct`]).
    direct: Option<File>,
    /// Set once the file system refused a direct write: the rest go through the page cache.
    direct_refused: AtomicBool,
}

impl LocalFile {
    fn new(file: File, direct: Option<File>) -> LocalFile {
        LocalFile {
            file: std::sync::Arc::new(file),
            direct,
            direct_refused: AtomicBool::new(false),
        }
    }

    /// Writes as much of `bytes` at `at` as the direct descriptor takes, if it suits: what is
    /// left for the page cache (all of it when a write cannot go direct).
    fn write_direct<'a>(&self, mut bytes: &'a [u8], mut at: u64) -> io::Result<(&'a [u8], u64)> {
        let Some(direct) = &self.direct else {
            return Ok((bytes, at));
        };
        let aligned = |b: &[u8], at: u64| {
            (b.as_ptr() as usize).is_multiple_of(BLOCK)
                && b.len().is_multiple_of(BLOCK)
                && at.is_multiple_of(BLOCK as u64)
        };
        while !bytes.is_empty()
            && aligned(bytes, at)
            && !self.direct_refused.load(Ordering::Relaxed)
        {
            match direct.write_at(bytes, at) {
                Ok(0) => break,
                Ok(n) => {
                    bytes = &bytes[n..];
                    at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // (a device whose blocks are bigger than ours, or a file system that only
                    // pretends to take O_DIRECT)
                    tracing::warn!(error = %e, "direct write refused; using the page cache");
                    self.direct_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((bytes, at))
    }
}

impl DiskFile for LocalFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        self.file.read_at(buf, at)
    }

    #[cfg(unix)]
    fn read_bytes_at(&self, at: u64, len: usize) -> io::Result<Bytes> {
        use std::os::fd::AsRawFd;
        let mut buf = BytesMut::with_capacity(len);
        while buf.len() < len {
            let Ok(from) = libc::off_t::try_from(at + buf.len() as u64) else {
                break; // past any offset the file can have: nothing more to read
            };
            let want = len - buf.len();
            let room = &mut buf.spare_capacity_mut()[..want];
            // SAFETY: `room` is memory `buf` owns and `pread` writes at most `room.len()` bytes
            // into it; the descriptor is open for as long as `self.file` lives.
            let n = unsafe {
                libc::pread(
                    self.file.as_raw_fd(),
                    room.as_mut_ptr().cast(),
                    room.len(),
                    from,
                )
            };
            match n {
                0 => break,
                n if n > 0 => {
                    let filled = buf.len() + n.unsigned_abs();
                    // SAFETY: `pread` initialised the `n` bytes after `buf.len()` it reported,
                    // and `n <= room.len()` keeps them inside the capacity.
                    unsafe { buf.set_len(filled) };
                }
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(buf.freeze())
    }

    /// A region of [`crate::file_region::MAP_MIN`] or more is mapped, for the socket to send it
    /// from the file; a shorter one, or one the kernel will not map, is read.
    #[cfg(target_os = "linux")]
    fn read_region(&self, at: u64, len: usize) -> io::Result<Bytes> {
        if len >= crate::file_region::MAP_MIN
            && at.saturating_add(len as u64) <= self.size()?
            && let Ok(region) = crate::file_region::map(&self.file, at, len)
        {
            return Ok(region);
        }
        self.read_bytes_at(at, len)
    }

    fn write_all_at(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        let (rest, at) = self.write_direct(bytes, at)?;
        self.file.write_all_at(rest, at)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        // (one inode: this covers what either descriptor wrote)
        self.file.sync_data()
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&self, at: u64, len: u64) -> io::Result<()> {
        self.range_hint(at, len, |fd, at, len| {
            // SAFETY: `fd` is open for as long as `self.file` lives; the call reads no memory
            let rc = unsafe { libc::sync_file_range(fd, at, len, libc::SYNC_FILE_RANGE_WRITE) };
            if rc == 0 {
                0
            } else {
                io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO)
            }
        })
    }

    #[cfg(target_os = "linux")]
    fn drop_cache(&self, at: u64, len: u64) -> io::Result<()> {
        self.range_hint(at, len, |fd, at, len| {
            // SAFETY: as above; posix_fadvise returns the error number rather than setting errno
            unsafe { libc::posix_fadvise64(fd, at, len, libc::POSIX_FADV_DONTNEED) }
        })
    }
}

#[cfg(target_os = "linux")]
impl LocalFile {
    /// Gives the kernel a hint about bytes `at..at + len` through `call` (the descriptor, the
    /// range; an error number or 0). A range past any offset a file can have needs none.
    fn range_hint(
        &self,
        at: u64,
        len: u64,
        call: impl FnOnce(libc::c_int, libc::off64_t, libc::off64_t) -> libc::c_int,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(at), Ok(len)) = (libc::off64_t::try_from(at), libc::off64_t::try_from(len)) else {
            return Ok(());
        };
        match call(self.file.as_raw_fd(), at, len) {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

impl Disk for LocalDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        fs::read_dir(dir)?
            .map(|e| {
                let e = e?;
                Ok((
                    e.file_name().to_string_lossy().into_owned(),
                    e.file_type()?.is_dir(),
                ))
            })
            .collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        fs::write(&tmp, bytes)?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, path)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(LocalFile::new(open_file(path, create)?, None)))
    }

    fn open_direct(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let file = open_file(path, true)?;
        Ok(Box::new(LocalFile::new(file, open_direct(path))))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }
}

/// `path` opened for reading and writing, created if `create` and it does not exist, never
/// truncated.
fn open_file(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
}

/// `path` opened for writing with `O_DIRECT`, if the file system takes it.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(file) => Some(file),
        Err(e) => {
            let path = path.display();
            tracing::info!(%path, error = %e, "no direct writes; using the page cache");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bytes_up_to_the_end_of_the_file() {
        let dir = std::env::temp_dir().join(format!("kelp-disk-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = LocalDisk.open(&dir.join("f"), true).unwrap();
        let content: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        file.write_all_at(&content, 0).unwrap();
        assert_eq!(file.read_bytes_at(0, 300_000).unwrap(), content[..]);
        assert_eq!(file.read_bytes_at(1000, 10).unwrap(), content[1000..1010]);
        assert_eq!(
            file.read_bytes_at(299_990, 100).unwrap(),
            content[299_990..]
        );
        assert!(file.read_bytes_at(400_000, 100).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A file opened for direct writes takes block-aligned writes and any others, and reads see
    /// each: a direct write over bytes the page cache holds leaves no stale copy behind. Run on
    /// the temporary directory and, where there is one, on tmpfs (which may refuse `O_DIRECT`).
    #[test]
    fn a_direct_file_takes_aligned_and_unaligned_writes() {
        for base in [std::env::temp_dir(), std::path::PathBuf::from("/dev/shm")] {
            if !base.is_dir() {
                continue;
            }
            let dir = base.join(format!("kelp-direct-test-{}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            let path = dir.join("f");
            let file = LocalDisk.open_direct(&path).unwrap();
            let mut buf = Vec::<u8>::with_capacity(4 * BLOCK);
            let skew = buf.as_ptr().align_offset(BLOCK);
            buf.resize(skew, 0);
            buf.extend((0..2 * BLOCK).map(|i| (i % 251) as u8));
            let blocks = &buf[skew..];

            file.write_all_at(blocks, BLOCK as u64).unwrap();
            file.write_all_at(b"slot", 0).unwrap();
            let odd = &blocks[1..BLOCK + 1];
            file.write_all_at(odd, 3 * BLOCK as u64 + 7).unwrap();
            file.sync().unwrap();
            let all = fs::read(&path).unwrap();
            assert_eq!(&all[..4], b"slot", "{}", base.display());
            assert_eq!(&all[BLOCK..3 * BLOCK], blocks);
            assert_eq!(&all[3 * BLOCK + 7..4 * BLOCK + 7], odd);

            // the page cache holds these blocks now; overwrite them direct and read again
            let mut again = Vec::<u8>::with_capacity(4 * BLOCK);
            let skew = again.as_ptr().align_offset(BLOCK);
            again.resize(skew, 0);
            again.extend(blocks.iter().map(|b| !*b));
            let blocks = &again[skew..];
            file.write_all_at(blocks, BLOCK as u64).unwrap();
            let read = file.read_bytes_at(BLOCK as u64, 2 * BLOCK).unwrap();
            assert_eq!(&read[..], blocks, "{}", base.display());
            fs::remove_dir_all(&dir).unwrap();
        }
    }
}
