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
    /// Gives the connections it accepts from now on a send buffer of `bytes` (see
    /// [`set_send_buffer`]).
    fn set_send_buffer(&self, bytes: usize) -> io::Result<()>;
}

/// Sets the send buffer (`SO_SNDBUF`) of socket `fd` to `bytes`; set on a listening socket, the
/// connections it accepts inherit it.
///
/// Why Kelp sets one, as Kafka does (`socket.send.buffer.bytes`, 100 KiB): with the kernel's
/// autotuned buffer (up to 4 MiB), the gateway's CPU per librdkafka read of 1M cached records
/// was 0.26-0.42 s and the reads 728k-1,089k records/s; with 100 KiB, 0.13-0.25 s and
/// 768k-1,202k, cached reads 1,042k-1,202k (`bench/consume_order.py`, two runs of each,
/// alternating, 2026-12-05). A fetch's `sendfile` then hands the socket what the client is
/// ready to take, rather than megabytes that wait in the buffer.
pub fn set_send_buffer(fd: std::os::fd::RawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `value` outlives the call, which reads `size_of::<c_int>()` bytes of it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The send buffer (`SO_SNDBUF`) of socket `fd` as the kernel reports it: Linux doubles what
/// [`set_send_buffer`] set, for its own bookkeeping.
pub fn send_buffer(fd: std::os::fd::RawFd) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` outlive the call, which writes at most `len` bytes to `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        usize::try_from(value).map_err(|_| io::ErrorKind::InvalidData.into())
    } else {
        Err(io::Error::last_os_error())
    }
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
    /// Sends up to `len` bytes of `file` from byte `at` without their passing through user space
    /// (Linux `sendfile`); returns how many went. `None` where this writer cannot, and then
    /// [`write_all_parts`] writes the bytes from memory.
    fn send_file<'a>(
        &'a mut self,
        file: &'a std::fs::File,
        at: u64,
        len: usize,
    ) -> Option<BoxFuture<'a, io::Result<usize>>> {
        let _ = (file, at, len);
        None
    }
}

/// Most parts handed to one vectored write (Linux takes up to 1024).
const MAX_WRITE_PARTS: usize = 64;

/// Writes all of `parts` in order. Parts that are regions of a file (see [`crate::file_region`])
/// go from the file to the socket ([`ByteWriter::send_file`]); the others are gathered, up to
/// [`MAX_WRITE_PARTS`] per system call: a fetch response arrives as its fields and its record
/// batches in separate parts (see `kelp_core::codec::Frame`), and small responses queued
/// together leave together.
pub async fn write_all_parts(write: &mut dyn ByteWriter, parts: &[Bytes]) -> io::Result<()> {
    let mut rest = parts;
    while !rest.is_empty() {
        let mut region = None;
        let mut plain = 0;
        while let Some(part) = rest.get(plain) {
            region = region_of(part);
            if region.is_some() {
                break;
            }
            plain += 1;
        }
        write_all_vectored(write, &rest[..plain]).await?;
        if let (Some((file, at)), Some(part)) = (region, rest.get(plain)) {
            send_region(write, part, &file, at).await?;
            plain += 1;
        }
        rest = &rest[plain..];
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn region_of(part: &Bytes) -> Option<(Arc<std::fs::File>, u64)> {
    crate::file_region::region_of(part)
}

#[cfg(not(target_os = "linux"))]
fn region_of(_part: &Bytes) -> Option<(Arc<std::fs::File>, u64)> {
    None
}

/// Sends `part`, which is bytes `at..` of `file`, from the file. Where the writer or the file
/// system cannot (no `sendfile` for this socket, or a file system without it), the part is
/// written from memory instead: it reads as the file's bytes.
async fn send_region(
    write: &mut dyn ByteWriter,
    part: &Bytes,
    file: &std::fs::File,
    at: u64,
) -> io::Result<()> {
    let mut done = 0;
    while done < part.len() {
        let sent = match write.send_file(file, at + done as u64, part.len() - done) {
            Some(sending) => sending.await,
            None => Err(io::ErrorKind::Unsupported.into()),
        };
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if cannot_send_files(&e) => {
                return write_all_vectored(write, &[part.slice(done..)]).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `e` says that this socket or file cannot take `sendfile` at all (rather than that
/// this one failed).
fn cannot_send_files(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
        )
}

/// Writes all of `parts` in order, up to [`MAX_WRITE_PARTS`] of them per system call.
async fn write_all_vectored(write: &mut dyn ByteWriter, parts: &[Bytes]) -> io::Result<()> {
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
    fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        set_send_buffer(self.as_raw_fd(), bytes)
    }

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

    #[cfg(target_os = "linux")]
    fn send_file<'a>(
        &'a mut self,
        file: &'a std::fs::File,
        at: u64,
        len: usize,
    ) -> Option<BoxFuture<'a, io::Result<usize>>> {
        use std::os::fd::AsRawFd;
        let this: &'a Self = self;
        let stream: &'a tokio::net::TcpStream = this.as_ref();
        Some(Box::pin(
            stream.async_io(tokio::io::Interest::WRITABLE, move || {
                crate::file_region::send_file(stream.as_raw_fd(), file, at, len)
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// A writer that counts the bytes it sent from files.
    struct CountingFiles<W> {
        inner: W,
        from_files: Arc<AtomicUsize>,
    }

    impl<W: ByteWriter> ByteWriter for CountingFiles<W> {
        fn write_vectored<'a>(
            &'a mut self,
            parts: &'a [IoSlice<'a>],
        ) -> BoxFuture<'a, io::Result<usize>> {
            self.inner.write_vectored(parts)
        }

        fn shutdown(&mut self) -> BoxFuture<'_, io::Result<()>> {
            self.inner.shutdown()
        }

        fn send_file<'a>(
            &'a mut self,
            file: &'a std::fs::File,
            at: u64,
            len: usize,
        ) -> Option<BoxFuture<'a, io::Result<usize>>> {
            let count = self.from_files.clone();
            let sending = self.inner.send_file(file, at, len)?;
            Some(Box::pin(async move {
                let n = sending.await?;
                count.fetch_add(n, Ordering::Relaxed);
                Ok(n)
            }))
        }
    }

    /// A file of `len` patterned bytes under the temporary directory, open for reading.
    #[cfg(target_os = "linux")]
    fn patterned_file(name: &str, len: usize) -> (std::path::PathBuf, Arc<std::fs::File>, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!("kelp-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let content: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("f"), &content).unwrap();
        let file = Arc::new(std::fs::File::open(dir.join("f")).unwrap());
        (dir, file, content)
    }

    /// Parts that are regions of a file leave from the file, in their place among the others,
    /// over a real socket whose buffer fills (8 MiB against a reader that starts late), and
    /// arrive as the file's bytes.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn file_regions_are_sent_from_the_file_in_their_place() {
        let (dir, file, content) = patterned_file("send-region", 9 << 20);
        let big = crate::file_region::map(&file, 1000, 8 << 20).unwrap();
        let small = crate::file_region::map(&file, 4096 * 3 + 5, 70_000).unwrap();
        let parts = vec![
            Bytes::from_static(b"head"),
            big.clone(),
            Bytes::from_static(b"middle"),
            small.slice(10..60_000),
            Bytes::from_static(b"tail"),
        ];
        let expected: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(
            &expected[4..4 + (8 << 20)],
            &content[1000..1000 + (8 << 20)]
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_read, write) = stream.into_split();
        let mut write = CountingFiles {
            inner: write,
            from_files: Arc::new(AtomicUsize::new(0)),
        };
        write_all_parts(&mut write, &parts).await.unwrap();
        ByteWriter::shutdown(&mut write).await.unwrap();
        let got = reader.await.unwrap();
        assert!(
            got == expected,
            "{} bytes arrived, {} sent",
            got.len(),
            expected.len()
        );
        assert_eq!(
            write.from_files.load(Ordering::Relaxed),
            (8 << 20) + 59_990,
            "the regions went by sendfile"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A writer that cannot send from files writes such parts from memory, where they read as
    /// the file's bytes.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_writer_without_send_file_writes_regions_from_memory() {
        let (dir, file, content) = patterned_file("region-memory", 300_000);
        let region = crate::file_region::map(&file, 5000, 200_000).unwrap();
        let mut w = Trickle {
            per_call: 70_000,
            calls: 0,
            got: Vec::new(),
        };
        write_all_parts(&mut w, &[Bytes::from_static(b"x"), region])
            .await
            .unwrap();
        assert_eq!(w.got[0], b'x');
        assert_eq!(&w.got[1..], &content[5000..205_000]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Connections accepted after the listener's send buffer was set have that buffer (Linux
    /// reports it doubled); before, they have the kernel's.
    #[tokio::test]
    async fn accepted_connections_take_the_listeners_send_buffer() {
        use std::os::fd::AsRawFd;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _c1 = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (before, _) = listener.accept().await.unwrap();
        Listener::set_send_buffer(&listener, 100 * 1024).unwrap();
        let _c2 = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (after, _) = listener.accept().await.unwrap();
        assert_eq!(send_buffer(after.as_raw_fd()).unwrap(), 2 * 100 * 1024);
        assert_ne!(send_buffer(before.as_raw_fd()).unwrap(), 2 * 100 * 1024);
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
