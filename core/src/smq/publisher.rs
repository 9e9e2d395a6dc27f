//! One task per SMQ partition that Kelp publishes to: it owns the partition's publish stream and
//! drives its [`PublishSession`].
//!
//! Appends arrive as [`Job`]s and are pipelined on one stream (SMQ wants exactly one publisher per
//! partition, and keeping the stream open also keeps the broker from unloading the partition).
//! When the stream breaks, every append not yet acknowledged is answered with what the session
//! reports, and the next job opens a new stream (after checking that the partition ends where the
//! ledger does). Failed opens trip a [`Breaker`]: for a backoff that doubles up to [`MAX_BACKOFF`]
//! (with jitter), jobs fail at once instead of piling up on a dead broker, so producers get fast
//! retriable errors.

use super::client::Smq;
use super::io::{Call, Io, Reply, StreamId, StreamItem};
use super::mapping::{SMQ_OFFSET_BASE, marker_message};
use super::messaging_pb::DataMessage;
use super::publish::{AppendId, PublishError, PublishEvent, PublishSession};
use super::schema_pb;
use crate::types::Millis;
use futures_channel::{mpsc, oneshot};
use futures_core::Stream as _;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// Longest wait for the broker's ack of a partition's marker record.
const MARKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time the breaker stays open.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Records to publish as one append.
pub(crate) struct Job {
    /// The Kafka offset SMQ must give the first message (`None`: any).
    first_offset: Option<i64>,
    messages: Vec<DataMessage>,
    reply: oneshot::Sender<PublishEvent>,
}

/// A publisher's job queue.
pub(crate) type Jobs = mpsc::UnboundedSender<Job>;

/// Starts the publisher of partition `index` of `topic`.
pub(crate) fn spawn(
    smq: Arc<Smq>,
    topic: schema_pb::Topic,
    index: i32,
    window: usize,
    name: String,
) -> Jobs {
    let (tx, rx) = mpsc::unbounded();
    let io = smq.io.clone();
    io.spawn(run(smq, topic, index, window, name, rx));
    tx
}

/// Publishes `messages` through `publisher` and waits for the outcome; offsets are Kafka's.
pub(crate) async fn publish(
    publisher: &Jobs,
    first_offset: Option<i64>,
    messages: Vec<DataMessage>,
) -> PublishEvent {
    let (reply, outcome) = oneshot::channel();
    let closed = || PublishEvent::Failed {
        id: AppendId(0),
        stored: 0,
        error: PublishError::Closed("the publisher task ended".into()),
    };
    let job = Job {
        first_offset,
        messages,
        reply,
    };
    if publisher.unbounded_send(job).is_err() {
        return closed();
    }
    outcome.await.unwrap_or_else(|_| closed())
}

/// An open publish stream with its session.
struct Stream {
    io: Io,
    id: StreamId,
    session: PublishSession,
}

impl Stream {
    /// Opens a stream to partition `index` of `topic` (its leader answered the init).
    async fn open(
        smq: &Smq,
        topic: &schema_pb::Topic,
        index: i32,
        window: usize,
        name: String,
    ) -> Result<Stream, String> {
        let a = smq
            .partition(topic, index)
            .await
            .map_err(|e| e.to_string())?;
        let mut session = PublishSession::new(topic.clone(), a.partition, name, window);
        let init = session
            .poll_transmit()
            .ok_or("a new session has its init to send")?;
        let io = smq.io.clone();
        let id = io.new_stream();
        let stream = Stream { io, id, session };
        let call = Call::OpenPublish {
            broker: a.leader,
            stream: id,
            init,
        };
        match stream.io.call(call).await {
            Reply::Opened => Ok(stream),
            Reply::Failed(e) => Err(format!("PublishMessage: {e}")),
            other => Err(format!("PublishMessage: unexpected reply {other:?}")),
        }
    }

    /// Sends what the session has to send.
    fn flush(&mut self) {
        while let Some(request) = self.session.poll_transmit() {
            self.io.send(Call::Publish {
                stream: self.id,
                request,
            });
        }
    }

    fn take(&mut self, item: StreamItem) {
        match item {
            StreamItem::Response(r) => self.session.handle_response(r),
            StreamItem::Ended(Ok(())) => self
                .session
                .handle_closed("the broker ended the stream".into()),
            StreamItem::Ended(Err(e)) => self.session.handle_closed(e),
        }
        self.flush();
    }

    async fn next(&self) -> StreamItem {
        std::future::poll_fn(|cx| self.io.poll_item(self.id, cx)).await
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.io.send(Call::Close { stream: self.id });
        self.io.drop_stream(self.id);
    }
}

/// Exponential backoff with jitter in front of a failing broker.
struct Breaker {
    failures: u32,
    closed_until: Option<Millis>,
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

    /// Whether an attempt may be made at `now`.
    fn allows(&self, now: Millis) -> bool {
        self.closed_until.is_none_or(|t| now >= t)
    }

    fn failed(&mut self, now: Millis) {
        self.failures = self.failures.saturating_add(1);
        let exp = FIRST_BACKOFF.saturating_mul(1 << self.failures.min(16).saturating_sub(1));
        let full = exp.min(MAX_BACKOFF);
        // xorshift: jitter of 50..100 % so that partitions do not retry in lockstep
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jittered = full.mul_f64(0.5 + (self.seed % 1000) as f64 / 2000.0);
        self.closed_until = Some(now.plus(jittered.as_millis() as u64));
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.closed_until = None;
    }
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
pub(crate) async fn start_partition(
    smq: &Smq,
    topic: &schema_pb::Topic,
    index: i32,
    name: String,
) -> Result<(), String> {
    let mut s = Stream::open(smq, topic, index, 1, name).await?;
    s.session.push(AppendId(0), Some(0), vec![marker_message()]);
    s.flush();
    let stored = async {
        loop {
            if let Some(event) = s.session.poll_event() {
                return match event {
                    PublishEvent::Stored { .. } => Ok(()),
                    PublishEvent::Failed { error, .. } => Err(error.to_string()),
                };
            }
            let item = s.next().await;
            s.take(item);
        }
    };
    smq.io
        .timeout(MARKER_TIMEOUT, stored)
        .await
        .ok_or("no ack for the partition marker")??;
    s.io.send(Call::Close { stream: s.id });
    let drained = async { while !matches!(s.next().await, StreamItem::Ended(_)) {} };
    let _ = smq.io.timeout(MARKER_TIMEOUT, drained).await;
    Ok(())
}

enum Next {
    Job(Option<Job>),
    Item(StreamItem),
}

async fn run(
    smq: Arc<Smq>,
    topic: schema_pb::Topic,
    index: i32,
    window: usize,
    name: String,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let io = smq.io.clone();
    let mut stream: Option<Stream> = None;
    let mut waiting: HashMap<AppendId, oneshot::Sender<PublishEvent>> = HashMap::new();
    let mut next_id = 0u64;
    let mut breaker = Breaker::new(io.now().wall.0 as u64 ^ u64::from(index as u32));
    loop {
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(job) = Pin::new(&mut jobs).poll_next(cx) {
                return Poll::Ready(Next::Job(job));
            }
            match &stream {
                Some(s) => io.poll_item(s.id, cx).map(Next::Item),
                None => Poll::Pending,
            }
        })
        .await;
        match next {
            Next::Job(None) => break,
            Next::Job(Some(job)) => {
                next_id += 1;
                let id = AppendId(next_id);
                if stream.as_ref().is_none_or(|s| s.session.broken().is_some()) {
                    stream = None;
                    if !breaker.allows(io.now().mono) {
                        let _ = job.reply.send(PublishEvent::Failed {
                            id,
                            stored: 0,
                            error: PublishError::Closed(
                                "SMQ broker unavailable (retrying after a backoff)".into(),
                            ),
                        });
                        continue;
                    }
                    match Stream::open(&smq, &topic, index, window, name.clone()).await {
                        Ok(s) => {
                            stream = Some(s);
                            // A new stream: does the partition end where the ledger does? (The
                            // broker may have stored records whose acks died with the last one.)
                            if let Some(error) = misplaced(&smq, &topic, index, &job).await {
                                tracing::warn!(topic = %topic.name, partition = index, %error, "SMQ partition does not end where the ledger does");
                                let _ = job.reply.send(PublishEvent::Failed {
                                    id,
                                    stored: 0,
                                    error,
                                });
                                continue;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(topic = %topic.name, partition = index, error = %e, "cannot open SMQ publish stream");
                            smq.forget(&topic);
                            breaker.failed(io.now().mono);
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
            Next::Item(item) => {
                if let Some(s) = stream.as_mut() {
                    s.take(item);
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
                breaker.failed(io.now().mono);
            }
        }
    }
}

/// Why `job` cannot go on a new stream: the partition does not end at its first offset.
async fn misplaced(
    smq: &Smq,
    topic: &schema_pb::Topic,
    index: i32,
    job: &Job,
) -> Option<PublishError> {
    let first = job.first_offset?;
    match smq.end_offset(topic, index).await {
        Ok(Some(end)) if end == first => None,
        Ok(end) => Some(PublishError::OffsetMismatch {
            expected: first,
            assigned: end.unwrap_or(-1),
        }),
        Err(e) => Some(PublishError::Closed(e.to_string())),
    }
}
