//! Kelp's core in an event loop of your own: one thread, non-blocking `std::net` sockets, a poll
//! loop, and the in-memory storage. Real Kafka clients can produce, fetch, list offsets and use
//! consumer groups against it; records live as long as the process.
//!
//! ```sh
//! cargo run -p kelp-core --example event_loop -- --listen 127.0.0.1:9092
//! kcat -b 127.0.0.1:9092 -L
//! ```
//!
//! The whole contract with the core is here: feed [`Input`]s (connections, bytes, storage
//! completions, ticks), drain [`Output`]s (bytes to write, connections to close, storage commands),
//! sleep no later than [`Gateway::poll_timeout`]. A production loop would wait on readiness (epoll,
//! mio, io_uring) instead of polling every millisecond, and put the storage on its own thread.

use bytes::{Buf, Bytes, BytesMut};
use kelp_core::broker::{Config, Gateway, Input, Now, Output};
use kelp_core::storage::memory::MemoryStorage;
use kelp_core::types::{ConnectionId, Millis, TimestampMs};
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Conn {
    stream: TcpStream,
    /// Bytes the core transmitted and the socket has not taken yet.
    unsent: BytesMut,
    closing: bool,
}

fn now(start: Instant) -> Now {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Now {
        mono: Millis(start.elapsed().as_millis() as u64),
        wall: TimestampMs(wall),
    }
}

/// `--listen ADDR` (default 127.0.0.1:9092) and `--advertised-listener HOST:PORT`; other flags (the
/// gateway binary's, such as `--data-dir`) are accepted and ignored, so the e2e harness can start it
/// the way it starts `kelp`.
fn args() -> (SocketAddr, Option<String>) {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 9092).into();
    let mut advertised = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--listen" => listen = value.parse().expect("--listen HOST:PORT"),
            "--advertised-listener" => advertised = Some(value),
            _ => {}
        }
    }
    (listen, advertised)
}

fn main() -> std::io::Result<()> {
    let (listen, advertised) = args();
    let advertised = advertised.unwrap_or_else(|| listen.to_string());
    let (host, port) = advertised.rsplit_once(':').expect("HOST:PORT");
    let config = Config {
        advertised_host: host.to_string(),
        advertised_port: port.parse().expect("port"),
        ..Config::default()
    };
    let start = Instant::now();
    let mut gateway = Gateway::new(config, Vec::new(), now(start));
    let mut storage = MemoryStorage::new();
    let listener = TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    eprintln!("event_loop: serving Kafka on {listen}");

    let mut conns: HashMap<ConnectionId, Conn> = HashMap::new();
    let mut next_id = 0u64;
    let mut inputs: VecDeque<Input> = VecDeque::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // 1. Gather what happened: new connections, bytes, closed sockets, time.
        while let Ok((stream, peer)) = listener.accept() {
            stream.set_nonblocking(true)?;
            stream.set_nodelay(true)?;
            next_id += 1;
            let id = ConnectionId(next_id);
            let unsent = BytesMut::new();
            conns.insert(
                id,
                Conn {
                    stream,
                    unsent,
                    closing: false,
                },
            );
            inputs.push_back(Input::Connected(id, format!("/{}", peer.ip()).into()));
        }
        for (&id, conn) in conns.iter_mut() {
            // read only what the core wants now: this is where backpressure reaches the client
            while gateway.wants_read(id) {
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        conn.closing = true;
                        break;
                    }
                    Ok(n) => {
                        inputs.push_back(Input::Received(id, Bytes::copy_from_slice(&buf[..n])))
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        conn.closing = true;
                        break;
                    }
                }
            }
        }
        inputs.push_back(Input::Tick);

        // 2. Feed it all to the core, draining its outputs after each input.
        while let Some(input) = inputs.pop_front() {
            if let Err(e) = gateway.handle_input(input, now(start)) {
                eprintln!("event_loop: driver error: {e}");
            }
            while let Some(output) = gateway.poll_output() {
                match output {
                    // A fetch response comes in several parts (its record batches are not
                    // copied into it); this loop copies them into its send buffer, a driver
                    // with vectored writes would hand them to `writev` as they are.
                    Output::Transmit(id, frame) => {
                        if let Some(c) = conns.get_mut(&id) {
                            frame
                                .parts()
                                .iter()
                                .for_each(|p| c.unsent.extend_from_slice(p));
                        }
                    }
                    Output::Close(id) => {
                        if let Some(c) = conns.get_mut(&id) {
                            c.closing = true;
                        }
                    }
                    // The in-memory storage completes at once; a disk or network storage would
                    // complete later, from another thread, as another input.
                    Output::Storage(cmd) => {
                        inputs.push_back(Input::Storage(cmd.token(), storage.perform(&cmd)))
                    }
                }
            }
        }

        // 3. Write what the core transmitted; forget closed connections.
        let mut closed = Vec::new();
        for (&id, c) in conns.iter_mut() {
            while !c.unsent.is_empty() {
                match c.stream.write(&c.unsent) {
                    Ok(n) => c.unsent.advance(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        c.closing = true;
                        c.unsent.clear();
                    }
                }
            }
            if c.closing && c.unsent.is_empty() {
                closed.push(id);
            }
        }
        for id in closed {
            conns.remove(&id);
            inputs.push_back(Input::Closed(id));
        }

        // 4. Sleep until the core's next deadline, at most 1 ms (this loop polls the sockets).
        let wait = gateway
            .poll_timeout()
            .map_or(1, |t| t.0.saturating_sub(now(start).mono.0).min(1));
        std::thread::sleep(Duration::from_millis(wait));
    }
}
