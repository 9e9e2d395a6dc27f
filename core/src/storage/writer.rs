//! Performs the commands that change the embedded logs of a set of partitions, a round at a time,
//! with one fsync per round.
//!
//! Why rounds: an acks=all append is answered only after its fsync, and each fsync costs a device
//! flush plus, for a file that grew, its metadata (on ext4 a journal commit, or without a journal
//! a synchronous inode write) whatever it carries. A writer that owns several
//! partitions takes every command queued for them at once, writes every append, and only then
//! makes the durable ones durable, so one thread wake-up and one fsync serve all the producers of
//! the round: the fsync of its write-ahead file ([`super::wal`]), which holds a record of each.
//! Without one, for a round of more than [`WAL_MAX_ROUND_BYTES`], and for an append that follows
//! bytes not yet durable, it fsyncs each partition that has a durable append waiting.
//!
//! Blocking code written against [`Disk`]: a runtime runs a [`LogWriter`] on a thread of its own
//! and hands it the commands it drained from a queue.

use super::disk::Disk;
use super::file_log::{self, Durability, PartitionLog, Staged};
use super::page_cache::RecentWrites;
use super::wal::{Wal, WalError, record_body_len};
use super::{AppendBatch, StorageCommand, StorageCompletion, StorageError, StorageToken};
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
    staged: Vec<StagedAppend>,
    /// The write-ahead file, if the writer has one (and it has not failed beyond repair).
    wal: Option<Wal>,
    /// What it has written lately, when it keeps only so much of that in the page cache.
    recent: Option<RecentWrites>,
}

/// A durable append waiting for the end of its round.
struct StagedAppend {
    token: StorageToken,
    partition: TopicPartition,
    staged: Staged,
    /// Its batches, when a write-ahead record can make it durable (there is a write-ahead file,
    /// and the append follows durable bytes); else its segment is to be fsynced.
    loggable: Option<Vec<AppendBatch>>,
}

/// Most bytes of durable appends in a round for the write-ahead file to make them durable; a
/// bigger round fsyncs its segments. Why: the file writes every byte a second time, which costs
/// CPU and device bandwidth per byte, while what it saves (a segment fsync's metadata) is per
/// fsync. Measured on 2 cores, 1M × 1 KiB at acks=all, 3 partitions (`bench/ab.py`): librdkafka
/// (batches up to 1 MB) 472k-491k records/s with 512 KiB, 466k-479k with 256 KiB, 453k-460k
/// with 1 MiB, 449k-452k with no bound; ProducerPerformance (16 KiB batches, rounds up to about
/// 240 KiB) 121k-126k with no bound or 256 KiB, 109k-116k with 128 KiB.
pub const WAL_MAX_ROUND_BYTES: u64 = 512 * 1024;

impl LogWriter {
    /// A writer of logs under `data_dir` (segments roll at `segment_bytes`), owning none yet.
    pub fn new(disk: Arc<dyn Disk>, data_dir: PathBuf, segment_bytes: u64) -> LogWriter {
        LogWriter {
            disk,
            data_dir,
            segment_bytes,
            logs: HashMap::new(),
            staged: Vec::new(),
            wal: None,
            recent: None,
        }
    }

    /// Leaves only about the newest `bytes` it wrote in the page cache (see
    /// [`super::page_cache`]); 0 leaves all of it to the kernel.
    pub fn with_page_cache(mut self, bytes: u64) -> LogWriter {
        self.recent = (bytes > 0).then(|| RecentWrites::new(bytes));
        self
    }

    /// Makes acks=all appends durable through the write-ahead file `wal` (see [`super::wal`]).
    pub fn with_wal(mut self, wal: Wal) -> LogWriter {
        self.wal = Some(wal);
        self
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
                if self.staged.iter().any(|s| s.partition == *tp) {
                    let tp = tp.clone();
                    self.settle(|p| *p == tp, done);
                }
            }
            if let Some(completion) = self.perform(command) {
                done(token, completion);
            }
        }
        self.settle(|_| true, done);
        self.release_cache();
    }

    /// Lets the page cache drop what no longer fits in the writer's share of it.
    fn release_cache(&mut self) {
        let Some(recent) = &mut self.recent else {
            return;
        };
        for (tp, span) in recent.release() {
            if let Some(log) = self.logs.get(&tp) {
                log.drop_cached(&span);
            }
        }
    }

    /// Makes everything written durable (interval flush, shutdown) and, if that held for every
    /// partition, starts a new generation of the write-ahead file (its records are no longer
    /// needed); the partitions that failed.
    pub fn flush(&mut self) -> Vec<(TopicPartition, StorageError)> {
        let failed: Vec<(TopicPartition, StorageError)> = self
            .logs
            .iter_mut()
            .filter_map(|(tp, log)| log.flush().err().map(|e| (tp.clone(), e)))
            .collect();
        if failed.is_empty()
            && let Some(wal) = &mut self.wal
        {
            // (if this fails the file still only holds records of data now in the segments)
            let _ = wal.reset();
        }
        failed
    }

    /// Fsyncs every segment whose durable bytes rest on write-ahead records, then starts a new
    /// generation of the write-ahead file: its records are no longer needed. Call with no append
    /// staged.
    fn checkpoint(&mut self) -> Result<(), StorageError> {
        if self.wal.is_none() {
            return Ok(());
        }
        for log in self.logs.values_mut() {
            if log.relies_on_wal() {
                log.flush()?;
            }
        }
        match &mut self.wal {
            Some(wal) => wal.reset(),
            None => Ok(()),
        }
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
                // no record of the partition may outlive it: a topic created again under its name
                // would get them back at the next start-up
                if let Err(e) = self.checkpoint() {
                    return Some(StorageCompletion::Failed(e));
                }
                self.logs.remove(&partition);
                if let Some(recent) = &mut self.recent {
                    recent.forget(&partition);
                }
                file_log::delete_partition(&*self.disk, &self.data_dir, &partition)
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
                    let result = log.append(&batches, false);
                    if let (Ok(position), Some(recent)) = (&result, &mut self.recent) {
                        let bytes = batches.iter().map(|b| b.bytes.len() as u64).sum();
                        recent.wrote(&partition, *position, bytes);
                    }
                    return Some(result.map_or_else(StorageCompletion::Failed, |position| {
                        StorageCompletion::Appended { position }
                    }));
                }
                match log.stage(&batches) {
                    Ok(staged) => {
                        let loggable = (self.wal.as_ref().is_some_and(Wal::usable)
                            && staged.follows_durable()
                            && record_body_len(&partition, &batches).is_some())
                        .then_some(batches);
                        self.staged.push(StagedAppend {
                            token,
                            partition,
                            staged,
                            loggable,
                        });
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

    /// Makes durable every staged append that `which` selects (a partition has one at most: a
    /// command for it settles it first) and completes those appends: committed if that held, cut
    /// off and failed if not. When one of those is loggable, and the loggable ones hold no more
    /// than [`WAL_MAX_ROUND_BYTES`], one fsync of the write-ahead file makes every loggable staged
    /// append durable and they settle together; the others are made durable by an fsync of their
    /// partition's segment. (Even for one partition the write-ahead file is the cheaper fsync,
    /// though it writes the bytes twice: see [`super::wal`].)
    fn settle(
        &mut self,
        which: impl Fn(&TopicPartition) -> bool,
        done: &mut dyn FnMut(StorageToken, StorageCompletion),
    ) {
        let logged_bytes: u64 = self
            .staged
            .iter()
            .filter(|s| s.loggable.is_some())
            .map(|s| s.staged.bytes())
            .sum();
        let wal_round = logged_bytes <= WAL_MAX_ROUND_BYTES
            && self
                .staged
                .iter()
                .any(|s| s.loggable.is_some() && which(&s.partition));
        let wal_result = match &mut self.wal {
            Some(wal) if wal_round => {
                for s in &self.staged {
                    if let Some(batches) = &s.loggable {
                        wal.log(&s.partition, batches);
                    }
                }
                Some(wal.commit())
            }
            _ => None,
        };
        if let Some(Err(WalError::Broken(e))) = &wal_result {
            // Records after the damage would be lost to a scan. Nothing may rely on the file any
            // more: every segment is fsynced, then a new generation starts (or the file is dropped
            // if that fails).
            let mut flushed = true;
            for log in self.logs.values_mut() {
                flushed &= log.flush().is_ok();
            }
            let reset = flushed && self.wal.as_mut().is_some_and(|w| w.reset().is_ok());
            if !reset {
                tracing::error!(error = %e, "the write-ahead file failed; fsyncing segments from now on");
                self.wal = None;
            }
        }
        let (settling, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.staged)
            .into_iter()
            .partition(|s| which(&s.partition) || (s.loggable.is_some() && wal_round));
        self.staged = waiting;
        for StagedAppend {
            token,
            partition,
            staged,
            loggable,
        } in settling
        {
            let logged = loggable.is_some() && wal_round;
            let Some(log) = self.logs.get_mut(&partition) else {
                done(token, unknown(&partition));
                continue;
            };
            let made_durable = match (&wal_result, logged) {
                (Some(Ok(())), true) => Ok(Durability::Logged),
                (Some(Err(e)), true) => Err(e.storage_error()),
                _ => log.flush().map(|()| Durability::Synced),
            };
            let completion = match made_durable {
                Ok(durability) => {
                    let bytes = staged.bytes();
                    let position = log.commit(staged, durability);
                    if let Some(recent) = &mut self.recent {
                        recent.wrote(&partition, position, bytes);
                    }
                    StorageCompletion::Appended { position }
                }
                Err(e) => {
                    log.abandon(staged);
                    StorageCompletion::Failed(e)
                }
            };
            done(token, completion);
        }
        if self.staged.is_empty()
            && self.wal.as_ref().is_some_and(|w| w.is_full())
            && let Err(e) = self.checkpoint()
        {
            // the file keeps its records, and is checkpointed again after the next round
            tracing::warn!(error = %e, "write-ahead checkpoint failed");
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
    use crate::storage::wal::{replay, scan_records, wal_path};
    use crate::types::Offset;
    use std::path::Path;

    const DATA: &str = "/data";

    /// Writer 0's write-ahead file, checkpointed past `limit` bytes.
    fn wal(disk: &Arc<MemDisk>, limit: u64) -> Wal {
        Wal::open(&**disk, &wal_path(Path::new(DATA), 0), limit, 7).expect("opens")
    }

    /// A writer of partitions 0 and 1 with a write-ahead file, after a round that logged 3 and 2
    /// records to them.
    fn logged_round(disk: &Arc<MemDisk>) -> LogWriter {
        let mut w = writer(disk, 2).with_wal(wal(disk, 1 << 20));
        w.perform_round(
            vec![append(1, 0, 0, 3, true), append(2, 1, 0, 2, true)],
            &mut |_, c| assert!(matches!(c, StorageCompletion::Appended { .. }), "{c:?}"),
        );
        w
    }

    /// The records a scan of writer 0's write-ahead file takes, as the disk holds it now.
    fn wal_records(disk: &MemDisk) -> usize {
        let bytes = bytes::Bytes::from(wal_file(disk).state().written.clone());
        scan_records(&bytes).0.len()
    }

    fn wal_file(disk: &MemDisk) -> MemFile {
        disk.files()
            .get(&wal_path(Path::new(DATA), 0))
            .cloned()
            .expect("the write-ahead file exists")
    }

    /// The offset after the last record of partition `p` as recovered from the disk.
    fn recovered_end(disk: &Arc<MemDisk>, p: i32) -> i64 {
        let dir = partition_dir(Path::new(DATA), &tp(p));
        PartitionLog::recover(disk.clone(), &dir, &tp(p), 1 << 30)
            .expect("recovers")
            .map_or(0, |r| r.partition.next_offset.0)
    }

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
        power_cut_after_random_rounds(false);
    }

    /// The same with a write-ahead file small enough to be checkpointed every few rounds, whose
    /// fsyncs fail now and then too; start-up replays it before the logs are read.
    #[test]
    fn appends_made_durable_by_the_write_ahead_file_survive_a_power_cut_after_random_rounds() {
        power_cut_after_random_rounds(true);
    }

    fn power_cut_after_random_rounds(with_wal: bool) {
        for seed in 0..400u64 {
            let mut next = seeded(seed);
            let disk = Arc::new(MemDisk::default());
            // small segments roll (and fsync) every few rounds; large ones never do
            let segment_bytes = if seed % 2 == 0 { 600 } else { 1 << 20 };
            let mut w = LogWriter::new(disk.clone(), PathBuf::from(DATA), segment_bytes);
            if with_wal {
                w = w.with_wal(wal(&disk, 400));
            }
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
                if let Some(file) = disk.files().get(&wal_path(Path::new(DATA), 0)) {
                    file.state().failing = next().is_multiple_of(5);
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
            if with_wal {
                replay(disk.clone(), Path::new(DATA), segment_bytes).expect("replays");
            }
            for p in 0..3 {
                let dir = partition_dir(Path::new(DATA), &tp(p as i32));
                let r = PartitionLog::recover(disk.clone(), &dir, &tp(p as i32), segment_bytes)
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

    /// With a write-ahead file a round of durable appends to three partitions pays one fsync, of
    /// that file; no append is answered before it, and a power cut that takes every unsynced
    /// segment byte loses none of them: start-up replays them.
    #[test]
    fn a_round_with_a_write_ahead_file_pays_one_fsync_for_every_partition() {
        let disk = Arc::new(MemDisk::default());
        let mut w = writer(&disk, 4).with_wal(wal(&disk, 1 << 20));
        let before: Vec<usize> = (0..4).map(|p| segment(&disk, p).state().syncs).collect();
        let wal_before = wal_file(&disk).state().syncs;
        let round = vec![
            append(10, 0, 0, 3, true),
            append(11, 1, 0, 2, true),
            append(23, 3, 0, 5, false),
            append(12, 2, 0, 4, true),
        ];
        let mut order = Vec::new();
        w.perform_round(round, &mut |token, c| {
            assert!(
                matches!(c, StorageCompletion::Appended { .. }),
                "{token:?}: {c:?}"
            );
            if token.0 != 23 {
                let state = wal_file(&disk).state().syncs;
                assert!(
                    state > wal_before,
                    "acknowledged before the write-ahead fsync"
                );
            }
            order.push(token.0);
        });
        assert_eq!(order, vec![23, 10, 11, 12]);
        let added: Vec<usize> = (0..4)
            .map(|p| segment(&disk, p).state().syncs - before[p as usize])
            .collect();
        assert_eq!(added, vec![0, 0, 0, 0], "no segment was fsynced");
        assert_eq!(wal_file(&disk).state().syncs, wal_before + 1);
        assert_eq!(wal_records(&disk), 3);

        disk.crash(|_| 0);
        assert_eq!(recovered_end(&disk, 0), 0, "the segment lost its bytes");
        replay(disk.clone(), Path::new(DATA), 1 << 30).expect("replays");
        for (p, end) in [(0, 3), (1, 2), (2, 4)] {
            assert_eq!(recovered_end(&disk, p), end, "partition {p}");
            let dir = partition_dir(Path::new(DATA), &tp(p));
            assert_eq!(read_bases(&*disk, &dir, Offset(end)), vec![0]);
        }
        assert_eq!(wal_records(&disk), 0, "replay retires the records");
    }

    /// A durable append behind bytes that are not durable (an acks=1 append, or what a killed
    /// gateway left in the page cache) cannot lean on a write-ahead record: replay could not
    /// put it in place if those bytes were lost. It fsyncs its segment instead, while the round's
    /// other appends share the write-ahead fsync; a round with one loggable append uses the
    /// write-ahead file too (its fsync is the cheaper one).
    #[test]
    fn a_durable_append_after_unsynced_bytes_fsyncs_its_segment() {
        let disk = Arc::new(MemDisk::default());
        let mut w = writer(&disk, 3).with_wal(wal(&disk, 1 << 20));
        w.perform_round(vec![append(1, 0, 0, 2, false)], &mut |_, _| {});
        // a restart without a power cut: the unsynced bytes are read back
        let mut w2 = LogWriter::new(disk.clone(), PathBuf::from(DATA), 1 << 30)
            .with_wal(wal(&disk, 1 << 20));
        for p in 0..3 {
            let dir = partition_dir(Path::new(DATA), &tp(p));
            let r = PartitionLog::recover(disk.clone(), &dir, &tp(p), 1 << 30)
                .expect("recovers")
                .expect("has a log");
            w2.adopt(tp(p), r.log);
        }
        drop(w);
        let syncs = |p: i32| segment(&disk, p).state().syncs;
        let before = [syncs(0), syncs(1), syncs(2)];
        let wal_syncs = || wal_file(&disk).state().syncs;
        let wal_before = wal_syncs();
        let round = vec![
            append(2, 0, 2, 3, true),
            append(3, 1, 0, 1, true),
            append(4, 2, 0, 1, true),
        ];
        w2.perform_round(round, &mut |_, c| {
            assert!(matches!(c, StorageCompletion::Appended { .. }), "{c:?}");
        });
        assert_eq!(
            [syncs(0), syncs(1), syncs(2)],
            [before[0] + 1, before[1], before[2]]
        );
        assert_eq!(wal_syncs(), wal_before + 1);
        // now partition 0 follows durable bytes: the write-ahead file covers it
        w2.perform_round(
            vec![append(5, 0, 5, 1, true), append(6, 1, 1, 1, true)],
            &mut |_, _| {},
        );
        assert_eq!(syncs(0), before[0] + 1);
        assert_eq!(wal_syncs(), wal_before + 2);
        // alone in its round, an append is logged too
        w2.perform_round(vec![append(7, 2, 1, 1, true)], &mut |_, _| {});
        assert_eq!((syncs(2), wal_syncs()), (before[2], wal_before + 3));
        disk.crash(|_| 0);
        replay(disk.clone(), Path::new(DATA), 1 << 30).expect("replays");
        let dir = partition_dir(Path::new(DATA), &tp(0));
        assert_eq!(read_bases(&*disk, &dir, Offset(6)), vec![0, 2, 5]);
        assert_eq!(recovered_end(&disk, 1), 2);
        assert_eq!(recovered_end(&disk, 2), 2);
    }

    /// A checkpoint fsyncs the segments whose acknowledged appends rest on write-ahead records,
    /// and not those that only hold acks=1 appends (never promised durable, and possibly
    /// gigabytes that would hold up every acks=all producer); after a power cut right behind it,
    /// every durable append is still there without a replay.
    #[test]
    fn a_checkpoint_fsyncs_only_the_segments_that_rest_on_the_write_ahead_file() {
        let disk = Arc::new(MemDisk::default());
        // each round's records take a block (padded to 4 KiB): the second round passes the limit
        let mut w = writer(&disk, 3).with_wal(wal(&disk, 5000));
        let syncs = |p: i32| segment(&disk, p).state().syncs;
        let before = [syncs(0), syncs(1), syncs(2)];
        let answered = &mut |_, c| assert!(matches!(c, StorageCompletion::Appended { .. }));
        w.perform_round(
            vec![append(1, 0, 0, 20, false), append(2, 1, 0, 5, true)],
            answered,
        );
        assert_eq!(wal_records(&disk), 1, "not checkpointed yet");
        w.perform_round(
            vec![append(3, 1, 5, 20, true), append(4, 0, 20, 5, false)],
            answered,
        );
        assert_eq!(wal_records(&disk), 0, "checkpointed: a new generation");
        assert_eq!(
            [syncs(0), syncs(1), syncs(2)],
            [before[0], before[1] + 1, before[2]],
            "only the segment the write-ahead file covered was fsynced"
        );
        disk.crash(|_| 0);
        assert_eq!(recovered_end(&disk, 1), 25);
        assert_eq!(
            recovered_end(&disk, 0),
            0,
            "acks=1 bytes were left to writeback"
        );
    }

    /// After a kill (no power cut) the segments hold every record, maybe only in the page cache;
    /// start-up replays nothing, yet must fsync them before it retires the records that made them
    /// durable: a power cut right after the restart loses no acknowledged append.
    #[test]
    fn start_up_after_a_kill_fsyncs_what_the_write_ahead_file_covered() {
        let disk = Arc::new(MemDisk::default());
        let w = logged_round(&disk);
        drop(w);
        replay(disk.clone(), Path::new(DATA), 1 << 30).expect("replays");
        assert_eq!(wal_records(&disk), 0, "replay retires the records");
        disk.crash(|_| 0);
        assert_eq!(recovered_end(&disk, 0), 3);
        assert_eq!(recovered_end(&disk, 1), 2);
    }

    /// Deleting a partition first empties the write-ahead file, so a topic created again under
    /// the same name does not get the old records back at the next start-up.
    #[test]
    fn a_deleted_partition_leaves_no_record_to_replay() {
        let disk = Arc::new(MemDisk::default());
        let mut w = logged_round(&disk);
        let again = StorageCommand::CreatePartition {
            token: StorageToken(4),
            partition: tp(0),
            topic_partitions: 2,
        };
        let delete = StorageCommand::DeletePartition {
            token: StorageToken(3),
            partition: tp(0),
        };
        w.perform_round(vec![delete, again], &mut |t, c| {
            assert_eq!(c, StorageCompletion::Done, "{t:?}");
        });
        disk.crash(|_| 0);
        replay(disk.clone(), Path::new(DATA), 1 << 30).expect("replays");
        assert_eq!(recovered_end(&disk, 0), 0, "the new partition is empty");
        assert_eq!(
            recovered_end(&disk, 1),
            2,
            "the other partition kept its appends"
        );
    }

    /// A round of durable appends bigger than [`WAL_MAX_ROUND_BYTES`] fsyncs its segments and
    /// leaves the write-ahead file alone; the next small round uses it again.
    #[test]
    fn a_big_round_fsyncs_its_segments_instead() {
        let disk = Arc::new(MemDisk::default());
        let mut w = writer(&disk, 2).with_wal(wal(&disk, 1 << 30));
        let big = |token: u64, partition: i32| StorageCommand::Append {
            token: StorageToken(token),
            partition: tp(partition),
            batches: vec![AppendBatch {
                base_offset: Offset(0),
                bytes: crate::storage::tests::big_batch(300, 1024, token),
            }],
            sync: true,
        };
        let syncs = |p: i32| segment(&disk, p).state().syncs;
        let (before, wal_before) = ([syncs(0), syncs(1)], wal_file(&disk).state().syncs);
        w.perform_round(vec![big(1, 0), big(2, 1)], &mut |_, c| {
            assert!(matches!(c, StorageCompletion::Appended { .. }), "{c:?}");
        });
        assert_eq!([syncs(0), syncs(1)], [before[0] + 1, before[1] + 1]);
        assert_eq!(wal_file(&disk).state().syncs, wal_before, "not logged");
        w.perform_round(
            vec![append(3, 0, 300, 2, true), append(4, 1, 300, 2, true)],
            &mut |_, _| {},
        );
        assert_eq!([syncs(0), syncs(1)], [before[0] + 1, before[1] + 1]);
        assert_eq!(wal_file(&disk).state().syncs, wal_before + 1, "logged");
        disk.crash(|_| 0);
        replay(disk.clone(), Path::new(DATA), 1 << 30).expect("replays");
        assert_eq!(
            (recovered_end(&disk, 0), recovered_end(&disk, 1)),
            (302, 302)
        );
    }

    /// A new generation whose slot did not reach the disk for sure (its fsync failed) may still
    /// get there later, and would make every record logged under the old salt stale: until a new
    /// generation holds, durable appends fsync their segments instead, and a power cut loses none.
    #[test]
    fn a_failed_new_generation_stops_logging_until_one_holds() {
        let disk = Arc::new(MemDisk::default());
        let mut w = logged_round(&disk);
        // deleting a partition checkpoints; the new generation's fsync fails
        wal_file(&disk).state().failing = true;
        let delete = StorageCommand::DeletePartition {
            token: StorageToken(3),
            partition: tp(1),
        };
        w.perform_round(vec![delete], &mut |_, _| {});
        wal_file(&disk).state().failing = false;
        let segment_syncs = segment(&disk, 0).state().syncs;
        w.perform_round(vec![append(4, 0, 3, 2, true)], &mut |_, c| {
            assert!(matches!(c, StorageCompletion::Appended { .. }), "{c:?}");
        });
        assert_eq!(
            segment(&disk, 0).state().syncs,
            segment_syncs + 1,
            "the append fsynced its segment"
        );
        // that round's end checkpointed again, and this time the new generation held
        let wal_syncs = wal_file(&disk).state().syncs;
        w.perform_round(vec![append(5, 0, 5, 1, true)], &mut |_, c| {
            assert!(matches!(c, StorageCompletion::Appended { .. }), "{c:?}");
        });
        assert_eq!(segment(&disk, 0).state().syncs, segment_syncs + 1);
        assert_eq!(wal_file(&disk).state().syncs, wal_syncs + 1, "logged again");
        disk.crash(|_| 0);
        replay(disk.clone(), Path::new(DATA), 1 << 30).expect("replays");
        assert_eq!(recovered_end(&disk, 0), 6);
    }

    /// A failed write-ahead fsync fails the round's logged appends and cuts them off; the next
    /// round writes after the file's last good record, and only what was acknowledged comes back.
    #[test]
    fn a_failed_write_ahead_fsync_fails_its_round_and_leaves_no_trace() {
        let disk = Arc::new(MemDisk::default());
        let mut w = writer(&disk, 2).with_wal(wal(&disk, 1 << 20));
        wal_file(&disk).state().failing = true;
        let mut results = Vec::new();
        w.perform_round(
            vec![append(1, 0, 0, 3, true), append(2, 1, 0, 2, true)],
            &mut |t, c| results.push((t.0, c)),
        );
        assert!(
            results
                .iter()
                .all(|(_, c)| matches!(c, StorageCompletion::Failed(_))),
            "{results:?}"
        );
        assert!(segment(&disk, 0).state().written.is_empty());
        assert_eq!(wal_records(&disk), 0, "the failed records are cut off");
        wal_file(&disk).state().failing = false;
        w.perform_round(vec![append(3, 0, 0, 1, true)], &mut |_, c| {
            assert!(matches!(c, StorageCompletion::Appended { .. }), "{c:?}");
        });
        disk.crash(|_| 0);
        replay(disk.clone(), Path::new(DATA), 1 << 30).expect("replays");
        assert_eq!(recovered_end(&disk, 0), 1);
        assert_eq!(recovered_end(&disk, 1), 0);
    }

    /// A writer that keeps 2 MiB of what it wrote in the page cache lets it drop each partition's
    /// oldest bytes as newer ones come, durable (write-ahead) and not alike, and never the newest;
    /// everything written still reads back.
    #[test]
    fn only_the_newest_bytes_written_stay_in_the_page_cache() {
        use crate::storage::page_cache::SPAN_BYTES;
        let disk = Arc::new(MemDisk::default());
        let limit = 2 * SPAN_BYTES;
        let mut w = writer(&disk, 2)
            .with_wal(wal(&disk, 64 << 20))
            .with_page_cache(limit);
        let mut next = [0i64; 2];
        for round in 0..24u64 {
            let commands = (0..2)
                .map(|p| {
                    let bytes = crate::storage::tests::big_batch(100, 1024, round);
                    let base = next[p];
                    next[p] += 100;
                    StorageCommand::Append {
                        token: StorageToken(round * 2 + p as u64),
                        partition: tp(p as i32),
                        batches: vec![AppendBatch {
                            base_offset: Offset(base),
                            bytes,
                        }],
                        sync: round % 2 == 0,
                    }
                })
                .collect::<Vec<_>>();
            w.perform_round(commands, &mut |_, c| {
                assert!(matches!(c, StorageCompletion::Appended { .. }), "{c:?}");
            });
        }
        let mut kept = 0;
        for p in 0..2 {
            let file = segment(&disk, p);
            let state = file.state();
            let len = state.written.len() as u64;
            let mut expected_from = 0;
            for &(at, n) in &state.dropped {
                assert_eq!(at, expected_from, "oldest first, no gap, no overlap");
                expected_from = at + n;
            }
            assert!(expected_from > 0, "partition {p} dropped nothing");
            assert!(expected_from < len, "the newest bytes stay");
            kept += len - expected_from;
        }
        // (spans go whole: up to one under the limit, and up to a growing one a partition over)
        assert!(kept <= limit + 2 * SPAN_BYTES, "{kept} bytes kept");
        assert!(kept >= limit - SPAN_BYTES, "{kept} bytes kept");
        for p in 0..2 {
            let dir = partition_dir(Path::new(DATA), &tp(p));
            let bases = read_bases(&*disk, &dir, Offset(2400));
            assert_eq!(bases, (0..24).map(|i| i * 100).collect::<Vec<_>>());
        }
    }
}
