//! How the C allocator (glibc's malloc) holds memory for the gateway: how many arenas it keeps,
//! and how much freed memory it keeps for reuse instead of handing it back to the kernel.
//!
//! Why this matters: the buffers of a fetch (up to a partition's fetch size each, 1 MiB with most
//! clients) are allocated on the blocking threads that read the log and freed once the socket
//! took them, several at a time. glibc's defaults give the top of a heap back to the kernel once
//! more than twice the largest recent buffer is free there, so each round of fetches faulted its
//! buffers in again: 125k-140k minor page faults for 1 GiB consumed. On a virtual machine whose
//! host takes freed guest memory back (virtio-balloon free page reporting, as on the Firecracker
//! machines the benchmarks run on) each such page also costs a fault on the host: writing into
//! memory freed a few seconds before ran at 0.4 GB/s there, against 5.3 GB/s into memory reused
//! at once. Keeping 32 MiB per arena, ProducerPerformance's consumer (1M × 1 KiB, 3 partitions)
//! faulted 1.5k pages instead and the gateway spent 0.51 s of CPU instead of 0.73-0.76 s, at the
//! same peak RSS within 1-2 MiB.
//!
//! Other allocators, and other C libraries, ignore these settings.

/// Sets the allocator's parameters; call before any other thread starts (the settings are global
/// and glibc reads them without a lock).
///
/// - `arenas`: arenas at most (each thread that allocates may get an arena of its own, up to 8
///   per core, and an arena keeps what was freed in it: the blocking threads that read and write
///   the log each held tens of MiB after a burst); 0 leaves glibc's default. With 2 the
///   benchmark's peak RSS fell from 73-121 MiB to 49-68 MiB at the same rates (1 arena: 24-29
///   MiB, but reads about 20% slower from lock contention).
/// - `keep_bytes`: freed memory each arena keeps for reuse at the top of its heap; with it,
///   buffers of up to 32 MiB come from the heaps rather than from a mapping of their own, which
///   the kernel would take back at each free. 0 leaves glibc's default (which adjusts both
///   thresholds to the largest buffer freed so far).
pub fn tune(arenas: usize, keep_bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let clamp = |n: usize| n.min(i32::MAX as usize) as i32;
        // SAFETY: mallopt only sets allocator parameters; the caller runs before other threads.
        unsafe {
            if arenas > 0 {
                libc::mallopt(libc::M_ARENA_MAX, clamp(arenas));
            }
            if keep_bytes > 0 {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MAPPED_FROM);
                libc::mallopt(libc::M_TRIM_THRESHOLD, clamp(keep_bytes));
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (arenas, keep_bytes);
}

/// Buffers of this size and up get a mapping of their own (glibc's most on 64-bit: half its
/// largest heap).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAPPED_FROM: i32 = 32 * 1024 * 1024;
