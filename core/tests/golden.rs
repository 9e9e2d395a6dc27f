//! Golden bytes from real clients and a real Apache Kafka 4.x broker (captured by `tests/golden/`):
//! every request and response of an API Kelp speaks decodes, and re-encodes byte for byte. Record
//! batches inside Produce requests and Fetch responses pass their CRC check and decode record by
//! record, whatever codec the client chose.
//!
//! Fixtures live in `core/tests/fixtures/golden/<client>/NNNN-<api>-v<version>.req|.resp`; each
//! client directory has a SOURCE.md saying which client, version and program produced it.

use bytes::{Bytes, BytesMut};
use kelp_core::api::{ApiKey, RequestBody, ResponseBody};
use kelp_core::codec::header::{Request, Response};
use kelp_core::codec::record_batch::Batches;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn api_by_snake_name(name: &str) -> Option<ApiKey> {
    ApiKey::ALL.into_iter().find(|a| snake(a.name()) == name)
}

/// (client dir, file stem, api name, version) of every captured request.
fn fixtures() -> Vec<(PathBuf, String, String, i16)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let mut out = Vec::new();
    let Ok(clients) = std::fs::read_dir(&root) else {
        return out;
    };
    for client in clients.flatten().filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(client.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().to_string();
            let Some(stem) = name.strip_suffix(".req") else {
                continue;
            };
            // NNNN-<api>-v<version>
            let mut parts = stem.splitn(2, '-');
            let (Some(_), Some(rest)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Some((api, version)) = rest.rsplit_once("-v") else {
                continue;
            };
            let Ok(version) = version.parse() else {
                continue;
            };
            out.push((client.path(), stem.to_string(), api.to_string(), version));
        }
    }
    out.sort();
    out
}

/// With `KELP_FUZZ_SEEDS=DIR` set, the fixtures also seed the fuzz corpora (see `fuzz/run.sh`).
fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("KELP_FUZZ_SEEDS") {
        let dir = Path::new(&dir).join(target);
        std::fs::create_dir_all(&dir).expect("create seed dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
}

fn check_batches(records: &Option<Bytes>, what: &str, partial_tail_ok: bool) -> usize {
    let Some(records) = records else { return 0 };
    let mut count = 0;
    for (n, batch) in Batches::new(records.clone()).enumerate() {
        let batch = match batch {
            Ok(b) => b,
            // A fetch response may end in a partial batch (the broker cuts at max_bytes).
            Err(_) if partial_tail_ok => break,
            Err(e) => panic!("{what}: {e}"),
        };
        // Mode byte 1: the fuzz target recomputes CRCs of mutated batches.
        let seed: Vec<u8> = [1u8].iter().chain(batch.bytes().iter()).copied().collect();
        write_seed(
            "record_batch",
            &format!("{}-{n}", what.replace('/', "-")),
            &seed,
        );
        let records = batch
            .records(64 << 20)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        for record in records.iter() {
            let record = record.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                record.headers.iter().count(),
                record.headers.len(),
                "{what}"
            );
            count += 1;
        }
    }
    count
}

#[test]
fn real_client_bytes_decode_and_reencode_identically() {
    let all = fixtures();
    let mut checked: BTreeMap<String, usize> = BTreeMap::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut records = 0;
    let mut failures = Vec::new();
    for (dir, stem, api_name, version) in &all {
        let client = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let Some(api) = api_by_snake_name(api_name).filter(|a| a.versions().contains(*version))
        else {
            *skipped.entry(format!("{api_name} v{version}")).or_default() += 1;
            continue;
        };
        let what = format!("{client}/{stem}");
        let req = Bytes::from(std::fs::read(dir.join(format!("{stem}.req"))).expect("read .req"));
        write_seed("request", &format!("{client}-{stem}"), &req);
        match Request::decode(&req) {
            Ok(decoded) => {
                let mut again = BytesMut::new();
                decoded.encode(&mut again).expect("encode request");
                let again = again.freeze();
                if again != req {
                    // Kafka ignores bytes after a request body; librdkafka's "all topics" Metadata
                    // request carries three (`01 00 00`). Anything else must match exactly.
                    let known_quirk = client.starts_with("librdkafka")
                        && api == ApiKey::Metadata
                        && req.starts_with(&again)
                        && req.len() - again.len() == 3;
                    if !known_quirk {
                        failures.push(format!("{what}.req re-encodes differently"));
                    }
                }
                if let RequestBody::Produce(p) = &decoded.body {
                    for t in &p.topic_data {
                        for part in &t.partition_data {
                            records += check_batches(&part.records, &what, false);
                        }
                    }
                }
            }
            Err(e) => failures.push(format!("{what}.req: {e}")),
        }
        if let Ok(resp) = std::fs::read(dir.join(format!("{stem}.resp"))) {
            let resp = Bytes::from(resp);
            let seed: Vec<u8> = api
                .code()
                .to_be_bytes()
                .iter()
                .chain(&version.to_be_bytes())
                .chain(resp.iter())
                .copied()
                .collect();
            write_seed("response", &format!("{client}-{stem}"), &seed);
            match Response::decode(&resp, api, *version) {
                Ok(decoded) => {
                    let mut again = BytesMut::new();
                    decoded
                        .encode(&mut again, *version)
                        .expect("encode response");
                    if again.freeze() != resp {
                        failures.push(format!("{what}.resp re-encodes differently"));
                    }
                    if let ResponseBody::Fetch(f) = &decoded.body {
                        for t in &f.responses {
                            for part in &t.partitions {
                                records += check_batches(&part.records, &what, true);
                            }
                        }
                    }
                }
                Err(e) => failures.push(format!("{what}.resp: {e}")),
            }
        }
        *checked.entry(format!("{api_name} v{version}")).or_default() += 1;
    }
    eprintln!("golden pairs checked: {checked:?}");
    eprintln!("skipped (APIs Kelp does not speak): {skipped:?}");
    eprintln!("records decoded from real batches: {records}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The fixtures must be there: an empty directory would make this test pass vacuously.
    assert!(
        checked.values().sum::<usize>() >= 100,
        "too few golden fixtures: {checked:?}"
    );
    assert!(records > 0, "no record batches in the fixtures");
}
