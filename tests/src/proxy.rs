//! A TCP proxy in front of the server under test that cuts client connections at chosen moments, to
//! check that an idempotent producer's retries land exactly once.
//!
//! It listens on a free 127.0.0.1 port and opens one upstream connection per client connection. It
//! reads whole Kafka frames in both directions: requests are forwarded as they are; in Metadata
//! responses (any version) the port of every broker is replaced with the proxy's own, so that the
//! client keeps talking through the proxy (the host stays: both listen on 127.0.0.1). Every
//! `cut_every`-th Produce request (at most `max_cuts` times) is forwarded and then its connection
//! is cut, both sides at once: on even cuts when the server's response to it arrives (the server
//! has done the work; the client never hears of it), on odd cuts right after the request was
//! written upstream (the server may or may not have done it).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const PRODUCE: i16 = 0;
const METADATA: i16 = 3;
const MAX_FRAME: usize = 256 << 20;

#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub produce_requests: AtomicUsize,
    /// cuts decided (the request was forwarded)
    planned: AtomicUsize,
    /// connections actually cut
    pub cuts: AtomicUsize,
}

pub struct CutProxy {
    addr: String,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    socks: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy)]
struct Plan {
    port: u16,
    cut_every: usize,
    max_cuts: usize,
}

impl CutProxy {
    /// Starts the proxy in front of `upstream` (host:port).
    pub fn start(upstream: &str, cut_every: usize, max_cuts: usize) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy on 127.0.0.1");
        let port = listener.local_addr().expect("proxy address").port();
        let addr = format!("127.0.0.1:{port}");
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let socks = Arc::new(Mutex::new(Vec::new()));
        let plan = Plan {
            port,
            cut_every: cut_every.max(1),
            max_cuts,
        };
        let target = upstream.to_string();
        let accept = {
            let (stop, stats, socks) = (stop.clone(), stats.clone(), socks.clone());
            thread::spawn(move || {
                for c in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(c) = c else { continue };
                    let u = match target
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(10)).ok())
                    {
                        Some(u) => u,
                        None => {
                            let _ = c.shutdown(Shutdown::Both);
                            continue;
                        }
                    };
                    stats.connections.fetch_add(1, Ordering::SeqCst);
                    {
                        let mut s = socks.lock().unwrap_or_else(|e| e.into_inner());
                        s.extend(c.try_clone().ok());
                        s.extend(u.try_clone().ok());
                    }
                    serve(c, u, plan, stats.clone());
                }
            })
        };
        crate::progress(&format!(
            "cut proxy on {addr} -> {upstream}: every {cut_every} Produce requests, at most {max_cuts} cuts"
        ));
        CutProxy {
            addr,
            stop,
            stats,
            socks,
            accept: Some(accept),
        }
    }

    /// host:port for clients
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn cuts(&self) -> usize {
        self.stats.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(
            &self.addr.parse().expect("proxy address"),
            Duration::from_secs(1),
        );
        for s in self
            .socks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > MAX_FRAME {
        return None;
    }
    let mut f = vec![0u8; len as usize];
    s.read_exact(&mut f).ok()?;
    Some(f)
}

fn write_frame(s: &mut TcpStream, f: &[u8]) -> bool {
    let mut b = (f.len() as i32).to_be_bytes().to_vec();
    b.extend_from_slice(f);
    s.write_all(&b).and_then(|()| s.flush()).is_ok()
}

fn cut(c: &TcpStream, u: &TcpStream) {
    let _ = u.shutdown(Shutdown::Both);
    let _ = c.shutdown(Shutdown::Both);
}

/// correlation id -> (api key, api version, cut when its response comes)
type Inflight = HashMap<i32, (i16, i16, bool)>;

/// Two threads per connection: client to upstream, upstream to client.
fn serve(c: TcpStream, u: TcpStream, plan: Plan, stats: Arc<Stats>) {
    let inflight: Arc<Mutex<Inflight>> = Arc::default();
    let (Ok(mut c_in), Ok(mut u_out), Ok(c2), Ok(u2)) =
        (c.try_clone(), u.try_clone(), c.try_clone(), u.try_clone())
    else {
        cut(&c, &u);
        return;
    };
    {
        let (inflight, stats) = (inflight.clone(), stats.clone());
        thread::spawn(move || {
            while let Some(f) = read_frame(&mut c_in) {
                if f.len() < 8 {
                    break;
                }
                let api = i16::from_be_bytes([f[0], f[1]]);
                let version = i16::from_be_bytes([f[2], f[3]]);
                let corr = i32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                let mut cut_now = false;
                let mut cut_later = false;
                if api == PRODUCE {
                    let n = stats.produce_requests.fetch_add(1, Ordering::SeqCst) + 1;
                    if n % plan.cut_every == 0
                        && stats.planned.load(Ordering::SeqCst) < plan.max_cuts
                    {
                        let k = stats.planned.fetch_add(1, Ordering::SeqCst);
                        cut_later = k % 2 == 0;
                        cut_now = !cut_later;
                    }
                }
                inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(corr, (api, version, cut_later));
                if !write_frame(&mut u_out, &f) {
                    break;
                }
                if cut_now {
                    stats.cuts.fetch_add(1, Ordering::SeqCst);
                    crate::progress(&format!(
                        "proxy: cut after forwarding Produce v{version} correlation {corr}"
                    ));
                    break;
                }
            }
            cut(&c_in, &u_out);
        });
    }
    thread::spawn(move || {
        let (mut u_in, mut c_out) = (u2, c2);
        while let Some(mut f) = read_frame(&mut u_in) {
            if f.len() < 4 {
                break;
            }
            let corr = i32::from_be_bytes([f[0], f[1], f[2], f[3]]);
            let entry = inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&corr);
            match entry {
                Some((_, version, true)) => {
                    stats.cuts.fetch_add(1, Ordering::SeqCst);
                    crate::progress(&format!(
                        "proxy: cut instead of returning the response to Produce v{version} correlation {corr}"
                    ));
                    break;
                }
                Some((METADATA, version, false)) => {
                    if let Err(e) = rewrite_metadata(&mut f, version, plan.port) {
                        crate::progress(&format!("proxy: Metadata v{version} response: {e}"));
                        break;
                    }
                }
                _ => {}
            }
            if !write_frame(&mut c_out, &f) {
                break;
            }
        }
        cut(&c_out, &u_in);
    });
}

struct Cursor<'a> {
    b: &'a mut [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<usize, String> {
        let at = self.pos;
        if self.b.len() < at + n {
            return Err(format!("truncated at byte {at}"));
        }
        self.pos += n;
        Ok(at)
    }

    fn uvarint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let at = self.take(1)?;
            let byte = self.b[at];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn i16(&mut self) -> Result<i16, String> {
        let at = self.take(2)?;
        Ok(i16::from_be_bytes([self.b[at], self.b[at + 1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let at = self.take(4)?;
        Ok(i32::from_be_bytes(
            self.b[at..at + 4].try_into().expect("4 bytes"),
        ))
    }

    fn tagged_fields(&mut self) -> Result<(), String> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let n = self.uvarint()? as usize;
            self.take(n)?;
        }
        Ok(())
    }

    /// a (nullable) string: compact when `flex`
    fn string(&mut self, flex: bool) -> Result<(), String> {
        let n = if flex {
            self.uvarint()? as i64 - 1
        } else {
            i64::from(self.i16()?)
        };
        if n > 0 {
            self.take(n as usize)?;
        }
        Ok(())
    }
}

/// Replaces the port of each broker of a Metadata response frame (correlation id first) with `port`.
pub fn rewrite_metadata(frame: &mut [u8], version: i16, port: u16) -> Result<(), String> {
    let flex = version >= 9;
    let mut c = Cursor { b: frame, pos: 4 };
    if flex {
        c.tagged_fields()?; // response header v1
    }
    if version >= 3 {
        c.i32()?; // throttle_time_ms
    }
    let brokers = if flex {
        c.uvarint()? as i64 - 1
    } else {
        i64::from(c.i32()?)
    };
    for _ in 0..brokers.max(0) {
        c.i32()?; // node id
        c.string(flex)?; // host
        let at = c.take(4)?;
        c.b[at..at + 4].copy_from_slice(&i32::from(port).to_be_bytes());
        if version >= 1 {
            c.string(flex)?; // rack
        }
        if flex {
            c.tagged_fields()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_ports_rewritten() {
        // v12 (flexible): corr, header tags, throttle, 2 brokers (compact), then anything
        let mut f = vec![0, 0, 0, 7, 0, 0, 0, 0, 0, 3];
        for (id, port) in [(1i32, 9092i32), (2, 9093)] {
            f.extend_from_slice(&id.to_be_bytes());
            f.push(10);
            f.extend_from_slice(b"127.0.0.1");
            f.extend_from_slice(&port.to_be_bytes());
            f.push(0); // null rack
            f.push(0); // no tags
        }
        f.extend_from_slice(b"rest");
        super::rewrite_metadata(&mut f, 12, 4000).unwrap();
        let port_at = |i: usize| i32::from_be_bytes(f[i..i + 4].try_into().unwrap());
        assert_eq!(port_at(10 + 4 + 10), 4000);
        assert_eq!(port_at(10 + 20 + 4 + 10), 4000);
        assert!(f.ends_with(b"rest"));
        // v1: int32 array count, int16 strings, nullable rack
        let mut g = vec![0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 9];
        g.extend_from_slice(b"127.0.0.1");
        g.extend_from_slice(&9092i32.to_be_bytes());
        g.extend_from_slice(&(-1i16).to_be_bytes());
        super::rewrite_metadata(&mut g, 1, 4001).unwrap();
        assert_eq!(i32::from_be_bytes(g[23..27].try_into().unwrap()), 4001);
        assert!(super::rewrite_metadata(&mut g[..20], 1, 1).is_err());
    }
}
