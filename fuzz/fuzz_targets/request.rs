//! Frame splitting and request decoding for any API key and version.
//!
//! The input is a byte stream as a client would send it (size-prefixed frames). Every frame must
//! either fail to decode with a `CodecError` or decode into a request that re-encodes and decodes to
//! the same value.
#![no_main]

use bytes::{Bytes, BytesMut};
use kelp_core::codec::FrameDecoder;
use kelp_core::codec::header::Request;
use libfuzzer_sys::fuzz_target;

fn check(frame: &Bytes) {
    if let Ok(request) = Request::decode(frame) {
        let mut out = BytesMut::new();
        request.encode(&mut out).expect("a decoded request encodes");
        let again = Request::decode(&out.freeze()).expect("an encoded request decodes");
        assert_eq!(again, request);
    }
}

fuzz_target!(|data: &[u8]| {
    // The input as one frame body, and as a stream of frames.
    check(&Bytes::copy_from_slice(data));
    let decoder = FrameDecoder::new(1 << 20);
    let mut stream = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut stream) {
        check(&frame);
    }
});
