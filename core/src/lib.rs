//! Kelp's sans-IO core.
//!
//! So far: the Kafka wire codec ([`codec`]) and the message types of every API Kelp speaks ([`api`]).
//! Bytes come in as `Bytes`, values and encoded bytes come out; nothing here touches a socket, a file,
//! a clock or a thread, so any event loop can drive it.
//!
//! Reading requests off a connection and answering them:
//!
//! ```
//! use bytes::BytesMut;
//! use kelp_core::api::{ApiKey, RequestBody, ResponseBody, api_versions};
//! use kelp_core::codec::header::{Request, Response, ResponseHeader};
//! use kelp_core::codec::{CodecError, FrameDecoder};
//!
//! // Bytes as received from a socket: one size-prefixed ApiVersions v3 request.
//! let mut inbound = BytesMut::from(
//!     &b"\0\0\0\x18\0\x12\0\x03\0\0\0\x01\0\x03cli\0\x05kcat\x041.7\0"[..],
//! );
//! let frames = FrameDecoder::new(1 << 20);
//! let frame = frames.decode(&mut inbound)?.ok_or(CodecError::Truncated)?;
//! let request = Request::decode(&frame)?;
//! assert!(matches!(&request.body, RequestBody::ApiVersions(b) if b.client_software_name.as_str() == "kcat"));
//!
//! // The answer lists every API from the one table the codec is generated from.
//! let answer = api_versions::ApiVersionsResponse {
//!     api_keys: ApiKey::ALL
//!         .iter()
//!         .map(|api| api_versions::response::ApiVersion {
//!             api_key: api.code(),
//!             min_version: api.advertised().min,
//!             max_version: api.advertised().max,
//!             ..Default::default()
//!         })
//!         .collect(),
//!     ..Default::default()
//! };
//! let response = Response {
//!     header: ResponseHeader { correlation_id: request.header.correlation_id, ..Default::default() },
//!     body: ResponseBody::ApiVersions(answer),
//! };
//! let mut outbound = BytesMut::new();
//! kelp_core::codec::encode_frame(&mut outbound, |buf| response.encode(buf, request.header.api_version))?;
//! assert!(outbound.len() > 4 + 30 * 6);
//! # Ok::<(), kelp_core::codec::CodecError>(())
//! ```

pub mod api;
pub mod broker;
pub mod codec;
pub mod error_code;
pub mod group;
pub mod ledger;
pub mod producer;
pub mod storage;
pub mod types;

pub use error_code::ErrorCode;
