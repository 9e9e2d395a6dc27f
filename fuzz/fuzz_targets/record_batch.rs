//! Record batch splitting, CRC check, decompression (all codecs) and lazy record decoding.
//!
//! The CRC would stop almost every mutated input at the door, so the target also recomputes it:
//! with the second byte of the input odd, the CRC of each batch is fixed up before parsing, letting
//! the fuzzer reach decompression and record decoding.
#![no_main]

use bytes::{Bytes, BytesMut};
use kelp_core::codec::record_batch::Batches;
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
        fix_crcs(&mut bytes);
    }
    for batch in Batches::new(bytes.freeze()) {
        let Ok(batch) = batch else { break };
        let Ok(records) = batch.records(1 << 20) else {
            continue;
        };
        for record in records.iter() {
            let Ok(record) = record else { break };
            for header in record.headers.iter() {
                std::hint::black_box(header);
            }
        }
    }
});

/// Rewrites the CRC of every batch whose length fits in the input.
fn fix_crcs(bytes: &mut BytesMut) {
    let mut at = 0usize;
    while at + 61 <= bytes.len() {
        let len =
            i32::from_be_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let end = at + 12 + len;
        if end > bytes.len() || len < 49 {
            return;
        }
        let crc = crc32c(&bytes[at + 21..end]);
        bytes[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
    let _ = Bytes::new();
}
