//! Property tests over every API and every version: random values survive encode -> decode
//! unchanged, and arbitrary bytes never make a decoder panic.

use super::{ApiKey, RequestBody, ResponseBody};
use crate::codec::header::{
    Request, RequestHeader, Response, ResponseHeader, request_header_version,
};
use crate::codec::testing::Gen;
use crate::codec::wire::{self, KStr};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn versions(api: ApiKey) -> impl Iterator<Item = i16> {
    let r = api.versions();
    r.min..=r.max
}

fn request_round_trip(api: ApiKey, version: i16, seed: u64) {
    let mut g = Gen::new(seed);
    let body = RequestBody::random(api, &mut g, version);
    let request = Request {
        header: RequestHeader {
            api_key: api.code(),
            api_version: version,
            correlation_id: g.i32(),
            client_id: Some(KStr::from("kelp-test")),
            unknown_tagged_fields: Vec::new(),
        },
        body,
    };
    let mut buf = BytesMut::new();
    request
        .encode(&mut buf)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
    let bytes = buf.freeze();
    let decoded = Request::decode(&bytes).unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
    assert_eq!(decoded, request, "{api:?} v{version}");
    let mut again = BytesMut::new();
    decoded.encode(&mut again).unwrap();
    assert_eq!(
        again.freeze(),
        bytes,
        "{api:?} v{version} re-encodes differently"
    );
}

fn response_round_trip(api: ApiKey, version: i16, seed: u64) {
    let mut g = Gen::new(seed);
    let response = Response {
        header: ResponseHeader {
            correlation_id: g.i32(),
            unknown_tagged_fields: Vec::new(),
        },
        body: ResponseBody::random(api, &mut g, version),
    };
    let mut buf = BytesMut::new();
    response
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
    let bytes = buf.freeze();
    let decoded = Response::decode(&bytes, api, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
    assert_eq!(decoded, response, "{api:?} v{version}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_request_round_trips_at_every_version(seed in any::<u64>()) {
        for api in ApiKey::ALL {
            for v in versions(api) {
                request_round_trip(api, v, seed);
            }
        }
    }

    #[test]
    fn every_response_round_trips_at_every_version(seed in any::<u64>()) {
        for api in ApiKey::ALL {
            for v in versions(api) {
                response_round_trip(api, v, seed);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let bytes = Bytes::from(data);
        let _ = Request::decode(&bytes);
        for api in ApiKey::ALL {
            for v in versions(api) {
                let _ = Response::decode(&bytes, api, v);
                let _ = wire::complete(&bytes, |src, i| RequestBody::decode(api, v, src, i));
            }
        }
    }

    #[test]
    fn truncated_requests_fail_cleanly(seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        for api in ApiKey::ALL {
            let v = api.versions().max;
            let mut g = Gen::new(seed);
            let request = Request {
                header: RequestHeader { api_key: api.code(), api_version: v, correlation_id: 7, client_id: None, unknown_tagged_fields: Vec::new() },
                body: RequestBody::random(api, &mut g, v),
            };
            let mut buf = BytesMut::new();
            request.encode(&mut buf).unwrap();
            let bytes = buf.freeze();
            let at = cut.index(bytes.len());
            prop_assert!(Request::decode(&bytes.slice(..at)).is_err());
        }
    }
}

#[test]
fn the_api_table_is_consistent() {
    for api in ApiKey::ALL {
        assert_eq!(ApiKey::from_code(api.code()), Some(api));
        let v = api.versions();
        assert!(v.min <= v.max, "{api:?}");
        assert!(
            api.advertised().min <= v.min && api.advertised().max == v.max,
            "{api:?}"
        );
        // Once flexible, always flexible.
        let first_flexible = versions(api).find(|&x| api.is_flexible(x));
        if let Some(f) = first_flexible {
            assert!((f..=v.max).all(|x| api.is_flexible(x)), "{api:?}");
            assert_eq!(request_header_version(api, f), 2);
        }
    }
    assert_eq!(ApiKey::ALL.len(), 30);
    assert_eq!(ApiKey::Produce.advertised().min, 0);
}

#[test]
fn unsupported_versions_and_unknown_keys_are_named() {
    use crate::codec::CodecError;
    // ApiVersions v127 and API key 999: header prefix readable, decode reports the reason.
    let frame = Bytes::from_static(&[0, 18, 0, 127, 0, 0, 0, 5, 0xff, 0xff]);
    assert_eq!(
        Request::decode(&frame),
        Err(CodecError::UnsupportedVersion {
            api_key: 18,
            version: 127
        })
    );
    let frame = Bytes::from_static(&[3, 231, 0, 0, 0, 0, 0, 5, 0xff, 0xff]);
    assert_eq!(Request::decode(&frame), Err(CodecError::UnknownApiKey(999)));
    // Produce v2 is advertised (KAFKA-18659) but not decoded.
    let frame = Bytes::from_static(&[0, 0, 0, 2, 0, 0, 0, 5, 0xff, 0xff]);
    assert_eq!(
        Request::decode(&frame),
        Err(CodecError::UnsupportedVersion {
            api_key: 0,
            version: 2
        })
    );
}

#[test]
fn random_messages_are_not_trivial() {
    // Guards the property tests above: they must exercise real content, not empty defaults.
    let mut sizes = Vec::new();
    for seed in 0..20 {
        let mut g = Gen::new(seed);
        let body = ResponseBody::random(ApiKey::Fetch, &mut g, 16);
        let mut buf = BytesMut::new();
        body.encode(&mut buf, 16).unwrap();
        sizes.push(buf.len());
    }
    assert!(sizes.iter().filter(|&&s| s > 50).count() >= 5, "{sizes:?}");
}
