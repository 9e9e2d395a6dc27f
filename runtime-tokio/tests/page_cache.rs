//! The log lets the page cache drop bytes it will not read soon, and on this machine's file
//! system the pages do leave the cache (see `kelp_core::storage::page_cache`): a segment written
//! and written back is resident, and after the advice it is not, while it still reads back whole.

#[cfg(target_os = "linux")]
#[test]
fn dropped_bytes_leave_the_page_cache_and_still_read_back() {
    use kelp_core::storage::disk::Disk;
    use kelp_tokio::disk::LocalDisk;
    use std::os::fd::AsRawFd;

    const LEN: usize = 8 << 20;
    let page = 4096;

    /// Pages of `path` that the page cache holds (`mincore` on a mapping of the file).
    fn resident(path: &std::path::Path, len: usize) -> usize {
        let file = std::fs::File::open(path).unwrap();
        // SAFETY: a read-only shared mapping of `len` bytes of a file that is `len` long; it is
        // unmapped below and no byte of it is read here.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let mut pages = vec![0u8; len.div_ceil(4096)];
        // SAFETY: `pages` has one byte per page of the mapping, as mincore writes.
        let rc = unsafe { libc::mincore(map, len, pages.as_mut_ptr()) };
        // SAFETY: the mapping made above, of that length.
        unsafe { libc::munmap(map, len) };
        assert_eq!(rc, 0);
        pages.iter().filter(|p| **p & 1 == 1).count()
    }

    // (under target/: a real file system, as the data directory is; tmpfs would keep its pages)
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("00000000000000000000.log");
    let file = LocalDisk.open(&path, true).unwrap();
    let content: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    file.write_all_at(&content, 0).unwrap();
    file.sync().unwrap();
    let before = resident(&path, LEN);
    assert!(
        before > LEN / page / 2,
        "{before} pages cached after the write"
    );

    // the first half goes; the second stays
    file.drop_cache(0, (LEN / 2) as u64).unwrap();
    let after = resident(&path, LEN);
    assert!(
        after <= LEN / page / 2 + 1,
        "{after} of {} pages still cached",
        LEN / page
    );
    assert!(after >= before - LEN / page / 2, "the second half stays");

    // a read brings it back, whole
    assert_eq!(file.read_bytes_at(0, LEN).unwrap(), content[..]);
    let plain_after = resident(&path, LEN);
    assert!(
        plain_after > LEN / page * 3 / 4,
        "{plain_after} pages cached after reading it all"
    );
}
