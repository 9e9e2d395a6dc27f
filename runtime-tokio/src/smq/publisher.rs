//! One task per SMQ partition that Kelp publishes to: it owns the partition's publish stream and
//! drives the core's [`PublishSession`] over it.
//!
//! Appends arrive as [`Job`]s and are pipelined on one stream (SMQ wants exactly one publisher per
//! partition, and keeping the stream open also keeps the broker from unloading the partition).
//! When the stream breaks, every append not yet acknowledged is answered with what the session
//! reports, and the next job opens a new stream. Failed opens trip a circuit breaker: for a backoff
//! that doubles up to [`MAX_BACKOFF`] (with jitter), jobs fail at once instead of piling up on a
//! dead broker, so producers get fast retriable errors.

use super::client::Smq;
use kelp_core::smq::mapping::{SMQ_OFFSET_BASE, marker_message};
use kelp_core::smq::messaging_pb::{DataMessage, PublishMessageRequest, PublishMessageResponse};
use kelp_core::smq::publish::{AppendId, PublishError, PublishEvent, PublishSession};
use kelp_core::smq::schema_pb;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Longest wait for a stream to open (the broker's hello).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time the breaker stays open.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Records to publish as one append.
pub struct Job {
    /// The offset SMQ must give the first message (`None`: any).
    pub first_offset: Option<i64>,
    /// The messages.
    pub messages: Vec<DataMessage>,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<PublishEvent>,
}

/// Starts the publisher of partition `index` of `topic`.
pub fn spawn(
    smq: Arc<Smq>,
    topic: schema_pb::Topic,
    index: i32,
    window: usize,
) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel();
    smq.rt.clone().spawn(run(smq, topic, index, window, rx));
    tx
}

/// Publishes `messages` through `publisher` and waits for the outcome.
pub async fn publish(
    publisher: &mpsc::UnboundedSender<Job>,
    first_offset: Option<i64>,
    messages: Vec<DataMessage>,
) -> PublishEvent {
    let (reply, outcome) = oneshot::channel();
    let closed = || PublishEvent::Failed {
        id: AppendId(0),
        stored: 0,
        error: PublishError::Closed("the publisher task ended".into()),
    };
    if publisher
        .send(Job {
            first_offset,
            messages,
            reply,
        })
        .is_err()
    {
        return closed();
    }
    outcome.await.unwrap_or_else(|_| closed())
}

struct Stream {
    session: PublishSession,
    tx: mpsc::UnboundedSender<PublishMessageRequest>,
    rx: tonic::Streaming<PublishMessageResponse>,
}

impl Stream {
    fn flush(&mut self) {
        while let Some(m) = self.session.poll_transmit() {
            if self.tx.send(m).is_err() {
                self.session
                    .handle_closed("the request stream is gone".into());
                break;
            }
        }
    }
}

/// Exponential backoff with jitter in front of a failing broker.
struct Breaker {
    failures: u32,
    closed_until: Option<Instant>,
    seed: u64,
}

impl Breaker {
    fn new(seed: u64) -> Breaker {
        Breaker {
            failures: 0,
            closed_until: None,
            seed: seed | 1,
        }
    }

    /// Whether an attempt may be made now.
    fn allows(&self) -> bool {
        self.closed_until.is_none_or(|t| Instant::now() >= t)
    }

    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let exp = FIRST_BACKOFF.saturating_mul(1 << self.failures.min(16).saturating_sub(1));
        let full = exp.min(MAX_BACKOFF);
        // xorshift: jitter of 50..100 % so that partitions do not retry in lockstep
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jittered = full.mul_f64(0.5 + (self.seed % 1000) as f64 / 2000.0);
        self.closed_until = Some(Instant::now() + jittered);
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.closed_until = None;
    }
}

async fn open(
    smq: &Smq,
    topic: &schema_pb::Topic,
    index: i32,
    window: usize,
) -> Result<Stream, String> {
    let a = smq
        .partition(topic, index)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = smq.client(&a.leader).map_err(|e| e.to_string())?;
    let mut session = PublishSession::new(
        topic.clone(),
        a.partition,
        format!("kelp-{}", std::process::id()),
        window,
    );
    let (tx, rx) = mpsc::unbounded_channel();
    // the init goes out before the call: the broker answers (headers and hello) only after it
    while let Some(m) = session.poll_transmit() {
        let _ = tx.send(m);
    }
    let call = client.publish_message(UnboundedReceiverStream::new(rx));
    let response = smq
        .rt
        .timeout(OPEN_TIMEOUT, call)
        .await
        .map_err(|_| "no answer to the publish stream's init".to_string())?
        .map_err(|s| format!("PublishMessage: {:?}: {}", s.code(), s.message()))?;
    Ok(Stream {
        session,
        tx,
        rx: response.into_inner(),
    })
}

/// `event` with SMQ offsets turned into Kafka offsets.
fn kafka_offsets(event: PublishEvent) -> PublishEvent {
    match event {
        PublishEvent::Failed {
            id,
            stored,
            error: PublishError::OffsetMismatch { expected, assigned },
        } => PublishEvent::Failed {
            id,
            stored,
            error: PublishError::OffsetMismatch {
                expected: expected - SMQ_OFFSET_BASE,
                assigned: assigned - SMQ_OFFSET_BASE,
            },
        },
        other => other,
    }
}

/// Starts partition `index` of `topic` with its marker record at SMQ offset 0, on a stream of its
/// own that is closed before this returns: the broker unloads the partition when that stream ends,
/// flushing the marker alone to a file of its own (see [`SMQ_OFFSET_BASE`]). The response stream
/// ends only after the broker's handler returned, so the unload is done by then.
pub async fn start_partition(
    smq: &Smq,
    topic: &schema_pb::Topic,
    index: i32,
) -> Result<(), String> {
    let mut s = open(smq, topic, index, 1).await?;
    s.session.push(AppendId(0), Some(0), vec![marker_message()]);
    s.flush();
    let done = async {
        loop {
            if let Some(event) = s.session.poll_event() {
                return match event {
                    PublishEvent::Stored { .. } => Ok(()),
                    PublishEvent::Failed { error, .. } => Err(error.to_string()),
                };
            }
            match s.rx.message().await {
                Ok(Some(r)) => s.session.handle_response(r),
                Ok(None) => s.session.handle_closed("ended".into()),
                Err(e) => s.session.handle_closed(e.message().to_string()),
            }
            s.flush();
        }
    };
    smq.rt
        .timeout(OPEN_TIMEOUT, done)
        .await
        .map_err(|_| "no ack for the partition marker".to_string())??;
    let Stream { tx, mut rx, .. } = s;
    drop(tx);
    let _ = smq
        .rt
        .timeout(OPEN_TIMEOUT, async {
            while let Ok(Some(_)) = rx.message().await {}
        })
        .await;
    Ok(())
}

async fn run(
    smq: Arc<Smq>,
    topic: schema_pb::Topic,
    index: i32,
    window: usize,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let mut stream: Option<Stream> = None;
    let mut waiting: HashMap<AppendId, oneshot::Sender<PublishEvent>> = HashMap::new();
    let mut next_id = 0u64;
    let mut breaker = Breaker::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(index as u32),
    );
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                next_id += 1;
                let id = AppendId(next_id);
                if stream.as_ref().is_none_or(|s| s.session.broken().is_some()) {
                    stream = None;
                    if !breaker.allows() {
                        let _ = job.reply.send(PublishEvent::Failed {
                            id,
                            stored: 0,
                            error: PublishError::Closed(
                                "SMQ broker unavailable (retrying after a backoff)".into(),
                            ),
                        });
                        continue;
                    }
                    match open(&smq, &topic, index, window).await {
                        Ok(s) => {
                            stream = Some(s);
                            // A new stream: does the partition end where the ledger does? (The
                            // broker may have stored records whose acks died with the last one.)
                            if let Some(first) = job.first_offset {
                                let end = smq.end_offset(&topic, index).await;
                                if !matches!(end, Ok(Some(e)) if e == first) {
                                    let error = match end {
                                        Ok(end) => PublishError::OffsetMismatch {
                                            expected: first,
                                            assigned: end.unwrap_or(-1),
                                        },
                                        Err(e) => PublishError::Closed(e.to_string()),
                                    };
                                    tracing::warn!(topic = %topic.name, partition = index, %error, "SMQ partition does not end where the ledger does");
                                    let _ = job.reply.send(PublishEvent::Failed { id, stored: 0, error });
                                    continue;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(topic = %topic.name, partition = index, error = %e, "cannot open SMQ publish stream");
                            smq.forget(&topic);
                            breaker.failed();
                            let _ = job.reply.send(PublishEvent::Failed {
                                id,
                                stored: 0,
                                error: PublishError::Closed(e),
                            });
                            continue;
                        }
                    }
                }
                if let Some(s) = stream.as_mut() {
                    waiting.insert(id, job.reply);
                    let first = job.first_offset.map(|o| o + SMQ_OFFSET_BASE);
                    s.session.push(id, first, job.messages);
                    s.flush();
                }
            }
            response = async { stream.as_mut().expect("guarded").rx.message().await }, if stream.is_some() => {
                if let Some(s) = stream.as_mut() {
                    match response {
                        Ok(Some(r)) => s.session.handle_response(r),
                        Ok(None) => s.session.handle_closed("the broker ended the stream".into()),
                        Err(e) => s.session.handle_closed(format!("{:?}: {}", e.code(), e.message())),
                    }
                    s.flush();
                }
            }
        }
        if let Some(s) = stream.as_mut() {
            while let Some(event) = s.session.poll_event() {
                let id = match &event {
                    PublishEvent::Stored { id, .. } => {
                        breaker.succeeded();
                        *id
                    }
                    PublishEvent::Failed { id, error, .. } => {
                        tracing::warn!(topic = %topic.name, partition = index, %error, "SMQ publish failed");
                        *id
                    }
                };
                if let Some(reply) = waiting.remove(&id) {
                    let _ = reply.send(kafka_offsets(event));
                }
            }
            if s.session.broken().is_some() {
                stream = None;
                smq.forget(&topic);
                breaker.failed();
            }
        }
    }
}
