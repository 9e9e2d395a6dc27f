//! One SMQ publish stream (`PublishMessage`) as a state machine the runtime drives.
//!
//! The stream opens with an `init` message; the broker answers with an empty hello, then
//! acknowledges every data message in order with the offset it assigned. Nothing forces a publisher
//! to wait for one ack before sending the next message, so the session keeps up to `window`
//! messages in flight. Messages are pushed in *appends* (one storage command's records); an append
//! is reported [`PublishEvent::Stored`] once all its messages are acknowledged, each at the offset
//! the caller expected. The first broker error, unexpected offset or closed stream breaks the
//! session: every append not yet stored is reported [`PublishEvent::Failed`] with how many of its
//! messages the broker did acknowledge (those are in SMQ at their expected offsets), and the
//! runtime opens a new stream (a new session) for what comes next.
//!
//! The window opens only after the first ack came back at the expected offset (slow start).
//!
//! Driving it: [`PublishSession::poll_transmit`] until `None` after every call that changes it,
//! feed each broker response to [`PublishSession::handle_response`] and the stream's end to
//! [`PublishSession::handle_closed`], and take results from [`PublishSession::poll_event`].

use super::messaging_pb::publish_message_request::{InitMessage, Message as Outgoing};
use super::messaging_pb::{DataMessage, PublishMessageRequest, PublishMessageResponse};
use super::schema_pb;
use std::collections::VecDeque;

/// The caller's name for one append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AppendId(pub u64);

/// What became of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishEvent {
    /// Every message is acknowledged (at its expected offset).
    Stored {
        /// The append.
        id: AppendId,
        /// The broker's ack timestamp of its last message (0 for an empty append).
        last_ack_ts_ns: i64,
    },
    /// The session broke before all of the append was acknowledged.
    Failed {
        /// The append.
        id: AppendId,
        /// Its first messages that the broker did acknowledge.
        stored: u64,
        /// Why.
        error: PublishError,
    },
}

/// Why a publish session broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The broker reported an error.
    #[error("SMQ broker error {code}: {message}")]
    Broker {
        /// Its error code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// The broker gave a message another offset than the ledger assigned: someone else publishes
    /// to the partition, or the broker lost or rewound its offsets.
    #[error("SMQ assigned offset {assigned} where offset {expected} was expected")]
    OffsetMismatch {
        /// The ledger's offset.
        expected: i64,
        /// The broker's.
        assigned: i64,
    },
    /// The broker acknowledged more than was sent.
    #[error("an ack with no message in flight")]
    UnexpectedAck,
    /// The stream ended.
    #[error("the publish stream closed: {0}")]
    Closed(String),
}

struct Queued {
    append: AppendId,
    expected: Option<i64>,
    message: DataMessage,
}

struct InFlight {
    append: AppendId,
    expected: Option<i64>,
}

struct Append {
    id: AppendId,
    unacked: u64,
    acked: u64,
    last_ack_ts_ns: i64,
}

/// One publish stream to one SMQ partition.
pub struct PublishSession {
    init: Option<InitMessage>,
    hello: bool,
    /// An ack arrived at the expected offset.
    confirmed: bool,
    window: usize,
    queued: VecDeque<Queued>,
    in_flight: VecDeque<InFlight>,
    appends: VecDeque<Append>,
    events: VecDeque<PublishEvent>,
    broken: Option<PublishError>,
}

impl PublishSession {
    /// A session for `partition` of `topic` that keeps at most `window` messages unacknowledged.
    pub fn new(
        topic: schema_pb::Topic,
        partition: schema_pb::Partition,
        publisher_name: String,
        window: usize,
    ) -> PublishSession {
        PublishSession {
            init: Some(InitMessage {
                topic: Some(topic),
                partition: Some(partition),
                ack_interval: 1,
                follower_broker: String::new(),
                publisher_name,
            }),
            hello: false,
            confirmed: false,
            window: window.max(1),
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
            appends: VecDeque::new(),
            events: VecDeque::new(),
            broken: None,
        }
    }

    /// Queues an append. With `first_offset`, message k must be acknowledged at `first_offset + k`.
    pub fn push(&mut self, id: AppendId, first_offset: Option<i64>, messages: Vec<DataMessage>) {
        if let Some(error) = &self.broken {
            self.events.push_back(PublishEvent::Failed {
                id,
                stored: 0,
                error: error.clone(),
            });
            return;
        }
        if messages.is_empty() {
            self.appends.push_back(Append {
                id,
                unacked: 0,
                acked: 0,
                last_ack_ts_ns: 0,
            });
            self.settle();
            return;
        }
        self.appends.push_back(Append {
            id,
            unacked: messages.len() as u64,
            acked: 0,
            last_ack_ts_ns: 0,
        });
        for (k, message) in messages.into_iter().enumerate() {
            self.queued.push_back(Queued {
                append: id,
                expected: first_offset.map(|o| o + k as i64),
                message,
            });
        }
    }

    /// The next message to send on the stream: the init first, data once the hello is in and while
    /// the window has room.
    pub fn poll_transmit(&mut self) -> Option<PublishMessageRequest> {
        if self.broken.is_some() {
            return None;
        }
        if let Some(init) = self.init.take() {
            return Some(PublishMessageRequest {
                message: Some(Outgoing::Init(init)),
            });
        }
        // Slow start: one message until the first ack has confirmed that the broker assigns the
        // offsets the ledger expects (after a broker crash weed 4.x may not), so that a mismatch
        // misplaces one record rather than a window of them.
        let window = if self.confirmed { self.window } else { 1 };
        if !self.hello || self.in_flight.len() >= window {
            return None;
        }
        let q = self.queued.pop_front()?;
        self.in_flight.push_back(InFlight {
            append: q.append,
            expected: q.expected,
        });
        Some(PublishMessageRequest {
            message: Some(Outgoing::Data(q.message)),
        })
    }

    /// A response from the broker: the hello, then one ack per data message.
    pub fn handle_response(&mut self, response: PublishMessageResponse) {
        if self.broken.is_some() {
            return;
        }
        if !response.error.is_empty() || response.error_code != 0 {
            return self.fail(PublishError::Broker {
                code: response.error_code,
                message: response.error,
            });
        }
        if !self.hello {
            self.hello = true;
        } else {
            let Some(sent) = self.in_flight.pop_front() else {
                return self.fail(PublishError::UnexpectedAck);
            };
            if let Some(expected) = sent.expected
                && expected != response.assigned_offset
            {
                return self.fail(PublishError::OffsetMismatch {
                    expected,
                    assigned: response.assigned_offset,
                });
            }
            self.confirmed = true;
            if let Some(a) = self.appends.iter_mut().find(|a| a.id == sent.append) {
                a.unacked -= 1;
                a.acked += 1;
                a.last_ack_ts_ns = response.ack_ts_ns;
            }
            self.settle();
        }
        if response.should_close {
            self.fail(PublishError::Closed("the broker asked to close".into()));
        }
    }

    /// The stream ended (an error, or the broker closed it).
    pub fn handle_closed(&mut self, why: String) {
        if self.broken.is_none() {
            self.fail(PublishError::Closed(why));
        }
    }

    /// The next result.
    pub fn poll_event(&mut self) -> Option<PublishEvent> {
        self.events.pop_front()
    }

    /// Why the session broke, if it did (a broken session only fails what is pushed to it).
    pub fn broken(&self) -> Option<&PublishError> {
        self.broken.as_ref()
    }

    /// Whether appends are pushed and not yet reported.
    pub fn is_busy(&self) -> bool {
        !self.appends.is_empty()
    }

    fn settle(&mut self) {
        while self.appends.front().is_some_and(|a| a.unacked == 0) {
            if let Some(a) = self.appends.pop_front() {
                self.events.push_back(PublishEvent::Stored {
                    id: a.id,
                    last_ack_ts_ns: a.last_ack_ts_ns,
                });
            }
        }
    }

    fn fail(&mut self, error: PublishError) {
        self.queued.clear();
        self.in_flight.clear();
        for a in self.appends.drain(..) {
            self.events.push_back(PublishEvent::Failed {
                id: a.id,
                stored: a.acked,
                error: error.clone(),
            });
        }
        self.broken = Some(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn session(window: usize) -> PublishSession {
        PublishSession::new(
            schema_pb::Topic {
                namespace: "kafka".into(),
                name: "t".into(),
            },
            schema_pb::Partition {
                ring_size: 2520,
                range_start: 0,
                range_stop: 2520,
                unix_time_ns: 1,
            },
            "kelp".into(),
            window,
        )
    }

    fn msgs(n: usize) -> Vec<DataMessage> {
        (0..n)
            .map(|i| DataMessage {
                key: Bytes::from(format!("k{i}")),
                value: Bytes::new(),
                ts_ns: i as i64,
                ctrl: None,
            })
            .collect()
    }

    fn ack(offset: i64) -> PublishMessageResponse {
        PublishMessageResponse {
            ack_ts_ns: 100 + offset,
            assigned_offset: offset,
            ..Default::default()
        }
    }

    fn drain(s: &mut PublishSession) -> Vec<PublishMessageRequest> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn events(s: &mut PublishSession) -> Vec<PublishEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn init_then_hello_then_pipelined_data_within_the_window() {
        let mut s = session(3);
        s.push(AppendId(1), Some(10), msgs(2));
        s.push(AppendId(2), Some(12), msgs(3));
        let sent = drain(&mut s);
        assert_eq!(sent.len(), 1, "only the init before the hello");
        assert!(matches!(sent[0].message, Some(Outgoing::Init(_))));
        s.handle_response(PublishMessageResponse::default());
        assert_eq!(
            drain(&mut s).len(),
            1,
            "slow start: one until an ack confirms the offsets"
        );
        s.handle_response(ack(10));
        assert_eq!(drain(&mut s).len(), 3, "then a window of 3");
        assert!(events(&mut s).is_empty());
        s.handle_response(ack(11));
        assert_eq!(
            events(&mut s),
            vec![PublishEvent::Stored {
                id: AppendId(1),
                last_ack_ts_ns: 111
            }]
        );
        assert_eq!(drain(&mut s).len(), 1, "one ack frees one slot");
        for o in 12..15 {
            s.handle_response(ack(o));
        }
        assert_eq!(
            events(&mut s),
            vec![PublishEvent::Stored {
                id: AppendId(2),
                last_ack_ts_ns: 114
            }]
        );
        assert!(!s.is_busy());
    }

    #[test]
    fn an_unexpected_offset_fails_everything_pending_with_the_acked_prefix() {
        let mut s = session(10);
        s.push(AppendId(1), Some(0), msgs(3));
        s.push(AppendId(2), Some(3), msgs(2));
        drain(&mut s);
        s.handle_response(PublishMessageResponse::default());
        drain(&mut s);
        s.handle_response(ack(0));
        drain(&mut s);
        s.handle_response(ack(7));
        let e = events(&mut s);
        let mismatch = PublishError::OffsetMismatch {
            expected: 1,
            assigned: 7,
        };
        assert_eq!(
            e,
            vec![
                PublishEvent::Failed {
                    id: AppendId(1),
                    stored: 1,
                    error: mismatch.clone()
                },
                PublishEvent::Failed {
                    id: AppendId(2),
                    stored: 0,
                    error: mismatch.clone()
                }
            ]
        );
        assert!(drain(&mut s).is_empty(), "a broken session sends nothing");
        s.push(AppendId(3), Some(5), msgs(1));
        assert!(matches!(
            events(&mut s)[..],
            [PublishEvent::Failed {
                id: AppendId(3),
                stored: 0,
                ..
            }]
        ));
    }

    #[test]
    fn broker_errors_and_closed_streams_break_the_session() {
        let mut s = session(10);
        s.push(AppendId(1), None, msgs(2));
        drain(&mut s);
        s.handle_response(PublishMessageResponse {
            error: "no such partition".into(),
            ..Default::default()
        });
        assert!(matches!(
            events(&mut s)[..],
            [PublishEvent::Failed {
                stored: 0,
                error: PublishError::Broker { .. },
                ..
            }]
        ));

        let mut s = session(10);
        s.push(AppendId(1), None, msgs(2));
        drain(&mut s);
        s.handle_response(PublishMessageResponse::default());
        drain(&mut s);
        s.handle_response(ack(40)); // no expectation: any offset is fine
        s.handle_closed("reset".into());
        assert_eq!(
            events(&mut s),
            vec![PublishEvent::Failed {
                id: AppendId(1),
                stored: 1,
                error: PublishError::Closed("reset".into())
            }]
        );
        s.handle_response(ack(41));
        assert!(events(&mut s).is_empty(), "nothing after the break");
    }

    #[test]
    fn empty_appends_and_stray_acks() {
        let mut s = session(2);
        s.push(AppendId(9), Some(0), Vec::new());
        assert_eq!(
            events(&mut s),
            vec![PublishEvent::Stored {
                id: AppendId(9),
                last_ack_ts_ns: 0
            }]
        );
        drain(&mut s);
        s.handle_response(PublishMessageResponse::default());
        s.handle_response(ack(0));
        assert_eq!(s.broken(), Some(&PublishError::UnexpectedAck));
    }
}
