//! The SMQ backend's gRPC traffic: the core's [`SmqBackend`] decides, this module makes its
//! [`Call`]s with tonic and feeds the replies, stream items and the time back.
//!
//! One task owns the backend ([`drive`]); each call runs as a task of its own and reports back on
//! a channel, so slow calls never hold up the others. Per broker one channel (HTTP/2, shared by
//! every call to it); per stream the sending half of its requests (publish) or the buffer of its
//! records (subscribe, bounded: a record that finds it full ends the subscription, which the
//! cursor reopens where it stopped; leaving the stream unread instead would let gRPC's flow control
//! stall the broker's partition, publishers included).

use crate::config::SmqSettings;
use crate::runtime::Rt;
use crate::server::Clock;
use crate::storage::Completion;
use kelp_core::smq::backend::SmqBackend;
use kelp_core::smq::io::{Call, CallId, Reply, SmqOutput, StreamId, StreamItem};
use kelp_core::smq::messaging_pb::seaweed_messaging_client::SeaweedMessagingClient;
use kelp_core::smq::messaging_pb::subscribe_message_response::Message as Delivery;
use kelp_core::smq::messaging_pb::{
    DataMessage, FindBrokerLeaderRequest, ListTopicsRequest, PublishMessageRequest,
    SubscribeMessageRequest,
};
use kelp_core::storage::{RecoveredPartition, StorageCommand};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};

type Client = SeaweedMessagingClient<Channel>;

/// Longest unary call, and longest wait for a publish stream's headers.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a subscription waits, unread, for room in its full read-ahead before it is ended (see
/// [`Call::Subscribe`]): a reader still reading makes room within a fetch or two, one that left
/// never does. Ending it at once instead cost a sequential consumer a third of its rate in
/// reopened subscriptions (ConsumerPerformance on SMQ: 106k -> 70k records/s).
const FULL_GRACE: Duration = Duration::from_millis(100);

/// The SMQ storage driver: where the gateway's storage commands go.
pub struct SmqStorage {
    commands: mpsc::UnboundedSender<StorageCommand>,
}

impl SmqStorage {
    /// Starts the backend and returns once it restored the partitions (or failed to start).
    pub async fn start(
        rt: Rt,
        settings: &SmqSettings,
        done: mpsc::UnboundedSender<Completion>,
    ) -> Result<(SmqStorage, Vec<RecoveredPartition>), String> {
        let (commands, queued) = mpsc::unbounded_channel();
        let (restored, partitions) = oneshot::channel();
        rt.spawn(drive(rt.clone(), settings.clone(), queued, done, restored));
        let partitions = partitions
            .await
            .map_err(|_| "the SMQ driver ended".to_string())??;
        Ok((SmqStorage { commands }, partitions))
    }

    /// Starts `command`; its completion arrives on the channel given to [`SmqStorage::start`].
    pub fn submit(&mut self, command: StorageCommand) {
        let _ = self.commands.send(command);
    }
}

/// What comes back from the calls.
enum Event {
    Reply(CallId, Reply),
    Stream(StreamId, StreamItem),
}

/// The task that owns the backend: commands, replies and timeouts in; calls and completions out.
async fn drive(
    rt: Rt,
    settings: SmqSettings,
    mut commands: mpsc::UnboundedReceiver<StorageCommand>,
    done: mpsc::UnboundedSender<Completion>,
    restored: oneshot::Sender<Result<Vec<RecoveredPartition>, String>>,
) {
    let clock = Clock::start();
    let mut backend = SmqBackend::new(settings.config, clock.now());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut grpc = Grpc {
        rt: rt.clone(),
        bootstrap: settings.broker,
        clients: HashMap::new(),
        publishers: HashMap::new(),
        subscriptions: HashMap::new(),
        events: events_tx,
    };
    let mut restored = Some(restored);
    loop {
        while let Some(output) = backend.poll_output() {
            match output {
                SmqOutput::Call(id, call) => grpc.make(id, call),
                SmqOutput::Completed(token, completion) => {
                    let _ = done.send((token, completion));
                }
                SmqOutput::Restored(result) => {
                    let failed = result.is_err();
                    if let Some(tx) = restored.take() {
                        let _ = tx.send(result);
                    }
                    if failed {
                        return;
                    }
                }
            }
        }
        let deadline = backend.poll_timeout().map(|t| clock.instant(t));
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => backend.submit(command, clock.now()),
                None => return,
            },
            Some(event) = events.recv() => {
                // everything that has arrived, before the outputs it causes are made
                let now = clock.now();
                let mut next = Some(event);
                while let Some(event) = next {
                    match event {
                        Event::Reply(id, reply) => backend.handle_reply(id, reply, now),
                        Event::Stream(id, item) => backend.handle_stream(id, item, now),
                    }
                    next = events.try_recv().ok();
                }
            }
            _ = rt.sleep_until(deadline) => backend.handle_timeout(clock.now()),
        }
    }
}

/// A subscription's records, and the switch that ends it.
struct Subscription {
    records: Arc<Mutex<mpsc::Receiver<DataMessage>>>,
    _stop: oneshot::Sender<()>,
}

/// The calls' side of the driver.
struct Grpc {
    rt: Rt,
    bootstrap: String,
    clients: HashMap<String, Client>,
    publishers: HashMap<StreamId, mpsc::UnboundedSender<PublishMessageRequest>>,
    subscriptions: HashMap<StreamId, Subscription>,
    events: mpsc::UnboundedSender<Event>,
}

fn words(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl Grpc {
    /// A client of the broker at `addr` (the channel is shared and reconnects by itself).
    fn client(&mut self, addr: &str) -> Result<Client, String> {
        if let Some(c) = self.clients.get(addr) {
            return Ok(c.clone());
        }
        // No HTTP/2 keep-alive pings: the broker disconnects clients that ping more often than
        // every 20 s. Lazy: the first call connects.
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("broker address {addr}: {e}"))?
            .tcp_nodelay(true);
        let channel = self.rt.grpc_channel(endpoint, Duration::from_secs(3));
        let client = SeaweedMessagingClient::new(channel)
            .max_decoding_message_size(kelp_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(kelp_proto::MAX_MESSAGE_BYTES);
        self.clients.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Runs `call` on its own, and reports its reply (or why it failed) for `id`.
    fn unary<F>(&self, id: CallId, call: F)
    where
        F: Future<Output = Result<Reply, tonic::Status>> + Send + 'static,
    {
        let (rt, events) = (self.rt.clone(), self.events.clone());
        self.rt.spawn(async move {
            let reply = match rt.timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(status)) => Reply::Failed(words(&status)),
                Err(_) => Reply::Failed("timed out".into()),
            };
            let _ = events.send(Event::Reply(id, reply));
        });
    }

    /// Makes `call` (see [`Call`] for what each one is answered with).
    fn make(&mut self, id: CallId, call: Call) {
        match call {
            Call::Publish { stream, request } => {
                if let Some(requests) = self.publishers.get(&stream) {
                    let _ = requests.send(request);
                }
            }
            Call::Take { stream, max, wait } => self.take(id, stream, max, wait.0),
            Call::Close { stream } => {
                self.publishers.remove(&stream);
                self.subscriptions.remove(&stream);
            }
            call => self.rpc(id, call),
        }
    }

    /// Up to `max` records of subscription `stream`, waiting at most `wait_ms` for the first.
    fn take(&self, id: CallId, stream: StreamId, max: usize, wait_ms: u64) {
        let records = self.subscriptions.get(&stream).map(|s| s.records.clone());
        let (rt, events) = (self.rt.clone(), self.events.clone());
        self.rt.spawn(async move {
            let mut got = Vec::new();
            if let Some(records) = records {
                let mut rx = records.lock().await;
                let first = match rx.try_recv() {
                    Ok(m) => Ok(Some(m)),
                    Err(TryRecvError::Disconnected) => Err(()),
                    Err(TryRecvError::Empty) if wait_ms > 0 => {
                        let wait = Duration::from_millis(wait_ms);
                        match rt.timeout(wait, rx.recv()).await {
                            Ok(Some(m)) => Ok(Some(m)),
                            Ok(None) => Err(()),
                            Err(_) => Ok(None),
                        }
                    }
                    Err(TryRecvError::Empty) => Ok(None),
                };
                match first {
                    Ok(first) => got.extend(first),
                    Err(()) => {
                        let _ = events.send(Event::Reply(id, Reply::Ended));
                        return;
                    }
                }
                while got.len() < max
                    && let Ok(m) = rx.try_recv()
                {
                    got.push(m);
                }
            } else {
                let _ = events.send(Event::Reply(id, Reply::Ended));
                return;
            }
            let _ = events.send(Event::Reply(id, Reply::Records(got)));
        });
    }

    /// A call to a broker: unary, or the opening of a stream.
    fn rpc(&mut self, id: CallId, call: Call) {
        let broker = match &call {
            Call::FetchMessage { broker, .. }
            | Call::GetPartitionRangeInfo { broker, .. }
            | Call::OpenPublish { broker, .. }
            | Call::Subscribe { broker, .. } => broker.clone(),
            _ => self.bootstrap.clone(),
        };
        let mut c = match self.client(&broker) {
            Ok(c) => c,
            Err(e) => {
                let _ = self.events.send(Event::Reply(id, Reply::Failed(e)));
                return;
            }
        };
        match call {
            Call::Probe => self.unary(id, async move {
                let leader = c
                    .find_broker_leader(FindBrokerLeaderRequest::default())
                    .await?
                    .into_inner()
                    .broker;
                c.list_topics(ListTopicsRequest {}).await?;
                Ok(Reply::Leader(leader))
            }),
            Call::ConfigureTopic(request) => self.unary(id, async move {
                let r = c.configure_topic(request).await?.into_inner();
                Ok(Reply::Assignments(r.broker_partition_assignments))
            }),
            Call::LookupTopicBrokers(request) => self.unary(id, async move {
                let r = c.lookup_topic_brokers(request).await?.into_inner();
                Ok(Reply::Assignments(r.broker_partition_assignments))
            }),
            Call::FetchMessage { request, .. } => self.unary(id, async move {
                Ok(Reply::Fetched(c.fetch_message(request).await?.into_inner()))
            }),
            Call::GetPartitionRangeInfo { request, .. } => self.unary(id, async move {
                let r = c.get_partition_range_info(request).await?.into_inner();
                Ok(Reply::RangeInfo(r))
            }),
            Call::OpenPublish { stream, init, .. } => {
                let (requests, rx) = mpsc::unbounded_channel();
                // the init goes out before the call: the broker answers (headers) only after it
                let _ = requests.send(init);
                self.publishers.insert(stream, requests);
                let (rt, events) = (self.rt.clone(), self.events.clone());
                self.rt.spawn(async move {
                    let call = c.publish_message(UnboundedReceiverStream::new(rx));
                    let mut responses = match rt.timeout(CALL_TIMEOUT, call).await {
                        Ok(Ok(r)) => r.into_inner(),
                        Ok(Err(status)) => {
                            let _ = events.send(Event::Reply(id, Reply::Failed(words(&status))));
                            return;
                        }
                        Err(_) => {
                            let failed = Reply::Failed("no answer to the stream's init".into());
                            let _ = events.send(Event::Reply(id, failed));
                            return;
                        }
                    };
                    let _ = events.send(Event::Reply(id, Reply::Opened));
                    let end = loop {
                        match responses.message().await {
                            Ok(Some(r)) => {
                                let _ = events.send(Event::Stream(stream, StreamItem::Response(r)));
                            }
                            Ok(None) => break Ok(()),
                            Err(status) => break Err(words(&status)),
                        }
                    };
                    let _ = events.send(Event::Stream(stream, StreamItem::Ended(end)));
                });
            }
            Call::Subscribe {
                stream,
                init,
                buffer,
                ..
            } => {
                let (tx, records) = mpsc::channel(buffer.max(1));
                let (stop, stopped) = oneshot::channel::<()>();
                self.subscriptions.insert(
                    stream,
                    Subscription {
                        records: Arc::new(Mutex::new(records)),
                        _stop: stop,
                    },
                );
                let rt = self.rt.clone();
                self.rt.spawn(async move {
                    tokio::select! {
                        result = subscribe(&rt, c, init, tx) => if let Err(e) = result {
                            tracing::debug!(error = %e, "SMQ subscription ended");
                        },
                        _ = stopped => {}
                    }
                });
            }
            Call::Publish { .. } | Call::Take { .. } | Call::Close { .. } => {}
        }
    }
}

/// Reads a subscription into `tx` until it ends, fails, its reader is gone or `tx` stays full for
/// [`FULL_GRACE`] (see [`Call::Subscribe`]: the stream is never left unread for longer).
async fn subscribe(
    rt: &Rt,
    mut c: Client,
    init: SubscribeMessageRequest,
    tx: mpsc::Sender<DataMessage>,
) -> Result<(), String> {
    let (requests, rx) = mpsc::unbounded_channel();
    requests.send(init).map_err(|e| e.to_string())?;
    let mut replies = c
        .subscribe_message(UnboundedReceiverStream::new(rx))
        .await
        .map_err(|s| words(&s))?
        .into_inner();
    while let Some(reply) = replies.message().await.map_err(|s| words(&s))? {
        match reply.message {
            Some(Delivery::Data(m)) => match tx.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => match rt.timeout(FULL_GRACE, tx.send(m)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err("the cursor is gone".into()),
                    Err(_) => {
                        return Err(
                            "read-ahead full and not read: closed, to be reopened where \
                                    it stops"
                                .into(),
                        );
                    }
                },
                Err(TrySendError::Closed(_)) => return Err("the cursor is gone".into()),
            },
            Some(Delivery::Ctrl(c)) if !c.error.is_empty() => return Err(c.error),
            _ => {}
        }
    }
    drop(requests);
    Ok(())
}
