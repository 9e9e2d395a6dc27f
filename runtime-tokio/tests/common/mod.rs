//! What the gateway's integration tests share: the `kelp` binary started on a free port (on the
//! embedded log, or on SMQ with `KELP_E2E_SMQ=host:port`) and a minimal Kafka client built on Kelp's
//! own codec, so that every acknowledgement is known exactly.
#![allow(dead_code)] // each test binary uses its own part

use bytes::{Bytes, BytesMut};
use kelp_core::api::fetch::FetchRequest;
use kelp_core::api::fetch::request::{FetchPartition, FetchTopic};
use kelp_core::api::produce::ProduceRequest;
use kelp_core::api::produce::request::{PartitionProduceData, TopicProduceData};
use kelp_core::api::{RequestBody, ResponseBody, create_topics};
use kelp_core::codec::compression::Compression;
use kelp_core::codec::header::{Request, RequestHeader, Response};
use kelp_core::codec::record_batch::{BatchHeader, Batches, NewRecord, encode_batch};
use kelp_core::codec::{FrameDecoder, encode_frame};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Kelp {
    pub child: Child,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
}

/// The gateway under test: `KELP_BIN` (say, `kelp-smol`: the same tests on the other runtime), else
/// this package's `kelp`.
pub fn gateway_binary() -> std::ffi::OsString {
    std::env::var_os("KELP_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_kelp").into())
}

impl Kelp {
    pub fn start(dir: &std::path::Path, port: u16) -> Kelp {
        Kelp::start_with(dir, port, &[])
    }

    pub fn start_with(dir: &std::path::Path, port: u16, extra: &[&str]) -> Kelp {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("kelp.log"))
            .expect("open the gateway log");
        let mut child = Command::new(gateway_binary())
            .args(["--listen", &addr.to_string(), "--data-dir"])
            .arg(dir)
            .args(smq_backend(dir))
            .args(extra)
            .env("KELP_LOG", "warn,kelp_core::smq::restore=info")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("dup the log"))
            .stderr(log)
            .spawn()
            .expect("start kelp");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !listening(addr) {
            assert!(Instant::now() < deadline, "kelp did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("kelp.log")).unwrap_or_default();
            panic!("kelp exited ({status}) while something else listens on {addr}:\n{log}");
        }
        Kelp {
            child,
            addr,
            log: dir.join("kelp.log"),
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Kelp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- gateway log (tail) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// The SMQ namespace of user topics of the gateway whose data directory is `dir` (the same across
/// its restarts).
pub fn smq_namespace(dir: &std::path::Path) -> String {
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("test-{}-{name}", std::process::id())
}

/// With `KELP_E2E_SMQ=host:port`, the arguments that put the gateway's records in that SMQ broker,
/// in namespaces named after the test's data directory (so the same across restarts).
pub fn smq_backend(dir: &std::path::Path) -> Vec<String> {
    match std::env::var("KELP_E2E_SMQ") {
        Ok(broker) if !broker.is_empty() => vec![
            "--backend".into(),
            format!("smq://{broker}"),
            "--smq-namespace".into(),
            smq_namespace(dir),
        ],
        _ => Vec::new(),
    }
}

/// A port free now and never handed out before in this process. The tests of a binary run in
/// parallel and a test's gateway leaves its port free between a kill and the restart: without the
/// memory, the kernel may give the same port to another test, whose client then talks to (and is
/// reset by) the wrong gateway.
/// Whether something listens on `addr`. A connection to oneself does not count: with nothing
/// listening on a port of the ephemeral range, Linux may pick that very port as the source and
/// "connect" the socket to itself, which once made a test go on before the gateway was up.
pub fn listening(addr: impl std::net::ToSocketAddrs) -> bool {
    TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct Client {
    stream: TcpStream,
    inbound: BytesMut,
    corr: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client {
            stream,
            inbound: BytesMut::new(),
            corr: 0,
        })
    }

    /// How long a call waits for its answer (10 s unless set).
    pub fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    pub fn call(&mut self, version: i16, body: RequestBody) -> std::io::Result<ResponseBody> {
        self.corr += 1;
        let api = body.api_key();
        let request = Request {
            header: RequestHeader {
                api_key: api.code(),
                api_version: version,
                correlation_id: self.corr,
                client_id: Some("crash-test".into()),
                unknown_tagged_fields: vec![],
            },
            body,
        };
        let mut out = BytesMut::new();
        encode_frame(&mut out, |b| request.encode(b)).unwrap();
        self.stream.write_all(&out)?;
        let frames = FrameDecoder::new(64 << 20);
        loop {
            if let Some(frame) = frames
                .decode(&mut self.inbound)
                .map_err(std::io::Error::other)?
            {
                let response =
                    Response::decode(&frame, api, version).map_err(std::io::Error::other)?;
                assert_eq!(response.header.correlation_id, self.corr);
                return Ok(response.body);
            }
            let mut buf = [0u8; 65536];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.inbound.extend_from_slice(&buf[..n]);
        }
    }

    /// Produces `values` as one batch with acks=all; returns the base offset if acknowledged.
    pub fn produce(&mut self, topic: &str, values: &[String]) -> std::io::Result<Option<i64>> {
        self.produce_as(topic, values, (-1, -1, -1))
    }

    /// The same, as idempotent producer `(id, epoch, first sequence)`.
    pub fn produce_as(
        &mut self,
        topic: &str,
        values: &[String],
        producer: (i64, i16, i32),
    ) -> std::io::Result<Option<i64>> {
        let records: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                value: Some(Bytes::from(v.clone())),
                ..Default::default()
            })
            .collect();
        let (producer_id, producer_epoch, base_sequence) = producer;
        let header = BatchHeader {
            base_timestamp: 1,
            max_timestamp: 1,
            producer_id,
            producer_epoch,
            base_sequence,
            ..Default::default()
        };
        let batch = encode_batch(&header, Compression::None, &records).unwrap();
        let body = ProduceRequest {
            acks: -1,
            timeout_ms: 5000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(batch),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let ResponseBody::Produce(r) = self.call(9, RequestBody::Produce(body))? else {
            unreachable!()
        };
        let p = &r.responses[0].partition_responses[0];
        Ok((p.error_code == 0).then_some(p.base_offset))
    }

    pub fn create(&mut self, topic: &str) {
        let body = create_topics::CreateTopicsRequest {
            topics: vec![create_topics::request::CreatableTopic {
                name: topic.into(),
                num_partitions: 1,
                replication_factor: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let ResponseBody::CreateTopics(r) = self.call(7, RequestBody::CreateTopics(body)).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(r.topics[0].error_code, 0);
    }

    /// Every (offset, value) of partition 0, moving past gaps (empty batches) as consumers do.
    pub fn fetch_all(&mut self, topic: &str) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        let mut next = 0i64;
        loop {
            let body = FetchRequest {
                max_wait_ms: 0,
                min_bytes: 1,
                max_bytes: 8 << 20,
                topics: vec![FetchTopic {
                    topic: topic.into(),
                    partitions: vec![FetchPartition {
                        partition: 0,
                        fetch_offset: next,
                        partition_max_bytes: 4 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let ResponseBody::Fetch(r) = self.call(12, RequestBody::Fetch(body)).unwrap() else {
                unreachable!()
            };
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "fetch at {next}");
            let before = next;
            for batch in Batches::new(p.records.clone().unwrap_or_default()) {
                let batch = batch.unwrap();
                let base = batch.header().base_offset;
                let records = batch.records(1 << 30).unwrap();
                for r in records.iter() {
                    let r = r.unwrap();
                    let offset = base + i64::from(r.offset_delta);
                    if offset >= next {
                        out.push((
                            offset,
                            String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                        ));
                    }
                }
                next = next.max(base + i64::from(batch.header().last_offset_delta) + 1);
            }
            if next == before || next >= p.high_watermark {
                return out;
            }
        }
    }
}
