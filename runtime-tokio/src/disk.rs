//! The embedded log's [`Disk`] on the local file system (blocking `std::fs`, for the blocking pool).

use bytes::{Bytes, BytesMut};
use kelp_core::storage::disk::{Disk, DiskFile};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The local file system.
pub struct LocalDisk;

/// An open local file.
struct LocalFile(File);

impl DiskFile for LocalFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        self.0.read_at(buf, at)
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
            // into it; the descriptor is open for as long as `self.0` lives.
            let n = unsafe {
                libc::pread(
                    self.0.as_raw_fd(),
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

    fn write_all_at(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        self.0.write_all_at(bytes, at)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&self, at: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(at), Ok(len)) = (libc::off64_t::try_from(at), libc::off64_t::try_from(len)) else {
            return Ok(());
        };
        // SAFETY: the descriptor is open for as long as `self.0` lives; the call reads no memory
        let rc = unsafe {
            libc::sync_file_range(self.0.as_raw_fd(), at, len, libc::SYNC_FILE_RANGE_WRITE)
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
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
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(LocalFile(file)))
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
}
