//! What the fuzz targets share.

/// Bitwise CRC-32C (Castagnoli), independent of the crate the core uses: targets recompute the
/// checksums of mutated inputs so the fuzzer gets past them to the decoding behind.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
