//! Response decoding: the first four bytes choose the API key and version, the rest is the frame.
//! A decoded response encodes back to itself, and the splicing encoder the gateway sends with
//! writes the same bytes as the copying one.
#![no_main]

use bytes::{Bytes, BytesMut};
use kelp_core::api::ApiKey;
use kelp_core::codec::encode_frame_parts;
use kelp_core::codec::header::Response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let key = i16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    let Some(api) = ApiKey::from_code(key) else {
        return;
    };
    if !api.versions().contains(version) {
        return;
    }
    let frame = Bytes::copy_from_slice(&data[4..]);
    if let Ok(response) = Response::decode(&frame, api, version) {
        let mut out = BytesMut::new();
        response
            .encode(&mut out, version)
            .expect("a decoded response encodes");
        let spliced = encode_frame_parts::<kelp_core::codec::CodecError>(64, |b| {
            response.encode_to(b, version)
        })
        .expect("a decoded response encodes");
        assert_eq!(spliced.to_bytes()[4..], out[..]);
        let again =
            Response::decode(&out.freeze(), api, version).expect("an encoded response decodes");
        assert_eq!(again, response);
    }
});
