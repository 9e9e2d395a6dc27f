//! The record set every producer sends, the file that hands it to the client programs, the JSON lines
//! they print back, and the comparisons the tests make.

use std::fmt;
use std::path::Path;

use crate::b64;
use crate::json::Json;
use crate::proc::Output;

/// One record as a client acked or read it. Header names are UTF-8 strings in every client API.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Bytes for a message: short ones as an escaped string, long ones by length and a prefix.
pub struct Bytes<'a>(pub Option<&'a [u8]>);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("null"),
            Some(b) if b.len() <= 48 => write!(f, "b\"{}\"", b.escape_ascii()),
            Some(b) => write!(f, "{} bytes b\"{}\"...", b.len(), b[..32].escape_ascii()),
        }
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p{} @{} ts={} key={:?} value={:?} headers=[",
            self.partition,
            self.offset,
            self.timestamp,
            Bytes(self.key.as_deref()),
            Bytes(self.value.as_deref())
        )?;
        for (i, (k, v)) in self.headers.iter().enumerate() {
            write!(
                f,
                "{}{k:?}={:?}",
                if i > 0 { ", " } else { "" },
                Bytes(v.as_deref())
            )?;
        }
        f.write_str("]")
    }
}

/// What a client program can send, so that the record set asks nothing of it that its API lacks.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub codecs: &'static [&'static str],
    /// false: the API cannot send a header whose value is null (kafka-python, kafkajs)
    pub null_header_values: bool,
    /// true: a time lookup that finds nothing comes back as the high watermark instead of "none"
    /// (kafkajs' admin.fetchTopicOffsetsByTimestamp does that)
    pub time_miss_is_end: bool,
}

pub const ALL_CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];
pub const PARTITIONS: i32 = 3;
/// The large value: exactly 1 MiB, incompressible and sent uncompressed. Its batch is larger than
/// Kafka's default `max.message.bytes` (1048588), so every client's `create` makes its topic with
/// [`TOPIC_MAX_MESSAGE_BYTES`], and the clients raise their own request and fetch limits.
pub const LARGE_VALUE: usize = 1024 * 1024;
/// The topic config `max.message.bytes` every client's `create` sets (2 MiB).
pub const TOPIC_MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// A record of the set, with the codec of the producer that sends it (offset still unknown: -1).
#[derive(Clone, Debug)]
pub struct Planned {
    pub codec: &'static str,
    pub rec: Record,
}

fn text(s: impl Into<String>) -> Option<Vec<u8>> {
    Some(s.into().into_bytes())
}

/// The deterministic record set: per codec (in `caps.codecs` order) 5 records to each of the 3
/// partitions (one producer, flushed: one batch per partition), then one large record.
/// Timestamps are `t0 + 10 * n` (n = index in the set), so they grow along each partition.
/// Per partition and codec, record i is:
///   0: text key and a compressible text value; headers codec, i (and a null-valued one if the client can)
///   1: null key; an empty-valued header
///   2: null value
///   3: binary key and value (every byte value, tabs, newlines, invalid UTF-8); a repeated header name
///   4: empty key, empty value, no headers
///
/// Header names and values avoid `,` `=` and the text `NULL`, which kcat's `%h` output cannot tell apart.
pub fn plan(caps: &Caps, t0: i64) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut n = 0i64;
    let mut push = |codec: &'static str, partition: i32, key, value, headers| {
        let rec = Record {
            partition,
            offset: -1,
            timestamp: t0 + 10 * n,
            key,
            value,
            headers,
        };
        n += 1;
        out.push(Planned { codec, rec });
    };
    for &codec in caps.codecs {
        for p in 0..PARTITIONS {
            for i in 0..5 {
                let h = |k: &str, v: &str| (k.to_string(), text(v));
                let base = vec![h("codec", codec), h("i", &i.to_string())];
                let (key, value, headers) = match i {
                    0 => {
                        let mut hs = base;
                        if caps.null_header_values {
                            hs.push(("null".to_string(), None));
                        }
                        let v = format!("{codec}/{p}/{i} ").repeat(3) + &"hello kelp, ".repeat(40);
                        (text(format!("key/{codec}/{p}/{i}")), text(v), hs)
                    }
                    1 => {
                        let mut hs = base;
                        hs.push(("empty".to_string(), Some(Vec::new())));
                        (None, text(format!("null key {codec}/{p}")), hs)
                    }
                    2 => (text(format!("key/{codec}/{p}/{i}")), None, base),
                    3 => {
                        let mut key = vec![0u8, 0xff, b'\t', b'\n', b'\r', 0x80, 0xc3];
                        key.extend_from_slice(format!("{codec}{p}").as_bytes());
                        let value: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
                        let hs = vec![h("dup", "first"), h("dup", "second"), h("codec", codec)];
                        (Some(key), Some(value), hs)
                    }
                    _ => (Some(Vec::new()), Some(Vec::new()), Vec::new()),
                };
                push(codec, p, key, value, headers);
            }
        }
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let large: Vec<u8> = (0..LARGE_VALUE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let hs = vec![("size".to_string(), text(LARGE_VALUE.to_string()))];
    // after the last codec's run of lines: a run (and so a producer) of its own
    push("none", 1, text("large"), Some(large), hs);
    out
}

fn field(b: &Option<Vec<u8>>) -> String {
    b.as_ref()
        .map_or_else(|| "-".to_string(), |b| b64::encode(b))
}

/// The record file given to `produce --input`: one line per record,
/// `codec TAB partition TAB timestamp TAB key TAB value [TAB header-name TAB header-value]...`,
/// bytes in base64 (`-` = null), header names as base64 of their UTF-8. A producer is made for each
/// run of lines with the same codec and flushed at its end.
pub fn write_plan(path: &Path, plan: &[Planned]) {
    let mut s = String::new();
    for p in plan {
        let r = &p.rec;
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}",
            p.codec,
            r.partition,
            r.timestamp,
            field(&r.key),
            field(&r.value)
        ));
        for (k, v) in &r.headers {
            s.push_str(&format!("\t{}\t{}", b64::encode(k.as_bytes()), field(v)));
        }
        s.push('\n');
    }
    std::fs::write(path, s).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn bytes_of(j: &Json, what: &str) -> Result<Option<Vec<u8>>, String> {
    match j {
        Json::Null => Ok(None),
        Json::Str(s) => b64::decode(s).map(Some).map_err(|e| format!("{what}: {e}")),
        _ => Err(format!("{what}: expected base64 or null")),
    }
}

fn int_of(j: &Json, what: &str) -> Result<i64, String> {
    j.as_i64()
        .ok_or_else(|| format!("{what}: expected an integer"))
}

pub fn record_from_json(j: &Json) -> Result<Record, String> {
    let mut headers = Vec::new();
    for h in j
        .get("headers")
        .as_arr()
        .ok_or("headers: expected an array")?
    {
        match h.as_arr() {
            Some([k, v]) => headers.push((
                k.as_str().ok_or("header name")?.to_string(),
                bytes_of(v, "header value")?,
            )),
            _ => return Err("header: expected [name, value]".into()),
        }
    }
    Ok(Record {
        partition: int_of(j.get("partition"), "partition")? as i32,
        offset: int_of(j.get("offset"), "offset")?,
        timestamp: int_of(j.get("timestamp"), "timestamp")?,
        key: bytes_of(j.get("key"), "key")?,
        value: bytes_of(j.get("value"), "value")?,
        headers,
    })
}

/// Each non-empty stdout line of a client as JSON (panics with the line on a bad one).
pub fn json_lines(out: &Output) -> Vec<Json> {
    let s = out.stdout_str();
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            Json::parse(l).unwrap_or_else(|e| {
                panic!(
                    "{}: stdout line {}: {e}: {}",
                    out.what,
                    i + 1,
                    crate::proc::tail(l.as_bytes(), 1)
                )
            })
        })
        .collect()
}

pub fn parse_records(out: &Output) -> Vec<Record> {
    json_lines(out)
        .iter()
        .enumerate()
        .map(|(i, j)| {
            record_from_json(j)
                .unwrap_or_else(|e| panic!("{}: record line {}: {e}", out.what, i + 1))
        })
        .collect()
}

/// The acks must be the planned records, in order, with dense offsets from 0 in each partition.
pub fn check_acks(plan: &[Planned], acks: &[Record]) -> Result<(), String> {
    if plan.len() != acks.len() {
        return Err(format!("{} records sent, {} acked", plan.len(), acks.len()));
    }
    let mut next = vec![0i64; PARTITIONS as usize];
    for (i, (p, a)) in plan.iter().zip(acks).enumerate() {
        let mut want = p.rec.clone();
        let part = usize::try_from(a.partition)
            .map_err(|_| format!("ack {i}: partition {}", a.partition))?;
        want.offset = *next
            .get(part)
            .ok_or_else(|| format!("ack {i}: partition {}", a.partition))?;
        if *a != want {
            return Err(format!(
                "ack {i} ({} batch):\n  want {want:?}\n  got  {a:?}",
                p.codec
            ));
        }
        next[part] += 1;
    }
    Ok(())
}

/// Same records, byte for byte (partition, offset, timestamp, key, value, headers in order), ignoring
/// the order in which they were printed.
pub fn same_records(a_name: &str, a: &[Record], b_name: &str, b: &[Record]) -> Result<(), String> {
    let sorted = |v: &[Record]| {
        let mut v = v.to_vec();
        v.sort_by_key(|r| (r.partition, r.offset));
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    for (x, y) in a.iter().zip(&b) {
        if x != y {
            return Err(format!(
                "first difference:\n  {a_name}: {x:?}\n  {b_name}: {y:?}"
            ));
        }
    }
    if a.len() != b.len() {
        let (long, name) = if a.len() > b.len() {
            (&a, a_name)
        } else {
            (&b, b_name)
        };
        let extra = &long[a.len().min(b.len())];
        return Err(format!(
            "{a_name} has {} records, {b_name} {}; first extra in {name}: {extra:?}",
            a.len(),
            b.len()
        ));
    }
    Ok(())
}

/// Earliest, latest and time lookups of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub earliest: i64,
    pub latest: i64,
    /// (timestamp asked, offset found or None)
    pub times: Vec<(i64, Option<i64>)>,
}

pub fn parse_offsets(out: &Output) -> Vec<PartitionOffsets> {
    let parse = |j: &Json| -> Result<PartitionOffsets, String> {
        let mut times = Vec::new();
        for t in j.get("times").as_arr().ok_or("times: expected an array")? {
            match t.as_arr() {
                Some([ts, o]) => times.push((
                    int_of(ts, "time")?,
                    if o.is_null() {
                        None
                    } else {
                        Some(int_of(o, "offset")?)
                    },
                )),
                _ => return Err("times: expected [timestamp, offset]".into()),
            }
        }
        Ok(PartitionOffsets {
            partition: int_of(j.get("partition"), "partition")? as i32,
            earliest: int_of(j.get("earliest"), "earliest")?,
            latest: int_of(j.get("latest"), "latest")?,
            times,
        })
    };
    let mut v: Vec<_> = json_lines(out)
        .iter()
        .map(|j| parse(j).unwrap_or_else(|e| panic!("{}: offsets line: {e}", out.what)))
        .collect();
    v.sort_by_key(|o| o.partition);
    v
}

/// Timestamps worth looking up for a record set: before everything, exactly at and just after a few
/// records (compressed batches included), and after everything.
pub fn time_queries(acks: &[Record]) -> Vec<i64> {
    let min = acks.iter().map(|r| r.timestamp).min().unwrap_or(0);
    let max = acks.iter().map(|r| r.timestamp).max().unwrap_or(0);
    let mut q = vec![min - 1000, min];
    for frac in [3, 2] {
        let r = &acks[acks.len() / frac];
        q.extend([r.timestamp, r.timestamp + 1]);
    }
    q.extend([max, max + 1, max + 3_600_000]);
    q
}

/// What a broker must answer for `acks` (all records of a fresh topic): earliest 0, latest = count,
/// and per time the first offset whose timestamp is at or after it.
pub fn expected_offsets(acks: &[Record], queries: &[i64]) -> Vec<PartitionOffsets> {
    (0..PARTITIONS)
        .map(|p| {
            let mine: Vec<&Record> = acks.iter().filter(|r| r.partition == p).collect();
            PartitionOffsets {
                partition: p,
                earliest: 0,
                latest: mine.len() as i64,
                times: queries
                    .iter()
                    .map(|&t| {
                        (
                            t,
                            mine.iter()
                                .filter(|r| r.timestamp >= t)
                                .map(|r| r.offset)
                                .min(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// `got` must equal `want`, except that with `miss_is_end` a "none" may come back as the latest offset.
pub fn check_offsets(
    who: &str,
    want: &[PartitionOffsets],
    got: &[PartitionOffsets],
    miss_is_end: bool,
) -> Result<(), String> {
    let mut want = want.to_vec();
    if miss_is_end {
        for (w, g) in want.iter_mut().zip(got) {
            for ((_, wo), (_, go)) in w.times.iter_mut().zip(&g.times) {
                if wo.is_none() && *go == Some(w.latest) {
                    *wo = *go;
                }
            }
        }
    }
    if want != got {
        return Err(format!(
            "{who}: offsets differ\n  want {want:?}\n  got  {got:?}"
        ));
    }
    Ok(())
}
