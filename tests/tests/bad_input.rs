//! Hostile bytes over raw TCP: garbage, oversized and negative size prefixes, truncated frames,
//! unknown API keys and versions, huge array and string counts, random bodies. For each the server
//! must answer or close that connection (not hang, not crash), while a normal ApiVersions on another
//! connection keeps working, including while a half-sent frame is still open.

use std::time::Duration;

use kelp_tests::wire::{
    self, Outcome, connect, frame_v1, frame_v2, send_and_observe, sized, uvarint,
};
use kelp_tests::{progress, setup};

/// How long a server may take to answer or close one bad connection.
const WAIT: Duration = Duration::from_secs(10);

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// close our sending side after the bytes (the frame is incomplete: the server sees EOF)
    half_close: bool,
    /// Some((correlation id, error code)): the one acceptable outcome is an answer with these
    must_answer: Option<(i32, i16)>,
}

fn case(name: &'static str, bytes: Vec<u8>, half_close: bool) -> Case {
    Case {
        name,
        bytes,
        half_close,
        must_answer: None,
    }
}

fn pseudo_random(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A RecordBatch v2 header that claims `records` records and carries none (CRC left 0).
fn lying_batch(records: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&49i32.to_be_bytes()); // batch length: the rest of the header
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&0i64.to_be_bytes()); // base timestamp
    b.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&records.to_be_bytes()); // record count
    b
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        case(
            "http request (size prefix 'GET ' = 1.2 GB)",
            b"GET / HTTP/1.1\r\nHost: kelp\r\n\r\n".to_vec(),
            false,
        ),
        case(
            "tls client hello",
            [
                &[
                    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                ][..],
                &[0u8; 64][..],
            ]
            .concat(),
            false,
        ),
        case(
            "size prefix i32::MAX",
            [&i32::MAX.to_be_bytes()[..], &[0u8; 16][..]].concat(),
            false,
        ),
        case(
            "size prefix 1 GiB",
            [&(1i32 << 30).to_be_bytes()[..], &[0u8; 1024][..]].concat(),
            false,
        ),
        case(
            "negative size prefix",
            [&(-1i32).to_be_bytes()[..], &[0u8; 16][..]].concat(),
            false,
        ),
        case(
            "i32::MIN size prefix",
            i32::MIN.to_be_bytes().to_vec(),
            false,
        ),
        case("zero size frame", 0i32.to_be_bytes().to_vec(), false),
        case("frame shorter than a header", sized(&[0, 18, 0]), false),
        case(
            "truncated frame (100 of 20 bytes, then EOF)",
            [
                &100i32.to_be_bytes()[..],
                &frame_v1(18, 0, 1, "x", &[])[4..],
            ]
            .concat(),
            true,
        ),
        case("truncated size prefix, then EOF", vec![0, 0], true),
        case(
            "unknown api key 9999",
            frame_v1(9999, 0, 7, "kelp", &[]),
            false,
        ),
        case("negative api key", frame_v1(-1, 0, 8, "kelp", &[]), false),
        case(
            "ApiVersions v999, header v1",
            frame_v1(18, 999, 9, "kelp", &[]),
            false,
        ),
        // what a client newer than the server sends first: Kafka answers UNSUPPORTED_VERSION (35) in
        // a v0 body listing its versions, and clients (librdkafka, Java) then retry with one it has
        Case {
            name: "ApiVersions v999, header v2 (a newer client)",
            bytes: frame_v2(18, 999, 11, "kelp", &wire::api_versions_v3_body()),
            half_close: false,
            must_answer: Some((11, 35)),
        },
        case(
            "Metadata v12 with an unsupported huge version field",
            frame_v2(3, i16::MAX, 10, "kelp", &[0, 0]),
            false,
        ),
        case(
            "client id length past the frame",
            sized(&[0, 18, 0, 0, 0, 0, 0, 11, 0x7f, 0xff, b'a']),
            false,
        ),
        // Metadata v1 (non-flexible): topics array count i32::MAX with no elements
        case(
            "Metadata v1 topics count i32::MAX",
            frame_v1(3, 1, 12, "kelp", &i32::MAX.to_be_bytes()),
            false,
        ),
        case(
            "Metadata v1 topics count -2",
            frame_v1(3, 1, 13, "kelp", &(-2i32).to_be_bytes()),
            false,
        ),
        // Metadata v12 (flexible): compact array count 2^32-1, no elements
        case(
            "Metadata v12 compact topics count 2^32-2",
            frame_v2(3, 12, 14, "kelp", &{
                let mut b = Vec::new();
                uvarint(u64::from(u32::MAX), &mut b);
                b
            }),
            false,
        ),
        case(
            "varint that never ends",
            frame_v2(3, 12, 15, "kelp", &[0xff; 64]),
            false,
        ),
    ];
    // Produce v3 (acks=1): topic array count i32::MAX
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // null transactional id
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&5000i32.to_be_bytes()); // timeout
    let head = body.clone();
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    v.push(case(
        "Produce v3 topics count i32::MAX",
        frame_v1(0, 3, 16, "kelp", &body),
        false,
    ));
    // Produce v3 with one partition whose batch claims i32::MAX records
    let batch = lying_batch(i32::MAX);
    let mut body = head.clone();
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    let t = "kelp-bad-input-no-such-topic";
    body.extend_from_slice(&(t.len() as i16).to_be_bytes());
    body.extend_from_slice(t.as_bytes());
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes()); // partition 0
    body.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    body.extend_from_slice(&batch);
    v.push(case(
        "Produce v3 batch claiming i32::MAX records",
        frame_v1(0, 3, 17, "kelp", &body),
        false,
    ));
    // Produce v3 whose records size runs past the frame
    let mut body = head;
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(t.len() as i16).to_be_bytes());
    body.extend_from_slice(t.as_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&(1i32 << 30).to_be_bytes()); // records: 1 GiB claimed, none sent
    v.push(case(
        "Produce v3 records size 1 GiB past the frame",
        frame_v1(0, 3, 18, "kelp", &body),
        false,
    ));
    // random bytes as a whole frame, and as a header of a known key
    v.push(case(
        "64 KiB random frame",
        sized(&pseudo_random(64 << 10, 42)),
        false,
    ));
    let mut r = pseudo_random(4096, 7);
    r[..8].copy_from_slice(&[0, 3, 0, 12, 0, 0, 0, 19]); // Metadata v12, correlation id 19
    v.push(case("Metadata v12 with a random body", sized(&r), false));
    v
}

fn check_serving(gw: &mut kelp_tests::Gateway, after: &str) {
    assert!(
        gw.alive(),
        "the gateway died after: {after}\n{}",
        gw.log_tail(60)
    );
    let mut s =
        connect(gw.bootstrap(), WAIT).unwrap_or_else(|e| panic!("after {after}: connect: {e}"));
    wire::api_versions_v0(&mut s, 101, WAIT).unwrap_or_else(|e| panic!("after {after}: {e}"));
    wire::api_versions_v3(&mut s, 102, WAIT).unwrap_or_else(|e| panic!("after {after}: {e}"));
}

#[test]
fn bad_input() {
    let Some(mut env) = setup("bad_input", &[]) else {
        return;
    };
    let addr = env.bootstrap().to_string();
    check_serving(&mut env.gw, "nothing");
    let mut failures = Vec::new();
    for c in cases() {
        let outcome = send_and_observe(&addr, &c.bytes, c.half_close, WAIT);
        progress(&format!(
            "{:<55} -> {}",
            c.name,
            match &outcome {
                Outcome::Answered(b) => format!("answered ({} bytes)", b.len()),
                Outcome::Closed => "closed".into(),
                Outcome::Silent => "SILENT".into(),
            }
        ));
        match (&outcome, c.must_answer) {
            (Outcome::Silent, _) => failures.push(format!(
                "{}: neither answered nor closed within {WAIT:?}",
                c.name
            )),
            (Outcome::Answered(b), Some((corr, err))) => {
                let mut r = wire::Reader(b);
                let got = (r.i32(), r.i16());
                if got != (Ok(corr), Ok(err)) {
                    failures.push(format!(
                        "{}: want correlation id {corr} and error {err}, got {got:?}",
                        c.name
                    ));
                }
            }
            (Outcome::Closed, Some((_, err))) => failures.push(format!(
                "{}: closed; want an answer with error {err}",
                c.name
            )),
            _ => {}
        }
        check_serving(&mut env.gw, c.name);
    }

    // Memory stays bounded under repeated abuse: the hostile set again, many times over.
    let rss_before = env.gw.rss_kib();
    for _ in 0..20 {
        for c in cases() {
            let _ = send_and_observe(&addr, &c.bytes, c.half_close, Duration::from_millis(200));
        }
    }
    if let (Some(before), Some(after)) = (rss_before, env.gw.rss_kib()) {
        progress(&format!(
            "RSS {before} KiB -> {after} KiB after 20 rounds of hostile input"
        ));
        assert!(
            after < before + 64 * 1024,
            "RSS grew from {before} KiB to {after} KiB"
        );
    }
    check_serving(&mut env.gw, "20 rounds of hostile input");

    // a half-sent frame left open must not stop other connections
    let mut stuck = connect(&addr, WAIT).expect("connect");
    std::io::Write::write_all(&mut stuck, &[0, 0, 0, 100, 0, 18, 0]).expect("write");
    check_serving(&mut env.gw, "a half-sent frame on another open connection");
    drop(stuck);

    // many pipelined requests, then one sent a byte at a time: all answered, in order
    let mut s = connect(&addr, WAIT).expect("connect");
    let many: Vec<u8> = (0..200)
        .flat_map(|i| frame_v1(18, 0, 1000 + i, "kelp", &[]))
        .collect();
    std::io::Write::write_all(&mut s, &many).expect("write");
    for i in 0..200 {
        match wire::read_frame(&mut s, WAIT) {
            Outcome::Answered(b)
                if b.len() >= 4 && i32::from_be_bytes(b[..4].try_into().unwrap()) == 1000 + i => {}
            other => panic!("pipelined ApiVersions #{i}: {other:?}"),
        }
    }
    for byte in frame_v1(18, 0, 5000, "kelp", &[]) {
        std::io::Write::write_all(&mut s, &[byte]).expect("write");
        std::thread::sleep(Duration::from_millis(5));
    }
    match wire::read_frame(&mut s, WAIT) {
        Outcome::Answered(b)
            if b.len() >= 4 && i32::from_be_bytes(b[..4].try_into().unwrap()) == 5000 => {}
        other => panic!("ApiVersions sent byte by byte: {other:?}"),
    }
    check_serving(&mut env.gw, "everything");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
