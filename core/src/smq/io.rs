//! The SMQ backend's side of its gRPC traffic: the [`Call`]s it asks the runtime to make, the
//! [`Reply`]s and [`StreamItem`]s that come back, and the futures its procedures await on them.
//!
//! The procedures in [`super::backend`] are `async` code, but nothing here waits on a socket or a
//! clock: a call is an output with a [`CallId`], and its future completes when the runtime feeds
//! the reply back; a sleep completes when the time fed in reaches its deadline. All of it lives in
//! one `IoState` behind a lock that is never held while a task is polled or woken.

use super::messaging_pb::{
    BrokerPartitionAssignment, ConfigureTopicRequest, DataMessage, FetchMessageRequest,
    FetchMessageResponse, GetPartitionRangeInfoRequest, GetPartitionRangeInfoResponse,
    LookupTopicBrokersRequest, PublishMessageRequest, PublishMessageResponse,
    SubscribeMessageRequest,
};
use crate::broker::Now;
use crate::storage::{RecoveredPartition, StorageCompletion, StorageToken};
use crate::types::Millis;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Names one [`Call`]; its [`Reply`] carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Names one stream (a `PublishMessage` or `SubscribeMessage` call) across the calls about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// A gRPC call for the runtime to make.
///
/// Unary calls, `OpenPublish` and `Take` are answered with one [`Reply`] for their id, or
/// [`Reply::Failed`] (a gRPC status, an unreachable broker, or the runtime's own call timeout);
/// `Publish` and `Close` are not answered. Calls without a `broker` go to the bootstrap broker
/// (which forwards control-plane calls to the balancer).
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `FindBrokerLeader`, then `ListTopics`: answered [`Reply::Leader`] with a non-empty leader.
    Probe,
    /// `ConfigureTopic`: answered [`Reply::Assignments`].
    ConfigureTopic(ConfigureTopicRequest),
    /// `LookupTopicBrokers`: answered [`Reply::Assignments`].
    LookupTopicBrokers(LookupTopicBrokersRequest),
    /// `FetchMessage` on `broker`: answered [`Reply::Fetched`].
    FetchMessage {
        /// The partition leader's gRPC address.
        broker: String,
        /// The request.
        request: FetchMessageRequest,
    },
    /// `GetPartitionRangeInfo` on `broker`: answered [`Reply::RangeInfo`].
    GetPartitionRangeInfo {
        /// The partition leader's gRPC address.
        broker: String,
        /// The request.
        request: GetPartitionRangeInfoRequest,
    },
    /// Opens a `PublishMessage` stream on `broker` whose first request is `init` (the broker
    /// answers the call only after it). Answered [`Reply::Opened`]; from then on every response
    /// arrives as [`StreamItem::Response`] and the stream's end as [`StreamItem::Ended`].
    OpenPublish {
        /// The partition leader's gRPC address.
        broker: String,
        /// The stream's name in later calls.
        stream: StreamId,
        /// The stream's first request.
        init: PublishMessageRequest,
    },
    /// Sends `request` on a publish stream (not answered: a broken stream reports its end).
    Publish {
        /// The stream.
        stream: StreamId,
        /// The request.
        request: PublishMessageRequest,
    },
    /// Opens a `SubscribeMessage` stream on `broker` with `init`; the runtime keeps at most
    /// `buffer` of its records until they are taken. A record that finds the buffer full and still
    /// full a moment later (the runtime's grace: 100 ms) ends the subscription; the buffered records
    /// can still be taken. The runtime never leaves the stream unread for longer. With weed 4.53, a
    /// subscription left unread (gRPC flow control holding back the broker's sends) stalled every
    /// later publish to its partition, and soon the broker's other calls too, until the
    /// subscription closed. (Seen in the benchmark; where weed blocks was not traced.)
    Subscribe {
        /// The partition leader's gRPC address.
        broker: String,
        /// The stream's name in later calls.
        stream: StreamId,
        /// The subscription's first request.
        init: SubscribeMessageRequest,
        /// Records kept at most.
        buffer: usize,
    },
    /// Up to `max` records of a subscription: waits at most `wait` for the first, then takes only
    /// what has arrived. Answered [`Reply::Records`] (empty when none came in time), or
    /// [`Reply::Ended`] once the subscription has ended and every record it buffered was taken.
    Take {
        /// The subscription.
        stream: StreamId,
        /// Records taken at most.
        max: usize,
        /// Longest wait for the first.
        wait: Millis,
    },
    /// Ends a stream: a publish stream's request side is closed (the broker then ends its
    /// responses), a subscription stops.
    Close {
        /// The stream.
        stream: StreamId,
    },
}

/// The answer to a [`Call`].
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// [`Call::Probe`]: the leader broker's address.
    Leader(String),
    /// [`Call::ConfigureTopic`], [`Call::LookupTopicBrokers`]: where the partitions are.
    Assignments(Vec<BrokerPartitionAssignment>),
    /// [`Call::FetchMessage`].
    Fetched(FetchMessageResponse),
    /// [`Call::GetPartitionRangeInfo`].
    RangeInfo(GetPartitionRangeInfoResponse),
    /// [`Call::OpenPublish`]: the broker took the stream.
    Opened,
    /// [`Call::Take`].
    Records(Vec<DataMessage>),
    /// [`Call::Take`]: the subscription is over (it failed, the broker ended it, or the runtime
    /// closed it when its buffer was full) and nothing of it is left; a reader that wants more
    /// opens a new one where this one stopped.
    Ended,
    /// The call failed, in words (`Unavailable: ...`, `timed out`).
    Failed(String),
}

/// Something that arrived on an open publish stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem {
    /// A response.
    Response(PublishMessageResponse),
    /// The stream ended (`Err`: with this error).
    Ended(Result<(), String>),
}

/// What the backend gives its runtime.
// (Calls are the common output and the large one; boxing them would cost an allocation per
// published message for a queue that holds few at a time.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SmqOutput {
    /// Make this call.
    Call(CallId, Call),
    /// A storage command is done.
    Completed(StorageToken, StorageCompletion),
    /// Start-up is over: the partitions restored from the ledger topic, or why start-up failed.
    Restored(Result<Vec<RecoveredPartition>, String>),
}

/// A task of the backend's executor.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Pending {
    reply: Option<Reply>,
    waker: Option<Waker>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<StreamItem>,
    waker: Option<Waker>,
}

/// Everything the backend's tasks share with its driver.
pub(crate) struct IoState {
    now: Now,
    next_id: u64,
    outputs: VecDeque<SmqOutput>,
    calls: HashMap<CallId, Pending>,
    streams: HashMap<StreamId, Queue>,
    timers: BTreeMap<(Millis, u64), Waker>,
    spawned: Vec<Task>,
}

/// A handle on the shared [`IoState`].
#[derive(Clone)]
pub(crate) struct Io(Arc<Mutex<IoState>>);

impl Io {
    pub(crate) fn new(now: Now) -> Io {
        Io(Arc::new(Mutex::new(IoState {
            now,
            next_id: 0,
            outputs: VecDeque::new(),
            calls: HashMap::new(),
            streams: HashMap::new(),
            timers: BTreeMap::new(),
            spawned: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, IoState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_id(state: &mut IoState) -> u64 {
        state.next_id += 1;
        state.next_id
    }

    /// The time last fed in.
    pub(crate) fn now(&self) -> Now {
        self.lock().now
    }

    /// Runs `task` on the executor (from its next turn on).
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.lock().spawned.push(Box::pin(task));
    }

    pub(crate) fn take_spawned(&self) -> Vec<Task> {
        std::mem::take(&mut self.lock().spawned)
    }

    pub(crate) fn output(&self, output: SmqOutput) {
        self.lock().outputs.push_back(output);
    }

    pub(crate) fn poll_output(&self) -> Option<SmqOutput> {
        self.lock().outputs.pop_front()
    }

    /// Makes `call` and waits for its reply. Dropping the future forgets the call (a late reply
    /// is ignored).
    pub(crate) fn call(&self, call: Call) -> CallFuture {
        let mut state = self.lock();
        let id = CallId(Self::next_id(&mut state));
        state.outputs.push_back(SmqOutput::Call(id, call));
        state.calls.insert(
            id,
            Pending {
                reply: None,
                waker: None,
            },
        );
        CallFuture {
            io: self.clone(),
            id,
        }
    }

    /// Sends a call that has no reply.
    pub(crate) fn send(&self, call: Call) {
        let mut state = self.lock();
        let id = CallId(Self::next_id(&mut state));
        state.outputs.push_back(SmqOutput::Call(id, call));
    }

    /// Delivers a reply; returns the task to wake, if any still waits for it.
    pub(crate) fn reply(&self, id: CallId, reply: Reply) -> Option<Waker> {
        let mut state = self.lock();
        let pending = state.calls.get_mut(&id)?;
        pending.reply = Some(reply);
        pending.waker.take()
    }

    /// A fresh stream id (a subscription's: its records come through `Take`).
    pub(crate) fn stream_id(&self) -> StreamId {
        StreamId(Self::next_id(&mut self.lock()))
    }

    /// A fresh stream id with an (empty) queue for its items (a publish stream's).
    pub(crate) fn new_stream(&self) -> StreamId {
        let id = self.stream_id();
        self.lock().streams.insert(id, Queue::default());
        id
    }

    /// Forgets a stream's queue (later items are dropped).
    pub(crate) fn drop_stream(&self, stream: StreamId) {
        self.lock().streams.remove(&stream);
    }

    /// Queues an item for `stream`; returns the task to wake, if one waits.
    pub(crate) fn stream_item(&self, stream: StreamId, item: StreamItem) -> Option<Waker> {
        let mut state = self.lock();
        let queue = state.streams.get_mut(&stream)?;
        queue.items.push_back(item);
        queue.waker.take()
    }

    /// The next item of `stream`, once there is one (a forgotten stream has ended).
    pub(crate) fn poll_item(&self, stream: StreamId, cx: &mut Context<'_>) -> Poll<StreamItem> {
        let mut state = self.lock();
        let Some(queue) = state.streams.get_mut(&stream) else {
            return Poll::Ready(StreamItem::Ended(Err("the stream was closed".into())));
        };
        match queue.items.pop_front() {
            Some(item) => Poll::Ready(item),
            None => {
                queue.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Completes once the time fed in reaches `deadline`.
    pub(crate) fn sleep_until(&self, deadline: Millis) -> Sleep {
        Sleep {
            io: self.clone(),
            deadline,
            key: None,
        }
    }

    /// Completes `duration` after the time last fed in.
    pub(crate) fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.now().mono.plus(duration.as_millis() as u64);
        self.sleep_until(deadline)
    }

    /// `work`'s output, unless `limit` passes first.
    pub(crate) async fn timeout<F: Future>(&self, limit: Duration, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        let mut sleep = self.sleep(limit);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            Pin::new(&mut sleep).poll(cx).map(|()| None)
        })
        .await
    }

    /// Feeds the time; returns the sleepers to wake.
    pub(crate) fn advance(&self, now: Now) -> Vec<Waker> {
        let mut state = self.lock();
        state.now = now;
        let later = state.timers.split_off(&(now.mono.plus(1), 0));
        let due = std::mem::replace(&mut state.timers, later);
        due.into_values().collect()
    }

    /// The earliest deadline a task sleeps until.
    pub(crate) fn poll_timeout(&self) -> Option<Millis> {
        self.lock().timers.keys().next().map(|(at, _)| *at)
    }
}

/// The future of one [`Call`].
pub(crate) struct CallFuture {
    io: Io,
    id: CallId,
}

impl Future for CallFuture {
    type Output = Reply;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        let mut state = self.io.lock();
        let Some(pending) = state.calls.get_mut(&self.id) else {
            return Poll::Ready(Reply::Failed("the call was already answered".into()));
        };
        match pending.reply.take() {
            Some(reply) => {
                state.calls.remove(&self.id);
                Poll::Ready(reply)
            }
            None => {
                pending.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for CallFuture {
    fn drop(&mut self) {
        self.io.lock().calls.remove(&self.id);
    }
}

/// The future of a sleep.
pub(crate) struct Sleep {
    io: Io,
    deadline: Millis,
    /// Its entry in the timers, while it waits.
    key: Option<(Millis, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let io = self.io.clone();
        let mut state = io.lock();
        if let Some(key) = self.key.take() {
            state.timers.remove(&key);
        }
        if state.now.mono >= self.deadline {
            return Poll::Ready(());
        }
        let key = (self.deadline, Io::next_id(&mut state));
        state.timers.insert(key, cx.waker().clone());
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.io.lock().timers.remove(&key);
        }
    }
}

/// The backend's tasks, polled only from [`super::backend::SmqBackend`]'s methods: a task runs
/// when something it waits for (a reply, a stream item, the time, a channel) wakes it.
pub(crate) struct Executor {
    io: Io,
    next: u64,
    /// The tasks, each with the waker that marks it ready.
    tasks: HashMap<u64, (Task, Waker)>,
    ready: Arc<Mutex<Vec<u64>>>,
}

struct TaskWaker {
    id: u64,
    ready: Arc<Mutex<Vec<u64>>>,
}

impl std::task::Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.id);
    }
}

impl Executor {
    pub(crate) fn new(io: Io) -> Executor {
        Executor {
            io,
            next: 0,
            tasks: HashMap::new(),
            ready: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Polls every woken task (and every new one) until none is left to poll.
    pub(crate) fn run(&mut self) {
        loop {
            for task in self.io.take_spawned() {
                self.next += 1;
                let waker = Waker::from(Arc::new(TaskWaker {
                    id: self.next,
                    ready: self.ready.clone(),
                }));
                self.tasks.insert(self.next, (task, waker));
                self.ready
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(self.next);
            }
            let mut woken =
                std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()));
            if woken.is_empty() {
                return;
            }
            woken.sort_unstable();
            woken.dedup();
            for id in woken {
                let Some((task, waker)) = self.tasks.get_mut(&id) else {
                    continue;
                };
                if task
                    .as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_ready()
                {
                    self.tasks.remove(&id);
                }
            }
        }
    }
}
