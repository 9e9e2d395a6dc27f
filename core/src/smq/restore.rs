//! Start-up on SMQ: the partitions rebuilt from the ledger topic ([`Restore`]), reconciled with
//! each partition's high watermark (`GetPartitionRangeInfo`) instead of a scan of the data.

use super::backend::Shared;
use super::mappings::{LedgerEntry, Reconcile, Restore, cut_batch_tail, tail_entries};
use crate::storage::RecoveredPartition;
use crate::types::Offset;

/// Reads the ledger topic and returns the partitions it describes.
pub(crate) async fn restore(shared: &Shared) -> Result<Vec<RecoveredPartition>, String> {
    let started = shared.io().now().mono;
    let smq = &shared.smq;
    let ledger_topic = shared.namespaces.mappings_topic();
    let end = smq
        .end_offset(&ledger_topic, 0)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let mut restore = Restore::default();
    let mut at = 0i64;
    let mut unreadable = 0u64;
    while at < end {
        let wanted = (end - at).min(super::backend::FETCH_MESSAGES as i64) as usize;
        let response = shared
            .fetch_patiently(&ledger_topic, 0, Offset(at), wanted)
            .await
            .map_err(|e| format!("reading the ledger topic at {at}: {e}"))?;
        if response.messages.is_empty() {
            return Err(format!(
                "the ledger topic ends at {end} but SMQ serves nothing at offset {at}"
            ));
        }
        for m in response.messages.iter().take(wanted) {
            match LedgerEntry::from_message(m) {
                Ok(entry) => restore.apply(entry),
                Err(e) => {
                    unreadable += 1;
                    tracing::warn!(offset = at, error = %e, "skipping a ledger entry");
                }
            }
            at += 1;
        }
    }
    let read_ms = shared.io().now().mono.0 - started.0;

    // Reconcile each partition with what SMQ holds.
    let partitions: Vec<_> = restore.partitions().cloned().collect();
    let mut adopted = 0u64;
    for tp in &partitions {
        let topic = shared.namespaces.smq_topic(tp.topic.as_str());
        let hwm = match smq.end_offset(&topic, tp.partition).await {
            Ok(h) => h.unwrap_or(0),
            Err(e) => {
                tracing::error!(partition = %tp, error = %e, "cannot read the SMQ partition's high watermark; its appends will fail until it answers");
                continue;
            }
        };
        match restore.reconcile(tp, hwm) {
            Reconcile::Consistent => {}
            Reconcile::UnmappedTail { from, to } => {
                // published, never answered (a crash before the ledger write): they are in SMQ at
                // these offsets, so they are part of the log
                let records = match shared.read_records(tp, from, to).await {
                    Ok(r) => r,
                    Err(e) => {
                        // the first append adopts the offsets (without their producers)
                        tracing::warn!(partition = %tp, error = %e, "records beyond the ledger unreadable");
                        shared.unsettle(tp);
                        continue;
                    }
                };
                // a batch stored in part waits for its producer's retry, which completes it
                let held = cut_batch_tail(&records);
                let records = &records[..records.len() - held];
                if held > 0 {
                    shared.unsettle(tp);
                    tracing::info!(partition = %tp, records = held, "the first records of an idempotent batch, stored in part, wait beyond the ledger for the batch's retry");
                }
                if records.is_empty() {
                    continue;
                }
                let entries = tail_entries(tp, records);
                adopted += records.len() as u64;
                shared
                    .write_ledger(&entries)
                    .await
                    .map_err(|e| format!("writing the ledger entries of {tp}'s tail: {e}"))?;
                for entry in entries {
                    restore.apply(entry);
                }
                let to = records.last().map_or(from, |r| r.offset.plus(1));
                tracing::info!(partition = %tp, from = from.0, to = to.0, "adopted records SMQ holds beyond the ledger");
            }
            Reconcile::Rewound {
                ledger_end,
                smq_end,
            } => {
                tracing::error!(
                    partition = %tp,
                    ledger_end = ledger_end.0,
                    smq_end = smq_end.0,
                    "SMQ holds fewer records than Kelp acknowledged (the broker lost data, e.g. a \
                     crash within its flush interval); appends to this partition fail rather than \
                     reuse acknowledged offsets"
                );
            }
        }
    }
    let entries = restore.entries;
    let skipped = restore.skipped;
    let restored = restore.finish();
    tracing::info!(
        ledger_entries = entries,
        duplicate_entries = skipped,
        unreadable,
        partitions = restored.len(),
        adopted_records = adopted,
        read_ms,
        total_ms = shared.io().now().mono.0 - started.0,
        "restored the offset ledger from SMQ"
    );
    Ok(restored)
}
