//! Performs the commands that change the embedded logs of a set of partitions, a round at a time,
//! with one fsync per partition per round.
//!
//! Why rounds: an acks=all append is answered only after its fsync, and each fsync costs a device
//! flush plus the file's metadata (on ext4 a journal commit, or without a journal a synchronous
//! inode write) whatever it carries. A writer that owns several
//! partitions takes every command queued for them at once, writes every append, and only then
//! fsyncs each partition that has a durable append waiting, so one thread wake-up and one fsync a
//! partition serve all the producers of the round.
//!
//! Blocking code written against [`Disk`]: a runtime runs a [`LogWriter`] on a thread of its own
//! and hands it the commands it drained from a queue.

use super::disk::Disk;
use super::file_log::{self, PartitionLog, Staged};
use super::{StorageCommand, StorageCompletion, StorageError, StorageToken};
use crate::types::TopicPartition;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The logs one writer owns, and where new ones go.
pub struct LogWriter {
    disk: Arc<dyn Disk>,
    data_dir: PathBuf,
    segment_bytes: u64,
    logs: HashMap<TopicPartition, PartitionLog>,
    /// Durable appends of the round, written but not yet fsynced, in emission order.
    staged: Vec<(StorageToken, TopicPartition, Staged)>,
}

impl LogWriter {
    /// A writer of logs under `data_dir` (segments roll at `segment_bytes`), owning none yet.
    pub fn new(disk: Arc<dyn Disk>, data_dir: PathBuf, segment_bytes: u64) -> LogWriter {
        LogWriter {
            disk,
            data_dir,
            segment_bytes,
            logs: HashMap::new(),
            staged: Vec::new(),
        }
    }

    /// Takes over a log found at start-up.
    pub fn adopt(&mut self, partition: TopicPartition, log: PartitionLog) {
        self.logs.insert(partition, log);
    }

    /// Performs one round of commands in their order and reports each completion to `done`: at
    /// once for most, after the round's fsyncs for durable appends. Reads and lookups do not
    /// belong here and fail.
    pub fn perform_round(
        &mut self,
        commands: impl IntoIterator<Item = StorageCommand>,
        done: &mut dyn FnMut(StorageToken, StorageCompletion),
    ) {
        for command in commands {
            let token = command.token();
            if let Some(tp) = command.changes_log_of() {
                // whatever comes after a staged append of the same partition sees it in the log
                if self.staged.iter().any(|(_, p, _)| p == tp) {
                    let tp = tp.clone();
                    self.settle(|p| *p == tp, done);
                }
            }
            if let Some(completion) = self.perform(command) {
                done(token, completion);
            }
        }
        self.settle(|_| true, done);
    }

    /// Makes everything written durable (interval flush, shutdown); the partitions that failed.
    pub fn flush(&self) -> Vec<(TopicPartition, StorageError)> {
        self.logs
            .iter()
            .filter_map(|(tp, log)| log.flush().err().map(|e| (tp.clone(), e)))
            .collect()
    }

    /// Performs `command`; `None` for a durable append, which waits in `staged` for its fsync.
    fn perform(&mut self, command: StorageCommand) -> Option<StorageCompletion> {
        let (disk, data_dir) = (&self.disk, self.data_dir.as_path());
        let result = match command {
            StorageCommand::CreatePartition { partition, .. } => {
                if !self.logs.contains_key(&partition) {
                    let log = PartitionLog::create(
                        disk.clone(),
                        data_dir,
                        &partition,
                        self.segment_bytes,
                    );
                    match log {
                        Ok(log) => {
                            self.logs.insert(partition, log);
                        }
                        Err(e) => return Some(StorageCompletion::Failed(e)),
                    }
                }
                Ok(())
            }
            StorageCommand::DeletePartition { partition, .. } => {
                self.logs.remove(&partition);
                file_log::delete_partition(&**disk, data_dir, &partition)
            }
            StorageCommand::Append {
                token,
                partition,
                batches,
                sync,
            } => {
                let Some(log) = self.logs.get_mut(&partition) else {
                    return Some(unknown(&partition));
                };
                if !sync {
                    return Some(
                        log.append(&batches, false)
                            .map_or_else(StorageCompletion::Failed, |position| {
                                StorageCompletion::Appended { position }
                            }),
                    );
                }
                match log.stage(&batches) {
                    Ok(staged) => {
                        self.staged.push((token, partition, staged));
                        return None;
                    }
                    Err(e) => Err(e),
                }
            }
            StorageCommand::TruncateBefore {
                partition, offset, ..
            } => match self.logs.get_mut(&partition) {
                Some(log) => log.truncate_before(offset),
                None => return Some(unknown(&partition)),
            },
            StorageCommand::WriteTopicConfig {
                partition, entries, ..
            } => file_log::write_topic_config(&**disk, data_dir, &partition, &entries),
            StorageCommand::Read { .. } | StorageCommand::FindByTime { .. } => Err(
                StorageError::Io("reads do not go through log writers".into()),
            ),
        };
        Some(result.map_or_else(StorageCompletion::Failed, |()| StorageCompletion::Done))
    }

    /// Fsyncs every partition with a staged append that `which` selects (a partition has one at
    /// most: a command for it settles it first) and completes those appends: committed if the
    /// fsync held, cut off and failed if not.
    fn settle(
        &mut self,
        which: impl Fn(&TopicPartition) -> bool,
        done: &mut dyn FnMut(StorageToken, StorageCompletion),
    ) {
        let (settling, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.staged)
            .into_iter()
            .partition(|(_, tp, _)| which(tp));
        self.staged = waiting;
        for (token, tp, staged) in settling {
            let Some(log) = self.logs.get_mut(&tp) else {
                done(token, unknown(&tp));
                continue;
            };
            let completion = match log.flush() {
                Ok(()) => StorageCompletion::Appended {
                    position: log.commit(staged, true),
                },
                Err(e) => {
                    log.abandon(staged);
                    StorageCompletion::Failed(e)
                }
            };
            done(token, completion);
        }
    }
}

fn unknown(tp: &TopicPartition) -> StorageCompletion {
    StorageCompletion::Failed(StorageError::UnknownPartition(tp.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::KStr;
    use crate::storage::AppendBatch;
    use crate::storage::file_log::partition_dir;
    use crate::storage::log::segment_file_name;
    use crate::storage::tests::{MemDisk, MemFile, batch, read_bases, seeded};
    use crate::types::Offset;
    use std::path::Path;

    const DATA: &str = "/data";

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition {
            topic: KStr::from("t"),
            partition,
        }
    }

    /// A writer owning partitions 0..n of topic `t`, created in a first round.
    fn writer(disk: &Arc<MemDisk>, partitions: i32) -> LogWriter {
        let mut w = LogWriter::new(disk.clone(), PathBuf::from(DATA), 1 << 30);
        let creates = (0..partitions).map(|p| StorageCommand::CreatePartition {
            token: StorageToken(1000 + p as u64),
            partition: tp(p),
            topic_partitions: partitions,
        });
        w.perform_round(creates, &mut |_, c| assert_eq!(c, StorageCompletion::Done));
        w
    }

    fn segment(disk: &MemDisk, partition: i32) -> MemFile {
        let path =
            partition_dir(Path::new(DATA), &tp(partition)).join(segment_file_name(Offset(0)));
        disk.files()
            .get(&path)
            .cloned()
            .expect("the segment exists")
    }

    fn append(token: u64, partition: i32, base: i64, records: usize, sync: bool) -> StorageCommand {
        StorageCommand::Append {
            token: StorageToken(token),
            partition: tp(partition),
            batches: vec![AppendBatch {
                base_offset: Offset(base),
                bytes: batch(records, token),
            }],
            sync,
        }
    }

    /// A round of durable appends to three partitions pays one fsync a partition, and no append
    /// is acknowledged before the fsync that covers it; an unsynced append is answered at once.
    #[test]
    fn a_round_fsyncs_each_partition_once_and_acknowledges_only_synced_bytes() {
        let disk = Arc::new(MemDisk::default());
        let mut w = writer(&disk, 4);
        let before: Vec<usize> = (0..4).map(|p| segment(&disk, p).state().syncs).collect();
        // (a token's last digit is its partition)
        let round = vec![
            append(10, 0, 0, 3, true),
            append(11, 1, 0, 2, true),
            append(23, 3, 0, 5, false),
            append(12, 2, 0, 4, true),
        ];
        let mut order = Vec::new();
        w.perform_round(round, &mut |token, c| {
            let p = (token.0 % 10) as i32;
            let StorageCompletion::Appended { position } = c else {
                panic!("append {token:?} failed: {c:?}");
            };
            assert_eq!(position.byte, 0);
            let file = segment(&disk, p);
            let state = file.state();
            if token.0 != 23 {
                assert_eq!(
                    state.synced.len(),
                    state.written.len(),
                    "acknowledged before its fsync"
                );
            }
            order.push(token.0);
        });
        assert_eq!(
            order,
            vec![23, 10, 11, 12],
            "the unsynced append is answered first"
        );
        let syncs: Vec<usize> = (0..4).map(|p| segment(&disk, p).state().syncs).collect();
        let added: Vec<usize> = syncs.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(added, vec![1, 1, 1, 0]);
        disk.crash(|_| 0);
        for (p, end) in [(0, 3), (1, 2), (2, 4)] {
            let dir = partition_dir(Path::new(DATA), &tp(p));
            assert_eq!(
                read_bases(&*disk, &dir, Offset(end)),
                vec![0],
                "partition {p}"
            );
        }
    }

    /// When a partition's fsync fails, its append is cut off the file and fails alone; the next
    /// append at the same offset takes its place, and a restart finds only that one.
    #[test]
    fn a_failed_fsync_fails_only_its_append_and_leaves_no_trace() {
        let disk = Arc::new(MemDisk::default());
        let mut w = writer(&disk, 2);
        segment(&disk, 0).state().failing = true;
        let mut results = Vec::new();
        w.perform_round(
            vec![append(1, 0, 0, 3, true), append(2, 1, 0, 2, true)],
            &mut |token, c| results.push((token.0, c)),
        );
        assert!(
            matches!(results[0], (1, StorageCompletion::Failed(_))),
            "{results:?}"
        );
        assert!(
            matches!(results[1], (2, StorageCompletion::Appended { .. })),
            "{results:?}"
        );
        assert!(
            segment(&disk, 0).state().written.is_empty(),
            "the failed append is cut off"
        );

        segment(&disk, 0).state().failing = false;
        let mut retried = None;
        w.perform_round(vec![append(3, 0, 0, 2, true)], &mut |_, c| {
            retried = Some(c)
        });
        let Some(StorageCompletion::Appended { position }) = retried else {
            panic!("the retry failed: {retried:?}");
        };
        assert_eq!(position.byte, 0);
        disk.crash(|n| n);
        let dir = partition_dir(Path::new(DATA), &tp(0));
        let r = PartitionLog::recover(disk.clone(), &dir, &tp(0), 1 << 30)
            .expect("recovers")
            .expect("has a log");
        assert_eq!(
            r.partition.next_offset,
            Offset(2),
            "only the retry is there"
        );
    }

    /// A command that follows a durable append of the same partition in one round runs after that
    /// append is synced and answered; other partitions' appends still wait for the round's end.
    #[test]
    fn a_later_command_of_the_same_partition_settles_its_staged_append_first() {
        let disk = Arc::new(MemDisk::default());
        let mut w = writer(&disk, 2);
        let round = vec![
            append(1, 0, 0, 3, true),
            append(2, 1, 0, 2, true),
            StorageCommand::TruncateBefore {
                token: StorageToken(3),
                partition: tp(0),
                offset: Offset(1),
            },
            StorageCommand::DeletePartition {
                token: StorageToken(4),
                partition: tp(0),
            },
        ];
        let mut order = Vec::new();
        w.perform_round(round, &mut |token, c| {
            assert!(
                !matches!(c, StorageCompletion::Failed(_)),
                "{token:?}: {c:?}"
            );
            order.push(token.0);
        });
        assert_eq!(order, vec![1, 3, 4, 2]);
        assert!(
            disk.files()
                .keys()
                .all(|p| !p.starts_with(partition_dir(Path::new(DATA), &tp(0)))),
            "partition 0 is deleted"
        );
    }

    /// Random rounds over three partitions with rolling segments, unsynced and durable appends and
    /// fsyncs that fail now and then, cut by a power failure: every append acknowledged after its
    /// fsync is there, and each log reads back as the prefix of what was acknowledged, with no gap.
    #[test]
    fn acknowledged_durable_appends_survive_a_power_cut_after_random_rounds() {
        for seed in 0..200u64 {
            let mut next = seeded(seed);
            let disk = Arc::new(MemDisk::default());
            let mut w = LogWriter::new(disk.clone(), PathBuf::from(DATA), 600);
            w.perform_round(
                (0..3).map(|p| StorageCommand::CreatePartition {
                    token: StorageToken(p),
                    partition: tp(p as i32),
                    topic_partitions: 3,
                }),
                &mut |_, c| assert_eq!(c, StorageCompletion::Done),
            );
            // per partition: the bases acknowledged, and the end of the last durable one
            let mut acked: Vec<Vec<i64>> = vec![Vec::new(); 3];
            let mut durable = [0i64; 3];
            let mut next_offset = [0i64; 3];
            let mut token = 100;
            for _ in 0..(next() % 10) {
                for p in 0..3 {
                    let failing = next().is_multiple_of(5);
                    let dir = partition_dir(Path::new(DATA), &tp(p));
                    for (path, file) in disk.files().iter() {
                        if path.starts_with(&dir) {
                            file.state().failing = failing;
                        }
                    }
                }
                let mut round = Vec::new();
                let mut sent = std::collections::HashMap::new();
                for p in 0..3 {
                    if next().is_multiple_of(3) {
                        continue;
                    }
                    let (records, sync) = (1 + (next() % 4) as usize, next().is_multiple_of(2));
                    token += 1;
                    round.push(append(token, p, next_offset[p as usize], records, sync));
                    sent.insert(token, (p as usize, records as i64, sync));
                }
                w.perform_round(round, &mut |t, c| {
                    let (p, records, sync) = sent[&t.0];
                    if let StorageCompletion::Appended { .. } = c {
                        acked[p].push(next_offset[p]);
                        next_offset[p] += records;
                        if sync {
                            durable[p] = next_offset[p];
                        }
                    }
                });
            }
            for file in disk.files().values() {
                file.state().failing = false;
            }
            disk.crash(|unsynced| (next() as usize) % (unsynced + 1));
            for p in 0..3 {
                let dir = partition_dir(Path::new(DATA), &tp(p as i32));
                let r = PartitionLog::recover(disk.clone(), &dir, &tp(p as i32), 600)
                    .expect("recovers")
                    .expect("finds the log");
                let end = r.partition.next_offset.0;
                assert!(
                    end >= durable[p] && end <= next_offset[p],
                    "seed {seed}, partition {p}: end {end} outside {}..={}",
                    durable[p],
                    next_offset[p]
                );
                let read = read_bases(&*disk, &dir, Offset(end));
                let expected: Vec<i64> = acked[p].iter().copied().filter(|b| *b < end).collect();
                assert_eq!(read, expected, "seed {seed}, partition {p}");
            }
        }
    }
}
