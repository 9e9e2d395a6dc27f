//! The allocator settings keep freed buffers for reuse: a fetch-like pattern (several 1 MiB
//! buffers at once, then all freed) faults its pages in once, not at every round. One test in
//! this binary: the settings are process-wide.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_fetch_buffers_are_reused_without_faulting_again() {
    fn minor_faults() -> i64 {
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
            0
        );
        usage.ru_minflt
    }
    fn round() -> u64 {
        let buffers: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8 + 1; 1 << 20]).collect();
        buffers.iter().map(|b| u64::from(b[b.len() - 1])).sum()
    }
    kelp_tokio::allocator::tune(2, 32 << 20);
    let mut sum = round();
    let before = minor_faults();
    for _ in 0..20 {
        sum += round();
    }
    let faults = minor_faults() - before;
    assert_eq!(sum, 21 * 10);
    // glibc's defaults give the 4 MiB back at each round and fault it in again: 20 × 1024 pages
    assert!(
        faults < 512,
        "{faults} minor faults over 20 rounds of 4 MiB"
    );
}
