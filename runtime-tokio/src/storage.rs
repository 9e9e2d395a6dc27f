//! Performs the core's storage commands on the embedded log.
//!
//! Commands that change a partition's log go to the [`LogWriter`] thread that owns the partition,
//! which performs them in the order the core emitted them, a round of queued commands at a time
//! with one fsync a round (of its write-ahead file; without one, of each partition written);
//! partitions are dealt to the writers in turn. Reads and time
//! lookups touch only data below the high watermark, which no writer changes, so they run at once
//! on the runtime's blocking pool.

use crate::runtime::Rt;
use kelp_core::storage::disk::Disk;
use kelp_core::storage::file_log::{self, PartitionLog, partition_dir};
use kelp_core::storage::wal::{Wal, wal_path};
use kelp_core::storage::writer::LogWriter;
use kelp_core::storage::{StorageCommand, StorageCompletion, StorageError, StorageToken};
use kelp_core::types::TopicPartition;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, mpsc as sync_mpsc};
use tokio::sync::{mpsc, oneshot};

/// A storage command's result, delivered to the gateway loop.
pub type Completion = (StorageToken, StorageCompletion);

enum Job {
    Command(StorageCommand),
    Flush(oneshot::Sender<()>),
}

/// Where the logs are.
#[derive(Clone)]
pub struct Place {
    /// The file system.
    pub disk: Arc<dyn Disk>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where segments roll.
    pub segment_bytes: u64,
    /// Size at which a writer's write-ahead file is checkpointed; 0: no write-ahead files (each
    /// round fsyncs every partition with a durable append instead).
    pub wal_bytes: u64,
    /// Bytes of the newest log writes left in the page cache, shared among the writers; 0: all
    /// (see `kelp_core::storage::page_cache`).
    pub page_cache_bytes: u64,
}

/// Most commands a writer takes into one round (more wait for the next).
const ROUND_COMMANDS: usize = 1024;

/// The embedded log driver.
pub struct Storage {
    rt: Rt,
    place: Place,
    max_decompressed: usize,
    writers: Vec<sync_mpsc::Sender<Job>>,
    /// The writer of each partition, by index into `writers`.
    owners: HashMap<TopicPartition, usize>,
    done: mpsc::UnboundedSender<Completion>,
}

impl Storage {
    /// A driver over `place` with `writers` writer threads (at least one), each with its
    /// write-ahead file unless `place.wal_bytes` is 0, dealing the recovered partition logs among
    /// them. Call after [`file_log::recover_all`], which replays and removes the old files.
    pub fn new(
        rt: Rt,
        place: Place,
        writers: usize,
        max_decompressed: usize,
        recovered: Vec<(TopicPartition, PartitionLog)>,
        done: mpsc::UnboundedSender<Completion>,
    ) -> std::io::Result<Storage> {
        let mut logs = Vec::new();
        let writers = writers.max(1);
        for i in 0..writers {
            let log = LogWriter::new(
                place.disk.clone(),
                place.data_dir.clone(),
                place.segment_bytes,
            )
            .with_page_cache(place.page_cache_bytes.div_ceil(writers as u64));
            logs.push(if place.wal_bytes > 0 {
                let path = wal_path(&place.data_dir, i);
                let wal = Wal::open(&*place.disk, &path, place.wal_bytes, random_seed())
                    .map_err(std::io::Error::other)?;
                log.with_wal(wal)
            } else {
                log
            });
        }
        let mut owners = HashMap::new();
        for (i, (tp, log)) in recovered.into_iter().enumerate() {
            let owner = i % logs.len();
            logs[owner].adopt(tp.clone(), log);
            owners.insert(tp, owner);
        }
        let mut senders = Vec::new();
        for (i, log) in logs.into_iter().enumerate() {
            let (tx, rx) = sync_mpsc::channel();
            let done = done.clone();
            std::thread::Builder::new()
                .name(format!("kelp-log-{i}"))
                .spawn(move || write_rounds(log, rx, done))?;
            senders.push(tx);
        }
        Ok(Storage {
            rt,
            place,
            max_decompressed,
            writers: senders,
            owners,
            done,
        })
    }

    /// Starts `command`; its completion arrives on the channel given to [`Storage::new`].
    pub fn submit(&mut self, command: StorageCommand) {
        if let Some(tp) = command.changes_log_of() {
            let next = self.owners.len() % self.writers.len();
            let owner = *self.owners.entry(tp.clone()).or_insert(next);
            let token = command.token();
            if self.writers[owner].send(Job::Command(command)).is_err() {
                tracing::error!(writer = owner, "storage writer thread is gone");
                let gone = StorageError::Io("storage writer thread is gone".into());
                let _ = self.done.send((token, StorageCompletion::Failed(gone)));
            }
            return;
        }
        match command {
            StorageCommand::Read {
                token,
                partition,
                offset,
                from,
                max_bytes,
                end,
            } => {
                let dir = partition_dir(&self.place.data_dir, &partition);
                let done = self.done.clone();
                let disk = self.place.disk.clone();
                self.rt.run_blocking(move || {
                    let result = file_log::read(&*disk, &dir, offset, from, max_bytes, end);
                    let _ = done.send((token, StorageCompletion::of_read(result)));
                });
            }
            StorageCommand::FindByTime {
                token,
                partition,
                timestamp,
                from,
                end,
            } => {
                let dir = partition_dir(&self.place.data_dir, &partition);
                let done = self.done.clone();
                let max = self.max_decompressed;
                let disk = self.place.disk.clone();
                self.rt.run_blocking(move || {
                    let result = file_log::find_time(&*disk, &dir, timestamp, from, end, max);
                    let _ = done.send((token, StorageCompletion::of_lookup(result)));
                });
            }
            // (log changes went to the partition's writer above)
            _ => {}
        }
    }

    /// Makes everything written durable: interval flush and shutdown.
    pub async fn flush_all(&self) {
        let mut waits = Vec::new();
        for tx in &self.writers {
            let (done, wait) = oneshot::channel();
            if tx.send(Job::Flush(done)).is_ok() {
                waits.push(wait);
            }
        }
        for w in waits {
            let _ = w.await;
        }
    }
}

/// A random seed for a write-ahead file's salts: the standard library's hasher keys come from the
/// operating system's random source.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}

/// A writer thread: waits for a command, takes every other one queued behind it (up to
/// [`ROUND_COMMANDS`]) and performs them as one round. Ends when the driver is dropped.
fn write_rounds(
    mut log: LogWriter,
    jobs: sync_mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Completion>,
) {
    let mut report = |token, completion| {
        let _ = done.send((token, completion));
    };
    let mut round = Vec::new();
    while let Ok(first) = jobs.recv() {
        let mut flushes = Vec::new();
        for job in std::iter::once(first).chain(jobs.try_iter().take(ROUND_COMMANDS - 1)) {
            match job {
                Job::Command(c) => round.push(c),
                Job::Flush(reply) => flushes.push(reply),
            }
        }
        log.perform_round(round.drain(..), &mut report);
        if !flushes.is_empty() {
            for (tp, e) in log.flush() {
                tracing::error!(partition = %tp, error = %e, "flush failed");
            }
            for reply in flushes {
                let _ = reply.send(());
            }
        }
    }
}
