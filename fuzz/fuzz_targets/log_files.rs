//! The embedded log's files as recovery reads them after a crash: write-ahead records, segments
//! and sparse indexes. They are Kelp's own bytes, but a torn write or a bad disk can leave
//! anything there, and start-up must cut it off, never panic.
//!
//! With the first byte of the input odd, the CRC of each write-ahead record is fixed up before
//! the scan, so the fuzzer reaches the batches inside the records.
#![no_main]

use bytes::BytesMut;
use kelp_core::storage::log::{decode_index, scan_segment};
use kelp_core::storage::wal::scan_records;
use kelp_core::types::Offset;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use common::crc32c;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = BytesMut::from(rest);
    if mode & 1 == 1 {
        fix_record_crcs(&mut bytes);
    }
    let bytes = bytes.freeze();
    let (records, _) = scan_records(&bytes);
    for (_, batches) in records {
        std::hint::black_box(scan_segment(&batches, None));
    }
    std::hint::black_box(scan_segment(&bytes, Some(Offset(0))));
    std::hint::black_box(decode_index(&bytes, Offset(0)));
});

/// Rewrites the CRC of every write-ahead record whose length fits in the input.
fn fix_record_crcs(bytes: &mut BytesMut) {
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let end = at + 8 + len as usize;
        if end > bytes.len() {
            return;
        }
        let crc = crc32c(&bytes[at + 8..end]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}
