//! Raw Kafka frames over TCP, for the readiness probe and the `bad_input` test: just enough of the
//! protocol to build an ApiVersions request (v0 and v3) and to read one response frame.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A request frame with header v1 (non-flexible): size, api key, version, correlation id, client id.
pub fn frame_v1(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&api_key.to_be_bytes());
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(&correlation_id.to_be_bytes());
    m.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    m.extend_from_slice(client_id.as_bytes());
    m.extend_from_slice(body);
    sized(&m)
}

/// A request frame with header v2 (flexible): header v1 plus an empty tagged-field section.
pub fn frame_v2(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut b = vec![0u8]; // no tagged fields in the header
    b.extend_from_slice(body);
    frame_v1(api_key, version, correlation_id, client_id, &b)
}

/// `payload` with its 4-byte big-endian size prefix.
pub fn sized(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

pub fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// ApiVersions v3 body: client software name and version (compact strings), no tagged fields.
pub fn api_versions_v3_body() -> Vec<u8> {
    let mut b = Vec::new();
    for s in ["kelp-tests", "0.1"] {
        uvarint(s.len() as u64 + 1, &mut b);
        b.extend_from_slice(s.as_bytes());
    }
    b.push(0);
    b
}

/// What the other side did with what we sent.
#[derive(Debug)]
pub enum Outcome {
    /// A response frame (without its size prefix).
    Answered(Vec<u8>),
    /// EOF or a reset before a whole response frame.
    Closed,
    /// Neither within the wait.
    Silent,
}

pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let sa = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(ErrorKind::NotFound, format!("cannot resolve {addr}"))
    })?;
    let s = TcpStream::connect_timeout(&sa, timeout)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Reads one response frame (bounded to 64 MiB), or tells how the connection ended.
pub fn read_frame(s: &mut TcpStream, wait: Duration) -> Outcome {
    let deadline = Instant::now() + wait;
    let mut size = [0u8; 4];
    match read_full(s, &mut size, deadline) {
        Ok(true) => {}
        Ok(false) => return Outcome::Silent,
        Err(_) => return Outcome::Closed,
    }
    let n = i32::from_be_bytes(size);
    if !(0..=64 << 20).contains(&n) {
        return Outcome::Answered(size.to_vec()); // a reply, if a strange one: the caller checks it
    }
    let mut body = vec![0u8; n as usize];
    match read_full(s, &mut body, deadline) {
        Ok(true) => Outcome::Answered(body),
        Ok(false) => Outcome::Silent,
        Err(_) => Outcome::Closed,
    }
}

/// Ok(true): filled; Ok(false): deadline passed; Err: EOF or a socket error.
fn read_full(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(k) => got += k,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Sends `bytes` on a new connection (optionally closing our sending side after), then waits `wait`
/// for a response frame or for the server to close.
pub fn send_and_observe(addr: &str, bytes: &[u8], half_close: bool, wait: Duration) -> Outcome {
    let mut s = match connect(addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(_) => return Outcome::Closed,
    };
    s.set_write_timeout(Some(Duration::from_secs(5))).ok();
    // A server may close while we are still writing (that is a fine answer to garbage)
    if s.write_all(bytes).is_err() {
        return Outcome::Closed;
    }
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    read_frame(&mut s, wait)
}

/// Sends ApiVersions v0 and checks the reply: correlation id, error 0, ApiVersions itself listed.
/// Returns the advertised (api key, min, max) triples.
pub fn api_versions_v0(
    s: &mut TcpStream,
    correlation_id: i32,
    wait: Duration,
) -> Result<Vec<(i16, i16, i16)>, String> {
    s.write_all(&frame_v1(18, 0, correlation_id, "kelp-tests", &[]))
        .map_err(|e| format!("write: {e}"))?;
    let body = match read_frame(s, wait) {
        Outcome::Answered(b) => b,
        other => return Err(format!("ApiVersions v0: {other:?}")),
    };
    let mut r = Reader(&body);
    let corr = r.i32()?;
    if corr != correlation_id {
        return Err(format!(
            "ApiVersions v0: correlation id {corr}, sent {correlation_id}"
        ));
    }
    let err = r.i16()?;
    if err != 0 {
        return Err(format!("ApiVersions v0: error code {err}"));
    }
    let n = r.i32()?;
    if !(0..=1000).contains(&n) {
        return Err(format!("ApiVersions v0: {n} api keys"));
    }
    let mut keys = Vec::new();
    for _ in 0..n {
        keys.push((r.i16()?, r.i16()?, r.i16()?));
    }
    if !keys.iter().any(|k| k.0 == 18) {
        return Err("ApiVersions v0: ApiVersions (18) not listed".into());
    }
    Ok(keys)
}

/// Sends ApiVersions v3 (flexible request header; the response header stays v0) and checks the reply.
pub fn api_versions_v3(
    s: &mut TcpStream,
    correlation_id: i32,
    wait: Duration,
) -> Result<usize, String> {
    s.write_all(&frame_v2(
        18,
        3,
        correlation_id,
        "kelp-tests",
        &api_versions_v3_body(),
    ))
    .map_err(|e| format!("write: {e}"))?;
    let body = match read_frame(s, wait) {
        Outcome::Answered(b) => b,
        other => return Err(format!("ApiVersions v3: {other:?}")),
    };
    let mut r = Reader(&body);
    let corr = r.i32()?;
    if corr != correlation_id {
        return Err(format!(
            "ApiVersions v3: correlation id {corr}, sent {correlation_id}"
        ));
    }
    let err = r.i16()?;
    if err != 0 {
        return Err(format!("ApiVersions v3: error code {err}"));
    }
    let n = r
        .uvarint()?
        .checked_sub(1)
        .ok_or("ApiVersions v3: null api key array")?;
    let mut saw_self = false;
    for _ in 0..n {
        let (k, _min, _max) = (r.i16()?, r.i16()?, r.i16()?);
        saw_self |= k == 18;
        r.skip_tags()?;
    }
    r.i32()?; // throttle time
    r.skip_tags()?;
    if !saw_self {
        return Err("ApiVersions v3: ApiVersions (18) not listed".into());
    }
    Ok(n as usize)
}

/// One ApiVersions v0 exchange on a fresh connection.
pub fn probe(addr: &str, wait: Duration) -> Result<(), String> {
    let mut s = connect(addr, wait).map_err(|e| format!("connect {addr}: {e}"))?;
    api_versions_v0(&mut s, 1, wait).map(|_| ())
}

pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("response too short".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    pub fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn uvarint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    pub fn skip_tags(&mut self) -> Result<(), String> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let len = self.uvarint()? as usize;
            self.take(len)?;
        }
        Ok(())
    }
}
