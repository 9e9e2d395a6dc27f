//! Kelp's sans-IO core.
//!
//! So far: the Kafka wire codec ([`codec`]) and the message types of every API Kelp speaks ([`api`]).
//! Bytes come in as `Bytes`, values and encoded bytes come out; nothing here touches a socket, a file,
//! a clock or a thread.

pub mod api;
pub mod codec;
