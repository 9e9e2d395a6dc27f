//! Kelp's sans-IO core: everything a Kafka-compatible broker decides, none of what it does.
//!
//! - [`codec`] and [`api`]: the Kafka wire protocol (frames, headers, every message of the 30 APIs
//!   Kelp speaks, record batches and compression);
//! - [`broker`]: the [`broker::Gateway`] state machine (connections, produce, fetch, offsets, topics,
//!   configs, consumer groups);
//! - [`ledger`], [`producer`], [`group`]: the state it keeps per partition and per group;
//! - [`storage`]: the commands it gives to whoever owns the disk, and the embedded log's format.
//! - [`smq`]: the storage backend on SeaweedMQ, a second state machine that carries those commands
//!   out as gRPC calls for the driver to make ([`smq::backend::SmqBackend`]).
//!
//! Nothing here touches a socket, a file, a clock or a thread. A driver feeds bytes, connection
//! events, storage completions and the time in, and carries bytes and storage commands out, in the
//! style of str0m and quinn-proto. Here is a whole driver, with an in-memory storage and a pretend
//! client:
//!
//! ```
//! use bytes::Bytes;
//! use kelp_core::api::{ApiKey, ResponseBody};
//! use kelp_core::broker::{Config, Gateway, Input, Now, Output};
//! use kelp_core::codec::header::Response;
//! use kelp_core::storage::memory::MemoryStorage;
//! use kelp_core::types::{ConnectionId, Millis, TimestampMs};
//! use std::collections::VecDeque;
//!
//! let now = Now { mono: Millis(0), wall: TimestampMs(1_700_000_000_000) };
//! let mut gateway = Gateway::new(Config::default(), Vec::new(), now);
//! let mut storage = MemoryStorage::new();
//! let conn = ConnectionId(1);
//! let mut to_client = Vec::new();
//!
//! // A client connects and sends one size-prefixed ApiVersions v3 request.
//! let request = Bytes::from_static(b"\0\0\0\x18\0\x12\0\x03\0\0\0\x01\0\x03cli\0\x05kcat\x041.7\0");
//! let mut inputs = VecDeque::from([Input::Connected(conn, "/127.0.0.1".into()), Input::Received(conn, request)]);
//! while let Some(input) = inputs.pop_front() {
//!     gateway.handle_input(input, now)?;
//!     // Drain every output; storage completions become further inputs.
//!     while let Some(output) = gateway.poll_output() {
//!         match output {
//!             Output::Transmit(_, frame) => to_client.push(frame.to_bytes()),
//!             Output::Close(_) => {}
//!             Output::Storage(cmd) => inputs.push_back(Input::Storage(cmd.token(), storage.perform(&cmd))),
//!         }
//!     }
//!     // A real driver now sleeps until `gateway.poll_timeout()` and then feeds `Input::Tick`.
//! }
//! let response = Response::decode(&to_client[0].slice(4..), ApiKey::ApiVersions, 3)?;
//! let ResponseBody::ApiVersions(versions) = response.body else { return Err("not ApiVersions".into()) };
//! assert!(versions.api_keys.iter().any(|k| k.api_key == ApiKey::Produce.code()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Order rules for drivers: feed inputs of one connection in the order the bytes arrived; write a
//! connection's `Transmit`s in the order they come out; perform the storage commands that change a
//! partition's log in the order they come out (see [`storage`]); after every input, drain
//! [`broker::Gateway::poll_output`] until it returns `None`, then sleep no later than
//! [`broker::Gateway::poll_timeout`] and feed [`broker::Input::Tick`].

pub mod api;
pub mod broker;
pub mod codec;
pub mod consumer_group;
pub mod error_code;
pub mod group;
pub mod ledger;
pub mod producer;
pub mod smq;
pub mod storage;
pub mod types;

pub use error_code::ErrorCode;
