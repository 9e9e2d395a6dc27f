//! smol's side of `kelp_tokio::runtime::Runtime`: a multi-threaded executor, async-io sockets and
//! timers, the `blocking` pool, async-signal, and tonic channels whose connections and background
//! tasks run on the same executor.

use async_compat::Compat;
use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use kelp_tokio::runtime::{Accepted, BoxFuture, ByteReader, ByteWriter, Listener, Runtime};
use smol::stream::StreamExt;
use smol::{Async, Executor, Timer};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

/// Bytes made readable per read when the buffer has less room.
const READ_ROOM: usize = 64 * 1024;

/// The smol runtime: one executor run by the thread in `block_on` and, when more threads are
/// asked for, by threads of its own.
pub struct Smol {
    executor: Arc<Executor<'static>>,
}

impl Smol {
    /// Starts the executor's worker threads: `threads` in all, counting the one that will block
    /// on the gateway; 0 = one per core.
    pub fn start(threads: usize) -> io::Result<Smol> {
        let executor = Arc::new(Executor::new());
        let workers = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        for i in 1..workers {
            let ex = executor.clone();
            std::thread::Builder::new()
                .name(format!("kelp-smol-{i}"))
                .spawn(move || smol::block_on(ex.run(std::future::pending::<()>())))?;
        }
        Ok(Smol { executor })
    }

    /// The executor, for the thread that blocks on the gateway.
    pub fn executor(&self) -> Arc<Executor<'static>> {
        self.executor.clone()
    }
}

impl Runtime for Smol {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.executor.spawn(task).detach();
    }

    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>) {
        smol::unblock(job).detach();
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            Timer::after(duration).await;
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = Async::<TcpListener>::bind(addr)?;
            Ok(Box::new(Acceptor(listener)) as Box<dyn Listener>)
        })
    }

    fn grpc_channel(&self, endpoint: Endpoint, connect_timeout: Duration) -> Channel {
        // tonic's own timeouts would look for a tokio timer: the connector keeps the deadline
        endpoint
            .executor(OnSmol(self.executor.clone()))
            .connect_with_connector_lazy(Connector { connect_timeout })
    }

    fn shutdown_signal(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {
            use async_signal::{Signal, Signals};
            match Signals::new([Signal::Term, Signal::Int]) {
                Ok(mut signals) => {
                    signals.next().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM/SIGINT");
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// A listening socket.
struct Acceptor(Async<TcpListener>);

impl Listener for Acceptor {
    fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        kelp_tokio::runtime::set_send_buffer(self.0.as_raw_fd(), bytes)
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            stream.get_ref().set_nodelay(true)?;
            let stream = Arc::new(stream);
            Ok((
                Box::new(Half(stream.clone())) as Box<dyn ByteReader>,
                Box::new(Half(stream)) as Box<dyn ByteWriter>,
                peer,
            ))
        })
    }
}

/// One direction of a connection (both share the socket).
struct Half(Arc<Async<TcpStream>>);

impl ByteReader for Half {
    fn read_buf<'a>(&'a mut self, buf: &'a mut BytesMut) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(self.0.read_with(move |mut s| {
            // grow, read and shrink back in one synchronous step: cancelling leaves `buf` alone
            let len = buf.len();
            let room = (buf.capacity() - len).max(READ_ROOM);
            buf.resize(len + room, 0);
            let read = s.read(&mut buf[len..]);
            buf.truncate(len + *read.as_ref().unwrap_or(&0));
            read
        }))
    }
}

impl ByteWriter for Half {
    fn write_vectored<'a>(
        &'a mut self,
        parts: &'a [IoSlice<'a>],
    ) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(self.0.write_with(move |mut s| s.write_vectored(parts)))
    }

    fn shutdown(&mut self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move { self.0.get_ref().shutdown(Shutdown::Write) })
    }

    #[cfg(target_os = "linux")]
    fn send_file<'a>(
        &'a mut self,
        file: &'a std::fs::File,
        at: u64,
        len: usize,
    ) -> Option<BoxFuture<'a, io::Result<usize>>> {
        use std::os::fd::AsRawFd;
        Some(Box::pin(self.0.write_with(move |s| {
            kelp_tokio::file_region::send_file(s.as_raw_fd(), file, at, len)
        })))
    }
}

/// hyper's executor for tonic's background tasks (connections, the channel's buffer).
#[derive(Clone)]
struct OnSmol(Arc<Executor<'static>>);

impl<F> hyper::rt::Executor<F> for OnSmol
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawn(future).detach();
    }
}

/// Opens gRPC connections with smol's sockets.
#[derive(Clone)]
struct Connector {
    connect_timeout: Duration,
}

type GrpcIo = TokioIo<Compat<smol::net::TcpStream>>;

impl tower_service::Service<Uri> for Connector {
    type Response = GrpcIo;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<GrpcIo>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let limit = self.connect_timeout;
        Box::pin(async move {
            let host = uri.host().unwrap_or("127.0.0.1").to_string();
            let port = uri.port_u16().unwrap_or(80);
            let connect = smol::net::TcpStream::connect((host.as_str(), port));
            let timeout = async {
                Timer::after(limit).await;
                Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            };
            let stream = smol::future::or(connect, timeout).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(Compat::new(stream)))
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kelp_tokio::runtime::write_all_parts;

    /// On smol too, accepted connections take the listener's send buffer.
    #[test]
    fn accepted_connections_take_the_listeners_send_buffer() {
        use std::os::fd::AsRawFd;
        smol::block_on(async {
            let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
            let addr = listener.get_ref().local_addr().unwrap();
            let acceptor = Acceptor(listener);
            acceptor.set_send_buffer(64 * 1024).unwrap();
            let _client = Async::<TcpStream>::connect(addr).await.unwrap();
            let (stream, _) = acceptor.0.accept().await.unwrap();
            let value = kelp_tokio::runtime::send_buffer(stream.as_raw_fd()).unwrap();
            assert_eq!(value, 2 * 64 * 1024);
        });
    }

    /// On smol too, a part that is a region of a file leaves from the file, in its place, over a
    /// real socket whose buffer fills, and arrives as the file's bytes.
    #[test]
    fn file_regions_are_sent_from_the_file_in_their_place() {
        let dir = std::env::temp_dir().join(format!("kelp-smol-region-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let content: Vec<u8> = (0..(9usize << 20)).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("f"), &content).unwrap();
        let file = Arc::new(std::fs::File::open(dir.join("f")).unwrap());
        let region = kelp_tokio::file_region::map(&file, 777, 8 << 20).unwrap();
        let parts = vec![
            Bytes::from_static(b"head"),
            region,
            Bytes::from_static(b"tail"),
        ];
        let expected: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(&expected[4..4 + (8 << 20)], &content[777..777 + (8 << 20)]);

        let got = smol::block_on(async {
            let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
            let addr = listener.get_ref().local_addr().unwrap();
            let reader = smol::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                Timer::after(Duration::from_millis(200)).await;
                let mut got = Vec::new();
                smol::io::AsyncReadExt::read_to_end(&mut s, &mut got)
                    .await
                    .unwrap();
                got
            });
            let stream = Async::<TcpStream>::connect(addr).await.unwrap();
            let mut write = Half(Arc::new(stream));
            let sent = {
                let file = &file;
                let mut sent = 0;
                // what one send_file takes while the reader sleeps: it must send from the file
                if let Some(sending) = write.send_file(file, 0, 1000) {
                    sent = sending.await.unwrap();
                }
                sent
            };
            assert_eq!(sent, 1000, "sendfile on a smol socket");
            write_all_parts(&mut write, &parts).await.unwrap();
            write.shutdown().await.unwrap();
            reader.await
        });
        assert_eq!(&got[..1000], &content[..1000]);
        assert!(got[1000..] == expected[..], "{} bytes arrived", got.len());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
