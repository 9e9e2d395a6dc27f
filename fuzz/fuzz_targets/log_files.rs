//! The embedded log's files as recovery reads them after a crash: write-ahead records, segments
//! and sparse indexes. They are Kelp's own bytes, but a torn write or a bad disk can leave
//! anything there, and start-up must cut it off, never panic.
//!
//! With the first byte of the input odd, the CRC of each write-ahead record is fixed up before
//! the scan, so the fuzzer reaches the batches inside the records. With its second bit set the
//! rest is the record area of a file of the current format, behind a valid generation slot
//! (salt 0), and each record's salt is set too; else it is a whole file as it comes.
#![no_main]

use bytes::BytesMut;
use kelp_core::storage::log::{decode_index, scan_segment};
use kelp_core::storage::wal::{DATA_START, encode_slot, scan_records};
use kelp_core::types::Offset;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use common::crc32c;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = BytesMut::new();
    let salted = mode & 2 == 2;
    if salted {
        bytes.extend_from_slice(&encode_slot(1, 0));
        bytes.resize(DATA_START as usize, 0);
    }
    let records_at = bytes.len();
    bytes.extend_from_slice(rest);
    if mode & 1 == 1 {
        fix_record_crcs(&mut bytes, records_at, salted);
    }
    let bytes = bytes.freeze();
    let (records, _) = scan_records(&bytes);
    for (_, batches) in records {
        std::hint::black_box(scan_segment(&batches, None));
    }
    std::hint::black_box(scan_segment(&bytes, Some(Offset(0))));
    std::hint::black_box(decode_index(&bytes, Offset(0)));
});

/// Rewrites the CRC of every write-ahead record from byte `at` whose length fits in the input
/// (for the current format, with salt 0 and the salt field set to it).
fn fix_record_crcs(bytes: &mut BytesMut, mut at: usize, salted: bool) {
    let header = if salted { 16 } else { 8 };
    while at + header <= bytes.len() {
        let len = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let end = at + header + len as usize;
        if end > bytes.len() {
            return;
        }
        let crc = if salted {
            bytes[at + 8..at + 16].fill(0);
            let mut salted_body = vec![0u8; 8];
            salted_body.extend_from_slice(&bytes[at + 16..end]);
            crc32c(&salted_body)
        } else {
            crc32c(&bytes[at + 8..end])
        };
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}
