//! The tokio driver of the gateway.
//!
//! Concurrency model: one task owns the [`Gateway`] state machine and is the only place decisions
//! are made; it never blocks. Each connection has a reader task (socket -> gateway events) and a
//! writer task (gateway output -> socket). Storage work runs on log writer threads and the
//! blocking pool ([`crate::storage`]); its completions come back to the gateway task as events. So
//! sockets, disks and the decision loop proceed on all cores, while the shared state has a single
//! owner and needs no locks: ordering questions (dense offsets, high watermark before reads) are
//! settled inside the core, where the simulation tests check them.

use crate::config::Backend;
use crate::config::Resolved;
use crate::disk::LocalDisk;
use crate::metrics;
use crate::runtime::{ByteReader, ByteWriter, Listener, Rt, write_all_parts};
use crate::smq::SmqStorage;
use crate::storage::{Completion, Place, Storage};
use bytes::{Bytes, BytesMut};
use kelp_core::broker::metrics::StatsFormat;
use kelp_core::broker::{Config, Gateway, Input, Now, Output};
use kelp_core::codec::Frame;
use kelp_core::storage::file_log;
use kelp_core::types::{ConnectionId, Millis, TimestampMs};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

/// Events for the gateway task.
pub enum Event {
    /// A connection was accepted from this host (`/ip`, as Kafka shows client hosts).
    Connected(ConnectionId, ConnHandle, String),
    /// Bytes read, with the reader's read-ahead permit (released once the gateway has them).
    Received(ConnectionId, Bytes, OwnedSemaphorePermit),
    /// The peer closed or the socket failed.
    Closed(ConnectionId),
    /// A page of the metrics endpoint.
    Stats(StatsFormat, oneshot::Sender<String>),
}

/// The gateway task's handle on one connection's tasks.
pub struct ConnHandle {
    writer: mpsc::UnboundedSender<Frame>,
    /// Dropped to stop the reader (which closes the socket once the writer is done too).
    _stop: oneshot::Sender<()>,
    /// Whether the reader may read: false while the connection's unanswered requests exceed the
    /// in-flight budget (backpressure reaches the client through TCP instead of our memory).
    readable: watch::Sender<bool>,
}

/// The time as the core takes it: monotonic from the driver's start, and the wall clock.
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock(Instant::now())
    }

    pub(crate) fn now(&self) -> Now {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Now {
            mono: Millis(self.0.elapsed().as_millis() as u64),
            wall: TimestampMs(wall),
        }
    }

    pub(crate) fn instant(&self, at: Millis) -> Instant {
        self.0 + Duration::from_millis(at.0)
    }
}

/// A gateway binary's `main`: logging (filtered by `KELP_LOG`), the settings from flags, `KELP_*`
/// variables and the config file, then `serve` (which runs [`run`] on its runtime). Exit codes: 2
/// for bad settings, 1 when serving fails.
pub fn main(
    name: &'static str,
    serve: impl FnOnce(Resolved) -> std::io::Result<()>,
) -> std::process::ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KELP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let matches = crate::config::Settings::command()
        .name(name)
        .bin_name(name)
        .get_matches();
    let parsed = crate::config::Settings::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let settings = match parsed.resolve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    crate::allocator::tune(settings.malloc_arenas, settings.malloc_keep_mib << 20);
    match serve(settings) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the gateway on `rt` until SIGTERM/SIGINT, then drains, flushes and returns.
pub async fn run(settings: Resolved, rt: Rt) -> std::io::Result<()> {
    let started = Instant::now();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Completion>();
    let mut config = Config {
        advertised_host: settings.advertised_host.clone(),
        advertised_port: settings.advertised_port,
        max_frame_bytes: settings.max_frame_bytes,
        max_in_flight_bytes_per_connection: settings.max_in_flight_bytes,
        auto_create_topics: settings.auto_create_topics,
        default_partitions: settings.default_partitions,
        sync_on_acks_all: settings.fsync_acks_all,
        group_initial_rebalance_delay_ms: settings.group_initial_rebalance_delay_ms,
        ..Config::default()
    };
    let max_decompressed = config.max_decompressed_batch_bytes;
    let (mut storage, partitions) = match &settings.backend {
        Backend::Local => {
            let disk: Arc<dyn kelp_core::storage::disk::Disk> = Arc::new(LocalDisk);
            let recovered =
                file_log::recover_all(disk.clone(), &settings.data_dir, settings.segment_bytes)
                    .map_err(std::io::Error::other)?;
            let mut logs = Vec::new();
            let mut partitions = Vec::new();
            for r in recovered {
                let p = &r.partition;
                tracing::info!(partition = %p.partition, log_start = p.log_start_offset.0, next_offset = p.next_offset.0, "recovered partition");
                if let Some(repair) = &r.repaired {
                    tracing::warn!(partition = %p.partition, %repair, "truncated a torn or corrupt log tail");
                }
                logs.push((p.partition.clone(), r.log));
                partitions.push(r.partition);
            }
            let place = Place {
                disk,
                data_dir: settings.data_dir.clone(),
                segment_bytes: settings.segment_bytes,
                wal_bytes: settings.wal_bytes,
                page_cache_bytes: settings.page_cache_mib << 20,
            };
            let storage = Storage::new(
                rt.clone(),
                place,
                settings.log_writers,
                max_decompressed,
                logs,
                done_tx,
            )?;
            (Store::Local(storage), partitions)
        }
        Backend::Smq(smq) => {
            config.partitions_fixed = true;
            let mut smq = smq.clone();
            smq.config.max_decompressed = max_decompressed;
            let (storage, partitions) = SmqStorage::start(rt.clone(), &smq, done_tx)
                .await
                .map_err(std::io::Error::other)?;
            (Store::Smq(storage), partitions)
        }
    };
    tracing::info!(
        partitions = partitions.len(),
        ms = started.elapsed().as_millis() as u64,
        "recovery done"
    );
    let clock = Clock::start();
    let mut gateway = Gateway::new(config, partitions, clock.now());

    let listener = rt.bind(settings.listen).await?;
    if settings.socket_send_buffer_bytes > 0
        && let Err(e) = listener.set_send_buffer(settings.socket_send_buffer_bytes)
    {
        tracing::warn!(error = %e, "cannot set the connections' send buffer; the kernel sizes it");
    }
    tracing::info!(listen = %settings.listen, advertised = %format!("{}:{}", settings.advertised_host, settings.advertised_port), backend = ?settings.backend, data_dir = %settings.data_dir.display(), "kelp listening");
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let (stop_accepting, accept_stopped) = oneshot::channel::<()>();
    rt.spawn(accept_loop(
        rt.clone(),
        listener,
        events_tx.clone(),
        Arc::new(Semaphore::new(settings.max_connections)),
        accept_stopped,
    ));
    let mut stop_accepting = Some(stop_accepting);
    if let Some(addr) = settings.metrics_listen {
        rt.spawn(metrics::serve(rt.clone(), addr, events_tx.clone()));
    }
    let flush_every = Duration::from_millis(settings.flush_interval_ms);
    let mut next_flush = (settings.flush_interval_ms > 0).then(|| Instant::now() + flush_every);
    let mut conns: HashMap<ConnectionId, ConnHandle> = HashMap::new();
    let mut shutdown = rt.shutdown_signal();
    let mut draining: Option<Instant> = None;

    loop {
        let deadline = gateway.poll_timeout().map(|t| clock.instant(t));
        let input = tokio::select! {
            Some(event) = events.recv() => match event {
                Event::Connected(conn, handle, peer) => {
                    conns.insert(conn, handle);
                    Some(Input::Connected(conn, peer.into()))
                }
                Event::Received(conn, bytes, _read_ahead) => Some(Input::Received(conn, bytes)),
                Event::Closed(conn) => {
                    conns.remove(&conn);
                    Some(Input::Closed(conn))
                }
                Event::Stats(format, reply) => {
                    let _ = reply.send(gateway.render_stats(format));
                    None
                }
            },
            Some((token, done)) = done_rx.recv() => Some(Input::Storage(token, done)),
            _ = rt.sleep_until(deadline) => Some(Input::Tick),
            _ = rt.sleep_until(next_flush), if next_flush.is_some() => {
                storage.flush_all().await;
                next_flush = Some(Instant::now() + flush_every);
                None
            }
            _ = &mut shutdown, if draining.is_none() => {
                tracing::info!("shutting down: no new connections, draining in-flight work");
                stop_accepting = None;
                draining = Some(Instant::now() + Duration::from_secs(10));
                None
            }
            _ = rt.sleep_until(draining), if draining.is_some() => {
                tracing::warn!("drain timed out");
                break;
            }
        };
        let received_on = match &input {
            Some(Input::Received(conn, _)) => Some(*conn),
            _ => None,
        };
        if let Some(input) = input
            && let Err(e) = gateway.handle_input(input, clock.now())
        {
            tracing::error!(error = %e, "driver error");
        }
        let mut answered = Vec::new();
        while let Some(output) = gateway.poll_output() {
            match output {
                Output::Transmit(conn, frame) => {
                    if let Some(c) = conns.get(&conn) {
                        let _ = c.writer.send(frame);
                        answered.push(conn);
                    }
                }
                Output::Close(conn) => {
                    tracing::debug!(%conn, "closing connection after a protocol error");
                    conns.remove(&conn);
                }
                Output::Storage(command) => storage.submit(command),
            }
        }
        for conn in received_on.into_iter().chain(answered) {
            if let Some(c) = conns.get(&conn) {
                let wanted = gateway.wants_read(conn);
                c.readable
                    .send_if_modified(|r| std::mem::replace(r, wanted) != wanted);
            }
        }
        if draining.is_some() && !gateway.has_work_in_flight() {
            break;
        }
    }
    drop(stop_accepting);
    storage.flush_all().await;
    tracing::info!("flushed; bye");
    Ok(())
}

/// The storage driver of the configured backend.
enum Store {
    Local(Storage),
    Smq(SmqStorage),
}

impl Store {
    fn submit(&mut self, command: kelp_core::storage::StorageCommand) {
        match self {
            Store::Local(s) => s.submit(command),
            Store::Smq(s) => s.submit(command),
        }
    }

    /// Makes everything written durable (SMQ: every completed append is already with the broker).
    async fn flush_all(&self) {
        if let Store::Local(s) = self {
            s.flush_all().await;
        }
    }
}

async fn accept_loop(
    rt: Rt,
    mut listener: Box<dyn Listener>,
    events: mpsc::UnboundedSender<Event>,
    slots: Arc<Semaphore>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut next = 0u64;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stopped => return,
        };
        let (read, write, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                rt.sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            continue;
        };
        next += 1;
        let conn = ConnectionId(next);
        let (writer, rx) = mpsc::unbounded_channel();
        let (readable, may_read) = watch::channel(true);
        let (stop, stopped) = oneshot::channel();
        tracing::debug!(%conn, %peer, "accepted");
        let handle = ConnHandle {
            writer,
            _stop: stop,
            readable,
        };
        // announced before its reader starts, so the gateway knows it before its first bytes
        if events
            .send(Event::Connected(conn, handle, format!("/{}", peer.ip())))
            .is_err()
        {
            return;
        }
        rt.spawn(write_loop(write, rx));
        rt.spawn(read_loop(
            conn,
            read,
            events.clone(),
            may_read,
            stopped,
            permit,
        ));
    }
}

/// Bytes a connection's reader asks of its socket at a time (at most).
const READ_CHUNK: usize = 64 * 1024;
/// Reads a connection's reader may hand on before the gateway task has taken them in. The
/// in-flight budget counts the requests the gateway has seen; this bounds what waits in the queue
/// to it (about 2 MiB a connection): without it a client that sends faster than the one gateway
/// task decodes filled the queue, and the memory, unboundedly.
const READ_AHEAD_CHUNKS: usize = 32;

async fn read_loop(
    conn: ConnectionId,
    mut read: Box<dyn ByteReader>,
    events: mpsc::UnboundedSender<Event>,
    mut may_read: watch::Receiver<bool>,
    mut stopped: oneshot::Receiver<()>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let read_ahead = Arc::new(Semaphore::new(READ_AHEAD_CHUNKS));
    loop {
        let read = async {
            // an error here: the gateway dropped the connection
            may_read.wait_for(|r| *r).await.ok()?;
            let permit = read_ahead.clone().acquire_owned().await.ok()?;
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(READ_CHUNK);
            }
            Some((read.read_buf(&mut buf).await, permit))
        };
        let n = tokio::select! {
            n = read => n,
            _ = &mut stopped => None,
        };
        let Some((n, permit)) = n else { return };
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if events
                    .send(Event::Received(conn, buf.split().freeze(), permit))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = events.send(Event::Closed(conn));
}

/// Responses queued while a write was going out leave together in the next one, up to this many
/// parts.
const QUEUED_PARTS: usize = 256;

async fn write_loop(mut write: Box<dyn ByteWriter>, mut rx: mpsc::UnboundedReceiver<Frame>) {
    let mut parts = Vec::new();
    while let Some(frame) = rx.recv().await {
        parts.extend(frame.into_parts());
        while parts.len() < QUEUED_PARTS
            && let Ok(more) = rx.try_recv()
        {
            parts.extend(more.into_parts());
        }
        if write_all_parts(&mut *write, &parts).await.is_err() {
            break;
        }
        parts.clear();
    }
    let _ = write.shutdown().await;
}
