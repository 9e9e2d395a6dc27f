//! Performs the core's storage commands on the embedded log, on the runtime's blocking threads.
//!
//! Commands that change a partition's log run on that partition's writer task, one at a time and in
//! the order the core emitted them; partitions proceed in parallel. Reads and time lookups touch only
//! data below the high watermark, which no writer changes, so they run at once on the blocking pool.

use crate::runtime::Rt;
use kelp_core::storage::disk::Disk;
use kelp_core::storage::file_log::{self, PartitionLog, partition_dir};
use kelp_core::storage::{StorageCommand, StorageCompletion, StorageError, StorageToken};
use kelp_core::types::TopicPartition;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A storage command's result, delivered to the gateway loop.
pub type Completion = (StorageToken, StorageCompletion);

enum Job {
    Command(StorageCommand),
    Flush(oneshot::Sender<()>),
}

/// Where the logs are, shared by the driver, its writers and its reads.
struct Place {
    disk: Arc<dyn Disk>,
    data_dir: PathBuf,
    segment_bytes: u64,
}

/// The embedded log driver.
pub struct Storage {
    rt: Rt,
    place: Arc<Place>,
    max_decompressed: usize,
    writers: HashMap<TopicPartition, mpsc::UnboundedSender<Job>>,
    done: mpsc::UnboundedSender<Completion>,
}

impl Storage {
    /// A driver over `data_dir`, starting a writer for every recovered partition log.
    pub fn new(
        rt: Rt,
        disk: Arc<dyn Disk>,
        data_dir: PathBuf,
        segment_bytes: u64,
        max_decompressed: usize,
        recovered: Vec<(TopicPartition, PartitionLog)>,
        done: mpsc::UnboundedSender<Completion>,
    ) -> Storage {
        let mut storage = Storage {
            rt,
            place: Arc::new(Place {
                disk,
                data_dir,
                segment_bytes,
            }),
            max_decompressed,
            writers: HashMap::new(),
            done,
        };
        for (tp, log) in recovered {
            storage.spawn_writer(tp, Some(log));
        }
        storage
    }

    fn spawn_writer(
        &mut self,
        tp: TopicPartition,
        log: Option<PartitionLog>,
    ) -> mpsc::UnboundedSender<Job> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.rt.spawn(writer(
            self.rt.clone(),
            self.place.clone(),
            tp.clone(),
            log,
            rx,
            self.done.clone(),
        ));
        self.writers.insert(tp, tx.clone());
        tx
    }

    /// Starts `command`; its completion arrives on the channel given to [`Storage::new`].
    pub fn submit(&mut self, command: StorageCommand) {
        if let Some(tp) = command.changes_log_of().cloned() {
            let tx = match self.writers.get(&tp) {
                Some(tx) => tx.clone(),
                None => self.spawn_writer(tp, None),
            };
            let _ = tx.send(Job::Command(command));
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
                let place = self.place.clone();
                self.rt.run_blocking(move || {
                    let result = file_log::read(&*place.disk, &dir, offset, from, max_bytes, end);
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
                let place = self.place.clone();
                self.rt.run_blocking(move || {
                    let result = file_log::find_time(&*place.disk, &dir, timestamp, from, end, max);
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
        for tx in self.writers.values() {
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

/// One partition's writer: performs its mutating commands in order.
async fn writer(
    rt: Rt,
    place: Arc<Place>,
    tp: TopicPartition,
    mut log: Option<PartitionLog>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<Completion>,
) {
    while let Some(job) = jobs.recv().await {
        let tp = tp.clone();
        let place = place.clone();
        let (back, result) = match rt.unblock(move || perform(&place, job, log, &tp)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "storage writer task failed");
                return;
            }
        };
        log = back;
        if let Some(completion) = result {
            let _ = done.send(completion);
        }
    }
}

fn perform(
    place: &Place,
    job: Job,
    mut log: Option<PartitionLog>,
    tp: &TopicPartition,
) -> (Option<PartitionLog>, Option<Completion>) {
    let (disk, data_dir) = (&place.disk, place.data_dir.as_path());
    let command = match job {
        Job::Flush(reply) => {
            if let Some(l) = &log
                && let Err(e) = l.flush()
            {
                tracing::error!(partition = %tp, error = %e, "flush failed");
            }
            let _ = reply.send(());
            return (log, None);
        }
        Job::Command(c) => c,
    };
    let token = command.token();
    let completion = match command {
        StorageCommand::CreatePartition { .. } => match &log {
            Some(_) => StorageCompletion::Done,
            None => match PartitionLog::create(disk.clone(), data_dir, tp, place.segment_bytes) {
                Ok(l) => {
                    log = Some(l);
                    StorageCompletion::Done
                }
                Err(e) => StorageCompletion::Failed(e),
            },
        },
        StorageCommand::DeletePartition { .. } => {
            log = None;
            file_log::delete_partition(&**disk, data_dir, tp)
                .map_or_else(StorageCompletion::Failed, |()| StorageCompletion::Done)
        }
        StorageCommand::Append { batches, sync, .. } => match &mut log {
            Some(l) => l
                .append(&batches, sync)
                .map_or_else(StorageCompletion::Failed, |position| {
                    StorageCompletion::Appended { position }
                }),
            None => StorageCompletion::Failed(StorageError::UnknownPartition(tp.to_string())),
        },
        StorageCommand::TruncateBefore { offset, .. } => match &mut log {
            Some(l) => l
                .truncate_before(offset)
                .map_or_else(StorageCompletion::Failed, |()| StorageCompletion::Done),
            None => StorageCompletion::Failed(StorageError::UnknownPartition(tp.to_string())),
        },
        StorageCommand::WriteTopicConfig { entries, .. } => {
            file_log::write_topic_config(&**disk, data_dir, tp, &entries)
                .map_or_else(StorageCompletion::Failed, |()| StorageCompletion::Done)
        }
        StorageCommand::Read { .. } | StorageCommand::FindByTime { .. } => {
            StorageCompletion::Failed(StorageError::Io("reads do not go through writers".into()))
        }
    };
    (log, Some((token, completion)))
}
