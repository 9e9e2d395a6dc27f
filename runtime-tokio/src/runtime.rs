//! What the driver needs from an async runtime, so that one driver serves tokio and smol.
//!
//! The driver ([`crate::server`], the storage drivers, the SMQ client) is written once against
//! [`Rt`]; a runtime crate supplies a [`Runtime`]: spawning, blocking work, timers, TCP listening,
//! gRPC channels and the shutdown signal. Channels and locks come from `tokio::sync`, which needs
//! no tokio runtime. [`Tokio`] is this crate's runtime; `kelp-smol` brings its own.

use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An accepted connection: its two halves and the peer's address.
pub type Accepted = (Box<dyn ByteReader>, Box<dyn ByteWriter>, SocketAddr);

/// The services of an async runtime that the driver uses.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// Runs `job` on a thread that may block (file I/O).
    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>);
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// Listens on `addr`.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
    /// A lazily connecting gRPC channel to `endpoint` (its connect timeout is `connect_timeout`).
    fn grpc_channel(&self, endpoint: Endpoint, connect_timeout: Duration) -> Channel;
    /// Completes on SIGTERM or SIGINT.
    fn shutdown_signal(&self) -> BoxFuture<'static, ()>;
}

/// A TCP listener.
pub trait Listener: Send {
    /// The next connection (with `TCP_NODELAY` set).
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;
}

/// The read half of a connection.
pub trait ByteReader: Send {
    /// Appends what arrives to `buf` (at least one byte; 0 at end of stream). Cancel-safe: a
    /// cancelled read leaves `buf` as it was.
    fn read_buf<'a>(&'a mut self, buf: &'a mut BytesMut) -> BoxFuture<'a, io::Result<usize>>;
}

/// The write half of a connection.
pub trait ByteWriter: Send {
    /// Writes from `parts` in order, in one system call; returns how many bytes went (see
    /// [`write_all_parts`]).
    fn write_vectored<'a>(
        &'a mut self,
        parts: &'a [IoSlice<'a>],
    ) -> BoxFuture<'a, io::Result<usize>>;
    /// Flushes and closes the write direction.
    fn shutdown(&mut self) -> BoxFuture<'_, io::Result<()>>;
}

/// Most parts handed to one vectored write (Linux takes up to 1024).
const MAX_WRITE_PARTS: usize = 64;

/// Writes all of `parts` in order, gathering up to [`MAX_WRITE_PARTS`] of them per system call: a
/// fetch response arrives as its fields and its record batches in separate parts (see
/// `kelp_core::codec::Frame`), and small responses queued together leave together.
pub async fn write_all_parts(write: &mut dyn ByteWriter, parts: &[Bytes]) -> io::Result<()> {
    // The first part not wholly written, and how much of it was.
    let (mut first, mut done) = (0, 0);
    loop {
        while first < parts.len() && done == parts[first].len() {
            first += 1;
            done = 0;
        }
        let Some(head) = parts.get(first) else {
            return Ok(());
        };
        let slices: Vec<IoSlice<'_>> = std::iter::once(&head[done..])
            .chain(parts[first + 1..].iter().map(|p| &p[..]))
            .take(MAX_WRITE_PARTS)
            .map(IoSlice::new)
            .collect();
        let mut written = write.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let left = parts[first].len() - done;
            if written < left {
                done += written;
                written = 0;
            } else {
                written -= left;
                first += 1;
                done = 0;
            }
        }
    }
}

/// The deadline passed first.
#[derive(Debug, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// A shared handle on the runtime, with the typed helpers the driver calls.
#[derive(Clone)]
pub struct Rt(Arc<dyn Runtime>);

impl Rt {
    /// Wraps a runtime.
    pub fn new(runtime: impl Runtime) -> Rt {
        Rt(Arc::new(runtime))
    }

    /// Runs `task` in the background.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.spawn(Box::pin(task));
    }

    /// Runs `job` where it may block, in the background.
    pub fn run_blocking(&self, job: impl FnOnce() + Send + 'static) {
        self.0.spawn_blocking(Box::new(job));
    }

    /// Completes after `duration`.
    pub fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.sleep(duration)
    }

    /// Completes at `at` (at once if it has passed); never if `None`.
    pub async fn sleep_until(&self, at: Option<Instant>) {
        match at {
            Some(at) => {
                self.0
                    .sleep(at.saturating_duration_since(Instant::now()))
                    .await
            }
            None => std::future::pending().await,
        }
    }

    /// `work`'s output, unless `limit` passes first.
    pub async fn timeout<F: Future>(&self, limit: Duration, work: F) -> Result<F::Output, Elapsed> {
        tokio::select! {
            out = work => Ok(out),
            () = self.0.sleep(limit) => Err(Elapsed),
        }
    }

    /// Listens on `addr`.
    pub async fn bind(&self, addr: SocketAddr) -> io::Result<Box<dyn Listener>> {
        self.0.bind(addr).await
    }

    /// A lazily connecting gRPC channel.
    pub fn grpc_channel(&self, endpoint: Endpoint, connect_timeout: Duration) -> Channel {
        self.0.grpc_channel(endpoint, connect_timeout)
    }

    /// Completes on SIGTERM or SIGINT.
    pub fn shutdown_signal(&self) -> BoxFuture<'static, ()> {
        self.0.shutdown_signal()
    }
}

/// The tokio runtime (the one `block_on` runs in: `spawn` needs its context).
pub struct Tokio;

impl Runtime for Tokio {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }

    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>) {
        tokio::task::spawn_blocking(job);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(listener) as Box<dyn Listener>)
        })
    }

    fn grpc_channel(&self, endpoint: Endpoint, connect_timeout: Duration) -> Channel {
        endpoint.connect_timeout(connect_timeout).connect_lazy()
    }

    fn shutdown_signal(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
    }
}

impl Listener for tokio::net::TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
            stream.set_nodelay(true)?;
            let (read, write) = stream.into_split();
            Ok((
                Box::new(read) as Box<dyn ByteReader>,
                Box::new(write) as Box<dyn ByteWriter>,
                peer,
            ))
        })
    }
}

impl ByteReader for tokio::net::tcp::OwnedReadHalf {
    fn read_buf<'a>(&'a mut self, buf: &'a mut BytesMut) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(AsyncReadExt::read_buf(self, buf))
    }
}

impl ByteWriter for tokio::net::tcp::OwnedWriteHalf {
    fn write_vectored<'a>(
        &'a mut self,
        parts: &'a [IoSlice<'a>],
    ) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(AsyncWriteExt::write_vectored(self, parts))
    }

    fn shutdown(&mut self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(AsyncWriteExt::shutdown(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `per_call` bytes of each vectored write, and records what it took.
    struct Trickle {
        per_call: usize,
        calls: usize,
        got: Vec<u8>,
    }

    impl ByteWriter for Trickle {
        fn write_vectored<'a>(
            &'a mut self,
            parts: &'a [IoSlice<'a>],
        ) -> BoxFuture<'a, io::Result<usize>> {
            assert!(parts.len() <= MAX_WRITE_PARTS);
            let mut room = self.per_call;
            for p in parts {
                let n = p.len().min(room);
                self.got.extend_from_slice(&p[..n]);
                room -= n;
            }
            self.calls += 1;
            let written = self.per_call - room;
            Box::pin(async move { Ok(written) })
        }

        fn shutdown(&mut self) -> BoxFuture<'_, io::Result<()>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn writes_every_part_in_order_across_short_writes() {
        let parts: Vec<Bytes> = (0..200u32)
            .map(|i| Bytes::from(vec![i as u8; (i as usize * 7) % 23]))
            .collect();
        let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        for per_call in [1, 5, 22, 1000, 1 << 20] {
            let mut w = Trickle {
                per_call,
                calls: 0,
                got: Vec::new(),
            };
            write_all_parts(&mut w, &parts).await.unwrap();
            assert_eq!(w.got, all, "{per_call} bytes a call");
            if per_call == 1 << 20 {
                // 200 parts, 64 to a call
                assert_eq!(w.calls, 4);
            }
        }
    }
}
